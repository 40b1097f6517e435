//! Fleet load over time, for the console's chart: every two seconds the sampler reads the
//! running transactions and turns the change of each one's meter (from MeterValues) into kW;
//! the sum is kept for the last hour in memory. A transaction with one reading so far counts at
//! its average since the start. It stops with the server; it writes nothing.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use time::OffsetDateTime;

use super::Console;
use crate::domain::transaction::{TransactionFilter, TransactionStatus};

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

/// Samples, oldest first; the mutex is held only to push or copy, never across an `.await`.
#[derive(Default)]
pub struct LoadHistory {
    samples: Mutex<VecDeque<Sample>>,
}

impl LoadHistory {
    pub fn snapshot(&self) -> Vec<Sample> {
        let s = self.samples.lock().unwrap_or_else(|p| p.into_inner());
        s.iter().copied().collect()
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
        .transactions(&TransactionFilter {
            status: Some(TransactionStatus::Active),
            limit: MAX_RUNNING,
            ..Default::default()
        })
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
    Some(Sample {
        at: OffsetDateTime::now_utc(),
        kw: total,
        charging: running.len(),
    })
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
}
