//! JSON helpers shared by processors and sinks: pointer writes and timestamp parsing.

use std::borrow::Cow;
use std::sync::LazyLock;

use chrono::format::{Item, Parsed, StrftimeItems};
use chrono::{DateTime, Utc};
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

/// The reference tokens of a JSON pointer's text after its leading `/` (RFC 6901), unescaped;
/// borrowed unless a token holds an escape.
fn tokens(rest: &str) -> impl Iterator<Item = Cow<'_, str>> {
    rest.split('/').map(|t| {
        if t.contains('~') {
            Cow::Owned(t.replace("~1", "/").replace("~0", "~"))
        } else {
            Cow::Borrowed(t)
        }
    })
}

/// The value at `pointer` in `root`, as [`Value::pointer`] finds it, without allocating per
/// token (it runs for every field of every record).
pub fn get_pointer<'v>(root: &'v Value, pointer: &str) -> Option<&'v Value> {
    if pointer.is_empty() {
        return Some(root);
    }
    let rest = pointer.strip_prefix('/')?;
    tokens(rest).try_fold(root, |cur, token| match cur {
        Value::Object(map) => map.get(token.as_ref()),
        Value::Array(list) => array_index(&token).and_then(|i| list.get(i)),
        _ => None,
    })
}

/// An array index token: digits without a leading zero (RFC 6901).
fn array_index(token: &str) -> Option<usize> {
    if token.starts_with('+') || (token.starts_with('0') && token.len() > 1) {
        return None;
    }
    token.parse().ok()
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
    let mut cur = root;
    let mut walked = tokens(rest).enumerate().peekable();
    while let Some((i, token)) = walked.next() {
        let Value::Object(map) = cur else {
            let at: Vec<Cow<'_, str>> = tokens(rest).take(i).collect();
            return Err(format!("/{} is not an object", at.join("/")));
        };
        if walked.peek().is_none() {
            map.insert(token.into_owned(), new);
            return Ok(());
        }
        if !map.contains_key(token.as_ref()) {
            map.insert(token.clone().into_owned(), Value::Object(Map::new()));
        }
        cur = map
            .get_mut(token.as_ref())
            .expect("present or inserted above");
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
            parse_date_time(s).map_err(|e| format!("\"{s}\" is not \"YYYY-MM-DD HH:MM:SS\": {e}"))
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

/// `YYYY-MM-DD HH:MM:SS`, its format string read once rather than at every parse.
static DATE_TIME: LazyLock<Vec<Item<'static>>> =
    LazyLock::new(|| StrftimeItems::new("%Y-%m-%d %H:%M:%S").collect());

/// Parses `YYYY-MM-DD HH:MM:SS` as UTC.
fn parse_date_time(s: &str) -> Result<DateTime<Utc>, chrono::ParseError> {
    let mut parsed = Parsed::new();
    chrono::format::parse(&mut parsed, s, DATE_TIME.iter())?;
    Ok(parsed.to_naive_datetime_with_offset(0)?.and_utc())
}

/// Parses a timestamp in any supported format: RFC 3339, `YYYY-MM-DD HH:MM:SS` (UTC), or a
/// number of epoch seconds (below 10^11) or milliseconds.
pub fn parse_any_timestamp(value: &Value) -> Result<DateTime<Utc>, String> {
    match value {
        Value::String(s) => DateTime::parse_from_rfc3339(s)
            .map(|t| t.with_timezone(&Utc))
            .or_else(|_| parse_date_time(s))
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
        set_pointer(&mut v, "/b/d~1e/f", json!(4)).unwrap();
        assert_eq!(v["b"]["d/e"]["f"], json!(4));
        let err = set_pointer(&mut v, "/b/c/g", json!(5)).unwrap_err();
        assert_eq!(err, "/b/c is not an object");
    }

    #[test]
    fn get_pointer_finds_what_serde_json_finds() {
        let v = json!({"a": {"b/c": [10, {"d~e": true}]}, "": 1, "n": null});
        for p in [
            "",
            "/a",
            "/a/b~1c",
            "/a/b~1c/0",
            "/a/b~1c/1/d~0e",
            "/",
            "/n",
            "/a/b~1c/01",
            "/a/b~1c/+1",
            "/a/b~1c/2",
            "/a/x",
            "/a/b~1c/0/x",
            "a",
        ] {
            assert_eq!(get_pointer(&v, p), v.pointer(p), "{p}");
        }
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
