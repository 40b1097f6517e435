//! BootNotification (Core, charge point → central system): "I am up, this is what I am".
//!
//! The first message of every session. The answer decides whether the charger may talk to us
//! at all (`Accepted`), must wait (`Pending`) or is refused (`Rejected`), and sets the
//! heartbeat interval.

use serde::{Deserialize, Serialize};

use crate::ocpp::v16::action::Action;
use crate::ocpp::v16::types::{CiString20, CiString25, CiString50, RegistrationStatus, Timestamp};
use crate::ocpp::v16::wire::{json_object, present};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(remote = "Self", rename_all = "camelCase", deny_unknown_fields)]
pub struct BootNotification {
    pub charge_point_vendor: CiString20,
    pub charge_point_model: CiString20,
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    pub charge_point_serial_number: Option<CiString25>,
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    pub charge_box_serial_number: Option<CiString25>,
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    pub firmware_version: Option<CiString50>,
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    pub iccid: Option<CiString20>,
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    pub imsi: Option<CiString20>,
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    pub meter_type: Option<CiString25>,
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    pub meter_serial_number: Option<CiString25>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(remote = "Self", rename_all = "camelCase", deny_unknown_fields)]
pub struct BootNotificationResponse {
    pub status: RegistrationStatus,
    pub current_time: Timestamp,
    /// Seconds: the heartbeat interval when `Accepted`, else when to retry the boot.
    pub interval: i32,
}

json_object!(BootNotification, BootNotificationResponse);

impl Action for BootNotification {
    const NAME: &'static str = "BootNotification";
    type Response = BootNotificationResponse;
}
