//! SecurityEventNotification (security extension, charge point → central system): a security
//! event the charger saw (`type` is free text: the whitepaper's list, or a vendor's own).

use serde::{Deserialize, Serialize};

use crate::ocpp::v16::action::Action;
use crate::ocpp::v16::types::{CiString, CiString255, Timestamp};
use crate::ocpp::v16::wire::{json_object, present};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(remote = "Self", rename_all = "camelCase", deny_unknown_fields)]
pub struct SecurityEventNotification {
    #[serde(rename = "type")]
    pub kind: CiString<50>,
    pub timestamp: Timestamp,
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    pub tech_info: Option<CiString255>,
}

/// No fields; still rejects unknown ones, like every message.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(remote = "Self", deny_unknown_fields)]
pub struct SecurityEventNotificationResponse {}

json_object!(SecurityEventNotification, SecurityEventNotificationResponse);

impl Action for SecurityEventNotification {
    const NAME: &'static str = "SecurityEventNotification";
    type Response = SecurityEventNotificationResponse;
}
