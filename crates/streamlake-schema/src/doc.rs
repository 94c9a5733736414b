//! [`Doc`]: an event's JSON, parsed strictly and borrowed from its bytes, in the form schema
//! validation and key extraction read.
//!
//! Ingestion parses every event once, validates it and takes its key, then writes the event's
//! original bytes; the parsed value is dropped. `serde_json::Value` would copy every key and
//! string and sort each object into a `BTreeMap`: most of the parse's cost. A `Doc` borrows
//! keys and strings from the bytes (copying only those with escapes) and keeps an object's
//! members in a vector, in order; jsonschema validates it directly (it implements jsonschema's
//! instance representation, [`DocJson`]).
//!
//! Parsing is strict: an object that names a key twice is refused (`{"a": 1, "a": 2}` is
//! ambiguous, and readers disagree on which value wins), with serde_json's line and column.

use std::borrow::Cow;
use std::fmt;

use jsonschema::json::{cmp, Array, Json, Node, NodeIdentity, Object};
use jsonschema::JsonType;
use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;
use serde_json::{Number, Value};

/// One JSON value borrowed from the bytes it was parsed from.
#[derive(Debug, Clone, PartialEq, Default)]
pub enum Doc<'a> {
    /// `null`.
    #[default]
    Null,
    /// `true` or `false`.
    Bool(bool),
    /// A number, as serde_json reads it.
    Number(Number),
    /// A string: borrowed unless it holds escapes.
    String(Cow<'a, str>),
    /// An array.
    Array(Vec<Doc<'a>>),
    /// An object's members in the order written; each key appears once.
    Object(Vec<(Cow<'a, str>, Doc<'a>)>),
}

/// Objects up to this many members check a new key against the ones before it; larger ones
/// sort their keys once, at the end (a key named twice in a large object is found all the same,
/// without a quadratic number of comparisons).
const SCAN_KEYS: usize = 32;

impl<'a> Doc<'a> {
    /// Parses `bytes` strictly: one JSON value, each object naming each key once.
    pub fn parse(bytes: &'a [u8]) -> serde_json::Result<Self> {
        serde_json::from_slice(bytes)
    }

    /// The value `pointer` (RFC 6901, as [`Value::pointer`] reads it) refers to.
    pub fn pointer(&self, pointer: &str) -> Option<&Doc<'a>> {
        if pointer.is_empty() {
            return Some(self);
        }
        let tokens = pointer.strip_prefix('/')?;
        tokens.split('/').try_fold(self, |at, token| {
            let token: Cow<'_, str> = if token.contains('~') {
                Cow::Owned(token.replace("~1", "/").replace("~0", "~"))
            } else {
                Cow::Borrowed(token)
            };
            match at {
                Doc::Object(members) => members.iter().find(|(k, _)| *k == token).map(|m| &m.1),
                Doc::Array(items) => index(&token).and_then(|i| items.get(i)),
                _ => None,
            }
        })
    }

    /// The same value as a `serde_json::Value` (for error reports and tests).
    pub fn to_value(&self) -> Value {
        match self {
            Doc::Null => Value::Null,
            Doc::Bool(b) => Value::Bool(*b),
            Doc::Number(n) => Value::Number(n.clone()),
            Doc::String(s) => Value::String(s.clone().into_owned()),
            Doc::Array(items) => Value::Array(items.iter().map(Doc::to_value).collect()),
            Doc::Object(members) => Value::Object(
                members
                    .iter()
                    .map(|(k, v)| (k.clone().into_owned(), v.to_value()))
                    .collect(),
            ),
        }
    }
}

/// An array index token as RFC 6901 writes it: digits, no sign, no leading zero.
fn index(token: &str) -> Option<usize> {
    if token.starts_with('+') || (token.starts_with('0') && token.len() != 1) {
        return None;
    }
    token.parse().ok()
}

impl<'de> Deserialize<'de> for Doc<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(DocVisitor)
    }
}

struct DocVisitor;

impl<'de> Visitor<'de> for DocVisitor {
    type Value = Doc<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Doc<'de>, E> {
        Ok(Doc::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Doc<'de>, E> {
        Ok(Doc::Number(v.into()))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Doc<'de>, E> {
        Ok(Doc::Number(v.into()))
    }

    fn visit_f64<E>(self, v: f64) -> Result<Doc<'de>, E> {
        // JSON has no NaN or infinity; serde_json reads an overflowing literal as an error.
        Ok(Number::from_f64(v).map_or(Doc::Null, Doc::Number))
    }

    fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Doc<'de>, E> {
        Ok(Doc::String(Cow::Borrowed(v)))
    }

    fn visit_str<E>(self, v: &str) -> Result<Doc<'de>, E> {
        Ok(Doc::String(Cow::Owned(v.to_owned())))
    }

    fn visit_string<E>(self, v: String) -> Result<Doc<'de>, E> {
        Ok(Doc::String(Cow::Owned(v)))
    }

    fn visit_unit<E>(self) -> Result<Doc<'de>, E> {
        Ok(Doc::Null)
    }

    fn visit_none<E>(self) -> Result<Doc<'de>, E> {
        Ok(Doc::Null)
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Doc<'de>, D::Error> {
        Doc::deserialize(d)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Doc<'de>, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(4096));
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(Doc::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Doc<'de>, A::Error> {
        let mut members: Vec<(Cow<'de, str>, Doc<'de>)> = Vec::new();
        while let Some(key) = map.next_key_seed(KeySeed)? {
            if members.len() < SCAN_KEYS && members.iter().any(|(k, _)| *k == key) {
                return Err(twice(&key));
            }
            let value = map.next_value()?;
            members.push((key, value));
        }
        if members.len() > SCAN_KEYS {
            let mut keys: Vec<&str> = members.iter().map(|(k, _)| k.as_ref()).collect();
            keys.sort_unstable();
            if let Some(w) = keys.windows(2).find(|w| w[0] == w[1]) {
                return Err(twice(w[0]));
            }
        }
        Ok(Doc::Object(members))
    }
}

fn twice<E: de::Error>(key: &str) -> E {
    E::custom(format!("the key {key:?} appears twice in one object"))
}

/// An object key, borrowed from the input unless it holds escapes.
struct KeySeed;

impl<'de> DeserializeSeed<'de> for KeySeed {
    type Value = Cow<'de, str>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Cow<'de, str>, D::Error> {
        d.deserialize_str(KeyVisitor)
    }
}

struct KeyVisitor;

impl<'de> Visitor<'de> for KeyVisitor {
    type Value = Cow<'de, str>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object key")
    }

    fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Cow<'de, str>, E> {
        Ok(Cow::Borrowed(v))
    }

    fn visit_str<E>(self, v: &str) -> Result<Cow<'de, str>, E> {
        Ok(Cow::Owned(v.to_owned()))
    }

    fn visit_string<E>(self, v: String) -> Result<Cow<'de, str>, E> {
        Ok(Cow::Owned(v))
    }
}

/// jsonschema's instance representation for [`Doc`]: validators built with
/// `jsonschema::options_for::<DocJson>()` validate a `&Doc` without converting it.
#[derive(Debug)]
pub struct DocJson;

impl Json for DocJson {
    type Node<'a> = &'a Doc<'a>;
    type PreparedKey = String;
    type StringBuffer = Doc<'static>;

    // A lookup scans the members itself, so one pass over them costs no more than the lookups
    // it replaces; bounded so that a very large object is still searched by lookups, which
    // stop at their key.
    const KEYS_PER_LOOKUP: usize = 16;
    // A tree: no node is its own descendant.
    const ACYCLIC: bool = true;

    fn prepare_key(key: &str) -> String {
        key.to_owned()
    }

    fn with_string_node<T>(
        buffer: &mut Doc<'static>,
        string: &str,
        f: impl FnOnce(Self::Node<'_>) -> T,
    ) -> T {
        // The buffer's string is reused, so names allocate only while it grows.
        let mut name = match std::mem::replace(buffer, Doc::Null) {
            Doc::String(Cow::Owned(s)) => s,
            _ => String::new(),
        };
        name.clear();
        name.push_str(string);
        *buffer = Doc::String(Cow::Owned(name));
        f(buffer)
    }
}

impl<'a> Node<'a, DocJson> for &'a Doc<'a> {
    type Object = &'a [(Cow<'a, str>, Doc<'a>)];
    type Array = &'a [Doc<'a>];
    type Number = &'a Number;

    fn as_object(&self) -> Option<Self::Object> {
        match self {
            Doc::Object(members) => Some(members),
            _ => None,
        }
    }

    fn as_array(&self) -> Option<Self::Array> {
        match self {
            Doc::Array(items) => Some(items),
            _ => None,
        }
    }

    fn as_string(&self) -> Option<Cow<'a, str>> {
        match self {
            Doc::String(s) => Some(Cow::Borrowed(s.as_ref())),
            _ => None,
        }
    }

    fn as_number(&self) -> Option<&'a Number> {
        match self {
            Doc::Number(n) => Some(n),
            _ => None,
        }
    }

    fn as_boolean(&self) -> Option<bool> {
        match self {
            Doc::Bool(b) => Some(*b),
            _ => None,
        }
    }

    fn is_null(&self) -> bool {
        matches!(self, Doc::Null)
    }

    fn json_type(&self) -> JsonType {
        match self {
            Doc::Null => JsonType::Null,
            Doc::Bool(_) => JsonType::Boolean,
            Doc::Number(_) => JsonType::Number,
            Doc::String(_) => JsonType::String,
            Doc::Array(_) => JsonType::Array,
            Doc::Object(_) => JsonType::Object,
        }
    }

    fn equals_value(&self, expected: &Value) -> bool {
        // `const` and `enum` compare every event: scalars without building a `Value`.
        match (*self, expected) {
            (Doc::String(s), Value::String(e)) => s == e,
            (Doc::Bool(b), Value::Bool(e)) => b == e,
            (Doc::Null, Value::Null) => true,
            (Doc::Number(n), Value::Number(e)) => cmp::equal_numbers(&n, e),
            (Doc::Array(_), Value::Array(_)) | (Doc::Object(_), Value::Object(_)) => {
                cmp::equal(&Doc::to_value(self), expected)
            }
            _ => false,
        }
    }

    fn to_value(&self) -> Cow<'a, Value> {
        Cow::Owned(Doc::to_value(self))
    }

    fn identity(&self) -> Option<NodeIdentity> {
        Some(NodeIdentity::new(
            std::ptr::from_ref::<Doc<'a>>(*self) as usize
        ))
    }
}

impl<'a> Object<'a, DocJson> for &'a [(Cow<'a, str>, Doc<'a>)] {
    type Node = &'a Doc<'a>;
    type MemberName = &'a str;
    type MembersIter = Members<'a>;

    fn len(&self) -> usize {
        <[_]>::len(self)
    }

    fn get(&self, key: &String) -> Option<&'a Doc<'a>> {
        self.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    fn members(&self) -> Members<'a> {
        Members(self.iter())
    }
}

/// An object's members, as jsonschema walks them.
#[derive(Debug)]
pub struct Members<'a>(std::slice::Iter<'a, (Cow<'a, str>, Doc<'a>)>);

impl<'a> Iterator for Members<'a> {
    type Item = (&'a str, &'a Doc<'a>);

    fn next(&mut self) -> Option<Self::Item> {
        self.0.next().map(|(k, v)| (k.as_ref(), v))
    }
}

impl<'a> Array<'a, DocJson> for &'a [Doc<'a>] {
    type Node = &'a Doc<'a>;
    type ElementsIter = std::slice::Iter<'a, Doc<'a>>;

    fn len(&self) -> usize {
        <[_]>::len(self)
    }

    fn elements(&self) -> Self::ElementsIter {
        self.iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_key_named_twice_is_refused_where_it_is() {
        let e = Doc::parse(br#"{"a": 1, "b": {"c": 1, "c": 2}}"#)
            .unwrap_err()
            .to_string();
        assert!(e.contains("the key \"c\" appears twice"), "{e}");
        assert!(e.contains("line 1 column"), "{e}");
    }

    #[test]
    fn a_key_named_twice_in_a_large_object_is_refused_too() {
        let mut members: Vec<String> = (0..100).map(|i| format!("\"k{i}\": {i}")).collect();
        members.push("\"k7\": 0".to_owned());
        let e = Doc::parse(format!("{{{}}}", members.join(",")).as_bytes()).unwrap_err();
        assert!(
            e.to_string().contains("the key \"k7\" appears twice"),
            "{e}"
        );
        members.pop();
        assert!(Doc::parse(format!("{{{}}}", members.join(",")).as_bytes()).is_ok());
    }

    #[test]
    fn everything_else_parses_as_serde_json_does() {
        let text = r#"{"n": -1, "u": 18446744073709551615, "f": 1.5e3, "s": "x\u00e9\n", "t": true, "z": null, "a": [1, {"b": []}], "e\"k": {}}"#;
        let doc = Doc::parse(text.as_bytes()).unwrap();
        let loose: Value = serde_json::from_str(text).unwrap();
        assert_eq!(doc.to_value(), loose);
        // Strings and keys without escapes are borrowed from the input.
        let Doc::Object(members) = &doc else {
            panic!("an object")
        };
        assert!(matches!(members[0].0, Cow::Borrowed("n")));
        assert!(matches!(&members[3].1, Doc::String(Cow::Owned(s)) if s == "x\u{e9}\n"));
        assert!(matches!(&members[7].0, Cow::Owned(k) if k == "e\"k"));
    }

    #[test]
    fn pointers_read_as_serde_json_reads_them() {
        let value = json!({"a": {"b/c": [10, {"d~e": true}]}, "": 1, "0": {"1": null}});
        let text = value.to_string();
        let doc = Doc::parse(text.as_bytes()).unwrap();
        for pointer in [
            "",
            "/a",
            "/a/b~1c",
            "/a/b~1c/1",
            "/a/b~1c/1/d~0e",
            "/a/b~1c/01",
            "/a/b~1c/+1",
            "/a/b~1c/2",
            "/",
            "/0/1",
            "a",
            "/missing/x",
        ] {
            assert_eq!(
                doc.pointer(pointer).map(Doc::to_value).as_ref(),
                value.pointer(pointer),
                "{pointer}"
            );
        }
    }

    #[test]
    fn it_is_a_representation_jsonschema_can_rely_on() {
        let text = jsonschema::json::conformance::document().to_string();
        let doc = Doc::parse(text.as_bytes()).unwrap();
        jsonschema::json::conformance::assert_conformance::<DocJson>(&&doc);
    }

    #[test]
    fn it_validates_as_the_same_value_does() {
        let schema = json!({
            "type": "object",
            "required": ["id", "kind"],
            "properties": {
                "id": {"type": "integer", "minimum": 1},
                "kind": {"enum": ["a", "b", 3]},
                "tags": {"type": "array", "uniqueItems": true, "items": {"type": "string", "maxLength": 3}},
                "at": {"const": {"x": [1, 2.0]}}
            },
            "propertyNames": {"pattern": "^[a-z]+$"},
            "additionalProperties": false
        });
        let by_doc = jsonschema::options_for::<DocJson>().build(&schema).unwrap();
        let by_value = jsonschema::validator_for(&schema).unwrap();
        for event in [
            r#"{"id": 1, "kind": "a"}"#,
            r#"{"id": 1, "kind": 3.0}"#,
            r#"{"id": 0, "kind": "a"}"#,
            r#"{"id": 1, "kind": "c"}"#,
            r#"{"id": 1}"#,
            r#"{"id": 1, "kind": "b", "tags": ["x", "y"]}"#,
            r#"{"id": 1, "kind": "b", "tags": ["x", "x"]}"#,
            r#"{"id": 1, "kind": "b", "tags": ["long"]}"#,
            r#"{"id": 1, "kind": "b", "at": {"x": [1.0, 2]}}"#,
            r#"{"id": 1, "kind": "b", "at": {"x": [1, 3]}}"#,
            r#"{"id": 1, "kind": "b", "Other": 1}"#,
            r#"[1, 2]"#,
        ] {
            let doc = Doc::parse(event.as_bytes()).unwrap();
            let value: Value = serde_json::from_str(event).unwrap();
            assert_eq!(by_doc.is_valid(&doc), by_value.is_valid(&value), "{event}");
            let errors = |e: jsonschema::ValidationError<'_>| {
                (e.to_string(), e.instance_path().as_str().to_owned())
            };
            assert_eq!(
                by_doc.iter_errors(&doc).map(errors).collect::<Vec<_>>(),
                by_value.iter_errors(&value).map(errors).collect::<Vec<_>>(),
                "{event}"
            );
        }
    }
}
