//! SignCertificate (security extension, charge point → central system): the charger's
//! certificate signing request (PEM, PKCS#10). Accepted means the server will send the signed
//! chain with CertificateSigned; the answer itself carries no certificate.

use serde::{Deserialize, Serialize};

use crate::ocpp::v16::action::Action;
use crate::ocpp::v16::types::CiString;
use crate::ocpp::v16::wire::{json_object, wire_enum};

wire_enum! {
    /// SignCertificateResponse `status`.
    pub enum GenericStatus {
        Accepted = "Accepted",
        Rejected = "Rejected",
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(remote = "Self", rename_all = "camelCase", deny_unknown_fields)]
pub struct SignCertificate {
    pub csr: CiString<5500>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(remote = "Self", rename_all = "camelCase", deny_unknown_fields)]
pub struct SignCertificateResponse {
    pub status: GenericStatus,
}

json_object!(SignCertificate, SignCertificateResponse);

impl Action for SignCertificate {
    const NAME: &'static str = "SignCertificate";
    type Response = SignCertificateResponse;
}
