//! The brute-force throttle for logins (a charger's HTTP Basic password, a REST bearer token):
//! failures are counted per source address and per name (the chargeBoxId, or the token's
//! digest). Past `free_failures` on either, an attempt waits `delay` holding that key's one slot
//! before its credentials are checked at all, and an attempt arriving while the slot is held
//! is answered "retry after" without a check: one guess per `delay` per key, however many
//! connections an attacker opens. Failures are forgotten after `forget_after` without one.
//!
//! A genuine charger behind the same address as an attacker: a (name, address) pair that
//! logged in successfully is exempt from its address's count for `good_for`, so an attacker
//! guessing other names from the same NAT does not delay it; one guessing its own name meets
//! the per-name slot, which the genuine charger's correct password passes through when it gets
//! its turn (and a success clears the name's count). It holds no credentials and knows no
//! protocol; callers say what failed.

use std::hash::Hash;
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use dashmap::DashMap;

/// How hard the throttle is.
#[derive(Debug, Clone, Copy)]
pub struct ThrottleSettings {
    /// Failures per key before attempts are slowed.
    pub free_failures: u32,
    /// How long a slowed attempt waits, and at most one per key per this.
    pub delay: Duration,
    /// A key's failures are forgotten after this long without a new one.
    pub forget_after: Duration,
    /// How long a successful (name, address) pair is exempt from its address's count.
    pub good_for: Duration,
}

impl Default for ThrottleSettings {
    fn default() -> Self {
        ThrottleSettings {
            free_failures: 5,
            delay: Duration::from_secs(1),
            forget_after: Duration::from_secs(15 * 60),
            good_for: Duration::from_secs(24 * 3600),
        }
    }
}

/// Entries kept at most per map; past it, stale ones are swept, and if none are stale the
/// oldest half goes (an attacker spraying names or addresses costs bounded memory).
const MAX_ENTRIES: usize = 200_000;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Key {
    Source(IpAddr),
    Name(String),
}

#[derive(Debug)]
struct Count {
    failures: u32,
    last_failure: Instant,
    /// An attempt is waiting in this key's slot.
    busy: bool,
}

/// Counts failed logins and slows the keys that fail too often. Share it with `Arc`.
#[derive(Debug, Default)]
pub struct Throttle {
    settings: ThrottleSettings,
    counts: DashMap<Key, Count>,
    good: DashMap<(String, IpAddr), Instant>,
    calls: AtomicU64,
}

/// Why an attempt is not let in now: retry after this long.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryAfter(pub Duration);

impl RetryAfter {
    /// Whole seconds for a `Retry-After` header (at least 1).
    pub fn seconds(&self) -> u64 {
        self.0.as_secs_f64().ceil().max(1.0) as u64
    }
}

/// The right to check one attempt's credentials; say how it went with [`Attempt::failed`]
/// or [`Attempt::succeeded`]. Dropping it frees the slots it held.
#[must_use]
pub struct Attempt {
    throttle: Arc<Throttle>,
    keys: Vec<Key>,
    name: String,
    source: IpAddr,
    held: Vec<Key>,
}

impl Throttle {
    pub fn new(settings: ThrottleSettings) -> Arc<Throttle> {
        Arc::new(Throttle {
            settings,
            ..Default::default()
        })
    }

    pub fn settings(&self) -> ThrottleSettings {
        self.settings
    }

    /// Before checking credentials for `name` from `source`: at once while neither key has
    /// failed too often, after `delay` when one has and its slot is free, else `Err`.
    pub async fn enter(
        self: &Arc<Self>,
        source: IpAddr,
        name: &str,
    ) -> Result<Attempt, RetryAfter> {
        if self
            .calls
            .fetch_add(1, Ordering::Relaxed)
            .is_multiple_of(4096)
        {
            self.sweep();
        }
        let mut keys = vec![Key::Name(name.to_owned())];
        if !self.is_good(name, source) {
            keys.push(Key::Source(source));
        }
        let now = Instant::now();
        let mut held = Vec::new();
        for key in &keys {
            let Some(mut count) = self.counts.get_mut(key) else {
                continue;
            };
            if now.saturating_duration_since(count.last_failure) > self.settings.forget_after {
                count.failures = 0;
            }
            if count.failures < self.settings.free_failures {
                continue;
            }
            if count.busy {
                drop(count);
                self.release(&held);
                return Err(RetryAfter(self.settings.delay));
            }
            count.busy = true;
            held.push(key.clone());
        }
        let attempt = Attempt {
            throttle: self.clone(),
            keys,
            name: name.to_owned(),
            source,
            held,
        };
        if !attempt.held.is_empty() {
            tokio::time::sleep(self.settings.delay).await;
        }
        Ok(attempt)
    }

    fn is_good(&self, name: &str, source: IpAddr) -> bool {
        self.good
            .get(&(name.to_owned(), source))
            .is_some_and(|at| at.elapsed() < self.settings.good_for)
    }

    fn release(&self, keys: &[Key]) {
        for key in keys {
            if let Some(mut count) = self.counts.get_mut(key) {
                count.busy = false;
            }
        }
    }

    /// Whether `source` (or `name`) is being slowed now, for logs and tests.
    pub fn is_slowed(&self, source: IpAddr, name: &str) -> bool {
        [Key::Source(source), Key::Name(name.to_owned())]
            .iter()
            .any(|k| {
                self.counts.get(k).is_some_and(|c| {
                    c.failures >= self.settings.free_failures
                        && c.last_failure.elapsed() <= self.settings.forget_after
                })
            })
    }

    fn sweep(&self) {
        let forget = self.settings.forget_after;
        if self.counts.len() > MAX_ENTRIES / 2 {
            self.counts
                .retain(|_, c| c.busy || c.last_failure.elapsed() <= forget);
        }
        if self.counts.len() > MAX_ENTRIES {
            // Still full of fresh entries: keep only those that already slow someone.
            let free = self.settings.free_failures;
            self.counts.retain(|_, c| c.busy || c.failures >= free);
        }
        let good_for = self.settings.good_for;
        if self.good.len() > MAX_ENTRIES / 2 {
            self.good.retain(|_, at| at.elapsed() < good_for);
        }
        if self.good.len() > MAX_ENTRIES {
            self.good.clear();
        }
    }
}

impl Attempt {
    /// The credentials were wrong. `true`: the keys are now past their free failures, so the
    /// caller answers "too many" with [`ThrottleSettings::delay`] as Retry-After.
    pub fn failed(self) -> bool {
        self.failed_and_crossed().0
    }

    /// [`Attempt::failed`], and whether this failure is the one that crossed the free count
    /// (so a caller can record the moment once, not every slowed guess).
    pub fn failed_and_crossed(self) -> (bool, bool) {
        let now = Instant::now();
        let free = self.throttle.settings.free_failures;
        let mut slowed = false;
        let mut crossed = false;
        for key in &self.keys {
            let mut count = self.throttle.counts.entry(key.clone()).or_insert(Count {
                failures: 0,
                last_failure: now,
                busy: false,
            });
            count.failures = count.failures.saturating_add(1);
            count.last_failure = now;
            if count.failures == free {
                crossed = true;
                tracing::warn!(key = ?key, failures = count.failures, "login failures past the free count: slowing this key");
            }
            slowed |= count.failures >= free;
        }
        (slowed, crossed)
    }

    /// The credentials were right: the name's count is cleared and the pair remembered as
    /// good (the address's count stays: one valid login must not launder an attacker's).
    pub fn succeeded(self) {
        let t = &self.throttle;
        t.counts.remove(&Key::Name(self.name.clone()));
        let pair = (self.name.clone(), self.source);
        let fresh = t
            .good
            .get(&pair)
            .is_some_and(|at| at.elapsed() < t.settings.good_for / 4);
        if !fresh {
            t.good.insert(pair, Instant::now());
        }
    }
}

impl Drop for Attempt {
    fn drop(&mut self) {
        self.throttle.release(&self.held);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn quick() -> Arc<Throttle> {
        Throttle::new(ThrottleSettings {
            free_failures: 3,
            delay: Duration::from_millis(50),
            forget_after: Duration::from_secs(60),
            good_for: Duration::from_secs(60),
        })
    }

    const NAT: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 0, 1));

    #[tokio::test]
    async fn failures_past_the_free_count_are_slowed_and_then_refused_while_busy() {
        let t = quick();
        for i in 0..3 {
            let a = t.enter(NAT, "CP-1").await.unwrap();
            assert_eq!(a.failed(), i == 2, "slowed from the third failure on");
        }
        let started = Instant::now();
        let slow = t.enter(NAT, "CP-1").await.unwrap();
        assert!(started.elapsed() >= Duration::from_millis(50));
        // While that attempt holds the slot, another is refused without a check.
        assert_eq!(
            t.enter(NAT, "CP-2").await.err(),
            Some(RetryAfter(Duration::from_millis(50)))
        );
        assert!(slow.failed());
        assert!(t.enter(NAT, "CP-2").await.is_ok(), "the slot is free again");
    }

    #[tokio::test]
    async fn a_known_good_pair_is_not_slowed_by_its_neighbours() {
        let t = quick();
        t.enter(NAT, "GOOD").await.unwrap().succeeded();
        for i in 0..10 {
            let _ = t
                .enter(NAT, &format!("GUESS-{i}"))
                .await
                .map(Attempt::failed);
        }
        assert!(t.is_slowed(NAT, "GUESS-0"));
        let started = Instant::now();
        let a = t
            .enter(NAT, "GOOD")
            .await
            .expect("the genuine charger gets in");
        assert!(
            started.elapsed() < Duration::from_millis(40),
            "without a delay"
        );
        a.succeeded();
        // A new name from the same address is slowed.
        let started = Instant::now();
        let _ = t.enter(NAT, "NEW").await.unwrap();
        assert!(started.elapsed() >= Duration::from_millis(50));
    }

    #[tokio::test]
    async fn the_right_password_gets_through_the_name_slot_and_clears_it() {
        let t = quick();
        let elsewhere = IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 7));
        for _ in 0..5 {
            let _ = t.enter(elsewhere, "CP-1").await.map(Attempt::failed);
        }
        let a = t
            .enter(NAT, "CP-1")
            .await
            .expect("a turn in the name's slot");
        a.succeeded();
        assert!(!t.is_slowed(NAT, "CP-1"));
    }
}
