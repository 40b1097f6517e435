//! Schema-driven checks: every sample must round-trip, validate against its official schema,
//! and — for "full" samples — decode with the right OCPP error code once any single schema
//! rule is broken. The mutation walk reads the rules from the schema itself, so a field,
//! bound or enum value we got wrong shows up as a failed expectation here.

use std::fmt::Debug;

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use crate::ocpp::v16::{DecodeError, ErrorCode, decode_payload};

/// Loads an official schema (`Authorize.json`) from the vendored copy; a missing one fails the
/// test, never skips it.
pub fn schema(file: &str) -> Value {
    ocpp_schemas::schema(file.trim_end_matches(".json"))
}

pub fn schema_errors(file: &str, instance: &Value) -> Vec<String> {
    ocpp_schemas::errors(file.trim_end_matches(".json"), instance)
}

pub fn assert_schema_valid(file: &str, instance: &Value) {
    let errors = schema_errors(file, instance);
    assert!(
        errors.is_empty(),
        "{file}: {instance} violates the schema: {errors:#?}"
    );
}

/// Serialize → validate against the schema → decode → equal.
pub fn check_round_trip<T>(file: &str, sample: &T) -> Value
where
    T: Serialize + DeserializeOwned + PartialEq + Debug,
{
    let text = serde_json::to_string(sample).expect("samples serialize");
    let value: Value = serde_json::from_str(&text).expect("we write JSON");
    assert_schema_valid(file, &value);
    let back: T = decode_payload(&text)
        .unwrap_or_else(|error| panic!("{file}: {text} does not decode: {error}"));
    assert_eq!(&back, sample, "{file}: round trip changed the message");
    value
}

/// A "full" sample sets every property the schema defines, at every level, so that the
/// mutation walk reaches every rule.
pub fn check_full<T>(file: &str, sample: &T)
where
    T: Serialize + DeserializeOwned + PartialEq + Debug,
{
    let value = check_round_trip(file, sample);
    let schema = schema(file);
    let mut walk = Walk::<T> {
        file,
        root: &value,
        schema: &schema,
        checked: 0,
        decoded: std::marker::PhantomData,
    };
    walk.object(&schema, "");
    assert!(walk.checked > 0);
}

/// A "minimal" sample sets exactly the required properties, at every level.
pub fn check_minimal<T>(file: &str, sample: &T)
where
    T: Serialize + DeserializeOwned + PartialEq + Debug,
{
    let value = check_round_trip(file, sample);
    let root = schema(file);
    assert_only_required(file, &root, &root, &value, "");
}

/// The schema `at` stands for: itself, or what its local `$ref` (`#/definitions/…`, the
/// security extension's style) points at in `root`.
fn resolve<'a>(root: &'a Value, at: &'a Value) -> &'a Value {
    match at["$ref"].as_str() {
        Some(target) => root
            .pointer(target.trim_start_matches('#'))
            .unwrap_or_else(|| panic!("unresolved $ref {target}")),
        None => at,
    }
}

fn assert_only_required(file: &str, root: &Value, schema: &Value, value: &Value, at: &str) {
    let schema = resolve(root, schema);
    match value {
        Value::Object(members) => {
            let mut keys: Vec<&str> = members.keys().map(String::as_str).collect();
            let mut required: Vec<&str> = schema["required"]
                .as_array()
                .map(|names| names.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            keys.sort_unstable();
            required.sort_unstable();
            assert_eq!(
                keys, required,
                "{file}{at}: minimal sample ≠ required fields"
            );
            for (key, member) in members {
                let at = format!("{at}/{key}");
                assert_only_required(file, root, &schema["properties"][key], member, &at);
            }
        }
        Value::Array(items) => {
            for (index, item) in items.iter().enumerate() {
                let at = format!("{at}/{index}");
                assert_only_required(file, root, &schema["items"], item, &at);
            }
        }
        _ => {}
    }
}

struct Walk<'a, T> {
    file: &'a str,
    root: &'a Value,
    /// The whole schema, for `$ref`s.
    schema: &'a Value,
    checked: usize,
    decoded: std::marker::PhantomData<T>,
}

enum Expect {
    Accepted,
    Rejected(ErrorCode),
}

impl<T: DeserializeOwned + Debug> Walk<'_, T> {
    /// Applies `mutate` to a copy of the full sample, then checks decode's verdict against
    /// `expect` and, as a sanity check of the expectation itself, the schema's verdict.
    fn check(
        &mut self,
        pointer: &str,
        what: &str,
        expect: Expect,
        mention: &str,
        mutate: impl FnOnce(&mut Value),
    ) {
        self.checked += 1;
        let mut instance = self.root.clone();
        mutate(&mut instance);
        let text = instance.to_string();
        let result = decode_payload::<T>(&text);
        let schema_ok = schema_errors(self.file, &instance).is_empty();
        let file = self.file;
        match expect {
            Expect::Accepted => {
                assert!(
                    schema_ok,
                    "{file}{pointer} {what}: test expects a valid instance"
                );
                if let Err(error) = result {
                    panic!("{file}{pointer} {what}: {text} was refused: {error}");
                }
            }
            Expect::Rejected(code) => {
                // Integers beyond i32 are valid JSON Schema integers; we refuse them on purpose.
                if what != "beyond i32" {
                    assert!(
                        !schema_ok,
                        "{file}{pointer} {what}: test expects an invalid instance"
                    );
                }
                match result {
                    Ok(decoded) => {
                        panic!("{file}{pointer} {what}: {text} was accepted as {decoded:?}")
                    }
                    Err(DecodeError {
                        code: got,
                        description,
                    }) => {
                        assert_eq!(got, code, "{file}{pointer} {what}: {description}");
                        assert!(
                            description.contains(mention),
                            "{file}{pointer} {what}: {description:?} should name {mention:?}"
                        );
                        assert!(description.len() < 120, "{description:?} is too long");
                    }
                }
            }
        }
    }

    fn object(&mut self, schema: &Value, pointer: &str) {
        let value = self.root.pointer(pointer).expect("walk follows the sample");
        let members = value.as_object().expect("schema says object");
        let properties = schema["properties"]
            .as_object()
            .expect("object schemas list properties");

        let mut present: Vec<&String> = members.keys().collect();
        let mut defined: Vec<&String> = properties.keys().collect();
        present.sort_unstable();
        defined.sort_unstable();
        assert_eq!(
            present, defined,
            "{}{pointer}: a full sample must set every property",
            self.file
        );

        self.check(
            pointer,
            "unknown field",
            Expect::Rejected(ErrorCode::FormationViolation),
            "bogusField",
            |v| {
                v.pointer_mut(pointer).unwrap()["bogusField"] = json!(1);
            },
        );
        for name in schema["required"].as_array().into_iter().flatten() {
            let name = name.as_str().unwrap();
            self.check(
                pointer,
                &format!("without required {name}"),
                Expect::Rejected(ErrorCode::OccurenceConstraintViolation),
                name,
                |v| {
                    v.pointer_mut(pointer)
                        .unwrap()
                        .as_object_mut()
                        .unwrap()
                        .remove(name);
                },
            );
        }
        for (name, property) in properties {
            let required = schema["required"]
                .as_array()
                .is_some_and(|names| names.iter().any(|n| n == name));
            if !required {
                self.check(
                    pointer,
                    &format!("without optional {name}"),
                    Expect::Accepted,
                    name,
                    |v| {
                        v.pointer_mut(pointer)
                            .unwrap()
                            .as_object_mut()
                            .unwrap()
                            .remove(name);
                    },
                );
            }
            self.property(property, &format!("{pointer}/{name}"), name);
        }
    }

    fn set(&mut self, pointer: &str, what: &str, expect: Expect, mention: &str, new: Value) {
        self.check(pointer, what, expect, mention, |v| {
            *v.pointer_mut(pointer).unwrap() = new;
        });
    }

    fn property(&mut self, schema: &Value, pointer: &str, name: &str) {
        use ErrorCode::*;
        use Expect::*;
        let schema = resolve(self.schema, schema);
        let wrong_type = TypeConstraintViolation;
        match schema["type"].as_str().expect("every property has a type") {
            "string" => {
                self.set(pointer, "a number", Rejected(wrong_type), name, json!(12));
                self.set(pointer, "null", Rejected(wrong_type), name, Value::Null);
                if let Some(values) = schema["enum"].as_array() {
                    for value in values {
                        self.set(pointer, "each enum value", Accepted, name, value.clone());
                    }
                    let bogus = json!("Bogus");
                    self.set(
                        pointer,
                        "not in enum",
                        Rejected(PropertyConstraintViolation),
                        name,
                        bogus,
                    );
                } else if schema["format"] == "date-time" {
                    for ok in ["2026-11-24T05:46:01Z", "2026-11-24T07:46:01.123456+02:00"] {
                        self.set(pointer, "RFC 3339", Accepted, name, json!(ok));
                    }
                    let bad = json!("yesterday");
                    self.set(
                        pointer,
                        "not a date-time",
                        Rejected(PropertyConstraintViolation),
                        name,
                        bad,
                    );
                } else if schema["format"] == "uri" {
                    let ok = json!("https://cs.example.com/firmware/2.1.bin?v=2#top");
                    self.set(pointer, "a URI", Accepted, name, ok);
                    for bad in ["not a uri", "/relative/path", "http://x/a b"] {
                        self.set(
                            pointer,
                            "not a URI",
                            Rejected(PropertyConstraintViolation),
                            name,
                            json!(bad),
                        );
                    }
                } else if let Some(max) = schema["maxLength"].as_u64() {
                    let max = max as usize;
                    let longest = "é".repeat(max);
                    self.set(pointer, "at maxLength", Accepted, name, json!(longest));
                    let too_long = json!("x".repeat(max + 1));
                    self.set(
                        pointer,
                        "over maxLength",
                        Rejected(PropertyConstraintViolation),
                        name,
                        too_long,
                    );
                } else {
                    self.set(
                        pointer,
                        "any string",
                        Accepted,
                        name,
                        json!("x".repeat(2000)),
                    );
                }
            }
            "integer" => {
                self.set(pointer, "a string", Rejected(wrong_type), name, json!("1"));
                self.set(
                    pointer,
                    "a fraction",
                    Rejected(wrong_type),
                    name,
                    json!(1.5),
                );
                self.set(pointer, "negative", Accepted, name, json!(-1));
                self.set(pointer, "i32::MAX", Accepted, name, json!(i32::MAX));
                let big = json!(i64::from(i32::MAX) + 1);
                self.set(
                    pointer,
                    "beyond i32",
                    Rejected(PropertyConstraintViolation),
                    name,
                    big,
                );
            }
            "number" => {
                self.set(pointer, "a string", Rejected(wrong_type), name, json!("1"));
                self.set(pointer, "an integer", Accepted, name, json!(16));
                if schema["multipleOf"] == json!(0.1) {
                    self.set(pointer, "one decimal", Accepted, name, json!(16.3));
                    let bad = json!(16.25);
                    self.set(
                        pointer,
                        "two decimals",
                        Rejected(PropertyConstraintViolation),
                        name,
                        bad,
                    );
                }
            }
            "boolean" => {
                self.set(
                    pointer,
                    "a string",
                    Rejected(wrong_type),
                    name,
                    json!("true"),
                );
            }
            "array" => {
                self.set(pointer, "an object", Rejected(wrong_type), name, json!({}));
                let empty = json!([]);
                if schema["minItems"].as_u64().unwrap_or(0) > 0 {
                    self.set(
                        pointer,
                        "empty",
                        Rejected(OccurenceConstraintViolation),
                        name,
                        empty,
                    );
                } else {
                    self.set(pointer, "empty", Accepted, name, empty);
                }
                let first = format!("{pointer}/0");
                assert!(
                    self.root.pointer(&first).is_some(),
                    "{}{pointer}: a full sample needs an item",
                    self.file
                );
                self.property(&schema["items"], &first, name);
            }
            "object" => {
                self.set(pointer, "an array", Rejected(wrong_type), name, json!([]));
                self.object(schema, pointer);
            }
            other => panic!("{}{pointer}: unexpected schema type {other}", self.file),
        }
    }
}
