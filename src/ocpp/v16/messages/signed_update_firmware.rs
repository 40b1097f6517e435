//! SignedUpdateFirmware (security extension, central system → charge point): UpdateFirmware
//! with a signature the charger checks before installing; progress comes back as
//! SignedFirmwareStatusNotification.

use serde::{Deserialize, Serialize};

use crate::ocpp::v16::action::Action;
use crate::ocpp::v16::types::{CiString, Timestamp};
use crate::ocpp::v16::wire::{json_object, present, wire_enum};

wire_enum! {
    /// SignedUpdateFirmwareResponse `status` (the schema's `UpdateFirmwareStatusEnumType`).
    pub enum SignedUpdateFirmwareStatus {
        Accepted = "Accepted",
        Rejected = "Rejected",
        AcceptedCanceled = "AcceptedCanceled",
        InvalidCertificate = "InvalidCertificate",
        RevokedCertificate = "RevokedCertificate",
    }
}

/// The firmware to fetch, with the certificate and signature that vouch for it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(remote = "Self", rename_all = "camelCase", deny_unknown_fields)]
pub struct Firmware {
    /// A URL; the schema only bounds its length.
    pub location: CiString<512>,
    pub retrieve_date_time: Timestamp,
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    pub install_date_time: Option<Timestamp>,
    /// PEM.
    pub signing_certificate: CiString<5500>,
    /// Base64.
    pub signature: CiString<800>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(remote = "Self", rename_all = "camelCase", deny_unknown_fields)]
pub struct SignedUpdateFirmware {
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    pub retries: Option<i32>,
    /// Seconds between retries.
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    pub retry_interval: Option<i32>,
    /// Ours to choose; the charger echoes it in SignedFirmwareStatusNotification.
    pub request_id: i32,
    pub firmware: Firmware,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(remote = "Self", rename_all = "camelCase", deny_unknown_fields)]
pub struct SignedUpdateFirmwareResponse {
    pub status: SignedUpdateFirmwareStatus,
}

json_object!(Firmware, SignedUpdateFirmware, SignedUpdateFirmwareResponse);

impl Action for SignedUpdateFirmware {
    const NAME: &'static str = "SignedUpdateFirmware";
    type Response = SignedUpdateFirmwareResponse;
}
