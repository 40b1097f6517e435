//! LogStatusNotification (security extension, charge point → central system): progress of a
//! log upload asked for with GetLog. Chargers send it after a TriggerMessage too, so it is
//! answered, not refused.

use serde::{Deserialize, Serialize};

use crate::ocpp::v16::action::Action;
use crate::ocpp::v16::wire::{json_object, present, wire_enum};

wire_enum! {
    /// LogStatusNotification `status`.
    pub enum UploadLogStatus {
        BadMessage = "BadMessage",
        Idle = "Idle",
        NotSupportedOperation = "NotSupportedOperation",
        PermissionDenied = "PermissionDenied",
        Uploaded = "Uploaded",
        UploadFailure = "UploadFailure",
        Uploading = "Uploading",
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(remote = "Self", rename_all = "camelCase", deny_unknown_fields)]
pub struct LogStatusNotification {
    pub status: UploadLogStatus,
    /// The GetLog's `requestId` this reports on.
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    pub request_id: Option<i32>,
}

/// No fields; still rejects unknown ones, like every message.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(remote = "Self", deny_unknown_fields)]
pub struct LogStatusNotificationResponse {}

json_object!(LogStatusNotification, LogStatusNotificationResponse);

impl Action for LogStatusNotification {
    const NAME: &'static str = "LogStatusNotification";
    type Response = LogStatusNotificationResponse;
}
