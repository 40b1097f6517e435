//! RemoteStartTransaction (Core, central system → charge point): start charging for an idTag,
//! e.g. when a driver starts from the app. The charger still sends its own StartTransaction.

use serde::{Deserialize, Serialize};

use crate::ocpp::v16::action::Action;
use crate::ocpp::v16::types::{ChargingProfile, IdToken, RemoteStartStopStatus};
use crate::ocpp::v16::wire::{json_object, present};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(remote = "Self", rename_all = "camelCase", deny_unknown_fields)]
pub struct RemoteStartTransaction {
    /// Absent: the charger picks a connector. Never 0.
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    pub connector_id: Option<i32>,
    pub id_tag: IdToken,
    /// Must be a `TxProfile` (OCPP 1.6 §5.11).
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    pub charging_profile: Option<ChargingProfile>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(remote = "Self", rename_all = "camelCase", deny_unknown_fields)]
pub struct RemoteStartTransactionResponse {
    pub status: RemoteStartStopStatus,
}

json_object!(RemoteStartTransaction, RemoteStartTransactionResponse);

impl Action for RemoteStartTransaction {
    const NAME: &'static str = "RemoteStartTransaction";
    type Response = RemoteStartTransactionResponse;
}
