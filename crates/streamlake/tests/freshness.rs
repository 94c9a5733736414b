//! Freshness against a declared objective, on a real processor: stopped while events arrive,
//! its dataset goes at risk and then breached within the objective's times, and back to ok once
//! a processor has caught up; `streamlake freshness` says so and exits 2 while breached.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use streamlake_testkit::{bootstrap, eventually, unique, Stack};

/// The objective: the oldest unread record may wait 8 s (at risk from 4 s).
const MAX_AGE_SECS: u64 = 8;

fn streamlake(stack: &Stack, bootstrap: &str, args: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_streamlake"));
    c.arg("--config")
        .arg(stack.config_path())
        .args(["-b", bootstrap])
        .args(args)
        .env_remove("STREAMLAKE_CONFIG")
        .current_dir(stack.dir.path());
    c
}

/// `streamlake freshness --json`: the dataset's row and the exit code.
fn freshness(stack: &Stack, bootstrap: &str) -> (Value, i32) {
    let out = streamlake(stack, bootstrap, &["freshness", "--json"])
        .output()
        .unwrap();
    let report: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "freshness --json: {e}; stderr: {}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    let row = report["datasets"][0].clone();
    (row, out.status.code().unwrap_or(-1))
}

fn stop(mut child: Child) {
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    child.wait().unwrap();
}

#[tokio::test]
async fn a_stopped_processor_takes_its_dataset_to_at_risk_then_breached_and_back_to_ok() {
    let (raw, clean, group) = (unique("raw"), unique("clean"), unique("process"));
    let stack = Stack::new(&format!(
        r#"
[tenants.t.datasets.sensor]
schema = "schema.json"
key = "/sensor_id"
raw_topic = "{raw}"
clean_topic = "{clean}"
partitions = 2
freshness = {{ max_age_secs = {MAX_AGE_SECS} }}

[pipelines.p]
datasets = ["t/sensor"]
group = "{group}"
"#
    ))
    .await;
    let bootstrap = bootstrap().await;
    let (row, code) = freshness(&stack, &bootstrap);
    assert_eq!(row["state"], "ok", "nothing to read yet: {row}");
    assert_eq!(code, 0);

    // Events arrive while no processor runs.
    let events: Vec<Value> = (0..50)
        .map(|i| json!({"sensor_id": format!("s{i}"), "value": i}))
        .collect();
    stack.produce(&raw, "t", "sensor", &events).await;
    let produced = Instant::now();
    let mut at_risk = None;
    let breached = eventually(Duration::from_secs(4 * MAX_AGE_SECS), || {
        let (row, code) = freshness(&stack, &bootstrap);
        let seen = match row["state"].as_str() {
            Some("at_risk") => {
                assert_eq!(code, 0, "at risk is not a failure");
                at_risk.get_or_insert((produced.elapsed(), row));
                None
            }
            Some("breached") => {
                assert_eq!(code, 2, "breached exits 2: {row}");
                Some((produced.elapsed(), row))
            }
            _ => None,
        };
        std::future::ready(seen)
    })
    .await;
    let breached = breached.unwrap_or_else(|| {
        panic!(
            "not breached {:?} after the events arrived",
            produced.elapsed()
        )
    });
    let (risk_at, risk_row) = at_risk.expect("at risk before breached");
    let (breach_at, breach_row) = breached;
    // At risk from half the age, breached past it (the ages count from the records' own
    // timestamps, a little before `produced`).
    assert!(risk_at >= Duration::from_secs(MAX_AGE_SECS / 2) - Duration::from_secs(2));
    assert!(breach_at >= Duration::from_secs(MAX_AGE_SECS) - Duration::from_secs(2));
    assert!(
        risk_row["reason"]
            .as_str()
            .unwrap()
            .contains("process p: the oldest unread record has waited"),
        "{risk_row}"
    );
    let stage = &breach_row["stages"][0];
    assert_eq!(stage["group"], group.as_str());
    assert_eq!(stage["lag"], 50, "{stage}");
    assert!(
        stage["oldestUnreadAgeMs"].as_i64().unwrap() > (MAX_AGE_SECS * 1000) as i64,
        "{stage}"
    );
    assert!(
        breach_row["reason"]
            .as_str()
            .unwrap()
            .contains(&format!("over max_age_secs = {MAX_AGE_SECS}")),
        "{breach_row}"
    );

    // The processor starts and catches up: back to ok, and the clean topic's latency shows.
    let log = std::fs::File::create(stack.dir.path().join("process.log")).unwrap();
    let processor = streamlake(&stack, &bootstrap, &["process", "--pipeline", "p"])
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();
    let ok = eventually(Duration::from_secs(90), || {
        let (row, code) = freshness(&stack, &bootstrap);
        let ok = (row["state"] == "ok").then(|| {
            assert_eq!(code, 0);
            row
        });
        std::future::ready(ok)
    })
    .await
    .unwrap_or_else(|| {
        panic!(
            "not ok 90 s after the processor started; its log:\n{}",
            std::fs::read_to_string(stack.dir.path().join("process.log")).unwrap_or_default()
        )
    });
    stop(processor);
    assert_eq!(ok["stages"][0]["lag"], 0, "{ok}");
    assert!(ok["stages"][0]["oldestUnreadAgeMs"].is_null(), "{ok}");
    assert_eq!(ok["ingestToClean"]["samples"], 50, "{ok}");
}
