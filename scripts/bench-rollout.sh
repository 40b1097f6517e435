#!/usr/bin/env bash
# Firmware rollout benchmark (issue "The operator's toolbox"): one fleet command updates the
# firmware of CHARGERS simulated chargers from a file the server hosts itself.
#
#   scripts/bench-rollout.sh [CHARGERS=10000] [CONCURRENCY=256] [FIRMWARE_KIB=256]
#
# The server (release, fresh SQLite file) runs on CPU 0, echarging-sim on CPU 1 with CHARGERS
# idle chargers that answer UpdateFirmware as a real charger does: `{}`, then
# FirmwareStatusNotification Downloading, an HTTP GET of the location, Downloaded, Installing,
# Installed (DownloadFailed when the GET fails). Once every charger is online the script uploads
# a FIRMWARE_KIB KiB file (POST /api/v1/firmware), sends one fleet command (UpdateFirmware to
# every online charger, CONCURRENCY at a time, stopping after 1% failures) and measures: the
# time until the job has sent to every charger, and until the server has received every
# charger's Installed (its FirmwareStatusNotification frame count, from /metrics). Prints the job,
# the simulator's report and a summary. BIN_DIR=DIR takes the binaries from DIR.
set -euo pipefail
cd "$(dirname "$0")/.."

chargers=${1:-10000}
concurrency=${2:-256}
kib=${3:-256}
port=${BENCH_PORT:-18100}
token=bench-operator-token-0123456789
api="http://127.0.0.1:$port"
work=$(mktemp -d)
server=
sim=
trap 'kill $server $sim 2>/dev/null || true; rm -rf "$work"' EXIT

if [[ -z ${BIN_DIR:-} ]]; then
  cargo build --release --quiet -p echarging -p echarging-sim
  BIN_DIR=target/release
fi
ulimit -n "$(ulimit -Hn)"

ECHARGING_LOG=warn taskset -c 0 "$BIN_DIR/echarging" --listen "127.0.0.1:$port" \
  --database-url "sqlite://$work/bench.db" --api-token "$token" --data-dir "$work" \
  --read-configuration-on-boot false &
server=$!
for _ in $(seq 1 100); do curl -fs "$api/readyz" >/dev/null 2>&1 && break; sleep 0.1; done

# The chargers stay connected long enough for the rollout; the report is read at the end.
hold=$((60 + chargers / 50))
taskset -c 1 "$BIN_DIR/echarging-sim" --url "ws://127.0.0.1:$port/ocpp" --api-url "$api" \
  --api-token "$token" --source-addrs 127.0.0.1-127.0.0.4 --json --chargers "$chargers" \
  --mode idle --duration "$hold" --id-prefix FW- >"$work/sim.json" &
sim=$!

# The sum of the /metrics lines that start with $1 (a fixed string).
metric() {
  curl -fs "$api/metrics" | grep -F "$1" | awk '{ s += $2 } END { printf "%d\n", s }'
}
echo "== waiting for $chargers chargers online" >&2
for _ in $(seq 1 600); do
  [[ $(metric 'echarging_chargers_connected ') -ge $chargers ]] && break
  sleep 0.5
done

head -c "$((kib * 1024))" /dev/urandom >"$work/fw.bin"
url=$(curl -fs -X POST -H "Authorization: Bearer $token" -H 'Content-Type: application/octet-stream' \
  --data-binary @"$work/fw.bin" "$api/api/v1/firmware?name=bench-fw-1.bin" | jq -r .url)
frames='echarging_ocpp_frames_total{action="FirmwareStatusNotification",direction="in"}'
before=$(metric "$frames")
retrieve=$(date -u +%Y-%m-%dT%H:%M:%SZ)
max_failures=$((chargers / 100))
echo "== rollout of $url to $chargers chargers, $concurrency at a time" >&2
start=$(date +%s.%N)
job=$(curl -fs -X POST -H "Authorization: Bearer $token" -H 'Content-Type: application/json' \
  -d "{\"action\":\"UpdateFirmware\",\"payload\":{\"location\":\"$url\",\"retrieveDate\":\"$retrieve\"},\"filter\":{\"online\":true},\"concurrency\":$concurrency,\"maxFailures\":$max_failures}" \
  "$api/api/v1/fleet/commands" | jq -r .id)
sent_at=
while :; do
  view=$(curl -fs -H "Authorization: Bearer $token" "$api/api/v1/fleet/commands/$job")
  if [[ -z $sent_at && $(jq -r .state <<<"$view") != running ]]; then
    sent_at=$(date +%s.%N)
    jq 'del(.outcomes)' <<<"$view" >"$work/job.json"
  fi
  # Four notifications per installed charger (Downloading, Downloaded, Installing, Installed).
  if [[ -n $sent_at && $(( $(metric "$frames") - before )) -ge $((4 * chargers)) ]]; then
    break
  fi
  if (( $(date +%s) - ${start%.*} > hold - 10 )); then
    echo "rollout did not finish within the chargers' hold" >&2
    break
  fi
  sleep 0.2
done
installed_at=$(date +%s.%N)
notifications=$(( $(metric "$frames") - before ))

# Failures handled: the same rollout of a location that answers 404 stops after maxFailures.
echo "== rollout of a missing file: stops after $max_failures failures" >&2
bad_start=$(date +%s.%N)
bad=$(curl -fs -X POST -H "Authorization: Bearer $token" -H 'Content-Type: application/json' \
  -d "{\"action\":\"UpdateFirmware\",\"payload\":{\"location\":\"${url}.missing\",\"retrieveDate\":\"$retrieve\"},\"filter\":{\"online\":true},\"concurrency\":$concurrency,\"maxFailures\":$max_failures}" \
  "$api/api/v1/fleet/commands" | jq -r .id)
# Until it has finished: chargers in flight when it stopped still end their attempt.
while [[ $(curl -fs -H "Authorization: Bearer $token" "$api/api/v1/fleet/commands/$bad" | jq -r .finishedAt) == null ]]; do
  sleep 0.2
done
bad_end=$(date +%s.%N)
curl -fs -H "Authorization: Bearer $token" "$api/api/v1/fleet/commands/$bad" | jq 'del(.outcomes)' >"$work/bad.json"
wait "$sim" || true
sim=

cat "$work/job.json"
cat "$work/bad.json"
cat "$work/sim.json"
jq -r --argjson sent "$(awk "BEGIN { print $sent_at - $start }")" \
  --argjson done "$(awk "BEGIN { print $installed_at - $start }")" \
  --argjson notes "$notifications" --slurpfile job "$work/job.json" \
  --slurpfile bad "$work/bad.json" --argjson bad_s "$(awk "BEGIN { print $bad_end - $bad_start }")" '
  "rollout: job \($job[0].state), \($job[0].done)/\($job[0].total) chargers sent, outcomes \($job[0].counts)",
  "rollout: sent to every charger in \($sent*100|round/100) s; every Installed received after \($done*100|round/100) s (\($notes) FirmwareStatusNotifications)",
  "missing file: job \($bad[0].state) after \($bad_s*100|round/100) s, outcomes \($bad[0].counts)",
  "chargers: \(.firmwareInstalled) installed, \(.firmwareFailed) download failures, \(.connected)/\(.chargers) held, \([.callErrors[]] | add // 0) CALLERRORs"
' "$work/sim.json" >&2
