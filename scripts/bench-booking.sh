#!/usr/bin/env bash
# Booking-ledger benchmark: bookings per second with CLIENTS concurrent drivers over CHARGERS
# chargers, then the overlap query, run by the database itself, proving zero double bookings.
#
#   scripts/bench-booking.sh [sqlite|postgres] [CLIENTS=32] [CHARGERS=100] [SECONDS=20]
#
# `sqlite` runs both durability modes one after the other on fresh files and prints them side
# by side: `full` (the default, durable to power loss: one fsync per group commit) and `normal`
# (durable to a process crash). For each: bookings/s, Book p50/p99, the server's CPU use (share
# of its one core), the writer's longest hold and the longest WAL checkpoint (from /metrics).
# PostgreSQL uses $BENCH_DATABASE_URL (default postgres://postgres@127.0.0.1:5432/test) in a
# fresh schema. Server pinned to CPU 0, echarging-sim to CPU 1 (the database shares them).
#
# BIN_DIR=DIR takes the binaries from DIR instead of building them (to compare another build);
# SQLITE_MODES="full normal" picks the SQLite runs (`plain`: no parameter, the build's default);
# SLOW_FSYNC_US=N makes every fsync of the server N µs slower (scripts/slow-fsync.c), as on a
# network or throttled disk.
set -euo pipefail
export PGOPTIONS="--client-min-messages=warning"
cd "$(dirname "$0")/.."

db=${1:-sqlite}
clients=${2:-32}
chargers=${3:-100}
seconds=${4:-20}
port=${BENCH_PORT:-18081}
token=bench-operator-token-0123456789
work=$(mktemp -d)
pg_base=${BENCH_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/test}
schema=bench_$$
server=
cleanup() {
  [[ -n $server ]] && { kill "$server" 2>/dev/null || true; wait "$server" 2>/dev/null || true; }
  if [[ $db == postgres ]]; then psql -q "$pg_base" -c "DROP SCHEMA IF EXISTS $schema CASCADE" || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

if [[ -z ${BIN_DIR:-} ]]; then
  cargo build --release --quiet -p echarging -p echarging-sim
  BIN_DIR=target/release
fi
preload=
if [[ -n ${SLOW_FSYNC_US:-} ]]; then
  mkdir -p target
  cc -O2 -shared -fPIC -o target/slow-fsync.so scripts/slow-fsync.c -ldl
  preload=$PWD/target/slow-fsync.so
fi

# CPU seconds (user + system) the process has used so far.
cpu_seconds() {
  awk -v hz="$(getconf CLK_TCK)" '{ print ($14 + $15) / hz }' "/proc/$1/stat"
}

# A gauge's value from /metrics, or "-".
gauge() {
  curl -fs "http://127.0.0.1:$port/metrics" | awk -v m="$1" '$1 == m { v = $2 } END { print (v == "" ? "-" : v) }'
}

overlaps="SELECT count(*) FROM reservations a JOIN reservations b
  ON a.charger_id = b.charger_id AND a.connector_id = b.connector_id AND a.id < b.id
  WHERE a.status IN ('BOOKED','CHARGING_STARTED') AND b.status IN ('BOOKED','CHARGING_STARTED')"

failed=0
run() { # run LABEL URL [SQLITE_FILE]
  local label=$1 url=$2 file=${3:-}
  ECHARGING_LOG=warn LD_PRELOAD=$preload taskset -c 0 "$BIN_DIR/echarging" \
    --listen "127.0.0.1:$port" --database-url "$url" --api-token "$token" \
    --data-dir "$work/$label" &
  server=$!
  for _ in $(seq 1 100); do
    curl -fs "http://127.0.0.1:$port/readyz" >/dev/null 2>&1 && break
    sleep 0.1
  done
  local cpu0 t0 cpu1 t1
  cpu0=$(cpu_seconds "$server"); t0=$(date +%s.%N)
  taskset -c 1 "$BIN_DIR/echarging-sim" --mode book --api-url "http://127.0.0.1:$port" \
    --api-token "$token" --clients "$clients" --chargers "$chargers" --duration "$seconds" \
    --id-prefix BOOK- --threads 1 --json >"$work/$label.json"
  cpu1=$(cpu_seconds "$server"); t1=$(date +%s.%N)
  local hold ckpt
  hold=$(gauge echarging_ledger_write_batch_max_seconds)
  ckpt=$(gauge echarging_ledger_checkpoint_max_seconds)
  kill "$server"; wait "$server" 2>/dev/null || true; server=
  local total double
  if [[ -n $file ]]; then
    total=$(sqlite3 "$file" "SELECT count(*) FROM reservations")
    double=$(sqlite3 "$file" "$overlaps AND a.start_ms < b.end_ms AND b.start_ms < a.end_ms")
  else
    total=$(psql -qtA "$pg_base" -c "SELECT count(*) FROM $schema.reservations")
    double=$(psql -qtA "$pg_base" -c "SET search_path=$schema,public; ${overlaps/reservations a/$schema.reservations a} AND a.start_at < b.end_at AND b.start_at < a.end_at" | tail -n1)
  fi
  local cpu
  cpu=$(awk -v a="$cpu0" -v b="$cpu1" -v s="$t0" -v e="$t1" 'BEGIN { printf "%.0f", 100 * (b - a) / (e - s) }')
  jq -r --arg l "$label" --arg total "$total" --arg double "$double" --arg cpu "$cpu" \
    --arg hold "$hold" --arg ckpt "$ckpt" '
    "\($l): \(.bookingsPerSecond|round) bookings/s, Book p50 \(.actions.Book.p50Ms) ms p99 \(.actions.Book.p99Ms) ms max \(.actions.Book.maxMs) ms, server CPU \($cpu)% of its core, writer longest hold \($hold) s, longest checkpoint \($ckpt) s; \($total) stored, \($double) double bookings (client check: \(.doubleBookings))"
  ' "$work/$label.json" >&2
  [[ $double == 0 ]] || failed=1
}

echo "== $clients clients, $chargers chargers, ${seconds}s each${SLOW_FSYNC_US:+, fsync +${SLOW_FSYNC_US} µs} ($BIN_DIR)" >&2
case $db in
  sqlite)
    for mode in ${SQLITE_MODES:-full normal}; do
      mkdir -p "$work/$mode"
      case $mode in
        full|normal) query="?synchronous=$mode" ;;
        plain) query= ;; # the server's default, for builds that predate the parameter
        *) echo "SQLITE_MODES takes full, normal and plain" >&2; exit 2 ;;
      esac
      run "$mode" "sqlite://$work/$mode/bench.db$query" "$work/$mode/bench.db"
    done
    ;;
  postgres)
    psql -q "$pg_base" -c "CREATE SCHEMA $schema"
    mkdir -p "$work/postgres"
    run postgres "$pg_base?options=-c%20search_path%3D$schema,public"
    ;;
  *) echo "usage: $0 [sqlite|postgres] [clients] [chargers] [seconds]" >&2; exit 2 ;;
esac
exit "$failed"
