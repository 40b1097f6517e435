#!/usr/bin/env bash
# TLS benchmark (issue "Secure transport"): what TLS costs against plaintext, in one run.
#
#   scripts/bench-tls.sh [IDLE_CHARGERS=10000] [LOAD_CHARGERS=1000] [SECONDS=20]
#
# Makes a throwaway CA and server certificate with openssl, then runs the same three phases
# twice against a server pinned to CPU 0 (load from echarging-sim on CPU 1), once over ws://
# and once over wss:// (TLS 1.3, rustls on ring): IDLE_CHARGERS chargers connect (TLS handshake
# + upgrade + BootNotification: the connect rate is handshakes per second on one core) and are
# held while the server's RSS is read; then LOAD_CHARGERS chargers run a closed Heartbeat loop.
# Prints both JSON reports per phase and a side-by-side summary with the ratios (target: RSS per
# idle TLS charger at most 2x the plaintext figure). BIN_DIR=DIR takes the binaries from DIR.
set -euo pipefail
cd "$(dirname "$0")/.."

idle=${1:-10000}
load=${2:-1000}
seconds=${3:-20}
port=${BENCH_PORT:-18090}
token=bench-operator-token-0123456789
work=$(mktemp -d)
server=
trap 'kill "$server" 2>/dev/null || true; rm -rf "$work"' EXIT

if [[ -z ${BIN_DIR:-} ]]; then
  cargo build --release --quiet -p echarging -p echarging-sim
  BIN_DIR=target/release
fi
ulimit -n "$(ulimit -Hn)"

openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
  -subj "/CN=bench CA" -keyout "$work/ca.key" -out "$work/ca.pem" 2>/dev/null
openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
  -subj "/CN=127.0.0.1" -keyout "$work/server.key" -out "$work/server.csr" 2>/dev/null
printf 'subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\n' >"$work/ext.cnf"
openssl x509 -req -in "$work/server.csr" -CA "$work/ca.pem" -CAkey "$work/ca.key" \
  -CAcreateserial -days 2 -extfile "$work/ext.cnf" -out "$work/server.pem" 2>/dev/null

# run NAME SCHEME [server flags...]: both phases against a fresh server.
run() {
  local name=$1 scheme=$2
  shift 2
  rm -f "$work/bench.db"*
  ECHARGING_LOG=warn taskset -c 0 "$BIN_DIR/echarging" --listen "127.0.0.1:$port" \
    --database-url "sqlite://$work/bench.db" --api-token "$token" "$@" &
  server=$!
  local api="$scheme://127.0.0.1:$port"
  for _ in $(seq 1 100); do
    curl -fs --cacert "$work/ca.pem" "${api/ws/http}/readyz" >/dev/null 2>&1 && break
    sleep 0.1
  done
  # The chargers are registered over the plaintext listener (the simulator's REST client
  # speaks only http); the chargers themselves connect over $scheme.
  local sim=(taskset -c 1 "$BIN_DIR/echarging-sim" --url "$scheme://127.0.0.1:$port/ocpp"
    --api-url "http://127.0.0.1:$((port + 1))" --api-token "$token" --ca-file "$work/ca.pem"
    --source-addrs 127.0.0.1-127.0.0.4 --json)
  echo "== $name: $idle idle chargers (connect, boot, status, hold)" >&2
  "${sim[@]}" --chargers "$idle" --mode idle --duration 5 --id-prefix IDLE- \
    --server-pid "$server" --settle 2 >"$work/$name-idle.json"
  echo "== $name: $load chargers, closed-loop Heartbeat for ${seconds}s" >&2
  "${sim[@]}" --chargers "$load" --mode heartbeat --duration "$seconds" --id-prefix HB- \
    >"$work/$name-hb.json"
  kill "$server" 2>/dev/null || true
  wait "$server" 2>/dev/null || true
}

run plain ws --plain-listen "127.0.0.1:$((port + 1))"
run tls wss --tls-cert "$work/server.pem" --tls-key "$work/server.key" \
  --plain-listen "127.0.0.1:$((port + 1))"

for f in plain-idle plain-hb tls-idle tls-hb; do cat "$work/$f.json"; done
jq -rn --slurpfile pi "$work/plain-idle.json" --slurpfile ph "$work/plain-hb.json" \
  --slurpfile ti "$work/tls-idle.json" --slurpfile th "$work/tls-hb.json" '
  def r2: .*100|round/100;
  "connect+boot: plaintext \($pi[0].connectRate|round)/s, TLS \($ti[0].connectRate|round)/s (\($ti[0].connected)/\($ti[0].chargers) connected)",
  "idle RSS per charger: plaintext \($pi[0].serverRssPerChargerKiB|r2) KiB, TLS \($ti[0].serverRssPerChargerKiB|r2) KiB = \(($ti[0].serverRssPerChargerKiB / $pi[0].serverRssPerChargerKiB)|r2)x (target <= 2)",
  "heartbeat plaintext: \($ph[0].roundTripsPerSecond|round)/s, p50 \($ph[0].actions.Heartbeat.p50Ms) ms, p99 \($ph[0].actions.Heartbeat.p99Ms) ms",
  "heartbeat TLS:       \($th[0].roundTripsPerSecond|round)/s, p50 \($th[0].actions.Heartbeat.p50Ms) ms, p99 \($th[0].actions.Heartbeat.p99Ms) ms = \(($th[0].roundTripsPerSecond / $ph[0].roundTripsPerSecond)|r2)x the plaintext throughput"
' >&2
