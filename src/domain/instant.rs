//! Instants as the ledger stores them (Unix milliseconds) and as the API and the event log write
//! them (RFC 3339, UTC, milliseconds). Pure conversions; none may fail silently.

use time::OffsetDateTime;

/// Unix milliseconds, the storage form of every instant (rounded down, as
/// [`at_storage_precision`]). Every `OffsetDateTime` fits: ±10^4 years are ~3·10^14 ms.
pub fn to_millis(t: OffsetDateTime) -> i64 {
    t.unix_timestamp_nanos().div_euclid(1_000_000) as i64
}

/// `t` rounded down to the whole millisecond, the precision the ledger stores.
pub fn at_storage_precision(t: OffsetDateTime) -> OffsetDateTime {
    let ns = t.nanosecond();
    t.replace_nanosecond(ns - ns % 1_000_000).unwrap_or(t)
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
