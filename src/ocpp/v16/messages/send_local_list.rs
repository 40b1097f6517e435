//! SendLocalList (Local Auth List Management, central system → charge point): replace
//! (`Full`) or patch (`Differential`) the charger's local authorization list, so drivers
//! can start while it is offline.

use serde::{Deserialize, Serialize};

use crate::ocpp::v16::action::Action;
use crate::ocpp::v16::types::{IdTagInfo, IdToken};
use crate::ocpp::v16::wire::{json_object, present, wire_enum};

wire_enum! {
    /// SendLocalList `updateType`.
    pub enum UpdateType {
        Differential = "Differential",
        Full = "Full",
    }
}

wire_enum! {
    /// SendLocalListResponse `status`.
    pub enum UpdateStatus {
        Accepted = "Accepted",
        Failed = "Failed",
        NotSupported = "NotSupported",
        VersionMismatch = "VersionMismatch",
    }
}

/// One entry of the list. In a `Differential` update, an entry without `idTagInfo` removes
/// the idTag.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(remote = "Self", rename_all = "camelCase", deny_unknown_fields)]
pub struct AuthorizationData {
    pub id_tag: IdToken,
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    pub id_tag_info: Option<IdTagInfo>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(remote = "Self", rename_all = "camelCase", deny_unknown_fields)]
pub struct SendLocalList {
    pub list_version: i32,
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    pub local_authorization_list: Option<Vec<AuthorizationData>>,
    pub update_type: UpdateType,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(remote = "Self", rename_all = "camelCase", deny_unknown_fields)]
pub struct SendLocalListResponse {
    pub status: UpdateStatus,
}

json_object!(AuthorizationData, SendLocalList, SendLocalListResponse);

impl Action for SendLocalList {
    const NAME: &'static str = "SendLocalList";
    type Response = SendLocalListResponse;
}
