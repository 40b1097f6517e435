//! What connected chargers report (boot info, connector status, last seen), held in memory and
//! written to the store behind the sessions by [`run_flusher`]. Heartbeats and status updates
//! must never wait on the database (design.md), so a session only touches memory: an atomic for
//! "last seen", a short `std::sync::Mutex` for the rest, never held across an `.await`.

use std::collections::HashSet;
use std::sync::atomic::{AtomicI64, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use dashmap::DashMap;
use time::OffsetDateTime;
use tokio_util::sync::CancellationToken;

use crate::booking::store::Store;
use crate::domain::ChargeBoxId;
use crate::domain::charger::{BootInfo, ChargerRecord, ChargerState, ConnectorStatus};
use crate::domain::instant::{from_millis, to_millis};
use crate::ocpp::v16::{Deviation, Rule};
use crate::telemetry::Escaped;

/// One charger's reported state since this process started.
#[derive(Default)]
pub struct ChargerLive {
    last_seen_ms: AtomicI64,
    /// The ledger's connector count as last read (0: not read yet), see `inbound`.
    known_connectors: AtomicU32,
    details: Mutex<Details>,
}

#[derive(Default)]
struct Details {
    boot: Option<(BootInfo, OffsetDateTime)>,
    /// Sorted by connector id. A Vec, not a BTreeMap: a map's first node reserves room for 11
    /// entries (~1.6 KiB here), paid by every charger even with one connector.
    connectors: Vec<ConnectorStatus>,
    /// One entry per (action, rule) seen since this process started; empty (no allocation)
    /// for a charger that keeps to the schemas.
    deviations: Vec<DeviationSeen>,
    /// What changed since the last flush took it: a flush writes only that, not the whole
    /// state (under charging, StatusNotifications would otherwise rewrite the boot details and
    /// every connector each time one connector changed).
    unsaved: Unsaved,
}

/// Parts of a charger's state not yet handed to the store.
#[derive(Default, Clone, Copy)]
struct Unsaved {
    boot: bool,
    /// Bit `n`: connector `n` changed; bit 63 stands for every connector from 63 up.
    connectors: u64,
}

fn connector_bit(connector_id: u32) -> u64 {
    1u64 << connector_id.min(63)
}

/// How often one charger deviated from the schema in one way, since this process started.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviationSeen {
    /// The OCPP action, or `Connect` for the WebSocket upgrade.
    pub action: &'static str,
    pub rule: Rule,
    pub count: u64,
    pub first_seen_at: OffsetDateTime,
    pub last_seen_at: OffsetDateTime,
    /// The latest occurrence's description.
    pub detail: String,
}

impl ChargerLive {
    /// Called for every inbound frame: one relaxed store, nothing else.
    pub fn touch(&self, now: OffsetDateTime) {
        self.last_seen_ms.store(to_millis(now), Ordering::Relaxed);
    }

    pub fn known_connectors(&self) -> u32 {
        self.known_connectors.load(Ordering::Relaxed)
    }

    pub fn set_known_connectors(&self, n: u32) {
        self.known_connectors.store(n, Ordering::Relaxed);
    }

    pub fn last_seen(&self) -> Option<OffsetDateTime> {
        match self.last_seen_ms.load(Ordering::Relaxed) {
            0 => None,
            ms => Some(from_millis(ms)),
        }
    }

    /// The state with what changed since the last call (boot details and connectors only if
    /// they changed; when last seen always).
    fn take_unsaved(&self, id: &ChargeBoxId) -> ChargerState {
        let mut d = self.details.lock().unwrap_or_else(|p| p.into_inner());
        let unsaved = std::mem::take(&mut d.unsaved);
        ChargerState {
            id: id.clone(),
            last_seen_at: self.last_seen(),
            boot: d.boot.clone().filter(|_| unsaved.boot),
            connector_status: d
                .connectors
                .iter()
                .filter(|c| unsaved.connectors & connector_bit(c.connector_id) != 0)
                .cloned()
                .collect(),
        }
    }

    /// A flush of `state` failed: what it carried is unsaved again.
    fn unsaved_again(&self, state: &ChargerState) {
        let mut d = self.details.lock().unwrap_or_else(|p| p.into_inner());
        d.unsaved.boot |= state.boot.is_some();
        for c in &state.connector_status {
            d.unsaved.connectors |= connector_bit(c.connector_id);
        }
    }
}

/// Every charger's live state plus the set whose state changed since the last flush.
#[derive(Default)]
pub struct LiveState {
    chargers: DashMap<ChargeBoxId, Arc<ChargerLive>>,
    dirty: Mutex<HashSet<ChargeBoxId>>,
}

impl LiveState {
    /// The entry a session keeps for its whole life, so its per-frame updates skip the map.
    pub fn entry(&self, id: &ChargeBoxId) -> Arc<ChargerLive> {
        self.chargers.entry(id.clone()).or_default().clone()
    }

    pub fn get(&self, id: &ChargeBoxId) -> Option<Arc<ChargerLive>> {
        self.chargers.get(id).map(|e| e.clone())
    }

    pub fn forget(&self, id: &ChargeBoxId) {
        self.chargers.remove(id);
        self.dirty
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(id);
    }

    /// The ledger's connector count changed (an operator's edit): read it again when needed.
    pub fn forget_connectors(&self, id: &ChargeBoxId) {
        if let Some(live) = self.get(id) {
            live.set_known_connectors(0);
        }
    }

    pub fn mark_dirty(&self, id: &ChargeBoxId) {
        self.dirty
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id.clone());
    }

    pub fn record_boot(&self, id: &ChargeBoxId, live: &ChargerLive, boot: BootInfo) {
        let now = OffsetDateTime::now_utc();
        live.touch(now);
        {
            let mut d = live.details.lock().unwrap_or_else(|p| p.into_inner());
            d.boot = Some((boot, now));
            d.unsaved.boot = true;
        }
        self.mark_dirty(id);
    }

    /// Counts a deviation lenient mode accepted from this charger (in its view and in
    /// `echarging_ocpp_deviations_total`), and logs it at warn the first time this charger shows
    /// it, per action and rule, since the process started.
    pub fn note_deviation(
        &self,
        id: &ChargeBoxId,
        live: &ChargerLive,
        action: &'static str,
        deviation: &Deviation,
    ) {
        let rule = deviation.rule.as_str();
        crate::metrics::ocpp_deviation(action, rule);
        if self.record_deviation(live, action, deviation.rule, &deviation.detail) {
            tracing::warn!(
                charger = %id,
                action,
                rule,
                detail = %Escaped(&deviation.detail),
                "off-spec frame accepted (lenient mode); counted in echarging_ocpp_deviations_total"
            );
        }
    }

    /// Counts one accepted deviation; true when this charger had not shown it before (so the
    /// caller logs it once per charger, action and rule, not once per frame).
    pub fn record_deviation(
        &self,
        live: &ChargerLive,
        action: &'static str,
        rule: Rule,
        detail: &str,
    ) -> bool {
        let now = OffsetDateTime::now_utc();
        let mut d = live.details.lock().unwrap_or_else(|p| p.into_inner());
        match d
            .deviations
            .iter_mut()
            .find(|seen| seen.action == action && seen.rule == rule)
        {
            Some(seen) => {
                seen.count = seen.count.saturating_add(1);
                seen.last_seen_at = now;
                if seen.detail != detail {
                    detail.clone_into(&mut seen.detail);
                }
                false
            }
            None => {
                d.deviations.push(DeviationSeen {
                    action,
                    rule,
                    count: 1,
                    first_seen_at: now,
                    last_seen_at: now,
                    detail: detail.to_owned(),
                });
                true
            }
        }
    }

    /// What this charger sent off-spec since this process started, most frequent first.
    pub fn deviations(&self, id: &ChargeBoxId) -> Vec<DeviationSeen> {
        let Some(live) = self.get(id) else {
            return Vec::new();
        };
        let mut seen = live
            .details
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .deviations
            .clone();
        seen.sort_by(|a, b| b.count.cmp(&a.count).then(a.action.cmp(b.action)));
        seen
    }

    pub fn record_status(&self, id: &ChargeBoxId, live: &ChargerLive, status: ConnectorStatus) {
        {
            let mut d = live.details.lock().unwrap_or_else(|p| p.into_inner());
            d.unsaved.connectors |= connector_bit(status.connector_id);
            match d
                .connectors
                .binary_search_by_key(&status.connector_id, |c| c.connector_id)
            {
                Ok(i) => d.connectors[i] = status,
                Err(i) => d.connectors.insert(i, status),
            }
        }
        self.mark_dirty(id);
    }

    /// The lowest connector (not 0) whose last StatusNotification said Available, if any did.
    pub fn first_available(&self, id: &ChargeBoxId) -> Option<u32> {
        let live = self.get(id)?;
        let d = live.details.lock().unwrap_or_else(|p| p.into_inner());
        d.connectors
            .iter()
            .find(|c| c.connector_id >= 1 && c.status == "Available")
            .map(|c| c.connector_id)
    }

    /// Take the states changed since the last call.
    pub fn drain_dirty(&self) -> Vec<ChargerState> {
        let ids = std::mem::take(&mut *self.dirty.lock().unwrap_or_else(|p| p.into_inner()));
        ids.into_iter()
            .filter_map(|id| self.get(&id).map(|live| live.take_unsaved(&id)))
            .collect()
    }

    /// States a flush could not write: dirty again, with what they carried.
    pub fn retry(&self, states: &[ChargerState]) {
        for s in states {
            if let Some(live) = self.get(&s.id) {
                live.unsaved_again(s);
            }
            self.mark_dirty(&s.id);
        }
    }

    /// Lay the fresher live state over what the store last persisted.
    pub fn overlay(&self, record: &mut ChargerRecord) {
        let Some(live) = self.get(&record.id) else {
            return;
        };
        if let Some(seen) = live.last_seen() {
            record.last_seen_at = Some(record.last_seen_at.map_or(seen, |s| s.max(seen)));
        }
        let d = live.details.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((boot, at)) = &d.boot {
            record.boot = Some(boot.clone());
            record.last_boot_at = Some(*at);
        }
        for status in &d.connectors {
            match record
                .connector_status
                .iter_mut()
                .find(|c| c.connector_id == status.connector_id)
            {
                Some(slot) => *slot = status.clone(),
                None => record.connector_status.push(status.clone()),
            }
        }
        record.connector_status.sort_by_key(|c| c.connector_id);
    }
}

/// Write changed charger state every `interval` until `stop`, then once more.
pub async fn run_flusher(
    live: Arc<LiveState>,
    store: Arc<dyn Store>,
    interval: Duration,
    stop: CancellationToken,
) {
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let stopping = tokio::select! {
            _ = tick.tick() => false,
            _ = stop.cancelled() => true,
        };
        flush(&live, store.as_ref()).await;
        if stopping {
            return;
        }
    }
}

/// Chargers written per transaction. SQLite has one writer: a flush of thousands of chargers
/// in one transaction would hold StartTransaction and bookings behind it for a few hundred
/// milliseconds, so it goes in small transactions the ledger's writes slot in between.
const FLUSH_CHUNK: usize = 64;

/// Write what changed; on failure the states are marked dirty again so the next flush retries.
pub async fn flush(live: &LiveState, store: &dyn Store) {
    let states = live.drain_dirty();
    for chunk in states.chunks(FLUSH_CHUNK) {
        if let Err(e) = store.save_charger_states(chunk).await {
            tracing::warn!(error = %e, count = chunk.len(), "could not persist charger state; will retry");
            live.retry(chunk);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(connector_id: u32, status: &'static str) -> ConnectorStatus {
        ConnectorStatus {
            connector_id,
            status: status.into(),
            error_code: "NoError".into(),
            info: None,
            vendor_error_code: None,
            reported_at: None,
            updated_at: OffsetDateTime::now_utc(),
        }
    }

    fn connectors(s: &ChargerState) -> Vec<(u32, &str)> {
        s.connector_status
            .iter()
            .map(|c| (c.connector_id, c.status.as_ref()))
            .collect()
    }

    /// A flush carries what changed since the last one, and what a failed flush carried comes
    /// back in the next.
    #[test]
    fn a_flush_takes_only_what_changed_and_a_failed_one_is_taken_again() {
        let state = LiveState::default();
        let id = ChargeBoxId::parse("CP-1").unwrap();
        let live = state.entry(&id);
        state.record_boot(
            &id,
            &live,
            BootInfo {
                vendor: "V".into(),
                model: "M".into(),
                ..BootInfo::default()
            },
        );
        state.record_status(&id, &live, status(1, "Available"));
        state.record_status(&id, &live, status(2, "Available"));
        state.record_status(&id, &live, status(70, "Available"));
        let first = state.drain_dirty();
        assert_eq!(first.len(), 1);
        assert!(first[0].boot.is_some());
        assert_eq!(
            connectors(&first[0]),
            [(1, "Available"), (2, "Available"), (70, "Available")]
        );

        state.record_status(&id, &live, status(2, "Charging"));
        let second = state.drain_dirty();
        assert!(second[0].boot.is_none(), "the boot details did not change");
        assert_eq!(connectors(&second[0]), [(2, "Charging")]);

        state.retry(&second);
        let again = state.drain_dirty();
        assert_eq!(connectors(&again[0]), [(2, "Charging")]);
        live.touch(OffsetDateTime::now_utc());
        state.mark_dirty(&id);
        let seen_only = state.drain_dirty();
        assert!(seen_only[0].boot.is_none() && seen_only[0].connector_status.is_empty());
        assert!(seen_only[0].last_seen_at.is_some());
    }
}
