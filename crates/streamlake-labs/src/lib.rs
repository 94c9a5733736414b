//! Labs: what Kafka guarantees and what it does not, shown on the running system with
//! numbers. Each lab works in its own uniquely named topics and groups, finishes in under a
//! minute with its defaults, and returns a report that prints as tables or serialises to JSON.
//!
//! # Layout
//! - [`partitioning`]: keyed messages land by key; keyless ones do not.
//! - [`ordering`]: order holds per key, not across keys; a checker that names violations.
//! - [`rebalance`]: a group scaled from one consumer to P+1 and back under load: assignments,
//!   rebalance times, lag per partition.
//! - [`semantics`]: at-most-once, at-least-once and effectively-once with a worker process
//!   killed at a chosen point; lost and duplicated records by id.
//! - [`failover`]: a node of a replicated cluster killed under HTTP load: every acknowledged
//!   event kept, answers bounded by the produce deadline, time without service.
//! - [`crash`]: `streamlake up` killed again and again under HTTP load: acknowledged, lost and
//!   duplicated events per stage (raw, dead letters, clean, each sink) and the recovery time
//!   after each kill.
//! - `lab`: what every lab shares: unique names, topic creation, clean-up.

pub mod crash;
pub mod failover;
mod lab;
pub mod ordering;
pub mod partitioning;
pub mod rebalance;
pub mod semantics;

pub use lab::{Lab, LabError};
