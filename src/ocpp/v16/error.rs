//! OCPP-J 1.6 error codes (§4.2.3) and the error a payload decode produces.
//!
//! Owns the wire spelling of every code. We always *write* the 1.6 spelling, but read the two
//! codes OCPP 2.0 renamed as well, because mixed-version fleets and libraries built for 2.0
//! send them to 1.6 central systems.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The ten CALLERROR codes of OCPP-J 1.6 §4.2.3.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    /// Requested Action is not known by receiver.
    NotImplemented,
    /// Requested Action is recognized but not supported by the receiver.
    NotSupported,
    /// An internal error occurred and the receiver was not able to process the requested Action.
    InternalError,
    /// Payload for Action is incomplete.
    ProtocolError,
    /// During the processing of Action a security issue occurred.
    SecurityError,
    /// Payload is syntactically incorrect or not conform the PDU structure for Action.
    FormationViolation,
    /// Payload is syntactically correct but at least one field contains an invalid value.
    PropertyConstraintViolation,
    /// Payload is syntactically correct but at least one field violates occurence constraints.
    /// (The misspelling is the 1.6 wire name.)
    OccurenceConstraintViolation,
    /// Payload is syntactically correct but at least one field violates data type constraints.
    TypeConstraintViolation,
    /// Any other error not covered by the previous ones.
    GenericError,
}

impl ErrorCode {
    pub const ALL: [ErrorCode; 10] = [
        ErrorCode::NotImplemented,
        ErrorCode::NotSupported,
        ErrorCode::InternalError,
        ErrorCode::ProtocolError,
        ErrorCode::SecurityError,
        ErrorCode::FormationViolation,
        ErrorCode::PropertyConstraintViolation,
        ErrorCode::OccurenceConstraintViolation,
        ErrorCode::TypeConstraintViolation,
        ErrorCode::GenericError,
    ];

    /// The OCPP-J 1.6 spelling, the only one we put on the wire.
    pub const fn as_str(self) -> &'static str {
        match self {
            ErrorCode::NotImplemented => "NotImplemented",
            ErrorCode::NotSupported => "NotSupported",
            ErrorCode::InternalError => "InternalError",
            ErrorCode::ProtocolError => "ProtocolError",
            ErrorCode::SecurityError => "SecurityError",
            ErrorCode::FormationViolation => "FormationViolation",
            ErrorCode::PropertyConstraintViolation => "PropertyConstraintViolation",
            ErrorCode::OccurenceConstraintViolation => "OccurenceConstraintViolation",
            ErrorCode::TypeConstraintViolation => "TypeConstraintViolation",
            ErrorCode::GenericError => "GenericError",
        }
    }

    /// Reads a code in 1.6 spelling, or in the OCPP 2.0 spelling of the two codes 2.0 renamed
    /// (`FormatViolation`, `OccurrenceConstraintViolation`): they mean exactly the same thing.
    ///
    /// 2.0-only codes (`RpcFrameworkError`, `MessageTypeNotSupported`, …) are *not* mapped:
    /// none of them has a 1.6 code with the same meaning (1.6's `ProtocolError` means
    /// "payload incomplete", not "RPC framing broken"), so guessing would mislead the log
    /// reader more than `None` does. Callers that must keep going map `None` to `GenericError`.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "NotImplemented" => ErrorCode::NotImplemented,
            "NotSupported" => ErrorCode::NotSupported,
            "InternalError" => ErrorCode::InternalError,
            "ProtocolError" => ErrorCode::ProtocolError,
            "SecurityError" => ErrorCode::SecurityError,
            "FormationViolation" | "FormatViolation" => ErrorCode::FormationViolation,
            "PropertyConstraintViolation" => ErrorCode::PropertyConstraintViolation,
            "OccurenceConstraintViolation" | "OccurrenceConstraintViolation" => {
                ErrorCode::OccurenceConstraintViolation
            }
            "TypeConstraintViolation" => ErrorCode::TypeConstraintViolation,
            "GenericError" => ErrorCode::GenericError,
            _ => return None,
        })
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for ErrorCode {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for ErrorCode {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct CodeVisitor;
        impl serde::de::Visitor<'_> for CodeVisitor {
            type Value = ErrorCode;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an OCPP error code")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<ErrorCode, E> {
                ErrorCode::parse(v).ok_or_else(|| {
                    E::invalid_value(serde::de::Unexpected::Str(v), &"an OCPP error code")
                })
            }
        }
        deserializer.deserialize_str(CodeVisitor)
    }
}

/// Why a CALL or CALLRESULT payload could not become its typed message: the code and
/// description go straight into the CALLERROR we answer with, so the description names the
/// offending field and never carries internal details.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {description}")]
pub struct DecodeError {
    pub code: ErrorCode,
    pub description: String,
}

impl DecodeError {
    pub fn new(code: ErrorCode, description: impl Into<String>) -> Self {
        DecodeError {
            code,
            description: description.into(),
        }
    }
}
