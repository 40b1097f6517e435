//! Security events (OCPP 1.6 security whitepaper): what a charger reported with
//! SecurityEventNotification and what the server itself saw (a CSR it refused, a certificate the
//! charger turned down, a charger refused below its security profile). Plain bounded values:
//! the only constructor trims what a charger sends to the schema's bounds, so the store and the
//! API never meet an unbounded string. No I/O here.

use std::net::IpAddr;

use time::OffsetDateTime;

/// The longest `kind` kept: SecurityEventNotification's `type` is at most 50 characters.
pub const MAX_KIND: usize = 50;
/// The longest `tech_info` kept, as the schema (and the table) bound `techInfo`.
pub const MAX_TECH_INFO: usize = 255;

/// Who saw the event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// The charger reported it (SecurityEventNotification).
    Charger,
    /// The central system saw it.
    Server,
}

impl Source {
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Charger => "charger",
            Source::Server => "server",
        }
    }

    pub fn parse(text: &str) -> Option<Source> {
        match text {
            "charger" => Some(Source::Charger),
            "server" => Some(Source::Server),
            _ => None,
        }
    }
}

/// One security event. `kind` is free text (the whitepaper's types such as `FirmwareUpdated`
/// or `InvalidCentralSystemCertificate`, or a vendor's own); build it with [`SecurityEvent::new`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecurityEvent {
    pub source: Source,
    pub kind: String,
    /// When it happened, as its source says (the charger's timestamp for a charger's event).
    pub at: OffsetDateTime,
    /// When the server recorded it.
    pub received_at: OffsetDateTime,
    pub tech_info: Option<String>,
    /// The address the event came from, when known.
    pub peer: Option<IpAddr>,
}

impl SecurityEvent {
    /// An event with `kind` and `tech_info` cut to their bounds (on a character boundary) and
    /// control characters replaced, so nothing a charger sends can grow a row or a log line.
    /// An empty tech_info is none.
    pub fn new(
        source: Source,
        kind: &str,
        at: OffsetDateTime,
        received_at: OffsetDateTime,
        tech_info: Option<&str>,
        peer: Option<IpAddr>,
    ) -> SecurityEvent {
        let kind = bounded(kind, MAX_KIND);
        SecurityEvent {
            source,
            kind: if kind.is_empty() {
                "Unknown".to_string()
            } else {
                kind
            },
            at,
            received_at,
            tech_info: tech_info
                .map(|t| bounded(t, MAX_TECH_INFO))
                .filter(|t| !t.is_empty()),
            peer,
        }
    }
}

/// At most `max` characters of `text`, control characters (NUL included: PostgreSQL text
/// refuses it) as U+FFFD.
pub fn bounded(text: &str, max: usize) -> String {
    text.trim()
        .chars()
        .take(max)
        .map(|c| if c.is_control() { '\u{FFFD}' } else { c })
        .collect()
}

/// The kinds the server records itself.
pub mod kind {
    /// A SignCertificate the server could not sign: no charger CA is configured.
    pub const NO_CHARGER_CA: &str = "SignCertificateNoCa";
    /// A CSR the server refused (unreadable, bad signature, or another charger's name).
    pub const CSR_REFUSED: &str = "SignCertificateRefused";
    /// The charger accepted the certificate the server signed (CertificateSigned).
    pub const CERTIFICATE_INSTALLED: &str = "CertificateSignedAccepted";
    /// The charger rejected it, or could not be reached to take it.
    pub const CERTIFICATE_NOT_INSTALLED: &str = "CertificateSignedRejected";
    /// A charger of security profile 2 or 3 came over plaintext and was refused.
    pub const REFUSED_PLAINTEXT: &str = "RefusedPlaintextBelowProfile";
    /// A profile 3 charger came without a client certificate and was refused.
    pub const REFUSED_NO_CERTIFICATE: &str = "RefusedNoClientCertificate";
    /// A profile 3 charger's certificate was invalid, or named another charger: refused.
    pub const REFUSED_CERTIFICATE: &str = "RefusedClientCertificate";
    /// Failed logins for this charger passed the free count: attempts are slowed.
    pub const LOGIN_THROTTLED: &str = "LoginThrottled";
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_a_charger_sends_is_cut_to_its_bounds() {
        let now = OffsetDateTime::UNIX_EPOCH;
        let long = "é".repeat(400);
        let e = SecurityEvent::new(Source::Charger, &long, now, now, Some(&long), None);
        assert_eq!(e.kind.chars().count(), MAX_KIND);
        assert_eq!(e.tech_info.unwrap().chars().count(), MAX_TECH_INFO);
        let e = SecurityEvent::new(Source::Charger, " \0x\n", now, now, Some("  "), None);
        assert_eq!(e.kind, "\u{FFFD}x");
        assert_eq!(e.tech_info, None);
        let e = SecurityEvent::new(Source::Server, "", now, now, None, None);
        assert_eq!(e.kind, "Unknown");
        assert_eq!(Source::parse(Source::Server.as_str()), Some(Source::Server));
        assert_eq!(Source::parse("x"), None);
    }
}
