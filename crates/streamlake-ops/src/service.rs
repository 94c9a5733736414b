//! [`Ops`], the operations service, and the [`Principal`] every call is scoped by.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use streamlake_config::Config;
use streamlake_core::{TenantId, TopicRole};
use streamlake_ingest::{Ingestor, TenantKeys};
use streamlake_kafka::{Admin, KafkaSettings, Producer};
use subtle::ConstantTimeEq;

use crate::error::{ErrorKind, OpsError, OpsResult};
use crate::history::History;
use crate::replays::ReplayLog;

/// Who is asking.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Principal {
    /// The admin token: everything.
    Admin,
    /// A tenant's API key: that tenant's topics, groups and dead letters.
    Tenant(TenantId),
}

impl Principal {
    /// Whether this principal may see `tenant`'s data.
    pub fn may_see(&self, tenant: &TenantId) -> bool {
        match self {
            Principal::Admin => true,
            Principal::Tenant(t) => t == tenant,
        }
    }
}

/// Default number of records a browse returns.
pub const DEFAULT_LIMIT: usize = 20;

/// The operations service.
pub struct Ops {
    pub(crate) config: Config,
    pub(crate) settings: KafkaSettings,
    pub(crate) admin: Admin,
    /// The ingestion core: dead letters are replayed through it.
    pub(crate) ingestor: Arc<Ingestor>,
    /// Tenants' keys.
    pub(crate) keys: TenantKeys,
    pub(crate) producer: Producer,
    pub(crate) history: History,
    /// Each tenant's replay log: which dead letters were replayed.
    replay_logs: BTreeMap<TenantId, Arc<ReplayLog>>,
    /// Groups asked about that the configuration does not name, listed even after the broker
    /// forgot them (an empty group's offsets expire).
    pub(crate) seen_groups: Mutex<BTreeSet<String>>,
    owners: BTreeMap<String, (TenantId, TopicRole)>,
    /// How to start a worker process for the semantics lab.
    pub(crate) lab_worker: Option<Vec<String>>,
    /// Console sessions and one-time sign-in codes.
    pub(crate) sessions: crate::sessions::Sessions,
    /// Each dataset's freshness state as the sampler last saw it change, and since when.
    pub(crate) freshness_seen:
        Mutex<BTreeMap<(TenantId, streamlake_core::DatasetId), crate::freshness::Seen>>,
    /// Freshness notices on their way to `admin.freshness_webhook`, in order.
    pub(crate) notices:
        std::sync::OnceLock<tokio::sync::mpsc::UnboundedSender<crate::freshness::Notice>>,
    /// Each sink running in this process, by name: its clean → durable latencies.
    pub(crate) sink_latency: Mutex<BTreeMap<String, Arc<streamlake_core::LatencyWindows>>>,
}

impl std::fmt::Debug for Ops {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ops")
            .field("bootstrap_servers", &self.settings.bootstrap_servers)
            .finish_non_exhaustive()
    }
}

impl Ops {
    /// The service over `config`'s cluster; dead letters are replayed through `ingestor`.
    pub fn new(
        config: Config,
        settings: KafkaSettings,
        ingestor: Arc<Ingestor>,
    ) -> Result<Self, OpsError> {
        let mut owners = BTreeMap::new();
        for t in config.tenants.values() {
            owners.insert(t.dlq_topic.clone(), (t.id.clone(), TopicRole::Dlq));
            owners.insert(t.replays_topic.clone(), (t.id.clone(), TopicRole::Replays));
            owners.insert(
                t.idempotency_topic.clone(),
                (t.id.clone(), TopicRole::Idempotency),
            );
            for d in t.datasets.values() {
                owners.insert(d.raw_topic.clone(), (t.id.clone(), TopicRole::Raw));
                owners.insert(d.clean_topic.clone(), (t.id.clone(), TopicRole::Clean));
            }
        }
        let producer = Producer::new(&settings)
            .map_err(|e| OpsError::new(ErrorKind::Unavailable, e.to_string()))?
            .with_deadline(Duration::from_millis(config.gateway.produce_timeout_ms));
        let replay_logs = config
            .tenants
            .values()
            .map(|t| (t.id.clone(), ReplayLog::new(t.replays_topic.clone())))
            .collect();
        Ok(Self {
            keys: TenantKeys::from_config(&config),
            admin: Admin::new(&settings)?,
            history: History::new(),
            config,
            settings,
            ingestor,
            producer,
            replay_logs,
            seen_groups: Mutex::new(BTreeSet::new()),
            owners,
            lab_worker: None,
            sessions: Default::default(),
            freshness_seen: Mutex::new(BTreeMap::new()),
            notices: std::sync::OnceLock::new(),
            sink_latency: Mutex::new(BTreeMap::new()),
        })
    }

    /// The configuration in effect.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Who a bearer token belongs to: the admin token, or a tenant's API key.
    pub fn principal(&self, token: &str) -> Option<Principal> {
        // Constant time, as the gateway compares tenant keys.
        let admin = self
            .config
            .admin_token
            .as_ref()
            .is_some_and(|a| bool::from(a.expose_secret().as_bytes().ct_eq(token.as_bytes())));
        if admin {
            return Some(Principal::Admin);
        }
        self.keys
            .lookup(token)
            .map(|t| Principal::Tenant(t.clone()))
    }

    /// The tenant's replay log (every configured tenant has one).
    pub(crate) fn replay_log(&self, tenant: &TenantId) -> Arc<ReplayLog> {
        Arc::clone(&self.replay_logs[tenant])
    }

    pub(crate) fn owner(&self, topic: &str) -> Option<&(TenantId, TopicRole)> {
        self.owners.get(topic)
    }

    pub(crate) fn check_topic(&self, who: &Principal, topic: &str) -> OpsResult<()> {
        plain_name("topic", topic)?;
        // No topic has a name Kafka would refuse: say so, rather than pass the broker's error on.
        streamlake_core::validate_topic_name(topic).map_err(|e| {
            OpsError::new(
                ErrorKind::BadRequest,
                format!("{topic:?} is not a Kafka topic name: it {e}"),
            )
        })?;
        match who {
            Principal::Admin => Ok(()),
            Principal::Tenant(t) => match self.owner(topic) {
                Some((owner, _)) if owner == t => Ok(()),
                _ => Err(OpsError::new(
                    ErrorKind::Forbidden,
                    format!("topic \"{topic}\" is not one of tenant {t}'s topics"),
                )),
            },
        }
    }

    pub(crate) fn check_admin(&self, who: &Principal, what: &str) -> OpsResult<()> {
        match who {
            Principal::Admin => Ok(()),
            Principal::Tenant(t) => Err(OpsError::new(
                ErrorKind::Forbidden,
                format!("{what} needs the admin token; tenant {t}'s key cannot do it"),
            )),
        }
    }

    /// The tenant `tenant` names, if `who` may see it. Another tenant's id is answered exactly
    /// as an unknown one (404, same words), so a tenant's key cannot tell which tenants exist.
    pub(crate) fn check_tenant(&self, who: &Principal, tenant: &str) -> OpsResult<TenantId> {
        self.config
            .tenants
            .keys()
            .find(|t| t.as_str() == tenant)
            .filter(|id| who.may_see(id))
            .cloned()
            .ok_or_else(|| OpsError::new(ErrorKind::NotFound, format!("no tenant \"{tenant}\"")))
    }

    /// The number of records a read returns: `asked`, or the default, within
    /// `admin.max_messages`.
    pub(crate) fn limit(&self, asked: Option<usize>) -> OpsResult<usize> {
        let max = self.config.admin.max_messages;
        match asked.unwrap_or(DEFAULT_LIMIT.min(max)) {
            0 => Err(OpsError::new(
                ErrorKind::BadRequest,
                "limit must be at least 1",
            )),
            n if n > max => Err(OpsError::new(
                ErrorKind::BadRequest,
                format!("limit {n} is over the maximum of {max} (admin.max_messages)"),
            )),
            n => Ok(n),
        }
    }
}

/// A name that reaches the broker must not hold control characters (a NUL cannot even cross
/// into librdkafka): 400, naming it.
pub(crate) fn plain_name(what: &str, name: &str) -> OpsResult<()> {
    match name.chars().position(char::is_control) {
        None => Ok(()),
        Some(at) => Err(OpsError::new(
            ErrorKind::BadRequest,
            format!("the {what} name {name:?} holds a control character at position {at}"),
        )),
    }
}
