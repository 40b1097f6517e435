//! One charger's conversation with the central system over an open WebSocket: CALLs it makes
//! and their correlated answers, server CALLs it must answer, raw frames for malformed-input
//! tests, and a capped log of every text frame each way. OCPP allows one outstanding CALL per
//! direction, so `call` waits for its answer and queues whatever else arrives meanwhile for
//! `next_call` / `next_incoming`, in arrival order. No load-test logic lives here.

use std::collections::VecDeque;
use std::time::Duration;

use futures_util::{SinkExt as _, StreamExt as _};
use serde_json::{Value, json};
use tokio::time::Instant;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::{self, Message};

use crate::connect::{self, ChargerConfig, ConnectError, Stream};
use crate::frame::{self, Frame};
use crate::messages;

/// Frames queued while nobody asked for them; past this the oldest are dropped so that a
/// server flooding a charger cannot grow its memory without bound.
const MAX_QUEUED: usize = 4096;

/// Anything the server can send, in the order it arrived.
#[derive(Debug, Clone, PartialEq)]
pub enum Incoming {
    /// A server-initiated request; answer it with `reply` or `reply_error`.
    Call {
        id: String,
        action: String,
        payload: Value,
    },
    /// An answer to a CALL of ours that nobody was waiting for.
    Result { id: String, payload: Value },
    Error {
        id: String,
        code: String,
        description: String,
        details: Value,
    },
    /// The server closed the WebSocket (`code` is `None` when the connection just ended).
    Close { code: Option<u16>, reason: String },
    /// A text frame that is not a valid OCPP-J frame.
    Raw(String),
    /// A binary frame, which OCPP-J never uses.
    Binary(Vec<u8>),
}

impl From<Frame> for Incoming {
    fn from(frame: Frame) -> Self {
        match frame {
            Frame::Call {
                id,
                action,
                payload,
            } => Incoming::Call {
                id,
                action,
                payload,
            },
            Frame::Result { id, payload } => Incoming::Result { id, payload },
            Frame::Error {
                id,
                code,
                description,
                details,
            } => Incoming::Error {
                id,
                code,
                description,
                details,
            },
        }
    }
}

/// How the central system answered one of our CALLs.
#[derive(Debug, Clone, PartialEq)]
pub enum CallOutcome {
    Result(Value),
    Error {
        code: String,
        description: String,
        details: Value,
    },
}

/// What went wrong talking on an open connection.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("timed out")]
    Timeout,
    #[error("the connection is closed ({})", describe_close(*.code, .reason))]
    Closed { code: Option<u16>, reason: String },
    #[error("WebSocket error: {0}")]
    Ws(#[from] tungstenite::Error),
    /// Raised only by the helpers that expect a CALLRESULT (`boot`, `call_result`, ...).
    #[error("{action} answered with CALLERROR {code}: {description}")]
    CallError {
        action: String,
        code: String,
        description: String,
    },
}

fn describe_close(code: Option<u16>, reason: &str) -> String {
    match code {
        Some(code) if reason.is_empty() => format!("code {code}"),
        Some(code) => format!("code {code}: {reason}"),
        None if reason.is_empty() => "no close frame".to_owned(),
        None => reason.to_owned(),
    }
}

/// A virtual charge point holding one WebSocket to the central system.
pub struct Charger {
    ws: WebSocketStream<Stream>,
    /// Which endpoint of the config the current connection went to (see `endpoint_at`).
    turn: usize,
    charge_box_id: String,
    protocol: Option<String>,
    call_timeout: Duration,
    next_id: u64,
    queued: VecDeque<Incoming>,
    /// Set once the server closed or the connection failed; reads then report it.
    closed: Option<(Option<u16>, String)>,
    keep_frames: usize,
    sent: Vec<String>,
    received: Vec<String>,
    frames_sent: u64,
    frames_received: u64,
}

impl Charger {
    /// Opens the WebSocket as `cfg.charge_box_id`. Sends nothing: call `boot` next.
    pub async fn connect(cfg: &ChargerConfig) -> Result<Charger, ConnectError> {
        let (ws, protocol) = connect::open(cfg, cfg.first_turn).await?;
        Ok(Charger {
            ws,
            turn: cfg.first_turn,
            charge_box_id: cfg.charge_box_id.clone(),
            protocol,
            call_timeout: cfg.call_timeout,
            next_id: 0,
            queued: VecDeque::new(),
            closed: None,
            keep_frames: cfg.keep_frames,
            sent: Vec::new(),
            received: Vec::new(),
            frames_sent: 0,
            frames_received: 0,
        })
    }

    /// Opens a fresh WebSocket for this charger after the old one dropped (or to reboot). Message
    /// ids, frame counters and logs carry on; frames still queued from the old connection are
    /// discarded, since neither requests nor answers survive their connection in OCPP-J.
    /// With `alternate_urls`, each attempt takes the next endpoint, so the chargers of a node
    /// that went away spread over the others.
    pub async fn reconnect(&mut self, cfg: &ChargerConfig) -> Result<(), ConnectError> {
        self.turn = cfg.next_turn(self.turn);
        let (ws, protocol) = connect::open(cfg, self.turn).await?;
        self.ws = ws;
        self.protocol = protocol;
        self.closed = None;
        self.queued.clear();
        Ok(())
    }

    /// How long `call` waits for an answer.
    pub fn call_timeout(&self) -> Duration {
        self.call_timeout
    }

    pub fn charge_box_id(&self) -> &str {
        &self.charge_box_id
    }

    /// The `Sec-WebSocket-Protocol` the server echoed, if any.
    pub fn protocol(&self) -> Option<&str> {
        self.protocol.as_deref()
    }

    pub fn set_call_timeout(&mut self, timeout: Duration) {
        self.call_timeout = timeout;
    }

    /// Sends `[2,id,action,payload]` and waits (up to the call timeout) for the answer with the
    /// same id. Server CALLs and other frames arriving meanwhile are queued.
    pub async fn call(&mut self, action: &str, payload: Value) -> Result<CallOutcome, ClientError> {
        let deadline = Instant::now() + self.call_timeout;
        // The send is bounded too: a server that stops reading must not hang the caller.
        let id = tokio::time::timeout_at(deadline, self.send_call(action, &payload))
            .await
            .map_err(|_| ClientError::Timeout)??;
        self.await_answer_until(&id, deadline).await
    }

    /// Like `call`, but a CALLERROR becomes `ClientError::CallError`.
    pub async fn call_result(
        &mut self,
        action: &str,
        payload: Value,
    ) -> Result<Value, ClientError> {
        match self.call(action, payload).await? {
            CallOutcome::Result(payload) => Ok(payload),
            CallOutcome::Error {
                code, description, ..
            } => Err(ClientError::CallError {
                action: action.to_owned(),
                code,
                description,
            }),
        }
    }

    /// Sends a CALL without waiting; returns its message id for `await_answer`.
    pub async fn send_call(
        &mut self,
        action: &str,
        payload: &Value,
    ) -> Result<String, ClientError> {
        self.next_id += 1;
        let id = self.next_id.to_string();
        self.send_text_owned(frame::call_text(&id, action, payload))
            .await?;
        Ok(id)
    }

    /// Waits (up to the call timeout) for the CALLRESULT or CALLERROR with this id, queueing
    /// everything else.
    pub async fn await_answer(&mut self, id: &str) -> Result<CallOutcome, ClientError> {
        self.await_answer_until(id, Instant::now() + self.call_timeout)
            .await
    }

    async fn await_answer_until(
        &mut self,
        id: &str,
        deadline: Instant,
    ) -> Result<CallOutcome, ClientError> {
        if let Some(pos) = self.queued.iter().position(|i| answers(i, id))
            && let Some(Ok(outcome)) = self.queued.remove(pos).map(|i| into_answer(i, id))
        {
            return Ok(outcome);
        }
        loop {
            let incoming = tokio::time::timeout_at(deadline, self.read_incoming())
                .await
                .map_err(|_| ClientError::Timeout)??;
            let incoming = match into_answer(incoming, id) {
                Ok(outcome) => return Ok(outcome),
                Err(other) => other,
            };
            if let Incoming::Close { code, reason } = &incoming {
                let err = ClientError::Closed {
                    code: *code,
                    reason: reason.clone(),
                };
                self.enqueue(incoming);
                return Err(err);
            }
            self.enqueue(incoming);
        }
    }

    /// Sends any text as one frame, valid OCPP-J or not.
    pub async fn send_text(&mut self, text: &str) -> Result<(), ClientError> {
        self.send_text_owned(text.to_owned()).await
    }

    /// Sends `bytes` as one text frame without checking that they are UTF-8, as a broken
    /// charger would; a correct server closes the connection with 1007.
    pub async fn send_text_bytes(&mut self, bytes: Vec<u8>) -> Result<(), ClientError> {
        use tungstenite::protocol::frame::Frame as WireFrame;
        use tungstenite::protocol::frame::coding::{Data, OpCode};
        self.frames_sent += 1;
        let frame = WireFrame::message(bytes, OpCode::Data(Data::Text), true);
        self.ws.send(Message::Frame(frame)).await?;
        Ok(())
    }

    pub async fn send_binary(&mut self, bytes: Vec<u8>) -> Result<(), ClientError> {
        self.frames_sent += 1;
        self.ws.send(Message::binary(bytes)).await?;
        Ok(())
    }

    /// Starts the closing handshake; the server's close then arrives as `Incoming::Close`.
    pub async fn send_close(&mut self, code: u16, reason: &str) -> Result<(), ClientError> {
        let frame = CloseFrame {
            code: CloseCode::from(code),
            reason: reason.into(),
        };
        self.ws.send(Message::Close(Some(frame))).await?;
        Ok(())
    }

    /// The next frame of any kind, queued ones first; `ClientError::Timeout` when none arrives.
    pub async fn next_incoming(&mut self, timeout: Duration) -> Result<Incoming, ClientError> {
        if let Some(incoming) = self.queued.pop_front() {
            return Ok(incoming);
        }
        tokio::time::timeout(timeout, self.read_incoming())
            .await
            .map_err(|_| ClientError::Timeout)?
    }

    /// The next server-initiated CALL as (id, action, payload), queued ones first. Other frames
    /// arriving meanwhile stay queued for `next_incoming`.
    pub async fn next_call(
        &mut self,
        timeout: Duration,
    ) -> Result<(String, String, Value), ClientError> {
        if let Some(call) = self.queued_call() {
            return Ok(call);
        }
        let deadline = Instant::now() + timeout;
        loop {
            if let Some((code, reason)) = &self.closed {
                return Err(ClientError::Closed {
                    code: *code,
                    reason: reason.clone(),
                });
            }
            let incoming = tokio::time::timeout_at(deadline, self.read_incoming())
                .await
                .map_err(|_| ClientError::Timeout)??;
            match incoming {
                Incoming::Call {
                    id,
                    action,
                    payload,
                } => return Ok((id, action, payload)),
                other => self.enqueue(other),
            }
        }
    }

    /// Takes a server CALL that already arrived, without waiting.
    pub fn queued_call(&mut self) -> Option<(String, String, Value)> {
        let pos = self
            .queued
            .iter()
            .position(|i| matches!(i, Incoming::Call { .. }))?;
        match self.queued.remove(pos) {
            Some(Incoming::Call {
                id,
                action,
                payload,
            }) => Some((id, action, payload)),
            _ => None,
        }
    }

    /// Drops queued answers nobody waits for any more (late answers to CALLs that timed out),
    /// so that a long run against a slow server does not pile them up; returns how many.
    pub fn discard_stray_answers(&mut self) -> usize {
        let before = self.queued.len();
        self.queued
            .retain(|i| !matches!(i, Incoming::Result { .. } | Incoming::Error { .. }));
        before - self.queued.len()
    }

    /// Answers the server CALL `id` with a CALLRESULT.
    pub async fn reply(&mut self, id: &str, payload: Value) -> Result<(), ClientError> {
        self.send_text_owned(frame::result_text(id, &payload)).await
    }

    /// Answers the server CALL `id` with a CALLERROR (empty details).
    pub async fn reply_error(
        &mut self,
        id: &str,
        code: &str,
        description: &str,
    ) -> Result<(), ClientError> {
        self.send_text_owned(frame::error_text(id, code, description, &json!({})))
            .await
    }

    /// BootNotification with a realistic vendor, model, serial and firmware; returns the
    /// response payload (check its `status`).
    pub async fn boot(&mut self) -> Result<Value, ClientError> {
        let payload = messages::boot_notification(&self.charge_box_id);
        self.call_result("BootNotification", payload).await
    }

    pub async fn heartbeat(&mut self) -> Result<Value, ClientError> {
        self.call_result("Heartbeat", json!({})).await
    }

    /// StatusNotification for `connector` (0 = the whole charge point), stamped now.
    pub async fn status_notification(
        &mut self,
        connector: u32,
        status: &str,
        error_code: &str,
    ) -> Result<Value, ClientError> {
        let payload = messages::status_notification(connector, status, error_code);
        self.call_result("StatusNotification", payload).await
    }

    /// Every text frame received so far (up to `keep_frames`), e.g. to validate each one
    /// against the official schemas.
    pub fn received(&self) -> &[String] {
        &self.received
    }

    /// Every text frame sent so far (up to `keep_frames`).
    pub fn sent(&self) -> &[String] {
        &self.sent
    }

    /// Hands over the received log and starts a new one.
    pub fn take_received(&mut self) -> Vec<String> {
        std::mem::take(&mut self.received)
    }

    /// Data frames (text or binary) sent, including those not kept in the log.
    pub fn frames_sent(&self) -> u64 {
        self.frames_sent
    }

    pub fn frames_received(&self) -> u64 {
        self.frames_received
    }

    /// Whether the server closed or the connection failed.
    pub fn is_closed(&self) -> bool {
        self.closed.is_some()
    }

    /// The next frame from the socket (never the queue), without a timeout. Answers pings on
    /// the way, and flushes the pong so it does not wait for our next write.
    pub(crate) async fn read_incoming(&mut self) -> Result<Incoming, ClientError> {
        loop {
            if let Some((code, reason)) = &self.closed {
                return Err(ClientError::Closed {
                    code: *code,
                    reason: reason.clone(),
                });
            }
            let message = match self.ws.next().await {
                Some(Ok(message)) => message,
                None => return Ok(self.mark_closed(None, String::new())),
                Some(Err(
                    tungstenite::Error::ConnectionClosed | tungstenite::Error::AlreadyClosed,
                )) => return Ok(self.mark_closed(None, String::new())),
                Some(Err(err)) => {
                    self.closed = Some((None, err.to_string()));
                    return Err(err.into());
                }
            };
            match message {
                Message::Text(text) => {
                    self.frames_received += 1;
                    if self.received.len() < self.keep_frames {
                        self.received.push(text.as_str().to_owned());
                    }
                    return Ok(match Frame::parse(&text) {
                        Some(frame) => frame.into(),
                        None => Incoming::Raw(text.as_str().to_owned()),
                    });
                }
                Message::Binary(bytes) => {
                    self.frames_received += 1;
                    return Ok(Incoming::Binary(bytes.to_vec()));
                }
                Message::Ping(_) => {
                    // A failed flush shows up on the next read; nothing to do about it here.
                    let _ = self.ws.flush().await;
                }
                Message::Close(frame) => {
                    // tungstenite queued our close reply; push it out.
                    let _ = self.ws.flush().await;
                    let (code, reason) = match frame {
                        Some(f) => (Some(u16::from(f.code)), f.reason.as_str().to_owned()),
                        None => (None, String::new()),
                    };
                    return Ok(self.mark_closed(code, reason));
                }
                Message::Pong(_) | Message::Frame(_) => {}
            }
        }
    }

    fn mark_closed(&mut self, code: Option<u16>, reason: String) -> Incoming {
        self.closed = Some((code, reason.clone()));
        Incoming::Close { code, reason }
    }

    fn enqueue(&mut self, incoming: Incoming) {
        if self.queued.len() >= MAX_QUEUED {
            self.queued.pop_front();
        }
        self.queued.push_back(incoming);
    }

    async fn send_text_owned(&mut self, text: String) -> Result<(), ClientError> {
        if self.sent.len() < self.keep_frames {
            self.sent.push(text.clone());
        }
        self.frames_sent += 1;
        self.ws.send(Message::text(text)).await?;
        Ok(())
    }
}

fn answers(incoming: &Incoming, call_id: &str) -> bool {
    matches!(incoming, Incoming::Result { id, .. } | Incoming::Error { id, .. } if id == call_id)
}

/// The outcome if `incoming` answers the CALL `call_id`, else `incoming` back.
fn into_answer(incoming: Incoming, call_id: &str) -> Result<CallOutcome, Incoming> {
    match incoming {
        Incoming::Result { id, payload } if id == call_id => Ok(CallOutcome::Result(payload)),
        Incoming::Error {
            id,
            code,
            description,
            details,
        } if id == call_id => Ok(CallOutcome::Error {
            code,
            description,
            details,
        }),
        other => Err(other),
    }
}
