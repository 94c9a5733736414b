//! Faults a real broker cannot be made to produce on demand, injected with librdkafka's mock
//! cluster: a fatal idempotence error makes the producer replace its librdkafka instance, so
//! the next send succeeds instead of failing forever.

use std::time::Duration;

use rdkafka::mocking::MockCluster;
use rdkafka::types::{RDKafkaApiKey, RDKafkaRespErr};
use streamlake_kafka::{Headers, KafkaSettings, Producer};

#[tokio::test]
async fn a_fatal_idempotence_error_is_reported_and_the_producer_recovers() {
    let mock = MockCluster::new(1).unwrap();
    mock.create_topic("faults", 1, 1).unwrap();
    let mut s = KafkaSettings::new(mock.bootstrap_servers());
    s.producer
        .insert("message.timeout.ms".into(), "5000".into());
    let producer = Producer::new(&s).unwrap();
    producer
        .send("faults", Some(b"k"), b"first", &Headers::new())
        .await
        .unwrap();

    // A sequence gap on an idempotent producer is fatal in librdkafka.
    mock.request_errors(
        RDKafkaApiKey::Produce,
        &[RDKafkaRespErr::RD_KAFKA_RESP_ERR_OUT_OF_ORDER_SEQUENCE_NUMBER],
    );
    let failed = producer
        .send("faults", Some(b"k"), b"second", &Headers::new())
        .await;
    assert!(failed.is_err(), "{failed:?}");
    mock.clear_request_errors(RDKafkaApiKey::Produce);

    let recovered = tokio::time::timeout(
        Duration::from_secs(20),
        producer.send("faults", Some(b"k"), b"third", &Headers::new()),
    )
    .await
    .expect("the send finished");
    assert!(
        recovered.is_ok(),
        "the producer did not recover: {recovered:?}"
    );
}
