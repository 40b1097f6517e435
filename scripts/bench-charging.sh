#!/usr/bin/env bash
# Charging benchmark: CHARGERS chargers each run charging sessions back to back for SECONDS
# against the release server on a fresh SQLite file.
#
#   scripts/bench-charging.sh [CHARGERS=10000] [SECONDS=30]
#
# Each session: Authorize → StartTransaction → METER_VALUES MeterValues every METER_INTERVAL
# seconds → StopTransaction → SESSION_PAUSE seconds → the next driver. The chargers and one
# customer per idTag (SIMTAG-00001, ...) are registered over REST first, so every start is a
# walk-in the server must accept. Server pinned to CPU 0, echarging-sim to CPU 1 (design.md),
# sockets spread over 127.0.0.1-127.0.0.4 (one address has ~28k ephemeral ports; `ulimit -n`
# is raised to the hard limit, 20000 on the benchmark machines).
#
# Environment: BENCH_PORT (18082), METER_INTERVAL (2), METER_VALUES (3), SESSION_PAUSE (1),
# RESERVE_SHARE (0: share of sessions booked over REST first), SETTLE (1: seconds between the
# last boot and the first session), BENCH_BUILD (1; 0 skips
# `cargo build --release`), BIN_DIR (take both binaries from there instead: another build to
# compare), SLOW_FSYNC_US (make every fsync of the server that many µs slower, with
# scripts/slow-fsync.c, as on a network or throttled disk), DATABASE_QUERY (appended to the
# SQLite URL, e.g. `?synchronous=normal`). Prints the JSON report, then a summary with the
# writer's longest hold and the longest WAL checkpoint; exits non-zero when the simulator's
# checks failed.
set -euo pipefail
cd "$(dirname "$0")/.."

chargers=${1:-10000}
seconds=${2:-30}
port=${BENCH_PORT:-18082}
token=bench-operator-token-0123456789
work=$(mktemp -d)
cleanup() {
  kill "$server" 2>/dev/null || true
  wait "$server" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

if [[ -z ${BIN_DIR:-} ]]; then
  if [[ ${BENCH_BUILD:-1} != 0 ]]; then
    cargo build --release --quiet -p echarging -p echarging-sim
  fi
  BIN_DIR=target/release
fi
preload=
if [[ -n ${SLOW_FSYNC_US:-} ]]; then
  mkdir -p target
  cc -O2 -shared -fPIC -o target/slow-fsync.so scripts/slow-fsync.c -ldl
  preload=$PWD/target/slow-fsync.so
fi
ulimit -n "$(ulimit -Hn)"

ECHARGING_LOG=${ECHARGING_LOG:-warn} LD_PRELOAD=$preload taskset -c 0 "$BIN_DIR/echarging" \
  --listen "127.0.0.1:$port" --database-url "sqlite://$work/bench.db${DATABASE_QUERY:-}" \
  --api-token "$token" --data-dir "$work" &
server=$!
for _ in $(seq 1 100); do
  curl -fs "http://127.0.0.1:$port/readyz" >/dev/null 2>&1 && break
  sleep 0.1
done

echo "== $chargers chargers charging for ${seconds}s${SLOW_FSYNC_US:+, fsync +${SLOW_FSYNC_US} µs} ($BIN_DIR)" >&2
status=0
cpu_seconds() { awk -v hz="$(getconf CLK_TCK)" '{ print ($14 + $15) / hz }' "/proc/$1/stat"; }
cpu0=$(cpu_seconds "$server"); t0=$(date +%s.%N)
# The WAL file's largest size during the run: whether checkpoints let it restart or it grows.
( max=0; while kill -0 "$server" 2>/dev/null; do
    s=$(stat -c %s "$work/bench.db-wal" 2>/dev/null || echo 0)
    (( s > max )) && max=$s && echo "$max" >"$work/wal-max"
    sleep 0.5
  done ) &
walwatch=$!
taskset -c 1 "$BIN_DIR/echarging-sim" --url "ws://127.0.0.1:$port/ocpp" \
  --api-url "http://127.0.0.1:$port" --api-token "$token" \
  --source-addrs 127.0.0.1-127.0.0.4 --json --mode charge \
  --chargers "$chargers" --duration "$seconds" --id-prefix CHG- --server-pid "$server" \
  --meter-interval "${METER_INTERVAL:-2}" --meter-values "${METER_VALUES:-3}" \
  --session-pause "${SESSION_PAUSE:-1}" --reserve-share "${RESERVE_SHARE:-0}" \
  --settle "${SETTLE:-1}" \
  >"$work/charge.json" || status=$?
rss_end=$(awk '/^VmRSS:/ {print $2}' "/proc/$server/status")
kill "$walwatch" 2>/dev/null || true
cpu1=$(cpu_seconds "$server"); t1=$(date +%s.%N)
cpu=$(awk -v a="$cpu0" -v b="$cpu1" -v s="$t0" -v e="$t1" 'BEGIN { printf "%.0f", 100 * (b - a) / (e - s) }')
# My-page projection lag (commit → visible), from the server's Prometheus histogram, with
# Prometheus' histogram_quantile interpolation inside the bucket.
curl -fs "http://127.0.0.1:$port/metrics" >"$work/metrics.txt" || true
lag() {
  awk -v q="$1" '
    /^echarging_mypage_lag_seconds_bucket/ {
      match($0, /le="[^"]+"/); le = substr($0, RSTART + 4, RLENGTH - 5)
      n++; bound[n] = (le == "+Inf") ? -1 : le; cum[n] = $NF
    }
    END {
      total = cum[n]; if (total == 0) { print "n/a"; exit }
      rank = q * total; prev = 0; lower = 0
      for (i = 1; i <= n; i++) {
        if (cum[i] >= rank) {
          if (bound[i] < 0) { printf "> %.1f ms", lower * 1000; exit }
          frac = (cum[i] == prev) ? 1 : (rank - prev) / (cum[i] - prev)
          printf "%.1f ms", (lower + (bound[i] - lower) * frac) * 1000; exit
        }
        prev = cum[i]; lower = bound[i]
      }
    }' "$work/metrics.txt"
}
lag_count=$(awk '/^echarging_mypage_lag_seconds_count/ {print $NF}' "$work/metrics.txt")
value() { awk -v m="$1" '$1 == m { v = $2 } END { print (v == "" ? "n/a" : v) }' "$work/metrics.txt"; }

cat "$work/charge.json"
jq -r --arg rss_end "$rss_end" '
  def ms(a): if .actions[a] then "p50 \(.actions[a].p50Ms) ms, p99 \(.actions[a].p99Ms) ms, max \(.actions[a].maxMs) ms (\(.actions[a].count))" else "none" end;
  "chargers: \(.connected)/\(.chargers) connected in \(.connectSeconds | .*100|round/100) s, \(.failed) failed, \(.reconnects) reconnects",
  "sessions: \(.sessions) completed (\(.sessions / .measuredSeconds | .*10|round/10)/s), starts accepted \(.startsAccepted), refused \(.startsRefused), authorize refused \(.authorizeRefused)",
  "StartTransaction: \(ms("StartTransaction"))",
  "StopTransaction:  \(ms("StopTransaction"))",
  "MeterValues:      \(ms("MeterValues"))",
  "Authorize:        \(ms("Authorize"))",
  "bookings: \(.bookingsMade) made, \(.bookingsRefused) refused; ReserveNow accepted \(.reservationsAccepted), starts on a reservation \(.startsWithReservation), double bookings seen \(.doubleBookingsSeen)",
  "CALLERRORs: \(.callErrors), timeouts: \(.timeouts)",
  "server RSS: \(.serverRssBeforeKiB) KiB before connecting, \(.serverRssAfterKiB) KiB connected, \($rss_end) KiB after the sessions"
' "$work/charge.json" >&2
echo "server CPU: ${cpu}% of its core over the whole run (connect, sessions, drain)" >&2
echo "my-page lag over ${lag_count:-0} events: p50 $(lag 0.5), p99 $(lag 0.99)" >&2
echo "ledger writer: longest hold $(value echarging_ledger_write_batch_max_seconds) s; longest WAL checkpoint $(value echarging_ledger_checkpoint_max_seconds) s" >&2
# How the writer's holds and the WAL syncs spread: how many per bucket (le = at most that long).
spread() {
  awk -v m="$1_bucket" 'index($0, m) == 1 {
       match($0, /le="[^"]+"/); le = substr($0, RSTART + 4, RLENGTH - 5)
       printf "%s<=%s: %d", sep, le, $NF - prev; prev = $NF; sep = ", " }
     END { if (sep) print "" }' "$work/metrics.txt"
}
echo "ledger writer rounds by hold: $(spread echarging_ledger_write_batch_seconds)" >&2
echo "ledger WAL syncs (longest $(value echarging_ledger_wal_sync_max_seconds) s): $(spread echarging_ledger_wal_sync_seconds)" >&2
catch_up() { awk -v c="$1" 'index($0, "echarging_ledger_wal_catch_up_total{complete=\"" c "\"}") == 1 { v = $NF } END { print v + 0 }' "$work/metrics.txt"; }
echo "ledger WAL: largest file $(( $(cat "$work/wal-max" 2>/dev/null || echo 0) / 1048576 )) MiB, $(value echarging_ledger_wal_pages) pages at the last checkpoint; writer catch-ups $(catch_up true) complete, $(catch_up false) not" >&2
exit "$status"
