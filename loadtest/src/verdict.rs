//! Pass/fail criteria: what was expected, what was measured, and the outcome.

use serde::{Deserialize, Serialize};

/// How a criterion came out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    Pass,
    Fail,
    /// Not measurable on this target (e.g. replica processes of a remote platform).
    Skipped,
}

/// One criterion of a scenario.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Criterion {
    pub name: String,
    pub expected: String,
    pub measured: String,
    pub outcome: Outcome,
}

impl Criterion {
    /// A criterion that passed when `pass`.
    pub fn check(
        name: impl Into<String>,
        expected: impl Into<String>,
        measured: impl Into<String>,
        pass: bool,
    ) -> Criterion {
        Criterion {
            name: name.into(),
            expected: expected.into(),
            measured: measured.into(),
            outcome: if pass { Outcome::Pass } else { Outcome::Fail },
        }
    }

    /// A criterion that could not be measured, and why.
    pub fn skipped(
        name: impl Into<String>,
        expected: impl Into<String>,
        why: impl Into<String>,
    ) -> Criterion {
        Criterion {
            name: name.into(),
            expected: expected.into(),
            measured: why.into(),
            outcome: Outcome::Skipped,
        }
    }

    pub fn passed(&self) -> bool {
        self.outcome != Outcome::Fail
    }
}

/// Whether every criterion passed (skipped ones do not fail a run).
pub fn all_passed(criteria: &[Criterion]) -> bool {
    criteria.iter().all(Criterion::passed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn skipped_does_not_fail_but_fail_does() {
        let mut c = vec![
            Criterion::check("a", "0", "0", true),
            Criterion::skipped("b", "x", "remote target"),
        ];
        assert!(all_passed(&c));
        c.push(Criterion::check("c", "0 errors", "3 errors", false));
        assert!(!all_passed(&c));
        assert_eq!(c[2].outcome, Outcome::Fail);
    }
}
