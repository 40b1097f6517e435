//! RemoteStopTransaction (Core, central system → charge point): stop a running transaction.
//! The charger still sends its own StopTransaction.

use serde::{Deserialize, Serialize};

use crate::ocpp::v16::action::Action;
use crate::ocpp::v16::types::RemoteStartStopStatus;
use crate::ocpp::v16::wire::json_object;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(remote = "Self", rename_all = "camelCase", deny_unknown_fields)]
pub struct RemoteStopTransaction {
    pub transaction_id: i32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(remote = "Self", rename_all = "camelCase", deny_unknown_fields)]
pub struct RemoteStopTransactionResponse {
    pub status: RemoteStartStopStatus,
}

json_object!(RemoteStopTransaction, RemoteStopTransactionResponse);

impl Action for RemoteStopTransaction {
    const NAME: &'static str = "RemoteStopTransaction";
    type Response = RemoteStopTransactionResponse;
}
