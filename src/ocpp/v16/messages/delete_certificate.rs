//! DeleteCertificate (security extension, central system → charge point): remove an
//! installed certificate, named by its hashes and serial number.
//!
//! Also home of `CertificateHashData`, which GetInstalledCertificateIdsResponse shares.

use serde::{Deserialize, Serialize};

use crate::ocpp::v16::action::Action;
use crate::ocpp::v16::types::CiString;
use crate::ocpp::v16::wire::{json_object, wire_enum};

wire_enum! {
    /// CertificateHashData `hashAlgorithm`.
    pub enum HashAlgorithm {
        Sha256 = "SHA256",
        Sha384 = "SHA384",
        Sha512 = "SHA512",
    }
}

wire_enum! {
    /// DeleteCertificateResponse `status`.
    pub enum DeleteCertificateStatus {
        Accepted = "Accepted",
        Failed = "Failed",
        NotFound = "NotFound",
    }
}

/// Names one certificate: the hashes of its issuer's name and public key, and its serial
/// number (hex strings).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(remote = "Self", rename_all = "camelCase", deny_unknown_fields)]
pub struct CertificateHashData {
    pub hash_algorithm: HashAlgorithm,
    pub issuer_name_hash: CiString<128>,
    pub issuer_key_hash: CiString<128>,
    pub serial_number: CiString<40>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(remote = "Self", rename_all = "camelCase", deny_unknown_fields)]
pub struct DeleteCertificate {
    pub certificate_hash_data: CertificateHashData,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(remote = "Self", rename_all = "camelCase", deny_unknown_fields)]
pub struct DeleteCertificateResponse {
    pub status: DeleteCertificateStatus,
}

json_object!(
    CertificateHashData,
    DeleteCertificate,
    DeleteCertificateResponse
);

impl Action for DeleteCertificate {
    const NAME: &'static str = "DeleteCertificate";
    type Response = DeleteCertificateResponse;
}
