#!/usr/bin/env bash
# Past one process's file limit: CHARGERS chargers held by NODES echarging nodes that share one
# PostgreSQL database (the scale-out deployment of design.md), each node driven by its own
# echarging-sim process whose sockets are spread over 127.0.0.1-127.0.0.8.
#
#   scripts/bench-multinode.sh [CHARGERS=30000] [NODES=2] [SECONDS=30]
#
# Why several processes: `ulimit -n` is hard-capped at 20,000 on the benchmark machines (not
# raisable, even as root), and a process needs one descriptor per charger socket; one source
# address also gives only ~28k ephemeral ports. Each node gets CHARGERS / NODES chargers,
# all registered first through node 1's REST API (`echarging-sim --provision-only`, one client:
# six nodes registering at once only queue on the ledger's event counter and time out), then
# connected, booted and held (idle mode: Heartbeats at the interval the boot answer gave) for
# SECONDS. Nodes are pinned to
# CPU 0, simulators to CPU 1. Needs PostgreSQL at BENCH_DATABASE_URL
# (postgres://postgres@127.0.0.1:5432/test); a fresh schema is made and dropped.
# BENCH_CLUSTER_URL=nats://127.0.0.1:4222 makes the nodes one cluster (README "Cluster"), named
# node1…nodeN; e.g. 100,000 chargers on six nodes:
#   BENCH_CLUSTER_URL=nats://127.0.0.1:4222 scripts/bench-multinode.sh 100000 6 60
set -euo pipefail
cd "$(dirname "$0")/.."

chargers=${1:-30000}
nodes=${2:-2}
seconds=${3:-30}
base_port=${BENCH_PORT:-18090}
database=${BENCH_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/test}
token=bench-operator-token-0123456789
schema=bench_multinode_$$
work=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
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

# Every node's ledger pool (+4 for my page) under PostgreSQL's default max_connections of 100.
pool=$((80 / nodes - 4)); ((pool <= 16)) || pool=16; ((pool >= 2)) || pool=2
for n in $(seq 1 "$nodes"); do
  port=$((base_port + n))
  cluster=()
  if [[ -n ${BENCH_CLUSTER_URL:-} ]]; then
    cluster=(--cluster-url "$BENCH_CLUSTER_URL" --node-id "node$n")
  fi
  ECHARGING_LOG=warn taskset -c 0 target/release/echarging --listen "127.0.0.1:$port" \
    --database-url "$url" --database-pool-size "$pool" --api-token "$token" \
    --data-dir "$work/node$n" "${cluster[@]}" &
  pids+=($!)
  for _ in $(seq 1 100); do
    curl -fs "http://127.0.0.1:$port/readyz" >/dev/null 2>&1 && break
    sleep 0.1
  done
done

per_node=$((chargers / nodes))
started=$(date +%s.%N)
for n in $(seq 1 "$nodes"); do
  target/release/echarging-sim --provision-only --api-url "http://127.0.0.1:$((base_port + 1))" \
    --api-token "$token" --chargers "$per_node" --id-prefix "N$n-" >/dev/null
done
echo "== registered $((per_node * nodes)) chargers through node 1 in $(echo "$(date +%s.%N) - $started" | bc | xargs printf %.1f) s" >&2
echo "== $nodes nodes on one PostgreSQL, $per_node chargers each, held ${seconds}s" >&2
sims=()
for n in $(seq 1 "$nodes"); do
  port=$((base_port + n))
  taskset -c 1 target/release/echarging-sim --url "ws://127.0.0.1:$port/ocpp" \
    --source-addrs 127.0.0.1-127.0.0.8 --json --mode idle --chargers "$per_node" \
    --duration "$seconds" --id-prefix "N$n-" --server-pid "${pids[$((n - 1))]}" --settle 2 \
    >"$work/node$n.json" &
  sims+=($!)
done
status=0
for s in "${sims[@]}"; do wait "$s" || status=$?; done

for n in $(seq 1 "$nodes"); do cat "$work/node$n.json"; done
jq -s -r '
  "connected: \(map(.connected) | add) of \(map(.chargers) | add) chargers, \(map(.failed) | add) failed, over \(length) nodes",
  (to_entries[] | "node \(.key + 1): \(.value.connected) connected in \(.value.connectSeconds | .*100|round/100) s, server RSS \(.value.serverRssBeforeKiB) -> \(.value.serverRssAfterKiB) KiB (\(.value.serverRssPerChargerKiB | .*100|round/100) KiB per charger), Heartbeat p99 \(.value.actions.Heartbeat.p99Ms // "n/a") ms")
' "$work"/node*.json >&2
exit "$status"
