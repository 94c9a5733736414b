//! JSON helpers shared by processors and sinks: pointer writes and timestamp parsing.

use chrono::{DateTime, NaiveDateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// How a timestamp field is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TimestampFormat {
    /// RFC 3339 with an offset, e.g. `2026-11-23T10:00:00Z`.
    Rfc3339,
    /// `YYYY-MM-DD HH:MM:SS` in UTC, as Sensor.Community writes it.
    DateTime,
    /// Seconds since the Unix epoch (a number).
    EpochSeconds,
    /// Milliseconds since the Unix epoch (a number).
    EpochMillis,
}

/// Writes `new` at `pointer`, creating objects on the way. Fails when a step is not an object
/// (arrays are not written into).
pub fn set_pointer(root: &mut Value, pointer: &str, new: Value) -> Result<(), String> {
    if pointer.is_empty() {
        *root = new;
        return Ok(());
    }
    let Some(rest) = pointer.strip_prefix('/') else {
        return Err(format!("\"{pointer}\" is not a JSON pointer"));
    };
    let tokens: Vec<String> = rest
        .split('/')
        .map(|t| t.replace("~1", "/").replace("~0", "~"))
        .collect();
    let mut cur = root;
    for (i, token) in tokens.iter().enumerate() {
        let Value::Object(map) = cur else {
            let at = tokens[..i].join("/");
            return Err(format!("/{at} is not an object"));
        };
        if i == tokens.len() - 1 {
            map.insert(token.clone(), new);
            return Ok(());
        }
        cur = map
            .entry(token.clone())
            .or_insert_with(|| Value::Object(Map::new()));
    }
    unreachable!("the loop returns at the last token")
}

/// Parses a timestamp written in `format`.
pub fn parse_timestamp(value: &Value, format: TimestampFormat) -> Result<DateTime<Utc>, String> {
    match format {
        TimestampFormat::Rfc3339 => {
            let s = value.as_str().ok_or("expected an RFC 3339 string")?;
            DateTime::parse_from_rfc3339(s)
                .map(|t| t.with_timezone(&Utc))
                .map_err(|e| format!("\"{s}\" is not RFC 3339: {e}"))
        }
        TimestampFormat::DateTime => {
            let s = value.as_str().ok_or("expected \"YYYY-MM-DD HH:MM:SS\"")?;
            NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S")
                .map(|t| t.and_utc())
                .map_err(|e| format!("\"{s}\" is not \"YYYY-MM-DD HH:MM:SS\": {e}"))
        }
        TimestampFormat::EpochSeconds => {
            let n = number(value).ok_or("expected epoch seconds (a number)")?;
            DateTime::from_timestamp_millis((n * 1000.0) as i64)
                .ok_or_else(|| format!("{n} is out of range for epoch seconds"))
        }
        TimestampFormat::EpochMillis => {
            let n = number(value).ok_or("expected epoch milliseconds (a number)")?;
            DateTime::from_timestamp_millis(n as i64)
                .ok_or_else(|| format!("{n} is out of range for epoch milliseconds"))
        }
    }
}

/// Parses a timestamp in any supported format: RFC 3339, `YYYY-MM-DD HH:MM:SS` (UTC), or a
/// number of epoch seconds (below 10^11) or milliseconds.
pub fn parse_any_timestamp(value: &Value) -> Result<DateTime<Utc>, String> {
    match value {
        Value::String(s) => parse_timestamp(value, TimestampFormat::Rfc3339)
            .or_else(|_| parse_timestamp(value, TimestampFormat::DateTime))
            .map_err(|_| format!("\"{s}\" is neither RFC 3339 nor \"YYYY-MM-DD HH:MM:SS\"")),
        Value::Number(_) => {
            let n = number(value).unwrap_or_default();
            if n.abs() < 1e11 {
                parse_timestamp(value, TimestampFormat::EpochSeconds)
            } else {
                parse_timestamp(value, TimestampFormat::EpochMillis)
            }
        }
        other => Err(format!("{other} is not a timestamp")),
    }
}

/// A number, or a string holding one (`"84.76"`).
pub fn number(value: &Value) -> Option<f64> {
    match value {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse::<f64>().ok().filter(|f| f.is_finite()),
        _ => None,
    }
}

/// RFC 3339 UTC with milliseconds, the format of every timestamp StreamLake writes.
pub fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn set_pointer_creates_nested_objects_and_refuses_non_objects() {
        let mut v = json!({"a": 1});
        set_pointer(&mut v, "/b/c", json!(2)).unwrap();
        assert_eq!(v, json!({"a": 1, "b": {"c": 2}}));
        let err = set_pointer(&mut v, "/a/x", json!(3)).unwrap_err();
        assert_eq!(err, "/a is not an object");
    }

    #[test]
    fn timestamps_parse_in_each_format() {
        let want = DateTime::parse_from_rfc3339("2026-11-23T10:00:00Z").unwrap();
        for (v, f) in [
            (json!("2026-11-23T11:00:00+01:00"), TimestampFormat::Rfc3339),
            (json!("2026-11-23 10:00:00"), TimestampFormat::DateTime),
            (json!(1_795_428_000), TimestampFormat::EpochSeconds),
            (json!(1_795_428_000_000_i64), TimestampFormat::EpochMillis),
        ] {
            assert_eq!(parse_timestamp(&v, f).unwrap(), want, "{v} as {f:?}");
            assert_eq!(parse_any_timestamp(&v).unwrap(), want, "{v} detected");
        }
        assert!(
            parse_timestamp(&json!("23.11.2026"), TimestampFormat::Rfc3339)
                .unwrap_err()
                .contains("23.11.2026")
        );
    }
}
