//! Settings owned by components. A sink's store is configured by a table named after its kind
//! (`[sinks.lake.parquet]`), a dataset's processing by lists named after their step kind
//! (`rules = [...]`); this crate reads the part every sink or dataset shares and keeps the
//! kind's table as written. The crate that implements the kind checks and reads that table, through
//! the [`ComponentKinds`] registry it hands to [`load`](crate::load), so all problems are still
//! reported at once and a new kind needs no edit here.

use std::fmt;

use serde::de::DeserializeOwned;

/// The table of one component kind, as written in the file.
#[derive(Debug, Clone, PartialEq)]
pub struct ComponentSettings {
    /// The kind, e.g. `csv`: the table's key.
    pub kind: String,
    /// Dotted key of the table, e.g. `sinks.lake.parquet`, for messages.
    pub at: String,
    /// The table.
    pub table: serde_json::Value,
}

impl ComponentSettings {
    /// The settings of kind `kind` at `at`.
    pub fn new(kind: impl Into<String>, at: impl Into<String>, table: serde_json::Value) -> Self {
        Self {
            kind: kind.into(),
            at: at.into(),
            table,
        }
    }

    /// The full key of `problem`: `sinks.lake.parquet.roll_rows`, `...processing.rules[0].min`.
    pub fn key_of(&self, problem: &Problem) -> String {
        if problem.key.is_empty() {
            self.at.clone()
        } else if problem.key.starts_with('[') {
            format!("{}{}", self.at, problem.key)
        } else {
            format!("{}.{}", self.at, problem.key)
        }
    }

    /// The table read as the kind's config type. An error names the key below the table
    /// (`roll_rows`) and what serde expected.
    pub fn parse<T: DeserializeOwned>(&self) -> Result<T, Problem> {
        serde_path_to_error::deserialize(&self.table).map_err(|e| {
            let key = e.path().to_string();
            Problem {
                key: if key == "." { String::new() } else { key },
                problem: e.into_inner().to_string(),
            }
        })
    }
}

/// A problem in a component's table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// Dotted key below the table (`roll_rows`), or empty for the table itself.
    pub key: String,
    /// What is wrong, naming the value and the rule.
    pub problem: String,
}

impl Problem {
    /// A problem at `key` below the table (empty: the table itself).
    pub fn new(key: impl Into<String>, problem: impl Into<String>) -> Self {
        Self {
            key: key.into(),
            problem: problem.into(),
        }
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.key.is_empty() {
            f.write_str(&self.problem)
        } else {
            write!(f, "{}: {}", self.key, self.problem)
        }
    }
}

/// The kinds of one section's components, listed by the crate that implements them.
pub trait ComponentKinds: Sync {
    /// The section the kinds are configured under, e.g. `sinks`.
    fn section(&self) -> &'static str;

    /// Every problem in `settings`; an unknown kind is one.
    fn check(&self, settings: &ComponentSettings) -> Vec<Problem>;
}
