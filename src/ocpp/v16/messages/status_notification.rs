//! StatusNotification (Core, charge point → central system): a connector (or, with connector
//! 0, the charger) changed state or reports an error.

use serde::{Deserialize, Serialize};

use crate::ocpp::v16::action::Action;
use crate::ocpp::v16::types::{
    ChargePointErrorCode, ChargePointStatus, CiString50, CiString255, Timestamp,
};
use crate::ocpp::v16::wire::{json_object, present};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(remote = "Self", rename_all = "camelCase", deny_unknown_fields)]
pub struct StatusNotification {
    pub connector_id: i32,
    pub error_code: ChargePointErrorCode,
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    pub info: Option<CiString50>,
    pub status: ChargePointStatus,
    /// When the status changed; absent means "when received".
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    pub timestamp: Option<Timestamp>,
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    pub vendor_id: Option<CiString255>,
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    pub vendor_error_code: Option<CiString50>,
}

/// No fields; still rejects unknown ones, like every message.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(remote = "Self", deny_unknown_fields)]
pub struct StatusNotificationResponse {}

json_object!(StatusNotification, StatusNotificationResponse);

impl Action for StatusNotification {
    const NAME: &'static str = "StatusNotification";
    type Response = StatusNotificationResponse;
}
