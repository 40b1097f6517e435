//! ClearChargingProfile (Smart Charging, central system → charge point): remove the charging
//! profiles matching every criterion given (none given: all of them).

use serde::{Deserialize, Serialize};

use crate::ocpp::v16::action::Action;
use crate::ocpp::v16::types::ChargingProfilePurposeType;
use crate::ocpp::v16::wire::{json_object, present, wire_enum};

wire_enum! {
    /// ClearChargingProfileResponse `status`.
    pub enum ClearChargingProfileStatus {
        Accepted = "Accepted",
        Unknown = "Unknown",
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(remote = "Self", rename_all = "camelCase", deny_unknown_fields)]
pub struct ClearChargingProfile {
    /// The profile's `chargingProfileId`.
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    pub id: Option<i32>,
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    pub connector_id: Option<i32>,
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    pub charging_profile_purpose: Option<ChargingProfilePurposeType>,
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    pub stack_level: Option<i32>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(remote = "Self", rename_all = "camelCase", deny_unknown_fields)]
pub struct ClearChargingProfileResponse {
    pub status: ClearChargingProfileStatus,
}

json_object!(ClearChargingProfile, ClearChargingProfileResponse);

impl Action for ClearChargingProfile {
    const NAME: &'static str = "ClearChargingProfile";
    type Response = ClearChargingProfileResponse;
}
