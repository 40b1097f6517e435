//! InstallCertificate (security extension, central system → charge point): install a root
//! certificate (PEM) the charger will trust.
//!
//! Also home of `CertificateUse`, which GetInstalledCertificateIds shares.

use serde::{Deserialize, Serialize};

use crate::ocpp::v16::action::Action;
use crate::ocpp::v16::types::CiString;
use crate::ocpp::v16::wire::{json_object, wire_enum};

wire_enum! {
    /// InstallCertificate / GetInstalledCertificateIds `certificateType` (the schemas'
    /// `CertificateUseEnumType`).
    pub enum CertificateUse {
        CentralSystemRootCertificate = "CentralSystemRootCertificate",
        ManufacturerRootCertificate = "ManufacturerRootCertificate",
    }
}

wire_enum! {
    /// InstallCertificateResponse `status`.
    pub enum InstallCertificateStatus {
        Accepted = "Accepted",
        Failed = "Failed",
        Rejected = "Rejected",
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(remote = "Self", rename_all = "camelCase", deny_unknown_fields)]
pub struct InstallCertificate {
    pub certificate_type: CertificateUse,
    pub certificate: CiString<5500>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(remote = "Self", rename_all = "camelCase", deny_unknown_fields)]
pub struct InstallCertificateResponse {
    pub status: InstallCertificateStatus,
}

json_object!(InstallCertificate, InstallCertificateResponse);

impl Action for InstallCertificate {
    const NAME: &'static str = "InstallCertificate";
    type Response = InstallCertificateResponse;
}
