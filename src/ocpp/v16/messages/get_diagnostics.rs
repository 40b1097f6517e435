//! GetDiagnostics (Firmware Management, central system → charge point): upload a diagnostics
//! file to `location`; the charger reports progress with DiagnosticsStatusNotification.

use serde::{Deserialize, Serialize};

use crate::ocpp::v16::action::Action;
use crate::ocpp::v16::types::{CiString255, Timestamp};
use crate::ocpp::v16::uri::Uri;
use crate::ocpp::v16::wire::{json_object, present};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(remote = "Self", rename_all = "camelCase", deny_unknown_fields)]
pub struct GetDiagnostics {
    pub location: Uri,
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
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    pub start_time: Option<Timestamp>,
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    pub stop_time: Option<Timestamp>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(remote = "Self", rename_all = "camelCase", deny_unknown_fields)]
pub struct GetDiagnosticsResponse {
    /// Absent when there is nothing to upload.
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    pub file_name: Option<CiString255>,
}

json_object!(GetDiagnostics, GetDiagnosticsResponse);

impl Action for GetDiagnostics {
    const NAME: &'static str = "GetDiagnostics";
    type Response = GetDiagnosticsResponse;
}
