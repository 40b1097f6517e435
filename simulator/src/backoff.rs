//! How long a charger waits before each reconnect attempt: exponential backoff with jitter.
//! When a server restarts, every charger loses its socket in the same instant; without jitter
//! they would all come back in the same instant too, and keep doing so. Pure: no clock, no I/O.

use std::time::Duration;

use crate::rng::Rng;

/// Doubling delays from `min` up to `max`, each drawn from the upper half of its ceiling
/// ("equal jitter"): spread out, yet never a retry at once after a failure.
#[derive(Debug, Clone)]
pub struct Backoff {
    min: Duration,
    max: Duration,
    attempt: u32,
    rng: Rng,
}

impl Backoff {
    /// `seed` decorrelates chargers (use the charger's index).
    pub fn new(min: Duration, max: Duration, seed: u64) -> Backoff {
        Backoff {
            min,
            max: max.max(min),
            attempt: 0,
            rng: Rng::new(seed),
        }
    }

    /// The ceiling of attempt `attempt` (0-based): `min · 2^attempt`, at most `max`.
    pub fn ceiling(&self, attempt: u32) -> Duration {
        let factor = 1u32.checked_shl(attempt.min(31)).unwrap_or(u32::MAX);
        self.min
            .checked_mul(factor)
            .unwrap_or(self.max)
            .min(self.max)
    }

    /// The wait before the next attempt, in `[ceiling / 2, ceiling]`.
    pub fn next_delay(&mut self) -> Duration {
        let ceiling = self.ceiling(self.attempt);
        self.attempt = self.attempt.saturating_add(1);
        let half = ceiling / 2;
        half + (ceiling - half).mul_f64(self.rng.unit())
    }

    /// Attempts since the last success.
    pub fn attempts(&self) -> u32 {
        self.attempt
    }

    /// After a successful reconnect: the next outage starts from `min` again.
    pub fn reset(&mut self) {
        self.attempt = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: Duration = Duration::from_millis(500);
    const MAX: Duration = Duration::from_secs(30);

    #[test]
    fn delays_double_within_jittered_bounds_up_to_the_cap() {
        let mut backoff = Backoff::new(MIN, MAX, 42);
        for attempt in 0..40 {
            let ceiling = backoff.ceiling(attempt);
            let expected = MIN
                .checked_mul(1 << attempt.min(20))
                .unwrap_or(MAX)
                .min(MAX);
            assert_eq!(ceiling, expected, "attempt {attempt}");
            let delay = backoff.next_delay();
            assert!(
                delay >= ceiling / 2 && delay <= ceiling,
                "attempt {attempt}: {delay:?} outside [{:?}, {ceiling:?}]",
                ceiling / 2
            );
            assert!(delay <= MAX);
        }
        assert_eq!(backoff.attempts(), 40);
    }

    #[test]
    fn chargers_spread_out_and_reset_starts_over() {
        let firsts: Vec<Duration> = (0..100)
            .map(|seed| Backoff::new(MIN, MAX, seed).next_delay())
            .collect();
        let distinct: std::collections::BTreeSet<_> = firsts.iter().collect();
        assert!(
            distinct.len() > 90,
            "jitter spreads a fleet's first retries"
        );
        let mut backoff = Backoff::new(MIN, MAX, 1);
        for _ in 0..10 {
            backoff.next_delay();
        }
        backoff.reset();
        assert!(backoff.next_delay() <= MIN);
    }

    #[test]
    fn a_max_below_min_is_raised_to_min() {
        let mut backoff = Backoff::new(Duration::from_secs(2), Duration::from_secs(1), 3);
        let delay = backoff.next_delay();
        assert!(delay >= Duration::from_secs(1) && delay <= Duration::from_secs(2));
    }
}
