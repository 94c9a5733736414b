//! StreamLake's processing stage: raw topics → clean topics, invalid records to
//! the tenant's dead-letter topic.
//!
//! # Layout
//! - [`processor`]: the [`Processor`] trait and its per-record [`Outcome`].
//! - [`runtime`]: [`ProcessorHandler`] (produce, await acknowledgements, then store offsets) and
//!   [`supervise`], which restarts a failed consumer group member from its stored offsets.
//! - [`processing`]: [`ConfigProcessor`], the config-driven processor, and [`STEPS`], the
//!   registry of its step kinds (normalize, rules, derive), one module each.
//! - [`json`]: JSON pointer writes and timestamp parsing, shared with the sinks.
//! - `run`: [`run_pipeline`], a configured pipeline as one consumer group member.
//! - [`watch`]: [`watch_stage`], which reports a stage that holds no partitions while its topics
//!   wait to be read.

pub mod json;
pub mod processing;
pub mod processor;
mod run;
pub mod runtime;
pub mod watch;

pub use processing::{ConfigProcessor, DatasetProcessing, StepKind, Steps, STEPS};
pub use processor::{Outcome, Output, Processor};
pub use run::run_pipeline;
pub use runtime::{supervise, ProcessorHandler, ProcessorStats};
pub use streamlake_core::Violation;
pub use watch::{watch_stage, StageWatch};
