//! ChangeAvailability (Core, central system → charge point): take a connector (or, with
//! connector 0, the whole charger) in or out of service.

use serde::{Deserialize, Serialize};

use crate::ocpp::v16::action::Action;
use crate::ocpp::v16::types::{AvailabilityStatus, AvailabilityType};
use crate::ocpp::v16::wire::json_object;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(remote = "Self", rename_all = "camelCase", deny_unknown_fields)]
pub struct ChangeAvailability {
    /// 0 means the whole charge point.
    pub connector_id: i32,
    #[serde(rename = "type")]
    pub kind: AvailabilityType,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(remote = "Self", rename_all = "camelCase", deny_unknown_fields)]
pub struct ChangeAvailabilityResponse {
    pub status: AvailabilityStatus,
}

json_object!(ChangeAvailability, ChangeAvailabilityResponse);

impl Action for ChangeAvailability {
    const NAME: &'static str = "ChangeAvailability";
    type Response = ChangeAvailabilityResponse;
}
