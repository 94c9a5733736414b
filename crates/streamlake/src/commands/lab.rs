//! `streamlake lab partitioning|ordering|rebalance|semantics|failover`: runs a lab and prints its
//! report as tables a newcomer can read, or as JSON.

use std::process::ExitCode;

use anyhow::Context as _;
use streamlake_labs::semantics::{CrashPoint, Mode, SemanticsOptions, WorkerArgs};
use streamlake_labs::{failover, ordering, partitioning, rebalance, semantics, Lab};

use super::Connection;
use crate::args::LabCommand;
use crate::output::{json, table};

fn list<T: std::fmt::Display>(items: &[T]) -> String {
    items
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// The command line that starts a semantics worker against the same cluster and configuration.
pub(crate) fn worker_command(
    config: &streamlake_config::Config,
    settings: &streamlake_kafka::KafkaSettings,
) -> anyhow::Result<Vec<String>> {
    let exe = std::env::current_exe().context("locating the streamlake executable")?;
    let mut cmd = vec![
        exe.display().to_string(),
        "--bootstrap-servers".to_owned(),
        settings.bootstrap_servers.clone(),
    ];
    if let Some(file) = &config.file {
        cmd.push("--config".to_owned());
        cmd.push(file.display().to_string());
    }
    Ok(cmd)
}

pub(crate) async fn run(conn: &Connection, cmd: &LabCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        LabCommand::Partitioning {
            messages,
            keys,
            partitions,
            output,
        } => {
            let keys =
                partitioning::parse_keys(keys).map_err(|e| anyhow::anyhow!("--keys: {e}"))?;
            let mut lab = Lab::new(&conn.settings, "partitioning")?;
            let r = partitioning::run(
                &mut lab,
                &partitioning::PartitioningOptions {
                    messages: *messages,
                    keys,
                    partitions: *partitions,
                },
            )
            .await?;
            if output.json {
                json(&r)?;
                return Ok(ExitCode::SUCCESS);
            }
            println!(
                "Produced {} keyed messages to {} ({} partitions) and read {} back.\n",
                r.produced, r.topic, r.partitions, r.read_back
            );
            let mut t = table(["key", "partition", "offsets"]);
            for k in &r.keys {
                t.add_row([k.key.clone(), list(&k.partitions), list(&k.offsets)]);
            }
            println!("{t}\n");
            let mut t = table(["partition", "keyed messages", "keyless messages"]);
            for p in &r.per_partition {
                t.add_row([
                    p.partition.to_string(),
                    p.keyed.to_string(),
                    p.keyless.to_string(),
                ]);
            }
            println!("{t}\n");
            println!(
                "Same key, same partition: {} ({} keys; the partition is a hash of the key modulo the partition count).",
                if r.same_key_same_partition { "yes, for every key" } else { "NO" },
                r.keys.len()
            );
            println!(
                "Receipts match what was read back: {}.",
                if r.receipts_match { "yes" } else { "NO" }
            );
            println!(
                "Keyless messages ({}) have no key to hash: the producer's partitioner spreads them (librdkafka's sticky partitioner fills one partition per batch, then moves on), so nothing keeps related messages together or in order.",
                r.keyless_topic
            );
            println!("{}", r.clean_up);
        }
        LabCommand::Ordering {
            keys,
            per_key,
            partitions,
            inject_out_of_order,
            output,
        } => {
            let mut lab = Lab::new(&conn.settings, "ordering")?;
            let r = ordering::run(
                &mut lab,
                &ordering::OrderingOptions {
                    keys: *keys,
                    per_key: *per_key,
                    partitions: *partitions,
                    inject_out_of_order: *inject_out_of_order,
                },
            )
            .await?;
            if output.json {
                json(&r)?;
                return Ok(ExitCode::SUCCESS);
            }
            println!(
                "Produced {} keys x {} sequence numbers concurrently to {}{}; read {} back in the order a consumer receives them.\n",
                r.keys,
                r.per_key,
                r.topic,
                if r.injected { " (key-0's 1 and 2 written out of order on purpose)" } else { "" },
                r.check.records
            );
            let mut t = table(["key", "partition"]);
            for (k, p) in &r.key_partitions {
                t.add_row([k.clone(), p.to_string()]);
            }
            println!("{t}\n");
            if r.check.per_key_violations.is_empty() {
                println!("Per key: order holds. Every key's sequence numbers were read 0, 1, 2, ... from its one partition.");
            } else {
                println!(
                    "Per key: {} violation(s):",
                    r.check.per_key_violations.len()
                );
                let mut t = table([
                    "key",
                    "expected",
                    "got",
                    "partition",
                    "offset",
                    "previous offset",
                ]);
                for v in &r.check.per_key_violations {
                    t.add_row([
                        v.key.clone(),
                        v.expected.to_string(),
                        v.got.to_string(),
                        v.partition.to_string(),
                        v.offset.to_string(),
                        v.previous_offset.to_string(),
                    ]);
                }
                println!("{t}");
            }
            match r.check.first_inversion {
                Some((earlier, later)) => println!(
                    "Across keys: order does not hold. {} records were read after a record produced later than them (e.g. produce position {earlier} read after {later}): partitions are fetched independently.",
                    r.check.cross_key_inversions
                ),
                None => println!("Across keys: this run happened to read in produce order; Kafka does not promise it."),
            }
            println!("{}", r.clean_up);
        }
        LabCommand::Rebalance {
            partitions,
            rate,
            work_ms,
            step_secs,
            no_scale_down,
            output,
        } => {
            let mut lab = Lab::new(&conn.settings, "rebalance")?;
            let opts = rebalance::RebalanceOptions {
                partitions: *partitions,
                rate: *rate,
                work_ms: *work_ms,
                step_secs: *step_secs,
                scale_down: !no_scale_down,
            };
            if !output.json {
                eprintln!(
                    "Producing {rate} records/s to {partitions} partitions; each consumer handles about {} records/s. Scaling the group...",
                    1000 / work_ms.max(&1)
                );
            }
            let r = rebalance::run(&mut lab, &opts).await?;
            if output.json {
                json(&r)?;
                return Ok(ExitCode::SUCCESS);
            }
            println!(
                "Topic {} ({} partitions), group {}.\n",
                r.topic, r.partitions, r.group
            );
            let mut t = table([
                "change",
                "members",
                "assignment",
                "idle",
                "rebalance ms",
                "lag at start → end",
                "lag change",
                "lag at end",
            ]);
            for s in &r.steps {
                let assignment: Vec<String> = s
                    .assignment
                    .iter()
                    .map(|(m, p)| format!("{m}: [{}]", list(p)))
                    .collect();
                let lag = match (s.lag.first(), s.lag.last()) {
                    (Some(a), Some(b)) => format!("{} → {}", a.total, b.total),
                    _ => "-".to_owned(),
                };
                t.add_row([
                    s.change.clone(),
                    s.members.to_string(),
                    assignment.join("\n"),
                    if s.idle.is_empty() {
                        "-".to_owned()
                    } else {
                        s.idle.join(", ")
                    },
                    s.rebalance_ms
                        .map_or_else(|| "did not settle".to_owned(), |ms| ms.to_string()),
                    lag,
                    format!("{:+}", s.lag_change),
                    s.lag.last().map_or_else(String::new, |l| {
                        l.partitions
                            .iter()
                            .map(|(p, lag)| format!("p{p}: {lag}"))
                            .collect::<Vec<_>>()
                            .join("\n")
                    }),
                ]);
            }
            println!("{t}\n");
            println!(
                "Lag per partition over time is in --json (steps[].lag). With fewer consumers than needed for {} records/s, lag grows; with enough it shrinks; a consumer beyond the partition count gets no partition and stays idle.",
                r.rate
            );
            println!("{}", r.clean_up);
        }
        LabCommand::Semantics {
            records,
            batch,
            crash_at,
            crash_batch,
            modes,
            output,
        } => {
            let mut opts = SemanticsOptions::new(worker_command(&conn.config, &conn.settings)?);
            opts.records = *records;
            opts.batch = *batch;
            opts.crash_at = CrashPoint::parse(crash_at).context("--crash-at")?;
            opts.crash_batch = *crash_batch;
            if !modes.is_empty() {
                opts.modes = modes.iter().filter_map(|m| Mode::parse(m)).collect();
            }
            let mut lab = Lab::new(&conn.settings, "semantics")?;
            let r = semantics::run(&mut lab, &opts).await?;
            if output.json {
                json(&r)?;
                return Ok(ExitCode::SUCCESS);
            }
            println!(
                "Each mode: {} records in batches of {}; the worker process is killed (SIGKILL) {} in batch {}, then a new worker finishes from the committed offsets.\n",
                opts.records, r.batch, r.crash_at.as_str(), r.crash_batch
            );
            let mut t = table([
                "mode",
                "crashed",
                "produced",
                "processed",
                "sink rows",
                "lost",
                "duplicated",
            ]);
            for m in &r.modes {
                t.add_row([
                    m.mode.as_str().to_owned(),
                    if m.crashed {
                        "yes"
                    } else {
                        "no (finished first)"
                    }
                    .to_owned(),
                    m.produced.to_string(),
                    m.processed.to_string(),
                    m.sink_rows.to_string(),
                    m.lost.len().to_string(),
                    m.duplicated.len().to_string(),
                ]);
            }
            println!("{t}\n");
            for m in &r.modes {
                if !m.lost.is_empty() {
                    println!("{} lost: {}", m.mode.as_str(), list(&m.lost));
                }
                if !m.duplicated.is_empty() {
                    println!("{} duplicated: {}", m.mode.as_str(), list(&m.duplicated));
                }
            }
            println!("\nat-most-once commits before processing: a crash in between loses the rest of the batch.");
            println!("at-least-once commits after processing: a crash in between processes part of the batch twice.");
            println!("effectively-once is at-least-once into a sink that drops ids it already holds (as StreamLake's PostgreSQL sink does with ingestion_id).");
            if r.modes
                .iter()
                .any(|m| m.mode == Mode::ExactlyOnceTransactions)
            {
                println!("exactly-once-transactions produces the output and commits the offsets in one transaction per batch; a killed worker's open transaction is aborted, and read_committed readers never see it.");
            }
            println!("exactly-once with transactions: {}", r.transactions);
            println!("{}", r.clean_up);
        }
        LabCommand::Failover { .. } => return failover(cmd).await,
        LabCommand::Crash { .. } => return crash(cmd).await,
        LabCommand::Worker {
            topic,
            group,
            mode,
            sink,
            batch,
            crash_at,
            crash_batch,
        } => {
            let args = WorkerArgs {
                topic: topic.clone(),
                group: group.clone(),
                mode: Mode::parse(mode).context("--mode")?,
                sink: sink.clone(),
                batch: *batch,
                crash: crash_at
                    .as_deref()
                    .and_then(CrashPoint::parse)
                    .map(|c| (c, *crash_batch)),
            };
            let settings = conn.settings.clone();
            let written = tokio::task::spawn_blocking(move || semantics::worker(&settings, &args))
                .await
                .context("worker")??;
            println!("{written}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `lab failover`: on a cluster of its own, so it never kills a broker anyone else uses.
pub(crate) async fn failover(cmd: &LabCommand) -> anyhow::Result<ExitCode> {
    let LabCommand::Failover {
        nodes,
        partitions,
        clients,
        before_secs,
        after_secs,
        produce_timeout_ms,
        output,
    } = cmd
    else {
        anyhow::bail!("not the failover lab");
    };
    let opts = failover::FailoverOptions {
        nodes: *nodes,
        partitions: *partitions,
        clients: *clients,
        before_kill: std::time::Duration::from_secs(*before_secs),
        after_kill: std::time::Duration::from_secs(*after_secs),
        produce_timeout: std::time::Duration::from_millis(*produce_timeout_ms),
    };
    let dir = tempfile::tempdir().context("a temporary directory for the lab's cluster")?;
    eprintln!(
        "starting a {}-node Kafka for the lab; {} s of load, the leading node killed after {} s",
        opts.nodes,
        before_secs + after_secs,
        before_secs
    );
    let r = failover::run(&opts, dir.path()).await?;
    let holds = r.lost.is_empty()
        && r.duplicated.is_empty()
        && r.unexpected == 0
        && r.over_deadline == 0
        && r.not_written_found == 0;
    if output.json {
        json(&r)?;
    } else {
        let mut t = table(["", "value"]);
        for (k, v) in [
            ("nodes", r.nodes.to_string()),
            ("cluster start-up", format!("{} ms", r.startup_ms)),
            (
                "node killed",
                format!("{} (leader of {} partitions)", r.killed_node, r.killed_led),
            ),
            ("requests", r.requests.to_string()),
            ("answered 2xx", r.acknowledged.to_string()),
            (
                "answered 503, may have been written",
                format!(
                    "{} ({} of them in the topic)",
                    r.maybe_written, r.maybe_written_found
                ),
            ),
            (
                "answered 503, not written",
                format!(
                    "{} ({} of them in the topic)",
                    r.not_written, r.not_written_found
                ),
            ),
            ("other answers or no answer", r.unexpected.to_string()),
            ("2xx events lost or changed", r.lost.len().to_string()),
            ("events written twice", r.duplicated.len().to_string()),
            (
                "slowest answer",
                format!(
                    "{} ms (deadline {} ms; {} later than deadline + 1 s)",
                    r.slowest_ms, r.produce_timeout_ms, r.over_deadline
                ),
            ),
            (
                "longest time without a 2xx after the kill",
                format!("{} ms", r.unavailable_ms),
            ),
            (
                "killed node answering again after",
                r.node_back_ms.map_or_else(
                    || "not within 3 minutes".to_owned(),
                    |ms| format!("{ms} ms"),
                ),
            ),
        ] {
            t.add_row([k.to_owned(), v]);
        }
        println!("{t}\n");
        println!(
            "{}",
            if holds {
                "Every event answered 2xx is in the topic at the partition and offset of its answer, with identical bytes, once; every answer came within the deadline."
            } else {
                "The promise did not hold: see the rows above (--json lists the ids)."
            }
        );
    }
    Ok(if holds {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// `lab crash`: on a Kafka of its own, with `up` run from this binary.
pub(crate) async fn crash(cmd: &LabCommand) -> anyhow::Result<ExitCode> {
    let LabCommand::Crash {
        rounds,
        clients,
        load_secs,
        postgres,
        output,
    } = cmd
    else {
        anyhow::bail!("not the crash lab");
    };
    let exe = std::env::current_exe().context("the path of this binary")?;
    let mut opts = streamlake_labs::crash::CrashOptions::new(exe);
    opts.rounds = *rounds;
    opts.clients = *clients;
    opts.load = std::time::Duration::from_secs(*load_secs);
    opts.postgres_url = postgres.clone();
    let dir = tempfile::tempdir().context("a temporary directory for the lab")?;
    eprintln!(
        "starting a Kafka and `streamlake up` for the lab; {rounds} SIGKILLs of up, {load_secs} s of load before each"
    );
    let r = streamlake_labs::crash::run(&opts, dir.path()).await?;
    if output.json {
        json(&r)?;
    } else {
        let mut t = table([
            "kill",
            "up again",
            "gateway answers",
            "processor writes",
            "lake lands a file",
        ]);
        let ms = |v: Option<u64>| {
            v.map_or_else(
                || "not within the round".to_owned(),
                |ms| format!("{ms} ms"),
            )
        };
        for k in &r.rounds {
            t.add_row([
                k.round.to_string(),
                format!("{} ms", k.startup_ms),
                ms(k.gateway_ms),
                ms(k.processor_ms),
                ms(k.lake_ms),
            ]);
        }
        println!("Recovery after each kill, from the restart:\n{t}\n");
        println!(
            "{} requests: {} accepted, {} dead-lettered, {} answered 503 may-have-been-written, {} refused (not written), {} unanswered (up was down)\n",
            r.requests, r.accepted, r.dead_lettered, r.maybe_written, r.not_written, r.unanswered
        );
        let mut t = table([
            "stage",
            "promise",
            "expected",
            "found",
            "lost",
            "duplicated",
        ]);
        for s in &r.stages {
            t.add_row([
                s.stage.clone(),
                s.promise.to_owned(),
                s.expected.to_string(),
                s.found.to_string(),
                s.lost.to_string(),
                s.duplicated.to_string(),
            ]);
        }
        println!("{t}\n");
        if !r.drained {
            println!("The stages had not caught up when the lab gave up waiting: the audit counts what was there.");
        }
        if r.invalid_in_raw > 0 {
            println!("{} invalid events reached the raw topic.", r.invalid_in_raw);
        }
        println!(
            "{}",
            if r.holds() {
                "Every stage kept its promise: nothing acknowledged was lost, and the exactly-once stages hold every event once."
            } else {
                "A promise did not hold: see the rows above."
            }
        );
    }
    Ok(if r.holds() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
