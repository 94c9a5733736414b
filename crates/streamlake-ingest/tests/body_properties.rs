//! Properties of the request body parser over generated input: any bytes give events (never a
//! panic), every event's bytes are a slice of the body, a value is accepted exactly as
//! serde_json reads the same bytes, and arrays and NDJSON of generated values split into those
//! values with their own bytes. Cases per property: proptest's default (256), or
//! `PROPTEST_CASES`.

use bytes::Bytes;
use proptest::prelude::*;
use serde_json::Value;
use streamlake_ingest::{parse, Event, Framing, Parsed};

/// JSON values up to four levels deep, with any Unicode in strings and keys.
fn json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("JSON has no NaN or infinity", |f| f.is_finite())
            .prop_map(Value::from),
        ".{0,12}".prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map(".{0,8}", inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// `v` as serde_json reads its own serialisation (floats go through the same parser as the
/// body's), so values compare exactly.
fn reread(v: &Value) -> Value {
    serde_json::from_str(&v.to_string()).unwrap()
}

fn events(parsed: Parsed<'_>) -> Vec<Event<'_>> {
    match parsed {
        Parsed::Single(e) => vec![e],
        Parsed::Batch(es) => es,
    }
}

/// Whitespace JSON allows between tokens.
fn space() -> impl Strategy<Value = String> {
    prop::collection::vec(
        prop_oneof![Just(' '), Just('\t'), Just('\n'), Just('\r')],
        0..3,
    )
    .prop_map(|cs| cs.into_iter().collect())
}

proptest! {
    #[test]
    fn any_bytes_become_events_that_are_slices_of_the_body(
        body in prop::collection::vec(any::<u8>(), 0..256),
        ndjson in any::<bool>(),
    ) {
        let body = Bytes::from(body);
        let framing = if ndjson { Framing::Ndjson } else { Framing::Json };
        let range = body.as_ptr() as usize..=body.as_ptr() as usize + body.len();
        for e in events(parse(&body, framing)) {
            let start = e.bytes.as_ptr() as usize;
            prop_assert!(e.bytes.is_empty() || (range.contains(&start) && range.contains(&(start + e.bytes.len()))));
            if let Ok(v) = &e.value {
                // Accepted only when it is JSON, read exactly as serde_json reads it.
                let plain: Value = serde_json::from_slice(&e.bytes).expect("accepted bytes are JSON");
                prop_assert_eq!(&v.to_value(), &plain);
            } else {
                let v = e.value.as_ref().unwrap_err();
                prop_assert_eq!(v.rule.as_str(), "json");
                prop_assert!(!v.reason.is_empty());
            }
        }
    }

    #[test]
    fn json_text_mutated_byte_by_byte_never_panics_and_stays_within_the_body(
        v in json(),
        at in any::<prop::sample::Index>(),
        byte in any::<u8>(),
        ndjson in any::<bool>(),
    ) {
        let mut text = format!("[{v},{v}]").into_bytes();
        let i = at.index(text.len());
        text[i] = byte;
        let body = Bytes::from(text);
        let framing = if ndjson { Framing::Ndjson } else { Framing::Json };
        for e in events(parse(&body, framing)) {
            prop_assert!(e.bytes.len() <= body.len());
            if let Ok(v) = &e.value {
                prop_assert_eq!(v.to_value(), serde_json::from_slice::<Value>(&e.bytes).unwrap());
            }
        }
    }

    #[test]
    fn a_json_array_splits_into_its_elements_each_with_its_own_bytes(
        items in prop::collection::vec(json(), 0..8),
        gaps in prop::collection::vec(space(), 0..20),
        pretty in any::<bool>(),
    ) {
        let gap = |i: usize| gaps.get(i).cloned().unwrap_or_default();
        let mut body = format!("{}[{}", gap(0), gap(1));
        for (i, item) in items.iter().enumerate() {
            if i > 0 {
                body.push_str(&format!("{},{}", gap(2 + 2 * i), gap(3 + 2 * i)));
            }
            body.push_str(&if pretty { serde_json::to_string_pretty(item).unwrap() } else { item.to_string() });
        }
        body.push_str(&format!("{}]{}", gap(18), gap(19)));
        let bytes = Bytes::from(body.clone());
        let Parsed::Batch(events) = parse(&bytes, Framing::Json) else {
            return Err(TestCaseError::fail(format!("not a batch: {body}")));
        };
        prop_assert_eq!(events.len(), items.len());
        for (e, item) in events.iter().zip(&items) {
            prop_assert_eq!(e.value.as_ref().unwrap().to_value(), reread(item));
            prop_assert_eq!(&serde_json::from_slice::<Value>(&e.bytes).unwrap(), &reread(item));
        }
    }

    #[test]
    fn ndjson_lines_are_one_event_each_and_blank_lines_none(
        items in prop::collection::vec(json(), 1..8),
        crlf in any::<bool>(),
        blank_every in 1usize..4,
    ) {
        let eol = if crlf { "\r\n" } else { "\n" };
        let mut body = String::new();
        for (i, item) in items.iter().enumerate() {
            if i % blank_every == 0 {
                body.push_str(eol);
            }
            body.push_str(&item.to_string());
            body.push_str(eol);
        }
        let bytes = Bytes::from(body);
        let Parsed::Batch(events) = parse(&bytes, Framing::Ndjson) else {
            return Err(TestCaseError::fail("NDJSON is always a batch"));
        };
        prop_assert_eq!(events.len(), items.len());
        for (e, item) in events.iter().zip(&items) {
            prop_assert_eq!(e.value.as_ref().unwrap().to_value(), reread(item));
        }
    }

    #[test]
    fn an_object_naming_a_key_twice_is_refused_wherever_it_sits(
        object in prop::collection::btree_map("[a-z]{1,6}", json(), 1..5),
        which in any::<prop::sample::Index>(),
        nest in any::<bool>(),
    ) {
        let keys: Vec<&String> = object.keys().collect();
        let twice = keys[which.index(keys.len())];
        let members: Vec<String> = object
            .iter()
            .map(|(k, v)| format!("{}:{v}", Value::from(k.as_str())))
            .collect();
        let duplicated = format!("{{{},{}:null}}", members.join(","), Value::from(twice.as_str()));
        let text = if nest { format!("{{\"outer\":[{duplicated}]}}") } else { duplicated };
        let body = Bytes::from(text.clone());
        let Parsed::Single(e) = parse(&body, Framing::Json) else {
            return Err(TestCaseError::fail(format!("one event expected: {text}")));
        };
        let v = e.value.expect_err("a duplicate key is refused");
        prop_assert!(v.reason.contains(&format!("the key {} appears twice", Value::from(twice.as_str()))), "{}", v.reason);
    }
}
