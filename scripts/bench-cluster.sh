#!/usr/bin/env bash
# What the cluster itself costs, on three nodes sharing one PostgreSQL and one NATS
# (README "Cluster"):
#
#   1. a command (`POST /chargers/{id}/trigger` Heartbeat) answered by the node holding the
#      charger's socket against the same command through another node (routed over NATS):
#      p50/p99 of COMMANDS sequential requests each, interleaved;
#   2. booking → ReserveNow: drivers book over the REST API of the charger's own node, then of
#      another node; the simulator times each from the booking POST until its charger holds the
#      reservation (its `bookingToReserveNow`);
#   3. the reconnect storm: STORM chargers spread over the three nodes (each charger is given all
#      three URLs); node 1 is SIGKILLed; the time until every charger is connected again (nodes 2
#      and 3's own session counts), and until a sample of node 1's former chargers answers a
#      command through node 2.
#
#   scripts/bench-cluster.sh [COMMANDS=500] [STORM=30000]
#
# Nodes are pinned to CPU 0, simulators to CPU 1 (PostgreSQL and NATS share both). Needs
# PostgreSQL at BENCH_DATABASE_URL (postgres://postgres@127.0.0.1:5432/test; a fresh schema is
# made and dropped) and NATS at BENCH_CLUSTER_URL (nats://127.0.0.1:4222). BENCH_BUILD=0 uses
# the release binaries already built; PHASES="commands booking storm" picks the parts.
set -euo pipefail
export PGOPTIONS="--client-min-messages=warning"
cd "$(dirname "$0")/.."

commands=${1:-500}
phases=" ${PHASES:-commands booking storm} "
storm=${2:-30000}
base_port=${BENCH_PORT:-18190}
database=${BENCH_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/test}
nats=${BENCH_CLUSTER_URL:-nats://127.0.0.1:4222}
token=bench-operator-token-0123456789
schema=bench_cluster_$$
work=$(mktemp -d)
pids=()
nodes=()
cleanup() {
  status=$?
  if ((status != 0)); then
    for log in "$work"/*.log; do [[ -s $log ]] && { echo "== $log" >&2; tail -5 "$log" >&2; }; done
  fi
  for p in "${pids[@]}" "${nodes[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  psql -q "$database" -c "DROP SCHEMA IF EXISTS $schema CASCADE" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT

if [[ ${BENCH_BUILD:-1} != 0 ]]; then
  cargo build --release --quiet -p echarging -p echarging-sim
fi
ulimit -n "$(ulimit -Hn)"
psql -q "$database" -c "CREATE SCHEMA $schema" >/dev/null
case $database in *\?*) sep='&' ;; *) sep='?' ;; esac
url="$database${sep}options=-c%20search_path%3D$schema%2Cpublic"

api() { echo "http://127.0.0.1:$((base_port + $1))"; }
ws() { echo "ws://127.0.0.1:$((base_port + $1))/ocpp"; }
for n in 1 2 3; do
  ECHARGING_LOG=warn taskset -c 0 target/release/echarging --listen "127.0.0.1:$((base_port + n))" \
    --database-url "$url" --api-token "$token" --data-dir "$work/node$n" \
    --cluster-url "$nats" --node-id "node$n" 2>"$work/node$n.log" &
  nodes+=($!)
  for _ in $(seq 1 100); do
    curl -fs "$(api "$n")/readyz" >/dev/null 2>&1 && break
    sleep 0.1
  done
done

# `exec`, so that a simulator started with `&` is the process $! names (and `kill` reaches it).
sim() { exec taskset -c 1 target/release/echarging-sim --api-token "$token" "$@"; }
sim_fg() { (sim "$@"); }
# The node's own count of the chargers it holds (its sessions).
own() {
  curl -fs "$(api "$1")/metrics" 2>/dev/null |
    awk -v n="node$1" '$1 == "echarging_cluster_chargers{node=\"" n "\"}" { print $2 + 0; found = 1 }
      END { if (!found) print 0 }'
}
percentiles() { sort -n | awk '{ v[NR] = $1 } END {
  printf "p50 %.2f ms, p99 %.2f ms (n=%d)", v[int(NR * 0.5 + 0.5)] * 1000, v[int(NR * 0.99 + 0.5)] * 1000, NR }'; }
# BootNotifications the node has answered so far.
boots() {
  curl -fs "$(api "$1")/metrics" 2>/dev/null |
    awk '/^echarging_ocpp_frames_total\{/ && /action="BootNotification"/ && /direction="out"/ { s += $2 }
      END { print s + 0 }'
}
holds() { (($(own "$1") >= $2)); } # NODE COUNT
wait_for() { # SECONDS CONDITION...
  local until=$(($(date +%s) + $1)); shift
  until "$@"; do
    (($(date +%s) < until)) || { echo "timed out waiting for: $*" >&2; return 1; }
    sleep 0.1
  done
}

# ---- 1. Commands: local against cross-node ---------------------------------------------------
if [[ $phases == *" commands "* ]]; then
sim --url "$(ws 1)" --api-url "$(api 1)" --mode idle --chargers 50 --id-prefix CMD- \
  --duration 3600 >/dev/null 2>"$work/cmd.log" &
pids+=($!)
wait_for 60 holds 1 50
sleep 2 # presence reaches the other nodes
for i in $(seq 1 "$commands"); do
  id=$(printf 'CMD-%05d' $((i % 50 + 1)))
  for n in 1 2; do
    curl -s -o /dev/null -w "%{http_code} %{time_total}\n" -X POST \
      -H "Authorization: Bearer $token" -H 'content-type: application/json' \
      -d '{"requestedMessage":"Heartbeat"}' "$(api "$n")/api/v1/chargers/$id/trigger" >>"$work/cmd$n"
  done
done
for n in 1 2; do
  bad=$(awk '$1 != 200' "$work/cmd$n" | wc -l)
  ((bad == 0)) || { echo "node $n: $bad commands not answered 200" >&2; exit 1; }
done
echo "commands, charger on node 1: through node 1 (local) $(awk '{print $2}' "$work/cmd1" | percentiles); through node 2 (NATS) $(awk '{print $2}' "$work/cmd2" | percentiles)"
kill "${pids[@]}" 2>/dev/null || true
wait "${pids[@]}" 2>/dev/null || true
pids=()
fi

# ---- 2. Booking → ReserveNow: booked on the charger's node against another -----------------
if [[ $phases == *" booking "* ]]; then
for n in 1 2; do
  sim_fg --url "$(ws 1)" --api-url "$(api "$n")" --mode charge --chargers 200 --id-prefix "BK$n-" \
    --id-tags "BKTAG$n-" --reserve-share 1 --meter-interval 1 --meter-values 2 --session-pause 1 \
    --duration 20 --json >"$work/book$n.json" 2>"$work/book$n.log" || {
    echo "booking run through node $n failed:" >&2; tail -5 "$work/book$n.log" >&2; exit 1; }
  jq -r --arg n "$n" 'def t: "p50 \(.p50Ms) ms, p99 \(.p99Ms) ms, max \(.maxMs) ms (n=\(.count))";
    "booking → ReserveNow, booked through node \($n) (chargers on node 1): " +
    (.actions.bookingToReserveNow | t) + "; of which the POST: " + (.actions.booking | t)' \
    "$work/book$n.json"
done
fi
[[ $phases == *" storm "* ]] || exit 0

# ---- 3. The reconnect storm -------------------------------------------------------------------
per_sim=$((storm / 3))
started=$(date +%s.%N)
for k in 1 2 3; do
  sim_fg --provision-only --api-url "$(api 1)" --chargers "$per_sim" --id-prefix "S$k-" >/dev/null
done
echo "storm: registered $((per_sim * 3)) chargers in $(echo "$(date +%s.%N) - $started" | bc | xargs printf %.1f) s"
urls="$(ws 1),$(ws 2),$(ws 3)"
for k in 1 2 3; do
  sim --url "$urls" --mode idle --chargers "$per_sim" --id-prefix "S$k-" \
    --source-addrs 127.0.0.1-127.0.0.8 --duration 3600 >/dev/null 2>"$work/storm$k.log" &
  pids+=($!)
done
all_held() { (($(own 1) + $(own 2) + $(own 3) >= per_sim * 3)); }
wait_for 300 all_held
held1=$(own 1)
echo "storm: $((per_sim * 3)) chargers held, $held1 on node 1, $(own 2) on node 2, $(own 3) on node 3"
# Charger n of each simulator starts on node ((n - 1) mod 3) + 1: S1-00001, S1-00004, … on node 1.
# Ten of each simulator's, spread over its range, that node 2 sees on node 1.
step=$(((per_sim / 10) / 3 * 3)); ((step >= 3)) || step=3
sample=()
for k in 1 2 3; do
  for ((n = 1, picked = 0; n <= per_sim && picked < 10; n += step)); do
    id=$(printf 'S%d-%05d' "$k" "$n")
    holder=$(curl -s -H "Authorization: Bearer $token" "$(api 2)/api/v1/chargers/$id" | jq -r .node)
    [[ $holder == node1 ]] && { sample+=("$id"); picked=$((picked + 1)); }
  done
done
((${#sample[@]} >= 20)) || { echo "only ${#sample[@]} sampled chargers are on node 1" >&2; exit 1; }
sampled=${#sample[@]}
sleep 2
boots_before=$(($(boots 2) + $(boots 3)))
killed=$(date +%s.%N)
kill -KILL "${nodes[0]}"
back() { (($(own 2) + $(own 3) >= per_sim * 3)); }
wait_for 300 back
reconnected=$(date +%s.%N)
rebooted() { (($(boots 2) + $(boots 3) - boots_before >= held1)); }
wait_for 300 rebooted
booted=$(date +%s.%N)
answering() {
  local left=()
  for id in "${sample[@]}"; do
    read -r code took < <(curl -s -o /dev/null -w "%{http_code} %{time_total}" -X POST \
      -H "Authorization: Bearer $token" -H 'content-type: application/json' \
      -d '{"requestedMessage":"Heartbeat"}' "$(api 2)/api/v1/chargers/$id/trigger")
    if [[ $code == 200 ]]; then echo "$took" >>"$work/storm-commands"; else left+=("$id:$code"); fi
  done
  sample=("${left[@]%%:*}")
  last_codes=$(printf '%s\n' "${left[@]##*:}" | sort | uniq -c | xargs)
  ((${#sample[@]} == 0))
}
first_try=1
answering_logged() {
  answering && return 0
  ((first_try)) && { echo "storm: first try of the commands: ${last_codes:-}" >&2; first_try=0; }
  return 1
}
wait_for 120 answering_logged
commanded=$(date +%s.%N)
since() { echo "$1 - $killed" | bc | xargs printf %.1f; }
echo "storm: node 1 ($held1 chargers) SIGKILLed; all $((per_sim * 3)) connected again after $(since "$reconnected") s (node 2 $(own 2), node 3 $(own 3)), their BootNotifications answered after $(since "$booted") s; $sampled of its chargers answering commands through node 2 after $(since "$commanded") s, one after another: $(percentiles <"$work/storm-commands")"
