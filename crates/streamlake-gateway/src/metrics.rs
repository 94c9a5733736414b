//! Prometheus metrics of the gateway. Label values are bounded: tenant and dataset
//! ids from the configuration (unknown ones are counted as `unknown`), outcomes and status codes
//! from fixed sets; never an error text.

use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, Opts, Registry, TextEncoder,
};

/// The gateway's metrics and their registry.
#[derive(Debug)]
pub(crate) struct Metrics {
    registry: Registry,
    /// Events by tenant, dataset and outcome (`accepted`, `rejected`, `failed`).
    pub(crate) events: IntCounterVec,
    /// Requests by tenant and HTTP status.
    pub(crate) requests: IntCounterVec,
    /// Time from produce to acknowledgement, by tenant.
    pub(crate) produce_latency: HistogramVec,
    /// Requests being handled.
    pub(crate) in_flight: IntGauge,
    /// Records queued in the producer or awaiting acknowledgement, read at scrape time.
    pub(crate) queue_depth: IntGauge,
}

impl Metrics {
    pub(crate) fn new() -> Self {
        let registry = Registry::new_custom(Some("streamlake_gateway".to_owned()), None)
            .expect("constant registry prefix");
        let events = IntCounterVec::new(
            Opts::new("events_total", "Events by tenant, dataset and outcome"),
            &["tenant", "dataset", "outcome"],
        )
        .expect("constant metric definition");
        let requests = IntCounterVec::new(
            Opts::new("requests_total", "Requests by tenant and HTTP status"),
            &["tenant", "status"],
        )
        .expect("constant metric definition");
        let produce_latency = HistogramVec::new(
            HistogramOpts::new(
                "produce_latency_seconds",
                "Time from produce to broker acknowledgement",
            )
            .buckets(vec![
                0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
            ]),
            &["tenant"],
        )
        .expect("constant metric definition");
        let in_flight = IntGauge::new("in_flight_requests", "Requests being handled")
            .expect("constant metric definition");
        let queue_depth = IntGauge::new(
            "producer_queue_depth",
            "Records queued in the producer or awaiting acknowledgement",
        )
        .expect("constant metric definition");
        for c in [
            Box::new(events.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(requests.clone()),
            Box::new(produce_latency.clone()),
            Box::new(in_flight.clone()),
            Box::new(queue_depth.clone()),
        ] {
            if let Err(e) = registry.register(c) {
                tracing::error!(error = %e, "cannot register a gateway metric");
            }
        }
        Self {
            registry,
            events,
            requests,
            produce_latency,
            in_flight,
            queue_depth,
        }
    }

    /// The metrics in Prometheus' text format.
    pub(crate) fn render(&self) -> String {
        let mut out = Vec::new();
        if let Err(e) = TextEncoder::new().encode(&self.registry.gather(), &mut out) {
            tracing::error!(error = %e, "cannot encode metrics");
        }
        String::from_utf8(out).unwrap_or_default()
    }
}
