#!/usr/bin/env bash
# Booking-ledger benchmark (issue 3): bookings per second with CLIENTS concurrent drivers over
# CHARGERS chargers, then the overlap query, run by the database itself, proving zero double
# bookings.
#
#   scripts/bench-booking.sh [sqlite|postgres] [CLIENTS=32] [CHARGERS=100] [SECONDS=20]
#
# PostgreSQL uses $BENCH_DATABASE_URL (default postgres://postgres@127.0.0.1:5432/test) in a
# fresh schema. Server pinned to CPU 0, echarging-sim to CPU 1 (the database shares them).
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
cleanup() {
  kill "$server" 2>/dev/null || true
  wait "$server" 2>/dev/null || true
  if [[ $db == postgres ]]; then psql -q "$pg_base" -c "DROP SCHEMA IF EXISTS $schema CASCADE" || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

case $db in
  sqlite) url="sqlite://$work/bench.db" ;;
  postgres)
    psql -q "$pg_base" -c "CREATE SCHEMA $schema"
    url="$pg_base?options=-c%20search_path%3D$schema,public"
    ;;
  *) echo "usage: $0 [sqlite|postgres] [clients] [chargers] [seconds]" >&2; exit 2 ;;
esac

cargo build --release --quiet -p echarging -p echarging-sim
ECHARGING_LOG=warn taskset -c 0 target/release/echarging \
  --listen "127.0.0.1:$port" --database-url "$url" --api-token "$token" &
server=$!
for _ in $(seq 1 100); do
  curl -fs "http://127.0.0.1:$port/readyz" >/dev/null 2>&1 && break
  sleep 0.1
done

taskset -c 1 target/release/echarging-sim --mode book --api-url "http://127.0.0.1:$port" \
  --api-token "$token" --clients "$clients" --chargers "$chargers" --duration "$seconds" \
  --id-prefix BOOK- --threads 1 --json >"$work/book.json"
cat "$work/book.json"

overlaps="SELECT count(*) FROM reservations a JOIN reservations b
  ON a.charger_id = b.charger_id AND a.connector_id = b.connector_id AND a.id < b.id
  WHERE a.status IN ('BOOKED','CHARGING_STARTED') AND b.status IN ('BOOKED','CHARGING_STARTED')"
case $db in
  sqlite)
    total=$(sqlite3 "$work/bench.db" "SELECT count(*) FROM reservations")
    double=$(sqlite3 "$work/bench.db" "$overlaps AND a.start_ms < b.end_ms AND b.start_ms < a.end_ms")
    ;;
  postgres)
    total=$(psql -qtA "$pg_base" -c "SELECT count(*) FROM $schema.reservations")
    double=$(psql -qtA "$pg_base" -c "SET search_path=$schema,public; ${overlaps/reservations a/$schema.reservations a} AND a.start_at < b.end_at AND b.start_at < a.end_at" | tail -n1)
    ;;
esac
jq -r --arg db "$db" --arg total "$total" --arg double "$double" '
  "\($db): \(.clients) clients, \(.chargers) chargers, \(.measuredSeconds|round) s: \(.bookingsPerSecond|round) bookings/s (\(.requestsPerSecond|round) requests/s), \(.bookingsRefused) refused (409)",
  "\($db): Book p50 \(.actions.Book.p50Ms) ms, p99 \(.actions.Book.p99Ms) ms, max \(.actions.Book.maxMs) ms",
  "\($db): \($total) reservations stored; overlap query: \($double) double bookings; client-side check: \(.doubleBookings)"
' "$work/book.json" >&2
[[ $double == 0 ]]
