//! Compatibility of two JSON Schema versions, as a schema registry defines it: a new version is
//! *backward* compatible when it accepts every event the old one accepted (consumers on the new
//! version read old data), *forward* compatible when the old one accepts every event the new one
//! accepts (consumers on the old version read new data), and *fully* compatible when both hold.
//!
//! Both are one question, "does `reader` accept every instance `writer` accepts?", answered
//! keyword by keyword: validity is the conjunction of a schema's keywords, so the reader accepts
//! the writer's instances when each of the reader's keywords is implied by the writer's. The
//! check knows the keywords of types, numbers, strings, objects (with open and closed content
//! models: `additionalProperties`) and arrays; any other keyword (`allOf`, `$ref`, `if`, ...) is
//! implied only by the same keyword with the same value, so an unknown change is reported, never
//! passed. The answer is therefore safe (a change reported compatible is compatible) and may
//! refuse a compatible change written in a form it cannot compare; the change it names says
//! which.
//!
//! Every incompatibility is named by the instance location it concerns (a JSON pointer, `*` for
//! any property or item) and a rule that says what changed from the old to the new version, e.g.
//! `/pm2_5: type_narrowed (number → integer)` or `/: required_added (location_id)`.

use std::collections::BTreeSet;
use std::fmt;

use serde_json::{Map, Value};
pub use streamlake_config::Compatibility;

/// One change between two versions that breaks a direction of compatibility.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    /// Instance location the change concerns (JSON pointer; `*` stands for any name or index).
    pub path: String,
    /// What changed from the old to the new version, e.g. `required_added`.
    pub rule: String,
    /// The old and new values, or what the rule concerns.
    pub detail: String,
}

impl fmt::Display for Change {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let path = if self.path.is_empty() {
            "/"
        } else {
            &self.path
        };
        write!(f, "{path}: {} ({})", self.rule, self.detail)
    }
}

/// The changes that keep `new` from reading every event `old` accepted; empty when `new` is
/// backward compatible with `old`.
pub fn backward(old: &Value, new: &Value) -> Vec<Change> {
    let mut c = Comparison {
        reader_is_new: true,
        changes: Vec::new(),
    };
    c.accepts(new, old, "");
    c.changes
}

/// The changes that keep `old` from reading every event `new` accepts; empty when `new` is
/// forward compatible with `old`.
pub fn forward(old: &Value, new: &Value) -> Vec<Change> {
    let mut c = Comparison {
        reader_is_new: false,
        changes: Vec::new(),
    };
    c.accepts(old, new, "");
    c.changes
}

/// A direction of compatibility that failed between two versions, with its changes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Incompatibility {
    /// The older version compared.
    pub old: String,
    /// The newer version compared.
    pub new: String,
    /// `backward` or `forward`.
    pub direction: &'static str,
    /// What breaks it.
    pub changes: Vec<Change>,
}

impl fmt::Display for Incompatibility {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "version {} is not {} compatible with version {}: ",
            self.new, self.direction, self.old
        )?;
        for (i, c) in self.changes.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{c}")?;
        }
        Ok(())
    }
}

/// Checks a dataset's versions, oldest first, under `mode`: each version against the one before
/// it, or against every earlier one for the transitive modes.
pub fn check_versions(mode: Compatibility, versions: &[(&str, &Value)]) -> Vec<Incompatibility> {
    let mut found = Vec::new();
    for (o, n) in pairs(mode, versions.len()) {
        let ((old_name, old), (new_name, new)) = (versions[o], versions[n]);
        let mut directions = Vec::new();
        if mode.backward() {
            directions.push(("backward", backward(old, new)));
        }
        if mode.forward() {
            directions.push(("forward", forward(old, new)));
        }
        for (direction, changes) in directions {
            if !changes.is_empty() {
                found.push(Incompatibility {
                    old: old_name.to_owned(),
                    new: new_name.to_owned(),
                    direction,
                    changes,
                });
            }
        }
    }
    found
}

/// The (older, newer) indices of `count` versions, oldest first, that `mode` compares: each
/// version with the one before it, or with every earlier one when transitive.
pub fn pairs(mode: Compatibility, count: usize) -> impl Iterator<Item = (usize, usize)> {
    (1..count).flat_map(move |new| {
        let first = if mode.transitive() { 0 } else { new - 1 };
        (first..new).map(move |old| (old, new))
    })
}

/// Keywords that annotate and never refuse an instance.
const ANNOTATIONS: &[&str] = &[
    "$schema",
    "$id",
    "$anchor",
    "$comment",
    "title",
    "description",
    "examples",
    "default",
    "deprecated",
    "readOnly",
    "writeOnly",
    "contentMediaType",
    "contentEncoding",
];

/// Keywords compared by their meaning below; any other is compared by equality.
const UNDERSTOOD: &[&str] = &[
    "type",
    "enum",
    "const",
    "minimum",
    "maximum",
    "exclusiveMinimum",
    "exclusiveMaximum",
    "multipleOf",
    "minLength",
    "maxLength",
    "pattern",
    "format",
    "required",
    "properties",
    "additionalProperties",
    "minProperties",
    "maxProperties",
    "items",
    "minItems",
    "maxItems",
    "uniqueItems",
];

const ALL_TYPES: [&str; 7] = [
    "null", "boolean", "object", "array", "number", "integer", "string",
];

struct Comparison {
    /// Whether the reader is the new version (a backward check) or the old one (forward).
    reader_is_new: bool,
    changes: Vec<Change>,
}

/// A lower or upper bound of a number, a length or a count.
#[derive(Clone, Copy)]
struct Bound {
    value: f64,
    exclusive: bool,
}

impl Comparison {
    /// Records that the reader refuses some of the writer's instances at `path`. `stricter` is
    /// the rule's name when the new version is the stricter one, `looser` when the old one is;
    /// `reader` and `writer` describe each side's value.
    fn refuse(&mut self, path: &str, stricter: &str, looser: &str, reader: &str, writer: &str) {
        let (rule, old, new) = if self.reader_is_new {
            (stricter, writer, reader)
        } else {
            (looser, reader, writer)
        };
        self.changes.push(Change {
            path: path.to_owned(),
            rule: rule.to_owned(),
            detail: format!("{old} → {new}"),
        });
    }

    /// Records a change named by itself (the same in both directions).
    fn note(&mut self, path: &str, rule: String, detail: String) {
        self.changes.push(Change {
            path: path.to_owned(),
            rule,
            detail,
        });
    }

    /// Whether `reader` accepts every instance `writer` accepts; the reasons it does not are
    /// recorded.
    fn accepts(&mut self, reader: &Value, writer: &Value, path: &str) {
        if reader == writer {
            return;
        }
        let empty = Map::new();
        let r = match reader {
            Value::Bool(true) => return,
            Value::Bool(false) => {
                if writer != &Value::Bool(false) {
                    self.refuse(
                        path,
                        "refuses_everything",
                        "accepts_everything",
                        "false",
                        "a schema",
                    );
                }
                return;
            }
            Value::Object(o) => o,
            // Not a schema of either form (a draft-7 tuple `items` array, say): only an
            // unchanged one is known to accept the same.
            _ => {
                if reader != writer {
                    let (old, new) = self.old_new(Some(writer), Some(reader));
                    self.note(
                        path,
                        "schema_changed".into(),
                        format!("{} → {}", show(old), show(new)),
                    );
                }
                return;
            }
        };
        let w = match writer {
            Value::Bool(false) => return,
            Value::Object(o) => o,
            _ => &empty,
        };
        // A writer that lists its values: each must be acceptable to the reader.
        if let Some(values) = listed_values(w) {
            self.values_accepted(reader, r, &values, path);
            return;
        }
        if r.contains_key("enum") || r.contains_key("const") {
            let listed = describe_values(r);
            self.refuse(path, "enum_added", "enum_removed", &listed, "any value");
        }
        let wt = types_of(w);
        self.types(r, w, &wt, path);
        let allows = |t: &str| {
            wt.contains(t)
                || (t == "number" && wt.contains("integer"))
                || (t == "integer" && wt.contains("number"))
        };
        if allows("number") || allows("integer") {
            self.numbers(r, w, path);
        }
        if allows("string") {
            self.strings(r, w, path);
        }
        if allows("object") {
            self.objects(r, w, path);
        }
        if allows("array") {
            self.arrays(r, w, path);
        }
        for (k, rv) in r {
            if ANNOTATIONS.contains(&k.as_str()) || UNDERSTOOD.contains(&k.as_str()) {
                continue;
            }
            if w.get(k) != Some(rv) {
                let (old, new) = self.old_new(w.get(k), Some(rv));
                self.note(
                    path,
                    format!("{k}_changed"),
                    format!(
                        "{} → {}; only an unchanged {k} can be compared",
                        show(old),
                        show(new)
                    ),
                );
            }
        }
    }

    /// `(old, new)` from `(writer, reader)`.
    fn old_new<'a>(
        &self,
        writer: Option<&'a Value>,
        reader: Option<&'a Value>,
    ) -> (Option<&'a Value>, Option<&'a Value>) {
        if self.reader_is_new {
            (writer, reader)
        } else {
            (reader, writer)
        }
    }

    fn values_accepted(
        &mut self,
        reader: &Value,
        r: &Map<String, Value>,
        values: &[Value],
        path: &str,
    ) {
        // Both list values: name the ones the reader lacks.
        let mut named = Vec::new();
        if let Some(allowed) = listed_values(r) {
            named = values
                .iter()
                .filter(|v| !allowed.iter().any(|a| json_equal(a, v)))
                .collect();
            if !named.is_empty() {
                let missing: Vec<String> = named.iter().map(|v| v.to_string()).collect();
                let missing = missing.join(", ");
                if self.reader_is_new {
                    self.note(
                        path,
                        "enum_narrowed".into(),
                        format!("{missing} no longer allowed"),
                    );
                } else {
                    self.note(
                        path,
                        "enum_extended".into(),
                        format!("{missing} now allowed"),
                    );
                }
            }
            // A reader that only lists values has said all it refuses.
            if r.keys().all(|k| {
                matches!(k.as_str(), "enum" | "const") || ANNOTATIONS.contains(&k.as_str())
            }) {
                return;
            }
        }
        // The reader's other keywords apply to the listed values too.
        match jsonschema::validator_for(reader) {
            Ok(v) => {
                for value in values.iter().filter(|v| !named.contains(v)) {
                    if let Some(e) = v.iter_errors(value).next() {
                        let (rule, side) = if self.reader_is_new {
                            ("value_refused", "the new version refuses")
                        } else {
                            ("value_added", "the old version refuses")
                        };
                        self.note(path, rule.into(), format!("{side} {value}: {e}"));
                    }
                }
            }
            // A reader that cannot be compiled on its own (a `$ref` into its document): the
            // values cannot be checked against it.
            Err(_) => self.note(
                path,
                "enum_changed".into(),
                "listed values cannot be checked against a schema that refers elsewhere".into(),
            ),
        }
    }

    fn types(
        &mut self,
        r: &Map<String, Value>,
        w: &Map<String, Value>,
        wt: &BTreeSet<&'static str>,
        path: &str,
    ) {
        if !r.contains_key("type") {
            return;
        }
        let rt = types_of(r);
        let lost: Vec<&str> = wt
            .iter()
            .copied()
            .filter(|t| !(rt.contains(t) || (*t == "integer" && rt.contains("number"))))
            .collect();
        if !lost.is_empty() {
            let writer = w
                .get("type")
                .map_or("any type".to_owned(), Value::to_string);
            let reader = r
                .get("type")
                .map_or("any type".to_owned(), Value::to_string);
            self.refuse(path, "type_narrowed", "type_widened", &reader, &writer);
        }
    }

    fn numbers(&mut self, r: &Map<String, Value>, w: &Map<String, Value>, path: &str) {
        self.lower(
            path,
            "minimum",
            lower_bound(r, "minimum", "exclusiveMinimum"),
            lower_bound(w, "minimum", "exclusiveMinimum"),
        );
        self.upper(
            path,
            "maximum",
            upper_bound(r, "maximum", "exclusiveMaximum"),
            upper_bound(w, "maximum", "exclusiveMaximum"),
        );
        if let Some(rm) = r.get("multipleOf").and_then(Value::as_f64) {
            let ok = w
                .get("multipleOf")
                .and_then(Value::as_f64)
                .is_some_and(|wm| {
                    let q = wm / rm;
                    (q - q.round()).abs() < 1e-9
                });
            if !ok {
                let writer = show(w.get("multipleOf"));
                self.refuse(
                    path,
                    "multiple_of_narrowed",
                    "multiple_of_widened",
                    &rm.to_string(),
                    &writer,
                );
            }
        }
    }

    fn strings(&mut self, r: &Map<String, Value>, w: &Map<String, Value>, path: &str) {
        self.lower(
            path,
            "min_length",
            plain(r, "minLength"),
            plain(w, "minLength"),
        );
        self.upper(
            path,
            "max_length",
            plain(r, "maxLength"),
            plain(w, "maxLength"),
        );
        for (k, name) in [("pattern", "pattern"), ("format", "format")] {
            if let Some(rv) = r.get(k) {
                if w.get(k) != Some(rv) {
                    let writer = show(w.get(k));
                    let (stricter, looser) = if w.contains_key(k) {
                        (format!("{name}_changed"), format!("{name}_changed"))
                    } else {
                        (format!("{name}_added"), format!("{name}_removed"))
                    };
                    self.refuse(path, &stricter, &looser, &rv.to_string(), &writer);
                }
            }
        }
    }

    fn objects(&mut self, r: &Map<String, Value>, w: &Map<String, Value>, path: &str) {
        let names = |s: &Map<String, Value>| -> BTreeSet<String> {
            s.get("required")
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(Value::as_str)
                        .map(str::to_owned)
                        .collect()
                })
                .unwrap_or_default()
        };
        let (r_required, w_required) = (names(r), names(w));
        for name in r_required.difference(&w_required) {
            self.refuse(
                &child(path, name),
                "required_added",
                "required_removed",
                "required",
                "optional",
            );
        }
        self.lower(
            path,
            "min_properties",
            plain(r, "minProperties"),
            plain(w, "minProperties"),
        );
        self.upper(
            path,
            "max_properties",
            plain(r, "maxProperties"),
            plain(w, "maxProperties"),
        );

        let empty = Map::new();
        let r_props = r
            .get("properties")
            .and_then(Value::as_object)
            .unwrap_or(&empty);
        let w_props = w
            .get("properties")
            .and_then(Value::as_object)
            .unwrap_or(&empty);
        let r_more = r.get("additionalProperties").unwrap_or(&Value::Bool(true));
        let w_more = w.get("additionalProperties").unwrap_or(&Value::Bool(true));
        // With `patternProperties` a name's schema depends on the patterns it matches; the
        // keyword is then compared by equality (below), and names one side lacks are compared
        // against the other's `additionalProperties` as if no pattern matched.
        for (name, rs) in r_props {
            let at = child(path, name);
            match w_props.get(name) {
                Some(ws) => self.accepts(rs, ws, &at),
                None if w_more == &Value::Bool(false) => {}
                None if is_true(w_more) => {
                    if !accepts_anything(rs) {
                        self.refuse(
                            &at,
                            "property_added_to_open_content_model",
                            "property_removed_from_open_content_model",
                            "declared",
                            "any value (open content model)",
                        );
                    }
                }
                None => self.accepts(rs, w_more, &at),
            }
        }
        for (name, ws) in w_props {
            if r_props.contains_key(name) {
                continue;
            }
            let at = child(path, name);
            if r_more == &Value::Bool(false) {
                if ws != &Value::Bool(false) {
                    self.refuse(
                        &at,
                        "property_removed_from_closed_content_model",
                        "property_added_to_closed_content_model",
                        "not allowed (closed content model)",
                        "declared",
                    );
                }
            } else {
                self.accepts(r_more, ws, &at);
            }
        }
        if !is_true(r_more) {
            let at = child(path, "*");
            if r_more == &Value::Bool(false) && w_more != &Value::Bool(false) {
                self.refuse(
                    &at,
                    "content_model_closed",
                    "content_model_opened",
                    "additionalProperties false",
                    &format!("additionalProperties {w_more}"),
                );
            } else {
                self.accepts(r_more, w_more, &at);
            }
        }
    }

    fn arrays(&mut self, r: &Map<String, Value>, w: &Map<String, Value>, path: &str) {
        self.lower(
            path,
            "min_items",
            plain(r, "minItems"),
            plain(w, "minItems"),
        );
        self.upper(
            path,
            "max_items",
            plain(r, "maxItems"),
            plain(w, "maxItems"),
        );
        if let Some(ri) = r.get("items") {
            let wi = w.get("items").unwrap_or(&Value::Bool(true));
            let at = child(path, "*");
            if is_true(wi) && !accepts_anything(ri) {
                self.refuse(
                    &at,
                    "items_constrained",
                    "items_unconstrained",
                    &ri.to_string(),
                    "any item",
                );
            } else {
                self.accepts(ri, wi, &at);
            }
        }
        if r.get("uniqueItems") == Some(&Value::Bool(true))
            && w.get("uniqueItems") != Some(&Value::Bool(true))
        {
            self.refuse(
                path,
                "unique_items_added",
                "unique_items_removed",
                "unique",
                "repeats allowed",
            );
        }
    }

    /// The writer's lower bound must be at least the reader's.
    fn lower(&mut self, path: &str, name: &str, reader: Option<Bound>, writer: Option<Bound>) {
        let Some(rb) = reader else { return };
        let ok = writer.is_some_and(|wb| {
            wb.value > rb.value || (wb.value == rb.value && (wb.exclusive || !rb.exclusive))
        });
        if !ok {
            self.bound_refused(path, name, rb, writer, ("increased", "decreased"));
        }
    }

    /// The writer's upper bound must be at most the reader's.
    fn upper(&mut self, path: &str, name: &str, reader: Option<Bound>, writer: Option<Bound>) {
        let Some(rb) = reader else { return };
        let ok = writer.is_some_and(|wb| {
            wb.value < rb.value || (wb.value == rb.value && (wb.exclusive || !rb.exclusive))
        });
        if !ok {
            self.bound_refused(path, name, rb, writer, ("decreased", "increased"));
        }
    }

    fn bound_refused(
        &mut self,
        path: &str,
        name: &str,
        reader: Bound,
        writer: Option<Bound>,
        (stricter, looser): (&str, &str),
    ) {
        let (stricter, looser) = match writer {
            Some(_) => (format!("{name}_{stricter}"), format!("{name}_{looser}")),
            None => (format!("{name}_added"), format!("{name}_removed")),
        };
        let shown =
            |b: Bound| format!("{}{}", if b.exclusive { "exclusive " } else { "" }, b.value);
        self.refuse(
            path,
            &stricter,
            &looser,
            &shown(reader),
            &writer.map_or("none".to_owned(), shown),
        );
    }
}

fn child(path: &str, name: &str) -> String {
    format!("{path}/{}", name.replace('~', "~0").replace('/', "~1"))
}

fn show(v: Option<&Value>) -> String {
    v.map_or("none".to_owned(), Value::to_string)
}

fn is_true(v: &Value) -> bool {
    v == &Value::Bool(true) || v.as_object().is_some_and(Map::is_empty)
}

/// Whether a schema accepts every instance (no keyword but annotations).
fn accepts_anything(s: &Value) -> bool {
    match s {
        Value::Bool(b) => *b,
        Value::Object(o) => o.keys().all(|k| ANNOTATIONS.contains(&k.as_str())),
        _ => false,
    }
}

/// The values a schema allows when it lists them (`const`, or `enum`, or both intersected).
fn listed_values(s: &Map<String, Value>) -> Option<Vec<Value>> {
    let listed: Option<Vec<Value>> = s.get("enum").and_then(Value::as_array).cloned();
    match (s.get("const"), listed) {
        (Some(c), Some(e)) => Some(e.into_iter().filter(|v| json_equal(v, c)).collect()),
        (Some(c), None) => Some(vec![c.clone()]),
        (None, e) => e,
    }
}

fn describe_values(s: &Map<String, Value>) -> String {
    listed_values(s).map_or_else(String::new, |v| format!("one of {}", Value::Array(v)))
}

/// JSON equality with `1` and `1.0` equal, as JSON Schema compares.
fn json_equal(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        _ => a == b,
    }
}

/// The types a schema allows by its `type` keyword (every type when it has none).
fn types_of(s: &Map<String, Value>) -> BTreeSet<&'static str> {
    let named: Vec<&str> = match s.get("type") {
        Some(Value::String(t)) => vec![t.as_str()],
        Some(Value::Array(ts)) => ts.iter().filter_map(Value::as_str).collect(),
        _ => return ALL_TYPES.into_iter().collect(),
    };
    ALL_TYPES
        .into_iter()
        .filter(|t| named.contains(t))
        .collect()
}

fn plain(s: &Map<String, Value>, key: &str) -> Option<Bound> {
    s.get(key).and_then(Value::as_f64).map(|value| Bound {
        value,
        exclusive: false,
    })
}

fn lower_bound(s: &Map<String, Value>, inclusive: &str, exclusive: &str) -> Option<Bound> {
    tighter(
        plain(s, inclusive),
        exclusive_bound(s, exclusive),
        |a, b| a > b,
    )
}

fn upper_bound(s: &Map<String, Value>, inclusive: &str, exclusive: &str) -> Option<Bound> {
    tighter(
        plain(s, inclusive),
        exclusive_bound(s, exclusive),
        |a, b| a < b,
    )
}

fn exclusive_bound(s: &Map<String, Value>, key: &str) -> Option<Bound> {
    s.get(key).and_then(Value::as_f64).map(|value| Bound {
        value,
        exclusive: true,
    })
}

fn tighter(a: Option<Bound>, b: Option<Bound>, beyond: fn(f64, f64) -> bool) -> Option<Bound> {
    match (a, b) {
        (Some(a), Some(b)) => Some(
            if beyond(a.value, b.value) || (a.value == b.value && a.exclusive) {
                a
            } else {
                b
            },
        ),
        (a, b) => a.or(b),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn rules(changes: &[Change]) -> Vec<(&str, &str)> {
        changes
            .iter()
            .map(|c| (c.path.as_str(), c.rule.as_str()))
            .collect()
    }

    fn open_v1() -> Value {
        json!({
            "type": "object",
            "required": ["sensor_id", "value"],
            "properties": {
                "sensor_id": {"type": "integer"},
                "value": {"type": "number", "minimum": 0},
                "unit": {"enum": ["ugm3", "ppm"]}
            }
        })
    }

    #[test]
    fn an_unchanged_schema_is_fully_compatible() {
        let v1 = open_v1();
        assert!(backward(&v1, &v1).is_empty());
        assert!(forward(&v1, &v1).is_empty());
    }

    #[test]
    fn annotations_change_nothing() {
        let mut v2 = open_v1();
        v2["title"] = json!("readings");
        v2["properties"]["value"]["description"] = json!("µg/m³");
        assert!(backward(&open_v1(), &v2).is_empty());
        assert!(forward(&open_v1(), &v2).is_empty());
    }

    #[test]
    fn a_new_required_field_breaks_backward_and_keeps_forward() {
        let mut v2 = open_v1();
        v2["required"] = json!(["sensor_id", "value", "unit"]);
        assert_eq!(
            rules(&backward(&open_v1(), &v2)),
            [("/unit", "required_added")]
        );
        assert!(forward(&open_v1(), &v2).is_empty());
        // The other way round it is a removal: forward breaks.
        assert_eq!(
            rules(&forward(&v2, &open_v1())),
            [("/unit", "required_removed")]
        );
    }

    #[test]
    fn an_optional_field_added_to_an_open_model_breaks_backward() {
        // Old events may already carry `site` with any value.
        let mut v2 = open_v1();
        v2["properties"]["site"] = json!({"type": "string"});
        assert_eq!(
            rules(&backward(&open_v1(), &v2)),
            [("/site", "property_added_to_open_content_model")]
        );
        assert!(forward(&open_v1(), &v2).is_empty());
    }

    #[test]
    fn an_optional_field_added_to_a_closed_model_is_fully_compatible_only_one_way() {
        let mut v1 = open_v1();
        v1["additionalProperties"] = json!(false);
        let mut v2 = v1.clone();
        v2["properties"]["site"] = json!({"type": "string"});
        assert!(backward(&v1, &v2).is_empty());
        // New events may carry `site`, which the closed old version refuses.
        assert_eq!(
            rules(&forward(&v1, &v2)),
            [("/site", "property_added_to_closed_content_model")]
        );
    }

    #[test]
    fn narrowing_a_type_breaks_backward_and_widening_breaks_forward() {
        let mut v2 = open_v1();
        v2["properties"]["value"]["type"] = json!("integer");
        let b = backward(&open_v1(), &v2);
        assert_eq!(rules(&b), [("/value", "type_narrowed")]);
        assert!(b[0].detail.contains("\"number\" → \"integer\""), "{b:?}");
        assert!(forward(&open_v1(), &v2).is_empty());

        let mut v3 = open_v1();
        v3["properties"]["value"]["type"] = json!(["number", "null"]);
        assert!(backward(&open_v1(), &v3).is_empty());
        assert_eq!(
            rules(&forward(&open_v1(), &v3)),
            [("/value", "type_widened")]
        );
    }

    #[test]
    fn bounds_are_compared_by_value() {
        let mut v2 = open_v1();
        v2["properties"]["value"]["minimum"] = json!(10);
        v2["properties"]["value"]["maximum"] = json!(1000);
        let b = backward(&open_v1(), &v2);
        assert_eq!(
            rules(&b),
            [("/value", "minimum_increased"), ("/value", "maximum_added")]
        );
        assert!(forward(&open_v1(), &v2).is_empty());
        // A lower minimum and no maximum: forward breaks on the minimum only.
        assert_eq!(
            rules(&forward(&v2, &open_v1())),
            [
                ("/value", "minimum_decreased"),
                ("/value", "maximum_removed")
            ]
        );
        // An exclusive bound at the same value is stricter than an inclusive one.
        let mut v4 = open_v1();
        v4["properties"]["value"] = json!({"type": "number", "exclusiveMinimum": 0});
        assert_eq!(
            rules(&backward(&open_v1(), &v4)),
            [("/value", "minimum_increased")]
        );
        assert!(forward(&open_v1(), &v4).is_empty());
    }

    #[test]
    fn enums_name_the_values_that_changed() {
        let mut v2 = open_v1();
        v2["properties"]["unit"] = json!({"enum": ["ugm3"]});
        let b = backward(&open_v1(), &v2);
        assert_eq!(rules(&b), [("/unit", "enum_narrowed")]);
        assert!(b[0].detail.contains("\"ppm\""), "{b:?}");
        let f = forward(&v2, &open_v1());
        assert_eq!(rules(&f), [("/unit", "enum_extended")]);
        // A const is a one-value enum.
        let mut v3 = open_v1();
        v3["properties"]["unit"] = json!({"const": "ugm3"});
        assert!(forward(&open_v1(), &v3).is_empty());
        assert_eq!(
            rules(&backward(&open_v1(), &v3)),
            [("/unit", "enum_narrowed")]
        );
    }

    #[test]
    fn listed_values_are_checked_against_the_other_schema() {
        let old = json!({"type": "string", "maxLength": 3});
        let new = json!({"enum": ["abc", "abcd"]});
        let f = forward(&old, &new);
        assert_eq!(rules(&f), [("", "value_added")]);
        assert!(f[0].detail.contains("\"abcd\""), "{f:?}");
    }

    #[test]
    fn listed_values_meet_the_readers_other_keywords_too() {
        // Both list "x"; the new version also caps its length at 0, which refuses "x".
        let old = json!({"properties": {"b": {"enum": ["x"]}}});
        let new = json!({"properties": {"b": {"enum": ["x"], "maxLength": 0}}});
        assert_eq!(rules(&backward(&old, &new)), [("/b", "value_refused")]);
        assert!(forward(&old, &new).is_empty());
    }

    #[test]
    fn a_tuple_of_item_schemas_must_stay_unchanged() {
        let old = json!({"items": [{"type": "number"}]});
        let new = json!({"items": [{"type": "integer"}]});
        assert_eq!(rules(&backward(&old, &new)), [("/*", "schema_changed")]);
        assert!(backward(&old, &old.clone()).is_empty());
    }

    #[test]
    fn closing_an_open_model_breaks_backward() {
        let mut v2 = open_v1();
        v2["additionalProperties"] = json!(false);
        assert_eq!(
            rules(&backward(&open_v1(), &v2)),
            [("/*", "content_model_closed")]
        );
        assert!(forward(&open_v1(), &v2).is_empty());
    }

    #[test]
    fn removing_a_field_from_a_closed_model_breaks_backward() {
        let mut v1 = open_v1();
        v1["additionalProperties"] = json!(false);
        let mut v2 = v1.clone();
        v2["properties"].as_object_mut().unwrap().remove("unit");
        assert_eq!(
            rules(&backward(&v1, &v2)),
            [("/unit", "property_removed_from_closed_content_model")]
        );
        assert!(forward(&v1, &v2).is_empty());
    }

    #[test]
    fn nested_objects_and_arrays_are_compared_by_location() {
        let v1 = json!({"properties": {"geo": {"properties": {"readings": {
            "type": "array", "items": {"type": "number"}
        }}}}});
        let v2 = json!({"properties": {"geo": {"properties": {"readings": {
            "type": "array", "items": {"type": "integer"}, "maxItems": 10
        }}}}});
        assert_eq!(
            rules(&backward(&v1, &v2)),
            [
                ("/geo/readings", "max_items_added"),
                ("/geo/readings/*", "type_narrowed")
            ]
        );
        assert!(forward(&v1, &v2).is_empty());
    }

    #[test]
    fn keywords_it_cannot_compare_must_stay_unchanged() {
        let v1 = json!({"anyOf": [{"type": "string"}, {"type": "number"}]});
        let v2 = json!({"anyOf": [{"type": "string"}]});
        let b = backward(&v1, &v2);
        assert_eq!(rules(&b), [("", "anyOf_changed")]);
        assert!(backward(&v1, &v1.clone()).is_empty());
    }

    mod soundness {
        use proptest::prelude::*;
        use serde_json::{json, Value};

        use super::super::{backward, forward};

        /// A field's schema from a small grammar of the keywords the check understands.
        fn field() -> impl Strategy<Value = Value> {
            let types = prop::sample::select(vec![
                json!("number"),
                json!("integer"),
                json!("string"),
                json!(["number", "null"]),
                json!(["string", "null"]),
            ]);
            (
                prop::option::of(types),
                prop::option::of(-2i64..3),
                prop::option::of(-2i64..3),
                prop::option::of(0u64..3),
                prop::option::of(prop::sample::subsequence(
                    vec![json!(1), json!("x"), json!(null), json!(2.5)],
                    1..3,
                )),
                any::<bool>(),
            )
                .prop_map(|(ty, min, max, max_len, listed, exclusive)| {
                    let mut s = serde_json::Map::new();
                    if let Some(t) = ty {
                        s.insert("type".into(), t);
                    }
                    if let Some(m) = min {
                        let k = if exclusive {
                            "exclusiveMinimum"
                        } else {
                            "minimum"
                        };
                        s.insert(k.into(), json!(m));
                    }
                    if let Some(m) = max {
                        s.insert("maximum".into(), json!(m));
                    }
                    if let Some(l) = max_len {
                        s.insert("maxLength".into(), json!(l));
                    }
                    if let Some(values) = listed {
                        s.insert("enum".into(), Value::Array(values));
                    }
                    Value::Object(s)
                })
        }

        fn schema() -> impl Strategy<Value = Value> {
            (
                prop::collection::btree_map(
                    prop::sample::select(vec!["a", "b", "c"]),
                    field(),
                    0..3,
                ),
                prop::sample::subsequence(vec!["a", "b", "c"], 0..3),
                prop::option::of(prop_oneof![Just(json!(false)), field()]),
            )
                .prop_map(|(props, required, more)| {
                    let mut s =
                        json!({"type": "object", "properties": props, "required": required});
                    if let Some(m) = more {
                        s["additionalProperties"] = m;
                    }
                    s
                })
        }

        fn instance() -> impl Strategy<Value = Value> {
            let value = prop::sample::select(vec![
                json!(null),
                json!(-3),
                json!(-2),
                json!(0),
                json!(1),
                json!(2.5),
                json!(2),
                json!(7),
                json!(""),
                json!("x"),
                json!("xyz"),
                json!(true),
            ]);
            prop::collection::btree_map(prop::sample::select(vec!["a", "b", "c", "d"]), value, 0..4)
                .prop_map(|m| json!(m))
        }

        fn valid(schema: &Value, instance: &Value) -> bool {
            jsonschema::validator_for(schema)
                .unwrap()
                .is_valid(instance)
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(3000))]

            /// A change reported compatible never refuses an event it promised to read.
            #[test]
            fn compatible_means_every_event_is_still_read(old in schema(), new in schema(), instances in prop::collection::vec(instance(), 24)) {
                let b = backward(&old, &new).is_empty();
                let f = forward(&old, &new).is_empty();
                for i in &instances {
                    if b && valid(&old, i) {
                        prop_assert!(valid(&new, i), "backward passed, yet {i} valid under {old} is refused by {new}");
                    }
                    if f && valid(&new, i) {
                        prop_assert!(valid(&old, i), "forward passed, yet {i} valid under {new} is refused by {old}");
                    }
                }
            }
        }
    }

    #[test]
    fn modes_check_the_previous_version_or_every_earlier_one() {
        let v1 = json!({"properties": {"a": {"type": "number"}}});
        let v2 = json!({"properties": {"a": {"type": "number", "maximum": 10}}});
        let v3 = json!({"properties": {"a": {"type": "number", "maximum": 5}}});
        let versions = [("1", &v1), ("2", &v2), ("3", &v3)];
        // Forward: each new version's events read by the previous one: all tighten, all pass.
        assert!(check_versions(Compatibility::Forward, &versions).is_empty());
        assert!(check_versions(Compatibility::None, &versions).is_empty());
        let found = check_versions(Compatibility::Backward, &versions);
        let pairs: Vec<(&str, &str)> = found
            .iter()
            .map(|i| (i.old.as_str(), i.new.as_str()))
            .collect();
        assert_eq!(pairs, [("1", "2"), ("2", "3")]);
        let transitive = check_versions(Compatibility::BackwardTransitive, &versions);
        assert_eq!(transitive.len(), 3);
        let full = check_versions(Compatibility::Full, &versions);
        assert!(full.iter().all(|i| i.direction == "backward"), "{full:?}");
        assert_eq!(
            found[0].to_string(),
            "version 2 is not backward compatible with version 1: /a: maximum_added (none → 10)"
        );
    }
}
