//! Turns a serde_json error from decoding a payload into the CALLERROR we answer with: an
//! OCPP-J 1.6 §4.2.3 error code and a short description naming the offending field.
//!
//! Runs only on the error path. serde_json errors carry a position but no field path, so the
//! path is recovered by rescanning the payload up to that position.

use std::fmt::Write as _;

use serde_json::error::Category;

use super::error::{DecodeError, ErrorCode};
use super::wire::{FIELD_MARK, OCCURRENCE_TAG, PROPERTY_TAG};

/// Longest piece of peer-supplied text (a field name, an enum value) echoed back.
const ECHO_LIMIT: usize = 40;

/// The mapping, one OCPP-J 1.6 §4.2.3 rule per kind of failure:
///
/// - OccurenceConstraintViolation ("at least one of the fields violates occurence
///   constraints"): a required field is missing (its minOccurs = 1), an array is below its
///   schema `minItems`.
/// - FormationViolation ("not conform the PDU structure for Action"): an unknown field (the
///   schemas say `additionalProperties: false`) or a duplicated one; also anything we cannot
///   classify. ("syntactically incorrect"): text that is not JSON.
/// - TypeConstraintViolation ("violates data type constraints (e.g. "somestring": 12)"): the
///   wrong JSON type, `null` included, e.g. a string for an integer or an array for an object.
/// - PropertyConstraintViolation ("at least one field contains an invalid value"): a value
///   outside its enum, a string over its `maxLength`, a date-time that is not RFC 3339, an
///   integer outside i32, a limit that is not a multiple of 0.1, a unit this message's schema
///   leaves out.
pub(crate) fn describe(error: &serde_json::Error, payload: &str) -> DecodeError {
    let message = error.to_string();
    let position = format!(" at line {} column {}", error.line(), error.column());
    let message = message.strip_suffix(&position).unwrap_or(&message);
    let path = || field_path(payload, error.line(), error.column());

    if error.classify() != Category::Data {
        // serde_json files a number too big for any Rust number under syntax errors.
        return if message.starts_with("number out of range") {
            DecodeError::new(
                ErrorCode::PropertyConstraintViolation,
                at(&path().full, "number out of range"),
            )
        } else {
            DecodeError::new(ErrorCode::FormationViolation, "payload is not valid JSON")
        };
    }

    for (tag, code) in [
        (PROPERTY_TAG, ErrorCode::PropertyConstraintViolation),
        (OCCURRENCE_TAG, ErrorCode::OccurenceConstraintViolation),
    ] {
        if let Some(rest) = message.strip_prefix(tag) {
            let description = match rest.strip_prefix(FIELD_MARK) {
                Some(named) => named.to_owned(),
                None => at(&path().full, rest),
            };
            return DecodeError::new(code, description);
        }
    }
    if let Some(field) = quoted_after(message, "missing field ") {
        // Reported once the object is closed, so the path is the object's.
        return DecodeError::new(
            ErrorCode::OccurenceConstraintViolation,
            at(&path().full, &format!("missing field \"{field}\"")),
        );
    }
    for kind in ["unknown field ", "duplicate field "] {
        if let Some(field) = quoted_after(message, kind) {
            // Reported right after the key, so the path ends in the field named anyway.
            return DecodeError::new(
                ErrorCode::FormationViolation,
                at(&path().parent, &format!("{}\"{}\"", kind, shorten(field))),
            );
        }
    }
    if let Some(rest) = message.strip_prefix("invalid type: ") {
        return DecodeError::new(
            ErrorCode::TypeConstraintViolation,
            at(&path().full, &type_mismatch(rest)),
        );
    }
    if let Some(value) = quoted_after(message, "unknown variant ") {
        return DecodeError::new(
            ErrorCode::PropertyConstraintViolation,
            at(
                &path().full,
                &format!("unknown value \"{}\"", shorten(value)),
            ),
        );
    }
    if let Some(rest) = message.strip_prefix("invalid value: ") {
        let what = if rest.starts_with("integer") {
            "integer out of range"
        } else {
            "invalid value"
        };
        return DecodeError::new(
            ErrorCode::PropertyConstraintViolation,
            at(&path().full, what),
        );
    }
    DecodeError::new(
        ErrorCode::FormationViolation,
        at(&path().full, "does not match the message structure"),
    )
}

/// Cuts peer-supplied text to [`ECHO_LIMIT`] characters.
pub(crate) fn shorten(text: &str) -> String {
    match text.char_indices().nth(ECHO_LIMIT) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_owned(),
    }
}

fn at(path: &str, what: &str) -> String {
    if path.is_empty() {
        what.to_owned()
    } else {
        format!("{path}: {what}")
    }
}

/// The text between the backticks serde puts around names: "missing field `vendor`".
fn quoted_after<'m>(message: &'m str, prefix: &str) -> Option<&'m str> {
    let rest = message.strip_prefix(prefix)?.strip_prefix('`')?;
    rest.split_once('`').map(|(name, _)| name)
}

/// "string \"abc\", expected i32" → "invalid type: string, expected integer", in JSON's words
/// rather than Rust's, and without echoing the value.
fn type_mismatch(rest: &str) -> String {
    let (found, expected) = rest.split_once(", expected ").unwrap_or((rest, ""));
    const FOUND: [(&str, &str); 8] = [
        ("string", "string"),
        ("integer", "integer"),
        ("floating point", "number"),
        ("boolean", "boolean"),
        ("null", "null"),
        ("unit", "null"),
        ("sequence", "array"),
        ("map", "object"),
    ];
    let found = FOUND
        .iter()
        .find(|(serde, _)| found.starts_with(serde))
        .map_or("value", |(_, json)| json);
    let expected = match expected {
        e if e.starts_with('i') || e.starts_with('u') && e[1..].chars().all(char::is_numeric) => {
            "integer"
        }
        "f64" | "f32" => "number",
        "a boolean" => "boolean",
        "a sequence" => "array",
        "an object" => "object",
        e if e.contains("string") => "string",
        _ => return format!("invalid type: {found}"),
    };
    format!("invalid type: {found}, expected {expected}")
}

#[derive(Clone, Copy)]
enum Segment<'a> {
    Key(&'a str),
    Index(usize),
}

struct Open<'a> {
    object: bool,
    /// The key or index of the member being read (in arrays, also of the one about to be:
    /// serde_json reports a wrongly typed `[`/`{` element *before* consuming it).
    current: Option<Segment<'a>>,
    /// Objects: the next string is a key.
    expect_key: bool,
}

struct FieldPath {
    /// Path of the value the error points at, e.g. `meterValue[0].sampledValue[1].unit`.
    full: String,
    /// The same without its last segment (for errors that name the field themselves).
    parent: String,
    /// `full` as segments, keys unshortened (for lenient repairs).
    segments: Vec<PathSegment>,
}

/// One step of a path into a payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum PathSegment {
    Key(String),
    Index(usize),
}

/// The JSON type a field wanted, where a lenient repair may convert to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Expected {
    Integer,
    Number,
}

/// What a lenient decode may repair in the payload, read from a failed strict decode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Hint {
    /// `field` in the object at `parent` is not in the schema.
    UnknownField {
        parent: Vec<PathSegment>,
        field: String,
    },
    /// The value at `path` has the wrong JSON type; `expected` is what was wanted.
    WrongType {
        path: Vec<PathSegment>,
        expected: Expected,
    },
}

/// The repairable failure behind `error`, if it is one (see `lenient`).
pub(crate) fn hint(error: &serde_json::Error, payload: &str) -> Option<Hint> {
    if error.classify() != Category::Data {
        return None;
    }
    let message = error.to_string();
    let path = || field_path(payload, error.line(), error.column()).segments;
    if let Some(field) = quoted_after(&message, "unknown field ") {
        let mut parent = path();
        // Reported right after the key: the path ends in the unknown field itself.
        if matches!(parent.last(), Some(PathSegment::Key(k)) if k == field) {
            parent.pop();
        }
        return Some(Hint::UnknownField {
            parent,
            field: field.to_owned(),
        });
    }
    let rest = message.strip_prefix("invalid type: ")?;
    let (_, expected) = rest.split_once(", expected ")?;
    let expected = match expected.split(" at line").next().unwrap_or(expected) {
        e if e.starts_with('i') || e.starts_with('u') && e[1..].chars().all(char::is_numeric) => {
            Expected::Integer
        }
        "f64" | "f32" => Expected::Number,
        _ => return None,
    };
    Some(Hint::WrongType {
        path: path(),
        expected,
    })
}

/// Scans `payload` up to serde_json's error position (1-based line, byte column = bytes
/// consumed on that line) and returns the path of the value that ends there: the member
/// being read, or the container just closed (serde reports missing fields after the `}`).
fn field_path(payload: &str, line: usize, column: usize) -> FieldPath {
    let line_start = payload
        .match_indices('\n')
        .nth(line.wrapping_sub(2))
        .map_or(0, |(index, _)| index + 1);
    let end = if line <= 1 {
        column
    } else {
        line_start + column
    }
    .min(payload.len());
    let bytes = &payload.as_bytes()[..end];

    fn current_path<'a>(stack: &[Open<'a>]) -> Vec<Segment<'a>> {
        stack.iter().filter_map(|open| open.current).collect()
    }
    let mut stack: Vec<Open<'_>> = Vec::new();
    let mut closed: Option<Vec<Segment<'_>>> = None;
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b' ' | b'\t' | b'\n' | b'\r' | b':' => {
                i += 1;
                continue;
            }
            b'{' => stack.push(Open {
                object: true,
                current: None,
                expect_key: true,
            }),
            b'[' => stack.push(Open {
                object: false,
                current: Some(Segment::Index(0)),
                expect_key: false,
            }),
            b'}' | b']' => {
                stack.pop();
                closed = Some(current_path(&stack));
                i += 1;
                continue;
            }
            b',' => match stack.last_mut() {
                Some(top) if top.object => top.expect_key = true,
                Some(Open {
                    current: Some(Segment::Index(index)),
                    ..
                }) => *index += 1,
                _ => {}
            },
            b'"' => {
                let start = i + 1;
                let mut j = start;
                while j < bytes.len() && bytes[j] != b'"' {
                    j += if bytes[j] == b'\\' { 2 } else { 1 };
                }
                if let Some(top) = stack.last_mut().filter(|top| top.object && top.expect_key) {
                    top.current = Some(Segment::Key(payload.get(start..j).unwrap_or("")));
                    top.expect_key = false;
                }
                i = j;
            }
            _ => {
                // A number or literal: skip to its end.
                while i + 1 < bytes.len() && !b",]} \t\r\n".contains(&bytes[i + 1]) {
                    i += 1;
                }
            }
        }
        closed = None;
        i += 1;
    }

    let segments = closed.unwrap_or_else(|| current_path(&stack));
    let render = |segments: &[Segment<'_>]| {
        let mut out = String::new();
        for segment in segments {
            match segment {
                Segment::Key(key) if out.is_empty() => out.push_str(&shorten(key)),
                Segment::Key(key) => {
                    out.push('.');
                    out.push_str(&shorten(key));
                }
                Segment::Index(index) => {
                    let _ = write!(out, "[{index}]");
                }
            }
        }
        out
    };
    FieldPath {
        full: render(&segments),
        parent: render(&segments[..segments.len().saturating_sub(1)]),
        segments: segments
            .iter()
            .map(|segment| match segment {
                Segment::Key(key) => PathSegment::Key(unescaped(key)),
                Segment::Index(index) => PathSegment::Index(*index),
            })
            .collect(),
    }
}

/// A key as scanned from the payload (between its quotes, escapes still in it) as the JSON
/// string it denotes.
fn unescaped(raw: &str) -> String {
    if raw.contains('\\') {
        serde_json::from_str(&format!("\"{raw}\"")).unwrap_or_else(|_| raw.to_owned())
    } else {
        raw.to_owned()
    }
}
