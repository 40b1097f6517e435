//! FirmwareStatusNotification (Firmware Management, charge point → central system):
//! progress of a firmware update. Chargers updated by other means send it too, so it must be
//! answered, not refused.

use serde::{Deserialize, Serialize};

use crate::ocpp::v16::action::Action;
use crate::ocpp::v16::types::FirmwareStatus;
use crate::ocpp::v16::wire::json_object;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(remote = "Self", rename_all = "camelCase", deny_unknown_fields)]
pub struct FirmwareStatusNotification {
    pub status: FirmwareStatus,
}

/// No fields; still rejects unknown ones, like every message.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(remote = "Self", deny_unknown_fields)]
pub struct FirmwareStatusNotificationResponse {}

json_object!(
    FirmwareStatusNotification,
    FirmwareStatusNotificationResponse
);

impl Action for FirmwareStatusNotification {
    const NAME: &'static str = "FirmwareStatusNotification";
    type Response = FirmwareStatusNotificationResponse;
}
