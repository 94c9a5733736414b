//! Event generators: sensor readings (temperature, humidity) and user activity
//! (clicks, views, purchases), at a given rate (or as fast as the broker takes them: heavy
//! load), for a count or a duration, over a given number of distinct keys.

use std::time::Duration;

use serde_json::{json, Value};
use streamlake_core::{DatasetId, TenantId};
use tokio::time::Instant;

use crate::source::{Emitted, Source, SourceError};

/// What a generator produces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `{"sensor_id", "timestamp", "temperature", "humidity", "location"}`, keyed by sensor.
    Sensor,
    /// `{"user_id", "timestamp", "action", "page", "amount"?}`, keyed by user.
    Activity,
}

/// How much and how fast.
#[derive(Debug, Clone)]
pub struct GeneratorConfig {
    /// What to generate.
    pub kind: Kind,
    /// Events per second; `None` generates as fast as events are acknowledged (heavy load).
    pub rate: Option<f64>,
    /// Stop after this many events.
    pub count: Option<u64>,
    /// Stop after this long.
    pub duration: Option<Duration>,
    /// Distinct sensors or users.
    pub keys: u64,
    /// Events handed out per batch (without a rate; with one, a batch is what is due).
    pub batch: usize,
    /// Seed for repeatable values.
    pub seed: Option<u64>,
}

const LOCATIONS: &[&str] = &["lab", "warehouse", "office", "roof", "basement"];
const ACTIONS: &[&str] = &["click", "view", "purchase", "login", "logout"];
const PAGES: &[&str] = &["/", "/products", "/cart", "/checkout", "/account"];

/// Builds events of one kind.
#[derive(Debug)]
pub struct Events {
    kind: Kind,
    keys: u64,
    rng: fastrand::Rng,
}

impl Events {
    /// Events of `kind` over `keys` distinct keys (at least 1).
    pub fn new(kind: Kind, keys: u64, seed: Option<u64>) -> Self {
        Self {
            kind,
            keys: keys.max(1),
            rng: seed.map_or_else(fastrand::Rng::new, fastrand::Rng::with_seed),
        }
    }

    /// The next event.
    pub fn next_event(&mut self) -> Value {
        let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        let key = self.rng.u64(0..self.keys);
        match self.kind {
            Kind::Sensor => json!({
                "sensor_id": format!("sensor-{key}"),
                "timestamp": now,
                "temperature": (self.rng.f64() * 40.0 * 10.0).round() / 10.0 + 5.0,
                "humidity": (self.rng.f64() * 70.0 * 10.0).round() / 10.0 + 20.0,
                "location": LOCATIONS[(key as usize) % LOCATIONS.len()],
            }),
            Kind::Activity => {
                let action = ACTIONS[self.rng.usize(0..ACTIONS.len())];
                let mut v = json!({
                    "user_id": format!("user-{key}"),
                    "timestamp": now,
                    "action": action,
                    "page": PAGES[self.rng.usize(0..PAGES.len())],
                });
                if action == "purchase" {
                    v["amount"] = json!((self.rng.f64() * 200.0 * 100.0).round() / 100.0);
                }
                v
            }
        }
    }
}

/// A generator as a [`Source`]. With a rate, event `i` is due at `start + i / rate`; a batch
/// is everything due, so a slow broker makes batches larger instead of the rate lower.
#[derive(Debug)]
pub struct Generator {
    config: GeneratorConfig,
    tenant: TenantId,
    dataset: DatasetId,
    events: Events,
    start: Option<Instant>,
    emitted: u64,
}

impl Generator {
    /// A generator of events for `tenant`/`dataset`, as configured.
    pub fn new(config: GeneratorConfig, tenant: TenantId, dataset: DatasetId) -> Self {
        let events = Events::new(config.kind, config.keys, config.seed);
        Self {
            config,
            tenant,
            dataset,
            events,
            start: None,
            emitted: 0,
        }
    }

    /// Events handed out so far.
    pub fn emitted(&self) -> u64 {
        self.emitted
    }

    fn remaining(&self, elapsed: Duration) -> u64 {
        if self.config.duration.is_some_and(|d| elapsed >= d) {
            return 0;
        }
        self.config
            .count
            .map_or(u64::MAX, |c| c.saturating_sub(self.emitted))
    }
}

impl Source for Generator {
    type Ack = ();

    fn name(&self) -> &str {
        match self.config.kind {
            Kind::Sensor => "generator-sensor",
            Kind::Activity => "generator-activity",
        }
    }

    async fn poll(&mut self) -> Result<Option<Vec<Emitted<()>>>, SourceError> {
        let start = *self.start.get_or_insert_with(Instant::now);
        let mut n = match self.config.rate {
            None => self.config.batch.max(1) as u64,
            Some(rate) => {
                // Wait until the next event is due, then take everything due by now.
                let due_at = |i: u64| start + Duration::from_secs_f64(i as f64 / rate);
                let next = due_at(self.emitted);
                let sleep_until = match self.config.duration {
                    Some(d) => next.min(start + d),
                    None => next,
                };
                tokio::time::sleep_until(sleep_until).await;
                let due = (start.elapsed().as_secs_f64() * rate).floor() as u64 + 1;
                due.saturating_sub(self.emitted).max(1)
            }
        };
        n = n.min(self.remaining(start.elapsed()));
        if n == 0 {
            return Ok(None);
        }
        let batch = (0..n)
            .map(|_| {
                let bytes = serde_json::to_vec(&self.events.next_event()).expect("JSON encodes");
                Emitted::event(self.tenant.clone(), self.dataset.clone(), bytes)
            })
            .collect();
        self.emitted += n;
        Ok(Some(batch))
    }

    async fn acknowledge(&mut self, _: Vec<()>) {}
}

/// Runs a configured generator (`[generators.NAME]`) until its count is reached or `shutdown`.
pub async fn run_generator(
    name: &str,
    config: &streamlake_config::GeneratorSourceConfig,
    target: &streamlake_config::DatasetRef,
    ingestor: &streamlake_ingest::Ingestor,
    stats: &crate::source::SourceStats,
    shutdown: &tokio_util::sync::CancellationToken,
) -> Result<(), SourceError> {
    let kind = match config.kind {
        streamlake_config::GeneratorKind::Sensor => Kind::Sensor,
        streamlake_config::GeneratorKind::Activity => Kind::Activity,
    };
    let mut generator = Generator::new(
        GeneratorConfig {
            kind,
            rate: Some(config.rate),
            count: config.count,
            duration: None,
            keys: config.keys,
            batch: 1000,
            seed: None,
        },
        target.tenant.clone(),
        target.dataset.clone(),
    );
    tracing::info!(generator = name, dataset = %target, rate = config.rate, keys = config.keys, "generator starting");
    let result = crate::source::drive(&mut generator, ingestor, stats, shutdown).await;
    tracing::info!(
        generator = name,
        emitted = generator.emitted(),
        "generator stopped"
    );
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::Body;
    use std::collections::BTreeSet;

    fn generator(config: GeneratorConfig) -> Generator {
        Generator::new(
            config,
            TenantId::new("t".to_owned()).unwrap(),
            DatasetId::new("d".to_owned()).unwrap(),
        )
    }

    fn config(kind: Kind) -> GeneratorConfig {
        GeneratorConfig {
            kind,
            rate: None,
            count: None,
            duration: None,
            keys: 10,
            batch: 100,
            seed: Some(7),
        }
    }

    #[tokio::test]
    async fn a_count_is_exact_and_keys_have_the_requested_cardinality() {
        let mut g = generator(GeneratorConfig {
            count: Some(1000),
            keys: 25,
            ..config(Kind::Sensor)
        });
        let mut events = Vec::new();
        while let Some(batch) = g.poll().await.unwrap() {
            events.extend(batch.into_iter().map(|e| match e.body {
                Body::Event { bytes, .. } => bytes,
                other => panic!("a generator emits events, not {other:?}"),
            }));
        }
        assert_eq!(events.len(), 1000);
        let keys: BTreeSet<String> = events
            .iter()
            .map(|e| {
                serde_json::from_slice::<Value>(e).unwrap()["sensor_id"]
                    .as_str()
                    .unwrap()
                    .to_owned()
            })
            .collect();
        assert_eq!(
            keys.len(),
            25,
            "all 25 keys appear in 1000 events, no others"
        );
    }

    #[tokio::test]
    async fn the_rate_holds_within_ten_percent_over_two_seconds() {
        let mut g = generator(GeneratorConfig {
            rate: Some(500.0),
            duration: Some(Duration::from_secs(2)),
            ..config(Kind::Activity)
        });
        let started = std::time::Instant::now();
        let mut n = 0;
        while let Some(batch) = g.poll().await.unwrap() {
            n += batch.len();
        }
        let secs = started.elapsed().as_secs_f64();
        let rate = n as f64 / secs;
        assert!((1.9..2.2).contains(&secs), "ran {secs} s");
        assert!(
            (450.0..=550.0).contains(&rate),
            "{n} events in {secs:.2} s = {rate:.0}/s"
        );
    }

    #[test]
    fn activity_events_carry_an_amount_only_for_purchases() {
        let mut e = Events::new(Kind::Activity, 3, Some(1));
        for _ in 0..200 {
            let v = e.next_event();
            assert_eq!(v["action"] == "purchase", v.get("amount").is_some(), "{v}");
            assert!(ACTIONS.contains(&v["action"].as_str().unwrap()));
        }
    }
}
