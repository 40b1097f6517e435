#!/usr/bin/env bash
# Web console benchmark (issue 18): how long the operator's fleet page takes to load with
# CHARGERS registered chargers. Registers them over the REST API, signs in through the console's
# form (cookie session), then times `GET /` (the first fleet page of 100 rows, with the counts
# over all chargers) RUNS times with curl and prints min / median / max.
#
#   scripts/bench-console.sh [CHARGERS=10000] [RUNS=10]
#
# BENCH_PROFILE=debug uses the debug build instead of a release one (quicker to build).
set -euo pipefail
cd "$(dirname "$0")/.."

chargers=${1:-10000}
runs=${2:-10}
port=${BENCH_PORT:-18091}
profile=${BENCH_PROFILE:-release}
token=bench-operator-token-0123456789
base="http://127.0.0.1:$port"
work=$(mktemp -d)
cleanup() {
  kill "$server" 2>/dev/null || true
  wait "$server" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

if [[ $profile == release ]]; then
  cargo build --release --quiet -p echarging
else
  cargo build --quiet -p echarging
fi
ECHARGING_LOG=warn "target/$profile/echarging" \
  --listen "127.0.0.1:$port" --database-url "sqlite://$work/bench.db" --api-token "$token" &
server=$!
for _ in $(seq 1 100); do
  curl -fs "$base/readyz" >/dev/null 2>&1 && break
  sleep 0.1
done

# One curl, many requests in parallel: a config file with one block per charger.
for i in $(seq 1 "$chargers"); do
  printf 'url = "%s/api/v1/chargers"\nheader = "Authorization: Bearer %s"\nheader = "Content-Type: application/json"\ndata = "{\\"id\\":\\"CON-%05d\\",\\"connectors\\":2}"\noutput = "/dev/null"\nwrite-out = "%%{http_code}\\n"\nnext\n' \
    "$base" "$token" "$i"
done | sed '$d' >"$work/register.cfg"  # no empty block after the last
started=$(date +%s.%N)
curl -s --no-progress-meter --parallel --parallel-max 16 --config "$work/register.cfg" >"$work/codes"
created=$(grep -c '^201$' "$work/codes" || true)
echo "registered $created of $chargers chargers in $(echo "$(date +%s.%N) - $started" | bc) s" >&2
[[ $created == "$chargers" ]]

# Sign in as a browser would: the form's double-submit token, then the session cookie.
jar="$work/cookies"
field=$(curl -s -c "$jar" "$base/" | grep -o 'name="signin" value="[^"]*"' | sed 's/.*value="//; s/"$//')
curl -s -b "$jar" -c "$jar" -o /dev/null --data-urlencode "token=$token" --data-urlencode "signin=$field" \
  "$base/console/signin"
grep -q echarging_console "$jar"

rows=$(curl -s -b "$jar" "$base/" | grep -o 'data-charger="' | wc -l)
echo "fleet page shows $rows rows" >&2
for _ in $(seq 1 "$runs"); do
  curl -s -b "$jar" -o /dev/null -w '%{time_total}\n' "$base/"
done | sort -n >"$work/times"
awk -v n="$chargers" -v p="$profile" '{t[NR]=$1} END {
  printf "fleet page at %d chargers (%s build): min %.0f ms, median %.0f ms, max %.0f ms over %d loads\n",
    n, p, t[1]*1000, t[int((NR+1)/2)]*1000, t[NR]*1000, NR }' "$work/times"

# What one open fleet page costs the server: CPU used while its live stream runs for 10 s
# (the stream rebuilds every charger's row twice a second to find the changed ones).
cpu() { awk '{print $14 + $15}' "/proc/$server/stat"; }
tick=$(getconf CLK_TCK)
before=$(cpu)
curl -s -N -b "$jar" --max-time 10 -o /dev/null "$base/console/events?ids=CON-00001" || true
after=$(cpu)
awk -v a="$before" -v b="$after" -v t="$tick" -v n="$chargers" 'BEGIN {
  printf "one open fleet stream at %d chargers: %.0f ms of server CPU per second\n", n, (b - a) / t / 10 * 1000 }'
