//! Authorize (Core, charge point → central system): may this idTag charge?
//!
//! Sent when a driver presents a token before a transaction starts. The answer is the
//! central system's verdict, which the charger may cache.

use serde::{Deserialize, Serialize};

use crate::ocpp::v16::action::Action;
use crate::ocpp::v16::types::{IdTagInfo, IdToken};
use crate::ocpp::v16::wire::json_object;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(remote = "Self", rename_all = "camelCase", deny_unknown_fields)]
pub struct Authorize {
    pub id_tag: IdToken,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(remote = "Self", rename_all = "camelCase", deny_unknown_fields)]
pub struct AuthorizeResponse {
    pub id_tag_info: IdTagInfo,
}

json_object!(Authorize, AuthorizeResponse);

impl Action for Authorize {
    const NAME: &'static str = "Authorize";
    type Response = AuthorizeResponse;
}
