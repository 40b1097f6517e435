//! GetLocalListVersion (Local Auth List Management, central system → charge point): which
//! version of the local authorization list the charger holds.

use serde::{Deserialize, Serialize};

use crate::ocpp::v16::action::Action;
use crate::ocpp::v16::wire::json_object;

/// No fields; still rejects unknown ones, like every message.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(remote = "Self", deny_unknown_fields)]
pub struct GetLocalListVersion {}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(remote = "Self", rename_all = "camelCase", deny_unknown_fields)]
pub struct GetLocalListVersionResponse {
    /// 0: the list is empty; -1: the charger does not support local lists.
    pub list_version: i32,
}

json_object!(GetLocalListVersion, GetLocalListVersionResponse);

impl Action for GetLocalListVersion {
    const NAME: &'static str = "GetLocalListVersion";
    type Response = GetLocalListVersionResponse;
}
