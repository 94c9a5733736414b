//! Topic provisioning: create declared topics that are missing, leave existing ones
//! alone, and report drift between what is declared and what the cluster has. Running it twice
//! creates nothing the second time.

use std::time::Duration;

use serde::Serialize;
use streamlake_core::TopicSpec;

use crate::admin::{Admin, AdminError, PartitionInfo, TopicInfo};

/// How long a topic just created (here or elsewhere) may take to show a leader for every
/// partition.
const SETTLE: Duration = Duration::from_secs(30);

/// One difference between a declared topic and the cluster.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Drift {
    /// What differs: `partitions` or a config name such as `retention.ms`.
    pub setting: String,
    /// Declared value.
    pub declared: String,
    /// Value on the cluster (`<unset>` when absent).
    pub actual: String,
}

/// What provisioning did with one topic.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum ProvisionOutcome {
    /// The topic was missing and has been created.
    Created,
    /// The topic existed and matches the declaration (as far as the broker lets us compare).
    Existing,
    /// The topic existed and differs from the declaration; it was left unchanged.
    Drift {
        /// The differences.
        differences: Vec<Drift>,
    },
    /// The topic could not be created or inspected.
    Failed {
        /// Why.
        error: String,
    },
}

/// Provisioning result for one declared topic.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct ProvisionReport {
    /// Topic name.
    pub topic: String,
    /// What happened.
    #[serde(flatten)]
    pub outcome: ProvisionOutcome,
    /// Partition metadata after provisioning (empty when it could not be read).
    pub partitions: Vec<PartitionInfo>,
    /// Limits of the comparison, e.g. a broker that cannot describe configs.
    pub notes: Vec<String>,
}

/// Provisions every declared topic, in order, and logs each topic's outcome (its partition
/// metadata at debug level).
pub async fn provision(admin: &Admin, specs: &[TopicSpec]) -> Vec<ProvisionReport> {
    let mut reports = Vec::with_capacity(specs.len());
    for spec in specs {
        let report = provision_one(admin, spec).await;
        log_report(&report);
        reports.push(report);
    }
    reports
}

async fn provision_one(admin: &Admin, spec: &TopicSpec) -> ProvisionReport {
    let mut notes = Vec::new();
    let described = match crate::admin::check_spec(spec) {
        Ok(()) => describe_settled(admin, &spec.name).await,
        Err(e) => Err(e),
    };
    let (outcome, info) = match described {
        Err(AdminError::UnknownTopic(_)) => match admin.create_topic(spec).await {
            // Another instance may have created it between our look and our create.
            Ok(()) | Err(AdminError::TopicExists(_)) => (
                ProvisionOutcome::Created,
                admin
                    .await_topic(&spec.name, spec.partitions.max(1) as usize, SETTLE)
                    .await
                    .ok(),
            ),
            Err(e) => (
                ProvisionOutcome::Failed {
                    error: e.to_string(),
                },
                None,
            ),
        },
        Err(e) => (
            ProvisionOutcome::Failed {
                error: e.to_string(),
            },
            None,
        ),
        Ok(info) => {
            let mut differences = Vec::new();
            let actual = info.partitions.len() as i32;
            if actual != spec.partitions {
                differences.push(Drift {
                    setting: "partitions".to_owned(),
                    declared: spec.partitions.to_string(),
                    actual: actual.to_string(),
                });
            }
            if !spec.configs.is_empty() {
                match admin.topic_configs(&spec.name).await {
                    Ok(configs) => {
                        for (k, declared) in &spec.configs {
                            let actual = configs.get(k);
                            if actual != Some(declared) {
                                differences.push(Drift {
                                    setting: k.clone(),
                                    declared: declared.clone(),
                                    actual: actual.cloned().unwrap_or_else(|| "<unset>".to_owned()),
                                });
                            }
                        }
                    }
                    Err(e) => notes.push(format!("configs not compared: {e}")),
                }
            }
            let outcome = if differences.is_empty() {
                ProvisionOutcome::Existing
            } else {
                ProvisionOutcome::Drift { differences }
            };
            (outcome, Some(info))
        }
    };
    ProvisionReport {
        topic: spec.name.clone(),
        outcome,
        partitions: info.map(|i| i.partitions).unwrap_or_default(),
        notes,
    }
}

/// Describes `name`, waiting (up to [`SETTLE`]) while a partition has no leader yet: a topic
/// another instance has just created is announced to the brokers asynchronously.
async fn describe_settled(admin: &Admin, name: &str) -> Result<TopicInfo, AdminError> {
    let deadline = tokio::time::Instant::now() + SETTLE;
    loop {
        match admin.describe_topic(name).await {
            Err(e) if e.is_leader_pending() && tokio::time::Instant::now() < deadline => {
                tracing::debug!(topic = name, error = %e, "waiting for the topic's leaders");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            described => return described,
        }
    }
}

fn log_report(r: &ProvisionReport) {
    match &r.outcome {
        ProvisionOutcome::Created => {
            tracing::info!(topic = %r.topic, partitions = r.partitions.len(), "topic created")
        }
        ProvisionOutcome::Existing => {
            tracing::info!(topic = %r.topic, partitions = r.partitions.len(), "topic exists")
        }
        ProvisionOutcome::Drift { differences } => {
            for d in differences {
                tracing::warn!(topic = %r.topic, setting = %d.setting, declared = %d.declared, actual = %d.actual, "topic drifts from its declaration; left unchanged");
            }
        }
        ProvisionOutcome::Failed { error } => {
            tracing::error!(topic = %r.topic, %error, "topic provisioning failed")
        }
    }
    for p in &r.partitions {
        tracing::debug!(topic = %r.topic, partition = p.id, leader = p.leader, replicas = ?p.replicas, isr = ?p.isr, "partition metadata");
    }
    for n in &r.notes {
        tracing::info!(topic = %r.topic, note = %n, "provisioning note");
    }
}
