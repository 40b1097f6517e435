//! Fleet load over time, for the console's chart: every two seconds the sampler reads the
//! running transactions and turns the change of each one's meter (from MeterValues) into kW;
//! the sum is kept for the last hour in memory. A transaction with one reading so far counts at
//! its average since the start. The same pass keeps each running transaction's readings (the
//! ledger keeps only the latest), for the charger page's energy chart, thinned to at most
//! [`SERIES_POINTS`] each and dropped when the transaction ends. The fleet's energy per day is
//! summed from the ledger's transactions on demand and cached for [`DAYS_FRESH`]. It stops with
//! the server; it writes nothing.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use time::OffsetDateTime;

use super::Console;
use crate::booking::store::StoreError;
use crate::domain::transaction::{RunningMeter, TransactionFilter};

pub const SAMPLE_EVERY: Duration = Duration::from_secs(2);
/// One hour of samples.
const KEEP: usize = 1800;
/// Running transactions read per sample.
const MAX_RUNNING: u32 = 10_000;

#[derive(Debug, Clone, Copy)]
pub struct Sample {
    pub at: OffsetDateTime,
    pub kw: f64,
    pub charging: usize,
}

/// Readings kept per running transaction: when full, every other one is dropped, so the
/// chart keeps its whole span at half the detail.
pub const SERIES_POINTS: usize = 240;
/// Days the fleet energy chart shows, today included.
pub const DAYS: usize = 14;
/// How long a fleet energy sum is reused before the ledger is read again.
const DAYS_FRESH: Duration = Duration::from_secs(5);
/// Transactions read at most for one fleet energy sum (newest first).
const DAYS_MAX_READ: usize = 200_000;

/// Samples, oldest first; the mutexes are held only to push or copy, never across an `.await`.
#[derive(Default)]
pub struct LoadHistory {
    samples: Mutex<VecDeque<Sample>>,
    /// Meter readings (at, Wh register) of each running transaction, oldest first.
    series: Mutex<HashMap<i32, Vec<(OffsetDateTime, i64)>>>,
    /// The last fleet energy sum and when it was made.
    days: Mutex<Option<(std::time::Instant, EnergyDays)>>,
}

/// Energy in Wh per UTC day, oldest first.
type EnergyDays = Vec<(time::Date, i64)>;

impl LoadHistory {
    pub fn snapshot(&self) -> Vec<Sample> {
        let s = self.samples.lock().unwrap_or_else(|p| p.into_inner());
        s.iter().copied().collect()
    }

    /// The readings kept for transaction `id` (register Wh), oldest first.
    pub fn series(&self, id: i32) -> Vec<(OffsetDateTime, i64)> {
        let s = self.series.lock().unwrap_or_else(|p| p.into_inner());
        s.get(&id).cloned().unwrap_or_default()
    }

    fn keep_readings(&self, running: &[RunningMeter]) {
        // A set, not a scan of `running` per kept series: with 7,000 transactions running the
        // scan was 49 million comparisons every sample, 50 ms in which the runtime's one
        // thread served nothing else (every writer round in flight then held the ledger 50 ms).
        let live: HashSet<i32> = running.iter().map(|t| t.id).collect();
        let mut s = self.series.lock().unwrap_or_else(|p| p.into_inner());
        s.retain(|id, _| live.contains(id));
        for t in running {
            let (Some(wh), Some(at)) = (t.last_meter_wh, t.last_meter_at) else {
                continue;
            };
            let points = s.entry(t.id).or_default();
            if points.last().is_some_and(|&(last, _)| last >= at) {
                continue;
            }
            if points.len() >= SERIES_POINTS {
                thin(points);
            }
            points.push((at, wh));
        }
    }

    fn push(&self, sample: Sample) {
        let mut s = self.samples.lock().unwrap_or_else(|p| p.into_inner());
        if s.len() >= KEEP {
            s.pop_front();
        }
        s.push_back(sample);
    }
}

/// Meter readings seen per transaction: (Wh, at).
type Seen = HashMap<i32, (i64, OffsetDateTime, f64)>;

pub fn start_sampler(console: Arc<Console>) {
    // Built outside a runtime (some tests build only the router): then there is no chart.
    let Ok(rt) = tokio::runtime::Handle::try_current() else {
        return;
    };
    rt.spawn(async move {
        let mut seen: Seen = HashMap::new();
        let mut tick = tokio::time::interval(SAMPLE_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = console.api.central.shutdown.cancelled() => return,
                _ = tick.tick() => {}
            }
            if let Some(sample) = sample(&console, &mut seen).await {
                console.load.push(sample);
            }
        }
    });
}

async fn sample(console: &Console, seen: &mut Seen) -> Option<Sample> {
    let running = console
        .api
        .central
        .store
        .running_meters(MAX_RUNNING)
        .await
        .map_err(|e| tracing::warn!(error = %e, "console load sample failed"))
        .ok()?;
    let mut next: Seen = HashMap::with_capacity(running.len());
    let mut total = 0.0;
    for t in &running {
        let (Some(wh), Some(at)) = (t.last_meter_wh, t.last_meter_at) else {
            continue;
        };
        let kw = match seen.get(&t.id) {
            Some(&(_, prev_at, prev_kw)) if prev_at == at => prev_kw,
            Some(&(prev_wh, prev_at, _)) => rate_kw(prev_wh, prev_at, wh, at),
            None => rate_kw(t.meter_start_wh, t.started_at, wh, at),
        };
        total += kw;
        next.insert(t.id, (wh, at, kw));
    }
    *seen = next;
    console.load.keep_readings(&running);
    Some(Sample {
        at: OffsetDateTime::now_utc(),
        kw: total,
        charging: running.len(),
    })
}

/// Drops every other reading, keeping the last.
fn thin(points: &mut Vec<(OffsetDateTime, i64)>) {
    let last = points.last().copied();
    let mut i = 0;
    points.retain(|_| {
        i += 1;
        i % 2 == 1
    });
    if let Some(l) = last
        && points.last() != Some(&l)
    {
        points.push(l);
    }
}

/// The fleet's energy per UTC day for the last [`DAYS`] days (oldest first, today last): each
/// transaction's energy so far counts on the day it started. Reused for [`DAYS_FRESH`].
pub async fn energy_per_day(console: &Console) -> Result<Vec<(time::Date, i64)>, StoreError> {
    {
        let d = console.load.days.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((at, days)) = d.as_ref()
            && at.elapsed() < DAYS_FRESH
        {
            return Ok(days.clone());
        }
    }
    let today = OffsetDateTime::now_utc().date();
    let mut days: Vec<(time::Date, i64)> = Vec::with_capacity(DAYS);
    let mut d = today;
    for _ in 0..DAYS {
        days.push((d, 0));
        match d.previous_day() {
            Some(p) => d = p,
            None => break,
        }
    }
    days.reverse();
    let Some(&(first, _)) = days.first() else {
        return Ok(days);
    };
    let since = first.midnight().assume_utc();
    let mut after = None;
    let mut read = 0;
    'pages: loop {
        let page = console
            .api
            .central
            .store
            .transactions(&TransactionFilter {
                after,
                limit: 1000,
                ..Default::default()
            })
            .await?;
        for t in &page {
            // Newest first by id, and ids follow the server's clock: once one was created
            // before the window, the rest were too.
            if t.created_at < since {
                break 'pages;
            }
            let wh = t.energy_wh.unwrap_or(0).max(0);
            if let Some(slot) = days
                .iter_mut()
                .find(|(d, _)| *d == t.started_at.to_offset(time::UtcOffset::UTC).date())
            {
                slot.1 = slot.1.saturating_add(wh);
            }
        }
        read += page.len();
        after = page.last().map(|t| t.id);
        if page.len() < 1000 || after.is_none() || read >= DAYS_MAX_READ {
            break;
        }
    }
    let mut d = console.load.days.lock().unwrap_or_else(|p| p.into_inner());
    *d = Some((std::time::Instant::now(), days.clone()));
    Ok(days)
}

/// Average power between two meter readings; 0 when time did not advance or the meter went back.
pub fn rate_kw(wh0: i64, t0: OffsetDateTime, wh1: i64, t1: OffsetDateTime) -> f64 {
    let hours = (t1 - t0).as_seconds_f64() / 3600.0;
    let wh = wh1.saturating_sub(wh0);
    if hours <= 0.0 || wh <= 0 {
        return 0.0;
    }
    wh as f64 / hours / 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn power_from_two_readings() {
        let t0 = datetime!(2026-01-01 10:00 UTC);
        let t1 = datetime!(2026-01-01 10:30 UTC);
        assert!((rate_kw(1000, t0, 4700, t1) - 7.4).abs() < 1e-9);
        assert_eq!(rate_kw(5000, t0, 4000, t1), 0.0);
        assert_eq!(rate_kw(1000, t1, 2000, t1), 0.0);
    }

    #[test]
    fn thinning_keeps_the_span() {
        let t0 = datetime!(2026-01-01 10:00 UTC);
        let mut points: Vec<_> = (0..10)
            .map(|i| (t0 + time::Duration::minutes(i), i * 100))
            .collect();
        thin(&mut points);
        assert_eq!(points.first(), Some(&(t0, 0)));
        assert_eq!(points.last(), Some(&(t0 + time::Duration::minutes(9), 900)));
        assert_eq!(points.len(), 6);
    }
}
