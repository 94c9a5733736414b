//! Command-line arguments. Each subcommand maps onto a function in `commands`.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// StreamLake: multi-tenant streaming ingestion on Apache Kafka.
#[derive(Debug, Parser)]
#[command(name = "streamlake", version, about, propagate_version = true)]
pub(crate) struct Cli {
    /// Configuration file (TOML). Default: ./streamlake.toml when it exists, else built-in
    /// defaults.
    #[arg(long, short = 'c', global = true, env = "STREAMLAKE_CONFIG")]
    pub(crate) config: Option<PathBuf>,

    /// Kafka bootstrap servers; overrides the configuration (and the managed broker's address).
    #[arg(long, short = 'b', global = true)]
    pub(crate) bootstrap_servers: Option<String>,

    /// More log output (-v debug, -vv trace). RUST_LOG overrides it.
    #[arg(long, short = 'v', global = true, action = clap::ArgAction::Count)]
    pub(crate) verbose: u8,

    /// Threads that run the process's async work (HTTP, MQTT, stages). Default: one per CPU
    /// core but one, at least one: librdkafka's own threads (broker I/O, compression, not
    /// counted here) run beside the pool (docs/GATEWAY.md, "Threads").
    #[arg(
        long,
        global = true,
        env = "STREAMLAKE_WORKER_THREADS",
        value_parser = clap::value_parser!(u16).range(1..=1024)
    )]
    pub(crate) worker_threads: Option<u16>,

    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Start the platform: the managed Apache Kafka (unless a Kafka cluster is configured), then
    /// provision the declared topics; runs until Ctrl-C or SIGTERM.
    Up(UpArgs),
    /// Run only the managed Apache Kafka (one node, or three with --brokers 3) until Ctrl-C or
    /// SIGTERM, for other StreamLake processes or any Kafka client to use.
    Broker(BrokerArgs),
    /// Run the HTTP ingestion gateway alone, against the configured Kafka (or the embedded
    /// broker of a running `up`).
    Gateway,
    /// Check configuration files.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// JSON Schema versions: whether a new version keeps an old one's readers and writers.
    #[command(subcommand)]
    Schema(SchemaCommand),
    /// Inspect and manage topics.
    #[command(subcommand)]
    Topics(TopicsCommand),
    /// Inspect consumer groups, their committed offsets and lag.
    #[command(subcommand)]
    Groups(GroupsCommand),
    /// Produce records from arguments or from standard input (one record per line).
    Produce(ProduceArgs),
    /// Consume records and print key, partition, offset and headers.
    Consume(ConsumeArgs),
    /// The key an event would be written with and the partition it lands on, without writing
    /// it (the Java client's placement unless `[kafka.producer] partitioner` says otherwise).
    Partition(PartitionArgs),
    /// Run one processor pipeline (`[pipelines.NAME]`): raw topics to clean topics, invalid
    /// records to the tenant's dead-letter topic. Processes with the same pipeline share its
    /// partitions.
    Process(StageArgs),
    /// Run one sink (`[sinks.NAME]`): clean topics into CSV files, Parquet tables or PostgreSQL.
    Sink(StageArgs),
    /// Generate sensor readings or user activity into a dataset (validated, keyed and
    /// acknowledged as HTTP events are), with a progress bar and a summary.
    Generate(GenerateArgs),
    /// Serve the admin API (/api) and the web console (/console) alone, against the configured
    /// Kafka (or the managed broker of a running `up`, which serves them itself).
    Console(ConsoleArgs),
    /// Tenants: events in, accepted, rejected, dead-lettered and records per dataset.
    Tenants(TenantsArgs),
    /// Each dataset's freshness: per stage the records left and how long the oldest has
    /// waited, the time from ingestion to the clean topic, and the state against the dataset's
    /// objective. Exits with 2 when a dataset is breached (for cron and CI).
    Freshness(OutputArgs),
    /// API keys for `[tenants.NAME] api_keys`: make a new one, or hash one.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Dead letters of a tenant: list them with their reasons, replay them through validation.
    #[command(subcommand)]
    Dlq(DlqCommand),
    /// Labs: what Kafka guarantees and what it does not, shown on the running system with
    /// numbers. Each works in its own uniquely named topics and groups.
    #[command(subcommand)]
    Lab(LabCommand),
}

#[derive(Debug, Subcommand)]
pub(crate) enum LabCommand {
    /// Keyed messages: each key's partition and offsets, counts per partition, and that a key
    /// always lands in the same partition; the same messages without a key for comparison.
    Partitioning {
        /// Messages of each kind (keyed, keyless).
        #[arg(long, short = 'n', default_value_t = 30)]
        messages: usize,
        /// Keys, as a range (order-100..order-109) or a list (a,b,c); used in turn.
        #[arg(long, default_value = "order-100..order-109")]
        keys: String,
        /// Partitions of the lab's topics.
        #[arg(long, short = 'p', default_value_t = 3)]
        partitions: i32,
        #[command(flatten)]
        output: OutputArgs,
    },
    /// Per-key sequence numbers produced concurrently, consumed and checked: order holds per
    /// key, not across keys; every violation is named with its key and offsets.
    Ordering {
        /// Distinct keys.
        #[arg(long, default_value_t = 6)]
        keys: usize,
        /// Messages per key.
        #[arg(long, default_value_t = 50)]
        per_key: u64,
        /// Partitions of the lab's topic.
        #[arg(long, short = 'p', default_value_t = 3)]
        partitions: i32,
        /// Write one key's sequence numbers 1 and 2 in the wrong order, to see the checker
        /// catch it.
        #[arg(long)]
        inject_out_of_order: bool,
        #[command(flatten)]
        output: OutputArgs,
    },
    /// A consumer group under steady load scaled from one consumer to P+1 and back: the
    /// assignment after each change, rebalance time, lag per partition over time.
    Rebalance {
        /// Partitions of the lab's topic (P).
        #[arg(long, short = 'p', default_value_t = 3)]
        partitions: i32,
        /// Records produced per second.
        #[arg(long, default_value_t = 200)]
        rate: u64,
        /// Milliseconds each consumer spends per record (capacity 1000/work-ms records/s).
        #[arg(long, default_value_t = 8)]
        work_ms: u64,
        /// Seconds each step is observed.
        #[arg(long, default_value_t = 3)]
        step_secs: u64,
        /// Stop at P+1 consumers instead of scaling back down.
        #[arg(long)]
        no_scale_down: bool,
        #[command(flatten)]
        output: OutputArgs,
    },
    /// At-most-once, at-least-once, effectively-once and exactly-once with transactions, the
    /// worker process killed at a chosen point: produced, processed, lost and duplicated, with
    /// the ids.
    Semantics {
        /// Records per mode.
        #[arg(long, short = 'n', default_value_t = 200)]
        records: usize,
        /// Records per batch.
        #[arg(long, default_value_t = 10)]
        batch: usize,
        /// Where the worker is killed.
        #[arg(long, default_value = "during-produce", value_parser = ["after-poll", "during-produce", "after-processing", "before-commit"])]
        crash_at: String,
        /// In which batch (1-based).
        #[arg(long, default_value_t = 5)]
        crash_batch: u64,
        /// Only these modes (repeatable). Default: all four.
        #[arg(long = "mode", value_parser = ["at-most-once", "at-least-once", "effectively-once", "exactly-once-transactions"])]
        modes: Vec<String>,
        #[command(flatten)]
        output: OutputArgs,
    },
    /// `streamlake up` killed (SIGKILL) again and again under HTTP load and restarted at once,
    /// on a Kafka of the lab's own: per stage (raw, dead letters, clean, the Parquet lake,
    /// PostgreSQL) the events expected, lost and duplicated, and the recovery time after each kill.
    Crash {
        /// Kills of `up`.
        #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=50))]
        rounds: u32,
        /// Concurrent HTTP clients, one event per request (one in ten invalid).
        #[arg(long, default_value_t = 4)]
        clients: usize,
        /// Seconds of load before each kill, and after the last.
        #[arg(long, default_value_t = 5)]
        load_secs: u64,
        /// A PostgreSQL URL: adds a PostgreSQL sink (in a schema of its own, dropped after).
        #[arg(long)]
        postgres: Option<String>,
        #[command(flatten)]
        output: OutputArgs,
    },
    /// A broker node killed (SIGKILL) under steady HTTP load on a managed cluster of the lab's
    /// own: every event answered 2xx must be found at its partition and offset with identical
    /// bytes, answers must stay within the produce deadline; prints time without service.
    Failover {
        /// Broker nodes: 3 (replicated: service goes on) or 1 (service stops until the restart).
        #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u16).range(1..=3))]
        nodes: u16,
        /// Partitions of the lab's topic.
        #[arg(long, short = 'p', default_value_t = 6)]
        partitions: i32,
        /// Concurrent HTTP clients, one event per request.
        #[arg(long, default_value_t = 8)]
        clients: usize,
        /// Seconds of load before the kill.
        #[arg(long, default_value_t = 5)]
        before_secs: u64,
        /// Seconds of load after the kill.
        #[arg(long, default_value_t = 20)]
        after_secs: u64,
        /// The gateway's produce deadline in milliseconds.
        #[arg(long, default_value_t = 5000)]
        produce_timeout_ms: u64,
        #[command(flatten)]
        output: OutputArgs,
    },
    /// The semantics lab's worker process (started by `lab semantics`).
    #[command(hide = true)]
    Worker {
        #[arg(long)]
        topic: String,
        #[arg(long)]
        group: String,
        #[arg(long, value_parser = ["at-most-once", "at-least-once", "effectively-once", "exactly-once-transactions"])]
        mode: String,
        #[arg(long)]
        sink: PathBuf,
        #[arg(long)]
        batch: usize,
        #[arg(long, value_parser = ["after-poll", "during-produce", "after-processing", "before-commit"])]
        crash_at: Option<String>,
        #[arg(long, default_value_t = 0)]
        crash_batch: u64,
    },
}

#[derive(Debug, Args)]
pub(crate) struct ConsoleArgs {
    /// Listen address. Default: `http.listen`.
    #[arg(long)]
    pub(crate) listen: Option<std::net::SocketAddr>,
}

#[derive(Debug, Args)]
pub(crate) struct PartitionArgs {
    /// Tenant id.
    pub(crate) tenant: String,
    /// Dataset.
    pub(crate) dataset: String,
    /// One JSON event; its key is taken as ingestion takes it.
    #[arg(required_unless_present = "key", conflicts_with = "key")]
    pub(crate) event: Option<String>,
    /// The key itself, instead of an event.
    #[arg(long)]
    pub(crate) key: Option<String>,
    #[command(flatten)]
    pub(crate) output: OutputArgs,
}

#[derive(Debug, Args)]
pub(crate) struct TenantsArgs {
    /// One tenant. Default: every tenant.
    pub(crate) tenant: Option<String>,
    #[command(flatten)]
    pub(crate) output: OutputArgs,
}

#[derive(Debug, Subcommand)]
pub(crate) enum DlqCommand {
    /// A tenant's dead letters, newest first, with reason, path, rule, stage and replay state.
    List {
        /// Tenant id.
        tenant: String,
        /// Most dead letters shown.
        #[arg(long, short = 'n', default_value_t = 20)]
        limit: usize,
        /// Only those not replayed yet.
        #[arg(long)]
        pending: bool,
        #[command(flatten)]
        output: OutputArgs,
    },
    /// Replay dead letters back through validation: each goes to its raw topic when valid now,
    /// to the dead-letter topic again otherwise, and is never replayed twice.
    Replay {
        /// Tenant id.
        tenant: String,
        /// A dead letter as PARTITION/OFFSET (repeatable).
        #[arg(
            long = "record",
            value_name = "PARTITION/OFFSET",
            required_unless_present = "all"
        )]
        records: Vec<String>,
        /// Every dead letter not replayed yet.
        #[arg(long, conflicts_with_all = ["records", "payload"])]
        all: bool,
        /// A corrected payload (a JSON file, `-` for standard input) for the one --record.
        #[arg(long, value_name = "FILE")]
        payload: Option<PathBuf>,
        #[command(flatten)]
        output: OutputArgs,
    },
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub(crate) enum GenerateKind {
    /// Temperature and humidity readings keyed by sensor.
    Sensor,
    /// Clicks, views and purchases keyed by user.
    Activity,
}

#[derive(Debug, Args)]
pub(crate) struct GenerateArgs {
    /// What to generate.
    pub(crate) kind: GenerateKind,
    /// Target as TENANT/DATASET. Default: demo/sensor-data or demo/user-activity (the seed
    /// pipeline example).
    #[arg(long)]
    pub(crate) dataset: Option<String>,
    /// Events per second (default 10).
    #[arg(long, conflicts_with = "heavy")]
    pub(crate) rate: Option<f64>,
    /// Stop after this many events.
    #[arg(long)]
    pub(crate) count: Option<u64>,
    /// Stop after this many seconds. Without --count or --duration-secs: until Ctrl-C.
    #[arg(long)]
    pub(crate) duration_secs: Option<u64>,
    /// Distinct sensors or users (key cardinality).
    #[arg(long, default_value_t = 50)]
    pub(crate) keys: u64,
    /// Heavy load: no rate limit, as fast as the broker acknowledges.
    #[arg(long)]
    pub(crate) heavy: bool,
}

#[derive(Debug, Args)]
pub(crate) struct StageArgs {
    /// Name under `[pipelines]` (process) or `[sinks]` (sink); optional when only one is
    /// configured.
    #[arg(long, short = 'p')]
    pub(crate) pipeline: Option<String>,
    /// This process's name in the stage's consumer group, kept across restarts (Kafka's static
    /// membership, `group.instance.id`): restarted with the same name, it takes its partitions
    /// back at once instead of waiting for the group to drop its previous run (the session
    /// timeout, 45 s). Each process of a group needs its own name. Without it, membership is
    /// dynamic.
    #[arg(long, value_name = "NAME")]
    pub(crate) instance_id: Option<String>,
}

#[derive(Debug, Args)]
pub(crate) struct UpArgs {
    /// Data directory (managed broker storage, sink files). Overrides `data_dir`.
    #[arg(long)]
    pub(crate) data_dir: Option<PathBuf>,
    /// Nodes of the managed Kafka: 1, or 3 for replication. Overrides `broker.nodes`.
    #[arg(long, value_name = "N")]
    pub(crate) brokers: Option<u16>,
}

#[derive(Debug, Args)]
pub(crate) struct BrokerArgs {
    #[command(flatten)]
    pub(crate) up: UpArgs,
    /// Client address of the first node. Overrides `broker.listen`.
    #[arg(long)]
    pub(crate) listen: Option<std::net::SocketAddr>,
}

#[derive(Debug, Subcommand)]
pub(crate) enum ConfigCommand {
    /// Validate a configuration file; prints every problem and exits non-zero if any.
    Check {
        /// The file to check.
        file: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum SchemaCommand {
    /// Compare JSON Schema versions, oldest first: backward (each new version accepts what the
    /// one before accepted), forward (the one before accepts what the new one accepts) and full,
    /// each incompatible change named by location and rule. Exits 1 when the versions break
    /// --compatibility.
    Check {
        /// Schema files, oldest first (at least two).
        #[arg(required = true, num_args = 2..)]
        files: Vec<PathBuf>,
        /// The mode the versions must keep: none, backward, backward_transitive, forward,
        /// forward_transitive, full or full_transitive.
        #[arg(long, default_value = "backward")]
        compatibility: streamlake_config::Compatibility,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Args)]
pub(crate) struct OutputArgs {
    /// Print JSON instead of a table.
    #[arg(long)]
    pub(crate) json: bool,
}

#[derive(Debug, Subcommand)]
pub(crate) enum TopicsCommand {
    /// List topics with partition counts and record counts.
    List(OutputArgs),
    /// Show a topic's partitions (leader, replicas, ISR, watermarks) and configs.
    Describe {
        /// Topic name.
        name: String,
        #[command(flatten)]
        output: OutputArgs,
    },
    /// Create the topics the configuration declares; report existing ones and drift.
    Provision(OutputArgs),
    /// Create a topic.
    Create {
        /// Topic name.
        name: String,
        /// Partition count.
        #[arg(long, short = 'p', default_value_t = 3)]
        partitions: i32,
        /// Replication factor. Default: the broker's `default.replication.factor` (on the
        /// managed broker, its number of nodes).
        #[arg(long, short = 'r')]
        replication_factor: Option<i32>,
        /// Topic config as KEY=VALUE (repeatable), e.g. retention.ms=86400000.
        #[arg(long = "topic-config", value_name = "KEY=VALUE", value_parser = parse_key_value)]
        configs: Vec<(String, String)>,
    },
    /// How records spread over partitions and keys: counts per partition, skew, top keys, and
    /// warnings for a constant key or too few keys.
    Distribution {
        /// Topic name.
        name: String,
        /// Records read (from the beginning) for the key statistics.
        #[arg(long, default_value_t = 10_000)]
        sample: u64,
        /// Keys listed.
        #[arg(long, default_value_t = 10)]
        top: usize,
        #[command(flatten)]
        output: OutputArgs,
    },
    /// Browse records with key, headers and value: one partition from an offset or a time, or
    /// the newest of every partition; optionally only those matching a filter.
    Messages {
        /// Topic name.
        name: String,
        #[command(flatten)]
        find: FindArgs,
        /// Most records shown.
        #[arg(long, short = 'n', default_value_t = 20)]
        limit: usize,
        #[command(flatten)]
        output: OutputArgs,
    },
    /// Write records to standard output as NDJSON (one record per line, as `messages --json`
    /// shows each), with the same choice of records as `messages`.
    Export {
        /// Topic name.
        name: String,
        #[command(flatten)]
        find: FindArgs,
        /// Most records written.
        #[arg(long, short = 'n', default_value_t = 1000)]
        limit: usize,
    },
    /// Delete a topic. A tenant's topic the platform uses (raw, clean, dead-letter, logs) is
    /// refused without --force.
    Delete {
        /// Topic name.
        name: String,
        /// Delete it even if it is a tenant's topic in use.
        #[arg(long)]
        force: bool,
    },
    /// Set topic-level configs (NAME=VALUE), or remove the topic's own value (--unset NAME)
    /// so the broker's default applies; the others are kept.
    SetConfig {
        /// Topic name.
        name: String,
        /// Configs to set, e.g. retention.ms=3600000.
        #[arg(value_name = "NAME=VALUE", value_parser = parse_key_value)]
        set: Vec<(String, String)>,
        /// Configs to remove from the topic.
        #[arg(long, value_name = "NAME")]
        unset: Vec<String>,
    },
    /// Delete a topic's records before an offset, in one partition or all.
    Purge {
        /// Topic name.
        name: String,
        /// Delete the records before this offset.
        #[arg(long, value_name = "OFFSET")]
        before: i64,
        /// Only this partition. Default: every partition.
        #[arg(long, short = 'p')]
        partition: Option<i32>,
    },
    /// Raise a topic's partition count (Kafka cannot lower it; keys hash to the new partitions
    /// from then on, so per-key order holds only from then on).
    AddPartitions {
        /// Topic name.
        name: String,
        /// The new total partition count.
        #[arg(long, value_name = "N")]
        to: usize,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum KeysCommand {
    /// A new random key and the `api_keys` entry that accepts it (give the key to the tenant,
    /// put the entry in the configuration, then SIGHUP `up`).
    New {
        /// What the key is for, e.g. ci-2026-12.
        #[arg(long, default_value = "new-key")]
        name: String,
    },
    /// The SHA-256 of a key (read from standard input), as `api_keys` holds it.
    Hash,
}

/// Which records `topics messages` and `topics export` read.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct FindArgs {
    /// Partition. Default: every partition.
    #[arg(long, short = 'p')]
    pub(crate) partition: Option<i32>,
    /// First offset. Default: the newest records.
    #[arg(long, short = 'o', conflicts_with = "since")]
    pub(crate) offset: Option<i64>,
    /// Start at the first record at or after this time (RFC 3339, e.g. 2026-12-02T10:00:00Z).
    #[arg(long, value_parser = parse_time)]
    pub(crate) since: Option<i64>,
    /// Only records with this key.
    #[arg(long)]
    pub(crate) key: Option<String>,
    /// Only records with this header: NAME or NAME=VALUE.
    #[arg(long)]
    pub(crate) header: Option<String>,
    /// Only records whose value contains this text.
    #[arg(long)]
    pub(crate) contains: Option<String>,
    /// Only records whose JSON value holds VALUE at POINTER: POINTER=VALUE, e.g. /sensor_id=107.
    #[arg(long, value_name = "POINTER=VALUE")]
    pub(crate) field: Option<String>,
    /// With a filter: records read at most (default 10,000).
    #[arg(long)]
    pub(crate) scan: Option<u64>,
}

impl FindArgs {
    /// The service's query for these arguments and `limit`.
    pub(crate) fn query(&self, limit: usize) -> streamlake_ops::messages::MessageQuery {
        let (pointer, equals) = match self.field.as_deref().map(|f| f.split_once('=')) {
            Some(Some((p, v))) => (Some(p.to_owned()), Some(v.to_owned())),
            // No `=`: the service says what is missing.
            Some(None) => (self.field.clone(), None),
            None => (None, None),
        };
        streamlake_ops::messages::MessageQuery {
            partition: self.partition,
            offset: self.offset,
            timestamp: self.since,
            limit: Some(limit),
            key: self.key.clone(),
            header: self.header.clone(),
            contains: self.contains.clone(),
            pointer,
            equals,
            scan: self.scan,
        }
    }
}

/// `KEY=VALUE`, both trimmed; the key not empty.
fn parse_key_value(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.trim().is_empty() => Ok((k.trim().to_owned(), v.trim().to_owned())),
        _ => Err(format!(
            "expected KEY=VALUE, e.g. retention.ms=86400000, got {s:?}"
        )),
    }
}

fn parse_time(s: &str) -> Result<i64, String> {
    let t = humantime::parse_rfc3339_weak(s)
        .map_err(|e| format!("{s:?} is not an RFC 3339 time (e.g. 2026-12-02T10:00:00Z): {e}"))?;
    let ms = t
        .duration_since(std::time::UNIX_EPOCH)
        .map_err(|_| format!("{s:?} is before 1970"))?
        .as_millis();
    i64::try_from(ms).map_err(|_| format!("{s:?} is too far ahead"))
}

#[derive(Debug, Subcommand)]
pub(crate) enum GroupsCommand {
    /// List consumer groups.
    List(OutputArgs),
    /// Show a group's committed offsets, high watermarks and lag per partition.
    Describe {
        /// Group id.
        group: String,
        /// Only these topics (repeatable). Default: every topic.
        #[arg(long = "topic")]
        topics: Vec<String>,
        #[command(flatten)]
        output: OutputArgs,
    },
    /// Move a group's committed offsets. Shows old -> new offsets and lag per partition and
    /// changes nothing unless --execute is given; refused while the group has members.
    Reset {
        /// Group id.
        group: String,
        /// Where to: earliest, latest, timestamp (--value ms since the epoch), offset (--value)
        /// or shift (--value records, negative goes back).
        #[arg(long, value_enum)]
        to: ResetToArg,
        /// The timestamp, offset or shift that --to needs.
        #[arg(long, allow_hyphen_values = true)]
        value: Option<i64>,
        /// Only this topic. Default: every topic the group has committed offsets on.
        #[arg(long)]
        topic: Option<String>,
        /// Only these partitions of --topic (comma-separated).
        #[arg(long, value_delimiter = ',', requires = "topic")]
        partitions: Option<Vec<i32>>,
        /// Make the change (default: a dry run).
        #[arg(long)]
        execute: bool,
        #[command(flatten)]
        output: OutputArgs,
    },
    /// Delete a group and its committed offsets; refused while it has members.
    Delete {
        /// Group id.
        group: String,
    },
}

/// `groups reset --to`.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub(crate) enum ResetToArg {
    Earliest,
    Latest,
    Timestamp,
    Offset,
    Shift,
}

#[derive(Debug, Args)]
pub(crate) struct ProduceArgs {
    /// Topic to produce to.
    pub(crate) topic: String,
    /// Record values. Without any, each line of standard input is one record.
    pub(crate) values: Vec<String>,
    /// Key of every record.
    #[arg(long, short = 'k')]
    pub(crate) key: Option<String>,
    /// Read `KEY<separator>VALUE` lines (or arguments) and use KEY as the record key.
    #[arg(long, value_name = "SEPARATOR")]
    pub(crate) key_separator: Option<String>,
    /// Header as NAME=VALUE (repeatable).
    #[arg(long = "header", short = 'H', value_name = "NAME=VALUE")]
    pub(crate) headers: Vec<String>,
    #[command(flatten)]
    pub(crate) output: OutputArgs,
}

#[derive(Debug, Args)]
pub(crate) struct ConsumeArgs {
    /// Topic to consume.
    pub(crate) topic: String,
    /// Start at the earliest offset (default: only new records, or the group's position).
    #[arg(long)]
    pub(crate) from_beginning: bool,
    /// Stop after this many records.
    #[arg(long, short = 'n')]
    pub(crate) max_messages: Option<u64>,
    /// Consume as this consumer group and commit what was printed. Without it no offsets are
    /// committed.
    #[arg(long, short = 'g')]
    pub(crate) group: Option<String>,
    /// Stop when no record arrived for this many seconds (default: wait until Ctrl-C).
    #[arg(long, value_name = "SECONDS")]
    pub(crate) idle_timeout: Option<u64>,
    #[command(flatten)]
    pub(crate) output: OutputArgs,
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    #[test]
    fn command_line_definition_is_consistent() {
        super::Cli::command().debug_assert();
    }
}
