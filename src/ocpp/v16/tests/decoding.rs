//! The decode-error table: which CALLERROR each kind of bad request earns, with descriptions
//! that name the field. (The schema walk in `samples` covers every field; this file pins
//! the exact wording and the action-level rules.)

use serde_json::value::RawValue;

use super::schema::schema;
use crate::ocpp::v16::*;

#[track_caller]
fn decode(action: &str, payload: &str) -> Result<ChargePointRequest, DecodeError> {
    let raw: Box<RawValue> = serde_json::from_str(payload).expect("test payloads are JSON");
    ChargePointRequest::decode(action, &raw)
}

#[track_caller]
fn assert_refused(action: &str, payload: &str, code: ErrorCode, description: &str) {
    let error = decode(action, payload).expect_err(payload);
    assert_eq!(
        (error.code, error.description.as_str()),
        (code, description),
        "{action} {payload}"
    );
}

#[test]
fn unknown_actions_are_not_implemented() {
    use ErrorCode::NotImplemented;
    assert_refused("Foo", "{}", NotImplemented, r#"unknown action "Foo""#);
    assert_refused(
        "heartbeat",
        "{}",
        NotImplemented,
        r#"unknown action "heartbeat""#,
    );
    // OCPP 2.0.1 actions are not 1.6 actions.
    assert_refused(
        "TransactionEvent",
        "{}",
        NotImplemented,
        r#"unknown action "TransactionEvent""#,
    );
    let long = "A".repeat(100);
    let error = decode(&long, "{}").unwrap_err();
    assert!(
        error.description.chars().count() < 60,
        "{}",
        error.description
    );
}

#[test]
fn every_other_1_6_action_is_not_supported_from_a_charger() {
    let accepted = [
        "Authorize",
        "BootNotification",
        "DataTransfer",
        "DiagnosticsStatusNotification",
        "FirmwareStatusNotification",
        "Heartbeat",
        "LogStatusNotification",
        "MeterValues",
        "SecurityEventNotification",
        "SignCertificate",
        "SignedFirmwareStatusNotification",
        "StartTransaction",
        "StatusNotification",
        "StopTransaction",
    ];
    for action in OCPP16_ACTIONS {
        let result = decode(action, "{}");
        if accepted.contains(action) {
            assert!(
                !matches!(&result, Err(e) if matches!(e.code, ErrorCode::NotSupported | ErrorCode::NotImplemented)),
                "{action}: {result:?}"
            );
        } else {
            let error = result.unwrap_err();
            assert_eq!(error.code, ErrorCode::NotSupported, "{action}");
            assert!(error.description.contains(action));
        }
    }
}

#[test]
fn the_action_list_is_the_schema_folder() {
    let mut from_schemas: Vec<String> = ocpp_schemas::names()
        .into_iter()
        .filter(|name| !name.ends_with("Response"))
        .collect();
    from_schemas.sort();
    let mut ours: Vec<String> = OCPP16_ACTIONS.iter().map(|a| a.to_string()).collect();
    ours.sort();
    assert_eq!(ours, from_schemas);
    for action in OCPP16_ACTIONS {
        // Every action has its response schema too.
        schema(&format!("{action}Response.json"));
    }
}

#[test]
fn payload_error_table() {
    use ErrorCode::*;
    let cases = [
        // Required field absent: minOccurs = 1 violated.
        (
            "BootNotification",
            r#"{"chargePointModel":"m"}"#,
            OccurenceConstraintViolation,
            r#"missing field "chargePointVendor""#,
        ),
        (
            "MeterValues",
            r#"{"connectorId":1,"meterValue":[{"timestamp":"2026-01-01T00:00:00Z","sampledValue":[{"unit":"W"}]}]}"#,
            OccurenceConstraintViolation,
            r#"meterValue[0].sampledValue[0]: missing field "value""#,
        ),
        // minItems.
        (
            "MeterValues",
            r#"{"connectorId":1,"meterValue":[]}"#,
            OccurenceConstraintViolation,
            "meterValue: at least one entry required",
        ),
        (
            "MeterValues",
            r#"{"connectorId":1,"meterValue":[{"timestamp":"2026-01-01T00:00:00Z","sampledValue":[{"value":"1"}]},{"timestamp":"2026-01-01T00:00:00Z","sampledValue":[]}]}"#,
            OccurenceConstraintViolation,
            "meterValue[1].sampledValue: at least one entry required",
        ),
        // additionalProperties: false.
        (
            "BootNotification",
            r#"{"chargePointVendor":"v","chargePointModel":"m","firmware":"1"}"#,
            FormationViolation,
            r#"unknown field "firmware""#,
        ),
        (
            "Heartbeat",
            r#"{"now":1}"#,
            FormationViolation,
            r#"unknown field "now""#,
        ),
        (
            "StopTransaction",
            r#"{"transactionId":1,"meterStop":1,"timestamp":"2026-01-01T00:00:00Z","transactionData":[{"timestamp":"2026-01-01T00:00:00Z","sampledValue":[{"value":"1","phase":"L1","colour":"red"}]}]}"#,
            FormationViolation,
            r#"transactionData[0].sampledValue[0]: unknown field "colour""#,
        ),
        (
            "Authorize",
            r#"{"idTag":"A","idTag":"B"}"#,
            FormationViolation,
            r#"duplicate field "idTag""#,
        ),
        // Wrong JSON type.
        (
            "StatusNotification",
            r#"{"connectorId":"1","errorCode":"NoError","status":"Available"}"#,
            TypeConstraintViolation,
            "connectorId: invalid type: string, expected integer",
        ),
        (
            "BootNotification",
            r#"{"chargePointVendor":12,"chargePointModel":"m"}"#,
            TypeConstraintViolation,
            "chargePointVendor: invalid type: integer, expected string",
        ),
        (
            "StatusNotification",
            r#"{"connectorId":1,"errorCode":0,"status":"Available"}"#,
            TypeConstraintViolation,
            "errorCode: invalid type: integer, expected string",
        ),
        (
            "StatusNotification",
            r#"{"connectorId":1,"errorCode":"NoError","status":"Available","info":null}"#,
            TypeConstraintViolation,
            "info: invalid type: null, expected string",
        ),
        (
            "MeterValues",
            r#"{"connectorId":1,"meterValue":{}}"#,
            TypeConstraintViolation,
            "meterValue: invalid type: object, expected array",
        ),
        (
            "MeterValues",
            r#"{"connectorId":1,"meterValue":[["2026-01-01T00:00:00Z",[{"value":"1"}]]]}"#,
            TypeConstraintViolation,
            "meterValue[0]: invalid type: array, expected object",
        ),
        (
            "StartTransaction",
            r#"{"connectorId":1,"idTag":"A","meterStart":1.5,"timestamp":"2026-01-01T00:00:00Z"}"#,
            TypeConstraintViolation,
            "meterStart: invalid type: number, expected integer",
        ),
        // Value out of bounds.
        (
            "BootNotification",
            r#"{"chargePointVendor":"ABCDEFGHIJKLMNOPQRSTU","chargePointModel":"m"}"#,
            PropertyConstraintViolation,
            "chargePointVendor: string longer than 20",
        ),
        (
            "StatusNotification",
            r#"{"connectorId":1,"errorCode":"NoError","status":"Plugged"}"#,
            PropertyConstraintViolation,
            r#"status: unknown value "Plugged""#,
        ),
        (
            "StatusNotification",
            r#"{"connectorId":1,"errorCode":"NoError","status":"available"}"#,
            PropertyConstraintViolation,
            r#"status: unknown value "available""#,
        ),
        (
            "StartTransaction",
            r#"{"connectorId":1,"idTag":"A","meterStart":4294967296,"timestamp":"2026-01-01T00:00:00Z"}"#,
            PropertyConstraintViolation,
            "meterStart: integer out of range",
        ),
        (
            "StartTransaction",
            "{\n  \"connectorId\": 1,\n  \"idTag\": \"A\",\n  \"meterStart\": 0,\n  \"timestamp\": \"24/11/2026 05:46\"\n}",
            PropertyConstraintViolation,
            "timestamp: not an RFC 3339 date-time",
        ),
        (
            "StopTransaction",
            r#"{"transactionId":1,"meterStop":1,"timestamp":"2026-01-01T00:00:00Z","transactionData":[{"timestamp":"2026-01-01T00:00:00Z","sampledValue":[{"value":"1"},{"value":"50","unit":"Hertz"}]}]}"#,
            PropertyConstraintViolation,
            r#"transactionData[0].sampledValue[1].unit: "Hertz" not allowed here"#,
        ),
    ];
    for (action, payload, code, description) in cases {
        assert_refused(action, payload, code, description);
    }
    // Hertz is fine in MeterValues, whose schema lists it.
    decode(
        "MeterValues",
        r#"{"connectorId":1,"meterValue":[{"timestamp":"2026-01-01T00:00:00Z","sampledValue":[{"value":"50","unit":"Hertz"}]}]}"#,
    )
    .unwrap();
}

#[test]
fn payload_text_that_is_not_json_is_a_formation_violation() {
    let error = decode_payload::<Heartbeat>("{").unwrap_err();
    assert_eq!(error.code, ErrorCode::FormationViolation);
    let error = decode_payload::<Heartbeat>("[]").unwrap_err();
    assert_eq!(error.code, ErrorCode::TypeConstraintViolation);
}

#[test]
fn long_peer_text_is_not_echoed_in_full() {
    let key = "k".repeat(500);
    let payload = format!(r#"{{"chargePointVendor":"v","chargePointModel":"m","{key}":1}}"#);
    let error = decode("BootNotification", &payload).unwrap_err();
    assert_eq!(error.code, ErrorCode::FormationViolation);
    assert!(
        error.description.chars().count() < 80,
        "{}",
        error.description
    );
}
