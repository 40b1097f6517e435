//! Round-trip latencies from thousands of charger tasks, without a lock per frame. A
//! 3-significant-digit histogram costs ~100 KiB, far too much per task at 10k+ chargers, so each
//! task keeps a small local batch of samples and merges it into one shared histogram per action
//! under a short lock once per batch (and when the task ends). The lock is never held across
//! an `.await`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use hdrhistogram::Histogram;

/// Samples a task collects before merging them; 64 × 8 bytes per task.
const BATCH: usize = 64;

/// The requests a load run times, and one delay that is not a request of ours.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    BootNotification,
    StatusNotification,
    Heartbeat,
    Authorize,
    StartTransaction,
    MeterValues,
    StopTransaction,
    /// A driver's booking POST, sent until answered (charge mode, --reserve-share).
    Booking,
    /// A driver's booking until its charger holds the reservation: from sending the booking
    /// POST until the central system's ReserveNow was taken (charge mode, --reserve-share).
    BookingToReserveNow,
}

const ACTIONS: usize = 9;

impl Action {
    pub const ALL: [Action; ACTIONS] = [
        Action::BootNotification,
        Action::StatusNotification,
        Action::Heartbeat,
        Action::Authorize,
        Action::StartTransaction,
        Action::MeterValues,
        Action::StopTransaction,
        Action::Booking,
        Action::BookingToReserveNow,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Action::BootNotification => "BootNotification",
            Action::StatusNotification => "StatusNotification",
            Action::Heartbeat => "Heartbeat",
            Action::Authorize => "Authorize",
            Action::StartTransaction => "StartTransaction",
            Action::MeterValues => "MeterValues",
            Action::StopTransaction => "StopTransaction",
            Action::Booking => "booking",
            Action::BookingToReserveNow => "bookingToReserveNow",
        }
    }

    /// The timed action of a charger-initiated CALL, by its OCPP name.
    pub fn from_name(name: &str) -> Option<Action> {
        Action::ALL.into_iter().find(|a| a.name() == name)
    }
}

/// The shared histograms (microseconds, 1 µs to 1 h, 3 significant digits).
pub struct LatencyBook {
    histograms: Mutex<[Histogram<u64>; ACTIONS]>,
    /// Round trips merged so far per action, readable without the lock for progress lines.
    counts: [AtomicU64; ACTIONS],
}

impl LatencyBook {
    pub fn new() -> Arc<LatencyBook> {
        let histogram = || {
            Histogram::new_with_bounds(1, 3_600_000_000, 3)
                .expect("constant histogram bounds are valid")
        };
        Arc::new(LatencyBook {
            histograms: Mutex::new(std::array::from_fn(|_| histogram())),
            counts: std::array::from_fn(|_| AtomicU64::new(0)),
        })
    }

    /// Heartbeat round trips merged so far (lags each task by at most one batch).
    pub fn heartbeats(&self) -> u64 {
        self.count(Action::Heartbeat)
    }

    /// Round trips of `action` merged so far (lags each task by at most one batch).
    pub fn count(&self, action: Action) -> u64 {
        self.counts[action as usize].load(Ordering::Relaxed)
    }

    /// A copy of each action's histogram.
    pub fn snapshot(&self) -> Vec<(Action, Histogram<u64>)> {
        let histograms = self
            .histograms
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        Action::ALL
            .iter()
            .map(|&a| (a, histograms[a as usize].clone()))
            .collect()
    }

    fn merge(&self, samples: &[(Action, u32)]) {
        let mut counts = [0u64; ACTIONS];
        {
            let mut histograms = self
                .histograms
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            for &(action, micros) in samples {
                histograms[action as usize].saturating_record(u64::from(micros).max(1));
                counts[action as usize] += 1;
            }
        }
        for (counter, n) in self.counts.iter().zip(counts) {
            if n > 0 {
                counter.fetch_add(n, Ordering::Relaxed);
            }
        }
    }
}

/// One task's pending samples; merged into the book when full and when dropped.
pub struct LatencyBatch {
    book: Arc<LatencyBook>,
    samples: Vec<(Action, u32)>,
}

impl LatencyBatch {
    pub fn new(book: Arc<LatencyBook>) -> LatencyBatch {
        LatencyBatch {
            book,
            samples: Vec::with_capacity(BATCH),
        }
    }

    pub fn record(&mut self, action: Action, elapsed: Duration) {
        let micros = u32::try_from(elapsed.as_micros()).unwrap_or(u32::MAX);
        self.samples.push((action, micros));
        if self.samples.len() >= BATCH {
            self.flush();
        }
    }

    pub fn flush(&mut self) {
        if !self.samples.is_empty() {
            self.book.merge(&self.samples);
            self.samples.clear();
        }
    }
}

impl Drop for LatencyBatch {
    fn drop(&mut self) {
        self.flush();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_merge_on_fill_and_on_drop() {
        let book = LatencyBook::new();
        let mut batch = LatencyBatch::new(book.clone());
        for ms in 1..=BATCH as u64 {
            batch.record(Action::Heartbeat, Duration::from_millis(ms));
        }
        assert_eq!(book.heartbeats(), BATCH as u64);
        batch.record(Action::BootNotification, Duration::from_millis(5));
        drop(batch);
        let snapshot = book.snapshot();
        assert_eq!(snapshot[0].1.len(), 1);
        assert_eq!(snapshot[2].1.len(), BATCH as u64);
        assert!(snapshot[2].1.max() >= 63_900);
        assert_eq!(book.count(Action::BootNotification), 1);
        assert_eq!(
            Action::from_name("StopTransaction"),
            Some(Action::StopTransaction)
        );
        assert_eq!(Action::from_name("DataTransfer"), None);
    }
}
