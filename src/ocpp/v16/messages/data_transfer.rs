//! DataTransfer (Core, either direction): vendor-specific data outside the standard.
//!
//! We receive it from chargers and answer `UnknownVendorId` unless someone knows the vendor.

use serde::{Deserialize, Serialize};

use crate::ocpp::v16::action::Action;
use crate::ocpp::v16::types::{CiString50, CiString255, DataTransferStatus, present_text};
use crate::ocpp::v16::wire::{json_object, present};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(remote = "Self", rename_all = "camelCase", deny_unknown_fields)]
pub struct DataTransfer {
    pub vendor_id: CiString255,
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    pub message_id: Option<CiString50>,
    /// Free text, no length limit in the schema (U+0000 refused, see `types::NUL_REFUSED`).
    #[serde(
        default,
        deserialize_with = "present_text",
        skip_serializing_if = "Option::is_none"
    )]
    pub data: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(remote = "Self", rename_all = "camelCase", deny_unknown_fields)]
pub struct DataTransferResponse {
    pub status: DataTransferStatus,
    #[serde(
        default,
        deserialize_with = "present_text",
        skip_serializing_if = "Option::is_none"
    )]
    pub data: Option<String>,
}

json_object!(DataTransfer, DataTransferResponse);

impl Action for DataTransfer {
    const NAME: &'static str = "DataTransfer";
    type Response = DataTransferResponse;
}
