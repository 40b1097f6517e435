//! ChangeConfiguration (Core, central system → charge point): set one configuration key.

use serde::{Deserialize, Serialize};

use crate::ocpp::v16::action::Action;
use crate::ocpp::v16::types::{CiString50, CiString500, ConfigurationStatus};
use crate::ocpp::v16::wire::json_object;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(remote = "Self", rename_all = "camelCase", deny_unknown_fields)]
pub struct ChangeConfiguration {
    pub key: CiString50,
    pub value: CiString500,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(remote = "Self", rename_all = "camelCase", deny_unknown_fields)]
pub struct ChangeConfigurationResponse {
    pub status: ConfigurationStatus,
}

json_object!(ChangeConfiguration, ChangeConfigurationResponse);

impl Action for ChangeConfiguration {
    const NAME: &'static str = "ChangeConfiguration";
    type Response = ChangeConfigurationResponse;
}
