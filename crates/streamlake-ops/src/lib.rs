//! Operations: every answer the admin API, the web console and the CLI give comes from here, so
//! the three agree. Each call takes the [`Principal`] asking: the admin sees everything, a
//! tenant only its own topics, groups and dead letters. Nothing here knows HTTP or HTML; the
//! view types serialize with one casing (camelCase), as the API serves them.
//!
//! # Layout
//! - `service`: [`Ops`] (built once: config, admin client, producer, the ingestion core for
//!   replays, tenants' keys) and [`Principal`], with the scope checks every call makes.
//! - [`error`]: [`OpsError`], the one error type, whose [`ErrorKind`] a presentation maps to a
//!   status.
//! - [`topics`], [`groups`], [`messages`]: the Kafka views.
//! - [`offsets`]: moving a group's committed offsets (with a dry run), deleting a group.
//! - [`dlq`]: dead letters and their replay through validation.
//! - `replays`: the replay log (a compacted topic per tenant) that keeps a dead letter from
//!   being replayed twice.
//! - [`overview`]: per-tenant counts and throughput.
//! - [`freshness`]: each dataset's age at every stage against its declared objective.
//! - [`labs`]: the labs, run from the API and the console.
//! - `history`: the lag and throughput samples behind the console's charts.
//! - [`sessions`]: console sessions (opaque ids) and one-time sign-in codes.

pub mod dlq;
pub mod error;
pub mod freshness;
pub mod groups;
mod history;
pub mod labs;
pub mod messages;
pub mod offsets;
pub mod overview;
mod replays;
mod service;
pub mod sessions;
pub mod topics;

pub use error::{ErrorKind, OpsError, OpsResult};
pub use history::{Point, Trend};
pub use service::{Ops, Principal, DEFAULT_LIMIT};
pub use sessions::{CODE_TTL, SESSION_TTL};
pub use topics::role_name;
