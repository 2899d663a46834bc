//! `TrainedModel` (v1alpha1): one more model loaded into a multi-model InferenceService.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::status::{Addressable, Condition};

/// A model served by the predictor of `spec.inferenceService`.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "serving.oxserve.dev",
    version = "v1alpha1",
    kind = "TrainedModel",
    plural = "trainedmodels",
    singular = "trainedmodel",
    shortname = "tm",
    namespaced,
    status = "TrainedModelStatus",
    derive = "PartialEq",
    derive = "Default",
    printcolumn = r#"{"name":"URL","type":"string","jsonPath":".status.url"}"#,
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type=='Ready')].status"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct TrainedModelSpec {
    /// The parent InferenceService (same namespace).
    pub inference_service: String,
    /// The model.
    pub model: TrainedModelModelSpec,
}

/// `spec.model` of a TrainedModel.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TrainedModelModelSpec {
    /// Where the model is.
    #[serde(rename = "storageUri")]
    pub storage_uri: String,
    /// The framework (`sklearn`, `xgboost`, `onnx`, …); must match the parent's.
    pub framework: String,
    /// Memory the model needs, counted against the parent's budget.
    pub memory: Quantity,
}

/// The observed state of a TrainedModel.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TrainedModelStatus {
    /// The generation the status describes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// `Ready`, `InferenceServiceReady`, `MemoryResourceAvailable`, `IsMMSPredictor`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub conditions: Option<Vec<Condition>>,
    /// Status annotations.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub annotations: Option<BTreeMap<String, String>>,
    /// The model's URL.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// Cluster-internal address.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub address: Option<Addressable>,
}
