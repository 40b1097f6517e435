//! OCPP-J frames as they travel on the WebSocket: `[2,id,action,payload]`, `[3,id,payload]` and
//! `[4,id,code,description,details]`. Pure text ↔ value conversion, no I/O.
//! Parsing is strict (message type 2/3/4, id a string of at most 36 characters, payload and
//! details JSON objects) so that a test driving a central system sees a malformed server frame
//! as malformed instead of a silently repaired one.

use serde::Serialize;
use serde_json::Value;

/// OCPP-J limits message ids to 36 characters (room for a UUID).
pub const MAX_MESSAGE_ID_LEN: usize = 36;

/// One well-formed OCPP-J frame.
#[derive(Debug, Clone, PartialEq)]
pub enum Frame {
    /// `[2, id, action, payload]`: a request from either side.
    Call {
        id: String,
        action: String,
        payload: Value,
    },
    /// `[3, id, payload]`: the answer to the CALL with the same id.
    Result { id: String, payload: Value },
    /// `[4, id, code, description, details]`: the CALL with the same id failed.
    Error {
        id: String,
        code: String,
        description: String,
        details: Value,
    },
}

impl Frame {
    /// Parses one text frame; `None` when it is not a valid OCPP-J frame.
    pub fn parse(text: &str) -> Option<Frame> {
        let Value::Array(items) = serde_json::from_str(text).ok()? else {
            return None;
        };
        let mut items = items.into_iter();
        let kind = items.next()?.as_u64()?;
        let id = string(items.next()?)?;
        if id.len() > MAX_MESSAGE_ID_LEN {
            return None;
        }
        let frame = match (kind, items.len()) {
            (2, 2) => Frame::Call {
                id,
                action: string(items.next()?)?,
                payload: object(items.next()?)?,
            },
            (3, 1) => Frame::Result {
                id,
                payload: object(items.next()?)?,
            },
            (4, 3) => Frame::Error {
                id,
                code: string(items.next()?)?,
                description: string(items.next()?)?,
                details: object(items.next()?)?,
            },
            _ => return None,
        };
        Some(frame)
    }

    /// The message id that correlates a CALL with its answer.
    pub fn id(&self) -> &str {
        match self {
            Frame::Call { id, .. } | Frame::Result { id, .. } | Frame::Error { id, .. } => id,
        }
    }

    /// The compact JSON text of this frame.
    pub fn to_text(&self) -> String {
        match self {
            Frame::Call {
                id,
                action,
                payload,
            } => call_text(id, action, payload),
            Frame::Result { id, payload } => result_text(id, payload),
            Frame::Error {
                id,
                code,
                description,
                details,
            } => error_text(id, code, description, details),
        }
    }
}

/// `[2,"id","Action",{payload}]`, without cloning the payload.
pub fn call_text(id: &str, action: &str, payload: &Value) -> String {
    encode(&(2, id, action, payload))
}

/// `[3,"id",{payload}]`.
pub fn result_text(id: &str, payload: &Value) -> String {
    encode(&(3, id, payload))
}

/// `[4,"id","Code","description",{details}]`.
pub fn error_text(id: &str, code: &str, description: &str, details: &Value) -> String {
    encode(&(4, id, code, description, details))
}

fn encode(frame: &impl Serialize) -> String {
    // Tuples of integers, strings and `Value`s have no map with non-string keys, the only
    // thing serde_json refuses to write.
    serde_json::to_string(frame).expect("an OCPP-J frame always serialises")
}

fn string(value: Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s),
        _ => None,
    }
}

fn object(value: Value) -> Option<Value> {
    value.is_object().then_some(value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn parses_the_three_shapes() {
        assert_eq!(
            Frame::parse(r#"[2,"19223201","BootNotification",{"chargePointVendor":"V"}]"#),
            Some(Frame::Call {
                id: "19223201".into(),
                action: "BootNotification".into(),
                payload: json!({"chargePointVendor": "V"}),
            })
        );
        assert_eq!(
            Frame::parse(r#"[3,"a",{"currentTime":"2025-01-01T00:00:00Z"}]"#),
            Some(Frame::Result {
                id: "a".into(),
                payload: json!({"currentTime": "2025-01-01T00:00:00Z"}),
            })
        );
        assert_eq!(
            Frame::parse(r#"[4,"b","NotImplemented","no such action",{}]"#),
            Some(Frame::Error {
                id: "b".into(),
                code: "NotImplemented".into(),
                description: "no such action".into(),
                details: json!({}),
            })
        );
    }

    #[test]
    fn rejects_malformed_frames() {
        for text in [
            "",
            "not json",
            "{}",
            "[]",
            r#"[2,"1","Heartbeat"]"#,
            r#"[2,1,"Heartbeat",{}]"#,
            r#"[2,"1","Heartbeat",[]]"#,
            r#"[3,"1",null]"#,
            r#"[3,"1",{},{}]"#,
            r#"[4,"1","GenericError",{}]"#,
            r#"[5,"1",{}]"#,
            r#"["2","1","Heartbeat",{}]"#,
            r#"[2,"0123456789012345678901234567890123456","Heartbeat",{}]"#,
        ] {
            assert_eq!(Frame::parse(text), None, "{text}");
        }
    }

    #[test]
    fn accepts_a_36_character_id() {
        let id = "0123456789abcdef0123456789abcdef0123";
        let text = call_text(id, "Heartbeat", &json!({}));
        assert_eq!(
            Frame::parse(&text).map(|f| f.id().to_owned()),
            Some(id.into())
        );
    }

    #[test]
    fn encodes_compactly_and_round_trips() {
        assert_eq!(
            call_text("1", "Heartbeat", &json!({})),
            r#"[2,"1","Heartbeat",{}]"#
        );
        assert_eq!(result_text("7", &json!({"a": 1})), r#"[3,"7",{"a":1}]"#);
        assert_eq!(
            error_text("x\"y", "GenericError", "bad", &json!({})),
            r#"[4,"x\"y","GenericError","bad",{}]"#
        );
        let frame = Frame::Error {
            id: "9".into(),
            code: "ProtocolError".into(),
            description: "d".into(),
            details: json!({"k": "v"}),
        };
        assert_eq!(Frame::parse(&frame.to_text()), Some(frame));
    }
}
