//! Fault tests on a managed cluster of their own: a broker node SIGKILLed under steady gateway
//! load (acks=all, idempotence). Every event answered 2xx must be in the topic at its partition
//! and offset with identical bytes, once; clients see only 2xx or 503 with
//! `may_have_been_written`, none later than the produce deadline; service comes back.

use std::time::Duration;

use streamlake_labs::failover::{run, FailoverOptions, FailoverReport};

/// One fault test at a time: each starts Kafka nodes of its own, and two clusters killing and
/// restarting JVMs at once on a two-core machine would test the scheduler, not the promise.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn assert_promise_holds(r: &FailoverReport, opts: &FailoverOptions) {
    eprintln!("{r:#?}");
    assert!(r.acknowledged > 0, "{r:?}");
    assert!(r.lost.is_empty(), "acknowledged events lost: {:?}", r.lost);
    assert!(r.duplicated.is_empty(), "written twice: {:?}", r.duplicated);
    assert_eq!(r.unexpected, 0, "answers other than 2xx and 503");
    assert_eq!(
        r.over_deadline, 0,
        "answers later than the produce deadline"
    );
    assert_eq!(r.not_written_found, 0, "503 said not written, yet it was");
    assert!(
        r.node_back_ms.is_some(),
        "the killed node was not restarted"
    );
    assert!(
        Duration::from_millis(r.unavailable_ms) < opts.after_kill,
        "service did not come back: {} ms without a 2xx",
        r.unavailable_ms
    );
}

/// Once the killed node answers again, requests succeed within one produce deadline: clients
/// reconnect within a second, and a request queued meanwhile completes when they do.
fn assert_service_follows_the_node(r: &FailoverReport) {
    let back = r.node_back_ms.expect("the killed node was restarted");
    assert!(
        r.unavailable_ms <= back + r.produce_timeout_ms,
        "{} ms without a 2xx, though the node answered again after {back} ms",
        r.unavailable_ms
    );
}

// The gateway and its clients on several threads, as `streamlake lab failover` runs them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_leader_of_three_nodes_loses_no_acknowledged_event() {
    let _alone = ONE_AT_A_TIME.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let opts = FailoverOptions {
        nodes: 3,
        before_kill: Duration::from_secs(3),
        after_kill: Duration::from_secs(10),
        ..FailoverOptions::default()
    };
    let r = run(&opts, dir.path()).await.unwrap();
    assert_promise_holds(&r, &opts);
    assert!(r.killed_led > 0);
}

// The gateway and its clients on several threads, as `streamlake lab failover` runs them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_single_broker_is_restarted_and_loses_no_acknowledged_event() {
    let _alone = ONE_AT_A_TIME.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let opts = FailoverOptions {
        nodes: 1,
        before_kill: Duration::from_secs(2),
        after_kill: Duration::from_secs(25),
        ..FailoverOptions::default()
    };
    let r = run(&opts, dir.path()).await.unwrap();
    assert_promise_holds(&r, &opts);
    assert_service_follows_the_node(&r);
    assert_eq!(r.killed_led, opts.partitions as usize);
}
