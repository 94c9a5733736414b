//! The managed Kafka as `streamlake up` runs it: nodes that die are reported and restarted
//! with their records, restarts keep data, and the start refuses what it must not touch (a
//! taken port, storage of another cluster, a data directory in use) with a clear error.

use std::collections::BTreeSet;
use std::time::Duration;

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use streamlake_broker::{BrokerError, ManagedKafka, HEALTH_COMPONENT};
use streamlake_config::BrokerConfig;
use streamlake_core::{Condition, Health};
use streamlake_kafka::Admin;
use streamlake_testkit::{
    eventually, free_port_block, produce_numbered, topic_spec, unique, PrivateBroker,
};

fn condition(health: &Health) -> Condition {
    health
        .problems()
        .into_iter()
        .find(|(name, _)| name == HEALTH_COMPONENT)
        .map_or(Condition::Up, |(_, c)| c)
}

fn sigkill(pid: u32) {
    kill(Pid::from_raw(pid as i32), Signal::SIGKILL).unwrap();
}

#[tokio::test]
async fn a_killed_node_is_reported_down_restarted_and_keeps_its_records() {
    let broker = PrivateBroker::start(1).await;
    let s = broker.settings();
    let admin = Admin::new(&s).unwrap();
    let topic = unique("supervised");
    admin.create_topic(&topic_spec(&topic, 2)).await.unwrap();
    produce_numbered(&s, &topic, 10).await;
    assert_eq!(condition(&broker.health), Condition::Up);

    let first = broker.kafka().pid(1).unwrap();
    sigkill(first);
    let down = eventually(Duration::from_secs(15), || async {
        match condition(&broker.health) {
            Condition::Down(reason) => Some(reason),
            _ => None,
        }
    })
    .await
    .expect("the dead node is reported down");
    assert!(
        down.contains("node 1") && down.contains("signal: 9"),
        "{down}"
    );

    let back = eventually(Duration::from_secs(120), || async {
        (condition(&broker.health) == Condition::Up).then_some(())
    })
    .await;
    assert!(back.is_some(), "the node was not restarted");
    let second = broker.kafka().pid(1).unwrap();
    assert_ne!(first, second);
    // No zombie is left behind: the dead process was reaped.
    assert!(!std::path::Path::new(&format!("/proc/{first}")).exists());
    let info = admin.describe_topic(&topic).await.unwrap();
    assert_eq!(info.message_count(), 10, "{info:?}");
    produce_numbered(&s, &topic, 1).await;
}

#[tokio::test]
async fn records_survive_a_clean_restart_on_the_same_storage() {
    let mut broker = PrivateBroker::start(1).await;
    let s = broker.settings();
    let topic = unique("durable");
    Admin::new(&s)
        .unwrap()
        .create_topic(&topic_spec(&topic, 3))
        .await
        .unwrap();
    produce_numbered(&s, &topic, 12).await;
    broker.stop().await;
    broker.start_again().await;
    let info = Admin::new(&s)
        .unwrap()
        .describe_topic(&topic)
        .await
        .unwrap();
    assert_eq!(info.message_count(), 12, "{info:?}");
}

#[tokio::test]
async fn a_second_start_on_a_data_directory_in_use_is_refused() {
    let broker = PrivateBroker::start(1).await;
    let err = ManagedKafka::start(&broker.config, broker.dir.path(), Health::new())
        .await
        .unwrap_err();
    assert!(matches!(err, BrokerError::ForeignStorage { .. }), "{err}");
    assert!(
        err.to_string()
            .contains("in use by another running StreamLake"),
        "{err}"
    );
    // The running broker was not disturbed.
    Admin::new(&broker.settings())
        .unwrap()
        .ping(Duration::from_secs(5))
        .await
        .unwrap();
}

#[tokio::test]
async fn a_taken_port_is_a_clear_error() {
    let listen = free_port_block(2);
    let _taken = std::net::TcpListener::bind(listen).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let cfg = BrokerConfig {
        listen,
        ..BrokerConfig::default()
    };
    let err = ManagedKafka::start(&cfg, dir.path(), Health::new())
        .await
        .unwrap_err();
    assert!(matches!(err, BrokerError::AddressInUse { .. }), "{err}");
    let text = err.to_string();
    assert!(
        text.contains(&listen.to_string()) && text.contains("already in use"),
        "{text}"
    );
}

#[tokio::test]
async fn storage_of_another_cluster_is_refused_and_left_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("broker/node-1/data");
    std::fs::create_dir_all(&data).unwrap();
    let meta = "version=1\ncluster.id=someone-elses-cluster\nnode.id=1\n";
    std::fs::write(data.join("meta.properties"), meta).unwrap();
    let cfg = BrokerConfig {
        listen: free_port_block(2),
        ..BrokerConfig::default()
    };
    let err = ManagedKafka::start(&cfg, dir.path(), Health::new())
        .await
        .unwrap_err();
    assert!(matches!(err, BrokerError::ForeignStorage { .. }), "{err}");
    assert!(err.to_string().contains("someone-elses-cluster"), "{err}");
    assert_eq!(
        std::fs::read_to_string(data.join("meta.properties")).unwrap(),
        meta
    );
    assert!(!dir.path().join("broker/cluster.properties").exists());
    assert!(!dir.path().join("broker/node-1/server.properties").exists());
}

#[tokio::test]
async fn storage_formatted_for_one_node_is_refused_for_three() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("broker")).unwrap();
    std::fs::write(
        dir.path().join("broker/cluster.properties"),
        "cluster.id=abc\nnodes=1\n",
    )
    .unwrap();
    let cfg = BrokerConfig {
        listen: free_port_block(6),
        nodes: 3,
        ..BrokerConfig::default()
    };
    let err = ManagedKafka::start(&cfg, dir.path(), Health::new())
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("1-node cluster") && text.contains("broker.nodes is 3"),
        "{text}"
    );
}

#[tokio::test]
async fn three_nodes_replicate_every_partition_and_ride_out_a_dead_node() {
    let broker = PrivateBroker::start(3).await;
    let s = broker.settings();
    let admin = Admin::new(&s).unwrap();
    let topic = unique("replicated");
    admin.create_topic(&topic_spec(&topic, 6)).await.unwrap();
    let info = eventually(Duration::from_secs(30), || async {
        let info = admin.describe_topic(&topic).await.ok()?;
        info.partitions
            .iter()
            .all(|p| p.isr.len() == 3)
            .then_some(info)
    })
    .await
    .expect("every partition has three in-sync replicas");
    let leaders: BTreeSet<i32> = info.partitions.iter().map(|p| p.leader).collect();
    assert_eq!(
        leaders,
        BTreeSet::from([1, 2, 3]),
        "leaders spread: {info:?}"
    );
    for p in &info.partitions {
        let mut replicas = p.replicas.clone();
        replicas.sort_unstable();
        assert_eq!(replicas, [1, 2, 3]);
    }
    let configs = admin.topic_configs(&topic).await.unwrap();
    assert_eq!(
        configs.get("min.insync.replicas").map(String::as_str),
        Some("2")
    );

    produce_numbered(&s, &topic, 6).await;
    sigkill(broker.kafka().pid(2).unwrap());
    let degraded = eventually(Duration::from_secs(15), || async {
        matches!(condition(&broker.health), Condition::Degraded(_)).then_some(())
    })
    .await;
    assert!(
        degraded.is_some(),
        "one dead node of three degrades, not downs, the cluster"
    );
    // Two in-sync replicas remain: acks=all writes still succeed.
    produce_numbered(&s, &topic, 6).await;
    let back = eventually(Duration::from_secs(120), || async {
        (condition(&broker.health) == Condition::Up).then_some(())
    })
    .await;
    assert!(back.is_some(), "node 2 was not restarted");
    let info = admin.describe_topic(&topic).await.unwrap();
    assert_eq!(info.message_count(), 12);
}
