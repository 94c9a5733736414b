//! Kinds of store and their registry. Each kind lives in its own folder with its config type,
//! its checks and how to open it ([`SinkKind`]); [`SINKS`] lists them. The config loader hands
//! each `[sinks.NAME.KIND]` table to [`SINKS`], and [`run_sink`](crate::run_sink) opens the
//! store through it, so adding a kind is one folder and one line in `KINDS`.

use std::future::Future;
use std::path::Path;
use std::sync::Arc;

use futures::future::BoxFuture;
use serde::de::DeserializeOwned;
use streamlake_config::{ComponentKinds, ComponentSettings, Config, Problem, Sink as SinkConfig};
use streamlake_kafka::{ConsumerOptions, HandlerError, KafkaSettings, Producer, RunStats};
use streamlake_pipeline::supervise;
use tokio_util::sync::CancellationToken;

use crate::sink::{Sink, SinkError, SinkHandler, SinkStats};

/// Every kind this build has. A new kind: its folder, and one line here.
const KINDS: &[&dyn AnyKind] = &[
    &crate::csv::Csv,
    &crate::jsonl::JsonLines,
    #[cfg(feature = "parquet")]
    &crate::parquet::Parquet,
    #[cfg(feature = "postgres")]
    &crate::postgres::Postgres,
];

/// What a store is opened with.
#[derive(Debug, Clone, Copy)]
pub struct OpenContext<'a> {
    /// The data directory, against which relative paths are resolved.
    pub data_dir: &'a Path,
}

/// A kind of store, configured by the table `[sinks.NAME.<NAME>]`.
pub trait SinkKind: Sync + 'static {
    /// The table's key, e.g. `csv`.
    const NAME: &'static str;
    /// The table, read with serde; unknown keys are refused (`deny_unknown_fields`).
    type Config: DeserializeOwned + Send + Sync;
    /// The store it opens.
    type Store: Sink;

    /// Problems the types cannot express (ranges, combinations), as keys below the table.
    fn check(config: &Self::Config) -> Vec<Problem>;

    /// Opens the store; called again after a failure, so a store reconnects by being reopened.
    fn open(
        config: &Self::Config,
        cx: OpenContext<'_>,
    ) -> impl Future<Output = Result<Self::Store, SinkError>> + Send;
}

/// The registry of sink kinds, as the config loader sees it (`section` `sinks`).
#[derive(Debug, Clone, Copy)]
pub struct Sinks;

/// The sink kinds of this build, for [`streamlake_config::load`].
pub static SINKS: Sinks = Sinks;

impl Sinks {
    /// The kinds' names, in registry order.
    pub fn names(&self) -> Vec<&'static str> {
        KINDS.iter().map(|k| k.name()).collect()
    }

    fn find(&self, settings: &ComponentSettings) -> Result<&'static dyn AnyKind, Problem> {
        KINDS
            .iter()
            .copied()
            .find(|k| k.name() == settings.kind)
            .ok_or_else(|| {
                Problem::new(
                    "",
                    format!(
                        "unknown store kind \"{}\"; this build has: {}",
                        settings.kind,
                        self.names().join(", ")
                    ),
                )
            })
    }
}

impl ComponentKinds for Sinks {
    fn section(&self) -> &'static str {
        "sinks"
    }

    fn check(&self, settings: &ComponentSettings) -> Vec<Problem> {
        match self.find(settings) {
            Ok(kind) => kind.check(settings),
            Err(problem) => vec![problem],
        }
    }
}

/// Everything a sink runs with, handed to its kind.
pub(crate) struct Run<'a> {
    pub(crate) config: &'a Config,
    pub(crate) sink: &'a SinkConfig,
    pub(crate) settings: &'a KafkaSettings,
    pub(crate) options: ConsumerOptions,
    pub(crate) producer: &'a Producer,
    pub(crate) stats: &'a Arc<SinkStats>,
    pub(crate) data_dir: &'a Path,
    pub(crate) shutdown: CancellationToken,
}

/// A sink kind with its types erased, so the registry can hold every kind in one list.
pub(crate) trait AnyKind: Sync {
    fn name(&self) -> &'static str;
    fn check(&self, settings: &ComponentSettings) -> Vec<Problem>;
    fn run<'a>(&'a self, run: Run<'a>) -> BoxFuture<'a, Result<RunStats, HandlerError>>;
}

impl<K: SinkKind> AnyKind for K {
    fn name(&self) -> &'static str {
        K::NAME
    }

    fn check(&self, settings: &ComponentSettings) -> Vec<Problem> {
        match settings.parse::<K::Config>() {
            Ok(config) => K::check(&config),
            Err(problem) => vec![problem],
        }
    }

    fn run<'a>(&'a self, run: Run<'a>) -> BoxFuture<'a, Result<RunStats, HandlerError>> {
        Box::pin(async move {
            let store = &run.sink.store;
            let config = store.parse::<K::Config>().map_err(|p| at(store, &p))?;
            if let Some(p) = K::check(&config).first() {
                return Err(at(store, p));
            }
            let cx = OpenContext {
                data_dir: run.data_dir,
            };
            let stats = supervise(
                &run.sink.name,
                run.settings,
                run.options,
                || {
                    let opened = K::open(&config, cx);
                    async move {
                        Ok::<_, HandlerError>(SinkHandler::new(
                            run.config,
                            run.sink,
                            opened.await?,
                            run.producer.clone(),
                            run.stats.clone(),
                        ))
                    }
                },
                run.shutdown,
            )
            .await;
            Ok(stats)
        })
    }
}

/// `problem` named with the table it was found in.
fn at(settings: &ComponentSettings, problem: &Problem) -> HandlerError {
    format!("{}: {}", settings.key_of(problem), problem.problem).into()
}

/// The kind a sink's store names.
pub(crate) fn kind_of(settings: &ComponentSettings) -> Result<&'static dyn AnyKind, HandlerError> {
    SINKS.find(settings).map_err(|p| at(settings, &p))
}
