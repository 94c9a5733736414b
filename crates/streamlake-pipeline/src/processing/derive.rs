//! `derive = [...]`: fields derived from others by thresholds, e.g. a sensor `status`.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use streamlake_config::{json_pointer, Problem};
use streamlake_core::Violation;

use super::{present, StepKind};
use crate::json::{number, set_pointer};

/// One band of a threshold derivation: values below `below` get `value`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Band {
    /// Upper bound (exclusive).
    pub below: f64,
    /// The derived value.
    pub value: Value,
}

/// `derive = [{ target = "/status", from = "/temperature", bands = [...], otherwise = "critical" }]`:
/// the first band whose `below` exceeds the input's value gives the target's value.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeriveConfig {
    /// JSON pointer of the derived field.
    pub target: String,
    /// JSON pointer of the numeric input.
    pub from: String,
    /// Bands in ascending order of `below`.
    pub bands: Vec<Band>,
    /// Value when no band matches.
    pub otherwise: Value,
    /// Value when the input is missing or null; absent leaves the target unset.
    pub missing: Option<Value>,
}

/// The `derive` step kind.
#[derive(Debug, Clone, Copy)]
pub struct Derive;

impl StepKind for Derive {
    const NAME: &'static str = "derive";
    type Config = DeriveConfig;

    fn check(d: &DeriveConfig) -> Vec<Problem> {
        let mut problems = Vec::new();
        if let Err(p) = json_pointer(&d.target) {
            problems.push(Problem::new("target", p));
        }
        if let Err(p) = json_pointer(&d.from) {
            problems.push(Problem::new("from", p));
        }
        if d.bands.windows(2).any(|w| w[0].below >= w[1].below) {
            problems.push(Problem::new(
                "bands",
                "bands must be in ascending order of `below`",
            ));
        }
        problems
    }

    fn apply(d: &DeriveConfig, record: &mut Value, _: DateTime<Utc>) -> Result<(), Violation> {
        derive(record, d)
    }
}

fn derive(record: &mut Value, d: &DeriveConfig) -> Result<(), Violation> {
    let value = match present(record, &d.from) {
        None => match &d.missing {
            Some(m) => m.clone(),
            None => return Ok(()),
        },
        Some(v) => {
            let n = number(v).ok_or_else(|| {
                Violation::new(
                    &d.from,
                    "derive",
                    format!("{} is {v}, not a number", d.from),
                )
            })?;
            d.bands
                .iter()
                .find(|b| n < b.below)
                .map_or_else(|| d.otherwise.clone(), |b| b.value.clone())
        }
    };
    set_pointer(record, &d.target, value).map_err(|e| Violation::new(&d.target, "derive", e))
}
