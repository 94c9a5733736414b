//! Recent latencies of a stage, per dataset: what a sink measured from a record's
//! `processed_at` to the moment its row became durable, kept for whoever reports freshness.
//!
//! Each dataset keeps its last [`LatencyWindows::KEPT`] samples with the moment they were
//! taken, so a reader asks for the ones of the last minutes and memory stays bounded whatever
//! the rate.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Mutex;

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

#[cfg(test)]
mod tests {
    use super::*;

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
}
