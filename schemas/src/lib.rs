//! The official OCPP 1.6 JSON schemas, vendored in `ocpp16/` beside this crate (see its README
//! for where they come from), and the one validator every crate's tests share: load a schema by
//! message name, validate a payload, check a whole OCPP-J frame. Test support only: the server
//! does not link it.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock};

use serde_json::Value;

/// The CALLERROR codes of OCPP-J 1.6, in the specification's own spelling.
pub const ERROR_CODES_16: [&str; 10] = [
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

/// The folder holding `Authorize.json`, `AuthorizeResponse.json`, …
pub fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("ocpp16")
}

/// Every schema's name (`Authorize`, `AuthorizeResponse`, …), sorted.
pub fn names() -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir())
        .unwrap_or_else(|e| panic!("vendored schemas missing at {}: {e}", dir().display()))
        .filter_map(|entry| {
            let name = entry.ok()?.file_name().into_string().ok()?;
            name.strip_suffix(".json").map(str::to_owned)
        })
        .collect();
    names.sort();
    names
}

/// The schema named `name` (`BootNotification`, `BootNotificationResponse`, …) as JSON. A
/// missing schema panics: a test that needs one must fail, never skip.
pub fn schema(name: &str) -> Value {
    let path = dir().join(format!("{name}.json"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "official OCPP 1.6 schema {} must exist: {e}",
            path.display()
        )
    });
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{} is not JSON: {e}", path.display()))
}

/// A compiled validator for `name`, built once per process. The 1.6 schemas are draft-04, the
/// security whitepaper's draft-06: the schema's own `$schema` picks the draft. Formats
/// (`date-time`, `uri`) are checked.
pub fn validator(name: &str) -> Arc<jsonschema::Validator> {
    static CACHE: OnceLock<Mutex<HashMap<String, Arc<jsonschema::Validator>>>> = OnceLock::new();
    let mut cache = CACHE
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    cache
        .entry(name.to_string())
        .or_insert_with(|| {
            let validator = jsonschema::options()
                .should_validate_formats(true)
                .build(&schema(name))
                .unwrap_or_else(|e| panic!("{name} does not compile as a JSON schema: {e}"));
            Arc::new(validator)
        })
        .clone()
}

/// Every violation of `name`'s schema by `payload`, each with where it is.
pub fn errors(name: &str, payload: &Value) -> Vec<String> {
    validator(name)
        .iter_errors(payload)
        .map(|e| format!("{e} at {}", e.instance_path()))
        .collect()
}

/// `payload` against the schema named `name`; the error lists every violation.
pub fn validate(name: &str, payload: &Value) -> Result<(), String> {
    let errors = errors(name, payload);
    if errors.is_empty() {
        Ok(())
    } else {
        Err(format!("{name}: {}", errors.join("; ")))
    }
}

/// Checks a whole stream of frames one side sent, against what the other side sent: CALLs
/// against their action's request schema, CALLRESULTs against the response schema of the CALL
/// (in `peer`) they answer, CALLERRORs for their shape and 1.6 error code. Message ids must be
/// at most 36 characters. Returns how many frames were checked; panics on the first bad one.
pub fn assert_frames_valid<'a>(
    sent: impl IntoIterator<Item = &'a str>,
    peer: impl IntoIterator<Item = &'a str>,
) -> usize {
    let mut calls: HashMap<String, String> = HashMap::new();
    for text in peer {
        if let Ok(Value::Array(a)) = serde_json::from_str::<Value>(text)
            && a.len() == 4
            && a[0] == 2
            && let (Some(id), Some(action)) = (a[1].as_str(), a[2].as_str())
        {
            calls.insert(id.to_string(), action.to_string());
        }
    }
    let mut checked = 0;
    for text in sent {
        let frame: Value =
            serde_json::from_str(text).unwrap_or_else(|e| panic!("non-JSON frame {text:?}: {e}"));
        let a = frame
            .as_array()
            .unwrap_or_else(|| panic!("not a frame: {text}"));
        let id = a
            .get(1)
            .and_then(Value::as_str)
            .unwrap_or_else(|| panic!("no message id: {text}"));
        assert!(id.chars().count() <= 36, "message id too long: {text}");
        match a[0].as_u64() {
            Some(2) => {
                assert_eq!(a.len(), 4, "{text}");
                let action = a[2].as_str().unwrap_or_else(|| panic!("no action: {text}"));
                validate(action, &a[3]).unwrap_or_else(|e| panic!("{text}: {e}"));
            }
            Some(3) => {
                assert_eq!(a.len(), 3, "{text}");
                if let Some(action) = calls.get(id) {
                    validate(&format!("{action}Response"), &a[2])
                        .unwrap_or_else(|e| panic!("{text}: {e}"));
                }
            }
            Some(4) => {
                assert_eq!(a.len(), 5, "{text}");
                let code = a[2].as_str().unwrap_or_default();
                assert!(
                    ERROR_CODES_16.contains(&code),
                    "not a 1.6 error code: {text}"
                );
                assert!(a[3].is_string(), "description must be a string: {text}");
                assert!(a[4].is_object(), "details must be an object: {text}");
            }
            _ => panic!("unknown message type: {text}"),
        }
        checked += 1;
    }
    checked
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_vendored_schema_compiles() {
        let names = super::names();
        assert_eq!(
            names.len(),
            78,
            "the 1.6 schemas plus the security whitepaper's"
        );
        for name in names {
            super::validator(&name);
        }
    }
}
