//! Per-tenant topic naming: templates with `{tenant}` and `{dataset}` placeholders.

use serde::{Deserialize, Serialize};

use crate::id::{DatasetId, TenantId};

/// Which of a dataset's topics a name is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TopicRole {
    /// Events as accepted by ingestion, bytes unchanged.
    Raw,
    /// Events after processing (validated, normalized, enriched).
    Clean,
    /// The tenant's dead letters, from every stage.
    Dlq,
    /// The tenant's replay log: which dead letters were replayed, and where to (compacted).
    Replays,
    /// The tenant's idempotency keys: each keyed request's claim and answer (compacted).
    Idempotency,
}

impl TopicRole {
    /// The role as configuration and the API spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            TopicRole::Raw => "raw",
            TopicRole::Clean => "clean",
            TopicRole::Dlq => "dlq",
            TopicRole::Replays => "replays",
            TopicRole::Idempotency => "idempotency",
        }
    }

    /// Whether the topic is one per tenant (no `{dataset}` in its template).
    pub fn per_tenant(self) -> bool {
        matches!(
            self,
            TopicRole::Dlq | TopicRole::Replays | TopicRole::Idempotency
        )
    }
}

/// Naming templates. `{tenant}` and `{dataset}` are replaced; the DLQ, the replay log and the
/// idempotency log are per tenant, so their templates have no `{dataset}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TopicNaming {
    /// Template of the raw topic.
    pub raw: String,
    /// Template of the clean topic.
    pub clean: String,
    /// Template of the tenant's dead-letter topic.
    pub dlq: String,
    /// Template of the tenant's replay log.
    pub replays: String,
    /// Template of the tenant's idempotency log.
    pub idempotency: String,
}

impl Default for TopicNaming {
    fn default() -> Self {
        Self {
            raw: "{tenant}.{dataset}.raw".to_owned(),
            clean: "{tenant}.{dataset}.clean".to_owned(),
            dlq: "{tenant}.dlq".to_owned(),
            replays: "{tenant}.dlq.replays".to_owned(),
            idempotency: "{tenant}.idempotency".to_owned(),
        }
    }
}

impl TopicNaming {
    /// The template for `role`.
    pub fn template(&self, role: TopicRole) -> &str {
        match role {
            TopicRole::Raw => &self.raw,
            TopicRole::Clean => &self.clean,
            TopicRole::Dlq => &self.dlq,
            TopicRole::Replays => &self.replays,
            TopicRole::Idempotency => &self.idempotency,
        }
    }

    /// The topic name of `role` for a tenant's dataset.
    pub fn topic(&self, role: TopicRole, tenant: &TenantId, dataset: &DatasetId) -> String {
        self.template(role)
            .replace("{tenant}", tenant.as_str())
            .replace("{dataset}", dataset.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_templates_give_spec_names() {
        let naming = TopicNaming::default();
        let t = TenantId::new("tenant-a").unwrap();
        let d = DatasetId::new("air-quality").unwrap();
        assert_eq!(
            naming.topic(TopicRole::Raw, &t, &d),
            "tenant-a.air-quality.raw"
        );
        assert_eq!(
            naming.topic(TopicRole::Clean, &t, &d),
            "tenant-a.air-quality.clean"
        );
        assert_eq!(naming.topic(TopicRole::Dlq, &t, &d), "tenant-a.dlq");
    }
}
