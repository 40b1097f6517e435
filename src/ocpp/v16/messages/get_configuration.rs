//! GetConfiguration (Core, central system → charge point): read configuration keys (all of
//! them when `key` is absent).

use serde::{Deserialize, Serialize};

use crate::ocpp::v16::action::Action;
use crate::ocpp::v16::types::{CiString50, KeyValue};
use crate::ocpp::v16::wire::{json_object, present};

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(remote = "Self", rename_all = "camelCase", deny_unknown_fields)]
pub struct GetConfiguration {
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    pub key: Option<Vec<CiString50>>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(remote = "Self", rename_all = "camelCase", deny_unknown_fields)]
pub struct GetConfigurationResponse {
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    pub configuration_key: Option<Vec<KeyValue>>,
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    pub unknown_key: Option<Vec<CiString50>>,
}

json_object!(GetConfiguration, GetConfigurationResponse);

impl Action for GetConfiguration {
    const NAME: &'static str = "GetConfiguration";
    type Response = GetConfigurationResponse;
}
