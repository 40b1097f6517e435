//! UnlockConnector (Core, central system → charge point): release a stuck cable.

use serde::{Deserialize, Serialize};

use crate::ocpp::v16::action::Action;
use crate::ocpp::v16::types::UnlockStatus;
use crate::ocpp::v16::wire::json_object;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(remote = "Self", rename_all = "camelCase", deny_unknown_fields)]
pub struct UnlockConnector {
    pub connector_id: i32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(remote = "Self", rename_all = "camelCase", deny_unknown_fields)]
pub struct UnlockConnectorResponse {
    pub status: UnlockStatus,
}

json_object!(UnlockConnector, UnlockConnectorResponse);

impl Action for UnlockConnector {
    const NAME: &'static str = "UnlockConnector";
    type Response = UnlockConnectorResponse;
}
