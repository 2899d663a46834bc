//! [`KubeBackend`]: the [`Backend`] trait over one InferenceService's Deployments and
//! Services, the second implementation beside the local one ([`crate::local`]), driven by
//! the reconciler ([`super::reconcile`]) through the same calls.
//!
//! - `ensure_revision` server-side applies the revision's Deployment (without `replicas`,
//!   which `scale` owns through the `/scale` subresource, so a pass never fights the
//!   activator's fast path) and its Service;
//! - `scale` patches the Deployment's `/scale`;
//! - `delete_revision` deletes both (a revision whose component left the spec);
//! - `replica_status` lists the revision's pods (ready by their `Ready` condition,
//!   addressed by pod IP on the port its Service targets);
//! - `revision_status` reads the storage initializer's and the serving container's states
//!   into a [`RevisionPhase`];
//! - `set_models` publishes a multi-model parent's models config (KServe's
//!   `modelconfig-<isvc>-0`) and gives the predictor's pods the agent's puller.
//!
//! A backend is made per pass for one service: revision names (`NAME-predictor-00001`) are
//! unique only within a namespace, and the owner reference every child carries is the
//! service's. It keeps nothing between passes, so a restarted controller or a new leader
//! needs nothing but what the cluster holds.

use std::collections::HashMap;
use std::sync::Mutex;

use async_trait::async_trait;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Pod, Service};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::Client;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams};

use super::FIELD_MANAGER;
use super::desired::{self, Context, LABEL_REVISION, STORAGE_INITIALIZER};
use crate::backend::{
    Backend, Error, ModelAssignment, ReplicaStatus, Result, RevisionPhase, RevisionSpec,
    RevisionStatus,
};

/// The revisions of one InferenceService on a cluster.
pub struct KubeBackend {
    client: Client,
    ctx: Context,
    namespace: String,
    service: String,
    owner: OwnerReference,
    /// Predictor revisions told by `set_models` that TrainedModels name their service.
    multi_model: Mutex<HashMap<String, bool>>,
    /// The port each revision ensured by this backend serves on (its Service's target).
    ports: Mutex<HashMap<String, i32>>,
}

impl KubeBackend {
    /// The backend of service `namespace/service`, whose children carry `owner` and run
    /// `ctx.image`.
    pub fn new(
        client: Client,
        ctx: Context,
        namespace: &str,
        service: &str,
        owner: OwnerReference,
    ) -> KubeBackend {
        KubeBackend {
            client,
            ctx,
            namespace: namespace.to_owned(),
            service: service.to_owned(),
            owner,
            multi_model: Mutex::default(),
            ports: Mutex::default(),
        }
    }

    fn api<K>(&self) -> Api<K>
    where
        K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>,
        <K as kube::Resource>::DynamicType: Default,
    {
        Api::namespaced(self.client.clone(), &self.namespace)
    }

    fn pods(&self, revision: &str) -> ListParams {
        ListParams::default().labels(&format!("{LABEL_REVISION}={revision}"))
    }

    /// The port the revision's Service targets (the agent's when it runs in front), as
    /// ensured in this pass, else as its Service says; `None` when it has no Service.
    async fn serving_port(&self, revision: &str) -> Result<Option<i32>> {
        if let Some(port) = self.ports.lock().expect("ports").get(revision) {
            return Ok(Some(*port));
        }
        let service =
            self.api::<Service>().get_opt(revision).await.map_err(|e| api_error(revision, e))?;
        Ok(service.map(|s| match s.spec.and_then(|s| s.ports?.first()?.target_port.clone()) {
            Some(IntOrString::Int(port)) => port,
            _ => desired::HTTP_PORT,
        }))
    }
}

/// A refused child (invalid, forbidden) is the revision's failure, reported in status;
/// anything else is transient and retried with the pass.
pub fn api_error(revision: &str, e: kube::Error) -> Error {
    match e {
        kube::Error::Api(s) if s.is_invalid() || s.is_forbidden() => {
            Error::Unsupported { revision: revision.to_owned(), reason: s.message }
        }
        kube::Error::Api(s) if s.is_not_found() => Error::UnknownRevision(revision.to_owned()),
        e => Error::Unavailable { revision: revision.to_owned(), reason: e.to_string() },
    }
}

/// A pod's replica entry: ready by its `Ready` condition, `http://IP:PORT`.
pub fn replica_of(pod: &Pod, port: i32) -> Option<ReplicaStatus> {
    let status = pod.status.as_ref()?;
    let ip = status.pod_ip.as_ref()?;
    let ready =
        status.conditions.iter().flatten().any(|c| c.type_ == "Ready" && c.status == "True");
    let restarts =
        status.container_statuses.iter().flatten().map(|c| c.restart_count.max(0) as u32).sum();
    Some(ReplicaStatus {
        id: pod.metadata.name.clone().unwrap_or_default(),
        pid: None,
        http: Some(format!("http://{ip}:{port}")),
        grpc: None,
        ready,
        restarts,
        last_exit: None,
        log: None,
    })
}

/// The phase of a revision from its pods: a failed storage initializer or a crash-looping
/// server is `Failed`, a running storage initializer `Pulling`, a ready pod `Ready`.
pub fn phase_of(pods: &[Pod]) -> RevisionPhase {
    let mut pulling = false;
    for pod in pods {
        let Some(status) = &pod.status else { continue };
        for init in status.init_container_statuses.iter().flatten() {
            if !init.name.starts_with(STORAGE_INITIALIZER) {
                continue;
            }
            let state = init.state.as_ref();
            if let Some(t) = state.and_then(|s| s.terminated.as_ref())
                && t.exit_code != 0
            {
                let message =
                    t.message.clone().unwrap_or_else(|| format!("exit code {}", t.exit_code));
                return RevisionPhase::Failed { reason: format!("storage initializer: {message}") };
            }
            if state.and_then(|s| s.running.as_ref()).is_some() {
                pulling = true;
            }
        }
        for c in status.container_statuses.iter().flatten() {
            let waiting = c.state.as_ref().and_then(|s| s.waiting.as_ref());
            if let Some(w) = waiting
                && matches!(
                    w.reason.as_deref(),
                    Some("CrashLoopBackOff" | "ErrImagePull" | "ImagePullBackOff")
                )
            {
                let why = c
                    .last_state
                    .as_ref()
                    .and_then(|s| s.terminated.as_ref())
                    .and_then(|t| t.message.clone())
                    .or_else(|| w.message.clone())
                    .unwrap_or_default();
                return RevisionPhase::Failed {
                    reason: format!(
                        "{}: {}: {why}",
                        c.name,
                        w.reason.as_deref().unwrap_or_default()
                    ),
                };
            }
        }
    }
    let ready = pods.iter().filter_map(|p| replica_of(p, 0)).any(|r| r.ready);
    if ready {
        RevisionPhase::Ready
    } else if pulling {
        RevisionPhase::Pulling { done: 0, total: 0 }
    } else {
        RevisionPhase::Loading
    }
}

#[async_trait]
impl Backend for KubeBackend {
    async fn ensure_revision(&self, spec: &RevisionSpec) -> Result<()> {
        if spec.namespace != self.namespace || spec.service != self.service {
            return Err(Error::Invalid(format!(
                "revision {} belongs to {}/{}, not to this backend's {}/{}",
                spec.revision, spec.namespace, spec.service, self.namespace, self.service
            )));
        }
        let multi_model =
            self.multi_model.lock().expect("multi_model").get(&spec.revision).copied();
        let deployment =
            desired::deployment(spec, None, multi_model.unwrap_or(false), &self.ctx, &self.owner);
        let service = desired::service(spec, &self.owner);
        let pp = PatchParams::apply(FIELD_MANAGER).force();
        self.api::<Deployment>()
            .patch(&spec.revision, &pp, &Patch::Apply(&deployment))
            .await
            .map_err(|e| api_error(&spec.revision, e))?;
        self.api::<Service>()
            .patch(&spec.revision, &pp, &Patch::Apply(&service))
            .await
            .map_err(|e| api_error(&spec.revision, e))?;
        self.ports
            .lock()
            .expect("ports")
            .insert(spec.revision.clone(), desired::serving_port(spec));
        Ok(())
    }

    async fn scale(&self, revision: &str, replicas: u32) -> Result<()> {
        scale(&self.api(), revision, replicas).await
    }

    async fn delete_revision(&self, revision: &str) -> Result<()> {
        let dp = DeleteParams::background();
        for result in [
            self.api::<Deployment>().delete(revision, &dp).await.map(|_| ()),
            self.api::<Service>().delete(revision, &dp).await.map(|_| ()),
        ] {
            match result {
                Ok(()) => {}
                Err(kube::Error::Api(s)) if s.is_not_found() => {}
                Err(e) => return Err(api_error(revision, e)),
            }
        }
        self.multi_model.lock().expect("multi_model").remove(revision);
        self.ports.lock().expect("ports").remove(revision);
        Ok(())
    }

    async fn replica_status(&self, revision: &str) -> Result<Vec<ReplicaStatus>> {
        Ok(self.revision_status(revision).await?.replicas)
    }

    async fn revision_status(&self, revision: &str) -> Result<RevisionStatus> {
        let deployment = self
            .api::<Deployment>()
            .get_opt(revision)
            .await
            .map_err(|e| api_error(revision, e))?
            .ok_or_else(|| Error::UnknownRevision(revision.to_owned()))?;
        let port = self.serving_port(revision).await?.unwrap_or(desired::HTTP_PORT);
        let pods = self
            .api::<Pod>()
            .list(&self.pods(revision))
            .await
            .map_err(|e| api_error(revision, e))?;
        let desired = deployment.spec.replicas.unwrap_or(0).max(0) as u32;
        Ok(RevisionStatus {
            revision: revision.to_owned(),
            phase: phase_of(&pods.items),
            desired,
            replicas: pods.items.iter().filter_map(|p| replica_of(p, port)).collect(),
        })
    }

    /// The models config is the parent's (one per InferenceService, every predictor
    /// revision mounts it), so every predictor revision sets the same list. An empty list
    /// creates no config; one left from earlier TrainedModels is emptied (KServe keeps it
    /// as `[]`), and the next ensure drops the puller.
    async fn set_models(&self, revision: &str, models: &[ModelAssignment]) -> Result<()> {
        self.multi_model
            .lock()
            .expect("multi_model")
            .insert(revision.to_owned(), !models.is_empty());
        let name = desired::model_config_name(&self.service);
        let cm = desired::model_config_map_of(&self.service, &self.namespace, models, &self.owner);
        if models.is_empty() {
            let current =
                self.api::<ConfigMap>().get_opt(&name).await.map_err(|e| api_error(revision, e))?;
            let stale = current.is_some_and(|c| {
                c.data.as_ref().and_then(|d| d.get(desired::MODEL_CONFIG_KEY))
                    != cm.data.as_ref().and_then(|d| d.get(desired::MODEL_CONFIG_KEY))
            });
            if !stale {
                return Ok(());
            }
        }
        self.api::<ConfigMap>()
            .patch(&name, &PatchParams::apply(FIELD_MANAGER).force(), &Patch::Apply(&cm))
            .await
            .map_err(|e| api_error(revision, e))?;
        Ok(())
    }
}

/// Sets a revision's replicas through its Deployment's `/scale` (the pass and the
/// activator's fast path both call it).
pub async fn scale(api: &Api<Deployment>, revision: &str, replicas: u32) -> Result<()> {
    let patch = serde_json::json!({"spec": {"replicas": replicas}});
    let pp =
        PatchParams { field_manager: Some(FIELD_MANAGER.to_owned()), ..PatchParams::default() };
    api.patch_scale(revision, &pp, &Patch::Merge(&patch))
        .await
        .map_err(|e| api_error(revision, e))?;
    Ok(())
}
