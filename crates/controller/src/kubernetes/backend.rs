//! [`KubeBackend`]: the [`Backend`] trait over Deployments and Services.
//!
//! `ensure_revision` server-side applies the revision's Deployment (without `replicas`,
//! which `scale` owns through the `/scale` subresource) and Service; `scale` patches the
//! Deployment's scale; `replica_status` lists the revision's pods (ready by their `Ready`
//! condition, addressed by pod IP); `revision_status` reads the storage initializer's and
//! the serving container's states into a [`RevisionPhase`].

use std::collections::HashMap;
use std::sync::Mutex;

use async_trait::async_trait;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Pod, Service};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::Client;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams};

use super::FIELD_MANAGER;
use super::desired::{self, Context, LABEL_REVISION, STORAGE_INITIALIZER};
use crate::backend::{
    Backend, Error, ReplicaStatus, Result, RevisionPhase, RevisionSpec, RevisionStatus,
};

/// Revisions on a cluster. The owner of each service's children is set with
/// [`KubeBackend::set_owner`] before its revisions are ensured.
pub struct KubeBackend {
    client: Client,
    ctx: Context,
    owners: Mutex<HashMap<(String, String), OwnerReference>>,
    /// revision → namespace, learnt on ensure.
    namespaces: Mutex<HashMap<String, String>>,
}

impl KubeBackend {
    /// A backend that runs revisions with `ctx.image`.
    pub fn new(client: Client, ctx: Context) -> KubeBackend {
        KubeBackend { client, ctx, owners: Mutex::default(), namespaces: Mutex::default() }
    }

    /// The owner reference of service `namespace/name`'s children.
    pub fn set_owner(&self, namespace: &str, name: &str, owner: OwnerReference) {
        self.owners.lock().expect("owners").insert((namespace.into(), name.into()), owner);
    }

    fn namespace(&self, revision: &str) -> Result<String> {
        self.namespaces
            .lock()
            .expect("namespaces")
            .get(revision)
            .cloned()
            .ok_or_else(|| Error::UnknownRevision(revision.to_owned()))
    }
}

fn kube_error(revision: &str, e: kube::Error) -> Error {
    Error::Unsupported { revision: revision.to_owned(), reason: e.to_string() }
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
        let owner = self
            .owners
            .lock()
            .expect("owners")
            .get(&(spec.namespace.clone(), spec.service.clone()))
            .cloned()
            .ok_or_else(|| {
                Error::Invalid(format!("service {}/{}: no owner set", spec.namespace, spec.service))
            })?;
        let deployment = desired::deployment(spec, None, false, &self.ctx, &owner);
        let service = desired::service(spec, &owner);
        let pp = PatchParams::apply(FIELD_MANAGER).force();
        Api::<Deployment>::namespaced(self.client.clone(), &spec.namespace)
            .patch(&spec.revision, &pp, &Patch::Apply(&deployment))
            .await
            .map_err(|e| kube_error(&spec.revision, e))?;
        Api::<Service>::namespaced(self.client.clone(), &spec.namespace)
            .patch(&spec.revision, &pp, &Patch::Apply(&service))
            .await
            .map_err(|e| kube_error(&spec.revision, e))?;
        self.namespaces
            .lock()
            .expect("namespaces")
            .insert(spec.revision.clone(), spec.namespace.clone());
        Ok(())
    }

    async fn scale(&self, revision: &str, replicas: u32) -> Result<()> {
        let ns = self.namespace(revision)?;
        let patch = serde_json::json!({"spec": {"replicas": replicas}});
        Api::<Deployment>::namespaced(self.client.clone(), &ns)
            .patch_scale(revision, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .map_err(|e| kube_error(revision, e))?;
        Ok(())
    }

    async fn delete_revision(&self, revision: &str) -> Result<()> {
        let Ok(ns) = self.namespace(revision) else { return Ok(()) };
        let dp = DeleteParams::background();
        for result in [
            Api::<Deployment>::namespaced(self.client.clone(), &ns)
                .delete(revision, &dp)
                .await
                .map(|_| ()),
            Api::<Service>::namespaced(self.client.clone(), &ns)
                .delete(revision, &dp)
                .await
                .map(|_| ()),
        ] {
            match result {
                Ok(()) => {}
                Err(kube::Error::Api(s)) if s.is_not_found() => {}
                Err(e) => return Err(kube_error(revision, e)),
            }
        }
        self.namespaces.lock().expect("namespaces").remove(revision);
        Ok(())
    }

    async fn replica_status(&self, revision: &str) -> Result<Vec<ReplicaStatus>> {
        let ns = self.namespace(revision)?;
        let pods = Api::<Pod>::namespaced(self.client.clone(), &ns)
            .list(&ListParams::default().labels(&format!("{LABEL_REVISION}={revision}")))
            .await
            .map_err(|e| kube_error(revision, e))?;
        Ok(pods.items.iter().filter_map(|p| replica_of(p, desired::HTTP_PORT)).collect())
    }

    async fn revision_status(&self, revision: &str) -> Result<RevisionStatus> {
        let ns = self.namespace(revision)?;
        let pods = Api::<Pod>::namespaced(self.client.clone(), &ns)
            .list(&ListParams::default().labels(&format!("{LABEL_REVISION}={revision}")))
            .await
            .map_err(|e| kube_error(revision, e))?;
        let deployment = Api::<Deployment>::namespaced(self.client.clone(), &ns)
            .get_opt(revision)
            .await
            .map_err(|e| kube_error(revision, e))?;
        let desired = deployment.and_then(|d| d.spec.replicas).unwrap_or(0).max(0) as u32;
        Ok(RevisionStatus {
            revision: revision.to_owned(),
            phase: phase_of(&pods.items),
            desired,
            replicas: pods.items.iter().filter_map(|p| replica_of(p, desired::HTTP_PORT)).collect(),
        })
    }
}
