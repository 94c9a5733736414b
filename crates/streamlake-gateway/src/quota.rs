//! Per-tenant quotas: token buckets (GCRA, the `governor` crate) over events per second and
//! request body bytes per second. A request over a bucket is refused whole, before anything of
//! it is written, with the wait the bucket needs as `Retry-After`; a request larger than a
//! bucket can ever hold is refused for good (413), since waiting would not help.

use std::num::NonZeroU32;
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::state::{InMemoryState, NotKeyed};
use governor::{Quota, RateLimiter};
use streamlake_config::QuotaConfig;

type Bucket = RateLimiter<NotKeyed, InMemoryState, DefaultClock>;

/// What a bucket limits, as the API names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Unit {
    /// `events_per_sec`.
    Events,
    /// `bytes_per_sec`.
    Bytes,
}

impl Unit {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Unit::Events => "events",
            Unit::Bytes => "bytes",
        }
    }
}

/// Why a request was not admitted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// Over the rate now: admitted after `wait`.
    Later {
        unit: Unit,
        asked: u32,
        per_sec: u32,
        wait: Duration,
    },
    /// More than the bucket holds: never admitted as one request.
    TooLarge { unit: Unit, asked: u32, burst: u32 },
}

/// A rate and its bucket.
#[derive(Debug)]
struct Limit {
    per_sec: u32,
    burst: u32,
    bucket: Bucket,
}

impl Limit {
    /// `None` for a rate of 0 (the config loader refuses it).
    fn new(per_sec: u32, burst_secs: f64) -> Option<Self> {
        if per_sec == 0 {
            return None;
        }
        let burst = ((f64::from(per_sec) * burst_secs).ceil() as u32).max(1);
        let quota = Quota::with_period(Duration::from_secs_f64(1.0 / f64::from(per_sec)))?
            .allow_burst(NonZeroU32::new(burst)?);
        Some(Self {
            per_sec,
            burst,
            bucket: RateLimiter::direct(quota),
        })
    }

    fn take(&self, unit: Unit, n: u32) -> Result<(), Refusal> {
        let Some(n) = NonZeroU32::new(n) else {
            return Ok(());
        };
        match self.bucket.check_n(n) {
            Ok(Ok(())) => Ok(()),
            Ok(Err(not_until)) => Err(Refusal::Later {
                unit,
                asked: n.get(),
                per_sec: self.per_sec,
                wait: not_until.wait_time_from(DefaultClock::default().now()),
            }),
            Err(_) => Err(Refusal::TooLarge {
                unit,
                asked: n.get(),
                burst: self.burst,
            }),
        }
    }
}

/// One tenant's quota.
#[derive(Debug)]
pub(crate) struct TenantQuota {
    events: Option<Limit>,
    bytes: Option<Limit>,
}

impl TenantQuota {
    pub(crate) fn new(config: &QuotaConfig) -> Self {
        Self {
            events: config
                .events_per_sec
                .and_then(|r| Limit::new(r, config.burst_secs)),
            bytes: config
                .bytes_per_sec
                .and_then(|r| Limit::new(r, config.burst_secs)),
        }
    }

    /// Takes `events` and `bytes` from the buckets, or says why not. The bytes are taken first:
    /// a request refused for its events has used its bytes' share (a bucket cannot give back).
    pub(crate) fn admit(&self, events: usize, bytes: usize) -> Result<(), Refusal> {
        let clamp = |n: usize| u32::try_from(n).unwrap_or(u32::MAX);
        if let Some(limit) = &self.bytes {
            limit.take(Unit::Bytes, clamp(bytes))?;
        }
        if let Some(limit) = &self.events {
            limit.take(Unit::Events, clamp(events))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn quota(events: Option<u32>, bytes: Option<u32>) -> TenantQuota {
        TenantQuota::new(&QuotaConfig {
            events_per_sec: events,
            bytes_per_sec: bytes,
            burst_secs: 1.0,
        })
    }

    #[test]
    fn a_bucket_admits_its_burst_then_says_how_long_to_wait() {
        let q = quota(Some(10), None);
        assert_eq!(q.admit(6, 0), Ok(()));
        assert_eq!(q.admit(4, 0), Ok(()));
        match q.admit(5, 0) {
            Err(Refusal::Later {
                unit: Unit::Events,
                asked: 5,
                per_sec: 10,
                wait,
            }) => assert!(
                wait > Duration::from_millis(300) && wait <= Duration::from_millis(500),
                "five events at ten per second: about half a second, got {wait:?}"
            ),
            other => panic!("expected a wait, got {other:?}"),
        }
    }

    #[test]
    fn a_request_larger_than_the_bucket_is_refused_for_good() {
        let q = quota(Some(10), Some(1_000));
        assert!(matches!(
            q.admit(11, 10),
            Err(Refusal::TooLarge {
                unit: Unit::Events,
                asked: 11,
                burst: 10
            })
        ));
        assert!(matches!(
            q.admit(1, 1_001),
            Err(Refusal::TooLarge {
                unit: Unit::Bytes,
                ..
            })
        ));
        assert_eq!(q.admit(1, 100), Ok(()), "a fitting request still passes");
    }
}
