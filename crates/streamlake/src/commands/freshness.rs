//! `streamlake freshness`, through the same service call as `GET /api/freshness`.

use std::process::ExitCode;

use streamlake_ops::freshness::FreshnessState;
use streamlake_ops::Principal;

use super::Connection;
use crate::args::OutputArgs;
use crate::output::{json, table};

/// The exit code when a dataset is breached (1 stays for errors).
const BREACHED: u8 = 2;

pub(crate) async fn run(conn: &Connection, out: &OutputArgs) -> anyhow::Result<ExitCode> {
    let ops = super::dlq::admin_ops(conn)?;
    let report = ops.freshness(&Principal::Admin).await?;
    if out.json {
        json(&report)?;
    } else {
        let mut t = table([
            "tenant / dataset",
            "state",
            "stage",
            "unread",
            "oldest waited",
            "ingestion -> clean p50 / p99",
            "clean -> durable p50 / p99",
        ]);
        for d in &report.datasets {
            let mut latency = d.ingest_to_clean.map_or_else(
                || "-".to_owned(),
                |l| format!("{} / {} ms", l.p50_ms, l.p99_ms),
            );
            if let Some(l) = d.ingest_to_raw {
                latency.push_str(&format!(" (raw ack {} / {} ms)", l.p50_ms, l.p99_ms));
            }
            let name = format!("{} / {}", d.tenant, d.dataset);
            if d.stages.is_empty() {
                t.add_row([
                    name,
                    d.state.as_str().to_owned(),
                    "-".to_owned(),
                    "-".to_owned(),
                    "-".to_owned(),
                    latency,
                    "-".to_owned(),
                ]);
                continue;
            }
            for (i, s) in d.stages.iter().enumerate() {
                let first = i == 0;
                t.add_row([
                    if first { name.clone() } else { String::new() },
                    if first {
                        d.state.as_str().to_owned()
                    } else {
                        String::new()
                    },
                    format!("{} {}", s.stage, s.name),
                    s.lag.to_string(),
                    s.oldest_unread_age_ms.map_or_else(
                        || "-".to_owned(),
                        |ms| format!("{:.1} s", ms as f64 / 1000.0),
                    ),
                    if first {
                        latency.clone()
                    } else {
                        String::new()
                    },
                    s.durable_latency.map_or_else(
                        || "-".to_owned(),
                        |l| format!("{} / {} ms", l.p50_ms, l.p99_ms),
                    ),
                ]);
            }
        }
        println!("{t}");
        for d in &report.datasets {
            if let Some(s) = &d.event_time_skew {
                println!(
                    "{} / {}: events arrive {} ms late (p50), {} ms (p99){}",
                    d.tenant,
                    d.dataset,
                    s.p50_ms,
                    s.p99_ms,
                    if s.future > 0 {
                        format!("; {} of {} ahead of their ingestion", s.future, s.samples)
                    } else {
                        String::new()
                    }
                );
            }
        }
        for d in report
            .datasets
            .iter()
            .filter(|d| matches!(d.state, FreshnessState::Breached | FreshnessState::AtRisk))
        {
            println!(
                "{} / {}: {}: {}",
                d.tenant,
                d.dataset,
                d.state.as_str(),
                d.reason
            );
        }
    }
    Ok(if report.breached > 0 {
        ExitCode::from(BREACHED)
    } else {
        ExitCode::SUCCESS
    })
}
