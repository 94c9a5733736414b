//! A stage whose member holds no partitions while its topics wait is reported down with the
//! reason, and up again once the member holds partitions.

use std::time::Duration;

use streamlake_core::Health;
use streamlake_kafka::{
    Admin, BatchHandler, ConsumerOptions, ConsumerRunner, HandlerError, Record,
};
use streamlake_pipeline::{watch_stage, StageWatch};
use streamlake_testkit::{eventually, produce_numbered, settings, topic_spec, unique};
use tokio_util::sync::CancellationToken;

struct Accept;

impl BatchHandler for Accept {
    async fn handle(&mut self, _: &[Record]) -> Result<(), HandlerError> {
        Ok(())
    }
}

#[tokio::test]
async fn a_member_without_partitions_while_records_wait_is_reported_until_it_gets_some() {
    let settings = settings().await;
    let (topic, group) = (unique("stalled"), unique("stalled-group"));
    let admin = Admin::new(&settings).unwrap();
    admin.create_topic(&topic_spec(&topic, 2)).await.unwrap();
    produce_numbered(&settings, &topic, 20).await;

    let options = ConsumerOptions::new(group.clone(), vec![topic.clone()]);
    let membership = options.membership.clone();
    let health = Health::new();
    let shutdown = CancellationToken::new();
    tokio::spawn(watch_stage(
        StageWatch {
            component: "sink s".to_owned(),
            group: group.clone(),
            topics: vec![topic.clone()],
            membership,
            window: Duration::from_secs(1),
        },
        settings.clone(),
        health.clone(),
        shutdown.clone(),
    ));
    let reason = eventually(Duration::from_secs(30), || async { health.ready().err() })
        .await
        .expect("the idle stage is reported");
    assert!(
        reason.starts_with(
            "sink s: holds no partitions of its topics, which have 20 records to read"
        ),
        "{reason}"
    );

    // The member joins its group and is assigned the partitions: ready again.
    let runner = ConsumerRunner::new(&settings, options).unwrap();
    let consumer = {
        let shutdown = shutdown.clone();
        tokio::spawn(async move { runner.run(&mut Accept, shutdown).await })
    };
    let ready = eventually(Duration::from_secs(30), || async { health.ready().ok() }).await;
    shutdown.cancel();
    consumer.await.unwrap().unwrap();
    assert!(ready.is_some(), "still reported: {:?}", health.ready());
}
