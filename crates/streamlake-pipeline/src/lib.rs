//! StreamLake's processing stage: raw topics → clean topics, invalid records to
//! the tenant's dead-letter topic.
//!
//! # Layout
//! - [`processor`]: the [`Processor`] trait and its per-record [`Outcome`].
//! - [`runtime`]: [`ProcessorHandler`] (produce, await acknowledgements, then store offsets) and
//!   [`supervise`], which restarts a failed consumer group member from its stored offsets.
//! - [`rules`]: [`ConfigProcessor`], the config-driven processor (normalize, rules, derive).
//! - [`json`]: JSON pointer writes and timestamp parsing, shared with the sinks.
//! - `run`: [`run_pipeline`], a configured pipeline as one consumer group member.

pub mod json;
pub mod processor;
pub mod rules;
mod run;
pub mod runtime;

pub use processor::{Outcome, Output, Processor};
pub use rules::{ConfigProcessor, DatasetProcessing};
pub use run::run_pipeline;
pub use runtime::{supervise, ProcessorHandler, ProcessorStats};
pub use streamlake_core::Violation;
