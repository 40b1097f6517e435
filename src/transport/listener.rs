//! The HTTP/1.1 accept loop for REST, probes and OCPP upgrades, with the limits a public port
//! needs: a request head must arrive within [`ConnectionLimits::header_read_timeout`] (also on
//! an idle keep-alive connection), at most [`ConnectionLimits::max_open`] connections are open
//! (WebSockets included) so the process keeps descriptors for its database, and connections that
//! have not yet sent a request head are capped at [`ConnectionLimits::max_pending`], the oldest
//! closed first, so a flood of half-sent requests cannot crowd out chargers and probes that send
//! theirs at once. An endpoint may speak TLS ([`super::tls`]): its handshake must also finish
//! within the head timeout and counts as not yet sent. Every request carries the [`Peer`] it
//! came from (address, TLS, client certificate verdict) as an extension. It knows no route;
//! stopping is a future the caller passes in.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::Request;
use axum::response::Response;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::server::TlsStream;
use tokio_util::either::Either;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::Peer;
use super::tls::{ClientCert, Tls};

/// Descriptors kept back from connections: database pools, SQLite files, logs, the listener.
const RESERVED_DESCRIPTORS: u64 = 256;

/// The limits of the accept loop.
#[derive(Debug, Clone, Copy)]
pub struct ConnectionLimits {
    /// Open connections at most (REST, probes, and charger WebSockets after their upgrade); one
    /// more is closed at once.
    pub max_open: usize,
    /// Connections that have not yet sent a complete request head; past it the oldest is closed.
    pub max_pending: usize,
    /// How long a client has to send a request head, from connecting or from its last answer.
    pub header_read_timeout: Duration,
}

impl ConnectionLimits {
    /// From the process's open-file limit: all of it but [`RESERVED_DESCRIPTORS`] for
    /// connections, half of those for connections still sending their first head, 10 s for a
    /// head. Raise the open-file limit (`ulimit -n`, `LimitNOFILE`) to hold more chargers.
    pub fn from_open_file_limit() -> Self {
        let max_open = open_file_limit()
            .saturating_sub(RESERVED_DESCRIPTORS)
            .clamp(64, 1 << 20) as usize;
        ConnectionLimits {
            max_open,
            max_pending: (max_open / 2).max(16),
            header_read_timeout: Duration::from_secs(10),
        }
    }
}

fn open_file_limit() -> u64 {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes only into the struct it is given.
    let ok = unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } == 0;
    if ok && limit.rlim_cur != libc::RLIM_INFINITY {
        limit.rlim_cur
    } else {
        1024
    }
}

/// Connections that have sent no request head yet, oldest first, each with the token that
/// closes it. The lock is held only to insert, remove or pop, never across an await.
#[derive(Default)]
struct Pending {
    next_id: AtomicU64,
    waiting: Mutex<BTreeMap<u64, CancellationToken>>,
}

impl Pending {
    /// Registers a new connection, closing the oldest waiting one past `max`.
    fn admit(&self, max: usize) -> (u64, CancellationToken) {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let token = CancellationToken::new();
        let evicted = {
            let mut waiting = self.waiting.lock().unwrap_or_else(|e| e.into_inner());
            let evicted = if waiting.len() >= max {
                waiting.pop_first().map(|(_, t)| t)
            } else {
                None
            };
            waiting.insert(id, token.clone());
            evicted
        };
        if let Some(t) = evicted {
            t.cancel();
        }
        (id, token)
    }

    fn done(&self, id: u64) {
        self.waiting
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&id);
    }
}

/// One listening socket, and the TLS it speaks (`None`: plaintext).
pub struct Endpoint {
    pub listener: TcpListener,
    pub tls: Option<Arc<Tls>>,
}

/// What every accept loop of one `serve` shares: the limits count across endpoints.
struct Shared {
    router: Router,
    limits: ConnectionLimits,
    open: Arc<AtomicUsize>,
    pending: Arc<Pending>,
    closing: CancellationToken,
    connections: TaskTracker,
}

/// Serves `router` on every endpoint until `stop` completes, then closes idle connections,
/// lets in-flight requests finish and returns once every HTTP connection has ended (upgraded
/// sockets are not waited for: their sessions are tracked elsewhere).
pub async fn serve(
    endpoints: Vec<Endpoint>,
    router: Router,
    limits: ConnectionLimits,
    stop: impl Future<Output = ()>,
) -> io::Result<()> {
    let shared = Arc::new(Shared {
        router,
        limits,
        open: Arc::new(AtomicUsize::new(0)),
        pending: Arc::new(Pending::default()),
        closing: CancellationToken::new(),
        connections: TaskTracker::new(),
    });
    let stopping = CancellationToken::new();
    let accepting = futures_util::future::join_all(
        endpoints
            .into_iter()
            .map(|e| accept_loop(e, shared.clone(), stopping.clone())),
    );
    tokio::pin!(stop, accepting);
    tokio::select! {
        _ = &mut stop => {}
        _ = &mut accepting => {}
    }
    stopping.cancel();
    accepting.await;
    shared.closing.cancel();
    shared.connections.close();
    shared.connections.wait().await;
    Ok(())
}

async fn accept_loop(endpoint: Endpoint, shared: Arc<Shared>, stopping: CancellationToken) {
    let Endpoint { listener, tls } = endpoint;
    let limits = shared.limits;
    loop {
        let (tcp, addr) = tokio::select! {
            _ = stopping.cancelled() => return,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of descriptors or a connection reset before it was accepted: wait a
                    // moment rather than spin.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        if shared.open.load(Ordering::Relaxed) >= limits.max_open {
            tracing::debug!(
                max_open = limits.max_open,
                "connection limit reached; closed"
            );
            drop(tcp);
            continue;
        }
        // Small OCPP frames must not wait for Nagle's algorithm.
        let _ = tcp.set_nodelay(true);
        let io = Counted::new(tcp, shared.open.clone());
        let (id, evict) = shared.pending.admit(limits.max_pending);
        let shared = shared.clone();
        let tls = tls.clone();
        shared.connections.clone().spawn(async move {
            let pending = shared.pending.clone();
            tokio::select! {
                _ = connection(io, addr, tls, id, &shared) => {}
                // Closed to make room: it had sent no request yet.
                _ = evict.cancelled() => {}
            }
            pending.done(id);
        });
    }
}

/// One connection: its TLS handshake if the endpoint speaks TLS, then HTTP/1.1 until it ends.
async fn connection(
    io: Counted,
    addr: std::net::SocketAddr,
    tls: Option<Arc<Tls>>,
    id: u64,
    shared: &Shared,
) {
    let limits = shared.limits;
    let (io, peer): (Io, Peer) = match tls {
        None => (
            Either::Left(io),
            Peer {
                addr,
                tls: false,
                client_cert: ClientCert::None,
            },
        ),
        Some(tls) => {
            let acceptor = tokio_rustls::TlsAcceptor::from(tls.config());
            let handshake = tokio::time::timeout(limits.header_read_timeout, acceptor.accept(io));
            let stream = tokio::select! {
                done = handshake => match done {
                    Ok(Ok(stream)) => stream,
                    Ok(Err(e)) => {
                        crate::metrics::tls_handshake(false);
                        tracing::debug!(peer = %addr, error = %e, "TLS handshake failed");
                        return;
                    }
                    Err(_) => {
                        crate::metrics::tls_handshake(false);
                        tracing::debug!(peer = %addr, "TLS handshake timed out");
                        return;
                    }
                },
                _ = shared.closing.cancelled() => return,
            };
            crate::metrics::tls_handshake(true);
            let client_cert = tls.judge(stream.get_ref().1.peer_certificates());
            (
                Either::Right(Box::new(stream)),
                Peer {
                    addr,
                    tls: true,
                    client_cert,
                },
            )
        }
    };
    let first_head = Arc::new(AtomicBool::new(false));
    let service = {
        let router = shared.router.clone();
        let pending = shared.pending.clone();
        let first_head = first_head.clone();
        hyper::service::service_fn(move |mut request: Request<Incoming>| {
            if !first_head.swap(true, Ordering::Relaxed) {
                pending.done(id);
            }
            request.extensions_mut().insert(peer.clone());
            let mut router = router.clone();
            async move {
                let response: Response =
                    tower_service::Service::call(&mut router, request.map(Body::new)).await?;
                Ok::<_, Infallible>(response)
            }
        })
    };
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout);
    let conn = builder
        .serve_connection(TokioIo::new(io), service)
        .with_upgrades();
    tokio::pin!(conn);
    tokio::select! {
        _ = conn.as_mut() => {}
        // Stopping: a connection that never sent a request has nothing to finish.
        _ = shared.closing.cancelled() => if first_head.load(Ordering::Relaxed) {
            conn.as_mut().graceful_shutdown();
            let _ = conn.as_mut().await;
        }
    }
}

/// A connection's byte stream, plaintext or TLS (boxed: a TLS session is kilobytes, and most
/// plaintext deployments should not pay for it).
type Io = Either<Counted, Box<TlsStream<Counted>>>;

/// A TCP stream that counts as open until it is dropped, also after an upgrade hands it to a
/// WebSocket session.
struct Counted {
    tcp: TcpStream,
    open: Arc<AtomicUsize>,
}

impl Counted {
    fn new(tcp: TcpStream, open: Arc<AtomicUsize>) -> Self {
        open.fetch_add(1, Ordering::Relaxed);
        Counted { tcp, open }
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        self.open.fetch_sub(1, Ordering::Relaxed);
    }
}

impl AsyncRead for Counted {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.tcp).poll_read(cx, buf)
    }
}

impl AsyncWrite for Counted {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.tcp).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.tcp).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.tcp).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.tcp).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.tcp.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_oldest_waiting_connection_makes_room() {
        let p = Pending::default();
        let (a, ta) = p.admit(2);
        let (_b, tb) = p.admit(2);
        p.done(a);
        let (_c, tc) = p.admit(2);
        assert!(!ta.is_cancelled() && !tb.is_cancelled() && !tc.is_cancelled());
        let (_d, td) = p.admit(2);
        assert!(tb.is_cancelled(), "the oldest still waiting goes");
        assert!(!tc.is_cancelled() && !td.is_cancelled());
    }

    #[test]
    fn limits_leave_descriptors_for_the_database() {
        let l = ConnectionLimits::from_open_file_limit();
        assert!((l.max_open as u64) < open_file_limit().max(64 + RESERVED_DESCRIPTORS));
        assert!(l.max_pending <= l.max_open && l.max_pending >= 16);
    }
}
