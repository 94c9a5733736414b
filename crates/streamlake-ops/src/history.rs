//! Samples over time for the console's charts: each topic's high watermarks (throughput) and
//! each known group's total lag, every `admin.sample_interval_secs`, kept for the last
//! [`KEEP`] samples in memory.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Serialize;
use tokio_util::sync::CancellationToken;

use crate::Ops;

/// Samples kept (at the default 5 s interval: one hour).
pub(crate) const KEEP: usize = 720;

/// One sample.
#[derive(Debug, Clone)]
pub(crate) struct Sample {
    /// Milliseconds since the epoch.
    pub(crate) at_ms: i64,
    /// Sum of high watermarks per topic.
    pub(crate) highs: BTreeMap<String, i64>,
    /// Total lag per group.
    pub(crate) lag: BTreeMap<String, i64>,
}

/// A point of a time series.
#[derive(Debug, Clone, Copy, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Point {
    /// Milliseconds since the epoch.
    pub at: i64,
    /// Value.
    pub value: f64,
}

/// The samples, oldest first.
#[derive(Debug, Default)]
pub(crate) struct History {
    samples: Mutex<VecDeque<Sample>>,
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

impl History {
    pub(crate) fn new() -> Self {
        Self::default()
    }

    fn push(&self, s: Sample) {
        let mut samples = self.samples.lock().expect("history lock");
        if samples.len() == KEEP {
            samples.pop_front();
        }
        samples.push_back(s);
    }

    /// Records per second written to `topics` together, between consecutive samples.
    pub(crate) fn rate(&self, topics: &[String]) -> Vec<Point> {
        let samples = self.samples.lock().expect("history lock");
        let total = |s: &Sample| -> i64 { topics.iter().filter_map(|t| s.highs.get(t)).sum() };
        samples
            .iter()
            .zip(samples.iter().skip(1))
            .filter(|(a, b)| b.at_ms > a.at_ms)
            .map(|(a, b)| Point {
                at: b.at_ms,
                value: (total(b) - total(a)).max(0) as f64 * 1000.0 / (b.at_ms - a.at_ms) as f64,
            })
            .collect()
    }

    /// A group's total lag over time.
    pub(crate) fn lag(&self, group: &str) -> Vec<Point> {
        let samples = self.samples.lock().expect("history lock");
        samples
            .iter()
            .filter_map(|s| {
                s.lag.get(group).map(|l| Point {
                    at: s.at_ms,
                    value: *l as f64,
                })
            })
            .collect()
    }
}

impl Ops {
    /// Takes one sample of every topic's watermarks and every known group's lag.
    pub async fn sample(&self) {
        let mut sample = Sample {
            at_ms: now_ms(),
            highs: BTreeMap::new(),
            lag: BTreeMap::new(),
        };
        let topics = match self.admin.list_topics().await {
            Ok(t) => t,
            Err(e) => {
                tracing::debug!(error = %e, "console sample: topics not read");
                return;
            }
        };
        for t in &topics {
            sample
                .highs
                .insert(t.name.clone(), t.partitions.iter().map(|p| p.high).sum());
        }
        for group in self.known_groups() {
            match self.admin.group_lag_on(&group, &topics, true).await {
                Ok(l) => {
                    sample.lag.insert(group, l.total_lag);
                }
                Err(e) => tracing::debug!(%group, error = %e, "console sample: lag not read"),
            }
        }
        self.history.push(sample);
    }

    /// Samples every `admin.sample_interval_secs` until `shutdown`.
    pub async fn run_sampler(&self, shutdown: CancellationToken) {
        let mut tick =
            tokio::time::interval(Duration::from_secs(self.config.admin.sample_interval_secs));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tick.tick() => self.sample().await,
            }
        }
    }
}
