//! StreamLake's sources: events that are pulled or generated rather than
//! pushed over HTTP, ingested through the same path as HTTP (`Ingestor::ingest`).
//!
//! # Layout
//! - [`source`]: the [`Source`] trait and [`drive`], which acknowledges a batch to its source
//!   only after Kafka acknowledged every event of it.
//! - [`generator`]: sensor-reading and user-activity generators with rate, count, duration
//!   and key cardinality.
//! - [`mqtt`]: MQTT ingestion, acknowledged to the MQTT broker after Kafka acknowledged.

pub mod generator;
pub mod mqtt;
pub mod poller;
pub mod source;

pub use generator::{run_generator, Generator, GeneratorConfig, Kind};
pub use source::{drive, Event, Source, SourceError, SourceStats};
