//! SignedFirmwareStatusNotification (security extension, charge point → central system):
//! progress of a SignedUpdateFirmware, with the signature checks the plain
//! FirmwareStatusNotification has no words for.

use serde::{Deserialize, Serialize};

use crate::ocpp::v16::action::Action;
use crate::ocpp::v16::wire::{json_object, present, wire_enum};

wire_enum! {
    /// SignedFirmwareStatusNotification `status`.
    pub enum SignedFirmwareStatus {
        Downloaded = "Downloaded",
        DownloadFailed = "DownloadFailed",
        Downloading = "Downloading",
        DownloadScheduled = "DownloadScheduled",
        DownloadPaused = "DownloadPaused",
        Idle = "Idle",
        InstallationFailed = "InstallationFailed",
        Installing = "Installing",
        Installed = "Installed",
        InstallRebooting = "InstallRebooting",
        InstallScheduled = "InstallScheduled",
        InstallVerificationFailed = "InstallVerificationFailed",
        InvalidSignature = "InvalidSignature",
        SignatureVerified = "SignatureVerified",
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(remote = "Self", rename_all = "camelCase", deny_unknown_fields)]
pub struct SignedFirmwareStatusNotification {
    pub status: SignedFirmwareStatus,
    /// The SignedUpdateFirmware's `requestId` this reports on.
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    pub request_id: Option<i32>,
}

/// No fields; still rejects unknown ones, like every message.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(remote = "Self", deny_unknown_fields)]
pub struct SignedFirmwareStatusNotificationResponse {}

json_object!(
    SignedFirmwareStatusNotification,
    SignedFirmwareStatusNotificationResponse
);

impl Action for SignedFirmwareStatusNotification {
    const NAME: &'static str = "SignedFirmwareStatusNotification";
    type Response = SignedFirmwareStatusNotificationResponse;
}
