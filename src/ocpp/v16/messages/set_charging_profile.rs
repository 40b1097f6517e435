//! SetChargingProfile (Smart Charging, central system → charge point): install a charging
//! profile on a connector (0: the whole charge point).

use serde::{Deserialize, Serialize};

use crate::ocpp::v16::action::Action;
use crate::ocpp::v16::types::ChargingProfile;
use crate::ocpp::v16::wire::{json_object, wire_enum};

wire_enum! {
    /// SetChargingProfileResponse `status`.
    pub enum ChargingProfileStatus {
        Accepted = "Accepted",
        Rejected = "Rejected",
        NotSupported = "NotSupported",
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(remote = "Self", rename_all = "camelCase", deny_unknown_fields)]
pub struct SetChargingProfile {
    pub connector_id: i32,
    pub cs_charging_profiles: ChargingProfile,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(remote = "Self", rename_all = "camelCase", deny_unknown_fields)]
pub struct SetChargingProfileResponse {
    pub status: ChargingProfileStatus,
}

json_object!(SetChargingProfile, SetChargingProfileResponse);

impl Action for SetChargingProfile {
    const NAME: &'static str = "SetChargingProfile";
    type Response = SetChargingProfileResponse;
}
