//! StreamLake's sources: events that are pulled or generated rather than
//! pushed over HTTP, ingested through the same path as HTTP (`Ingestor::ingest`).
//!
//! # Layout
//! - [`source`]: the [`Source`] contract every source implements and [`drive`], the one driver
//!   that runs them: it ingests each batch, retries what the broker did not acknowledge, and
//!   acknowledges the batch to its source only after Kafka acknowledged every event of it.
//! - [`generator`]: sensor-reading and user-activity generators with rate, count, duration
//!   and key cardinality.
//! - [`poller`]: the Sensor.Community poller, its records mapped for every output.
//! - [`mqtt`]: MQTT ingestion, acknowledged to the MQTT broker after Kafka acknowledged.

pub mod generator;
pub mod mqtt;
pub mod poller;
pub mod source;

pub use generator::{run_generator, Generator, GeneratorConfig, Kind};
pub use source::{drive, Body, Emitted, Source, SourceError, SourceStats};
