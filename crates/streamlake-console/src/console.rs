//! The web console under `/console`: server-rendered HTML (maud) with inline SVG
//! charts, no scripts and nothing fetched from the network. It signs in with the same tokens as
//! the API, by POST; the browser then holds an opaque session id (an HttpOnly, SameSite=Strict
//! cookie), never the token. A one-time sign-in link (`?code=`, minted by the process itself,
//! as `up` prints it) opens a session too. Pages show what the API returns, through the same
//! [`Ops`] calls.

use std::sync::Arc;

use axum::extract::{Form, FromRequestParts, Path, Query, Request, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::Router;
use maud::{html, Markup, PreEscaped, DOCTYPE};
use percent_encoding::{percent_decode_str, utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use serde::Deserialize;
use streamlake_ops::SESSION_TTL;

use streamlake_ops::dlq::{DeadLetterQuery, ReplayReport, ReplayRequest, ReplaySelection};
use streamlake_ops::messages::MessageQuery;
use streamlake_ops::offsets::{ResetRequest, ResetTo};
use streamlake_ops::Point;
use streamlake_ops::{role_name, Ops, OpsError, Principal};

const COOKIE: &str = "streamlake_session";

const STYLE: &str = r#"
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:0;color:#1d2733;background:#f5f7fa}
header{background:#1d3557;color:#fff;padding:.6rem 1.2rem;display:flex;gap:1.4rem;align-items:center}
header a{color:#fff;text-decoration:none;font-weight:500}header .brand{font-weight:700;font-size:1.1rem}
header .who{margin-left:auto;font-size:.85rem;opacity:.85}
main{padding:1rem 1.4rem;max-width:1200px}
h1{font-size:1.4rem;margin:.4rem 0 1rem}h2{font-size:1.1rem;margin:1.4rem 0 .5rem}
table{border-collapse:collapse;background:#fff;margin:.3rem 0 1rem;min-width:40%}
th,td{border:1px solid #d7dde5;padding:.3rem .6rem;text-align:left;font-size:.9rem;vertical-align:top}
th{background:#e9eef5}td.num{text-align:right;font-variant-numeric:tabular-nums}
pre{background:#0f1720;color:#e6edf3;padding:.5rem .7rem;overflow:auto;max-width:780px;font-size:.82rem;margin:0}
.card{background:#fff;border:1px solid #d7dde5;border-radius:6px;padding:.8rem 1rem;margin:.6rem 0}
.stats{display:flex;gap:1rem;flex-wrap:wrap}.stat{background:#fff;border:1px solid #d7dde5;border-radius:6px;padding:.5rem .9rem}
.stat b{display:block;font-size:1.3rem}.muted{color:#5c6b7a;font-size:.85rem}
.note{background:#fff8e1;border:1px solid #f0d98a;padding:.4rem .7rem;border-radius:4px;font-size:.88rem}
.error{background:#fdecea;border:1px solid #f5b7b1;padding:.6rem .8rem;border-radius:4px}
.ok{background:#e8f5e9;border:1px solid #a5d6a7;padding:.6rem .8rem;border-radius:4px}
form.inline{display:inline}input,select,textarea,button{font:inherit;font-size:.88rem}
button{background:#1d3557;color:#fff;border:0;border-radius:4px;padding:.25rem .7rem;cursor:pointer}
.tag{display:inline-block;padding:0 .4rem;border-radius:3px;background:#e9eef5;font-size:.8rem}
.state-ok{background:#c8e6c9}.state-at_risk{background:#ffe082}.state-breached{background:#ef9a9a}.state-no_objective{background:#e9eef5}
"#;

/// The `/console` router.
pub fn router(ops: Arc<Ops>) -> Router {
    Router::new()
        .route("/", get(|| async { Redirect::to("/console") }))
        .route("/console", get(overview))
        .route("/console/login", get(login_page).post(login_form))
        .route("/console/logout", get(logout))
        .route("/console/topics", get(topics).post(create_topic))
        .route("/console/topics/{name}/configs", post(alter_configs))
        .route("/console/topics/{name}/partitions", post(add_partitions))
        .route("/console/topics/{name}/purge", post(purge))
        .route("/console/topics/{name}/delete", post(delete_topic))
        .route("/console/topics/{name}", get(topic))
        .route("/console/topics/{name}/messages", get(messages))
        .route("/console/topics/{name}/export", get(export))
        .route("/console/topics/{name}/produce", post(produce))
        .route("/console/groups", get(groups))
        .route("/console/groups/{id}", get(group))
        .route("/console/group", get(group_lookup))
        .route("/console/groups/{id}/reset", post(reset_group))
        .route("/console/groups/{id}/delete", post(delete_group))
        .route("/console/freshness", get(freshness))
        .route("/console/labs", get(labs))
        .route("/console/labs/{name}", post(run_lab))
        .route("/console/tenants/{tenant}/dlq", get(dlq))
        .route("/console/tenants/{tenant}/dlq/replay", post(replay))
        .layer(middleware::from_fn(same_origin))
        .layer(middleware::from_fn(page_headers))
        .with_state(ops)
}

/// Headers on every console page: no framing by other sites, no scripts or resources from
/// elsewhere (the pages use one inline style sheet and no scripts).
async fn page_headers(request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    response
}

/// A state change (every POST) is accepted only from the console's own pages: its `Origin`
/// (or, without one, its `Referer`) must be this host. A form another site posts, even one on
/// the same host under another port, is refused with 403 before it does anything.
async fn same_origin(request: Request, next: Next) -> Response {
    if request.method() != Method::POST {
        return next.run(request).await;
    }
    let headers = request.headers();
    let host = headers.get(header::HOST).and_then(|v| v.to_str().ok());
    let from = headers
        .get(header::ORIGIN)
        .or_else(|| headers.get(header::REFERER))
        .and_then(|v| v.to_str().ok());
    let same = match (host, from) {
        (Some(host), Some(from)) => origin_host(from) == Some(host),
        // A client that sends neither (curl, a script with the token) is not a browser
        // carrying a cookie to a page it was lured to.
        (_, None) => !headers.contains_key(header::COOKIE),
        (None, Some(_)) => false,
    };
    if same {
        return next.run(request).await;
    }
    let body = html! {
        p.error { "Refused: this form was not sent from this console's own pages (its Origin is " (from.unwrap_or("absent")) "). Open the console at its own address and submit it there." }
    };
    (StatusCode::FORBIDDEN, page(None, "Refused", body)).into_response()
}

/// The `host[:port]` of an origin or URL (`http://127.0.0.1:8080/console` → `127.0.0.1:8080`).
fn origin_host(url: &str) -> Option<&str> {
    let rest = url.split_once("://")?.1;
    Some(rest.split(['/', '?', '#']).next().unwrap_or(rest))
}

fn cookie_session(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .find(|(k, _)| *k == COOKIE)
        .map(|(_, v)| percent_decode_str(v).decode_utf8_lossy().into_owned())
}

/// Everything but unreserved characters is escaped (a group id in a URL path).
const UNRESERVED: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// The signed-in principal (the cookie's session, or a bearer token); without one, a redirect
/// to the sign-in page.
struct SignedIn(Principal);

impl FromRequestParts<Arc<Ops>> for SignedIn {
    type Rejection = Redirect;

    async fn from_request_parts(
        parts: &mut Parts,
        ops: &Arc<Ops>,
    ) -> Result<Self, Self::Rejection> {
        cookie_session(&parts.headers)
            .and_then(|id| ops.session(&id))
            .or_else(|| {
                streamlake_gateway::bearer_token(&parts.headers).and_then(|t| ops.principal(t))
            })
            .map(SignedIn)
            .ok_or_else(|| Redirect::to("/console/login"))
    }
}

fn page(who: Option<&Principal>, title: &str, body: Markup) -> Html<String> {
    page_refreshing(who, title, body, None)
}

/// [`page`], reloading itself every `refresh` seconds when given (the live tail).
fn page_refreshing(
    who: Option<&Principal>,
    title: &str,
    body: Markup,
    refresh: Option<u32>,
) -> Html<String> {
    let who_text = match who {
        Some(Principal::Admin) => "admin".to_owned(),
        Some(Principal::Tenant(t)) => format!("tenant {t}"),
        None => String::new(),
    };
    Html(
        html! {
            (DOCTYPE)
            html lang="en" {
                head {
                    meta charset="utf-8";
                    meta name="viewport" content="width=device-width, initial-scale=1";
                    @if let Some(secs) = refresh { meta http-equiv="refresh" content=(secs); }
                    title { (title) " · StreamLake" }
                    style { (PreEscaped(STYLE)) }
                }
                body {
                    header {
                        span.brand { "StreamLake" }
                        @if who.is_some() {
                            a href="/console" { "Overview" }
                            a href="/console/topics" { "Topics" }
                            a href="/console/groups" { "Consumer groups" }
                            a href="/console/freshness" { "Freshness" }
                            a href="/console/labs" { "Labs" }
                            span.who { "signed in as " (who_text) " · " a href="/console/logout" { "sign out" } }
                        }
                    }
                    main { h1 { (title) } (body) }
                }
            }
        }
        .into_string(),
    )
}

fn error_page(who: &Principal, e: &OpsError) -> Response {
    let status = crate::api::status_of(e.kind);
    (
        status,
        page(
            Some(who),
            "Error",
            html! { p.error { (e.message) } p { a href="/console" { "Back to the overview" } } },
        ),
    )
        .into_response()
}

fn time(ms: Option<i64>) -> String {
    ms.and_then(|ms| u64::try_from(ms).ok())
        .map(|ms| {
            humantime::format_rfc3339_millis(
                std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms),
            )
            .to_string()
        })
        .unwrap_or_else(|| "-".to_owned())
}

/// A bar chart of labelled values, as SVG.
fn bars(title: &str, values: &[(String, f64)]) -> Markup {
    let max = values
        .iter()
        .map(|(_, v)| *v)
        .fold(0.0_f64, f64::max)
        .max(1.0);
    // About 7 px per character of a 13 px label.
    let longest = values
        .iter()
        .map(|(l, _)| l.chars().count())
        .max()
        .unwrap_or(0);
    let label_w = (longest as f64 * 7.2 + 16.0).clamp(90.0, 420.0);
    let (w, bar_h, gap) = (label_w + 520.0, 22.0, 6.0);
    let h = values.len() as f64 * (bar_h + gap) + gap;
    html! {
        svg role="img" aria-label=(title) width=(w) height=(h) viewBox=(format!("0 0 {w} {h}")) style="background:#fff;border:1px solid #d7dde5" {
            @for (i, (label, v)) in values.iter().enumerate() {
                @let y = gap + i as f64 * (bar_h + gap);
                @let bw = (w - label_w - 80.0) * v / max;
                text x="8" y=(y + bar_h * 0.7) font-size="13" { (label) }
                rect x=(label_w) y=(y) width=(bw.max(1.0)) height=(bar_h) fill="#457b9d" {}
                text x=(label_w + bw + 6.0) y=(y + bar_h * 0.7) font-size="13" { (v) }
            }
        }
    }
}

/// A line chart of a time series, as SVG.
fn line(title: &str, unit: &str, points: &[Point]) -> Markup {
    if points.len() < 2 {
        return html! { p.muted { (title) ": not enough samples yet (one every few seconds while the console runs)." } };
    }
    let (w, h, pad) = (640.0, 180.0, 36.0);
    let (t0, t1) = (points[0].at as f64, points[points.len() - 1].at as f64);
    let max = points
        .iter()
        .map(|p| p.value)
        .fold(0.0_f64, f64::max)
        .max(1.0);
    let x = |t: f64| pad + (w - 2.0 * pad) * (t - t0) / (t1 - t0).max(1.0);
    let y = |v: f64| h - pad - (h - 2.0 * pad) * v / max;
    let path: String = points
        .iter()
        .map(|p| format!("{:.1},{:.1}", x(p.at as f64), y(p.value)))
        .collect::<Vec<_>>()
        .join(" ");
    let last = points[points.len() - 1].value;
    html! {
        figure style="margin:0" {
            svg role="img" aria-label=(title) width=(w) height=(h) viewBox=(format!("0 0 {w} {h}")) style="background:#fff;border:1px solid #d7dde5" {
                line x1=(pad) y1=(h - pad) x2=(w - pad) y2=(h - pad) stroke="#9aa8b6" {}
                line x1=(pad) y1=(pad) x2=(pad) y2=(h - pad) stroke="#9aa8b6" {}
                text x="4" y=(pad - 8.0) font-size="12" { (format!("{max:.0} {unit}")) }
                text x="4" y=(h - pad + 4.0) font-size="12" { "0" }
                text x=(pad) y=(h - 10.0) font-size="12" { (time(Some(t0 as i64))) }
                text x=(w - pad - 170.0) y=(h - 10.0) font-size="12" { (time(Some(t1 as i64))) }
                polyline points=(path) fill="none" stroke="#e63946" stroke-width="2" {}
            }
            figcaption.muted { (title) ": now " (format!("{last:.1} {unit}")) }
        }
    }
}

#[derive(Debug, Deserialize)]
struct LoginQuery {
    /// A one-time sign-in code.
    code: Option<String>,
    /// A token in the URL: not accepted (tokens are posted), only answered with the form.
    token: Option<String>,
    next: Option<String>,
}

fn login_form_markup(message: Option<&str>) -> Markup {
    html! {
        @if let Some(m) = message { p.error { (m) } }
        form method="post" action="/console/login" class="card" {
            p { "Sign in with the admin token (everything) or a tenant's API key (that tenant only)." }
            p.muted { "streamlake up prints the development tokens of the example configurations at start-up." }
            label { "Token " input type="password" name="token" size="40" autofocus; }
            " " button type="submit" { "Sign in" }
        }
    }
}

/// Opens a session for `who` and sends the browser to `next` (a console page) with its cookie.
fn signed_in(ops: &Ops, who: Principal, next: &str) -> Response {
    with_session(&ops.open_session(who), next)
}

fn with_session(session: &str, next: &str) -> Response {
    let next = if next.starts_with("/console") {
        next
    } else {
        "/console"
    };
    (
        StatusCode::SEE_OTHER,
        [
            (
                header::SET_COOKIE,
                format!(
                    "{COOKIE}={session}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}",
                    SESSION_TTL.as_secs()
                ),
            ),
            (header::LOCATION, next.to_owned()),
        ],
    )
        .into_response()
}

fn refused_sign_in(message: &str) -> Response {
    (
        StatusCode::UNAUTHORIZED,
        page(None, "Sign in", login_form_markup(Some(message))),
    )
        .into_response()
}

async fn login_page(State(ops): State<Arc<Ops>>, Query(q): Query<LoginQuery>) -> Response {
    if let Some(code) = q.code.filter(|c| !c.is_empty()) {
        return match ops.redeem_code(&code) {
            Some(session) => with_session(&session, q.next.as_deref().unwrap_or("/console")),
            None => refused_sign_in(
                "That sign-in link was used before or has expired: sign in with the token.",
            ),
        };
    }
    if q.token.is_some() {
        return refused_sign_in(
            "Tokens are not accepted in links: enter the token in the form below.",
        );
    }
    page(None, "Sign in", login_form_markup(None)).into_response()
}

#[derive(Debug, Deserialize)]
struct LoginBody {
    token: String,
}

async fn login_form(State(ops): State<Arc<Ops>>, Form(body): Form<LoginBody>) -> Response {
    match ops.principal(body.token.trim()) {
        Some(who) => signed_in(&ops, who, "/console"),
        None => refused_sign_in("That token is not valid."),
    }
}

async fn logout(State(ops): State<Arc<Ops>>, headers: HeaderMap) -> Response {
    if let Some(id) = cookie_session(&headers) {
        ops.close_session(&id);
    }
    (
        StatusCode::SEE_OTHER,
        [
            (
                header::SET_COOKIE,
                format!("{COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0"),
            ),
            (header::LOCATION, "/console/login".to_owned()),
        ],
    )
        .into_response()
}

async fn overview(State(ops): State<Arc<Ops>>, SignedIn(who): SignedIn) -> Response {
    let mut sections = Vec::new();
    for t in ops.tenants(&who) {
        match ops.tenant_overview(&who, &t.tenant).await {
            Ok(o) => sections.push(html! {
                div.card {
                    h2 { (o.display_name) " " span.tag { (o.tenant) } }
                    div.stats {
                        div.stat { b { (o.events_in) } "events in" }
                        div.stat { b { (o.accepted) } "accepted" }
                        div.stat { b { (o.rejected) } "rejected at ingestion" }
                        div.stat { b { (o.dead_lettered) } "dead-lettered (all stages)" }
                        div.stat { b { (o.replayed) } "replayed" }
                    }
                    table {
                        tr { th { "dataset" } th { "schema versions" } th { "raw topic" } th { "records" } th { "clean topic" } th { "records" } }
                        @for d in &o.datasets {
                            tr {
                                td { (d.dataset) }
                                td title=(format!("compatibility: {}", d.compatibility)) {
                                    (d.schema_versions.join(", "))
                                    @if d.schema_versions.len() > 1 { " " span.muted { "(" (d.compatibility) ")" } }
                                }
                                td { a href=(format!("/console/topics/{}", d.raw_topic)) { (d.raw_topic) } }
                                td.num { (d.raw_records) }
                                td { a href=(format!("/console/topics/{}", d.clean_topic)) { (d.clean_topic) } }
                                td.num { (d.clean_records) }
                            }
                        }
                    }
                    p { a href=(format!("/console/tenants/{}/dlq", o.tenant)) { "Dead letters of " (o.tenant) " →" } }
                    (line("Events per second into the raw topics", "events/s", &o.throughput))
                }
            }),
            Err(e) => sections.push(html! { p.error { (t.tenant) ": " (e.message) } }),
        }
    }
    page(
        Some(&who),
        "Overview",
        html! {
            @if sections.is_empty() { p.muted { "No tenants are configured." } }
            @for s in sections { (s) }
        },
    )
    .into_response()
}

async fn topics(State(ops): State<Arc<Ops>>, SignedIn(who): SignedIn) -> Response {
    let list = match ops.topics(&who).await {
        Ok(l) => l,
        Err(e) => return error_page(&who, &e),
    };
    let mut rows = Vec::new();
    for t in &list.details {
        let configs = ops.topic_configs(&who, &t.name).await.ok();
        let get = |k: &str| {
            configs
                .as_ref()
                .and_then(|c| c.configs.get(k).cloned())
                .unwrap_or_else(|| "-".to_owned())
        };
        rows.push(html! {
            tr {
                td { a href=(format!("/console/topics/{}", t.name)) { (t.name) } }
                td { (t.tenant.as_deref().unwrap_or("-")) }
                td { span.tag { (role_name(t.role)) } }
                td.num { (t.partitions) }
                td.num { (t.messages) }
                td { (get("retention.ms")) }
                td { (get("cleanup.policy")) }
                td { (get("compression.type")) }
            }
        });
    }
    page(
        Some(&who),
        &format!("Topics ({})", list.count),
        html! {
            table {
                tr { th { "topic" } th { "tenant" } th { "role" } th { "partitions" } th { "messages" } th { "retention.ms" } th { "cleanup.policy" } th { "compression" } }
                @for r in rows { (r) }
            }
            @if matches!(who, Principal::Admin) {
                h2 { "Create a topic" }
                form method="post" action="/console/topics" class="card" {
                    label { "Name " input type="text" name="name" required; }
                    " " label { "Partitions " input type="number" name="partitions" min="1" value="3"; }
                    " " label { "Replication " input type="number" name="replication" min="1" placeholder="broker default"; }
                    br;
                    label { "retention.ms " input type="text" name="retention_ms" placeholder="broker default"; }
                    " " label { "cleanup.policy " select name="cleanup_policy" { option value="" { "broker default" } option { "delete" } option { "compact" } option { "compact,delete" } } }
                    " " label { "compression.type " select name="compression" { option value="" { "broker default" } option { "producer" } option { "lz4" } option { "zstd" } option { "snappy" } option { "gzip" } option { "uncompressed" } } }
                    " " button type="submit" { "Create" }
                }
            }
        },
    )
    .into_response()
}

/// `?key=` on a topic's page: where that key lands.
#[derive(Debug, Default, Deserialize)]
struct TopicQuery {
    key: Option<String>,
}

async fn topic(
    State(ops): State<Arc<Ops>>,
    Path(name): Path<String>,
    SignedIn(who): SignedIn,
    Query(q): Query<TopicQuery>,
) -> Response {
    let meta = match ops.topic_metadata(&who, &name).await {
        Ok(m) => m,
        Err(e) => return error_page(&who, &e),
    };
    // A dataset's raw topic answers where a key lands (ingestion's producer places it).
    let raw = matches!(meta.role, Some(streamlake_core::TopicRole::Raw));
    let preview = match given(&q.key) {
        Some(key) if raw => Some(ops.partition_preview(&who, &name, key).await),
        _ => None,
    };
    let configs = ops.topic_configs(&who, &name).await;
    let dist = ops.distribution(&who, &name, 5_000).await;
    let per_partition: Vec<(String, f64)> = meta
        .partitions
        .iter()
        .map(|p| (format!("partition {}", p.partition_id), p.messages as f64))
        .collect();
    page(
        Some(&who),
        &format!("Topic {name}"),
        html! {
            p {
                "Tenant: " (meta.tenant.as_deref().unwrap_or("-")) " · role: " span.tag { (role_name(meta.role)) }
                " · " (meta.partition_count) " partitions · " (meta.messages) " messages · "
                a href=(format!("/console/topics/{name}/messages")) { "Browse messages →" }
            }
            h2 { "Partitions" }
            table {
                tr { th { "partition" } th { "leader" } th { "replicas" } th { "in-sync replicas" } th { "low watermark" } th { "high watermark" } th { "messages" } th {} }
                @for p in &meta.partitions {
                    tr {
                        td.num { (p.partition_id) } td.num { (p.leader) }
                        td { (format!("{:?}", p.replicas)) } td { (format!("{:?}", p.in_sync_replicas)) }
                        td.num { (p.low_watermark) } td.num { (p.high_watermark) } td.num { (p.messages) }
                        td { a href=(format!("/console/topics/{name}/messages?partition={}", p.partition_id)) { "browse" } }
                    }
                }
            }
            h2 { "Messages per partition" }
            (bars("Messages per partition", &per_partition))
            @match &dist {
                Ok(d) => {
                    h2 { "Keys" }
                    p.muted { (d.sampled) " records sampled: " (d.distinct_keys) " distinct keys, " (d.keyless) " without a key, skew " (format!("{:.2}", d.skew)) " (largest partition / mean)" }
                    @for w in &d.warnings { p.note { (w) } }
                    @if !d.top_keys.is_empty() {
                        table {
                            tr { th { "key" } th { "records" } th { "partition" } }
                            @for k in &d.top_keys { tr { td { (k.key) } td.num { (k.records) } td.num { (k.partition) } } }
                        }
                    }
                }
                Err(e) => p.note { "Key distribution not available: " (e.message) }
            }
            @if raw {
                h2 { "Which partition does a key land on?" }
                form method="get" class="card" {
                    "Key " input type="text" name="key" value=(given(&q.key).unwrap_or("")) placeholder="as ingestion writes it, e.g. 107";
                    " " button type="submit" { "Show" }
                    @match &preview {
                        Some(Ok(p)) => { " " b { "key " (p.key) " → partition " (p.partition) } span.muted { " of " (p.partitions) " (" (p.partitioner) ", as Java clients place it)" } }
                        Some(Err(e)) => { " " span.error { (e.message) } }
                        None => {}
                    }
                }
            }
            h2 { "Produce a record" }
            form method="post" action=(format!("/console/topics/{name}/produce")) class="card" {
                @if matches!(who, Principal::Admin) {
                    label { "Key " input type="text" name="key"; } br;
                    label { "Headers (name=value, one per line)" br; textarea name="headers" rows="2" cols="60" {} } br;
                } @else {
                    p.muted { "As a tenant you write events to your datasets' raw topics: validated, keyed and given headers as the gateway does." }
                }
                label { "Value (JSON, or text)" br; textarea name="value" rows="4" cols="60" {} } br;
                button type="submit" { "Produce" }
            }
            @if matches!(who, Principal::Admin) { (topic_admin_forms(&name, meta.partition_count)) }
            h2 { "Configs" }
            @match &configs {
                Ok(c) if c.configs.is_empty() => p.muted { "The broker reports no configs set on this topic (its defaults apply)." },
                Ok(c) => table {
                    tr { th { "config" } th { "value" } }
                    @for (k, v) in &c.configs { tr { td { (k) } td { (v) } } }
                },
                Err(e) => p.note { (e.message) }
            }
        },
    )
    .into_response()
}

/// The admin's forms on a topic's page: configs, partitions, purge, deletion.
fn topic_admin_forms(name: &str, partitions: usize) -> Markup {
    html! {
        h2 { "Change the topic" }
        form method="post" action=(format!("/console/topics/{name}/configs")) class="card" {
            "Set a config: " input type="text" name="config" placeholder="retention.ms" required;
            " = " input type="text" name="value" placeholder="empty: back to the broker's default";
            " " button type="submit" { "Set" }
        }
        form method="post" action=(format!("/console/topics/{name}/partitions")) class="card" {
            "Partitions: " input type="number" name="count" min=(partitions + 1) value=(partitions + 1);
            " " button type="submit" { "Add partitions" }
            br; span.muted { "Kafka cannot remove partitions, and keys hash over the new count from then on: a key's new records may land on another partition than its old ones, so per-key order holds only from then on." }
        }
        form method="post" action=(format!("/console/topics/{name}/purge")) class="card" {
            "Delete the records before offset " input type="number" name="before" min="0" required;
            " in partition " input type="number" name="partition" min="0" placeholder="every";
            " " button type="submit" { "Purge" }
        }
        form method="post" action=(format!("/console/topics/{name}/delete")) class="card" {
            "Delete this topic: type its name to confirm " input type="text" name="confirm" required;
            " " label { input type="checkbox" name="force" value="true"; " even if a tenant's stages use it" }
            " " button type="submit" { "Delete topic" }
        }
    }
}

/// A change's outcome, with the way back.
fn done(who: &Principal, title: &str, message: Markup, back: &str) -> Response {
    page(
        Some(who),
        title,
        html! { p.ok { (message) } p { a href=(back) { "Back" } } },
    )
    .into_response()
}

#[derive(Debug, Deserialize)]
struct CreateTopicForm {
    name: String,
    partitions: Option<String>,
    replication: Option<String>,
    retention_ms: Option<String>,
    cleanup_policy: Option<String>,
    compression: Option<String>,
}

async fn create_topic(
    State(ops): State<Arc<Ops>>,
    SignedIn(who): SignedIn,
    Form(form): Form<CreateTopicForm>,
) -> Response {
    let bad = |m: String| OpsError::new(streamlake_ops::ErrorKind::BadRequest, m);
    let number = |name: &str, f: &Option<String>| -> Result<Option<i32>, OpsError> {
        given(f)
            .map(|v| {
                v.parse::<i32>()
                    .map_err(|_| bad(format!("{name} must be a whole number, got {v:?}")))
            })
            .transpose()
    };
    let (partitions, replication) = match (
        number("partitions", &form.partitions),
        number("replication", &form.replication),
    ) {
        (Ok(p), Ok(r)) => (p, r),
        (Err(e), _) | (_, Err(e)) => return error_page(&who, &e),
    };
    let mut configs = std::collections::BTreeMap::new();
    for (key, f) in [
        ("retention.ms", &form.retention_ms),
        ("cleanup.policy", &form.cleanup_policy),
        ("compression.type", &form.compression),
    ] {
        if let Some(v) = given(f) {
            configs.insert(key.to_owned(), v.to_owned());
        }
    }
    let req = streamlake_ops::topics::CreateTopic {
        name: form.name.trim().to_owned(),
        num_partitions: partitions.unwrap_or(3),
        replication_factor: replication,
        configs,
    };
    match ops.create_topic(&who, &req).await {
        Ok(m) => Redirect::to(&format!("/console/topics/{}", m.topic)).into_response(),
        Err(e) => error_page(&who, &e),
    }
}

#[derive(Debug, Deserialize)]
struct ConfigForm {
    config: String,
    value: Option<String>,
}

async fn alter_configs(
    State(ops): State<Arc<Ops>>,
    Path(name): Path<String>,
    SignedIn(who): SignedIn,
    Form(form): Form<ConfigForm>,
) -> Response {
    let value = given(&form.value).map(str::to_owned);
    let req = streamlake_ops::topics::AlterConfigs {
        configs: [(form.config.trim().to_owned(), value.clone())].into(),
    };
    match ops.alter_topic_configs(&who, &name, &req).await {
        Ok(_) => done(
            &who,
            "Config changed",
            html! { (form.config.trim()) " on " (name) " is now " (value.as_deref().unwrap_or("the broker's default")) "." },
            &format!("/console/topics/{name}"),
        ),
        Err(e) => error_page(&who, &e),
    }
}

#[derive(Debug, Deserialize)]
struct PartitionsForm {
    count: String,
}

async fn add_partitions(
    State(ops): State<Arc<Ops>>,
    Path(name): Path<String>,
    SignedIn(who): SignedIn,
    Form(form): Form<PartitionsForm>,
) -> Response {
    let Ok(count) = form.count.trim().parse::<usize>() else {
        return error_page(
            &who,
            &OpsError::new(
                streamlake_ops::ErrorKind::BadRequest,
                format!(
                    "the partition count must be a whole number, got {:?}",
                    form.count
                ),
            ),
        );
    };
    let req = streamlake_ops::topics::AddPartitions { count };
    match ops.add_partitions(&who, &name, &req).await {
        Ok(added) => done(
            &who,
            "Partitions added",
            html! { (name) " has " (added.metadata.partition_count) " partitions. " (added.warning) "." },
            &format!("/console/topics/{name}"),
        ),
        Err(e) => error_page(&who, &e),
    }
}

#[derive(Debug, Deserialize)]
struct PurgeForm {
    before: String,
    partition: Option<String>,
}

async fn purge(
    State(ops): State<Arc<Ops>>,
    Path(name): Path<String>,
    SignedIn(who): SignedIn,
    Form(form): Form<PurgeForm>,
) -> Response {
    let bad = |m: String| OpsError::new(streamlake_ops::ErrorKind::BadRequest, m);
    let before = match form.before.trim().parse::<i64>() {
        Ok(b) => b,
        Err(_) => {
            return error_page(
                &who,
                &bad(format!(
                    "the offset must be a whole number, got {:?}",
                    form.before
                )),
            )
        }
    };
    let partition = match given(&form.partition).map(str::parse::<i32>).transpose() {
        Ok(p) => p,
        Err(_) => {
            return error_page(
                &who,
                &bad("the partition must be a whole number".to_owned()),
            )
        }
    };
    let req = streamlake_ops::topics::Purge {
        before_offset: before,
        partition,
    };
    match ops.purge(&who, &name, &req).await {
        Ok(p) => done(
            &who,
            "Records purged",
            html! { (p.deleted) " records of " (name) " deleted; first offsets now: " @for (part, low) in &p.low_watermarks { "p" (part) " " (low) "; " } },
            &format!("/console/topics/{name}"),
        ),
        Err(e) => error_page(&who, &e),
    }
}

#[derive(Debug, Deserialize)]
struct DeleteForm {
    confirm: String,
    force: Option<String>,
}

async fn delete_topic(
    State(ops): State<Arc<Ops>>,
    Path(name): Path<String>,
    SignedIn(who): SignedIn,
    Form(form): Form<DeleteForm>,
) -> Response {
    if form.confirm.trim() != name {
        return error_page(
            &who,
            &OpsError::new(
                streamlake_ops::ErrorKind::BadRequest,
                format!(
                    "type the topic's name ({name}) to confirm its deletion; nothing was deleted"
                ),
            ),
        );
    }
    match ops
        .delete_topic(&who, &name, given(&form.force).is_some())
        .await
    {
        Ok(_) => done(
            &who,
            "Topic deleted",
            html! { "Topic " (name) " was deleted." },
            "/console/topics",
        ),
        Err(e) => error_page(&who, &e),
    }
}

/// The message browser's form as the browser sends it: every field text, empty when left
/// blank.
#[derive(Debug, Default, Deserialize)]
struct BrowseForm {
    partition: Option<String>,
    offset: Option<String>,
    since: Option<String>,
    limit: Option<String>,
    key: Option<String>,
    header: Option<String>,
    contains: Option<String>,
    pointer: Option<String>,
    equals: Option<String>,
    scan: Option<String>,
    /// Reload every 2 s showing the newest records.
    tail: Option<String>,
}

/// A field's text, `None` when blank.
fn given(field: &Option<String>) -> Option<&str> {
    field.as_deref().map(str::trim).filter(|v| !v.is_empty())
}

impl BrowseForm {
    fn tail(&self) -> bool {
        given(&self.tail).is_some()
    }

    /// The service's query, or what was wrong with a field.
    fn query(&self) -> Result<MessageQuery, String> {
        fn number<T: std::str::FromStr>(
            name: &str,
            f: &Option<String>,
        ) -> Result<Option<T>, String> {
            given(f)
                .map(|v| {
                    v.parse::<T>()
                        .map_err(|_| format!("{name} must be a whole number, got {v:?}"))
                })
                .transpose()
        }
        let since = match given(&self.since) {
            None => None,
            Some(v) => Some(match v.parse::<i64>() {
                Ok(ms) => ms,
                Err(_) => humantime::parse_rfc3339_weak(v)
                    .ok()
                    .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                    .and_then(|d| i64::try_from(d.as_millis()).ok())
                    .ok_or_else(|| format!("since must be an RFC 3339 time (2026-12-02T10:00:00Z) or milliseconds since the epoch, got {v:?}"))?,
            }),
        };
        let text = |f: &Option<String>| given(f).map(str::to_owned);
        let tail = self.tail();
        Ok(MessageQuery {
            partition: number("partition", &self.partition)?,
            // The live tail shows the newest records.
            offset: if tail {
                None
            } else {
                number("offset", &self.offset)?
            },
            timestamp: if tail { None } else { since },
            limit: number("limit", &self.limit)?,
            key: text(&self.key),
            header: text(&self.header),
            contains: text(&self.contains),
            pointer: text(&self.pointer),
            equals: text(&self.equals),
            scan: number("scan", &self.scan)?,
        })
    }

    /// The form's fields again as a query string (for the export and tail links).
    fn query_string(&self, tail: bool) -> String {
        let fields = [
            ("partition", &self.partition),
            ("offset", &self.offset),
            ("since", &self.since),
            ("limit", &self.limit),
            ("key", &self.key),
            ("header", &self.header),
            ("contains", &self.contains),
            ("pointer", &self.pointer),
            ("equals", &self.equals),
            ("scan", &self.scan),
        ];
        let mut parts: Vec<String> = fields
            .iter()
            .filter_map(|(name, f)| {
                Some(format!(
                    "{name}={}",
                    utf8_percent_encode(given(f)?, UNRESERVED)
                ))
            })
            .collect();
        if tail {
            parts.push("tail=1".to_owned());
        }
        parts.join("&")
    }
}

async fn messages(
    State(ops): State<Arc<Ops>>,
    Path(name): Path<String>,
    SignedIn(who): SignedIn,
    Query(form): Query<BrowseForm>,
) -> Response {
    let result = match form.query() {
        Ok(q) => ops.messages(&who, &name, &q).await,
        Err(why) => Err(OpsError::new(streamlake_ops::ErrorKind::BadRequest, why)),
    };
    let tail = form.tail();
    let value = |f: &Option<String>| given(f).unwrap_or("").to_owned();
    let page_body = html! {
        form method="get" class="card" {
            label { "Partition " input type="number" name="partition" min="0" value=(value(&form.partition)) placeholder="all"; }
            " " label { "Offset " input type="number" name="offset" min="0" value=(value(&form.offset)) placeholder="newest"; }
            " " label { "or since " input type="text" name="since" value=(value(&form.since)) placeholder="2026-12-02T10:00:00Z"; }
            " " label { "Limit " input type="number" name="limit" min="1" value=(given(&form.limit).map_or_else(|| streamlake_ops::DEFAULT_LIMIT.to_string(), str::to_owned)); }
            br;
            label { "Key " input type="text" name="key" value=(value(&form.key)); }
            " " label { "Header " input type="text" name="header" value=(value(&form.header)) placeholder="name or name=value"; }
            " " label { "Value contains " input type="text" name="contains" value=(value(&form.contains)); }
            br;
            label { "JSON field " input type="text" name="pointer" value=(value(&form.pointer)) placeholder="/sensor_id"; }
            " " label { "equals " input type="text" name="equals" value=(value(&form.equals)) placeholder="107"; }
            " " label { "Scan at most " input type="number" name="scan" min="1" value=(value(&form.scan)) placeholder="10000"; }
            " " button type="submit" { "Seek" }
            " " a href=(format!("/console/topics/{name}/messages?{}", form.query_string(true))) { "live tail" }
            " · " a href=(format!("/console/topics/{name}/export?{}", form.query_string(false))) { "download NDJSON" }
            " · " a href=(format!("/console/topics/{name}")) { "back to the topic" }
        }
        @if tail { p.note { "Live tail: the newest records, reloaded every 2 s. " a href=(format!("/console/topics/{name}/messages?{}", form.query_string(false))) { "stop" } } }
        @match &result {
            Err(e) => p.error { (e.message) },
            Ok(page) => {
                p.muted {
                    (page.count) " messages. Watermarks (low–high): "
                    @for (p, (low, high)) in &page.watermarks { "p" (p) " " (low) "–" (high) "; " }
                }
                @if page.filtered {
                    p.muted {
                        (page.scanned) " records read to find them"
                        @if !page.complete { "; more left: raise the scan or narrow the range (next offsets: " @for (p, o) in &page.next { "p" (p) " " (o) "; " } ")" }
                        "."
                    }
                }
                @if page.messages.is_empty() { p.muted { "No messages in this range." } }
                @for m in &page.messages {
                    div.card {
                        p {
                            b { "partition " (m.partition) " · offset " (m.offset) }
                            " · " (time(m.timestamp)) " · key " code { (m.key.as_deref().unwrap_or("(none)")) }
                        }
                        @if !m.headers.is_empty() {
                            table {
                                tr { th { "header" } th { "value" } }
                                @for h in &m.headers { tr { td { (h.name) } td { (h.value.as_deref().unwrap_or("")) @if h.encoding == "base64" { " " span.tag { "base64" } } } } }
                            }
                        }
                        pre { (pretty(m.value.as_deref(), m.is_json)) }
                    }
                }
            }
        }
    };
    // An error (another tenant's topic, an offset out of range) keeps the form, with its status.
    let status = result
        .as_ref()
        .err()
        .map_or(StatusCode::OK, |e| crate::api::status_of(e.kind));
    (
        status,
        page_refreshing(
            Some(&who),
            &format!("Messages of {name}"),
            page_body,
            tail.then_some(2),
        ),
    )
        .into_response()
}

/// The browser's records as an NDJSON download.
async fn export(
    State(ops): State<Arc<Ops>>,
    Path(name): Path<String>,
    SignedIn(who): SignedIn,
    Query(form): Query<BrowseForm>,
) -> Response {
    let mut q = match form.query() {
        Ok(q) => q,
        Err(why) => {
            return error_page(
                &who,
                &OpsError::new(streamlake_ops::ErrorKind::BadRequest, why),
            )
        }
    };
    // The browser's default of 20 is not a download's.
    if given(&form.limit).is_none() {
        q.limit = None;
    }
    match ops.export(&who, &name, &q).await {
        Err(e) => error_page(&who, &e),
        Ok(page) => {
            let body = page.ndjson();
            (
                [
                    (header::CONTENT_TYPE, "application/x-ndjson".to_owned()),
                    (
                        header::CONTENT_DISPOSITION,
                        format!("attachment; filename=\"{name}.ndjson\""),
                    ),
                ],
                body,
            )
                .into_response()
        }
    }
}

/// The produce form on a topic's page.
#[derive(Debug, Deserialize)]
struct ProduceForm {
    value: String,
    key: Option<String>,
    /// `name=value`, one per line.
    headers: Option<String>,
}

/// Writes the form's record and shows it in the browser (or why it was not written).
async fn produce(
    State(ops): State<Arc<Ops>>,
    Path(name): Path<String>,
    SignedIn(who): SignedIn,
    Form(form): Form<ProduceForm>,
) -> Response {
    let mut headers = std::collections::BTreeMap::new();
    for line in form.headers.as_deref().unwrap_or("").lines() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        match line.split_once('=') {
            Some((n, v)) if !n.trim().is_empty() => {
                headers.insert(n.trim().to_owned(), v.to_owned());
            }
            _ => {
                return error_page(
                    &who,
                    &OpsError::new(
                        streamlake_ops::ErrorKind::BadRequest,
                        format!("header line {line:?} is not name=value"),
                    ),
                )
            }
        }
    }
    let req = streamlake_ops::messages::ProduceRequest {
        // JSON when it parses, else the text as it is.
        value: serde_json::from_str(&form.value).ok(),
        text: serde_json::from_str::<serde_json::Value>(&form.value)
            .is_err()
            .then(|| form.value.clone()),
        key: given(&form.key).map(str::to_owned),
        headers,
    };
    match ops.produce(&who, &name, &req).await {
        Err(e) => error_page(&who, &e),
        Ok(p) if p.status == "dead_lettered" => (
            StatusCode::UNPROCESSABLE_ENTITY,
            page(
                Some(&who),
                "Event dead-lettered",
                html! {
                    p.error { "The event failed validation: " (p.reason.as_deref().unwrap_or("")) }
                    p { "It was written to the dead-letter topic " a href=(format!("/console/topics/{}/messages?partition={}&offset={}", p.topic, p.partition, p.offset)) { (p.topic) " partition " (p.partition) " offset " (p.offset) } "." }
                },
            ),
        )
            .into_response(),
        Ok(p) => Redirect::to(&format!(
            "/console/topics/{}/messages?partition={}&offset={}&limit=1",
            p.topic, p.partition, p.offset
        ))
        .into_response(),
    }
}

fn pretty(value: Option<&str>, is_json: bool) -> String {
    match value {
        None => "(no value)".to_owned(),
        Some(v) if is_json => serde_json::from_str::<serde_json::Value>(v)
            .and_then(|j| serde_json::to_string_pretty(&j))
            .unwrap_or_else(|_| v.to_owned()),
        Some(v) => v.to_owned(),
    }
}

async fn groups(State(ops): State<Arc<Ops>>, SignedIn(who): SignedIn) -> Response {
    let list = match ops.groups(&who).await {
        Ok(l) => l,
        Err(e) => return error_page(&who, &e),
    };
    page(
        Some(&who),
        &format!("Consumer groups ({})", list.count),
        html! {
            @if let Some(n) = &list.note { p.note { (n) } }
            table {
                tr { th { "group" } th { "runs" } th { "state" } th { "members" } th { "total lag" } }
                @for g in &list.groups {
                    tr {
                        td { a href=(format!("/console/groups/{}", g.group)) { (g.group) } }
                        td { (g.runs.as_deref().unwrap_or("-")) }
                        td { (g.state.as_deref().unwrap_or("unknown")) }
                        td.num { (g.members.map_or_else(|| "unknown".to_owned(), |m| m.to_string())) }
                        td.num { (g.total_lag) }
                    }
                }
            }
            form method="get" action="/console/group" class="card" {
                "Look up another group: " input type="text" name="id" placeholder="group id"; " " button { "Show" }
            }
        },
    )
    .into_response()
}

/// A small line of `points` (a stage's lag over time), without axes.
fn sparkline(points: &[Point]) -> Markup {
    let (w, h) = (120.0, 24.0);
    let max = points
        .iter()
        .map(|p| p.value)
        .fold(0.0_f64, f64::max)
        .max(1.0);
    let step = w / (points.len().max(2) - 1) as f64;
    let line: Vec<String> = points
        .iter()
        .enumerate()
        .map(|(i, p)| {
            format!(
                "{:.1},{:.1}",
                i as f64 * step,
                h - 2.0 - p.value / max * (h - 4.0)
            )
        })
        .collect();
    html! {
        svg role="img" aria-label="lag over time" width=(w) height=(h) viewBox=(format!("0 0 {w} {h}")) {
            @if line.len() > 1 {
                polyline fill="none" stroke="#1d3557" stroke-width="1.5" points=(line.join(" ")) {}
            }
        }
    }
}

/// Each dataset the principal may see: its state against its objective, and per stage the
/// records left, the oldest one's age, the trend and the lag over time.
async fn freshness(State(ops): State<Arc<Ops>>, SignedIn(who): SignedIn) -> Response {
    let report = match ops.freshness(&who).await {
        Ok(r) => r,
        Err(e) => return error_page(&who, &e),
    };
    let age = |ms: Option<i64>| {
        ms.map_or_else(
            || "-".to_owned(),
            |ms| format!("{:.1} s", ms as f64 / 1000.0),
        )
    };
    let durable = |st: &streamlake_ops::freshness::StageFreshness| {
        st.durable_latency.map_or_else(
            || "-".to_owned(),
            |l| format!("{} / {} ms", l.p50_ms, l.p99_ms),
        )
    };
    page(
        Some(&who),
        "Freshness",
        html! {
            div.stats {
                div.stat { b { (report.datasets.len()) } "datasets" }
                div.stat { b { (report.breached) } "breached" }
                div.stat { b { (report.at_risk) } "at risk" }
            }
            table {
                tr { th { "tenant / dataset" } th { "state" } th { "objective" } th { "ingestion → clean p50 / p99" } th { "stage" } th { "unread" } th { "oldest waited" } th { "trend" } th { "lag over time" } th { "clean → durable p50 / p99" } }
                @for d in &report.datasets {
                    @let rows = d.stages.len().max(1);
                    tr {
                        td rowspan=(rows) { (d.tenant) " / " (d.dataset) }
                        td rowspan=(rows) class=(format!("state-{}", d.state.as_str())) {
                            b { (d.state.as_str()) } br;
                            span.muted { (d.reason) }
                            @if let Some(since) = d.since { br; span.muted { "since " (time(Some(since))) } }
                        }
                        td rowspan=(rows) {
                            @match &d.objective {
                                Some(o) => {
                                    @if let Some(a) = o.max_age_secs { "max age " (a) " s" br; }
                                    @if let Some(p) = o.p99_end_to_end_ms { "p99 " (p) " ms" }
                                }
                                None => { "-" }
                            }
                        }
                        td rowspan=(rows) {
                            @match &d.ingest_to_clean { Some(l) => { (l.p50_ms) " / " (l.p99_ms) " ms" br; span.muted { (l.samples) " records" } } None => { "-" } }
                            @if let Some(l) = &d.ingest_to_raw {
                                br; span.muted title="ingestion to the raw topic's acknowledgement" { "raw ack " (l.p50_ms) " / " (l.p99_ms) " ms" }
                            }
                            @if let Some(s) = &d.event_time_skew {
                                br; span.muted title="ingested_at less the event's own time (event_time)" {
                                    "late " (s.p50_ms) " / " (s.p99_ms) " ms"
                                    @if s.future > 0 { ", " (s.future) " ahead of ingestion" }
                                }
                            }
                        }
                        @match d.stages.first() {
                            Some(st) => { td { (st.stage) " " (st.name) } td.num { (st.lag) } td.num { (age(st.oldest_unread_age_ms)) } td { (st.trend.as_str()) } td { (sparkline(&st.lag_history)) } td.num { (durable(st)) } }
                            None => { td colspan="6" { span.muted { "no stage reads this dataset" } } }
                        }
                    }
                    @for st in d.stages.iter().skip(1) {
                        tr { td { (st.stage) " " (st.name) } td.num { (st.lag) } td.num { (age(st.oldest_unread_age_ms)) } td { (st.trend.as_str()) } td { (sparkline(&st.lag_history)) } td.num { (durable(st)) } }
                    }
                }
            }
            p.muted { "Evaluated " (time(Some(report.evaluated_at))) ". Objectives are declared per dataset in [tenants.T.datasets.D.freshness]: max_age_secs (the oldest record a stage may leave unread) and p99_end_to_end_ms (ingestion to the clean topic). At risk from half the age, 80 % of the latency, or while a stage stalls or falls behind." }
        },
    )
    .into_response()
}

#[derive(Debug, Deserialize)]
struct LookupQuery {
    id: String,
}

async fn group_lookup(Query(q): Query<LookupQuery>) -> Response {
    // Encoded, so any id (even one with a line break) makes a valid Location.
    let id = utf8_percent_encode(q.id.trim(), UNRESERVED);
    Redirect::to(&format!("/console/groups/{id}")).into_response()
}

async fn group(
    State(ops): State<Arc<Ops>>,
    Path(id): Path<String>,
    SignedIn(who): SignedIn,
) -> Response {
    let g = match ops.group(&who, &id).await {
        Ok(g) => g,
        Err(e) => return error_page(&who, &e),
    };
    let lag_bars: Vec<(String, f64)> = g
        .partitions
        .iter()
        .map(|p| (format!("{} / {}", p.topic, p.partition), p.lag as f64))
        .collect();
    page(
        Some(&who),
        &format!("Group {id}"),
        html! {
            p { "Runs: " (g.runs.as_deref().unwrap_or("-")) " · state: " (g.state.as_deref().unwrap_or("unknown")) " · total lag: " b { (g.total_lag) } @if let Some(ms) = g.oldest_unread_age_ms { " · oldest unread record waited " b { (format!("{:.1} s", ms as f64 / 1000.0)) } } }
            @if let Some(n) = &g.note { p.note { (n) } }
            @if let Some(members) = &g.members {
                table { tr { th { "member" } th { "client id" } th { "host" } th { "assigned partitions" } } @for m in members { tr { td { (m.id) } td { (m.client_id) } td { (m.host) } td { @for a in &m.assignment { (a.topic) ": " (a.partitions.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")) br; } } } } }
            }
            h2 { "Lag per partition" }
            table {
                tr { th { "topic" } th { "partition" } th { "committed offset" } th { "high watermark" } th { "lag" } th { "oldest unread waited" } }
                @for p in &g.partitions {
                    tr {
                        td { a href=(format!("/console/topics/{}", p.topic)) { (p.topic) } }
                        td.num { (p.partition) }
                        td.num { (p.committed_offset.map_or_else(|| "none".to_owned(), |c| c.to_string())) }
                        td.num { (p.high_watermark) } td.num { (p.lag) }
                        td.num { (p.oldest_unread_age_ms.map_or_else(|| "-".to_owned(), |ms| format!("{:.1} s", ms as f64 / 1000.0))) }
                    }
                }
            }
            @if !lag_bars.is_empty() { (bars("Lag per partition", &lag_bars)) }
            h2 { "Lag over time" }
            (line("Total lag", "records", &g.lag_history))
            h2 { "Move offsets" }
            (reset_form(&id, None))
            form method="post" action=(format!("/console/groups/{id}/delete")) class="card" {
                "Delete the group and its committed offsets (refused while it has members): "
                button type="submit" { "Delete group" }
            }
        },
    )
    .into_response()
}

/// The reset form: a dry run unless "execute" is ticked; `last` fills it in again.
fn reset_form(group: &str, last: Option<&ResetFields>) -> Markup {
    let to = last.map_or("earliest", |l| l.to.as_str());
    html! {
        form method="post" action=(format!("/console/groups/{group}/reset")) class="card" {
            label { "To " select name="to" {
                @for (v, label) in [("earliest", "earliest record"), ("latest", "latest (skip all)"), ("timestamp", "timestamp (ms)"), ("offset", "offset"), ("shift", "shift by")] {
                    @if v == to { option value=(v) selected { (label) } } @else { option value=(v) { (label) } }
                }
            } }
            " " label { "value " input type="text" name="value" size="14" value=(last.and_then(|l| l.value.clone()).unwrap_or_default()); }
            " " label { "only topic " input type="text" name="topic" size="28" value=(last.and_then(|l| l.topic.clone()).unwrap_or_default()); }
            " " label { input type="checkbox" name="execute" value="1"; " execute (else a dry run)" }
            " " button type="submit" { "Reset offsets" }
            p.muted { "A dry run shows each partition's old and new offset and lag and changes nothing. A reset is refused while the group has members." }
        }
    }
}

/// The reset form as posted.
#[derive(Debug, Deserialize)]
struct ResetFields {
    to: String,
    value: Option<String>,
    topic: Option<String>,
    execute: Option<String>,
}

async fn reset_group(
    State(ops): State<Arc<Ops>>,
    Path(id): Path<String>,
    SignedIn(who): SignedIn,
    Form(fields): Form<ResetFields>,
) -> Response {
    let bad = |message: String| {
        error_page(
            &who,
            &OpsError::new(streamlake_ops::ErrorKind::BadRequest, message),
        )
    };
    let to = match serde_json::from_value::<ResetTo>(serde_json::Value::String(fields.to.clone())) {
        Ok(to) => to,
        Err(_) => return bad(format!("no reset to {:?}", fields.to)),
    };
    let value = match fields
        .value
        .as_deref()
        .map(str::trim)
        .filter(|v| !v.is_empty())
    {
        None => None,
        Some(v) => match v.parse::<i64>() {
            Ok(v) => Some(v),
            Err(_) => return bad(format!("the value {v:?} is not a whole number")),
        },
    };
    let req = ResetRequest {
        to,
        value,
        topic: fields
            .topic
            .as_deref()
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .map(str::to_owned),
        partitions: None,
        dry_run: fields.execute.is_none(),
    };
    match ops.reset_offsets(&who, &id, &req).await {
        Ok(report) => page(
            Some(&who),
            &format!("Group {id}: offsets"),
            html! {
                p { a href=(format!("/console/groups/{id}")) { "← group " (id) } }
                @if report.dry_run {
                    p.note { "Dry run: nothing changed. Tick \"execute\" to make this change." }
                } @else {
                    p.ok { "Offsets reset." }
                }
                table {
                    tr { th { "topic" } th { "partition" } th { "offset" } th { "new offset" } th { "lag" } th { "new lag" } }
                    @for c in &report.partitions {
                        tr {
                            td { (c.topic) } td.num { (c.partition) }
                            td.num { (c.old_offset.map_or_else(|| "none".to_owned(), |o| o.to_string())) }
                            td.num { (c.new_offset) } td.num { (c.lag_before) } td.num { (c.lag_after) }
                        }
                    }
                }
                p { "Total lag: " (report.total_lag_before) " → " b { (report.total_lag_after) } }
                (reset_form(&id, Some(&fields)))
            },
        )
        .into_response(),
        Err(e) => error_page(&who, &e),
    }
}

async fn delete_group(
    State(ops): State<Arc<Ops>>,
    Path(id): Path<String>,
    SignedIn(who): SignedIn,
) -> Response {
    match ops.delete_group(&who, &id).await {
        Ok(_) => page(
            Some(&who),
            &format!("Group {id} deleted"),
            html! { p.ok { "Group " (id) " and its committed offsets were deleted." } p { a href="/console/groups" { "← all groups" } } },
        )
        .into_response(),
        Err(e) => error_page(&who, &e),
    }
}

async fn labs(SignedIn(who): SignedIn) -> Response {
    page(
        Some(&who),
        "Labs",
        html! {
            p { "Each lab runs on this cluster in its own new topics and group, with its defaults, and shows what Kafka guarantees and what it does not. The CLI runs them with options: " code { "streamlake lab --help" } "." }
            @if who != Principal::Admin { p.note { "Running a lab needs the admin token." } }
            table {
                tr { th { "lab" } th { "shows" } th {} }
                @for (name, shows) in streamlake_ops::labs::LABS {
                    tr {
                        td { b { (name) } }
                        td { (shows) }
                        td { form method="post" action=(format!("/console/labs/{name}")) { button type="submit" { "Run" } } }
                    }
                }
            }
        },
    )
    .into_response()
}

async fn run_lab(
    State(ops): State<Arc<Ops>>,
    Path(name): Path<String>,
    SignedIn(who): SignedIn,
) -> Response {
    match ops.run_lab(&who, &name).await {
        Ok(report) => page(
            Some(&who),
            &format!("Lab {name}"),
            html! {
                p { a href="/console/labs" { "← all labs" } }
                (lab_report(&report))
            },
        )
        .into_response(),
        Err(e) => error_page(&who, &e),
    }
}

fn join<T: std::fmt::Display>(items: &[T]) -> String {
    items
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// A lab's report as tables and sentences.
fn lab_report(report: &streamlake_ops::labs::LabReport) -> Markup {
    use streamlake_ops::labs::LabReport;
    match report {
        LabReport::Partitioning(r) => html! {
            p { (r.produced) " keyed messages to " code { (r.topic) } " (" (r.partitions) " partitions), " (r.read_back) " read back." }
            p.ok { "Same key, same partition: " b { (if r.same_key_same_partition { "yes, for every key" } else { "NO" }) } "." }
            table { tr { th { "key" } th { "partition" } th { "offsets" } }
                @for k in &r.keys { tr { td { (k.key) } td { (join(&k.partitions)) } td { (join(&k.offsets)) } } } }
            (bars("Keyed messages per partition", &r.per_partition.iter().map(|p| (format!("partition {}", p.partition), p.keyed as f64)).collect::<Vec<_>>()))
            p { "Keyless messages per partition: " (r.per_partition.iter().map(|p| format!("p{}: {}", p.partition, p.keyless)).collect::<Vec<_>>().join(", ")) " (no key to hash: the producer's partitioner spreads them)." }
            p.muted { (r.clean_up) }
        },
        LabReport::Ordering(r) => html! {
            p { (r.keys) " keys × " (r.per_key) " sequence numbers produced concurrently to " code { (r.topic) } "; " (r.check.records) " read back." }
            @if r.check.per_key_violations.is_empty() {
                p.ok { "Per key: order holds." }
            } @else {
                p.error { "Per key: " (r.check.per_key_violations.len()) " violation(s)." }
                table { tr { th { "key" } th { "expected" } th { "got" } th { "partition" } th { "offset" } th { "previous offset" } }
                    @for v in &r.check.per_key_violations { tr { td { (v.key) } td { (v.expected) } td { (v.got) } td { (v.partition) } td { (v.offset) } td { (v.previous_offset) } } } }
            }
            p { "Across keys: " (r.check.cross_key_inversions) " records were read after a record produced later: Kafka orders a partition, not a topic." }
            p.muted { (r.clean_up) }
        },
        LabReport::Rebalance(r) => html! {
            p { code { (r.topic) } ", " (r.partitions) " partitions, " (r.rate) " records/s; one consumer handles about " (r.consumer_capacity) " records/s." }
            table { tr { th { "change" } th { "assignment" } th { "idle" } th { "rebalance ms" } th { "lag start → end" } th { "lag at end" } }
                @for s in &r.steps { tr {
                    td { (s.change) }
                    td { @for (m, p) in &s.assignment { (m) ": [" (join(p)) "]" br; } }
                    td { (join(&s.idle)) }
                    td { (s.rebalance_ms.map_or_else(|| "did not settle".to_owned(), |ms| ms.to_string())) }
                    td { (s.lag.first().map_or(0, |l| l.total)) " → " (s.lag.last().map_or(0, |l| l.total)) }
                    td { (s.lag.last().map(|l| l.partitions.iter().map(|(p, lag)| format!("p{p}: {lag}")).collect::<Vec<_>>().join(", ")).unwrap_or_default()) }
                } } }
            p.muted { (r.clean_up) }
        },
        LabReport::Semantics(r) => html! {
            p { "The worker process was killed (SIGKILL) " (r.crash_at.as_str()) " in batch " (r.crash_batch) " (batches of " (r.batch) "), then restarted from the committed offsets." }
            table { tr { th { "mode" } th { "crashed" } th { "produced" } th { "processed" } th { "sink rows" } th { "lost" } th { "duplicated" } }
                @for m in &r.modes { tr {
                    td { (m.mode.as_str()) } td { (if m.crashed { "yes" } else { "no" }) } td.num { (m.produced) } td.num { (m.processed) } td.num { (m.sink_rows) }
                    td { (m.lost.len()) @if !m.lost.is_empty() { br; span.muted { (join(&m.lost)) } } }
                    td { (m.duplicated.len()) @if !m.duplicated.is_empty() { br; span.muted { (join(&m.duplicated)) } } }
                } } }
            p.note { "Exactly-once with transactions: " (r.transactions) }
            p.muted { (r.clean_up) }
        },
    }
}

async fn dlq(
    State(ops): State<Arc<Ops>>,
    Path(tenant): Path<String>,
    SignedIn(who): SignedIn,
    Query(q): Query<DeadLetterQuery>,
) -> Response {
    dlq_page(&ops, &who, &tenant, &q, None).await
}

async fn dlq_page(
    ops: &Ops,
    who: &Principal,
    tenant: &str,
    q: &DeadLetterQuery,
    report: Option<Result<ReplayReport, OpsError>>,
) -> Response {
    let list = match ops.dead_letters(who, tenant, q).await {
        Ok(l) => l,
        Err(e) => return error_page(who, &e),
    };
    let action = format!("/console/tenants/{tenant}/dlq/replay");
    page(
        Some(who),
        &format!("Dead letters of {tenant}"),
        html! {
            @match &report {
                Some(Ok(r)) => div.ok {
                    "Replay: " (r.replayed) " written to the raw topic, " (r.dead_lettered) " invalid again, " (r.refused) " refused, " (r.failed) " failed."
                    @if !r.complete { " Partial: the broker stopped delivering with " (r.unread) " records unread; replay all again to continue." }
                    ul { @for x in &r.results { li { "partition " (x.partition) " offset " (x.offset) ": " b { (x.status.as_str()) } @if let Some(t) = &x.written_to { " → " (t) } @if let Some(m) = &x.message { " — " (m) } } } }
                },
                Some(Err(e)) => p.error { (e.message) },
                None => {}
            }
            p {
                "Topic " a href=(format!("/console/topics/{}", list.topic)) { (list.topic) } ": "
                (list.total) " dead letters, " (list.replayed) " replayed. By stage: "
                @for (s, n) in &list.by_stage { span.tag { (s) ": " (n) } " " }
            }
            @if !list.complete {
                p.error { "Partial: the broker stopped delivering before the end of the topic; " (list.unread) " records were not read, so the counts and the list cover only what was." }
            }
            form method="post" action=(action) class="inline" {
                input type="hidden" name="all" value="true";
                button type="submit" { "Replay every dead letter not replayed yet" }
            }
            " "
            a href=(format!("/console/tenants/{tenant}/dlq?pending=true")) { "show only those not replayed" }
            table {
                tr { th { "where" } th { "stage" } th { "reason" } th { "path" } th { "rule" } th { "payload" } th { "replay" } }
                @for d in &list.dead_letters {
                    tr {
                        td { "p" (d.partition) " @" (d.offset) br; span.muted { (time(d.timestamp)) } br; span.muted { (d.dataset.as_deref().unwrap_or("-")) } }
                        td { span.tag { (d.stage.as_deref().unwrap_or("-")) } }
                        td { (d.reason.as_deref().unwrap_or("-")) }
                        td { code { (d.path.as_deref().unwrap_or("")) } }
                        td { (d.rule.as_deref().unwrap_or("-")) }
                        td { pre { (d.payload.as_deref().unwrap_or("")) } }
                        td {
                            @if let Some(r) = &d.replayed {
                                "replayed " (r.at) br; "→ " (r.to)
                            } @else {
                                form method="post" action=(action) {
                                    input type="hidden" name="partition" value=(d.partition);
                                    input type="hidden" name="offset" value=(d.offset);
                                    textarea name="payload" rows="3" cols="32" placeholder="corrected JSON (optional; empty replays the original)" {}
                                    br; button type="submit" { "Replay" }
                                }
                            }
                        }
                    }
                }
            }
        },
    )
    .into_response()
}

#[derive(Debug, Deserialize)]
struct ReplayForm {
    partition: Option<i32>,
    offset: Option<i64>,
    payload: Option<String>,
    all: Option<bool>,
}

async fn replay(
    State(ops): State<Arc<Ops>>,
    Path(tenant): Path<String>,
    SignedIn(who): SignedIn,
    Form(form): Form<ReplayForm>,
) -> Response {
    let req = if form.all == Some(true) {
        Ok(ReplayRequest {
            records: Vec::new(),
            all: true,
        })
    } else {
        match (form.partition, form.offset) {
            (Some(partition), Some(offset)) => {
                let payload = form
                    .payload
                    .as_deref()
                    .map(str::trim)
                    .filter(|p| !p.is_empty());
                match payload
                    .map(serde_json::from_str::<serde_json::Value>)
                    .transpose()
                {
                    Ok(payload) => Ok(ReplayRequest {
                        records: vec![ReplaySelection {
                            partition,
                            offset,
                            payload,
                        }],
                        all: false,
                    }),
                    Err(e) => Err(OpsError::new(
                        streamlake_ops::ErrorKind::BadRequest,
                        format!("the corrected payload is not valid JSON: {e}"),
                    )),
                }
            }
            _ => Err(OpsError::new(
                streamlake_ops::ErrorKind::BadRequest,
                "choose a dead letter (partition and offset) or replay all",
            )),
        }
    };
    let report = match req {
        Ok(req) => ops.replay(&who, &tenant, &req).await,
        Err(e) => Err(e),
    };
    dlq_page(
        &ops,
        &who,
        &tenant,
        &DeadLetterQuery::default(),
        Some(report),
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_session_cookie_is_read_back_and_only_console_pages_follow_sign_in() {
        let response = with_session("abc123", "/console/topics");
        let set = response.headers()[header::SET_COOKIE].to_str().unwrap();
        assert!(
            set.contains("HttpOnly") && set.contains("SameSite=Strict"),
            "{set}"
        );
        let value = set.split(';').next().unwrap();
        let mut headers = HeaderMap::new();
        headers.insert(header::COOKIE, format!("other=1; {value}").parse().unwrap());
        assert_eq!(cookie_session(&headers).as_deref(), Some("abc123"));
        assert_eq!(response.headers()[header::LOCATION], "/console/topics");
        assert_eq!(
            with_session("t", "https://elsewhere.example/").headers()[header::LOCATION],
            "/console"
        );
    }
}
