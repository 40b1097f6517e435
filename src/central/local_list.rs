//! Chargers' local authorization lists kept in step with the ledger's tags, so drivers can
//! start while a charger is offline and a blocked card is refused there too. A charger that
//! holds a list (see `domain::local_list::holds_local_list`) is asked GetLocalListVersion after
//! each accepted Boot and gets the full list (SendLocalList Full, then Differential chunks within
//! its `SendLocalListMaxLength`) when it is behind; every customer change in the log then
//! reaches it as a Differential update (a removed tag sent without idTagInfo). The list version
//! is the seq of the last customer change, so "behind" is a comparison with the ledger.
//!
//! One sync task per charger at a time: work asked while it runs is merged into what it does
//! next (a burst of changes is one message). It decides nothing about tags (their verdicts are
//! the domain's) and owns no REST.

use std::collections::{BTreeMap, HashMap};
use std::mem;
use std::sync::{Arc, Mutex};

use dashmap::DashSet;
use time::OffsetDateTime;
use tracing::{debug, error, info, warn};

use super::{CallFailure, Central};
use crate::booking::store::StoreError;
use crate::domain::ChargeBoxId;
use crate::domain::customer::TagAuth;
use crate::domain::event::{Event, kind};
use crate::domain::instant::{from_millis, to_millis};
use crate::domain::local_list::{self, LocalListState};
use crate::ocpp::v16::ErrorCode;
use crate::ocpp::v16::messages::{
    AuthorizationData, GetLocalListVersion, SendLocalList, UpdateStatus, UpdateType,
};
use crate::ocpp::v16::types::IdToken;

/// What a charger's sync task still has to do; merged while it runs.
#[derive(Debug, Default)]
struct Want {
    /// Send the whole list (the operator asked, or the charger is behind).
    full: bool,
    /// Ask the charger's version and send the whole list when it is behind (after a Boot).
    check: bool,
    /// Tags changed since: key (lower case) → spelling.
    tags: BTreeMap<String, String>,
}

impl Want {
    fn is_empty(&self) -> bool {
        !self.full && !self.check && self.tags.is_empty()
    }
}

/// The sync state shared by the dispatcher (which reports changes) and the sync tasks. The
/// mutexes are held for map updates only, never across `.await`.
#[derive(Default)]
pub struct LocalLists {
    /// A charger has an entry while its sync task runs.
    work: Mutex<HashMap<ChargeBoxId, Want>>,
    /// Chargers that hold the list as last synced by this process: they get the differentials.
    holders: DashSet<ChargeBoxId>,
    /// Each customer's tags (key → spelling) as of the last change seen, so a removed tag or a
    /// deleted customer's tags can be named in the differential. `None` until loaded.
    index: Mutex<Option<HashMap<i64, BTreeMap<String, String>>>>,
}

/// Reads every customer's tags into the index (the dispatcher does it once it started following
/// the log; a change applied before then names only the tags its event shows).
pub async fn load_index(central: &Central) -> Result<(), StoreError> {
    let mut index: HashMap<i64, BTreeMap<String, String>> = HashMap::new();
    for (customer, tag) in central.store.local_list_tags().await? {
        index
            .entry(customer)
            .or_default()
            .insert(tag.id_tag.to_ascii_lowercase(), tag.id_tag);
    }
    *lock(&central.local_lists.index) = Some(index);
    Ok(())
}

/// A charger's Boot was accepted and its configuration is known (read, or kept from before): it
/// is asked which list it holds.
pub(crate) fn booted(central: &Arc<Central>, id: &ChargeBoxId) {
    enqueue(central, id, |w| w.check = true);
}

/// The operator forces the whole list to be sent, whatever the configuration says (the
/// charger's answer is recorded either way).
pub fn force_full(central: &Arc<Central>, id: &ChargeBoxId) {
    enqueue(central, id, |w| w.full = true);
}

/// A customer event from the log: the tags it names (and those the customer had before) go to
/// every charger that holds the list as one differential.
pub(crate) fn customer_changed(central: &Arc<Central>, event: &Event) {
    let Some(customer) = event.customer_id else {
        return;
    };
    let now: BTreeMap<String, String> = if event.kind == kind::CUSTOMER_DELETED {
        BTreeMap::new()
    } else {
        event
            .data
            .get("idTags")
            .and_then(|t| t.as_array())
            .into_iter()
            .flatten()
            .filter_map(|t| t.as_str())
            .map(|t| (t.to_ascii_lowercase(), t.to_owned()))
            .collect()
    };
    let mut changed = now.clone();
    {
        let mut index = lock(&central.local_lists.index);
        if let Some(index) = index.as_mut() {
            let before = if now.is_empty() {
                index.remove(&customer)
            } else {
                index.insert(customer, now)
            };
            changed.extend(before.unwrap_or_default());
        }
    }
    if changed.is_empty() {
        return;
    }
    let holders: Vec<ChargeBoxId> = central
        .local_lists
        .holders
        .iter()
        .map(|h| h.clone())
        .collect();
    for id in holders {
        enqueue(central, &id, |w| w.tags.extend(changed.clone()));
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Merges `add` into the charger's work, starting its task when none runs.
fn enqueue(central: &Arc<Central>, id: &ChargeBoxId, add: impl FnOnce(&mut Want)) {
    {
        let mut work = lock(&central.local_lists.work);
        if let Some(want) = work.get_mut(id) {
            add(want);
            return;
        }
        let mut want = Want::default();
        add(&mut want);
        work.insert(id.clone(), want);
    }
    let (central, id) = (central.clone(), id.clone());
    let tracker = central.tracker.clone();
    tracker.spawn(async move {
        loop {
            let want = {
                let mut work = lock(&central.local_lists.work);
                match work.get_mut(&id) {
                    Some(want) if !want.is_empty() => mem::take(want),
                    _ => {
                        work.remove(&id);
                        return;
                    }
                }
            };
            if central.shutdown.is_cancelled() {
                lock(&central.local_lists.work).remove(&id);
                return;
            }
            if let Err(e) = sync(&central, &id, want).await {
                error!(charger = %id, error = %e, "local list sync could not use the ledger");
            }
        }
    });
}

async fn sync(central: &Central, id: &ChargeBoxId, want: Want) -> Result<(), StoreError> {
    if want.full {
        return send_full(central, id).await;
    }
    if want.check && !check(central, id).await? {
        // Behind or unknown: the whole list, which covers the changed tags too.
        return send_full(central, id).await;
    }
    if !want.tags.is_empty() && central.local_lists.holders.contains(id) {
        send_differential(central, id, want.tags).await?;
    }
    Ok(())
}

/// Whether the charger holds the ledger's current list (`true` too when it keeps none, so
/// nothing is sent).
async fn check(central: &Central, id: &ChargeBoxId) -> Result<bool, StoreError> {
    let snapshot = central.store.configuration(id).await?;
    if !local_list::holds_local_list(snapshot.as_ref()) {
        central.local_lists.holders.remove(id);
        return Ok(true);
    }
    let held = match central.sessions.call(id, &GetLocalListVersion {}).await {
        Ok(answer) => answer.list_version,
        Err(failure) => {
            if let Some(status) = refusal(&failure) {
                record_refusal(central, id, status).await?;
            } else {
                debug!(charger = %id, failure = %failure, "GetLocalListVersion not answered");
            }
            return Ok(true);
        }
    };
    if held < 0 {
        record_refusal(central, id, "NotSupported").await?;
        return Ok(true);
    }
    let stored = central.store.local_list_state(id).await?;
    let current = local_list::list_version(central.store.local_list_version().await?);
    let in_step = stored
        .as_ref()
        .is_some_and(|s| s.status == "Accepted" && s.version == held && s.version >= current);
    if in_step {
        central.local_lists.holders.insert(id.clone());
    }
    debug!(charger = %id, held, current, in_step, "local list version checked");
    Ok(in_step)
}

/// The charger's idTagInfo entry for a tag as the ledger has it now; without idTagInfo (removed)
/// when the tag is gone.
fn entry(spelling: &str, auth: Option<&TagAuth>) -> Option<AuthorizationData> {
    let id_tag = IdToken::new(spelling).ok()?;
    Some(AuthorizationData {
        id_tag,
        id_tag_info: auth.map(|a| super::inbound::tag_info(Some(a), None)),
    })
}

async fn send_full(central: &Central, id: &ChargeBoxId) -> Result<(), StoreError> {
    // A holder from now on, so a change made while the list is read and sent is queued behind
    // it as a differential (a refusal or failure below takes it back out). The version is read
    // first: the tags read after it are at least as new.
    central.local_lists.holders.insert(id.clone());
    let version = local_list::list_version(central.store.local_list_version().await?);
    let snapshot = central.store.configuration(id).await?;
    let (per_message, capacity) = local_list::limits(snapshot.as_ref());
    let mut entries: Vec<AuthorizationData> = central
        .store
        .local_list_tags()
        .await?
        .into_iter()
        .filter_map(|(customer_id, tag)| {
            let auth = TagAuth {
                customer_id,
                status: tag.status,
                expires_at: tag.expires_at,
                parent_id_tag: tag.parent_id_tag,
            };
            entry(&tag.id_tag, Some(&auth))
        })
        .collect();
    if let Some(capacity) = capacity
        && entries.len() > capacity
    {
        warn!(charger = %id, tags = entries.len(), capacity, "local list longer than the charger holds; cut");
        entries.truncate(capacity);
    }
    let plan = local_list::chunks(entries.len(), version, per_message);
    let mut sent_version = None;
    for (i, (v, range)) in plan.into_iter().enumerate() {
        let part = entries[range].to_vec();
        let request = SendLocalList {
            list_version: v,
            local_authorization_list: (!part.is_empty()).then_some(part),
            update_type: if i == 0 {
                UpdateType::Full
            } else {
                UpdateType::Differential
            },
        };
        if !send(central, id, &request).await? {
            return Ok(());
        }
        sent_version = Some(v);
    }
    if let Some(v) = sent_version {
        accepted(central, id, v).await?;
        info!(charger = %id, version = v, tags = entries.len(), "local list sent in full");
    }
    Ok(())
}

async fn send_differential(
    central: &Central,
    id: &ChargeBoxId,
    tags: BTreeMap<String, String>,
) -> Result<(), StoreError> {
    let mut entries = Vec::with_capacity(tags.len());
    for spelling in tags.values() {
        let auth = central.store.id_tag_auth(spelling).await?;
        entries.extend(entry(spelling, auth.as_ref()));
    }
    let snapshot = central.store.configuration(id).await?;
    let (per_message, _) = local_list::limits(snapshot.as_ref());
    let holds = central
        .store
        .local_list_state(id)
        .await?
        .map_or(0, |s| s.version);
    let current = local_list::list_version(central.store.local_list_version().await?);
    let count = local_list::chunk_count(entries.len(), per_message);
    let last = local_list::differential_version(current, holds, count);
    for (v, range) in local_list::chunks(entries.len(), last, per_message) {
        let request = SendLocalList {
            list_version: v,
            local_authorization_list: Some(entries[range].to_vec()),
            update_type: UpdateType::Differential,
        };
        match central.sessions.call(id, &request).await {
            Ok(answer) if answer.status == UpdateStatus::VersionMismatch => {
                // The charger's list is not the one we think: start it over.
                info!(charger = %id, "differential refused as VersionMismatch; sending in full");
                return send_full(central, id).await;
            }
            Ok(answer) if answer.status != UpdateStatus::Accepted => {
                record_refusal(central, id, answer.status.as_str()).await?;
                return Ok(());
            }
            Ok(_) => {}
            Err(failure) => {
                failed(central, id, &failure).await?;
                return Ok(());
            }
        }
    }
    accepted(central, id, last).await?;
    debug!(charger = %id, version = last, tags = entries.len(), "local list differential sent");
    Ok(())
}

/// Sends one message; `false` (with the outcome recorded) unless it was accepted.
async fn send(
    central: &Central,
    id: &ChargeBoxId,
    request: &SendLocalList,
) -> Result<bool, StoreError> {
    match central.sessions.call(id, request).await {
        Ok(answer) if answer.status == UpdateStatus::Accepted => Ok(true),
        Ok(answer) => {
            record_refusal(central, id, answer.status.as_str()).await?;
            Ok(false)
        }
        Err(failure) => {
            failed(central, id, &failure).await?;
            Ok(false)
        }
    }
}

/// A charger that says it has no list (a CALLERROR NotSupported/NotImplemented) or could not
/// take it: the status to record.
fn refusal(failure: &CallFailure) -> Option<&'static str> {
    match failure {
        CallFailure::CallError {
            code: ErrorCode::NotSupported | ErrorCode::NotImplemented,
            ..
        } => Some("NotSupported"),
        CallFailure::CallError { .. } | CallFailure::BadResponse { .. } => Some("Failed"),
        _ => None,
    }
}

async fn failed(
    central: &Central,
    id: &ChargeBoxId,
    failure: &CallFailure,
) -> Result<(), StoreError> {
    match refusal(failure) {
        Some(status) => record_refusal(central, id, status).await,
        // Gone or not answering: it is asked again after its next Boot.
        None => {
            central.local_lists.holders.remove(id);
            debug!(charger = %id, failure = %failure, "local list not delivered");
            Ok(())
        }
    }
}

async fn accepted(central: &Central, id: &ChargeBoxId, version: i32) -> Result<(), StoreError> {
    let now = from_millis(to_millis(OffsetDateTime::now_utc()));
    central
        .store
        .save_local_list_state(
            id,
            &LocalListState {
                version,
                synced_at: Some(now),
                status: "Accepted".into(),
            },
        )
        .await?;
    central.local_lists.holders.insert(id.clone());
    Ok(())
}

/// The charger refused: recorded, the version it last accepted kept, no more differentials.
async fn record_refusal(
    central: &Central,
    id: &ChargeBoxId,
    status: &str,
) -> Result<(), StoreError> {
    central.local_lists.holders.remove(id);
    let before = central.store.local_list_state(id).await?;
    warn!(charger = %id, status, "local list refused");
    central
        .store
        .save_local_list_state(
            id,
            &LocalListState {
                version: before.as_ref().map_or(0, |s| s.version),
                synced_at: before.and_then(|s| s.synced_at),
                status: status.to_owned(),
            },
        )
        .await
}
