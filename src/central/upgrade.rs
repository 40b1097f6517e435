//! `GET /ocpp/{chargeBoxId}`: the gate every charger passes. Order matters: an unknown id is 404
//! (unless `unknown_chargers` lets it in, password-less, for its Boot to be judged); a charger
//! below its security profile (plaintext for 2 and 3, no valid client certificate naming it
//! for 3) is refused 403 and the refusal recorded; a wrong or missing password is 401 (after
//! `auth_free_failures` failures per address or chargeBoxId the login throttle slows attempts
//! and answers 429), all before any WebSocket is made; only then is the subprotocol checked:
//! a client that offers none of ours is refused with HTTP 400, still before any WebSocket
//! (`subprotocol_mismatch = refuse`, what certification expects), or, with `close`, gets the
//! handshake without the header and an immediate close 1002 (OCPP-J 1.6 §3.1.2 allows both);
//! then the session task takes the socket.

use std::sync::Arc;

use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{CloseFrame, Message, WebSocketUpgrade};
use axum::extract::{Extension, Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use tracing::{Instrument, debug, warn};

use super::security;
use super::session::{self, close_code};
use super::{Central, machine_key};
use crate::domain::ChargeBoxId;
use crate::domain::charger::{ChargerCredentials, SecurityProfile};
use crate::domain::security::kind;
use crate::metrics;
use crate::ocpp::v16::{Deviation, Rule, Strictness};
use crate::problem::Problem;
use crate::settings::{SubprotocolMismatch, UnknownChargers};
use crate::telemetry::Escaped;
use crate::transport::{ClientCert, Peer};

/// The only subprotocol we speak.
pub const OCPP16: &str = "ocpp1.6";

#[utoipa::path(
    get,
    path = "/ocpp/{chargeBoxId}",
    tag = "ocpp",
    operation_id = "ocppConnect",
    summary = "OCPP 1.6J WebSocket (for chargers)",
    description = "The WebSocket upgrade a charger opens (`ws://HOST/ocpp/{chargeBoxId}`), \
        offering subprotocol `ocpp1.6`; OCPP-J frames then flow both ways. Checked in order: an \
        unregistered chargeBoxId is 404 (unless the server runs with `unknown_chargers` \
        `pending` or `accept`: then it gets its WebSocket, and its BootNotification is answered \
        Pending or registers it), then a charger registered with a password needs HTTP \
        Basic auth (username = chargeBoxId) or gets 401, both before any WebSocket is made. A \
        client offering no `ocpp1.6` subprotocol (in lenient mode, in no letter case) gets 400 \
        (problem+json), also before any WebSocket; a server run with \
        `subprotocol_mismatch = close` instead answers it the 101 without the subprotocol \
        header and closes at once (1002). A second connection for the same chargeBoxId replaces the \
        first (the old socket is closed). Swagger UI cannot open WebSockets: use a charger or a \
        WebSocket client.",
    params(
        ("chargeBoxId" = String, Path,
            description = "The charger's registered id (1 to 48 letters, digits or `- . _ ~`)"),
        ("Sec-WebSocket-Protocol" = String, Header,
            description = "Must offer `ocpp1.6`", example = "ocpp1.6"),
        ("Upgrade" = String, Header, description = "`websocket`", example = "websocket"),
        ("Connection" = String, Header, description = "`Upgrade`", example = "Upgrade"),
        ("Sec-WebSocket-Version" = String, Header, description = "`13`", example = "13"),
        ("Sec-WebSocket-Key" = String, Header,
            description = "The WebSocket handshake key (RFC 6455)")
    ),
    responses(
        (status = 101, description = "Switching Protocols: the OCPP session starts",
            headers(("Sec-WebSocket-Protocol" = String, description = "`ocpp1.6` (as the charger \
                spelled it); absent only with `subprotocol_mismatch = close` when not offered, \
                and the socket is then closed with 1002"))),
        (status = 400, description = "Not a valid WebSocket handshake (text/plain), or no \
            subprotocol we speak was offered (application/problem+json naming \
            `Sec-WebSocket-Protocol`)",
            content(
                (String = "text/plain"),
                (Problem = "application/problem+json")
            )),
        (status = 401,
            description = "The charger has a password and the HTTP Basic credentials are missing \
                or wrong",
            headers(("WWW-Authenticate" = String,
                description = "`Basic realm=\"echarging\", charset=\"UTF-8\"`")),
            body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No charger is registered with this chargeBoxId (with \
            `unknown_chargers = reject`, the default)",
            body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "The charger registry cannot be read right now; retry shortly",
            body = Problem, content_type = "application/problem+json")
    ),
    security((), ("chargerBasic" = []))
)]
pub(crate) async fn upgrade(
    State(central): State<Arc<Central>>,
    Path(raw_id): Path<String>,
    peer: Option<Extension<Peer>>,
    headers: HeaderMap,
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Response {
    gate(central, raw_id, peer.map(|p| p.0), headers, ws, false).await
}

/// `/ocpp/{chargeBoxId}/`: chargers configured with a base URL ending in a slash append their
/// id and another slash. Lenient mode takes it as the same endpoint (a counted deviation);
/// strict mode answers 404 as for any unknown path.
pub(crate) async fn upgrade_with_slash(
    State(central): State<Arc<Central>>,
    Path(raw_id): Path<String>,
    peer: Option<Extension<Peer>>,
    headers: HeaderMap,
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Response {
    if central.settings.ocpp_strictness == Strictness::Strict {
        return not_registered(&format!("{raw_id}/"));
    }
    gate(central, raw_id, peer.map(|p| p.0), headers, ws, true).await
}

async fn gate(
    central: Arc<Central>,
    raw_id: String,
    peer: Option<Peer>,
    headers: HeaderMap,
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
    trailing_slash: bool,
) -> Response {
    if central.shutdown.is_cancelled() {
        // Draining: a charger must reconnect to another instance.
        let mut response = Problem::new(StatusCode::SERVICE_UNAVAILABLE, "Draining")
            .detail("this instance is shutting down; reconnect to another")
            .into_response();
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        return response;
    }
    let Ok(id) = ChargeBoxId::parse(&raw_id) else {
        return not_registered(&raw_id);
    };
    let credentials = match central.store.charger_credentials(&id).await {
        Ok(Some(c)) => Some(c),
        // api.md `unknown_chargers`: pending or accept let an unknown charger in, without a
        // password; its BootNotification then decides (see `inbound`).
        Ok(None) if central.settings.unknown_chargers == UnknownChargers::Reject => {
            return not_registered(&raw_id);
        }
        Ok(None) => None,
        Err(e) => {
            warn!(error = %e, "charger lookup failed");
            return Problem::new(StatusCode::SERVICE_UNAVAILABLE, "Database unavailable")
                .detail("the charger registry cannot be read right now; retry shortly")
                .into_response();
        }
    };
    if let Some(credentials) = &credentials
        && let Some(refused) =
            authenticate(&central, &id, credentials, peer.as_ref(), &headers).await
    {
        return refused;
    }
    let ws = match ws {
        Ok(ws) => ws,
        Err(rejection) => return rejection.into_response(),
    };
    let s = &central.settings;
    let mut connect_deviations = Vec::new();
    if trailing_slash {
        connect_deviations.push(Deviation {
            rule: Rule::UrlTrailingSlash,
            detail: "a slash after the chargeBoxId in the URL".into(),
        });
    }
    // Echo the charger's own spelling: a client that compares the answer exactly (many do)
    // would refuse "ocpp1.6" when it offered "OCPP1.6".
    let protocol = match offered_protocol(&headers, s.ocpp_strictness) {
        Some(spelling) if spelling != OCPP16 => {
            connect_deviations.push(Deviation {
                rule: Rule::SubprotocolCase,
                detail: format!("subprotocol \"{}\"", Escaped(&spelling)),
            });
            spelling
        }
        _ => OCPP16.to_owned(),
    };
    let ws = ws
        .protocols([protocol])
        .read_buffer_size(s.ws_read_buffer)
        .write_buffer_size(0)
        .max_write_buffer_size(s.ws_max_write_buffer)
        .max_message_size(s.max_frame_size)
        .max_frame_size(s.max_frame_size);
    if ws.selected_protocol().is_none() && s.subprotocol_mismatch == SubprotocolMismatch::Refuse {
        debug!(charger = %id, "refused: no supported subprotocol offered");
        return no_subprotocol(&headers);
    }
    if ws.selected_protocol().is_none() {
        debug!(charger = %id, "rejected: no supported subprotocol offered");
        return ws.on_upgrade(|mut socket| async move {
            let _ = socket
                .send(Message::Close(Some(CloseFrame {
                    code: close_code::PROTOCOL_ERROR,
                    reason: "subprotocol ocpp1.6 required".into(),
                })))
                .await;
        });
    }
    if !connect_deviations.is_empty() {
        let live = central.live.entry(&id);
        for deviation in &connect_deviations {
            central
                .live
                .note_deviation(&id, &live, "Connect", deviation);
        }
    }
    let tracker = central.tracker.clone();
    let peer_ip = peer.as_ref().map(|p| p.addr.ip());
    ws.on_upgrade(move |socket| {
        let span = tracing::info_span!("charger", id = %id);
        tracker.track_future(session::run(socket, id, central, peer_ip).instrument(span))
    })
}

/// Whether the charger proves its profile; `Some`: the refusal to answer. The profile comes
/// first: no password can make up for a missing TLS or certificate, and a charger refused for
/// its transport has not guessed anything, so it is not throttled.
async fn authenticate(
    central: &Central,
    id: &ChargeBoxId,
    credentials: &ChargerCredentials,
    peer: Option<&Peer>,
    headers: &HeaderMap,
) -> Option<Response> {
    let profile = credentials.security_profile;
    if let Err(Refusal {
        reason,
        kind,
        detail,
    }) = check_profile(id, profile, peer)
    {
        metrics::security_refusal(reason);
        warn!(charger = %id, profile = %profile, peer = ?peer.map(|p| p.addr), reason, detail = %Escaped(&detail), "refused: below the charger's security profile");
        // Kept where the operator reads the charger's security events.
        let addr = peer.map(|p| p.addr.ip());
        security::record(central, id, kind, Some(&detail), addr).await;
        return Some(
            Problem::new(StatusCode::FORBIDDEN, "Below the security profile")
                .detail(detail)
                .into_response(),
        );
    }
    // Profile 3 is proved by the certificate; below it a stored password is always asked
    // for (profile 0 with a password left from before is not weaker than it looks).
    let hash = credentials.password_hash.as_deref()?;
    if profile == SecurityProfile::TLS_CLIENT_CERT {
        return None;
    }
    let source = peer.map(Peer::source);
    let attempt = match source {
        Some(source) => match central.logins.enter(source, id.as_str()).await {
            Ok(attempt) => Some(attempt),
            Err(retry) => {
                metrics::auth_throttled("charger");
                debug!(charger = %id, %source, "login throttled");
                return Some(too_many(retry.seconds()));
            }
        },
        None => None,
    };
    if basic_auth_matches(headers, id, hash) {
        if let Some(a) = attempt {
            a.succeeded();
        }
        return None;
    }
    metrics::auth_failure("charger");
    let (slowed, crossed) = attempt.map_or((false, false), |a| a.failed_and_crossed());
    debug!(charger = %id, peer = ?source, "rejected: bad or missing credentials");
    if crossed {
        let detail = format!(
            "{} failed logins for this charger or from {}: attempts slowed to one per {:?}",
            central.logins.settings().free_failures,
            source.map(|s| s.to_string()).unwrap_or_default(),
            central.logins.settings().delay
        );
        security::record(central, id, kind::LOGIN_THROTTLED, Some(&detail), source).await;
    }
    if slowed {
        metrics::auth_throttled("charger");
        warn!(charger = %id, peer = ?source, "repeated failed logins: slowed");
        return Some(too_many(central.logins.settings().delay.as_secs().max(1)));
    }
    let mut response = Problem::new(StatusCode::UNAUTHORIZED, "Unauthorized")
        .detail("this charger requires HTTP Basic authentication with its password")
        .into_response();
    response.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static("Basic realm=\"echarging\", charset=\"UTF-8\""),
    );
    Some(response)
}

/// Why a connection does not meet its charger's profile.
struct Refusal {
    /// The metric label.
    reason: &'static str,
    /// The security event's kind.
    kind: &'static str,
    detail: String,
}

impl Refusal {
    fn new(reason: &'static str, kind: &'static str, detail: String) -> Refusal {
        Refusal {
            reason,
            kind,
            detail,
        }
    }
}

/// Whether the connection meets `profile`.
fn check_profile(
    id: &ChargeBoxId,
    profile: SecurityProfile,
    peer: Option<&Peer>,
) -> Result<(), Refusal> {
    if !profile.needs_tls() {
        return Ok(());
    }
    // No peer facts: served by a listener that does not say (an embedding); treat as plain.
    let Some(peer) = peer.filter(|p| p.tls) else {
        return Err(Refusal::new(
            "plaintext",
            kind::REFUSED_PLAINTEXT,
            format!("security profile {profile} needs TLS: connect with wss://"),
        ));
    };
    if profile < SecurityProfile::TLS_CLIENT_CERT {
        return Ok(());
    }
    match &peer.client_cert {
        ClientCert::None => Err(Refusal::new(
            "no_certificate",
            kind::REFUSED_NO_CERTIFICATE,
            "security profile 3 needs a TLS client certificate".to_owned(),
        )),
        ClientCert::Invalid(why) => Err(Refusal::new(
            "invalid_certificate",
            kind::REFUSED_CERTIFICATE,
            format!("the client certificate is not acceptable: {why}"),
        )),
        ClientCert::Valid { common_name } if common_name.as_deref() != Some(id.as_str()) => {
            Err(Refusal::new(
                "certificate_for_another",
                kind::REFUSED_CERTIFICATE,
                format!(
                    "the client certificate names {:?}, not this charger",
                    common_name.as_deref().unwrap_or("")
                ),
            ))
        }
        ClientCert::Valid { .. } => Ok(()),
    }
}

fn too_many(retry_after: u64) -> Response {
    let mut response = Problem::new(StatusCode::TOO_MANY_REQUESTS, "Too many failed logins")
        .detail(format!(
            "too many failed logins from this address or for this charger; retry in {retry_after} s"
        ))
        .into_response();
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(retry_after));
    response
}

/// In lenient mode, the spelling of `ocpp1.6` the charger offered in another letter case, if
/// it offered no exact one.
fn offered_protocol(headers: &HeaderMap, strictness: Strictness) -> Option<String> {
    if strictness == Strictness::Strict {
        return None;
    }
    let offered = headers
        .get_all(header::SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim);
    let mut other_case = None;
    for protocol in offered {
        if protocol == OCPP16 {
            return None;
        }
        if other_case.is_none() && protocol.eq_ignore_ascii_case(OCPP16) {
            other_case = Some(protocol.to_owned());
        }
    }
    other_case
}

/// 400 before any WebSocket: the detail says what was offered (escaped, bounded) and what we
/// speak, so the installer sees the misconfiguration in the charger's log.
fn no_subprotocol(headers: &HeaderMap) -> Response {
    let offered: Vec<&str> = headers
        .get_all(header::SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .take(8)
        .collect();
    let detail = if offered.is_empty() {
        format!("no WebSocket subprotocol was offered; this server speaks only {OCPP16}")
    } else {
        let mut list = offered.join(", ");
        if list.len() > 200 {
            let mut cut = 200;
            while !list.is_char_boundary(cut) {
                cut -= 1;
            }
            list.truncate(cut);
            list.push('…');
        }
        format!(
            "none of the offered subprotocols ({}) is spoken here; this server speaks only {OCPP16}",
            Escaped(&list)
        )
    };
    Problem::new(StatusCode::BAD_REQUEST, "Unsupported subprotocol")
        .detail(detail)
        .field("Sec-WebSocket-Protocol")
        .into_response()
}

fn not_registered(raw_id: &str) -> Response {
    Problem::new(StatusCode::NOT_FOUND, "Unknown charger")
        .detail(format!("no charger {raw_id:?} is registered"))
        .into_response()
}

/// HTTP Basic with username = charge box id and the charger's password.
fn basic_auth_matches(headers: &HeaderMap, id: &ChargeBoxId, hash: &str) -> bool {
    let Some(value) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let Some(encoded) = value
        .strip_prefix("Basic ")
        .or_else(|| value.strip_prefix("basic "))
    else {
        return false;
    };
    let Ok(decoded) = base64::engine::general_purpose::STANDARD.decode(encoded.trim()) else {
        return false;
    };
    // The password may hold any bytes, ':' included; only the first ':' separates.
    let Some(colon) = decoded.iter().position(|&b| b == b':') else {
        return false;
    };
    let (user, password) = (&decoded[..colon], &decoded[colon + 1..]);
    user == id.as_str().as_bytes()
        && std::str::from_utf8(password).is_ok_and(|p| machine_key::verify(hash, p))
}
