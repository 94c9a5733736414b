//! A stage that holds no partitions while its topics wait to be read is stalled, and says so.
//! A member can end up with nothing assigned (a crashed predecessor still in the group, a
//! rebalance that left it out) while records pile up and nothing fails; [`watch_stage`] turns
//! that silence into a reason on `/readyz`, a warning in the log, and a recovery when
//! partitions come back.

use std::time::Duration;

use streamlake_core::{Condition, Health};
use streamlake_kafka::{Admin, KafkaSettings, Membership};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// What a stage watcher looks at.
#[derive(Debug, Clone)]
pub struct StageWatch {
    /// Component name in [`Health`], e.g. `sink lake`.
    pub component: String,
    /// The stage's consumer group.
    pub group: String,
    /// The topics it reads.
    pub topics: Vec<String>,
    /// The member's assignment, shared with its runner.
    pub membership: Membership,
    /// How long the member may hold nothing while its group's lag does not shrink.
    pub window: Duration,
}

/// Watches `stage` until `shutdown`: when its member has held no partitions for `window` while
/// its group has lag and no offset of it advanced meanwhile (so no other member is reading
/// either), marks the component down with the reason and logs a warning; marks it up again once
/// the member holds partitions or the lag is gone.
pub async fn watch_stage(
    stage: StageWatch,
    settings: KafkaSettings,
    health: Health,
    shutdown: CancellationToken,
) {
    let admin = match Admin::new(&settings) {
        Ok(a) => a,
        Err(e) => {
            tracing::warn!(stage = %stage.component, error = %e, "cannot watch the stage's assignment");
            return;
        }
    };
    let tick = (stage.window / 3).max(Duration::from_millis(100));
    // Since when the member holds nothing, with the group's committed offsets then.
    let mut idle: Option<(Instant, Option<i64>)> = None;
    let mut stalled = false;
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(tick) => {}
        }
        if stage.membership.assigned() > 0 {
            idle = None;
            if stalled {
                stalled = false;
                health.set(&stage.component, Condition::Up);
                tracing::info!(stage = %stage.component, partitions = stage.membership.assigned(), "stage holds partitions again");
            }
            continue;
        }
        let Ok(lag) = admin.group_lag(&stage.group, &stage.topics).await else {
            continue;
        };
        let committed: Option<i64> = lag
            .partitions
            .iter()
            .map(|p| p.committed.unwrap_or(0))
            .reduce(|a, b| a + b);
        let (since, before) = *idle.get_or_insert((Instant::now(), committed));
        let waited = since.elapsed();
        if lag.total_lag == 0 || committed != before {
            // Nothing to read, or another member is reading: not stalled.
            idle = Some((Instant::now(), committed));
            if stalled {
                stalled = false;
                health.set(&stage.component, Condition::Up);
            }
            continue;
        }
        if waited >= stage.window && !stalled {
            stalled = true;
            let reason = format!(
                "holds no partitions of its topics, which have {} records to read, and no member of group {} has read any for {} s",
                lag.total_lag,
                stage.group,
                waited.as_secs()
            );
            tracing::warn!(stage = %stage.component, group = %stage.group, lag = lag.total_lag, "stage stalled: {reason}");
            health.set(&stage.component, Condition::Down(reason));
        }
    }
}
