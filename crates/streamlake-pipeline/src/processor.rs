//! The `Processor` trait: what a processing stage decides for each consumed record.

use streamlake_core::DeadLetter;
use streamlake_kafka::{Headers, Record};

/// A record a processor wants written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Output {
    /// Destination topic.
    pub topic: String,
    /// Key (processors keep the input's key so per-key order survives).
    pub key: Option<Vec<u8>>,
    /// Value bytes.
    pub payload: Vec<u8>,
    /// Headers: the input's, extended.
    pub headers: Headers,
}

/// A processor's decision for one record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Write these records (possibly none).
    Emit(Vec<Output>),
    /// Refuse the record: the runtime writes it unchanged, with the `error.*` headers, to `topic`.
    DeadLetter {
        /// The dead-letter topic (the tenant's).
        topic: String,
        /// Why.
        letter: DeadLetter,
    },
    /// Drop the record on purpose (a filter); counted, not dead-lettered.
    Skip,
}

/// Decides, record by record, what goes on. Processors are synchronous and do no I/O: the
/// runtime owns producing and acknowledgements, so every processor gets the same guarantees.
pub trait Processor: Send {
    /// Name used in the `processor` header and logs.
    fn name(&self) -> &str;

    /// The decision for one record.
    fn process(&mut self, record: &Record) -> Outcome;
}
