//! Charger passwords (OCPP's AuthorizationKey for HTTP Basic auth): how they are stored and
//! checked. These are machine keys of 16–40 characters, not human passwords, so a salted SHA-256
//! is right: a deliberately slow hash would make a reconnect storm of 100k chargers cost minutes
//! of CPU. Comparison is constant-time.

use base64::Engine;
use base64::engine::general_purpose::STANDARD_NO_PAD as B64;
use rand::RngCore;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// The OCPP 1.6 security whitepaper bounds the AuthorizationKey to 16–40 characters.
pub const MIN_LEN: usize = 16;
pub const MAX_LEN: usize = 40;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidMachineKey {
    #[error("must be {MIN_LEN} to {MAX_LEN} characters (OCPP AuthorizationKey)")]
    Length,
    #[error("must be printable ASCII without spaces")]
    Characters,
}

pub fn validate(key: &str) -> Result<(), InvalidMachineKey> {
    if !(MIN_LEN..=MAX_LEN).contains(&key.len()) {
        return Err(InvalidMachineKey::Length);
    }
    if !key.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(InvalidMachineKey::Characters);
    }
    Ok(())
}

/// `sha256$<salt>$<digest>`, base64; the scheme prefix leaves room to change the hash later.
pub fn hash(key: &str) -> String {
    let mut salt = [0u8; 16];
    rand::rng().fill_bytes(&mut salt);
    format!(
        "sha256${}${}",
        B64.encode(salt),
        B64.encode(digest(&salt, key))
    )
}

/// Whether `key` matches a value made by [`hash`]. A malformed stored value matches nothing.
pub fn verify(stored: &str, key: &str) -> bool {
    let mut parts = stored.split('$');
    let (Some("sha256"), Some(salt), Some(expected), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return false;
    };
    let (Ok(salt), Ok(expected)) = (B64.decode(salt), B64.decode(expected)) else {
        return false;
    };
    digest(&salt, key).ct_eq(expected.as_slice()).into()
}

fn digest(salt: &[u8], key: &str) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(salt);
    h.update(key.as_bytes());
    h.finalize().into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_verifies_only_the_same_key_and_is_salted() {
        let a = hash("correct horse battery");
        assert!(verify(&a, "correct horse battery"));
        assert!(!verify(&a, "correct horse battery!"));
        assert_ne!(a, hash("correct horse battery"));
        assert!(!verify("plain-text", "plain-text"));
    }

    #[test]
    fn validate_follows_the_authorization_key_bounds() {
        assert!(validate("0123456789abcdef").is_ok());
        assert_eq!(validate("short"), Err(InvalidMachineKey::Length));
        assert_eq!(validate(&"x".repeat(41)), Err(InvalidMachineKey::Length));
        assert_eq!(
            validate("has a space in it!!"),
            Err(InvalidMachineKey::Characters)
        );
    }
}
