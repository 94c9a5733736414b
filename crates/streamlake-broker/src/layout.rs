//! Where each node keeps its files and which ports it uses, and the Kafka configuration
//! generated for it. Pure: nothing here touches the file system or the network.
//!
//! ```text
//! {data_dir}/broker/
//!   cluster.properties        cluster.id and node count, written when the storage is formatted
//!   node-1/
//!     server.properties       generated at every start from [broker] (edits are overwritten)
//!     log4j2.properties       the broker's logging: warnings and start/stop lines
//!     broker.log              the broker's output
//!     broker.pid              the running node's process id
//!     data/                   log.dirs: partitions and the KRaft metadata log
//!   node-2/ ...
//! ```

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use streamlake_config::BrokerConfig;

/// The nodes of a managed cluster and the settings they share.
#[derive(Debug, Clone)]
pub struct ClusterLayout {
    /// `{data_dir}/broker`.
    pub dir: PathBuf,
    /// Every node, by id from 1.
    pub nodes: Vec<NodeLayout>,
    /// Maximum Java heap of each node in MiB.
    pub heap_mb: u32,
    /// Server properties that override the generated ones.
    pub overrides: BTreeMap<String, String>,
}

/// One KRaft node (broker and controller in one process).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeLayout {
    /// `node.id`, from 1.
    pub id: u16,
    /// The listener clients (and the other brokers) connect to.
    pub client: SocketAddr,
    /// The controller listener (KRaft quorum traffic).
    pub controller: SocketAddr,
    /// `{data_dir}/broker/node-{id}`.
    pub dir: PathBuf,
}

impl ClusterLayout {
    /// The layout `cfg` describes under `data_dir`: node `i` (from 0) takes client port
    /// `listen + i` and controller port `listen + nodes + i`. A relative `data_dir` is taken
    /// from the current directory and made absolute: each node runs in its own directory, where
    /// a relative path would name something else.
    pub fn new(cfg: &BrokerConfig, data_dir: &Path) -> Self {
        let data_dir = std::path::absolute(data_dir).unwrap_or_else(|_| data_dir.to_path_buf());
        let dir = data_dir.join("broker");
        let n = cfg.nodes.max(1);
        let nodes = (0..n)
            .map(|i| {
                let port = |offset: u16| {
                    SocketAddr::new(cfg.listen.ip(), cfg.listen.port().saturating_add(offset))
                };
                NodeLayout {
                    id: i + 1,
                    client: port(i),
                    controller: port(n + i),
                    dir: dir.join(format!("node-{}", i + 1)),
                }
            })
            .collect();
        Self {
            dir,
            nodes,
            heap_mb: cfg.heap_mb,
            overrides: cfg.properties.clone(),
        }
    }

    /// `host:port,...` of every node's client listener.
    pub fn bootstrap_servers(&self) -> String {
        self.nodes
            .iter()
            .map(|n| n.client.to_string())
            .collect::<Vec<_>>()
            .join(",")
    }

    /// `cluster.properties`: which cluster the storage under [`Self::dir`] was formatted for.
    pub fn identity_path(&self) -> PathBuf {
        self.dir.join("cluster.properties")
    }

    /// The generated `server.properties` of `node`.
    pub fn server_properties(&self, node: &NodeLayout) -> String {
        let n = self.nodes.len();
        let replicated = n >= 3;
        let voters = self
            .nodes
            .iter()
            .map(|v| format!("{}@{}", v.id, v.controller))
            .collect::<Vec<_>>()
            .join(",");
        let mut props: BTreeMap<&str, String> = BTreeMap::new();
        props.insert("process.roles", "broker,controller".into());
        props.insert("node.id", node.id.to_string());
        props.insert("controller.quorum.voters", voters);
        props.insert(
            "listeners",
            format!(
                "PLAINTEXT://{},CONTROLLER://{}",
                node.client, node.controller
            ),
        );
        props.insert(
            "advertised.listeners",
            format!("PLAINTEXT://{}", node.client),
        );
        props.insert("controller.listener.names", "CONTROLLER".into());
        props.insert("inter.broker.listener.name", "PLAINTEXT".into());
        props.insert(
            "listener.security.protocol.map",
            "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT".into(),
        );
        props.insert("log.dirs", node.data_dir().display().to_string());
        // Topics are created by provisioning with their declared settings; a typo in a topic
        // name must be an error, not a new one-partition topic.
        props.insert("auto.create.topics.enable", "false".into());
        props.insert("num.partitions", "3".into());
        let rf = if replicated { 3 } else { 1 };
        let min_isr = if replicated { 2 } else { 1 };
        props.insert("default.replication.factor", rf.to_string());
        props.insert("min.insync.replicas", min_isr.to_string());
        props.insert("offsets.topic.replication.factor", rf.to_string());
        props.insert("transaction.state.log.replication.factor", rf.to_string());
        props.insert("transaction.state.log.min.isr", min_isr.to_string());
        // One machine serves few groups; Kafka's 50 partitions per internal topic only slow the
        // first group and the first transaction down.
        props.insert("offsets.topic.num.partitions", "10".into());
        props.insert("transaction.state.log.num.partitions", "10".into());
        // A group's first member starts at once instead of waiting 3 s for others.
        props.insert("group.initial.rebalance.delay.ms", "0".into());
        // On loopback a missed heartbeat means a dead process, not a slow network: fence a dead
        // node's partitions (and move their leadership) after 3 s instead of Kafka's 9 s.
        props.insert("broker.heartbeat.interval.ms", "1000".into());
        props.insert("broker.session.timeout.ms", "3000".into());
        props.insert("num.network.threads", "2".into());
        props.insert("num.io.threads", "4".into());
        let mut text = format!(
            "# Generated by StreamLake for node {} of {n}; rewritten at every start.\n# Change settings with [broker.properties] in the StreamLake configuration.\n",
            node.id
        );
        for (k, v) in &props {
            if !self.overrides.contains_key(*k) {
                let _ = writeln!(text, "{k}={v}");
            }
        }
        for (k, v) in &self.overrides {
            let _ = writeln!(text, "{k}={v}");
        }
        text
    }

    /// JVM options of every node.
    pub fn jvm_options(&self, node: &NodeLayout) -> Vec<String> {
        vec![
            format!("-Xmx{}m", self.heap_mb),
            format!("-Xms{}m", self.heap_mb.min(256)),
            "-XX:+UseG1GC".into(),
            "-XX:MaxGCPauseMillis=20".into(),
            "-XX:+ExitOnOutOfMemoryError".into(),
            "-Djava.awt.headless=true".into(),
            format!("-Dlog4j2.configurationFile={}", node.log4j_path().display()),
            format!("-Dkafka.logs.dir={}", node.dir.display()),
        ]
    }
}

impl NodeLayout {
    /// `log.dirs`.
    pub fn data_dir(&self) -> PathBuf {
        self.dir.join("data")
    }
    /// The broker's output.
    pub fn log_path(&self) -> PathBuf {
        self.dir.join("broker.log")
    }
    /// The running node's process id.
    pub fn pid_path(&self) -> PathBuf {
        self.dir.join("broker.pid")
    }
    /// The generated server configuration.
    pub fn properties_path(&self) -> PathBuf {
        self.dir.join("server.properties")
    }
    /// The generated logging configuration.
    pub fn log4j_path(&self) -> PathBuf {
        self.dir.join("log4j2.properties")
    }
    /// Kafka's record of the formatted storage.
    pub fn meta_path(&self) -> PathBuf {
        self.data_dir().join("meta.properties")
    }
}

/// Logging: warnings and errors from everything, plus the lines that say a node started,
/// stopped or changed controller, to stdout (which StreamLake sends to `broker.log`).
pub const LOG4J2_PROPERTIES: &str = "\
# Generated by StreamLake.
status = warn
appender.out.type = Console
appender.out.name = out
appender.out.layout.type = PatternLayout
appender.out.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = warn
rootLogger.appenderRef.out.ref = out
logger.server.name = kafka.server.KafkaRaftServer
logger.server.level = info
logger.broker.name = kafka.server.BrokerServer
logger.broker.level = info
logger.controller.name = kafka.server.ControllerServer
logger.controller.level = info
";

/// A loopback address whose port and the `n - 1` ports after it are free: a `broker.listen` for
/// a cluster of `n / 2` nodes (each takes a client and a controller port). Chosen below Linux's
/// ephemeral range (32768-60999), so no client connection takes one of the ports before Kafka
/// binds it; another process may still, which a caller can meet by trying again.
pub fn free_port_block(n: u16) -> Option<SocketAddr> {
    for _ in 0..500 {
        let base = 15_000 + fastrand::u16(..17_000);
        let held: Vec<std::net::TcpListener> = (0..n)
            .map_while(|i| std::net::TcpListener::bind(("127.0.0.1", base + i)).ok())
            .collect();
        if held.len() == usize::from(n) {
            return Some(SocketAddr::from(([127, 0, 0, 1], base)));
        }
    }
    None
}

/// Reads `key` from a Java properties text (`key=value` lines; `#` comments).
pub fn property<'a>(text: &'a str, key: &str) -> Option<&'a str> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.split_once('='))
        .find(|(k, _)| k.trim() == key)
        .map(|(_, v)| v.trim())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(nodes: u16) -> BrokerConfig {
        BrokerConfig {
            listen: "127.0.0.1:19092".parse().unwrap(),
            nodes,
            ..BrokerConfig::default()
        }
    }

    #[test]
    fn one_node_takes_the_listen_port_and_the_next_for_its_controller() {
        let layout = ClusterLayout::new(&cfg(1), Path::new("/data"));
        assert_eq!(layout.bootstrap_servers(), "127.0.0.1:19092");
        let node = &layout.nodes[0];
        assert_eq!(node.controller.port(), 19093);
        assert_eq!(node.dir, Path::new("/data/broker/node-1"));
        let props = layout.server_properties(node);
        assert_eq!(property(&props, "node.id"), Some("1"));
        assert_eq!(
            property(&props, "controller.quorum.voters"),
            Some("1@127.0.0.1:19093")
        );
        assert_eq!(property(&props, "default.replication.factor"), Some("1"));
        assert_eq!(property(&props, "min.insync.replicas"), Some("1"));
        assert_eq!(
            property(&props, "log.dirs"),
            Some("/data/broker/node-1/data")
        );
    }

    #[test]
    fn three_nodes_replicate_three_times_and_need_two_in_sync() {
        let layout = ClusterLayout::new(&cfg(3), Path::new("/data"));
        assert_eq!(
            layout.bootstrap_servers(),
            "127.0.0.1:19092,127.0.0.1:19093,127.0.0.1:19094"
        );
        let ports: Vec<u16> = layout.nodes.iter().map(|n| n.controller.port()).collect();
        assert_eq!(ports, [19095, 19096, 19097]);
        let props = layout.server_properties(&layout.nodes[2]);
        assert_eq!(property(&props, "node.id"), Some("3"));
        assert_eq!(
            property(&props, "controller.quorum.voters"),
            Some("1@127.0.0.1:19095,2@127.0.0.1:19096,3@127.0.0.1:19097")
        );
        assert_eq!(
            property(&props, "advertised.listeners"),
            Some("PLAINTEXT://127.0.0.1:19094")
        );
        for (key, value) in [
            ("default.replication.factor", "3"),
            ("min.insync.replicas", "2"),
            ("offsets.topic.replication.factor", "3"),
            ("transaction.state.log.min.isr", "2"),
        ] {
            assert_eq!(property(&props, key), Some(value), "{key}");
        }
    }

    #[test]
    fn configured_properties_replace_generated_ones() {
        let mut c = cfg(1);
        c.properties.insert("num.partitions".into(), "12".into());
        c.properties
            .insert("log.retention.hours".into(), "24".into());
        let layout = ClusterLayout::new(&c, Path::new("/data"));
        let props = layout.server_properties(&layout.nodes[0]);
        assert_eq!(property(&props, "num.partitions"), Some("12"));
        let lines = props.lines().filter(|l| l.starts_with("num.partitions="));
        assert_eq!(lines.count(), 1);
        assert_eq!(property(&props, "log.retention.hours"), Some("24"));
    }

    #[test]
    fn a_relative_data_dir_becomes_absolute_because_nodes_run_in_their_own_directory() {
        let layout = ClusterLayout::new(&cfg(1), Path::new("./streamlake-data"));
        let node = &layout.nodes[0];
        assert!(
            node.properties_path().is_absolute(),
            "{:?}",
            node.properties_path()
        );
        let props = layout.server_properties(node);
        let log_dirs = props
            .lines()
            .find_map(|l| l.strip_prefix("log.dirs="))
            .unwrap();
        assert!(Path::new(log_dirs).is_absolute(), "{log_dirs}");
    }
}
