//! A charger's configuration as the central system last read it (GetConfiguration): the keys
//! with their values and whether they are read-only, the keys it did not know, and when. Also
//! the change the server made (ChangeConfiguration) as the ledger logs it. Plain values: the
//! store keeps them, the charger layer reads and changes them.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

/// One configuration key as the charger reported it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConfigurationKey {
    pub key: String,
    /// Absent when the charger reports no value (allowed by OCPP for write-only keys).
    pub value: Option<String>,
    pub readonly: bool,
}

/// The last configuration read from a charger.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigurationSnapshot {
    pub fetched_at: OffsetDateTime,
    pub keys: Vec<ConfigurationKey>,
    /// Keys asked for that the charger does not know (empty when all keys were asked for).
    pub unknown_keys: Vec<String>,
}

impl ConfigurationSnapshot {
    /// A boolean key's value (`true`/`false`, any case); `None` when absent or not a boolean.
    pub fn flag(&self, key: &str) -> Option<bool> {
        let value = self
            .keys
            .iter()
            .find(|k| k.key.eq_ignore_ascii_case(key))?
            .value
            .as_deref()?
            .trim();
        if value.eq_ignore_ascii_case("true") {
            Some(true)
        } else if value.eq_ignore_ascii_case("false") {
            Some(false)
        } else {
            None
        }
    }

    /// Records a value the charger accepted for `key`: the entry's value (keys compare
    /// case-insensitively, as OCPP's CiString does), or a new writable entry when the snapshot
    /// did not list the key. The time of the snapshot stays that of the read.
    pub fn set(&mut self, key: &str, value: &str) {
        match self
            .keys
            .iter_mut()
            .find(|k| k.key.eq_ignore_ascii_case(key))
        {
            Some(entry) => entry.value = Some(value.to_string()),
            None => self.keys.push(ConfigurationKey {
                key: key.to_string(),
                value: Some(value.to_string()),
                readonly: false,
            }),
        }
        self.unknown_keys.retain(|k| !k.eq_ignore_ascii_case(key));
    }
}

/// A ChangeConfiguration the server sent and the charger accepted (`status` is its answer:
/// `Accepted`, or `RebootRequired` when the value takes effect after a reboot).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigurationChange {
    pub key: String,
    pub value: String,
    pub status: String,
}

impl ConfigurationChange {
    /// Whether the charger holds the new value now (and the snapshot should say so).
    pub fn in_effect(&self) -> bool {
        self.status == "Accepted"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_change_updates_the_key_whatever_its_case() {
        let mut snapshot = ConfigurationSnapshot {
            fetched_at: OffsetDateTime::UNIX_EPOCH,
            keys: vec![ConfigurationKey {
                key: "HeartbeatInterval".into(),
                value: Some("300".into()),
                readonly: false,
            }],
            unknown_keys: vec!["VendorKey".into()],
        };
        snapshot.set("heartbeatinterval", "60");
        assert_eq!(snapshot.keys[0].value.as_deref(), Some("60"));
        snapshot.set("VENDORKEY", "on");
        assert_eq!(snapshot.keys.len(), 2);
        assert!(snapshot.unknown_keys.is_empty());
    }
}
