//! Calls the central system makes to a charger (ReserveNow, RemoteStartTransaction, …): what a
//! queued call carries to the session task and how one can fail. Correlation and timeouts happen
//! in the session task, which is the only place that knows what is on the wire.

use std::time::Instant;

use tokio::sync::oneshot;

use crate::ocpp::v16::ErrorCode;

/// Why a call to a charger produced no typed answer.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CallFailure {
    #[error("charger is offline")]
    Offline,
    /// Connected, but no BootNotification was answered Accepted on this connection (it has not
    /// booted yet, or it is pending or rejected): OCPP lets the central system send it nothing
    /// but TriggerMessage(BootNotification). Refused at once, never queued.
    #[error("not booted: the charger has had no BootNotification accepted on this connection")]
    NotBooted,
    #[error("too many calls already waiting for this charger")]
    QueueFull,
    #[error("charger did not answer within the call timeout")]
    Timeout,
    /// The charger's circuit breaker is open after repeated timeouts: failed fast, not sent.
    #[error("charger is not answering; calls fail fast until its breaker closes")]
    BreakerOpen,
    #[error("charger disconnected before answering")]
    Disconnected,
    #[error("charger answered with CALLERROR {code:?}: {description}")]
    CallError {
        code: ErrorCode,
        description: String,
        details: serde_json::Value,
    },
    #[error("charger's answer does not match the {action} response schema: {reason}")]
    BadResponse {
        action: &'static str,
        reason: String,
    },
    #[error("could not encode the request: {0}")]
    Encode(String),
    /// The charger is not held by this node and the cluster (NATS) cannot be reached to find
    /// the node that holds it: retry later.
    #[error("the cluster is unreachable: the charger is not connected to this node")]
    ClusterUnavailable,
}

impl CallFailure {
    /// The failure as a metric label.
    pub fn label(&self) -> &'static str {
        match self {
            CallFailure::CallError { .. } => "callerror",
            CallFailure::Timeout => "timeout",
            CallFailure::Offline => "offline",
            CallFailure::NotBooted => "not_booted",
            CallFailure::Disconnected => "disconnected",
            CallFailure::BadResponse { .. } => "bad_response",
            CallFailure::QueueFull => "queue_full",
            CallFailure::BreakerOpen => "breaker_open",
            CallFailure::Encode(_) => "encode_error",
            CallFailure::ClusterUnavailable => "cluster_unavailable",
        }
    }
}

/// The raw answer: a CALLRESULT payload's JSON text, or a failure.
pub type RawAnswer = Result<String, CallFailure>;

/// One call waiting in a charger's queue. Boxed in the channel so an idle charger's queue costs
/// a few pointers, not a block of full-size slots.
pub struct QueuedCall {
    pub action: &'static str,
    pub payload: String,
    pub reply: oneshot::Sender<RawAnswer>,
}

/// The one call on the wire (OCPP-J allows a single outstanding CALL per direction).
pub struct InFlight {
    pub message_id: String,
    pub action: &'static str,
    pub deadline: Instant,
    pub reply: oneshot::Sender<RawAnswer>,
}
