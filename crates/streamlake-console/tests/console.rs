//! The web console rendered by a real browser (Debian's headless Chromium, which
//! `scripts/setup.sh` installs) over real data: the topics page, a topic page, the groups page
//! and the dead-letter page. Screenshots are saved as test artifacts under
//! `$CARGO_TARGET_TMPDIR/console-screenshots/`.

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio::process::Command;

use common::Platform;
use reqwest::StatusCode;
use serde_json::{json, Value};

fn chromium() -> PathBuf {
    if let Ok(p) = std::env::var("STREAMLAKE_CHROMIUM") {
        return PathBuf::from(p);
    }
    for p in ["/usr/bin/chromium", "/usr/bin/chromium-browser"] {
        if Path::new(p).exists() {
            return PathBuf::from(p);
        }
    }
    panic!("no Chromium found: install Debian's chromium (scripts/setup.sh does) or set STREAMLAKE_CHROMIUM");
}

/// Runs Chromium; the test's runtime keeps serving the console meanwhile.
async fn browser(args: &[&str]) -> std::process::Output {
    let profile = tempfile::tempdir().unwrap();
    let run = Command::new(chromium())
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--hide-scrollbars",
            &format!("--user-data-dir={}", profile.path().display()),
        ])
        .args(args)
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(Duration::from_secs(60), run)
        .await
        .expect("chromium finished within 60 s")
        .expect("run chromium");
    assert!(
        out.status.success(),
        "chromium failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn artifacts() -> PathBuf {
    let dir = std::env::var("STREAMLAKE_SCREENSHOTS")
        .map(PathBuf::from)
        .unwrap_or_else(|_| PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("console-screenshots"));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The page at `path` as the browser rendered it (signed in with `token` through a one-time
/// sign-in link, as `up` prints one), and a screenshot of it saved as `name.png`.
async fn render(p: &Platform, token: &str, path: &str, name: &str) -> String {
    let link = || {
        let code = p.ops.sign_in_code(token).expect("a valid token");
        format!("{}/console/login?code={code}&next={path}", p.base)
    };
    let dom = String::from_utf8(browser(&["--dump-dom", &link()]).await.stdout).unwrap();
    let shot = artifacts().join(format!("{name}.png"));
    browser(&[
        &format!("--screenshot={}", shot.display()),
        "--window-size=1280,1400",
        &link(),
    ])
    .await;
    let png = std::fs::read(&shot).unwrap();
    assert!(
        png.starts_with(b"\x89PNG") && png.len() > 10_000,
        "{name}: screenshot is not a rendered page"
    );
    eprintln!("screenshot: {}", shot.display());
    dom
}

/// `path` as the value of a query parameter.
fn encoded(path: &str) -> String {
    path.replace('%', "%25")
        .replace('?', "%3F")
        .replace('&', "%26")
        .replace('=', "%3D")
}

#[tokio::test]
async fn the_console_renders_real_data_in_a_browser() {
    let p = Platform::start().await;
    let events: Vec<Value> = (0..12)
        .map(|i| json!({"sensor_id": i % 4, "value": i}))
        .collect();
    let (status, body) = p.ingest(&Value::from(events).to_string()).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, _) = p.ingest(r#"{"sensor_id": 99, "value": "hot"}"#).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    p.commit(5).await;
    // A few lag samples for the group page's chart.
    p.await_lag_samples(7.0).await;

    let topics = render(&p, &p.admin, "/console/topics", "topics").await;
    assert!(
        topics.contains(&p.raw_topic()),
        "topics page lacks {}",
        p.raw_topic()
    );
    assert!(topics.contains(&p.dlq_topic()));
    assert!(topics.contains("Topics ("));

    let raw = p.raw_topic();
    let topic = render(&p, &p.admin, &format!("/console/topics/{raw}"), "topic").await;
    assert!(topic.contains("Messages per partition"), "{topic}");
    assert!(
        topic.contains("12 messages"),
        "topic page does not count the 12 events"
    );
    assert!(topic.contains("high watermark"));
    assert!(topic.contains("distinct keys"), "no key distribution");

    let groups = render(&p, &p.key, "/console/groups", "groups").await;
    assert!(groups.contains(&p.group), "groups page lacks {}", p.group);
    assert!(groups.contains("pipeline main"));

    let group = render(
        &p,
        &p.admin,
        &format!("/console/groups/{}", p.group),
        "group",
    )
    .await;
    assert!(group.contains("total lag: <b>7</b>"), "{group}");
    assert!(
        group.contains("Total lag: now 7.0 records"),
        "no lag-over-time chart: {group}"
    );

    let dlq = render(
        &p,
        &p.key,
        &format!("/console/tenants/{}/dlq", p.tenant),
        "dlq",
    )
    .await;
    assert!(dlq.contains("/value"), "dead letter path missing");
    assert!(
        dlq.contains(r#"{"sensor_id": 99, "value": "hot"}"#.replace('"', "&quot;").as_str())
            || dlq.contains(r#"{"sensor_id": 99, "value": "hot"}"#)
    );
    assert!(dlq.contains("Replay"));

    let messages = render(
        &p,
        &p.admin,
        &format!("/console/topics/{raw}/messages?limit=5"),
        "messages",
    )
    .await;
    assert!(messages.contains("ingestion_id"), "headers not shown");
    assert!(messages.contains("&quot;sensor_id&quot;") || messages.contains("\"sensor_id\""));

    // The raw topic's page says where a key lands, as the gateway's preview does.
    let preview: Value = reqwest::Client::new()
        .post(format!(
            "{}/v1/tenants/{}/datasets/readings/partition?key=2",
            p.base, p.tenant
        ))
        .bearer_auth(&p.key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let landed = render(
        &p,
        &p.key,
        &encoded(&format!("/console/topics/{raw}?key=2")),
        "topic-key",
    )
    .await;
    assert!(
        landed.contains(&format!("key 2 → partition {}", preview["partition"])),
        "{preview} {landed}"
    );

    // The browser's filter form (a GET: its result is the URL it leads to), and the live tail.
    let filtered = render(
        &p,
        &p.key,
        &encoded(&format!(
            "/console/topics/{raw}/messages?key=2&pointer=/value&equals=6"
        )),
        "messages-filtered",
    )
    .await;
    assert!(filtered.contains("1 messages"), "{filtered}");
    assert!(filtered.contains("records read to find them"), "{filtered}");
    let tail = render(
        &p,
        &p.key,
        &encoded(&format!("/console/topics/{raw}/messages?tail=1")),
        "messages-tail",
    )
    .await;
    assert!(tail.contains("http-equiv=\"refresh\""), "{tail}");
    assert!(tail.contains("Live tail"), "{tail}");

    // The topic page's produce form: the record written shows in the browser it leads to.
    let cookie = p.console_cookie(&p.key).await;
    let r = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
        .post(format!("{}/console/topics/{raw}/produce", p.base))
        .header("cookie", &cookie)
        .header("origin", &p.base)
        .form(&[("value", r#"{"sensor_id": 77, "value": 12.5}"#)])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let written = r.headers()["location"].to_str().unwrap().to_owned();
    let shown = render(&p, &p.key, &encoded(&written), "produced").await;
    assert!(shown.contains("77"), "{shown}");
    assert!(shown.contains("ingestion_id"), "{shown}");

    let labs = render(&p, &p.admin, "/console/labs", "labs").await;
    assert!(labs.contains("partitioning") && labs.contains("semantics"));

    let freshness = render(&p, &p.key, "/console/freshness", "freshness").await;
    assert!(
        freshness.contains(&format!("{} / readings", p.tenant)),
        "{freshness}"
    );
    assert!(freshness.contains("process main"), "{freshness}");
    assert!(
        freshness.contains("aria-label=\"lag over time\""),
        "no sparkline"
    );
    assert!(
        !freshness.contains(&p.other),
        "a tenant sees another tenant's freshness"
    );

    let overview = render(&p, &p.key, "/console", "overview").await;
    assert!(overview.contains("events in"));
    assert!(
        !overview.contains(&p.other),
        "a tenant sees another tenant in the overview"
    );
}

#[tokio::test]
async fn the_console_signs_in_and_replays_a_corrected_dead_letter() {
    let p = Platform::start().await;
    let (status, _) = p.ingest(r#"{"sensor_id": 5, "value": "cold"}"#).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();

    // Not signed in: sent to the sign-in page. A wrong token: told so.
    let r = client
        .get(format!("{}/console/topics", p.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(r.headers()["location"], "/console/login");
    let r = client
        .post(format!("{}/console/login", p.base))
        .form(&[("token", "wrong")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert!(r.text().await.unwrap().contains("not valid"));

    let r = client
        .post(format!("{}/console/login", p.base))
        .form(&[("token", p.key.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let cookie = r.headers()["set-cookie"].to_str().unwrap().to_owned();
    assert!(
        cookie.contains("HttpOnly")
            && cookie.contains("SameSite=Strict")
            && cookie.contains("Max-Age="),
        "{cookie}"
    );
    // The browser holds a session id, not the key.
    assert!(!cookie.contains(p.key.as_str()), "{cookie}");
    let cookie = cookie.split(';').next().unwrap().to_owned();
    // A token in a link does not sign in (another site could choose whose session a browser
    // gets); a one-time code the process minted does, once.
    let r = client
        .get(format!("{}/console/login?token={}", p.base, p.key))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert!(r.headers().get("set-cookie").is_none());
    let code = p.ops.sign_in_code(&p.key).unwrap();
    let link = format!("{}/console/login?code={code}", p.base);
    let r = client.get(&link).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let linked = r.headers()["set-cookie"].to_str().unwrap().to_owned();
    let r = client.get(&link).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "a code signs in once");
    // Signing out ends that session on the server: its cookie no longer opens pages.
    let linked = linked.split(';').next().unwrap().to_owned();
    let r = client
        .get(format!("{}/console/logout", p.base))
        .header("cookie", &linked)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let r = client
        .get(format!("{}/console/topics", p.base))
        .header("cookie", &linked)
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["location"], "/console/login");

    let (_, list) = p
        .get(&format!("/api/tenants/{}/dlq", p.tenant), Some(&p.key))
        .await;
    let letter = &list["deadLetters"][0];
    let form = [
        ("partition", letter["partition"].to_string()),
        ("offset", letter["offset"].to_string()),
        ("payload", r#"{"sensor_id": 5, "value": -3.5}"#.to_owned()),
    ];
    let replay_url = format!("{}/console/tenants/{}/dlq/replay", p.base, p.tenant);
    // The same form posted by a page of another origin (same host, another port) with the
    // victim's cookie: refused before anything is replayed.
    let r = client
        .post(&replay_url)
        .header("cookie", &cookie)
        .header("origin", "http://127.0.0.1:28181")
        .form(&form)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert!(r
        .text()
        .await
        .unwrap()
        .contains("not sent from this console"));
    let (_, unchanged) = p
        .get(&format!("/api/tenants/{}/dlq", p.tenant), Some(&p.key))
        .await;
    assert_eq!(unchanged["replayed"], 0, "{unchanged}");
    // A cookie and no Origin or Referer at all: not a browser on a console page either.
    let r = client
        .post(&replay_url)
        .header("cookie", &cookie)
        .form(&form)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);

    // From the console's own page, as a browser sends it.
    let r = client
        .post(&replay_url)
        .header("cookie", &cookie)
        .header("origin", &p.base)
        .form(&form)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let framing = r.headers()["x-frame-options"].to_str().unwrap().to_owned();
    let policy = r.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    assert_eq!(framing, "DENY");
    assert!(policy.contains("frame-ancestors 'none'"), "{policy}");

    // A group id with a line break is looked up, not turned into a broken Location.
    let lookup = client
        .get(format!("{}/console/group?id=a%0D%0Ab", p.base))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(lookup.status(), StatusCode::SEE_OTHER);
    assert_eq!(lookup.headers()["location"], "/console/groups/a%0D%0Ab");
    let page = r.text().await.unwrap();
    assert!(page.contains("1 written to the raw topic"), "{page}");
    assert!(
        page.contains(&format!("{}.readings.raw/", p.tenant)),
        "{page}"
    );

    // A tenant may not run labs; the admin may, and gets the report as tables.
    let r = client
        .post(format!("{}/console/labs/partitioning", p.base))
        .header("cookie", &cookie)
        .header("origin", &p.base)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let admin_cookie = p.console_cookie(&p.admin).await;
    let r = client
        .post(format!("{}/console/labs/partitioning", p.base))
        .header("cookie", &admin_cookie)
        .header("origin", &p.base)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let page = r.text().await.unwrap();
    assert!(
        page.contains("Same key, same partition: <b>yes, for every key</b>"),
        "{page}"
    );
    assert!(page.contains("order-109"), "{page}");

    // Another tenant's messages: the page says why, with the status that goes with it.
    let r = client
        .get(format!(
            "{}/console/topics/{}.dlq/messages",
            p.base, p.other
        ))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert!(r.text().await.unwrap().contains("not one of tenant"));

    // Another tenant's dead letters: not found, as for a tenant that does not exist.
    let r = client
        .get(format!("{}/console/tenants/{}/dlq", p.base, p.other))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    assert!(r.text().await.unwrap().contains("no tenant"));
}

async fn group_lag(p: &Platform) -> Option<i64> {
    let path = format!("/api/kafka/groups/{}", p.group);
    p.get(&path, Some(&p.key)).await.1["totalLag"].as_i64()
}

#[tokio::test]
async fn a_group_is_reset_from_its_console_page_after_a_dry_run() {
    let p = Platform::start().await;
    let events: Vec<Value> = (0..10)
        .map(|i| json!({"sensor_id": i, "value": i}))
        .collect();
    let (status, _) = p.ingest(&Value::from(events).to_string()).await;
    assert_eq!(status, StatusCode::OK);
    p.commit(4).await;
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let cookie = p.console_cookie(&p.key).await;
    let page = client
        .get(format!("{}/console/groups/{}", p.base, p.group))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        page.contains("Reset offsets") && page.contains("Delete group"),
        "{page}"
    );

    let reset = |execute: bool| {
        let mut form = vec![("to", "earliest")];
        if execute {
            form.push(("execute", "1"));
        }
        client
            .post(format!("{}/console/groups/{}/reset", p.base, p.group))
            .header("cookie", &cookie)
            .header("origin", &p.base)
            .form(&form)
            .send()
    };
    let dry = reset(false).await.unwrap();
    assert_eq!(dry.status(), StatusCode::OK);
    let dry = dry.text().await.unwrap();
    assert!(dry.contains("Dry run"), "{dry}");
    assert!(dry.contains("6 → <b>10</b>"), "{dry}");
    assert_eq!(group_lag(&p).await, Some(6));
    let done = reset(true).await.unwrap().text().await.unwrap();
    assert!(done.contains("Offsets reset."), "{done}");
    assert_eq!(group_lag(&p).await, Some(10));
}

#[tokio::test]
async fn the_admin_creates_changes_purges_and_deletes_a_topic_from_the_console() {
    let p = Platform::start().await;
    let cookie = p.console_cookie(&p.admin).await;
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let submit = |path: String, form: Vec<(&'static str, String)>| {
        client
            .post(format!("{}{path}", p.base))
            .header("cookie", &cookie)
            .header("origin", &p.base)
            .form(&form)
            .send()
    };
    let topic = streamlake_testkit::unique("console-topic");
    let r = submit(
        "/console/topics".into(),
        vec![
            ("name", topic.clone()),
            ("partitions", "1".into()),
            ("replication", String::new()),
            ("retention_ms", "7200000".into()),
            ("cleanup_policy", String::new()),
            ("compression", "zstd".into()),
        ],
    )
    .await
    .unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(r.headers()["location"], format!("/console/topics/{topic}"));
    streamlake_testkit::produce_numbered(&p.stack.settings, &topic, 6).await;

    let ok = |r: reqwest::Response| async move {
        let status = r.status();
        let text = r.text().await.unwrap();
        assert_eq!(status, StatusCode::OK, "{text}");
        text
    };
    let set = ok(submit(
        format!("/console/topics/{topic}/configs"),
        vec![
            ("config", "retention.ms".into()),
            ("value", "3600000".into()),
        ],
    )
    .await
    .unwrap())
    .await;
    assert!(set.contains("is now 3600000"), "{set}");
    let added = ok(submit(
        format!("/console/topics/{topic}/partitions"),
        vec![("count", "2".into())],
    )
    .await
    .unwrap())
    .await;
    assert!(added.contains("has 2 partitions"), "{added}");
    let purged = ok(submit(
        format!("/console/topics/{topic}/purge"),
        vec![("before", "2".into()), ("partition", "0".into())],
    )
    .await
    .unwrap())
    .await;
    assert!(purged.contains("2 records"), "{purged}");

    // What the browser shows of the topic now.
    let page = render(
        &p,
        &p.admin,
        &format!("/console/topics/{topic}"),
        "topic-changed",
    )
    .await;
    assert!(page.contains("3600000"), "the new retention.ms");
    assert!(page.contains("zstd"), "the compression it was created with");
    assert!(page.contains("2 partitions"), "{page}");
    assert!(page.contains("Delete topic"), "the admin's forms");

    // Deletion asks for the name typed out.
    let r = submit(
        format!("/console/topics/{topic}/delete"),
        vec![("confirm", "something else".into())],
    )
    .await
    .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let deleted = ok(submit(
        format!("/console/topics/{topic}/delete"),
        vec![("confirm", topic.clone())],
    )
    .await
    .unwrap())
    .await;
    assert!(deleted.contains("was deleted"), "{deleted}");
    // A tenant's raw topic is refused without the force box.
    let r = submit(
        format!("/console/topics/{}/delete", p.raw_topic()),
        vec![("confirm", p.raw_topic())],
    )
    .await
    .unwrap();
    assert_eq!(r.status(), StatusCode::CONFLICT);
}
