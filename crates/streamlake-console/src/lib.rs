//! Operations: the admin REST API, the web console and dead-letter replay,
//! over one service so that the API, the console and the CLI give the same answers.
//!
//! # Layout
//! - [`ops`]: [`Ops`], the service: topics, partitions, configs, groups and lag, message
//!   browsing, each call scoped by the [`Principal`] asking (admin or one tenant).
//! - [`dlq`]: dead letters and their replay through validation, with replay markers.
//! - [`labs`]: the labs, run from the API and the console.
//! - [`overview`]: per-tenant counts and throughput.
//! - `history`: the lag and throughput samples behind the console's charts.
//! - [`api`]: the `/api` router (JSON).
//! - [`console`]: the `/console` router (server-rendered HTML).

pub mod api;
pub mod console;
pub mod dlq;
mod history;
pub mod labs;
pub mod ops;
pub mod overview;

pub use history::Point;
pub use ops::{ErrorKind, Ops, OpsError, Principal};

use std::sync::Arc;

use axum::Router;

/// The admin API and the console, to serve alone or merged with the gateway's router.
pub fn router(ops: Arc<Ops>) -> Router {
    api::router(Arc::clone(&ops)).merge(console::router(ops))
}
