//! Traffic plans and the status derived from (spec, revisions, rollout bookkeeping).
//!
//! This is KFServing 0.5's "simplified canary rollout" as KServe implements it over Knative,
//! folded into one pure function, [`derive()`]. Per component:
//!
//! - **Plan** (KServe `ksvc_reconciler.go`, `createKnativeService`): with
//!   `canaryTrafficPercent: P` and a revision already rolled out, the latest ready revision
//!   gets `P` % (the entry with `latestRevision: true`) and the last rolled-out revision
//!   `100 − P` % (tag `prev`; left out when `P` is 100). Without `canaryTrafficPercent`, or
//!   before anything was rolled out, the latest ready revision gets 100 %. `P = 0` pins all
//!   traffic to the rolled-out revision. The `latest` tag is given only when the annotation
//!   `serving.kserve.io/enable-tag-routing: "true"` asks for it; `prev` always, as KServe does.
//! - **Resolution** (Knative's Route): `latestRevision: true` means the newest revision that
//!   is `Ready` now, so a revision still loading, or one that failed, takes no traffic: it
//!   stays on what was serving. A `prev` entry whose revision is not ready (it failed, or is
//!   reloading) keeps its tag at 0 % and its share goes to the latest ready revision; the
//!   route condition says why. With no ready revision at all the component has no traffic.
//! - **Bookkeeping** (KServe `PropagateStatus`): when the `latestRevision` entry carries
//!   100 % of the plan and its revision is not yet the rolled-out one, the rolled-out
//!   revision becomes `previousRolledoutRevision` and the latest ready one
//!   `latestRolledoutRevision` (a promotion). When the latest revision is the rolled-out one
//!   and `canaryTrafficPercent` moves traffic off it while all of it still lands on it, the
//!   rolled-out revision goes back to the previous one (so `canaryTrafficPercent: 0` after a
//!   promotion pins the revision rolled out before). KServe settles these over successive
//!   reconciles; [`derive()`] iterates to the same fixed point at once. The share a failed
//!   `prev` loses to the latest revision is not a promotion: bookkeeping reads the plan,
//!   not the fallback.
//! - **Conditions** (Knative's Configuration/Route/Service, KServe's
//!   `PropagateCrossComponentStatus` and ingress reconciler): `<C>ConfigurationReady`
//!   follows the latest *created* revision (`False`/`RevisionFailed` with its failure
//!   message), `<C>RouteReady` the traffic (`RevisionMissing` when nothing is ready or a `prev`
//!   revision is not), `<C>Ready` is Knative's happy condition over the two (the last `False`,
//!   else the last `Unknown`, in that order); `RoutesReady` / `LatestDeploymentReady`
//!   aggregate the components (`"<type> not ready"`), `IngressReady` needs each component
//!   ready (`"Predictor ingress not created"`, …) and `Ready` is the happy condition over
//!   `PredictorReady` and `IngressReady`. Conditions are sorted by type; each
//!   `lastTransitionTime` is the time of the revision transition that gave it its value.
//!
//! Status is derived, never stored alone: the only state is [`ServiceRevisions`] (revisions,
//! their states, each component's [`Rollout`]).
//!
//! # Using it from a reconcile loop
//! ```
//! use std::collections::{BTreeMap, HashMap};
//! use oxserve_controller::revision::{RevisionState, ServiceRevisions, Timestamp};
//! use oxserve_controller::traffic::{self, Service};
//!
//! let spec = serde_json::json!({"predictor": {"sklearn": {"storageUri": "gs://models/iris"}}});
//! let annotations = BTreeMap::new();
//! let service = Service { name: "iris", namespace: "default", spec: &spec, annotations: &annotations, domain: "example.com" };
//! let mut revisions = ServiceRevisions::new("iris");
//! let now = Timestamp::from_unix(1_796_299_200);
//! let synced = revisions.sync(&spec, now)?; // start synced.created, stop synced.removed
//! revisions.transition("iris-predictor-00001", RevisionState::Loading, now)?;
//! revisions.transition("iris-predictor-00001", RevisionState::Ready, now)?; // as the backend reports
//! let derived = traffic::derive(&service, &revisions)?;
//! derived.record(&mut revisions); // keep the rollout bookkeeping for the next derivation
//! let route = traffic::service_route(&service, &derived.plan, &revisions, &HashMap::new(), &[]);
//! assert!(derived.status.is_ready());
//! assert_eq!(route.entry.targets[0].revision, "iris-predictor-00001");
//! # Ok::<(), oxserve_controller::revision::Error>(())
//! ```
//!
//! # Public API
//! [`Service`], [`derive()`] → [`Derived`] (`plan`: [`ServicePlan`] of [`ComponentPlan`]s,
//! `status`: [`status::ServiceStatus`]), [`Derived::record`], [`service_route`],
//! [`canary_traffic_percent`]; the status types and condition-type constants in [`status`].
//! `oxserve_api::isvc::InferenceServiceStatus: From<&status::ServiceStatus>` gives the API
//! type, with the same JSON.
//!
//! The status also carries `modelStatus` (KServe's `UpdateModelRevisionStates` over the
//! predictor's latest created revision: `InProgress` / `UpToDate` / `BlockedByFailedLoad`,
//! and `lastFailureInfo` with the failure reason). Tag URLs follow Knative's default tag
//! template on the component's host: `http://prev-NAME-predictor.NS.DOMAIN`.

mod api;
mod route;
pub mod status;

use std::collections::BTreeMap;

use serde_json::Value;

use crate::revision::{
    CANARY_TRAFFIC_PERCENT, Component, ComponentRevisions, Error, Result, Revision, Rollout,
    ServiceRevisions, Timestamp, component_specs,
};
pub use route::service_route;
use status::{
    ComponentStatus, Condition, ConditionStatus, FailureInfo, INGRESS_READY,
    LATEST_DEPLOYMENT_READY, MODEL_LOAD_FAILED, ModelRevisionStates, ModelState, ModelStatus,
    PREDICTOR_READY, READY, ROUTES_READY, ServiceStatus, TrafficTarget, TransitionStatus,
    component_condition_types, reason,
};

/// The annotation that turns the `latest` tag on (KServe's `EnableRoutingTagAnnotationKey`).
pub const ENABLE_TAG_ROUTING_ANNOTATION: &str = "serving.kserve.io/enable-tag-routing";
/// The tag of the entry that follows the latest ready revision.
pub const TAG_LATEST: &str = "latest";
/// The tag of the entry that keeps the rolled-out revision during a canary.
pub const TAG_PREV: &str = "prev";

/// An InferenceService as the traffic plan reads it.
#[derive(Clone, Copy, Debug)]
pub struct Service<'a> {
    pub name: &'a str,
    pub namespace: &'a str,
    /// Its `spec` object (`predictor`, `transformer`, `explainer`).
    pub spec: &'a Value,
    /// Its `metadata.annotations`.
    pub annotations: &'a BTreeMap<String, String>,
    /// The domain its hosts end in (`example.com`).
    pub domain: &'a str,
}

impl Service<'_> {
    /// `NAME.NS.DOMAIN`.
    pub fn host(&self) -> String {
        format!("{}.{}.{}", self.name, self.namespace, self.domain)
    }

    /// `NAME-COMPONENT.NS.DOMAIN`.
    pub fn component_host(&self, component: Component) -> String {
        format!("{}-{component}.{}.{}", self.name, self.namespace, self.domain)
    }

    fn tag_routing(&self) -> bool {
        self.annotations.get(ENABLE_TAG_ROUTING_ANNOTATION).is_some_and(|v| v == "true")
    }
}

/// One component's derived traffic and conditions.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ComponentPlan {
    pub component: Component,
    pub latest_created: Option<String>,
    pub latest_ready: Option<String>,
    /// The rollout bookkeeping after this derivation (store it: [`Derived::record`]).
    pub rollout: Rollout,
    /// Where traffic goes, as `status.components.<c>.traffic` shows it; percents sum to
    /// 100 unless the component has no ready revision (then it is empty).
    pub traffic: Vec<TrafficTarget>,
    /// `<C>ConfigurationReady`.
    pub configuration: Condition,
    /// `<C>RouteReady` (`ExplainerRoutesReady`).
    pub route: Condition,
    /// `<C>Ready`.
    pub ready: Condition,
}

/// Every component in the spec, planned.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ServicePlan {
    pub components: BTreeMap<Component, ComponentPlan>,
}

/// What [`derive()`] returns.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Derived {
    pub plan: ServicePlan,
    pub status: ServiceStatus,
}

impl Derived {
    /// Stores each component's rollout bookkeeping in `revisions`, so the next derivation
    /// starts from it. Deriving again before or after recording gives the same result.
    pub fn record(&self, revisions: &mut ServiceRevisions) {
        for (&component, plan) in &self.plan.components {
            revisions.record(component, &plan.rollout);
        }
    }
}

/// `canaryTrafficPercent` of a component spec: absent or null is `None`; otherwise an
/// integer from 0 to 100.
pub fn canary_traffic_percent(component: Component, component_spec: &Value) -> Result<Option<u32>> {
    match component_spec.get(CANARY_TRAFFIC_PERCENT) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => match v.as_u64() {
            Some(p) if p <= 100 => Ok(Some(p as u32)),
            _ => Err(Error::InvalidSpec {
                path: format!("spec.{component}.{CANARY_TRAFFIC_PERCENT}"),
                reason: format!("must be an integer from 0 to 100, got {v}"),
            }),
        },
    }
}

/// The traffic plan and the status of `service`, from its revisions and their rollout
/// bookkeeping alone. Errors only on a spec that is not an InferenceService spec (see
/// [`component_specs`], [`canary_traffic_percent`]).
pub fn derive(service: &Service<'_>, revisions: &ServiceRevisions) -> Result<Derived> {
    let specs = component_specs(service.spec)?;
    let mut plan = ServicePlan::default();
    for (&component, spec) in &specs {
        let canary = canary_traffic_percent(component, spec)?;
        let planned = plan_component(service, component, canary, revisions.component(component));
        plan.components.insert(component, planned);
    }
    let status = status_of(service, &plan, revisions);
    Ok(Derived { plan, status })
}

/// One entry of KServe's desired traffic, before Knative resolves `latestRevision`.
struct Planned {
    /// `None`: the latest ready revision.
    revision: Option<String>,
    percent: u32,
    tag: Option<&'static str>,
}

/// One entry after resolution.
#[derive(Clone)]
struct Resolved {
    revision: String,
    latest: bool,
    percent: u32,
    tag: Option<&'static str>,
}

/// KServe's `createKnativeService` traffic targets.
fn planned(canary: Option<u32>, rollout: &Rollout, tag_routing: bool) -> Vec<Planned> {
    let latest_tag = tag_routing.then_some(TAG_LATEST);
    match (canary, &rollout.latest) {
        (Some(p), Some(rolled_out)) => {
            let mut targets = vec![Planned { revision: None, percent: p, tag: latest_tag }];
            if p < 100 {
                targets.push(Planned {
                    revision: Some(rolled_out.clone()),
                    percent: 100 - p,
                    tag: Some(TAG_PREV),
                });
            }
            targets
        }
        _ => vec![Planned { revision: None, percent: 100, tag: latest_tag }],
    }
}

/// Knative's resolution of `latestRevision: true`; `None` when nothing is ready.
fn resolve(planned: Vec<Planned>, latest_ready: Option<&Revision>) -> Option<Vec<Resolved>> {
    let latest_ready = latest_ready?;
    Some(
        planned
            .into_iter()
            .map(|p| Resolved {
                latest: p.revision.is_none(),
                revision: p.revision.unwrap_or_else(|| latest_ready.name.clone()),
                percent: p.percent,
                tag: p.tag,
            })
            .collect(),
    )
}

/// KServe's `PropagateStatus` rollout bookkeeping over one resolved plan.
fn bookkeeping(
    rollout: &Rollout,
    resolved: &[Resolved],
    latest_ready: Option<&Revision>,
    latest_created: Option<&Revision>,
) -> Rollout {
    let mut next = rollout.clone();
    let Some(ready) = latest_ready else { return next };
    for target in resolved.iter().filter(|t| t.latest && t.revision == ready.name) {
        if next.latest.as_deref() != Some(&ready.name) {
            if target.percent == 100 {
                next.previous = next.latest.take();
                next.latest = Some(ready.name.clone());
            }
        } else if latest_created.is_some_and(|c| c.name == ready.name) && target.percent < 100 {
            let on_it: u32 =
                resolved.iter().filter(|t| t.revision == target.revision).map(|t| t.percent).sum();
            if on_it == 100 && next.previous.is_some() {
                next.latest = next.previous.clone();
            }
        }
    }
    next
}

fn plan_component(
    service: &Service<'_>,
    component: Component,
    canary: Option<u32>,
    revisions: Option<&ComponentRevisions>,
) -> ComponentPlan {
    let latest_created = revisions.and_then(ComponentRevisions::latest_created);
    let latest_ready = revisions.and_then(ComponentRevisions::latest_ready);
    let find = |name: &str| revisions.and_then(|r| r.get(name));
    let tag_routing = service.tag_routing();

    // Iterate KServe's reconcile → PropagateStatus loop to its fixed point (two rounds at
    // most change anything; the bound only guards against a bug).
    let mut rollout = revisions.map(|r| r.rollout.clone()).unwrap_or_default();
    let mut resolved;
    let mut rounds = 0;
    loop {
        resolved = resolve(planned(canary, &rollout, tag_routing), latest_ready);
        let next = bookkeeping(
            &rollout,
            resolved.as_deref().unwrap_or_default(),
            latest_ready,
            latest_created,
        );
        rounds += 1;
        if next == rollout || rounds == 4 {
            break;
        }
        rollout = next;
    }

    let (ready_type, route_type, configuration_type) = component_condition_types(component);
    let host = service.component_host(component);
    let configuration =
        configuration_condition(configuration_type, service, component, latest_created);

    let mut traffic = Vec::new();
    let route = match resolved {
        None => {
            let failed = latest_created.is_some_and(|r| r.state().failure().is_some());
            let configuration_name = format!("{}-{component}", service.name);
            if failed {
                condition(
                    route_type,
                    ConditionStatus::False,
                    Some(reason::REVISION_MISSING),
                    Some(format!(
                        "Configuration {configuration_name:?} does not have any ready Revision."
                    )),
                    latest_created.map(Revision::since),
                )
            } else {
                condition(
                    route_type,
                    ConditionStatus::Unknown,
                    Some(reason::REVISION_MISSING),
                    Some(format!(
                        "Configuration {configuration_name:?} is waiting for a Revision to become ready."
                    )),
                    latest_created.map(Revision::since),
                )
            }
        }
        Some(mut resolved) => {
            // A named entry whose revision cannot serve keeps its tag at 0 %; its share goes
            // to the latest ready revision (always ready: that is how it was resolved).
            let mut moved = 0;
            let mut not_ready: Option<Condition> = None;
            for t in resolved.iter_mut().filter(|t| !t.latest) {
                let revision = find(&t.revision);
                if revision.is_some_and(|r| r.state().is_ready()) {
                    continue;
                }
                moved += std::mem::take(&mut t.percent);
                if not_ready.is_none() {
                    not_ready = Some(match revision {
                        None => condition(
                            route_type,
                            ConditionStatus::False,
                            Some(reason::REVISION_MISSING),
                            Some(format!(
                                "Revision {:?} referenced in traffic not found.",
                                t.revision
                            )),
                            None,
                        ),
                        Some(r) => match r.state().failure() {
                            Some(why) => condition(
                                route_type,
                                ConditionStatus::False,
                                Some(reason::REVISION_MISSING),
                                Some(format!(
                                    "Revision {:?} failed to become ready: {why}",
                                    r.name
                                )),
                                Some(r.since()),
                            ),
                            None => condition(
                                route_type,
                                ConditionStatus::Unknown,
                                Some(reason::REVISION_MISSING),
                                Some(format!("Revision {:?} is not yet ready.", r.name)),
                                Some(r.since()),
                            ),
                        },
                    });
                }
            }
            if let Some(latest) = resolved.iter_mut().find(|t| t.latest) {
                latest.percent += moved;
            }
            let route = not_ready.unwrap_or_else(|| {
                let since =
                    resolved.iter().filter_map(|t| find(&t.revision)).map(Revision::since).max();
                condition(route_type, ConditionStatus::True, None, None, since)
            });
            traffic = resolved
                .into_iter()
                .map(|t| TrafficTarget {
                    tag: t.tag.map(str::to_owned),
                    url: t.tag.map(|tag| format!("http://{tag}-{host}")),
                    revision_name: t.revision,
                    latest_revision: t.latest,
                    percent: t.percent,
                })
                .collect();
            route
        }
    };
    let ready = happy(ready_type, &[&configuration, &route]);
    ComponentPlan {
        component,
        latest_created: latest_created.map(|r| r.name.clone()),
        latest_ready: latest_ready.map(|r| r.name.clone()),
        rollout,
        traffic,
        configuration,
        route,
        ready,
    }
}

/// Knative's Configuration `Ready`: the latest created revision's state.
fn configuration_condition(
    type_: &str,
    service: &Service<'_>,
    component: Component,
    latest_created: Option<&Revision>,
) -> Condition {
    use crate::revision::RevisionState::*;
    let Some(r) = latest_created else {
        return condition(
            type_,
            ConditionStatus::Unknown,
            Some(reason::OUT_OF_DATE),
            Some(format!(
                "No revision of {}-{component} exists yet for the latest desired specification.",
                service.name
            )),
            None,
        );
    };
    let (status, why, message) = match r.state() {
        Ready => return condition(type_, ConditionStatus::True, None, None, Some(r.since())),
        Failed { reason } => (
            ConditionStatus::False,
            reason::REVISION_FAILED,
            format!("Revision {:?} failed with message: {reason}.", r.name),
        ),
        Created => {
            (ConditionStatus::Unknown, "Created", format!("Revision {:?} is created.", r.name))
        }
        Pulling => (
            ConditionStatus::Unknown,
            "Pulling",
            format!("Revision {:?} is pulling its model.", r.name),
        ),
        Loading => (
            ConditionStatus::Unknown,
            "Loading",
            format!("Revision {:?} is loading its model.", r.name),
        ),
    };
    condition(type_, status, Some(why), Some(message), Some(r.since()))
}

fn condition(
    type_: &str,
    status: ConditionStatus,
    reason: Option<&str>,
    message: Option<String>,
    at: Option<Timestamp>,
) -> Condition {
    Condition {
        type_: type_.to_owned(),
        status,
        last_transition_time: at,
        reason: reason.map(str::to_owned),
        message,
    }
}

/// Knative's living condition set, with the dependents marked in `dependents` order: the
/// last `False` one decides, else the last `Unknown` one; `True` when all are.
fn happy(type_: &str, dependents: &[&Condition]) -> Condition {
    let pick = |status| dependents.iter().rev().find(|c| c.status == status);
    match pick(ConditionStatus::False).or_else(|| pick(ConditionStatus::Unknown)) {
        Some(c) => Condition { type_: type_.to_owned(), ..(*c).clone() },
        None => {
            let at = dependents.iter().filter_map(|c| c.last_transition_time).max();
            condition(type_, ConditionStatus::True, None, None, at)
        }
    }
}

/// KServe's `PropagateCrossComponentStatus`: `True` unless a part is not; the last part
/// that is not gives the status (`Unknown` or `False`) and the reason `"<type> not ready"`.
fn cross_component(type_: &str, parts: &[&Condition]) -> Condition {
    let mut out = condition(
        type_,
        ConditionStatus::True,
        None,
        None,
        parts.iter().filter_map(|c| c.last_transition_time).max(),
    );
    for part in parts.iter().filter(|c| !c.is_true()) {
        out.status = if part.status == ConditionStatus::Unknown {
            ConditionStatus::Unknown
        } else {
            ConditionStatus::False
        };
        out.reason = Some(format!("{} not ready", part.type_));
        out.last_transition_time = part.last_transition_time;
    }
    out
}

/// KServe's ingress reconciler: every component must be ready, the predictor first.
fn ingress_condition(plan: &ServicePlan) -> Condition {
    for (component, why) in [
        (Component::Predictor, reason::PREDICTOR_INGRESS_NOT_CREATED),
        (Component::Transformer, reason::TRANSFORMER_INGRESS_NOT_CREATED),
        (Component::Explainer, reason::EXPLAINER_INGRESS_NOT_CREATED),
    ] {
        let Some(p) = plan.components.get(&component) else { continue };
        if !p.ready.is_true() {
            let status = if p.ready.status == ConditionStatus::Unknown {
                ConditionStatus::Unknown
            } else {
                ConditionStatus::False
            };
            return condition(INGRESS_READY, status, Some(why), None, p.ready.last_transition_time);
        }
    }
    let at = plan.components.values().filter_map(|p| p.ready.last_transition_time).max();
    condition(INGRESS_READY, ConditionStatus::True, None, None, at)
}

fn status_of(
    service: &Service<'_>,
    plan: &ServicePlan,
    revisions: &ServiceRevisions,
) -> ServiceStatus {
    let mut conditions = Vec::new();
    let mut components = BTreeMap::new();
    for (&component, p) in &plan.components {
        conditions.extend([p.ready.clone(), p.route.clone(), p.configuration.clone()]);
        components.insert(
            component,
            ComponentStatus {
                latest_ready_revision: p.latest_ready.clone(),
                latest_created_revision: p.latest_created.clone(),
                previous_rolledout_revision: p.rollout.previous.clone(),
                latest_rolledout_revision: p.rollout.latest.clone(),
                traffic: p.traffic.clone(),
                url: (!p.traffic.is_empty())
                    .then(|| format!("http://{}", service.component_host(component))),
            },
        );
    }
    let in_order = |f: fn(&ComponentPlan) -> &Condition| -> Vec<&Condition> {
        Component::ALL.iter().filter_map(|c| plan.components.get(c)).map(f).collect()
    };
    conditions.push(cross_component(ROUTES_READY, &in_order(|p| &p.route)));
    conditions.push(cross_component(LATEST_DEPLOYMENT_READY, &in_order(|p| &p.configuration)));
    let ingress = ingress_condition(plan);
    let predictor_ready = conditions.iter().find(|c| c.type_ == PREDICTOR_READY).cloned();
    let ready = match &predictor_ready {
        Some(predictor) => happy(READY, &[predictor, &ingress]),
        None => happy(READY, &[&ingress]),
    };
    conditions.push(ingress);
    conditions.push(ready);
    conditions.sort_by(|a, b| a.type_.cmp(&b.type_));

    // The service's own host routes once its entry chain (transformer, predictor) serves.
    let serves = |c: Component| plan.components.get(&c).is_none_or(|p| !p.traffic.is_empty());
    let url = (plan.components.contains_key(&Component::Predictor)
        && serves(Component::Predictor)
        && serves(Component::Transformer))
    .then(|| format!("http://{}", service.host()));
    let model_status = plan
        .components
        .get(&Component::Predictor)
        .and_then(|p| Some((p, revisions.revision(p.latest_created.as_deref()?)?)))
        .map(|(p, latest)| model_status(p, latest));
    ServiceStatus { conditions, url, components, model_status }
}

/// KServe's `UpdateModelRevisionStates` over the predictor's latest created revision.
fn model_status(plan: &ComponentPlan, latest: &Revision) -> ModelStatus {
    use crate::revision::RevisionState::*;
    let target = match latest.state() {
        Created => ModelState::Pending,
        Pulling | Loading => ModelState::Loading,
        Ready => ModelState::Loaded,
        Failed { .. } => ModelState::FailedToLoad,
    };
    let transition_status = match target {
        ModelState::Pending | ModelState::Loading => TransitionStatus::InProgress,
        ModelState::Loaded => TransitionStatus::UpToDate,
        ModelState::FailedToLoad => TransitionStatus::BlockedByFailedLoad,
    };
    let active = if plan.traffic.is_empty() { ModelState::Pending } else { ModelState::Loaded };
    ModelStatus {
        transition_status,
        states: Some(ModelRevisionStates {
            active_model_state: active,
            target_model_state: target,
        }),
        last_failure_info: latest.state().failure().map(|why| FailureInfo {
            reason: MODEL_LOAD_FAILED.to_owned(),
            message: why.to_owned(),
            model_revision_name: latest.name.clone(),
            time: latest.since(),
        }),
    }
}

#[cfg(test)]
mod tests;
