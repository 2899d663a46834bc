//! The reconcile loop of the embedded platform: applied objects in, revisions, replicas and
//! route tables out.
//!
//! [`Platform`] keeps every applied InferenceService and TrainedModel (persisted in the
//! [`StateStore`]) with each service's [`ServiceRevisions`]. Applying a service syncs its
//! revisions ([`ServiceRevisions::sync`]); a pass of the loop ([`Platform::reconcile`])
//! then, per service:
//!
//! 1. makes each revision known to the [`Backend`] (its workload from
//!    [`workload::revision_spec`]) and moves the revision along its life cycle as the backend
//!    reports it (`Created → Pulling → Loading → Ready`, or `Failed` with the reason; a
//!    `Ready` revision stays `Ready` while scaled to zero or restarting, so its traffic stays
//!    where it was and the router buffers for it);
//! 2. derives the traffic plan and the status ([`crate::traffic::derive`]) and records the
//!    rollout bookkeeping;
//! 3. scales each revision that takes traffic, and the latest created one, by its KPA
//!    ([`crate::autoscaler::Autoscaler`], fed with the router's [`RouterEvent`]s through
//!    [`Platform::record`]); every other revision is scaled to zero;
//! 4. builds the service's route ([`crate::traffic::service_route`]) from the backend's
//!    replicas.
//!
//! Then each service's TrainedModels are admitted within the predictor's memory budget
//! ([`trained`]) and handed to the backend ([`Backend::set_models`]) for every predictor
//! revision that runs, and their status is derived from what the backend reports.
//! ServingRuntimes and ClusterServingRuntimes are stored like the other objects and used to
//! choose what runs a predictor ([`runtime`]).
//!
//! A service's oxserve explainer (`spec.explainer.type`, native group) is no component of
//! its own: it is folded into the predictor's spec ([`effective_spec`]), so the predictor's
//! replicas serve `:explain` and a change of the explainer is a new predictor revision.
//!
//! The new [`RouteTable`] is published on a watch channel whenever it differs from the last.
//! Revisions (with their rollout state) are written back to the store whenever they change,
//! so a restart resumes with the same names and the same traffic split.

pub mod runtime;
pub mod trained;
pub mod workload;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use serde::Serialize;
use serde_json::Value;
use tokio::sync::{Mutex, Notify, watch};

use crate::autoscaler::{
    Autoscaler, AutoscalerConfig, ComponentScaling, ScaleMetric, ScalingOptions, ScalingSpec,
};
use crate::backend::{self, Backend, ModelAssignment, RevisionPhase};
use crate::local::state::{ObjectKey, StateStore};
use crate::metrics::RouterEvent;
use crate::revision::{
    CANARY_TRAFFIC_PERCENT, Component, RevisionState, ServiceRevisions, Timestamp,
};
use crate::routes::{Replica, RouteTable};
use crate::traffic::{self, status::ServiceStatus};

/// The store's collection of InferenceServices.
pub const SERVICES: &str = "inferenceservices";
/// The store's collection of TrainedModels.
pub const TRAINED_MODELS: &str = "trainedmodels";
/// The store's collection of each service's revisions.
pub const REVISIONS: &str = "revisions";
/// The store's collection of ServingRuntimes.
pub const SERVING_RUNTIMES: &str = "servingruntimes";
/// The store's collection of ClusterServingRuntimes (all under the namespace `cluster`).
pub const CLUSTER_SERVING_RUNTIMES: &str = "clusterservingruntimes";
/// The store's namespace of cluster-scoped objects.
const CLUSTER_NAMESPACE: &str = "cluster";

/// What can go wrong.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The object cannot be applied as it is.
    #[error("{0}")]
    Invalid(String),
    /// The backend or the store failed.
    #[error(transparent)]
    Backend(#[from] backend::Error),
    /// The revision bookkeeping refused a change.
    #[error(transparent)]
    Revision(#[from] crate::revision::Error),
}

/// The platform's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The kinds the platform stores.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ObjectKind {
    InferenceService,
    TrainedModel,
    ServingRuntime,
    /// Cluster-scoped: its namespace is always `""`.
    ClusterServingRuntime,
}

impl ObjectKind {
    fn collection(self) -> &'static str {
        match self {
            ObjectKind::InferenceService => SERVICES,
            ObjectKind::TrainedModel => TRAINED_MODELS,
            ObjectKind::ServingRuntime => SERVING_RUNTIMES,
            ObjectKind::ClusterServingRuntime => CLUSTER_SERVING_RUNTIMES,
        }
    }

    /// Whether objects of the kind have no namespace.
    pub fn cluster_scoped(self) -> bool {
        self == ObjectKind::ClusterServingRuntime
    }

    fn key(self, namespace: &str, name: &str) -> Result<ObjectKey> {
        let ns = if self.cluster_scoped() { CLUSTER_NAMESPACE } else { namespace };
        Ok(ObjectKey::new(self.collection(), ns, name)?)
    }
}

/// What an apply did, in kubectl's words.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Applied {
    Created,
    Configured,
    Unchanged,
}

impl Applied {
    /// `created`, `configured` or `unchanged`.
    pub fn as_str(self) -> &'static str {
        match self {
            Applied::Created => "created",
            Applied::Configured => "configured",
            Applied::Unchanged => "unchanged",
        }
    }
}

/// How the platform runs.
#[derive(Clone, Debug)]
pub struct PlatformConfig {
    /// The domain of service hosts (`NAME.NS.DOMAIN`).
    pub domain: String,
    /// Knative's `config-autoscaler`.
    pub autoscaler: AutoscalerConfig,
    /// `host:port` of the router's REST port: where transformers reach predictors when
    /// `predictor_hosts` is not set.
    pub router_http: Option<String>,
    /// Where each service's transformer reaches its predictor (`--predictor_host`).
    pub predictor_hosts: Option<Arc<dyn PredictorHosts>>,
}

/// Gives each service with a transformer the `host:port` its transformer sends predictor
/// requests to (KServe's `--predictor_host`); locally, a router listener that routes every
/// request to the service's predictor component.
pub trait PredictorHosts: Send + Sync + std::fmt::Debug {
    /// The address for service `name` in `namespace`; the same one every time.
    fn predictor_host(&self, namespace: &str, name: &str) -> Result<String, String>;
}

impl Default for PlatformConfig {
    fn default() -> PlatformConfig {
        PlatformConfig {
            domain: "example.com".to_owned(),
            autoscaler: AutoscalerConfig::default(),
            router_http: None,
            predictor_hosts: None,
        }
    }
}

/// One revision as `oxserve get revisions` shows it.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RevisionInfo {
    pub name: String,
    pub component: Component,
    /// `Created`, `Pulling`, `Loading`, `Ready` or `Failed`.
    pub state: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// `pulling 42 %` and the like while it is not ready.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub progress: Option<String>,
    /// Percent of its component's traffic.
    pub traffic: u32,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
    pub ready_replicas: u32,
    pub desired_replicas: u32,
    pub created: Timestamp,
    /// What the revision's autoscaler last decided from; absent before its first decision.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub autoscaler: Option<AutoscalerInfo>,
}

/// A revision's last autoscaling decision as the api shows it: the windows' averages of the
/// scaling metric the KPA observed (revision totals, e.g. requests in flight at the router),
/// its per-replica target, whether it was panicking and what it recommended.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AutoscalerInfo {
    pub stable_value: f64,
    pub panic_value: f64,
    pub target: f64,
    pub panicking: bool,
    pub recommended: u32,
}

struct Service {
    object: Value,
    revisions: ServiceRevisions,
    /// What the store holds, to write only changes.
    saved: ServiceRevisions,
    status: ServiceStatus,
    /// Per revision: traffic percent and tags in the current plan.
    traffic: HashMap<String, (u32, Vec<String>)>,
}

#[derive(Default)]
struct State {
    services: BTreeMap<(String, String), Service>,
    trained_models: BTreeMap<(String, String), Value>,
    /// ServingRuntimes by (namespace, name); ClusterServingRuntimes by ("", name).
    runtimes: BTreeMap<(String, String), Value>,
    cluster_runtimes: BTreeMap<(String, String), Value>,
    /// Per TrainedModel: its derived `status`.
    tm_status: HashMap<(String, String), Value>,
    /// Per TrainedModel: when it was applied (ms since the epoch), its last use until it
    /// serves an inference.
    tm_applied: HashMap<(String, String), u64>,
    autoscalers: HashMap<String, Autoscaler>,
    /// The last observed requests in flight per revision (from the router's samples).
    in_flight: HashMap<String, u32>,
    /// Revisions the backend was told about in this process.
    ensured: HashSet<String>,
    /// Per revision: its backend status as last seen.
    observed: HashMap<String, backend::RevisionStatus>,
    last_tick: Option<Instant>,
}

/// The control plane of `oxserve up`. Cheap to clone.
#[derive(Clone)]
pub struct Platform {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Platform {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Platform").finish_non_exhaustive()
    }
}

struct Inner {
    store: StateStore,
    backend: Arc<dyn Backend>,
    config: PlatformConfig,
    state: Mutex<State>,
    kick: Notify,
    routes: watch::Sender<RouteTable>,
}

fn now() -> Timestamp {
    Timestamp::from_system(SystemTime::now())
}

fn meta<'a>(object: &'a Value, field: &str) -> Option<&'a str> {
    object.get("metadata")?.get(field)?.as_str()
}

fn annotations(object: &Value) -> BTreeMap<String, String> {
    object
        .pointer("/metadata/annotations")
        .and_then(Value::as_object)
        .map(|m| m.iter().filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_owned()))).collect())
        .unwrap_or_default()
}

/// The object without what the server sets, for comparing applies.
fn comparable(object: &Value) -> Value {
    let mut v = object.clone();
    if let Some(map) = v.as_object_mut() {
        map.remove("status");
        if let Some(m) = map.get_mut("metadata").and_then(Value::as_object_mut) {
            for k in ["creationTimestamp", "generation", "resourceVersion", "uid"] {
                m.remove(k);
            }
        }
    }
    v
}

impl Platform {
    /// Loads every stored object and revision; the returned receiver sees each new route
    /// table.
    pub fn open(
        store: StateStore,
        backend: Arc<dyn Backend>,
        config: PlatformConfig,
    ) -> Result<(Platform, watch::Receiver<RouteTable>)> {
        let mut state = State::default();
        let revisions: HashMap<ObjectKey, ServiceRevisions> = store
            .list::<ServiceRevisions>(REVISIONS)?
            .into_iter()
            .map(|(k, v)| (ObjectKey { collection: SERVICES.to_owned(), ..k }, v))
            .collect();
        for (key, object) in store.list::<Value>(SERVICES)? {
            let revs = revisions
                .get(&key)
                .cloned()
                .unwrap_or_else(|| ServiceRevisions::new(key.name.clone()));
            revs.validate()?;
            state.services.insert(
                (key.namespace, key.name),
                Service {
                    object,
                    saved: revs.clone(),
                    revisions: revs,
                    status: ServiceStatus::default(),
                    traffic: HashMap::new(),
                },
            );
        }
        for (key, object) in store.list::<Value>(TRAINED_MODELS)? {
            state.trained_models.insert((key.namespace, key.name), object);
        }
        for (key, object) in store.list::<Value>(SERVING_RUNTIMES)? {
            state.runtimes.insert((key.namespace, key.name), object);
        }
        for (key, object) in store.list::<Value>(CLUSTER_SERVING_RUNTIMES)? {
            state.cluster_runtimes.insert((String::new(), key.name), object);
        }
        let (routes, rx) = watch::channel(RouteTable::default());
        let inner =
            Inner { store, backend, config, state: Mutex::new(state), kick: Notify::new(), routes };
        Ok((Platform { inner: Arc::new(inner) }, rx))
    }

    /// The state store.
    pub fn store(&self) -> &StateStore {
        &self.inner.store
    }

    /// Creates or replaces an object (already parsed, defaulted and validated, with
    /// `metadata.namespace` set), persisting it before it returns.
    pub async fn apply(&self, kind: ObjectKind, mut object: Value) -> Result<Applied> {
        let ns = if kind.cluster_scoped() {
            String::new()
        } else {
            meta(&object, "namespace").unwrap_or("default").to_owned()
        };
        let name = meta(&object, "name")
            .ok_or_else(|| Error::Invalid("metadata.name: required".into()))?
            .to_owned();
        let key = kind.key(&ns, &name)?;
        let mut state = self.inner.state.lock().await;
        let existing = match kind {
            ObjectKind::InferenceService => {
                state.services.get(&(ns.clone(), name.clone())).map(|s| &s.object)
            }
            _ => state.plain(kind).get(&(ns.clone(), name.clone())),
        };
        let (outcome, created, generation) = match existing {
            Some(old) if comparable(old) == comparable(&object) => return Ok(Applied::Unchanged),
            Some(old) => (
                Applied::Configured,
                old.pointer("/metadata/creationTimestamp").cloned(),
                old.pointer("/metadata/generation").and_then(Value::as_u64).unwrap_or(1) + 1,
            ),
            None => (Applied::Created, None, 1),
        };
        if let Some(m) = object.get_mut("metadata").and_then(Value::as_object_mut) {
            if kind.cluster_scoped() {
                m.remove("namespace");
            } else {
                m.insert("namespace".into(), Value::from(ns.clone()));
            }
            m.insert(
                "creationTimestamp".into(),
                created.unwrap_or_else(|| Value::from(now().to_string())),
            );
            m.insert("generation".into(), Value::from(generation));
        }
        if let Some(map) = object.as_object_mut() {
            map.remove("status");
        }
        match kind {
            ObjectKind::TrainedModel
            | ObjectKind::ServingRuntime
            | ObjectKind::ClusterServingRuntime => {
                self.inner.store.put(&key, &object)?;
                if kind == ObjectKind::TrainedModel {
                    state.tm_applied.insert((ns.clone(), name.clone()), epoch_ms());
                }
                state.plain(kind).insert((ns, name), object);
            }
            ObjectKind::InferenceService => {
                let spec = effective_spec(object.get("spec").unwrap_or(&Value::Null));
                let mut revisions = state
                    .services
                    .get(&(ns.clone(), name.clone()))
                    .map(|s| s.revisions.clone())
                    .unwrap_or_else(|| ServiceRevisions::new(name.clone()));
                let synced = revisions.sync(&spec, now())?;
                self.inner.store.put(&key, &object)?;
                self.inner.store.put(&ObjectKey::new(REVISIONS, &ns, &name)?, &revisions)?;
                for removed in &synced.removed {
                    self.forget_revision(&mut state, removed).await;
                }
                let entry = state.services.entry((ns, name)).or_insert_with(|| Service {
                    object: Value::Null,
                    saved: revisions.clone(),
                    revisions: revisions.clone(),
                    status: ServiceStatus::default(),
                    traffic: HashMap::new(),
                });
                entry.object = object;
                entry.saved = revisions.clone();
                entry.revisions = revisions;
            }
        }
        drop(state);
        self.inner.kick.notify_one();
        Ok(outcome)
    }

    async fn forget_revision(&self, state: &mut State, revision: &str) {
        state.autoscalers.remove(revision);
        state.in_flight.remove(revision);
        state.ensured.remove(revision);
        state.observed.remove(revision);
        if let Err(e) = self.inner.backend.delete_revision(revision).await {
            tracing::warn!(revision, error = %e, "deleting a revision");
        }
    }

    /// Deletes an object; false when there was none. A service's revisions and replicas go
    /// with it.
    pub async fn delete(&self, kind: ObjectKind, namespace: &str, name: &str) -> Result<bool> {
        let namespace = if kind.cluster_scoped() { "" } else { namespace };
        let key = kind.key(namespace, name)?;
        let mut state = self.inner.state.lock().await;
        let found = match kind {
            ObjectKind::TrainedModel
            | ObjectKind::ServingRuntime
            | ObjectKind::ClusterServingRuntime => {
                let k = (namespace.to_owned(), name.to_owned());
                state.tm_status.remove(&k);
                state.tm_applied.remove(&k);
                state.plain(kind).remove(&k).is_some()
            }
            ObjectKind::InferenceService => {
                match state.services.remove(&(namespace.to_owned(), name.to_owned())) {
                    None => false,
                    Some(svc) => {
                        for r in svc.revisions.revisions() {
                            self.forget_revision(&mut state, &r.name).await;
                        }
                        self.inner.store.delete(&ObjectKey::new(REVISIONS, namespace, name)?)?;
                        true
                    }
                }
            }
        };
        self.inner.store.delete(&key)?;
        drop(state);
        self.inner.kick.notify_one();
        Ok(found)
    }

    /// One object with its current status.
    pub async fn get(&self, kind: ObjectKind, namespace: &str, name: &str) -> Option<Value> {
        let mut state = self.inner.state.lock().await;
        let namespace = if kind.cluster_scoped() { "" } else { namespace };
        let key = (namespace.to_owned(), name.to_owned());
        match kind {
            ObjectKind::InferenceService => state.services.get(&key).map(with_status),
            ObjectKind::TrainedModel => {
                let status = state.tm_status.get(&key).cloned();
                state.trained_models.get(&key).map(|v| with_plain_status(v, status))
            }
            _ => state.plain(kind).get(&key).cloned(),
        }
    }

    /// Every object of `kind` (in `namespace`, or all), sorted by namespace and name.
    pub async fn list(&self, kind: ObjectKind, namespace: Option<&str>) -> Vec<Value> {
        let mut state = self.inner.state.lock().await;
        let keep = |ns: &str| namespace.is_none_or(|n| n == ns) || kind.cluster_scoped();
        match kind {
            ObjectKind::InferenceService => state
                .services
                .iter()
                .filter(|((ns, _), _)| keep(ns))
                .map(|(_, s)| with_status(s))
                .collect(),
            ObjectKind::TrainedModel => state
                .trained_models
                .iter()
                .filter(|((ns, _), _)| keep(ns))
                .map(|(k, v)| with_plain_status(v, state.tm_status.get(k).cloned()))
                .collect(),
            _ => state
                .plain(kind)
                .iter()
                .filter(|((ns, _), _)| keep(ns))
                .map(|(_, v)| v.clone())
                .collect(),
        }
    }

    /// A service's revisions, newest last per component; `None` for an unknown service.
    pub async fn revisions(&self, namespace: &str, name: &str) -> Option<Vec<RevisionInfo>> {
        let state = self.inner.state.lock().await;
        let svc = state.services.get(&(namespace.to_owned(), name.to_owned()))?;
        Some(
            svc.revisions
                .revisions()
                .map(|r| {
                    let observed = state.observed.get(&r.name);
                    let (traffic, tags) = svc.traffic.get(&r.name).cloned().unwrap_or_default();
                    let progress = observed
                        .filter(|o| !matches!(o.phase, RevisionPhase::Ready))
                        .map(|o| o.phase.progress_line());
                    RevisionInfo {
                        name: r.name.clone(),
                        component: r.component,
                        state: r.state().name().to_owned(),
                        reason: r.state().failure().map(str::to_owned),
                        progress,
                        traffic,
                        tags,
                        ready_replicas: observed.map_or(0, |o| o.ready_replicas() as u32),
                        desired_replicas: observed.map_or(0, |o| o.desired),
                        created: r.created_at(),
                        autoscaler: state
                            .autoscalers
                            .get(&r.name)
                            .and_then(|a| a.last_decision())
                            .map(|d| AutoscalerInfo {
                                stable_value: d.stable_value,
                                panic_value: d.panic_value,
                                target: d.target,
                                panicking: d.panicking,
                                recommended: d.recommended,
                            }),
                    }
                })
                .collect(),
        )
    }

    /// A report from the router: samples feed the revision's autoscaler; an activation
    /// scales a revision from zero at once.
    pub async fn record(&self, event: RouterEvent) {
        let mut state = self.inner.state.lock().await;
        match event {
            RouterEvent::Sample(sample) => {
                state
                    .in_flight
                    .insert(sample.revision.clone(), sample.average_concurrency.ceil() as u32);
                if let Some(a) = state.autoscalers.get_mut(&sample.revision) {
                    a.record(&sample);
                }
            }
            RouterEvent::Activation { revision, at, queued } => {
                state.in_flight.insert(revision.clone(), queued as u32);
                let desired = state.autoscalers.get_mut(&revision).map(|a| a.activate(at).desired);
                drop(state);
                if let Some(n) = desired {
                    if let Err(e) = self.inner.backend.scale(&revision, n).await {
                        tracing::warn!(%revision, error = %e, "scaling on activation");
                    }
                    self.inner.kick.notify_one();
                }
            }
        }
    }

    /// Runs the loop until `shutdown`: a pass on every apply/delete, every change the
    /// backend reports on `backend_changes`, and at least every autoscaler tick.
    pub async fn run(
        &self,
        mut backend_changes: Option<watch::Receiver<u64>>,
        shutdown: impl std::future::Future<Output = ()>,
    ) {
        tokio::pin!(shutdown);
        let tick =
            self.inner.config.autoscaler.tick_interval.min(std::time::Duration::from_secs(1));
        loop {
            self.reconcile().await;
            let changed = async {
                match backend_changes.as_mut() {
                    Some(rx) => {
                        if rx.changed().await.is_err() {
                            std::future::pending::<()>().await;
                        }
                    }
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = &mut shutdown => return,
                _ = self.inner.kick.notified() => {}
                _ = changed => {}
                _ = tokio::time::sleep(tick) => {}
            }
        }
    }

    /// One pass over every service (see the module docs).
    pub async fn reconcile(&self) {
        let mut state = self.inner.state.lock().await;
        let instant = Instant::now();
        let tick_due = state.last_tick.is_none_or(|t| {
            instant.duration_since(t) >= self.inner.config.autoscaler.tick_interval
        });
        if tick_due {
            state.last_tick = Some(instant);
        }
        let keys: Vec<(String, String)> = state.services.keys().cloned().collect();
        let mut table = RouteTable::default();
        for key in keys {
            match self.reconcile_service(&mut state, &key, instant, tick_due).await {
                Ok(Some(route)) => table.services.push(route),
                Ok(None) => {}
                Err(e) => {
                    tracing::warn!(service = %key.1, namespace = %key.0, error = %e, "reconcile")
                }
            }
        }
        // TrainedModels whose InferenceService does not exist.
        let at = now().to_string();
        let orphans: Vec<((String, String), String)> = state
            .trained_models
            .iter()
            .filter_map(|(k, tm)| {
                let parent = tm.pointer("/spec/inferenceService").and_then(Value::as_str)?;
                (!state.services.contains_key(&(k.0.clone(), parent.to_owned())))
                    .then(|| (k.clone(), parent.to_owned()))
            })
            .collect();
        for (k, parent) in orphans {
            let message = format!("inferenceservice {}/{parent} not found", k.0);
            let mut conditions = vec![
                trained::condition(
                    trained::INFERENCE_SERVICE_READY,
                    false,
                    Some("InferenceServiceNotFound"),
                    Some(message.clone()),
                ),
                trained::condition(
                    trained::READY,
                    false,
                    Some("InferenceServiceNotFound"),
                    Some(message),
                ),
            ];
            trained::stamp(&mut conditions, state.tm_status.get(&k), &at);
            let url = trained::url(&parent, &k.0, &self.inner.config.domain, &k.1);
            state.tm_status.insert(
                k,
                serde_json::json!({"url": url, "address": {"url": url}, "conditions": conditions}),
            );
        }
        self.inner.routes.send_if_modified(|current| {
            if *current == table {
                false
            } else {
                *current = table;
                true
            }
        });
    }

    async fn reconcile_service(
        &self,
        state: &mut State,
        key: &(String, String),
        instant: Instant,
        tick_due: bool,
    ) -> Result<Option<crate::routes::ServiceRoute>> {
        let backend = &self.inner.backend;
        let config = &self.inner.config;
        let (ns, name) = key;
        let Some(svc) = state.services.get(key) else { return Ok(None) };
        let object = svc.object.clone();
        let spec = effective_spec(object.get("spec").unwrap_or(&Value::Null));
        let anns = annotations(&object);
        let revisions: Vec<(String, Component, Value, RevisionState)> = svc
            .revisions
            .revisions()
            .map(|r| (r.name.clone(), r.component, r.spec.clone(), r.state().clone()))
            .collect();
        let latest: HashSet<String> = svc
            .revisions
            .components
            .values()
            .filter_map(|c| c.latest_created().map(|r| r.name.clone()))
            .collect();

        // 1. Known to the backend, states as observed.
        let mut moves: Vec<(String, RevisionState)> = Vec::new();
        let runtimes = runtime::runtimes_for(&state.runtimes, &state.cluster_runtimes, ns);
        for (rev, component, rspec, current) in &revisions {
            if !state.ensured.contains(rev) && current.failure().is_none() {
                let canary = spec
                    .get(component.as_str())
                    .and_then(|c| c.get(CANARY_TRAFFIC_PERCENT))
                    .is_some_and(|p| !p.is_null());
                let predictor_host = match (&config.predictor_hosts, component) {
                    (Some(hosts), Component::Transformer) => match hosts.predictor_host(ns, name) {
                        Ok(h) => Some(h),
                        Err(reason) => {
                            moves.push((rev.clone(), RevisionState::Failed { reason }));
                            continue;
                        }
                    },
                    _ => config.router_http.clone(),
                };
                let owner = workload::Owner {
                    service: name,
                    namespace: ns,
                    component: component.as_str(),
                    endpoint: if canary && latest.contains(rev) { "canary" } else { "default" },
                    predictor_host: predictor_host.as_deref(),
                };
                match runtime::revision_spec(owner, rev, rspec, &runtimes) {
                    Ok(w) => match backend.ensure_revision(&w).await {
                        Ok(()) => {
                            state.ensured.insert(rev.clone());
                        }
                        Err(e) => moves
                            .push((rev.clone(), RevisionState::Failed { reason: e.to_string() })),
                    },
                    Err(reason) => moves.push((rev.clone(), RevisionState::Failed { reason })),
                }
            }
            if state.ensured.contains(rev)
                && let Ok(observed) = backend.revision_status(rev).await
            {
                let target = match &observed.phase {
                    RevisionPhase::Pulling { .. } => RevisionState::Pulling,
                    RevisionPhase::Loading => RevisionState::Loading,
                    RevisionPhase::Ready => RevisionState::Ready,
                    RevisionPhase::Failed { reason } => {
                        RevisionState::Failed { reason: reason.clone() }
                    }
                };
                state.observed.insert(rev.clone(), observed);
                moves.push((rev.clone(), target));
            }
        }
        let at = now();
        let svc = state.services.get_mut(key).expect("checked above");
        for (rev, target) in moves {
            advance(&mut svc.revisions, &rev, target, at);
        }

        // 2. Traffic and status.
        let service = traffic::Service {
            name,
            namespace: ns,
            spec: &spec,
            annotations: &anns,
            domain: &config.domain,
        };
        let derived = traffic::derive(&service, &svc.revisions)?;
        derived.record(&mut svc.revisions);
        svc.status = derived.status.clone();
        svc.traffic.clear();
        for plan in derived.plan.components.values() {
            for t in &plan.traffic {
                let e = svc.traffic.entry(t.revision_name.clone()).or_default();
                e.0 += t.percent;
                e.1.extend(t.tag.clone());
            }
        }
        if svc.revisions != svc.saved {
            self.inner.store.put(&ObjectKey::new(REVISIONS, ns, name)?, &svc.revisions)?;
            svc.saved = svc.revisions.clone();
        }
        let in_traffic: HashSet<String> = svc.traffic.keys().cloned().collect();
        let failed: HashSet<String> = svc
            .revisions
            .revisions()
            .filter(|r| r.state().failure().is_some())
            .map(|r| r.name.clone())
            .collect();

        // 3. Scale.
        for (rev, component, rspec, _) in &revisions {
            if !state.ensured.contains(rev) {
                continue;
            }
            let wanted =
                !failed.contains(rev) && (in_traffic.contains(rev) || latest.contains(rev));
            let desired = if wanted {
                if !state.autoscalers.contains_key(rev) {
                    match scaling_spec(&config.autoscaler, rspec, &anns) {
                        Ok(s) => {
                            state.autoscalers.insert(
                                rev.clone(),
                                Autoscaler::new(&config.autoscaler, s, instant),
                            );
                        }
                        Err(reason) => {
                            tracing::warn!(revision = %rev, %component, %reason, "autoscaling spec");
                            continue;
                        }
                    }
                }
                let ready = state.observed.get(rev).map_or(0, |o| o.ready_replicas() as u32);
                let in_flight = state.in_flight.get(rev).copied().unwrap_or(0);
                let a = state.autoscalers.get_mut(rev).expect("inserted above");
                if tick_due || a.last_decision().is_none() {
                    a.tick(instant, ready, in_flight).desired
                } else {
                    a.desired()
                }
            } else {
                state.autoscalers.remove(rev);
                0
            };
            if let Err(e) = backend.scale(rev, desired).await {
                tracing::warn!(revision = %rev, error = %e, "scaling");
            }
        }

        // 4. The route.
        let mut replicas: HashMap<String, Vec<Replica>> = HashMap::new();
        for rev in &in_traffic {
            if let Some(o) = state.observed.get(rev) {
                replicas.insert(
                    rev.clone(),
                    o.replicas
                        .iter()
                        .filter_map(|r| {
                            Some(Replica {
                                id: r.id.clone(),
                                http: r.http.clone()?,
                                grpc: r.grpc.clone(),
                                ready: r.ready,
                            })
                        })
                        .collect(),
                );
            }
        }
        let trained: Vec<String> = state
            .trained_models
            .iter()
            .filter(|((tns, _), tm)| {
                tns == ns
                    && tm.pointer("/spec/inferenceService").and_then(Value::as_str) == Some(name)
            })
            .map(|((_, tname), _)| tname.clone())
            .collect();
        self.reconcile_trained(state, key, &spec).await;
        let svc = state.services.get(key).expect("checked above");
        let mut route =
            traffic::service_route(&service, &derived.plan, &svc.revisions, &replicas, &trained);
        merge_repeated_targets(&mut route.entry);
        if let Some(p) = route.predictor.as_mut() {
            merge_repeated_targets(p);
        }
        Ok(Some(route))
    }
}

impl Platform {
    /// A service's TrainedModels (see [`trained`]): admitted within the predictor's memory,
    /// handed to every predictor revision the backend runs, their status derived.
    async fn reconcile_trained(&self, state: &mut State, key: &(String, String), spec: &Value) {
        let (ns, name) = key;
        let backend = &self.inner.backend;
        let tms: Vec<((String, String), Value)> = state
            .trained_models
            .iter()
            .filter(|((tns, _), tm)| {
                tns == ns
                    && tm.pointer("/spec/inferenceService").and_then(Value::as_str)
                        == Some(name.as_str())
            })
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let Some(svc) = state.services.get(key) else { return };
        let parent_ready = svc.status.is_ready();
        let predictor_revs: Vec<String> = svc
            .revisions
            .revisions()
            .filter(|r| r.component == Component::Predictor && state.ensured.contains(&r.name))
            .filter(|r| r.state().failure().is_none())
            .map(|r| r.name.clone())
            .collect();
        if tms.is_empty() && predictor_revs.is_empty() {
            return;
        }
        let serving: HashSet<&String> = svc.traffic.keys().collect();
        // What the replicas report, summed over the revisions that take traffic.
        let mut loads: HashMap<String, backend::ModelLoadStatus> = HashMap::new();
        for rev in predictor_revs.iter().filter(|r| serving.contains(r)) {
            for m in backend.model_status(rev).await.unwrap_or_default() {
                let e = loads.entry(m.name.clone()).or_default();
                e.loaded += m.loaded;
                e.replicas += m.replicas;
                e.error = m.error.or(e.error.take());
                e.last_used_ms = e.last_used_ms.max(m.last_used_ms);
            }
        }
        let budget = spec.get("predictor").and_then(trained::memory_budget);
        let mut candidates = Vec::new();
        for (k, tm) in &tms {
            if trained::framework_supported(trained::framework(tm).as_deref()) {
                let memory = tm
                    .pointer("/spec/model/memory")
                    .and_then(Value::as_str)
                    .and_then(trained::parse_quantity)
                    .unwrap_or(0);
                let applied = state.tm_applied.get(k).copied().unwrap_or(0);
                let used = loads.get(&k.1).map_or(0, |l| l.last_used_ms);
                candidates.push(trained::Candidate {
                    name: k.1.clone(),
                    memory,
                    last_used_ms: used.max(applied),
                });
            }
        }
        let (admitted, refused) = trained::admit(&candidates, budget);
        let assignments: Vec<ModelAssignment> = tms
            .iter()
            .filter(|((_, n), _)| admitted.contains(n) && n != name)
            .map(|((_, n), tm)| ModelAssignment {
                name: n.clone(),
                storage_uri: tm
                    .pointer("/spec/model/storageUri")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned(),
                framework: trained::framework(tm),
                memory: tm.pointer("/spec/model/memory").and_then(Value::as_str).map(str::to_owned),
            })
            .collect();
        let mut unsupported: Option<String> = None;
        for rev in &predictor_revs {
            match backend.set_models(rev, &assignments).await {
                Ok(()) => {}
                Err(e) => unsupported = Some(e.to_string()),
            }
        }
        let at = now().to_string();
        for (k, tm) in tms {
            let tname = &k.1;
            let fw = trained::framework(&tm);
            let fw_ok = trained::framework_supported(fw.as_deref()) && unsupported.is_none();
            let fw_message = match (&unsupported, &fw) {
                (Some(reason), _) => Some(reason.clone()),
                (None, f) if !fw_ok => Some(format!(
                    "framework {:?} is not served by the parent's predictor (it serves {})",
                    f.as_deref().unwrap_or(""),
                    workload::SERVER_FORMATS.join(", ")
                )),
                _ => None,
            };
            let refusal = refused.iter().find(|(n, _)| n == tname).map(|(_, r)| r);
            let load = loads.get(tname.as_str());
            let loaded = tname != name
                && admitted.contains(tname)
                && load.is_some_and(|l| l.replicas > 0 && l.loaded >= l.replicas);
            let mut conditions = vec![
                trained::condition(
                    trained::INFERENCE_SERVICE_READY,
                    parent_ready,
                    (!parent_ready).then_some("InferenceServiceNotReady"),
                    (!parent_ready).then(|| format!("inferenceservice {ns}/{name} is not ready")),
                ),
                trained::condition(
                    trained::FRAMEWORK_SUPPORTED,
                    fw_ok,
                    (!fw_ok).then_some("FrameworkNotSupported"),
                    fw_message,
                ),
            ];
            if fw_ok {
                let (reason, message) =
                    match refusal.map(trained::MemoryRefusal::reason_and_message) {
                        Some((r, m)) => (Some(r), Some(m)),
                        None => (None, None),
                    };
                conditions.push(trained::condition(
                    trained::MEMORY_RESOURCE_AVAILABLE,
                    refusal.is_none(),
                    reason,
                    message,
                ));
            }
            let ready = parent_ready && fw_ok && refusal.is_none() && loaded;
            let why = if tname == name {
                Some("a TrainedModel cannot have its InferenceService's name".to_owned())
            } else if ready {
                None
            } else {
                load.and_then(|l| l.error.clone()).or_else(|| Some("not loaded yet".to_owned()))
            };
            conditions.push(trained::condition(
                trained::READY,
                ready,
                (!ready).then_some("ModelNotLoaded"),
                why.filter(|_| !ready),
            ));
            let previous = state.tm_status.get(&k);
            trained::stamp(&mut conditions, previous, &at);
            let url = trained::url(name, ns, &self.inner.config.domain, tname);
            state.tm_status.insert(
                k.clone(),
                serde_json::json!({"url": url, "address": {"url": url}, "conditions": conditions}),
            );
        }
    }
}

/// The plan names one revision twice while a canary is not ready yet (`latest` and `prev`
/// both on the serving revision); the router takes each revision once, so the entries are
/// merged: weights added, the first entry's tag kept.
fn merge_repeated_targets(component: &mut crate::routes::ComponentRoute) {
    let mut merged: Vec<crate::routes::RevisionTarget> = Vec::new();
    for t in component.targets.drain(..) {
        match merged.iter_mut().find(|m| m.revision == t.revision) {
            Some(m) => m.weight += t.weight,
            None => merged.push(t),
        }
    }
    component.targets = merged;
}

impl State {
    /// The map of a kind stored as plain objects (everything but InferenceServices).
    fn plain(&mut self, kind: ObjectKind) -> &mut BTreeMap<(String, String), Value> {
        match kind {
            ObjectKind::TrainedModel | ObjectKind::InferenceService => &mut self.trained_models,
            ObjectKind::ServingRuntime => &mut self.runtimes,
            ObjectKind::ClusterServingRuntime => &mut self.cluster_runtimes,
        }
    }
}

fn epoch_ms() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// The spec the revisions are made from: an oxserve explainer (`explainer.type`) is served
/// by the predictor, so it moves into the predictor's spec as `explainer` and is no
/// component of its own. Any other spec is returned as it is.
pub fn effective_spec(spec: &Value) -> Value {
    let mut spec = spec.clone();
    let oxserve = spec.pointer("/explainer/type").is_some_and(|t| !t.is_null());
    if oxserve
        && let Some(map) = spec.as_object_mut()
        && let Some(explainer) = map.remove("explainer")
        && let Some(Value::Object(p)) = map.get_mut("predictor")
    {
        p.insert(workload::EXPLAINER_KEY.into(), explainer);
    }
    spec
}

fn with_plain_status(object: &Value, status: Option<Value>) -> Value {
    let mut v = object.clone();
    if let (Some(map), Some(status)) = (v.as_object_mut(), status) {
        map.insert("status".into(), status);
    }
    v
}

fn with_status(s: &Service) -> Value {
    let mut v = s.object.clone();
    if let Some(map) = v.as_object_mut() {
        map.insert("status".into(), serde_json::to_value(&s.status).unwrap_or(Value::Null));
    }
    v
}

/// Moves `revision` towards `target` one allowed step at a time (`Created → Pulling →
/// Loading → Ready`; anything → `Failed`). A ready revision is not moved back to `Loading`:
/// scaled to zero or restarting, it keeps its traffic and the router buffers for it.
fn advance(revisions: &mut ServiceRevisions, revision: &str, target: RevisionState, at: Timestamp) {
    let Some(current) = revisions.revision(revision).map(|r| r.state().clone()) else { return };
    let order = |s: &RevisionState| match s {
        RevisionState::Created => 0,
        RevisionState::Pulling => 1,
        RevisionState::Loading => 2,
        RevisionState::Ready => 3,
        RevisionState::Failed { .. } => 4,
    };
    if current == target || (order(&target) < order(&current) && target.failure().is_none()) {
        return;
    }
    if current.failure().is_some() {
        return;
    }
    let path: Vec<RevisionState> = match &target {
        RevisionState::Failed { .. } => vec![target.clone()],
        _ => [RevisionState::Pulling, RevisionState::Loading, RevisionState::Ready]
            .into_iter()
            .filter(|s| order(s) > order(&current) && order(s) <= order(&target))
            .collect(),
    };
    for step in path {
        let from = revisions.revision(revision).map(|r| r.state().clone());
        if from.as_ref().is_some_and(|f| f.can_become(&step))
            && let Err(e) = revisions.transition(revision, step, at)
        {
            tracing::debug!(revision, error = %e, "revision transition");
        }
    }
}

/// A revision's scaling inputs from its component spec and the service's annotations (the
/// Kubernetes controller resolves them the same way).
pub(crate) fn scaling_spec(
    config: &AutoscalerConfig,
    spec: &Value,
    annotations: &BTreeMap<String, String>,
) -> Result<ScalingSpec, String> {
    let int = |k: &str| spec.get(k).and_then(Value::as_i64);
    let component = ComponentScaling {
        min_replicas: int("minReplicas"),
        max_replicas: int("maxReplicas"),
        scale_target: int("scaleTarget"),
        scale_metric: spec
            .get("scaleMetric")
            .and_then(Value::as_str)
            .map(|m| m.parse::<ScaleMetric>())
            .transpose()
            .map_err(|_| "scaleMetric: unknown metric".to_owned())?,
        container_concurrency: int("containerConcurrency"),
    };
    ScalingSpec::from_component(config, &component, annotations, &ScalingOptions::default())
        .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn revisions_advance_forward_and_never_back_from_ready() {
        let mut revs = ServiceRevisions::new("iris");
        let spec = serde_json::json!({"predictor": {"model": {"modelFormat": {"name": "onnx"}}}});
        revs.sync(&spec, Timestamp(1)).unwrap();
        let name = "iris-predictor-00001";
        advance(&mut revs, name, RevisionState::Ready, Timestamp(2));
        let states: Vec<&str> =
            revs.revision(name).unwrap().history().iter().map(|t| t.state.name()).collect();
        assert_eq!(states, ["Created", "Pulling", "Loading", "Ready"]);
        advance(&mut revs, name, RevisionState::Loading, Timestamp(3));
        assert_eq!(revs.revision(name).unwrap().state(), &RevisionState::Ready);
        advance(&mut revs, name, RevisionState::Failed { reason: "boom".into() }, Timestamp(4));
        assert_eq!(revs.revision(name).unwrap().state().failure(), Some("boom"));
    }

    #[test]
    fn a_revision_named_twice_is_one_target_with_both_weights() {
        use crate::routes::{ComponentRoute, RevisionTarget};
        let target = |rev: &str, weight, tag: &str| RevisionTarget {
            revision: rev.into(),
            weight,
            tag: Some(tag.into()),
            model: None,
            container_concurrency: 0,
            timeout_seconds: 300,
            replicas: Vec::new(),
        };
        let mut c = ComponentRoute {
            component: "predictor".into(),
            host: String::new(),
            targets: vec![
                target("a-1", 20, "latest"),
                target("a-1", 80, "prev"),
                target("a-2", 0, "x"),
            ],
        };
        merge_repeated_targets(&mut c);
        assert_eq!(c.targets, vec![target("a-1", 100, "latest"), target("a-2", 0, "x")]);
    }

    #[test]
    fn an_oxserve_explainer_moves_into_the_predictor_and_others_stay() {
        let spec = serde_json::json!({
            "predictor": {"model": {"modelFormat": {"name": "xgboost"}}},
            "explainer": {"type": "treeshap", "minReplicas": 1}
        });
        let e = effective_spec(&spec);
        assert!(e.get("explainer").is_none(), "{e}");
        assert_eq!(e["predictor"]["explainer"]["type"], "treeshap");
        let mut revs = ServiceRevisions::new("iris");
        revs.sync(&e, Timestamp(1)).unwrap();
        let names: Vec<&str> = revs.revisions().map(|r| r.name.as_str()).collect();
        assert_eq!(names, ["iris-predictor-00001"]);
        // A container explainer is a component of its own.
        let spec = serde_json::json!({
            "predictor": {"model": {"modelFormat": {"name": "xgboost"}}},
            "explainer": {"containers": [{"name": "e", "command": ["e"]}]}
        });
        assert_eq!(effective_spec(&spec), spec);
    }

    #[test]
    fn applies_compare_without_server_fields() {
        let a = serde_json::json!({"metadata": {"name": "a", "generation": 3, "creationTimestamp": "x"}, "spec": {}, "status": {"url": "u"}});
        let b = serde_json::json!({"metadata": {"name": "a"}, "spec": {}});
        assert_eq!(comparable(&a), comparable(&b));
    }
}
