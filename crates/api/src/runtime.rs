//! `ServingRuntime` / `ClusterServingRuntime` (v1alpha1): model servers that predictors
//! with `model.modelFormat` are matched to.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1 as core;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::fields::kserve_struct;
use crate::isvc::ProtocolVersion;

kserve_struct! { [runtime_pod]
    /// A model server: the formats it supports and the containers that run it.
    #[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
    #[kube(
        group = "serving.oxserve.dev",
        version = "v1alpha1",
        kind = "ServingRuntime",
        plural = "servingruntimes",
        singular = "servingruntime",
        namespaced,
        derive = "PartialEq",
        derive = "Default",
        printcolumn = r#"{"name":"Disabled","type":"boolean","jsonPath":".spec.disabled"}"#,
        printcolumn = r#"{"name":"ModelType","type":"string","jsonPath":".spec.supportedModelFormats[*].name"}"#,
        printcolumn = r#"{"name":"Containers","type":"string","jsonPath":".spec.containers[*].name"}"#,
        printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
    )]
    #[serde(rename_all = "camelCase")]
    pub struct ServingRuntimeSpec {
        /// The model formats this runtime serves.
        #[serde(skip_serializing_if = "Option::is_none")]
        pub supported_model_formats: Option<Vec<SupportedModelFormat>>,
        /// Whether it serves many models per replica (TrainedModels).
        #[serde(skip_serializing_if = "Option::is_none")]
        pub multi_model: Option<bool>,
        /// A disabled runtime is never selected.
        #[serde(skip_serializing_if = "Option::is_none")]
        pub disabled: Option<bool>,
        /// Protocols the runtime speaks.
        #[serde(skip_serializing_if = "Option::is_none")]
        pub protocol_versions: Option<Vec<ProtocolVersion>>,
        /// Worker pods of a multi-node runtime.
        #[serde(skip_serializing_if = "Option::is_none")]
        pub worker_spec: Option<RuntimeWorkerSpec>,
        /// Multi-model management endpoint (ModelMesh).
        #[serde(rename = "grpcEndpoint", skip_serializing_if = "Option::is_none")]
        pub grpc_endpoint: Option<String>,
        /// gRPC data endpoint (ModelMesh).
        #[serde(skip_serializing_if = "Option::is_none")]
        pub grpc_data_endpoint: Option<String>,
        /// HTTP data endpoint (ModelMesh).
        #[serde(rename = "httpDataEndpoint", skip_serializing_if = "Option::is_none")]
        pub http_data_endpoint: Option<String>,
        /// Replicas (ModelMesh).
        #[serde(skip_serializing_if = "Option::is_none")]
        pub replicas: Option<u16>,
        /// Storage helper settings.
        #[serde(skip_serializing_if = "Option::is_none")]
        pub storage_helper: Option<StorageHelper>,
        /// ModelMesh adapter settings.
        #[serde(skip_serializing_if = "Option::is_none")]
        pub built_in_adapter: Option<BuiltInAdapter>,
    }
}

kserve_struct! { [runtime_pod]
    /// Worker pods of a multi-node runtime.
    #[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
    #[serde(rename_all = "camelCase")]
    pub struct RuntimeWorkerSpec {
        /// Pipeline-parallel degree.
        #[serde(skip_serializing_if = "Option::is_none")]
        pub pipeline_parallel_size: Option<i64>,
        /// Tensor-parallel degree.
        #[serde(skip_serializing_if = "Option::is_none")]
        pub tensor_parallel_size: Option<i64>,
    }
}

/// One of `supportedModelFormats`.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SupportedModelFormat {
    /// Format name.
    pub name: String,
    /// Format version.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// Whether predictors without `runtime:` may be matched to this runtime.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub auto_select: Option<bool>,
    /// Preference among runtimes that auto-select the same format (higher wins).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub priority: Option<i32>,
}

/// `storageHelper`.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
pub struct StorageHelper {
    /// Whether the storage initializer is disabled.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub disabled: Option<bool>,
}

/// `builtInAdapter` (ModelMesh).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BuiltInAdapter {
    /// `triton`, `mlserver`, `ovms`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub server_type: Option<String>,
    /// Port of the runtime's management API.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub runtime_management_port: Option<i64>,
    /// Memory buffer size.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mem_buffer_bytes: Option<i64>,
    /// Model load timeout.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model_loading_timeout_millis: Option<i64>,
    /// Adapter environment.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub env: Option<Vec<core::EnvVar>>,
}

/// The spec of a [`ClusterServingRuntime`]: the same as a namespaced runtime's.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "serving.oxserve.dev",
    version = "v1alpha1",
    kind = "ClusterServingRuntime",
    plural = "clusterservingruntimes",
    singular = "clusterservingruntime",
    derive = "PartialEq",
    derive = "Default",
    printcolumn = r#"{"name":"Disabled","type":"boolean","jsonPath":".spec.disabled"}"#,
    printcolumn = r#"{"name":"ModelType","type":"string","jsonPath":".spec.supportedModelFormats[*].name"}"#,
    printcolumn = r#"{"name":"Containers","type":"string","jsonPath":".spec.containers[*].name"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(transparent)]
pub struct ClusterServingRuntimeSpec(pub ServingRuntimeSpec);

impl From<ClusterServingRuntime> for ServingRuntime {
    /// A cluster runtime as a namespaced one, for [`crate::select_runtime`]'s list.
    fn from(c: ClusterServingRuntime) -> ServingRuntime {
        ServingRuntime { metadata: c.metadata, spec: c.spec.0 }
    }
}
