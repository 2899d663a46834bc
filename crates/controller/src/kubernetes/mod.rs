//! The Kubernetes backend: a kube-rs controller reconciling InferenceServices and
//! TrainedModels (both API groups, as dynamic objects parsed by `oxserve_api`) into plain
//! Deployments, Services, HPAs and ConfigMaps, with the oxserve router as gateway and
//! activator. Compiled with the `kubernetes` feature only.
//!
//! - [`desired`]: the desired state as pure functions (snapshot-tested as YAML).
//! - [`backend`]: [`backend::KubeBackend`], the second implementation of the
//!   [`crate::backend::Backend`] trait beside the local one, made per service and pass.
//! - [`reconcile`]: the controller: revisions kept in a state ConfigMap per service, driven
//!   through the backend, status written with server-side apply on `/status`, a finalizer
//!   for cleanup, the route table published as a ConfigMap the router mounts.
//!
//! What the trait covers, the reconciler does through [`backend::KubeBackend`]:
//! `ensure_revision` (the revision's Deployment, without `replicas`, and its Service),
//! `scale` (the Deployment's `/scale`, also the activator's fast path), `delete_revision`
//! (a revision whose component left the spec), `revision_status`/`replica_status` (its
//! pods: phase, readiness, `http://POD_IP:PORT`) and `set_models` (a multi-model parent's
//! `modelconfig-NAME-0` and the agent's puller in its predictor pods). Kubernetes-only, in
//! the reconciler: the HPA of `scaleMetric: cpu|memory`, the transformer's `NAME-predictor`
//! alias Service, the revision state ConfigMap, the finalizer, `/status`, the routes
//! ConfigMap and leader election.
//! - [`lease`]: leader election over a `coordination.k8s.io/v1` Lease.
//! - [`scrape`]: the router pods' `/metrics` turned into the KPA's samples.
//!
//! The route table goes to the router as a ConfigMap (key `routes.yaml`) mounted into the
//! router pods, not as CRDs the router watches: the router's standalone routes-file mode
//! already reloads a changed file, so the router stays free of any Kubernetes client, needs
//! no RBAC at all, and reads the exact `RouteTable` contract the local platform hands it.
//! The cost is the kubelet's ConfigMap propagation delay (its sync period, 10 s in
//! `kind/cluster.yaml`), which only delays a scale from zero that much longer.

pub mod backend;
pub mod desired;
pub mod lease;
pub mod reconcile;
pub mod scrape;

/// The field manager of every server-side apply.
pub const FIELD_MANAGER: &str = "oxserve-controller";
/// The finalizer on InferenceServices and TrainedModels.
pub const FINALIZER: &str = "serving.oxserve.dev/finalizer";

/// Condition types and reasons the controller writes beyond those of
/// [`crate::traffic::status`].
pub mod condition {
    /// A child object was refused by the API server.
    pub const REASON_CHILD_REJECTED: &str = "ChildRejected";
    /// The manifest does not parse or validate.
    pub const REASON_INVALID_SPEC: &str = "InvalidSpec";
    /// The TrainedModel's parent does not exist.
    pub const REASON_PARENT_MISSING: &str = "InferenceServiceNotFound";
    /// `TrainedModel` condition: the parent is ready.
    pub const INFERENCE_SERVICE_READY: &str = "InferenceServiceReady";
}

/// How the controller process runs: what it reconciles and the lease it holds while doing so.
#[derive(Clone, Debug)]
pub struct Options {
    pub config: reconcile::Config,
    /// This replica's name in the Lease (the pod name).
    pub identity: String,
    /// Where the Lease lives (the controller's own namespace).
    pub lease_namespace: String,
    /// The Lease's name.
    pub lease_name: String,
    /// How long a lease lasts without renewal (renewed every third of it).
    pub lease_duration: std::time::Duration,
    /// How often the router pods' metrics are scraped for the KPA.
    pub scrape_every: std::time::Duration,
}

/// Connects with the ambient configuration (in-cluster service account, else kubeconfig),
/// waits for the lease and reconciles until the lease is lost or a controller stops.
pub async fn main(options: Options) -> Result<(), reconcile::Error> {
    let Options { config, identity, lease_namespace, lease_name, lease_duration, scrape_every } =
        options;
    let client = kube::Client::try_default().await?;
    let leases = kube::Api::namespaced(client.clone(), &lease_namespace);
    let elector = lease::LeaderElector::new(leases, &lease_name, &identity, lease_duration);
    tracing::info!(%identity, lease = %format!("{lease_namespace}/{lease_name}"), "waiting for the lease");
    let state = std::sync::Arc::new(reconcile::State::new(client, config));
    elector.lead(reconcile::run(state, scrape_every)).await?;
    Ok(())
}
