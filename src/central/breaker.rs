//! The circuit breaker in front of each charger's outbound CALLs. A charger that lets K calls in
//! a row time out is failed fast for a cool-down instead of tying up callers for a timeout each;
//! then one probe call goes through, and its answer closes the breaker again (or another timeout
//! reopens it). Only timeouts count: any answer, even a CALLERROR, proves the charger is alive.
//! Pure state machine with the clock passed in, so it is tested without waiting.

use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BreakerSettings {
    /// Consecutive timeouts that open the breaker.
    pub failures: u32,
    /// How long an open breaker fails calls fast before letting a probe through.
    pub cool_down: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BreakerState {
    Closed {
        consecutive_timeouts: u32,
    },
    Open {
        until: Instant,
    },
    /// The cool-down is over and one probe call is on its way.
    HalfOpen,
}

impl Default for BreakerState {
    fn default() -> Self {
        BreakerState::Closed {
            consecutive_timeouts: 0,
        }
    }
}

/// How a call that was let through ended, as far as the breaker cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallEnd {
    /// The charger answered (CALLRESULT, CALLERROR, even a malformed answer).
    Answered,
    TimedOut,
    /// The call never reached a verdict on the charger (offline, queue full, disconnected).
    Inconclusive,
}

impl BreakerState {
    /// May a call go out now? Moves Open → HalfOpen when the cool-down is over (the caller then
    /// carries the probe).
    pub fn admit(&mut self, now: Instant) -> bool {
        match *self {
            BreakerState::Closed { .. } => true,
            BreakerState::Open { until } if now >= until => {
                *self = BreakerState::HalfOpen;
                true
            }
            BreakerState::Open { .. } | BreakerState::HalfOpen => false,
        }
    }

    /// Record how an admitted call ended.
    pub fn record(&mut self, end: CallEnd, now: Instant, settings: &BreakerSettings) {
        let open = BreakerState::Open {
            until: now + settings.cool_down,
        };
        *self = match (*self, end) {
            (_, CallEnd::Answered) => BreakerState::default(),
            (BreakerState::HalfOpen, CallEnd::TimedOut) => open,
            // A probe that never reached the charger proves nothing: let the next call probe.
            (BreakerState::HalfOpen, CallEnd::Inconclusive) => BreakerState::Open { until: now },
            (
                BreakerState::Closed {
                    consecutive_timeouts,
                },
                CallEnd::TimedOut,
            ) => {
                if consecutive_timeouts + 1 >= settings.failures {
                    open
                } else {
                    BreakerState::Closed {
                        consecutive_timeouts: consecutive_timeouts + 1,
                    }
                }
            }
            (state, _) => state,
        };
    }

    pub fn name(&self) -> &'static str {
        match self {
            BreakerState::Closed { .. } => "closed",
            BreakerState::Open { .. } => "open",
            BreakerState::HalfOpen => "half_open",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: BreakerSettings = BreakerSettings {
        failures: 3,
        cool_down: Duration::from_secs(30),
    };

    #[test]
    fn opens_after_k_timeouts_probes_after_cool_down_and_closes_on_an_answer() {
        let t0 = Instant::now();
        let mut b = BreakerState::default();
        for _ in 0..2 {
            assert!(b.admit(t0));
            b.record(CallEnd::TimedOut, t0, &S);
        }
        assert_eq!(
            b,
            BreakerState::Closed {
                consecutive_timeouts: 2
            }
        );
        b.record(CallEnd::TimedOut, t0, &S);
        assert_eq!(b.name(), "open");
        assert!(
            !b.admit(t0 + Duration::from_secs(29)),
            "fails fast while cooling down"
        );
        assert!(
            b.admit(t0 + Duration::from_secs(30)),
            "one probe after the cool-down"
        );
        assert_eq!(b, BreakerState::HalfOpen);
        assert!(
            !b.admit(t0 + Duration::from_secs(30)),
            "only one probe at a time"
        );
        b.record(CallEnd::Answered, t0 + Duration::from_secs(31), &S);
        assert_eq!(b, BreakerState::default());
    }

    #[test]
    fn a_failed_probe_reopens_and_an_answer_resets_the_count() {
        let t0 = Instant::now();
        let mut b = BreakerState::HalfOpen;
        b.record(CallEnd::TimedOut, t0, &S);
        assert_eq!(
            b,
            BreakerState::Open {
                until: t0 + S.cool_down
            }
        );
        let mut b = BreakerState::Closed {
            consecutive_timeouts: 2,
        };
        b.record(CallEnd::Answered, t0, &S);
        assert_eq!(b, BreakerState::default());
        let mut b = BreakerState::HalfOpen;
        b.record(CallEnd::Inconclusive, t0, &S);
        assert!(
            b.admit(t0),
            "an inconclusive probe lets the next call probe"
        );
        let mut b = BreakerState::Closed {
            consecutive_timeouts: 1,
        };
        b.record(CallEnd::Inconclusive, t0, &S);
        assert_eq!(
            b,
            BreakerState::Closed {
                consecutive_timeouts: 1
            }
        );
    }
}
