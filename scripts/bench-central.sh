#!/usr/bin/env bash
# Central-core benchmark (issue 2): server RSS per idle charger and Heartbeat round trips/s.
#
#   scripts/bench-central.sh [IDLE_CHARGERS=10000] [LOAD_CHARGERS=1000] [SECONDS=20]
#
# Builds both binaries in release, starts the server pinned to CPU 0 on a fresh SQLite file,
# and drives it from echarging-sim pinned to CPU 1 (design.md: "server pinned to one core, load
# on the other"). Phase 1 connects, boots and holds IDLE_CHARGERS chargers and reads the server's
# RSS before and after. Phase 2 runs LOAD_CHARGERS chargers in a closed Heartbeat loop. Prints
# the two JSON reports and a summary; exits non-zero when a run failed its checks. Phase 3 runs
# the same Heartbeat load against a bare tokio-tungstenite server that answers every CALL with
# no logic (simulator/examples/bare_central.rs), pinned the same way, and prints the fairness
# ratios: echarging's p99 over the bare server's (target ≤ 1.5) and throughput (target ≥ 1).
# BIN_DIR=DIR takes echarging and echarging-sim from DIR instead of building them.
set -euo pipefail
cd "$(dirname "$0")/.."

idle=${1:-10000}
load=${2:-1000}
seconds=${3:-20}
port=${BENCH_PORT:-18080}
token=bench-operator-token-0123456789
work=$(mktemp -d)
trap 'kill "$server" 2>/dev/null || true; rm -rf "$work"' EXIT

if [[ -z ${BIN_DIR:-} ]]; then
  cargo build --release --quiet -p echarging -p echarging-sim
  BIN_DIR=target/release
fi
cargo build --release --quiet -p echarging-sim --example bare_central
bare_bin=target/release/examples/bare_central
ulimit -n "$(ulimit -Hn)"

ECHARGING_LOG=warn taskset -c 0 "$BIN_DIR/echarging" \
  --listen "127.0.0.1:$port" --database-url "sqlite://$work/bench.db" --api-token "$token" &
server=$!
for _ in $(seq 1 100); do
  curl -fs "http://127.0.0.1:$port/readyz" >/dev/null 2>&1 && break
  sleep 0.1
done

sim() {
  taskset -c 1 "$BIN_DIR/echarging-sim" --url "ws://127.0.0.1:$port/ocpp" \
    --api-url "http://127.0.0.1:$port" --api-token "$token" \
    --source-addrs 127.0.0.1-127.0.0.4 --json "$@"
}

echo "== phase 1: $idle idle chargers (connect, boot, status, hold)" >&2
sim --chargers "$idle" --mode idle --duration 5 --id-prefix IDLE- --server-pid "$server" \
  --settle 2 >"$work/idle.json"
echo "== phase 2: $load chargers, closed-loop Heartbeat for ${seconds}s" >&2
sim --chargers "$load" --mode heartbeat --duration "$seconds" --id-prefix HB- >"$work/hb.json"

kill "$server" 2>/dev/null || true
wait "$server" 2>/dev/null || true

echo "== phase 3: the same load against the bare tokio-tungstenite server" >&2
bare_port=$((port + 1))
taskset -c 0 "$bare_bin" "127.0.0.1:$bare_port" 1 2>/dev/null &
bare=$!
trap 'kill "$server" "$bare" 2>/dev/null || true; rm -rf "$work"' EXIT
sleep 0.5
taskset -c 1 "$BIN_DIR/echarging-sim" --url "ws://127.0.0.1:$bare_port/ocpp" \
  --source-addrs 127.0.0.1-127.0.0.4 --json \
  --chargers "$load" --mode heartbeat --duration "$seconds" --id-prefix HB- >"$work/bare.json"
kill "$bare" 2>/dev/null || true

cat "$work/idle.json"
cat "$work/hb.json"
cat "$work/bare.json"
jq -r --slurpfile hb "$work/hb.json" --slurpfile bare "$work/bare.json" '
  "idle: \(.connected)/\(.chargers) chargers connected+booted in \(.connectSeconds | .*100|round/100) s (\(.connectRate|round)/s)",
  "idle: server RSS \(.serverRssBeforeKiB) KiB -> \(.serverRssAfterKiB) KiB = \(.serverRssPerChargerKiB | .*100|round/100) KiB per charger",
  "heartbeat: \($hb[0].connected) chargers, \($hb[0].roundTripsPerSecond|round) round trips/s, p50 \($hb[0].actions.Heartbeat.p50Ms) ms, p99 \($hb[0].actions.Heartbeat.p99Ms) ms, max \($hb[0].actions.Heartbeat.maxMs) ms",
  "bare server: \($bare[0].connected) chargers, \($bare[0].roundTripsPerSecond|round) round trips/s, p50 \($bare[0].actions.Heartbeat.p50Ms) ms, p99 \($bare[0].actions.Heartbeat.p99Ms) ms, max \($bare[0].actions.Heartbeat.maxMs) ms",
  "fairness: p99 \(($hb[0].actions.Heartbeat.p99Ms / $bare[0].actions.Heartbeat.p99Ms) | .*100|round/100)x the bare server (target <= 1.5), throughput \(($hb[0].roundTripsPerSecond / $bare[0].roundTripsPerSecond) | .*100|round/100)x (target >= 1)"
' "$work/idle.json" >&2
