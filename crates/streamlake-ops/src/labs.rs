//! The labs from the API and the console: each runs with its defaults and returns its
//! report. Admin only: labs create topics and load the cluster.

use serde::Serialize;
use streamlake_labs::{ordering, partitioning, rebalance, semantics, Lab};

use crate::{ErrorKind, Ops, OpsError, OpsResult, Principal};

/// The labs, with what each shows.
pub const LABS: &[(&str, &str)] = &[
    (
        "partitioning",
        "30 messages over 10 keys: each key's partition and offsets, counts per partition, keyless messages for comparison.",
    ),
    (
        "ordering",
        "6 keys x 50 sequence numbers produced concurrently: order holds per key, not across keys.",
    ),
    (
        "rebalance",
        "A group scaled from 1 to 4 consumers and back on 3 partitions under 200 records/s: assignments, rebalance times, lag (about 50 s).",
    ),
    (
        "semantics",
        "At-most-once, at-least-once and effectively-once with the worker process killed mid-batch: lost and duplicated records by id.",
    ),
];

fn failed(e: streamlake_labs::LabError) -> OpsError {
    OpsError::new(ErrorKind::Unavailable, format!("the lab failed: {e}"))
}

/// A lab's report (serialised as the report itself).
#[derive(Debug, Clone, Serialize)]
#[serde(untagged)]
pub enum LabReport {
    /// `partitioning`.
    Partitioning(partitioning::PartitioningReport),
    /// `ordering`.
    Ordering(ordering::OrderingReport),
    /// `rebalance`.
    Rebalance(rebalance::RebalanceReport),
    /// `semantics`.
    Semantics(semantics::SemanticsReport),
}

impl Ops {
    /// Sets the command that starts a `streamlake` worker process against this cluster, which
    /// the semantics lab kills and restarts.
    pub fn with_lab_worker(mut self, command: Vec<String>) -> Self {
        self.lab_worker = Some(command);
        self
    }

    /// Runs lab `name` with its defaults and returns its report.
    pub async fn run_lab(&self, who: &Principal, name: &str) -> OpsResult<LabReport> {
        self.check_admin(who, "running a lab")?;
        if !LABS.iter().any(|(n, _)| *n == name) {
            return Err(OpsError::new(
                ErrorKind::NotFound,
                format!(
                    "no lab \"{name}\"; there are {}",
                    LABS.iter().map(|(n, _)| *n).collect::<Vec<_>>().join(", ")
                ),
            ));
        }
        let mut lab = Lab::new(&self.settings, name).map_err(failed)?;
        match name {
            "partitioning" => Ok(LabReport::Partitioning(
                partitioning::run(&mut lab, &partitioning::PartitioningOptions::default())
                    .await
                    .map_err(failed)?,
            )),
            "ordering" => Ok(LabReport::Ordering(
                ordering::run(&mut lab, &ordering::OrderingOptions::default())
                    .await
                    .map_err(failed)?,
            )),
            "rebalance" => Ok(LabReport::Rebalance(
                rebalance::run(&mut lab, &rebalance::RebalanceOptions::default())
                    .await
                    .map_err(failed)?,
            )),
            _ => {
                let Some(worker) = self.lab_worker.clone() else {
                    return Err(OpsError::new(
                        ErrorKind::Unsupported,
                        "this server cannot start worker processes; run `streamlake lab semantics`",
                    ));
                };
                Ok(LabReport::Semantics(
                    semantics::run(&mut lab, &semantics::SemanticsOptions::new(worker))
                        .await
                        .map_err(failed)?,
                ))
            }
        }
    }
}
