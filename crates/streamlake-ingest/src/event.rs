//! Bodies into events: one JSON value, a JSON array, or NDJSON lines. Each event keeps its
//! original bytes, which are what is produced (ingestion never re-serialises a payload), next to
//! its parsed value for validation: a [`Doc`] borrowed from the body, parsed strictly (an object
//! naming a key twice is refused).

use bytes::Bytes;
use serde_json::value::RawValue;
use streamlake_core::Violation;
use streamlake_schema::Doc;

/// How the body is framed, from its Content-Type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// `application/json`: one value, or an array of events.
    Json,
    /// `application/x-ndjson` (or `application/jsonl`): one event per line.
    Ndjson,
}

impl Framing {
    /// `json` or `ndjson`.
    pub fn as_str(self) -> &'static str {
        match self {
            Framing::Json => "json",
            Framing::Ndjson => "ndjson",
        }
    }

    /// The framing of a Content-Type header value, ignoring parameters such as `charset`.
    pub fn from_content_type(ct: &str) -> Option<Self> {
        let essence = ct
            .split(';')
            .next()
            .unwrap_or_default()
            .trim()
            .to_ascii_lowercase();
        match essence.as_str() {
            "application/json" => Some(Framing::Json),
            "application/x-ndjson"
            | "application/ndjson"
            | "application/jsonl"
            | "application/x-jsonlines" => Some(Framing::Ndjson),
            _ => None,
        }
    }
}

/// One event of a request; its value borrows from the body it was split from.
#[derive(Debug)]
pub struct Event<'a> {
    /// The event's bytes as sent (a slice of the request body, not a copy).
    pub bytes: Bytes,
    /// Its parsed value, or why it is not JSON.
    pub value: Result<Doc<'a>, Violation>,
    /// The `ingestion_id` to use: a source retrying an event keeps its id; `None` makes one.
    pub ingestion_id: Option<String>,
}

/// What a body holds.
#[derive(Debug)]
pub enum Parsed<'a> {
    /// A single JSON value (answered with that event's own status).
    Single(Event<'a>),
    /// A JSON array or NDJSON lines (answered per event).
    Batch(Vec<Event<'a>>),
}

fn not_json(e: &serde_json::Error, what: &str) -> Violation {
    Violation {
        reason: format!("{what} is not valid JSON: {e}"),
        path: String::new(),
        rule: "json".to_owned(),
    }
}

impl<'a> Event<'a> {
    /// One event from its bytes (a source's message).
    pub fn from_bytes(bytes: &'a Bytes) -> Self {
        Self {
            bytes: bytes.clone(),
            value: Doc::parse(bytes).map_err(|e| not_json(&e, "the event")),
            ingestion_id: None,
        }
    }
}

/// Splits a body into events; each event's bytes are a slice of `body`. A JSON body that does
/// not parse is one invalid event.
pub fn parse(body: &Bytes, framing: Framing) -> Parsed<'_> {
    // Where `part` (a subslice of `body`) sits in it.
    let slice = |part: &[u8]| body.slice_ref(part);
    match framing {
        Framing::Json => {
            let trimmed = body.trim_ascii_start();
            if trimmed.first() == Some(&b'[') {
                if let Some(events) = split_array(body) {
                    return Parsed::Batch(events);
                }
                // Not a well-formed array of values: the two-pass parse says what is wrong.
                match serde_json::from_slice::<Vec<&RawValue>>(body) {
                    Ok(items) => {
                        return Parsed::Batch(
                            items
                                .into_iter()
                                .map(|raw| Event {
                                    bytes: slice(raw.get().as_bytes()),
                                    value: Doc::parse(raw.get().as_bytes())
                                        .map_err(|e| not_json(&e, "the event")),
                                    ingestion_id: None,
                                })
                                .collect(),
                        )
                    }
                    Err(e) => {
                        return Parsed::Single(Event {
                            bytes: body.clone(),
                            value: Err(not_json(&e, "the body")),
                            ingestion_id: None,
                        })
                    }
                }
            }
            Parsed::Single(Event {
                bytes: body.clone(),
                value: Doc::parse(body).map_err(|e| not_json(&e, "the body")),
                ingestion_id: None,
            })
        }
        Framing::Ndjson => Parsed::Batch(
            body.split(|b| *b == b'\n')
                .map(|line| line.strip_suffix(b"\r").unwrap_or(line))
                .filter(|line| !line.trim_ascii().is_empty())
                .map(|line| Event {
                    bytes: slice(line),
                    value: Doc::parse(line).map_err(|e| not_json(&e, "the line")),
                    ingestion_id: None,
                })
                .collect(),
        ),
    }
}

/// A JSON array's elements as events, in one pass: each element is parsed into its value and
/// its bytes are the span it was parsed from. `None` when `body` is not a well-formed array of
/// JSON values (including an element nested too deeply).
fn split_array(body: &Bytes) -> Option<Vec<Event<'_>>> {
    let skip_space = |mut at: usize| {
        while body.get(at).is_some_and(u8::is_ascii_whitespace) {
            at += 1;
        }
        at
    };
    let mut at = skip_space(0);
    if body.get(at) != Some(&b'[') {
        return None;
    }
    at = skip_space(at + 1);
    let mut events = Vec::new();
    if body.get(at) == Some(&b']') {
        at += 1;
    } else {
        loop {
            let mut values =
                serde_json::Deserializer::from_slice(&body[at..]).into_iter::<Doc<'_>>();
            let value = values.next()?.ok()?;
            let end = at + values.byte_offset();
            events.push(Event {
                bytes: body.slice(at..end),
                value: Ok(value),
                ingestion_id: None,
            });
            at = skip_space(end);
            match body.get(at) {
                Some(b',') => at = skip_space(at + 1),
                Some(b']') => {
                    at += 1;
                    break;
                }
                _ => return None,
            }
        }
    }
    (skip_space(at) == body.len()).then_some(events)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn array_elements_keep_their_original_bytes() {
        let body = Bytes::from_static(br#"[ {"a": 1,  "b":2} , {"c":3}]"#);
        let Parsed::Batch(events) = parse(&body, Framing::Json) else {
            panic!("expected a batch");
        };
        assert_eq!(&events[0].bytes[..], br#"{"a": 1,  "b":2}"#);
        assert_eq!(&events[1].bytes[..], br#"{"c":3}"#);
    }

    #[test]
    fn the_one_pass_array_split_matches_the_raw_value_split() {
        let well_formed = [
            &b"[]"[..],
            b" [ ] ",
            b"[1]",
            b"[ {\"a\": [1, {\"b\": \"],\"}]} ,\n\t\"x\" , null,true, -1.5e3 ] \n",
        ];
        for body in well_formed {
            let body = Bytes::copy_from_slice(body);
            let events = split_array(&body).expect("a well-formed array");
            let raw: Vec<&RawValue> = serde_json::from_slice(&body).unwrap();
            assert_eq!(events.len(), raw.len());
            for (event, raw) in events.iter().zip(raw) {
                assert_eq!(&event.bytes[..], raw.get().as_bytes());
                let expected: serde_json::Value = serde_json::from_str(raw.get()).unwrap();
                assert_eq!(event.value.as_ref().unwrap().to_value(), expected);
            }
        }
        let malformed = [
            &b"[1,]"[..],
            b"[1 2]",
            b"[1",
            b"[1] x",
            b"[{\"a\":}]",
            b"[,1]",
            b"[01]",
        ];
        for body in malformed {
            assert!(split_array(&Bytes::copy_from_slice(body)).is_none());
            assert!(serde_json::from_slice::<Vec<&RawValue>>(body).is_err());
        }
    }

    #[test]
    fn an_event_naming_a_key_twice_is_invalid_and_its_neighbours_are_not() {
        let body = Bytes::from_static(br#"[{"a":1},{"a":1,"a":2},{"b":3}]"#);
        let Parsed::Batch(events) = parse(&body, Framing::Json) else {
            panic!("expected a batch");
        };
        assert_eq!(events.len(), 3);
        assert!(events[0].value.is_ok() && events[2].value.is_ok());
        let v = events[1].value.as_ref().unwrap_err();
        assert_eq!(v.rule, "json");
        assert!(v.reason.contains("the key \"a\" appears twice"), "{v:?}");
        assert_eq!(&events[1].bytes[..], br#"{"a":1,"a":2}"#);
        let body = Bytes::from_static(br#"{"a":1,"a":2}"#);
        let Parsed::Single(one) = parse(&body, Framing::Json) else {
            panic!("expected one event");
        };
        assert!(one.value.is_err());
    }

    #[test]
    fn ndjson_lines_are_events_and_bad_lines_are_invalid_events() {
        let body = Bytes::from_static(b"{\"a\":1}\r\n\n{oops\n{\"b\":2}\n");
        let Parsed::Batch(events) = parse(&body, Framing::Ndjson) else {
            panic!("expected a batch");
        };
        assert_eq!(events.len(), 3);
        assert_eq!(&events[0].bytes[..], b"{\"a\":1}");
        assert_eq!(events[1].value.as_ref().unwrap_err().rule, "json");
        assert!(events[2].value.is_ok());
    }

    #[test]
    fn deep_nesting_is_an_error_not_a_crash() {
        let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
        let body = Bytes::from(deep.clone());
        let Parsed::Batch(events) = parse(&body, Framing::Json) else {
            panic!("an array is a batch");
        };
        assert!(events[0]
            .value
            .as_ref()
            .unwrap_err()
            .reason
            .contains("recursion limit"));
        let deep_object = format!("{}1{}", "{\"a\":".repeat(100_000), "}".repeat(100_000));
        let body = Bytes::from(deep_object.clone());
        let Parsed::Single(e) = parse(&body, Framing::Json) else {
            panic!("single");
        };
        assert!(e.value.is_err());
    }

    #[test]
    fn content_types_map_to_framings() {
        assert_eq!(
            Framing::from_content_type("application/json; charset=utf-8"),
            Some(Framing::Json)
        );
        assert_eq!(
            Framing::from_content_type("application/x-ndjson"),
            Some(Framing::Ndjson)
        );
        assert_eq!(Framing::from_content_type("text/plain"), None);
    }
}
