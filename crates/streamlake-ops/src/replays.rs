//! The replay log: which of a tenant's dead letters were replayed, and where to.
//!
//! It lives in a compacted topic beside the dead-letter topic (`{dlq_topic}.replays`), one
//! record per replayed dead letter, keyed by its `{partition}/{offset}`. A process keeps the
//! log's content in memory (a position and a short mark per replayed dead letter, not the dead
//! letters themselves) and catches up with the topic before it decides anything, so a restart
//! or another instance's replays are seen without reading the dead-letter topic.
//!
//! Within a process a dead letter is *claimed* before it is replayed, so two requests never
//! replay it at once; no lock is held across a replay. Across instances two replays of one
//! dead letter started in the same moment can both be written; the copies share the
//! `ingestion_id`, which the sinks deduplicate on.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use streamlake_core::headers as h;
use streamlake_kafka::{visit_ranges, Admin, KafkaSettings, Record, RecordVisitor};

use crate::dlq::ReplayMark;
use crate::{ErrorKind, OpsError, OpsResult};

/// A dead letter's place in its topic: partition and offset.
pub(crate) type Position = (i32, i64);

/// How long catching up waits for the next record before it gives up.
const READ_IDLE: Duration = Duration::from_secs(15);

/// The record key of a dead letter's entry in the replay log.
pub(crate) fn key_of((partition, offset): Position) -> String {
    format!("{partition}/{offset}")
}

/// `"{partition}/{offset}"` → position.
pub(crate) fn parse_position(s: &str) -> Option<Position> {
    let (p, o) = s.split_once('/')?;
    Some((p.parse().ok()?, o.parse().ok()?))
}

/// The mark a replay-log record carries, with the dead letter it marks.
pub(crate) fn mark_of(r: &Record) -> Option<(Position, ReplayMark)> {
    let pos = parse_position(&r.header_text(h::REPLAY_MARKER)?)?;
    let text = |name| r.header_text(name).unwrap_or_default();
    Some((
        pos,
        ReplayMark {
            at: text(h::REPLAY_AT),
            to: text(h::REPLAY_TO),
        },
    ))
}

#[derive(Debug, Default)]
struct State {
    marks: HashMap<Position, ReplayMark>,
    /// Per partition of the log topic, the next offset to read.
    next: BTreeMap<i32, i64>,
    /// Dead letters a request of this process is replaying now.
    claimed: HashSet<Position>,
}

/// One tenant's replay log. Cheap to share: clone the `Arc`.
#[derive(Debug)]
pub(crate) struct ReplayLog {
    topic: String,
    state: Mutex<State>,
    /// One catch-up read at a time; the others wait for it and then find little left to read.
    catching_up: tokio::sync::Mutex<()>,
}

/// Why a dead letter cannot be claimed.
#[derive(Debug)]
pub(crate) enum Refusal {
    /// It was replayed before.
    Replayed(ReplayMark),
    /// Another request of this process is replaying it now.
    InProgress,
}

/// A claimed dead letter: no other request of this process replays it until this is dropped.
#[derive(Debug)]
pub(crate) struct Claim {
    log: Arc<ReplayLog>,
    pos: Position,
}

impl Drop for Claim {
    fn drop(&mut self) {
        self.log.state().claimed.remove(&self.pos);
    }
}

impl Claim {
    /// Records that the claimed dead letter was replayed (after its entry was acknowledged).
    pub(crate) fn mark(&self, mark: ReplayMark) {
        self.log.state().marks.insert(self.pos, mark);
    }
}

/// Collects the marks of the log records a catch-up read delivers.
#[derive(Default)]
struct Collect {
    marks: Vec<(Position, ReplayMark)>,
    next: BTreeMap<i32, i64>,
}

impl RecordVisitor for Collect {
    fn visit(&mut self, r: Record) {
        self.next.insert(r.partition, r.offset + 1);
        if let Some(entry) = mark_of(&r) {
            self.marks.push(entry);
        }
    }
}

impl ReplayLog {
    pub(crate) fn new(topic: String) -> Arc<Self> {
        Arc::new(Self {
            topic,
            state: Mutex::new(State::default()),
            catching_up: tokio::sync::Mutex::new(()),
        })
    }

    /// The log's topic.
    pub(crate) fn topic(&self) -> &str {
        &self.topic
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // The state is consistent after every statement that changes it; a panic elsewhere
        // while it was held leaves nothing half-done.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Reads what was appended to the log since the last catch-up (everything, the first time).
    /// Fails when the log cannot be read to its end: a decision on a partial log could replay
    /// a dead letter twice.
    pub(crate) async fn catch_up(&self, settings: &KafkaSettings, admin: &Admin) -> OpsResult<()> {
        let _one = self.catching_up.lock().await;
        let info = admin.describe_topic(&self.topic).await.map_err(|e| {
            OpsError::new(
                ErrorKind::Unavailable,
                format!(
                    "the replay log {} cannot be read ({e}); provisioning creates it",
                    self.topic
                ),
            )
        })?;
        let ranges: BTreeMap<i32, (i64, i64)> = {
            let state = self.state();
            info.partitions
                .iter()
                .map(|p| {
                    let from = state.next.get(&p.id).copied().unwrap_or(0).max(p.low);
                    (p.id, (from, p.high))
                })
                .collect()
        };
        let (read, coverage) = visit_ranges(
            settings,
            &self.topic,
            ranges.clone(),
            READ_IDLE,
            Collect::default(),
        )
        .await?;
        if !coverage.complete() {
            return Err(OpsError::new(
                ErrorKind::Unavailable,
                format!(
                    "the replay log {} was not read to its end ({} records unread); try again",
                    self.topic,
                    coverage.unread_records()
                ),
            ));
        }
        let mut state = self.state();
        state.marks.extend(read.marks);
        for (p, (_, end)) in ranges {
            // Compaction leaves gaps; the high watermark is where the next read starts.
            let next = state.next.entry(p).or_insert(0);
            *next = (*next)
                .max(end)
                .max(read.next.get(&p).copied().unwrap_or(0));
        }
        Ok(())
    }

    /// The mark of a replayed dead letter.
    pub(crate) fn mark(&self, pos: Position) -> Option<ReplayMark> {
        self.state().marks.get(&pos).cloned()
    }

    /// Whether the dead letter was replayed.
    pub(crate) fn is_replayed(&self, pos: Position) -> bool {
        self.state().marks.contains_key(&pos)
    }

    /// Dead letters replayed.
    pub(crate) fn replayed(&self) -> usize {
        self.state().marks.len()
    }

    /// Claims a dead letter for a replay by this request.
    pub(crate) fn claim(self: &Arc<Self>, pos: Position) -> Result<Claim, Refusal> {
        let mut state = self.state();
        if let Some(mark) = state.marks.get(&pos) {
            return Err(Refusal::Replayed(mark.clone()));
        }
        if !state.claimed.insert(pos) {
            return Err(Refusal::InProgress);
        }
        Ok(Claim {
            log: Arc::clone(self),
            pos,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mark(to: &str) -> ReplayMark {
        ReplayMark {
            at: "2026-01-01T00:00:00Z".to_owned(),
            to: to.to_owned(),
        }
    }

    #[test]
    fn a_claimed_dead_letter_is_refused_until_released_and_refused_for_good_once_marked() {
        let log = ReplayLog::new("t.dlq.replays".to_owned());
        let first = log.claim((0, 7)).expect("free");
        assert!(matches!(log.claim((0, 7)), Err(Refusal::InProgress)));
        assert!(log.claim((1, 7)).is_ok(), "another position is free");
        drop(first);
        let again = log
            .claim((0, 7))
            .expect("released when the claim is dropped");
        again.mark(mark("t.raw/0/1"));
        drop(again);
        match log.claim((0, 7)) {
            Err(Refusal::Replayed(m)) => assert_eq!(m.to, "t.raw/0/1"),
            other => panic!("expected Replayed, got {other:?}"),
        }
        assert!(log.is_replayed((0, 7)));
        assert_eq!(log.replayed(), 1);
    }

    #[test]
    fn positions_round_trip_through_their_key() {
        assert_eq!(parse_position(&key_of((3, 42))), Some((3, 42)));
        assert_eq!(parse_position("3"), None);
        assert_eq!(parse_position("x/1"), None);
    }
}
