//! Topic provisioning against the real broker: creates what is missing with its partitions and
//! configs, reports existing topics on a second run, and reports drift without changing it.

use std::collections::BTreeMap;

use streamlake_core::TopicSpec;
use streamlake_kafka::{provision, Admin, ProvisionOutcome};
use streamlake_testkit::{settings, unique};

fn spec(name: &str, partitions: i32, configs: &[(&str, &str)]) -> TopicSpec {
    TopicSpec {
        name: name.to_owned(),
        partitions,
        replication_factor: None,
        configs: configs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect::<BTreeMap<_, _>>(),
    }
}

#[tokio::test]
async fn provisioning_creates_then_reports_existing_then_drift() {
    let admin = Admin::new(&settings().await).unwrap();
    let orders = unique("orders");
    let alerts = unique("alerts");
    let declared = vec![
        spec(
            &orders,
            3,
            &[("retention.ms", "3600000"), ("cleanup.policy", "delete")],
        ),
        spec(&alerts, 1, &[]),
    ];

    let first = provision(&admin, &declared).await;
    assert_eq!(first.len(), 2);
    for r in &first {
        assert_eq!(r.outcome, ProvisionOutcome::Created, "{r:?}");
    }
    assert_eq!(first[0].partitions.len(), 3);
    assert_eq!(first[1].partitions.len(), 1);
    let configs = admin.topic_configs(&orders).await.unwrap();
    assert_eq!(
        configs.get("retention.ms").map(String::as_str),
        Some("3600000")
    );
    assert_eq!(
        configs.get("cleanup.policy").map(String::as_str),
        Some("delete")
    );

    let second = provision(&admin, &declared).await;
    for r in &second {
        assert_eq!(r.outcome, ProvisionOutcome::Existing, "{r:?}");
    }
    assert_eq!(
        admin
            .describe_topic(&orders)
            .await
            .unwrap()
            .partitions
            .len(),
        3
    );

    let changed = vec![spec(
        &orders,
        6,
        &[("retention.ms", "7200000"), ("cleanup.policy", "delete")],
    )];
    let third = provision(&admin, &changed).await;
    let ProvisionOutcome::Drift { differences } = &third[0].outcome else {
        panic!("expected drift, got {:?}", third[0]);
    };
    let found: Vec<(&str, &str, &str)> = differences
        .iter()
        .map(|d| (d.setting.as_str(), d.declared.as_str(), d.actual.as_str()))
        .collect();
    assert_eq!(
        found,
        [
            ("partitions", "6", "3"),
            ("retention.ms", "7200000", "3600000")
        ]
    );
    // Drift is reported, never "fixed" behind the operator's back.
    assert_eq!(
        admin
            .describe_topic(&orders)
            .await
            .unwrap()
            .partitions
            .len(),
        3
    );
}

#[tokio::test]
async fn invalid_topics_are_refused_before_reaching_the_broker() {
    let admin = Admin::new(&settings().await).unwrap();
    let reports = provision(
        &admin,
        &[spec("bad name", 1, &[]), spec(&unique("zero"), 0, &[])],
    )
    .await;
    for r in &reports {
        let ProvisionOutcome::Failed { error } = &r.outcome else {
            panic!("expected failure: {r:?}");
        };
        assert!(
            error.contains("contains ' '") || error.contains("at least 1"),
            "{error}"
        );
    }
}

/// Another instance (or a test beside this one) has just created the topic: its partitions may
/// have no leader yet for a moment. Provisioning waits for them instead of failing.
#[tokio::test]
async fn a_topic_created_a_moment_ago_elsewhere_is_not_a_failure() {
    let admin = Admin::new(&settings().await).unwrap();
    for round in 0..10 {
        let declared = spec(&unique(&format!("fresh{round}")), 12, &[]);
        admin.create_topic(&declared).await.unwrap();
        let report = provision(&admin, std::slice::from_ref(&declared)).await;
        assert!(
            matches!(
                report[0].outcome,
                ProvisionOutcome::Existing | ProvisionOutcome::Created
            ),
            "round {round}: {:?}",
            report[0]
        );
        assert_eq!(report[0].partitions.len(), 12, "round {round}");
    }
}
