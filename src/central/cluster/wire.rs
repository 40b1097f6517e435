//! What crosses NATS between nodes, as serde types: a forwarded CALL and its typed outcome, a
//! takeover, an operator's end of a charger, a commit's head, a started transaction. Only this module knows the encoding.

use serde::{Deserialize, Serialize};

use crate::central::CallFailure;
use crate::ocpp::v16::ErrorCode;

/// A CALL for a charger held by another node.
#[derive(Debug, Serialize, Deserialize)]
pub struct CallRequest {
    pub action: String,
    /// The request payload as JSON text, exactly as it would go on the socket.
    pub payload: String,
}

/// The holding node's outcome: the raw CALLRESULT payload, or why there is none.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum CallReply {
    Answer(String),
    Failed(Failure),
}

/// [`CallFailure`] on the wire (its `action` is a `&'static str`, so it is not serde itself).
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "camelCase")]
pub enum Failure {
    Offline,
    NotBooted,
    QueueFull,
    Timeout,
    BreakerOpen,
    Disconnected,
    ClusterUnavailable,
    CallError {
        code: String,
        description: String,
        details: serde_json::Value,
    },
    BadResponse {
        reason: String,
    },
    Encode {
        reason: String,
    },
}

impl CallReply {
    pub fn from_answer(answer: Result<String, CallFailure>) -> Self {
        match answer {
            Ok(raw) => CallReply::Answer(raw),
            Err(f) => CallReply::Failed(match f {
                CallFailure::Offline => Failure::Offline,
                CallFailure::NotBooted => Failure::NotBooted,
                CallFailure::QueueFull => Failure::QueueFull,
                CallFailure::Timeout => Failure::Timeout,
                CallFailure::BreakerOpen => Failure::BreakerOpen,
                CallFailure::Disconnected => Failure::Disconnected,
                CallFailure::ClusterUnavailable => Failure::ClusterUnavailable,
                CallFailure::CallError {
                    code,
                    description,
                    details,
                } => Failure::CallError {
                    code: code.as_str().to_string(),
                    description,
                    details,
                },
                CallFailure::BadResponse { reason, .. } => Failure::BadResponse { reason },
                CallFailure::Encode(reason) => Failure::Encode { reason },
            }),
        }
    }

    /// Back to the caller's types; `action` is the CALL's own.
    pub fn into_answer(self, action: &'static str) -> Result<String, CallFailure> {
        match self {
            CallReply::Answer(raw) => Ok(raw),
            CallReply::Failed(f) => Err(match f {
                Failure::Offline => CallFailure::Offline,
                Failure::NotBooted => CallFailure::NotBooted,
                Failure::QueueFull => CallFailure::QueueFull,
                Failure::Timeout => CallFailure::Timeout,
                Failure::BreakerOpen => CallFailure::BreakerOpen,
                Failure::Disconnected => CallFailure::Disconnected,
                Failure::ClusterUnavailable => CallFailure::ClusterUnavailable,
                Failure::CallError {
                    code,
                    description,
                    details,
                } => CallFailure::CallError {
                    code: ErrorCode::parse(&code).unwrap_or(ErrorCode::GenericError),
                    description,
                    details,
                },
                Failure::BadResponse { reason } => CallFailure::BadResponse { action, reason },
                Failure::Encode { reason } => CallFailure::Encode(reason),
            }),
        }
    }
}

/// The operator ended a charger's standing on some node: the node holding its socket closes
/// it as it would locally (and, for a deleted charger, forgets what it cached of it).
#[derive(Debug, Serialize, Deserialize)]
pub struct End {
    pub node: String,
    pub why: Ending,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Ending {
    Deregistered,
    Rejected,
}

/// A node registered a charger: whoever else holds a socket for it closes it.
#[derive(Debug, Serialize, Deserialize)]
pub struct Takeover {
    pub node: String,
    pub connection: u64,
    /// The taking node's incarnation (its presence entries carry it).
    #[serde(default)]
    pub incarnation: String,
}

/// A node committed up to `head` in the shared event log.
#[derive(Debug, Serialize, Deserialize)]
pub struct Commit {
    pub node: String,
    pub head: i64,
}

/// A node accepted a StartTransaction (for remote starts waiting on other nodes).
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Started {
    pub node: String,
    pub charger: String,
    pub connector: u32,
    pub id_tag: String,
    pub transaction_id: i32,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_failure_crosses_the_wire_unchanged() {
        let failures = [
            CallFailure::Offline,
            CallFailure::NotBooted,
            CallFailure::QueueFull,
            CallFailure::Timeout,
            CallFailure::BreakerOpen,
            CallFailure::Disconnected,
            CallFailure::ClusterUnavailable,
            CallFailure::CallError {
                code: ErrorCode::NotSupported,
                description: "no".into(),
                details: serde_json::json!({"a": 1}),
            },
            CallFailure::BadResponse {
                action: "Reset",
                reason: "r".into(),
            },
            CallFailure::Encode("e".into()),
        ];
        for f in failures {
            let text = serde_json::to_string(&CallReply::from_answer(Err(f.clone()))).unwrap();
            let back: CallReply = serde_json::from_str(&text).unwrap();
            assert_eq!(back.into_answer("Reset"), Err(f));
        }
        let text = serde_json::to_string(&CallReply::from_answer(Ok("{}".into()))).unwrap();
        let back: CallReply = serde_json::from_str(&text).unwrap();
        assert_eq!(back.into_answer("Reset"), Ok("{}".into()));
    }
}
