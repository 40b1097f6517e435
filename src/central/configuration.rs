//! Each charger's configuration as the central system knows it: read with GetConfiguration
//! (all keys) after the first Boot this process accepts from a charger and on demand, kept as a
//! snapshot in the ledger; a ChangeConfiguration the charger accepts updates it and is logged.
//! Calls go through the registry like every other; this module holds no socket and decides
//! nothing about the charger's keys (the fleet's wishes are `policy`'s).

use std::sync::Arc;

use dashmap::DashSet;
use time::OffsetDateTime;
use tracing::{debug, error, warn};

use super::{CallFailure, Central};
use crate::booking::store::StoreError;
use crate::domain::ChargeBoxId;
use crate::domain::configuration::{ConfigurationChange, ConfigurationKey, ConfigurationSnapshot};
use crate::domain::instant::{from_millis, to_millis};
use crate::ocpp::v16::messages::{
    ChangeConfiguration, ChangeConfigurationResponse, GetConfiguration, GetConfigurationResponse,
};
use crate::ocpp::v16::types::ConfigurationStatus;

/// The chargers whose configuration this process has read (or is reading) since it started.
pub struct Configurations {
    read: DashSet<ChargeBoxId>,
    /// Bounds the after-boot work (configuration read and save, local list check, policy) in
    /// flight at once. After a reconnect storm thousands of chargers boot together; unbounded,
    /// their follow-ups took every database connection and the Boots themselves, which need one
    /// read each to answer, waited seconds behind them.
    after_boot: tokio::sync::Semaphore,
}

/// After-boot follow-ups in flight per node.
const AFTER_BOOT_IN_FLIGHT: usize = 16;

impl Default for Configurations {
    fn default() -> Self {
        Configurations {
            read: DashSet::new(),
            after_boot: tokio::sync::Semaphore::new(AFTER_BOOT_IN_FLIGHT),
        }
    }
}

/// Why a configuration could not be read.
#[derive(Debug, thiserror::Error)]
pub enum RefreshError {
    #[error(transparent)]
    Call(#[from] CallFailure),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Reads the charger's whole configuration now and stores it as its snapshot.
pub async fn refresh(
    central: &Central,
    id: &ChargeBoxId,
) -> Result<ConfigurationSnapshot, RefreshError> {
    let answer = central
        .sessions
        .call(id, &GetConfiguration::default())
        .await?;
    // To the millisecond, as the ledger keeps instants: the answer equals what is read back.
    let now = from_millis(to_millis(OffsetDateTime::now_utc()));
    let snapshot = snapshot_of(answer, now);
    central.store.save_configuration(id, &snapshot).await?;
    Ok(snapshot)
}

/// A charger's Boot was accepted: the first time in this process, its configuration is read in
/// the background (queued behind the Boot answer, like every call to it); a read that fails is
/// tried again at the charger's next Boot. Then, at every Boot, its local list is checked and
/// the fleet's configuration policy is enforced against what is known of it (`policy`).
pub(crate) fn booted(central: &Arc<Central>, id: &ChargeBoxId) {
    let on_boot = central.settings.read_configuration_on_boot;
    let read = on_boot && central.configurations.read.insert(id.clone());
    let (central, id) = (central.clone(), id.clone());
    let tracker = central.tracker.clone();
    tracker.spawn(async move {
        // Never closed; a failure would only mean running unbounded.
        let _turn = central.configurations.after_boot.acquire().await.ok();
        let snapshot = if read {
            match refresh(&central, &id).await {
                Ok(snapshot) => {
                    debug!(charger = %id, keys = snapshot.keys.len(), "configuration read");
                    Some(snapshot)
                }
                Err(e) => {
                    central.configurations.read.remove(&id);
                    warn!(charger = %id, error = %e, "configuration not read after boot");
                    None
                }
            }
        } else {
            None
        };
        // The local list is judged on the configuration, so it follows the read (and, like it,
        // is left to the operator when reading on Boot is off).
        if on_boot {
            super::local_list::booted(&central, &id);
        }
        super::policy::after_boot(&central, &id, snapshot).await;
    });
}

/// Records a ChangeConfiguration the charger answered: `Accepted` updates the snapshot, and
/// that and `RebootRequired` (the value is stored, in effect after a reboot) are logged as
/// `ConfigurationChanged`. A refusal changes nothing. The charger's answer stands even when
/// the ledger cannot record it, so the failure is logged here rather than returned.
pub async fn record_change(
    central: &Central,
    id: &ChargeBoxId,
    request: &ChangeConfiguration,
    answer: &ChangeConfigurationResponse,
) {
    let changed = matches!(
        answer.status,
        ConfigurationStatus::Accepted | ConfigurationStatus::RebootRequired
    );
    if !changed {
        return;
    }
    let change = ConfigurationChange {
        key: request.key.to_string(),
        value: request.value.to_string(),
        status: answer.status.as_str().to_string(),
    };
    if let Err(e) = central.store.record_configuration_change(id, &change).await {
        error!(charger = %id, key = %change.key, error = %e, "configuration change not recorded");
    }
}

/// The answer as a snapshot taken `at`.
pub fn snapshot_of(answer: GetConfigurationResponse, at: OffsetDateTime) -> ConfigurationSnapshot {
    ConfigurationSnapshot {
        fetched_at: at,
        keys: answer
            .configuration_key
            .unwrap_or_default()
            .into_iter()
            .map(|k| ConfigurationKey {
                key: k.key.into_string(),
                value: k.value.map(|v| v.into_string()),
                readonly: k.readonly,
            })
            .collect(),
        unknown_keys: answer
            .unknown_key
            .unwrap_or_default()
            .into_iter()
            .map(|k| k.into_string())
            .collect(),
    }
}
