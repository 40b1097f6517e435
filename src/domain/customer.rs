//! Customers (drivers) and their idTags, the OCPP identifiers a charger sends when someone
//! plugs in. A customer's bearer token is shown once at creation and stored only as a SHA-256
//! digest: tokens are 256 random bits, so an unsalted fast digest is safe and lets the server
//! find the customer by it.

use base64::Engine;
use rand::RngCore;
use sha2::{Digest, Sha256};
use time::OffsetDateTime;

use crate::domain::transaction::Authorization;

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

crate::domain::reservation::wire_enum! {
    /// What the operator decided about one idTag. Expiry is not a status: a tag past its
    /// `expires_at` is answered Expired whatever it says here.
    TagStatus {
        Accepted = "ACCEPTED",
        Blocked = "BLOCKED",
    }
}

/// One idTag as the ledger keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TagRecord {
    pub id_tag: String,
    pub status: TagStatus,
    /// After this instant the tag is answered Expired.
    pub expires_at: Option<OffsetDateTime>,
    /// A fleet or group card's parent idTag, reported to chargers in idTagInfo.
    pub parent_id_tag: Option<String>,
}

impl TagRecord {
    /// A new tag as customers are created with: accepted, no expiry, no parent.
    pub fn new(tag: &IdTag) -> Self {
        TagRecord {
            id_tag: tag.as_str().to_owned(),
            status: TagStatus::Accepted,
            expires_at: None,
            parent_id_tag: None,
        }
    }
}

/// What Authorize, StartTransaction and StopTransaction need to know of a known idTag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TagAuth {
    pub customer_id: i64,
    pub status: TagStatus,
    pub expires_at: Option<OffsetDateTime>,
    pub parent_id_tag: Option<String>,
}

/// A tag's verdict at `now`: Blocked wins over Expired (an operator's block is the stronger
/// statement), Expired once `expires_at` has passed.
pub fn tag_verdict(
    status: TagStatus,
    expires_at: Option<OffsetDateTime>,
    now: OffsetDateTime,
) -> Authorization {
    match status {
        TagStatus::Blocked => Authorization::Blocked,
        TagStatus::Accepted if expires_at.is_some_and(|at| at <= now) => Authorization::Expired,
        TagStatus::Accepted => Authorization::Accepted,
    }
}

impl TagAuth {
    /// See [`tag_verdict`].
    pub fn verdict(&self, now: OffsetDateTime) -> Authorization {
        tag_verdict(self.status, self.expires_at, now)
    }
}

/// One change to a customer; each is one write and one CustomerUpdated event.
#[derive(Debug, Clone)]
pub enum CustomerChange {
    Rename(String),
    AddTag(TagRecord),
    /// `None` leaves a field as it is; `Some(None)` clears an optional one.
    UpdateTag {
        key: String,
        status: Option<TagStatus>,
        expires_at: Option<Option<OffsetDateTime>>,
        parent_id_tag: Option<Option<String>>,
    },
    RemoveTag {
        key: String,
    },
    /// The new token's [`token_digest`].
    RotateToken(String),
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
    /// The same tags with their status, expiry and parent, in the same order.
    pub tags: Vec<TagRecord>,
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
    fn blocked_beats_expired_and_expiry_is_inclusive() {
        let now = OffsetDateTime::now_utc();
        let mut auth = TagAuth {
            customer_id: 1,
            status: TagStatus::Accepted,
            expires_at: None,
            parent_id_tag: None,
        };
        assert_eq!(auth.verdict(now), Authorization::Accepted);
        auth.expires_at = Some(now);
        assert_eq!(auth.verdict(now), Authorization::Expired);
        auth.expires_at = Some(now + time::Duration::seconds(1));
        assert_eq!(auth.verdict(now), Authorization::Accepted);
        auth.status = TagStatus::Blocked;
        assert_eq!(auth.verdict(now), Authorization::Blocked);
        auth.expires_at = Some(now);
        assert_eq!(auth.verdict(now), Authorization::Blocked);
    }

    #[test]
    fn tokens_are_unique_and_digests_stable() {
        let (a, b) = (new_token(), new_token());
        assert_ne!(a, b);
        assert_eq!(token_digest(&a), token_digest(&a));
        assert_eq!(token_digest(&a).len(), 64);
    }
}
