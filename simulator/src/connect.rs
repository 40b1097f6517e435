//! Opening one charger's connection: TCP (optionally from a chosen source address, so many
//! loopback addresses lift the ~28k ephemeral-port limit of one), TLS for `wss://` (rustls,
//! with the CA to trust and, for security profile 3, the charger's client certificate), then
//! the WebSocket upgrade with the OCPP subprotocol and HTTP Basic credentials. Owns
//! `ChargerConfig` and `ConnectError`; what happens on the open socket belongs to `charger`.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use tokio::net::{TcpSocket, TcpStream};
use tokio_rustls::rustls;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
use tokio_tungstenite::tungstenite::error::{ProtocolError, SubProtocolError, UrlError};
use tokio_tungstenite::tungstenite::http::{HeaderValue, header};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{self, Error as WsError};
use tokio_util::either::Either;

/// The subprotocol of OCPP 1.6J.
pub const OCPP16: &str = "ocpp1.6";

/// How to reach the central system as one charger.
#[derive(Debug, Clone)]
pub struct ChargerConfig {
    /// The OCPP endpoint, e.g. `ws://127.0.0.1:8080/ocpp`; the charge box id is appended as a
    /// path segment (percent-encoded where needed).
    pub url: String,
    pub charge_box_id: String,
    /// HTTP Basic password; the username is the charge box id.
    pub password: Option<String>,
    /// Offered in `Sec-WebSocket-Protocol`, in order; empty = offer none.
    pub subprotocols: Vec<String>,
    /// Local address to connect from (port chosen by the kernel).
    pub source_addr: Option<IpAddr>,
    /// Bound on TCP connect + upgrade together.
    pub connect_timeout: Duration,
    /// How long `Charger::call` waits for the answer.
    pub call_timeout: Duration,
    /// How many text frames, each way, the charger keeps for inspection (`received()`,
    /// `sent()`); 0 keeps none, which is what a load run wants.
    pub keep_frames: usize,
    /// Append `/` to the endpoint (`/ocpp/{id}/`), as some chargers are configured.
    pub trailing_slash: bool,
    /// The TLS client for `wss://` URLs (see [`tls_client`]); `None` refuses them.
    pub tls: Option<Arc<rustls::ClientConfig>>,
    /// Other endpoints of the same central system (the other nodes of a cluster): `url` and
    /// these are taken in turn, starting at `first_turn`, one step on every reconnect (see
    /// [`ChargerConfig::next_turn`]).
    pub alternate_urls: Vec<String>,
    /// Which of `url` (0) and `alternate_urls` (1…) the first connection uses.
    pub first_turn: usize,
}

impl ChargerConfig {
    pub fn new(url: impl Into<String>, charge_box_id: impl Into<String>) -> Self {
        ChargerConfig {
            url: url.into(),
            charge_box_id: charge_box_id.into(),
            password: None,
            subprotocols: vec![OCPP16.to_owned()],
            source_addr: None,
            connect_timeout: Duration::from_secs(10),
            call_timeout: Duration::from_secs(10),
            keep_frames: 10_000,
            trailing_slash: false,
            tls: None,
            alternate_urls: Vec::new(),
            first_turn: 0,
        }
    }

    /// The full URL of this charger's endpoint.
    pub fn endpoint(&self) -> String {
        self.endpoint_at(0)
    }

    /// The turn after `turn`. The first reconnect jumps by a stride that differs between
    /// chargers that started on the same endpoint, so a dead node's chargers spread evenly over
    /// all the others instead of all landing on the next one (which might not have the room);
    /// each later one steps by one, so every endpoint is tried in turn.
    pub fn next_turn(&self, turn: usize) -> usize {
        let n = 1 + self.alternate_urls.len();
        if n > 2 && turn == self.first_turn {
            turn.wrapping_add(1 + (self.first_turn / n) % (n - 1))
        } else {
            turn.wrapping_add(1)
        }
    }

    /// The endpoint of connection `turn`: `url`, then each alternate, round and round.
    pub fn endpoint_at(&self, turn: usize) -> String {
        let n = 1 + self.alternate_urls.len();
        let base = match turn % n {
            0 => &self.url,
            i => &self.alternate_urls[i - 1],
        };
        format!(
            "{}/{}{}",
            base.trim_end_matches('/'),
            percent_encode_segment(&self.charge_box_id),
            if self.trailing_slash { "/" } else { "" }
        )
    }
}

/// Why a charger could not get an open WebSocket.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// The server answered the upgrade with something other than 101 (404 unknown charger,
    /// 401 bad credentials, ...).
    #[error("the server answered the upgrade with HTTP {status}")]
    Http { status: u16 },
    /// The server switched protocols without echoing any offered subprotocol; RFC 6455 makes
    /// the client fail the connection, so this is how "offered none of ours" shows up.
    #[error("the server accepted the upgrade without any of the offered subprotocols")]
    NoSubprotocol,
    #[error("{}", describe_io(.0))]
    Io(#[source] io::Error),
    #[error("WebSocket handshake failed: {0}")]
    Ws(#[source] WsError),
    #[error("connect timed out")]
    Timeout,
}

impl From<WsError> for ConnectError {
    fn from(err: WsError) -> Self {
        match err {
            WsError::Http(response) => ConnectError::Http {
                status: response.status().as_u16(),
            },
            WsError::Io(err) => ConnectError::Io(err),
            WsError::Protocol(ProtocolError::SecWebSocketSubProtocolError(
                SubProtocolError::NoSubProtocol,
            )) => ConnectError::NoSubprotocol,
            other => ConnectError::Ws(other),
        }
    }
}

/// The errno text alone rarely tells the operator what to do about the two limits a big run
/// hits first, so say it.
fn describe_io(err: &io::Error) -> String {
    match err.raw_os_error() {
        Some(24) => format!("{err}: raise the open-file limit (ulimit -n)"),
        Some(99) => format!("{err}: out of local ports, spread chargers over --source-addrs"),
        _ => err.to_string(),
    }
}

/// A TLS client that trusts the CAs in `ca_pem` and, when `identity` is given (certificate
/// chain PEM, private key PEM), presents that client certificate (security profile 3).
pub fn tls_client(
    ca_pem: &[u8],
    identity: Option<(&[u8], &[u8])>,
) -> Result<Arc<rustls::ClientConfig>, String> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(ca_pem) {
        let cert = cert.map_err(|e| format!("CA file: {e}"))?;
        roots.add(cert).map_err(|e| format!("CA file: {e}"))?;
    }
    if roots.is_empty() {
        return Err("CA file: no PEM certificate in it".into());
    }
    let builder = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
    .map_err(|e| e.to_string())?
    .with_root_certificates(roots);
    let config = match identity {
        None => builder.with_no_client_auth(),
        Some((chain, key)) => {
            let chain = CertificateDer::pem_slice_iter(chain)
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| format!("client certificate: {e}"))?;
            let key = PrivateKeyDer::from_pem_slice(key).map_err(|e| format!("client key: {e}"))?;
            builder
                .with_client_auth_cert(chain, key)
                .map_err(|e| format!("client certificate: {e}"))?
        }
    };
    Ok(Arc::new(config))
}

/// A charger's byte stream: plaintext, or TLS (boxed: most runs are plaintext and hold tens
/// of thousands of sockets).
pub type Stream = Either<TcpStream, Box<tokio_rustls::client::TlsStream<TcpStream>>>;

/// The open socket and the subprotocol the server echoed.
pub(crate) type Opened = (WebSocketStream<Stream>, Option<String>);

pub(crate) async fn open(cfg: &ChargerConfig, turn: usize) -> Result<Opened, ConnectError> {
    let mut request = cfg.endpoint_at(turn).into_client_request()?;
    let headers = request.headers_mut();
    if !cfg.subprotocols.is_empty() {
        headers.insert(
            header::SEC_WEBSOCKET_PROTOCOL,
            header_value(&cfg.subprotocols.join(", "))?,
        );
    }
    if let Some(password) = &cfg.password {
        let credentials = BASE64.encode(format!("{}:{password}", cfg.charge_box_id));
        headers.insert(
            header::AUTHORIZATION,
            header_value(&format!("Basic {credentials}"))?,
        );
    }
    let uri = request.uri();
    let tls = match (uri.scheme_str(), &cfg.tls) {
        (Some("ws"), _) => None,
        (Some("wss"), Some(tls)) => Some(tls.clone()),
        (Some("wss"), None) => {
            return Err(ConnectError::Ws(WsError::Url(
                UrlError::TlsFeatureNotEnabled,
            )));
        }
        _ => {
            return Err(ConnectError::Ws(WsError::Url(
                UrlError::UnsupportedUrlScheme,
            )));
        }
    };
    let host = uri
        .host()
        .ok_or(ConnectError::Ws(WsError::Url(UrlError::NoHostName)))?
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_owned();
    let port = uri
        .port_u16()
        .unwrap_or(if tls.is_some() { 443 } else { 80 });

    let handshake = async {
        let tcp = dial(&host, port, cfg.source_addr)
            .await
            .map_err(ConnectError::Io)?;
        let stream = match tls {
            None => Either::Left(tcp),
            Some(tls) => {
                let name = ServerName::try_from(host.clone()).map_err(|e| {
                    ConnectError::Io(io::Error::new(io::ErrorKind::InvalidInput, e))
                })?;
                let tls = tokio_rustls::TlsConnector::from(tls)
                    .connect(name, tcp)
                    .await
                    .map_err(ConnectError::Io)?;
                Either::Right(Box::new(tls))
            }
        };
        let (ws, response) =
            tokio_tungstenite::client_async_with_config(request, stream, Some(lean_config()))
                .await?;
        let protocol = response
            .headers()
            .get(header::SEC_WEBSOCKET_PROTOCOL)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        Ok((ws, protocol))
    };
    tokio::time::timeout(cfg.connect_timeout, handshake)
        .await
        .map_err(|_| ConnectError::Timeout)?
}

/// Small buffers: OCPP frames are tiny and a load run holds tens of thousands of sockets.
/// Writes go out eagerly (write buffer 0) since every frame is a whole message worth sending.
fn lean_config() -> WebSocketConfig {
    WebSocketConfig::default()
        .read_buffer_size(4 * 1024)
        .write_buffer_size(0)
        .max_message_size(Some(1 << 20))
        .max_frame_size(Some(1 << 20))
}

async fn dial(host: &str, port: u16, source: Option<IpAddr>) -> io::Result<TcpStream> {
    let mut last_err = None;
    for addr in tokio::net::lookup_host((host, port)).await? {
        if source.is_some_and(|src| src.is_ipv4() != addr.is_ipv4()) {
            continue;
        }
        let socket = if addr.is_ipv4() {
            TcpSocket::new_v4()?
        } else {
            TcpSocket::new_v6()?
        };
        if let Some(src) = source {
            socket.bind(SocketAddr::new(src, 0))?;
        }
        match socket.connect(addr).await {
            Ok(stream) => {
                stream.set_nodelay(true)?;
                return Ok(stream);
            }
            Err(err) => last_err = Some(err),
        }
    }
    Err(last_err.unwrap_or_else(|| {
        io::Error::new(
            io::ErrorKind::AddrNotAvailable,
            format!("{host} has no address of the source address's family"),
        )
    }))
}

fn header_value(text: &str) -> Result<HeaderValue, ConnectError> {
    HeaderValue::from_str(text)
        .map_err(|e| ConnectError::Ws(tungstenite::Error::HttpFormat(e.into())))
}

/// Keeps RFC 3986 unreserved characters, percent-encodes every other byte.
fn percent_encode_segment(segment: &str) -> String {
    let mut out = String::with_capacity(segment.len());
    for byte in segment.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoint_appends_the_encoded_id() {
        let cfg = ChargerConfig::new("ws://127.0.0.1:8080/ocpp/", "CP 1/ä");
        assert_eq!(cfg.endpoint(), "ws://127.0.0.1:8080/ocpp/CP%201%2F%C3%A4");
        let mut cfg = ChargerConfig::new("ws://h/ocpp", "SIM-00001");
        assert_eq!(cfg.endpoint(), "ws://h/ocpp/SIM-00001");
        cfg.alternate_urls = vec!["ws://b/ocpp".into(), "ws://c/ocpp/".into()];
        let turns: Vec<String> = (0..4).map(|t| cfg.endpoint_at(t)).collect();
        assert_eq!(
            turns,
            [
                "ws://h/ocpp/SIM-00001",
                "ws://b/ocpp/SIM-00001",
                "ws://c/ocpp/SIM-00001",
                "ws://h/ocpp/SIM-00001"
            ],
            "each reconnect takes the next node"
        );
    }

    #[test]
    fn a_dead_nodes_chargers_spread_over_all_the_others() {
        let mut landed = [0usize; 3];
        for index in (0..300).step_by(3) {
            let mut cfg = ChargerConfig::new("ws://a/ocpp", "SIM-00001");
            cfg.alternate_urls = vec!["ws://b/ocpp".into(), "ws://c/ocpp".into()];
            cfg.first_turn = index;
            assert_eq!(index % 3, 0, "started on a");
            let first = cfg.next_turn(index);
            landed[first % 3] += 1;
            // From there on, every endpoint comes round within three attempts.
            let mut seen = [false; 3];
            let mut turn = first;
            for _ in 0..3 {
                seen[turn % 3] = true;
                turn = cfg.next_turn(turn);
            }
            assert_eq!(seen, [true; 3], "charger {index}");
        }
        assert_eq!(landed, [0, 50, 50], "half on b, half on c");
    }

    #[test]
    fn errno_hints() {
        let emfile = ConnectError::Io(io::Error::from_raw_os_error(24));
        assert!(emfile.to_string().contains("ulimit -n"), "{emfile}");
    }
}
