//! The application: [`Application::build`] opens the database, binds the listener and wires the
//! routers; [`Application::run_until_stopped`] serves until the stop token fires, then drains
//! (sessions closed with 1001, in-flight requests finished, buffered charger state written).
//! Tests build it on `127.0.0.1:0` and read the port back.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use axum::Router;
use axum::http::StatusCode;
use axum::middleware;
use tokio::net::{TcpListener, TcpSocket};
use tokio_util::sync::CancellationToken;

use crate::api::load_shed::{self, RestLimit};
use crate::api::ops;
use crate::api::{self, Api, OperatorToken};
use crate::booking::mypage::{self, projector::PageHub};
use crate::booking::store::{self, Store};
use crate::central::breaker::BreakerSettings;
use crate::central::{self, Central, Sessions};
use crate::metrics;
use crate::settings::Settings;
use crate::transport::listener::{self, ConnectionLimits, Endpoint};
use crate::transport::tls::{Tls, TlsFiles};

/// Connections waiting to be accepted; a reconnect storm of thousands of chargers must not
/// see refused connections.
const LISTEN_BACKLOG: u32 = 4096;

/// How often the TLS files are checked for a change (SIGHUP reloads at once).
const TLS_POLL: std::time::Duration = std::time::Duration::from_secs(2);

pub struct Application {
    listener: TcpListener,
    addr: SocketAddr,
    /// `plain_listen`, bound, with its address.
    plain: Option<(TcpListener, SocketAddr)>,
    tls: Option<Arc<Tls>>,
    router: Router,
    central: Arc<Central>,
    api: Arc<Api>,
    limits: ConnectionLimits,
}

impl Application {
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        // Before anything can count: metric handles taken earlier would not reach the recorder.
        metrics::install();
        let settings = Arc::new(settings);
        // A charger CA that cannot be read stops start-up, rather than every SignCertificate.
        match (&settings.charger_ca_cert, &settings.charger_ca_key) {
            (Some(cert), Some(key)) => {
                crate::central::security::ChargerCa::load(cert, key)
                    .context("invalid charger_ca_cert / charger_ca_key")?;
            }
            (None, None) => {}
            _ => {
                anyhow::bail!("charger_ca_cert and charger_ca_key go together: set both or neither")
            }
        }
        let store: Arc<dyn Store> =
            store::open_with_pool(&settings.database_url, settings.database_pool_size)
                .await
                .with_context(|| {
                    format!("cannot open database {}", redact(&settings.database_url))
                })?;
        let (operator, token_file) =
            OperatorToken::load_or_generate(settings.api_token.as_deref(), &settings.data_dir)
                .with_context(|| {
                    format!(
                        "cannot keep the operator token in {}",
                        settings.data_dir.display()
                    )
                })?;
        if let Some(path) = token_file {
            tracing::info!(path = %path.display(), "operator token file (use it as the Bearer token)");
        }
        let tls = match (&settings.tls_cert, &settings.tls_key) {
            (Some(_), None) | (None, Some(_)) => {
                anyhow::bail!("tls_cert and tls_key go together: set both or neither")
            }
            (None, None) if settings.tls_client_ca.is_some() => {
                anyhow::bail!("tls_client_ca needs TLS: set tls_cert and tls_key too")
            }
            (Some(cert), Some(key)) => Some(Arc::new(
                Tls::load(TlsFiles {
                    cert: cert.clone(),
                    key: key.clone(),
                    client_ca: settings.tls_client_ca.clone(),
                })
                .map_err(|e| anyhow::anyhow!("cannot load the TLS files: {e}"))?,
            )),
            _ => None,
        };
        let listener = bind(settings.listen)
            .with_context(|| format!("cannot listen on {}", settings.listen))?;
        let addr = listener.local_addr()?;
        let plain = match settings.plain_listen {
            Some(at) => {
                let l = bind(at).with_context(|| format!("cannot listen on {at}"))?;
                let a = l.local_addr()?;
                Some((l, a))
            }
            None => None,
        };
        let settings = with_public_url(settings, addr, tls.is_some());
        let central = Arc::new(Central::new(
            settings.clone(),
            store,
            Sessions::new(BreakerSettings {
                failures: settings.breaker_failures,
                cool_down: settings.breaker_cool_down,
            }),
            CancellationToken::new(),
        ));
        if let Some(url) = &settings.cluster_url {
            // Nodes share the ledger through PostgreSQL; NATS only carries what is in flight.
            if !settings.database_url.starts_with("postgres") {
                anyhow::bail!("cluster_url needs a postgres:// database_url shared by the nodes");
            }
            let ledger = central.store.ledger_id().await?;
            let cluster = central::cluster::Cluster::connect(
                url,
                &settings.node_id,
                &ledger,
                settings.call_timeout,
                settings.cluster_presence_ttl,
            )
            .await
            .with_context(|| format!("cannot reach the cluster at {url}"))?;
            central.join(Arc::new(cluster));
        }
        let pages = mypage::pages::open(&settings.database_url)
            .await
            .context("cannot open the my-page view")?;
        mypage::projector::adopt(central.store.as_ref(), pages.as_ref()).await?;
        let api = Arc::new(Api {
            store: central.store.clone(),
            central: central.clone(),
            operator,
            pages: pages.clone(),
            hub: Arc::new(PageHub::default()),
            fleet: Default::default(),
            files: Default::default(),
            tokens: crate::transport::throttle::Throttle::new(central::throttle_settings(
                &settings,
            )),
        });
        // REST and operations are measured, and REST is shed past its concurrency limit; the
        // OCPP upgrade is neither, so a REST overload cannot starve charger sessions (nor the
        // reverse). The explicit fallback carries the layers to unmatched requests whatever the
        // merge order (a default fallback would be replaced by the other router's).
        let http = Router::new()
            .merge(api::router(api.clone()))
            .merge(api::console::router(api.clone()))
            .merge(ops::router(central.clone()))
            .fallback(not_found)
            .layer(middleware::from_fn_with_state(
                RestLimit::new(settings.rest_max_concurrency),
                load_shed::shed_rest,
            ))
            .layer(middleware::from_fn(metrics::track_http));
        let router = Router::new()
            .merge(central::router(central.clone()))
            .merge(http);
        Ok(Application {
            listener,
            addr,
            plain,
            tls,
            router,
            central,
            api,
            limits: ConnectionLimits::from_open_file_limit(),
        })
    }

    /// Replaces the connection limits derived from the open-file limit (tests use small ones).
    pub fn set_connection_limits(&mut self, limits: ConnectionLimits) {
        self.limits = limits;
    }

    pub fn connection_limits(&self) -> ConnectionLimits {
        self.limits
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// Where `plain_listen` was bound, if it is set.
    pub fn plain_addr(&self) -> Option<SocketAddr> {
        self.plain.as_ref().map(|(_, a)| *a)
    }

    /// The live sessions, for callers embedding the server (and tests) that send CALLs.
    pub fn central(&self) -> Arc<Central> {
        self.central.clone()
    }

    /// Serve until `stop` is cancelled, then shut down gracefully.
    pub async fn run_until_stopped(self, stop: CancellationToken) -> anyhow::Result<()> {
        let Application {
            listener,
            addr,
            plain,
            tls,
            router,
            central,
            api,
            limits,
        } = self;
        let settings = central.settings.clone();
        let flusher_stop = CancellationToken::new();
        let flusher = tokio::spawn(central::live::run_flusher(
            central.live.clone(),
            central.store.clone(),
            settings.state_flush_interval,
            flusher_stop.clone(),
        ));
        let dispatcher = tokio::spawn(central::dispatcher::run(
            central.clone(),
            flusher_stop.clone(),
        ));
        if let Some(cluster) = central.sessions.cluster() {
            central::cluster::run(cluster.clone(), &central, flusher_stop.clone());
        }
        let projector = tokio::spawn(mypage::projector::run(
            central.store.clone(),
            api.pages.clone(),
            api.hub.clone(),
            flusher_stop.clone(),
        ));
        // Sessions watch `central.shutdown`; cancel it when the caller's token fires.
        let sessions_stop = central.shutdown.clone();
        let stop_watch = stop.clone();
        tokio::spawn(async move {
            stop_watch.cancelled().await;
            sessions_stop.cancel();
        });
        tracing::info!(
            %addr,
            database = %redact(&settings.database_url),
            node = %settings.node_id,
            cluster = settings.cluster_url.as_deref().unwrap_or("none"),
            tls = tls.is_some(),
            "echarging listening"
        );
        // On stop: readiness turns 503 and charger sockets close with 1001 at once (the
        // sessions watch `central.shutdown`); HTTP keeps being answered for the drain delay so
        // load balancers notice, then the listener closes and in-flight requests get the grace
        // period. Upgraded sockets are not requests any more: the session tracker waits for them.
        let drain_delay = settings.drain_delay;
        let stop_accepting = {
            let stop = stop.clone();
            async move {
                stop.cancelled().await;
                tokio::time::sleep(drain_delay).await;
            }
        };
        tracing::info!(
            max_open = limits.max_open,
            max_pending = limits.max_pending,
            header_read_timeout = ?limits.header_read_timeout,
            "connection limits"
        );
        if let Some(tls) = &tls {
            tokio::spawn(tls.clone().watch(TLS_POLL, flusher_stop.clone()));
            reload_on_sighup(tls.clone(), flusher_stop.clone());
        }
        let mut endpoints = vec![Endpoint {
            listener,
            tls: tls.clone(),
        }];
        if let Some((listener, plain_addr)) = plain {
            tracing::info!(%plain_addr, "plaintext listener (plain_listen)");
            endpoints.push(Endpoint {
                listener,
                tls: None,
            });
        }
        let serve = listener::serve(endpoints, router, limits, stop_accepting);
        let deadline = async {
            stop.cancelled().await;
            tokio::time::sleep(drain_delay + settings.shutdown_grace).await;
        };
        let served = tokio::select! {
            result = serve => Some(result),
            _ = deadline => None,
        };
        if served.is_none() {
            tracing::warn!("requests still running after the grace period; stopping anyway");
        }
        tracing::info!("no longer accepting; draining charger sessions");
        central.tracker.close();
        if tokio::time::timeout(settings.shutdown_grace, central.tracker.wait())
            .await
            .is_err()
        {
            tracing::warn!("charger sessions still open after the grace period");
        }
        flusher_stop.cancel();
        let _ = flusher.await;
        let _ = dispatcher.await;
        let _ = projector.await;
        api.pages.close().await;
        central.store.close().await;
        tracing::info!("stopped");
        match served {
            Some(result) => result.context("server error"),
            None => Ok(()),
        }
    }
}

/// `echarging rebuild-projections`: refold the my-page view from the whole event log.
pub async fn rebuild_projections(settings: &Settings) -> anyhow::Result<usize> {
    let store = store::open(&settings.database_url)
        .await
        .with_context(|| format!("cannot open database {}", redact(&settings.database_url)))?;
    let pages = mypage::pages::open(&settings.database_url)
        .await
        .context("cannot open the my-page view")?;
    let events = mypage::projector::rebuild(store.as_ref(), pages.as_ref()).await?;
    pages.close().await;
    store.close().await;
    Ok(events)
}

/// The settings with `public_url` known: as configured, else `http://` + the bound address
/// (the port is known only now when `listen` asked for port 0).
fn with_public_url(settings: Arc<Settings>, addr: SocketAddr, tls: bool) -> Arc<Settings> {
    if settings.public_url.is_some() {
        return settings;
    }
    if addr.ip().is_unspecified() {
        tracing::warn!(%addr, "public_url not set and listening on all addresses: firmware and diagnostics locations sent to chargers name this address; set public_url");
    }
    let mut resolved = (*settings).clone();
    let scheme = if tls { "https" } else { "http" };
    resolved.public_url = Some(format!("{scheme}://{addr}"));
    Arc::new(resolved)
}

/// SIGHUP loads the TLS files again (a bad file is refused and the old one kept).
#[cfg(unix)]
fn reload_on_sighup(tls: Arc<Tls>, stop: CancellationToken) {
    use tokio::signal::unix::{SignalKind, signal};
    let Ok(mut hangups) = signal(SignalKind::hangup()) else {
        tracing::warn!("cannot listen for SIGHUP; TLS files are still reloaded when they change");
        return;
    };
    tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                got = hangups.recv() => if got.is_none() { return },
            }
            match tls.reload() {
                Ok(()) => tracing::info!("SIGHUP: TLS certificate reloaded"),
                Err(e) => {
                    tracing::error!(error = %e, "SIGHUP: cannot load the TLS files; keeping the old certificate")
                }
            }
        }
    });
}

#[cfg(not(unix))]
fn reload_on_sighup(_tls: Arc<Tls>, _stop: CancellationToken) {}

/// What axum answers to an unrouted request by default: 404 with no body.
async fn not_found() -> StatusCode {
    StatusCode::NOT_FOUND
}

fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(LISTEN_BACKLOG)
}

/// A database URL without its password, for logs.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let creds = &url[scheme + 3..at];
            match creds.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..scheme + 3], &url[at..]),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}
