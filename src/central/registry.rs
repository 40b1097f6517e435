//! The registry of live charger sessions: charge box id → a handle to the one task that owns
//! that charger's socket. Everything else reaches a charger only through here. Map guards are
//! never held across an `.await`: a handle's sender is cloned out first.

use std::sync::atomic::{AtomicU64, Ordering};

use dashmap::DashMap;
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use super::calls::{CallFailure, QueuedCall};
use crate::central::ChargeBoxId;
use crate::ocpp::Action;

/// Why a session was told to end from outside.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndReason {
    /// A newer connection with the same charge box id took over.
    Replaced,
    /// The operator deleted the charger.
    Deregistered,
}

pub(crate) struct SessionHandle {
    pub connection: u64,
    pub calls: mpsc::Sender<Box<QueuedCall>>,
    pub end: CancellationToken,
    pub end_reason: std::sync::Arc<std::sync::OnceLock<EndReason>>,
}

impl SessionHandle {
    fn end(&self, reason: EndReason) {
        let _ = self.end_reason.set(reason);
        self.end.cancel();
    }
}

#[derive(Default)]
pub struct Sessions {
    live: DashMap<ChargeBoxId, SessionHandle>,
    next_connection: AtomicU64,
}

impl Sessions {
    pub(crate) fn next_connection_id(&self) -> u64 {
        self.next_connection.fetch_add(1, Ordering::Relaxed) + 1
    }

    /// Register a new session; an older one for the same charger is told to end.
    pub(crate) fn register(&self, id: ChargeBoxId, handle: SessionHandle) {
        if let Some(old) = self.live.insert(id, handle) {
            old.end(EndReason::Replaced);
        }
    }

    /// Remove a session at its end, unless a newer one already took its place.
    pub(crate) fn unregister(&self, id: &ChargeBoxId, connection: u64) {
        self.live.remove_if(id, |_, h| h.connection == connection);
    }

    pub fn is_online(&self, id: &ChargeBoxId) -> bool {
        self.live.contains_key(id)
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
    pub async fn call<A: Action>(
        &self,
        id: &ChargeBoxId,
        request: &A,
    ) -> Result<A::Response, CallFailure> {
        let payload =
            serde_json::to_string(request).map_err(|e| CallFailure::Encode(e.to_string()))?;
        let sender = self
            .live
            .get(id)
            .map(|h| h.calls.clone())
            .ok_or(CallFailure::Offline)?;
        let (reply, answer) = oneshot::channel();
        sender
            .try_send(Box::new(QueuedCall {
                action: A::NAME,
                payload,
                reply,
            }))
            .map_err(|e| match e {
                mpsc::error::TrySendError::Full(_) => CallFailure::QueueFull,
                mpsc::error::TrySendError::Closed(_) => CallFailure::Offline,
            })?;
        let raw = answer.await.map_err(|_| CallFailure::Disconnected)??;
        serde_json::from_str(&raw).map_err(|e| CallFailure::BadResponse {
            action: A::NAME,
            reason: e.to_string(),
        })
    }
}
