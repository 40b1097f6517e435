//! StopTransaction (Core, charge point → central system): a transaction ended; carries the
//! final meter reading and, optionally, the transaction's meter values.
//!
//! `transactionData` reuses MeterValue, but this schema's unit list lacks `Hertz` (and has no
//! `minItems`), so the difference is checked here rather than forking the shared types.

use serde::{Deserialize, Deserializer, Serialize};

use crate::ocpp::v16::action::Action;
use crate::ocpp::v16::lenient::{self, Rule};
use crate::ocpp::v16::types::{IdTagInfo, IdToken, MeterValue, Reason, Timestamp, UnitOfMeasure};
use crate::ocpp::v16::wire::{PROPERTY_TAG, field_violation, json_object, present};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(remote = "Self", rename_all = "camelCase", deny_unknown_fields)]
pub struct StopTransaction {
    /// Present when stopped by a token (possibly another than the one that started it).
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    pub id_tag: Option<IdToken>,
    /// Wh on the connector's meter at the end.
    pub meter_stop: i32,
    pub timestamp: Timestamp,
    pub transaction_id: i32,
    /// Absent means `Local`.
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    pub reason: Option<Reason>,
    #[serde(
        default,
        deserialize_with = "transaction_data",
        skip_serializing_if = "Option::is_none"
    )]
    pub transaction_data: Option<Vec<MeterValue>>,
}

fn transaction_data<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<Vec<MeterValue>>, D::Error> {
    // Like `wire::present`: absent is handled by `default`, so present means an array.
    let data = if lenient::is_lenient() {
        match Option::<Vec<MeterValue>>::deserialize(deserializer)? {
            Some(data) => data,
            None => {
                lenient::note(Rule::NullOptional, || "transactionData: null".into());
                return Ok(None);
            }
        }
    } else {
        Vec::<MeterValue>::deserialize(deserializer)?
    };
    for (i, value) in data.iter().enumerate() {
        for (j, sample) in value.sampled_value.iter().enumerate() {
            if sample.unit == Some(UnitOfMeasure::Hertz.into()) {
                if lenient::is_lenient() {
                    lenient::note(Rule::UnknownEnumValue, || {
                        format!("transactionData[{i}].sampledValue[{j}].unit: \"Hertz\" kept")
                    });
                    continue;
                }
                let field = format_args!("transactionData[{i}].sampledValue[{j}].unit");
                return Err(field_violation(
                    PROPERTY_TAG,
                    field,
                    "\"Hertz\" not allowed here",
                ));
            }
        }
    }
    Ok(Some(data))
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(remote = "Self", rename_all = "camelCase", deny_unknown_fields)]
pub struct StopTransactionResponse {
    /// Only meaningful when the request carried an idTag.
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    pub id_tag_info: Option<IdTagInfo>,
}

json_object!(StopTransaction, StopTransactionResponse);

impl Action for StopTransaction {
    const NAME: &'static str = "StopTransaction";
    type Response = StopTransactionResponse;
}
