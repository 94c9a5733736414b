//! `streamlake topics list|describe|provision|create|delete`.

use std::collections::BTreeMap;
use std::process::ExitCode;

use serde::Serialize;
use streamlake_core::TopicSpec;
use streamlake_kafka::{provision, Admin, AdminError, PartitionInfo, ProvisionOutcome};

use super::Connection;
use crate::args::TopicsCommand;
use crate::output::{json, table};

pub(crate) async fn run(conn: &Connection, cmd: &TopicsCommand) -> anyhow::Result<ExitCode> {
    let admin = Admin::new(&conn.settings)?;
    match cmd {
        TopicsCommand::List(out) => {
            let list = super::dlq::admin_ops(conn)?
                .topics(&streamlake_ops::Principal::Admin)
                .await?;
            if out.json {
                json(&list)?;
            } else {
                let mut t = table(["topic", "tenant", "role", "partitions", "messages"]);
                for topic in &list.details {
                    t.add_row([
                        topic.name.clone(),
                        topic.tenant.clone().unwrap_or_else(|| "-".to_owned()),
                        streamlake_ops::role_name(topic.role).to_owned(),
                        topic.partitions.to_string(),
                        topic.messages.to_string(),
                    ]);
                }
                println!("{t}");
            }
        }
        TopicsCommand::Export { name, find, limit } => {
            let page = super::dlq::admin_ops(conn)?
                .export(&streamlake_ops::Principal::Admin, name, &find.query(*limit))
                .await?;
            std::io::Write::write_all(&mut std::io::stdout().lock(), &page.ndjson())?;
            eprintln!(
                "{} records of {} read{}",
                page.count,
                page.scanned,
                if page.complete {
                    ""
                } else {
                    " (more left: narrow the range or raise --scan)"
                }
            );
        }
        TopicsCommand::Messages {
            name,
            find,
            limit,
            output,
        } => {
            let page = super::dlq::admin_ops(conn)?
                .messages(&streamlake_ops::Principal::Admin, name, &find.query(*limit))
                .await?;
            if output.json {
                json(&page)?;
            } else {
                for m in &page.messages {
                    let headers: Vec<String> = m
                        .headers
                        .iter()
                        .map(|h| format!("{}={}", h.name, h.value.as_deref().unwrap_or("")))
                        .collect();
                    println!(
                        "partition={} offset={} key={} headers=[{}]",
                        m.partition,
                        m.offset,
                        m.key.as_deref().unwrap_or("-"),
                        headers.join(",")
                    );
                    println!("  {}", m.value.as_deref().unwrap_or("(no value)"));
                }
                let marks: Vec<String> = page
                    .watermarks
                    .iter()
                    .map(|(p, (l, h))| format!("{p}: {l}-{h}"))
                    .collect();
                println!("{} messages; watermarks {}", page.count, marks.join(", "));
                if page.filtered {
                    println!(
                        "{} records read to find them{}",
                        page.scanned,
                        if page.complete {
                            ""
                        } else {
                            "; more left (raise --scan or narrow the range)"
                        }
                    );
                }
            }
        }
        TopicsCommand::Describe { name, output } => describe(&admin, name, output.json).await?,
        TopicsCommand::Provision(out) => {
            let reports = provision(&admin, &conn.config.declared_topics()).await;
            let failed = reports
                .iter()
                .any(|r| matches!(r.outcome, ProvisionOutcome::Failed { .. }));
            if out.json {
                json(&reports)?;
            } else {
                let mut t = table(["topic", "status", "partitions", "details"]);
                for r in &reports {
                    let (status, details) = match &r.outcome {
                        ProvisionOutcome::Created => ("created", String::new()),
                        ProvisionOutcome::Existing => ("existing", String::new()),
                        ProvisionOutcome::Drift { differences } => (
                            "drift",
                            differences
                                .iter()
                                .map(|d| {
                                    format!(
                                        "{}: declared {}, actual {}",
                                        d.setting, d.declared, d.actual
                                    )
                                })
                                .collect::<Vec<_>>()
                                .join("; "),
                        ),
                        ProvisionOutcome::Failed { error } => ("failed", error.clone()),
                    };
                    let details = if r.notes.is_empty() {
                        details
                    } else {
                        [details, r.notes.join("; ")].join(" ").trim().to_owned()
                    };
                    t.add_row([
                        r.topic.clone(),
                        status.to_owned(),
                        r.partitions.len().to_string(),
                        details,
                    ]);
                }
                println!("{t}");
            }
            if failed {
                return Ok(ExitCode::FAILURE);
            }
        }
        TopicsCommand::Create {
            name,
            partitions,
            replication_factor,
            configs,
        } => {
            let parsed: BTreeMap<String, String> = configs.iter().cloned().collect();
            let spec = TopicSpec {
                name: name.clone(),
                partitions: *partitions,
                replication_factor: *replication_factor,
                configs: parsed,
            };
            admin.create_topic(&spec).await?;
            let rf = replication_factor
                .map_or_else(|| "the broker's default".to_owned(), |r| r.to_string());
            println!("created topic {name} ({partitions} partitions, replication factor {rf})");
        }
        TopicsCommand::Distribution {
            name,
            sample,
            top,
            output,
        } => {
            let d = streamlake_kafka::distribution(&conn.settings, name, *sample, *top).await?;
            if output.json {
                json(&d)?;
            } else {
                print_distribution(&d);
            }
        }
        TopicsCommand::Delete { name, force } => {
            super::dlq::admin_ops(conn)?
                .delete_topic(&streamlake_ops::Principal::Admin, name, *force)
                .await?;
            println!("deleted topic {name}");
        }
        TopicsCommand::SetConfig { name, set, unset } => {
            let mut configs: BTreeMap<String, Option<String>> = set
                .iter()
                .map(|(k, v)| (k.clone(), Some(v.clone())))
                .collect();
            configs.extend(unset.iter().map(|k| (k.clone(), None)));
            let now = super::dlq::admin_ops(conn)?
                .alter_topic_configs(
                    &streamlake_ops::Principal::Admin,
                    name,
                    &streamlake_ops::topics::AlterConfigs {
                        configs: configs.clone(),
                    },
                )
                .await?;
            for k in configs.keys() {
                println!("{k} = {}", now.configs.get(k).map_or("-", String::as_str));
            }
        }
        TopicsCommand::Purge {
            name,
            before,
            partition,
        } => {
            let purged = super::dlq::admin_ops(conn)?
                .purge(
                    &streamlake_ops::Principal::Admin,
                    name,
                    &streamlake_ops::topics::Purge {
                        before_offset: *before,
                        partition: *partition,
                    },
                )
                .await?;
            let lows: Vec<String> = purged
                .low_watermarks
                .iter()
                .map(|(p, o)| format!("{p}: {o}"))
                .collect();
            println!(
                "{} records of {name} deleted; first offsets now {}",
                purged.deleted,
                lows.join(", ")
            );
        }
        TopicsCommand::AddPartitions { name, to } => {
            admin.add_partitions(name, *to).await?;
            println!("topic {name} now has {to} partitions");
        }
    }
    Ok(ExitCode::SUCCESS)
}

#[derive(Serialize)]
struct TopicDescription<'a> {
    name: &'a str,
    partitions: &'a [PartitionInfo],
    configs: Option<BTreeMap<String, String>>,
    configs_error: Option<String>,
}

async fn describe(admin: &Admin, name: &str, as_json: bool) -> anyhow::Result<()> {
    let info = admin.describe_topic(name).await?;
    let (configs, configs_error) = match admin.topic_configs(name).await {
        Ok(c) => (Some(c), None),
        Err(e @ AdminError::Unsupported(_)) => (None, Some(e.to_string())),
        Err(e) => return Err(e.into()),
    };
    if as_json {
        return json(&TopicDescription {
            name,
            partitions: &info.partitions,
            configs,
            configs_error,
        });
    }
    println!(
        "topic {name}: {} partitions, {} messages",
        info.partitions.len(),
        info.message_count()
    );
    let mut t = table(["partition", "leader", "replicas", "isr", "low", "high"]);
    for p in &info.partitions {
        t.add_row([
            p.id.to_string(),
            p.leader.to_string(),
            format!("{:?}", p.replicas),
            format!("{:?}", p.isr),
            p.low.to_string(),
            p.high.to_string(),
        ]);
    }
    println!("{t}");
    match (configs, configs_error) {
        (Some(configs), _) => {
            let mut t = table(["config", "value"]);
            for (k, v) in configs {
                t.add_row([k, v]);
            }
            println!("{t}");
        }
        (None, Some(e)) => println!("configs: {e}"),
        (None, None) => {}
    }
    Ok(())
}

fn print_distribution(d: &streamlake_kafka::Distribution) {
    let total: i64 = d.partitions.iter().map(|p| p.records).sum();
    let max = d
        .partitions
        .iter()
        .map(|p| p.records)
        .max()
        .unwrap_or(0)
        .max(1);
    let mut t = table(["partition", "records", "share", ""]);
    for p in &d.partitions {
        let share = if total > 0 {
            100.0 * p.records as f64 / total as f64
        } else {
            0.0
        };
        let bar = "#".repeat(((p.records as f64 / max as f64) * 40.0).round() as usize);
        t.add_row([
            p.partition.to_string(),
            p.records.to_string(),
            format!("{share:.1}%"),
            bar,
        ]);
    }
    println!(
        "{}: {total} records, skew {:.2} (largest partition / mean)\n{t}",
        d.topic, d.skew
    );
    let mut k = table(["key", "records", "partition"]);
    for key in &d.top_keys {
        k.add_row([
            key.key.clone(),
            key.records.to_string(),
            key.partition.to_string(),
        ]);
    }
    println!(
        "keys in a sample of {} records: {} distinct, {} without a key\n{k}",
        d.sampled, d.distinct_keys, d.keyless
    );
    for w in &d.warnings {
        println!("warning: {w}");
    }
}
