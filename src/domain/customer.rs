//! Customers (drivers) and their idTags, the OCPP identifiers a charger sends when someone
//! plugs in. A customer's bearer token is shown once at creation and stored only as a SHA-256
//! digest: tokens are 256 random bits, so an unsalted fast digest is safe and lets the server
//! find the customer by it.

use base64::Engine;
use rand::RngCore;
use sha2::{Digest, Sha256};
use time::OffsetDateTime;

/// OCPP's IdToken: at most 20 characters. The only constructor is [`IdTag::parse`].
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct IdTag(String);

pub const ID_TAG_MAX: usize = 20;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidIdTag {
    #[error("must not be empty")]
    Empty,
    #[error("must be at most {ID_TAG_MAX} characters (OCPP IdToken)")]
    TooLong,
    #[error("must be printable ASCII without spaces")]
    Characters,
}

impl IdTag {
    pub fn parse(text: &str) -> Result<Self, InvalidIdTag> {
        if text.is_empty() {
            return Err(InvalidIdTag::Empty);
        }
        if text.chars().count() > ID_TAG_MAX {
            return Err(InvalidIdTag::TooLong);
        }
        if !text.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(InvalidIdTag::Characters);
        }
        Ok(IdTag(text.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// OCPP compares idTags case-insensitively (CiString); uniqueness uses this key.
    pub fn key(&self) -> String {
        self.0.to_ascii_lowercase()
    }
}

#[derive(Debug, Clone)]
pub struct NewCustomer {
    pub name: String,
    pub id_tags: Vec<IdTag>,
    /// [`token_digest`] of the customer's bearer token.
    pub token_digest: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Customer {
    pub id: i64,
    pub name: String,
    /// In the order given at creation; the first is the default for bookings.
    pub id_tags: Vec<String>,
    pub created_at: OffsetDateTime,
}

/// A fresh customer token (43 URL-safe characters).
pub fn new_token() -> String {
    let mut raw = [0u8; 32];
    rand::rng().fill_bytes(&mut raw);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw)
}

/// What the store keeps of a token: hex SHA-256.
pub fn token_digest(token: &str) -> String {
    let d = Sha256::digest(token.as_bytes());
    d.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn id_tag_accepts_exactly_short_printable_ascii(s in "\\PC{0,25}") {
            let ok = !s.is_empty() && s.chars().count() <= 20 && s.bytes().all(|b| b.is_ascii_graphic());
            prop_assert_eq!(IdTag::parse(&s).is_ok(), ok);
        }
    }

    #[test]
    fn tokens_are_unique_and_digests_stable() {
        let (a, b) = (new_token(), new_token());
        assert_ne!(a, b);
        assert_eq!(token_digest(&a), token_digest(&a));
        assert_eq!(token_digest(&a).len(), 64);
    }
}
