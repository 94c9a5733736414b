//! `streamlake dlq list|replay` and `streamlake tenants`: the console's dead-letter inspector
//! and tenant overview on the command line, through the same service calls as the API.

use std::io::Read as _;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{bail, Context as _};
use streamlake_gateway::Gateway;
use streamlake_ops::dlq::{DeadLetterQuery, ReplayRequest, ReplaySelection, ReplayStatus};
use streamlake_ops::{Ops, Principal};

use super::Connection;
use crate::args::{DlqCommand, TenantsArgs};
use crate::output::{json, table};

/// The operations service as the admin (the CLI has the cluster's credentials already).
pub(crate) fn admin_ops(conn: &Connection) -> anyhow::Result<Ops> {
    let gateway = Gateway::new(&conn.config, &conn.settings)?;
    Ok(Ops::new(
        conn.config.clone(),
        conn.settings.clone(),
        Arc::clone(gateway.ingestor()),
    )?)
}

pub(crate) async fn tenants(conn: &Connection, args: &TenantsArgs) -> anyhow::Result<ExitCode> {
    let ops = admin_ops(conn)?;
    let who = Principal::Admin;
    let ids: Vec<String> = match &args.tenant {
        Some(t) => vec![t.clone()],
        None => ops.tenants(&who).into_iter().map(|t| t.tenant).collect(),
    };
    let mut overviews = Vec::new();
    for id in ids {
        overviews.push(ops.tenant_overview(&who, &id).await?);
    }
    if args.output.json {
        json(&overviews)?;
        return Ok(ExitCode::SUCCESS);
    }
    let mut t = table([
        "tenant",
        "events in",
        "accepted",
        "rejected",
        "dead-lettered",
        "replayed",
    ]);
    for o in &overviews {
        t.add_row([
            o.tenant.clone(),
            o.events_in.to_string(),
            o.accepted.to_string(),
            o.rejected.to_string(),
            o.dead_lettered.to_string(),
            o.replayed.to_string(),
        ]);
    }
    println!("{t}");
    let mut d = table([
        "tenant",
        "dataset",
        "schema versions",
        "raw topic",
        "records",
        "clean topic",
        "records",
    ]);
    for o in &overviews {
        for ds in &o.datasets {
            d.add_row([
                o.tenant.clone(),
                ds.dataset.clone(),
                ds.schema_versions.join(", "),
                ds.raw_topic.clone(),
                ds.raw_records.to_string(),
                ds.clean_topic.clone(),
                ds.clean_records.to_string(),
            ]);
        }
    }
    println!("{d}");
    Ok(ExitCode::SUCCESS)
}

fn position(s: &str) -> anyhow::Result<(i32, i64)> {
    let (p, o) = s
        .split_once('/')
        .with_context(|| format!("--record {s}: write it as PARTITION/OFFSET, e.g. 0/12"))?;
    Ok((
        p.trim()
            .parse()
            .with_context(|| format!("--record {s}: partition \"{p}\" is not a number"))?,
        o.trim()
            .parse()
            .with_context(|| format!("--record {s}: offset \"{o}\" is not a number"))?,
    ))
}

pub(crate) async fn run(conn: &Connection, cmd: &DlqCommand) -> anyhow::Result<ExitCode> {
    let ops = admin_ops(conn)?;
    let who = Principal::Admin;
    match cmd {
        DlqCommand::List {
            tenant,
            limit,
            pending,
            output,
        } => {
            let list = ops
                .dead_letters(
                    &who,
                    tenant,
                    &DeadLetterQuery {
                        limit: Some(*limit),
                        pending: *pending,
                    },
                )
                .await?;
            if output.json {
                json(&list)?;
                return Ok(ExitCode::SUCCESS);
            }
            let mut t = table([
                "partition/offset",
                "stage",
                "dataset",
                "reason",
                "path",
                "rule",
                "replayed",
            ]);
            for d in &list.dead_letters {
                t.add_row([
                    format!("{}/{}", d.partition, d.offset),
                    d.stage.clone().unwrap_or_default(),
                    d.dataset.clone().unwrap_or_default(),
                    d.reason.clone().unwrap_or_default(),
                    d.path.clone().unwrap_or_default(),
                    d.rule.clone().unwrap_or_default(),
                    d.replayed
                        .as_ref()
                        .map_or_else(|| "-".to_owned(), |r| format!("→ {}", r.to)),
                ]);
            }
            println!("{t}");
            let stages: Vec<String> = list
                .by_stage
                .iter()
                .map(|(s, n)| format!("{s}: {n}"))
                .collect();
            println!(
                "{}: {} dead letters ({}), {} replayed; showing {}",
                list.topic,
                list.total,
                stages.join(", "),
                list.replayed,
                list.dead_letters.len()
            );
            if !list.complete {
                eprintln!(
                    "partial: {} records of {} were not read (the broker stopped delivering); the counts cover what was",
                    list.unread, list.topic
                );
            }
        }
        DlqCommand::Replay {
            tenant,
            records,
            all,
            payload,
            output,
        } => {
            let payload = match payload {
                None => None,
                Some(path) => {
                    if records.len() != 1 {
                        bail!("--payload replaces the payload of exactly one --record");
                    }
                    let text = if path.as_os_str() == "-" {
                        let mut s = String::new();
                        std::io::stdin().read_to_string(&mut s)?;
                        s
                    } else {
                        std::fs::read_to_string(path)
                            .with_context(|| format!("reading {}", path.display()))?
                    };
                    Some(serde_json::from_str(&text).with_context(|| {
                        format!(
                            "the corrected payload in {} is not valid JSON",
                            path.display()
                        )
                    })?)
                }
            };
            let mut selections = Vec::new();
            for r in records {
                let (partition, offset) = position(r)?;
                selections.push(ReplaySelection {
                    partition,
                    offset,
                    payload: payload.clone(),
                });
            }
            let report = ops
                .replay(
                    &who,
                    tenant,
                    &ReplayRequest {
                        records: selections,
                        all: *all,
                    },
                )
                .await?;
            if output.json {
                json(&report)?;
            } else {
                let mut t = table(["partition/offset", "status", "written to", "message"]);
                for r in &report.results {
                    t.add_row([
                        format!("{}/{}", r.partition, r.offset),
                        r.status.as_str().to_owned(),
                        r.written_to.clone().unwrap_or_default(),
                        r.message.clone().unwrap_or_default(),
                    ]);
                }
                println!("{t}");
                println!(
                    "replayed {}, invalid again {}, refused {}, failed {}",
                    report.replayed, report.dead_lettered, report.refused, report.failed
                );
                if !report.complete {
                    println!(
                        "partial: the broker stopped delivering with {} records of the dead-letter topic unread; run it again to continue",
                        report.unread
                    );
                }
            }
            let bad = !report.complete
                || report.results.iter().any(|r| {
                    !matches!(
                        r.status,
                        ReplayStatus::Replayed | ReplayStatus::DeadLettered
                    )
                });
            return Ok(if bad {
                ExitCode::FAILURE
            } else {
                ExitCode::SUCCESS
            });
        }
    }
    Ok(ExitCode::SUCCESS)
}
