//! One charger session: the single task that owns a charger's socket after the upgrade. It
//! `select!`s over inbound frames, the charger's queue of outbound CALLs, the deadline of the one
//! CALL on the wire, the liveness tick and the end signals (shutdown, replaced, deregistered).
//! A protocol error becomes a CALLERROR and the session goes on; only transport errors, silence
//! or an end signal close it. A panic while handling one frame is caught and answered
//! InternalError; a panic anywhere else still unregisters the session (see [`Registered`]).
//! Nothing here blocks on the database.

use std::borrow::Cow;
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use axum::extract::ws::{CloseFrame, Message, WebSocket};
use futures_util::FutureExt as _;
use time::OffsetDateTime;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{debug, error, info, warn};

use super::calls::{CallFailure, InFlight, QueuedCall};
use super::live::ChargerLive;
use super::registry::{EndReason, SessionHandle};
use super::{Central, inbound};
use crate::domain::ChargeBoxId;
use crate::metrics;
use crate::ocpp::v16::{
    self as ocpp, CallError, CallResult, ChargePointRequest, DecodeError, Decoded, ErrorCode,
    Frame, FrameError, Strictness,
};
use crate::telemetry::Escaped;

/// A socket that cannot take a frame for this long is treated as dead.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);

/// WebSocket close codes (RFC 6455 §7.4.1).
pub mod close_code {
    pub const NORMAL: u16 = 1000;
    pub const GOING_AWAY: u16 = 1001;
    pub const PROTOCOL_ERROR: u16 = 1002;
    /// Invalid frame payload data: a text frame that is not UTF-8.
    pub const INVALID_PAYLOAD: u16 = 1007;
    pub const POLICY: u16 = 1008;
    pub const TOO_BIG: u16 = 1009;
}

struct Session {
    id: ChargeBoxId,
    connection: u64,
    /// The charger's source address, when the listener said (kept on its security events).
    peer: Option<std::net::IpAddr>,
    socket: WebSocket,
    live: Arc<ChargerLive>,
    central: Arc<Central>,
    in_flight: Option<InFlight>,
    sent_calls: u64,
    last_inbound: Instant,
    call_errors: CallErrorLog,
}

/// Why the loop ended: the close frame to send, if any, and a word for the log.
struct Ending {
    close: Option<(u16, &'static str)>,
    why: &'static str,
}

/// Run a session until the charger leaves or is told to.
pub(crate) async fn run(
    socket: WebSocket,
    id: ChargeBoxId,
    central: Arc<Central>,
    peer: Option<std::net::IpAddr>,
) {
    let connection = central.sessions.next_connection_id();
    let (calls, mut queue) = mpsc::channel(central.settings.call_queue);
    // A child of the shutdown token: a shutdown ends the session through it, so the session
    // polls one token per message, not two (each poll of a token takes its lock).
    let end = central.shutdown.child_token();
    let end_reason = Arc::new(OnceLock::new());
    central.sessions.register(
        id.clone(),
        SessionHandle {
            connection,
            calls,
            end: end.clone(),
            end_reason: end_reason.clone(),
            booted: Default::default(),
        },
    );
    let registered = Registered {
        id: id.clone(),
        connection,
        central: central.clone(),
    };
    let live = central.live.entry(&id);
    live.touch(OffsetDateTime::now_utc());
    central.live.mark_dirty(&id);
    info!(connection, peer = ?peer, "charger connected");

    let mut session = Session {
        id,
        connection,
        peer,
        socket,
        live,
        central,
        in_flight: None,
        sent_calls: 0,
        last_inbound: Instant::now(),
        call_errors: CallErrorLog::default(),
    };
    let ending = session.serve(&mut queue, &end, &end_reason).await;
    session.finish(ending, &mut queue).await;
    drop(registered);
}

/// The session's place in the registry, released on drop: after [`Session::finish`] normally,
/// during unwinding when the task panicked outside the per-frame guard. Without it a panicked
/// session would stay "online" forever and take every later call into its dead queue. (Callers
/// waiting on it get `Disconnected`: their reply senders drop with the task.)
pub(crate) struct Registered {
    pub(crate) id: ChargeBoxId,
    pub(crate) connection: u64,
    pub(crate) central: Arc<Central>,
}

impl Drop for Registered {
    fn drop(&mut self) {
        // Idempotent: a no-op after `finish`, or when a newer connection took the slot.
        self.central.sessions.unregister(&self.id, self.connection);
        self.central.live.mark_dirty(&self.id);
        if std::thread::panicking() {
            error!(
                charger = %self.id,
                connection = self.connection,
                "charger session task panicked; session removed"
            );
        }
    }
}

/// What one inbound text frame turned out to be, computed without touching the session, so
/// that a panic in the parser or decoder can be caught around it.
// A short-lived value on the stack, one per frame: boxing the big variant would cost every
// request an allocation to save bytes nobody keeps.
#[allow(clippy::large_enum_variant)]
enum Inbound<'a> {
    Request {
        id: Cow<'a, str>,
        action: Cow<'a, str>,
        request: Result<Decoded<ChargePointRequest>, DecodeError>,
    },
    Result(CallResult<'a>),
    Error(CallError<'a>),
    Malformed(FrameError),
}

fn classify(text: &str, strictness: Strictness) -> Inbound<'_> {
    match Frame::parse(text) {
        Ok(Frame::Call(call)) => Inbound::Request {
            request: ChargePointRequest::decode_with(&call.action, call.payload, strictness),
            id: call.id,
            action: call.action,
        },
        Ok(Frame::CallResult(result)) => Inbound::Result(result),
        Ok(Frame::CallError(error)) => Inbound::Error(error),
        Err(e) => Inbound::Malformed(e),
    }
}

impl Session {
    async fn serve(
        &mut self,
        queue: &mut mpsc::Receiver<Box<QueuedCall>>,
        end: &CancellationToken,
        end_reason: &OnceLock<EndReason>,
    ) -> Ending {
        let settings = self.central.settings.clone();
        let max_silence = settings.max_silence();
        let ping = settings.ws_ping_interval;
        // The tick both pings and checks silence, so it runs at least four times per allowed
        // silence even when pings are off.
        let period = if ping.is_zero() {
            max_silence / 4
        } else {
            ping.min(max_silence / 2)
        };
        let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let shutdown = self.central.shutdown.clone();
        // Made once, not per message: each `cancelled()` future joins the token's waiter list
        // under its lock and leaves it when dropped. `end` is a child of the shutdown token.
        let ended = end.cancelled();
        tokio::pin!(ended);

        loop {
            let deadline = self.in_flight.as_ref().map(|c| c.deadline);
            tokio::select! {
                biased;
                _ = &mut ended => {
                    if shutdown.is_cancelled() {
                        return Ending {
                            close: Some((close_code::GOING_AWAY, "central system shutting down")),
                            why: "shutdown",
                        };
                    }
                    return match end_reason.get() {
                        Some(EndReason::Deregistered) => Ending {
                            close: Some((close_code::POLICY, "charger deregistered")),
                            why: "deregistered",
                        },
                        Some(EndReason::Rejected) => Ending {
                            close: Some((close_code::POLICY, "charger rejected by the operator")),
                            why: "rejected",
                        },
                        _ => Ending {
                            close: Some((close_code::NORMAL, "replaced by a newer connection")),
                            why: "replaced",
                        },
                    };
                }
                inbound = self.socket.recv() => {
                    match inbound {
                        None => return Ending { close: None, why: "socket closed" },
                        Some(Err(e)) => return transport_ending(&e),
                        Some(Ok(message)) => {
                            if let Some(ending) = self.on_message(message).await {
                                return ending;
                            }
                        }
                    }
                }
                _ = until(deadline) => {
                    if let Some(call) = self.in_flight.take() {
                        warn!(action = call.action, message_id = %call.message_id, "call timed out");
                        let _ = call.reply.send(Err(CallFailure::Timeout));
                    }
                }
                Some(call) = queue.recv(), if self.in_flight.is_none() => {
                    if let Some(ending) = self.send_call(call).await {
                        return ending;
                    }
                }
                _ = tick.tick() => {
                    if self.last_inbound.elapsed() > max_silence {
                        return Ending {
                            close: Some((close_code::NORMAL, "no message within the heartbeat allowance")),
                            why: "silent",
                        };
                    }
                    if !ping.is_zero()
                        && let Some(ending) = self.write(Message::Ping(Default::default())).await
                    {
                        return ending;
                    }
                }
            }
        }
    }

    /// Handle one inbound WebSocket message; `Some` ends the session.
    async fn on_message(&mut self, message: Message) -> Option<Ending> {
        self.last_inbound = Instant::now();
        self.live.touch(OffsetDateTime::now_utc());
        let text = match message {
            Message::Text(text) => text,
            Message::Binary(_) => {
                // OCPP-J carries only text frames; answer like any unparseable frame.
                metrics::invalid_frame_in();
                metrics::invalid_frame_out();
                metrics::callerror_sent(ErrorCode::FormationViolation);
                let reply = ocpp::encode_call_error(
                    ocpp::UNREADABLE_MESSAGE_ID,
                    ErrorCode::FormationViolation,
                    "OCPP-J frames must be text",
                    None,
                );
                self.call_errors.sent(&self.id, "unknown", &reply);
                return self.write(Message::Text(reply.into())).await;
            }
            Message::Ping(_) | Message::Pong(_) => return None,
            Message::Close(_) => {
                return Some(Ending {
                    close: None,
                    why: "charger closed",
                });
            }
        };
        let text = text.as_str();
        let (action, reply) = self.reply_to(text).await;
        match reply {
            Some(reply) => {
                if reply.starts_with("[4,") {
                    self.call_errors.sent(&self.id, &action, &reply);
                }
                self.write(Message::Text(reply.into())).await
            }
            None => None,
        }
    }

    /// The answer to one text frame, if it gets one, and the action it belongs to (for the log).
    async fn reply_to<'t>(&mut self, text: &'t str) -> (Cow<'t, str>, Option<String>) {
        let strictness = self.central.settings.ocpp_strictness;
        let inbound = match std::panic::catch_unwind(|| classify(text, strictness)) {
            Ok(inbound) => inbound,
            Err(_) => {
                error!(
                    frame = %Escaped(prefix(text, 120)),
                    "decoding a frame panicked; answered InternalError"
                );
                metrics::invalid_frame_in();
                metrics::callerror_sent(ErrorCode::InternalError);
                let reply = ocpp::encode_call_error(
                    ocpp::UNREADABLE_MESSAGE_ID,
                    ErrorCode::InternalError,
                    "internal error",
                    None,
                );
                return (Cow::Borrowed("unknown"), Some(reply));
            }
        };
        let reply = match inbound {
            // A broken answer is logged, never answered: a CALLERROR for a CALLRESULT could
            // ping-pong between two peers that both do so. When it still names the call on the
            // wire, that call fails now (BadResponse) instead of waiting for its timeout.
            Inbound::Malformed(e) if is_answer(text) => {
                metrics::invalid_frame_in();
                match self.in_flight.as_ref() {
                    Some(call) if e.message_id.as_deref() == Some(call.message_id.as_str()) => {
                        warn!(
                            action = call.action,
                            code = %e.code,
                            "malformed answer to our call: {}",
                            Escaped(&e.description)
                        );
                        let action = call.action;
                        let reason = format!("{}: {}", e.code, e.description);
                        self.settle(
                            e.reply_id(),
                            Err(CallFailure::BadResponse { action, reason }),
                        );
                    }
                    _ => warn!(
                        code = %e.code,
                        "malformed CALLRESULT/CALLERROR ignored: {}",
                        Escaped(&e.description)
                    ),
                }
                None
            }
            Inbound::Malformed(e) => {
                metrics::invalid_frame_in();
                metrics::invalid_frame_out();
                metrics::callerror_sent(e.code);
                Some(ocpp::encode_call_error(
                    e.reply_id(),
                    e.code,
                    &e.description,
                    None,
                ))
            }
            Inbound::Request {
                id,
                action,
                request: Err(e),
            } => {
                metrics::frame_answered(&action);
                metrics::callerror_sent(e.code);
                let reply = ocpp::encode_call_error(&id, e.code, &e.description, None);
                return (action, Some(reply));
            }
            Inbound::Request {
                id,
                request: Ok(decoded),
                ..
            } => {
                // Counted here, the answer's CALLERRORs (if any) in `inbound`.
                let request = decoded.value;
                let action = request.action();
                metrics::frame_answered(action);
                for deviation in &decoded.deviations {
                    self.central
                        .live
                        .note_deviation(&self.id, &self.live, action, deviation);
                }
                let answer = inbound::answer(
                    &self.central,
                    &self.id,
                    self.connection,
                    self.peer,
                    &self.live,
                    &id,
                    request,
                );
                let reply = guarded(answer, &id, action).await;
                return (Cow::Borrowed(action), Some(reply));
            }
            Inbound::Result(result) => {
                self.settle(&result.id, Ok(result.payload.get().to_owned()));
                None
            }
            Inbound::Error(error) => {
                metrics::callerror_received(error.code);
                let details = serde_json::from_str(error.details.get()).unwrap_or_default();
                self.settle(
                    &error.id,
                    Err(CallFailure::CallError {
                        code: error.code,
                        description: error.description.into_owned(),
                        details,
                    }),
                );
                None
            }
        };
        (Cow::Borrowed("unknown"), reply)
    }

    /// Deliver the answer to the call on the wire, if `message_id` is that call's.
    fn settle(&mut self, message_id: &str, answer: Result<String, CallFailure>) {
        match self.in_flight.take() {
            Some(call) if call.message_id == message_id => {
                debug!(action = call.action, message_id, "call answered");
                metrics::frame_in(call.action);
                // The deadline was set when the call was written.
                let written = call.deadline - self.central.settings.call_timeout;
                metrics::call_answered(call.action, written);
                let _ = call.reply.send(answer);
            }
            other => {
                self.in_flight = other;
                metrics::frame_in("unknown"); // not an OCPP action: counted as unknown
                warn!(
                    message_id = %Escaped(message_id),
                    "answer for a call that is not outstanding (late or unknown); ignored"
                );
            }
        }
    }

    async fn send_call(&mut self, call: Box<QueuedCall>) -> Option<Ending> {
        let call = *call;
        if call.reply.is_closed() {
            return None; // the caller gave up while it waited in the queue
        }
        self.sent_calls += 1;
        // Unique across this charger's connections, so a late answer cannot match a newer call.
        let message_id = format!("{:x}-{}", self.connection, self.sent_calls);
        let frame = format!("[2,\"{message_id}\",\"{}\",{}]", call.action, call.payload);
        metrics::frame_out(call.action);
        self.in_flight = Some(InFlight {
            message_id,
            action: call.action,
            deadline: Instant::now() + self.central.settings.call_timeout,
            reply: call.reply,
        });
        self.write(Message::Text(frame.into())).await
    }

    /// Write one message; a socket that errors or stays full past the write timeout ends the
    /// session.
    async fn write(&mut self, message: Message) -> Option<Ending> {
        match tokio::time::timeout(WRITE_TIMEOUT, self.socket.send(message)).await {
            Ok(Ok(())) => None,
            Ok(Err(e)) => Some(transport_ending(&e)),
            Err(_) => Some(Ending {
                close: None,
                why: "write timed out",
            }),
        }
    }

    async fn finish(mut self, ending: Ending, queue: &mut mpsc::Receiver<Box<QueuedCall>>) {
        if let Some((code, reason)) = ending.close {
            let frame = Message::Close(Some(CloseFrame {
                code,
                reason: reason.into(),
            }));
            let _ = tokio::time::timeout(Duration::from_secs(1), self.socket.send(frame)).await;
        }
        if let Some(call) = self.in_flight.take() {
            let _ = call.reply.send(Err(CallFailure::Disconnected));
        }
        queue.close();
        while let Ok(call) = queue.try_recv() {
            let _ = call.reply.send(Err(CallFailure::Disconnected));
        }
        self.central.sessions.unregister(&self.id, self.connection);
        self.central.live.mark_dirty(&self.id);
        info!(
            connection = self.connection,
            why = ending.why,
            "charger disconnected"
        );
    }
}

/// A transport error ends the session; a message over the size limit is answered with 1009.
fn transport_ending(error: &axum::Error) -> Ending {
    use std::error::Error as _;
    let capacity = error
        .source()
        .and_then(|s| s.downcast_ref::<tungstenite::Error>())
        .is_some_and(|e| matches!(e, tungstenite::Error::Capacity(_)));
    let tungstenite = error
        .source()
        .and_then(|s| s.downcast_ref::<tungstenite::Error>());
    if capacity {
        Ending {
            close: Some((close_code::TOO_BIG, "message larger than the limit")),
            why: "message too big",
        }
    } else if matches!(tungstenite, Some(tungstenite::Error::Utf8(_))) {
        // RFC 6455 §8.1: a text frame that is not UTF-8 fails the connection with 1007.
        Ending {
            close: Some((close_code::INVALID_PAYLOAD, "text frame is not UTF-8")),
            why: "invalid UTF-8",
        }
    } else {
        debug!(error = %error, "transport error");
        Ending {
            close: None,
            why: "transport error",
        }
    }
}

/// The answer `handle` produces for the request `message_id`, or, should it panic, an
/// InternalError CALLERROR for it (the charger retries; the panic is logged with its action). A
/// bug in handling one message must cost that message its answer, not the charger its session.
/// Safe to continue after: the handlers share only maps and channels, whose guards a panic
/// releases, and the ledger's transactions roll back when dropped.
async fn guarded(
    handle: impl Future<Output = String>,
    message_id: &str,
    action: &'static str,
) -> String {
    match AssertUnwindSafe(handle).catch_unwind().await {
        Ok(reply) => reply,
        Err(_) => {
            error!(
                action,
                "handling a request panicked; answered InternalError"
            );
            metrics::callerror_sent(ErrorCode::InternalError);
            ocpp::encode_call_error(
                message_id,
                ErrorCode::InternalError,
                "internal error; retry",
                None,
            )
        }
    }
}

/// At most `max_chars` characters of `text`, for a log line about a frame.
fn prefix(text: &str, max_chars: usize) -> &str {
    text.char_indices()
        .nth(max_chars)
        .map_or(text, |(cut, _)| &text[..cut])
}

/// How many CALLERRORs one charger's session logs per [`CALL_ERROR_WINDOW`].
const CALL_ERROR_BURST: u32 = 10;
const CALL_ERROR_WINDOW: Duration = Duration::from_secs(60);

/// Every CALLERROR we send a charger is logged at warn with the charger, the action, the code
/// and the description, so an operator can see why a charger in the field keeps retrying. A
/// misbehaving charger can send thousands of bad frames a second, so each session logs at
/// most [`CALL_ERROR_BURST`] per [`CALL_ERROR_WINDOW`] and then one line counting the rest.
/// (Per session, which is per charger: one connection per charger at a time. A charger that
/// reconnects to dodge it also logs a line per connection.)
#[derive(Default)]
struct CallErrorLog {
    window_start: Option<Instant>,
    logged: u32,
    suppressed: u64,
}

impl CallErrorLog {
    fn sent(&mut self, charger: &ChargeBoxId, action: &str, frame: &str) {
        let now = Instant::now();
        if self
            .window_start
            .is_none_or(|start| now.duration_since(start) >= CALL_ERROR_WINDOW)
        {
            if self.suppressed > 0 {
                warn!(
                    charger = %charger,
                    suppressed = self.suppressed,
                    "more CALLERRORs sent in the last minute than logged"
                );
            }
            *self = CallErrorLog {
                window_start: Some(now),
                logged: 0,
                suppressed: 0,
            };
        }
        if self.logged >= CALL_ERROR_BURST {
            self.suppressed += 1;
            return;
        }
        self.logged += 1;
        // Our own frame, parsed back only on this (rare, rate-limited) path.
        let (code, description) = match Frame::parse(frame) {
            Ok(Frame::CallError(e)) => (e.code.as_str(), e.description),
            _ => ("unknown", Cow::Borrowed("")),
        };
        warn!(
            charger = %charger,
            action = %Escaped(action),
            // Ours, one of ten fixed words.
            code = %code,
            description = %Escaped(&description),
            "CALLERROR sent"
        );
    }
}

/// Whether a frame claims to be a CALLRESULT (3) or CALLERROR (4), however broken the rest.
fn is_answer(text: &str) -> bool {
    let rest = text
        .trim_start()
        .strip_prefix('[')
        .unwrap_or("")
        .trim_start();
    rest.starts_with('3') || rest.starts_with('4')
}

/// Resolves at `deadline`, or never when there is none.
async fn until(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d.into()).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use tokio::sync::mpsc;
    use tokio_util::sync::CancellationToken;

    use super::*;
    use crate::central::Sessions;
    use crate::ocpp::v16::messages::Heartbeat;
    use crate::settings::Settings;

    #[tokio::test]
    async fn a_panicking_handler_is_answered_internal_error() {
        let handler = async { panic!("a bug in one handler") };
        let reply = guarded(handler, "m-7", "StartTransaction").await;
        match Frame::parse(&reply) {
            Ok(Frame::CallError(e)) => {
                assert_eq!(e.id, "m-7");
                assert_eq!(e.code, ErrorCode::InternalError);
            }
            other => panic!("expected a CALLERROR, got {other:?}"),
        }
        let fine = guarded(async { "[3,\"m-8\",{}]".to_owned() }, "m-8", "Heartbeat").await;
        assert_eq!(fine, "[3,\"m-8\",{}]");
    }

    /// Every CALLERROR sent is logged at warn with charger, action, code and description, up
    /// to the burst per window; the rest are counted in one line when the window rolls.
    #[test]
    fn callerrors_are_logged_with_their_context_and_rate_limited() {
        #[derive(Clone, Default)]
        struct Buffer(Arc<std::sync::Mutex<Vec<u8>>>);
        impl std::io::Write for Buffer {
            fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
                self.0.lock().unwrap().extend_from_slice(bytes);
                Ok(bytes.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let buffer = Buffer::default();
        let writer = buffer.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .finish();
        let id = ChargeBoxId::parse("CP-LOUD").unwrap();
        let frame = ocpp::encode_call_error(
            "9",
            ErrorCode::PropertyConstraintViolation,
            "timestamp: date-time outside 2000-01-01T00:00:00Z..2100-01-01T00:00:00Z",
            None,
        );
        let mut log = CallErrorLog::default();
        tracing::subscriber::with_default(subscriber, || {
            for _ in 0..CALL_ERROR_BURST + 5 {
                log.sent(&id, "StartTransaction", &frame);
            }
            // The next window reports what the last one held back.
            log.window_start = Some(Instant::now() - CALL_ERROR_WINDOW);
            log.sent(&id, "Heartbeat", &frame);
        });
        let text = String::from_utf8(buffer.0.lock().unwrap().clone()).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), CALL_ERROR_BURST as usize + 2, "{text}");
        for line in &lines[..CALL_ERROR_BURST as usize] {
            assert!(line.contains(" WARN "), "{line}");
            assert!(
                line.contains("CALLERROR sent charger=CP-LOUD action=StartTransaction code=PropertyConstraintViolation description=timestamp: date-time outside"),
                "{line}"
            );
        }
        assert!(
            lines[CALL_ERROR_BURST as usize].contains("suppressed=5"),
            "{text}"
        );
        assert!(
            lines[CALL_ERROR_BURST as usize + 1].contains("action=Heartbeat"),
            "{text}"
        );
    }

    /// A session task that dies by panic (outside the per-frame guard) leaves the registry, so
    /// the charger is not shown online forever and calls to it fail at once.
    #[tokio::test]
    async fn a_session_task_that_panics_leaves_the_registry() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("t.db").display());
        let store = crate::booking::store::open(&url).await.unwrap();
        let central = Arc::new(Central::new(
            Arc::new(Settings::with_database(url)),
            store,
            Sessions::default(),
            CancellationToken::new(),
        ));
        let id = ChargeBoxId::parse("CP-PANIC").unwrap();
        let (calls, queue) = mpsc::channel(4);
        central.sessions.register(
            id.clone(),
            SessionHandle {
                connection: 1,
                calls,
                end: CancellationToken::new(),
                end_reason: Default::default(),
                booted: Default::default(),
            },
        );
        assert!(central.sessions.is_online(&id));
        let registered = Registered {
            id: id.clone(),
            connection: 1,
            central: central.clone(),
        };
        let task = tokio::spawn(async move {
            let _registered = registered;
            let _queue = queue;
            panic!("a bug outside the per-frame guard");
        });
        assert!(task.await.unwrap_err().is_panic());
        assert!(!central.sessions.is_online(&id));
        assert_eq!(
            central.sessions.call(&id, &Heartbeat {}).await,
            Err(CallFailure::Offline)
        );
    }
}
