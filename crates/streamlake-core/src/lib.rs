//! StreamLake's domain vocabulary, shared by every other crate. No I/O lives here.
//!
//! # Layout
//! - [`id`]: validated identifiers ([`TenantId`], [`DatasetId`]) and Kafka topic-name rules.
//! - [`naming`]: the per-tenant topic naming templates (`{tenant}.{dataset}.raw`, ...).
//! - [`health`]: components' readiness as `/readyz` reports it.
//! - [`headers`]: the metadata header names every stage reads and writes, in one place.
//! - [`latency`]: a stage's recent latencies per dataset, bounded, for freshness reports.
//! - [`dead_letter`]: what a dead letter carries besides the original record.
//! - [`retry`]: [`RetryPolicy`], the back-off with jitter every retry loop uses.
//! - [`topic`]: a declared topic with its desired partition count and configs.

pub mod dead_letter;
pub mod headers;
pub mod health;
pub mod id;
pub mod latency;
pub mod naming;
pub mod retry;
pub mod topic;

pub use dead_letter::{DeadLetter, Stage, Violation};
pub use health::{Condition, Health};
pub use id::{validate_topic_name, DatasetId, IdError, TenantId};
pub use latency::{LatencyWindows, Quantiles};
pub use naming::{TopicNaming, TopicRole};
pub use retry::{Backoff, RetryPolicy};
pub use topic::TopicSpec;
