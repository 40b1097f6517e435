//! A charger's local authorization list as the central system keeps it in step: whether the
//! charger holds one (from its configuration snapshot), how long one message and the whole
//! list may be, how a full list is cut into versioned chunks, and what the ledger records of
//! the last sync. Pure rules and plain values: the charger layer sends, the store keeps.

use time::OffsetDateTime;

use super::configuration::ConfigurationSnapshot;

/// What the ledger keeps of a charger's list: the version it last accepted (0: none yet),
/// when, and the charger's last answer (`Accepted`, `Failed`, `NotSupported`,
/// `VersionMismatch`, as OCPP spells them).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalListState {
    pub version: i32,
    /// When the charger last accepted a list (full or differential).
    pub synced_at: Option<OffsetDateTime>,
    pub status: String,
}

/// Whether the charger keeps a local list the server should fill: its snapshot lists
/// `LocalAuthListManagement` among `SupportedFeatureProfiles` and `LocalAuthListEnabled` is not
/// `false`. Unknown (no snapshot, no `SupportedFeatureProfiles`) counts as no: pushing lists at
/// a charger that never said it has one only earns NotSupported answers; the operator can still
/// force a sync.
pub fn holds_local_list(snapshot: Option<&ConfigurationSnapshot>) -> bool {
    let Some(snapshot) = snapshot else {
        return false;
    };
    let supported = value(snapshot, "SupportedFeatureProfiles").is_some_and(|profiles| {
        profiles
            .split(',')
            .any(|p| p.trim().eq_ignore_ascii_case("LocalAuthListManagement"))
    });
    let disabled = value(snapshot, "LocalAuthListEnabled")
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("false"));
    supported && !disabled
}

/// How many entries one SendLocalList may carry (`SendLocalListMaxLength`) and the list may
/// hold (`LocalAuthListMaxLength`); `None` when the charger does not say.
pub fn limits(snapshot: Option<&ConfigurationSnapshot>) -> (Option<usize>, Option<usize>) {
    let read = |key: &str| {
        snapshot
            .and_then(|s| value(s, key))
            .and_then(|v| v.trim().parse::<usize>().ok())
            .filter(|n| *n > 0)
    };
    (
        read("SendLocalListMaxLength"),
        read("LocalAuthListMaxLength"),
    )
}

fn value<'s>(snapshot: &'s ConfigurationSnapshot, key: &str) -> Option<&'s str> {
    snapshot
        .keys
        .iter()
        .find(|k| k.key.eq_ignore_ascii_case(key))
        .and_then(|k| k.value.as_deref())
}

/// How many messages `entries` take at `per_message` each (one at least: an empty Full list
/// is still sent, it clears the charger's).
pub fn chunk_count(entries: usize, per_message: Option<usize>) -> usize {
    let per = per_message.unwrap_or(entries.max(1)).max(1);
    entries.div_ceil(per).max(1)
}

/// `entries` cut into messages of at most `per_message`, each under a version one greater than
/// the one before; the last is `last_at_least`, or the message count when that is smaller
/// (versions stay ≥ 1). A full list sends the first as `Full` and the rest as Differential
/// additions. Returns `(version, range of entries)` per message.
pub fn chunks(
    entries: usize,
    last_at_least: i32,
    per_message: Option<usize>,
) -> Vec<(i32, std::ops::Range<usize>)> {
    let per = per_message.unwrap_or(entries.max(1)).max(1);
    let count = chunk_count(entries, per_message);
    let count_i32 = i32::try_from(count).unwrap_or(i32::MAX);
    let last = last_at_least.max(count_i32);
    (0..count)
        .map(|i| {
            let from_end = i32::try_from(count - 1 - i).unwrap_or(i32::MAX);
            let start = i * per;
            (
                last.saturating_sub(from_end).max(1),
                start..(start + per).min(entries),
            )
        })
        .collect()
}

/// The version the last of `count` differential messages is sent under: the ledger's list
/// version, and far enough above what the charger holds that the first is newer than its list
/// (OCPP answers VersionMismatch to a differential not newer).
pub fn differential_version(ledger: i32, charger_holds: i32, count: usize) -> i32 {
    let count = i32::try_from(count).unwrap_or(i32::MAX);
    ledger.max(charger_holds.saturating_add(count))
}

/// The ledger's list version from the last customer change's event number (a 64-bit `seq`
/// clamped into OCPP's 32-bit listVersion).
pub fn list_version(seq: i64) -> i32 {
    i32::try_from(seq.max(1)).unwrap_or(i32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::configuration::ConfigurationKey;

    fn snapshot(keys: &[(&str, &str)]) -> ConfigurationSnapshot {
        ConfigurationSnapshot {
            fetched_at: OffsetDateTime::UNIX_EPOCH,
            keys: keys
                .iter()
                .map(|(k, v)| ConfigurationKey {
                    key: k.to_string(),
                    value: Some(v.to_string()),
                    readonly: true,
                })
                .collect(),
            unknown_keys: vec![],
        }
    }

    #[test]
    fn a_list_is_held_only_where_the_profile_is_said_and_not_disabled() {
        assert!(!holds_local_list(None));
        assert!(!holds_local_list(Some(&snapshot(&[]))));
        let both = "Core, LocalAuthListManagement,Reservation";
        assert!(holds_local_list(Some(&snapshot(&[(
            "SupportedFeatureProfiles",
            both
        )]))));
        assert!(!holds_local_list(Some(&snapshot(&[
            ("SupportedFeatureProfiles", both),
            ("LocalAuthListEnabled", "FALSE"),
        ]))));
        assert!(!holds_local_list(Some(&snapshot(&[(
            "SupportedFeatureProfiles",
            "Core"
        )]))));
    }

    #[test]
    fn limits_are_read_when_positive_numbers() {
        let s = snapshot(&[
            ("SendLocalListMaxLength", "2"),
            ("LocalAuthListMaxLength", "x"),
        ]);
        assert_eq!(limits(Some(&s)), (Some(2), None));
        assert_eq!(limits(None), (None, None));
    }

    #[test]
    fn a_full_list_is_cut_into_chunks_ending_at_the_version() {
        assert_eq!(
            chunks(5, 40, Some(2)),
            vec![(38, 0..2), (39, 2..4), (40, 4..5)]
        );
        assert_eq!(chunks(0, 7, Some(2)), vec![(7, 0..0)]);
        assert_eq!(chunks(3, 7, None), vec![(7, 0..3)]);
        // Fewer versions than chunks: counted from 1.
        assert_eq!(chunks(4, 1, Some(1)).first(), Some(&(1, 0..1)));
        assert_eq!(chunks(4, 1, Some(1)).last(), Some(&(4, 3..4)));
        assert_eq!(differential_version(10, 12, 1), 13);
        assert_eq!(differential_version(10, 3, 2), 10);
        assert_eq!(differential_version(10, 9, 3), 12);
        assert_eq!(list_version(i64::MAX), i32::MAX);
    }
}
