//! Configuration errors: each names where the value came from, the key and the problem, and
//! [`ConfigErrors`] carries all of them so a user fixes a file in one pass.

use std::fmt;

/// One problem in the configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// Where the value came from: the config file's path or an environment variable's name.
    pub origin: String,
    /// Dotted key, e.g. `tenants.tenant-a.datasets.air-quality.schema`.
    pub key: String,
    /// What is wrong, naming the value and the rule.
    pub problem: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.key.is_empty() {
            write!(f, "{}: {}", self.origin, self.problem)
        } else {
            write!(f, "{}: {}: {}", self.origin, self.key, self.problem)
        }
    }
}

/// Every problem found in one configuration, in the order found.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl ConfigErrors {
    /// Whether any error mentions `needle` in its key or problem (for tests and tooling).
    pub fn mentions(&self, key: &str, problem_part: &str) -> bool {
        self.0
            .iter()
            .any(|e| e.key == key && e.problem.contains(problem_part))
    }
}

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.0.len();
        writeln!(
            f,
            "{n} configuration error{}:",
            if n == 1 { "" } else { "s" }
        )?;
        for e in &self.0 {
            writeln!(f, "  - {e}")?;
        }
        Ok(())
    }
}
