//! StreamLake's sinks: clean records landed in files (CSV, JSON Lines, Parquet) and tables,
//! offsets stored only after the sink made them durable (at-least-once), each row traceable
//! to its `ingestion_id`.
//!
//! # Layout
//! - [`sink`]: the [`Sink`] trait, [`Target`] (one dataset's table or file) and [`SinkHandler`],
//!   the runtime that converts records, dead-letters what cannot be converted and checkpoints.
//! - [`row`]: a record as typed [`Row`] cells.
//! - [`kind`]: [`SinkKind`], what each kind of store implements (its config type, its checks,
//!   how to open it), and [`SINKS`], the registry of every kind, which the config loader checks
//!   `[sinks.NAME.KIND]` tables with.
//! - [`csv`], [`jsonl`], [`parquet`] (feature `parquet`), [`postgres`] (feature `postgres`):
//!   one folder per kind, holding the store and its `config.rs`.
//! - `run`: [`run_sink`], a configured sink as one consumer group member.

pub mod csv;
mod files;
pub mod jsonl;
pub mod kind;
#[cfg(feature = "parquet")]
pub mod parquet;
#[cfg(feature = "postgres")]
pub mod postgres;
pub mod row;
mod run;
pub mod sink;

pub use kind::{OpenContext, SinkKind, Sinks, SINKS};
pub use row::{Cell, Meta, Row};
pub use run::run_sink;
pub use sink::{Sink, SinkError, SinkHandler, SinkStats, Target};
