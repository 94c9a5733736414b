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
    /// Sum of committed offsets per group: whether it moved between samples.
    pub(crate) committed: BTreeMap<String, i64>,
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

/// Which way a group's lag goes over the last samples, judged by rules after Burrow's
/// consumer-lag evaluation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Trend {
    /// Fewer than three samples: nothing to judge yet.
    Unknown,
    /// Nothing left to read in at least one sample of the window.
    CaughtUp,
    /// Records wait and the committed offsets did not move over the window.
    Stalled,
    /// The lag grew in every interval of the window while the group committed.
    FallingBehind,
    /// The lag is smaller at the end of the window than at its start.
    CatchingUp,
    /// None of the above: the group keeps pace.
    Steady,
}

impl Trend {
    /// The trend as the API spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Trend::Unknown => "unknown",
            Trend::CaughtUp => "caught_up",
            Trend::Stalled => "stalled",
            Trend::FallingBehind => "falling_behind",
            Trend::CatchingUp => "catching_up",
            Trend::Steady => "steady",
        }
    }
}

/// Samples a trend is judged over (at the default 5 s interval: the last 50 s).
pub(crate) const TREND_WINDOW: usize = 10;

/// The trend of `points`, each a (lag, committed) pair, oldest first.
pub(crate) fn trend(points: &[(i64, i64)]) -> Trend {
    let (Some(first), Some(last)) = (points.first(), points.last()) else {
        return Trend::Unknown;
    };
    if points.len() < 3 {
        Trend::Unknown
    } else if points.iter().any(|(lag, _)| *lag == 0) {
        Trend::CaughtUp
    } else if first.1 == last.1 {
        Trend::Stalled
    } else if points.windows(2).all(|w| w[1].0 > w[0].0) {
        Trend::FallingBehind
    } else if last.0 < first.0 {
        Trend::CatchingUp
    } else {
        Trend::Steady
    }
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

    /// The trend of `group` over the last [`TREND_WINDOW`] samples.
    pub(crate) fn trend(&self, group: &str) -> Trend {
        let samples = self.samples.lock().expect("history lock");
        let mut points: Vec<(i64, i64)> = samples
            .iter()
            .rev()
            .filter_map(|s| Some((*s.lag.get(group)?, *s.committed.get(group)?)))
            .take(TREND_WINDOW)
            .collect();
        points.reverse();
        trend(&points)
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
            committed: BTreeMap::new(),
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
                    let committed = l.partitions.iter().filter_map(|p| p.committed).sum();
                    sample.committed.insert(group.clone(), committed);
                    sample.lag.insert(group, l.total_lag);
                }
                Err(e) => tracing::debug!(%group, error = %e, "console sample: lag not read"),
            }
        }
        self.history.push(sample);
        self.watch_freshness().await;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trends_follow_the_lag_and_the_commits_over_the_window() {
        assert_eq!(trend(&[(5, 0), (6, 0)]), Trend::Unknown);
        assert_eq!(trend(&[(5, 10), (0, 15), (3, 18)]), Trend::CaughtUp);
        assert_eq!(trend(&[(5, 10), (6, 10), (9, 10)]), Trend::Stalled);
        assert_eq!(trend(&[(5, 10), (6, 12), (9, 14)]), Trend::FallingBehind);
        assert_eq!(trend(&[(9, 10), (12, 12), (4, 30)]), Trend::CatchingUp);
        assert_eq!(trend(&[(5, 10), (7, 12), (6, 14)]), Trend::Steady);
    }
}
