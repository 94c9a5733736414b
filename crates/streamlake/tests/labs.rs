//! The labs against the real broker: partitioning, the ordering checker on an injected
//! violation, a group with more consumers than partitions, and delivery semantics with a real
//! worker process killed mid-batch. Numbers come from the runs, not from formulas.

use std::collections::BTreeSet;
use std::process::Command;
use std::time::Duration;

use serde_json::Value;
use streamlake_labs::semantics::{CrashPoint, Mode, SemanticsOptions};
use streamlake_labs::{ordering, partitioning, rebalance, semantics, Lab};
use streamlake_testkit::{bootstrap, settings};

#[tokio::test]
async fn partitioning_puts_every_key_in_one_partition_and_counts_add_up() {
    let mut lab = Lab::new(&settings().await, "partitioning").unwrap();
    let opts = partitioning::PartitioningOptions::default();
    let r = partitioning::run(&mut lab, &opts).await.unwrap();
    assert_eq!(r.produced, 30);
    assert_eq!(r.read_back, 30);
    assert!(r.same_key_same_partition, "{r:?}");
    assert!(r.receipts_match);
    assert_eq!(r.keys.len(), 10);
    for k in &r.keys {
        assert_eq!(k.partitions.len(), 1, "{k:?}");
        assert_eq!(k.offsets.len(), 3, "{k:?}");
    }
    assert_eq!(r.per_partition.iter().map(|p| p.keyed).sum::<usize>(), 30);
    assert_eq!(r.per_partition.iter().map(|p| p.keyless).sum::<usize>(), 30);
    assert!(
        r.clean_up.starts_with("deleted the topics"),
        "{}",
        r.clean_up
    );
    let admin = streamlake_kafka::Admin::new(&settings().await).unwrap();
    let gone = streamlake_testkit::eventually(Duration::from_secs(30), || async {
        let left = admin.list_topics().await.ok()?;
        (!left.iter().any(|t| t.name.starts_with(&lab.prefix))).then_some(())
    })
    .await;
    assert!(gone.is_some(), "the lab's topics are gone");
}

#[tokio::test]
async fn the_ordering_checker_finds_an_injected_out_of_order_record() {
    let s = settings().await;
    let mut lab = Lab::new(&s, "ordering").unwrap();
    let clean = ordering::run(&mut lab, &ordering::OrderingOptions::default())
        .await
        .unwrap();
    assert_eq!(clean.check.records, 300);
    assert!(
        clean.check.per_key_violations.is_empty(),
        "{:?}",
        clean.check
    );
    assert!(clean.check.split_keys.is_empty());

    let mut lab = Lab::new(&s, "ordering").unwrap();
    let opts = ordering::OrderingOptions {
        inject_out_of_order: true,
        ..ordering::OrderingOptions::default()
    };
    let r = ordering::run(&mut lab, &opts).await.unwrap();
    let v = &r.check.per_key_violations;
    assert!(
        !v.is_empty(),
        "the injected swap was not found: {:?}",
        r.check
    );
    assert!(v.iter().all(|v| v.key == "key-0"), "{v:?}");
    assert_eq!((v[0].expected, v[0].got), (1, 2));
    assert!(v[0].offset > v[0].previous_offset, "{v:?}");
    assert_eq!(v[0].partition, r.key_partitions["key-0"]);
}

#[tokio::test]
async fn with_more_consumers_than_partitions_exactly_one_is_idle() {
    let mut lab = Lab::new(&settings().await, "rebalance").unwrap();
    let opts = rebalance::RebalanceOptions {
        partitions: 2,
        rate: 100,
        work_ms: 5,
        step_secs: 1,
        scale_down: false,
    };
    let r = rebalance::run(&mut lab, &opts).await.unwrap();
    assert_eq!(r.steps.len(), 3, "{r:?}");
    for s in &r.steps {
        assert!(
            s.rebalance_ms.is_some(),
            "step {} did not settle: {s:?}",
            s.change
        );
    }
    let last = &r.steps[2];
    assert_eq!(last.members, 3);
    assert_eq!(last.idle.len(), 1, "{last:?}");
    let owned: BTreeSet<i32> = last.assignment.values().flatten().copied().collect();
    assert_eq!(owned, BTreeSet::from([0, 1]));
    // One consumer owned both partitions first.
    assert_eq!(r.steps[0].assignment.values().next().unwrap(), &vec![0, 1]);
}

fn worker_command(bootstrap: &str) -> Vec<String> {
    vec![
        env!("CARGO_BIN_EXE_streamlake").to_owned(),
        "--bootstrap-servers".to_owned(),
        bootstrap.to_owned(),
    ]
}

#[tokio::test]
async fn a_killed_worker_loses_under_at_most_once_duplicates_under_at_least_once_and_neither_exactly_or_effectively_once(
) {
    let b = bootstrap().await;
    let mut lab = Lab::new(&settings().await, "semantics").unwrap();
    let opts = SemanticsOptions::new(worker_command(&b));
    let r = semantics::run(&mut lab, &opts).await.unwrap();
    let mode = |m: Mode| r.modes.iter().find(|x| x.mode == m).unwrap();

    let amo = mode(Mode::AtMostOnce);
    assert!(amo.crashed);
    // Killed halfway through a committed batch of 10: its second half is never processed.
    assert_eq!(amo.lost.len(), 5, "{amo:?}");
    assert!(amo.duplicated.is_empty(), "{amo:?}");

    let alo = mode(Mode::AtLeastOnce);
    assert!(alo.crashed);
    assert!(alo.lost.is_empty(), "{alo:?}");
    assert_eq!(alo.duplicated.len(), 5, "{alo:?}");
    assert_eq!(alo.sink_rows, 205);

    let eo = mode(Mode::EffectivelyOnce);
    assert!(eo.crashed);
    assert!(eo.lost.is_empty() && eo.duplicated.is_empty(), "{eo:?}");
    assert_eq!((eo.processed, eo.sink_rows), (200, 200));

    let tx = mode(Mode::ExactlyOnceTransactions);
    assert!(tx.crashed);
    assert!(tx.lost.is_empty() && tx.duplicated.is_empty(), "{tx:?}");
    assert!(r.transactions.starts_with("ran"), "{}", r.transactions);
}

#[tokio::test]
async fn a_crash_after_processing_duplicates_a_whole_batch_under_at_least_once() {
    let b = bootstrap().await;
    let mut lab = Lab::new(&settings().await, "semantics").unwrap();
    let mut opts = SemanticsOptions::new(worker_command(&b));
    opts.records = 60;
    opts.crash_at = CrashPoint::AfterProcessing;
    opts.crash_batch = 2;
    opts.modes = vec![Mode::AtLeastOnce];
    let r = semantics::run(&mut lab, &opts).await.unwrap();
    let alo = &r.modes[0];
    assert!(alo.crashed && alo.lost.is_empty());
    assert_eq!(alo.duplicated.len(), 10, "{alo:?}");
}

#[tokio::test]
async fn lab_commands_print_readable_tables_and_json() {
    let b = bootstrap().await;
    let o = Command::new(env!("CARGO_BIN_EXE_streamlake"))
        .args([
            "-b",
            &b,
            "lab",
            "partitioning",
            "--messages",
            "12",
            "--keys",
            "u-1..u-4",
        ])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        out.contains("Same key, same partition: yes, for every key"),
        "{out}"
    );
    assert!(out.contains("u-3"), "{out}");

    let o = Command::new(env!("CARGO_BIN_EXE_streamlake"))
        .args([
            "-b",
            &b,
            "lab",
            "ordering",
            "--keys",
            "2",
            "--per-key",
            "10",
            "--inject-out-of-order",
            "--json",
        ])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["check"]["per_key_violations"][0]["key"], "key-0", "{v}");

    let o = Command::new(env!("CARGO_BIN_EXE_streamlake"))
        .args(["-b", &b, "lab", "partitioning", "--keys", "a..b"])
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("--keys"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
}

/// `up` killed twice under load and restarted at once: every stage holds every acknowledged
/// event once (raw, dead letters, clean, the lake, PostgreSQL), and each restart serves again.
#[tokio::test]
async fn lab_crash_finds_every_event_once_in_every_stage_after_repeated_kills() {
    let out = Command::new(env!("CARGO_BIN_EXE_streamlake"))
        .args([
            "lab",
            "crash",
            "--rounds",
            "2",
            "--load-secs",
            "3",
            "--json",
        ])
        .args(["--postgres", &streamlake_testkit::postgres_url()])
        .env_remove("STREAMLAKE_CONFIG")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(r["drained"], true, "{r}");
    assert_eq!(r["invalid_in_raw"], 0, "{r}");
    assert!(r["accepted"].as_u64().unwrap() > 100, "{r}");
    assert!(r["dead_lettered"].as_u64().unwrap() > 10, "{r}");
    let stages: Vec<&str> = r["stages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["stage"].as_str().unwrap())
        .collect();
    assert_eq!(stages, ["raw", "dlq", "clean", "lake", "postgres"], "{r}");
    for s in r["stages"].as_array().unwrap() {
        assert_eq!(s["lost"], 0, "{s}");
        assert_eq!(s["duplicated"], 0, "{s}");
        assert!(s["expected"].as_u64().unwrap() > 0, "{s}");
    }
    let rounds = r["rounds"].as_array().unwrap();
    assert_eq!(rounds.len(), 2);
    for k in rounds {
        assert!(k["gateway_ms"].is_u64(), "{k}");
        assert!(k["processor_ms"].is_u64(), "{k}");
    }
}
