//! The `echarging-sim` command: parse flags, build a tokio runtime with the asked number of
//! worker threads (default 1, leaving the other core to the server), run the load, print the
//! report (table or one JSON object on stdout) and exit non-zero when a check failed.
//! All the work lives in the library; this file only translates flags.

use std::io::IsTerminal as _;
use std::net::IpAddr;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, ValueEnum};
use echarging_sim::drivers::{self, BookingConfig};
use echarging_sim::load::ReconnectPolicy;
use echarging_sim::source_addrs::parse_source_addrs;
use echarging_sim::{LoadConfig, Mode, Provisioning, Quirks};

/// Thousands of virtual OCPP 1.6J chargers against a central system, with a load report.
///
/// Every charger answers the central system's requests as a real one would (ReserveNow,
/// CancelReservation, Remote Start/Stop, TriggerMessage, ChangeAvailability, Reset,
/// Get/ChangeConfiguration), reports each status change, and reconnects with backoff when its
/// connection drops, re-sending unanswered transaction messages after the new boot.
#[derive(Debug, Parser)]
#[command(
    name = "echarging-sim",
    version,
    after_help = "Exit status: 0 when every check passed; 1 when one failed (each is named on \
                  stderr: chargers not held, CALLERRORs, timeouts, malformed messages, double \
                  bookings, refused starts of registered idTags, no completed session); 2 on a \
                  usage error."
)]
struct Cli {
    /// OCPP endpoint; each charger connects to URL/CHARGE_BOX_ID. Several, comma-separated
    /// (the nodes of a cluster): chargers start spread over them and each reconnect takes the
    /// next one, so a dead node's chargers move to the others.
    #[arg(
        long,
        env = "ECHARGING_SIM_URL",
        default_value = "ws://127.0.0.1:8080/ocpp"
    )]
    url: String,
    /// echarging REST base URL; when set, the chargers (and in charge mode one customer per
    /// idTag) are registered first (201/409 both fine).
    #[arg(long)]
    api_url: Option<String>,
    /// Only register the chargers (and in charge mode their drivers) through --api-url, then
    /// exit without connecting: for a run spread over many processes or nodes, registered once
    /// beforehand so registration does not compete with connecting.
    #[arg(long, requires = "api_url")]
    provision_only: bool,
    /// Operator token for --api-url.
    #[arg(long, env = "ECHARGING_API_TOKEN", hide_env_values = true)]
    api_token: Option<String>,
    /// How many chargers to simulate.
    #[arg(long, default_value_t = 100)]
    chargers: usize,
    /// Length of the measured phase, in seconds.
    #[arg(long, default_value = "10", value_parser = parse_seconds)]
    duration: Duration,
    /// What the chargers do once all are booted.
    #[arg(long, value_enum, default_value_t = ModeArg::Idle)]
    mode: ModeArg,
    /// Open loop instead of closed: heartbeat mode sends R Heartbeats/s per charger; charge
    /// mode has a driver arrive R times/s per charger (one who finds the last session still
    /// running is counted as skipped).
    #[arg(long, value_name = "R")]
    rate: Option<f64>,
    /// Charge mode: idTags are PREFIX + the charger's number (SIMTAG-00001 for SIM-00001).
    #[arg(long, default_value = "SIMTAG-", value_name = "PREFIX")]
    id_tags: String,
    /// Charge mode: seconds between MeterValues samples while charging (fractions allowed).
    #[arg(long, default_value = "5", value_parser = parse_seconds, value_name = "SECONDS")]
    meter_interval: Duration,
    /// Charge mode: MeterValues per session; StopTransaction follows the last one.
    #[arg(long, default_value_t = 3, value_name = "N")]
    meter_values: u32,
    /// Charge mode: seconds a connector stays free before the next driver arrives.
    #[arg(long, default_value = "1", value_parser = parse_seconds, value_name = "SECONDS")]
    session_pause: Duration,
    /// Charge mode: share of sessions (0 to 1) that book the connector over the REST API first
    /// and start on the reservation the charger receives (needs --api-url).
    #[arg(long, default_value_t = 0.0, value_name = "SHARE")]
    reserve_share: f64,
    /// Ceiling of the first wait before reconnecting a dropped charger; doubles per attempt,
    /// with jitter.
    #[arg(long, default_value = "1", value_parser = parse_seconds, value_name = "SECONDS")]
    reconnect_min: Duration,
    /// Longest wait between reconnect attempts.
    #[arg(long, default_value = "30", value_parser = parse_seconds, value_name = "SECONDS")]
    reconnect_max: Duration,
    /// Count a charger whose connection drops as failed instead of reconnecting it.
    #[arg(long)]
    no_reconnect: bool,
    /// Charge box ids are PREFIX00001, PREFIX00002, ...
    #[arg(long, default_value = "SIM-", value_name = "PREFIX")]
    id_prefix: String,
    /// Number of the first charger id (run several processes side by side).
    #[arg(long, default_value_t = 1)]
    first_index: usize,
    /// Connectors per charger (one StatusNotification each after boot).
    #[arg(long, default_value_t = 2)]
    connectors: u32,
    /// HTTP Basic password of every charger (username = charge box id).
    #[arg(long, env = "ECHARGING_SIM_PASSWORD", hide_env_values = true)]
    password: Option<String>,
    /// PEM file of the CA(s) to trust for a wss:// URL (the server's certificate issuer).
    #[arg(long, value_name = "PEM")]
    ca_file: Option<std::path::PathBuf>,
    /// PEM client certificate chain every charger presents (security profile 3), with
    /// --client-key.
    #[arg(long, value_name = "PEM", requires = "client_key")]
    client_cert: Option<std::path::PathBuf>,
    /// PEM private key of --client-cert.
    #[arg(long, value_name = "PEM", requires = "client_cert")]
    client_key: Option<std::path::PathBuf>,
    /// Local addresses to connect from, round-robin: `127.0.0.1,127.0.0.2` or `127.0.0.1-127.0.0.4`.
    #[arg(long, value_parser = parse_addrs, value_name = "ADDRS")]
    source_addrs: Option<SourceAddrs>,
    /// Connect + boot attempts in flight at once.
    #[arg(long, default_value_t = 500)]
    connect_concurrency: usize,
    /// Spread connection starts over this many seconds.
    #[arg(long, default_value = "0", value_parser = parse_seconds, value_name = "SECONDS")]
    ramp: Duration,
    /// Per-connection TCP + upgrade timeout, in seconds.
    #[arg(long, default_value = "10", value_parser = parse_seconds, value_name = "SECONDS")]
    connect_timeout: Duration,
    /// How long a CALL waits for its answer, in seconds; one that gets none is counted (and
    /// fails the checks), a transaction message is then sent again (3 attempts).
    #[arg(long, default_value = "10", value_parser = parse_seconds, value_name = "SECONDS")]
    call_timeout: Duration,
    /// Report the server's RSS (from /proc/PID/status) before and after connecting.
    #[arg(long, value_name = "PID")]
    server_pid: Option<u32>,
    /// Seconds to wait after the last boot before sampling the server's RSS.
    #[arg(long, default_value = "1", value_parser = parse_seconds, value_name = "SECONDS")]
    settle: Duration,
    /// Tokio worker threads.
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// Book mode: concurrent drivers (customers), each booking in a closed loop.
    #[arg(long, default_value_t = 32)]
    clients: usize,
    /// Book mode: slot length in minutes.
    #[arg(long, default_value_t = 30)]
    slot_minutes: u64,
    /// Book mode: how many slots deep the booking grid is (fewer = more 409s).
    #[arg(long, default_value_t = 5000)]
    horizon_slots: u32,
    /// Book mode: share of successful bookings cancelled right away (0 to 1).
    #[arg(long, default_value_t = 0.0)]
    cancel_share: f64,
    /// Print the report as one JSON object on stdout instead of a table: connected, failed,
    /// callErrors, actions {"<Action>": {count, p50Ms, p90Ms, p99Ms, maxMs}}, reconnects,
    /// sessions, startsRefused, ... (book mode: its own report).
    #[arg(long)]
    json: bool,
    /// Field habits the chargers send with, as a lenient central system must take them: `all`,
    /// a profile (`schneider`, `meter-firmware`) or a list of long-serial, nulls, extra-fields,
    /// numeric-meter, string-numbers, measurands, enum-case, comma-decimal, subprotocol-case,
    /// trailing-slash. Applied to BootNotification, StatusNotification, MeterValues and
    /// Start/StopTransaction; CALLERRORs they draw are counted per action in the report.
    #[arg(long, value_parser = parse_quirks, value_name = "LIST|PROFILE")]
    quirks: Option<Quirks>,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum ModeArg {
    /// Hold the sockets: answer pings and server CALLs (sampling remotely started sessions
    /// every --meter-interval until they are stopped remotely), Heartbeat at the interval boot
    /// gave.
    Idle,
    /// Heartbeats back to back (closed loop), or at --rate per charger (open loop).
    Heartbeat,
    /// Charging sessions: Authorize, StartTransaction, --meter-values MeterValues every
    /// --meter-interval, StopTransaction, a --session-pause, again (or at --rate).
    Charge,
    /// Drivers book slots over the REST API (needs --api-url and --api-token); no WebSockets.
    Book,
}

#[derive(Debug, Clone)]
struct SourceAddrs(Vec<IpAddr>);

fn parse_addrs(spec: &str) -> Result<SourceAddrs, String> {
    parse_source_addrs(spec)
        .map(SourceAddrs)
        .map_err(|e| e.to_string())
}

fn parse_quirks(spec: &str) -> Result<Quirks, String> {
    Quirks::parse(spec)
}

fn parse_seconds(text: &str) -> Result<Duration, String> {
    let seconds: f64 = text
        .parse()
        .map_err(|_| format!("`{text}` is not a number of seconds"))?;
    Duration::try_from_secs_f64(seconds).map_err(|_| format!("`{text}` is not a valid duration"))
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if matches!(cli.mode, ModeArg::Book) {
        let cfg = match booking_config(&cli) {
            Ok(cfg) => cfg,
            Err(message) => return usage_error(&message),
        };
        return run(&cli, drivers::run(cfg), |r| {
            (r.to_table(), r.failed_checks())
        });
    }
    let cfg = match load_config(&cli) {
        Ok(cfg) => cfg,
        Err(message) => return usage_error(&message),
    };
    if cli.provision_only {
        return run(&cli, echarging_sim::load::provision(&cfg), |r| {
            let line = format!(
                "{} chargers registered ({} created) in {:.1} s\n",
                r.chargers, r.created, r.seconds
            );
            (line, Vec::new())
        });
    }
    run(&cli, echarging_sim::load::run(cfg), |r| {
        (r.to_table(), r.failed_checks())
    })
}

fn usage_error(message: &str) -> ExitCode {
    eprintln!("echarging-sim: {message}");
    ExitCode::from(2)
}

/// Run one scenario on a runtime with `--threads` workers, print its report (table, or JSON with
/// `--json`) and turn failed checks into a non-zero exit.
fn run<R, E>(
    cli: &Cli,
    scenario: impl Future<Output = Result<R, E>>,
    summary: impl FnOnce(&R) -> (String, Vec<String>),
) -> ExitCode
where
    R: serde::Serialize,
    E: std::fmt::Display,
{
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(cli.threads.max(1))
        .thread_name("sim-worker")
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => return usage_error(&format!("cannot start the runtime: {e}")),
    };
    let report = match runtime.block_on(scenario) {
        Ok(report) => report,
        Err(e) => return usage_error(&e.to_string()),
    };
    let (table, failed) = summary(&report);
    if cli.json {
        match serde_json::to_string(&report) {
            Ok(json) => println!("{json}"),
            Err(e) => eprintln!("echarging-sim: cannot write the report: {e}"),
        }
    } else {
        print!("{table}");
    }
    for check in &failed {
        eprintln!("echarging-sim: check failed: {check}");
    }
    if failed.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// `--mode book`: the REST booking load.
fn booking_config(cli: &Cli) -> Result<BookingConfig, String> {
    let (Some(api_url), Some(token)) = (&cli.api_url, &cli.api_token) else {
        return Err("--mode book needs --api-url and --api-token".into());
    };
    if !(0.0..=1.0).contains(&cli.cancel_share) {
        return Err("--cancel-share must be from 0 to 1".into());
    }
    let mut cfg = BookingConfig::new(api_url.clone(), token.clone());
    cfg.chargers = cli.chargers;
    cfg.id_prefix = cli.id_prefix.clone();
    cfg.first_index = cli.first_index;
    cfg.connectors = cli.connectors;
    cfg.clients = cli.clients.max(1);
    cfg.duration = cli.duration;
    cfg.slot = Duration::from_secs(cli.slot_minutes.max(1) * 60);
    cfg.horizon_slots = cli.horizon_slots.max(1);
    cfg.cancel_share = cli.cancel_share;
    cfg.progress = std::io::stderr().is_terminal();
    Ok(cfg)
}

fn load_config(cli: &Cli) -> Result<LoadConfig, String> {
    let mode = match (cli.mode, cli.rate) {
        (ModeArg::Book, _) => return Err("--mode book does not load WebSockets".into()),
        (ModeArg::Idle, Some(_)) => {
            return Err("--rate only applies to --mode heartbeat and charge".into());
        }
        (ModeArg::Idle, None) => Mode::Idle,
        (ModeArg::Heartbeat, rate) => Mode::Heartbeat { rate },
        (ModeArg::Charge, rate) => Mode::Charge { rate },
    };
    let provision = match (&cli.api_url, &cli.api_token) {
        (Some(api_url), Some(token)) => Some(Provisioning {
            api_url: api_url.clone(),
            token: token.clone(),
        }),
        (Some(_), None) => {
            return Err("--api-url needs --api-token (or ECHARGING_API_TOKEN)".into());
        }
        (None, _) => None,
    };
    let mut cfg = LoadConfig::new(cli.url.clone(), cli.chargers, mode);
    cfg.id_prefix = cli.id_prefix.clone();
    cfg.first_index = cli.first_index;
    cfg.connectors = cli.connectors;
    cfg.password = cli.password.clone();
    cfg.tls = tls_config(cli)?;
    cfg.source_addrs = cli.source_addrs.clone().map(|a| a.0).unwrap_or_default();
    cfg.connect_concurrency = cli.connect_concurrency;
    cfg.ramp = cli.ramp;
    cfg.duration = cli.duration;
    cfg.connect_timeout = cli.connect_timeout;
    cfg.call_timeout = cli.call_timeout;
    cfg.server_pid = cli.server_pid;
    cfg.settle = cli.settle;
    cfg.provision = provision;
    cfg.progress = std::io::stderr().is_terminal();
    cfg.sessions.id_tag_prefix = cli.id_tags.clone();
    cfg.sessions.meter_interval = cli.meter_interval;
    cfg.sessions.meter_values = cli.meter_values;
    cfg.sessions.pause = cli.session_pause;
    cfg.sessions.reserve_share = cli.reserve_share;
    cfg.quirks = cli.quirks.unwrap_or_default();
    cfg.reconnect = (!cli.no_reconnect).then_some(ReconnectPolicy {
        min: cli.reconnect_min,
        max: cli.reconnect_max,
    });
    Ok(cfg)
}

/// The TLS client for a wss:// URL from --ca-file (and --client-cert/--client-key).
fn tls_config(
    cli: &Cli,
) -> Result<Option<std::sync::Arc<tokio_rustls::rustls::ClientConfig>>, String> {
    let Some(ca) = &cli.ca_file else {
        if cli.url.starts_with("wss://") {
            return Err(
                "a wss:// URL needs --ca-file (the CA that signed the server's certificate)".into(),
            );
        }
        return Ok(None);
    };
    let read = |p: &std::path::Path| {
        std::fs::read(p).map_err(|e| format!("cannot read {}: {e}", p.display()))
    };
    let ca = read(ca)?;
    let identity = match (&cli.client_cert, &cli.client_key) {
        (Some(c), Some(k)) => Some((read(c)?, read(k)?)),
        _ => None,
    };
    echarging_sim::tls_client(
        &ca,
        identity.as_ref().map(|(c, k)| (c.as_slice(), k.as_slice())),
    )
    .map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory as _;

    #[test]
    fn cli_is_well_formed() {
        Cli::command().debug_assert();
    }

    #[test]
    fn flags_map_onto_the_load_config() {
        let cli = Cli::parse_from([
            "echarging-sim",
            "--url",
            "ws://10.0.0.1:9000/ocpp",
            "--chargers",
            "20",
            "--mode",
            "heartbeat",
            "--rate",
            "2.5",
            "--duration",
            "1.5",
            "--source-addrs",
            "127.0.0.1-127.0.0.3",
        ]);
        let cfg = load_config(&cli).unwrap();
        assert_eq!(cfg.mode, Mode::Heartbeat { rate: Some(2.5) });
        assert_eq!(cfg.duration, Duration::from_millis(1500));
        assert_eq!(cfg.source_addrs.len(), 3);
        assert_eq!(cfg.chargers, 20);
    }

    #[test]
    fn charge_flags_map_onto_the_session_plan() {
        let cli = Cli::parse_from([
            "echarging-sim",
            "--mode",
            "charge",
            "--id-tags",
            "T-",
            "--meter-interval",
            "0.25",
            "--meter-values",
            "2",
            "--session-pause",
            "0.5",
            "--reconnect-min",
            "0.2",
            "--reconnect-max",
            "4",
        ]);
        let cfg = load_config(&cli).unwrap();
        assert_eq!(cfg.mode, Mode::Charge { rate: None });
        assert_eq!(cfg.sessions.meter_interval, Duration::from_millis(250));
        assert_eq!(cfg.sessions.meter_values, 2);
        assert_eq!(cfg.sessions.pause, Duration::from_millis(500));
        assert_eq!(cfg.id_tag(0), "T-00001");
        assert_eq!(
            cfg.reconnect,
            Some(ReconnectPolicy {
                min: Duration::from_millis(200),
                max: Duration::from_secs(4)
            })
        );
        let cli = Cli::parse_from(["echarging-sim", "--mode", "charge", "--no-reconnect"]);
        assert_eq!(load_config(&cli).unwrap().reconnect, None);
    }

    #[test]
    fn quirks_flag_takes_lists_and_profiles() {
        use echarging_sim::Quirk;
        let cfg = load_config(&Cli::parse_from(["echarging-sim"])).unwrap();
        assert!(cfg.quirks.is_empty(), "no quirks unless asked");
        let cli = Cli::parse_from(["echarging-sim", "--quirks", "all"]);
        assert_eq!(load_config(&cli).unwrap().quirks, Quirks::all());
        let cli = Cli::parse_from(["echarging-sim", "--quirks", "long-serial,comma-decimal"]);
        let q = load_config(&cli).unwrap().quirks;
        assert!(q.has(Quirk::LongSerial) && q.has(Quirk::CommaDecimal) && !q.has(Quirk::Nulls));
        assert!(Cli::try_parse_from(["echarging-sim", "--quirks", "bogus"]).is_err());
    }

    #[test]
    fn rate_needs_heartbeat_mode() {
        let cli = Cli::parse_from(["echarging-sim", "--rate", "1"]);
        assert!(load_config(&cli).is_err());
    }
}
