//! `streamlake groups list|describe`.

use std::process::ExitCode;

use streamlake_kafka::Admin;

use super::Connection;
use crate::args::GroupsCommand;
use crate::output::{json, table};

pub(crate) async fn run(conn: &Connection, cmd: &GroupsCommand) -> anyhow::Result<ExitCode> {
    let admin = Admin::new(&conn.settings)?;
    match cmd {
        GroupsCommand::List(out) => {
            let groups = admin.list_groups().await?;
            if out.json {
                json(&groups)?;
            } else {
                let mut t = table(["group", "state", "protocol", "members"]);
                for g in &groups {
                    t.add_row([
                        g.name.clone(),
                        g.state.clone(),
                        g.protocol_type.clone(),
                        g.members.to_string(),
                    ]);
                }
                println!("{t}");
            }
        }
        GroupsCommand::Describe {
            group,
            topics,
            output,
        } => {
            let lag = admin.group_lag(group, topics).await?;
            if output.json {
                json(&lag)?;
            } else {
                let mut t = table(["topic", "partition", "committed", "high", "lag"]);
                for p in &lag.partitions {
                    t.add_row([
                        p.topic.clone(),
                        p.partition.to_string(),
                        p.committed
                            .map_or_else(|| "-".to_owned(), |c| c.to_string()),
                        p.high.to_string(),
                        p.lag.to_string(),
                    ]);
                }
                println!("group {group}");
                println!("{t}");
                println!("total lag: {}", lag.total_lag);
                if lag.partitions.is_empty() {
                    println!("(no committed offsets for this group)");
                }
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
