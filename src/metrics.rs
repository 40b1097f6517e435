//! Prometheus metrics: every metric's name, labels and help text live in this one file, behind
//! named functions (`frame_in`, `charger_connected`, …) the rest of the code calls. The recorder
//! is installed once per process (tests run many apps in one process) and `GET /metrics` renders
//! it. The OCPP hot path uses handles registered up front, so counting a frame costs a binary
//! search and an atomic add, with no allocation and no registry lookup.

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use ::metrics::{
    Counter, Unit, counter, describe_counter, describe_gauge, describe_histogram, gauge, histogram,
};
use axum::extract::{MatchedPath, Request};
use axum::http::{Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

use crate::ocpp::v16::{ErrorCode, OCPP16_ACTIONS};

// Names. Counters carry `_total` themselves: the exporter's recommended naming is off.
const CHARGERS_CONNECTED: &str = "echarging_chargers_connected";
const CLUSTER_CHARGERS: &str = "echarging_cluster_chargers";
const NODE_INFO: &str = "echarging_node_info";
const OCPP_FRAMES: &str = "echarging_ocpp_frames_total";
const OCPP_CALLERRORS: &str = "echarging_ocpp_callerrors_total";
const OCPP_CALLS: &str = "echarging_ocpp_calls_total";
const OCPP_CALL_DURATION: &str = "echarging_ocpp_call_duration_seconds";
const BOOKINGS: &str = "echarging_bookings_total";
const HTTP_REQUESTS: &str = "echarging_http_requests_total";
const HTTP_DURATION: &str = "echarging_http_request_duration_seconds";
const HTTP_SHED: &str = "echarging_http_requests_shed_total";
const BREAKERS_OPEN: &str = "echarging_breakers_open";
const BREAKER_OPENED: &str = "echarging_breaker_opened_total";
const MYPAGE_LAG: &str = "echarging_mypage_lag_seconds";
const MYPAGE_CURSOR: &str = "echarging_mypage_cursor";
const TRANSACTIONS: &str = "echarging_transactions_total";
const LEDGER_BATCH: &str = "echarging_ledger_write_batch_seconds";
const LEDGER_BATCH_MAX: &str = "echarging_ledger_write_batch_max_seconds";
const LEDGER_CHECKPOINT: &str = "echarging_ledger_checkpoint_seconds";
const LEDGER_CHECKPOINT_MAX: &str = "echarging_ledger_checkpoint_max_seconds";
const LEDGER_WAL_PAGES: &str = "echarging_ledger_wal_pages";
const LEDGER_WAL_CAUGHT_UP: &str = "echarging_ledger_wal_catch_up_total";
const LEDGER_WAL_SYNC: &str = "echarging_ledger_wal_sync_seconds";
const LEDGER_WAL_SYNC_MAX: &str = "echarging_ledger_wal_sync_max_seconds";
const IMPLAUSIBLE_METER: &str = "echarging_implausible_meter_readings_total";
const OCPP_DEVIATIONS: &str = "echarging_ocpp_deviations_total";
const TLS_HANDSHAKES: &str = "echarging_tls_handshakes_total";
const AUTH_FAILURES: &str = "echarging_auth_failures_total";
const AUTH_THROTTLED: &str = "echarging_auth_throttled_total";
const SECURITY_REFUSALS: &str = "echarging_security_profile_refusals_total";

/// Histogram buckets in seconds, for both latencies: HTTP answers from sub-millisecond reads up to
/// slow bookings, charger answers up to the default 30 s CALL timeout.
const LATENCY_BUCKETS: [f64; 16] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0,
    30.0,
];

/// How often histogram samples are folded in when nobody scrapes (the exporter's own default).
const UPKEEP_EVERY: Duration = Duration::from_secs(5);

/// `direction` label values: frames and CALLERRORs we received (`in`) or sent (`out`).
const IN: usize = 0;
const OUT: usize = 1;
const DIRECTIONS: [&str; 2] = ["in", "out"];

struct Telemetry {
    handle: PrometheusHandle,
    /// `(action, [in, out])` for every OCPP 1.6 action, sorted by action for binary search.
    frames: Vec<(&'static str, [Counter; 2])>,
    /// Frames that are not OCPP-J at all, and our CALLERROR answers to them.
    invalid_frames: [Counter; 2],
    /// CALLs naming an action OCPP 1.6 does not define, and our answers to them.
    unknown_frames: [Counter; 2],
    /// Per direction, indexed like [`ErrorCode::ALL`].
    callerrors: [[Counter; 10]; 2],
}

static TELEMETRY: OnceLock<Telemetry> = OnceLock::new();

/// Install the process-wide recorder (first call only) and return the handle `/metrics`
/// renders. Every app built in this process shares it.
pub fn install() -> &'static PrometheusHandle {
    &TELEMETRY.get_or_init(init).handle
}

fn init() -> Telemetry {
    let builder = PrometheusBuilder::new()
        .set_buckets(&LATENCY_BUCKETS)
        .expect("the bucket list is not empty");
    let handle = match builder.install_recorder() {
        Ok(handle) => handle,
        Err(e) => {
            // An embedding program installed its own recorder first: our metrics go there, and
            // `/metrics` renders an empty recorder rather than failing.
            tracing::warn!(error = %e, "metrics recorder not installed; /metrics will be empty");
            PrometheusBuilder::new().build_recorder().handle()
        }
    };
    // `install_recorder` leaves upkeep (draining histogram samples) to the caller. A thread, not
    // a task: tests run apps on many short-lived runtimes, and the recorder outlives them all.
    let upkeep = handle.clone();
    let _ = std::thread::Builder::new()
        .name("metrics-upkeep".into())
        .spawn(move || {
            loop {
                std::thread::sleep(UPKEEP_EVERY);
                upkeep.run_upkeep();
            }
        });
    describe();

    let pair = |action: &'static str| DIRECTIONS.map(|d| frame_counter(action, d));
    let mut actions: Vec<&'static str> = OCPP16_ACTIONS.to_vec();
    actions.sort_unstable();
    actions.dedup();
    Telemetry {
        handle,
        frames: actions.into_iter().map(|a| (a, pair(a))).collect(),
        invalid_frames: pair("invalid"),
        unknown_frames: pair("unknown"),
        callerrors: DIRECTIONS.map(|d| {
            ErrorCode::ALL
                .map(|code| counter!(OCPP_CALLERRORS, "code" => code.as_str(), "direction" => d))
        }),
    }
}

fn frame_counter(action: &'static str, direction: &'static str) -> Counter {
    counter!(OCPP_FRAMES, "action" => action, "direction" => direction)
}

fn describe() {
    describe_gauge!(
        BREAKERS_OPEN,
        "Chargers whose circuit breaker is open or half-open (calls failing fast), at scrape time"
    );
    describe_counter!(
        BREAKER_OPENED,
        "Times a charger's circuit breaker opened after consecutive CALL timeouts"
    );
    describe_gauge!(
        CHARGERS_CONNECTED,
        "Chargers with an open OCPP WebSocket session (a replaced connection counts once)"
    );
    describe_gauge!(
        CLUSTER_CHARGERS,
        "Chargers connected per node of the cluster, by node (this node's from its sessions, \
         the others' from the presence bucket), at scrape time"
    );
    describe_gauge!(NODE_INFO, "Always 1; `node` is this process's node_id");
    describe_counter!(
        OCPP_FRAMES,
        "OCPP-J frames by action and direction (in: received, out: sent). An answer carries the \
         action of the CALL it answers; frames that are not OCPP-J count as action=\"invalid\", \
         CALLs of actions OCPP 1.6 does not define as action=\"unknown\""
    );
    describe_counter!(
        OCPP_DEVIATIONS,
        "Off-spec charger input accepted in lenient mode, by action (\"Connect\" for the \
         WebSocket upgrade) and rule (string_too_long, null_optional, unknown_field, …)"
    );
    describe_counter!(
        OCPP_CALLERRORS,
        "CALLERROR frames by error code and direction (in: from chargers, out: ours)"
    );
    describe_counter!(
        OCPP_CALLS,
        "CALLs the central system made to chargers, by action and outcome (result, callerror, \
         timeout, offline, not_booted, disconnected, bad_response, queue_full, breaker_open, \
         encode_error)"
    );
    describe_histogram!(
        OCPP_CALL_DURATION,
        Unit::Seconds,
        "Time from writing a CALL to a charger to reading its answer, by action"
    );
    describe_counter!(
        BOOKINGS,
        "Booking requests by outcome (created, conflict, invalid, forbidden, error)"
    );
    describe_counter!(
        HTTP_REQUESTS,
        "HTTP requests (REST and operations, not OCPP sessions) by route template, method and status"
    );
    describe_histogram!(
        HTTP_DURATION,
        Unit::Seconds,
        "HTTP request latency until the response head, by route template, method and status"
    );
    describe_histogram!(
        MYPAGE_LAG,
        Unit::Seconds,
        "Time from a ledger event's commit to its visibility on my page (the projection's lag)"
    );
    describe_gauge!(
        MYPAGE_CURSOR,
        "The last event-log seq folded into the my-page view"
    );
    describe_counter!(
        TRANSACTIONS,
        "Charger transaction messages by outcome (started, refused, repeated, stopped, \
         stop_repeated, stop_unknown)"
    );
    describe_histogram!(
        LEDGER_BATCH,
        Unit::Seconds,
        "How long the SQLite ledger's writer held one group-commit transaction (BEGIN to COMMIT, \
         the commit's fsync included): every write queued behind it waited that long"
    );
    describe_gauge!(
        LEDGER_BATCH_MAX,
        Unit::Seconds,
        "The longest hold of the SQLite ledger's writer since start"
    );
    describe_histogram!(
        LEDGER_CHECKPOINT,
        Unit::Seconds,
        "SQLite WAL checkpoints, run beside the writer (never inside a commit)"
    );
    describe_gauge!(
        LEDGER_CHECKPOINT_MAX,
        Unit::Seconds,
        "The longest SQLite WAL checkpoint since start"
    );
    describe_histogram!(
        LEDGER_WAL_SYNC,
        Unit::Seconds,
        "fsyncs of the SQLite ledger's WAL, each covering every round committed before it \
         (durability full): writes are answered after theirs"
    );
    describe_gauge!(
        LEDGER_WAL_SYNC_MAX,
        Unit::Seconds,
        "The longest fsync of the SQLite ledger's WAL since start"
    );
    describe_gauge!(
        LEDGER_WAL_PAGES,
        "Pages in the SQLite ledger's write-ahead log at the last checkpoint"
    );
    describe_counter!(
        LEDGER_WAL_CAUGHT_UP,
        "Times the SQLite writer copied what a checkpoint left (complete=true: the WAL restarts)"
    );
    describe_counter!(
        IMPLAUSIBLE_METER,
        "Meter readings from chargers not taken as energy (negative, above the plausible bound, \
         or running backwards), by message (start, meter_values, stop)"
    );
    describe_counter!(
        HTTP_SHED,
        "REST requests answered 503 at once because rest_max_concurrency were already running"
    );
    describe_counter!(
        TLS_HANDSHAKES,
        "TLS handshakes on the listener, by outcome (ok, failed: a bad client, a timeout)"
    );
    describe_counter!(
        AUTH_FAILURES,
        "Failed logins, by kind (charger: HTTP Basic at the OCPP upgrade; token: a REST bearer \
         token)"
    );
    describe_counter!(
        AUTH_THROTTLED,
        "Login attempts answered 429 by the brute-force throttle, by kind (charger, token)"
    );
    describe_counter!(
        SECURITY_REFUSALS,
        "Chargers refused at the upgrade for arriving below their security profile, by reason"
    );
}

/// The cluster's gauges, sampled before a render: this node's name and each node's chargers
/// (`per_node`). A node no longer listed is set to 0 rather than left at its last count.
pub fn cluster_sampled(node: &str, per_node: &[(String, usize)]) {
    static REPORTED: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());
    let mut reported = REPORTED.lock().unwrap_or_else(|p| p.into_inner());
    gauge!(NODE_INFO, "node" => node.to_string()).set(1.0);
    for old in reported.iter() {
        if !per_node.iter().any(|(n, _)| n == old) {
            gauge!(CLUSTER_CHARGERS, "node" => old.clone()).set(0.0);
        }
    }
    reported.clear();
    for (n, count) in per_node {
        gauge!(CLUSTER_CHARGERS, "node" => n.clone()).set(*count as f64);
        reported.push(n.clone());
    }
}

/// `GET /metrics`: the Prometheus text exposition of this process, with the gauges sampled from
/// the caller's state: `connected` chargers (a replaced connection counts once) and breakers not
/// closed. Sampled at scrape time, not counted up and down, so it cannot drift; set and rendered
/// under one lock, so two servers in one process (the tests) each read their own.
pub async fn render(connected: usize, breakers_open: usize) -> Response {
    static SAMPLING: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let body = {
        let _one_at_a_time = SAMPLING.lock().unwrap_or_else(|p| p.into_inner());
        gauge!(CHARGERS_CONNECTED).set(connected as f64);
        gauge!(BREAKERS_OPEN).set(breakers_open as f64);
        install().render()
    };
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        body,
    )
        .into_response()
}

// ---- Charger sessions ----------------------------------------------------------------------

fn frame(action: &str, directions: &[usize]) {
    let Some(t) = TELEMETRY.get() else { return };
    let pair = match t.frames.binary_search_by(|(a, _)| (*a).cmp(action)) {
        Ok(i) => &t.frames[i].1,
        Err(_) => &t.unknown_frames,
    };
    for &direction in directions {
        pair[direction].increment(1);
    }
}

/// A charger's CALL of `action` received and answered: one lookup for both counts, since this
/// is the per-frame hot path.
pub fn frame_answered(action: &str) {
    frame(action, &[IN, OUT]);
}

/// A CALL received, or an answer received to our CALL of `action`.
pub fn frame_in(action: &str) {
    frame(action, &[IN]);
}

/// A CALL sent, or our answer sent to a charger's CALL of `action`.
pub fn frame_out(action: &str) {
    frame(action, &[OUT]);
}

/// A received message that is not an OCPP-J frame (or a binary one).
pub fn invalid_frame_in() {
    if let Some(t) = TELEMETRY.get() {
        t.invalid_frames[IN].increment(1);
    }
}

/// Our CALLERROR answer to a message that is not an OCPP-J frame.
pub fn invalid_frame_out() {
    if let Some(t) = TELEMETRY.get() {
        t.invalid_frames[OUT].increment(1);
    }
}

fn callerror(code: ErrorCode, direction: usize) {
    if let Some(t) = TELEMETRY.get()
        && let Some(i) = ErrorCode::ALL.iter().position(|c| *c == code)
    {
        t.callerrors[direction][i].increment(1);
    }
}

/// Lenient mode accepted a deviation from the schema in a charger's `action` frame.
pub fn ocpp_deviation(action: &'static str, rule: &'static str) {
    counter!(OCPP_DEVIATIONS, "action" => action, "rule" => rule).increment(1);
}

/// We answered a charger with a CALLERROR.
pub fn callerror_sent(code: ErrorCode) {
    callerror(code, OUT);
}

/// A charger answered one of our CALLs with a CALLERROR.
pub fn callerror_received(code: ErrorCode) {
    callerror(code, IN);
}

/// The answer (result or CALLERROR) to our CALL of `action`, written at `sent_at`, arrived.
pub fn call_answered(action: &'static str, sent_at: Instant) {
    histogram!(OCPP_CALL_DURATION, "action" => action).record(sent_at.elapsed().as_secs_f64());
}

/// How one of our CALLs ended, as the caller of `Sessions::call` saw it: `outcome` is
/// `result` or the failure's label (`CallFailure::label`).
pub fn call_finished(action: &'static str, outcome: &'static str) {
    counter!(OCPP_CALLS, "action" => action, "outcome" => outcome).increment(1);
}

// ---- Circuit breaker (registry.rs) ---------------------------------------------------------

/// A charger's breaker went from closed or half-open to open.
pub fn breaker_opened() {
    counter!(BREAKER_OPENED).increment(1);
}

// ---- Bookings ------------------------------------------------------------------------------

/// A `POST /api/v1/reservations` answered with `status`.
pub fn booking(status: StatusCode) {
    let outcome = match status.as_u16() {
        200..=299 => "created",
        409 => "conflict",
        400 | 413 | 415 | 422 => "invalid",
        401 | 403 => "forbidden",
        _ => "error",
    };
    counter!(BOOKINGS, "outcome" => outcome).increment(1);
}

// ---- HTTP ----------------------------------------------------------------------------------

/// Middleware over the REST and operations routes: counts and times every request by its route
/// template (never the concrete path, which would make one series per reservation id).
pub async fn track_http(request: Request, next: Next) -> Response {
    let started = Instant::now();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let method = method_label(request.method());
    let response = next.run(request).await;
    let status = response.status().as_str().to_owned();
    let elapsed = started.elapsed().as_secs_f64();
    histogram!(HTTP_DURATION, "route" => route.clone(), "method" => method, "status" => status.clone())
        .record(elapsed);
    counter!(HTTP_REQUESTS, "route" => route, "method" => method, "status" => status).increment(1);
    response
}

/// Known methods by name, anything else as `other`, so a client cannot mint label values.
fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}

/// A REST request was answered 503 by the concurrency limit.
pub fn rest_shed() {
    counter!(HTTP_SHED).increment(1);
}

/// One event became visible on my page `seconds` after its commit.
pub fn mypage_lag(seconds: f64) {
    histogram!(MYPAGE_LAG).record(seconds);
}

pub fn mypage_cursor(seq: i64) {
    gauge!(MYPAGE_CURSOR).set(seq as f64);
}

/// A StartTransaction or StopTransaction, by what the ledger made of it.
pub fn transaction(outcome: &'static str) {
    counter!(TRANSACTIONS, "outcome" => outcome).increment(1);
}

// ---- The SQLite ledger's write path ---------------------------------------------------------

/// The largest value seen, as f64 bits (positive floats order like their bits).
fn raise(max: &std::sync::atomic::AtomicU64, seconds: f64) -> f64 {
    let bits = max
        .fetch_max(seconds.to_bits(), std::sync::atomic::Ordering::Relaxed)
        .max(seconds.to_bits());
    f64::from_bits(bits)
}

/// The ledger's writer held one group-commit transaction for `held`.
pub fn ledger_batch(held: Duration) {
    static MAX: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let seconds = held.as_secs_f64();
    histogram!(LEDGER_BATCH).record(seconds);
    gauge!(LEDGER_BATCH_MAX).set(raise(&MAX, seconds));
}

/// A WAL checkpoint took `took`; the log held `wal_pages` pages.
pub fn ledger_checkpoint(took: Duration, wal_pages: u64) {
    static MAX: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let seconds = took.as_secs_f64();
    histogram!(LEDGER_CHECKPOINT).record(seconds);
    gauge!(LEDGER_CHECKPOINT_MAX).set(raise(&MAX, seconds));
    gauge!(LEDGER_WAL_PAGES).set(wal_pages as f64);
}

/// The writer copied what a checkpoint left; `complete`: all of it, so the WAL restarts.
pub fn ledger_wal_caught_up(complete: bool) {
    counter!(LEDGER_WAL_CAUGHT_UP, "complete" => if complete { "true" } else { "false" })
        .increment(1);
}

/// An fsync of the ledger's WAL took `took`.
pub fn ledger_wal_sync(took: Duration) {
    static MAX: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let seconds = took.as_secs_f64();
    histogram!(LEDGER_WAL_SYNC).record(seconds);
    gauge!(LEDGER_WAL_SYNC_MAX).set(raise(&MAX, seconds));
}

/// A meter reading the ledger did not take as energy; `message` is where it came from.
pub fn implausible_meter(message: &'static str) {
    counter!(IMPLAUSIBLE_METER, "message" => message).increment(1);
}

// ---- Transport security ----------------------------------------------------------------------

/// A TLS handshake on the listener finished (`ok`) or failed.
pub fn tls_handshake(ok: bool) {
    counter!(TLS_HANDSHAKES, "outcome" => if ok { "ok" } else { "failed" }).increment(1);
}

/// A login failed; `kind` is `charger` or `token`.
pub fn auth_failure(kind: &'static str) {
    counter!(AUTH_FAILURES, "kind" => kind).increment(1);
}

/// A login attempt was answered 429 by the throttle.
pub fn auth_throttled(kind: &'static str) {
    counter!(AUTH_THROTTLED, "kind" => kind).increment(1);
}

/// A charger was refused for arriving below its security profile.
pub fn security_refusal(reason: &'static str) {
    counter!(SECURITY_REFUSALS, "reason" => reason).increment(1);
}
