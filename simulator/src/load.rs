//! The load run: thousands of virtual chargers from one process, one lightweight task each,
//! driven through the same `Charger` the end-to-end tests use. Phases: provision (optional) →
//! connect + BootNotification + StatusNotification per connector (bounded handshakes in flight,
//! optional ramp) → settle and sample the server's RSS → the measured phase (idle hold or
//! Heartbeat load) → `Report`. Tasks report setup progress through an event channel and learn
//! when to measure through a watch; latencies go through `latency`, never a lock per frame.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use tokio::sync::{Semaphore, mpsc, watch};
use tokio::task::JoinSet;
use tokio::time::{Instant, Interval, MissedTickBehavior};

use crate::charger::{CallOutcome, Charger, ClientError, Incoming};
use crate::connect::ChargerConfig;
use crate::latency::{Action, LatencyBatch, LatencyBook};
use crate::messages;
use crate::provision::{self, ProvisionError};
use crate::report::{ActionStats, Report};
use crate::server_rss;

/// What each charger does during the measured phase.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Mode {
    /// Hold the socket: answer pings and server CALLs, send Heartbeat at the interval the
    /// BootNotification answer asked for.
    Idle,
    /// Send Heartbeats: closed loop (next one right after the answer) when `rate` is `None`,
    /// else open loop at `rate` per second per charger, latency measured from the scheduled
    /// send time so a slow server cannot hide its queueing delay.
    Heartbeat { rate: Option<f64> },
}

impl Mode {
    pub fn name(self) -> &'static str {
        match self {
            Mode::Idle => "idle",
            Mode::Heartbeat { .. } => "heartbeat",
        }
    }
}

/// Where to register the chargers before connecting (echarging's REST API).
#[derive(Debug, Clone)]
pub struct Provisioning {
    pub api_url: String,
    pub token: String,
}

#[derive(Debug, Clone)]
pub struct LoadConfig {
    /// OCPP endpoint without the charge box id, e.g. `ws://127.0.0.1:8080/ocpp`.
    pub url: String,
    pub chargers: usize,
    /// Ids are `{id_prefix}{n:05}` for n = first_index, first_index + 1, ...
    pub id_prefix: String,
    pub first_index: usize,
    pub connectors: u32,
    pub password: Option<String>,
    /// Local addresses to connect from, assigned round-robin; empty = the kernel's choice.
    pub source_addrs: Vec<IpAddr>,
    /// Connect + boot attempts in flight at once.
    pub connect_concurrency: usize,
    /// Spread connection starts evenly over this long (zero = all at once).
    pub ramp: Duration,
    pub duration: Duration,
    pub mode: Mode,
    pub connect_timeout: Duration,
    pub call_timeout: Duration,
    /// Sample this process's RSS before connecting and after everyone is booted.
    pub server_pid: Option<u32>,
    /// Wait this long after the last boot before sampling the RSS.
    pub settle: Duration,
    pub provision: Option<Provisioning>,
    /// Print a progress line to stderr every second.
    pub progress: bool,
}

impl LoadConfig {
    pub fn new(url: impl Into<String>, chargers: usize, mode: Mode) -> LoadConfig {
        LoadConfig {
            url: url.into(),
            chargers,
            id_prefix: "SIM-".to_owned(),
            first_index: 1,
            connectors: 2,
            password: None,
            source_addrs: Vec::new(),
            connect_concurrency: 500,
            ramp: Duration::ZERO,
            duration: Duration::from_secs(10),
            mode,
            connect_timeout: Duration::from_secs(10),
            call_timeout: Duration::from_secs(10),
            server_pid: None,
            settle: Duration::from_secs(1),
            provision: None,
            progress: false,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("invalid load configuration: {0}")]
    Config(String),
    #[error("provisioning the chargers failed: {0}")]
    Provision(#[from] ProvisionError),
    #[error("reading the server's memory failed: {0}")]
    ServerRss(std::io::Error),
}

/// The charge box ids a run uses: `SIM-00001`, `SIM-00002`, ..., `SIM-100000`. Padding is
/// fixed at five digits, not sized to the run, so a charger keeps its id (and its
/// registration) whatever `--chargers` says.
pub fn charger_ids(prefix: &str, first_index: usize, count: usize) -> Vec<String> {
    (first_index..first_index + count)
        .map(|n| format!("{prefix}{n:05}"))
        .collect()
}

/// Runs the whole load test and reports; charger failures are in the report, not errors.
pub async fn run(cfg: LoadConfig) -> Result<Report, LoadError> {
    validate(&cfg)?;
    let ids = charger_ids(&cfg.id_prefix, cfg.first_index, cfg.chargers);
    if let Some(p) = &cfg.provision {
        provision::ensure_chargers(
            &p.api_url,
            &p.token,
            &ids,
            cfg.connectors,
            cfg.password.as_deref(),
        )
        .await?;
    }
    let rss_before = match cfg.server_pid {
        Some(pid) => Some(server_rss::read_rss_kib(pid).map_err(LoadError::ServerRss)?),
        None => None,
    };

    let n = ids.len();
    let (events_tx, mut events) = mpsc::unbounded_channel();
    let (phase_tx, phase_rx) = watch::channel(None);
    let book = LatencyBook::new();
    let connect_started = Instant::now();
    let ctx = Arc::new(Context {
        book: book.clone(),
        connect_slots: Semaphore::new(cfg.connect_concurrency),
        events: events_tx,
        connect_started,
        cfg,
    });
    let progress = ctx.cfg.progress;
    let mut tasks = JoinSet::new();
    for (index, id) in ids.into_iter().enumerate() {
        tasks.spawn(charger_task(index, id, ctx.clone(), phase_rx.clone()));
    }
    drop(phase_rx);

    // Setup: until every charger is either ready (booted + statuses sent) or failed.
    let (mut booted, mut ready, mut failed) = (0usize, 0usize, 0usize);
    let mut last_boot = None;
    let mut ticker = progress_ticker();
    while ready + failed < n {
        tokio::select! {
            event = events.recv() => match event {
                Some(Event::Booted(at)) => {
                    booted += 1;
                    last_boot = Some(at);
                }
                Some(Event::Ready) => ready += 1,
                Some(Event::Failed) => failed += 1,
                None => break,
            },
            _ = ticker.tick(), if progress => eprintln!(
                "[{:>6.1}s] connecting: {booted}/{n} booted, {ready} ready, {failed} failed",
                connect_started.elapsed().as_secs_f64()
            ),
        }
    }
    let connect_seconds = last_boot.map_or(0.0, |at: Instant| {
        at.duration_since(connect_started).as_secs_f64()
    });

    let mut rss_after = None;
    if let Some(pid) = ctx.cfg.server_pid {
        tokio::time::sleep(ctx.cfg.settle).await;
        rss_after = Some(server_rss::read_rss_kib(pid).map_err(LoadError::ServerRss)?);
    }
    let held_at_rss = ready;

    let start = Instant::now();
    let measured = Measured {
        start,
        deadline: start + ctx.cfg.duration,
    };
    // No receiver left only when every charger already failed.
    let _ = phase_tx.send(Some(measured));
    if progress {
        eprintln!(
            "[{:>6.1}s] {ready} chargers ready, measuring {} for {:.1}s",
            connect_started.elapsed().as_secs_f64(),
            ctx.cfg.mode.name(),
            ctx.cfg.duration.as_secs_f64()
        );
    }

    // Measured phase: collect each charger's outcome as its task ends. The hard stop only
    // fires if something ignored its own timeouts.
    let hard_stop = measured.deadline + ctx.cfg.call_timeout + Duration::from_secs(5);
    let mut totals = Totals::default();
    loop {
        tokio::select! {
            joined = tasks.join_next() => match joined {
                None => break,
                Some(Ok(outcome)) => totals.add(outcome),
                Some(Err(_)) => totals.fail("charger task panicked", 1),
            },
            _ = ticker.tick(), if progress => eprintln!(
                "[{:>6.1}s] measuring: {} heartbeats, {} chargers still running",
                connect_started.elapsed().as_secs_f64(),
                book.heartbeats(),
                tasks.len()
            ),
            _ = tokio::time::sleep_until(hard_stop) => {
                totals.fail("did not finish after the measured phase", tasks.len());
                tasks.abort_all();
                break;
            }
        }
    }

    let measured_seconds = totals
        .measured_end
        .map_or(ctx.cfg.duration, |end| end.saturating_duration_since(start))
        .as_secs_f64();
    let actions: BTreeMap<String, ActionStats> = book
        .snapshot()
        .iter()
        .filter(|(_, histogram)| !histogram.is_empty())
        .map(|(action, histogram)| {
            (
                action.name().to_owned(),
                ActionStats::from_micros(histogram),
            )
        })
        .collect();
    let round_trips = actions.get(Action::Heartbeat.name()).map_or(0, |s| s.count);
    let server_rss_per_charger_kib = match (rss_before, rss_after) {
        (Some(before), Some(after)) if held_at_rss > 0 => {
            Some((after as f64 - before as f64) / held_at_rss as f64)
        }
        _ => None,
    };
    Ok(Report {
        mode: ctx.cfg.mode.name().to_owned(),
        chargers: n,
        connected: totals.held,
        failed: n - totals.held,
        connect_seconds,
        connect_rate: per_second(booted as u64, connect_seconds),
        measured_seconds,
        frames_sent: totals.frames_sent,
        frames_received: totals.frames_received,
        frames_per_second: per_second(
            totals.frames_sent + totals.frames_received,
            measured_seconds,
        ),
        round_trips,
        round_trips_per_second: per_second(round_trips, measured_seconds),
        call_errors: totals.call_errors,
        failures: totals.failures,
        server_calls: totals.server_calls,
        actions,
        server_rss_before_kib: rss_before,
        server_rss_after_kib: rss_after,
        server_rss_per_charger_kib,
    })
}

fn validate(cfg: &LoadConfig) -> Result<(), LoadError> {
    let invalid = |what: &str| Err(LoadError::Config(what.to_owned()));
    if cfg.chargers == 0 {
        return invalid("at least one charger is needed");
    }
    if cfg.connect_concurrency == 0 {
        return invalid("connect concurrency must be at least 1");
    }
    if let Mode::Heartbeat { rate: Some(rate) } = cfg.mode
        && !(rate.is_finite() && rate > 0.0)
    {
        return invalid("the heartbeat rate must be a positive number");
    }
    Ok(())
}

fn per_second(count: u64, seconds: f64) -> f64 {
    if seconds > 0.0 {
        count as f64 / seconds
    } else {
        0.0
    }
}

fn progress_ticker() -> Interval {
    let second = Duration::from_secs(1);
    tokio::time::interval_at(Instant::now() + second, second)
}

/// What every charger task shares; read-only apart from the semaphore and the channel.
struct Context {
    cfg: LoadConfig,
    book: Arc<LatencyBook>,
    connect_slots: Semaphore,
    events: mpsc::UnboundedSender<Event>,
    connect_started: Instant,
}

/// Setup progress, one task → the conductor.
enum Event {
    Booted(Instant),
    Ready,
    Failed,
}

/// The measured phase, announced to all tasks at once.
#[derive(Debug, Clone, Copy)]
struct Measured {
    start: Instant,
    deadline: Instant,
}

/// Sends `Failed` if the task ends before it was ready, however it ends (error or panic),
/// so the conductor never waits for a charger that is gone.
struct SetupGuard {
    events: mpsc::UnboundedSender<Event>,
    ready: bool,
}

impl SetupGuard {
    fn ready(&mut self) {
        self.ready = true;
        let _ = self.events.send(Event::Ready);
    }
}

impl Drop for SetupGuard {
    fn drop(&mut self) {
        if !self.ready {
            let _ = self.events.send(Event::Failed);
        }
    }
}

/// One charger's contribution to the report.
#[derive(Default)]
struct Outcome {
    held: bool,
    failure: Option<String>,
    frames_sent: u64,
    frames_received: u64,
    measured_end: Option<Instant>,
    call_errors: HashMap<String, u64>,
    server_calls: HashMap<String, u64>,
}

#[derive(Default)]
struct Totals {
    held: usize,
    frames_sent: u64,
    frames_received: u64,
    measured_end: Option<Instant>,
    call_errors: BTreeMap<String, u64>,
    failures: BTreeMap<String, u64>,
    server_calls: BTreeMap<String, u64>,
}

impl Totals {
    fn add(&mut self, outcome: Outcome) {
        self.held += usize::from(outcome.held);
        if let Some(reason) = outcome.failure {
            self.fail(&reason, 1);
        }
        self.frames_sent += outcome.frames_sent;
        self.frames_received += outcome.frames_received;
        self.measured_end = self.measured_end.max(outcome.measured_end);
        for (code, count) in outcome.call_errors {
            *self.call_errors.entry(code).or_default() += count;
        }
        for (action, count) in outcome.server_calls {
            *self.server_calls.entry(action).or_default() += count;
        }
    }

    fn fail(&mut self, reason: &str, count: usize) {
        if count > 0 {
            *self.failures.entry(reason.to_owned()).or_default() += count as u64;
        }
    }
}

async fn charger_task(
    index: usize,
    id: String,
    ctx: Arc<Context>,
    mut phase: watch::Receiver<Option<Measured>>,
) -> Outcome {
    let mut out = Outcome::default();
    let mut batch = LatencyBatch::new(ctx.book.clone());
    let mut guard = SetupGuard {
        events: ctx.events.clone(),
        ready: false,
    };
    let result = async {
        // Boxed for the same reason as the handshake inside it: setup's state lives briefly.
        let (mut charger, heartbeat_interval) =
            Box::pin(setup(index, id, &ctx, &mut batch, &mut out)).await?;
        guard.ready();
        let measured = wait_for_start(&mut charger, &mut phase, &mut out).await?;
        let (sent, received) = (charger.frames_sent(), charger.frames_received());
        let n = ctx.cfg.chargers as f64;
        // Spread paced chargers over the period instead of firing them all at once.
        let offset = index as f64 / n;
        let result = match ctx.cfg.mode {
            Mode::Idle => {
                paced(
                    &mut charger,
                    measured,
                    heartbeat_interval,
                    offset,
                    &mut batch,
                    &mut out,
                )
                .await
            }
            Mode::Heartbeat { rate: None } => {
                closed_loop(&mut charger, measured, &mut batch, &mut out).await
            }
            Mode::Heartbeat { rate: Some(rate) } => {
                let period = Duration::from_secs_f64(1.0 / rate);
                paced(
                    &mut charger,
                    measured,
                    Some(period),
                    offset,
                    &mut batch,
                    &mut out,
                )
                .await
            }
        };
        // A paced charger's phase ends at the deadline; timing it by when its task next ran
        // would stretch the phase by however long 10k wake-ups take on one thread.
        out.measured_end = Some(match ctx.cfg.mode {
            Mode::Heartbeat { rate: None } => Instant::now(),
            _ => Instant::now().min(measured.deadline),
        });
        out.frames_sent = charger.frames_sent() - sent;
        out.frames_received = charger.frames_received() - received;
        result?;
        let bye = charger.send_close(1000, "load run over");
        let _ = tokio::time::timeout(Duration::from_secs(1), bye).await;
        Ok::<_, String>(())
    }
    .await;
    match result {
        Ok(()) => out.held = true,
        Err(reason) => out.failure = Some(reason),
    }
    out
}

/// Connect, boot, one StatusNotification per connector. Returns the charger and the heartbeat
/// interval the central system asked for.
async fn setup(
    index: usize,
    id: String,
    ctx: &Context,
    batch: &mut LatencyBatch,
    out: &mut Outcome,
) -> Result<(Charger, Option<Duration>), String> {
    let cfg = &ctx.cfg;
    if !cfg.ramp.is_zero() {
        let offset = cfg.ramp.mul_f64(index as f64 / cfg.chargers as f64);
        tokio::time::sleep_until(ctx.connect_started + offset).await;
    }
    let slot = ctx
        .connect_slots
        .acquire()
        .await
        .map_err(|_| "connect slots closed".to_owned())?;
    let mut charger_cfg = ChargerConfig::new(cfg.url.clone(), id);
    charger_cfg.password = cfg.password.clone();
    if !cfg.source_addrs.is_empty() {
        charger_cfg.source_addr = Some(cfg.source_addrs[index % cfg.source_addrs.len()]);
    }
    charger_cfg.connect_timeout = cfg.connect_timeout;
    charger_cfg.call_timeout = cfg.call_timeout;
    charger_cfg.keep_frames = 0;
    // Boxed: the handshake's state is large and needed only once, so it must not set the size
    // of every task's future for the whole run.
    let mut charger = Box::pin(Charger::connect(&charger_cfg))
        .await
        .map_err(|e| format!("connect: {e}"))?;

    let boot = messages::boot_notification(charger.charge_box_id());
    let sent_at = Instant::now();
    let answer = charger.call("BootNotification", boot).await;
    batch.record(Action::BootNotification, sent_at.elapsed());
    let interval = match answer {
        Ok(CallOutcome::Result(payload)) => match payload["status"].as_str() {
            Some("Accepted") => payload["interval"].as_u64(),
            status => {
                return Err(format!(
                    "boot: status {}",
                    status.unwrap_or("missing or not a string")
                ));
            }
        },
        Ok(CallOutcome::Error { code, .. }) => {
            let reason = format!("boot: CALLERROR {code}");
            count(&mut out.call_errors, code);
            return Err(reason);
        }
        Err(e) => return Err(format!("boot: {e}")),
    };
    drop(slot);
    let _ = ctx.events.send(Event::Booted(Instant::now()));
    answer_queued_calls(&mut charger, out).await?;

    for connector in 1..=cfg.connectors {
        let status = messages::status_notification(connector, "Available", "NoError");
        let sent_at = Instant::now();
        let answer = charger.call("StatusNotification", status).await;
        batch.record(Action::StatusNotification, sent_at.elapsed());
        match answer {
            Ok(CallOutcome::Result(_)) => {}
            Ok(CallOutcome::Error { code, .. }) => count(&mut out.call_errors, code),
            Err(e) => return Err(format!("StatusNotification: {e}")),
        }
        answer_queued_calls(&mut charger, out).await?;
    }
    let interval = interval.filter(|&s| s > 0).map(Duration::from_secs);
    Ok((charger, interval))
}

/// Holds the socket (pings, server CALLs) until the conductor starts the measured phase.
async fn wait_for_start(
    charger: &mut Charger,
    phase: &mut watch::Receiver<Option<Measured>>,
    out: &mut Outcome,
) -> Result<Measured, String> {
    loop {
        tokio::select! {
            // Copy the value out at once: the watch's read guard must not live across an await.
            started = async { phase.wait_for(Option::is_some).await.ok().and_then(|m| *m) } => {
                return started.ok_or_else(|| "the run was abandoned".to_owned());
            }
            incoming = charger.read_incoming() => serve(charger, incoming, out).await?,
        }
    }
}

/// Heartbeats back to back until the deadline.
async fn closed_loop(
    charger: &mut Charger,
    measured: Measured,
    batch: &mut LatencyBatch,
    out: &mut Outcome,
) -> Result<(), String> {
    while Instant::now() < measured.deadline {
        heartbeat(charger, Instant::now(), batch, out).await?;
    }
    Ok(())
}

/// Holds the socket until the deadline, sending a Heartbeat every `period` (none if `None`),
/// starting `offset` (a fraction of the period) into the phase.
async fn paced(
    charger: &mut Charger,
    measured: Measured,
    period: Option<Duration>,
    offset: f64,
    batch: &mut LatencyBatch,
    out: &mut Outcome,
) -> Result<(), String> {
    let mut ticker = period.map(|period| {
        let first = measured.start + period.mul_f64(offset);
        let mut ticker = tokio::time::interval_at(first, period);
        ticker.set_missed_tick_behavior(MissedTickBehavior::Burst);
        ticker
    });
    let end = tokio::time::sleep_until(measured.deadline);
    tokio::pin!(end);
    loop {
        tokio::select! {
            _ = &mut end => return Ok(()),
            scheduled = next_tick(&mut ticker) => heartbeat(charger, scheduled, batch, out).await?,
            incoming = charger.read_incoming() => serve(charger, incoming, out).await?,
        }
    }
}

async fn next_tick(ticker: &mut Option<Interval>) -> Instant {
    match ticker {
        Some(ticker) => ticker.tick().await,
        None => std::future::pending().await,
    }
}

/// One Heartbeat round trip, timed from `since` (its scheduled time in open loop).
async fn heartbeat(
    charger: &mut Charger,
    since: Instant,
    batch: &mut LatencyBatch,
    out: &mut Outcome,
) -> Result<(), String> {
    match charger.call("Heartbeat", json!({})).await {
        Ok(outcome) => {
            batch.record(Action::Heartbeat, since.elapsed());
            if let CallOutcome::Error { code, .. } = outcome {
                count(&mut out.call_errors, code);
            }
        }
        Err(e) => return Err(format!("Heartbeat: {e}")),
    }
    answer_queued_calls(charger, out).await
}

/// Reacts to one frame read while idle.
async fn serve(
    charger: &mut Charger,
    incoming: Result<Incoming, ClientError>,
    out: &mut Outcome,
) -> Result<(), String> {
    match incoming {
        Ok(Incoming::Call { id, action, .. }) => answer_call(charger, &id, &action, out).await,
        Ok(Incoming::Close { code, reason }) => Err(match code {
            Some(code) => format!("closed by the server (code {code}: {reason})"),
            None => "connection ended by the server".to_owned(),
        }),
        // Stray answers, raw or binary frames: a charger has nothing to say to them.
        Ok(_) => Ok(()),
        Err(e) => Err(format!("connection: {e}")),
    }
}

async fn answer_queued_calls(charger: &mut Charger, out: &mut Outcome) -> Result<(), String> {
    while let Some((id, action, _)) = charger.queued_call() {
        answer_call(charger, &id, &action, out).await?;
    }
    Ok(())
}

async fn answer_call(
    charger: &mut Charger,
    id: &str,
    action: &str,
    out: &mut Outcome,
) -> Result<(), String> {
    *out.server_calls.entry(action.to_owned()).or_default() += 1;
    let sent = match messages::default_answer(action) {
        Some(payload) => charger.reply(id, payload).await,
        None => {
            let description = format!("{action} is not implemented by this simulator");
            charger
                .reply_error(id, "NotImplemented", &description)
                .await
        }
    };
    sent.map_err(|e| format!("answering {action}: {e}"))
}

fn count(counts: &mut HashMap<String, u64>, key: String) {
    *counts.entry(key).or_default() += 1;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_padded_to_five_digits_whatever_the_run_size() {
        assert_eq!(
            charger_ids("SIM-", 1, 3),
            ["SIM-00001", "SIM-00002", "SIM-00003"]
        );
        assert_eq!(charger_ids("X", 99_999, 2), ["X99999", "X100000"]);
        assert!(charger_ids("SIM-", 1, 0).is_empty());
    }

    /// Every charger is one of these futures for the whole run; keep it lean (10k+ chargers).
    #[test]
    fn a_charger_task_stays_small() {
        let (_phase_tx, phase_rx) = watch::channel(None);
        let (events, _events_rx) = mpsc::unbounded_channel();
        let ctx = Arc::new(Context {
            cfg: LoadConfig::new("ws://127.0.0.1:1/ocpp", 1, Mode::Idle),
            book: LatencyBook::new(),
            connect_slots: Semaphore::new(1),
            events,
            connect_started: Instant::now(),
        });
        let task = charger_task(0, "SIM-00001".into(), ctx, phase_rx);
        let size = std::mem::size_of_val(&task);
        assert!(size <= 4096, "a charger task's future grew to {size} bytes");
    }

    #[test]
    fn rejects_nonsense_configurations() {
        let ok = LoadConfig::new(
            "ws://127.0.0.1:1/ocpp",
            1,
            Mode::Heartbeat { rate: Some(2.0) },
        );
        assert!(validate(&ok).is_ok());
        let mut cfg = ok.clone();
        cfg.chargers = 0;
        assert!(validate(&cfg).is_err());
        let mut cfg = ok.clone();
        cfg.connect_concurrency = 0;
        assert!(validate(&cfg).is_err());
        let mut cfg = ok;
        cfg.mode = Mode::Heartbeat { rate: Some(0.0) };
        assert!(validate(&cfg).is_err());
    }
}
