//! CertificateSigned (security extension, central system → charge point): the signed
//! certificate chain answering the charger's SignCertificate, PEM-encoded.

use serde::{Deserialize, Serialize};

use crate::ocpp::v16::action::Action;
use crate::ocpp::v16::types::CiString;
use crate::ocpp::v16::wire::{json_object, wire_enum};

wire_enum! {
    /// CertificateSignedResponse `status`.
    pub enum CertificateSignedStatus {
        Accepted = "Accepted",
        Rejected = "Rejected",
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(remote = "Self", rename_all = "camelCase", deny_unknown_fields)]
pub struct CertificateSigned {
    pub certificate_chain: CiString<10000>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(remote = "Self", rename_all = "camelCase", deny_unknown_fields)]
pub struct CertificateSignedResponse {
    pub status: CertificateSignedStatus,
}

json_object!(CertificateSigned, CertificateSignedResponse);

impl Action for CertificateSigned {
    const NAME: &'static str = "CertificateSigned";
    type Response = CertificateSignedResponse;
}
