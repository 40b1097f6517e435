//! ExtendedTriggerMessage (security extension, central system → charge point): TriggerMessage
//! with the extension's messages (LogStatusNotification, a certificate signing request).

use serde::{Deserialize, Serialize};

use crate::ocpp::v16::action::Action;
use crate::ocpp::v16::types::TriggerMessageStatus;
use crate::ocpp::v16::wire::{json_object, present, wire_enum};

wire_enum! {
    /// ExtendedTriggerMessage `requestedMessage` (the schema's `MessageTriggerEnumType`).
    pub enum ExtendedMessageTrigger {
        BootNotification = "BootNotification",
        LogStatusNotification = "LogStatusNotification",
        FirmwareStatusNotification = "FirmwareStatusNotification",
        Heartbeat = "Heartbeat",
        MeterValues = "MeterValues",
        SignChargePointCertificate = "SignChargePointCertificate",
        StatusNotification = "StatusNotification",
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(remote = "Self", rename_all = "camelCase", deny_unknown_fields)]
pub struct ExtendedTriggerMessage {
    pub requested_message: ExtendedMessageTrigger,
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    pub connector_id: Option<i32>,
}

/// Same values as TriggerMessageResponse's.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(remote = "Self", rename_all = "camelCase", deny_unknown_fields)]
pub struct ExtendedTriggerMessageResponse {
    pub status: TriggerMessageStatus,
}

json_object!(ExtendedTriggerMessage, ExtendedTriggerMessageResponse);

impl Action for ExtendedTriggerMessage {
    const NAME: &'static str = "ExtendedTriggerMessage";
    type Response = ExtendedTriggerMessageResponse;
}
