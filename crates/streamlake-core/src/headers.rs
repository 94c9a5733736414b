//! Names of the metadata headers attached to every record. Every stage reads and
//! writes them through these constants so a rename happens in one place.

/// Tenant that owns the record.
pub const TENANT: &str = "tenant";
/// Dataset the record belongs to.
pub const DATASET: &str = "dataset";
/// Pinned schema version the record was validated against.
pub const SCHEMA_VERSION: &str = "schema_version";
/// UUID v7 assigned at ingestion; the record's identity through every stage and sink.
pub const INGESTION_ID: &str = "ingestion_id";
/// Component that produced the record.
pub const PRODUCER_SERVICE: &str = "producer_service";
/// RFC 3339 UTC time at which the record was accepted.
pub const INGESTED_AT: &str = "ingested_at";
/// Media type of the payload.
pub const CONTENT_TYPE: &str = "content-type";
/// Dead letter: human-readable reason.
pub const ERROR_REASON: &str = "error.reason";
/// Dead letter: JSON pointer of the failing field.
pub const ERROR_PATH: &str = "error.path";
/// Dead letter: the rule (schema keyword, processor rule) that failed.
pub const ERROR_RULE: &str = "error.rule";
/// Dead letter: the stage that rejected the record.
pub const ERROR_STAGE: &str = "error.stage";
/// RFC 3339 UTC time at which a processor wrote the record to its clean topic.
pub const PROCESSED_AT: &str = "processed_at";
/// Name of the processor pipeline that wrote the record.
pub const PROCESSOR: &str = "processor";
/// Replayed record: the dead letter it was replayed from, as `{dlq_topic}/{partition}/{offset}`.
pub const REPLAY_OF: &str = "replay.of";
/// Replayed record and replay-log entry: RFC 3339 UTC time of the replay.
pub const REPLAY_AT: &str = "replay.at";
/// Entry of a tenant's replay log: `{partition}/{offset}` of the dead letter that was replayed.
/// It keeps a dead letter from being replayed twice. (Dead-letter topics written by earlier
/// versions may hold such records themselves; they are not dead letters.)
pub const REPLAY_MARKER: &str = "replay.marker";
/// Replay-log entry: where the replayed record went, as `{topic}/{partition}/{offset}`.
pub const REPLAY_TO: &str = "replay.to";
