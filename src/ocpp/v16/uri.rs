//! `Uri`: a string the schemas give `"format": "uri"` (UpdateFirmware's and GetDiagnostics'
//! `location`), checked on the way in against RFC 3986's absolute-URI syntax, as the schema
//! validators do, so a location a charger could not even parse is never sent.

use std::fmt;
use std::ops::Deref;

use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize, Serializer};

use super::wire::property_violation;

/// An absolute URI (`scheme:rest`, e.g. `https://cs.example.com/fw/2.1.bin`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Uri(String);

/// Not an absolute URI in RFC 3986's syntax.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not an absolute URI (RFC 3986)")]
pub struct UriError;

impl Uri {
    pub fn new(value: impl Into<String>) -> Result<Self, UriError> {
        let value = value.into();
        if is_absolute_uri(&value) {
            Ok(Uri(value))
        } else {
            Err(UriError)
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// RFC 3986 `absolute-URI` / `URI`: a scheme (a letter, then letters, digits, `+ - .`), a
/// colon, then only unreserved, reserved or percent-encoded characters, with at most one `#`.
/// Spaces, control characters (NUL included), non-ASCII and stray `%` are refused.
fn is_absolute_uri(text: &str) -> bool {
    let Some((scheme, rest)) = text.split_once(':') else {
        return false;
    };
    let mut scheme_chars = scheme.bytes();
    if !scheme_chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        || !scheme_chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, b'+' | b'-' | b'.'))
    {
        return false;
    }
    if rest.bytes().filter(|c| *c == b'#').count() > 1 {
        return false;
    }
    let bytes = rest.as_bytes();
    let mut at = 0;
    while at < bytes.len() {
        let c = bytes[at];
        if c == b'%' {
            let hex = |i: usize| bytes.get(i).is_some_and(u8::is_ascii_hexdigit);
            if !(hex(at + 1) && hex(at + 2)) {
                return false;
            }
            at += 3;
            continue;
        }
        let allowed = c.is_ascii_alphanumeric()
            || matches!(
                c,
                b'-' | b'.'
                    | b'_'
                    | b'~'
                    | b':'
                    | b'/'
                    | b'?'
                    | b'#'
                    | b'['
                    | b']'
                    | b'@'
                    | b'!'
                    | b'$'
                    | b'&'
                    | b'\''
                    | b'('
                    | b')'
                    | b'*'
                    | b'+'
                    | b','
                    | b';'
                    | b'='
            );
        if !allowed {
            return false;
        }
        at += 1;
    }
    true
}

impl Deref for Uri {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Uri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl TryFrom<&str> for Uri {
    type Error = UriError;
    fn try_from(value: &str) -> Result<Self, UriError> {
        Uri::new(value)
    }
}

impl Serialize for Uri {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Uri {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct UriVisitor;
        impl Visitor<'_> for UriVisitor {
            type Value = Uri;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }
            // Checked inside the visitor so serde_json's position still names the field.
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Uri, E> {
                Uri::new(v).map_err(property_violation)
            }
        }
        deserializer.deserialize_str(UriVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn absolute_uris_only() {
        for ok in [
            "https://cs.example.com/fw/2.1.bin",
            "ftp://user:pw@10.0.0.1:21/diag/",
            "http://[::1]:8080/a?b=c#d",
            "urn:oca:firmware",
            "https://x.example/%41",
        ] {
            assert!(Uri::new(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "not a uri",
            "/relative/path",
            "1http://x",
            "http://x/a b",
            "http://x/%4",
            "http://x/\u{0}",
            "http://x/é",
            "http://x/#a#b",
        ] {
            assert_eq!(Uri::new(bad), Err(UriError), "{bad:?}");
        }
    }
}
