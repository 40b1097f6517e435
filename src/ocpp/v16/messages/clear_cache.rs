//! ClearCache (Core, central system → charge point): forget cached idTag verdicts.

use serde::{Deserialize, Serialize};

use crate::ocpp::v16::action::Action;
use crate::ocpp::v16::types::ClearCacheStatus;
use crate::ocpp::v16::wire::json_object;

/// No fields; still rejects unknown ones, like every message.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(remote = "Self", deny_unknown_fields)]
pub struct ClearCache {}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(remote = "Self", rename_all = "camelCase", deny_unknown_fields)]
pub struct ClearCacheResponse {
    pub status: ClearCacheStatus,
}

json_object!(ClearCache, ClearCacheResponse);

impl Action for ClearCache {
    const NAME: &'static str = "ClearCache";
    type Response = ClearCacheResponse;
}
