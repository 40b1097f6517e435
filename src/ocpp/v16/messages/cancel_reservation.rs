//! CancelReservation (Reservation, central system → charge point): drop a reservation made
//! with ReserveNow.

use serde::{Deserialize, Serialize};

use crate::ocpp::v16::action::Action;
use crate::ocpp::v16::types::CancelReservationStatus;
use crate::ocpp::v16::wire::json_object;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(remote = "Self", rename_all = "camelCase", deny_unknown_fields)]
pub struct CancelReservation {
    pub reservation_id: i32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(remote = "Self", rename_all = "camelCase", deny_unknown_fields)]
pub struct CancelReservationResponse {
    pub status: CancelReservationStatus,
}

json_object!(CancelReservation, CancelReservationResponse);

impl Action for CancelReservation {
    const NAME: &'static str = "CancelReservation";
    type Response = CancelReservationResponse;
}
