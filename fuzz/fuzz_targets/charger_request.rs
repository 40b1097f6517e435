//! Every decoder of a charger-to-server request (`ChargePointRequest::decode`) on arbitrary
//! payloads: the first byte picks the action, the rest is the payload text. It never panics; a
//! refusal carries a short description; whatever it accepts re-encodes to JSON that the
//! official schema of that action accepts and that decodes back to the same message. The
//! lenient decoder (`decode_with(.., Lenient)`) runs on the same input: it never panics, never
//! refuses what strict mode accepts, and its refusals are as short.

#![no_main]

use echarging_fuzz::ocpp::v16::{ChargePointRequest, Strictness};
use libfuzzer_sys::fuzz_target;
use serde_json::value::RawValue;

const ACTIONS: [&str; 15] = [
    "Authorize",
    "BootNotification",
    "DataTransfer",
    "DiagnosticsStatusNotification",
    "FirmwareStatusNotification",
    "Heartbeat",
    "MeterValues",
    "StartTransaction",
    "StatusNotification",
    "StopTransaction",
    // One the server must refuse (NotSupported), to keep that path covered.
    "ReserveNow",
    // The security extension's (appended, so the seeds' first bytes keep their actions).
    "SecurityEventNotification",
    "SignCertificate",
    "LogStatusNotification",
    "SignedFirmwareStatusNotification",
];

fuzz_target!(|data: &[u8]| {
    let Some((&selector, payload)) = data.split_first() else {
        return;
    };
    let action = ACTIONS[usize::from(selector) % ACTIONS.len()];
    let Ok(payload) = std::str::from_utf8(payload) else {
        return;
    };
    // The frame parser hands the decoders only well-formed JSON objects.
    let Ok(raw) = serde_json::from_str::<&RawValue>(payload) else {
        return;
    };
    if !raw.get().starts_with('{') {
        return;
    }
    let lenient = ChargePointRequest::decode_with(action, raw, Strictness::Lenient);
    if let Err(e) = &lenient {
        assert!(!e.description.is_empty());
        assert!(e.description.chars().count() < 200, "{}", e.description);
    }
    match ChargePointRequest::decode(action, raw) {
        Ok(request) => {
            assert!(lenient.is_ok(), "lenient refused what strict accepts: {payload}");
            assert_eq!(request.action(), action);
            let again = reencode(&request);
            let value: serde_json::Value = serde_json::from_str(&again).unwrap();
            if let Err(e) = ocpp_schemas::validate(action, &value) {
                panic!("{action} {payload} decoded, but re-encodes to {again}: {e}");
            }
            let raw = RawValue::from_string(again).unwrap();
            assert_eq!(ChargePointRequest::decode(action, &raw).unwrap(), request);
        }
        Err(e) => {
            assert!(!e.description.is_empty());
            assert!(e.description.chars().count() < 200, "{}", e.description);
        }
    }
});

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
    text.expect("a decoded request always encodes")
}
