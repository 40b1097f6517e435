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
use echarging_sim::source_addrs::parse_source_addrs;
use echarging_sim::{LoadConfig, Mode, Provisioning};

/// Thousands of virtual OCPP 1.6J chargers against a central system, with a load report.
#[derive(Debug, Parser)]
#[command(name = "echarging-sim", version)]
struct Cli {
    /// OCPP endpoint; each charger connects to URL/CHARGE_BOX_ID.
    #[arg(
        long,
        env = "ECHARGING_SIM_URL",
        default_value = "ws://127.0.0.1:8080/ocpp"
    )]
    url: String,
    /// echarging REST base URL; when set, the chargers are registered first (201/409 both fine).
    #[arg(long)]
    api_url: Option<String>,
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
    /// Heartbeat mode: send R heartbeats/s per charger (open loop) instead of back to back.
    #[arg(long, value_name = "R")]
    rate: Option<f64>,
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
    /// How long a CALL waits for its answer, in seconds.
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
    /// Print the report as one JSON object instead of a table.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum ModeArg {
    /// Hold the sockets: answer pings and server CALLs, Heartbeat at the interval boot gave.
    Idle,
    /// Heartbeats back to back (closed loop), or at --rate per charger (open loop).
    Heartbeat,
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
    Ok(cfg)
}

fn load_config(cli: &Cli) -> Result<LoadConfig, String> {
    let mode = match (cli.mode, cli.rate) {
        (ModeArg::Book, _) => return Err("--mode book does not load WebSockets".into()),
        (ModeArg::Idle, Some(_)) => return Err("--rate only applies to --mode heartbeat".into()),
        (ModeArg::Idle, None) => Mode::Idle,
        (ModeArg::Heartbeat, rate) => Mode::Heartbeat { rate },
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
    Ok(cfg)
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
    fn rate_needs_heartbeat_mode() {
        let cli = Cli::parse_from(["echarging-sim", "--rate", "1"]);
        assert!(load_config(&cli).is_err());
    }
}
