//! UpdateFirmware (Firmware Management, central system → charge point): download firmware from
//! `location` from `retrieveDate` on and install it; the charger reports progress with
//! FirmwareStatusNotification.

use serde::{Deserialize, Serialize};

use crate::ocpp::v16::action::Action;
use crate::ocpp::v16::types::Timestamp;
use crate::ocpp::v16::uri::Uri;
use crate::ocpp::v16::wire::{json_object, present};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(remote = "Self", rename_all = "camelCase", deny_unknown_fields)]
pub struct UpdateFirmware {
    pub location: Uri,
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    pub retries: Option<i32>,
    pub retrieve_date: Timestamp,
    /// Seconds between retries.
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    pub retry_interval: Option<i32>,
}

/// No fields; still rejects unknown ones, like every message.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(remote = "Self", deny_unknown_fields)]
pub struct UpdateFirmwareResponse {}

json_object!(UpdateFirmware, UpdateFirmwareResponse);

impl Action for UpdateFirmware {
    const NAME: &'static str = "UpdateFirmware";
    type Response = UpdateFirmwareResponse;
}
