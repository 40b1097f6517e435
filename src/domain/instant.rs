//! Instants as the ledger stores them (Unix milliseconds) and as the API and the event log write
//! them (RFC 3339, UTC, milliseconds). Pure conversions; none may fail silently.

use time::OffsetDateTime;

/// Unix milliseconds, the storage form of every instant.
pub fn to_millis(t: OffsetDateTime) -> i64 {
    (t.unix_timestamp_nanos() / 1_000_000) as i64
}

/// An instant as the API and the event log write it (RFC 3339).
pub fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

pub fn from_millis(ms: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .unwrap_or(OffsetDateTime::UNIX_EPOCH)
}
