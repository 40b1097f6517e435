//! ReserveNow (Reservation, central system → charge point): hold a connector for an idTag
//! until `expiryDate`.
//!
//! There is no start time: a reservation holds from the moment it is accepted, so future
//! time slots have to live in the central system, which sends this when the slot begins.

use serde::{Deserialize, Serialize};

use crate::ocpp::v16::action::Action;
use crate::ocpp::v16::types::{IdToken, ReservationStatus, Timestamp};
use crate::ocpp::v16::wire::{json_object, present};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(remote = "Self", rename_all = "camelCase", deny_unknown_fields)]
pub struct ReserveNow {
    /// 0 reserves the charge point rather than one connector.
    pub connector_id: i32,
    pub expiry_date: Timestamp,
    pub id_tag: IdToken,
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    pub parent_id_tag: Option<IdToken>,
    /// Ours to choose; the charger echoes it in StartTransaction.
    pub reservation_id: i32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(remote = "Self", rename_all = "camelCase", deny_unknown_fields)]
pub struct ReserveNowResponse {
    pub status: ReservationStatus,
}

json_object!(ReserveNow, ReserveNowResponse);

impl Action for ReserveNow {
    const NAME: &'static str = "ReserveNow";
    type Response = ReserveNowResponse;
}
