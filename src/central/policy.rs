//! The fleet's configuration key policy (`PUT /fleet/configuration-policy`): the value each key
//! should have on every charger. After every accepted Boot, and for booted chargers at once when
//! the policy changes, each key whose value in the charger's snapshot differs is sent as
//! ChangeConfiguration; what each charger answered is kept per key, in memory on this node
//! (`outcome`). The policy itself lives in the ledger's database; this node re-reads it at
//! most every [`CACHE_FOR`], so a change made on another node reaches its chargers' next Boot.
//! It decides nothing about bookings and holds no socket.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use dashmap::DashMap;
use time::OffsetDateTime;
use tracing::{debug, warn};

use super::{CallFailure, Central, configuration};
use crate::booking::store::StoreError;
use crate::domain::ChargeBoxId;
use crate::domain::configuration::ConfigurationSnapshot;
use crate::ocpp::v16::messages::ChangeConfiguration;
use crate::ocpp::v16::types::{CiString50, CiString500, ConfigurationStatus};

/// How long the policy read from the database is trusted before it is read again.
pub const CACHE_FOR: Duration = Duration::from_secs(10);

/// Where one policy key stands on one charger.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyState {
    /// The charger holds the value: its snapshot said so, or it answered Accepted.
    Applied,
    /// The charger took the value and applies it at its next reboot.
    RebootRequired,
    /// The charger refused it (Rejected, NotSupported, a CALLERROR, or the key is read-only).
    Rejected,
    /// Not yet: the charger was not reached (offline, or the call failed on the way).
    Pending,
}

impl KeyState {
    pub fn as_str(self) -> &'static str {
        match self {
            KeyState::Applied => "applied",
            KeyState::RebootRequired => "rebootRequired",
            KeyState::Rejected => "rejected",
            KeyState::Pending => "pending",
        }
    }
}

/// What happened when `value` was last enforced for a key on a charger.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyOutcome {
    pub value: String,
    pub state: KeyState,
    /// Why, when it is not plainly applied (the charger's answer, or the call's failure).
    pub detail: Option<String>,
    pub at: OffsetDateTime,
}

/// The policy's keys and values, by key.
pub type PolicyKeys = Arc<Vec<(String, String)>>;

/// The policy as last read, and every charger's outcomes. Guards are never held across
/// `.await`.
#[derive(Default)]
pub struct Policies {
    cached: Mutex<Option<(Instant, PolicyKeys)>>,
    outcomes: DashMap<ChargeBoxId, BTreeMap<String, KeyOutcome>>,
}

impl Policies {
    /// The current policy (key, value), from the cache when it is fresh.
    pub async fn current(
        &self,
        central: &Central,
    ) -> Result<Arc<Vec<(String, String)>>, StoreError> {
        if let Some((at, keys)) = self.cached.lock().expect("policy cache").as_ref()
            && at.elapsed() < CACHE_FOR
        {
            return Ok(keys.clone());
        }
        let keys = Arc::new(central.store.configuration_policy().await?);
        *self.cached.lock().expect("policy cache") = Some((Instant::now(), keys.clone()));
        Ok(keys)
    }

    /// Replaces the policy in the database and in this node's cache.
    pub async fn replace(
        &self,
        central: &Central,
        keys: Vec<(String, String)>,
    ) -> Result<Arc<Vec<(String, String)>>, StoreError> {
        central.store.replace_configuration_policy(&keys).await?;
        let keys = Arc::new(keys);
        *self.cached.lock().expect("policy cache") = Some((Instant::now(), keys.clone()));
        Ok(keys)
    }

    /// What this node last saw for `key` = `value` on the charger; `None`: never tried since
    /// that value was the policy.
    pub fn outcome(&self, id: &ChargeBoxId, key: &str, value: &str) -> Option<KeyOutcome> {
        self.outcomes
            .get(id)
            .and_then(|keys| keys.get(key).cloned())
            .filter(|o| o.value == value)
    }

    pub fn forget(&self, id: &ChargeBoxId) {
        self.outcomes.remove(id);
    }

    fn note(
        &self,
        id: &ChargeBoxId,
        key: &str,
        value: &str,
        state: KeyState,
        detail: Option<String>,
    ) {
        self.outcomes.entry(id.clone()).or_default().insert(
            key.to_string(),
            KeyOutcome {
                value: value.to_string(),
                state,
                detail,
                at: OffsetDateTime::now_utc(),
            },
        );
    }
}

/// After a charger's accepted Boot (and its configuration read, when there was one:
/// `snapshot`): enforce the policy. Without a fresh read the stored snapshot is compared.
pub(crate) async fn after_boot(
    central: &Arc<Central>,
    id: &ChargeBoxId,
    snapshot: Option<ConfigurationSnapshot>,
) {
    let keys = match central.policies.current(central).await {
        Ok(keys) if keys.is_empty() => return,
        Ok(keys) => keys,
        Err(e) => {
            warn!(charger = %id, error = %e, "configuration policy not read; not enforced at this boot");
            return;
        }
    };
    let snapshot = match snapshot {
        Some(s) => Some(s),
        None => central.store.configuration(id).await.unwrap_or_else(|e| {
            warn!(charger = %id, error = %e, "configuration snapshot not read; sending every policy key");
            None
        }),
    };
    enforce(central, id, snapshot.as_ref(), &keys).await;
}

/// Sends ChangeConfiguration for every policy key whose value the snapshot does not show
/// (every key when there is no snapshot), one after the other (the charger takes one CALL at a
/// time anyway), and records each outcome. A read-only key is not sent: it is rejected here.
pub async fn enforce(
    central: &Central,
    id: &ChargeBoxId,
    snapshot: Option<&ConfigurationSnapshot>,
    keys: &[(String, String)],
) {
    for (key, value) in keys {
        let known = snapshot.and_then(|s| s.keys.iter().find(|k| k.key.eq_ignore_ascii_case(key)));
        if let Some(k) = known {
            if k.value.as_deref() == Some(value.as_str()) {
                central
                    .policies
                    .note(id, key, value, KeyState::Applied, None);
                continue;
            }
            if k.readonly {
                let why = Some("the charger reports the key as read-only".to_string());
                central
                    .policies
                    .note(id, key, value, KeyState::Rejected, why);
                continue;
            }
        }
        let (Ok(k), Ok(v)) = (
            CiString50::new(key.as_str()),
            CiString500::new(value.as_str()),
        ) else {
            // The REST layer checks both bounds before a policy is stored.
            central.policies.note(
                id,
                key,
                value,
                KeyState::Rejected,
                Some("does not fit OCPP's bounds".into()),
            );
            continue;
        };
        let request = ChangeConfiguration { key: k, value: v };
        let (state, detail) = match central.sessions.call(id, &request).await {
            Ok(answer) => {
                configuration::record_change(central, id, &request, &answer).await;
                match answer.status {
                    ConfigurationStatus::Accepted => (KeyState::Applied, None),
                    ConfigurationStatus::RebootRequired => (KeyState::RebootRequired, None),
                    other => (
                        KeyState::Rejected,
                        Some(format!("the charger answered {}", other.as_str())),
                    ),
                }
            }
            Err(failure @ (CallFailure::CallError { .. } | CallFailure::BadResponse { .. })) => {
                (KeyState::Rejected, Some(failure.to_string()))
            }
            Err(failure) => (KeyState::Pending, Some(failure.to_string())),
        };
        debug!(charger = %id, key, state = state.as_str(), "configuration policy key");
        central.policies.note(id, key, value, state, detail);
    }
}
