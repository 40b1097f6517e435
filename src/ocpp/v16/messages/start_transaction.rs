//! StartTransaction (Core, charge point → central system): charging has started on a
//! connector. The answer assigns the `transactionId` the charger quotes from then on, so it
//! must fit a JSON integer the charger can hold (32-bit in practice).

use serde::{Deserialize, Serialize};

use crate::ocpp::v16::action::Action;
use crate::ocpp::v16::types::{IdTagInfo, IdToken, Timestamp};
use crate::ocpp::v16::wire::{json_object, present};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(remote = "Self", rename_all = "camelCase", deny_unknown_fields)]
pub struct StartTransaction {
    pub connector_id: i32,
    pub id_tag: IdToken,
    /// Wh on the connector's meter at the start.
    pub meter_start: i32,
    /// Present when the transaction uses a reservation (ReserveNow), which it ends.
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    pub reservation_id: Option<i32>,
    pub timestamp: Timestamp,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(remote = "Self", rename_all = "camelCase", deny_unknown_fields)]
pub struct StartTransactionResponse {
    pub id_tag_info: IdTagInfo,
    pub transaction_id: i32,
}

json_object!(StartTransaction, StartTransactionResponse);

impl Action for StartTransaction {
    const NAME: &'static str = "StartTransaction";
    type Response = StartTransactionResponse;
}
