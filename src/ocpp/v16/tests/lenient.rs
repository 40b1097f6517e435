//! Lenient decoding: each rule accepts what it names and nothing more; strict mode refuses the
//! same payloads with the codes the schemas imply; a compliant payload has no deviation.

use serde_json::value::RawValue;

use crate::ocpp::v16::*;

#[track_caller]
fn decode(
    action: &str,
    payload: &str,
    strictness: Strictness,
) -> Result<Decoded<ChargePointRequest>, DecodeError> {
    let raw: Box<RawValue> = serde_json::from_str(payload).expect("test payloads are JSON");
    ChargePointRequest::decode_with(action, &raw, strictness)
}

/// Accepted in lenient mode with exactly `rules` (in any order), refused with `code` in strict.
#[track_caller]
fn lenient_only(
    action: &str,
    payload: &str,
    rules: &[Rule],
    code: ErrorCode,
) -> ChargePointRequest {
    let strict = decode(action, payload, Strictness::Strict).expect_err(payload);
    assert_eq!(
        strict.code, code,
        "strict: {payload}: {}",
        strict.description
    );
    let decoded = decode(action, payload, Strictness::Lenient)
        .unwrap_or_else(|e| panic!("lenient refused {payload}: {} {}", e.code, e.description));
    let mut got: Vec<Rule> = decoded.deviations.iter().map(|d| d.rule).collect();
    got.sort();
    let mut want = rules.to_vec();
    want.sort();
    assert_eq!(got, want, "{payload}: {:?}", decoded.deviations);
    decoded.value
}

#[test]
fn a_compliant_frame_has_no_deviation_in_either_mode() {
    let boot = r#"{"chargePointVendor":"ABB","chargePointModel":"Terra AC","chargeBoxSerialNumber":"TACW2245320G1234","firmwareVersion":"1.6.7"}"#;
    for mode in [Strictness::Strict, Strictness::Lenient] {
        let decoded = decode("BootNotification", boot, mode).unwrap();
        assert!(decoded.deviations.is_empty());
    }
}

#[test]
fn an_over_long_serial_is_kept_whole() {
    let serial = "EVB-P2147483647-SE-0001234567890";
    let payload = format!(
        r#"{{"chargePointVendor":"Schneider Electric","chargePointModel":"EVlink Pro AC","chargeBoxSerialNumber":"{serial}"}}"#
    );
    let request = lenient_only(
        "BootNotification",
        &payload,
        &[Rule::StringTooLong],
        ErrorCode::PropertyConstraintViolation,
    );
    let ChargePointRequest::BootNotification(boot) = request else {
        panic!("not a boot")
    };
    assert_eq!(boot.charge_box_serial_number.unwrap().as_str(), serial);
}

#[test]
fn strings_beyond_the_storage_cap_are_refused_even_leniently() {
    let vendor = "V".repeat(lenient::STORAGE_CAP + 1);
    let payload = format!(r#"{{"chargePointVendor":"{vendor}","chargePointModel":"M"}}"#);
    let error = decode("BootNotification", &payload, Strictness::Lenient).unwrap_err();
    assert_eq!(error.code, ErrorCode::PropertyConstraintViolation);
}

#[test]
fn null_for_an_optional_field_is_absent() {
    let payload = r#"{"chargePointVendor":"Keba","chargePointModel":"P30","firmwareVersion":null,"iccid":null}"#;
    let request = lenient_only(
        "BootNotification",
        payload,
        &[Rule::NullOptional, Rule::NullOptional],
        ErrorCode::TypeConstraintViolation,
    );
    let ChargePointRequest::BootNotification(boot) = request else {
        panic!("not a boot")
    };
    assert_eq!(boot.firmware_version, None);
}

#[test]
fn null_for_a_required_field_is_still_refused() {
    let payload = r#"{"chargePointVendor":null,"chargePointModel":"P30"}"#;
    let error = decode("BootNotification", payload, Strictness::Lenient).unwrap_err();
    assert_eq!(error.code, ErrorCode::TypeConstraintViolation);
}

#[test]
fn unknown_fields_are_ignored_at_any_depth() {
    let payload = r#"{"connectorId":1,"transactionId":7,"vendorExtra":{"a":1},"meterValue":[{"timestamp":"2024-05-01T10:00:00Z","sampledValue":[{"value":"12","measurand":"Energy.Active.Import.Register","signed":false}]}]}"#;
    let request = lenient_only(
        "MeterValues",
        payload,
        &[Rule::UnknownField, Rule::UnknownField],
        ErrorCode::FormationViolation,
    );
    let ChargePointRequest::MeterValues(m) = request else {
        panic!("not meter values")
    };
    assert_eq!(m.meter_value[0].sampled_value[0].value, "12");
}

#[test]
fn a_flood_of_unknown_fields_stops_at_the_repair_bound() {
    let extra: Vec<String> = (0..=lenient::MAX_REPAIRS)
        .map(|i| format!(r#""x{i}":{i}"#))
        .collect();
    let payload = format!(r#"{{{}}}"#, extra.join(","));
    let error = decode("Heartbeat", &payload, Strictness::Lenient).unwrap_err();
    assert_eq!(error.code, ErrorCode::FormationViolation);
    // Within the bound it is fine.
    let payload = r#"{"x":1,"y":2}"#;
    assert_eq!(
        decode("Heartbeat", payload, Strictness::Lenient)
            .unwrap()
            .deviations
            .len(),
        2
    );
}

#[test]
fn numbers_where_strings_are_wanted_are_read_as_their_text() {
    let payload = r#"{"connectorId":1,"meterValue":[{"timestamp":"2024-05-01T10:00:00Z","sampledValue":[{"value":1234.5,"unit":"Wh"}]}]}"#;
    let request = lenient_only(
        "MeterValues",
        payload,
        &[Rule::NumberAsString],
        ErrorCode::TypeConstraintViolation,
    );
    let ChargePointRequest::MeterValues(m) = request else {
        panic!("not meter values")
    };
    assert_eq!(m.meter_value[0].sampled_value[0].value, "1234.5");
    // An idTag given as a number (RFID UIDs that happen to be all digits).
    lenient_only(
        "Authorize",
        r#"{"idTag":4711}"#,
        &[Rule::NumberAsString],
        ErrorCode::TypeConstraintViolation,
    );
}

#[test]
fn integers_given_as_strings_or_floats_are_read() {
    let payload = r#"{"connectorId":"1","idTag":"ABC","meterStart":1200.0,"timestamp":"2024-05-01T10:00:00Z"}"#;
    let request = lenient_only(
        "StartTransaction",
        payload,
        &[Rule::StringAsNumber, Rule::FloatAsInteger],
        ErrorCode::TypeConstraintViolation,
    );
    let ChargePointRequest::StartTransaction(s) = request else {
        panic!("not a start")
    };
    assert_eq!((s.connector_id, s.meter_start), (1, 1200));
    // Text that is not a number stays an error.
    let error = decode(
        "StartTransaction",
        r#"{"connectorId":"one","idTag":"ABC","meterStart":0,"timestamp":"2024-05-01T10:00:00Z"}"#,
        Strictness::Lenient,
    )
    .unwrap_err();
    assert_eq!(error.code, ErrorCode::TypeConstraintViolation);
}

#[test]
fn enum_values_in_another_case_are_read_as_the_schema_spells_them() {
    let payload = r#"{"connectorId":1,"errorCode":"NOERROR","status":"available"}"#;
    let request = lenient_only(
        "StatusNotification",
        payload,
        &[Rule::EnumCase, Rule::EnumCase],
        ErrorCode::PropertyConstraintViolation,
    );
    let ChargePointRequest::StatusNotification(s) = request else {
        panic!("not a status")
    };
    assert_eq!(s.status, ChargePointStatus::Available);
    // A value that is no spelling of any status stays refused.
    let error = decode(
        "StatusNotification",
        r#"{"connectorId":1,"errorCode":"NoError","status":"Plugged"}"#,
        Strictness::Lenient,
    )
    .unwrap_err();
    assert_eq!(error.code, ErrorCode::PropertyConstraintViolation);
}

#[test]
fn unknown_meter_qualifiers_are_kept_and_the_sample_is_not_energy() {
    let payload = r#"{"connectorId":1,"meterValue":[{"timestamp":"2024-05-01T10:00:00Z","sampledValue":[{"value":"3.5","measurand":"Energy.Active.Import.Register","unit":"Ah"},{"value":"41","measurand":"SoC.Percent","unit":"Percent"}]}]}"#;
    let request = lenient_only(
        "MeterValues",
        payload,
        &[Rule::UnknownEnumValue, Rule::UnknownEnumValue],
        ErrorCode::PropertyConstraintViolation,
    );
    let ChargePointRequest::MeterValues(m) = request else {
        panic!("not meter values")
    };
    let samples = &m.meter_value[0].sampled_value;
    assert_eq!(samples[0].unit, Some(Open::Unknown("Ah".into())));
    assert_eq!(samples[0].unit_or_default(), None);
    assert_eq!(samples[1].measurand_or_default(), None);
    assert_eq!(
        samples[1].measurand.as_ref().unwrap().as_str(),
        "SoC.Percent"
    );
}

#[test]
fn decimal_commas_in_readings_are_read_as_points() {
    let payload = r#"{"connectorId":1,"meterValue":[{"timestamp":"2024-05-01T10:00:00Z","sampledValue":[{"value":"1,8","unit":"kWh"},{"value":"1,234,567"}]}]}"#;
    let strict = decode("MeterValues", payload, Strictness::Strict).unwrap();
    assert!(
        strict.deviations.is_empty(),
        "schema-valid: strict reads it as given"
    );
    let lenient = decode("MeterValues", payload, Strictness::Lenient).unwrap();
    let rules: Vec<Rule> = lenient.deviations.iter().map(|d| d.rule).collect();
    assert_eq!(rules, [Rule::CommaDecimal]);
    let ChargePointRequest::MeterValues(m) = lenient.value else {
        panic!("not meter values")
    };
    assert_eq!(m.meter_value[0].sampled_value[0].value, "1.8");
    // Thousands separators are ambiguous: left alone.
    assert_eq!(m.meter_value[0].sampled_value[1].value, "1,234,567");
}

#[test]
fn timestamps_from_unset_clocks_and_other_shapes() {
    let unset = r#"{"connectorId":1,"errorCode":"NoError","status":"Available","timestamp":"1970-01-01T00:00:12Z"}"#;
    let request = lenient_only(
        "StatusNotification",
        unset,
        &[Rule::TimestampOutOfRange],
        ErrorCode::PropertyConstraintViolation,
    );
    let ChargePointRequest::StatusNotification(s) = request else {
        panic!("not a status")
    };
    let at = s.timestamp.unwrap().into_inner();
    assert!(
        REPORTABLE.contains(&at),
        "read as the time of arrival: {at}"
    );

    for shape in ["2024-05-01T12:00:00+0200", "2024-05-01 12:00:00+0200"] {
        let payload = format!(
            r#"{{"connectorId":1,"errorCode":"NoError","status":"Available","timestamp":"{shape}"}}"#
        );
        let request = lenient_only(
            "StatusNotification",
            &payload,
            &[Rule::TimestampFormat],
            ErrorCode::PropertyConstraintViolation,
        );
        let ChargePointRequest::StatusNotification(s) = request else {
            panic!("not a status")
        };
        assert_eq!(s.timestamp.unwrap().to_string(), "2024-05-01T10:00:00.000Z");
    }
}

#[test]
fn several_deviations_in_one_frame_are_each_reported() {
    let payload = r#"{"chargePointVendor":"EVlink","chargePointModel":"EVlink Smart Wallbox","chargeBoxSerialNumber":"3N16140123456789012345678901","firmwareVersion":null,"meterType":123,"x-vendor":"y"}"#;
    lenient_only(
        "BootNotification",
        payload,
        &[
            Rule::StringTooLong,
            Rule::NullOptional,
            Rule::NumberAsString,
            Rule::UnknownField,
        ],
        ErrorCode::PropertyConstraintViolation,
    );
}

#[test]
fn a_nul_stays_refused_in_lenient_mode() {
    let payload = r#"{"chargePointVendor":"A\u0000B","chargePointModel":"M","extra":1}"#;
    let error = decode("BootNotification", payload, Strictness::Lenient).unwrap_err();
    assert_eq!(error.code, ErrorCode::PropertyConstraintViolation);
}
