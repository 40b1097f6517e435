#!/usr/bin/env bash
# Field-compatibility benchmark: CHARGERS simulated chargers with the field's habits
# (`echarging-sim --quirks QUIRKS`, default `all`) run charging sessions for SECONDS, once
# against a lenient server and once against a strict one, each on a fresh SQLite file.
#
#   scripts/bench-quirks.sh [CHARGERS=1000] [SECONDS=30] [QUIRKS=all]
#
# Lenient mode must answer every frame (0 CALLERRORs) and count the deviations; strict mode
# must refuse what the schemas refuse (the CALLERRORs, per action and code). Prints one line per
# mode: connected, sessions, CALLERRORs by action, the deviations the server counted by rule,
# and the p99 of StartTransaction. Environment: BENCH_PORT (18083), BENCH_BUILD (1; 0 skips
# `cargo build --release`), BIN_DIR (take both binaries from there). Server on CPU 0, the
# simulator on CPU 1.
set -euo pipefail
cd "$(dirname "$0")/.."

chargers=${1:-1000}
seconds=${2:-30}
quirks=${3:-all}
port=${BENCH_PORT:-18083}
token=bench-operator-token-0123456789
work=$(mktemp -d)
server=
cleanup() {
  [[ -n $server ]] && { kill "$server" 2>/dev/null || true; wait "$server" 2>/dev/null || true; }
  rm -rf "$work"
}
trap cleanup EXIT

if [[ -z ${BIN_DIR:-} ]]; then
  if [[ ${BENCH_BUILD:-1} != 0 ]]; then
    cargo build --release --quiet -p echarging -p echarging-sim
  fi
  BIN_DIR=target/release
fi
ulimit -n "$(ulimit -Hn)"

for mode in lenient strict; do
  rm -rf "$work/$mode" && mkdir -p "$work/$mode"
  ECHARGING_LOG=error taskset -c 0 "$BIN_DIR/echarging" \
    --listen "127.0.0.1:$port" --database-url "sqlite://$work/$mode/bench.db" \
    --api-token "$token" --data-dir "$work/$mode" --ocpp-strictness "$mode" &
  server=$!
  for _ in $(seq 1 100); do
    curl -fs "http://127.0.0.1:$port/readyz" >/dev/null 2>&1 && break
    sleep 0.1
  done
  # The simulator's own checks fail in strict mode by design (refused Boots never charge).
  taskset -c 1 "$BIN_DIR/echarging-sim" --url "ws://127.0.0.1:$port/ocpp" \
    --api-url "http://127.0.0.1:$port" --api-token "$token" \
    --source-addrs 127.0.0.1-127.0.0.2 --json --mode charge --quirks "$quirks" \
    --chargers "$chargers" --duration "$seconds" --id-prefix QRK- \
    --meter-interval 2 --meter-values 3 --session-pause 1 \
    >"$work/$mode/report.json" || true
  curl -fs "http://127.0.0.1:$port/metrics" >"$work/$mode/metrics.txt" || true
  kill "$server"; wait "$server" 2>/dev/null || true; server=
  python3 - "$mode" "$work/$mode/report.json" "$work/$mode/metrics.txt" <<'EOF'
import json, re, sys
mode, report, metrics = sys.argv[1:]
r = json.load(open(report))
by_action = r.get("callErrorsByAction", {})
deviations = {}
for line in open(metrics):
    m = re.match(r'echarging_ocpp_deviations_total\{action="([^"]+)",rule="([^"]+)"\} (\S+)', line)
    if m:
        deviations[m.group(2)] = deviations.get(m.group(2), 0) + int(float(m.group(3)))
start = r.get("actions", {}).get("StartTransaction", {})
print(f"{mode}: connected {r.get('connected')}, sessions {r.get('sessions')}, "
      f"CALLERRORs {r.get('callErrors')} {json.dumps(by_action, sort_keys=True)}, "
      f"deviations counted {sum(deviations.values())} {json.dumps(deviations, sort_keys=True)}, "
      f"StartTransaction p99 {start.get('p99Ms')} ms")
EOF
done
