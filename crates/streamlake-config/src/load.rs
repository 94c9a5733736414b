//! Layering and validation. Each section, tenant and topic is extracted on its own so one bad
//! value does not hide the others; semantic rules then run over everything that was readable.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use figment::providers::{Env, Format, Toml};
use figment::value::{Dict, Value};
use figment::Figment;
use serde::de::DeserializeOwned;
use streamlake_core::{validate_topic_name, DatasetId, TenantId, TopicNaming, TopicRole};

use crate::component::{ComponentKinds, ComponentSettings};
use crate::error::{ConfigError, ConfigErrors};
use crate::model::*;
use crate::pipeline::*;
use crate::sources::*;
use crate::{
    ApiKey, ApiKeySource, Config, Dataset, DatasetRef, Pipeline, Poller, SchemaVersion, Sink,
    Tenant, DEFAULT_DATA_DIR,
};

/// Prefix of environment variables that override configuration keys.
pub const ENV_PREFIX: &str = "STREAMLAKE_";

const SECTIONS: &[&str] = &[
    "data_dir",
    "kafka",
    "broker",
    "http",
    "gateway",
    "admin",
    "naming",
    "topic_defaults",
    "tenants",
    "topics",
    "pipelines",
    "sinks",
    "mqtt",
    "pollers",
    "generators",
];

/// Loads `path`, applies `STREAMLAKE_*` environment overrides and validates the result;
/// components' own tables are checked by the registry in `kinds` that names their section
/// (a section no registry names is left to the component when it is built).
pub fn load(path: &Path, kinds: &[&dyn ComponentKinds]) -> Result<Config, ConfigErrors> {
    if let Err(e) = std::fs::metadata(path) {
        return Err(ConfigErrors(vec![ConfigError {
            origin: path.display().to_string(),
            key: String::new(),
            problem: format!("cannot read the configuration file: {e}"),
        }]));
    }
    let figment = Figment::new()
        .merge(Toml::file_exact(path))
        .merge(env_overrides());
    resolve(&figment, Some(path), kinds)
}

/// Built-in defaults with `STREAMLAKE_*` environment overrides, for running without a file.
pub fn load_defaults(kinds: &[&dyn ComponentKinds]) -> Result<Config, ConfigErrors> {
    let figment = Figment::new().merge(env_overrides());
    resolve(&figment, None, kinds)
}

/// Loads configuration from a TOML string without environment overrides; relative paths are
/// resolved against `base_dir`.
pub fn load_str(
    toml: &str,
    base_dir: &Path,
    kinds: &[&dyn ComponentKinds],
) -> Result<Config, ConfigErrors> {
    let figment = Figment::new().merge(Toml::string(toml));
    let pseudo_file = base_dir.join("<string>");
    resolve(&figment, Some(&pseudo_file), kinds)
}

/// Environment overrides: only variables whose first key segment is a known section, so
/// unrelated `STREAMLAKE_*` variables (e.g. the CLI's `STREAMLAKE_CONFIG`) are not mistaken for
/// configuration.
fn env_overrides() -> Env {
    Env::prefixed(ENV_PREFIX)
        .filter(|key| {
            let first = key.as_str().split("__").next().unwrap_or_default();
            SECTIONS.iter().any(|s| first.eq_ignore_ascii_case(s))
        })
        .split("__")
}

struct Collector<'a> {
    figment: &'a Figment,
    file: String,
    errors: Vec<ConfigError>,
}

impl Collector<'_> {
    /// Records a semantic problem at `key`, attributed to whichever source supplied the key.
    fn push(&mut self, key: &str, problem: impl Into<String>) {
        let origin = self
            .figment
            .find_metadata(key)
            .map(|m| origin_of(m, key))
            .unwrap_or_else(|| self.file.clone());
        self.errors.push(ConfigError {
            origin,
            key: key.to_owned(),
            problem: problem.into(),
        });
    }

    fn push_figment(&mut self, prefix: &str, err: figment::Error) {
        for e in err {
            let key = full_key(prefix, &e.path);
            let origin = e
                .metadata
                .as_ref()
                .map(|m| origin_of(m, &key))
                .unwrap_or_else(|| self.file.clone());
            self.errors.push(ConfigError {
                origin,
                key,
                problem: e.kind.to_string(),
            });
        }
    }

    /// Extracts the section at `key`, or its default when absent or invalid (recording why).
    fn section<T: DeserializeOwned + Default>(&mut self, key: &str) -> T {
        if self.figment.find_value(key).is_err() {
            return T::default();
        }
        match self.figment.extract_inner::<T>(key) {
            Ok(v) => v,
            Err(e) => {
                self.push_figment(key, e);
                T::default()
            }
        }
    }
}

/// The dotted key of an error found under `prefix`. figment reports paths of nested
/// extractions with the prefix's segments after the inner ones (or before, at top level);
/// either way the prefix comes first here.
fn full_key(prefix: &str, path: &[String]) -> String {
    let prefix_segments: Vec<&str> = prefix.split('.').filter(|s| !s.is_empty()).collect();
    let mut inner: Vec<&str> = path.iter().map(String::as_str).collect();
    if inner.ends_with(&prefix_segments) {
        inner.truncate(inner.len() - prefix_segments.len());
    } else if inner.starts_with(&prefix_segments) {
        inner.drain(..prefix_segments.len());
    }
    prefix_segments
        .into_iter()
        .chain(inner)
        .collect::<Vec<_>>()
        .join(".")
}

fn origin_of(meta: &figment::Metadata, key: &str) -> String {
    match &meta.source {
        Some(figment::Source::File(path)) => path.display().to_string(),
        _ if meta.name.contains("environment") => {
            let var: Vec<String> = key.split('.').map(str::to_uppercase).collect();
            format!("environment variable {ENV_PREFIX}{}", var.join("__"))
        }
        _ => meta.name.to_string(),
    }
}

fn resolve(
    figment: &Figment,
    file: Option<&Path>,
    kinds: &[&dyn ComponentKinds],
) -> Result<Config, ConfigErrors> {
    let file_label = file.map_or_else(|| "<config>".to_owned(), |p| p.display().to_string());
    let mut c = Collector {
        figment,
        file: file_label.clone(),
        errors: Vec::new(),
    };

    let root: Dict = match figment.extract() {
        Ok(root) => root,
        Err(e) => {
            // The file could not be parsed at all: nothing else can be checked.
            c.push_figment("", e);
            return Err(ConfigErrors(c.errors));
        }
    };
    for key in root.keys() {
        if !SECTIONS.contains(&key.as_str()) {
            c.push(
                key,
                format!("unknown key; expected one of: {}", SECTIONS.join(", ")),
            );
        }
    }

    let data_dir: PathBuf = match figment.extract_inner::<PathBuf>("data_dir") {
        Ok(p) => p,
        Err(e) if figment.find_value("data_dir").is_ok() => {
            c.push_figment("data_dir", e);
            PathBuf::from(DEFAULT_DATA_DIR)
        }
        Err(_) => PathBuf::from(DEFAULT_DATA_DIR),
    };
    let kafka: KafkaConfig = c.section("kafka");
    let broker: BrokerConfig = c.section("broker");
    let http: HttpConfig = c.section("http");
    if http.max_connections == 0 {
        c.push("http.max_connections", "must be at least 1");
    }
    if http.header_read_timeout_secs == 0 {
        c.push("http.header_read_timeout_secs", "must be at least 1");
    }
    let gateway: GatewayConfig = c.section("gateway");
    let admin: AdminConfig = c.section("admin");
    if admin.max_messages == 0 {
        c.push("admin.max_messages", "must be at least 1");
    }
    if admin.sample_interval_secs == 0 {
        c.push("admin.sample_interval_secs", "must be at least 1");
    }
    let admin_token = secret(&admin.token_env, admin.dev_token.as_deref());
    let mqtt: MqttConfig = c.section("mqtt");
    if mqtt.max_in_flight == 0 {
        c.push("mqtt.max_in_flight", "must be at least 1");
    }
    if mqtt.topic_prefix.is_empty() || mqtt.topic_prefix.contains(['+', '#']) {
        c.push(
            "mqtt.topic_prefix",
            "must be a non-empty topic level without the wildcards + and #",
        );
    }
    check_gateway(&mut c, &gateway);
    let naming: TopicNaming = c.section("naming");
    let topic_defaults: TopicDefaults = c.section("topic_defaults");
    let topics = extract_topics(&mut c);
    let raw_tenants = extract_tenants(&mut c, root.get("tenants"));

    check_kafka(&mut c, &kafka, &broker, &topic_defaults, &topics);
    check_naming(&mut c, &naming);
    check_counts(
        &mut c,
        "topic_defaults",
        Some(topic_defaults.partitions),
        topic_defaults.replication_factor,
    );
    check_topics(&mut c, &topics);

    let base_dir = file
        .and_then(Path::parent)
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf);
    let tenants = resolve_tenants(&mut c, raw_tenants, &naming, &topic_defaults, &base_dir);
    check_topic_collisions(&mut c, &tenants);
    check_shared_keys(&mut c, &tenants, admin_token.as_ref());
    let pipelines = resolve_pipelines(&mut c, root.get("pipelines"), &tenants);
    let sinks = resolve_sinks(&mut c, root.get("sinks"), &tenants);
    for sink in sinks.values() {
        check_component(&mut c, kinds, "sinks", &sink.store);
    }
    for (tenant, t) in &tenants {
        for (id, ds) in &t.datasets {
            let at = format!("tenants.{tenant}.datasets.{id}.processing");
            for step in ds.processing.steps(&at) {
                check_component(&mut c, kinds, "processing", &step);
            }
        }
    }
    let pollers = resolve_pollers(&mut c, root.get("pollers"), &tenants, &base_dir);
    let generators = resolve_generators(&mut c, root.get("generators"), &tenants);

    if !c.errors.is_empty() {
        return Err(ConfigErrors(c.errors));
    }
    Ok(Config {
        file: file.map(Path::to_path_buf),
        data_dir,
        kafka,
        broker,
        http,
        gateway,
        admin,
        admin_token,
        naming,
        topic_defaults,
        tenants,
        topics,
        mqtt,
        generators,
        pollers,
        pipelines,
        sinks,
    })
}

fn extract_topics(c: &mut Collector<'_>) -> Vec<TopicConfig> {
    let Ok(value) = c.figment.find_value("topics") else {
        return Vec::new();
    };
    let Value::Array(_, items) = value else {
        c.push("topics", "must be an array of tables ([[topics]])");
        return Vec::new();
    };
    let mut topics = Vec::new();
    for (i, item) in items.iter().enumerate() {
        match item.deserialize::<TopicConfig>() {
            Ok(t) => topics.push(t),
            Err(e) => c.push_figment(&format!("topics[{i}]"), e),
        }
    }
    topics
}

fn extract_tenants(c: &mut Collector<'_>, raw: Option<&Value>) -> Vec<(String, TenantConfig)> {
    let Some(raw) = raw else {
        return Vec::new();
    };
    let Some(dict) = raw.as_dict() else {
        c.push("tenants", "must be a table of tenants ([tenants.NAME])");
        return Vec::new();
    };
    let mut tenants = Vec::new();
    for name in dict.keys() {
        let key = format!("tenants.{name}");
        if name.contains('.') {
            c.push(&key, "a tenant id must not contain '.'");
            continue;
        }
        match c.figment.extract_inner::<TenantConfig>(&key) {
            Ok(t) => tenants.push((name.clone(), t)),
            Err(e) => c.push_figment(&key, e),
        }
    }
    tenants
}

fn check_kafka(
    c: &mut Collector<'_>,
    kafka: &KafkaConfig,
    broker: &BrokerConfig,
    defaults: &TopicDefaults,
    topics: &[TopicConfig],
) {
    if let Some(servers) = &kafka.bootstrap_servers {
        if servers.trim().is_empty() {
            c.push(
                "kafka.bootstrap_servers",
                "is empty; remove the key to use the managed broker",
            );
        }
        return;
    }
    if broker.startup_timeout_secs == 0 {
        c.push("broker.startup_timeout_secs", "must be at least 1");
    }
    if broker.nodes != 1 && broker.nodes != 3 {
        c.push(
            "broker.nodes",
            format!(
                "is {}; the managed broker runs 1 node, or 3 for a replicated cluster",
                broker.nodes
            ),
        );
    }
    if broker.heap_mb < 128 {
        c.push(
            "broker.heap_mb",
            format!("is {}; a Kafka node needs at least 128 MiB", broker.heap_mb),
        );
    }
    if broker.listen.port() == 0
        || u32::from(broker.listen.port()) + 2 * u32::from(broker.nodes) > 65_536
    {
        c.push(
            "broker.listen",
            format!(
                "port {} leaves no room for {} client and controller ports above it",
                broker.listen.port(),
                2 * broker.nodes
            ),
        );
    }
    if let Some(rf) = defaults
        .replication_factor
        .filter(|rf| *rf > i32::from(broker.nodes))
    {
        c.push(
            "topic_defaults.replication_factor",
            format!(
                "is {rf}, more than the managed broker's {} node(s) (broker.nodes)",
                broker.nodes
            ),
        );
    }
    for (i, t) in topics.iter().enumerate() {
        if let Some(rf) = t
            .replication_factor
            .filter(|rf| *rf > i32::from(broker.nodes))
        {
            c.push(
                &format!("topics[{i}].replication_factor"),
                format!(
                    "is {rf}, more than the managed broker's {} node(s) (broker.nodes)",
                    broker.nodes
                ),
            );
        }
    }
}

fn check_gateway(c: &mut Collector<'_>, g: &GatewayConfig) {
    if g.max_body_bytes == 0 {
        c.push("gateway.max_body_bytes", "must be at least 1");
    }
    if g.max_in_flight_per_tenant == 0 {
        c.push("gateway.max_in_flight_per_tenant", "must be at least 1");
    }
    if g.produce_timeout_ms == 0 {
        c.push("gateway.produce_timeout_ms", "must be at least 1");
    }
    if g.max_in_flight_bytes < g.max_body_bytes {
        c.push(
            "gateway.max_in_flight_bytes",
            format!(
                "is {}, less than gateway.max_body_bytes ({}): a request of the largest size could never be taken",
                g.max_in_flight_bytes, g.max_body_bytes
            ),
        );
    }
    if g.max_events_per_request == 0 {
        c.push("gateway.max_events_per_request", "must be at least 1");
    }
    if g.body_timeout_secs == 0 {
        c.push("gateway.body_timeout_secs", "must be at least 1");
    }
    if g.idempotency_window_secs == 0 {
        c.push(
            "gateway.idempotency_window_secs",
            "must be at least 1 (an Idempotency-Key is remembered this long)",
        );
    }
    if g.producer_service.trim().is_empty() {
        c.push("gateway.producer_service", "must not be empty");
    }
}

fn check_naming(c: &mut Collector<'_>, naming: &TopicNaming) {
    for role in [
        TopicRole::Raw,
        TopicRole::Clean,
        TopicRole::Dlq,
        TopicRole::Replays,
        TopicRole::Idempotency,
    ] {
        let key = match role {
            TopicRole::Raw => "naming.raw",
            TopicRole::Clean => "naming.clean",
            TopicRole::Dlq => "naming.dlq",
            TopicRole::Replays => "naming.replays",
            TopicRole::Idempotency => "naming.idempotency",
        };
        let template = naming.template(role);
        let rest = template.replace("{tenant}", "").replace("{dataset}", "");
        if rest.contains('{') || rest.contains('}') {
            c.push(
                key,
                format!("template \"{template}\" has an unknown placeholder; use {{tenant}} and {{dataset}}"),
            );
        } else if role.per_tenant() && template.contains("{dataset}") {
            c.push(
                key,
                format!(
                    "template \"{template}\" must not use {{dataset}}: the {} topic is per tenant",
                    role.as_str()
                ),
            );
        } else if !role.per_tenant() && !template.contains("{tenant}") {
            c.push(
                key,
                format!("template \"{template}\" must contain {{tenant}} so tenants do not share topics"),
            );
        }
    }
}

/// `api_keys` checked: names unique and not empty, hashes of 64 hex digits.
fn hashed_keys(
    c: &mut Collector<'_>,
    at: &str,
    keys: &[ApiKeyHashConfig],
) -> Vec<crate::HashedKey> {
    let mut out = Vec::new();
    for (i, k) in keys.iter().enumerate() {
        let entry = format!("{at}.api_keys[{i}]");
        if k.name.trim().is_empty() {
            c.push(
                &format!("{entry}.name"),
                "must not be empty: say what the key is for",
            );
        } else if keys[..i].iter().any(|o| o.name == k.name) {
            c.push(
                &format!("{entry}.name"),
                format!("{:?} names another key of this tenant already", k.name),
            );
        }
        let hex = k.sha256.trim();
        let bytes: Option<Vec<u8>> = (hex.len() == 64)
            .then(|| {
                (0..32)
                    .map(|j| u8::from_str_radix(&hex[2 * j..2 * j + 2], 16).ok())
                    .collect()
            })
            .flatten();
        match bytes.and_then(|b| <[u8; 32]>::try_from(b).ok()) {
            Some(sha256) => out.push(crate::HashedKey {
                name: k.name.clone(),
                sha256,
            }),
            None => c.push(
                &format!("{entry}.sha256"),
                "must be the key's SHA-256 as 64 hex digits (streamlake keys hash prints it)",
            ),
        }
    }
    out
}

fn check_quota(c: &mut Collector<'_>, at: &str, q: &QuotaConfig) {
    if q.events_per_sec.is_none() && q.bytes_per_sec.is_none() {
        c.push(
            at,
            "set events_per_sec, bytes_per_sec or both (or leave the table out)",
        );
    }
    if q.events_per_sec == Some(0) {
        c.push(&format!("{at}.events_per_sec"), "must be at least 1");
    }
    if q.bytes_per_sec == Some(0) {
        c.push(&format!("{at}.bytes_per_sec"), "must be at least 1");
    }
    if !(q.burst_secs.is_finite() && q.burst_secs > 0.0 && q.burst_secs <= 3600.0) {
        c.push(
            &format!("{at}.burst_secs"),
            format!("must be above 0 and at most 3600, got {}", q.burst_secs),
        );
    }
}

fn check_counts(c: &mut Collector<'_>, at: &str, partitions: Option<i32>, rf: Option<i32>) {
    if let Some(p) = partitions.filter(|p| *p < 1) {
        c.push(
            &format!("{at}.partitions"),
            format!("is {p}; a topic needs at least 1 partition"),
        );
    }
    if let Some(r) = rf.filter(|r| *r < 1) {
        c.push(
            &format!("{at}.replication_factor"),
            format!("is {r}; the replication factor must be at least 1"),
        );
    }
}

fn check_topics(c: &mut Collector<'_>, topics: &[TopicConfig]) {
    let mut seen = BTreeSet::new();
    for (i, t) in topics.iter().enumerate() {
        let at = format!("topics[{i}]");
        if let Err(e) = validate_topic_name(&t.name) {
            c.push(
                &format!("{at}.name"),
                format!("topic name \"{}\" {e}", t.name),
            );
        }
        if !seen.insert(t.name.as_str()) {
            c.push(
                &format!("{at}.name"),
                format!("topic \"{}\" is declared twice", t.name),
            );
        }
        check_counts(c, &at, t.partitions, t.replication_factor);
        if let Some(ms) = t.retention_ms.filter(|ms| *ms < -1) {
            c.push(
                &format!("{at}.retention_ms"),
                format!("is {ms}; use -1 for unlimited or a positive number of milliseconds"),
            );
        }
    }
}

fn resolve_tenants(
    c: &mut Collector<'_>,
    raw: Vec<(String, TenantConfig)>,
    naming: &TopicNaming,
    defaults: &TopicDefaults,
    base_dir: &Path,
) -> BTreeMap<TenantId, Tenant> {
    let mut tenants = BTreeMap::new();
    for (name, cfg) in raw {
        let at = format!("tenants.{name}");
        let id = match TenantId::new(name.clone()) {
            Ok(id) => id,
            Err(e) => {
                c.push(&at, format!("tenant id \"{name}\" {e}"));
                continue;
            }
        };
        let dlq_topic = cfg
            .dlq_topic
            .clone()
            .unwrap_or_else(|| naming.dlq.replace("{tenant}", id.as_str()));
        check_topic_name(c, &format!("{at}.dlq_topic"), &dlq_topic);
        let replays_topic = naming.replays.replace("{tenant}", id.as_str());
        check_topic_name(c, "naming.replays", &replays_topic);
        let idempotency_topic = naming.idempotency.replace("{tenant}", id.as_str());
        check_topic_name(c, "naming.idempotency", &idempotency_topic);
        let mut datasets = BTreeMap::new();
        for (ds_name, ds) in cfg.datasets {
            let ds_at = format!("{at}.datasets.{ds_name}");
            let ds_id = match DatasetId::new(ds_name.clone()) {
                Ok(d) => d,
                Err(e) => {
                    c.push(&ds_at, format!("dataset id \"{ds_name}\" {e}"));
                    continue;
                }
            };
            if let Some(dataset) =
                resolve_dataset(c, &ds_at, &id, ds_id, ds, naming, defaults, base_dir)
            {
                datasets.insert(dataset.id.clone(), dataset);
            }
        }
        if let Some(q) = &cfg.quota {
            check_quota(c, &format!("{at}.quota"), q);
        }
        let display_name = cfg.display_name.unwrap_or_else(|| id.to_string());
        let api_key = match cfg.api_key_env.as_deref() {
            Some(var) => secret(var, cfg.dev_api_key.as_deref()),
            None => secret("", cfg.dev_api_key.as_deref()),
        };
        tenants.insert(
            id.clone(),
            Tenant {
                id,
                display_name,
                api_key,
                api_key_env: cfg.api_key_env.clone(),
                api_key_hashes: hashed_keys(c, &at, &cfg.api_keys),
                dlq_topic,
                replays_topic,
                idempotency_topic,
                quota: cfg.quota,
                datasets,
            },
        );
    }
    tenants
}

#[allow(clippy::too_many_arguments)]
fn resolve_dataset(
    c: &mut Collector<'_>,
    at: &str,
    tenant: &TenantId,
    id: DatasetId,
    cfg: DatasetConfig,
    naming: &TopicNaming,
    defaults: &TopicDefaults,
    base_dir: &Path,
) -> Option<Dataset> {
    let schemas = schema_versions(c, at, &cfg, base_dir);
    let pointers = cfg.key.pointers();
    if pointers.is_empty() {
        c.push(
            &format!("{at}.key"),
            "a composite key needs at least one JSON pointer",
        );
    }
    for p in pointers {
        if !p.starts_with('/') {
            c.push(
                &format!("{at}.key"),
                format!(
                    "\"{p}\" is not a JSON pointer; write it as \"/{}\"",
                    p.trim_start_matches('/')
                ),
            );
        }
    }
    check_counts(c, at, cfg.partitions, None);
    let raw_topic = cfg
        .raw_topic
        .unwrap_or_else(|| naming.topic(TopicRole::Raw, tenant, &id));
    let clean_topic = cfg
        .clean_topic
        .unwrap_or_else(|| naming.topic(TopicRole::Clean, tenant, &id));
    check_topic_name(c, &format!("{at}.raw_topic"), &raw_topic);
    check_topic_name(c, &format!("{at}.clean_topic"), &clean_topic);
    check_columns(c, &format!("{at}.columns"), &cfg.columns);
    if let Some(q) = &cfg.quota {
        check_quota(c, &format!("{at}.quota"), q);
    }
    if let Some(Err(p)) = cfg.event_time.as_deref().map(json_pointer) {
        c.push(&format!("{at}.event_time"), p);
    }
    if let Some(f) = &cfg.freshness {
        let at = format!("{at}.freshness");
        if f.max_age_secs.is_none() && f.p99_end_to_end_ms.is_none() {
            c.push(
                &at,
                "declares no objective: set max_age_secs, p99_end_to_end_ms or both",
            );
        }
        if f.max_age_secs == Some(0) {
            c.push(&format!("{at}.max_age_secs"), "must be at least 1");
        }
        if f.p99_end_to_end_ms == Some(0) {
            c.push(&format!("{at}.p99_end_to_end_ms"), "must be at least 1");
        }
    }
    Some(Dataset {
        id,
        schemas,
        compatibility: cfg.compatibility,
        key: cfg.key,
        raw_topic,
        clean_topic,
        partitions: cfg.partitions.unwrap_or(defaults.partitions),
        processing: cfg.processing,
        columns: cfg.columns,
        freshness: cfg.freshness,
        event_time: cfg.event_time,
        quota: cfg.quota,
    })
}

/// A dataset's schema versions, oldest first: `schema` (with `schema_version`) or `versions`.
/// Each file must hold JSON that is an object or a boolean; each name is unique and fits a
/// header value.
fn schema_versions(
    c: &mut Collector<'_>,
    at: &str,
    cfg: &DatasetConfig,
    base_dir: &Path,
) -> Vec<SchemaVersion> {
    let listed: Vec<(String, String, &Path)> = match (&cfg.schema, cfg.versions.is_empty()) {
        (Some(schema), true) => vec![(
            format!("{at}.schema"),
            cfg.schema_version.clone().unwrap_or_else(|| "1".to_owned()),
            schema.as_path(),
        )],
        (None, false) => {
            if cfg.schema_version.is_some() {
                c.push(
                    &format!("{at}.schema_version"),
                    "names the version of `schema`; with `versions`, each entry names its own",
                );
            }
            cfg.versions
                .iter()
                .enumerate()
                .map(|(i, v)| {
                    (
                        format!("{at}.versions[{i}]"),
                        v.version.clone(),
                        v.schema.as_path(),
                    )
                })
                .collect()
        }
        (Some(_), false) => {
            c.push(
                at,
                "has both `schema` and `versions`: list every version, the current one last, in `versions`",
            );
            return Vec::new();
        }
        (None, true) => {
            c.push(
                at,
                "has no schema: set `schema = \"FILE\"`, or `versions = [{ version = \"1\", schema = \"FILE\" }, ...]`",
            );
            return Vec::new();
        }
    };
    let mut seen = BTreeSet::new();
    let mut versions = Vec::new();
    for (key, version, file) in listed {
        if version.is_empty()
            || version.len() > 64
            || !version
                .chars()
                .all(|ch| ch.is_ascii_alphanumeric() || matches!(ch, '.' | '_' | '-'))
        {
            c.push(
                &key,
                format!("version \"{version}\" must be 1 to 64 letters, digits, '.', '_' or '-'"),
            );
        } else if !seen.insert(version.clone()) {
            c.push(&key, format!("version \"{version}\" is listed twice"));
        }
        let path = base_dir.join(file);
        let schema_key = if key.ends_with(".schema") {
            key.clone()
        } else {
            format!("{key}.schema")
        };
        match std::fs::read(&path) {
            Err(e) => c.push(
                &schema_key,
                format!("schema file \"{}\" cannot be read: {e}", path.display()),
            ),
            Ok(bytes) => match serde_json::from_slice::<serde_json::Value>(&bytes) {
                Err(e) => c.push(
                    &schema_key,
                    format!("schema file \"{}\" is not valid JSON: {e}", path.display()),
                ),
                Ok(v) if !(v.is_object() || v.is_boolean()) => c.push(
                    &schema_key,
                    format!(
                        "schema file \"{}\" must hold a JSON object (a JSON Schema)",
                        path.display()
                    ),
                ),
                Ok(_) => {}
            },
        }
        versions.push(SchemaVersion { version, path });
    }
    versions
}

fn check_topic_name(c: &mut Collector<'_>, key: &str, name: &str) {
    if let Err(e) = validate_topic_name(name) {
        c.push(key, format!("topic name \"{name}\" {e}"));
    }
}

/// Two tenants must not share a topic: their records would mix and each could read the other's
/// data. Datasets of one tenant may share a topic (e.g. one clean topic for several datasets).
fn check_topic_collisions(c: &mut Collector<'_>, tenants: &BTreeMap<TenantId, Tenant>) {
    let mut owners: BTreeMap<String, (&TenantId, String)> = BTreeMap::new();
    for t in tenants.values() {
        let mut mine = vec![
            (t.dlq_topic.clone(), format!("tenants.{}.dlq_topic", t.id)),
            (t.replays_topic.clone(), "naming.replays".to_owned()),
            (t.idempotency_topic.clone(), "naming.idempotency".to_owned()),
        ];
        for ds in t.datasets.values() {
            let at = format!("tenants.{}.datasets.{}", t.id, ds.id);
            mine.push((ds.raw_topic.clone(), format!("{at}.raw_topic")));
            mine.push((ds.clean_topic.clone(), format!("{at}.clean_topic")));
        }
        for (topic, key) in mine {
            match owners.get(&topic) {
                Some((owner, first)) if *owner != &t.id => c.push(
                    &key,
                    format!("topic \"{topic}\" is already used by another tenant ({first})"),
                ),
                Some(_) => {}
                None => {
                    owners.insert(topic, (&t.id, key));
                }
            }
        }
    }
}

/// A secret from the environment variable `var` when it is set and not empty, else the
/// development value from the file.
fn secret(var: &str, dev: Option<&str>) -> Option<ApiKey> {
    let from_env = (!var.is_empty())
        .then(|| std::env::var(var).ok())
        .flatten()
        .filter(|k| !k.is_empty())
        .map(|k| ApiKey::new(k, ApiKeySource::Environment));
    from_env.or_else(|| {
        dev.filter(|k| !k.is_empty())
            .map(|k| ApiKey::new(k, ApiKeySource::Development))
    })
}

/// A key identifies exactly one tenant; two tenants with one key could write each other's data,
/// and a tenant key equal to the admin token would give that tenant every other's.
fn check_shared_keys(
    c: &mut Collector<'_>,
    tenants: &BTreeMap<TenantId, Tenant>,
    admin_token: Option<&ApiKey>,
) {
    let mut seen: BTreeMap<&str, &TenantId> = BTreeMap::new();
    for t in tenants.values() {
        let same = |a: &ApiKey| {
            t.api_key
                .as_ref()
                .is_some_and(|k| k.expose_secret() == a.expose_secret())
        };
        if admin_token.is_some_and(same) {
            c.push(
                &format!("tenants.{}", t.id),
                "has the admin token as its API key; tenant keys and the admin token must differ",
            );
        }
        let Some(key) = &t.api_key else { continue };
        if let Some(first) = seen.insert(key.expose_secret(), &t.id) {
            c.push(
                &format!("tenants.{}", t.id),
                format!("has the same API key as tenant {first}; every tenant needs its own key"),
            );
        }
    }
}

fn check_pointer(c: &mut Collector<'_>, key: &str, pointer: &str) {
    if let Err(problem) = json_pointer(pointer) {
        c.push(key, problem);
    }
}

/// Whether `pointer` is a JSON pointer (`/field`), and if not, how to write it.
pub fn json_pointer(pointer: &str) -> Result<(), String> {
    if pointer.starts_with('/') {
        Ok(())
    } else {
        Err(format!(
            "\"{pointer}\" is not a JSON pointer; write it as \"/{}\"",
            pointer.trim_start_matches('/')
        ))
    }
}

/// Whether `name` is a plain SQL identifier: letters, digits and `_`, not starting with a digit.
pub fn is_identifier(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn check_columns(c: &mut Collector<'_>, at: &str, columns: &[ColumnConfig]) {
    let mut seen = BTreeSet::new();
    for (i, col) in columns.iter().enumerate() {
        let key = format!("{at}[{i}]");
        if !is_identifier(&col.name) || col.name.len() > 63 {
            c.push(
                &format!("{key}.name"),
                format!(
                    "\"{}\" is not a column name (letters, digits and _, starting with a letter or _, at most 63)",
                    col.name
                ),
            );
        }
        if crate::METADATA_COLUMNS.contains(&col.name.as_str()) {
            c.push(
                &format!("{key}.name"),
                format!(
                    "\"{}\" is a metadata column every sink writes itself",
                    col.name
                ),
            );
        }
        if !seen.insert(col.name.as_str()) {
            c.push(
                &format!("{key}.name"),
                format!("column \"{}\" is declared twice", col.name),
            );
        }
        if let Some(p) = &col.pointer {
            check_pointer(c, &format!("{key}.pointer"), p);
        }
    }
}

/// `[pipelines]` or `[sinks]` as (name, raw value) pairs, with bad names reported.
fn named_tables<'v>(c: &mut Collector<'_>, section: &str, raw: Option<&'v Value>) -> Vec<&'v str> {
    let Some(raw) = raw else {
        return Vec::new();
    };
    let Some(dict) = raw.as_dict() else {
        c.push(section, format!("must be a table ([{section}.NAME])"));
        return Vec::new();
    };
    let mut names = Vec::new();
    for name in dict.keys() {
        let valid = !name.is_empty()
            && name.len() <= 100
            && name
                .chars()
                .all(|ch| ch.is_ascii_alphanumeric() || ch == '-' || ch == '_');
        if valid {
            names.push(name.as_str());
        } else {
            c.push(
                &format!("{section}.{name}"),
                "a name may hold only letters, digits, '-' and '_'",
            );
        }
    }
    names
}

fn resolve_refs(
    c: &mut Collector<'_>,
    at: &str,
    refs: &[String],
    tenants: &BTreeMap<TenantId, Tenant>,
) -> Vec<DatasetRef> {
    if refs.is_empty() {
        c.push(at, "needs at least one dataset (\"TENANT/DATASET\")");
    }
    let mut out = Vec::new();
    for r in refs {
        let Some((t, d)) = r.split_once('/') else {
            c.push(at, format!("\"{r}\" is not \"TENANT/DATASET\""));
            continue;
        };
        let known = tenants
            .iter()
            .find(|(id, _)| id.as_str() == t)
            .and_then(|(_, tenant)| tenant.datasets.keys().find(|id| id.as_str() == d));
        match known {
            Some(dataset) => out.push(DatasetRef {
                tenant: TenantId::new(t.to_owned()).expect("known tenant id"),
                dataset: dataset.clone(),
            }),
            None => c.push(at, format!("unknown dataset \"{r}\"")),
        }
    }
    out
}

fn resolve_pipelines(
    c: &mut Collector<'_>,
    raw: Option<&Value>,
    tenants: &BTreeMap<TenantId, Tenant>,
) -> BTreeMap<String, Pipeline> {
    let mut out = BTreeMap::new();
    let mut owner: BTreeMap<DatasetRef, String> = BTreeMap::new();
    for name in named_tables(c, "pipelines", raw) {
        let at = format!("pipelines.{name}");
        let cfg: PipelineConfig = match c.figment.extract_inner(&at) {
            Ok(p) => p,
            Err(e) => {
                c.push_figment(&at, e);
                continue;
            }
        };
        let datasets = resolve_refs(c, &format!("{at}.datasets"), &cfg.datasets, tenants);
        for d in &datasets {
            if let Some(first) = owner.insert(d.clone(), name.to_owned()) {
                c.push(
                    &format!("{at}.datasets"),
                    format!("dataset \"{d}\" is already processed by pipeline \"{first}\"; its clean topic would get every record twice"),
                );
            }
        }
        if cfg.batch_max_size == 0 {
            c.push(&format!("{at}.batch_max_size"), "must be at least 1");
        }
        // 0 is meaningful for both: a batch takes only what is already fetched, a transaction
        // commits after every batch.
        check_wait(c, &format!("{at}.batch_max_wait_ms"), cfg.batch_max_wait_ms);
        check_wait(
            c,
            &format!("{at}.commit_interval_ms"),
            cfg.commit_interval_ms,
        );
        out.insert(
            name.to_owned(),
            Pipeline {
                name: name.to_owned(),
                datasets,
                group: cfg
                    .group
                    .unwrap_or_else(|| format!("streamlake-process-{name}")),
                batch_max_size: cfg.batch_max_size,
                batch_max_wait: std::time::Duration::from_millis(cfg.batch_max_wait_ms),
                commit_interval: std::time::Duration::from_millis(cfg.commit_interval_ms),
                enabled: cfg.enabled,
                exactly_once: cfg.exactly_once,
            },
        );
    }
    out
}

/// A wait in milliseconds: 0 (none) to a minute.
fn check_wait(c: &mut Collector<'_>, at: &str, ms: u64) {
    if ms > 60_000 {
        c.push(at, format!("is {ms}; must be 0 to 60000 (milliseconds)"));
    }
}

fn resolve_sinks(
    c: &mut Collector<'_>,
    raw: Option<&Value>,
    tenants: &BTreeMap<TenantId, Tenant>,
) -> BTreeMap<String, Sink> {
    let mut out = BTreeMap::new();
    for name in named_tables(c, "sinks", raw) {
        let at = format!("sinks.{name}");
        let cfg: SinkConfig = match c.figment.extract_inner(&at) {
            Ok(p) => p,
            Err(e) => {
                c.push_figment(&at, e);
                continue;
            }
        };
        let datasets = resolve_refs(c, &format!("{at}.datasets"), &cfg.datasets, tenants);
        if cfg.batch_max_size == 0 {
            c.push(&format!("{at}.batch_max_size"), "must be at least 1");
        }
        check_wait(c, &format!("{at}.batch_max_wait_ms"), cfg.batch_max_wait_ms);
        let mut stores = Vec::new();
        for (key, value) in cfg.stores {
            if value.is_object() {
                stores.push((key, value));
            } else {
                c.push(
                    &format!("{at}.{key}"),
                    "unknown key; expected datasets, read, group, batch_max_size, batch_max_wait_ms, enabled, or the store's table ([sinks.NAME.KIND])",
                );
            }
        }
        if stores.len() != 1 {
            let found: Vec<&str> = stores.iter().map(|(k, _)| k.as_str()).collect();
            c.push(
                &at,
                format!(
                    "needs exactly one store table, e.g. [{at}.csv]; found {}",
                    if found.is_empty() {
                        "none".to_owned()
                    } else {
                        found.join(", ")
                    }
                ),
            );
            continue;
        }
        let (kind, table) = stores.pop().expect("one store");
        out.insert(
            name.to_owned(),
            Sink {
                name: name.to_owned(),
                datasets,
                read: cfg.read,
                group: cfg
                    .group
                    .unwrap_or_else(|| format!("streamlake-sink-{name}")),
                batch_max_size: cfg.batch_max_size,
                batch_max_wait: std::time::Duration::from_millis(cfg.batch_max_wait_ms),
                enabled: cfg.enabled,
                store: ComponentSettings::new(kind.clone(), format!("{at}.{kind}"), table),
            },
        );
    }
    out
}

/// Hands a component's table to the registry of its section, if one was given.
fn check_component(
    c: &mut Collector<'_>,
    kinds: &[&dyn ComponentKinds],
    section: &str,
    settings: &ComponentSettings,
) {
    let Some(registry) = kinds.iter().find(|k| k.section() == section) else {
        return;
    };
    for p in registry.check(settings) {
        c.push(&settings.key_of(&p), p.problem);
    }
}

fn resolve_pollers(
    c: &mut Collector<'_>,
    raw: Option<&Value>,
    tenants: &BTreeMap<TenantId, Tenant>,
    base_dir: &Path,
) -> BTreeMap<String, Poller> {
    let mut out = BTreeMap::new();
    for name in named_tables(c, "pollers", raw) {
        let at = format!("pollers.{name}");
        let mut cfg: PollerConfig = match c.figment.extract_inner(&at) {
            Ok(p) => p,
            Err(e) => {
                c.push_figment(&at, e);
                continue;
            }
        };
        if cfg.interval_secs == 0 || cfg.timeout_secs == 0 || cfg.retries == 0 {
            c.push(
                &at,
                "interval_secs, timeout_secs and retries must be at least 1",
            );
        }
        if let Some(file) = &cfg.file {
            let resolved = base_dir.join(file);
            if !resolved.is_file() {
                c.push(
                    &format!("{at}.file"),
                    format!("replay file \"{}\" does not exist", resolved.display()),
                );
            }
            cfg.file = Some(resolved);
        }
        check_pointer(c, &format!("{at}.id_pointer"), &cfg.id_pointer);
        if cfg.outputs.is_empty() {
            c.push(
                &format!("{at}.outputs"),
                "needs at least one output ([pollers.NAME.outputs.\"TENANT/DATASET\"])",
            );
        }
        let mut outputs = Vec::new();
        for (target, fields) in &cfg.outputs {
            let key = format!("{at}.outputs.{target}");
            let refs = resolve_refs(c, &key, std::slice::from_ref(target), tenants);
            for (field, m) in fields {
                let sources = [
                    m.from.is_some(),
                    m.value.is_some(),
                    m.all_values,
                    m.constant.is_some(),
                ]
                .iter()
                .filter(|b| **b)
                .count();
                if sources != 1 {
                    c.push(
                        &format!("{key}.{field}"),
                        "needs exactly one of from, value, all_values, const",
                    );
                }
                if let Some(p) = &m.from {
                    check_pointer(c, &format!("{key}.{field}.from"), p);
                }
            }
            if let Some(r) = refs.into_iter().next() {
                outputs.push((r, fields.clone()));
            }
        }
        out.insert(
            name.to_owned(),
            Poller {
                name: name.to_owned(),
                config: cfg,
                outputs,
            },
        );
    }
    out
}

fn resolve_generators(
    c: &mut Collector<'_>,
    raw: Option<&Value>,
    tenants: &BTreeMap<TenantId, Tenant>,
) -> BTreeMap<String, (GeneratorSourceConfig, DatasetRef)> {
    let mut out = BTreeMap::new();
    for name in named_tables(c, "generators", raw) {
        let at = format!("generators.{name}");
        let cfg: GeneratorSourceConfig = match c.figment.extract_inner(&at) {
            Ok(g) => g,
            Err(e) => {
                c.push_figment(&at, e);
                continue;
            }
        };
        if !(cfg.rate > 0.0 && cfg.rate.is_finite()) {
            c.push(
                &format!("{at}.rate"),
                "must be a positive number of events per second",
            );
        }
        if cfg.keys == 0 {
            c.push(&format!("{at}.keys"), "must be at least 1");
        }
        let refs = resolve_refs(
            c,
            &format!("{at}.dataset"),
            std::slice::from_ref(&cfg.dataset),
            tenants,
        );
        if let Some(r) = refs.into_iter().next() {
            out.insert(name.to_owned(), (cfg, r));
        }
    }
    out
}
