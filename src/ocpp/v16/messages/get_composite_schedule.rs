//! GetCompositeSchedule (Smart Charging, central system → charge point): the schedule a
//! connector will follow for the next `duration` seconds, all its profiles combined.

use serde::{Deserialize, Serialize};

use crate::ocpp::v16::action::Action;
use crate::ocpp::v16::types::{ChargingRateUnitType, ChargingSchedule, Timestamp};
use crate::ocpp::v16::wire::{json_object, present, wire_enum};

wire_enum! {
    /// GetCompositeScheduleResponse `status`.
    pub enum GetCompositeScheduleStatus {
        Accepted = "Accepted",
        Rejected = "Rejected",
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(remote = "Self", rename_all = "camelCase", deny_unknown_fields)]
pub struct GetCompositeSchedule {
    /// 0: the whole charge point's expected consumption.
    pub connector_id: i32,
    /// Seconds.
    pub duration: i32,
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    pub charging_rate_unit: Option<ChargingRateUnitType>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(remote = "Self", rename_all = "camelCase", deny_unknown_fields)]
pub struct GetCompositeScheduleResponse {
    pub status: GetCompositeScheduleStatus,
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
    pub schedule_start: Option<Timestamp>,
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    pub charging_schedule: Option<ChargingSchedule>,
}

json_object!(GetCompositeSchedule, GetCompositeScheduleResponse);

impl Action for GetCompositeSchedule {
    const NAME: &'static str = "GetCompositeSchedule";
    type Response = GetCompositeScheduleResponse;
}
