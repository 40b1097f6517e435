//! Instants as the ledger stores them (Unix milliseconds) and as the API and the event log write
//! them (RFC 3339, UTC, milliseconds). Pure conversions; none can fail silently: every instant
//! is taken into the range RFC 3339 can write (years 0000 to 9999, [`EARLIEST`]..=[`LATEST`])
//! on its way into storage, so what is stored can always be written back out; a stored value
//! outside it is an explicit `None` ([`try_from_millis`]), never a made-up instant.

use time::macros::datetime;
use time::{OffsetDateTime, UtcOffset};

/// The first instant RFC 3339 can write.
pub const EARLIEST: OffsetDateTime = datetime!(0000-01-01 00:00:00 UTC);
/// The last instant the ledger stores (its precision is the millisecond).
pub const LATEST: OffsetDateTime = datetime!(9999-12-31 23:59:59.999 UTC);

/// `t` in UTC, taken into [`EARLIEST`]..=[`LATEST`].
pub fn clamp(t: OffsetDateTime) -> OffsetDateTime {
    match t.checked_to_offset(UtcOffset::UTC) {
        Some(utc) => utc.clamp(EARLIEST, LATEST),
        // Only an instant at the very edge of what `time` holds, in another offset.
        None if t.year() < 0 => EARLIEST,
        None => LATEST,
    }
}

/// Unix milliseconds, the storage form of every instant: rounded down (as
/// [`at_storage_precision`]) and taken into the writable range ([`clamp`]).
pub fn to_millis(t: OffsetDateTime) -> i64 {
    // ±10^4 years are ~3·10^14 ms: the narrowing cannot lose anything.
    clamp(t).unix_timestamp_nanos().div_euclid(1_000_000) as i64
}

/// `t` rounded down to the whole millisecond, the precision the ledger stores.
pub fn at_storage_precision(t: OffsetDateTime) -> OffsetDateTime {
    let ns = t.nanosecond();
    t.replace_nanosecond(ns - ns % 1_000_000).unwrap_or(t)
}

/// An instant as the API and the event log write it (RFC 3339, UTC), taken into the writable
/// range first, so it always has a text.
pub fn rfc3339(t: OffsetDateTime) -> String {
    let t = clamp(t);
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| {
            // Unreachable for a clamped UTC instant; spelled out rather than left empty.
            format!(
                "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
                t.year(),
                u8::from(t.month()),
                t.day(),
                t.hour(),
                t.minute(),
                t.second()
            )
        })
}

/// A stored instant, `None` when `ms` is outside what the ledger stores (a corrupt value).
pub fn try_from_millis(ms: i64) -> Option<OffsetDateTime> {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .ok()
        .filter(|t| (EARLIEST..=LATEST).contains(t))
}

/// An instant from milliseconds this process made with [`to_millis`] (always in range): any
/// other value is taken to the nearest end of the range, never to a made-up instant.
pub fn from_millis(ms: i64) -> OffsetDateTime {
    try_from_millis(ms).unwrap_or(if ms < 0 { EARLIEST } else { LATEST })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instants_round_trip_through_storage() {
        let t = datetime!(2030-01-01 10:00:00.123456 UTC);
        assert_eq!(
            from_millis(to_millis(t)),
            datetime!(2030-01-01 10:00:00.123 UTC)
        );
        assert_eq!(try_from_millis(to_millis(t)), Some(at_storage_precision(t)));
        let before_1970 = datetime!(1969-12-31 23:59:59.9995 UTC);
        assert_eq!(
            from_millis(to_millis(before_1970)),
            at_storage_precision(before_1970)
        );
    }

    #[test]
    fn the_edges_are_clamped_not_lost() {
        let past = datetime!(-9999-01-01 00:00 UTC);
        let future = datetime!(9999-12-31 23:59:59.999999999 UTC);
        assert_eq!(from_millis(to_millis(past)), EARLIEST);
        assert_eq!(from_millis(to_millis(future)), LATEST);
        assert_eq!(rfc3339(past), "0000-01-01T00:00:00Z");
        assert_eq!(rfc3339(future), "9999-12-31T23:59:59.999Z");
        let east = datetime!(9999-12-31 23:59:59 UTC).to_offset(time::macros::offset!(-5));
        assert_eq!(rfc3339(east), "9999-12-31T23:59:59Z");
        let far_east = OffsetDateTime::new_in_offset(
            time::macros::date!(9999 - 12 - 31),
            time::macros::time!(23:00),
            time::macros::offset!(-5),
        );
        assert_eq!(clamp(far_east), LATEST);
    }

    #[test]
    fn a_stored_value_out_of_range_is_explicit() {
        assert_eq!(try_from_millis(i64::MAX), None);
        assert_eq!(try_from_millis(i64::MIN), None);
        assert_eq!(try_from_millis(to_millis(LATEST) + 1), None);
        assert_eq!(from_millis(i64::MAX), LATEST);
        assert_eq!(from_millis(i64::MIN), EARLIEST);
    }
}
