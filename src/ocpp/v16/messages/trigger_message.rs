//! TriggerMessage (Remote Trigger, central system → charge point): ask the charger to send one
//! of its messages now (e.g. a StatusNotification to resync a connector's state).

use serde::{Deserialize, Serialize};

use crate::ocpp::v16::action::Action;
use crate::ocpp::v16::types::{MessageTrigger, TriggerMessageStatus};
use crate::ocpp::v16::wire::{json_object, present};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(remote = "Self", rename_all = "camelCase", deny_unknown_fields)]
pub struct TriggerMessage {
    pub requested_message: MessageTrigger,
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    pub connector_id: Option<i32>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(remote = "Self", rename_all = "camelCase", deny_unknown_fields)]
pub struct TriggerMessageResponse {
    pub status: TriggerMessageStatus,
}

json_object!(TriggerMessage, TriggerMessageResponse);

impl Action for TriggerMessage {
    const NAME: &'static str = "TriggerMessage";
    type Response = TriggerMessageResponse;
}
