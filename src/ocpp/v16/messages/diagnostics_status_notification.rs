//! DiagnosticsStatusNotification (Firmware Management, charge point → central system):
//! progress of a diagnostics upload. We never ask for one, but chargers send it anyway
//! (e.g. `Idle` after a TriggerMessage), so it must be answered, not refused.

use serde::{Deserialize, Serialize};

use crate::ocpp::v16::action::Action;
use crate::ocpp::v16::types::DiagnosticsStatus;
use crate::ocpp::v16::wire::json_object;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(remote = "Self", rename_all = "camelCase", deny_unknown_fields)]
pub struct DiagnosticsStatusNotification {
    pub status: DiagnosticsStatus,
}

/// No fields; still rejects unknown ones, like every message.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(remote = "Self", deny_unknown_fields)]
pub struct DiagnosticsStatusNotificationResponse {}

json_object!(
    DiagnosticsStatusNotification,
    DiagnosticsStatusNotificationResponse
);

impl Action for DiagnosticsStatusNotification {
    const NAME: &'static str = "DiagnosticsStatusNotification";
    type Response = DiagnosticsStatusNotificationResponse;
}
