//! `lab rebalance`: a consumer group on a topic with P partitions, under a steady produce load,
//! scaled from one consumer to P+1 and back down to one. After each change: the assignment per
//! member, how long the group took to settle, and lag per partition sampled every second. Too
//! few consumers fall behind (lag grows); more catch up; the (P+1)-th gets nothing.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext, Rebalance, StreamConsumer};
use rdkafka::ClientContext;
use serde::Serialize;
use streamlake_kafka::{Headers, Producer};
use tokio::sync::watch;

use crate::{Lab, LabError};

/// What to run.
#[derive(Debug, Clone)]
pub struct RebalanceOptions {
    /// Partitions of the topic.
    pub partitions: i32,
    /// Records produced per second, all the time.
    pub rate: u64,
    /// Milliseconds each consumer spends per record (its capacity is 1000 / work_ms records/s).
    pub work_ms: u64,
    /// Seconds each step is observed after the group settled.
    pub step_secs: u64,
    /// Scale back down to one consumer after reaching P+1.
    pub scale_down: bool,
}

impl Default for RebalanceOptions {
    fn default() -> Self {
        Self {
            partitions: 3,
            rate: 200,
            work_ms: 8,
            step_secs: 3,
            scale_down: true,
        }
    }
}

/// Lag of every partition at one moment.
#[derive(Debug, Clone, Serialize)]
pub struct LagSample {
    /// Milliseconds since the step's group settled.
    pub after_ms: u64,
    /// Lag by partition.
    pub partitions: BTreeMap<i32, i64>,
    /// Sum.
    pub total: i64,
}

/// One change of the group and what followed.
#[derive(Debug, Clone, Serialize)]
pub struct Step {
    /// What changed, e.g. `+consumer-3`.
    pub change: String,
    /// Members after the change.
    pub members: usize,
    /// Partitions per member.
    pub assignment: BTreeMap<String, Vec<i32>>,
    /// Members with no partition.
    pub idle: Vec<String>,
    /// Milliseconds from the change until every partition was owned by exactly one member and
    /// every member had its assignment; `None` when it did not settle within 30 s.
    pub rebalance_ms: Option<u64>,
    /// Lag per partition, sampled every second.
    pub lag: Vec<LagSample>,
    /// Total lag at the end minus at the start of the observation.
    pub lag_change: i64,
}

/// The lab's result.
#[derive(Debug, Clone, Serialize)]
pub struct RebalanceReport {
    /// Topic.
    pub topic: String,
    /// Group.
    pub group: String,
    /// Partitions.
    pub partitions: i32,
    /// Records produced per second.
    pub rate: u64,
    /// Records per second one consumer can process.
    pub consumer_capacity: u64,
    /// Every change, in order.
    pub steps: Vec<Step>,
    /// What was done with the topics.
    pub clean_up: String,
}

/// Assignments reported by each member's rebalance callback.
#[derive(Debug, Default)]
struct Board {
    /// Member -> (partitions, when assigned).
    assigned: BTreeMap<String, (Vec<i32>, Instant)>,
}

struct MemberContext {
    name: String,
    board: Arc<Mutex<Board>>,
}

impl ClientContext for MemberContext {}

impl ConsumerContext for MemberContext {
    fn post_rebalance(&self, _: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        let partitions = match rebalance {
            Rebalance::Assign(tpl) => tpl.elements().iter().map(|e| e.partition()).collect(),
            Rebalance::Revoke(_) => Vec::new(),
            Rebalance::Error(_) => return,
        };
        let mut board = self.board.lock().expect("board lock");
        board
            .assigned
            .insert(self.name.clone(), (partitions, Instant::now()));
    }
}

struct Member {
    name: String,
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

fn start_member(
    lab: &Lab,
    topic: &str,
    group: &str,
    name: String,
    work: Duration,
    board: &Arc<Mutex<Board>>,
) -> Result<Member, LabError> {
    let mut cfg = lab.settings.consumer_config();
    cfg.set("group.id", group)
        .set("client.id", &name)
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "true")
        .set("auto.commit.interval.ms", "500")
        .set("enable.auto.offset.store", "false")
        .set("session.timeout.ms", "6000")
        .set("heartbeat.interval.ms", "500");
    let consumer: StreamConsumer<MemberContext> = cfg.create_with_context(MemberContext {
        name: name.clone(),
        board: Arc::clone(board),
    })?;
    consumer.subscribe(&[topic])?;
    let (stop, mut stopped) = watch::channel(false);
    let task = tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = stopped.changed() => break,
                m = consumer.recv() => {
                    if let Ok(m) = m {
                        // The record's "processing".
                        tokio::time::sleep(work).await;
                        let _ = consumer.store_offset_from_message(&m);
                    }
                }
            }
        }
        let _ = consumer.commit_consumer_state(rdkafka::consumer::CommitMode::Sync);
        consumer.unsubscribe();
    });
    Ok(Member { name, stop, task })
}

/// Waits until every member was assigned after `since` and the assignments cover every
/// partition once; returns how long it took.
async fn settle(
    board: &Arc<Mutex<Board>>,
    members: &[String],
    partitions: i32,
    since: Instant,
) -> Option<Duration> {
    let deadline = since + Duration::from_secs(30);
    while Instant::now() < deadline {
        {
            let b = board.lock().expect("board lock");
            let fresh = members
                .iter()
                .all(|m| b.assigned.get(m).is_some_and(|(_, at)| *at >= since));
            let mut owned: Vec<i32> = members
                .iter()
                .filter_map(|m| b.assigned.get(m))
                .flat_map(|(p, _)| p.iter().copied())
                .collect();
            owned.sort_unstable();
            if fresh && owned == (0..partitions).collect::<Vec<_>>() {
                let last = members
                    .iter()
                    .filter_map(|m| b.assigned.get(m).map(|(_, at)| *at))
                    .max()
                    .unwrap_or(since);
                return Some(last.saturating_duration_since(since));
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    None
}

/// Runs the lab.
pub async fn run(lab: &mut Lab, opts: &RebalanceOptions) -> Result<RebalanceReport, LabError> {
    if opts.partitions < 1 || opts.rate == 0 || opts.work_ms == 0 {
        return Err(LabError::Other(
            "partitions, rate and work_ms must be at least 1".to_owned(),
        ));
    }
    let topic = lab.topic("load", opts.partitions).await?;
    let group = lab.group("group");
    let board = Arc::new(Mutex::new(Board::default()));
    let work = Duration::from_millis(opts.work_ms);

    // Steady load: `rate` records per second in 20 ticks, keys spread over every partition.
    let producer = Producer::new(&lab.settings)?.with_deadline(Duration::from_secs(30));
    let (load_stop, mut load_stopped) = watch::channel(false);
    let load = {
        let (producer, topic, rate) = (producer.clone(), topic.clone(), opts.rate);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(50));
            let mut n = 0u64;
            let mut carry = 0.0;
            loop {
                tokio::select! {
                    _ = load_stopped.changed() => break,
                    _ = tick.tick() => {
                        carry += rate as f64 / 20.0;
                        let batch = carry as u64;
                        carry -= batch as f64;
                        for _ in 0..batch {
                            let (producer, topic) = (producer.clone(), topic.clone());
                            let key = format!("k-{}", n % 97);
                            n += 1;
                            tokio::spawn(async move {
                                let _ = producer.send(&topic, Some(key.as_bytes()), b"{}", &Headers::new()).await;
                            });
                        }
                    }
                }
            }
        })
    };

    let mut plan: Vec<bool> = vec![true; opts.partitions as usize + 1];
    if opts.scale_down {
        plan.extend(vec![false; opts.partitions as usize]);
    }
    let mut members: Vec<Member> = Vec::new();
    let mut next_id = 1;
    let mut steps = Vec::new();
    for add in plan {
        let since = Instant::now();
        let change = if add {
            let name = format!("consumer-{next_id}");
            next_id += 1;
            members.push(start_member(
                lab,
                &topic,
                &group,
                name.clone(),
                work,
                &board,
            )?);
            format!("+{name}")
        } else {
            let m = members.pop().expect("a member to remove");
            let _ = m.stop.send(true);
            let _ = m.task.await;
            board.lock().expect("board lock").assigned.remove(&m.name);
            format!("-{}", m.name)
        };
        let names: Vec<String> = members.iter().map(|m| m.name.clone()).collect();
        let took = settle(&board, &names, opts.partitions, since).await;
        let assignment: BTreeMap<String, Vec<i32>> = {
            let b = board.lock().expect("board lock");
            names
                .iter()
                .map(|n| {
                    let mut p = b
                        .assigned
                        .get(n)
                        .map(|(p, _)| p.clone())
                        .unwrap_or_default();
                    p.sort_unstable();
                    (n.clone(), p)
                })
                .collect()
        };
        let settled = Instant::now();
        let mut lag = Vec::new();
        for second in 0..=opts.step_secs {
            if second > 0 {
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            let l = lab
                .admin
                .group_lag(&group, std::slice::from_ref(&topic))
                .await?;
            lag.push(LagSample {
                after_ms: settled.elapsed().as_millis() as u64,
                partitions: l.partitions.iter().map(|p| (p.partition, p.lag)).collect(),
                total: l.total_lag,
            });
        }
        let lag_change = match (lag.first(), lag.last()) {
            (Some(a), Some(b)) => b.total - a.total,
            _ => 0,
        };
        steps.push(Step {
            change,
            members: names.len(),
            idle: assignment
                .iter()
                .filter(|(_, p)| p.is_empty())
                .map(|(n, _)| n.clone())
                .collect(),
            assignment,
            rebalance_ms: took.map(|d| d.as_millis() as u64),
            lag,
            lag_change,
        });
    }
    let _ = load_stop.send(true);
    let _ = load.await;
    for m in members {
        let _ = m.stop.send(true);
        let _ = m.task.await;
    }
    Ok(RebalanceReport {
        topic,
        group,
        partitions: opts.partitions,
        rate: opts.rate,
        consumer_capacity: 1000 / opts.work_ms,
        steps,
        clean_up: lab.clean_up().await,
    })
}
