//! The benches run end to end, small: each starts its own Kafka and prints its report.

use std::process::Command;

fn bench(args: &[&str]) -> (bool, String, String) {
    let o = Command::new(env!("CARGO_BIN_EXE_streamlake-bench"))
        .args(args)
        .output()
        .unwrap();
    (
        o.status.success(),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

#[test]
fn pipeline_runs_on_the_air_quality_example_and_reports_ratios() {
    let (ok, report, log) = bench(&["pipeline", "--records", "200", "--skip-postgres"]);
    assert!(ok, "{log}");
    assert!(
        report.contains("| processor, exactly once (air-quality pipeline) | 200 |"),
        "{report}"
    );
    assert!(
        report.contains("| processor, at-least-once (no transactions) | 200 |"),
        "{report}"
    );
    assert!(report.contains("of the bare loop"), "{report}");
    assert!(report.contains("| parquet sink | 200 |"), "{report}");
}

#[test]
fn latency_reports_percentiles_from_acknowledgement_to_the_clean_topic() {
    let (ok, report, log) = bench(&[
        "latency",
        "--rate",
        "500",
        "--duration-secs",
        "3",
        "--warmup-secs",
        "2",
    ]);
    assert!(ok, "{log}");
    assert!(
        report.contains("| HTTP acknowledgement → record in the clean topic |"),
        "{report}"
    );
    assert!(
        report.contains(" 0 acknowledged events not in the clean topic"),
        "{report}"
    );
}

#[test]
fn gateway_without_a_streamlake_binary_says_how_to_build_one() {
    let (ok, _, log) = bench(&["gateway", "--streamlake", "/nonexistent/streamlake"]);
    assert!(!ok);
    assert!(log.contains("cargo build --release -p streamlake"), "{log}");
}
