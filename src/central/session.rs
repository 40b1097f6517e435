//! One charger session: the single task that owns a charger's socket after the upgrade. It
//! `select!`s over inbound frames, the charger's queue of outbound CALLs, the deadline of the one
//! CALL on the wire, the liveness tick and the end signals (shutdown, replaced, deregistered).
//! A protocol error becomes a CALLERROR and the session goes on; only transport errors, silence
//! or an end signal close it. Nothing here blocks on the database.

use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use axum::extract::ws::{CloseFrame, Message, WebSocket};
use time::OffsetDateTime;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use super::calls::{CallFailure, InFlight, QueuedCall};
use super::live::ChargerLive;
use super::registry::{EndReason, SessionHandle};
use super::{Central, inbound};
use crate::domain::ChargeBoxId;
use crate::metrics;
use crate::ocpp::v16::{self as ocpp, ChargePointRequest, ErrorCode, Frame};

/// A socket that cannot take a frame for this long is treated as dead.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);

/// WebSocket close codes (RFC 6455 §7.4.1).
pub mod close_code {
    pub const NORMAL: u16 = 1000;
    pub const GOING_AWAY: u16 = 1001;
    pub const PROTOCOL_ERROR: u16 = 1002;
    pub const POLICY: u16 = 1008;
    pub const TOO_BIG: u16 = 1009;
}

struct Session {
    id: ChargeBoxId,
    connection: u64,
    socket: WebSocket,
    live: Arc<ChargerLive>,
    central: Arc<Central>,
    in_flight: Option<InFlight>,
    sent_calls: u64,
    last_inbound: Instant,
}

/// Why the loop ended: the close frame to send, if any, and a word for the log.
struct Ending {
    close: Option<(u16, &'static str)>,
    why: &'static str,
}

/// Run a session until the charger leaves or is told to.
pub(crate) async fn run(socket: WebSocket, id: ChargeBoxId, central: Arc<Central>) {
    let connection = central.sessions.next_connection_id();
    let (calls, mut queue) = mpsc::channel(central.settings.call_queue);
    let end = CancellationToken::new();
    let end_reason = Arc::new(OnceLock::new());
    central.sessions.register(
        id.clone(),
        SessionHandle {
            connection,
            calls,
            end: end.clone(),
            end_reason: end_reason.clone(),
        },
    );
    let live = central.live.entry(&id);
    live.touch(OffsetDateTime::now_utc());
    central.live.mark_dirty(&id);
    info!(connection, "charger connected");

    let mut session = Session {
        id,
        connection,
        socket,
        live,
        central,
        in_flight: None,
        sent_calls: 0,
        last_inbound: Instant::now(),
    };
    let ending = session.serve(&mut queue, &end, &end_reason).await;
    session.finish(ending, &mut queue).await;
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

        loop {
            let deadline = self.in_flight.as_ref().map(|c| c.deadline);
            tokio::select! {
                biased;
                _ = shutdown.cancelled() => {
                    return Ending {
                        close: Some((close_code::GOING_AWAY, "central system shutting down")),
                        why: "shutdown",
                    };
                }
                _ = end.cancelled() => {
                    return match end_reason.get() {
                        Some(EndReason::Deregistered) => Ending {
                            close: Some((close_code::POLICY, "charger deregistered")),
                            why: "deregistered",
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
        let reply = match Frame::parse(text.as_str()) {
            // A broken answer is logged, never answered: a CALLERROR for a CALLRESULT could
            // ping-pong between two peers that both do so.
            Err(e) if is_answer(text.as_str()) => {
                metrics::invalid_frame_in();
                warn!(code = ?e.code, "malformed CALLRESULT/CALLERROR ignored: {}", e.description);
                None
            }
            Err(e) => {
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
            Ok(Frame::Call(call)) => Some(
                match ChargePointRequest::decode(&call.action, call.payload) {
                    Err(e) => {
                        debug!(action = %call.action, code = ?e.code, "rejected call: {}", e.description);
                        metrics::frame_answered(&call.action);
                        metrics::callerror_sent(e.code);
                        ocpp::encode_call_error(&call.id, e.code, &e.description, None)
                    }
                    Ok(request) => {
                        // Counted here, the answer's CALLERRORs (if any) in `inbound`.
                        let action = request.action();
                        metrics::frame_answered(action);
                        inbound::answer(&self.central, &self.id, &self.live, &call.id, request)
                            .await
                    }
                },
            ),
            Ok(Frame::CallResult(result)) => {
                self.settle(&result.id, Ok(result.payload.get().to_owned()));
                None
            }
            Ok(Frame::CallError(error)) => {
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
        match reply {
            Some(reply) => self.write(Message::Text(reply.into())).await,
            None => None,
        }
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
                    message_id,
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
    if capacity {
        Ending {
            close: Some((close_code::TOO_BIG, "message larger than the limit")),
            why: "message too big",
        }
    } else {
        debug!(error = %error, "transport error");
        Ending {
            close: None,
            why: "transport error",
        }
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
