//! Revisions: immutable snapshots of one component's spec and their life cycle.
//!
//! A revision is what one version of a component (predictor, transformer, explainer) runs.
//! [`ServiceRevisions`] is everything the control plane keeps about one InferenceService:
//! each component's revisions with their states and its rollout bookkeeping (which revision
//! is rolled out, [`Rollout`]). Nothing else is stored; the traffic plan and the status are
//! derived from it by [`crate::traffic`].
//!
//! # Naming and when a revision is made
//! [`ServiceRevisions::sync`] compares each component's spec (a `serde_json::Value` of
//! `spec.predictor`, `spec.transformer`, `spec.explainer`) with the spec of that component's
//! latest revision, by a SHA-256 of its canonical JSON (object keys sorted, no whitespace)
//! taken with `canaryTrafficPercent` removed ([`spec_hash`]). A different hash creates
//! `NAME-<component>-0000N`: five digits (more past 99,999), counting per service and
//! component from 1, never reused — not even when a component is removed and added again.
//! The service's metadata is not part of any component spec, so a change to it alone makes
//! no revision; neither does a change to `canaryTrafficPercent` alone, which only moves
//! traffic.
//!
//! A spec put back to an earlier one (a rollback) makes a *new* revision, as Knative does:
//! Knative names a revision after its Configuration's generation (`%05d` of
//! `metadata.generation`, `pkg/reconciler/configuration/resources/revision.go`), and looks the
//! latest created revision up by that generation (`latestCreatedRevision` in
//! `pkg/reconciler/configuration/configuration.go`), so every template change — to an old
//! template too — is a new generation and a new revision; KServe only writes the Knative
//! Service's template. The old revision stays in the history.
//!
//! # Life cycle
//! ```text
//! Created ──► Pulling ──► Loading ──► Ready
//!    │  └──────────────────►│ ▲          │
//!    │           │          │ │          │ (restart / recovery: Ready ──► Loading)
//!    └───────────┴──────────┴─┼──► Failed(reason) ◄───┘
//!                             └──────────┘ (retry: Failed ──► Pulling | Loading)
//! ```
//! `Created → Loading` skips the pull when there is nothing to download. A `Ready` revision
//! can fail (its replicas crash) and can go back to `Loading` (a restart, or the platform
//! recovering it after its own restart); a `Failed` one is retried by going to `Pulling` or
//! `Loading`. Every other move, a move to the state a revision is already in and a move
//! stamped earlier than the revision's last one are errors. Each transition keeps its time,
//! which the status uses as `lastTransitionTime`.
//!
//! # Public API
//! - [`ServiceRevisions::new`], [`ServiceRevisions::sync`] (spec → created/removed
//!   revisions), [`ServiceRevisions::transition`] (a backend's report), [`ServiceRevisions::revision`],
//!   [`ServiceRevisions::component`], [`ServiceRevisions::record`] (store a derived plan's
//!   rollout bookkeeping).
//! - [`Revision`], [`RevisionState`], [`Transition`], [`Component`], [`Rollout`],
//!   [`Timestamp`]; [`component_specs`], [`spec_hash`], [`revision_name`].

mod time;

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

pub use time::{ParseTimestampError, Timestamp};

/// The field of a component spec that moves traffic and is not part of a revision.
pub const CANARY_TRAFFIC_PERCENT: &str = "canaryTrafficPercent";

/// What can go wrong keeping revisions.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// A component spec is not a JSON object (or the predictor is missing).
    #[error("{path}: {reason}")]
    InvalidSpec { path: String, reason: String },
    /// No revision has this name.
    #[error("revision {0:?}: no such revision")]
    UnknownRevision(String),
    /// The life cycle does not allow this move.
    #[error("revision {revision:?}: cannot go from {from} to {to}")]
    InvalidTransition { revision: String, from: &'static str, to: &'static str },
    /// A transition stamped before the revision's last one.
    #[error(
        "revision {revision:?}: transition to {to} at {at} is earlier than its last one at {last}"
    )]
    TimeWentBack { revision: String, to: &'static str, at: Timestamp, last: Timestamp },
    /// The per-component counter cannot go further.
    #[error("{component} of {service:?}: revision numbers exhausted")]
    NumbersExhausted { service: String, component: Component },
}

/// This module's result.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// One of an InferenceService's components.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Component {
    Predictor,
    Transformer,
    Explainer,
}

impl Component {
    /// Every component, in KServe's order (the order of its aggregated conditions).
    pub const ALL: [Component; 3] =
        [Component::Predictor, Component::Transformer, Component::Explainer];

    /// `predictor`, `transformer` or `explainer`: the spec key and the name infix.
    pub const fn as_str(self) -> &'static str {
        match self {
            Component::Predictor => "predictor",
            Component::Transformer => "transformer",
            Component::Explainer => "explainer",
        }
    }
}

impl fmt::Display for Component {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where a revision is in its life cycle.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state")]
pub enum RevisionState {
    /// Recorded; nothing started yet.
    Created,
    /// Its model is being downloaded.
    Pulling,
    /// Its replicas are starting and loading the model.
    Loading,
    /// Its model answers ready: it may take traffic.
    Ready,
    /// It cannot serve, for `reason`.
    Failed { reason: String },
}

impl RevisionState {
    /// The state's name (`Failed` without its reason).
    pub fn name(&self) -> &'static str {
        match self {
            RevisionState::Created => "Created",
            RevisionState::Pulling => "Pulling",
            RevisionState::Loading => "Loading",
            RevisionState::Ready => "Ready",
            RevisionState::Failed { .. } => "Failed",
        }
    }

    /// Whether the revision may take traffic.
    pub fn is_ready(&self) -> bool {
        matches!(self, RevisionState::Ready)
    }

    /// The failure reason, when failed.
    pub fn failure(&self) -> Option<&str> {
        match self {
            RevisionState::Failed { reason } => Some(reason),
            _ => None,
        }
    }

    /// Whether the life cycle allows going from `self` to `next` (see the module docs).
    pub fn can_become(&self, next: &RevisionState) -> bool {
        use RevisionState::*;
        matches!(
            (self, next),
            (Created, Pulling | Loading | Failed { .. })
                | (Pulling, Loading | Failed { .. })
                | (Loading, Ready | Failed { .. })
                | (Ready, Loading | Failed { .. })
                | (Failed { .. }, Pulling | Loading)
        )
    }
}

/// One entry of a revision's history: the state it entered and when.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Transition {
    #[serde(flatten)]
    pub state: RevisionState,
    pub at: Timestamp,
}

/// An immutable snapshot of one component spec, with its life cycle.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", try_from = "RevisionRepr")]
pub struct Revision {
    /// `NAME-<component>-0000N`.
    pub name: String,
    pub component: Component,
    /// `N` in the name.
    pub number: u32,
    /// The component spec it runs, without `canaryTrafficPercent`.
    pub spec: Value,
    /// [`spec_hash`] of `spec`.
    pub spec_hash: String,
    /// Every state it entered, oldest first; the first is `Created`.
    history: Vec<Transition>,
}

impl Revision {
    fn new(
        name: String,
        component: Component,
        number: u32,
        spec: Value,
        at: Timestamp,
    ) -> Revision {
        let spec_hash = spec_hash(&spec);
        Revision {
            name,
            component,
            number,
            spec,
            spec_hash,
            history: vec![Transition { state: RevisionState::Created, at }],
        }
    }

    /// The current state.
    pub fn state(&self) -> &RevisionState {
        &self.last().state
    }

    /// When it entered its current state.
    pub fn since(&self) -> Timestamp {
        self.last().at
    }

    /// When it was created.
    pub fn created_at(&self) -> Timestamp {
        self.history[0].at
    }

    /// Every state it entered, oldest first.
    pub fn history(&self) -> &[Transition] {
        &self.history
    }

    /// Moves to `to` at `at`, if the life cycle allows it and `at` is not before the last move.
    pub fn transition(&mut self, to: RevisionState, at: Timestamp) -> Result<()> {
        let last = self.last();
        if !last.state.can_become(&to) {
            return Err(Error::InvalidTransition {
                revision: self.name.clone(),
                from: last.state.name(),
                to: to.name(),
            });
        }
        if at < last.at {
            return Err(Error::TimeWentBack {
                revision: self.name.clone(),
                to: to.name(),
                at,
                last: last.at,
            });
        }
        self.history.push(Transition { state: to, at });
        Ok(())
    }

    fn last(&self) -> &Transition {
        // Never empty: `new` starts the history, deserializing refuses an empty one
        // (`RevisionRepr`) and nothing removes from it.
        &self.history[self.history.len() - 1]
    }
}

/// A revision as written in a state file, checked before it becomes a [`Revision`].
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RevisionRepr {
    name: String,
    component: Component,
    number: u32,
    spec: Value,
    spec_hash: String,
    history: Vec<Transition>,
}

impl TryFrom<RevisionRepr> for Revision {
    type Error = String;

    fn try_from(r: RevisionRepr) -> Result<Revision, String> {
        if r.history.first().map(|t| &t.state) != Some(&RevisionState::Created) {
            return Err(format!("revision {:?}: history must start with Created", r.name));
        }
        if let Some(w) =
            r.history.windows(2).find(|w| w[1].at < w[0].at || !w[0].state.can_become(&w[1].state))
        {
            return Err(format!(
                "revision {:?}: history goes from {} to {} at {}",
                r.name,
                w[0].state.name(),
                w[1].state.name(),
                w[1].at
            ));
        }
        Ok(Revision {
            name: r.name,
            component: r.component,
            number: r.number,
            spec: r.spec,
            spec_hash: r.spec_hash,
            history: r.history,
        })
    }
}

/// Which revisions of a component have been rolled out with all its traffic, as KServe
/// records them in `latestRolledoutRevision` / `previousRolledoutRevision`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Rollout {
    /// The revision last rolled out with 100 %: the one a canary splits traffic against.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latest: Option<String>,
    /// The one rolled out before it (where `canaryTrafficPercent` set on a promoted
    /// revision sends traffic back).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous: Option<String>,
}

/// One component's revisions.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ComponentRevisions {
    /// The number of the last revision created (0 before the first); never decreases.
    pub last_number: u32,
    /// Revisions oldest first; empty while the component is not in the spec.
    pub revisions: Vec<Revision>,
    pub rollout: Rollout,
}

impl ComponentRevisions {
    /// The latest created revision.
    pub fn latest_created(&self) -> Option<&Revision> {
        self.revisions.last()
    }

    /// The newest revision that is ready now (Knative's `LatestReadyRevisionName`, found the
    /// same way: newest first, the first ready one).
    pub fn latest_ready(&self) -> Option<&Revision> {
        self.revisions.iter().rev().find(|r| r.state().is_ready())
    }

    /// The revision named `name`.
    pub fn get(&self, name: &str) -> Option<&Revision> {
        self.revisions.iter().find(|r| r.name == name)
    }
}

/// What [`ServiceRevisions::sync`] changed: revisions to start and revisions to stop.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Synced {
    /// Names of the revisions created, in component order.
    pub created: Vec<String>,
    /// Names of the revisions dropped because their component left the spec.
    pub removed: Vec<String>,
}

/// Everything the control plane keeps about one InferenceService.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ServiceRevisions {
    /// The InferenceService's name (the revision names' prefix).
    pub name: String,
    pub components: BTreeMap<Component, ComponentRevisions>,
}

impl ServiceRevisions {
    /// No revisions yet for the service `name`.
    pub fn new(name: impl Into<String>) -> ServiceRevisions {
        ServiceRevisions { name: name.into(), components: BTreeMap::new() }
    }

    /// Brings the revisions in line with `spec` (the InferenceService's `spec` object) at
    /// `at`: a component whose spec differs from its latest revision's (see the module docs)
    /// gets a new revision; a component no longer in the spec loses its revisions and its
    /// rollout bookkeeping but keeps its counter. Calling it again with the same spec
    /// changes nothing.
    pub fn sync(&mut self, spec: &Value, at: Timestamp) -> Result<Synced> {
        let specs = component_specs(spec)?;
        let mut synced = Synced::default();
        for component in Component::ALL {
            match specs.get(&component) {
                Some(component_spec) => {
                    let stripped = revision_spec(component_spec);
                    let hash = spec_hash(&stripped);
                    let entry =
                        self.components.entry(component).or_insert_with(|| ComponentRevisions {
                            last_number: 0,
                            revisions: Vec::new(),
                            rollout: Rollout::default(),
                        });
                    if entry.latest_created().is_some_and(|r| r.spec_hash == hash) {
                        continue;
                    }
                    let number = entry.last_number.checked_add(1).ok_or_else(|| {
                        Error::NumbersExhausted { service: self.name.clone(), component }
                    })?;
                    let name = revision_name(&self.name, component, number);
                    entry.last_number = number;
                    entry.revisions.push(Revision::new(
                        name.clone(),
                        component,
                        number,
                        stripped,
                        at,
                    ));
                    synced.created.push(name);
                }
                None => {
                    if let Some(entry) = self.components.get_mut(&component) {
                        synced.removed.extend(entry.revisions.drain(..).map(|r| r.name));
                        entry.rollout = Rollout::default();
                    }
                }
            }
        }
        Ok(synced)
    }

    /// Moves the revision `revision` to `to` at `at` (see [`Revision::transition`]).
    pub fn transition(
        &mut self,
        revision: &str,
        to: RevisionState,
        at: Timestamp,
    ) -> Result<&Revision> {
        let found = self
            .components
            .values_mut()
            .flat_map(|c| c.revisions.iter_mut())
            .find(|r| r.name == revision)
            .ok_or_else(|| Error::UnknownRevision(revision.to_owned()))?;
        found.transition(to, at)?;
        Ok(found)
    }

    /// The revision named `name`, in any component.
    pub fn revision(&self, name: &str) -> Option<&Revision> {
        self.revisions().find(|r| r.name == name)
    }

    /// Every revision, by component then age.
    pub fn revisions(&self) -> impl Iterator<Item = &Revision> {
        self.components.values().flat_map(|c| c.revisions.iter())
    }

    /// One component's revisions, if it ever had any.
    pub fn component(&self, component: Component) -> Option<&ComponentRevisions> {
        self.components.get(&component)
    }

    /// Stores `rollout` as `component`'s bookkeeping: what the traffic plan derived (call it
    /// with each `traffic::ComponentPlan`'s `rollout` after deriving, so the next derivation
    /// starts from it). Names that are not revisions of the component are dropped.
    pub fn record(&mut self, component: Component, rollout: &Rollout) {
        if let Some(entry) = self.components.get_mut(&component) {
            let known = |name: &Option<String>| name.clone().filter(|n| entry.get(n).is_some());
            entry.rollout =
                Rollout { latest: known(&rollout.latest), previous: known(&rollout.previous) };
        }
    }

    /// Checks a deserialized value (e.g. read back from a state file; each revision's
    /// history was checked as it was read): names and numbers match the service and
    /// component, numbers grow and do not pass `last_number`.
    pub fn validate(&self) -> Result<()> {
        for (&component, entry) in &self.components {
            let mut previous = 0;
            for r in &entry.revisions {
                let bad = |reason: String| Error::InvalidSpec {
                    path: format!("revisions.{component}.{}", r.name),
                    reason,
                };
                if r.component != component
                    || r.name != revision_name(&self.name, component, r.number)
                {
                    return Err(bad(format!(
                        "name does not match service {:?} and {component}",
                        self.name
                    )));
                }
                if r.number <= previous || r.number > entry.last_number {
                    return Err(bad(format!(
                        "number {} out of order (last {})",
                        r.number, entry.last_number
                    )));
                }
                previous = r.number;
            }
        }
        Ok(())
    }
}

/// `NAME-<component>-0000N`.
pub fn revision_name(service: &str, component: Component, number: u32) -> String {
    format!("{service}-{component}-{number:05}")
}

/// The component specs in an InferenceService `spec`: `predictor` (required) and
/// `transformer` / `explainer` when present and not null. Each must be a JSON object.
pub fn component_specs(spec: &Value) -> Result<BTreeMap<Component, &Value>> {
    let Some(object) = spec.as_object() else {
        return Err(Error::InvalidSpec {
            path: "spec".into(),
            reason: format!("must be an object, got {}", kind(spec)),
        });
    };
    let mut specs = BTreeMap::new();
    for component in Component::ALL {
        match object.get(component.as_str()) {
            None | Some(Value::Null) if component == Component::Predictor => {
                return Err(Error::InvalidSpec {
                    path: "spec.predictor".into(),
                    reason: "required".into(),
                });
            }
            None | Some(Value::Null) => {}
            Some(v @ Value::Object(_)) => {
                specs.insert(component, v);
            }
            Some(other) => {
                return Err(Error::InvalidSpec {
                    path: format!("spec.{component}"),
                    reason: format!("must be an object, got {}", kind(other)),
                });
            }
        }
    }
    Ok(specs)
}

/// The part of a component spec a revision snapshots: all of it but `canaryTrafficPercent`.
pub fn revision_spec(component_spec: &Value) -> Value {
    let mut spec = component_spec.clone();
    if let Some(object) = spec.as_object_mut() {
        object.remove(CANARY_TRAFFIC_PERCENT);
    }
    spec
}

/// SHA-256 (lowercase hex) of the canonical JSON of `component_spec` without
/// `canaryTrafficPercent`: object keys sorted, no whitespace, so two specs that differ only
/// in key order or in that field hash the same.
pub fn spec_hash(component_spec: &Value) -> String {
    let mut canonical = String::new();
    write_canonical(&revision_spec(component_spec), &mut canonical);
    let digest = Sha256::digest(canonical.as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

fn write_canonical(value: &Value, out: &mut String) {
    match value {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push('{');
            for (i, key) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String(key.clone()).to_string());
                out.push(':');
                write_canonical(&map[key], out);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(item, out);
            }
            out.push(']');
        }
        scalar => out.push_str(&scalar.to_string()),
    }
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests;
