//! OCPP-J RPC frames: `[2,id,action,{…}]`, `[3,id,{…}]`, `[4,id,code,description,{…}]`.
//!
//! Owns the text ↔ frame step and nothing else: payloads stay raw JSON (`&RawValue`) borrowed
//! from the WebSocket text, so the hot path does one scan of the message and no allocation
//! unless an id or action contains escapes. Typed payloads are the business of `action`.

use std::borrow::Cow;
use std::fmt;

use serde::Serialize;
use serde::de::{self, DeserializeSeed, SeqAccess, Visitor};
use serde_json::value::RawValue;

use super::error::ErrorCode;

/// OCPP-J 1.6 §4.1.4: the message id is "maximum of 36 characters, to allow for GUIDs".
pub const MAX_MESSAGE_ID_LEN: usize = 36;

/// The id a CALLERROR carries when the offending frame's own id could not be read.
///
/// OCPP-J 1.6 is silent on this case; we follow OCPP-J 2.0.1 (CALLERROR section), which answers
/// with message id `"-1"`, so the peer at least sees why nothing else came back.
pub const UNREADABLE_MESSAGE_ID: &str = "-1";

const CALL: u8 = 2;
const CALL_RESULT: u8 = 3;
const CALL_ERROR: u8 = 4;

/// One OCPP-J message, borrowing from the text it was parsed from.
#[derive(Debug, Clone)]
pub enum Frame<'a> {
    Call(Call<'a>),
    CallResult(CallResult<'a>),
    CallError(CallError<'a>),
}

/// `[2, id, action, payload]`: a request.
#[derive(Debug, Clone)]
pub struct Call<'a> {
    pub id: Cow<'a, str>,
    pub action: Cow<'a, str>,
    /// Always a JSON object (checked by [`Frame::parse`]).
    pub payload: &'a RawValue,
}

/// `[3, id, payload]`: the answer to one of our CALLs.
#[derive(Debug, Clone)]
pub struct CallResult<'a> {
    pub id: Cow<'a, str>,
    /// Always a JSON object (checked by [`Frame::parse`]).
    pub payload: &'a RawValue,
}

/// `[4, id, code, description, details]`: a failed answer to one of our CALLs.
#[derive(Debug, Clone)]
pub struct CallError<'a> {
    pub id: Cow<'a, str>,
    /// Unknown codes read as [`ErrorCode::GenericError`]: the frame still has to settle the
    /// CALL it answers, whatever code a peer invented.
    pub code: ErrorCode,
    pub description: Cow<'a, str>,
    /// Any JSON value; the spec says an object, but we only log it, so we do not reject others.
    pub details: &'a RawValue,
}

/// Why a text message is not an OCPP-J frame. `code` and `description` are meant for the
/// CALLERROR reply; `message_id` is `Some` whenever the id could still be read, so the reply
/// can reuse it (use [`FrameError::reply_id`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {description}")]
pub struct FrameError {
    pub message_id: Option<String>,
    pub code: ErrorCode,
    pub description: String,
}

impl FrameError {
    fn new(message_id: Option<&str>, code: ErrorCode, description: impl Into<String>) -> Self {
        FrameError {
            message_id: message_id.map(str::to_owned),
            code,
            description: description.into(),
        }
    }

    /// The id to answer with: the frame's own, or [`UNREADABLE_MESSAGE_ID`].
    pub fn reply_id(&self) -> &str {
        self.message_id.as_deref().unwrap_or(UNREADABLE_MESSAGE_ID)
    }
}

impl<'a> Frame<'a> {
    /// Parses one WebSocket text message.
    ///
    /// Error codes, read against the OCPP-J 1.6 §4.2.3 table by treating the frame itself as a
    /// PDU of four or five fields (the table has no frame-level codes of its own):
    ///
    /// - FormationViolation ("syntactically incorrect or not conform the PDU structure"):
    ///   not JSON, trailing garbage, JSON that is not an array, more elements than the message
    ///   type has.
    /// - ProtocolError ("Payload for Action is incomplete"): fewer elements than the message
    ///   type needs.
    /// - TypeConstraintViolation ("violates data type constraints"): a messageTypeId that is not
    ///   an integer; an id, action, error code or description that is not a string; a CALL or
    ///   CALLRESULT payload that is not an object.
    /// - PropertyConstraintViolation ("a field contains an invalid value"): an id longer than
    ///   36 characters, an integer messageTypeId other than 2, 3, 4.
    ///
    /// OCPP-J 1.6 §4.1.3 says a receiver SHALL ignore a frame with an unknown messageTypeId;
    /// that is the only PropertyConstraintViolation that comes with a `message_id`, so a caller
    /// that wants to stay silent there can tell it apart.
    pub fn parse(text: &'a str) -> Result<Frame<'a>, FrameError> {
        let mut elements = Elements::default();
        let mut de = serde_json::Deserializer::from_str(text);
        let read = Collect(&mut elements)
            .deserialize(&mut de)
            .and_then(|()| de.end());

        if !elements.saw_array {
            // Slow path only: tell the two kinds of garbage apart for the log reader.
            let description = if serde_json::from_str::<de::IgnoredAny>(text).is_ok() {
                "message is not a JSON array"
            } else {
                "message is not valid JSON"
            };
            return fail(None, ErrorCode::FormationViolation, description);
        }

        let [type_id, id, third, fourth, fifth] = elements.items;
        let id = id.map(json_string);
        let readable_id = match &id {
            Some(Some(id)) if fits_id(id) => Some(id.as_ref()),
            _ => None,
        };

        // `too_many` stops reading early, which leaves serde_json complaining about the rest.
        if read.is_err() && !elements.too_many {
            return fail(
                readable_id,
                ErrorCode::FormationViolation,
                "message is not valid JSON",
            );
        }

        let Some(type_id) = type_id else {
            return fail(
                None,
                ErrorCode::ProtocolError,
                "message has no messageTypeId",
            );
        };
        let (message_type, expected_len) = match type_id.get() {
            "2" => (CALL, 4),
            "3" => (CALL_RESULT, 3),
            "4" => (CALL_ERROR, 5),
            other if is_json_integer(other) => {
                return fail(
                    readable_id,
                    ErrorCode::PropertyConstraintViolation,
                    "unknown messageTypeId",
                );
            }
            _ => {
                return fail(
                    readable_id,
                    ErrorCode::TypeConstraintViolation,
                    "messageTypeId is not an integer",
                );
            }
        };

        let id = match id {
            None => return fail(None, ErrorCode::ProtocolError, "message has no id"),
            Some(None) => {
                return fail(
                    None,
                    ErrorCode::TypeConstraintViolation,
                    "message id is not a string",
                );
            }
            Some(Some(id)) => id,
        };
        if !fits_id(&id) {
            return fail(
                None,
                ErrorCode::PropertyConstraintViolation,
                "message id longer than 36 characters",
            );
        }
        let fail = |code, description| fail(Some(&id), code, description);

        if elements.len < expected_len {
            return fail(ErrorCode::ProtocolError, "message has too few elements");
        }
        if elements.too_many || elements.len > expected_len {
            return fail(
                ErrorCode::FormationViolation,
                "message has too many elements",
            );
        }

        let frame = match message_type {
            CALL => {
                let (Some(action), Some(payload)) = (third, fourth) else {
                    return fail(ErrorCode::ProtocolError, "message has too few elements");
                };
                let Some(action) = json_string(action) else {
                    return fail(ErrorCode::TypeConstraintViolation, "action is not a string");
                };
                if !is_object(payload) {
                    return fail(
                        ErrorCode::TypeConstraintViolation,
                        "payload is not an object",
                    );
                }
                Frame::Call(Call {
                    id,
                    action,
                    payload,
                })
            }
            CALL_RESULT => {
                let Some(payload) = third.filter(|payload| is_object(payload)) else {
                    return fail(
                        ErrorCode::TypeConstraintViolation,
                        "payload is not an object",
                    );
                };
                Frame::CallResult(CallResult { id, payload })
            }
            _ => {
                let (Some(code), Some(description), Some(details)) = (third, fourth, fifth) else {
                    return fail(ErrorCode::ProtocolError, "message has too few elements");
                };
                let Some(code) = json_string(code) else {
                    return fail(
                        ErrorCode::TypeConstraintViolation,
                        "error code is not a string",
                    );
                };
                let Some(description) = json_string(description) else {
                    return fail(
                        ErrorCode::TypeConstraintViolation,
                        "error description is not a string",
                    );
                };
                Frame::CallError(CallError {
                    id,
                    code: ErrorCode::parse(&code).unwrap_or(ErrorCode::GenericError),
                    description,
                    details,
                })
            }
        };
        Ok(frame)
    }

    pub fn message_id(&self) -> &str {
        match self {
            Frame::Call(call) => &call.id,
            Frame::CallResult(result) => &result.id,
            Frame::CallError(error) => &error.id,
        }
    }
}

fn fail<T>(message_id: Option<&str>, code: ErrorCode, description: &str) -> Result<T, FrameError> {
    Err(FrameError::new(message_id, code, description))
}

/// The first five elements of the frame array, captured as raw JSON in a single pass.
/// Five is the longest frame (CALLERROR); reading stops at a sixth so a huge array costs
/// nothing more.
#[derive(Default)]
struct Elements<'a> {
    items: [Option<&'a RawValue>; 5],
    len: usize,
    too_many: bool,
    saw_array: bool,
}

/// Fills [`Elements`] in place, so whatever was read before a syntax error (the id, usually)
/// is still there to answer with.
struct Collect<'s, 'a>(&'s mut Elements<'a>);

impl<'a> DeserializeSeed<'a> for Collect<'_, 'a> {
    type Value = ();

    fn deserialize<D: de::Deserializer<'a>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_seq(self)
    }
}

impl<'a> Visitor<'a> for Collect<'_, 'a> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an OCPP-J message array")
    }

    fn visit_seq<A: SeqAccess<'a>>(self, mut seq: A) -> Result<(), A::Error> {
        self.0.saw_array = true;
        while let Some(item) = seq.next_element::<&'a RawValue>()? {
            let Some(slot) = self.0.items.get_mut(self.0.len) else {
                self.0.too_many = true;
                return Ok(());
            };
            *slot = Some(item);
            self.0.len += 1;
        }
        Ok(())
    }
}

/// The string a raw JSON value holds, if it is a string. Without escapes the text between
/// the quotes *is* the value (serde_json already rejected raw control characters), so the
/// common case borrows; only escaped strings are decoded into an owned copy.
fn json_string(raw: &RawValue) -> Option<Cow<'_, str>> {
    let text = raw.get();
    let inner = text.strip_prefix('"')?.strip_suffix('"')?;
    if inner.contains('\\') {
        serde_json::from_str::<String>(text).ok().map(Cow::Owned)
    } else {
        Some(Cow::Borrowed(inner))
    }
}

/// The spec's limit counts characters, not bytes; ASCII ids (all real ones) skip the count.
fn fits_id(id: &str) -> bool {
    id.len() <= MAX_MESSAGE_ID_LEN || id.chars().count() <= MAX_MESSAGE_ID_LEN
}

fn is_json_integer(text: &str) -> bool {
    let digits = text.strip_prefix('-').unwrap_or(text);
    !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit())
}

fn is_object(raw: &RawValue) -> bool {
    raw.get().starts_with('{')
}

/// `[2, id, action, payload]`. Fails only if `payload`'s `Serialize` does.
pub fn encode_call(
    id: &str,
    action: &str,
    payload: &impl Serialize,
) -> Result<String, serde_json::Error> {
    serde_json::to_string(&(CALL, id, action, payload))
}

/// `[3, id, payload]`. Fails only if `payload`'s `Serialize` does.
pub fn encode_call_result(id: &str, payload: &impl Serialize) -> Result<String, serde_json::Error> {
    serde_json::to_string(&(CALL_RESULT, id, payload))
}

/// `[4, id, code, description, details]`, always in 1.6 spelling. `details` must be a JSON
/// object (OCPP-J 1.6 §4.2.3); `None` or anything that is not an object is sent as `{}`,
/// which is what the spec asks for when there are no details.
pub fn encode_call_error(
    id: &str,
    code: ErrorCode,
    description: &str,
    details: Option<&serde_json::Value>,
) -> String {
    let empty = serde_json::Value::Object(serde_json::Map::new());
    let details = match details {
        Some(details @ serde_json::Value::Object(_)) => details,
        _ => &empty,
    };
    serde_json::to_string(&(CALL_ERROR, id, code.as_str(), description, details))
        .expect("strings and a JSON value always serialize")
}
