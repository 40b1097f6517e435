//! GetInstalledCertificateIds (security extension, central system → charge point): which
//! root certificates of one kind the charger has installed.

use serde::{Deserialize, Deserializer, Serialize};

use super::delete_certificate::CertificateHashData;
use super::install_certificate::CertificateUse;
use crate::ocpp::v16::action::Action;
use crate::ocpp::v16::wire::{OCCURRENCE_TAG, field_violation, json_object, wire_enum};

wire_enum! {
    /// GetInstalledCertificateIdsResponse `status`.
    pub enum GetInstalledCertificateStatus {
        Accepted = "Accepted",
        NotFound = "NotFound",
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(remote = "Self", rename_all = "camelCase", deny_unknown_fields)]
pub struct GetInstalledCertificateIds {
    pub certificate_type: CertificateUse,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(remote = "Self", rename_all = "camelCase", deny_unknown_fields)]
pub struct GetInstalledCertificateIdsResponse {
    /// Absent, never empty (the schema's `minItems: 1`), when there is none.
    #[serde(
        default,
        deserialize_with = "non_empty_hash_data",
        skip_serializing_if = "Option::is_none"
    )]
    pub certificate_hash_data: Option<Vec<CertificateHashData>>,
    pub status: GetInstalledCertificateStatus,
}

fn non_empty_hash_data<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<Vec<CertificateHashData>>, D::Error> {
    let all = Vec::<CertificateHashData>::deserialize(deserializer)?;
    if all.is_empty() {
        return Err(field_violation(
            OCCURRENCE_TAG,
            "certificateHashData",
            "at least one entry required",
        ));
    }
    Ok(Some(all))
}

json_object!(
    GetInstalledCertificateIds,
    GetInstalledCertificateIdsResponse
);

impl Action for GetInstalledCertificateIds {
    const NAME: &'static str = "GetInstalledCertificateIds";
    type Response = GetInstalledCertificateIdsResponse;
}
