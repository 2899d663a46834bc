//! `InferenceService` (v1beta1): the spec with KServe's field names and shapes, and the
//! status exactly as KServe writes it.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1 as core;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::fields::kserve_struct;
use crate::status::{Addressable, Condition, ModelStatus, TrafficTarget};

/// The desired state of an InferenceService: a predictor, and optionally a transformer in
/// front of it and an explainer beside it.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "serving.oxserve.dev",
    version = "v1beta1",
    kind = "InferenceService",
    plural = "inferenceservices",
    singular = "inferenceservice",
    shortname = "isvc",
    category = "all",
    namespaced,
    status = "InferenceServiceStatus",
    derive = "PartialEq",
    derive = "Default",
    printcolumn = r#"{"name":"URL","type":"string","jsonPath":".status.url"}"#,
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type=='Ready')].status"}"#,
    printcolumn = r#"{"name":"Prev","type":"integer","jsonPath":".status.components.predictor.traffic[?(@.tag=='prev')].percent"}"#,
    printcolumn = r#"{"name":"Latest","type":"integer","jsonPath":".status.components.predictor.traffic[?(@.latestRevision==true)].percent"}"#,
    printcolumn = r#"{"name":"PrevRolledoutRevision","type":"string","jsonPath":".status.components.predictor.traffic[?(@.tag=='prev')].revisionName"}"#,
    printcolumn = r#"{"name":"LatestReadyRevision","type":"string","jsonPath":".status.components.predictor.traffic[?(@.latestRevision==true)].revisionName"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct InferenceServiceSpec {
    /// The model server.
    pub predictor: PredictorSpec,
    /// Explanations beside the predictor.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub explainer: Option<ExplainerSpec>,
    /// Pre/post-processing in front of the predictor.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub transformer: Option<TransformerSpec>,
    /// Named canary predictors with a traffic share each (KServe v0.20, standard mode).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub canary: Option<Vec<CanarySpec>>,
}

/// One entry of `spec.canary[]`.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CanarySpec {
    /// The canary's predictor; `predictor.name` is required and unique.
    pub predictor: PredictorSpec,
    /// Share of traffic, 0–100.
    pub traffic_percent: i32,
}

kserve_struct! { [pod extension]
    /// The predictor: exactly one of the framework fields, `model`, or custom `containers`.
    #[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
    #[serde(rename_all = "camelCase")]
    pub struct PredictorSpec {
        /// Name of this predictor (required for `spec.canary[]` entries).
        #[serde(skip_serializing_if = "Option::is_none")]
        pub name: Option<String>,
        /// scikit-learn (served from an ONNX export by the built-in runtime).
        #[serde(skip_serializing_if = "Option::is_none")]
        pub sklearn: Option<Box<FrameworkSpec>>,
        /// XGBoost (JSON / UBJSON model), served natively.
        #[serde(skip_serializing_if = "Option::is_none")]
        pub xgboost: Option<Box<FrameworkSpec>>,
        /// TensorFlow SavedModel (needs a ServingRuntime).
        #[serde(skip_serializing_if = "Option::is_none")]
        pub tensorflow: Option<Box<FrameworkSpec>>,
        /// TorchServe (needs a ServingRuntime).
        #[serde(skip_serializing_if = "Option::is_none")]
        pub pytorch: Option<Box<FrameworkSpec>>,
        /// Triton Inference Server (needs a ServingRuntime).
        #[serde(skip_serializing_if = "Option::is_none")]
        pub triton: Option<Box<FrameworkSpec>>,
        /// ONNX, served natively through ONNX Runtime.
        #[serde(skip_serializing_if = "Option::is_none")]
        pub onnx: Option<Box<FrameworkSpec>>,
        /// Hugging Face (needs a ServingRuntime).
        #[serde(skip_serializing_if = "Option::is_none")]
        pub huggingface: Option<Box<FrameworkSpec>>,
        /// PMML (needs a ServingRuntime).
        #[serde(skip_serializing_if = "Option::is_none")]
        pub pmml: Option<Box<FrameworkSpec>>,
        /// LightGBM (text model), served natively.
        #[serde(skip_serializing_if = "Option::is_none")]
        pub lightgbm: Option<Box<FrameworkSpec>>,
        /// PaddlePaddle (needs a ServingRuntime).
        #[serde(skip_serializing_if = "Option::is_none")]
        pub paddle: Option<Box<FrameworkSpec>>,
        /// The new-style predictor: a model format resolved through the ServingRuntimes.
        #[serde(skip_serializing_if = "Option::is_none")]
        pub model: Option<Box<ModelSpec>>,
        /// Several storage locations, each mounted at its own path.
        #[serde(skip_serializing_if = "Option::is_none")]
        pub storage_uris: Option<Vec<StorageUri>>,
        /// Name of a ClusterStorageContainer to download with.
        #[serde(skip_serializing_if = "Option::is_none")]
        pub storage_container_name: Option<String>,
        /// Worker pods of a multi-node predictor.
        #[serde(skip_serializing_if = "Option::is_none")]
        pub worker_spec: Option<Box<WorkerSpec>>,
    }
}

kserve_struct! { [pod]
    /// The worker pods of a multi-node predictor.
    #[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
    #[serde(rename_all = "camelCase")]
    pub struct WorkerSpec {
        /// Pipeline-parallel degree.
        #[serde(skip_serializing_if = "Option::is_none")]
        pub pipeline_parallel_size: Option<i64>,
        /// Tensor-parallel degree.
        #[serde(skip_serializing_if = "Option::is_none")]
        pub tensor_parallel_size: Option<i64>,
    }
}

kserve_struct! { [predictor_ext container]
    /// A framework predictor (`sklearn`, `xgboost`, `onnx`, …): KServe's
    /// `PredictorExtensionSpec` with the serving container's fields inline.
    #[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
    #[serde(rename_all = "camelCase")]
    pub struct FrameworkSpec {}
}

kserve_struct! { [predictor_ext container]
    /// `predictor.model`: the model format, an optional runtime by name, and the framework
    /// predictor's fields.
    #[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
    #[serde(rename_all = "camelCase")]
    pub struct ModelSpec {
        /// The model's format (`onnx`, `xgboost`, `sklearn`, `tensorflow`, …).
        pub model_format: ModelFormat,
        /// A ServingRuntime or ClusterServingRuntime by name (else chosen by format).
        #[serde(skip_serializing_if = "Option::is_none")]
        pub runtime: Option<String>,
    }
}

/// A model format name and optional version.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ModelFormat {
    /// Format name, e.g. `onnx`.
    pub name: String,
    /// Format version, e.g. `1`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
}

kserve_struct! { [pod extension]
    /// The transformer: custom containers in front of the predictor.
    #[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
    #[serde(rename_all = "camelCase")]
    pub struct TransformerSpec {
        /// Several storage locations, each mounted at its own path.
        #[serde(skip_serializing_if = "Option::is_none")]
        pub storage_uris: Option<Vec<StorageUri>>,
    }
}

kserve_struct! { [pod extension]
    /// The explainer: KServe's `art` or custom containers (run externally), or, in the
    /// `serving.oxserve.dev` group only, oxserve's own explainer served by the predictor.
    #[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
    #[serde(rename_all = "camelCase")]
    pub struct ExplainerSpec {
        /// Adversarial Robustness Toolbox explainer (an external container).
        #[serde(skip_serializing_if = "Option::is_none")]
        pub art: Option<Box<ArtExplainerSpec>>,
        /// oxserve's own explainer (native group only), served by the predictor replicas.
        #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
        pub explainer_type: Option<OxserveExplainerType>,
        /// Options of oxserve's explainer (`nsamples`, `background`, …).
        #[serde(skip_serializing_if = "Option::is_none")]
        pub config: Option<BTreeMap<String, String>>,
        /// Several storage locations, each mounted at its own path.
        #[serde(skip_serializing_if = "Option::is_none")]
        pub storage_uris: Option<Vec<StorageUri>>,
    }
}

kserve_struct! { [explainer_ext container]
    /// KServe's ART explainer.
    #[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
    #[serde(rename_all = "camelCase")]
    pub struct ArtExplainerSpec {
        /// The attack, e.g. `SquareAttack`.
        #[serde(rename = "type")]
        pub art_type: String,
    }
}

/// oxserve's own explainers.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum OxserveExplainerType {
    /// Exact SHAP values for tree ensembles (XGBoost, LightGBM).
    Treeshap,
    /// Model-agnostic Kernel SHAP.
    Kernelshap,
}

/// One of `storageUris`.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct StorageUri {
    /// Where the files are.
    pub uri: String,
    /// Where they are mounted.
    pub mount_path: String,
}

/// `storage`: a model by key in a storage secret.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ModelStorageSpec {
    /// Path of the model inside the storage.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// Storage parameters overriding the secret's (`type`, `bucket`, …).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parameters: Option<BTreeMap<String, String>>,
    /// The key in the storage secret.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// Path of the model's schema.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub schema_path: Option<String>,
}

/// Confidential computing settings of a predictor.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ConfidentialSpec {
    /// Whether the predictor runs confidentially.
    pub enabled: bool,
    /// Key resource id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resource_id: Option<String>,
}

/// The inference protocol of a predictor.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, JsonSchema)]
pub enum ProtocolVersion {
    /// V1 (TF-Serving style) REST.
    #[serde(rename = "v1")]
    V1,
    /// Open Inference Protocol (V2) REST and gRPC.
    #[serde(rename = "v2")]
    V2,
    /// V1 over gRPC.
    #[serde(rename = "grpc-v1")]
    GrpcV1,
    /// V2 over gRPC.
    #[serde(rename = "grpc-v2")]
    GrpcV2,
}

impl ProtocolVersion {
    /// The name as written in manifests.
    pub fn as_str(self) -> &'static str {
        match self {
            ProtocolVersion::V1 => "v1",
            ProtocolVersion::V2 => "v2",
            ProtocolVersion::GrpcV1 => "grpc-v1",
            ProtocolVersion::GrpcV2 => "grpc-v2",
        }
    }
}

/// `scaleMetric`.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ScaleMetric {
    /// Requests in flight per replica (Knative KPA, the default).
    Concurrency,
    /// Requests per second per replica (KPA).
    Rps,
    /// CPU utilisation (HPA).
    Cpu,
    /// Memory utilisation (HPA).
    Memory,
}

/// `scaleMetricType` / an HPA metric target type.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum MetricTargetType {
    /// Percent of the requested resource.
    Utilization,
    /// An absolute value.
    Value,
    /// An absolute value averaged over replicas.
    AverageValue,
}

/// `autoScaling`: HPA or KEDA metrics (raw deployment mode).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AutoScalingSpec {
    /// The metrics to scale on.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metrics: Option<Vec<MetricsSpec>>,
    /// HPA scaling behaviour.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub behavior: Option<k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscalerBehavior>,
}

/// One autoscaling metric.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MetricsSpec {
    /// `Resource`, `External` or `PodMetric`.
    #[serde(rename = "type")]
    pub metric_type: String,
    /// A resource metric (cpu / memory).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resource: Option<ResourceMetricSource>,
    /// An external metric (KEDA).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub external: Option<ExternalMetricSource>,
    /// A pod metric (KEDA, OpenTelemetry).
    #[serde(rename = "podmetric", skip_serializing_if = "Option::is_none")]
    pub pod_metric: Option<PodMetricSource>,
}

/// A resource metric.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ResourceMetricSource {
    /// `cpu` or `memory`.
    pub name: String,
    /// The target.
    pub target: MetricTarget,
}

/// An external metric (KEDA).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ExternalMetricSource {
    /// The query.
    pub metric: ExternalMetrics,
    /// Authentication of the metrics backend.
    #[serde(rename = "authenticationRef", skip_serializing_if = "Option::is_none")]
    pub authentication: Option<ExtMetricAuthentication>,
    /// The target.
    pub target: MetricTarget,
}

/// Authentication of an external metrics backend.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ExtMetricAuthentication {
    /// The KEDA TriggerAuthentication.
    pub authentication_ref: AuthenticationRef,
    /// Authentication modes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub auth_modes: Option<String>,
}

/// A reference by name.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
pub struct AuthenticationRef {
    /// The name.
    pub name: String,
}

/// An external metric query.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ExternalMetrics {
    /// `prometheus` or `graphite`.
    pub backend: String,
    /// Address of the backend.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub server_address: Option<String>,
    /// The query.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub query: Option<String>,
    /// Namespace of the query.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
}

/// A pod metric (KEDA, OpenTelemetry).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PodMetricSource {
    /// The query.
    pub metric: PodMetrics,
    /// The target.
    pub target: MetricTarget,
}

/// A pod metric query.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PodMetrics {
    /// `opentelemetry`.
    pub backend: String,
    /// Address of the backend.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub server_address: Option<String>,
    /// Metric names.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metric_names: Option<Vec<String>>,
    /// The query.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub query: Option<String>,
    /// Aggregation over time.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub operation_over_time: Option<String>,
}

/// A metric target.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MetricTarget {
    /// `Utilization`, `Value` or `AverageValue`.
    #[serde(rename = "type")]
    pub target_type: String,
    /// Absolute value.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value: Option<Quantity>,
    /// Absolute value averaged over replicas.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub average_value: Option<Quantity>,
    /// Percent of the requested resource.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub average_utilization: Option<i32>,
}

/// `logger`: payload logging as CloudEvents.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LoggerSpec {
    /// The sink the events are sent to.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// What is logged (`all` by default).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mode: Option<LoggerMode>,
    /// Request headers copied into the events.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metadata_headers: Option<Vec<String>>,
    /// InferenceService annotations copied into the events.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metadata_annotations: Option<Vec<String>>,
    /// Log to storage instead of a URL.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub storage: Option<LoggerStorageSpec>,
    /// URL of a marshaller service.
    #[serde(rename = "marshallerUrl", skip_serializing_if = "Option::is_none")]
    pub marshaller_url: Option<String>,
    /// Events per batch written to storage.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub batch_size: Option<i64>,
    /// Longest wait before a batch is written.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub batch_interval: Option<String>,
}

/// `logger.mode`.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum LoggerMode {
    /// Requests and responses.
    All,
    /// Requests only.
    Request,
    /// Responses only.
    Response,
}

/// `logger.storage`.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LoggerStorageSpec {
    /// Path inside the storage.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// Storage parameters.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parameters: Option<BTreeMap<String, String>>,
    /// Key in the storage secret.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// Service account with access to the storage.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub service_account_name: Option<String>,
}

/// `batcher`.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Batcher {
    /// Largest batch.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_batch_size: Option<i64>,
    /// Longest wait for a batch to fill, in milliseconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_latency: Option<i64>,
    /// Timeout of a batched request, in seconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timeout: Option<i64>,
}

/// The observed state, as KServe writes it.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct InferenceServiceStatus {
    /// The generation the status describes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// `Ready`, `PredictorReady`, `IngressReady`, … (see [`crate::status::conditions`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub conditions: Option<Vec<Condition>>,
    /// Status annotations.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub annotations: Option<BTreeMap<String, String>>,
    /// Cluster-internal address.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub address: Option<Addressable>,
    /// The public URL.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// Per-component revisions and traffic.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub components: Option<ComponentsStatus>,
    /// The model's state.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model_status: Option<ModelStatus>,
    /// Per-canary state (`spec.canary[]`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub canary_statuses: Option<Vec<CanaryStatus>>,
    /// `Serverless`, `RawDeployment`, `Standard`, …
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deployment_mode: Option<String>,
    /// The ServingRuntime chosen.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub serving_runtime_name: Option<String>,
    /// The ClusterServingRuntime chosen.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cluster_serving_runtime_name: Option<String>,
}

/// `status.components`.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
pub struct ComponentsStatus {
    /// The predictor.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub predictor: Option<ComponentStatusSpec>,
    /// The transformer.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub transformer: Option<ComponentStatusSpec>,
    /// The explainer.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub explainer: Option<ComponentStatusSpec>,
}

/// One component's revisions, traffic and URLs.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ComponentStatusSpec {
    /// The latest revision that became ready.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub latest_ready_revision: Option<String>,
    /// The latest revision created.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub latest_created_revision: Option<String>,
    /// The revision rolled out before the latest one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub previous_rolledout_revision: Option<String>,
    /// The revision rolled out last.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub latest_rolledout_revision: Option<String>,
    /// The traffic split.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub traffic: Option<Vec<TrafficTarget>>,
    /// The component's URL.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// REST URL.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rest_url: Option<String>,
    /// gRPC URL.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub grpc_url: Option<String>,
    /// Cluster-internal address.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub address: Option<Addressable>,
}

/// One of `status.canaryStatuses`.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CanaryStatus {
    /// The canary predictor's name.
    pub name: String,
    /// Whether it is ready.
    pub ready: bool,
    /// Its share of traffic.
    pub traffic_percent: i32,
    /// Its model's state.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model_status: Option<ModelStatus>,
}
