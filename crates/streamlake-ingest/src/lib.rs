//! The transport-neutral ingestion core: one event, or a batch, validated against its
//! dataset's schema, keyed, given the metadata headers and produced with its bytes unchanged to
//! the dataset's raw topic, or dead-lettered with the reason; done only once the broker
//! acknowledged. HTTP, MQTT, pollers, generators and dead-letter replay all ingest through
//! [`Ingestor`]; none of them knows another.
//!
//! # Layout
//! - [`event`]: bodies (one JSON value, a JSON array, NDJSON) into events with their bytes;
//!   JSON is parsed strictly into a `Doc` borrowed from the body (an object naming a key
//!   twice is refused).
//! - [`ingestor`]: [`Ingestor`], built once: routes, schemas, the producer, metrics.
//! - [`ingest`](mod@ingest): one request's events to the raw or the dead-letter topic: [`Outcome`]s.
//! - `source`: the one-event API sources use ([`Ingested`]).
//! - [`preview`]: the partition a key would land on, without writing.
//! - `keys`: [`TenantKeys`], tenants' API keys (several per tenant, plain or hashed) compared
//!   in constant time, for every surface that authenticates tenants, replaceable while running.

pub mod event;
pub mod ingest;
pub mod ingestor;
mod keys;
pub mod preview;
mod source;
mod throttle;

pub use event::{parse, Event, Framing, Parsed};
pub use ingest::{
    dead_letter_body, ingest, ingest_all, ingest_all_late, LateOutcomes, Outcome, Target,
    MAX_RECORD_RULE, TRUNCATED_PAYLOAD_BYTES,
};
pub use ingestor::{IngestError, Ingestor};
pub use keys::{hash_key, TenantKeys};
pub use preview::{PartitionPreview, PreviewError};
pub use source::{Ingested, UnknownDataset};
