//! The managed cluster: starts its nodes, waits until every one answers, supervises them
//! (a node that dies is reported, marked down in [`Health`] and restarted with back-off), and
//! stops them last, after everything that uses them.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use base64::Engine as _;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::ClientConfig;
use streamlake_config::BrokerConfig;
use streamlake_core::{Condition, Health, RetryPolicy};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::install::KafkaInstall;
use crate::layout::{property, ClusterLayout, NodeLayout};
use crate::node::{self, NodeProcess};
use crate::BrokerError;

/// The name the broker reports its condition under in [`Health`].
pub const HEALTH_COMPONENT: &str = "broker";

/// Waits before a dead node is started again: 1 s, doubled after each failed restart, up to 30 s.
const RESTART: RetryPolicy = RetryPolicy::new(Duration::from_secs(1), Duration::from_secs(30));
/// A node that ran this long before it died is restarted after the shortest wait again.
const STABLE_AFTER: Duration = Duration::from_secs(60);

/// A running managed Kafka: one node, or three.
#[derive(Debug)]
pub struct ManagedKafka {
    layout: ClusterLayout,
    startup: Duration,
    pids: Arc<Mutex<BTreeMap<u16, u32>>>,
    stop: CancellationToken,
    supervisors: Vec<JoinHandle<()>>,
    // Held while the cluster runs: a second StreamLake on the same data directory is refused.
    _lock: File,
}

impl ManagedKafka {
    /// Starts the cluster `cfg` describes with its storage under `{data_dir}/broker`
    /// (formatted on first start), and returns once every node answers metadata requests.
    /// `health` hears of nodes that die and come back.
    pub async fn start(
        cfg: &BrokerConfig,
        data_dir: &Path,
        health: Health,
    ) -> Result<Self, BrokerError> {
        let started = Instant::now();
        // Checking Java's version runs `java -version`: a process, off the async threads.
        let located = cfg.clone();
        let install = tokio::task::spawn_blocking(move || KafkaInstall::locate(&located))
            .await
            .map_err(|e| BrokerError::Java {
                problem: format!("checking Java failed: {e}"),
            })??;
        let layout = ClusterLayout::new(cfg, data_dir);
        let patience = Duration::from_secs(cfg.shutdown_timeout_secs);
        std::fs::create_dir_all(&layout.dir).map_err(BrokerError::io(&layout.dir))?;
        let lock = lock_data_dir(&layout.dir)?;
        for node in &layout.nodes {
            node::stop_leftover(node, patience).await;
        }
        for node in &layout.nodes {
            node::check_ports(node)?;
        }
        prepare_storage(&install, &layout).await?;

        let mut processes = Vec::with_capacity(layout.nodes.len());
        for node in &layout.nodes {
            processes.push((node.clone(), node::spawn(&install, &layout, node)?));
        }
        let deadline = started + Duration::from_secs(cfg.startup_timeout_secs);
        if let Err(e) = await_answering(&mut processes, layout.bootstrap_servers(), deadline).await
        {
            for (node, p) in processes {
                p.terminate(&node, Duration::from_secs(5)).await;
            }
            return Err(e);
        }
        let startup = started.elapsed();
        tracing::info!(
            bootstrap = %layout.bootstrap_servers(),
            nodes = layout.nodes.len(),
            dir = %layout.dir.display(),
            startup_ms = startup.as_millis() as u64,
            "Kafka broker ready"
        );
        health.set(HEALTH_COMPONENT, Condition::Up);

        let pids = Arc::new(Mutex::new(
            processes.iter().map(|(node, p)| (node.id, p.pid)).collect(),
        ));
        let stop = CancellationToken::new();
        let down = Arc::new(Mutex::new(BTreeSet::new()));
        let supervisors = processes
            .into_iter()
            .map(|(node, process)| {
                let s = Supervisor {
                    install: install.clone(),
                    layout: layout.clone(),
                    node,
                    health: health.clone(),
                    down: Arc::clone(&down),
                    pids: Arc::clone(&pids),
                    stop: stop.clone(),
                    patience,
                    ready_timeout: Duration::from_secs(cfg.startup_timeout_secs),
                };
                tokio::spawn(s.run(process))
            })
            .collect();
        Ok(Self {
            layout,
            startup,
            pids,
            stop,
            supervisors,
            _lock: lock,
        })
    }

    /// `host:port,...` of every node.
    pub fn bootstrap_servers(&self) -> String {
        self.layout.bootstrap_servers()
    }

    /// Time from the start call to every node answering.
    pub fn startup_time(&self) -> Duration {
        self.startup
    }

    /// The process id of node `id` (from 1) while it runs, for tests that kill it on purpose.
    pub fn pid(&self, id: u16) -> Option<u32> {
        self.pids
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&id)
            .copied()
    }

    /// Stops every node: SIGTERM (controlled shutdown), SIGKILL after `broker.shutdown_timeout_secs`.
    pub async fn stop(self) {
        self.stop.cancel();
        for s in self.supervisors {
            let _ = s.await;
        }
        tracing::info!("Kafka broker stopped");
    }
}

/// Takes `{dir}/streamlake.lock`, held for as long as the cluster runs.
fn lock_data_dir(dir: &Path) -> Result<File, BrokerError> {
    let path = dir.join("streamlake.lock");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .open(&path)
        .map_err(BrokerError::io(&path))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => Err(BrokerError::ForeignStorage {
            dir: dir.to_path_buf(),
            problem: "is in use by another running StreamLake (it holds streamlake.lock)".into(),
        }),
        Err(std::fs::TryLockError::Error(e)) => Err(BrokerError::io(path)(e)),
    }
}

/// Writes each node's configuration and formats the nodes' storage on first start; refuses
/// storage formatted for another cluster or another node count without touching it.
async fn prepare_storage(
    install: &KafkaInstall,
    layout: &ClusterLayout,
) -> Result<(), BrokerError> {
    let identity_path = layout.identity_path();
    let identity = match std::fs::read_to_string(&identity_path) {
        Ok(text) => Some(text),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(BrokerError::io(identity_path)(e)),
    };
    let n = layout.nodes.len();
    let mut formatted = Vec::new();
    for node in &layout.nodes {
        formatted.push((node, node::formatted_cluster_id(node)?));
    }
    // Checked in full before anything is written, so refused storage is left as it was.
    let cluster_id = match &identity {
        Some(text) => {
            let id = property(text, "cluster.id").unwrap_or_default().to_owned();
            let nodes: usize = property(text, "nodes")
                .and_then(|v| v.parse().ok())
                .unwrap_or(0);
            if nodes != n {
                return Err(BrokerError::ForeignStorage {
                    dir: layout.dir.clone(),
                    problem: format!(
                        "was formatted for a {nodes}-node cluster, and broker.nodes is {n}"
                    ),
                });
            }
            if let Some((node, Some(found))) = formatted
                .iter()
                .find(|(_, f)| f.as_ref().is_some_and(|f| *f != id))
            {
                return Err(BrokerError::ForeignStorage {
                    dir: node.data_dir(),
                    problem: format!(
                        "belongs to Kafka cluster {found}, not to this data directory's cluster {id}"
                    ),
                });
            }
            id
        }
        None => {
            if let Some((node, Some(found))) = formatted.iter().find(|(_, f)| f.is_some()) {
                return Err(BrokerError::ForeignStorage {
                    dir: node.data_dir(),
                    problem: format!(
                        "holds the storage of Kafka cluster {found}, which StreamLake did not create here ({} is missing)",
                        identity_path.display()
                    ),
                });
            }
            let id = new_cluster_id();
            std::fs::write(&identity_path, format!("cluster.id={id}\nnodes={n}\n"))
                .map_err(BrokerError::io(&identity_path))?;
            id
        }
    };
    for node in &layout.nodes {
        node::write_config(layout, node)?;
    }
    let to_format: Vec<&NodeLayout> = formatted
        .iter()
        .filter(|(_, f)| f.is_none())
        .map(|(node, _)| *node)
        .collect();
    if !to_format.is_empty() {
        tracing::info!(cluster_id = %cluster_id, nodes = to_format.len(), "formatting the broker storage");
        let formats = to_format
            .iter()
            .map(|node| node::format(install, node, &cluster_id));
        // One storage-tool JVM per node: run them together.
        for r in futures::future::join_all(formats).await {
            r?;
        }
    }
    Ok(())
}

/// A random cluster id as Kafka writes them (16 bytes, URL-safe base64 without padding), never
/// starting with '-', which the storage tool would take for an option (Kafka's own
/// `Uuid.randomUuid` avoids it the same way).
fn new_cluster_id() -> String {
    loop {
        let id = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(uuid::Uuid::new_v4().as_bytes());
        if !id.starts_with('-') {
            return id;
        }
    }
}

/// Waits until the metadata `bootstrap` answers with lists every one of `nodes`, failing early
/// when one of their processes exits, and at `deadline`.
async fn await_answering(
    nodes: &mut [(NodeLayout, NodeProcess)],
    bootstrap: String,
    deadline: Instant,
) -> Result<(), BrokerError> {
    let want: BTreeSet<i32> = nodes.iter().map(|(n, _)| i32::from(n.id)).collect();
    loop {
        for (node, p) in nodes.iter_mut() {
            if let Ok(Some(status)) = p.child.try_wait() {
                return Err(BrokerError::NotReady {
                    reason: format!(
                        "node {} exited with {status}: {}",
                        node.id,
                        node::log_tail(&node.log_path())
                    ),
                    log: node.log_path(),
                });
            }
        }
        if broker_ids(bootstrap.clone())
            .await
            .is_some_and(|ids| want.is_subset(&ids))
        {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(BrokerError::NotReady {
                reason: "no answer within broker.startup_timeout_secs".into(),
                log: nodes[0].0.log_path(),
            });
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The ids of the brokers that `bootstrap` reports in its metadata, or `None` when nothing answers.
pub(crate) async fn broker_ids(bootstrap: String) -> Option<BTreeSet<i32>> {
    tokio::task::spawn_blocking(move || {
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", &bootstrap)
            .set("log_level", "0")
            .create()
            .ok()?;
        let md = consumer
            .fetch_metadata(None, Duration::from_millis(1000))
            .ok()?;
        Some(md.brokers().iter().map(|b| b.id()).collect())
    })
    .await
    .ok()
    .flatten()
}

/// Watches one node: reports its death, restarts it with back-off, stops it on request.
struct Supervisor {
    install: KafkaInstall,
    layout: ClusterLayout,
    node: NodeLayout,
    health: Health,
    down: Arc<Mutex<BTreeSet<u16>>>,
    pids: Arc<Mutex<BTreeMap<u16, u32>>>,
    stop: CancellationToken,
    patience: Duration,
    ready_timeout: Duration,
}

impl Supervisor {
    async fn run(self, mut process: NodeProcess) {
        let mut backoff = RESTART.backoff();
        let mut since = Instant::now();
        loop {
            let status = tokio::select! {
                status = process.child.wait() => status,
                () = self.stop.cancelled() => {
                    process.terminate(&self.node, self.patience).await;
                    return;
                }
            };
            let status = status.map_or_else(|e| e.to_string(), |s| s.to_string());
            process.forget(&self.node).await;
            self.pids
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .remove(&self.node.id);
            if since.elapsed() >= STABLE_AFTER {
                backoff.reset();
            }
            let mut pause = backoff.next_delay();
            let reason = format!(
                "node {} ({}) exited with {status}",
                self.node.id, self.node.client
            );
            tracing::error!(
                node = self.node.id,
                %status,
                log = %self.node.log_path().display(),
                last_lines = %node::log_tail(&self.node.log_path()),
                restart_in_ms = pause.as_millis() as u64,
                "Kafka broker node died; restarting it"
            );
            self.mark(false, &reason);
            process = loop {
                tokio::select! {
                    () = tokio::time::sleep(pause) => {}
                    () = self.stop.cancelled() => return,
                }
                match self.restart().await {
                    Ok(p) => break p,
                    Err(e) => {
                        pause = backoff.next_delay();
                        tracing::error!(node = self.node.id, error = %e, restart_in_ms = pause.as_millis() as u64, "restarting the Kafka broker node failed");
                    }
                }
            };
            since = Instant::now();
            self.pids
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .insert(self.node.id, process.pid);
            tracing::info!(
                node = self.node.id,
                pid = process.pid,
                "Kafka broker node restarted and answering"
            );
            self.mark(true, "");
        }
    }

    /// Starts the node again and waits until it answers for itself.
    async fn restart(&self) -> Result<NodeProcess, BrokerError> {
        node::write_config(&self.layout, &self.node)?;
        let process = node::spawn(&self.install, &self.layout, &self.node)?;
        let mut nodes = [(self.node.clone(), process)];
        let deadline = Instant::now() + self.ready_timeout;
        let answering = tokio::select! {
            r = await_answering(&mut nodes, self.node.client.to_string(), deadline) => r,
            () = self.stop.cancelled() => Err(BrokerError::NotReady {
                reason: "the cluster is stopping".into(),
                log: self.node.log_path(),
            }),
        };
        let [(_, process)] = nodes;
        match answering {
            Ok(()) => Ok(process),
            Err(e) => {
                process.terminate(&self.node, self.patience).await;
                Err(e)
            }
        }
    }

    /// Records this node as up or down and reports the cluster's condition: down when a single
    /// node is down or when a majority of nodes is; degraded while a minority is.
    fn mark(&self, up: bool, reason: &str) {
        let mut down = self.down.lock().unwrap_or_else(PoisonError::into_inner);
        if up {
            down.remove(&self.node.id);
        } else {
            down.insert(self.node.id);
        }
        let n = self.layout.nodes.len();
        let condition = if down.is_empty() {
            Condition::Up
        } else {
            let text = if up {
                format!("{} of {n} nodes down", down.len())
            } else {
                format!("{reason}; restarting it ({} of {n} nodes down)", down.len())
            };
            if down.len() * 2 >= n {
                Condition::Down(text)
            } else {
                Condition::Degraded(text)
            }
        };
        self.health.set(HEALTH_COMPONENT, condition);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cluster_ids_are_kafka_uuids_that_never_look_like_an_option() {
        for _ in 0..5_000 {
            let id = new_cluster_id();
            assert_eq!(id.len(), 22, "{id}");
            assert!(!id.starts_with('-'), "{id}");
            assert!(
                id.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'),
                "{id}"
            );
        }
    }
}
