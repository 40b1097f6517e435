//! OCPP-J frames: parsing, the frame-level error table, and encode → parse round trips.

use std::borrow::Cow;

use serde_json::json;

use crate::ocpp::v16::*;

#[track_caller]
fn parse_err(text: &str) -> FrameError {
    match Frame::parse(text) {
        Ok(frame) => panic!("{text} parsed as {frame:?}"),
        Err(error) => error,
    }
}

#[track_caller]
fn assert_rejected(text: &str, code: ErrorCode, message_id: Option<&str>) {
    let error = parse_err(text);
    assert_eq!(error.code, code, "{text}: {error}");
    assert_eq!(error.message_id.as_deref(), message_id, "{text}: {error}");
    assert_eq!(error.reply_id(), message_id.unwrap_or("-1"));
}

#[test]
fn parses_a_call_borrowing_from_the_text() {
    let text = r#"[2,"19223201","BootNotification",{"chargePointVendor":"VendorX","chargePointModel":"SingleSocketCharger"}]"#;
    let Frame::Call(call) = Frame::parse(text).unwrap() else {
        panic!("not a call");
    };
    assert!(matches!(call.id, Cow::Borrowed("19223201")));
    assert!(matches!(call.action, Cow::Borrowed("BootNotification")));
    assert_eq!(
        call.payload.get(),
        r#"{"chargePointVendor":"VendorX","chargePointModel":"SingleSocketCharger"}"#
    );
    assert_eq!(Frame::parse(text).unwrap().message_id(), "19223201");
}

#[test]
fn tolerates_whitespace_and_decodes_escapes() {
    let text = "\n [ 2 ,\t\"a\\\"b\" , \"Heartbeat\" , { } ] \r\n";
    let Frame::Call(call) = Frame::parse(text).unwrap() else {
        panic!("not a call");
    };
    assert_eq!(call.id, "a\"b");
    assert!(matches!(call.id, Cow::Owned(_)));
    assert_eq!(call.payload.get(), "{ }");
}

#[test]
fn parses_call_results_and_errors() {
    let Frame::CallResult(result) = Frame::parse(r#"[3,"id-1",{"status":"Accepted"}]"#).unwrap()
    else {
        panic!("not a result");
    };
    assert_eq!(result.id, "id-1");
    assert_eq!(result.payload.get(), r#"{"status":"Accepted"}"#);

    let text = r#"[4,"id-2","OccurenceConstraintViolation","missing idTag",{"hint":1}]"#;
    let Frame::CallError(error) = Frame::parse(text).unwrap() else {
        panic!("not an error");
    };
    assert_eq!(error.id, "id-2");
    assert_eq!(error.code, ErrorCode::OccurenceConstraintViolation);
    assert_eq!(error.description, "missing idTag");
    assert_eq!(error.details.get(), r#"{"hint":1}"#);
}

#[test]
fn call_errors_stay_parseable_whatever_the_peer_invents() {
    let code_of = |text: &str| match Frame::parse(text).unwrap() {
        Frame::CallError(error) => error.code,
        other => panic!("{other:?}"),
    };
    // OCPP 2.0 spellings of the two renamed codes.
    assert_eq!(
        code_of(r#"[4,"1","FormatViolation","",{}]"#),
        ErrorCode::FormationViolation
    );
    assert_eq!(
        code_of(r#"[4,"1","OccurrenceConstraintViolation","",{}]"#),
        ErrorCode::OccurenceConstraintViolation
    );
    // Unknown codes, 2.0-only codes and non-object details still settle the pending CALL.
    assert_eq!(
        code_of(r#"[4,"1","Teapot","",{}]"#),
        ErrorCode::GenericError
    );
    assert_eq!(
        code_of(r#"[4,"1","RpcFrameworkError","",{}]"#),
        ErrorCode::GenericError
    );
    assert_eq!(
        code_of(r#"[4,"1","NotSupported","",null]"#),
        ErrorCode::NotSupported
    );
}

#[test]
fn frame_error_table() {
    use ErrorCode::*;
    let long_id = "x".repeat(37);
    let max_id = "é".repeat(36);
    let cases: Vec<(String, ErrorCode, Option<&str>)> = vec![
        // Not JSON at all, or broken inside / after the array.
        ("hello".into(), FormationViolation, None),
        ("".into(), FormationViolation, None),
        (
            r#"[2,"id-1","Heartbeat",{"#.into(),
            FormationViolation,
            Some("id-1"),
        ),
        (
            r#"[2,"id-1","Heartbeat",{}] trailing"#.into(),
            FormationViolation,
            Some("id-1"),
        ),
        // JSON, but not an array.
        (r#"{"messageTypeId":2}"#.into(), FormationViolation, None),
        ("2".into(), FormationViolation, None),
        // Element count.
        ("[]".into(), ProtocolError, None),
        ("[2]".into(), ProtocolError, None),
        (
            r#"[2,"id-1","Heartbeat"]"#.into(),
            ProtocolError,
            Some("id-1"),
        ),
        (r#"[3,"id-1"]"#.into(), ProtocolError, Some("id-1")),
        (
            r#"[4,"id-1","GenericError",""]"#.into(),
            ProtocolError,
            Some("id-1"),
        ),
        (
            r#"[2,"id-1","Heartbeat",{},{}]"#.into(),
            FormationViolation,
            Some("id-1"),
        ),
        (
            r#"[3,"id-1",{},1,2,3,4,5,6]"#.into(),
            FormationViolation,
            Some("id-1"),
        ),
        // messageTypeId.
        (
            r#"["2","id-1","Heartbeat",{}]"#.into(),
            TypeConstraintViolation,
            Some("id-1"),
        ),
        (
            r#"[2.0,"id-1","Heartbeat",{}]"#.into(),
            TypeConstraintViolation,
            Some("id-1"),
        ),
        (
            r#"[5,"id-1","Heartbeat",{}]"#.into(),
            PropertyConstraintViolation,
            Some("id-1"),
        ),
        (
            r#"[-2,"id-1",{}]"#.into(),
            PropertyConstraintViolation,
            Some("id-1"),
        ),
        // Message id.
        (
            r#"[2,1,"Heartbeat",{}]"#.into(),
            TypeConstraintViolation,
            None,
        ),
        (
            r#"[2,null,"Heartbeat",{}]"#.into(),
            TypeConstraintViolation,
            None,
        ),
        (
            format!(r#"[2,"{long_id}","Heartbeat",{{}}]"#),
            PropertyConstraintViolation,
            None,
        ),
        // Action, payload, error fields.
        (
            r#"[2,"id-1",7,{}]"#.into(),
            TypeConstraintViolation,
            Some("id-1"),
        ),
        (
            r#"[2,"id-1","Heartbeat",[]]"#.into(),
            TypeConstraintViolation,
            Some("id-1"),
        ),
        (
            r#"[2,"id-1","Heartbeat","{}"]"#.into(),
            TypeConstraintViolation,
            Some("id-1"),
        ),
        (
            r#"[3,"id-1",null]"#.into(),
            TypeConstraintViolation,
            Some("id-1"),
        ),
        (
            r#"[4,"id-1",500,"",{}]"#.into(),
            TypeConstraintViolation,
            Some("id-1"),
        ),
        (
            r#"[4,"id-1","GenericError",{},{}]"#.into(),
            TypeConstraintViolation,
            Some("id-1"),
        ),
    ];
    for (text, code, message_id) in cases {
        assert_rejected(&text, code, message_id);
    }
    // 36 characters (not bytes) is the limit.
    let text = format!(r#"[2,"{max_id}","Heartbeat",{{}}]"#);
    assert_eq!(Frame::parse(&text).unwrap().message_id(), max_id);
}

#[test]
fn encoded_frames_parse_back() {
    let payload = HeartbeatResponse {
        current_time: Timestamp::parse("2026-11-24T05:46:01.123Z").unwrap(),
    };

    let text = encode_call("id \"1\"", "Heartbeat", &Heartbeat {}).unwrap();
    assert_eq!(text, r#"[2,"id \"1\"","Heartbeat",{}]"#);
    let Frame::Call(call) = Frame::parse(&text).unwrap() else {
        panic!("{text}")
    };
    assert_eq!(
        (call.id.as_ref(), call.action.as_ref()),
        ("id \"1\"", "Heartbeat")
    );

    let text = encode_call_result("id-1", &payload).unwrap();
    assert_eq!(
        text,
        r#"[3,"id-1",{"currentTime":"2026-11-24T05:46:01.123Z"}]"#
    );
    let Frame::CallResult(result) = Frame::parse(&text).unwrap() else {
        panic!("{text}")
    };
    let back: HeartbeatResponse = decode_payload(result.payload.get()).unwrap();
    assert_eq!(back, payload);
}

#[test]
fn call_errors_are_written_in_1_6_spelling_with_empty_details() {
    for code in ErrorCode::ALL {
        let text = encode_call_error("id-1", code, "why", None);
        assert_eq!(
            text,
            format!(r#"[4,"id-1","{}","why",{{}}]"#, code.as_str())
        );
        let Frame::CallError(error) = Frame::parse(&text).unwrap() else {
            panic!("{text}")
        };
        assert_eq!((error.code, error.description.as_ref()), (code, "why"));
        assert_eq!(error.details.get(), "{}");
    }
    let details = json!({"field": "idTag"});
    let text = encode_call_error("-1", ErrorCode::GenericError, "", Some(&details));
    assert_eq!(text, r#"[4,"-1","GenericError","",{"field":"idTag"}]"#);
    // Details that are not an object would break the peer's parser: sent as `{}`.
    let text = encode_call_error("1", ErrorCode::GenericError, "", Some(&json!([1])));
    assert_eq!(text, r#"[4,"1","GenericError","",{}]"#);
}

#[test]
fn error_codes_read_both_spellings_and_write_1_6() {
    assert_eq!(
        ErrorCode::parse("FormatViolation"),
        Some(ErrorCode::FormationViolation)
    );
    assert_eq!(
        ErrorCode::parse("OccurrenceConstraintViolation"),
        Some(ErrorCode::OccurenceConstraintViolation)
    );
    assert_eq!(ErrorCode::parse("formationviolation"), None);
    for code in ErrorCode::ALL {
        assert_eq!(ErrorCode::parse(code.as_str()), Some(code));
        let text = serde_json::to_string(&code).unwrap();
        assert_eq!(text, format!("\"{code}\""));
        assert_eq!(serde_json::from_str::<ErrorCode>(&text).unwrap(), code);
    }
    let read: ErrorCode = serde_json::from_str("\"FormatViolation\"").unwrap();
    assert_eq!(
        serde_json::to_string(&read).unwrap(),
        "\"FormationViolation\""
    );
}
