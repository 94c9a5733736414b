//! `normalize = [...]`: conversions applied first, e.g. `"84.76"` → `84.76` or °F → °C.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use streamlake_config::{json_pointer, Problem};
use streamlake_core::Violation;

use super::{present, StepKind};
use crate::json::{number, parse_any_timestamp, rfc3339, set_pointer};

/// A conversion applied by normalize.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Conversion {
    /// A number or a numeric string to a number (`"84.76"` → `84.76`).
    Number,
    /// A number or a numeric string to an integer; refuses fractions.
    Integer,
    /// Any scalar to a string.
    String,
    /// Lower-case a string.
    Lowercase,
    /// Upper-case a string.
    Uppercase,
    /// Trim white space around a string.
    Trim,
    /// Degrees Fahrenheit to degrees Celsius.
    FahrenheitToCelsius,
    /// Kelvin to degrees Celsius.
    KelvinToCelsius,
    /// A timestamp in any [`TimestampFormat`](crate::json::TimestampFormat) to RFC 3339 UTC.
    Rfc3339,
}

/// `normalize = [{ field = "/temp_f", convert = "fahrenheit_to_celsius", target = "/temperature" }]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NormalizeConfig {
    /// JSON pointer of the input field.
    pub field: String,
    /// The conversion.
    pub convert: Conversion,
    /// JSON pointer the result is written to; default: the input field itself.
    pub target: Option<String>,
    /// When true a missing or null field is left alone; otherwise the record is dead-lettered.
    #[serde(default)]
    pub optional: bool,
}

/// The `normalize` step kind.
#[derive(Debug, Clone, Copy)]
pub struct Normalize;

impl StepKind for Normalize {
    const NAME: &'static str = "normalize";
    type Config = NormalizeConfig;

    fn check(n: &NormalizeConfig) -> Vec<Problem> {
        let mut problems = Vec::new();
        if let Err(p) = json_pointer(&n.field) {
            problems.push(Problem::new("field", p));
        }
        if let Some(Err(p)) = n.target.as_deref().map(json_pointer) {
            problems.push(Problem::new("target", p));
        }
        problems
    }

    fn apply(n: &NormalizeConfig, record: &mut Value, _: DateTime<Utc>) -> Result<(), Violation> {
        normalize(record, n)
    }
}

fn normalize(record: &mut Value, n: &NormalizeConfig) -> Result<(), Violation> {
    let rule = format!("normalize.{}", conversion_name(n.convert));
    let Some(value) = present(record, &n.field) else {
        return if n.optional {
            Ok(())
        } else {
            Err(Violation::new(
                &n.field,
                &rule,
                format!("{} is missing", n.field),
            ))
        };
    };
    let fail = |why: String| Violation::new(&n.field, &rule, format!("{}: {why}", n.field));
    let converted = match n.convert {
        Conversion::Number => {
            Value::from(number(value).ok_or_else(|| fail(format!("{value} is not a number")))?)
        }
        Conversion::Integer => {
            let f = number(value).ok_or_else(|| fail(format!("{value} is not a number")))?;
            if f.fract() != 0.0 || f.abs() > 9.0e15 {
                return Err(fail(format!("{value} is not an integer")));
            }
            Value::from(f as i64)
        }
        Conversion::String => match value {
            Value::String(s) => Value::String(s.clone()),
            Value::Number(_) | Value::Bool(_) => Value::String(value.to_string()),
            _ => return Err(fail(format!("{value} is not a scalar"))),
        },
        Conversion::Lowercase | Conversion::Uppercase | Conversion::Trim => {
            let s = value
                .as_str()
                .ok_or_else(|| fail(format!("{value} is not a string")))?;
            Value::String(match n.convert {
                Conversion::Lowercase => s.to_lowercase(),
                Conversion::Uppercase => s.to_uppercase(),
                _ => s.trim().to_owned(),
            })
        }
        Conversion::FahrenheitToCelsius | Conversion::KelvinToCelsius => {
            let f = number(value).ok_or_else(|| fail(format!("{value} is not a number")))?;
            let c = if n.convert == Conversion::FahrenheitToCelsius {
                (f - 32.0) * 5.0 / 9.0
            } else {
                f - 273.15
            };
            Value::from((c * 1000.0).round() / 1000.0)
        }
        Conversion::Rfc3339 => Value::String(rfc3339(parse_any_timestamp(value).map_err(fail)?)),
    };
    let target = n.target.as_deref().unwrap_or(&n.field);
    set_pointer(record, target, converted).map_err(|e| Violation::new(target, &rule, e))
}

fn conversion_name(c: Conversion) -> &'static str {
    match c {
        Conversion::Number => "number",
        Conversion::Integer => "integer",
        Conversion::String => "string",
        Conversion::Lowercase => "lowercase",
        Conversion::Uppercase => "uppercase",
        Conversion::Trim => "trim",
        Conversion::FahrenheitToCelsius => "fahrenheit_to_celsius",
        Conversion::KelvinToCelsius => "kelvin_to_celsius",
        Conversion::Rfc3339 => "rfc3339",
    }
}
