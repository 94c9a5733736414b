//! Keyed records land where the Java client would put them: StreamLake's producer against the
//! real broker, Kafka's own `BuiltInPartitioner` (run from the broker's jars), and the preview
//! function that computes a partition without writing, all agree for many keys.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::process::{Command, Stdio};

use streamlake_core::TopicSpec;
use streamlake_kafka::{Admin, Outgoing, Partitioner, Producer};
use streamlake_testkit::{settings, unique};

const PARTITIONS: i32 = 7;

fn keys() -> Vec<String> {
    (0..300)
        .map(|i| match i % 3 {
            0 => i.to_string(),
            1 => format!("sensor-{i}"),
            _ => format!("tenant-a|{}|ключ", i * 7919),
        })
        .collect()
}

async fn topic() -> String {
    let name = unique("partitioner");
    Admin::new(&settings().await)
        .unwrap()
        .create_topic(&TopicSpec {
            name: name.clone(),
            partitions: PARTITIONS,
            replication_factor: None,
            configs: BTreeMap::new(),
        })
        .await
        .unwrap();
    name
}

/// The partitions `producer` wrote `keys` to, as the broker acknowledged them.
async fn written(producer: &Producer, topic: &str, keys: &[String]) -> Vec<i32> {
    producer
        .send_all(
            topic,
            keys.iter().map(|k| Outgoing {
                key: Some(k.as_bytes()),
                payload: b"{}",
                headers: None,
            }),
        )
        .await
        .into_iter()
        .map(|s| s.result.expect("acknowledged").partition)
        .collect()
}

/// The partitions Kafka's Java producer picks for `keys`.
fn java(keys: &[String]) -> Vec<i32> {
    let install = streamlake_broker::install::KafkaInstall::locate(
        &streamlake_config::BrokerConfig::default(),
    )
    .expect("Java and the Kafka jars (scripts/setup.sh installs them)");
    let program = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/java/PartitionForKey.java"
    );
    let mut child = Command::new(&install.java)
        .args([
            "-cp",
            &install.class_path(),
            program,
            &PARTITIONS.to_string(),
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("run java");
    let mut stdin = child.stdin.take().unwrap();
    for k in keys {
        writeln!(stdin, "{k}").unwrap();
    }
    drop(stdin);
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "java failed");
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| l.parse().unwrap())
        .collect()
}

#[tokio::test]
async fn keys_land_where_the_java_client_puts_them_and_where_the_preview_says() {
    let topic = topic().await;
    let keys = keys();
    let producer = Producer::new(&settings().await).unwrap();
    assert_eq!(producer.partitioner(), Some(Partitioner::Murmur2));
    let written = written(&producer, &topic, &keys).await;
    let java = tokio::task::spawn_blocking({
        let keys = keys.clone();
        move || java(&keys)
    })
    .await
    .unwrap();
    let preview: Vec<i32> = keys
        .iter()
        .map(|k| Partitioner::Murmur2.partition(k.as_bytes(), PARTITIONS))
        .collect();
    assert_eq!(written, java, "StreamLake's producer vs the Java client");
    assert_eq!(
        preview, written,
        "the preview vs the broker's acknowledgements"
    );
    // Not a degenerate placement: the keys spread over every partition.
    let used: std::collections::BTreeSet<i32> = written.iter().copied().collect();
    assert_eq!(used.len(), PARTITIONS as usize);
}

#[tokio::test]
async fn librdkafkas_own_default_is_still_available_and_previewed() {
    let topic = topic().await;
    let keys = keys();
    let mut s = settings().await;
    s.producer
        .insert("partitioner".into(), "consistent_random".into());
    let producer = Producer::new(&s).unwrap();
    assert_eq!(producer.partitioner(), Some(Partitioner::Crc32));
    let written = written(&producer, &topic, &keys).await;
    let preview: Vec<i32> = keys
        .iter()
        .map(|k| Partitioner::Crc32.partition(k.as_bytes(), PARTITIONS))
        .collect();
    assert_eq!(preview, written);
    // The two placements differ: switching partitioners moves keys.
    let murmur: Vec<i32> = keys
        .iter()
        .map(|k| Partitioner::Murmur2.partition(k.as_bytes(), PARTITIONS))
        .collect();
    assert_ne!(murmur, written);
}
