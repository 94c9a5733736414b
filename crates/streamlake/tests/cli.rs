//! The `streamlake` binary driven as a user would: config check, topics, produce/consume round
//! trips, group lag, and `up` on the air-quality example until SIGTERM.

use std::collections::BTreeMap;
use std::io::Write;
use std::os::unix::process::CommandExt as _;
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use serde_json::Value;
use streamlake_kafka::Admin;
use streamlake_testkit::{
    bootstrap, eventually, example, free_local_addr, free_port_block, mqtt_addr, mqtt_publish,
    postgres, postgres_url, settings, unique, Reader,
};

fn streamlake(args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_streamlake"));
    cmd.args(args).env_remove("STREAMLAKE_CONFIG");
    cmd
}

/// A process a test stops itself; killed when the test ends first (a failed assertion), so
/// nothing it started keeps running: the broker of a killed `up` is stopped by its watchdog.
struct Running(Option<Child>);

impl Running {
    fn id(&self) -> u32 {
        self.0.as_ref().map_or(0, Child::id)
    }

    /// Waits for the process to exit until `deadline`: its status, or `None` if still running.
    fn wait_until(&mut self, deadline: std::time::Instant) -> Option<std::process::ExitStatus> {
        let child = self.0.as_mut()?;
        while std::time::Instant::now() < deadline {
            if let Ok(Some(status)) = child.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        None
    }

    /// The process, no longer killed on drop.
    fn take(mut self) -> Child {
        self.0.take().expect("a running process")
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(child) = &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// `streamlake up` on an example's configuration, with its broker, HTTP server and data on the
/// given addresses and directory; its log goes to `up.log` there.
fn up_command(
    example_config: &str,
    data: &std::path::Path,
    listen: std::net::SocketAddr,
    http: std::net::SocketAddr,
) -> Command {
    let config = example(example_config);
    let mut cmd = streamlake(&[
        "up",
        "--config",
        config.to_str().unwrap(),
        "--data-dir",
        data.to_str().unwrap(),
    ]);
    cmd.env("STREAMLAKE_BROKER__LISTEN", listen.to_string())
        .env("STREAMLAKE_HTTP__LISTEN", http.to_string())
        .stdout(Stdio::null())
        // A file, not a pipe: nothing reads the log while `up` runs.
        .stderr(std::fs::File::create(data.join("up.log")).unwrap());
    cmd
}

fn run(args: &[&str]) -> Output {
    streamlake(args).output().unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn config_check_accepts_the_examples() {
    for ex in [
        "air-quality/streamlake.toml",
        "seed-pipeline/streamlake.toml",
    ] {
        let path = example(ex);
        let o = run(&["config", "check", path.to_str().unwrap()]);
        assert!(o.status.success(), "{ex}: {}", stderr(&o));
        assert!(stdout(&o).contains(": ok ("), "{}", stdout(&o));
    }
}

#[test]
fn config_check_reports_every_problem_and_fails() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.toml");
    std::fs::write(
        &path,
        "[topic_defaults]\npartitions = 0\n\n[[topics]]\nname = \"bad topic\"\n\n[kafka]\nbrokers = \"x\"\n",
    )
    .unwrap();
    let o = run(&["config", "check", path.to_str().unwrap()]);
    assert!(!o.status.success());
    let err = stderr(&o);
    assert!(err.contains("3 configuration errors"), "{err}");
    assert!(err.contains("topic_defaults.partitions: is 0"), "{err}");
    assert!(
        err.contains("topics[0].name: topic name \"bad topic\""),
        "{err}"
    );
    assert!(
        err.contains("kafka.brokers") || err.contains("unknown field `brokers`"),
        "{err}"
    );
    assert!(err.contains(&path.display().to_string()), "{err}");
}

/// What `streamlake keys hash` prints for `input` on its standard input.
fn keys_hash(input: &str) -> String {
    let mut c = streamlake(&["keys", "hash"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    Write::write_all(c.stdin.as_mut().unwrap(), input.as_bytes()).unwrap();
    String::from_utf8(c.wait_with_output().unwrap().stdout)
        .unwrap()
        .trim()
        .to_owned()
}

#[test]
fn keys_new_makes_an_entry_that_hash_and_config_check_agree_with() {
    let o = run(&["keys", "new", "--name", "ci"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    let key = out
        .lines()
        .find_map(|l| l.split(": ").nth(1).filter(|k| k.starts_with("sl_")))
        .unwrap_or_else(|| panic!("{out}"))
        .to_owned();
    let entry = out
        .lines()
        .find(|l| l.contains("sha256"))
        .unwrap()
        .trim()
        .to_owned();
    let digest = keys_hash(&format!("{key}\n"));
    assert_eq!(digest.len(), 64);
    assert!(entry.contains(&digest), "{entry} vs {digest}");

    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("s.json"), "{}").unwrap();
    let path = dir.path().join("keys.toml");
    std::fs::write(
        &path,
        format!("[tenants.t]\napi_keys = [{entry}, {{ name = \"ci\", sha256 = \"abc\" }}]\n[tenants.t.datasets.d]\nschema = \"s.json\"\nkey = \"/id\"\n"),
    )
    .unwrap();
    let o = run(&["config", "check", path.to_str().unwrap()]);
    assert!(!o.status.success());
    let err = stderr(&o);
    assert!(err.contains("tenants.t.api_keys[1].name"), "{err}");
    assert!(
        err.contains("tenants.t.api_keys[1].sha256: must be the key's SHA-256"),
        "{err}"
    );
    assert!(!err.contains("api_keys[0]"), "{err}");
}

#[test]
fn config_check_reports_component_problems_with_the_others() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("schema.json"), r#"{"type":"object"}"#).unwrap();
    let path = dir.path().join("bad.toml");
    std::fs::write(
        &path,
        r#"
[topic_defaults]
partitions = 0

[tenants.acme.datasets.orders]
schema = "schema.json"
key = "/id"
processing = { rules = [{ field = "/amount", min = 5.0, max = 1.0 }] }

[sinks.lake]
datasets = ["acme/orders"]
parquet = { roll_rows = 0 }
"#,
    )
    .unwrap();
    let o = run(&["config", "check", path.to_str().unwrap()]);
    assert!(!o.status.success());
    let err = stderr(&o);
    assert!(err.contains("3 configuration errors"), "{err}");
    assert!(
        err.contains(
            "tenants.acme.datasets.orders.processing.rules[0]: min (5) is greater than max (1)"
        ),
        "{err}"
    );
    assert!(
        err.contains("sinks.lake.parquet.roll_rows: must be at least 1"),
        "{err}"
    );
}

/// Three versions of a closed schema: 2 adds an optional `unit` (backward compatible only),
/// 3 requires it, narrows its values and makes `value` an integer (forward compatible only).
fn schema_versions(dir: &std::path::Path) -> [String; 3] {
    let versions = [
        r#"{"type":"object","required":["id","value"],"additionalProperties":false,
            "properties":{"id":{"type":"integer"},"value":{"type":"number"}}}"#,
        r#"{"type":"object","required":["id","value"],"additionalProperties":false,
            "properties":{"id":{"type":"integer"},"value":{"type":"number"},"unit":{"enum":["C","F"]}}}"#,
        r#"{"type":"object","required":["id","value","unit"],"additionalProperties":false,
            "properties":{"id":{"type":"integer"},"value":{"type":"integer"},"unit":{"enum":["C"]}}}"#,
    ];
    let mut paths = Vec::new();
    for (i, v) in versions.iter().enumerate() {
        let path = dir.join(format!("v{}.json", i + 1));
        std::fs::write(&path, v).unwrap();
        paths.push(path.to_str().unwrap().to_owned());
    }
    paths.try_into().unwrap()
}

#[test]
fn schema_check_names_each_incompatible_change_and_fails_on_the_mode_asked() {
    let dir = tempfile::tempdir().unwrap();
    let [v1, v2, v3] = schema_versions(dir.path());
    let o = run(&["schema", "check", &v1, &v2]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(out.contains("backward  compatible"), "{out}");
    assert!(
        out.contains("/unit: property_added_to_closed_content_model"),
        "{out}"
    );
    assert!(out.contains("compatibility backward: kept"), "{out}");
    // The same pair under full: the forward change breaks it.
    let o = run(&["schema", "check", &v1, &v2, "--compatibility", "full"]);
    assert!(!o.status.success());
    assert!(stdout(&o).contains("compatibility full: broken"));

    let o = run(&["schema", "check", &v1, &v2, &v3, "--json"]);
    assert!(!o.status.success());
    let report: Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(report["compatible"], false);
    let rules: Vec<(&str, &str)> = report["pairs"][1]["backward"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["path"].as_str().unwrap(), c["rule"].as_str().unwrap()))
        .collect();
    assert_eq!(
        rules,
        [
            ("/unit", "required_added"),
            ("/unit", "enum_narrowed"),
            ("/value", "type_narrowed")
        ]
    );
    // Transitive: version 3 against version 1 as well.
    let o = run(&[
        "schema",
        "check",
        &v1,
        &v2,
        &v3,
        "--json",
        "--compatibility",
        "forward_transitive",
    ]);
    let report: Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(report["pairs"].as_array().unwrap().len(), 3);
    assert_eq!(report["compatible"], false, "v1 -> v2 is not forward");

    let o = run(&["schema", "check", &v1, "missing.json"]);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("cannot read missing.json"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn config_check_refuses_versions_that_break_the_datasets_compatibility() {
    let dir = tempfile::tempdir().unwrap();
    schema_versions(dir.path());
    let path = dir.path().join("streamlake.toml");
    let toml = |mode: &str| {
        format!(
            r#"
[tenants.acme.datasets.orders]
key = "/id"
compatibility = "{mode}"
versions = [
  {{ version = "1", schema = "v1.json" }},
  {{ version = "2", schema = "v2.json" }},
  {{ version = "3", schema = "v3.json" }},
]
"#
        )
    };
    std::fs::write(&path, toml("backward")).unwrap();
    let o = run(&["config", "check", path.to_str().unwrap()]);
    assert!(!o.status.success());
    let err = stderr(&o);
    assert!(
        err.contains("tenants.acme.datasets.orders: compatibility backward: version 3 is not backward compatible with version 2: /unit: required_added"),
        "{err}"
    );
    std::fs::write(&path, toml("none")).unwrap();
    let o = run(&["config", "check", path.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    // `schema` and `versions` together are refused.
    std::fs::write(&path, format!("{}schema = \"v1.json\"\n", toml("none"))).unwrap();
    let o = run(&["config", "check", path.to_str().unwrap()]);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("has both `schema` and `versions`"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn environment_overrides_are_applied_and_named_in_errors() {
    let path = example("air-quality/streamlake.toml");
    let o = streamlake(&["config", "check", path.to_str().unwrap()])
        .env("STREAMLAKE_TOPIC_DEFAULTS__PARTITIONS", "0")
        .output()
        .unwrap();
    assert!(!o.status.success());
    let err = stderr(&o);
    assert!(
        err.contains("environment variable STREAMLAKE_TOPIC_DEFAULTS__PARTITIONS"),
        "{err}"
    );

    let o = streamlake(&["config", "check", path.to_str().unwrap()])
        .env("STREAMLAKE_KAFKA__BOOTSTRAP_SERVERS", "kafka.example:9092")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stdout(&o).contains("Kafka at kafka.example:9092"),
        "{}",
        stdout(&o)
    );
}

#[tokio::test]
async fn produce_then_consume_round_trips_keys_partitions_and_headers() {
    let b = bootstrap().await;
    let topic = unique("cli");
    let o = run(&["-b", &b, "topics", "create", &topic, "--partitions", "3"]);
    assert!(o.status.success(), "{}", stderr(&o));

    let mut child = streamlake(&[
        "-b",
        &b,
        "produce",
        &topic,
        "--key-separator",
        ":",
        "-H",
        "source=cli",
        "-H",
        "trace=t-1",
        "--json",
    ])
    .stdin(Stdio::piped())
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()
    .unwrap();
    let lines: Vec<String> = (0..12)
        .map(|i| format!("user-{}:{{\"n\":{i}}}", i % 4))
        .collect();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(lines.join("\n").as_bytes())
        .unwrap();
    let o = child.wait_with_output().unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let produced: BTreeMap<(i64, i64), String> = stdout(&o)
        .lines()
        .map(|l| {
            let v: Value = serde_json::from_str(l).unwrap();
            (
                (
                    v["partition"].as_i64().unwrap(),
                    v["offset"].as_i64().unwrap(),
                ),
                v["key"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(produced.len(), 12);

    let o = run(&[
        "-b",
        &b,
        "consume",
        &topic,
        "--from-beginning",
        "-n",
        "12",
        "--json",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let mut consumed = BTreeMap::new();
    let mut partitions_of_key: BTreeMap<String, i64> = BTreeMap::new();
    for l in stdout(&o).lines() {
        let v: Value = serde_json::from_str(l).unwrap();
        let key = v["key"].as_str().unwrap().to_owned();
        let partition = v["partition"].as_i64().unwrap();
        assert_eq!(v["headers"]["source"], "cli");
        assert_eq!(v["headers"]["trace"], "t-1");
        let n: Value = serde_json::from_str(v["value"].as_str().unwrap()).unwrap();
        assert_eq!(key, format!("user-{}", n["n"].as_i64().unwrap() % 4));
        assert_eq!(
            *partitions_of_key.entry(key.clone()).or_insert(partition),
            partition
        );
        consumed.insert((partition, v["offset"].as_i64().unwrap()), key);
    }
    assert_eq!(consumed, produced);

    let o = run(&["-b", &b, "consume", &topic, "--from-beginning", "-n", "1"]);
    let line = stdout(&o);
    assert!(
        line.starts_with("partition=") && line.contains("headers=[source=cli,trace=t-1]"),
        "{line}"
    );
}

#[tokio::test]
async fn groups_describe_shows_produced_minus_committed() {
    let b = bootstrap().await;
    let topic = unique("lag");
    let group = unique("group");
    assert!(run(&["-b", &b, "topics", "create", &topic, "-p", "2"])
        .status
        .success());
    let values: Vec<String> = (0..10).map(|i| format!("v{i}")).collect();
    let mut args = vec!["-b", &b, "produce", &topic];
    args.extend(values.iter().map(String::as_str));
    let o = run(&args);
    assert!(o.status.success(), "{}", stderr(&o));

    let o = run(&[
        "-b",
        &b,
        "consume",
        &topic,
        "--from-beginning",
        "--group",
        &group,
        "-n",
        "4",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stdout(&o).lines().count(), 4);

    let o = run(&["-b", &b, "groups", "describe", &group, "--json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(v["totalLag"], 6, "{v}");
    let committed: i64 = v["partitions"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|p| p["committedOffset"].as_i64())
        .sum();
    assert_eq!(committed, 4, "{v}");

    let o = run(&["-b", &b, "groups", "describe", &group]);
    assert!(stdout(&o).contains("total lag: 6"), "{}", stdout(&o));
    // With records waiting, the table says since when (seconds), not "-".
    assert!(
        stdout(&o).contains("(oldest unread record waited ")
            && !stdout(&o).contains("(oldest unread record waited -)"),
        "{}",
        stdout(&o)
    );

    // A reset is a dry run until --execute; then the lag follows.
    let lag = |b: &str| {
        let o = run(&["-b", b, "groups", "describe", &group, "--json"]);
        serde_json::from_str::<Value>(&stdout(&o)).unwrap()["totalLag"].as_i64()
    };
    let o = run(&["-b", &b, "groups", "reset", &group, "--to", "earliest"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("total lag: 6 -> 10"), "{}", stdout(&o));
    assert!(stdout(&o).contains("dry run"), "{}", stdout(&o));
    assert_eq!(lag(&b), Some(6));
    let o = run(&[
        "-b",
        &b,
        "groups",
        "reset",
        &group,
        "--to",
        "shift",
        "--value",
        "-1",
        "--execute",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    // Each partition goes back one record, but not before its first: one with nothing
    // consumed stays where it is.
    let consumed_on = v["partitions"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["committedOffset"].as_i64().unwrap_or(0) > 0)
        .count() as i64;
    assert!(consumed_on >= 1, "{v}");
    assert_eq!(lag(&b), Some(6 + consumed_on));
    let o = run(&["-b", &b, "groups", "reset", &group, "--to", "offset"]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("needs a value"), "{}", stderr(&o));
    let o = run(&["-b", &b, "groups", "delete", &group]);
    assert!(o.status.success(), "{}", stderr(&o));
    let o = run(&["-b", &b, "groups", "describe", &group]);
    assert!(!o.status.success(), "{}", stdout(&o));
}

#[tokio::test]
async fn topics_delete_removes_that_topic_and_no_other() {
    let b = bootstrap().await;
    let (gone, kept) = (unique("gone"), unique("kept"));
    for t in [&gone, &kept] {
        assert!(run(&["-b", &b, "topics", "create", t, "-p", "1"])
            .status
            .success());
    }
    let o = run(&["-b", &b, "topics", "delete", &gone]);
    assert!(o.status.success(), "{}", stderr(&o));
    let deleted = eventually(Duration::from_secs(30), || async {
        let o = run(&["-b", &b, "topics", "describe", &gone]);
        (!o.status.success() && stderr(&o).contains("does not exist")).then_some(())
    })
    .await;
    assert!(deleted.is_some(), "{gone} is still there");
    let o = run(&["-b", &b, "topics", "describe", &kept]);
    assert!(o.status.success(), "{}", stderr(&o));
}

#[tokio::test]
async fn messages_filter_and_export_find_records_by_key_and_text() {
    let b = bootstrap().await;
    let topic = unique("find");
    assert!(run(&["-b", &b, "topics", "create", &topic, "-p", "2"])
        .status
        .success());
    let settings = streamlake_kafka::KafkaSettings::new(b.clone());
    // Keys k0..k19, values 0..19.
    streamlake_testkit::produce_numbered(&settings, &topic, 20).await;

    let o = run(&[
        "-b", &b, "topics", "messages", &topic, "--key", "k13", "--json",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let page: Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(page["count"], 1, "{page}");
    assert_eq!(page["messages"][0]["value"], "13");
    assert_eq!(page["scanned"], 20);

    let o = run(&[
        "-b",
        &b,
        "topics",
        "export",
        &topic,
        "--contains",
        "1",
        "--since",
        "2020-01-01T00:00:00Z",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let mut values: Vec<String> = stdout(&o)
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["value"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    values.sort();
    let mut expected: Vec<String> = [1, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19]
        .iter()
        .map(ToString::to_string)
        .collect();
    expected.sort();
    assert_eq!(values, expected);

    let o = run(&[
        "-b",
        &b,
        "topics",
        "messages",
        &topic,
        "--field",
        "nopointer",
    ]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("needs equals"), "{}", stderr(&o));
}

#[tokio::test]
async fn topics_set_config_and_purge_change_a_topic() {
    let b = bootstrap().await;
    let topic = unique("tune");
    let o = run(&[
        "-b",
        &b,
        "topics",
        "create",
        &topic,
        "-p",
        "1",
        "--topic-config",
        "retention.ms=7200000",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let settings = streamlake_kafka::KafkaSettings::new(b.clone());
    streamlake_testkit::produce_numbered(&settings, &topic, 5).await;

    let o = run(&[
        "-b",
        &b,
        "topics",
        "set-config",
        &topic,
        "retention.ms=3600000",
        "--unset",
        "cleanup.policy",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stdout(&o).contains("retention.ms = 3600000"),
        "{}",
        stdout(&o)
    );
    let o = run(&[
        "-b",
        &b,
        "topics",
        "set-config",
        &topic,
        "retention.ms=soon",
    ]);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("did not take retention.ms=soon"),
        "{}",
        stderr(&o)
    );

    let o = run(&["-b", &b, "topics", "purge", &topic, "--before", "3"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("3 records"), "{}", stdout(&o));
    assert!(stdout(&o).contains("0: 3"), "{}", stdout(&o));
}

#[tokio::test]
async fn sighup_reloads_the_api_keys_of_a_running_up() {
    let b = bootstrap().await;
    let dir = tempfile::tempdir().unwrap();
    let http = free_local_addr();
    let tenant = unique("hup");
    let (old, new) = (unique("old-key"), unique("new-key"));
    std::fs::write(dir.path().join("s.json"), "{}").unwrap();
    let config = |key: &str| {
        format!(
            "data_dir = \"{}\"\n[http]\nlisten = \"{http}\"\n[tenants.{tenant}]\napi_keys = [{{ name = \"k\", sha256 = \"{}\" }}]\n[tenants.{tenant}.datasets.d]\nschema = \"s.json\"\nkey = \"/id\"\n",
            dir.path().join("data").display(),
            keys_hash(key)
        )
    };
    let path = dir.path().join("streamlake.toml");
    std::fs::write(&path, config(&old)).unwrap();
    let child = Running(Some(
        streamlake(&["-c", path.to_str().unwrap(), "-b", &b, "up"])
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.path().join("up.log")).unwrap())
            .spawn()
            .unwrap(),
    ));
    let url = format!("http://{http}/v1/tenants/{tenant}/datasets/d/events");
    let status_with = |key: String| {
        let url = url.clone();
        async move {
            reqwest::Client::new()
                .post(&url)
                .bearer_auth(key)
                .header("content-type", "application/json")
                .body(r#"{"id": 1}"#)
                .send()
                .await
                .ok()
                .map(|r| r.status())
        }
    };
    let up = eventually(Duration::from_secs(60), || async {
        (status_with(old.clone()).await == Some(reqwest::StatusCode::OK)).then_some(())
    })
    .await;
    assert!(
        up.is_some(),
        "{}",
        std::fs::read_to_string(dir.path().join("up.log")).unwrap_or_default()
    );
    assert_eq!(
        status_with(new.clone()).await,
        Some(reqwest::StatusCode::UNAUTHORIZED)
    );

    std::fs::write(&path, config(&new)).unwrap();
    let pid = child.0.as_ref().unwrap().id() as i32;
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGHUP,
    )
    .unwrap();
    let rotated = eventually(Duration::from_secs(10), || async {
        (status_with(new.clone()).await == Some(reqwest::StatusCode::OK)).then_some(())
    })
    .await;
    assert!(
        rotated.is_some(),
        "{}",
        std::fs::read_to_string(dir.path().join("up.log")).unwrap_or_default()
    );
    assert_eq!(
        status_with(old).await,
        Some(reqwest::StatusCode::UNAUTHORIZED)
    );
    assert!(std::fs::read_to_string(dir.path().join("up.log"))
        .unwrap()
        .contains("API keys reloaded"));
}

/// A log without its terminal colour sequences (`ESC [ ... m`).
fn without_colours(log: &str) -> String {
    let mut out = String::with_capacity(log.len());
    let mut chars = log.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c == 'm' {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

#[test]
fn worker_threads_sets_the_runtime_threads_defaults_to_one_per_core_but_one_and_refuses_zero() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("streamlake.toml");
    std::fs::write(&config, "").unwrap();
    let file = config.to_str().unwrap();
    let o = run(&["--worker-threads", "0", "config", "check", file]);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("--worker-threads") && stderr(&o).contains("0 is not in 1..=1024"),
        "{}",
        stderr(&o)
    );
    // Unset: one per core but one, at least one.
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let default = cores.saturating_sub(1).max(1).to_string();
    for (flag, env) in [(Some("3"), None), (None, Some("1")), (None, None)] {
        let mut cmd = streamlake(&["-v", "config", "check", file]);
        cmd.env_remove("STREAMLAKE_WORKER_THREADS");
        if let Some(n) = flag {
            cmd.args(["--worker-threads", n]);
        }
        if let Some(n) = env {
            cmd.env("STREAMLAKE_WORKER_THREADS", n);
        }
        let o = cmd.env_remove("RUST_LOG").output().unwrap();
        let expected = format!("worker_threads={}", flag.or(env).unwrap_or(&default));
        assert!(o.status.success(), "{}", stderr(&o));
        let log = without_colours(&stderr(&o));
        assert!(
            log.contains(&expected) && log.contains("async runtime started"),
            "expected {expected} in: {log}"
        );
    }
}

#[tokio::test]
async fn producing_to_a_missing_topic_fails_fast_with_its_name() {
    let b = bootstrap().await;
    let o = run(&["-b", &b, "produce", "no-such-topic-xyz", "v"]);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("topic \"no-such-topic-xyz\" does not exist"),
        "{}",
        stderr(&o)
    );
}

#[tokio::test]
async fn up_provisions_the_example_and_stops_cleanly_on_ctrl_c() {
    let data = tempfile::tempdir().unwrap();
    let listen = free_port_block(2);
    let http = free_local_addr();
    let (mqtt_client, mqtt_prefix) = (unique("up"), unique("up"));
    let child = Running(Some(
        up_command("air-quality/streamlake.toml", data.path(), listen, http)
            .env("STREAMLAKE_POSTGRES_URL", postgres_url())
            // Parquet files every second instead of every 30, so the test need not wait.
            .env("STREAMLAKE_SINKS__LAKE__PARQUET__ROLL_SECS", "1")
            .env("STREAMLAKE_MQTT__CLIENT_ID", &mqtt_client)
            .env("STREAMLAKE_MQTT__TOPIC_PREFIX", &mqtt_prefix)
            .env("STREAMLAKE_MQTT__HOST", mqtt_addr().0)
            .env("STREAMLAKE_MQTT__PORT", mqtt_addr().1.to_string())
            .env_remove("TENANT_A_API_KEY")
            // Its own process group, as a terminal's foreground job: Ctrl-C signals the whole
            // group.
            .process_group(0)
            .spawn()
            .unwrap(),
    ));
    let pid = child.id() as i32;

    let mut s = settings().await;
    s.bootstrap_servers = listen.to_string();
    let expected = [
        "tenant-a.air-quality.raw",
        "tenant-a.air-quality.clean",
        "tenant-a.dlq",
        "tenant-b.air-quality.raw",
        "tenant-b.air-quality.clean",
        "tenant-b.dlq",
    ];
    let found = eventually(Duration::from_secs(60), || {
        let s = s.clone();
        async move {
            let admin = Admin::new(&s).ok()?;
            let topics = admin.list_topics().await.ok()?;
            let names: Vec<String> = topics.iter().map(|t| t.name.clone()).collect();
            expected
                .iter()
                .all(|e| names.contains(&e.to_string()))
                .then_some(topics)
        }
    })
    .await
    .expect("up provisions the tenant topics");
    for t in found {
        // The replay and idempotency logs are compacted single-partition topics; the rest
        // follow the example.
        let log = t.name.ends_with(".replays") || t.name.ends_with(".idempotency");
        let partitions = if log { 1 } else { 6 };
        assert_eq!(t.partitions.len(), partitions, "{}", t.name);
    }
    assert!(data
        .path()
        .join("broker/node-1/data/meta.properties")
        .exists());

    // The gateway answers with the development key `up` printed.
    let event = r#"{"tenant_id":"tenantA","timestamp":"2026-02-26 22:05:03","location_id":49,"lat":48.53,"lon":9.2,"sensor_id":107,"pm10_P1":84.76,"pm2_5_P2":14.3,"source":"sensor.community/v2"}"#;
    let url = format!("http://{http}/v1/tenants/tenant-a/datasets/air-quality/events");
    let response = eventually(Duration::from_secs(30), || {
        let url = url.clone();
        async move {
            reqwest::Client::new()
                .post(&url)
                .bearer_auth("dev-tenant-a-key")
                .header("content-type", "application/json")
                .body(event)
                .send()
                .await
                .ok()
        }
    })
    .await
    .unwrap_or_else(|| {
        let listing: Vec<String> = std::fs::read_dir(data.path())
            .unwrap()
            .map(|e| e.unwrap().path().display().to_string())
            .collect();
        panic!(
            "the gateway does not answer at {url}; files {listing:?}; log: {}",
            std::fs::read_to_string(data.path().join("up.log")).unwrap_or_default()
        )
    });
    assert_eq!(response.status(), 200);
    let receipt: Value = response.json().await.unwrap();
    assert_eq!(receipt["topic"], "tenant-a.air-quality.raw");
    let ingestion_id = receipt["ingestion_id"].as_str().unwrap().to_owned();

    // The CLI in another terminal of the same directory (the data directory at its default
    // place) talks to this instance without being told its configuration.
    let terminal = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink(data.path(), terminal.path().join("streamlake-data")).unwrap();
    let listed = streamlake(&["topics", "list", "--json"])
        .current_dir(terminal.path())
        .output()
        .unwrap();
    assert!(listed.status.success(), "{}", stderr(&listed));
    assert!(
        stderr(&listed).contains("talking to the running streamlake up"),
        "{}",
        stderr(&listed)
    );
    let topics: Value = serde_json::from_slice(&listed.stdout).unwrap();
    let raw = topics["details"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "tenant-a.air-quality.raw")
        .cloned()
        .unwrap_or_else(|| panic!("{topics}"));
    assert_eq!(raw["tenant"], "tenant-a", "{raw}");
    assert_eq!(raw["role"], "raw", "{raw}");

    // An event published over MQTT lands in the same raw topic.
    let mqtt_event = event.replace("\"sensor_id\":107", "\"sensor_id\":4242");
    let over_mqtt = eventually(Duration::from_secs(60), || {
        let (topic, payload, s) = (
            format!("{mqtt_prefix}/tenant-a/air-quality"),
            mqtt_event.clone(),
            s.clone(),
        );
        async move {
            mqtt_publish(&topic, payload.into_bytes()).await;
            let found = Reader::new(&s, "tenant-a.air-quality.raw")
                .await
                .drain(Duration::from_secs(2))
                .await;
            found
                .iter()
                .find(|r| r.key_str() == Some("4242"))
                .map(|r| r.header("producer_service").map(<[u8]>::to_vec))
        }
    })
    .await;
    assert_eq!(
        over_mqtt,
        Some(Some(b"streamlake-mqtt".to_vec())),
        "MQTT event in the raw topic"
    );

    // The processor inside `up` writes the clean record; the sinks land it in PostgreSQL and
    // in the Parquet lake.
    let mut clean_reader = Reader::new(&s, "tenant-a.air-quality.clean").await;
    let mut clean = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let polled = |clean: &[streamlake_kafka::Record]| {
        clean
            .iter()
            .filter(|r| r.header("producer_service") == Some(&b"streamlake-poller"[..]))
            .count()
    };
    let ours = loop {
        let found = clean
            .iter()
            .find(|r: &&streamlake_kafka::Record| {
                r.header("ingestion_id") == Some(ingestion_id.as_bytes())
            })
            .cloned();
        // The example's poller replays its Sensor.Community sample into both tenants: five
        // records map into tenant A's structure.
        if let (Some(r), true) = (found, polled(&clean) >= 5) {
            break r;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the posted event and the polled ones should reach the clean topic; {} polled",
            polled(&clean)
        );
        clean.extend(clean_reader.drain(Duration::from_millis(500)).await);
    };
    let value: Value = ours.json().unwrap();
    assert_eq!(value["event_time"], "2026-02-26T22:05:03.000Z");
    let tenant_b = Reader::new(&s, "tenant-b.air-quality.raw")
        .await
        .read(6, Duration::from_secs(60))
        .await;
    let b: Value = tenant_b[0].json().unwrap();
    assert_eq!(b["tenant_id"], "tenantB", "{b}");
    assert!(
        b["meta"]["ts_epoch"].is_i64() && b["measurements"].is_object(),
        "{b}"
    );
    assert_eq!(value["pm2_5_level"], "fair");
    let pg = postgres().await;
    let landed = eventually(Duration::from_secs(60), || {
        let (pg, id) = (&pg, &ingestion_id);
        async move {
            pg.query_opt(
                "SELECT pm2_5_level FROM bronze.tenant_a_air_quality WHERE ingestion_id = $1",
                &[id],
            )
            .await
            .ok()
            .flatten()
            .map(|row| row.get::<_, String>(0))
        }
    })
    .await;
    assert_eq!(
        landed.as_deref(),
        Some("fair"),
        "the bronze table holds the event"
    );
    let lake = data.path().join("lake/tenant-a/air-quality");
    let parquet = eventually(Duration::from_secs(60), || {
        let lake = lake.clone();
        async move {
            let day = std::fs::read_dir(&lake).ok()?.next()?.ok()?.path();
            let file = std::fs::read_dir(&day).ok()?.next()?.ok()?.path();
            (file.extension()? == "parquet").then_some(file)
        }
    })
    .await;
    assert!(parquet.is_some(), "a Parquet file under {}", lake.display());

    // The processor, the sinks, MQTT and the groups' lag are on /metrics beside the gateway.
    let metrics_url = format!("http://{http}/metrics");
    let value_of = |text: &str, series: &str| -> Option<f64> {
        text.lines()
            .find_map(|l| l.strip_prefix(series)?.trim().parse::<f64>().ok())
    };
    let metrics = eventually(Duration::from_secs(30), || {
        let url = metrics_url.clone();
        async move {
            let text = reqwest::get(&url).await.ok()?.text().await.ok()?;
            let emitted = value_of(
                &text,
                r#"streamlake_processor_records_total{outcome="emitted",pipeline="air-quality"}"#,
            )?;
            let rows = value_of(
                &text,
                r#"streamlake_sink_records_total{outcome="rows",sink="bronze"}"#,
            )?;
            let mqtt = value_of(
                &text,
                r#"streamlake_source_events_total{outcome="accepted",source="mqtt"}"#,
            )?;
            (emitted >= 7.0 && rows >= 7.0 && mqtt >= 1.0).then_some(text)
        }
    })
    .await
    .expect("stage counters on /metrics");
    // The processor is exactly once: its outputs became visible through committed transactions.
    let transactions = value_of(
        &metrics,
        r#"streamlake_processor_transactions_total{pipeline="air-quality"}"#,
    );
    assert!(transactions >= Some(1.0), "{metrics}");
    let commit_seconds = value_of(
        &metrics,
        r#"streamlake_processor_transaction_commit_seconds_total{pipeline="air-quality"}"#,
    );
    assert!(commit_seconds > Some(0.0), "{metrics}");
    assert!(
        metrics.contains(
            r#"streamlake_consumer_lag_records{group="streamlake-process-air-quality",topic="tenant-a.air-quality.raw"}"#
        ),
        "{metrics}"
    );
    assert!(
        metrics.contains(
            r#"streamlake_consumer_lag_seconds{group="streamlake-process-air-quality",topic="tenant-a.air-quality.raw"}"#
        ),
        "{metrics}"
    );
    assert!(
        metrics.contains("streamlake_gateway_requests_total"),
        "{metrics}"
    );
    // The example's freshness objective, evaluated by the console's sampler.
    let freshness = eventually(Duration::from_secs(30), || {
        let url = metrics_url.clone();
        async move {
            let text = reqwest::get(&url).await.ok()?.text().await.ok()?;
            let states: f64 = ["ok", "at_risk", "breached"]
                .iter()
                .filter_map(|s| {
                    value_of(
                        &text,
                        &format!(r#"streamlake_dataset_freshness_state{{dataset="air-quality",state="{s}",tenant="tenant-a"}}"#),
                    )
                })
                .sum();
            (states == 1.0).then_some(text)
        }
    })
    .await;
    assert!(
        freshness.is_some(),
        "one freshness state of tenant-a/air-quality on /metrics"
    );
    // Each sink's clean -> durable latency, on /metrics and on the Freshness report; how late
    // the readings arrived against their own time (the example declares event_time).
    let durable = eventually(Duration::from_secs(30), || {
        let url = metrics_url.clone();
        async move {
            let text = reqwest::get(&url).await.ok()?.text().await.ok()?;
            value_of(
                &text,
                r#"streamlake_sink_durable_latency_seconds{dataset="air-quality",quantile="0.99",sink="bronze",tenant="tenant-a"}"#,
            )
        }
    })
    .await;
    assert!(
        durable.is_some(),
        "sink bronze's durable latency on /metrics"
    );
    let report = eventually(Duration::from_secs(30), || {
        let url = format!("http://{http}/api/freshness");
        async move {
            let report: Value = reqwest::Client::new()
                .get(&url)
                .bearer_auth("dev-admin-token")
                .send()
                .await
                .ok()?
                .json()
                .await
                .ok()?;
            let row = report["datasets"]
                .as_array()?
                .iter()
                .find(|d| d["tenant"] == "tenant-a" && d["dataset"] == "air-quality")?
                .clone();
            let bronze = row["stages"]
                .as_array()?
                .iter()
                .find(|s| s["name"] == "bronze")?
                .clone();
            (bronze["durableLatency"]["samples"].as_u64()? > 0
                && row["eventTimeSkew"]["samples"].as_u64()? > 0
                && row["ingestToRaw"]["samples"].as_u64()? > 0)
                .then_some(row)
        }
    })
    .await;
    let row = report.expect(
        "ingestion -> raw acknowledgement, durable latency of sink bronze and the event-time skew",
    );
    let process = row["stages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["stage"] == "process")
        .unwrap();
    assert!(process["durableLatency"].is_null(), "{row}");

    // Ctrl-C: SIGINT to the foreground process group. The broker runs in a group of its own, so
    // StreamLake gets to stop its stages first and the broker last.
    nix::sys::signal::killpg(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGINT,
    )
    .unwrap();
    let status = tokio::task::spawn_blocking(move || {
        let mut child = child.take();
        child.wait()
    })
    .await
    .unwrap()
    .unwrap();
    let log = std::fs::read_to_string(data.path().join("up.log")).unwrap();
    assert!(status.success(), "{log}");
    assert!(
        !data.path().join("running.json").exists(),
        "a stopped up leaves no trace of running"
    );
    assert!(
        log.contains("dev-tenant-a-key"),
        "up prints the development key: {log}"
    );
    let at = |line: &str| {
        log.find(line)
            .unwrap_or_else(|| panic!("no {line:?} in the log: {log}"))
    };
    assert!(at("gateway stopped") < at("broker node stopped"), "{log}");
    assert!(
        at("broker node stopped") < at("StreamLake stopped"),
        "{log}"
    );
    assert!(
        !log.contains("did not stop in time") && !log.contains("Kafka broker node died"),
        "the broker stopped by its controlled shutdown, after the stages: {log}"
    );
    assert!(
        std::net::TcpStream::connect_timeout(&listen, Duration::from_millis(500)).is_err(),
        "the broker must be gone after up exits"
    );
}

#[tokio::test]
async fn up_on_the_seed_pipeline_writes_one_csv_file_per_data_type() {
    let data = tempfile::tempdir().unwrap();
    let listen = free_port_block(2);
    let http = free_local_addr();
    let child = Running(Some(
        up_command("seed-pipeline/streamlake.toml", data.path(), listen, http)
            .env_remove("DEMO_API_KEY")
            // The example's generators would add records; this test counts exact rows.
            .env("STREAMLAKE_GENERATORS__SENSORS__ENABLED", "false")
            .env("STREAMLAKE_GENERATORS__ACTIVITY__ENABLED", "false")
            .spawn()
            .unwrap(),
    ));

    let now = chrono_now();
    let post = |dataset: &'static str, body: String| {
        let url = format!("http://{http}/v1/tenants/demo/datasets/{dataset}/events");
        async move {
            eventually(Duration::from_secs(60), || {
                let (url, body) = (url.clone(), body.clone());
                async move {
                    let r = reqwest::Client::new()
                        .post(&url)
                        .bearer_auth("dev-demo-key")
                        .header("content-type", "application/json")
                        .body(body)
                        .send()
                        .await
                        .ok()?;
                    (r.status() == 200 || r.status() == 207).then_some(())
                }
            })
            .await
            .expect("the gateway accepts the events")
        }
    };
    post(
        "sensor-data",
        format!(r#"[{{"sensor_id":"s1","timestamp":"{now}","temperature":22.5,"humidity":40}},{{"sensor_id":"s2","timestamp":"{now}","temperature":35.0,"humidity":41,"location":"lab, \"north\""}},{{"sensor_id":"s3","timestamp":"{now}","temperature":120.0,"humidity":40}}]"#),
    )
    .await;
    post(
        "user-activity",
        format!(r#"{{"user_id":"u1","timestamp":"{now}","action":"purchase","page":"/cart","amount":19.99}}"#),
    )
    .await;

    let csv_dir = data.path().join("sinks/csv");
    let files = eventually(Duration::from_secs(60), || {
        let dir = csv_dir.clone();
        async move {
            let sensor = std::fs::read_to_string(dir.join("processed_data_sensor.csv")).ok()?;
            let activity = std::fs::read_to_string(dir.join("processed_data_activity.csv")).ok()?;
            (sensor.lines().count() == 3 && activity.lines().count() == 2)
                .then_some((sensor, activity))
        }
    })
    .await;
    let log = || std::fs::read_to_string(data.path().join("up.log")).unwrap_or_default();
    let (sensor, activity) =
        files.unwrap_or_else(|| panic!("CSV files not complete; log:\n{}", log()));
    assert!(sensor.starts_with("ingestion_id,tenant,dataset,ingested_at,kafka_topic,kafka_partition,kafka_offset,schema_version,sensor_id,timestamp,temperature,humidity,location,status,processed_at\n"), "{sensor}");
    assert!(
        sensor.contains(",s1,") && sensor.contains(",normal,"),
        "{sensor}"
    );
    assert!(
        sensor.contains("\"lab, \"\"north\"\"\",warning,"),
        "{sensor}"
    );
    assert!(
        !sensor.contains(",s3,"),
        "120 degrees is out of range and dead-lettered: {sensor}"
    );
    assert!(
        activity.contains(",u1,") && activity.contains(",purchase,/cart,19.99,"),
        "{activity}"
    );

    // `streamlake generate` drives the same pipeline.
    let config = example("seed-pipeline/streamlake.toml");
    for (kind, n) in [("sensor", "20"), ("activity", "10")] {
        let o = streamlake(&[
            "--config",
            config.to_str().unwrap(),
            "-b",
            &listen.to_string(),
            "generate",
            kind,
            "--count",
            n,
            "--rate",
            "200",
        ])
        .output()
        .unwrap();
        assert!(o.status.success(), "generate {kind}: {}", stderr(&o));
    }
    let grown = eventually(Duration::from_secs(60), || {
        let dir = csv_dir.clone();
        async move {
            let sensor = std::fs::read_to_string(dir.join("processed_data_sensor.csv")).ok()?;
            let activity = std::fs::read_to_string(dir.join("processed_data_activity.csv")).ok()?;
            (sensor.lines().count() == 3 + 20 && activity.lines().count() == 2 + 10).then_some(())
        }
    })
    .await;
    assert!(
        grown.is_some(),
        "generated events reach the CSV files; log:\n{}",
        log()
    );

    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let mut child = child.take();
    let status = tokio::task::spawn_blocking(move || child.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(status.success(), "{}", log());
}

/// Now as RFC 3339 UTC, from the system clock.
fn chrono_now() -> String {
    humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string()
}

#[tokio::test]
async fn topics_distribution_counts_partitions_and_keys_and_warns_about_a_constant_key() {
    let b = bootstrap().await;
    let s = settings().await;
    let admin = Admin::new(&s).unwrap();
    let (constant, spread) = (unique("dist-constant"), unique("dist-spread"));
    for t in [&constant, &spread] {
        admin
            .create_topic(&streamlake_core::TopicSpec {
                name: t.clone(),
                partitions: 4,
                replication_factor: None,
                configs: Default::default(),
            })
            .await
            .unwrap();
    }
    let producer = streamlake_kafka::Producer::new(&s).unwrap();
    for i in 0..40 {
        let none = streamlake_kafka::Headers::new();
        producer
            .send(&constant, Some(b"tenantA"), b"{}", &none)
            .await
            .unwrap();
        let key = format!("sensor-{i}");
        producer
            .send(&spread, Some(key.as_bytes()), b"{}", &none)
            .await
            .unwrap();
    }

    let o = run(&["-b", &b, "topics", "distribution", &constant, "--json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let d: Value = serde_json::from_slice(&o.stdout).unwrap();
    let counts: Vec<i64> = d["partitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["records"].as_i64().unwrap())
        .collect();
    assert_eq!(counts.iter().sum::<i64>(), 40);
    assert_eq!(
        counts.iter().filter(|c| **c == 40).count(),
        1,
        "one partition holds everything: {counts:?}"
    );
    assert_eq!(d["distinctKeys"], 1);
    assert_eq!(d["skew"], 4.0);
    assert!(
        d["warnings"][0]
            .as_str()
            .unwrap()
            .starts_with("constant key \"tenantA\""),
        "{d}"
    );

    let o = run(&["-b", &b, "topics", "distribution", &spread]);
    let text = stdout(&o);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(text.contains("40 distinct, 0 without a key"), "{text}");
    assert!(!text.contains("constant key"), "{text}");
}

#[tokio::test]
async fn dlq_list_and_replay_from_the_cli_match_the_api_and_refuse_a_second_replay() {
    let b = bootstrap().await;
    let dir = tempfile::tempdir().unwrap();
    let tenant = unique("cli-t");
    std::fs::write(
        dir.path().join("schema.json"),
        r#"{"type":"object","required":["id","v"],"properties":{"v":{"type":"number"}}}"#,
    )
    .unwrap();
    let cfg = dir.path().join("streamlake.toml");
    std::fs::write(
        &cfg,
        format!(
            "[tenants.{tenant}]\ndev_api_key = \"{}\"\n[tenants.{tenant}.datasets.d]\nschema = \"schema.json\"\nkey = \"/id\"\n",
            unique("k")
        ),
    )
    .unwrap();
    let cfg = cfg.to_str().unwrap();
    let o = run(&["-b", &b, "-c", cfg, "topics", "provision"]);
    assert!(o.status.success(), "{}", stderr(&o));

    // A dead letter as the gateway writes one.
    let dlq = format!("{tenant}.dlq");
    let o = run(&[
        "-b",
        &b,
        "produce",
        &dlq,
        r#"{"id":"a","v":"x"}"#,
        "-k",
        "a",
        "-H",
        "dataset=d",
        "-H",
        &format!("tenant={tenant}"),
        "-H",
        "ingestion_id=0190-cli",
        "-H",
        "error.stage=gateway",
        "-H",
        "error.reason=not a number",
        "-H",
        "error.path=/v",
        "-H",
        "error.rule=type",
        "--json",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let receipt: Value = serde_json::from_str(stdout(&o).lines().next().unwrap()).unwrap();
    let at = format!("{}/{}", receipt["partition"], receipt["offset"]);

    let o = run(&["-b", &b, "-c", cfg, "dlq", "list", &tenant, "--json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let list: Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(list["total"], 1, "{list}");
    assert_eq!(list["deadLetters"][0]["path"], "/v");
    let o = run(&["-b", &b, "-c", cfg, "dlq", "list", &tenant]);
    assert!(stdout(&o).contains("not a number"), "{}", stdout(&o));

    let fixed = dir.path().join("fixed.json");
    std::fs::write(&fixed, r#"{"id":"a","v":1.5}"#).unwrap();
    let replay = |json: bool| {
        let mut args = vec![
            "-b", &b, "-c", cfg, "dlq", "replay", &tenant, "--record", &at,
        ];
        args.extend(["--payload", fixed.to_str().unwrap()]);
        if json {
            args.push("--json");
        }
        run(&args)
    };
    let o = replay(true);
    assert!(o.status.success(), "{}", stderr(&o));
    let report: Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(report["results"][0]["status"], "replayed", "{report}");

    let raw = format!("{tenant}.d.raw");
    let o = run(&["-b", &b, "-c", cfg, "topics", "messages", &raw, "--json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let page: Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(page["count"], 1, "{page}");
    let m = &page["messages"][0];
    assert_eq!(m["value"], r#"{"id":"a","v":1.5}"#);
    let header = |name: &str| {
        m["headers"]
            .as_array()
            .unwrap()
            .iter()
            .find(|h| h["name"] == name)
            .map(|h| h["value"].clone())
    };
    assert_eq!(header("ingestion_id"), Some(Value::from("0190-cli")));
    assert_eq!(
        header("replay.of"),
        Some(Value::from(format!("{dlq}/{at}")))
    );

    let o = replay(false);
    assert!(!o.status.success(), "a second replay must fail");
    assert!(stdout(&o).contains("already_replayed"), "{}", stdout(&o));
}

/// Kafka processes started with this data directory's node configuration.
fn kafka_processes_of(data: &std::path::Path) -> Vec<u32> {
    let props = data.join("broker/node-1/server.properties");
    let props = props.to_string_lossy();
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            let cmd = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            let cmd = String::from_utf8_lossy(&cmd);
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            let zombie = stat
                .rsplit_once(") ")
                .is_some_and(|(_, r)| r.starts_with('Z'));
            !zombie && cmd.contains("kafka.Kafka") && cmd.contains(&*props)
        })
        .collect()
}

#[tokio::test]
async fn a_broker_left_by_a_killed_streamlake_is_stopped_before_the_next_one_starts() {
    let data = tempfile::tempdir().unwrap();
    let listen = free_port_block(2);
    let start = |log: &str| {
        streamlake(&[
            "broker",
            "--data-dir",
            data.path().to_str().unwrap(),
            "--listen",
            &listen.to_string(),
        ])
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(data.path().join(log)).unwrap())
        .spawn()
        .unwrap()
    };
    let ready = |child: &mut Child| {
        let mut line = String::new();
        std::io::BufRead::read_line(
            &mut std::io::BufReader::new(child.stdout.as_mut().unwrap()),
            &mut line,
        )
        .unwrap();
        line.trim().to_owned()
    };
    let mut first = start("first.log");
    assert_eq!(ready(&mut first), listen.to_string());
    let orphan = kafka_processes_of(data.path());
    assert_eq!(orphan.len(), 1);
    // Killed without a chance to stop its broker.
    first.kill().unwrap();
    first.wait().unwrap();

    let mut second = start("second.log");
    assert_eq!(ready(&mut second), listen.to_string());
    let running = kafka_processes_of(data.path());
    assert_eq!(
        running.len(),
        1,
        "one broker on the data directory: {running:?}"
    );
    assert_ne!(
        running, orphan,
        "the orphan was stopped and a new node started"
    );
    let mut s = settings().await;
    s.bootstrap_servers = listen.to_string();
    Admin::new(&s)
        .unwrap()
        .ping(Duration::from_secs(10))
        .await
        .unwrap();

    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(second.id() as i32),
        nix::sys::signal::Signal::SIGINT,
    )
    .unwrap();
    assert!(second.wait().unwrap().success());
    assert!(kafka_processes_of(data.path()).is_empty());
}

#[tokio::test]
async fn topics_add_partitions_grows_a_topic_and_refuses_to_shrink_it() {
    let b = bootstrap().await;
    let topic = unique("grow");
    assert!(run(&["-b", &b, "topics", "create", &topic, "-p", "2"])
        .status
        .success());
    let o = run(&["-b", &b, "topics", "add-partitions", &topic, "--to", "4"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stdout(&o).contains("now has 4 partitions"),
        "{}",
        stdout(&o)
    );
    let grown = eventually(Duration::from_secs(30), || async {
        let o = run(&["-b", &b, "topics", "describe", &topic, "--json"]);
        let v: Value = serde_json::from_slice(&o.stdout).ok()?;
        (v["partitions"].as_array()?.len() == 4).then_some(())
    })
    .await;
    assert!(grown.is_some(), "{topic} did not grow to 4 partitions");
    let o = run(&["-b", &b, "topics", "add-partitions", &topic, "--to", "3"]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("has 4 partitions"), "{}", stderr(&o));
}

/// With the cluster gone, SIGTERM still ends `up` within its deadlines: the request waiting
/// for the broker is answered 503 at the produce deadline, the gateway's flush gives up at its
/// shutdown timeout, each stage's final commit at its close timeout, and the process does not
/// wait for the calls it abandoned.
#[tokio::test]
async fn up_stops_within_its_deadlines_when_the_broker_is_gone() {
    const PRODUCE_TIMEOUT_MS: u64 = 3_000;
    const SHUTDOWN_TIMEOUT_SECS: u64 = 3;
    // Gateway flush, then the stages' final commits (10 s each, in parallel), the exit grace
    // (2 s) and the time an unloaded process takes to start and stop on a busy machine.
    const BOUND: Duration = Duration::from_secs(SHUTDOWN_TIMEOUT_SECS + 10 + 2 + 15);
    let mut broker = streamlake_testkit::PrivateBroker::start(1).await;
    let data = tempfile::tempdir().unwrap();
    let http = free_local_addr();
    let config = example("air-quality/streamlake.toml");
    let mut child = Running(Some(
        streamlake(&[
            "up",
            "--config",
            config.to_str().unwrap(),
            "--data-dir",
            data.path().to_str().unwrap(),
        ])
        .env(
            "STREAMLAKE_KAFKA__BOOTSTRAP_SERVERS",
            broker.bootstrap_servers(),
        )
        .env("STREAMLAKE_HTTP__LISTEN", http.to_string())
        .env(
            "STREAMLAKE_GATEWAY__PRODUCE_TIMEOUT_MS",
            PRODUCE_TIMEOUT_MS.to_string(),
        )
        .env(
            "STREAMLAKE_GATEWAY__SHUTDOWN_TIMEOUT_SECS",
            SHUTDOWN_TIMEOUT_SECS.to_string(),
        )
        .env("STREAMLAKE_MQTT__ENABLED", "false")
        .env("STREAMLAKE_POSTGRES_URL", postgres_url())
        .env_remove("TENANT_A_API_KEY")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(data.path().join("up.log")).unwrap())
        .spawn()
        .unwrap(),
    ));
    let event = r#"{"tenant_id":"tenantA","timestamp":"2026-02-26 22:05:03","location_id":49,"lat":48.53,"lon":9.2,"sensor_id":107,"pm10_P1":84.76,"pm2_5_P2":14.3,"source":"sensor.community/v2"}"#;
    let url = format!("http://{http}/v1/tenants/tenant-a/datasets/air-quality/events");
    let post = move || {
        reqwest::Client::new()
            .post(&url)
            .bearer_auth("dev-tenant-a-key")
            .header("content-type", "application/json")
            .body(event)
            .send()
    };
    let served = eventually(Duration::from_secs(60), || async {
        post().await.ok().filter(|r| r.status() == 200)
    })
    .await;
    assert!(
        served.is_some(),
        "up did not serve; log:\n{}",
        up_log(&data)
    );

    broker.stop().await;
    let waiting = tokio::spawn(post());
    // SIGTERM once that request is in flight, waiting for the broker that is gone.
    let in_flight = streamlake_testkit::await_metric(
        &format!("http://{http}"),
        "streamlake_gateway_in_flight_requests 1",
        Duration::from_secs(30),
    )
    .await;
    assert!(in_flight, "the request never went in flight");
    let pid = nix::unistd::Pid::from_raw(child.id() as i32);
    let asked = std::time::Instant::now();
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
    let status = child.wait_until(asked + BOUND);
    let took = asked.elapsed();
    assert!(
        status.is_some(),
        "up still running {} s after SIGTERM with the broker gone; log:\n{}",
        took.as_secs(),
        up_log(&data)
    );
    let answer = waiting
        .await
        .unwrap()
        .expect("the waiting request is answered");
    assert_eq!(answer.status(), 503, "{:?}", answer.text().await);
    eprintln!("up stopped {} ms after SIGTERM", took.as_millis());
}

fn up_log(data: &tempfile::TempDir) -> String {
    std::fs::read_to_string(data.path().join("up.log")).unwrap_or_default()
}

#[tokio::test]
async fn partition_previews_an_events_key_and_partition_and_where_produce_puts_it() {
    let b = bootstrap().await;
    let dir = tempfile::tempdir().unwrap();
    let tenant = unique("cli-p");
    std::fs::write(dir.path().join("schema.json"), r#"{"type":"object"}"#).unwrap();
    let cfg = dir.path().join("streamlake.toml");
    std::fs::write(
        &cfg,
        format!(
            "[topic_defaults]\npartitions = 5\n[tenants.{tenant}]\ndev_api_key = \"{}\"\n[tenants.{tenant}.datasets.d]\nschema = \"schema.json\"\nkey = \"/id\"\n",
            unique("k")
        ),
    )
    .unwrap();
    let cfg = cfg.to_str().unwrap();
    let o = run(&["-b", &b, "-c", cfg, "topics", "provision"]);
    assert!(o.status.success(), "{}", stderr(&o));

    let o = run(&[
        "-b",
        &b,
        "-c",
        cfg,
        "partition",
        &tenant,
        "d",
        r#"{"id": 107.0, "v": 1}"#,
        "--json",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let preview: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(preview["key"], "107", "{preview}");
    assert_eq!(preview["partitions"], 5);
    assert_eq!(preview["topic"], format!("{tenant}.d.raw"));
    // `produce` writes with the same producer defaults: the key lands where the preview said.
    let o = run(&[
        "-b",
        &b,
        "produce",
        &format!("{tenant}.d.raw"),
        "{}",
        "-k",
        "107",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let admin = Admin::new(&settings().await).unwrap();
    let info = admin
        .describe_topic(&format!("{tenant}.d.raw"))
        .await
        .unwrap();
    let holding: Vec<i32> = info
        .partitions
        .iter()
        .filter(|p| p.high > p.low)
        .map(|p| p.id)
        .collect();
    assert_eq!(holding, [preview["partition"].as_i64().unwrap() as i32]);

    // The key alone; an event without the key field is refused, naming it.
    let o = run(&[
        "-b",
        &b,
        "-c",
        cfg,
        "partition",
        &tenant,
        "d",
        "--key",
        "107",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(String::from_utf8_lossy(&o.stdout).contains("107"));
    let o = run(&[
        "-b",
        &b,
        "-c",
        cfg,
        "partition",
        &tenant,
        "d",
        r#"{"v": 1}"#,
    ]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("/id"), "{}", stderr(&o));
}
