//! MeterValues (Core, charge point → central system): periodic or triggered meter readings,
//! during a transaction (with `transactionId`) or outside one.
//!
//! This message's schema, unlike StopTransaction's, needs at least one meterValue and at least
//! one sampledValue in each; that is checked here, on the way in.

use serde::{Deserialize, Deserializer, Serialize};

use crate::ocpp::v16::action::Action;
use crate::ocpp::v16::types::MeterValue;
use crate::ocpp::v16::wire::{OCCURRENCE_TAG, field_violation, json_object, present};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(remote = "Self", rename_all = "camelCase", deny_unknown_fields)]
pub struct MeterValues {
    /// 0 means the main meter of the whole charge point.
    pub connector_id: i32,
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    pub transaction_id: Option<i32>,
    #[serde(deserialize_with = "non_empty_meter_values")]
    pub meter_value: Vec<MeterValue>,
}

/// The schema's two `minItems: 1`.
fn non_empty_meter_values<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Vec<MeterValue>, D::Error> {
    let meter_values = Vec::<MeterValue>::deserialize(deserializer)?;
    const AT_LEAST_ONE: &str = "at least one entry required";
    if meter_values.is_empty() {
        return Err(field_violation(OCCURRENCE_TAG, "meterValue", AT_LEAST_ONE));
    }
    if let Some(empty) = meter_values
        .iter()
        .position(|value| value.sampled_value.is_empty())
    {
        let field = format_args!("meterValue[{empty}].sampledValue");
        return Err(field_violation(OCCURRENCE_TAG, field, AT_LEAST_ONE));
    }
    Ok(meter_values)
}

/// No fields; still rejects unknown ones, like every message.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(remote = "Self", deny_unknown_fields)]
pub struct MeterValuesResponse {}

json_object!(MeterValues, MeterValuesResponse);

impl Action for MeterValues {
    const NAME: &'static str = "MeterValues";
    type Response = MeterValuesResponse;
}
