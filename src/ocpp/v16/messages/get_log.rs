//! GetLog (security extension, central system → charge point): upload a diagnostics or
//! security log to `log.remoteLocation`; the charger reports progress with
//! LogStatusNotification.

use serde::{Deserialize, Serialize};

use crate::ocpp::v16::action::Action;
use crate::ocpp::v16::types::{CiString, CiString255, Timestamp};
use crate::ocpp::v16::wire::{json_object, present, wire_enum};

wire_enum! {
    /// GetLog `logType`.
    pub enum LogType {
        DiagnosticsLog = "DiagnosticsLog",
        SecurityLog = "SecurityLog",
    }
}

wire_enum! {
    /// GetLogResponse `status`.
    pub enum LogStatus {
        Accepted = "Accepted",
        Rejected = "Rejected",
        AcceptedCanceled = "AcceptedCanceled",
    }
}

/// Where to upload and which period of the log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(remote = "Self", rename_all = "camelCase", deny_unknown_fields)]
pub struct LogParameters {
    /// A URL; the schema only bounds its length.
    pub remote_location: CiString<512>,
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    pub oldest_timestamp: Option<Timestamp>,
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    pub latest_timestamp: Option<Timestamp>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(remote = "Self", rename_all = "camelCase", deny_unknown_fields)]
pub struct GetLog {
    pub log: LogParameters,
    pub log_type: LogType,
    /// Ours to choose; the charger echoes it in LogStatusNotification.
    pub request_id: i32,
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    pub retries: Option<i32>,
    /// Seconds between retries.
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    pub retry_interval: Option<i32>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(remote = "Self", rename_all = "camelCase", deny_unknown_fields)]
pub struct GetLogResponse {
    pub status: LogStatus,
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    pub filename: Option<CiString255>,
}

json_object!(LogParameters, GetLog, GetLogResponse);

impl Action for GetLog {
    const NAME: &'static str = "GetLog";
    type Response = GetLogResponse;
}
