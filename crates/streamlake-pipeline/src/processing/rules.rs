//! `rules = [...]`: semantic checks; a record failing one goes to the tenant's dead-letter topic.

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use streamlake_config::{json_pointer, Problem};
use streamlake_core::Violation;

use super::{present, StepKind};
use crate::json::{parse_timestamp, rfc3339, TimestampFormat};

/// One semantic check on one field. At least one of `min`, `max`, `allowed`, `timestamp` is set.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleConfig {
    /// JSON pointer of the field, e.g. `/temperature`.
    pub field: String,
    /// When true a missing or null field passes; otherwise it fails the rule.
    #[serde(default)]
    pub optional: bool,
    /// Smallest accepted number (inclusive).
    pub min: Option<f64>,
    /// Largest accepted number (inclusive).
    pub max: Option<f64>,
    /// The accepted values.
    pub allowed: Option<Vec<Value>>,
    /// The field is a timestamp in this format and must parse.
    pub timestamp: Option<TimestampFormat>,
    /// With `timestamp`: seconds a timestamp may lie in the future (clock skew). Default 300.
    pub max_future_secs: Option<u64>,
    /// With `timestamp`: seconds a timestamp may lie in the past; absent means no limit.
    pub max_age_secs: Option<u64>,
}

/// The `rules` step kind.
#[derive(Debug, Clone, Copy)]
pub struct Rules;

impl StepKind for Rules {
    const NAME: &'static str = "rules";
    type Config = RuleConfig;

    fn check(r: &RuleConfig) -> Vec<Problem> {
        let mut problems = Vec::new();
        if let Err(p) = json_pointer(&r.field) {
            problems.push(Problem::new("field", p));
        }
        if r.min.is_none() && r.max.is_none() && r.allowed.is_none() && r.timestamp.is_none() {
            problems.push(Problem::new(
                "",
                "a rule needs at least one of min, max, allowed, timestamp",
            ));
        }
        if let (Some(min), Some(max)) = (r.min, r.max) {
            if min > max {
                problems.push(Problem::new(
                    "",
                    format!("min ({min}) is greater than max ({max})"),
                ));
            }
        }
        if r.timestamp.is_none() && (r.max_future_secs.is_some() || r.max_age_secs.is_some()) {
            problems.push(Problem::new(
                "",
                "max_future_secs and max_age_secs need timestamp = \"FORMAT\"",
            ));
        }
        problems
    }

    fn apply(r: &RuleConfig, record: &mut Value, now: DateTime<Utc>) -> Result<(), Violation> {
        check(record, r, now)
    }
}

fn check(record: &Value, r: &RuleConfig, now: DateTime<Utc>) -> Result<(), Violation> {
    let Some(value) = present(record, &r.field) else {
        return if r.optional {
            Ok(())
        } else {
            Err(Violation::new(
                &r.field,
                "required",
                format!("{} is missing or null", r.field),
            ))
        };
    };
    if r.min.is_some() || r.max.is_some() {
        let Some(n) = value.as_f64() else {
            let rule = if r.min.is_some() { "min" } else { "max" };
            return Err(Violation::new(
                &r.field,
                rule,
                format!("{} is {value}, not a number", r.field),
            ));
        };
        if let Some(min) = r.min.filter(|min| n < *min) {
            return Err(Violation::new(
                &r.field,
                "min",
                format!("{} is {n}, below the minimum {min}", r.field),
            ));
        }
        if let Some(max) = r.max.filter(|max| n > *max) {
            return Err(Violation::new(
                &r.field,
                "max",
                format!("{} is {n}, above the maximum {max}", r.field),
            ));
        }
    }
    if let Some(allowed) = &r.allowed {
        if !allowed.contains(value) {
            let list: Vec<String> = allowed.iter().map(Value::to_string).collect();
            return Err(Violation::new(
                &r.field,
                "allowed",
                format!("{} is {value}; allowed: {}", r.field, list.join(", ")),
            ));
        }
    }
    if let Some(format) = r.timestamp {
        let t = parse_timestamp(value, format)
            .map_err(|e| Violation::new(&r.field, "timestamp", format!("{}: {e}", r.field)))?;
        let future = Duration::seconds(r.max_future_secs.unwrap_or(300) as i64);
        if t > now + future {
            return Err(Violation::new(
                &r.field,
                "timestamp",
                format!(
                    "{} is {}, more than {}s in the future",
                    r.field,
                    rfc3339(t),
                    future.num_seconds()
                ),
            ));
        }
        if let Some(age) = r.max_age_secs {
            if t < now - Duration::seconds(age as i64) {
                return Err(Violation::new(
                    &r.field,
                    "timestamp",
                    format!("{} is {}, older than {age}s", r.field, rfc3339(t)),
                ));
            }
        }
    }
    Ok(())
}
