//! The route table: everything the router needs to send a request to a replica, as the
//! control plane (or a standalone `routes.yaml`) describes it.
//!
//! This is the contract between the control plane and the data-plane gateway. The control
//! plane builds a whole new table on every change and the router swaps it in atomically;
//! nothing in it is mutated in place. Weights are per component and are handed to
//! [`crate::split::Splitter`] in the order of `targets`.

use serde::{Deserialize, Serialize};

/// Every routable service.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RouteTable {
    pub services: Vec<ServiceRoute>,
}

/// One InferenceService (or, in standalone mode, one named group of backends).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ServiceRoute {
    pub name: String,
    pub namespace: String,
    /// Host names that reach the service (`NAME.NS.domain`); matched without the port.
    #[serde(default)]
    pub hosts: Vec<String>,
    /// Model names that reach the service from a V1/V2 path or a gRPC request without a
    /// matching host: the service's own name and its TrainedModels' names.
    #[serde(default)]
    pub models: Vec<String>,
    /// Where requests enter: the transformer when there is one, else the predictor.
    pub entry: ComponentRoute,
    /// The predictor, when `entry` is a transformer; the transformer reaches it through the
    /// router at `predictor.host` (KServe's `--predictor_host` contract).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub predictor: Option<ComponentRoute>,
}

/// One component (predictor, transformer, explainer) and its weighted revisions.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ComponentRoute {
    /// `predictor`, `transformer` or `explainer`.
    pub component: String,
    /// The host name that reaches this component alone (`NAME-predictor.NS.domain`).
    #[serde(default)]
    pub host: String,
    pub targets: Vec<RevisionTarget>,
}

/// One revision's share of its component's traffic and where its replicas are.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RevisionTarget {
    /// The revision name (`NAME-predictor-00001`), sent back as `x-oxserve-revision`.
    pub revision: String,
    /// Share of the component's traffic (percent in the control plane's tables; any
    /// non-negative weights in a standalone file).
    pub weight: u32,
    /// `latest` / `prev`: reached alone through `TAG-NAME.NS.domain`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tag: Option<String>,
    /// The model name whose readiness gates activation (`/v2/models/{m}/ready`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// Hard per-replica limit on requests in flight; 0 is unlimited.
    #[serde(default)]
    pub container_concurrency: u32,
    /// How long a request may wait and run before it is answered 504 (KServe's component
    /// `timeout`, default 300 s).
    #[serde(default = "default_timeout_seconds")]
    pub timeout_seconds: u64,
    /// The revision's replicas; empty when it is scaled to zero.
    #[serde(default)]
    pub replicas: Vec<Replica>,
}

/// One running replica of a revision.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Replica {
    /// Stable id within the revision (for logs and metrics).
    pub id: String,
    /// Base URL of its REST port (`http://127.0.0.1:PORT`).
    pub http: String,
    /// `host:port` of its gRPC port, when it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grpc: Option<String>,
    /// Whether the control plane has seen the model ready on it.
    #[serde(default)]
    pub ready: bool,
}

/// KServe's default component timeout.
pub const DEFAULT_TIMEOUT_SECONDS: u64 = 300;

fn default_timeout_seconds() -> u64 {
    DEFAULT_TIMEOUT_SECONDS
}
