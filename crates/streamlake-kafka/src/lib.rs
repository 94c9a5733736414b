//! StreamLake's Kafka layer, on librdkafka through the `rdkafka` crate.
//!
//! # Layout
//! - [`settings`]: how to reach the cluster ([`KafkaSettings`]) and the producer defaults.
//! - [`producer`]: [`Producer`], acknowledged produce with backpressure surfaced to the caller.
//! - [`record`]: [`Record`], an owned consumed record, and [`Headers`] for outgoing ones.
//! - [`consumer`]: [`ConsumerRunner`], batches to a [`BatchHandler`], offsets stored only after
//!   the handler succeeded (at-least-once).
//! - [`admin`]: [`Admin`], topics, configs, consumer groups, watermarks and lag.
//! - [`browse`]: a bounded range of records, read without a group.
//! - [`distribution`](mod@distribution): how a topic's records spread over partitions and keys.
//! - [`partitioner`]: the partition a key lands on, Java-compatible by default.
//! - [`provision`](mod@provision): create declared topics, report existing ones and drift.
//! - [`shutdown`]: SIGINT/SIGTERM to a cancellation token.
//! - [`tail`]: [`Tail`], topics followed from their beginning for the life of the process.
//!
//! What this crate does not do: validation, routing or any knowledge of tenants beyond topic
//! names. Those live in the crates that use it.

pub mod admin;
pub mod browse;
pub mod consumer;
pub mod distribution;
pub mod partitioner;
mod polling;
pub mod producer;
pub mod provision;
pub mod record;
mod reports;
pub mod settings;
pub mod shutdown;
pub mod tail;

pub use admin::{
    Admin, AdminError, GroupLag, GroupSummary, PartitionInfo, PartitionLag, TopicInfo,
};
pub use browse::{oldest_unread, read_ranges, visit_ranges, Coverage, RecordVisitor};
pub use consumer::{
    BatchHandler, ConsumerError, ConsumerOptions, ConsumerRunner, HandlerError, Membership,
    RunStats,
};
pub use distribution::{distribution, Distribution};
pub use partitioner::{Partitioner, DEFAULT_PARTITIONER};
pub use producer::{Deliveries, DeliveryReceipt, Late, Outgoing, ProduceError, Producer, Sent};
pub use provision::{provision, Drift, ProvisionOutcome, ProvisionReport};
/// A consumer's group membership as a transaction's offset commit needs it
/// ([`BatchHandler::handle_in_group`], [`Producer::commit_transaction`]).
pub use rdkafka::consumer::ConsumerGroupMetadata;
/// librdkafka's error type, for callers that report client creation failures.
pub use rdkafka::error::KafkaError;
/// librdkafka's record headers, for [`Producer::send_owned`].
pub use rdkafka::message::{Header, OwnedHeaders};
/// Offsets per topic and partition, for [`Producer::commit_transaction`].
pub use rdkafka::{Offset, TopicPartitionList};
pub use record::{Headers, Record};
pub use settings::{
    KafkaSettings, GATEWAY_PRODUCER_DEFAULTS, PROCESSOR_PRODUCER_DEFAULTS, PRODUCER_DEFAULTS,
};
pub use tail::Tail;
