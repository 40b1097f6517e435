//! Settings: one `Settings` value built from defaults, an optional TOML file, `ECHARGING_*`
//! environment variables and command-line flags, in rising precedence (api.md "Running").
//! Every value is validated here, so the rest of the program only ever sees good ones, and a bad
//! one stops start-up with one line that names the setting, where it came from and why.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::parser::ValueSource;
use clap::{ArgMatches, CommandFactory, FromArgMatches, Parser, Subcommand};
use serde::Deserialize;

use crate::ocpp::v16::Strictness;

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Human,
    Json,
}

/// What happens to a charger that connects with a chargeBoxId nobody registered (api.md
/// `unknown_chargers`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum UnknownChargers {
    /// 404 at the WebSocket upgrade, as for any unknown URL.
    #[default]
    Reject,
    /// The socket is accepted, its BootNotification answered Pending and the charger listed
    /// (`state = pending`) for the operator to accept or reject.
    Pending,
    /// The charger is registered (accepted, one connector, no password) on its first Boot.
    Accept,
}

/// What the upgrade does with a client that offers no subprotocol we speak (not even
/// `ocpp1.6` in another letter case, which lenient mode takes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SubprotocolMismatch {
    /// HTTP 400 problem+json before any WebSocket is made, as certification expects.
    #[default]
    Refuse,
    /// The older behaviour: the 101 without the subprotocol header, then a close with 1002
    /// (OCPP-J 1.6 §3.1.2 allows either), for clients that handle a refused upgrade badly.
    Close,
}

/// The validated settings of one server process.
#[derive(Debug, Clone)]
pub struct Settings {
    /// REST, OCPP and operations share this one address.
    pub listen: SocketAddr,
    /// `sqlite://…` (embedded, default) or `postgres://…`.
    pub database_url: String,
    /// PostgreSQL connections this node's ledger pool may open (its my-page store opens four
    /// more): the nodes of a cluster together must stay under the server's `max_connections`.
    pub database_pool_size: u32,
    /// The operator token; when `None` one is generated at first start and kept in `data_dir`.
    pub api_token: Option<String>,
    /// Where generated state (the operator token, the SQLite file by default) lives.
    pub data_dir: PathBuf,
    pub log_format: LogFormat,
    /// A tracing filter directive, e.g. `info` or `echarging=debug,info`.
    pub log: String,
    /// The Heartbeat interval handed to chargers in the BootNotification answer.
    pub heartbeat_interval: Duration,
    /// A charger silent for this many heartbeat intervals is marked offline and its socket closed.
    pub offline_after_intervals: f64,
    /// How often a WebSocket Ping is sent to each charger (zero: never).
    pub ws_ping_interval: Duration,
    /// How long the central system waits for the answer to a CALL it sent.
    pub call_timeout: Duration,
    /// How many outbound CALLs may wait per charger before new ones are refused.
    pub call_queue: usize,
    /// Largest WebSocket frame or message accepted from a charger; beyond it the socket is closed
    /// with 1009 (Message Too Big).
    pub max_frame_size: usize,
    /// Per-socket read buffer; kept small because it is paid once per connected charger.
    pub ws_read_buffer: usize,
    /// Bytes a socket may hold unsent before the session is considered stuck and closed.
    pub ws_max_write_buffer: usize,
    /// How often buffered charger state (boot info, connector status, last seen) is written.
    pub state_flush_interval: Duration,
    /// How long a graceful stop waits for sessions and requests to finish.
    pub shutdown_grace: Duration,
    /// The longest slot a reservation may cover.
    pub max_slot: Duration,
    /// REST requests (under `/api/`) allowed to run at once; more are answered 503 at once.
    pub rest_max_concurrency: usize,
    /// Consecutive CALL timeouts after which a charger's calls fail fast.
    pub breaker_failures: u32,
    /// How long an open breaker fails calls fast before one probe goes through.
    pub breaker_cool_down: Duration,
    /// On stop, how long to keep answering HTTP with `/readyz` at 503 before closing the
    /// listener, so load balancers stop sending traffic first.
    pub drain_delay: Duration,
    /// A driver may start charging on their reservation this long before its slot begins.
    pub early_start_grace: Duration,
    /// Whether a known idTag may charge on a connector nobody has reserved (a walk-in).
    pub allow_walk_in: bool,
    /// How long a remote start waits for the charger's StartTransaction to report its id.
    pub remote_start_wait: Duration,
    /// How literally to read what chargers send (see `ocpp::v16::lenient`).
    pub ocpp_strictness: Strictness,
    /// What to do with a charger whose chargeBoxId is not registered.
    pub unknown_chargers: UnknownChargers,
    /// What to do with a client offering none of our subprotocols.
    pub subprotocol_mismatch: SubprotocolMismatch,
    /// Whether a charger's configuration is read (GetConfiguration) after the first Boot this
    /// process accepts from it.
    pub read_configuration_on_boot: bool,
    /// NATS servers (`nats://HOST:PORT`, comma-separated) that join the nodes sharing one
    /// PostgreSQL into one cluster; `None`: a single node, no NATS at all.
    pub cluster_url: Option<String>,
    /// This node's name in the cluster, logs and metrics; generated at start when unset.
    pub node_id: String,
    /// How long a node's lease (its word that it holds its chargers) lasts without a refresh
    /// (it refreshes every third of it): how soon a dead node's chargers show offline.
    pub cluster_presence_ttl: Duration,
    /// The base URL chargers reach this server at (`https://cs.example.com`), for the firmware
    /// and diagnostics locations sent to them; `None`: `http://` + the bound `listen` address.
    pub public_url: Option<String>,
    /// The largest firmware file the operator may upload.
    pub firmware_max_bytes: u64,
    /// The largest diagnostics file a charger may upload.
    pub diagnostics_max_bytes: u64,
    /// PEM certificate chain and private key: with both, `listen` speaks TLS only.
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    /// PEM bundle of the CAs that sign charger client certificates (security profile 3).
    pub tls_client_ca: Option<PathBuf>,
    /// A second, plaintext listener (profile 0/1 chargers on a private network, or a proxy).
    pub plain_listen: Option<SocketAddr>,
    /// Failed logins per source address or name before attempts are slowed.
    pub auth_free_failures: u32,
    /// How long a slowed login waits; at most one per key per this.
    pub auth_delay: Duration,
    /// The CA that signs chargers' certificates (SignCertificate): its certificate and its
    /// private key, PEM files, both or neither (the application refuses to start with one).
    /// `None`: SignCertificate is rejected.
    pub charger_ca_cert: Option<PathBuf>,
    pub charger_ca_key: Option<PathBuf>,
}

impl Settings {
    /// Settings for tests and embedding: everything default, the given database.
    pub fn with_database(database_url: impl Into<String>) -> Self {
        let database_url = database_url.into();
        let data_dir = default_data_dir(&database_url);
        Settings {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            database_url,
            api_token: None,
            data_dir,
            log_format: LogFormat::Human,
            log: "info".into(),
            heartbeat_interval: Duration::from_secs(300),
            offline_after_intervals: 2.0,
            ws_ping_interval: Duration::from_secs(60),
            call_timeout: Duration::from_secs(30),
            call_queue: 32,
            max_frame_size: 64 * 1024,
            ws_read_buffer: 1024,
            ws_max_write_buffer: 64 * 1024,
            state_flush_interval: Duration::from_secs(1),
            shutdown_grace: Duration::from_secs(10),
            max_slot: Duration::from_secs(24 * 3600),
            rest_max_concurrency: 512,
            breaker_failures: 3,
            breaker_cool_down: Duration::from_secs(30),
            drain_delay: Duration::ZERO,
            early_start_grace: Duration::from_secs(10 * 60),
            allow_walk_in: true,
            remote_start_wait: Duration::from_secs(10),
            ocpp_strictness: Strictness::Lenient,
            unknown_chargers: UnknownChargers::Reject,
            subprotocol_mismatch: SubprotocolMismatch::Refuse,
            read_configuration_on_boot: true,
            cluster_url: None,
            node_id: generated_node_id(),
            cluster_presence_ttl: Duration::from_secs(30),
            public_url: None,
            firmware_max_bytes: 256 << 20,
            diagnostics_max_bytes: 64 << 20,
            tls_cert: None,
            tls_key: None,
            tls_client_ca: None,
            plain_listen: None,
            auth_free_failures: 5,
            database_pool_size: 16,
            auth_delay: Duration::from_secs(1),
            charger_ca_cert: None,
            charger_ca_key: None,
        }
    }

    /// How long a charger may stay silent before it is considered gone.
    pub fn max_silence(&self) -> Duration {
        self.heartbeat_interval
            .mul_f64(self.offline_after_intervals)
    }
}

/// `node-` and 8 random hex digits: unique enough among a cluster's nodes, short in logs.
fn generated_node_id() -> String {
    format!("node-{:08x}", rand::random::<u32>())
}

pub const DEFAULT_DATABASE_URL: &str = "sqlite://data/echarging.db";

/// The SQLite file's folder, or `data` for a server database.
fn default_data_dir(database_url: &str) -> PathBuf {
    sqlite_path(database_url)
        .and_then(|p| p.parent().map(Path::to_path_buf))
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or_else(|| PathBuf::from("data"))
}

/// The file path of a `sqlite:` URL, without its query string.
pub fn sqlite_path(database_url: &str) -> Option<PathBuf> {
    let rest = database_url
        .strip_prefix("sqlite://")
        .or_else(|| database_url.strip_prefix("sqlite:"))?;
    let path = rest.split('?').next().unwrap_or(rest);
    (!path.is_empty() && path != ":memory:").then(|| PathBuf::from(path))
}

/// What the `echarging` binary was asked to do.
#[derive(Debug, Clone)]
pub enum Invocation {
    Serve(Settings),
    /// Rebuild the read models (my page) from the event log, then exit.
    RebuildProjections(Settings),
}

#[derive(Debug, Parser)]
#[command(
    name = "echarging",
    version,
    about = "OCPP 1.6J EV charging central system"
)]
struct Cli {
    #[command(subcommand)]
    command: Option<CliCommand>,
    /// TOML file with the same keys as the flags (snake_case)
    #[arg(long, env = "ECHARGING_CONFIG", global = true)]
    config: Option<PathBuf>,
    #[command(flatten)]
    values: CliValues,
}

#[derive(Debug, Subcommand)]
enum CliCommand {
    /// Run the central system (the default)
    Serve,
    /// Rebuild the my-page view from the event log, then exit (run it while the server is
    /// stopped)
    RebuildProjections,
}

/// Every setting as text, so that validation (and its one-line error) is ours, not clap's.
#[derive(Debug, Default, clap::Args, Deserialize)]
#[serde(deny_unknown_fields)]
struct CliValues {
    /// Address for REST, OCPP and operations [default: 127.0.0.1:8080]
    #[arg(long, env = "ECHARGING_LISTEN", global = true)]
    listen: Option<String>,
    /// sqlite://PATH (default sqlite://data/echarging.db) or postgres://…
    #[arg(long, env = "ECHARGING_DATABASE_URL", global = true)]
    database_url: Option<String>,
    /// Operator bearer token [default: generated and stored in the data folder]
    #[arg(
        long,
        env = "ECHARGING_API_TOKEN",
        global = true,
        hide_env_values = true
    )]
    api_token: Option<String>,
    /// Folder for generated state [default: the SQLite file's folder, else ./data]
    #[arg(long, env = "ECHARGING_DATA_DIR", global = true)]
    data_dir: Option<String>,
    /// human or json [default: human]
    #[arg(long, env = "ECHARGING_LOG_FORMAT", global = true)]
    log_format: Option<String>,
    /// Log filter, e.g. info or echarging=debug [default: info]
    #[arg(long, env = "ECHARGING_LOG", global = true)]
    log: Option<String>,
    /// Heartbeat interval given to chargers, e.g. 300 or 5m [default: 300s]
    #[arg(long, env = "ECHARGING_HEARTBEAT_INTERVAL", global = true)]
    heartbeat_interval: Option<String>,
    /// Silent for this many heartbeat intervals → offline [default: 2]
    #[arg(long, env = "ECHARGING_OFFLINE_AFTER_INTERVALS", global = true)]
    offline_after_intervals: Option<String>,
    /// WebSocket ping period, 0 disables [default: 60s]
    #[arg(long, env = "ECHARGING_WS_PING_INTERVAL", global = true)]
    ws_ping_interval: Option<String>,
    /// Time allowed for a charger to answer a CALL [default: 30s]
    #[arg(long, env = "ECHARGING_CALL_TIMEOUT", global = true)]
    call_timeout: Option<String>,
    /// Outbound CALLs that may wait per charger [default: 32]
    #[arg(long, env = "ECHARGING_CALL_QUEUE", global = true)]
    call_queue: Option<String>,
    /// Largest accepted WebSocket message in bytes [default: 65536]
    #[arg(long, env = "ECHARGING_MAX_FRAME_SIZE", global = true)]
    max_frame_size: Option<String>,
    /// Per-socket read buffer in bytes, 256 to 4096; larger frames still fit [default: 1024]
    #[arg(long, env = "ECHARGING_WS_READ_BUFFER", global = true)]
    ws_read_buffer: Option<String>,
    /// Unsent bytes allowed per socket [default: 65536]
    #[arg(long, env = "ECHARGING_WS_MAX_WRITE_BUFFER", global = true)]
    ws_max_write_buffer: Option<String>,
    /// How often buffered charger state is written to the database [default: 1s]
    #[arg(long, env = "ECHARGING_STATE_FLUSH_INTERVAL", global = true)]
    state_flush_interval: Option<String>,
    /// Time allowed for a graceful stop [default: 10s]
    #[arg(long, env = "ECHARGING_SHUTDOWN_GRACE", global = true)]
    shutdown_grace: Option<String>,
    /// Longest bookable slot, e.g. 24h [default: 24h]
    #[arg(long, env = "ECHARGING_MAX_SLOT", global = true)]
    max_slot: Option<String>,
    /// REST requests running at once before more get 503 [default: 512]
    #[arg(long, env = "ECHARGING_REST_MAX_CONCURRENCY", global = true)]
    rest_max_concurrency: Option<String>,
    /// Consecutive CALL timeouts that open a charger's breaker [default: 3]
    #[arg(long, env = "ECHARGING_BREAKER_FAILURES", global = true)]
    breaker_failures: Option<String>,
    /// How long an open breaker fails calls fast [default: 30s]
    #[arg(long, env = "ECHARGING_BREAKER_COOL_DOWN", global = true)]
    breaker_cool_down: Option<String>,
    /// On stop, keep serving with /readyz at 503 this long before closing [default: 0s]
    #[arg(long, env = "ECHARGING_DRAIN_DELAY", global = true)]
    drain_delay: Option<String>,
    /// How early a driver may start on their reservation [default: 10m]
    #[arg(long, env = "ECHARGING_EARLY_START_GRACE", global = true)]
    early_start_grace: Option<String>,
    /// Let known idTags charge on unreserved connectors: true or false [default: true]
    #[arg(long, env = "ECHARGING_ALLOW_WALK_IN", global = true)]
    allow_walk_in: Option<String>,
    /// How long remote start waits for the transaction id [default: 10s]
    #[arg(long, env = "ECHARGING_REMOTE_START_WAIT", global = true)]
    remote_start_wait: Option<String>,
    /// lenient (accept off-spec charger frames that mean something, count each deviation) or
    /// strict (refuse what the schemas refuse) [default: lenient]
    #[arg(long, env = "ECHARGING_OCPP_STRICTNESS", global = true)]
    ocpp_strictness: Option<String>,
    /// Unregistered chargers: reject (404), pending (listed for the operator) or accept
    /// [default: reject]
    #[arg(long, env = "ECHARGING_UNKNOWN_CHARGERS", global = true)]
    unknown_chargers: Option<String>,
    /// A client offering no subprotocol we speak: refuse (HTTP 400 at the upgrade) or close
    /// (101 without the header, then close 1002) [default: refuse]
    #[arg(long, env = "ECHARGING_SUBPROTOCOL_MISMATCH", global = true)]
    subprotocol_mismatch: Option<String>,
    /// Read each charger's configuration after its first Boot: true or false [default: true]
    #[arg(long, env = "ECHARGING_READ_CONFIGURATION_ON_BOOT", global = true)]
    read_configuration_on_boot: Option<String>,
    /// NATS URL(s) joining nodes on one PostgreSQL into a cluster, e.g. nats://127.0.0.1:4222
    /// [default: none, a single node]
    #[arg(long, env = "ECHARGING_CLUSTER_URL", global = true)]
    cluster_url: Option<String>,
    /// This node's name in the cluster, logs and metrics [default: generated at start]
    #[arg(long, env = "ECHARGING_NODE_ID", global = true)]
    node_id: Option<String>,
    /// How long a node's presence lease lasts unrefreshed (a dead node's chargers go offline
    /// after it) [default: 30s]
    #[arg(long, env = "ECHARGING_CLUSTER_PRESENCE_TTL", global = true)]
    cluster_presence_ttl: Option<String>,
    /// Base URL chargers reach this server at, for firmware and diagnostics locations
    /// [default: http:// + the listen address]
    #[arg(long, env = "ECHARGING_PUBLIC_URL", global = true)]
    public_url: Option<String>,
    /// Largest firmware upload in bytes [default: 268435456 (256 MiB)]
    #[arg(long, env = "ECHARGING_FIRMWARE_MAX_BYTES", global = true)]
    firmware_max_bytes: Option<String>,
    /// Largest diagnostics upload from a charger in bytes [default: 67108864 (64 MiB)]
    #[arg(long, env = "ECHARGING_DIAGNOSTICS_MAX_BYTES", global = true)]
    diagnostics_max_bytes: Option<String>,
    /// PEM certificate chain; with tls_key, `listen` speaks TLS only (wss://, https://)
    /// [default: none, plaintext]
    #[arg(long, env = "ECHARGING_TLS_CERT", global = true)]
    tls_cert: Option<String>,
    /// PEM private key of tls_cert [default: none]
    #[arg(long, env = "ECHARGING_TLS_KEY", global = true)]
    tls_key: Option<String>,
    /// PEM bundle of the CAs that sign charger client certificates (security profile 3)
    /// [default: none]
    #[arg(long, env = "ECHARGING_TLS_CLIENT_CA", global = true)]
    tls_client_ca: Option<String>,
    /// A second, plaintext listener address, e.g. 10.0.0.5:8081 [default: none]
    #[arg(long, env = "ECHARGING_PLAIN_LISTEN", global = true)]
    plain_listen: Option<String>,
    /// PostgreSQL connections of the ledger's pool, per node (the my-page store opens 4 more)
    /// [default: 16]
    #[arg(long, env = "ECHARGING_DATABASE_POOL_SIZE", global = true)]
    database_pool_size: Option<String>,
    /// Failed logins per source address or charger before attempts are slowed [default: 5]
    #[arg(long, env = "ECHARGING_AUTH_FREE_FAILURES", global = true)]
    auth_free_failures: Option<String>,
    /// How long a slowed login waits (one per address or charger per this) [default: 1s]
    #[arg(long, env = "ECHARGING_AUTH_DELAY", global = true)]
    auth_delay: Option<String>,
    /// PEM certificate of the CA that signs chargers' certificates (SignCertificate); needs
    /// charger_ca_key [default: none, SignCertificate is rejected]
    #[arg(long, env = "ECHARGING_CHARGER_CA_CERT", global = true)]
    charger_ca_cert: Option<String>,
    /// PEM private key of that CA; needs charger_ca_cert [default: none]
    #[arg(long, env = "ECHARGING_CHARGER_CA_KEY", global = true)]
    charger_ca_key: Option<String>,
}

/// A setting that could not be accepted; its `Display` is the one line printed at start-up.
#[derive(Debug, thiserror::Error)]
#[error("invalid setting {key} = {value:?} (from {source_name}): {reason}")]
pub struct SettingError {
    pub key: &'static str,
    pub value: String,
    pub source_name: String,
    pub reason: String,
}

/// Parse the process's arguments and environment. `Err` carries the line to print.
pub fn from_args_and_env() -> Result<Invocation, String> {
    from_iter(std::env::args_os())
}

pub fn from_iter<I, T>(args: I) -> Result<Invocation, String>
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    let matches = match Cli::command().try_get_matches_from(args) {
        Ok(m) => m,
        Err(e) => match e.kind() {
            clap::error::ErrorKind::DisplayHelp | clap::error::ErrorKind::DisplayVersion => {
                e.exit()
            }
            // clap's own message is several lines with usage; one line is the contract.
            _ => {
                let text = e.render().to_string();
                let first = text.lines().next().unwrap_or("invalid arguments");
                return Err(first.trim_start_matches("error: ").to_string());
            }
        },
    };
    let cli = Cli::from_arg_matches(&matches).map_err(|e| e.to_string())?;
    let file = match &cli.config {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .map_err(|e| format!("cannot read config file {}: {e}", path.display()))?;
            toml::from_str::<CliValues>(&text).map_err(|e| {
                let msg = e.message().trim().replace('\n', " ");
                format!("invalid config file {}: {msg}", path.display())
            })?
        }
        None => CliValues::default(),
    };
    let settings =
        resolve(&cli.values, &file, &matches, cli.config.as_deref()).map_err(|e| e.to_string())?;
    match cli.command {
        None | Some(CliCommand::Serve) => Ok(Invocation::Serve(settings)),
        Some(CliCommand::RebuildProjections) => Ok(Invocation::RebuildProjections(settings)),
    }
}

/// One setting's winning text and where it came from.
struct Pick<'a> {
    key: &'static str,
    value: &'a str,
    source_name: String,
}

impl Pick<'_> {
    fn fail(&self, reason: impl Into<String>) -> SettingError {
        SettingError {
            key: self.key,
            value: self.value.to_string(),
            source_name: self.source_name.clone(),
            reason: reason.into(),
        }
    }
}

fn resolve(
    cli: &CliValues,
    file: &CliValues,
    matches: &ArgMatches,
    config_path: Option<&Path>,
) -> Result<Settings, SettingError> {
    let pick = |key: &'static str, flag: &Option<String>, from_file: &Option<String>| {
        let env_name = format!("ECHARGING_{}", key.to_uppercase());
        if let Some(v) = flag.as_deref() {
            let source_name = match matches.value_source(key) {
                Some(ValueSource::EnvVariable) => env_name,
                _ => format!("--{}", key.replace('_', "-")),
            };
            return Some((v.to_string(), source_name));
        }
        from_file.as_deref().map(|v| {
            let path = config_path
                .map(|p| p.display().to_string())
                .unwrap_or_default();
            (v.to_string(), format!("config file {path}"))
        })
    };
    macro_rules! get {
        ($key:ident) => {
            pick(stringify!($key), &cli.$key, &file.$key)
        };
    }
    // Parses one setting when it was given; `$parse` sees a `Pick` to build its error from.
    macro_rules! parse {
        ($key:ident, $parse:expr) => {
            match get!($key) {
                Some((value, source_name)) => {
                    let p = Pick {
                        key: stringify!($key),
                        value: &value,
                        source_name,
                    };
                    #[allow(clippy::redundant_closure_call)]
                    Some(($parse)(&p)?)
                }
                None => None,
            }
        };
    }

    let database_url = parse!(database_url, |p: &Pick| {
        let v = p.value.trim();
        if v.starts_with("sqlite:") {
            if sqlite_path(v).is_none() && !v.contains(":memory:") {
                return Err(p.fail("sqlite URL has no file path"));
            }
            Ok(v.to_string())
        } else if v.starts_with("postgres://") || v.starts_with("postgresql://") {
            Ok(v.to_string())
        } else {
            Err(p.fail("expected sqlite://PATH or postgres://…"))
        }
    })
    .unwrap_or_else(|| DEFAULT_DATABASE_URL.to_string());

    let mut s = Settings::with_database(database_url);
    if let Some(v) = parse!(listen, |p: &Pick| p
        .value
        .trim()
        .parse::<SocketAddr>()
        .map_err(|e| p.fail(e.to_string())))
    {
        s.listen = v;
    }
    s.api_token = parse!(api_token, |p: &Pick| {
        let v = p.value.trim();
        if v.len() < 16 {
            Err(p.fail("an operator token needs at least 16 characters"))
        } else if !v.bytes().all(|b| b.is_ascii_graphic()) {
            Err(p.fail("use printable ASCII without spaces"))
        } else {
            Ok(v.to_string())
        }
    });
    if let Some(v) = parse!(data_dir, |p: &Pick| Ok::<_, SettingError>(PathBuf::from(
        p.value
    ))) {
        s.data_dir = v;
    }
    if let Some(v) = parse!(log_format, |p: &Pick| match p.value.trim() {
        "human" | "text" => Ok(LogFormat::Human),
        "json" => Ok(LogFormat::Json),
        _ => Err(p.fail("expected human or json")),
    }) {
        s.log_format = v;
    }
    if let Some(v) = parse!(log, |p: &Pick| {
        tracing_subscriber::EnvFilter::try_new(p.value)
            .map(|_| p.value.to_string())
            .map_err(|e| p.fail(e.to_string()))
    }) {
        s.log = v;
    }
    let duration = |min: Duration, allow_zero: bool| {
        move |p: &Pick| {
            let d = parse_duration(p.value).map_err(|e| p.fail(e))?;
            if (d.is_zero() && !allow_zero) || (!d.is_zero() && d < min) {
                return Err(p.fail(format!("must be at least {min:?}")));
            }
            if d > MAX_DURATION {
                return Err(p.fail("must be at most a year (365d)"));
            }
            Ok(d)
        }
    };
    if let Some(v) = parse!(heartbeat_interval, |p: &Pick| {
        let d = duration(Duration::from_secs(1), false)(p)?;
        if d.subsec_nanos() != 0 || d.as_secs() > i32::MAX as u64 {
            return Err(p.fail("OCPP sends the interval in whole seconds"));
        }
        Ok(d)
    }) {
        s.heartbeat_interval = v;
    }
    if let Some(v) = parse!(
        offline_after_intervals,
        |p: &Pick| match p.value.trim().parse::<f64>() {
            Ok(f) if (1.0..=100.0).contains(&f) => Ok(f),
            _ => Err(p.fail("expected a number from 1 to 100")),
        }
    ) {
        s.offline_after_intervals = v;
    }
    if let Some(v) = parse!(ws_ping_interval, duration(Duration::from_millis(100), true)) {
        s.ws_ping_interval = v;
    }
    if let Some(v) = parse!(call_timeout, duration(Duration::from_millis(10), false)) {
        s.call_timeout = v;
    }
    if let Some(v) = parse!(call_queue, |p: &Pick| parse_count(p, 1, 10_000)) {
        s.call_queue = v;
    }
    if let Some(v) = parse!(max_frame_size, |p: &Pick| parse_count(p, 1024, 16 << 20)) {
        s.max_frame_size = v;
    }
    if let Some(v) = parse!(ws_read_buffer, |p: &Pick| parse_count(p, 256, 4096)) {
        s.ws_read_buffer = v;
    }
    if let Some(v) = parse!(ws_max_write_buffer, |p: &Pick| parse_count(
        p,
        1024,
        16 << 20
    )) {
        s.ws_max_write_buffer = v;
    }
    if let Some(v) = parse!(
        state_flush_interval,
        duration(Duration::from_millis(10), false)
    ) {
        s.state_flush_interval = v;
    }
    if let Some(v) = parse!(shutdown_grace, duration(Duration::from_millis(0), true)) {
        s.shutdown_grace = v;
    }
    if let Some(v) = parse!(max_slot, duration(Duration::from_secs(60), false)) {
        s.max_slot = v;
    }
    if let Some(v) = parse!(rest_max_concurrency, |p: &Pick| parse_count(p, 1, 100_000)) {
        s.rest_max_concurrency = v;
    }
    if let Some(v) = parse!(breaker_failures, |p: &Pick| parse_count(p, 1, 1000)) {
        s.breaker_failures = v as u32;
    }
    if let Some(v) = parse!(
        breaker_cool_down,
        duration(Duration::from_millis(10), false)
    ) {
        s.breaker_cool_down = v;
    }
    if let Some(v) = parse!(drain_delay, duration(Duration::ZERO, true)) {
        s.drain_delay = v;
    }
    if let Some(v) = parse!(early_start_grace, duration(Duration::ZERO, true)) {
        s.early_start_grace = v;
    }
    if let Some(v) = parse!(allow_walk_in, |p: &Pick| match p.value.trim() {
        "true" | "1" | "yes" | "on" => Ok(true),
        "false" | "0" | "no" | "off" => Ok(false),
        _ => Err(p.fail("expected true or false")),
    }) {
        s.allow_walk_in = v;
    }
    if let Some(v) = parse!(remote_start_wait, duration(Duration::ZERO, true)) {
        s.remote_start_wait = v;
    }
    if let Some(v) = parse!(ocpp_strictness, |p: &Pick| Strictness::parse(p.value)
        .ok_or_else(|| p.fail("expected lenient or strict")))
    {
        s.ocpp_strictness = v;
    }
    if let Some(v) = parse!(unknown_chargers, |p: &Pick| match p.value.trim() {
        "reject" => Ok(UnknownChargers::Reject),
        "pending" => Ok(UnknownChargers::Pending),
        "accept" => Ok(UnknownChargers::Accept),
        _ => Err(p.fail("expected reject, pending or accept")),
    }) {
        s.unknown_chargers = v;
    }
    if let Some(v) = parse!(subprotocol_mismatch, |p: &Pick| match p.value.trim() {
        "refuse" => Ok(SubprotocolMismatch::Refuse),
        "close" => Ok(SubprotocolMismatch::Close),
        _ => Err(p.fail("expected refuse or close")),
    }) {
        s.subprotocol_mismatch = v;
    }
    if let Some(v) = parse!(
        read_configuration_on_boot,
        |p: &Pick| match p.value.trim() {
            "true" | "1" | "yes" | "on" => Ok(true),
            "false" | "0" | "no" | "off" => Ok(false),
            _ => Err(p.fail("expected true or false")),
        }
    ) {
        s.read_configuration_on_boot = v;
    }
    s.cluster_url = parse!(cluster_url, |p: &Pick| {
        let urls: Vec<&str> = p.value.split(',').map(str::trim).collect();
        for url in &urls {
            let rest = url
                .strip_prefix("nats://")
                .or_else(|| url.strip_prefix("tls://"))
                .ok_or_else(|| p.fail("expected nats://HOST:PORT (comma-separated for several)"))?;
            if rest.is_empty() || rest.contains(['/', ' ']) {
                return Err(p.fail("expected nats://HOST:PORT (comma-separated for several)"));
            }
        }
        Ok(urls.join(","))
    });
    if let Some(v) = parse!(node_id, |p: &Pick| {
        let v = p.value.trim();
        if v.is_empty()
            || v.len() > 64
            || !v
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            Err(p.fail("1 to 64 letters, digits, '-' or '_'"))
        } else {
            Ok(v.to_string())
        }
    }) {
        s.node_id = v;
    }
    if let Some(v) = parse!(
        cluster_presence_ttl,
        duration(Duration::from_secs(3), false)
    ) {
        s.cluster_presence_ttl = v;
    }
    s.public_url = parse!(public_url, |p: &Pick| {
        let v = p.value.trim().trim_end_matches('/');
        let rest = v
            .strip_prefix("http://")
            .or_else(|| v.strip_prefix("https://"));
        match rest {
            Some(host) if !host.is_empty() && v.bytes().all(|b| b.is_ascii_graphic()) => {
                Ok(v.to_string())
            }
            _ => Err(p.fail("expected http://HOST[:PORT][/PATH] or https://…")),
        }
    });
    if let Some(v) = parse!(firmware_max_bytes, |p: &Pick| parse_count(p, 1, 1 << 40)) {
        s.firmware_max_bytes = v as u64;
    }
    if let Some(v) = parse!(diagnostics_max_bytes, |p: &Pick| parse_count(p, 1, 1 << 40)) {
        s.diagnostics_max_bytes = v as u64;
    }
    // Paths only: the files are read (and paired) when the server starts, so an example file
    // can name them before they exist.
    let path = |p: &Pick| match p.value.trim() {
        "" => Err(p.fail("empty path")),
        v => Ok(PathBuf::from(v)),
    };
    s.tls_cert = parse!(tls_cert, path);
    s.tls_key = parse!(tls_key, path);
    s.tls_client_ca = parse!(tls_client_ca, path);
    s.plain_listen = parse!(plain_listen, |p: &Pick| p
        .value
        .trim()
        .parse::<SocketAddr>()
        .map_err(|e| p.fail(e.to_string())));
    if let Some(v) = parse!(database_pool_size, |p: &Pick| parse_count(p, 1, 1_000)) {
        s.database_pool_size = v as u32;
    }
    if let Some(v) = parse!(auth_free_failures, |p: &Pick| parse_count(p, 1, 1_000_000)) {
        s.auth_free_failures = v as u32;
    }
    if let Some(v) = parse!(auth_delay, duration(Duration::from_millis(1), false)) {
        s.auth_delay = v;
    }
    s.charger_ca_cert = parse!(charger_ca_cert, path);
    s.charger_ca_key = parse!(charger_ca_key, path);
    Ok(s)
}

fn parse_count(p: &Pick, min: usize, max: usize) -> Result<usize, SettingError> {
    match p.value.trim().parse::<usize>() {
        Ok(n) if (min..=max).contains(&n) => Ok(n),
        _ => Err(p.fail(format!("expected a whole number from {min} to {max}"))),
    }
}

/// The longest any duration setting may be. Every one of them ends up added to an instant
/// (`Instant::now() + call_timeout`, a charger's timestamp + `early_start_grace`, a slot +
/// `max_slot`, the heartbeat interval × `offline_after_intervals`); bounding them here, with
/// charger timestamps bounded to `ocpp::v16::REPORTABLE`, is what keeps that arithmetic from
/// overflowing, so no caller has to handle it. A year is far beyond any sensible value.
pub const MAX_DURATION: Duration = Duration::from_secs(365 * 24 * 3600);

/// `300` (seconds) or a humantime span such as `5m`, `1.5s`, `250ms`.
fn parse_duration(text: &str) -> Result<Duration, String> {
    let t = text.trim();
    if let Ok(secs) = t.parse::<f64>() {
        return Duration::try_from_secs_f64(secs).map_err(|_| "expected a duration".to_string());
    }
    humantime::parse_duration(t).map_err(|e| format!("expected a duration such as 30s: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Settings, String> {
        let mut all = vec!["echarging"];
        all.extend_from_slice(args);
        from_iter(all).map(|i| match i {
            Invocation::Serve(s) | Invocation::RebuildProjections(s) => s,
        })
    }

    #[test]
    fn defaults_match_the_contract() {
        let s = parse(&[]).unwrap();
        assert_eq!(s.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(s.database_url, "sqlite://data/echarging.db");
        assert_eq!(s.data_dir, PathBuf::from("data"));
        assert!(s.api_token.is_none());
    }

    #[test]
    fn flags_are_validated_with_one_line_naming_the_setting() {
        let err = parse(&["--listen", "nowhere"]).unwrap_err();
        assert!(err.starts_with("invalid setting listen = \"nowhere\" (from --listen)"));
        assert!(!err.contains('\n'));
        let err = parse(&["--heartbeat-interval", "1.5"]).unwrap_err();
        assert!(err.contains("heartbeat_interval"), "{err}");
        let err = parse(&["--database-url", "mysql://x"]).unwrap_err();
        assert!(err.contains("database_url"), "{err}");
        let err = parse(&["--bogus"]).unwrap_err();
        assert!(!err.contains('\n'), "{err}");
        assert_eq!(parse(&[]).unwrap().database_pool_size, 16);
        let err = parse(&["--database-pool-size", "0"]).unwrap_err();
        assert!(err.contains("database_pool_size"), "{err}");
        let s = parse(&["--database-pool-size", "9"]).unwrap();
        assert_eq!(s.database_pool_size, 9);
    }

    #[test]
    fn file_is_overridden_by_flags() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("echarging.toml");
        std::fs::write(
            &path,
            "listen = \"127.0.0.1:9000\"\nheartbeat_interval = \"2m\"\ncall_timeout = \"5s\"\n",
        )
        .unwrap();
        let p = path.to_str().unwrap();
        let s = parse(&["--config", p, "--call-timeout", "250ms"]).unwrap();
        assert_eq!(s.listen.port(), 9000);
        assert_eq!(s.heartbeat_interval, Duration::from_secs(120));
        assert_eq!(s.call_timeout, Duration::from_millis(250));

        std::fs::write(&path, "lisen = \"x\"\n").unwrap();
        let err = parse(&["--config", p]).unwrap_err();
        assert!(err.contains("lisen") && !err.contains('\n'), "{err}");
    }

    #[test]
    fn data_dir_follows_the_sqlite_file() {
        let s = parse(&["--database-url", "sqlite:///var/lib/ech/x.db"]).unwrap();
        assert_eq!(s.data_dir, PathBuf::from("/var/lib/ech"));
        let s = parse(&["--database-url", "postgres://u@h/db"]).unwrap();
        assert_eq!(s.data_dir, PathBuf::from("data"));
    }

    #[test]
    fn unknown_chargers_is_one_of_three_words() {
        assert_eq!(
            parse(&[]).unwrap().unknown_chargers,
            UnknownChargers::Reject
        );
        for (word, want) in [
            ("reject", UnknownChargers::Reject),
            ("pending", UnknownChargers::Pending),
            ("accept", UnknownChargers::Accept),
        ] {
            let s = parse(&["--unknown-chargers", word]).unwrap();
            assert_eq!(s.unknown_chargers, want);
        }
        let err = parse(&["--unknown-chargers", "maybe"]).unwrap_err();
        assert_eq!(
            err,
            "invalid setting unknown_chargers = \"maybe\" (from --unknown-chargers): expected \
             reject, pending or accept"
        );
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("echarging.toml");
        std::fs::write(&path, "unknown_chargers = \"pending\"\n").unwrap();
        let s = parse(&["--config", path.to_str().unwrap()]).unwrap();
        assert_eq!(s.unknown_chargers, UnknownChargers::Pending);
    }

    #[test]
    fn subprotocol_mismatch_is_refuse_or_close() {
        assert_eq!(
            parse(&[]).unwrap().subprotocol_mismatch,
            SubprotocolMismatch::Refuse
        );
        let s = parse(&["--subprotocol-mismatch", "close"]).unwrap();
        assert_eq!(s.subprotocol_mismatch, SubprotocolMismatch::Close);
        let err = parse(&["--subprotocol-mismatch", "ignore"]).unwrap_err();
        assert_eq!(
            err,
            "invalid setting subprotocol_mismatch = \"ignore\" (from --subprotocol-mismatch): \
             expected refuse or close"
        );
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("echarging.toml");
        std::fs::write(&path, "subprotocol_mismatch = \"close\"\n").unwrap();
        let s = parse(&["--config", path.to_str().unwrap()]).unwrap();
        assert_eq!(s.subprotocol_mismatch, SubprotocolMismatch::Close);
    }

    #[test]
    fn the_charger_ca_is_two_paths() {
        let s = parse(&[]).unwrap();
        assert_eq!((s.charger_ca_cert, s.charger_ca_key), (None, None));
        let s = parse(&[
            "--charger-ca-cert",
            "/etc/ca.pem",
            "--charger-ca-key",
            "/etc/ca.key",
        ])
        .unwrap();
        assert_eq!(s.charger_ca_cert.as_deref(), Some(Path::new("/etc/ca.pem")));
        assert_eq!(s.charger_ca_key.as_deref(), Some(Path::new("/etc/ca.key")));
        let err = parse(&["--charger-ca-cert", " "]).unwrap_err();
        assert!(
            err.contains("charger_ca_cert") && err.contains("empty path"),
            "{err}"
        );
    }

    #[test]
    fn rest_max_concurrency_is_bounded() {
        assert_eq!(parse(&[]).unwrap().rest_max_concurrency, 512);
        let s = parse(&["--rest-max-concurrency", "8"]).unwrap();
        assert_eq!(s.rest_max_concurrency, 8);
        for bad in ["0", "100001", "many"] {
            let err = parse(&["--rest-max-concurrency", bad]).unwrap_err();
            assert!(err.contains("rest_max_concurrency"), "{err}");
        }
    }

    #[test]
    fn durations_are_bounded_so_arithmetic_with_them_cannot_overflow() {
        for flag in [
            "--call-timeout",
            "--early-start-grace",
            "--max-slot",
            "--heartbeat-interval",
        ] {
            let err = parse(&[flag, "1e18"]).unwrap_err();
            assert!(err.contains("at most a year"), "{flag}: {err}");
            assert!(parse(&[flag, "365d"]).is_ok(), "{flag}");
        }
    }
}
