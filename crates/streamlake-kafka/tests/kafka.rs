//! The Kafka semantics StreamLake's code paths rely on, against a real Apache Kafka: topic
//! deletes that touch one topic, partition increases, consumer groups with state and members,
//! offset resets, transactions under `read_committed`, and an idempotent producer that outlives
//! a broker outage longer than its delivery timeout.

use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, StreamConsumer};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer as _};
use rdkafka::{Offset, TopicPartitionList};
use streamlake_kafka::{Admin, AdminError, Headers, Producer};
use streamlake_testkit::{
    eventually, produce_numbered, settings, topic_spec, unique, PrivateBroker, Reader,
};

#[tokio::test]
async fn deleting_a_topic_deletes_that_topic_and_no_other() {
    let s = settings().await;
    let admin = Admin::new(&s).unwrap();
    let (victim, bystander) = (unique("victim"), unique("bystander"));
    admin.create_topic(&topic_spec(&victim, 1)).await.unwrap();
    admin
        .create_topic(&topic_spec(&bystander, 1))
        .await
        .unwrap();
    produce_numbered(&s, &bystander, 3).await;

    admin.delete_topic(&victim).await.unwrap();
    let gone = eventually(Duration::from_secs(30), || async {
        matches!(
            admin.describe_topic(&victim).await,
            Err(AdminError::UnknownTopic(_))
        )
        .then_some(())
    })
    .await;
    assert!(gone.is_some(), "{victim} still exists");
    let kept = admin.describe_topic(&bystander).await.unwrap();
    assert_eq!(kept.message_count(), 3, "{kept:?}");
    assert!(matches!(
        admin.delete_topic(&victim).await,
        Err(AdminError::UnknownTopic(_))
    ));
}

#[tokio::test]
async fn partitions_can_be_added_but_never_removed() {
    let s = settings().await;
    let admin = Admin::new(&s).unwrap();
    let topic = unique("grow");
    admin.create_topic(&topic_spec(&topic, 2)).await.unwrap();
    produce_numbered(&s, &topic, 4).await;

    admin.add_partitions(&topic, 5).await.unwrap();
    let grown = eventually(Duration::from_secs(30), || async {
        let info = admin.describe_topic(&topic).await.ok()?;
        (info.partitions.len() == 5).then_some(info)
    })
    .await
    .expect("the topic has 5 partitions");
    assert_eq!(grown.message_count(), 4, "records stay where they were");

    let err = admin.add_partitions(&topic, 3).await.unwrap_err();
    assert!(matches!(err, AdminError::Invalid(_)), "{err}");
    assert!(err.to_string().contains("has 5 partitions"), "{err}");
}

#[tokio::test]
async fn groups_are_listed_and_described_with_state_and_members() {
    let s = settings().await;
    let admin = Admin::new(&s).unwrap();
    let topic = unique("groups");
    admin.create_topic(&topic_spec(&topic, 2)).await.unwrap();
    produce_numbered(&s, &topic, 2).await;
    let group = unique("listed");
    let mut cfg = s.consumer_config();
    cfg.set("group.id", &group)
        .set("client.id", "streamlake-test-member")
        .set("auto.offset.reset", "earliest");
    let consumer: StreamConsumer = cfg.create().unwrap();
    consumer.subscribe(&[&topic]).unwrap();
    // Receiving a record means the group has formed and assigned partitions.
    tokio::time::timeout(Duration::from_secs(60), consumer.recv())
        .await
        .expect("a record within a minute")
        .unwrap();

    let stable = eventually(Duration::from_secs(30), || async {
        let groups = admin.list_groups().await.ok()?;
        groups
            .into_iter()
            .find(|g| g.name == group && g.state == "Stable")
    })
    .await
    .expect("the group is listed as Stable");
    assert_eq!(stable.members, 1);
    assert_eq!(stable.protocol_type, "consumer");
    let (summary, members) = admin.describe_group(&group).await.unwrap();
    assert_eq!(summary.state, "Stable");
    assert_eq!(members.len(), 1);
    assert_eq!(members[0].client_id, "streamlake-test-member");
    // The only member holds every partition of the topic.
    let (assigned_topic, mut partitions) = members[0].assignment[0].clone();
    partitions.sort_unstable();
    assert_eq!(assigned_topic, topic);
    let count = admin.describe_topic(&topic).await.unwrap().partitions.len() as i32;
    assert_eq!(partitions, (0..count).collect::<Vec<_>>());
}

#[tokio::test]
async fn an_inactive_groups_offsets_can_be_reset_and_lag_follows() {
    let s = settings().await;
    let admin = Admin::new(&s).unwrap();
    let topic = unique("reset");
    admin.create_topic(&topic_spec(&topic, 1)).await.unwrap();
    produce_numbered(&s, &topic, 6).await;
    let group = unique("reset");
    let commit = |offset: i64| {
        let mut cfg = s.consumer_config();
        cfg.set("group.id", &group);
        let c: BaseConsumer = cfg.create().unwrap();
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset(&topic, 0, Offset::Offset(offset))
            .unwrap();
        c.commit(&tpl, CommitMode::Sync).unwrap();
    };
    commit(6);
    let lag = admin
        .group_lag(&group, std::slice::from_ref(&topic))
        .await
        .unwrap();
    assert_eq!(lag.total_lag, 0);
    // Back to the start: the whole topic is lag again.
    commit(0);
    let lag = admin
        .group_lag(&group, std::slice::from_ref(&topic))
        .await
        .unwrap();
    assert_eq!(lag.partitions[0].committed, Some(0));
    assert_eq!(lag.total_lag, 6);
}

#[tokio::test]
async fn read_committed_consumers_see_committed_transactions_only() {
    let mut s = settings().await;
    let topic = unique("tx");
    Admin::new(&s)
        .unwrap()
        .create_topic(&topic_spec(&topic, 1))
        .await
        .unwrap();
    let mut cfg = s.producer_config();
    cfg.set("transactional.id", unique("tx"));
    let producer: BaseProducer = cfg.create().unwrap();
    producer.init_transactions(Duration::from_secs(30)).unwrap();
    for (payload, commit) in [(&b"aborted"[..], false), (&b"committed"[..], true)] {
        producer.begin_transaction().unwrap();
        producer
            .send(BaseRecord::<[u8], [u8]>::to(&topic).payload(payload))
            .map_err(|(e, _)| e)
            .unwrap();
        producer.flush(Duration::from_secs(10)).unwrap();
        if commit {
            producer
                .commit_transaction(Duration::from_secs(10))
                .unwrap();
        } else {
            producer.abort_transaction(Duration::from_secs(10)).unwrap();
        }
    }

    s.consumer
        .insert("isolation.level".into(), "read_committed".into());
    let seen = Reader::new(&s, &topic)
        .await
        .read(1, Duration::from_secs(30))
        .await;
    assert_eq!(seen[0].payload.as_deref(), Some(&b"committed"[..]));
    let more = Reader::new(&s, &topic)
        .await
        .drain(Duration::from_secs(2))
        .await;
    let payloads: Vec<_> = more.iter().map(|r| r.payload.clone()).collect();
    assert_eq!(payloads, [Some(b"committed".to_vec())]);
}

/// A delivery timeout makes librdkafka bump the idempotent producer's epoch; Kafka accepts the
/// bumped epoch, so the producer StreamLake keeps for its whole life works again once the
/// broker is back, and the record that timed out is reported, not silently dropped.
#[tokio::test]
async fn an_idempotent_producer_recovers_after_an_outage_longer_than_its_delivery_timeout() {
    let mut broker = PrivateBroker::start(1).await;
    let mut s = broker.settings();
    s.producer
        .insert("message.timeout.ms".into(), "2000".into());
    let topic = unique("epoch");
    Admin::new(&s)
        .unwrap()
        .create_topic(&topic_spec(&topic, 1))
        .await
        .unwrap();
    let producer = Producer::new(&s).unwrap();
    producer
        .send(&topic, Some(b"k"), b"before", &Headers::new())
        .await
        .unwrap();

    broker.stop().await;
    let timed_out = producer
        .send(&topic, Some(b"k"), b"during", &Headers::new())
        .await;
    let err = timed_out.expect_err("the broker is down");
    assert!(
        err.possibly_persisted(),
        "a timed-out record may have been written: {err}"
    );

    broker.start_again().await;
    let after = eventually(Duration::from_secs(60), || async {
        producer
            .send(&topic, Some(b"k"), b"after", &Headers::new())
            .await
            .ok()
    })
    .await;
    assert!(after.is_some(), "the producer never recovered");
    let written = Reader::new(&s, &topic)
        .await
        .drain(Duration::from_secs(3))
        .await;
    let payloads: Vec<_> = written.iter().filter_map(|r| r.payload.clone()).collect();
    assert_eq!(payloads.first().map(Vec::as_slice), Some(&b"before"[..]));
    assert!(payloads.iter().any(|p| p == b"after"), "{payloads:?}");
    broker.stop().await;
}

#[tokio::test]
async fn snappy_compressed_records_round_trip() {
    let mut s = settings().await;
    let topic = unique("snappy");
    let mut topic_spec = topic_spec(&topic, 2);
    topic_spec
        .configs
        .insert("compression.type".into(), "snappy".into());
    Admin::new(&s)
        .unwrap()
        .create_topic(&topic_spec)
        .await
        .unwrap();
    s.producer
        .insert("compression.type".into(), "snappy".into());
    produce_numbered(&s, &topic, 20).await;
    let read = Reader::new(&s, &topic)
        .await
        .read(20, Duration::from_secs(30))
        .await;
    let mut values: Vec<i64> = read
        .iter()
        .map(|r| {
            String::from_utf8_lossy(r.payload.as_deref().unwrap())
                .parse()
                .unwrap()
        })
        .collect();
    values.sort_unstable();
    assert_eq!(values, (0..20).collect::<Vec<_>>());
}

/// Topics come and go while others list them (tests, labs, operators): a topic that is being
/// deleted is left out of the listing, never the reason it fails.
#[tokio::test]
async fn listing_topics_survives_topics_being_deleted_meanwhile() {
    let s = settings().await;
    let admin = Admin::new(&s).unwrap();
    let stop = tokio_util::sync::CancellationToken::new();
    let churn = {
        let (s, stop) = (s.clone(), stop.clone());
        tokio::spawn(async move {
            let admin = Admin::new(&s).unwrap();
            let mut rounds = 0;
            while !stop.is_cancelled() && rounds < 15 {
                let name = unique("churn");
                admin.create_topic(&topic_spec(&name, 3)).await.unwrap();
                admin.delete_topic(&name).await.unwrap();
                rounds += 1;
            }
            rounds
        })
    };
    let mut listings = 0;
    while !churn.is_finished() {
        let listed = admin.list_topics().await;
        assert!(
            listed.is_ok(),
            "listing failed while topics churned: {listed:?}"
        );
        listings += 1;
    }
    stop.cancel();
    assert!(churn.await.unwrap() > 0);
    assert!(listings > 0);
}

/// A visitor sees every record of the asked ranges; a range the log does not fill (here: an end
/// past the high watermark) is reported as not reached, so a caller can say its answer is
/// partial instead of silently short.
#[tokio::test]
async fn a_visited_read_reports_what_it_did_not_reach() {
    let s = settings().await;
    let topic = unique("visited");
    Admin::new(&s)
        .unwrap()
        .create_topic(&topic_spec(&topic, 1))
        .await
        .unwrap();
    produce_numbered(&s, &topic, 10).await;

    let whole = [(0, (0, 10))].into_iter().collect();
    let (records, coverage) =
        streamlake_kafka::visit_ranges(&s, &topic, whole, Duration::from_secs(5), Vec::new())
            .await
            .unwrap();
    assert_eq!(records.len(), 10);
    assert!(coverage.complete(), "{coverage:?}");

    let beyond = [(0, (4, 25))].into_iter().collect();
    let (records, coverage) =
        streamlake_kafka::visit_ranges(&s, &topic, beyond, Duration::from_secs(1), Vec::new())
            .await
            .unwrap();
    assert_eq!(records.len(), 6, "offsets 4 to 9");
    assert!(!coverage.complete());
    assert_eq!(coverage.unread.get(&0), Some(&(10, 25)));
    assert_eq!(coverage.unread_records(), 15);
}
