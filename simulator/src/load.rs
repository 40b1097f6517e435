//! The load run: thousands of virtual chargers from one process, one lightweight task each,
//! each a `Station` (the same charge point the end-to-end tests can drive). Phases: provision
//! (optional: chargers, and for charge mode their drivers' idTags) → connect, BootNotification
//! and a StatusNotification per connector (bounded handshakes in flight, optional ramp) → settle
//! and sample the server's RSS → the measured phase (idle hold, Heartbeat load or charging
//! sessions, reconnecting with backoff when a connection drops) → `Report`. Tasks report setup
//! progress through an event channel and learn when to measure through a watch; latencies go
//! through `latency`, never a lock per frame.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Semaphore, mpsc, watch};
use tokio::task::JoinSet;
use tokio::time::{Instant, Interval, MissedTickBehavior};

use crate::backoff::Backoff;
use crate::connect::ChargerConfig;
use crate::latency::{Action, LatencyBatch, LatencyBook};
use crate::progress;
use crate::provision::{self, ProvisionError};
use crate::quirks::{Quirk, Quirks};
use crate::report::{ActionStats, Report};
use crate::server_rss;
use crate::sessions::{Booker, BookingSeat, BookingTally, Site};
use crate::station::{Station, StationConfig, StationError, StationStats};

pub use crate::sessions::SessionPlan;

/// What each charger does during the measured phase.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Mode {
    /// Hold the socket: answer pings and server CALLs (carrying out remote starts and stops),
    /// send Heartbeat at the interval the BootNotification answer asked for.
    Idle,
    /// Send Heartbeats: closed loop (next one right after the answer) when `rate` is `None`,
    /// else open loop at `rate` per second per charger, latency measured from the scheduled
    /// send time so a slow server cannot hide its queueing delay.
    Heartbeat { rate: Option<f64> },
    /// Charging sessions (`LoadConfig::sessions`): closed loop (next driver a pause after the
    /// last one left) when `rate` is `None`, else a driver arrives at `rate` per second per
    /// charger and one who finds the last session still running is counted as skipped.
    Charge { rate: Option<f64> },
}

impl Mode {
    pub fn name(self) -> &'static str {
        match self {
            Mode::Idle => "idle",
            Mode::Heartbeat { .. } => "heartbeat",
            Mode::Charge { .. } => "charge",
        }
    }

    fn rate(self) -> Option<f64> {
        match self {
            Mode::Idle => None,
            Mode::Heartbeat { rate } | Mode::Charge { rate } => rate,
        }
    }
}

/// How a charger whose connection dropped comes back.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ReconnectPolicy {
    /// The first wait's ceiling; each further attempt doubles it, with jitter.
    pub min: Duration,
    /// The longest wait between attempts.
    pub max: Duration,
}

impl Default for ReconnectPolicy {
    fn default() -> ReconnectPolicy {
        ReconnectPolicy {
            min: Duration::from_secs(1),
            max: Duration::from_secs(30),
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
    /// The TLS client for a `wss://` URL (see `connect::tls_client`).
    pub tls: Option<std::sync::Arc<tokio_rustls::rustls::ClientConfig>>,
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
    /// Draw a progress bar on stderr.
    pub progress: bool,
    /// Charge mode: what the drivers do.
    pub sessions: SessionPlan,
    /// Reconnect dropped chargers with backoff; `None` counts them as failed instead.
    pub reconnect: Option<ReconnectPolicy>,
    /// Field habits every charger sends with (`--quirks`); none by default.
    pub quirks: Quirks,
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
            tls: None,
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
            sessions: SessionPlan::default(),
            reconnect: Some(ReconnectPolicy::default()),
            quirks: Quirks::none(),
        }
    }

    /// The idTag of the charger at `index` in this run.
    pub fn id_tag(&self, index: usize) -> String {
        self.sessions.id_tag(self.first_index + index)
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

/// What registering a run's chargers (and, in charge mode, their drivers) did.
#[derive(Debug, Clone, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Registered {
    pub chargers: usize,
    /// Chargers this call created (the others were there already).
    pub created: usize,
    pub seconds: f64,
    /// Per idTag in charge mode, the customer's id when this call created it.
    #[serde(skip)]
    pub customers: Vec<Option<i64>>,
}

/// Registers the chargers `cfg` names through `p` (and one customer per idTag in charge
/// mode), without connecting: what [`run`] does first, and all `--provision-only` does.
pub async fn provision(cfg: &LoadConfig) -> Result<Registered, LoadError> {
    let Some(p) = &cfg.provision else {
        return Err(LoadError::Config(
            "registering needs the API (--api-url)".into(),
        ));
    };
    validate(cfg)?;
    let ids = charger_ids(&cfg.id_prefix, cfg.first_index, cfg.chargers);
    register(cfg, p, &ids).await
}

async fn register(
    cfg: &LoadConfig,
    p: &Provisioning,
    ids: &[String],
) -> Result<Registered, LoadError> {
    let started = Instant::now();
    let created = provision::ensure_chargers(
        &p.api_url,
        &p.token,
        ids,
        cfg.connectors,
        cfg.password.as_deref(),
    )
    .await?;
    let mut customers = Vec::new();
    if matches!(cfg.mode, Mode::Charge { .. }) {
        let tags: Vec<String> = (0..cfg.chargers).map(|i| cfg.id_tag(i)).collect();
        customers = provision::ensure_customers(&p.api_url, &p.token, &tags).await?;
    }
    Ok(Registered {
        chargers: ids.len(),
        created,
        seconds: started.elapsed().as_secs_f64(),
        customers,
    })
}

/// Runs the whole load test and reports; charger failures are in the report, not errors.
pub async fn run(cfg: LoadConfig) -> Result<Report, LoadError> {
    validate(&cfg)?;
    let ids = charger_ids(&cfg.id_prefix, cfg.first_index, cfg.chargers);
    let charging = matches!(cfg.mode, Mode::Charge { .. });
    let customers = match &cfg.provision {
        Some(p) => register(&cfg, p, &ids).await?.customers,
        None => Vec::new(),
    };
    let id_tags_registered = charging && cfg.provision.is_some();
    let booker = match &cfg.provision {
        Some(p) if charging && cfg.sessions.reserve_share > 0.0 => Some(Booker {
            http: reqwest::Client::builder()
                .no_proxy()
                .timeout(Duration::from_secs(30))
                .build()
                .map_err(|e| LoadError::Config(format!("HTTP client: {e}")))?,
            api_url: p.api_url.clone(),
            token: p.token.clone(),
        }),
        _ => None,
    };
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
        customers,
        booker,
        cfg,
    });
    let bar = progress::bar(ctx.cfg.progress, n as u64, "connecting");
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
            _ = ticker.tick(), if !bar.is_hidden() => {
                bar.set_position((ready + failed) as u64);
                bar.set_message(format!("{booted} booted, {ready} ready, {failed} failed"));
            }
        }
    }
    bar.finish_and_clear();
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
    let bar = progress::bar(
        ctx.cfg.progress,
        ctx.cfg.duration.as_millis() as u64,
        ctx.cfg.mode.name(),
    );

    // Measured phase: collect each charger's outcome as its task ends. The hard stop only
    // fires if something ignored its own timeouts.
    let hard_stop = measured.deadline + wind_down_limit(&ctx.cfg) + Duration::from_secs(5);
    let mut totals = Totals::default();
    loop {
        tokio::select! {
            joined = tasks.join_next() => match joined {
                None => break,
                Some(Ok(outcome)) => totals.add(outcome),
                Some(Err(_)) => totals.fail("charger task panicked", 1),
            },
            _ = ticker.tick(), if !bar.is_hidden() => {
                bar.set_position(start.elapsed().as_millis() as u64);
                bar.set_message(format!(
                    "{} heartbeats, {} starts, {} stops, {} chargers running",
                    book.heartbeats(),
                    book.count(Action::StartTransaction),
                    book.count(Action::StopTransaction),
                    tasks.len()
                ));
            }
            _ = tokio::time::sleep_until(hard_stop) => {
                totals.fail("did not finish after the measured phase", tasks.len());
                tasks.abort_all();
                break;
            }
        }
    }
    bar.finish_and_clear();

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
    let s = totals.stats;
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
        call_errors: s.call_errors,
        call_errors_by_action: s.call_errors_by_action,
        quirks: if ctx.cfg.quirks.is_empty() {
            String::new()
        } else {
            ctx.cfg.quirks.to_string()
        },
        failures: totals.failures,
        server_calls: s.server_calls,
        actions,
        server_rss_before_kib: rss_before,
        server_rss_after_kib: rss_after,
        server_rss_per_charger_kib,
        reconnects: s.reconnects,
        firmware_installed: s.firmware_installed,
        firmware_failed: s.firmware_failed,
        timeouts: s.timeouts,
        bad_server_calls: s.bad_server_calls,
        bad_answers: s.bad_answers,
        sessions: s.sessions_completed - s.sessions_cut_short,
        sessions_cut_short: s.sessions_cut_short,
        starts_accepted: s.starts_accepted,
        starts_refused: s.starts_refused,
        starts_with_reservation: s.starts_with_reservation,
        authorize_refused: s.authorize_refused,
        sessions_skipped: totals.skipped,
        tx_resent: s.tx_resent,
        tx_dropped: s.tx_dropped,
        tx_undelivered: totals.tx_undelivered,
        id_tags_registered,
        bookings_made: totals.bookings.made,
        bookings_refused: totals.bookings.refused,
        booking_errors: totals.bookings.errors,
        reservations_accepted: s.reservations_accepted,
        double_bookings_seen: s.double_bookings_seen,
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
    if let Some(rate) = cfg.mode.rate()
        && !(rate.is_finite() && rate > 0.0)
    {
        return invalid("the rate must be a positive number");
    }
    if let Mode::Charge { .. } = cfg.mode {
        let plan = &cfg.sessions;
        let longest = cfg.id_tag(cfg.chargers - 1);
        if longest.chars().count() > 20 {
            return invalid(&format!(
                "idTag `{longest}` is longer than OCPP's 20 characters: shorten --id-tags"
            ));
        }
        if plan.meter_interval.is_zero() {
            return invalid("the meter interval must be more than 0");
        }
        if !(0.0..=1.0).contains(&plan.reserve_share) {
            return invalid("the reserve share must be from 0 to 1");
        }
        if plan.reserve_share > 0.0 && cfg.provision.is_none() {
            return invalid("booking before charging needs the REST API (--api-url)");
        }
    }
    if let Some(policy) = cfg.reconnect
        && policy.min.is_zero()
    {
        return invalid("the shortest reconnect wait must be more than 0");
    }
    Ok(())
}

/// How long winding down (delivering queued messages, stopping sessions) may take after the
/// deadline: a few answers' worth.
fn wind_down_limit(cfg: &LoadConfig) -> Duration {
    cfg.call_timeout * 3
}

fn per_second(count: u64, seconds: f64) -> f64 {
    if seconds > 0.0 {
        count as f64 / seconds
    } else {
        0.0
    }
}

fn progress_ticker() -> Interval {
    let period = Duration::from_millis(250);
    let mut ticker = tokio::time::interval_at(Instant::now() + period, period);
    ticker.set_missed_tick_behavior(MissedTickBehavior::Skip);
    ticker
}

/// What every charger task shares; read-only apart from the semaphore and the channel.
struct Context {
    cfg: LoadConfig,
    book: Arc<LatencyBook>,
    connect_slots: Semaphore,
    events: mpsc::UnboundedSender<Event>,
    connect_started: Instant,
    /// Per charger index: its driver's customer id, when this run created it.
    customers: Vec<Option<i64>>,
    booker: Option<Booker>,
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
    stats: StationStats,
    skipped: u64,
    tx_undelivered: u64,
    bookings: BookingTally,
}

#[derive(Default)]
struct Totals {
    held: usize,
    frames_sent: u64,
    frames_received: u64,
    measured_end: Option<Instant>,
    failures: BTreeMap<String, u64>,
    stats: StationStats,
    skipped: u64,
    tx_undelivered: u64,
    bookings: BookingTally,
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
        self.skipped += outcome.skipped;
        self.tx_undelivered += outcome.tx_undelivered;
        let (t, o) = (&mut self.stats, outcome.stats);
        for (mine, theirs) in [
            (&mut t.call_errors, o.call_errors),
            (&mut t.call_errors_by_action, o.call_errors_by_action),
            (&mut t.server_calls, o.server_calls),
            (&mut t.bad_server_calls, o.bad_server_calls),
            (&mut t.bad_answers, o.bad_answers),
            (&mut t.timeouts, o.timeouts),
            (&mut self.bookings.errors, outcome.bookings.errors),
        ] {
            for (key, count) in theirs {
                *mine.entry(key).or_default() += count;
            }
        }
        t.authorize_refused += o.authorize_refused;
        t.starts_accepted += o.starts_accepted;
        t.starts_with_reservation += o.starts_with_reservation;
        t.starts_refused += o.starts_refused;
        t.sessions_completed += o.sessions_completed;
        t.sessions_cut_short += o.sessions_cut_short;
        t.tx_resent += o.tx_resent;
        t.tx_dropped += o.tx_dropped;
        t.reconnects += o.reconnects;
        t.firmware_installed += o.firmware_installed;
        t.firmware_failed += o.firmware_failed;
        t.reservations_accepted += o.reservations_accepted;
        t.double_bookings_seen += o.double_bookings_seen;
        self.bookings.made += outcome.bookings.made;
        self.bookings.refused += outcome.bookings.refused;
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
    phase: watch::Receiver<Option<Measured>>,
) -> Outcome {
    let mut out = Outcome::default();
    let mut guard = SetupGuard {
        events: ctx.events.clone(),
        ready: false,
    };
    // Boxed: setup's state (the handshake) lives briefly and must not size every task.
    let mut station = match Box::pin(setup(index, id, &ctx)).await {
        Ok(station) => station,
        Err((reason, stats)) => {
            out.failure = Some(reason);
            out.stats = stats;
            return out;
        }
    };
    guard.ready();
    let (sent, received) = (
        station.charger().frames_sent(),
        station.charger().frames_received(),
    );
    let result = Box::pin(measure(&mut station, index, &ctx, phase, &mut out)).await;
    out.frames_sent = station.charger().frames_sent() - sent;
    out.frames_received = station.charger().frames_received() - received;
    out.tx_undelivered = station.queued_tx() as u64;
    if result.is_ok() {
        station.close("load run over").await;
    }
    out.stats = station.stats().clone();
    match result {
        Ok(()) => out.held = true,
        Err(reason) => out.failure = Some(reason),
    }
    out
}

/// Connect, boot, one StatusNotification per connector.
async fn setup(
    index: usize,
    id: String,
    ctx: &Context,
) -> Result<Box<Station>, (String, StationStats)> {
    let cfg = &ctx.cfg;
    let no_stats = |reason: String| (reason, StationStats::default());
    if !cfg.ramp.is_zero() {
        let offset = cfg.ramp.mul_f64(index as f64 / cfg.chargers as f64);
        tokio::time::sleep_until(ctx.connect_started + offset).await;
    }
    let slot = ctx
        .connect_slots
        .acquire()
        .await
        .map_err(|_| no_stats("connect slots closed".to_owned()))?;
    // `url` may list several endpoints (the nodes of a cluster), comma-separated: chargers
    // start spread over them and each reconnect takes the next.
    let mut urls = cfg.url.split(',').map(str::trim).filter(|u| !u.is_empty());
    let mut charger_cfg = ChargerConfig::new(urls.next().unwrap_or_default(), id);
    charger_cfg.alternate_urls = urls.map(str::to_owned).collect();
    charger_cfg.first_turn = index;
    charger_cfg.password = cfg.password.clone();
    charger_cfg.tls = cfg.tls.clone();
    if !cfg.source_addrs.is_empty() {
        charger_cfg.source_addr = Some(cfg.source_addrs[index % cfg.source_addrs.len()]);
    }
    charger_cfg.connect_timeout = cfg.connect_timeout;
    charger_cfg.call_timeout = cfg.call_timeout;
    charger_cfg.keep_frames = 0;
    charger_cfg.subprotocols = cfg.quirks.subprotocols(&charger_cfg.subprotocols);
    charger_cfg.trailing_slash = cfg.quirks.has(Quirk::TrailingSlash);
    let mut station_cfg = StationConfig::new(charger_cfg, cfg.connectors);
    station_cfg.quirks = cfg.quirks;
    // Each meter starts somewhere different, as installed meters do.
    station_cfg.register_wh = (index as i64 % 997) * 10_000;
    let mut station = Box::new(
        Station::connect(station_cfg)
            .await
            .map_err(|e| no_stats(format!("connect: {e}")))?,
    );
    station.set_latency(LatencyBatch::new(ctx.book.clone()));
    let meter_interval = cfg.sessions.meter_interval.as_secs().max(1).to_string();
    station
        .charge_point_mut()
        .set_config("MeterValueSampleInterval", &meter_interval);
    let failed = |station: &Station, e: StationError| {
        let reason = match e {
            StationError::Lost(reason) | StationError::Failed(reason) => reason,
        };
        (reason, station.stats().clone())
    };
    if let Err(e) = station.boot().await {
        return Err(failed(&station, e));
    }
    drop(slot);
    let _ = ctx.events.send(Event::Booted(Instant::now()));
    if let Err(e) = station.announce().await {
        return Err(failed(&station, e));
    }
    Ok(station)
}

/// From the start of the measured phase to its end: the mode's loop, reconnecting (when the
/// policy allows) each time the connection drops.
async fn measure(
    station: &mut Station,
    index: usize,
    ctx: &Context,
    mut phase: watch::Receiver<Option<Measured>>,
    out: &mut Outcome,
) -> Result<(), String> {
    let measured = wait_for_start(station, &mut phase).await?;
    station.set_measure_until(measured.deadline);
    let cfg = &ctx.cfg;
    // Spread paced chargers over the period instead of firing them all at once.
    let offset = index as f64 / cfg.chargers as f64;
    let policy = cfg.reconnect;
    let mut backoff = policy.map(|p| Backoff::new(p.min, p.max, index as u64));
    let charger_id = station.charger().charge_box_id().to_owned();
    let seat = match (&ctx.booker, ctx.customers.get(index).copied().flatten()) {
        (Some(booker), Some(customer_id)) => Some(BookingSeat {
            booker,
            charger_id: &charger_id,
            customer_id,
        }),
        _ => None,
    };
    let mut site = match cfg.mode {
        Mode::Idle | Mode::Charge { .. } => Some(Site::new(
            &cfg.sessions,
            cfg.id_tag(index),
            matches!(cfg.mode, Mode::Charge { .. }),
            cfg.mode.rate().map(|r| Duration::from_secs_f64(1.0 / r)),
            cfg.connectors,
            index as u64,
        )),
        Mode::Heartbeat { .. } => None,
    };
    let result = loop {
        let run = async {
            match (cfg.mode, site.as_mut()) {
                (Mode::Heartbeat { rate: None }, _) => closed_loop(station, measured).await,
                (Mode::Heartbeat { rate: Some(rate) }, _) => {
                    let period = Duration::from_secs_f64(1.0 / rate);
                    paced(station, measured, period, offset).await
                }
                (_, Some(site)) => {
                    let wind_down = measured.deadline + wind_down_limit(cfg);
                    let run = site.run(
                        station,
                        measured.start,
                        measured.deadline,
                        offset,
                        seat.as_ref(),
                    );
                    match tokio::time::timeout_at(wind_down, run).await {
                        Ok(result) => result,
                        // Winding down outlived its limit: what is left shows as undelivered.
                        Err(_) => Ok(()),
                    }
                }
                (_, None) => Ok(()),
            }
        };
        match run.await {
            Ok(()) => break Ok(()),
            Err(StationError::Lost(reason)) => {
                let Some(backoff) = backoff.as_mut() else {
                    break Err(reason);
                };
                if Instant::now() >= measured.deadline {
                    break Err(reason);
                }
                if let Err(e) = station.reconnect(backoff, measured.deadline).await {
                    break Err(format!("{e} ({reason})"));
                }
            }
            Err(StationError::Failed(reason)) => break Err(reason),
        }
    };
    if let Some(site) = site {
        out.skipped = site.skipped;
        out.bookings = site.bookings;
    }
    // A paced charger's phase ends at the deadline; timing it by when its task next ran
    // would stretch the phase by however long 10k wake-ups take on one thread.
    out.measured_end = Some(match cfg.mode {
        Mode::Heartbeat { rate: None } => Instant::now(),
        _ => Instant::now().min(measured.deadline),
    });
    result
}

/// Holds the socket (pings, server CALLs) until the conductor starts the measured phase.
async fn wait_for_start(
    station: &mut Station,
    phase: &mut watch::Receiver<Option<Measured>>,
) -> Result<Measured, String> {
    loop {
        tokio::select! {
            // Copy the value out at once: the watch's read guard must not live across an await.
            started = async { phase.wait_for(Option::is_some).await.ok().and_then(|m| *m) } => {
                return started.ok_or_else(|| "the run was abandoned".to_owned());
            }
            incoming = station.next_frame() => {
                station.handle(incoming).await.map_err(|e| e.to_string())?;
            }
        }
    }
}

/// Heartbeats back to back until the deadline.
async fn closed_loop(station: &mut Station, measured: Measured) -> Result<(), StationError> {
    while Instant::now() < measured.deadline {
        station.heartbeat().await?;
    }
    Ok(())
}

/// Holds the socket until the deadline, sending a Heartbeat every `period`, starting `offset`
/// (a fraction of the period) into the phase; each timed from its scheduled send.
async fn paced(
    station: &mut Station,
    measured: Measured,
    period: Duration,
    offset: f64,
) -> Result<(), StationError> {
    let first = measured.start + period.mul_f64(offset);
    let mut ticker = tokio::time::interval_at(first, period);
    ticker.set_missed_tick_behavior(MissedTickBehavior::Burst);
    let end = tokio::time::sleep_until(measured.deadline);
    tokio::pin!(end);
    loop {
        tokio::select! {
            _ = &mut end => return Ok(()),
            scheduled = ticker.tick() => station.heartbeat_since(scheduled).await?,
            incoming = station.next_frame() => station.handle(incoming).await?,
        }
    }
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
            customers: Vec::new(),
            booker: None,
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
        let mut cfg = ok.clone();
        cfg.mode = Mode::Heartbeat { rate: Some(0.0) };
        assert!(validate(&cfg).is_err());

        let charge = LoadConfig::new("ws://127.0.0.1:1/ocpp", 10, Mode::Charge { rate: None });
        assert!(validate(&charge).is_ok());
        let mut cfg = charge.clone();
        cfg.sessions.id_tag_prefix = "A-VERY-LONG-PREFIX-".into();
        assert!(validate(&cfg).is_err(), "idTags are at most 20 characters");
        let mut cfg = charge.clone();
        cfg.sessions.meter_interval = Duration::ZERO;
        assert!(validate(&cfg).is_err());
        let mut cfg = charge.clone();
        cfg.sessions.reserve_share = 0.5;
        assert!(validate(&cfg).is_err(), "booking needs the API");
        let mut cfg = charge;
        cfg.reconnect = Some(ReconnectPolicy {
            min: Duration::ZERO,
            max: Duration::from_secs(1),
        });
        assert!(validate(&cfg).is_err());
    }

    #[test]
    fn id_tags_follow_the_charger_numbers() {
        let mut cfg = LoadConfig::new("ws://h/ocpp", 3, Mode::Charge { rate: None });
        cfg.first_index = 41;
        assert_eq!(cfg.id_tag(1), "SIMTAG-00042");
    }
}
