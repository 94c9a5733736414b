//! One retry policy for every loop that waits before trying again: exponential back-off from a
//! first delay up to a maximum, each wait shaken by up to ±20 % so that clients that failed
//! together do not all come back at the same instant.

use std::time::Duration;

/// How long to wait between attempts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    first: Duration,
    max: Duration,
}

impl RetryPolicy {
    /// Reconnecting or restarting something that failed as a whole (a stage, a connection, a
    /// fetch): 0.5 s, doubling to 30 s.
    pub const RECONNECT: Self = Self::new(Duration::from_millis(500), Duration::from_secs(30));
    /// Offering the broker an event it did not acknowledge again: 0.2 s, doubling to 5 s.
    pub const REDELIVER: Self = Self::new(Duration::from_millis(200), Duration::from_secs(5));

    /// Waits of `first`, doubling up to `max`.
    pub const fn new(first: Duration, max: Duration) -> Self {
        Self { first, max }
    }

    /// A fresh sequence of waits.
    pub fn backoff(self) -> Backoff {
        Backoff {
            policy: self,
            current: self.first,
        }
    }
}

/// The waits of one retry loop.
#[derive(Debug, Clone)]
pub struct Backoff {
    policy: RetryPolicy,
    current: Duration,
}

impl Backoff {
    /// The wait before the next attempt (the current delay, ±20 %); the delay after it doubles,
    /// up to the policy's maximum.
    pub fn next_delay(&mut self) -> Duration {
        let delay = self.current.mul_f64(0.8 + 0.4 * fastrand::f64());
        self.current = (self.current * 2).min(self.policy.max);
        delay
    }

    /// Back to the first delay, after an attempt succeeded.
    pub fn reset(&mut self) {
        self.current = self.policy.first;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_double_up_to_the_maximum_with_bounded_jitter_and_reset() {
        let policy = RetryPolicy::new(Duration::from_millis(100), Duration::from_millis(500));
        let mut b = policy.backoff();
        let nominal = [100, 200, 400, 500, 500];
        for n in nominal {
            let d = b.next_delay().as_secs_f64() * 1000.0;
            let n = n as f64;
            assert!(
                d >= n * 0.8 - 0.001 && d <= n * 1.2 + 0.001,
                "{d} ms for {n} ms"
            );
        }
        b.reset();
        let d = b.next_delay();
        assert!(d <= Duration::from_millis(120), "{d:?}");
    }

    #[test]
    fn two_loops_that_fail_together_do_not_wait_alike() {
        let waits = |_| {
            let mut b = RetryPolicy::RECONNECT.backoff();
            (0..8).map(|_| b.next_delay()).collect::<Vec<_>>()
        };
        let (a, b) = (waits(1), waits(2));
        assert_ne!(a, b);
    }
}
