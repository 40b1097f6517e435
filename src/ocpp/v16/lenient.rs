//! Reading what real chargers send: `Strictness::Lenient` answers an off-spec frame as it was
//! meant and reports each deviation; `Strictness::Strict` refuses it exactly as the schemas do.
//!
//! Owns the rules (`Rule`), the decoding loop and the per-decode record of deviations. What it
//! must not do: guess. A deviation is accepted only when its meaning is unambiguous (a number
//! where a string is wanted, `null` for an optional field, `"ACCEPTED"` for `Accepted`), and a
//! frame that still does not mean anything gets the same CALLERROR as in strict mode. Nothing
//! here changes what the server *sends*: every outbound type is built by us and stays
//! schema-exact.
//!
//! How: the strict decode runs first, so a compliant frame costs what it always did. Only when
//! it fails (or for the few value rules checked after a successful decode) is the frame decoded
//! again with a thread-local scope open; the field types consult it (`is_lenient`) and record
//! what they let through (`note`). Deviations that a field type cannot absorb (an unknown
//! field, a string holding an integer) are repaired on a `serde_json::Value` at the path the
//! error names, and the decode retried, at most [`MAX_REPAIRS`] times.

use std::cell::RefCell;

use serde::de::DeserializeOwned;
use serde_json::Value;

use super::decode::{self, Hint, PathSegment};
use super::error::DecodeError;

/// How literally to read what chargers send (setting `ocpp_strictness`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Strictness {
    /// Accept what means something, count every deviation.
    #[default]
    Lenient,
    /// Refuse anything the official schemas refuse.
    Strict,
}

impl Strictness {
    pub fn parse(text: &str) -> Option<Self> {
        match text.trim().to_ascii_lowercase().as_str() {
            "lenient" => Some(Strictness::Lenient),
            "strict" => Some(Strictness::Strict),
            _ => None,
        }
    }

    pub const fn as_str(self) -> &'static str {
        match self {
            Strictness::Lenient => "lenient",
            Strictness::Strict => "strict",
        }
    }
}

/// One way a frame departs from the schema that lenient mode accepts. The label is the
/// `rule` of `echarging_ocpp_deviations_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Rule {
    /// A CiString over its `maxLength` (kept whole, up to [`STORAGE_CAP`] characters).
    StringTooLong,
    /// `null` for an optional field, read as absent.
    NullOptional,
    /// A field the schema does not define, ignored.
    UnknownField,
    /// A JSON number where the schema wants a string, read as its decimal text.
    NumberAsString,
    /// A string holding a number where the schema wants a number.
    StringAsNumber,
    /// A non-integral number where the schema wants an integer, rounded.
    FloatAsInteger,
    /// An enum value in the wrong letter case (`"ACCEPTED"`), read as the schema's spelling.
    EnumCase,
    /// A meter value qualifier (measurand, unit, context, phase, location, format) the schema
    /// does not list, kept as given; the sample is not read as energy.
    UnknownEnumValue,
    /// A decimal comma in a sampled value (`"1,8"`), read as `1.8`.
    CommaDecimal,
    /// A date-time in another common shape (space for `T`, offset without colon).
    TimestampFormat,
    /// A date-time before 2000 (a clock never set, 1970 on most), read as the time it arrived.
    /// One after 2100 means nothing and stays refused.
    TimestampOutOfRange,
    /// The WebSocket subprotocol in another letter case (`OCPP1.6`).
    SubprotocolCase,
    /// A trailing slash after the chargeBoxId in the URL.
    UrlTrailingSlash,
}

impl Rule {
    pub const ALL: &'static [Rule] = &[
        Rule::StringTooLong,
        Rule::NullOptional,
        Rule::UnknownField,
        Rule::NumberAsString,
        Rule::StringAsNumber,
        Rule::FloatAsInteger,
        Rule::EnumCase,
        Rule::UnknownEnumValue,
        Rule::CommaDecimal,
        Rule::TimestampFormat,
        Rule::TimestampOutOfRange,
        Rule::SubprotocolCase,
        Rule::UrlTrailingSlash,
    ];

    pub const fn as_str(self) -> &'static str {
        match self {
            Rule::StringTooLong => "string_too_long",
            Rule::NullOptional => "null_optional",
            Rule::UnknownField => "unknown_field",
            Rule::NumberAsString => "number_as_string",
            Rule::StringAsNumber => "string_as_number",
            Rule::FloatAsInteger => "float_as_integer",
            Rule::EnumCase => "enum_case",
            Rule::UnknownEnumValue => "unknown_enum_value",
            Rule::CommaDecimal => "comma_decimal",
            Rule::TimestampFormat => "timestamp_format",
            Rule::TimestampOutOfRange => "timestamp_out_of_range",
            Rule::SubprotocolCase => "subprotocol_case",
            Rule::UrlTrailingSlash => "url_trailing_slash",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Rule::ALL.iter().copied().find(|r| r.as_str() == text)
    }
}

/// One deviation accepted in one frame, with a short description (a field path where the rule
/// knows it, never more than a few dozen characters of the charger's text).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Deviation {
    pub rule: Rule,
    pub detail: String,
}

/// A decoded payload and what lenient mode let through to get it.
#[derive(Debug, Clone, PartialEq)]
pub struct Decoded<T> {
    pub value: T,
    pub deviations: Vec<Deviation>,
}

/// Longest CiString kept in lenient mode: the schemas' own largest bound, so every column that
/// stores charger text has one cap to plan for.
pub const STORAGE_CAP: usize = 500;

/// Repairs per frame before giving up: a real charger's off-spec frame needs one or two; the
/// bound keeps a hostile frame with thousands of unknown fields from costing thousands of
/// decodes.
pub const MAX_REPAIRS: usize = 16;

thread_local! {
    /// Open (Some) while a lenient decode runs on this thread. Decoding never awaits, so a
    /// thread-local cannot leak between tasks.
    static SCOPE: RefCell<Option<Vec<Deviation>>> = const { RefCell::new(None) };
}

/// True while a lenient decode runs: field types may accept what strict mode refuses, and must
/// then [`note`] it.
pub(crate) fn is_lenient() -> bool {
    SCOPE.with_borrow(Option::is_some)
}

/// Records a deviation in the open scope (none open: nothing happens).
pub(crate) fn note(rule: Rule, detail: impl FnOnce() -> String) {
    SCOPE.with_borrow_mut(|scope| {
        if let Some(found) = scope {
            found.push(Deviation {
                rule,
                detail: detail(),
            });
        }
    });
}

/// Opens the scope for its lifetime; closes it on drop, panics included.
struct Scope;

impl Scope {
    fn open() -> Self {
        SCOPE.set(Some(Vec::new()));
        Scope
    }

    fn take(&self) -> Vec<Deviation> {
        SCOPE.with_borrow_mut(|scope| scope.as_mut().map(std::mem::take).unwrap_or_default())
    }
}

impl Drop for Scope {
    fn drop(&mut self) {
        SCOPE.set(None);
    }
}

/// Decodes `payload` as `T`: exactly like [`super::decode_payload`] in strict mode; in lenient
/// mode, accepting and reporting what [`Rule`] lists.
pub fn decode_payload_with<T: DeserializeOwned>(
    payload: &str,
    strictness: Strictness,
) -> Result<Decoded<T>, DecodeError> {
    let first = match serde_json::from_str::<T>(payload) {
        Ok(value) => {
            return Ok(Decoded {
                value,
                deviations: Vec::new(),
            });
        }
        Err(error) => error,
    };
    if strictness == Strictness::Strict {
        return Err(decode::describe(&first, payload));
    }
    let scope = Scope::open();
    let mut repaired: Vec<Deviation> = Vec::new();
    let mut tree: Option<Value> = None;
    let mut text = payload.to_owned();
    for _ in 0..=MAX_REPAIRS {
        let error = match serde_json::from_str::<T>(&text) {
            Ok(value) => {
                repaired.extend(scope.take());
                return Ok(Decoded {
                    value,
                    deviations: repaired,
                });
            }
            Err(error) => error,
        };
        // What the field types noted before failing is noted again on the next attempt.
        scope.take();
        let Some(hint) = decode::hint(&error, &text) else {
            return Err(decode::describe(&error, &text));
        };
        if tree.is_none() {
            match serde_json::from_str::<Value>(&text) {
                Ok(parsed) => tree = Some(parsed),
                Err(_) => return Err(decode::describe(&error, &text)),
            }
        }
        let Some(root) = tree.as_mut() else {
            return Err(decode::describe(&error, &text));
        };
        match repair(root, &hint) {
            Some(deviation) => repaired.push(deviation),
            None => return Err(decode::describe(&error, &text)),
        }
        text = root.to_string();
    }
    Err(decode::describe(&first, payload))
}

/// Fixes the one thing `hint` names in `root`, if lenient mode may; says what it did.
fn repair(root: &mut Value, hint: &Hint) -> Option<Deviation> {
    match hint {
        Hint::UnknownField { parent, field } => {
            let object = at(root, parent)?.as_object_mut()?;
            object.remove(field)?;
            Some(Deviation {
                rule: Rule::UnknownField,
                detail: render(parent, Some(field)),
            })
        }
        Hint::WrongType { path, expected } => {
            let slot = at(root, path)?;
            let (rule, replacement) = retyped(slot, *expected)?;
            *slot = replacement;
            Some(Deviation {
                rule,
                detail: render(path, None),
            })
        }
    }
}

/// A value of the wrong JSON type read as the type wanted, where that is unambiguous.
fn retyped(value: &Value, expected: decode::Expected) -> Option<(Rule, Value)> {
    use decode::Expected;
    match (value, expected) {
        (Value::String(s), Expected::Integer) => {
            let s = s.trim();
            if let Ok(n) = s.parse::<i64>() {
                return Some((Rule::StringAsNumber, Value::from(n)));
            }
            let n = s
                .parse::<f64>()
                .ok()
                .filter(|n| n.is_finite() && n.fract() == 0.0)?;
            integral(n).map(|n| (Rule::StringAsNumber, Value::from(n)))
        }
        (Value::String(s), Expected::Number) => {
            let n = s.trim().parse::<f64>().ok().filter(|n| n.is_finite())?;
            serde_json::Number::from_f64(n).map(|n| (Rule::StringAsNumber, Value::Number(n)))
        }
        (Value::Number(n), Expected::Integer) => {
            let rounded = n.as_f64().filter(|n| n.is_finite())?.round();
            integral(rounded).map(|n| (Rule::FloatAsInteger, Value::from(n)))
        }
        _ => None,
    }
}

/// An integral f64 as i64, when it is one exactly.
fn integral(n: f64) -> Option<i64> {
    // 2^63 is exactly representable; anything at or past it is out of range.
    const LIMIT: f64 = 9_223_372_036_854_775_808.0;
    (n > -LIMIT && n < LIMIT).then_some(n as i64)
}

fn at<'v>(root: &'v mut Value, path: &[PathSegment]) -> Option<&'v mut Value> {
    path.iter().try_fold(root, |value, segment| match segment {
        PathSegment::Key(key) => value.as_object_mut()?.get_mut(key),
        PathSegment::Index(index) => value.as_array_mut()?.get_mut(*index),
    })
}

fn render(path: &[PathSegment], last: Option<&str>) -> String {
    let mut out = String::new();
    let keys = path
        .iter()
        .map(|segment| match segment {
            PathSegment::Key(key) => decode::shorten(key),
            PathSegment::Index(index) => format!("[{index}]"),
        })
        .chain(last.map(decode::shorten));
    for key in keys {
        if !out.is_empty() && !key.starts_with('[') {
            out.push('.');
        }
        out.push_str(&key);
    }
    out
}
