//! What every lab shares: its unique names, the topics it creates, and their clean-up.

use std::time::Duration;

use streamlake_kafka::{Admin, AdminError, KafkaSettings};

/// Why a lab could not run.
#[derive(Debug, thiserror::Error)]
pub enum LabError {
    /// A cluster operation failed.
    #[error(transparent)]
    Admin(#[from] AdminError),
    /// Producing failed.
    #[error("produce failed: {0}")]
    Produce(#[from] streamlake_kafka::ProduceError),
    /// A client could not be created or used.
    #[error("{0}")]
    Kafka(#[from] streamlake_kafka::KafkaError),
    /// Anything else, in words.
    #[error("{0}")]
    Other(String),
}

/// One lab run: its name prefix and the topics it created.
#[derive(Debug)]
pub struct Lab {
    /// Client settings.
    pub settings: KafkaSettings,
    pub(crate) admin: Admin,
    /// `lab-{name}-{8 hex}`: the prefix of every topic and group of this run.
    pub prefix: String,
    topics: Vec<String>,
}

/// Eight hex digits, unique enough to keep runs apart.
fn short_id() -> String {
    uuid::Uuid::new_v4().simple().to_string()[..8].to_owned()
}

impl Lab {
    /// A run of lab `name` against `settings`' cluster.
    pub fn new(settings: &KafkaSettings, name: &str) -> Result<Self, LabError> {
        Ok(Self {
            settings: settings.clone(),
            admin: Admin::new(settings)?,
            prefix: format!("lab-{name}-{}", short_id()),
            topics: Vec::new(),
        })
    }

    /// Creates topic `{prefix}-{suffix}` with `partitions` and waits until its metadata shows
    /// them.
    pub async fn topic(&mut self, suffix: &str, partitions: i32) -> Result<String, LabError> {
        let name = format!("{}-{suffix}", self.prefix);
        self.admin
            .create_topic(&streamlake_core::TopicSpec {
                name: name.clone(),
                partitions,
                replication_factor: None,
                configs: Default::default(),
            })
            .await?;
        self.topics.push(name.clone());
        self.admin
            .await_topic(&name, partitions.max(1) as usize, Duration::from_secs(30))
            .await?;
        Ok(name)
    }

    /// A group id of this run.
    pub fn group(&self, suffix: &str) -> String {
        format!("{}-{suffix}", self.prefix)
    }

    /// Deletes the run's topics. Returns what was done, in words.
    pub async fn clean_up(&self) -> String {
        let mut failed = Vec::new();
        for t in &self.topics {
            if let Err(e) = self.admin.delete_topic(t).await {
                failed.push(format!("{t}: {e}"));
            }
        }
        if failed.is_empty() {
            format!("deleted the topics {}", self.topics.join(", "))
        } else {
            format!("could not delete {}", failed.join("; "))
        }
    }
}
