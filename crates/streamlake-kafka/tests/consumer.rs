//! The consumer runner against the real broker: offsets are stored only after the handler
//! succeeded, so a restart continues after acknowledged batches and replays a failed one; a
//! batch without a wait is what was already fetched.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use streamlake_core::TopicSpec;
use streamlake_kafka::{
    Admin, BatchHandler, ConsumerError, ConsumerOptions, ConsumerRunner, HandlerError, Headers,
    KafkaSettings, Producer, Record,
};
use streamlake_testkit::{settings, unique};
use tokio_util::sync::CancellationToken;

/// Collects record payloads and cancels the run once `stop_after` records were seen; fails
/// every batch while `fail` is set.
struct Collect {
    seen: Vec<String>,
    batches: Vec<usize>,
    stop_after: usize,
    fail: bool,
    shutdown: CancellationToken,
}

impl BatchHandler for Collect {
    async fn handle(&mut self, batch: &[Record]) -> Result<(), HandlerError> {
        if self.fail {
            return Err("simulated handler failure".into());
        }
        self.batches.push(batch.len());
        for r in batch {
            self.seen
                .push(String::from_utf8(r.payload.clone().unwrap_or_default())?);
        }
        if self.seen.len() >= self.stop_after {
            self.shutdown.cancel();
        }
        Ok(())
    }
}

async fn setup(n: usize) -> (KafkaSettings, String, Vec<String>) {
    let s = settings().await;
    let topic = unique("runner");
    Admin::new(&s)
        .unwrap()
        .create_topic(&TopicSpec {
            name: topic.clone(),
            partitions: 3,
            replication_factor: None,
            configs: BTreeMap::new(),
        })
        .await
        .unwrap();
    let ids = produce(&s, &topic, 0..n).await;
    (s, topic, ids)
}

async fn produce(s: &KafkaSettings, topic: &str, range: std::ops::Range<usize>) -> Vec<String> {
    let producer = Producer::new(s).unwrap();
    let mut ids = Vec::new();
    for i in range {
        let id = format!("id-{i}");
        producer
            .send(
                topic,
                Some(format!("k{}", i % 7).as_bytes()),
                id.as_bytes(),
                &Headers::new(),
            )
            .await
            .unwrap();
        ids.push(id);
    }
    ids
}

async fn run(
    s: &KafkaSettings,
    group: &str,
    topic: &str,
    stop_after: usize,
    fail: bool,
) -> (Result<u64, ConsumerError>, Vec<String>) {
    let (result, handler) = run_with(s, group, topic, stop_after, fail, 50).await;
    (result, handler.seen)
}

async fn run_with(
    s: &KafkaSettings,
    group: &str,
    topic: &str,
    stop_after: usize,
    fail: bool,
    batch_max_wait_ms: u64,
) -> (Result<u64, ConsumerError>, Collect) {
    let shutdown = CancellationToken::new();
    let mut options = ConsumerOptions::new(group, vec![topic.to_owned()]);
    options.batch_max_size = 7;
    options.batch_max_wait = Duration::from_millis(batch_max_wait_ms);
    let runner = ConsumerRunner::new(s, options).unwrap();
    let mut handler = Collect {
        seen: Vec::new(),
        batches: Vec::new(),
        stop_after,
        fail,
        shutdown: shutdown.clone(),
    };
    // A safety net so a broken runner fails the test instead of hanging it.
    let guard = shutdown.clone();
    let timer = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_secs(30)).await;
        guard.cancel();
    });
    let result = runner.run(&mut handler, shutdown).await.map(|s| s.records);
    timer.abort();
    (result, handler)
}

#[tokio::test]
async fn acknowledged_batches_are_not_seen_again_after_a_restart() {
    let (s, topic, ids) = setup(40).await;
    let group = unique("group");

    let (result, first) = run(&s, &group, &topic, 40, false).await;
    assert_eq!(result.unwrap(), 40);
    let unique_first: BTreeSet<&String> = first.iter().collect();
    assert_eq!(unique_first.len(), 40, "each record once: {first:?}");
    assert_eq!(unique_first, ids.iter().collect());

    let more = produce(&s, &topic, 40..50).await;
    let (result, second) = run(&s, &group, &topic, 10, false).await;
    assert_eq!(result.unwrap(), 10);
    assert_eq!(
        second.iter().collect::<BTreeSet<_>>(),
        more.iter().collect::<BTreeSet<_>>(),
        "after the restart only the new records arrive"
    );

    let lag = Admin::new(&s)
        .unwrap()
        .group_lag(&group, std::slice::from_ref(&topic))
        .await
        .unwrap();
    assert_eq!(lag.total_lag, 0, "{lag:?}");
    assert_eq!(
        lag.partitions
            .iter()
            .filter_map(|p| p.committed)
            .sum::<i64>(),
        50
    );
}

#[tokio::test]
async fn a_failed_batch_is_delivered_again_after_a_restart() {
    let (s, topic, ids) = setup(20).await;
    let group = unique("group");

    let (result, seen) = run(&s, &group, &topic, 20, true).await;
    let err = result.unwrap_err();
    assert!(matches!(err, ConsumerError::Handler { .. }), "{err}");
    assert!(err.to_string().contains("simulated handler failure"));
    assert!(seen.is_empty());

    let lag = Admin::new(&s)
        .unwrap()
        .group_lag(&group, std::slice::from_ref(&topic))
        .await
        .unwrap();
    assert_eq!(lag.total_lag, 20, "nothing was acknowledged: {lag:?}");

    let (result, replayed) = run(&s, &group, &topic, 20, false).await;
    assert_eq!(result.unwrap(), 20);
    assert_eq!(
        replayed.iter().collect::<BTreeSet<_>>(),
        ids.iter().collect::<BTreeSet<_>>(),
        "every record arrives after the failed run"
    );
}

#[tokio::test]
async fn without_a_batch_wait_a_batch_is_what_was_already_fetched() {
    let (s, topic, ids) = setup(40).await;
    let group = unique("group");

    let (result, handler) = run_with(&s, &group, &topic, 40, false, 0).await;
    assert_eq!(result.unwrap(), 40);
    assert_eq!(
        handler.seen.iter().collect::<BTreeSet<_>>(),
        ids.iter().collect::<BTreeSet<_>>(),
        "every record once: {:?}",
        handler.seen
    );
    assert_eq!(handler.seen.len(), 40, "{:?}", handler.seen);
    // The records were all in the topic before the run: fetched together, they are handed over
    // together, up to the batch size, rather than one at a time.
    assert!(
        handler.batches.iter().all(|&n| (1..=7).contains(&n)),
        "{:?}",
        handler.batches
    );
    assert!(
        handler.batches.iter().any(|&n| n > 1),
        "{:?}",
        handler.batches
    );
}
