//! Recent latencies of a stage, per dataset: what a sink measured from a record's
//! `processed_at` to the moment its row became durable, kept for whoever reports freshness.
//!
//! Each dataset keeps its last [`LatencyWindows::KEPT`] samples with the moment they were
//! taken, so a reader asks for the ones of the last minutes and memory stays bounded whatever
//! the rate.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Mutex;

/// Now, in milliseconds since the epoch: the clock every latency sample is taken by.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// Milliseconds since the epoch of an RFC 3339 time such as a `processed_at` header
/// (`2026-12-03T05:40:48.123Z`; the zone may be left out, meaning UTC); `None` if it is not one.
pub fn epoch_ms(text: &str) -> Option<i64> {
    let t = humantime::parse_rfc3339_weak(text).ok()?;
    let d = t.duration_since(std::time::UNIX_EPOCH).ok()?;
    i64::try_from(d.as_millis()).ok()
}

/// One dataset's samples, oldest first: (taken at, latency), both in milliseconds.
type Window = VecDeque<(i64, i64)>;

/// Recent latencies by tenant, then dataset (looked up by `&str`, so recording allocates
/// nothing once a dataset has its window).
#[derive(Debug, Default)]
pub struct LatencyWindows {
    windows: Mutex<BTreeMap<String, BTreeMap<String, Window>>>,
}

impl LatencyWindows {
    /// Samples kept per dataset; older ones make room.
    pub const KEPT: usize = 4096;

    /// Adds `latencies_ms` of `tenant`/`dataset`, all taken at `at_ms` (ms since the epoch).
    pub fn record(
        &self,
        tenant: &str,
        dataset: &str,
        at_ms: i64,
        latencies_ms: impl IntoIterator<Item = i64>,
    ) {
        let mut latencies = latencies_ms.into_iter().peekable();
        if latencies.peek().is_none() {
            return;
        }
        let mut windows = self.windows.lock().expect("latency lock");
        if !windows.contains_key(tenant) {
            windows.insert(tenant.to_owned(), BTreeMap::new());
        }
        let datasets = windows.get_mut(tenant).expect("inserted above");
        if !datasets.contains_key(dataset) {
            datasets.insert(dataset.to_owned(), Window::new());
        }
        let window = datasets.get_mut(dataset).expect("inserted above");
        for latency in latencies {
            if window.len() == Self::KEPT {
                window.pop_front();
            }
            window.push_back((at_ms, latency.max(0)));
        }
    }

    /// The latencies of `tenant`/`dataset` taken at or after `since_ms`, oldest first.
    pub fn since(&self, tenant: &str, dataset: &str, since_ms: i64) -> Vec<i64> {
        let windows = self.windows.lock().expect("latency lock");
        windows
            .get(tenant)
            .and_then(|d| d.get(dataset))
            .map(|w| {
                w.iter()
                    .filter(|(at, _)| *at >= since_ms)
                    .map(|(_, l)| *l)
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The median and 99th percentile of the latencies of `tenant`/`dataset` taken at or after
    /// `since_ms`; `None` without any.
    pub fn quantiles(&self, tenant: &str, dataset: &str, since_ms: i64) -> Option<Quantiles> {
        let mut samples = self.since(tenant, dataset, since_ms);
        Quantiles::of(&mut samples)
    }

    /// The datasets with samples, as (tenant, dataset).
    pub fn datasets(&self) -> Vec<(String, String)> {
        self.windows
            .lock()
            .expect("latency lock")
            .iter()
            .flat_map(|(t, ds)| ds.keys().map(|d| (t.clone(), d.clone())))
            .collect()
    }
}

/// The median and 99th percentile of some latencies, in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quantiles {
    /// Median.
    pub p50: i64,
    /// 99th percentile.
    pub p99: i64,
    /// How many latencies.
    pub samples: usize,
}

impl Quantiles {
    /// The quantiles of `samples` (sorted here); `None` when there are none.
    pub fn of(samples: &mut [i64]) -> Option<Self> {
        if samples.is_empty() {
            return None;
        }
        samples.sort_unstable();
        Some(Self {
            p50: percentile(samples, 0.50),
            p99: percentile(samples, 0.99),
            samples: samples.len(),
        })
    }
}

/// The nearest-rank `p` quantile (0 to 1) of `sorted`; zero when it is empty.
pub fn percentile<T: Copy + Default>(sorted: &[T], p: f64) -> T {
    let i = ((sorted.len() as f64 * p).ceil() as usize).saturating_sub(1);
    sorted
        .get(i.min(sorted.len().saturating_sub(1)))
        .copied()
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_times_are_read_as_epoch_milliseconds() {
        assert_eq!(epoch_ms("1970-01-01T00:00:01.250Z"), Some(1_250));
        assert_eq!(epoch_ms("2026-12-03T05:40:48Z"), Some(1_796_276_448_000));
        assert_eq!(epoch_ms("yesterday"), None);
    }

    #[test]
    fn samples_are_kept_per_dataset_bounded_and_read_by_age() {
        let w = LatencyWindows::default();
        w.record("t", "a", 1_000, [5, 7]);
        w.record("t", "b", 1_000, [100]);
        w.record("t", "a", 2_000, [9, -3]);
        assert_eq!(w.since("t", "a", 0), [5, 7, 9, 0]);
        assert_eq!(w.since("t", "a", 1_500), [9, 0]);
        assert_eq!(w.since("t", "b", 0), [100]);
        assert!(w.since("t", "c", 0).is_empty());
        w.record("t", "a", 3_000, 0..(LatencyWindows::KEPT as i64));
        let all = w.since("t", "a", 0);
        assert_eq!(all.len(), LatencyWindows::KEPT);
        assert_eq!(all[0], 0, "the oldest made room");
        assert_eq!(w.datasets().len(), 2);
    }

    #[test]
    fn quantiles_are_nearest_rank() {
        let mut samples: Vec<i64> = (1..=100).rev().collect();
        let q = Quantiles::of(&mut samples).unwrap();
        assert_eq!((q.p50, q.p99, q.samples), (50, 99, 100));
        assert_eq!(Quantiles::of(&mut []), None);
        let w = LatencyWindows::default();
        w.record("t", "a", 10, [3]);
        assert_eq!(w.quantiles("t", "a", 0).map(|q| q.p99), Some(3));
        assert_eq!(w.quantiles("t", "a", 11), None);
    }
}
