//! One node's process: its files, its storage format, spawning it in its own process group,
//! stopping it, and finding one left running by a StreamLake that was killed.

use std::io::{Read, Seek, SeekFrom};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use tokio::process::{Child, Command};

use crate::install::KafkaInstall;
use crate::layout::{property, ClusterLayout, NodeLayout, LOG4J2_PROPERTIES};
use crate::BrokerError;

/// Writes the node's generated configuration, creating its directory.
pub(crate) fn write_config(layout: &ClusterLayout, node: &NodeLayout) -> Result<(), BrokerError> {
    std::fs::create_dir_all(&node.dir).map_err(BrokerError::io(&node.dir))?;
    std::fs::write(node.properties_path(), layout.server_properties(node))
        .map_err(BrokerError::io(node.properties_path()))?;
    std::fs::write(node.log4j_path(), LOG4J2_PROPERTIES)
        .map_err(BrokerError::io(node.log4j_path()))?;
    Ok(())
}

/// The cluster id the node's storage was formatted with, if it was.
pub(crate) fn formatted_cluster_id(node: &NodeLayout) -> Result<Option<String>, BrokerError> {
    match std::fs::read_to_string(node.meta_path()) {
        Ok(text) => Ok(property(&text, "cluster.id").map(str::to_owned)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(BrokerError::io(node.meta_path())(e)),
    }
}

/// Formats the node's storage for `cluster_id` with Kafka's storage tool.
pub(crate) async fn format(
    install: &KafkaInstall,
    node: &NodeLayout,
    cluster_id: &str,
) -> Result<(), BrokerError> {
    let out = Command::new(&install.java)
        .arg("-Xmx256m")
        .arg(format!(
            "-Dlog4j2.configurationFile={}",
            node.log4j_path().display()
        ))
        .arg("-cp")
        .arg(install.class_path())
        .args(["kafka.tools.StorageTool", "format", "-t", cluster_id, "-c"])
        .arg(node.properties_path())
        .stdin(Stdio::null())
        .output()
        .await
        .map_err(|source| BrokerError::Spawn {
            java: install.java.clone(),
            source,
        })?;
    if out.status.success() {
        Ok(())
    } else {
        Err(BrokerError::Format {
            node: node.id,
            output: format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            )
            .trim()
            .to_owned(),
        })
    }
}

/// Refuses a port that something else listens on.
pub(crate) fn check_ports(node: &NodeLayout) -> Result<(), BrokerError> {
    for (addr, what) in [(node.client, "client"), (node.controller, "controller")] {
        if listening(addr) {
            return Err(BrokerError::AddressInUse {
                addr,
                what: format!("node {} {what} listener", node.id),
            });
        }
    }
    Ok(())
}

fn listening(addr: SocketAddr) -> bool {
    TcpStream::connect_timeout(&addr, Duration::from_millis(300)).is_ok()
}

/// A running node: the Java process and the watchdog that stops it if StreamLake dies.
#[derive(Debug)]
pub(crate) struct NodeProcess {
    pub(crate) child: Child,
    pub(crate) pid: u32,
    watchdog: Option<Child>,
}

/// Starts the node. It gets its own process group, so a terminal's Ctrl-C reaches StreamLake
/// alone, which then stops its stages before the broker.
pub(crate) fn spawn(
    install: &KafkaInstall,
    layout: &ClusterLayout,
    node: &NodeLayout,
) -> Result<NodeProcess, BrokerError> {
    let log_path = node.log_path();
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log_path)
        .map_err(BrokerError::io(&log_path))?;
    let log_err = log.try_clone().map_err(BrokerError::io(&log_path))?;
    let mut cmd = Command::new(&install.java);
    cmd.args(layout.jvm_options(node))
        .arg("-cp")
        .arg(install.class_path())
        .arg("kafka.Kafka")
        .arg(node.properties_path())
        .current_dir(&node.dir)
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(log_err)
        .process_group(0)
        .kill_on_drop(true);
    let child = cmd.spawn().map_err(|source| BrokerError::Spawn {
        java: install.java.clone(),
        source,
    })?;
    let pid = child.id().unwrap_or_default();
    if let Err(e) = std::fs::write(node.pid_path(), pid.to_string()) {
        tracing::warn!(node = node.id, error = %e, "cannot write the broker's pid file");
    }
    Ok(NodeProcess {
        child,
        pid,
        watchdog: spawn_watchdog(pid),
    })
}

impl NodeProcess {
    /// SIGTERM (Kafka's controlled shutdown), then SIGKILL after `patience`.
    pub(crate) async fn terminate(mut self, node: &NodeLayout, patience: Duration) {
        let _ = kill(Pid::from_raw(self.pid as i32), Signal::SIGTERM);
        match tokio::time::timeout(patience, self.child.wait()).await {
            Ok(_) => tracing::info!(node = node.id, "broker node stopped"),
            Err(_) => {
                tracing::warn!(
                    node = node.id,
                    patience_ms = patience.as_millis() as u64,
                    "broker node did not stop in time; killing it"
                );
                let _ = self.child.kill().await;
            }
        }
        self.forget(node).await;
    }

    /// Stops the watchdog and removes the pid file of a node that has exited.
    pub(crate) async fn forget(mut self, node: &NodeLayout) {
        if let Some(mut w) = self.watchdog.take() {
            let _ = w.kill().await;
        }
        let _ = std::fs::remove_file(node.pid_path());
    }
}

/// A small shell loop that SIGTERMs the node once this process is gone, so a killed StreamLake
/// never leaves a broker holding the ports and the storage. In its own process group, so a
/// Ctrl-C meant for StreamLake does not end it early.
fn spawn_watchdog(node_pid: u32) -> Option<Child> {
    let me = std::process::id();
    let script = format!(
        "while kill -0 {me} 2>/dev/null && kill -0 {node_pid} 2>/dev/null; do sleep 1; done; kill -TERM {node_pid} 2>/dev/null"
    );
    Command::new("sh")
        .args(["-c", &script])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0)
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| tracing::warn!(error = %e, "cannot start the broker watchdog"))
        .ok()
}

/// A node left running by a StreamLake that was killed (its pid file names a live Kafka
/// process started with this node's configuration): stop it, as its owner would have.
pub(crate) async fn stop_leftover(node: &NodeLayout, patience: Duration) {
    let Ok(text) = std::fs::read_to_string(node.pid_path()) else {
        return;
    };
    let Ok(pid) = text.trim().parse::<i32>() else {
        let _ = std::fs::remove_file(node.pid_path());
        return;
    };
    if pid > 0 && is_this_node(pid, node) {
        tracing::warn!(
            node = node.id,
            pid,
            "stopping a broker node left running by an earlier StreamLake"
        );
        let _ = kill(Pid::from_raw(pid), Signal::SIGTERM);
        let deadline = tokio::time::Instant::now() + patience;
        while alive(pid) && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        if alive(pid) {
            let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
            while alive(pid) {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
    let _ = std::fs::remove_file(node.pid_path());
}

fn is_this_node(pid: i32, node: &NodeLayout) -> bool {
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    let cmdline = String::from_utf8_lossy(&cmdline);
    cmdline.contains("kafka.Kafka") && cmdline.contains(&*node.properties_path().to_string_lossy())
}

fn alive(pid: i32) -> bool {
    // A zombie (exited, not yet reaped by its parent) counts as gone.
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => !stat
            .rsplit_once(") ")
            .is_some_and(|(_, rest)| rest.starts_with('Z')),
        Err(_) => false,
    }
}

/// The most telling lines at the end of a node's log: its last errors, else its last lines.
pub(crate) fn log_tail(path: &Path) -> String {
    const TAIL: u64 = 16 * 1024;
    let mut text = String::new();
    if let Ok(mut f) = std::fs::File::open(path) {
        let len = f.metadata().map(|m| m.len()).unwrap_or(0);
        let _ = f.seek(SeekFrom::Start(len.saturating_sub(TAIL)));
        let _ = f.read_to_string(&mut text);
    }
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    let errors: Vec<&str> = lines
        .iter()
        .copied()
        .filter(|l| l.contains("] ERROR ") || l.contains("] FATAL ") || l.starts_with("Exception"))
        .collect();
    let chosen = if errors.is_empty() { &lines } else { &errors };
    chosen[chosen.len().saturating_sub(3)..].join(" | ")
}
