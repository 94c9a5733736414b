//! The platform's readiness as its components report it: a component that cannot serve (the
//! managed broker while it restarts, say) marks itself down with a reason, and `/readyz` answers
//! 503 with that reason until it marks itself up again. Shared by cloning; no I/O.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};

/// How one component is doing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Condition {
    /// Serving.
    Up,
    /// Serving with less redundancy than configured (e.g. one of three broker nodes is down).
    Degraded(String),
    /// Not serving; the platform is not ready.
    Down(String),
}

/// Conditions by component name; clones share them.
#[derive(Debug, Clone, Default)]
pub struct Health {
    components: Arc<Mutex<BTreeMap<String, Condition>>>,
}

impl Health {
    /// A health registry with no component reported yet (ready).
    pub fn new() -> Self {
        Self::default()
    }

    /// Records `component`'s condition, replacing the previous one.
    pub fn set(&self, component: &str, condition: Condition) {
        self.components
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(component.to_owned(), condition);
    }

    /// Every component that is not up, with its condition, by name.
    pub fn problems(&self) -> Vec<(String, Condition)> {
        self.components
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .filter(|(_, c)| **c != Condition::Up)
            .map(|(n, c)| (n.clone(), c.clone()))
            .collect()
    }

    /// `Err` with the reasons of every component that is down; degraded components are ready.
    pub fn ready(&self) -> Result<(), String> {
        let down: Vec<String> = self
            .problems()
            .into_iter()
            .filter_map(|(name, c)| match c {
                Condition::Down(reason) => Some(format!("{name}: {reason}")),
                _ => None,
            })
            .collect();
        if down.is_empty() {
            Ok(())
        } else {
            Err(down.join("; "))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_down_component_makes_the_platform_unready_until_it_is_up_again() {
        let health = Health::new();
        let seen_by_gateway = health.clone();
        assert_eq!(seen_by_gateway.ready(), Ok(()));
        health.set("broker", Condition::Down("node 1 exited".into()));
        assert_eq!(
            seen_by_gateway.ready(),
            Err("broker: node 1 exited".to_owned())
        );
        health.set("broker", Condition::Degraded("node 2 of 3 down".into()));
        assert_eq!(seen_by_gateway.ready(), Ok(()));
        assert_eq!(seen_by_gateway.problems().len(), 1);
        health.set("broker", Condition::Up);
        assert!(seen_by_gateway.problems().is_empty());
    }
}
