//! The controller: InferenceServices and TrainedModels (as dynamic objects of the native
//! group, and optionally of `serving.kserve.io`) reconciled into their children.
//!
//! One pass over an InferenceService ([`reconcile_service`]):
//! 1. deletion: the finalizer ([`super::FINALIZER`]) holds the object until its route is
//!    withdrawn and its revision state is removed (children go with their owner reference);
//! 2. the manifest is parsed, defaulted and validated by `oxserve_api::parse` (a refusal is
//!    `Ready=False`/`InvalidSpec` in status);
//! 3. its revisions are read from the state ConfigMap `<name>-oxserve-revisions`
//!    (`revisions.json`), synced with the spec, and moved along their life cycle from their
//!    pods ([`super::backend::phase_of`]);
//! 4. the traffic plan and status are derived ([`crate::traffic::derive`]), each revision is
//!    scaled by its KPA (fed by [`super::scrape`]) or by an HPA, and its children are
//!    server-side applied ([`super::desired::desired`]); a child the API server refuses
//!    fails its revision with reason [`super::condition::REASON_CHILD_REJECTED`];
//! 5. the status (KServe's fields, `observedGeneration`) is applied on `/status`, the state
//!    ConfigMap saved, and the route table ConfigMap republished.
//!
//! API errors return to kube's controller, which retries with exponential back-off
//! ([`error_policy`]); conflicts are retried the same way.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use futures::StreamExt;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::{ConfigMap, Pod, Service as KubeService};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, ApiResource, DeleteParams, DynamicObject, ListParams, Patch, PatchParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher;
use kube::{Client, ResourceExt};
use serde_json::{Value, json};

use super::backend::{KubeBackend, api_error};
use super::desired::{self, Context};
use super::{FIELD_MANAGER, FINALIZER, condition};
use crate::autoscaler::{Autoscaler, AutoscalerConfig};
use crate::backend::{Backend, RevisionPhase};
use crate::revision::{Component, RevisionState, ServiceRevisions, Timestamp};
use crate::routes::{Replica, RouteTable, ServiceRoute};
use crate::traffic::{self, Service};

/// The key of the revision state in the state ConfigMap.
pub const REVISIONS_KEY: &str = "revisions.json";

/// What can go wrong in a pass.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Not a `#[source]`: kube's message already carries its causes, and a chain printer
    /// (`{:#}`) would repeat every one of them.
    #[error("kubernetes api: {0}")]
    Kube(kube::Error),
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Revision(#[from] crate::revision::Error),
    #[error(transparent)]
    Lost(#[from] super::lease::Lost),
    /// A backend call failed for a reason other than a refused child (which is status).
    #[error(transparent)]
    Backend(#[from] crate::backend::Error),
}

impl From<kube::Error> for Error {
    fn from(e: kube::Error) -> Error {
        Error::Kube(e)
    }
}

/// How the controller runs.
#[derive(Clone, Debug)]
pub struct Config {
    /// Watch only this namespace (cluster-wide when `None`).
    pub namespace: Option<String>,
    /// The `oxserve` image the children run.
    pub image: String,
    /// Where the router runs and its routes ConfigMap lives.
    pub router_namespace: String,
    /// The routes ConfigMap's name.
    pub routes_config_map: String,
    /// The router pods' label selector (scraped for the KPA).
    pub router_selector: String,
    /// The router's Service (in `router_namespace`): a transformer's `NAME-predictor`
    /// Service is an alias of it.
    pub router_service: String,
    /// The domain of service hosts.
    pub domain: String,
    /// Also reconcile `serving.kserve.io` objects.
    pub kserve_group: bool,
    /// How often a pass repeats without any change.
    pub resync: Duration,
}

/// What the passes share.
pub struct State {
    pub client: Client,
    pub config: Config,
    pub autoscaler: AutoscalerConfig,
    routes: Mutex<BTreeMap<(String, String), ServiceRoute>>,
    scalers: Mutex<HashMap<String, Autoscaler>>,
    /// revision → (namespace, replicas last applied), for the activator's fast path.
    scaled: Mutex<HashMap<String, (String, u32)>>,
    /// object key → consecutive failed passes, for [`error_policy`]'s back-off.
    failures: Mutex<HashMap<String, u32>>,
}

impl State {
    pub fn new(client: Client, config: Config) -> State {
        State {
            client,
            config,
            autoscaler: AutoscalerConfig::default(),
            routes: Mutex::default(),
            scalers: Mutex::default(),
            scaled: Mutex::default(),
            failures: Mutex::default(),
        }
    }

    /// Seeds the route table with the one already published (so a restarted controller does
    /// not publish a partial table before every service has had its first pass).
    pub fn seed_routes(&self, table: RouteTable) {
        let mut routes = self.routes.lock().expect("routes");
        for s in table.services {
            routes.entry((s.namespace.clone(), s.name.clone())).or_insert(s);
        }
    }

    fn succeeded(&self, key: &str) {
        self.failures.lock().expect("failures").remove(key);
    }

    /// Feeds a router event to its revision's autoscaler. An activation of a revision
    /// scaled below what the autoscaler now wants returns `(namespace, revision, replicas)`:
    /// the scale-from-zero the caller applies at once rather than at the next pass.
    pub fn record(&self, event: &crate::metrics::RouterEvent) -> Option<(String, String, u32)> {
        let revision = match event {
            crate::metrics::RouterEvent::Sample(s) => &s.revision,
            crate::metrics::RouterEvent::Activation { revision, .. } => revision,
        };
        let decision = self.scalers.lock().expect("scalers").get_mut(revision)?.on_event(event)?;
        let mut scaled = self.scaled.lock().expect("scaled");
        let (ns, applied) = scaled.get_mut(revision)?;
        if decision.desired <= *applied {
            return None;
        }
        *applied = decision.desired;
        Some((ns.clone(), revision.clone(), decision.desired))
    }

    /// The route table of every service reconciled so far.
    pub fn route_table(&self) -> RouteTable {
        RouteTable { services: self.routes.lock().expect("routes").values().cloned().collect() }
    }
}

/// The InferenceService resource of API group `group`.
pub fn isvc_resource(group: &str) -> ApiResource {
    let mut ar = ApiResource::erase::<oxserve_api::isvc::InferenceService>(&());
    ar.group = group.to_owned();
    ar.api_version = format!("{group}/v1beta1");
    ar
}

/// The TrainedModel resource of API group `group`.
pub fn trained_model_resource(group: &str) -> ApiResource {
    let mut ar = ApiResource::erase::<oxserve_api::trained_model::TrainedModel>(&());
    ar.group = group.to_owned();
    ar.api_version = format!("{group}/v1alpha1");
    ar
}

fn dyn_api(client: &Client, ar: &ApiResource, ns: Option<&str>) -> Api<DynamicObject> {
    match ns {
        Some(ns) => Api::namespaced_with(client.clone(), ns, ar),
        None => Api::all_with(client.clone(), ar),
    }
}

/// The wait before retry `n` (counting from 1) of a failing object: 1 s doubling to 5 min.
pub fn backoff(n: u32) -> Duration {
    Duration::from_secs(1u64 << n.saturating_sub(1).min(9)).min(Duration::from_secs(300))
}

fn key(obj: &DynamicObject) -> String {
    let kind = obj.types.as_ref().map(|t| t.kind.as_str()).unwrap_or_default();
    format!("{kind}/{}/{}", obj.namespace().unwrap_or_default(), obj.name_any())
}

/// Retries a failed pass (an API error, a conflict) with exponential back-off per object.
pub fn error_policy(obj: Arc<DynamicObject>, error: &Error, state: Arc<State>) -> Action {
    let key = key(&obj);
    let mut failures = state.failures.lock().expect("failures");
    let n = failures.entry(key.clone()).or_insert(0);
    *n += 1;
    let wait = backoff(*n);
    tracing::warn!(object = %key, %error, retry_in = ?wait, "reconcile failed");
    Action::requeue(wait)
}

fn now() -> Timestamp {
    Timestamp::from_system(SystemTime::now())
}

/// Moves `name` towards the state its pods report, through `Loading` where the life cycle
/// asks for it.
fn advance(
    revisions: &mut ServiceRevisions,
    name: &str,
    phase: &RevisionPhase,
    at: Timestamp,
) -> Result<(), Error> {
    let target = match phase {
        RevisionPhase::Pulling { .. } => RevisionState::Pulling,
        RevisionPhase::Loading => RevisionState::Loading,
        RevisionPhase::Ready => RevisionState::Ready,
        RevisionPhase::Failed { reason } => RevisionState::Failed { reason: reason.clone() },
    };
    let Some(current) = revisions.revision(name).map(|r| r.state().clone()) else { return Ok(()) };
    // A ready revision scaled to zero stays ready: the router buffers for it.
    if current == target || current.is_ready() && target == RevisionState::Loading {
        return Ok(());
    }
    if !current.can_become(&target) && current.can_become(&RevisionState::Loading) {
        revisions.transition(name, RevisionState::Loading, at)?;
    }
    if revisions.revision(name).is_some_and(|r| r.state().can_become(&target)) {
        revisions.transition(name, target, at)?;
    }
    Ok(())
}

/// The object as `oxserve_api::parse` normalizes it (defaults, KServe's older forms
/// converted), with the API server's metadata (uid, generation, namespace) kept; the error is
/// the validation's message.
pub fn normalized(obj: &DynamicObject) -> Result<Value, String> {
    let mut raw = serde_json::to_value(obj).expect("an object serializes");
    if let Some(map) = raw.as_object_mut() {
        map.remove("status");
        map.insert(
            "metadata".into(),
            json!({
                "name": obj.metadata.name,
                "namespace": obj.metadata.namespace,
                "labels": obj.metadata.labels,
                "annotations": obj.metadata.annotations,
            }),
        );
    }
    let resources =
        oxserve_api::parse(&raw.to_string(), &obj.name_any()).map_err(|e| e.to_string())?;
    let [resource] = resources.as_slice() else {
        return Err(format!("expected one object, got {}", resources.len()));
    };
    let mut value = resource.to_value();
    value["metadata"] = serde_json::to_value(&obj.metadata).expect("metadata serializes");
    if let Some(m) = value["metadata"].as_object_mut() {
        m.remove("managedFields");
        m.entry("namespace").or_insert_with(|| json!("default"));
    }
    Ok(value)
}

async fn apply<K>(api: Api<K>, name: &str, obj: &K) -> Result<(), kube::Error>
where
    K: kube::Resource + Clone + serde::Serialize + serde::de::DeserializeOwned + std::fmt::Debug,
{
    api.patch(name, &PatchParams::apply(FIELD_MANAGER).force(), &Patch::Apply(obj))
        .await
        .map(|_| ())
}

/// One pass over an InferenceService.
pub async fn reconcile_service(
    obj: Arc<DynamicObject>,
    state: Arc<State>,
) -> Result<Action, Error> {
    let action = service_pass(obj.clone(), state.clone()).await?;
    state.succeeded(&key(&obj));
    Ok(action)
}

async fn service_pass(obj: Arc<DynamicObject>, state: Arc<State>) -> Result<Action, Error> {
    let client = &state.client;
    let ns = obj.namespace().unwrap_or_else(|| "default".into());
    let name = obj.name_any();
    let api_version = obj.types.as_ref().map(|t| t.api_version.clone()).unwrap_or_default();
    let group = api_version.split('/').next().unwrap_or_default().to_owned();
    let ar = isvc_resource(&group);
    let api = dyn_api(client, &ar, Some(&ns));
    let state_cm = format!("{name}-oxserve-revisions");
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), &ns);

    if obj.metadata.deletion_timestamp.is_some() {
        state.routes.lock().expect("routes").remove(&(ns.clone(), name.clone()));
        publish_routes(&state).await?;
        match cms.delete(&state_cm, &DeleteParams::default()).await {
            Ok(_) => {}
            Err(kube::Error::Api(s)) if s.is_not_found() => {}
            Err(e) => return Err(e.into()),
        }
        remove_finalizer(&api, &obj).await?;
        return Ok(Action::await_change());
    }
    add_finalizer(&api, &obj).await?;

    let generation = obj.metadata.generation.unwrap_or(0);
    let value = match normalized(&obj) {
        Ok(value) => value,
        Err(message) => {
            let status = json!({
                "observedGeneration": generation,
                "conditions": [{
                    "type": traffic::status::READY, "status": "False",
                    "reason": condition::REASON_INVALID_SPEC, "message": message,
                }],
            });
            patch_status(&api, &ar, &name, status).await?;
            return Ok(Action::await_change());
        }
    };
    let uid = obj.metadata.uid.clone().unwrap_or_default();
    let ctx = Context { image: state.config.image.clone(), api_version: api_version.clone(), uid };
    let owner = desired::owner_reference(&value, &ctx);
    let spec = value.get("spec").cloned().unwrap_or(Value::Null);
    let annotations = obj.metadata.annotations.clone().unwrap_or_default();

    // Revisions: stored and synced with the spec; those whose component left it are
    // deleted.
    let stored = cms.get_opt(&state_cm).await?;
    let mut revisions = stored
        .as_ref()
        .and_then(|cm| cm.data.as_ref()?.get(REVISIONS_KEY).cloned())
        .and_then(|text| serde_json::from_str::<ServiceRevisions>(&text).ok())
        .unwrap_or_else(|| ServiceRevisions::new(&name));
    let at = now();
    let synced = revisions.sync(&spec, at)?;
    let backend = KubeBackend::new(client.clone(), ctx.clone(), &ns, &name, owner.clone());
    for removed in &synced.removed {
        state.scalers.lock().expect("scalers").remove(removed);
        state.scaled.lock().expect("scaled").remove(removed);
        backend.delete_revision(removed).await?;
    }

    // A multi-model parent: its TrainedModels, handed to the predictor's revisions.
    let tms = dyn_api(client, &trained_model_resource(&group), Some(&ns))
        .list(&ListParams::default())
        .await?;
    let children_of: Vec<Value> = tms
        .items
        .iter()
        .filter(|tm| tm.metadata.deletion_timestamp.is_none())
        .map(|tm| serde_json::to_value(tm).expect("an object serializes"))
        .filter(|tm| {
            tm.pointer("/spec/inferenceService").and_then(Value::as_str) == Some(name.as_str())
        })
        .collect();
    let models = desired::assignments(&name, &children_of);

    // Every revision ensured (its Deployment and Service; an HPA beside it for
    // `scaleMetric: cpu|memory`), then observed from its pods. A child the API server
    // refuses fails its revision.
    let names: Vec<String> = revisions.revisions().map(|r| r.name.clone()).collect();
    let mut rejected = Vec::new();
    let mut with_hpa = Vec::new();
    let mut replicas: HashMap<String, Vec<Replica>> = HashMap::new();
    for rev in &names {
        let Some(revision) = revisions.revision(rev).cloned() else { continue };
        let children = match desired::desired(&value, &revision, 0, !models.is_empty(), &ctx) {
            Ok(c) => c,
            Err(reason) => {
                rejected.push((rev.clone(), reason));
                continue;
            }
        };
        if revision.component == Component::Predictor {
            backend.set_models(rev, &models).await?;
        }
        let ensured = async {
            backend.ensure_revision(&children.spec).await?;
            if let Some(hpa) = &children.hpa {
                let api = Api::<HorizontalPodAutoscaler>::namespaced(client.clone(), &ns);
                apply(api, rev, hpa).await.map_err(|e| api_error(rev, e))?;
                with_hpa.push(rev.clone());
            }
            Ok::<(), crate::backend::Error>(())
        }
        .await;
        match ensured {
            Ok(()) => {}
            Err(crate::backend::Error::Unsupported { reason, .. }) => {
                rejected
                    .push((rev.clone(), format!("{}: {reason}", condition::REASON_CHILD_REJECTED)));
                continue;
            }
            Err(e) => return Err(e.into()),
        }
        let status = backend.revision_status(rev).await?;
        if !status.replicas.is_empty() || status.phase != RevisionPhase::Loading {
            advance(&mut revisions, rev, &status.phase, at)?;
        }
        replicas.insert(
            rev.clone(),
            status
                .replicas
                .into_iter()
                .map(|r| Replica {
                    id: r.id,
                    http: r.http.unwrap_or_default(),
                    grpc: None,
                    ready: r.ready,
                })
                .collect(),
        );
    }
    for (rev, reason) in std::mem::take(&mut rejected) {
        advance(&mut revisions, &rev, &RevisionPhase::Failed { reason }, at)?;
    }

    // A transformer reaches its predictor at `NAME-predictor.NS`: an alias of the router.
    if spec.get("transformer").is_some() {
        let router = format!(
            "{}.{}.svc.cluster.local",
            state.config.router_service, state.config.router_namespace
        );
        let svc = desired::predictor_service(&name, &ns, &router, &owner);
        apply(
            Api::<KubeService>::namespaced(client.clone(), &ns),
            &format!("{name}-predictor"),
            &svc,
        )
        .await?;
    }

    let service = Service {
        name: &name,
        namespace: &ns,
        spec: &spec,
        annotations: &annotations,
        domain: &state.config.domain,
    };
    let derived = traffic::derive(&service, &revisions)?;
    derived.record(&mut revisions);

    // Each serving revision scaled by its KPA (an HPA owns the others' count), the rest
    // to zero.
    let serving: Vec<String> = derived
        .plan
        .components
        .values()
        .flat_map(|p| {
            p.traffic.iter().map(|t| t.revision_name.clone()).chain(p.latest_created.clone())
        })
        .collect();
    let instant = Instant::now();
    for rev in &names {
        let Some(revision) = revisions.revision(rev).cloned() else { continue };
        if with_hpa.contains(rev) || !replicas.contains_key(rev) {
            continue;
        }
        let ready = replicas.get(rev).map_or(0, |r| r.iter().filter(|r| r.ready).count()) as u32;
        let want = if serving.contains(rev) {
            let mut scalers = state.scalers.lock().expect("scalers");
            let scaler = match scalers.get_mut(rev) {
                Some(s) => s,
                None => match crate::platform::scaling_spec(
                    &state.autoscaler,
                    &revision.spec,
                    &annotations,
                ) {
                    Ok(s) => scalers
                        .entry(rev.clone())
                        .or_insert_with(|| Autoscaler::new(&state.autoscaler, s, instant)),
                    Err(reason) => {
                        tracing::warn!(revision = %rev, %reason, "not scaled: bad scaling settings");
                        continue;
                    }
                },
            };
            scaler.tick(instant, ready, 0).desired
        } else {
            0
        };
        state.scaled.lock().expect("scaled").insert(rev.clone(), (ns.clone(), want));
        match backend.scale(rev, want).await {
            Ok(()) => {}
            Err(crate::backend::Error::Unsupported { reason, .. }) => rejected
                .push((rev.clone(), format!("{}: {reason}", condition::REASON_CHILD_REJECTED))),
            Err(e) => return Err(e.into()),
        }
    }
    for (rev, reason) in rejected {
        advance(&mut revisions, &rev, &RevisionPhase::Failed { reason }, at)?;
    }
    let derived = traffic::derive(&service, &revisions)?;
    derived.record(&mut revisions);

    // Save the revisions, write the status, publish the route.
    let cm = ConfigMap {
        metadata: ObjectMeta {
            name: Some(state_cm.clone()),
            namespace: Some(ns.clone()),
            owner_references: Some(vec![owner.clone()]),
            ..ObjectMeta::default()
        },
        data: Some(BTreeMap::from([(
            REVISIONS_KEY.to_owned(),
            serde_json::to_string(&revisions).expect("revisions serialize"),
        )])),
        ..ConfigMap::default()
    };
    apply(cms, &state_cm, &cm).await?;
    let mut status =
        serde_json::to_value(oxserve_api::isvc::InferenceServiceStatus::from(&derived.status))
            .expect("a status serializes");
    status["observedGeneration"] = json!(generation);
    patch_status(&api, &ar, &name, status).await?;
    let models: Vec<String> = children_of
        .iter()
        .filter_map(|tm| tm.pointer("/metadata/name").and_then(Value::as_str).map(str::to_owned))
        .collect();
    let mut route = traffic::service_route(&service, &derived.plan, &revisions, &replicas, &models);
    // Behind a transformer the predictor is reached at its in-cluster name (through the
    // alias Service above), the host the transformer's requests carry.
    if let Some(predictor) = route.predictor.as_mut() {
        predictor.host = desired::predictor_host(&name, &ns);
    }
    // Published on every pass, not only on a change: an unchanged table is a no-op apply,
    // and a table overwritten by hand (a re-applied kind/install) heals at the next pass.
    state.routes.lock().expect("routes").insert((ns, name), route);
    publish_routes(&state).await?;
    Ok(Action::requeue(state.config.resync))
}

/// One pass over a TrainedModel: its finalizer and status (its parent's readiness). The
/// parent's models config follows from the parent's pass, which a TrainedModel's change
/// triggers (the InferenceService controller watches TrainedModels and maps each to its
/// parent); a deleted one also touches its parent so that pass drops it.
pub async fn reconcile_trained_model(
    obj: Arc<DynamicObject>,
    state: Arc<State>,
) -> Result<Action, Error> {
    let action = trained_model_pass(obj.clone(), state.clone()).await?;
    state.succeeded(&key(&obj));
    Ok(action)
}

async fn trained_model_pass(obj: Arc<DynamicObject>, state: Arc<State>) -> Result<Action, Error> {
    let client = &state.client;
    let ns = obj.namespace().unwrap_or_else(|| "default".into());
    let name = obj.name_any();
    let api_version = obj.types.as_ref().map(|t| t.api_version.clone()).unwrap_or_default();
    let group = api_version.split('/').next().unwrap_or_default().to_owned();
    let ar = trained_model_resource(&group);
    let api = dyn_api(client, &ar, Some(&ns));
    let parent_name = obj
        .data
        .pointer("/spec/inferenceService")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    let parents = dyn_api(client, &isvc_resource(&group), Some(&ns));
    if obj.metadata.deletion_timestamp.is_some() {
        // Touch the parent so its pass drops the model from the models config.
        if parents.get_opt(&parent_name).await?.is_some() {
            let patch = json!({"metadata": {"annotations": {"serving.oxserve.dev/trained-models-changed": now().to_string()}}});
            parents.patch(&parent_name, &PatchParams::default(), &Patch::Merge(&patch)).await?;
        }
        remove_finalizer(&api, &obj).await?;
        return Ok(Action::await_change());
    }
    add_finalizer(&api, &obj).await?;
    let parent = parents.get_opt(&parent_name).await?;
    let ready = parent.as_ref().is_some_and(|p| {
        p.data.pointer("/status/conditions").and_then(Value::as_array).is_some_and(|c| {
            c.iter().any(|c| c["type"] == traffic::status::READY && c["status"] == "True")
        })
    });
    let (status_value, reason) = match (&parent, ready) {
        (None, _) => ("False", condition::REASON_PARENT_MISSING),
        (Some(_), false) => ("False", "InferenceServiceNotReady"),
        (Some(_), true) => ("True", ""),
    };
    let url = parent
        .as_ref()
        .and_then(|p| p.data.pointer("/status/url").and_then(Value::as_str))
        .map(|u| format!("{u}/v1/models/{name}"));
    let status = json!({
        "observedGeneration": obj.metadata.generation.unwrap_or(0),
        "url": url,
        "conditions": [
            {"type": condition::INFERENCE_SERVICE_READY, "status": status_value, "reason": reason},
            {"type": traffic::status::READY, "status": status_value, "reason": reason},
        ],
    });
    patch_status(&api, &ar, &name, status).await?;
    Ok(Action::requeue(state.config.resync))
}

async fn add_finalizer(api: &Api<DynamicObject>, obj: &DynamicObject) -> Result<(), kube::Error> {
    if obj.finalizers().iter().any(|f| f == FINALIZER) {
        return Ok(());
    }
    let mut finalizers = obj.finalizers().to_vec();
    finalizers.push(FINALIZER.to_owned());
    let patch =
        json!({"metadata": {"finalizers": finalizers, "resourceVersion": obj.resource_version()}});
    api.patch(&obj.name_any(), &PatchParams::default(), &Patch::Merge(&patch)).await.map(|_| ())
}

async fn remove_finalizer(
    api: &Api<DynamicObject>,
    obj: &DynamicObject,
) -> Result<(), kube::Error> {
    let finalizers: Vec<&String> = obj.finalizers().iter().filter(|f| *f != FINALIZER).collect();
    let patch =
        json!({"metadata": {"finalizers": finalizers, "resourceVersion": obj.resource_version()}});
    match api.patch(&obj.name_any(), &PatchParams::default(), &Patch::Merge(&patch)).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(s)) if s.is_not_found() => Ok(()),
        Err(e) => Err(e),
    }
}

async fn patch_status(
    api: &Api<DynamicObject>,
    ar: &ApiResource,
    name: &str,
    status: Value,
) -> Result<(), kube::Error> {
    let patch = json!({"apiVersion": ar.api_version, "kind": ar.kind, "status": status});
    api.patch_status(name, &PatchParams::apply(FIELD_MANAGER).force(), &Patch::Apply(&patch))
        .await
        .map(|_| ())
}

async fn publish_routes(state: &State) -> Result<(), kube::Error> {
    let cm = desired::routes_config_map(
        &state.config.routes_config_map,
        &state.config.router_namespace,
        &state.route_table(),
    );
    let api: Api<ConfigMap> = Api::namespaced(state.client.clone(), &state.config.router_namespace);
    apply(api, &state.config.routes_config_map, &cm).await
}

/// Scrapes the router pods every `every` and feeds the autoscalers, until dropped.
pub async fn scrape_routers(state: Arc<State>, every: Duration) {
    let http = reqwest::Client::new();
    let pods: Api<Pod> = Api::namespaced(state.client.clone(), &state.config.router_namespace);
    let mut last: Option<(Instant, HashMap<String, super::scrape::Totals>)> = None;
    let mut tick = tokio::time::interval(every);
    loop {
        tick.tick().await;
        let Ok(list) =
            pods.list(&ListParams::default().labels(&state.config.router_selector)).await
        else {
            continue;
        };
        let mut totals = HashMap::new();
        for pod in &list.items {
            let Some(ip) = pod.status.as_ref().and_then(|s| s.pod_ip.as_ref()) else { continue };
            if let Ok(resp) = http.get(format!("http://{ip}:8080/metrics")).send().await
                && let Ok(text) = resp.text().await
            {
                super::scrape::parse(&text, &mut totals);
            }
        }
        let at = Instant::now();
        if let Some((then, before)) = &last {
            for event in super::scrape::events(before, &totals, at - *then, at) {
                if let Some((ns, revision, replicas)) = state.record(&event) {
                    tracing::info!(%revision, replicas, "activating");
                    let api = Api::<Deployment>::namespaced(state.client.clone(), &ns);
                    if let Err(e) = super::backend::scale(&api, &revision, replicas).await {
                        tracing::warn!(%revision, error = %e, "scaling from zero");
                    }
                }
            }
        }
        last = Some((at, totals));
    }
}

/// Runs the controllers (both groups when asked) until one stops.
pub async fn run(state: Arc<State>, scrape_every: Duration) {
    let mut groups = vec![oxserve_api::ApiGroup::Oxserve.as_str()];
    if state.config.kserve_group {
        groups.push(oxserve_api::ApiGroup::Kserve.as_str());
    }
    let ns = state.config.namespace.clone();
    let routes: Api<ConfigMap> =
        Api::namespaced(state.client.clone(), &state.config.router_namespace);
    if let Ok(Some(cm)) = routes.get_opt(&state.config.routes_config_map).await
        && let Some(text) = cm.data.as_ref().and_then(|d| d.get(desired::ROUTES_KEY))
        && let Ok(table) = serde_yaml_ng::from_str::<RouteTable>(text)
    {
        state.seed_routes(table);
    }
    let mut tasks = Vec::new();
    for group in groups {
        let client = state.client.clone();
        let isvc = isvc_resource(group);
        let tm = trained_model_resource(group);
        let owned = |client: &Client| match &ns {
            Some(ns) => Api::<Deployment>::namespaced(client.clone(), ns),
            None => Api::<Deployment>::all(client.clone()),
        };
        let services = Controller::new_with(
            dyn_api(&client, &isvc, ns.as_deref()),
            watcher::Config::default(),
            isvc.clone(),
        )
        .owns_with(owned(&client), (), watcher::Config::default())
        // A TrainedModel's change is its parent's: the models config follows at once.
        .watches_with(
            dyn_api(&client, &tm, ns.as_deref()),
            tm.clone(),
            watcher::Config::default(),
            {
                let isvc = isvc.clone();
                move |model: DynamicObject| {
                    let parent =
                        model.data.pointer("/spec/inferenceService").and_then(Value::as_str)?;
                    let ns = model.namespace()?;
                    Some(ObjectRef::new_with(parent, isvc.clone()).within(&ns))
                }
            },
        )
        .run(reconcile_service, error_policy, state.clone())
        .for_each(|r| async move {
            if let Err(e) = r {
                tracing::debug!(error = %e, "inferenceservice pass");
            }
        });
        let models = Controller::new_with(
            dyn_api(&client, &tm, ns.as_deref()),
            watcher::Config::default(),
            tm.clone(),
        )
        .run(reconcile_trained_model, error_policy, state.clone())
        .for_each(|r| async move {
            if let Err(e) = r {
                tracing::debug!(error = %e, "trainedmodel pass");
            }
        });
        tasks.push(tokio::spawn(services));
        tasks.push(tokio::spawn(models));
    }
    tasks.push(tokio::spawn(scrape_routers(state.clone(), scrape_every)));
    let _ = futures::future::select_all(tasks).await;
}
