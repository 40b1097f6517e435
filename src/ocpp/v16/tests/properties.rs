//! Property tests: the parsers never panic on hostile input, and the value types keep their
//! rules for arbitrary values.

use proptest::prelude::*;
use serde_json::Value;
use serde_json::value::RawValue;
use time::OffsetDateTime;
use time::macros::format_description;

use crate::ocpp::v16::*;

/// Field names and values real messages use, so random JSON gets past the first check often.
const KEYS: &[&str] = &[
    "chargePointVendor",
    "chargePointModel",
    "connectorId",
    "errorCode",
    "status",
    "timestamp",
    "idTag",
    "meterStart",
    "meterStop",
    "transactionId",
    "reservationId",
    "meterValue",
    "sampledValue",
    "transactionData",
    "value",
    "unit",
    "measurand",
    "vendorId",
    "data",
    "type",
    "techInfo",
    "csr",
    "requestId",
];
const STRINGS: &[&str] = &[
    "Available",
    "NoError",
    "Accepted",
    "Wh",
    "Hertz",
    "Energy.Active.Import.Register",
    "2026-11-24T05:46:01.123Z",
    "2026-11-24T05:46:01",
    "04A2B3C4",
];

fn json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        (-1e6f64..1e6).prop_map(Value::from),
        prop::sample::select(STRINGS).prop_map(Value::from),
        ".{0,24}".prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        let key = prop_oneof![
            3 => prop::sample::select(KEYS).prop_map(str::to_owned),
            1 => ".{0,8}",
        ];
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
            prop::collection::btree_map(key, inner, 0..7)
                .prop_map(|members| Value::Object(members.into_iter().collect())),
        ]
    })
}

fn action() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => prop::sample::select(OCPP16_ACTIONS).prop_map(str::to_owned),
        1 => ".{0,12}",
    ]
}

/// Something shaped like a frame: a type id (usually valid), an id, then 1–4 more values.
fn frame_like() -> impl Strategy<Value = String> {
    let type_id = prop_oneof![
        3 => (2u8..=4).prop_map(Value::from),
        1 => json(),
    ];
    let id = prop_oneof![3 => "[a-z0-9-]{0,40}".prop_map(Value::String), 1 => json()];
    (type_id, id, action(), prop::collection::vec(json(), 0..4)).prop_map(
        |(type_id, id, action, rest)| {
            let mut items = vec![type_id, id, Value::String(action)];
            items.extend(rest);
            Value::Array(items).to_string()
        },
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn frame_parse_never_panics_on_text(text in ".{0,200}") {
        let _ = Frame::parse(&text);
    }

    #[test]
    fn frame_parse_and_decode_never_panic_on_frame_like_json(text in frame_like()) {
        match Frame::parse(&text) {
            Ok(Frame::Call(call)) => {
                let _ = ChargePointRequest::decode(&call.action, call.payload);
            }
            Ok(_) => {}
            Err(error) => {
                if let Some(id) = &error.message_id {
                    prop_assert!(id.chars().count() <= MAX_MESSAGE_ID_LEN);
                }
            }
        }
    }

    #[test]
    fn decode_never_panics_and_what_it_accepts_round_trips(
        action in action(),
        payload in json(),
    ) {
        let raw = RawValue::from_string(payload.to_string()).unwrap();
        match ChargePointRequest::decode(&action, &raw) {
            Ok(request) => {
                prop_assert_eq!(request.action(), action.as_str());
                let again = reencode(&request);
                let raw = RawValue::from_string(again).unwrap();
                prop_assert_eq!(ChargePointRequest::decode(&action, &raw).unwrap(), request);
            }
            Err(error) => {
                prop_assert!(!error.description.is_empty());
                prop_assert!(error.description.chars().count() < 200);
            }
        }
    }

    #[test]
    fn decode_payload_never_panics_on_text(text in ".{0,120}") {
        let _ = decode_payload::<MeterValues>(&text);
        let _ = decode_payload::<StopTransaction>(&text);
    }

    #[test]
    fn ci_string_bound_is_a_character_count(text in ".{0,30}") {
        // U+0000 is refused whatever the length (see `NUL_REFUSED`).
        let fits = text.chars().count() <= 20 && !text.contains('\0');
        prop_assert_eq!(CiString20::new(text.clone()).is_ok(), fits);
        let json = serde_json::to_string(&text).unwrap();
        let read = serde_json::from_str::<CiString20>(&json);
        prop_assert_eq!(read.is_ok(), fits);
        if let Ok(read) = read {
            prop_assert_eq!(read.as_str(), text.as_str());
            prop_assert_eq!(serde_json::to_string(&read).unwrap(), json);
        }
    }

    #[test]
    fn timestamps_round_trip_at_millisecond_precision(
        // 0000-01-01T00:00:00.000Z ..= 9999-12-31T23:59:59.999Z
        millis in -62_167_219_200_000i64..=253_402_300_799_999,
        offset_minutes in -(23 * 60 + 59)..=(23 * 60 + 59),
    ) {
        let instant = OffsetDateTime::from_unix_timestamp_nanos(i128::from(millis) * 1_000_000).unwrap();
        let at = Timestamp::from(instant);
        let text = at.to_string();
        let by_time = instant
            .format(format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z"))
            .unwrap();
        prop_assert_eq!(&text, &by_time);
        prop_assert_eq!(Timestamp::parse(&text), Ok(at));
        let json = serde_json::to_string(&at).unwrap();
        let read = serde_json::from_str::<Timestamp>(&json);
        if REPORTABLE.contains(&instant) {
            prop_assert_eq!(read.unwrap(), at);
        } else {
            prop_assert!(read.is_err(), "{json} is outside the window");
        }
        // The same instant seen from another offset is the same timestamp.
        let offset = time::UtcOffset::from_whole_seconds(offset_minutes * 60).unwrap();
        if let Some(shifted) = instant.checked_to_offset(offset) {
            prop_assert_eq!(Timestamp::from(shifted), at);
        }
    }
}

fn reencode(request: &ChargePointRequest) -> String {
    let text = match request {
        ChargePointRequest::Authorize(m) => serde_json::to_string(m),
        ChargePointRequest::BootNotification(m) => serde_json::to_string(m),
        ChargePointRequest::DataTransfer(m) => serde_json::to_string(m),
        ChargePointRequest::DiagnosticsStatusNotification(m) => serde_json::to_string(m),
        ChargePointRequest::FirmwareStatusNotification(m) => serde_json::to_string(m),
        ChargePointRequest::Heartbeat(m) => serde_json::to_string(m),
        ChargePointRequest::LogStatusNotification(m) => serde_json::to_string(m),
        ChargePointRequest::MeterValues(m) => serde_json::to_string(m),
        ChargePointRequest::SecurityEventNotification(m) => serde_json::to_string(m),
        ChargePointRequest::SignCertificate(m) => serde_json::to_string(m),
        ChargePointRequest::SignedFirmwareStatusNotification(m) => serde_json::to_string(m),
        ChargePointRequest::StartTransaction(m) => serde_json::to_string(m),
        ChargePointRequest::StatusNotification(m) => serde_json::to_string(m),
        ChargePointRequest::StopTransaction(m) => serde_json::to_string(m),
    };
    text.unwrap()
}
