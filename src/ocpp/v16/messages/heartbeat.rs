//! Heartbeat (Core, charge point → central system): "still here"; the answer carries our
//! clock so chargers can sync theirs.

use serde::{Deserialize, Serialize};

use crate::ocpp::v16::action::Action;
use crate::ocpp::v16::types::Timestamp;
use crate::ocpp::v16::wire::json_object;

/// No fields; still rejects unknown ones, like every message.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(remote = "Self", deny_unknown_fields)]
pub struct Heartbeat {}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(remote = "Self", rename_all = "camelCase", deny_unknown_fields)]
pub struct HeartbeatResponse {
    pub current_time: Timestamp,
}

json_object!(Heartbeat, HeartbeatResponse);

impl Action for Heartbeat {
    const NAME: &'static str = "Heartbeat";
    type Response = HeartbeatResponse;
}
