//! The admin API through real HTTP against the real broker: every endpoint, its error cases,
//! tenant scoping, lag, and dead-letter replay.

mod common;

use std::time::Duration;

use common::Platform;
use reqwest::StatusCode;
use serde_json::{json, Value};
use streamlake_kafka::Record;
use streamlake_testkit::{unique, Reader};

fn names(v: &Value) -> Vec<String> {
    v["topics"]
        .as_array()
        .unwrap_or_else(|| panic!("no topics in {v}"))
        .iter()
        .map(|t| t.as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn tokens_are_required_and_scope_what_a_tenant_sees() {
    let p = Platform::start().await;
    let (status, body) = p.get("/api/kafka/topics", None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert_eq!(body["error"]["code"], "unauthenticated");
    let (status, _) = p.get("/api/kafka/topics", Some("not-a-token")).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    let (status, all) = p.get("/api/kafka/topics", Some(&p.admin)).await;
    assert_eq!(status, StatusCode::OK, "{all}");
    let all = names(&all);
    for t in [p.raw_topic(), p.dlq_topic(), format!("{}.dlq", p.other)] {
        assert!(all.contains(&t), "{t} missing from {all:?}");
    }

    let (status, mine) = p.get("/api/kafka/topics", Some(&p.key)).await;
    assert_eq!(status, StatusCode::OK, "{mine}");
    assert_eq!(mine["count"], 5, "{mine}");
    let mut mine = names(&mine);
    mine.sort();
    assert_eq!(
        mine,
        vec![
            p.dlq_topic(),
            format!("{}.replays", p.dlq_topic()),
            format!("{}.idempotency", p.tenant),
            format!("{}.readings.clean", p.tenant),
            p.raw_topic()
        ]
    );

    // Another tenant's topic and groups: 403; its dead letters: 404, answered word for word
    // as a tenant that does not exist, so a key cannot enumerate tenants.
    let other_dlq = format!("/api/kafka/topics/{}.dlq/metadata", p.other);
    let (status, body) = p.get(&other_dlq, Some(&p.key)).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert_eq!(body["error"]["code"], "forbidden");
    let (status, other) = p
        .get(&format!("/api/tenants/{}/dlq", p.other), Some(&p.key))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{other}");
    let (status, unknown) = p.get("/api/tenants/no-such-tenant/dlq", Some(&p.key)).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{unknown}");
    assert_eq!(
        other["error"]["message"]
            .as_str()
            .unwrap()
            .replace(&p.other, "X"),
        unknown["error"]["message"]
            .as_str()
            .unwrap()
            .replace("no-such-tenant", "X")
    );
    let (status, _) = p
        .get(
            &format!("/api/kafka/groups/{}", p.group),
            Some(&p.other_key),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    // Admin-only operations.
    let (status, _) = p
        .post(
            "/api/kafka/topics",
            Some(&p.key),
            json!({"name": unique("x"), "numPartitions": 1}),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = p
        .post("/api/kafka/provision", Some(&p.key), json!({}))
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn topics_are_created_described_and_their_errors_explained() {
    let p = Platform::start().await;
    let name = unique("created");
    let (status, body) = p
        .post(
            "/api/kafka/topics",
            Some(&p.admin),
            json!({"name": name, "numPartitions": 4, "replicationFactor": 1, "configs": {"retention.ms": "3600000"}}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["partitionCount"], 4);

    let (status, body) = p
        .post(
            "/api/kafka/topics",
            Some(&p.admin),
            json!({"name": name, "numPartitions": 4}),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("already exists"));

    let (status, body) = p
        .post(
            "/api/kafka/topics",
            Some(&p.admin),
            json!({"name": "bad name!", "numPartitions": 1}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let (status, body) = p
        .post(
            "/api/kafka/topics",
            Some(&p.admin),
            json!({"name": unique("zero"), "numPartitions": 0}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("numPartitions 0"));
    let (status, body) = p
        .post(
            "/api/kafka/topics",
            Some(&p.admin),
            json!({"partitions": 3}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    // Names Kafka keeps for itself, names with a NUL, replication beyond the brokers: each a
    // 400 that says why.
    for (req, says) in [
        (
            json!({"name": "__consumer_offsets", "numPartitions": 1}),
            "internal topics",
        ),
        (json!({"name": "a\0b", "numPartitions": 1}), "allowed are"),
        (
            json!({"name": unique("rf"), "numPartitions": 1, "replicationFactor": 5}),
            "eplication",
        ),
        (
            json!({"name": unique("cfg"), "numPartitions": 1, "configs": {"retention.ms": "forever"}}),
            "retention.ms",
        ),
    ] {
        let (status, body) = p
            .post("/api/kafka/topics", Some(&p.admin), req.clone())
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{req}: {body}");
        let message = body["error"]["message"].as_str().unwrap();
        assert!(message.contains(says), "{req}: {message}");
    }
    let (status, body) = p.get("/api/kafka/groups/a%00b", Some(&p.admin)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("control character"));

    let (status, meta) = p
        .get(
            &format!("/api/kafka/topics/{name}/metadata"),
            Some(&p.admin),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{meta}");
    let parts = meta["partitions"].as_array().unwrap();
    assert_eq!(parts.len(), 4);
    for (i, part) in parts.iter().enumerate() {
        assert_eq!(part["partitionId"], i as i64);
        assert_eq!(part["lowWatermark"], 0);
        assert_eq!(part["highWatermark"], 0);
        assert!(part["leader"].is_i64() && part["inSyncReplicas"].is_array());
    }
    let (status, configs) = p
        .get(&format!("/api/kafka/topics/{name}/configs"), Some(&p.admin))
        .await;
    assert_eq!(status, StatusCode::OK, "{configs}");
    assert_eq!(configs["configs"]["retention.ms"], "3600000", "{configs}");

    let (status, body) = p
        .get(
            "/api/kafka/topics/no-such-topic-anywhere/metadata",
            Some(&p.admin),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");

    let (status, body) = p
        .post("/api/kafka/provision", Some(&p.admin), json!({}))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let results = body["results"].as_array().unwrap();
    let raw = results
        .iter()
        .find(|r| r["topic"] == p.raw_topic())
        .unwrap_or_else(|| panic!("{body}"));
    assert_eq!(raw["status"], "existing", "{raw}");
    // Partitions are named as on the metadata endpoint.
    let first = &raw["partitions"][0];
    for field in [
        "partitionId",
        "inSyncReplicas",
        "lowWatermark",
        "highWatermark",
    ] {
        assert!(!first[field].is_null(), "{field} in {first}");
    }
    assert!(
        body["message"].as_str().unwrap().contains("0 created"),
        "{body}"
    );
    // The walkthrough's name for the same call.
    let (status, again) = p
        .post("/api/kafka/init-module-a-topics", Some(&p.admin), json!({}))
        .await;
    assert_eq!(status, StatusCode::OK, "{again}");
    assert_eq!(again["results"].as_array().unwrap().len(), results.len());
}

#[tokio::test]
async fn messages_show_key_headers_and_value_within_bounds() {
    let p = Platform::start().await;
    let (status, body) = p
        .ingest(r#"[{"sensor_id": 7, "value": 1.5}, {"sensor_id": 7, "value": 2.5}, {"sensor_id": 7, "value": 3.5}]"#)
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let partition = body["results"][0]["partition"].as_i64().unwrap();
    let first = body["results"][0]["offset"].as_i64().unwrap();

    let path = format!(
        "/api/kafka/topics/{}/messages?partition={partition}&offset={first}&limit=2",
        p.raw_topic()
    );
    let (status, page) = p.get(&path, Some(&p.key)).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    let msgs = page["messages"].as_array().unwrap();
    assert_eq!(msgs.len(), 2, "{page}");
    assert_eq!(msgs[0]["offset"], first);
    assert_eq!(msgs[1]["offset"], first + 1);
    assert_eq!(msgs[0]["key"], "7");
    assert_eq!(msgs[0]["value"], r#"{"sensor_id": 7, "value": 1.5}"#);
    assert_eq!(msgs[0]["isJson"], true);
    let headers = msgs[0]["headers"].as_array().unwrap();
    let id = headers
        .iter()
        .find(|h| h["name"] == "ingestion_id")
        .unwrap_or_else(|| panic!("{page}"));
    assert_eq!(id["value"], body["results"][0]["ingestion_id"]);

    // Newest records of every partition when no offset is given.
    let (status, page) = p
        .get(
            &format!("/api/kafka/topics/{}/messages", p.raw_topic()),
            Some(&p.admin),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(page["count"], 3, "{page}");

    let (status, body) = p
        .get(
            &format!("/api/kafka/topics/{}/messages?limit=51", p.raw_topic()),
            Some(&p.admin),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("maximum of 50"));
    let (status, body) = p
        .get(
            &format!("/api/kafka/topics/{}/messages?partition=9", p.raw_topic()),
            Some(&p.admin),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    let (status, body) = p
        .get(
            &format!("/api/kafka/topics/{}/messages?offset=abc", p.raw_topic()),
            Some(&p.admin),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["error"]["code"], "bad_request");
}

#[tokio::test]
async fn group_lag_is_produced_minus_committed() {
    let p = Platform::start().await;
    // N = 10 events into the raw topic the configured group reads.
    let events: Vec<Value> = (0..10)
        .map(|i| json!({"sensor_id": i, "value": i}))
        .collect();
    let sent = std::time::Instant::now();
    let (status, body) = p.ingest(&Value::from(events).to_string()).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let acknowledged = std::time::Instant::now();

    // M = 4 consumed and committed by the group.
    p.commit(4).await;

    // The records were written between `sent` and `acknowledged`, so the age the server
    // reports lies between the time since the acknowledgement (taken before asking) and the
    // time since sending (taken after the answer); 10 ms for timestamps' millisecond rounding.
    let floor = acknowledged.elapsed().as_millis() as u64;
    let (status, group) = p
        .get(&format!("/api/kafka/groups/{}", p.group), Some(&p.key))
        .await;
    let ceiling = sent.elapsed().as_millis() as u64 + 10;
    assert_eq!(status, StatusCode::OK, "{group}");
    assert_eq!(group["totalLag"], 6, "{group}");
    let waited = |v: &Value| v["oldestUnreadAgeMs"].as_u64();
    for part in group["partitions"].as_array().unwrap() {
        match part["lag"].as_i64().unwrap() {
            0 => assert!(part["oldestUnreadAgeMs"].is_null(), "{part}"),
            _ => assert!(
                waited(part).is_some_and(|ms| (floor..=ceiling).contains(&ms)),
                "{part} not within {floor}..={ceiling} ms"
            ),
        }
    }
    assert!(
        waited(&group).is_some_and(|ms| (floor..=ceiling).contains(&ms)),
        "{group} not within {floor}..={ceiling} ms"
    );
    assert_eq!(group["runs"], "pipeline main");
    let committed: i64 = group["partitions"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|p| p["committedOffset"].as_i64())
        .sum();
    assert_eq!(committed, 4, "{group}");

    // The console's sampler records lag over time (one sample a second here): the newest
    // sample, taken after the commit, holds the lag.
    p.await_lag_samples(6.0).await;

    let (status, list) = p.get("/api/kafka/groups", Some(&p.admin)).await;
    assert_eq!(status, StatusCode::OK, "{list}");
    let listed = list["groups"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["group"] == p.group.as_str())
        .unwrap_or_else(|| panic!("{list}"));
    assert_eq!(listed["totalLag"], 6);

    let (status, body) = p
        .get(
            &format!("/api/kafka/groups/{}", unique("nobody")),
            Some(&p.admin),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
}

fn header<'r>(r: &'r Record, name: &str) -> &'r str {
    std::str::from_utf8(
        r.header(name)
            .unwrap_or_else(|| panic!("header {name} missing")),
    )
    .unwrap()
}

#[tokio::test]
async fn a_fixed_dead_letter_is_replayed_once_and_a_second_replay_is_refused() {
    let p = Platform::start().await;
    let mut raw = Reader::new(&p.stack.settings, &p.raw_topic()).await;
    let (status, body) = p.ingest(r#"{"sensor_id": 12, "value": "warm"}"#).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    let ingestion_id = body["ingestion_id"].as_str().unwrap().to_owned();

    let dlq_path = format!("/api/tenants/{}/dlq", p.tenant);
    let (status, list) = p.get(&dlq_path, Some(&p.key)).await;
    assert_eq!(status, StatusCode::OK, "{list}");
    assert_eq!(list["total"], 1, "{list}");
    let letter = &list["deadLetters"][0];
    assert_eq!(letter["stage"], "gateway");
    assert_eq!(letter["path"], "/value");
    assert_eq!(letter["rule"], "type");
    assert_eq!(letter["ingestionId"], ingestion_id.as_str());
    assert_eq!(letter["payload"], r#"{"sensor_id": 12, "value": "warm"}"#);
    assert!(letter["replayed"].is_null());
    let (partition, offset) = (letter["partition"].clone(), letter["offset"].clone());

    // Replaying the original bytes fails validation again: a new dead letter, the old one marked.
    // Fixed instead: it lands in the raw topic once.
    let replay_path = format!("/api/tenants/{}/dlq/replay", p.tenant);
    let fixed = json!({"records": [{"partition": partition, "offset": offset, "payload": {"sensor_id": 12, "value": 21.0}}]});
    let (status, report) = p.post(&replay_path, Some(&p.key), fixed.clone()).await;
    assert_eq!(status, StatusCode::OK, "{report}");
    assert_eq!(report["replayed"], 1, "{report}");
    assert_eq!(report["results"][0]["status"], "replayed");
    let written = raw.read(1, Duration::from_secs(20)).await;
    assert_eq!(written.len(), 1);
    let r = &written[0];
    assert_eq!(header(r, "ingestion_id"), ingestion_id);
    assert_eq!(
        header(r, "replay.of"),
        format!("{}/{}/{}", p.dlq_topic(), partition, offset)
    );
    assert_eq!(r.key_str(), Some("12"));
    assert_eq!(
        serde_json::from_slice::<Value>(r.payload.as_deref().unwrap()).unwrap(),
        json!({"sensor_id": 12, "value": 21.0})
    );
    assert_eq!(
        report["results"][0]["writtenTo"],
        format!("{}/{}/{}", r.topic, r.partition, r.offset)
    );

    // The second replay of the same dead letter is refused, and nothing more is written.
    let (status, again) = p.post(&replay_path, Some(&p.key), fixed).await;
    assert_eq!(status, StatusCode::CONFLICT, "{again}");
    assert_eq!(again["results"][0]["status"], "already_replayed");
    assert!(raw.drain(Duration::from_secs(3)).await.is_empty());

    // "all" finds nothing left to replay; the listing shows where it went.
    let (status, all) = p
        .post(&replay_path, Some(&p.admin), json!({"all": true}))
        .await;
    assert_eq!(status, StatusCode::OK, "{all}");
    assert_eq!(all["results"].as_array().unwrap().len(), 0, "{all}");
    let (_, list) = p.get(&dlq_path, Some(&p.admin)).await;
    assert_eq!(list["total"], 1, "markers are not dead letters: {list}");
    assert_eq!(list["replayed"], 1);
    assert_eq!(
        list["deadLetters"][0]["replayed"]["to"],
        report["results"][0]["writtenTo"]
    );

    // Bad requests say what was wrong.
    let (status, body) = p.post(&replay_path, Some(&p.key), json!({})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let (status, body) = p
        .post(
            &replay_path,
            Some(&p.key),
            json!({"records": [{"partition": 0, "offset": 999999}]}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["results"][0]["status"], "not_found");
}

#[tokio::test]
async fn a_dead_letter_replayed_unchanged_is_dead_lettered_again_with_its_provenance() {
    let p = Platform::start().await;
    let (status, _) = p.ingest(r#"{"sensor_id": 3}"#).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let replay_path = format!("/api/tenants/{}/dlq/replay", p.tenant);
    let (status, report) = p
        .post(&replay_path, Some(&p.admin), json!({"all": true}))
        .await;
    assert_eq!(status, StatusCode::OK, "{report}");
    assert_eq!(report["deadLettered"], 1, "{report}");
    assert_eq!(report["results"][0]["status"], "dead_lettered");

    let (_, list) = p
        .get(
            &format!("/api/tenants/{}/dlq?pending=true", p.tenant),
            Some(&p.admin),
        )
        .await;
    assert_eq!(list["total"], 2, "{list}");
    let pending = list["deadLetters"].as_array().unwrap();
    assert_eq!(
        pending.len(),
        1,
        "only the new dead letter is pending: {list}"
    );
    assert_eq!(
        pending[0]["replayOf"],
        format!(
            "{}/{}/{}",
            p.dlq_topic(),
            report["results"][0]["partition"],
            report["results"][0]["offset"]
        )
    );
    assert_eq!(pending[0]["rule"], "required");
}

#[tokio::test]
async fn the_tenant_overview_counts_accepted_and_rejected_events() {
    let p = Platform::start().await;
    let (status, _) = p
        .ingest(r#"[{"sensor_id": 1, "value": 1}, {"sensor_id": 2, "value": 2}, {"sensor_id": 3}]"#)
        .await;
    assert_eq!(status.as_u16(), 207);
    let (status, o) = p
        .get(&format!("/api/tenants/{}/overview", p.tenant), Some(&p.key))
        .await;
    assert_eq!(status, StatusCode::OK, "{o}");
    assert_eq!(o["accepted"], 2, "{o}");
    assert_eq!(o["rejected"], 1, "{o}");
    assert_eq!(o["eventsIn"], 3, "{o}");
    assert_eq!(o["deadLettered"], 1, "{o}");
    assert_eq!(o["datasets"][0]["rawRecords"], 2, "{o}");
    assert_eq!(o["datasets"][0]["schemaVersions"], json!(["1"]), "{o}");
    assert_eq!(o["datasets"][0]["compatibility"], "backward", "{o}");

    let (status, tenants) = p.get("/api/tenants", Some(&p.key)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(tenants["count"], 1, "a tenant sees itself only: {tenants}");
    let (status, _) = p
        .get(
            &format!("/api/tenants/{}/overview", unique("nobody")),
            Some(&p.admin),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn every_operation_of_the_openapi_document_is_served_as_documented() {
    let p = Platform::start().await;
    let (status, doc) = p.get("/api/openapi.json", None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        doc["components"]["securitySchemes"]["bearer"]["scheme"],
        "bearer"
    );
    // The view types are described field by field, in the casing the API answers with.
    let partition = &doc["components"]["schemas"]["PartitionMetadata"]["properties"];
    assert!(partition["inSyncReplicas"].is_object(), "{partition}");
    let checked = streamlake_testkit::assert_served_as_documented(&p.base, &doc).await;
    assert_eq!(checked, 26, "operations in {doc}");
}

#[tokio::test]
async fn labs_run_from_the_api_for_the_admin_only() {
    let p = Platform::start().await;
    let (status, list) = p.get("/api/labs", Some(&p.key)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(list["labs"].as_array().unwrap().len(), 4, "{list}");
    let (status, _) = p
        .post("/api/labs/partitioning", Some(&p.key), json!({}))
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, body) = p.post("/api/labs/nothing", Some(&p.admin), json!({})).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    let (status, r) = p
        .post("/api/labs/partitioning", Some(&p.admin), json!({}))
        .await;
    assert_eq!(status, StatusCode::OK, "{r}");
    assert_eq!(r["same_key_same_partition"], true, "{r}");
    assert_eq!(r["read_back"], 30);
    // This test server cannot start worker processes: said, not pretended.
    let (status, body) = p
        .post("/api/labs/semantics", Some(&p.admin), json!({}))
        .await;
    assert_eq!(status, StatusCode::NOT_IMPLEMENTED, "{body}");
}

/// A dead-letter listing over thousands of dead letters counts them all and returns only the
/// newest asked for, saying it read the whole topic; a replay that names one dead letter three
/// times writes it once.
#[tokio::test]
async fn a_large_dead_letter_topic_is_listed_whole_and_a_repeated_selection_replays_once() {
    let p = Platform::start().await;
    let batch = format!("[{}]", vec![r#"{"sensor_id": 5}"#; 3000].join(","));
    let (_, body) = p.ingest(&batch).await;
    assert_eq!(body["rejected"], 3000, "{}", &body.to_string()[..500]);
    let (status, list) = p
        .get(
            &format!("/api/tenants/{}/dlq?limit=1", p.tenant),
            Some(&p.admin),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{list}");
    assert_eq!(list["total"], 3000, "{list}");
    assert_eq!(list["complete"], true, "{list}");
    assert_eq!(list["unread"], 0, "{list}");
    let letters = list["deadLetters"].as_array().unwrap();
    assert_eq!(letters.len(), 1);

    let one = json!({"partition": letters[0]["partition"], "offset": letters[0]["offset"], "payload": {"sensor_id": 5, "value": 1.0}});
    let (status, report) = p
        .post(
            &format!("/api/tenants/{}/dlq/replay", p.tenant),
            Some(&p.admin),
            json!({"records": [one.clone(), one.clone(), one]}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{report}");
    assert_eq!(report["replayed"], 1, "{report}");
    assert_eq!(report["refused"], 2, "{report}");
    assert_eq!(
        report["results"][1]["status"], "already_replayed",
        "{report}"
    );
}

/// The replay log outlives the process: a second service over the same cluster (a restart, or
/// another instance) refuses a dead letter the first one replayed, and the dead-letter topic
/// itself holds dead letters only.
#[tokio::test]
async fn a_replay_is_remembered_in_the_replay_log_across_a_restart() {
    let p = Platform::start().await;
    let (status, _) = p.ingest(r#"{"sensor_id": 8}"#).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let (_, list) = p
        .get(&format!("/api/tenants/{}/dlq", p.tenant), Some(&p.key))
        .await;
    let letter = &list["deadLetters"][0];
    let (partition, offset) = (
        letter["partition"].as_i64().unwrap() as i32,
        letter["offset"].as_i64().unwrap(),
    );
    let fixed = json!({"records": [{"partition": partition, "offset": offset, "payload": {"sensor_id": 8, "value": 1.5}}]});
    let (status, report) = p
        .post(
            &format!("/api/tenants/{}/dlq/replay", p.tenant),
            Some(&p.key),
            fixed,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{report}");
    assert_eq!(report["replayed"], 1, "{report}");
    let written_to = report["results"][0]["writtenTo"].clone();

    // The log has one entry, keyed by the dead letter's position; the DLQ has no marker.
    let mut log = Reader::new(&p.stack.settings, &format!("{}.replays", p.dlq_topic())).await;
    let entries = log.read(1, Duration::from_secs(20)).await;
    assert_eq!(entries.len(), 1);
    assert_eq!(
        entries[0].key_str(),
        Some(format!("{partition}/{offset}").as_str())
    );
    assert_eq!(
        header(&entries[0], "replay.to"),
        written_to.as_str().unwrap()
    );
    let mut dlq = Reader::new(&p.stack.settings, &p.dlq_topic()).await;
    assert_eq!(dlq.drain(Duration::from_secs(3)).await.len(), 1);

    // A fresh service knows nothing in memory and still refuses, and lists it as replayed.
    let gateway = streamlake_gateway::Gateway::new(&p.stack.config, &p.stack.settings).unwrap();
    let fresh = streamlake_ops::Ops::new(
        p.stack.config.clone(),
        p.stack.settings.clone(),
        std::sync::Arc::clone(gateway.ingestor()),
    )
    .unwrap();
    let who = streamlake_ops::Principal::Admin;
    let again = fresh
        .replay(
            &who,
            &p.tenant,
            &serde_json::from_value(
                json!({"records": [{"partition": partition, "offset": offset}]}),
            )
            .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(
        again.results[0].status,
        streamlake_ops::dlq::ReplayStatus::AlreadyReplayed,
        "{again:?}"
    );
    assert_eq!(
        again.results[0].written_to.as_deref(),
        written_to.as_str(),
        "{again:?}"
    );
    let listed = fresh
        .dead_letters(&who, &p.tenant, &Default::default())
        .await
        .unwrap();
    assert_eq!((listed.total, listed.replayed), (1, 1), "{listed:?}");
    let pending = fresh
        .dead_letters(
            &who,
            &p.tenant,
            &serde_json::from_value(json!({"pending": true})).unwrap(),
        )
        .await
        .unwrap();
    assert!(pending.dead_letters.is_empty(), "{pending:?}");
}

/// Requests that race to replay one dead letter write it once; the others are told it is
/// being (or was) replayed.
#[tokio::test]
async fn concurrent_replays_of_one_dead_letter_write_it_once() {
    let p = Platform::start().await;
    let mut raw = Reader::new(&p.stack.settings, &p.raw_topic()).await;
    let (status, _) = p.ingest(r#"{"sensor_id": 9}"#).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let (_, list) = p
        .get(&format!("/api/tenants/{}/dlq", p.tenant), Some(&p.key))
        .await;
    let letter = &list["deadLetters"][0];
    let fixed = json!({"records": [{"partition": letter["partition"], "offset": letter["offset"], "payload": {"sensor_id": 9, "value": 2.0}}]});
    let path = format!("/api/tenants/{}/dlq/replay", p.tenant);
    let answers =
        futures::future::join_all((0..8).map(|_| p.post(&path, Some(&p.key), fixed.clone()))).await;
    let statuses: Vec<String> = answers
        .iter()
        .map(|(_, r)| r["results"][0]["status"].as_str().unwrap_or("?").to_owned())
        .collect();
    assert_eq!(
        statuses.iter().filter(|s| *s == "replayed").count(),
        1,
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|s| *s == "already_replayed").count(),
        7,
        "{statuses:?}"
    );
    assert_eq!(raw.read(1, Duration::from_secs(20)).await.len(), 1);
    assert!(raw.drain(Duration::from_secs(3)).await.is_empty());
}

/// "Replay all" walks the dead-letter topic a chunk at a time and reaches every dead letter
/// present when it was asked, but none that the replay itself dead-letters again.
#[tokio::test]
async fn replaying_all_reaches_every_dead_letter_in_chunks_and_not_its_own() {
    let p = Platform::start().await;
    let batch = format!("[{}]", vec![r#"{"sensor_id": 6}"#; 700].join(","));
    let (_, body) = p.ingest(&batch).await;
    assert_eq!(body["rejected"], 700);
    let path = format!("/api/tenants/{}/dlq/replay", p.tenant);
    let (status, report) = p.post(&path, Some(&p.admin), json!({"all": true})).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(report["deadLettered"], 700, "{}", report["deadLettered"]);
    assert_eq!(report["complete"], true);
    let (_, list) = p
        .get(
            &format!("/api/tenants/{}/dlq?limit=1", p.tenant),
            Some(&p.admin),
        )
        .await;
    assert_eq!(
        (list["total"].as_i64(), list["replayed"].as_i64()),
        (Some(1400), Some(700))
    );
    // The second pass finds exactly the 700 the first one wrote.
    let (_, report) = p.post(&path, Some(&p.admin), json!({"all": true})).await;
    assert_eq!(report["deadLettered"], 700, "{}", report["deadLettered"]);
    assert_eq!(report["refused"], 0);
}

async fn total_lag(p: &Platform, group: &str) -> Option<i64> {
    p.get(group, Some(&p.key)).await.1["totalLag"].as_i64()
}

#[tokio::test]
async fn a_group_is_reset_after_a_dry_run_and_deleted_but_not_while_it_has_members() {
    let p = Platform::start().await;
    let events: Vec<Value> = (0..10)
        .map(|i| json!({"sensor_id": i, "value": i}))
        .collect();
    let (status, body) = p.ingest(&Value::from(events).to_string()).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    p.commit(4).await;
    let group = format!("/api/kafka/groups/{}", p.group);
    let reset = format!("{group}/reset");
    assert_eq!(total_lag(&p, &group).await, Some(6));

    // A dry run shows old -> new and changes nothing.
    let (status, dry) = p
        .post(
            &reset,
            Some(&p.key),
            json!({"to": "earliest", "dryRun": true}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{dry}");
    assert_eq!(dry["dryRun"], true);
    assert_eq!(dry["totalLagBefore"], 6, "{dry}");
    assert_eq!(dry["totalLagAfter"], 10, "{dry}");
    let old: i64 = dry["partitions"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|c| c["oldOffset"].as_i64())
        .sum();
    assert_eq!(old, 4, "{dry}");
    assert_eq!(total_lag(&p, &group).await, Some(6));

    // To the end: nothing left to read; by timestamp 0: everything again.
    let (status, done) = p.post(&reset, Some(&p.key), json!({"to": "latest"})).await;
    assert_eq!(status, StatusCode::OK, "{done}");
    assert_eq!(total_lag(&p, &group).await, Some(0));
    let (status, done) = p
        .post(&reset, Some(&p.key), json!({"to": "timestamp", "value": 0}))
        .await;
    assert_eq!(status, StatusCode::OK, "{done}");
    assert_eq!(total_lag(&p, &group).await, Some(10));
    // One partition by a shift: only that partition moves.
    let (status, shifted) = p
        .post(
            &reset,
            Some(&p.key),
            json!({"to": "shift", "value": 1, "topic": p.raw_topic(), "partitions": [0]}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{shifted}");
    let changes = shifted["partitions"].as_array().unwrap();
    assert_eq!(changes.len(), 1, "{shifted}");
    assert_eq!(changes[0]["partition"], 0);
    let moved =
        changes[0]["newOffset"].as_i64().unwrap() - changes[0]["oldOffset"].as_i64().unwrap();
    assert!(moved <= 1, "{shifted}");
    // Bad requests say what is wrong.
    let (status, body) = p.post(&reset, Some(&p.key), json!({"to": "offset"})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(
        body["error"]["message"].as_str().unwrap().contains("value"),
        "{body}"
    );
    let (status, _) = p
        .post(
            &reset,
            Some(&p.key),
            json!({"to": "earliest", "topic": p.raw_topic(), "partitions": [99]}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    // Another tenant may not touch the group.
    let (status, _) = p
        .post(&reset, Some(&p.other_key), json!({"to": "latest"}))
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    // While a member is in the group: a dry run still answers, a reset and a delete are 409.
    let member = p.member().await;
    // The group's page names the member and the partitions it holds.
    let (_, described) = p.get(&group, Some(&p.admin)).await;
    let members = described["members"].as_array().unwrap();
    assert_eq!(members.len(), 1, "{described}");
    let assigned = &members[0]["assignment"][0];
    assert_eq!(assigned["topic"], p.raw_topic(), "{described}");
    assert!(
        !assigned["partitions"].as_array().unwrap().is_empty(),
        "{described}"
    );
    let (status, body) = p.post(&reset, Some(&p.key), json!({"to": "latest"})).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("active member"),
        "{body}"
    );
    let (status, _) = p
        .post(
            &reset,
            Some(&p.key),
            json!({"to": "latest", "dryRun": true}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = p.delete(&group, Some(&p.key)).await;
    assert_eq!(status, StatusCode::CONFLICT);
    drop(member);

    // Once the member left, the group can go.
    let deleted = streamlake_testkit::eventually(Duration::from_secs(30), || async {
        let (status, body) = p.delete(&group, Some(&p.key)).await;
        (status == StatusCode::OK).then_some(body)
    })
    .await
    .expect("the group is deleted once its member left");
    assert_eq!(deleted["group"], p.group.as_str());
    // The configured group is still listed, with no committed offset left.
    let (_, after) = p.get(&group, Some(&p.admin)).await;
    let committed: Vec<&Value> = after["partitions"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| !c["committedOffset"].is_null())
        .collect();
    assert!(committed.is_empty(), "{after}");
}

#[tokio::test]
async fn freshness_rows_are_the_tenants_own_with_each_stage_and_its_lag() {
    let p = Platform::start().await;
    let (status, body) = p
        .ingest(r#"[{"sensor_id": 1, "value": 1}, {"sensor_id": 2, "value": 2}]"#)
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");

    let (status, all) = p.get("/api/freshness", Some(&p.admin)).await;
    assert_eq!(status, StatusCode::OK, "{all}");
    let tenants: Vec<&str> = all["datasets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["tenant"].as_str().unwrap())
        .collect();
    assert!(tenants.contains(&p.tenant.as_str()) && tenants.contains(&p.other.as_str()));

    let (status, mine) = p.get("/api/freshness", Some(&p.key)).await;
    assert_eq!(status, StatusCode::OK, "{mine}");
    let rows = mine["datasets"].as_array().unwrap();
    assert_eq!(rows.len(), 1, "{mine}");
    let row = &rows[0];
    assert_eq!(row["tenant"], p.tenant.as_str());
    assert_eq!(row["state"], "no_objective", "{row}");
    let stage = &row["stages"][0];
    assert_eq!(stage["stage"], "process");
    assert_eq!(stage["group"], p.group.as_str());
    // The pipeline is not running: both events wait, the oldest since it was written.
    assert_eq!(stage["lag"], 2, "{stage}");
    assert!(stage["oldestUnreadAgeMs"].as_i64().is_some(), "{stage}");

    let (status, _) = p.get("/api/freshness", None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn messages_are_found_by_key_header_text_and_json_field_over_a_counted_scan() {
    let p = Platform::start().await;
    let events: Vec<Value> = (0..30)
        .map(|i| json!({"sensor_id": i % 5, "value": i}))
        .collect();
    let (status, body) = p.ingest(&Value::from(events).to_string()).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let some_id = body["results"][7]["ingestion_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let raw = p.raw_topic();
    let browse = |query: String| {
        let p = &p;
        let raw = raw.clone();
        async move {
            p.get(
                &format!("/api/kafka/topics/{raw}/messages?{query}"),
                Some(&p.key),
            )
            .await
        }
    };
    let values = |page: &Value| -> Vec<i64> {
        let mut v: Vec<i64> = page["messages"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| {
                serde_json::from_str::<Value>(m["value"].as_str().unwrap()).unwrap()["value"]
                    .as_i64()
                    .unwrap()
            })
            .collect();
        v.sort_unstable();
        v
    };

    let (status, by_key) = browse("key=3&limit=50".into()).await;
    assert_eq!(status, StatusCode::OK, "{by_key}");
    assert_eq!(values(&by_key), vec![3, 8, 13, 18, 23, 28]);
    assert_eq!(by_key["filtered"], true);
    assert_eq!(by_key["scanned"], 30, "every record read once: {by_key}");
    assert_eq!(by_key["complete"], true);

    let (_, by_field) = browse("pointer=/sensor_id&equals=3&limit=50".into()).await;
    assert_eq!(values(&by_field), values(&by_key));
    let (_, by_text) = browse("contains=%22value%22%3A29&limit=50".into()).await;
    assert_eq!(values(&by_text), vec![29], "{by_text}");
    let (_, by_header) = browse(format!("header=ingestion_id%3D{some_id}")).await;
    assert_eq!(values(&by_header), vec![7], "{by_header}");
    // Forward from the start, stopping at the limit: two of the six, and where to go on.
    let (_, first_two) = browse("partition=0&offset=0&key=3&limit=2".into()).await;
    let on_partition_0 = by_key["messages"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["partition"] == 0)
        .count();
    assert_eq!(first_two["count"], on_partition_0.min(2), "{first_two}");
    // A scan smaller than the topic says it did not see everything.
    let (_, short) = browse("key=3&scan=3".into()).await;
    assert_eq!(
        short["complete"], true,
        "the newest 1 per partition were read: {short}"
    );
    assert!(short["scanned"].as_u64().unwrap() <= 3, "{short}");

    // Seek by time: a time after every record finds none; one before the first finds them all.
    let future = 4_102_444_800_000_i64;
    let (status, later) = browse(format!("timestamp={future}&limit=50")).await;
    assert_eq!(status, StatusCode::OK, "{later}");
    assert_eq!(later["count"], 0);
    let (_, all) = browse("timestamp=0&limit=50".into()).await;
    assert_eq!(all["count"], 30, "{all}");

    for (query, says) in [
        ("pointer=sensor_id&equals=3", "not a JSON pointer"),
        ("pointer=/sensor_id", "needs equals"),
        ("equals=3", "needs pointer"),
        ("key=3&scan=0", "out of range"),
        ("offset=0&timestamp=0", "not both"),
        ("header=%3Dx", "names no header"),
    ] {
        let (status, e) = browse(query.into()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{query}: {e}");
        assert!(
            e["error"]["message"].as_str().unwrap().contains(says),
            "{query}: {e}"
        );
    }

    // The same choice of records as NDJSON, one record per line.
    let r = reqwest::Client::new()
        .get(format!("{}/api/kafka/topics/{raw}/export?key=3", p.base))
        .bearer_auth(&p.key)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()["content-type"], "application/x-ndjson");
    let text = r.text().await.unwrap();
    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 6);
    assert!(lines.iter().all(|l| l["key"] == "3"));
}

#[tokio::test]
async fn a_tenant_produces_through_validation_and_the_admin_writes_any_record() {
    let p = Platform::start().await;
    let raw = p.raw_topic();
    let url = format!("{}/api/kafka/topics/{raw}/messages", p.base);
    let client = reqwest::Client::new();
    let post = |token: &str, body: Value| client.post(&url).bearer_auth(token).json(&body).send();

    let r = post(&p.key, json!({"value": {"sensor_id": 42, "value": 1.5}}))
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let written: Value = r.json().await.unwrap();
    assert_eq!(written["status"], "written");
    assert_eq!(written["topic"], raw.as_str());
    let id = written["ingestionId"].as_str().unwrap().to_owned();

    let r = post(&p.key, json!({"value": {"sensor_id": 42, "value": -99}}))
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let dead: Value = r.json().await.unwrap();
    assert_eq!(dead["status"], "dead_lettered");
    assert_eq!(dead["topic"], p.dlq_topic().as_str());
    assert!(
        dead["reason"].as_str().unwrap().contains("/value"),
        "{dead}"
    );

    let r = post(
        &p.key,
        json!({"value": {"sensor_id": 1, "value": 1}, "key": "mine"}),
    )
    .await
    .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let r = client
        .post(format!(
            "{}/api/kafka/topics/{}/messages",
            p.base,
            p.dlq_topic()
        ))
        .bearer_auth(&p.key)
        .json(&json!({"value": {"sensor_id": 1, "value": 1}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN, "not a raw topic");

    // The admin writes bytes as given, with a key and headers, to any topic.
    let r = post(
        &p.admin,
        json!({"text": "not even json", "key": "k1", "headers": {"source": "console"}}),
    )
    .await
    .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let admin_written: Value = r.json().await.unwrap();

    let (_, tenant_record) = p
        .get(
            &format!("/api/kafka/topics/{raw}/messages?header=ingestion_id%3D{id}"),
            Some(&p.admin),
        )
        .await;
    assert_eq!(tenant_record["count"], 1, "{tenant_record}");
    assert_eq!(
        tenant_record["messages"][0]["key"], "42",
        "keyed as the dataset says"
    );
    let (_, admin_record) = p
        .get(
            &format!(
                "/api/kafka/topics/{raw}/messages?partition={}&offset={}&limit=1",
                admin_written["partition"], admin_written["offset"]
            ),
            Some(&p.admin),
        )
        .await;
    let m = &admin_record["messages"][0];
    assert_eq!(m["value"], "not even json");
    assert_eq!(m["key"], "k1");
    assert_eq!(m["headers"][0]["name"], "source");
}

#[tokio::test]
async fn the_admin_changes_a_topics_configs_partitions_and_records_and_deletes_it() {
    let p = Platform::start().await;
    let topic = unique("change");
    let (status, created) = p
        .post(
            "/api/kafka/topics",
            Some(&p.admin),
            json!({"name": topic, "numPartitions": 1}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    streamlake_testkit::produce_numbered(&p.stack.settings, &topic, 10).await;
    let client = reqwest::Client::new();
    let put_configs = |token: &str, body: Value| {
        client
            .put(format!("{}/api/kafka/topics/{topic}/configs", p.base))
            .bearer_auth(token)
            .json(&body)
            .send()
    };

    let r = put_configs(&p.admin, json!({"configs": {"retention.ms": "3600000"}}))
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let configs: Value = r.json().await.unwrap();
    assert_eq!(configs["configs"]["retention.ms"], "3600000", "{configs}");
    let r = put_configs(&p.admin, json!({"configs": {"retention.ms": null}}))
        .await
        .unwrap();
    let configs: Value = r.json().await.unwrap();
    assert_eq!(
        configs["configs"]["retention.ms"], "604800000",
        "back to the default"
    );
    let r = put_configs(&p.admin, json!({"configs": {"retention.ms": "soon"}}))
        .await
        .unwrap();
    let st = r.status();
    let body = r.text().await.unwrap();
    assert_eq!(st, StatusCode::BAD_REQUEST, "{body}");
    let r = put_configs(&p.key, json!({"configs": {"retention.ms": "1"}}))
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);

    let (status, added) = p
        .post(
            &format!("/api/kafka/topics/{topic}/partitions"),
            Some(&p.admin),
            json!({"count": 3}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{added}");
    assert_eq!(added["metadata"]["partitionCount"], 3);
    assert!(added["warning"].as_str().unwrap().contains("per-key order"));
    let (status, _) = p
        .post(
            &format!("/api/kafka/topics/{topic}/partitions"),
            Some(&p.admin),
            json!({"count": 2}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "partitions never shrink");

    let (status, purged) = p
        .post(
            &format!("/api/kafka/topics/{topic}/purge"),
            Some(&p.admin),
            json!({"beforeOffset": 4, "partition": 0}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{purged}");
    assert_eq!(purged["lowWatermarks"]["0"], 4, "{purged}");
    assert_eq!(purged["deleted"], 4);
    let (_, meta) = p
        .get(
            &format!("/api/kafka/topics/{topic}/metadata"),
            Some(&p.admin),
        )
        .await;
    assert_eq!(meta["partitions"][0]["lowWatermark"], 4, "{meta}");
    let (status, past) = p
        .post(
            &format!("/api/kafka/topics/{topic}/purge"),
            Some(&p.admin),
            json!({"beforeOffset": 99, "partition": 0}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{past}");

    // A tenant's topic in use: refused without force.
    let r = client
        .delete(format!("{}/api/kafka/topics/{}", p.base, p.raw_topic()))
        .bearer_auth(&p.admin)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CONFLICT);
    let r = client
        .delete(format!("{}/api/kafka/topics/{topic}", p.base))
        .bearer_auth(&p.key)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let r = client
        .delete(format!("{}/api/kafka/topics/{topic}", p.base))
        .bearer_auth(&p.admin)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let gone = streamlake_testkit::eventually(Duration::from_secs(30), || async {
        let (status, _) = p
            .get(
                &format!("/api/kafka/topics/{topic}/metadata"),
                Some(&p.admin),
            )
            .await;
        (status == StatusCode::NOT_FOUND).then_some(())
    })
    .await;
    assert!(gone.is_some(), "{topic} is still there");
}
