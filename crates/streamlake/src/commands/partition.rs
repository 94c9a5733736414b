//! `streamlake partition`: the key an event would be written with and the partition it lands
//! on, without writing it; the same answer as the gateway's preview endpoint.

use std::process::ExitCode;

use anyhow::{anyhow, bail};
use streamlake_core::{DatasetId, TenantId};
use streamlake_gateway::Gateway;
use streamlake_kafka::Admin;

use super::Connection;
use crate::args::PartitionArgs;
use crate::output::{json, table};

pub(crate) async fn run(conn: &Connection, args: &PartitionArgs) -> anyhow::Result<ExitCode> {
    let tenant =
        TenantId::new(args.tenant.clone()).map_err(|e| anyhow!("tenant {:?} {e}", args.tenant))?;
    let dataset = DatasetId::new(args.dataset.clone())
        .map_err(|e| anyhow!("dataset {:?} {e}", args.dataset))?;
    let gateway = Gateway::new(&conn.config, &conn.settings)?;
    let ingestor = gateway.ingestor();
    let target = ingestor
        .target(&tenant, &dataset, "streamlake-cli", &[])
        .map_err(|e| anyhow!("{e}"))?;
    let key = match (&args.key, &args.event) {
        (Some(key), _) => key.clone(),
        (None, Some(event)) => {
            let value = streamlake_schema::Doc::parse(event.as_bytes())
                .map_err(|e| anyhow!("the event is not JSON: {e}"))?;
            target
                .schema
                .key_of(&value)
                .map_err(|v| anyhow!("no key in the event: {} (at {:?})", v.reason, v.path))?
        }
        (None, None) => bail!("give an event (JSON) or --key KEY"),
    };
    let preview = ingestor
        .preview(&Admin::new(&conn.settings)?, &target, key)
        .await?;
    if args.output.json {
        json(&preview)?;
    } else {
        let mut t = table(["topic", "key", "partition", "of", "partitioner"]);
        t.add_row([
            preview.topic.clone(),
            preview.key.clone(),
            preview.partition.to_string(),
            preview.partitions.to_string(),
            preview.partitioner.clone(),
        ]);
        println!("{t}");
    }
    Ok(ExitCode::SUCCESS)
}
