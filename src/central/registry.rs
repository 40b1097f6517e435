//! The registry of live charger sessions: charge box id → a handle to the one task that owns
//! that charger's socket. Everything else reaches a charger only through here, so this is where
//! a charger that has not booted Accepted on its connection is refused every call but
//! TriggerMessage(BootNotification) (OCPP 1.6 §4.2). Map guards are never held across an
//! `.await`: a handle's sender is cloned out first.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use dashmap::DashMap;
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use super::breaker::{BreakerSettings, BreakerState, CallEnd};
use super::calls::{CallFailure, QueuedCall};
use super::cluster::Cluster;
use super::live::LiveState;
use crate::domain::ChargeBoxId;
use crate::ocpp::v16::messages::TriggerMessage;
use crate::ocpp::v16::types::MessageTrigger;
use crate::ocpp::v16::{Action, Strictness, decode_payload_with};

/// Why a session was told to end from outside.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndReason {
    /// A newer connection with the same charge box id took over.
    Replaced,
    /// The operator deleted the charger.
    Deregistered,
    /// The operator rejected the charger: it must boot again, and is told Rejected.
    Rejected,
}

pub(crate) struct SessionHandle {
    pub connection: u64,
    pub calls: mpsc::Sender<Box<QueuedCall>>,
    pub end: CancellationToken,
    pub end_reason: std::sync::Arc<std::sync::OnceLock<EndReason>>,
    /// Whether a BootNotification was answered Accepted on this connection. Until then only
    /// TriggerMessage(BootNotification) is sent; the dispatcher waits for the Booted signal.
    pub booted: AtomicBool,
}

impl SessionHandle {
    fn end(&self, reason: EndReason) {
        let _ = self.end_reason.set(reason);
        self.end.cancel();
    }
}

pub struct Sessions {
    live: DashMap<ChargeBoxId, SessionHandle>,
    next_connection: AtomicU64,
    /// Per charger, kept across reconnects: a charger that reconnects but still does not answer
    /// stays failed fast until a probe gets an answer.
    breakers: DashMap<ChargeBoxId, BreakerState>,
    breaker: BreakerSettings,
    /// How answers to our CALLs are read (setting `ocpp_strictness`).
    strictness: Strictness,
    /// Where deviations in answers are counted per charger; set once by `Central::new`.
    live_state: OnceLock<Arc<LiveState>>,
    /// The other nodes, when this one is in a cluster; set once at start.
    cluster: OnceLock<Arc<Cluster>>,
}

impl Default for Sessions {
    fn default() -> Self {
        Sessions::new(BreakerSettings {
            failures: 3,
            cool_down: std::time::Duration::from_secs(30),
        })
    }
}

impl Sessions {
    /// Answers are read as `strictness` says (the default is lenient, like the setting's).
    pub fn with_strictness(mut self, strictness: Strictness) -> Self {
        self.strictness = strictness;
        self
    }

    pub(crate) fn attach_live_state(&self, live: Arc<LiveState>) {
        let _ = self.live_state.set(live);
    }

    /// Joins the cluster: calls to chargers not held here go through it, and sessions that
    /// start and end here are announced to it.
    pub(crate) fn attach_cluster(&self, cluster: Arc<Cluster>) {
        let _ = self.cluster.set(cluster);
    }

    pub fn cluster(&self) -> Option<&Arc<Cluster>> {
        self.cluster.get()
    }

    pub fn new(breaker: BreakerSettings) -> Self {
        Sessions {
            strictness: Strictness::default(),
            live_state: OnceLock::new(),
            cluster: OnceLock::new(),
            live: DashMap::new(),
            next_connection: AtomicU64::new(0),
            breakers: DashMap::new(),
            breaker,
        }
    }

    /// The charger's breaker as of now (closed when it never failed).
    pub fn breaker(&self, id: &ChargeBoxId) -> BreakerState {
        self.breakers.get(id).map(|b| *b).unwrap_or_default()
    }

    /// How many chargers are being failed fast right now.
    pub fn open_breakers(&self) -> usize {
        self.breakers
            .iter()
            .filter(|b| !matches!(*b.value(), BreakerState::Closed { .. }))
            .count()
    }

    /// Forget a deleted charger's breaker.
    pub fn forget(&self, id: &ChargeBoxId) {
        self.breakers.remove(id);
    }

    pub(crate) fn next_connection_id(&self) -> u64 {
        self.next_connection.fetch_add(1, Ordering::Relaxed) + 1
    }

    /// Register a new session; an older one for the same charger is told to end. (One entry
    /// per charger: `online_count`, the connected gauge, counts a replacement once.)
    pub(crate) fn register(&self, id: ChargeBoxId, handle: SessionHandle) {
        let connection = handle.connection;
        if let Some(cluster) = self.cluster.get() {
            cluster.held(&id, connection);
        }
        if let Some(old) = self.live.insert(id, handle) {
            old.end(EndReason::Replaced);
        }
    }

    /// Remove a session at its end, unless a newer one already took its place.
    pub(crate) fn unregister(&self, id: &ChargeBoxId, connection: u64) {
        if let Some((_, handle)) = self.live.remove_if(id, |_, h| h.connection == connection)
            && let Some(cluster) = self.cluster.get()
        {
            let replaced = handle.end_reason.get() == Some(&EndReason::Replaced);
            cluster.released(id, connection, replaced);
        }
    }

    pub fn is_online(&self, id: &ChargeBoxId) -> bool {
        self.live.contains_key(id)
    }

    /// Connected and booted Accepted on this connection: the charger takes commands.
    pub fn is_booted(&self, id: &ChargeBoxId) -> bool {
        self.live
            .get(id)
            .is_some_and(|h| h.booted.load(Ordering::Acquire))
    }

    /// Record how connection `connection`'s BootNotification was answered. A no-op when a
    /// newer connection took the charger's place meanwhile: its own Boot decides for it.
    pub(crate) fn set_booted(&self, id: &ChargeBoxId, connection: u64, booted: bool) {
        if let Some(h) = self.live.get(id)
            && h.connection == connection
        {
            h.booted.store(booted, Ordering::Release);
        }
    }

    /// Take a charger out of service on its current connection (the operator rejected it).
    pub(crate) fn unboot(&self, id: &ChargeBoxId) {
        if let Some(h) = self.live.get(id) {
            h.booted.store(false, Ordering::Release);
        }
    }

    pub fn online_count(&self) -> usize {
        self.live.len()
    }

    /// Close a charger's socket (e.g. it was deleted). `false` when it was not connected.
    pub fn disconnect(&self, id: &ChargeBoxId, reason: EndReason) -> bool {
        match self.live.get(id) {
            Some(h) => {
                h.end(reason);
                true
            }
            None => false,
        }
    }

    /// Send `request` to the charger and wait for its typed answer. Calls to one charger go out
    /// one at a time in order; each is timed from the moment it is written to the socket.
    ///
    /// The one seam every command goes through (REST, the toolbox, the dispatcher): a charger
    /// held here is called here; one that is not, in a cluster, is called through the node that
    /// holds it (`cluster`), whose registry applies the same boot rule and breaker, and whose
    /// raw answer is decoded here exactly as a local one.
    pub async fn call<A: Action>(
        &self,
        id: &ChargeBoxId,
        request: &A,
    ) -> Result<A::Response, CallFailure> {
        let result = match serde_json::to_string(request) {
            Err(e) => Err(CallFailure::Encode(e.to_string())),
            Ok(payload) => match self.cluster.get() {
                Some(cluster) if !self.live.contains_key(id) => cluster
                    .call(id, A::NAME, payload)
                    .await
                    .and_then(|raw| self.decode::<A>(id, &raw, false)),
                _ => match self.call_local(id, A::NAME, payload).await {
                    Ok(raw) => self.decode::<A>(id, &raw, true),
                    Err(e) => Err(e),
                },
            },
        };
        crate::metrics::call_finished(
            A::NAME,
            result
                .as_ref()
                .map_or_else(CallFailure::label, |_| "result"),
        );
        result
    }

    /// A CALL to a charger held here (never forwarded): the boot rule, the breaker, the queue;
    /// the raw CALLRESULT payload.
    pub(crate) async fn call_local(
        &self,
        id: &ChargeBoxId,
        action: &'static str,
        payload: String,
    ) -> Result<String, CallFailure> {
        // Before the breaker: a refusal that sends nothing says nothing about the charger.
        if !self.may_send(id, action, &payload) {
            return Err(CallFailure::NotBooted);
        }
        let admitted = match self.breakers.get_mut(id) {
            Some(mut b) => b.admit(std::time::Instant::now()),
            None => true,
        };
        if !admitted {
            return Err(CallFailure::BreakerOpen);
        }
        let result = self.call_unguarded(id, action, payload).await;
        let end = match &result {
            Ok(_) | Err(CallFailure::CallError { .. } | CallFailure::BadResponse { .. }) => {
                CallEnd::Answered
            }
            Err(CallFailure::Timeout) => CallEnd::TimedOut,
            Err(_) => CallEnd::Inconclusive,
        };
        let now = std::time::Instant::now();
        match self.breakers.get_mut(id) {
            Some(mut b) => {
                let was_open = matches!(*b, BreakerState::Open { .. });
                b.record(end, now, &self.breaker);
                if !was_open && matches!(*b, BreakerState::Open { .. }) {
                    crate::metrics::breaker_opened();
                }
            }
            // A breaker is only worth an entry once something went wrong.
            None if end == CallEnd::TimedOut => {
                let mut b = BreakerState::default();
                b.record(end, now, &self.breaker);
                if matches!(b, BreakerState::Open { .. }) {
                    crate::metrics::breaker_opened();
                }
                self.breakers.insert(id.clone(), b);
            }
            None => {}
        }
        result
    }

    /// Whether `action` may go to the charger now: always once it booted Accepted on this
    /// connection, before that only TriggerMessage(BootNotification), the one call OCPP allows
    /// to a charger that is not (yet) accepted. An offline charger passes: the send then says
    /// `Offline`.
    fn may_send(&self, id: &ChargeBoxId, action: &str, payload: &str) -> bool {
        let booted = match self.live.get(id) {
            Some(h) => h.booted.load(Ordering::Acquire),
            None => return true,
        };
        booted
            || (action == TriggerMessage::NAME
                && serde_json::from_str::<serde_json::Value>(payload).is_ok_and(|v| {
                    v.get("requestedMessage").and_then(|m| m.as_str())
                        == Some(MessageTrigger::BootNotification.as_str())
                }))
    }

    async fn call_unguarded(
        &self,
        id: &ChargeBoxId,
        action: &'static str,
        payload: String,
    ) -> Result<String, CallFailure> {
        let sender = self
            .live
            .get(id)
            .map(|h| h.calls.clone())
            .ok_or(CallFailure::Offline)?;
        let (reply, answer) = oneshot::channel();
        sender
            .try_send(Box::new(QueuedCall {
                action,
                payload,
                reply,
            }))
            .map_err(|e| match e {
                mpsc::error::TrySendError::Full(_) => CallFailure::QueueFull,
                mpsc::error::TrySendError::Closed(_) => CallFailure::Offline,
            })?;
        answer.await.map_err(|_| CallFailure::Disconnected)?
    }

    /// A raw answer as `A`'s typed response, read as `strictness` says. Deviations are counted
    /// only for a charger held here (the holding node's live state is the one that is kept).
    fn decode<A: Action>(
        &self,
        id: &ChargeBoxId,
        raw: &str,
        local: bool,
    ) -> Result<A::Response, CallFailure> {
        let decoded = decode_payload_with::<A::Response>(raw, self.strictness).map_err(|e| {
            CallFailure::BadResponse {
                action: A::NAME,
                reason: format!("{}: {}", e.code, e.description),
            }
        })?;
        if local
            && !decoded.deviations.is_empty()
            && let Some(state) = self.live_state.get()
        {
            let live = state.entry(id);
            for deviation in &decoded.deviations {
                state.note_deviation(id, &live, A::NAME, deviation);
            }
        }
        Ok(decoded.value)
    }
}
