//! The two presentations of the operations service ([`streamlake_ops`]): the admin REST API
//! (JSON, described by its OpenAPI document) and the web console (server-rendered HTML). Both
//! call the same [`Ops`] methods, so they give the same answers as the CLI.
//!
//! # Layout
//! - [`api`]: the `/api` router (JSON).
//! - [`console`]: the `/console` router (server-rendered HTML).

pub mod api;
pub mod console;

use std::sync::Arc;

use axum::Router;
use streamlake_ops::Ops;

/// The admin API and the console, to serve alone or merged with the gateway's router.
pub fn router(ops: Arc<Ops>) -> Router {
    api::router(Arc::clone(&ops)).merge(console::router(ops))
}
