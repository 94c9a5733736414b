//! `streamlake groups list|describe|reset|delete`, through the same service calls as the admin
//! API.

use std::process::ExitCode;

use streamlake_ops::Principal;

use super::Connection;
use streamlake_ops::offsets::{ResetRequest, ResetTo};

use crate::args::{GroupsCommand, ResetToArg};
use crate::output::{json, table};

pub(crate) async fn run(conn: &Connection, cmd: &GroupsCommand) -> anyhow::Result<ExitCode> {
    let ops = super::dlq::admin_ops(conn)?;
    let who = Principal::Admin;
    match cmd {
        GroupsCommand::List(out) => {
            let list = ops.groups(&who).await?;
            if out.json {
                json(&list)?;
            } else {
                let mut t = table(["group", "runs", "state", "members", "total lag"]);
                for g in &list.groups {
                    t.add_row([
                        g.group.clone(),
                        g.runs.clone().unwrap_or_else(|| "-".to_owned()),
                        g.state.clone().unwrap_or_else(|| "unknown".to_owned()),
                        g.members
                            .map_or_else(|| "unknown".to_owned(), |m| m.to_string()),
                        g.total_lag.to_string(),
                    ]);
                }
                println!("{t}");
                if let Some(note) = &list.note {
                    println!("({note})");
                }
            }
        }
        GroupsCommand::Describe {
            group,
            topics,
            output,
        } => {
            let mut detail = ops.group(&who, group).await?;
            if !topics.is_empty() {
                detail.partitions.retain(|p| topics.contains(&p.topic));
                detail.total_lag = detail.partitions.iter().map(|p| p.lag).sum();
                detail.oldest_unread_age_ms = detail
                    .partitions
                    .iter()
                    .filter_map(|p| p.oldest_unread_age_ms)
                    .max();
            }
            if output.json {
                json(&detail)?;
            } else {
                let mut t = table([
                    "topic",
                    "partition",
                    "committed",
                    "high",
                    "lag",
                    "oldest unread waited",
                ]);
                for p in &detail.partitions {
                    t.add_row([
                        p.topic.clone(),
                        p.partition.to_string(),
                        p.committed_offset
                            .map_or_else(|| "none".to_owned(), |c| c.to_string()),
                        p.high_watermark.to_string(),
                        p.lag.to_string(),
                        waited(p.oldest_unread_age_ms),
                    ]);
                }
                println!("group {group}");
                if let Some(runs) = &detail.runs {
                    println!("runs: {runs}");
                }
                println!("{t}");
                println!(
                    "total lag: {} (oldest unread record waited {})",
                    detail.total_lag,
                    waited(detail.oldest_unread_age_ms)
                );
                if let Some(note) = &detail.note {
                    println!("({note})");
                }
            }
        }
        GroupsCommand::Reset {
            group,
            to,
            value,
            topic,
            partitions,
            execute,
            output,
        } => {
            let req = ResetRequest {
                to: match to {
                    ResetToArg::Earliest => ResetTo::Earliest,
                    ResetToArg::Latest => ResetTo::Latest,
                    ResetToArg::Timestamp => ResetTo::Timestamp,
                    ResetToArg::Offset => ResetTo::Offset,
                    ResetToArg::Shift => ResetTo::Shift,
                },
                value: *value,
                topic: topic.clone(),
                partitions: partitions.clone(),
                dry_run: !execute,
            };
            let report = ops.reset_offsets(&who, group, &req).await?;
            if output.json {
                json(&report)?;
            } else {
                let mut t = table([
                    "topic",
                    "partition",
                    "offset",
                    "new offset",
                    "lag",
                    "new lag",
                ]);
                for c in &report.partitions {
                    t.add_row([
                        c.topic.clone(),
                        c.partition.to_string(),
                        c.old_offset
                            .map_or_else(|| "none".to_owned(), |o| o.to_string()),
                        c.new_offset.to_string(),
                        c.lag_before.to_string(),
                        c.lag_after.to_string(),
                    ]);
                }
                println!("{t}");
                println!(
                    "total lag: {} -> {}",
                    report.total_lag_before, report.total_lag_after
                );
                if report.dry_run {
                    println!("dry run: nothing changed; add --execute to reset group {group}");
                } else {
                    println!("group {group} reset");
                }
            }
        }
        GroupsCommand::Delete { group } => {
            ops.delete_group(&who, group).await?;
            println!("group {group} deleted");
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// How long a record has waited, as a table shows it; `-` with nothing waiting.
fn waited(ms: Option<i64>) -> String {
    ms.map_or_else(
        || "-".to_owned(),
        |ms| format!("{:.1} s", ms as f64 / 1000.0),
    )
}
