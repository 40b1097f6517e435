//! `ChargeBoxId`: the identity a charger connects with (the last path segment of its OCPP URL),
//! also the charger's id in the REST API. Its only constructor is [`ChargeBoxId::parse`], so an
//! id that could not appear in a URL or in an HTTP Basic username never exists in the program.

use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

/// OCPP 2.0.1 caps the identity at 48 characters; 1.6J says nothing, and 48 is what hardware in
/// the field fits in, so we hold 1.6 chargers to the same bound.
pub const MAX_LEN: usize = 48;

/// Cheap to clone (shared string): it is the key of every per-charger map.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ChargeBoxId(Arc<str>);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidChargeBoxId {
    #[error("must not be empty")]
    Empty,
    #[error("must be at most {MAX_LEN} characters")]
    TooLong,
    #[error("may only contain letters, digits and - . _ ~ (RFC 3986 unreserved characters)")]
    BadCharacter,
}

impl ChargeBoxId {
    /// Unreserved URL characters only: the id travels unescaped in the URL path, and `:` would
    /// break the HTTP Basic `id:password` pair.
    pub fn parse(text: &str) -> Result<Self, InvalidChargeBoxId> {
        if text.is_empty() {
            return Err(InvalidChargeBoxId::Empty);
        }
        if text.len() > MAX_LEN {
            return Err(InvalidChargeBoxId::TooLong);
        }
        if !text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'))
        {
            return Err(InvalidChargeBoxId::BadCharacter);
        }
        Ok(ChargeBoxId(Arc::from(text)))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ChargeBoxId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for ChargeBoxId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.0, f)
    }
}

impl std::borrow::Borrow<str> for ChargeBoxId {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl Serialize for ChargeBoxId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for ChargeBoxId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        ChargeBoxId::parse(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn accepts_typical_ids_and_rejects_the_rest() {
        assert!(ChargeBoxId::parse("CP-0001").is_ok());
        assert!(ChargeBoxId::parse("abc.DEF_12~x").is_ok());
        assert_eq!(ChargeBoxId::parse(""), Err(InvalidChargeBoxId::Empty));
        assert_eq!(
            ChargeBoxId::parse("a:b"),
            Err(InvalidChargeBoxId::BadCharacter)
        );
        assert_eq!(
            ChargeBoxId::parse("a/b"),
            Err(InvalidChargeBoxId::BadCharacter)
        );
        assert_eq!(
            ChargeBoxId::parse(&"x".repeat(49)),
            Err(InvalidChargeBoxId::TooLong)
        );
    }

    proptest! {
        #[test]
        fn parse_accepts_exactly_the_unreserved_alphabet(s in "\\PC{0,60}") {
            let ok = !s.is_empty() && s.len() <= MAX_LEN && s.bytes().all(|b| {
                b.is_ascii_alphanumeric() || b"-._~".contains(&b)
            });
            prop_assert_eq!(ChargeBoxId::parse(&s).is_ok(), ok);
            if ok {
                let id = ChargeBoxId::parse(&s).unwrap();
                prop_assert_eq!(id.as_str(), s.as_str());
            }
        }
    }
}
