//! Producer against the real broker: deterministic keyed partitioning, headers round-trip, a
//! full local queue reported to the caller instead of waiting or dropping, and records queued
//! now whose acknowledgements are collected later.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use streamlake_core::TopicSpec;
use streamlake_kafka::{Admin, Deliveries, Headers, Outgoing, ProduceError, Producer};
use streamlake_testkit::{settings, unique};

async fn topic(partitions: i32) -> String {
    let name = unique("producer");
    let admin = Admin::new(&settings().await).unwrap();
    admin
        .create_topic(&TopicSpec {
            name: name.clone(),
            partitions,
            replication_factor: None,
            configs: BTreeMap::new(),
        })
        .await
        .unwrap();
    name
}

#[tokio::test]
async fn same_key_always_lands_in_the_same_partition() {
    let topic = topic(3).await;
    let producer = Producer::new(&settings().await).unwrap();
    let mut partitions_of: BTreeMap<String, BTreeSet<i32>> = BTreeMap::new();
    let mut offsets = BTreeSet::new();
    for round in 0..3 {
        for k in 100..110 {
            let key = format!("order-{k}");
            let r = producer
                .send_json(
                    &topic,
                    Some(key.as_bytes()),
                    &serde_json::json!({"round": round}),
                    &Headers::new(),
                )
                .await
                .unwrap();
            assert_eq!(r.topic, topic);
            assert!(
                offsets.insert((r.partition, r.offset)),
                "offset reused: {r:?}"
            );
            partitions_of.entry(key).or_default().insert(r.partition);
        }
    }
    for (key, parts) in &partitions_of {
        assert_eq!(parts.len(), 1, "key {key} landed in partitions {parts:?}");
    }
    let used: BTreeSet<i32> = partitions_of.values().flatten().copied().collect();
    assert!(
        used.len() > 1,
        "10 distinct keys should spread over more than one of 3 partitions"
    );
    let info = Admin::new(&settings().await)
        .unwrap()
        .describe_topic(&topic)
        .await
        .unwrap();
    assert_eq!(info.message_count(), 30);
}

#[tokio::test]
async fn headers_and_key_round_trip_through_the_broker() {
    let topic = topic(1).await;
    let s = settings().await;
    let producer = Producer::new(&s).unwrap();
    let headers = Headers::new()
        .with("tenant", "acme")
        .with("ingestion_id", "0192-abc")
        .with("binary", [0u8, 159, 146, 150]);
    let receipt = producer
        .send(&topic, Some(b"k-1"), br#"{"v":1}"#, &headers)
        .await
        .unwrap();

    let mut consumer = streamlake_testkit::Reader::new(&s, &topic).await;
    let records = consumer.read(1, Duration::from_secs(20)).await;
    let r = &records[0];
    assert_eq!((r.partition, r.offset), (receipt.partition, receipt.offset));
    assert_eq!(r.key.as_deref(), Some(&b"k-1"[..]));
    assert_eq!(r.payload.as_deref(), Some(&br#"{"v":1}"#[..]));
    assert_eq!(r.header("tenant"), Some(&b"acme"[..]));
    assert_eq!(r.header("ingestion_id"), Some(&b"0192-abc"[..]));
    assert_eq!(r.header("binary"), Some(&[0u8, 159, 146, 150][..]));
}

#[tokio::test]
async fn a_full_queue_is_reported_to_the_caller() {
    let topic = topic(1).await;
    let mut s = settings().await;
    // One record fits; linger keeps it queued while the others try to get in.
    s.producer
        .insert("queue.buffering.max.messages".into(), "1".into());
    s.producer.insert("linger.ms".into(), "2000".into());
    let producer = Producer::new(&s).unwrap();
    let h = Headers::new();
    let payloads: Vec<String> = (0..3).map(|i| i.to_string()).collect();
    // join_all polls the sends in order: the first enqueues, the later ones find the queue full.
    let sends = payloads
        .iter()
        .map(|p| producer.send(&topic, None, p.as_bytes(), &h));
    let results = futures::future::join_all(sends).await;
    let full = results
        .iter()
        .filter(|r| matches!(r, Err(ProduceError::QueueFull { .. })))
        .count();
    let ok = results.iter().filter(|r| r.is_ok()).count();
    assert_eq!((ok, full), (1, 2), "{results:?}");
    let err = results.iter().find_map(|r| r.as_ref().err()).unwrap();
    assert!(!err.possibly_persisted());
    assert!(err.to_string().contains("queue is full"), "{err}");
}

#[tokio::test]
async fn a_batch_answers_in_its_records_order_and_keeps_each_keys_order() {
    let topic = topic(3).await;
    let s = settings().await;
    let producer = Producer::new(&s).unwrap();
    let records: Vec<(String, String)> = (0..60)
        .map(|i| (format!("key-{}", i % 4), format!(r#"{{"seq":{i}}}"#)))
        .collect();
    let sent = producer
        .send_all(
            &topic,
            records.iter().map(|(key, payload)| Outgoing {
                key: Some(key.as_bytes()),
                payload: payload.as_bytes(),
                headers: None,
            }),
        )
        .await;
    assert_eq!(sent.len(), records.len());
    // Each key's records take increasing offsets in one partition, in the batch's order.
    let mut last: BTreeMap<&str, (i32, i64)> = BTreeMap::new();
    for ((key, _), s) in records.iter().zip(&sent) {
        let r = s.result.as_ref().unwrap();
        if let Some(&(partition, offset)) = last.get(key.as_str()) {
            assert_eq!(r.partition, partition, "key {key} changed partition");
            assert!(r.offset > offset, "key {key} out of order: {r:?}");
        }
        last.insert(key, (r.partition, r.offset));
    }
    // The receipts point at the records they answer.
    let mut reader = streamlake_testkit::Reader::new(&s, &topic).await;
    let stored = reader.read(records.len(), Duration::from_secs(20)).await;
    for ((_, payload), s) in records.iter().zip(&sent) {
        let r = s.result.as_ref().unwrap();
        let found = stored
            .iter()
            .find(|m| (m.partition, m.offset) == (r.partition, r.offset))
            .expect("a record at every receipt");
        assert_eq!(found.payload.as_deref(), Some(payload.as_bytes()));
    }
}

#[tokio::test]
async fn a_batch_reports_a_full_queue_per_record() {
    let topic = topic(1).await;
    let mut s = settings().await;
    s.producer
        .insert("queue.buffering.max.messages".into(), "2".into());
    let producer = Producer::new(&s).unwrap();
    let sent = producer
        .send_all(
            &topic,
            (0..4).map(|_| Outgoing {
                key: None,
                payload: b"{}",
                headers: None,
            }),
        )
        .await;
    let outcomes: Vec<bool> = sent.iter().map(|s| s.result.is_ok()).collect();
    assert_eq!(outcomes, [true, true, false, false], "{sent:?}");
    assert!(matches!(
        sent[3].result,
        Err(ProduceError::QueueFull { .. })
    ));
}

#[tokio::test]
async fn a_batch_the_queue_has_no_room_for_is_refused_whole_and_queues_nothing() {
    let topic = topic(1).await;
    let mut s = settings().await;
    s.producer
        .insert("queue.buffering.max.messages".into(), "3".into());
    // Linger keeps the first batch queued while the second tries to get in.
    s.producer.insert("linger.ms".into(), "2000".into());
    let producer = Producer::new(&s).unwrap();
    let batch = || {
        (0..2).map(|_| Outgoing {
            key: None,
            payload: b"{}",
            headers: None,
        })
    };
    let first = producer.send_all(&topic, batch());
    let second = async {
        let queued = streamlake_testkit::eventually(Duration::from_secs(10), || async {
            (producer.in_flight() == 2).then_some(())
        })
        .await;
        assert!(queued.is_some(), "the first batch is queued");
        assert!(!producer.has_room(2) && producer.has_room(1));
        let refused = producer.send_all(&topic, batch()).await;
        // Nothing of it was queued: one record still fits, but not the batch.
        assert_eq!(producer.in_flight(), 2);
        refused
    };
    let (first, second) = futures::join!(first, second);
    assert!(first.iter().all(|s| s.result.is_ok()), "{first:?}");
    assert!(
        second
            .iter()
            .all(|s| matches!(s.result, Err(ProduceError::QueueFull { queued: 2 }))),
        "{second:?}"
    );
}

#[tokio::test]
async fn queued_records_are_acknowledged_when_collected_and_a_refused_one_is_reported() {
    let name = unique("producer-queued");
    let admin = Admin::new(&settings().await).unwrap();
    admin
        .create_topic(&TopicSpec {
            name: name.clone(),
            partitions: 2,
            replication_factor: None,
            configs: BTreeMap::from([("max.message.bytes".to_owned(), "2048".to_owned())]),
        })
        .await
        .unwrap();
    let s = settings().await;
    let producer = Producer::new(&s).unwrap();
    let mut deliveries = Deliveries::default();
    let records: Vec<(String, String)> = (0..20)
        .map(|i| (format!("key-{}", i % 2), format!(r#"{{"seq":{i}}}"#)))
        .collect();
    for (key, payload) in &records {
        let record = Outgoing {
            key: Some(key.as_bytes()),
            payload: payload.as_bytes(),
            headers: Some(
                Headers::new()
                    .with("seq", payload.as_str())
                    .to_owned_headers(),
            ),
        };
        producer.queue(&name, record, &mut deliveries).unwrap();
    }
    assert_eq!(deliveries.len(), 20, "queued, none collected yet");
    deliveries.all_delivered().await.unwrap();
    assert!(deliveries.is_empty());

    // Every record is there, each key's in the order queued.
    let mut reader = streamlake_testkit::Reader::new(&s, &name).await;
    let stored = reader.read(records.len(), Duration::from_secs(20)).await;
    for key in ["key-0", "key-1"] {
        let mut in_log: Vec<_> = stored
            .iter()
            .filter(|r| r.key.as_deref() == Some(key.as_bytes()))
            .collect();
        in_log.sort_by_key(|r| r.offset);
        let queued: Vec<&[u8]> = records
            .iter()
            .filter(|(k, _)| k == key)
            .map(|(_, p)| p.as_bytes())
            .collect();
        let logged: Vec<&[u8]> = in_log.iter().filter_map(|r| r.payload.as_deref()).collect();
        assert_eq!(logged, queued, "{key}");
        assert_eq!(in_log[0].header("seq"), Some(queued[0]));
    }

    // The broker refuses a record above the topic's limit: its report says so when collected.
    // (Bytes that do not compress, so the record stays large on the wire.)
    let mut state = 0x2545_f491_4f6c_dd1d_u64;
    let big: Vec<u8> = (0..8 * 1024)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect();
    let record = Outgoing {
        key: None,
        payload: &big,
        headers: None,
    };
    producer.queue(&name, record, &mut deliveries).unwrap();
    let refused = deliveries.all_delivered().await.unwrap_err();
    assert!(
        matches!(refused, ProduceError::Kafka(_)),
        "a broker refusal, not a timeout: {refused:?}"
    );
    assert!(
        refused.to_string().to_lowercase().contains("large"),
        "{refused}"
    );
    assert!(deliveries.is_empty());
}

/// Delivery reports are served on the runtime a producer was made on, and from a thread when
/// there is none: a producer made outside any runtime, and one whose runtime has stopped, still
/// see their records acknowledged (a record nobody served would time out instead).
#[test]
fn reports_arrive_when_the_producers_runtime_is_gone_or_was_never_there() {
    let runtime = || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    };
    let send = |producer: &Producer, topic: &str, n: u8| {
        let (producer, topic) = (producer.clone(), topic.to_owned());
        async move {
            producer
                .send(&topic, Some(&[n]), &[n], &Headers::new())
                .await
                .unwrap_or_else(|e| panic!("record {n}: {e}"))
        }
    };
    let first = runtime();
    let (s, topic) = first.block_on(async { (settings().await, topic(1).await) });
    let made_in_first = first.block_on(async {
        Producer::new(&s)
            .unwrap()
            .with_deadline(Duration::from_secs(30))
    });
    let before = first.block_on(send(&made_in_first, &topic, 1));
    drop(first);

    let made_outside = Producer::new(&s)
        .unwrap()
        .with_deadline(Duration::from_secs(30));
    let second = runtime();
    let after = second.block_on(send(&made_in_first, &topic, 2));
    let outside = second.block_on(send(&made_outside, &topic, 3));
    assert_eq!(after.offset, before.offset + 1);
    assert_eq!(outside.offset, before.offset + 2);
}
