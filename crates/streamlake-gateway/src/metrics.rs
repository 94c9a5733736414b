//! Prometheus metrics of the gateway. Label values are bounded: tenant and dataset
//! ids from the configuration (unknown ones are counted as `unknown`), outcomes and status codes
//! from fixed sets; never an error text.

use prometheus::{Encoder, IntCounterVec, IntGauge, Opts, Registry, TextEncoder};

/// Another component's metrics served with the gateway's, and what brings them up to date
/// before a scrape.
pub(crate) type Extra = (Registry, Box<dyn Fn() + Send + Sync>);

/// The gateway's metrics and their registry.
pub(crate) struct Metrics {
    /// Also holds the ingestion core's metrics (events, produce latency).
    pub(crate) registry: Registry,
    /// Requests by tenant and HTTP status.
    pub(crate) requests: IntCounterVec,
    /// Requests being handled.
    pub(crate) in_flight: IntGauge,
    /// Records queued in the producer or awaiting acknowledgement, read at scrape time.
    pub(crate) queue_depth: IntGauge,
    /// Requests refused for a tenant's quota, by tenant and unit (events, bytes).
    pub(crate) over_quota: IntCounterVec,
    /// Other components' registries served on the same `/metrics`.
    pub(crate) extra: std::sync::Mutex<Vec<Extra>>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Metrics {
    pub(crate) fn new() -> Self {
        let registry = Registry::new_custom(Some("streamlake_gateway".to_owned()), None)
            .expect("constant registry prefix");
        let requests = IntCounterVec::new(
            Opts::new("requests_total", "Requests by tenant and HTTP status"),
            &["tenant", "status"],
        )
        .expect("constant metric definition");
        let in_flight = IntGauge::new("in_flight_requests", "Requests being handled")
            .expect("constant metric definition");
        let queue_depth = IntGauge::new(
            "producer_queue_depth",
            "Records queued in the producer or awaiting acknowledgement",
        )
        .expect("constant metric definition");
        let over_quota = IntCounterVec::new(
            Opts::new(
                "over_quota_total",
                "Requests refused for the tenant's quota, by tenant and unit (events, bytes)",
            ),
            &["tenant", "unit"],
        )
        .expect("constant metric definition");
        for c in [
            Box::new(requests.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(in_flight.clone()),
            Box::new(queue_depth.clone()),
            Box::new(over_quota.clone()),
        ] {
            if let Err(e) = registry.register(c) {
                tracing::error!(error = %e, "cannot register a gateway metric");
            }
        }
        Self {
            registry,
            requests,
            in_flight,
            queue_depth,
            over_quota,
            extra: std::sync::Mutex::new(Vec::new()),
        }
    }

    /// The metrics in Prometheus' text format.
    pub(crate) fn render(&self) -> String {
        let mut families = self.registry.gather();
        for (registry, refresh) in self.extra.lock().unwrap_or_else(|e| e.into_inner()).iter() {
            refresh();
            families.extend(registry.gather());
        }
        let mut out = Vec::new();
        if let Err(e) = TextEncoder::new().encode(&families, &mut out) {
            tracing::error!(error = %e, "cannot encode metrics");
        }
        String::from_utf8(out).unwrap_or_default()
    }
}
