//! Validation of frames against the official OCPP 1.6 JSON schemas in ../shared/ocpp16/schemas:
//! every frame the server sends in a test must pass. A missing schema folder fails the test.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock};

use echarging_sim::Charger;
use serde_json::Value;

const ERROR_CODES_16: [&str; 10] = [
    "NotImplemented",
    "NotSupported",
    "InternalError",
    "ProtocolError",
    "SecurityError",
    "FormationViolation",
    "PropertyConstraintViolation",
    "OccurenceConstraintViolation",
    "TypeConstraintViolation",
    "GenericError",
];

pub fn schemas_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/ocpp16/schemas")
}

fn validator(name: &str) -> Arc<jsonschema::Validator> {
    static CACHE: OnceLock<Mutex<HashMap<String, Arc<jsonschema::Validator>>>> = OnceLock::new();
    let mut cache = CACHE.get_or_init(Default::default).lock().unwrap();
    cache
        .entry(name.to_string())
        .or_insert_with(|| {
            let path = schemas_dir().join(format!("{name}.json"));
            let text = std::fs::read_to_string(&path)
                .unwrap_or_else(|e| panic!("schema {} missing: {e}", path.display()));
            let schema: Value = serde_json::from_str(&text).expect("schema is JSON");
            Arc::new(jsonschema::draft4::new(&schema).expect("schema compiles"))
        })
        .clone()
}

/// Validate `payload` against the schema named `name` (`BootNotification`,
/// `BootNotificationResponse`, …).
pub fn validate(name: &str, payload: &Value) -> Result<(), String> {
    let v = validator(name);
    let errors: Vec<String> = v.iter_errors(payload).map(|e| e.to_string()).collect();
    if errors.is_empty() {
        Ok(())
    } else {
        Err(format!("{name}: {}", errors.join("; ")))
    }
}

/// Check every frame the server sent this charger. CALLs are checked against their action's
/// request schema, CALLRESULTs against the response schema of the call they answer, CALLERRORs
/// for their shape. Returns how many frames were checked.
pub fn assert_server_frames_valid(charger: &Charger) -> usize {
    let mut actions: HashMap<String, String> = HashMap::new();
    for text in charger.sent() {
        if let Ok(Value::Array(a)) = serde_json::from_str::<Value>(text)
            && a.len() == 4
            && a[0] == 2
            && let (Some(id), Some(action)) = (a[1].as_str(), a[2].as_str())
        {
            actions.insert(id.to_string(), action.to_string());
        }
    }
    let mut checked = 0;
    for text in charger.received() {
        let frame: Value = serde_json::from_str(text)
            .unwrap_or_else(|e| panic!("server sent non-JSON {text:?}: {e}"));
        let a = frame
            .as_array()
            .unwrap_or_else(|| panic!("not a frame: {text}"));
        let id = a.get(1).and_then(Value::as_str).expect("message id");
        assert!(id.chars().count() <= 36, "message id too long: {text}");
        match a[0].as_u64() {
            Some(2) => {
                assert_eq!(a.len(), 4, "{text}");
                let action = a[2].as_str().expect("action");
                validate(action, &a[3]).unwrap_or_else(|e| panic!("{e}\nframe: {text}"));
            }
            Some(3) => {
                assert_eq!(a.len(), 3, "{text}");
                // Answers to frames we sent on purpose malformed have no action to check.
                if let Some(action) = actions.get(id) {
                    validate(&format!("{action}Response"), &a[2])
                        .unwrap_or_else(|e| panic!("{e}\nframe: {text}"));
                }
            }
            Some(4) => {
                assert_eq!(a.len(), 5, "{text}");
                let code = a[2].as_str().expect("error code");
                assert!(
                    ERROR_CODES_16.contains(&code),
                    "not a 1.6 error code: {text}"
                );
                assert!(a[3].is_string() && a[4].is_object(), "{text}");
            }
            _ => panic!("unknown message type: {text}"),
        }
        checked += 1;
    }
    checked
}
