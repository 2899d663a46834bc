//! Status building blocks shared by the kinds (Knative's duck types as KServe embeds them)
//! and KServe's condition types and reasons as constants.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A Knative-style condition (`apis.Condition`).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Condition {
    /// The condition type, e.g. [`conditions::READY`].
    #[serde(rename = "type")]
    pub type_: String,
    /// `True`, `False` or `Unknown`.
    pub status: String,
    /// `Error` (default when empty), `Warning` or `Info`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub severity: Option<String>,
    /// When the status last changed (RFC 3339).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_transition_time: Option<String>,
    /// One-word CamelCase reason.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Human-readable details.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// Condition types, statuses and reasons as KServe writes them.
pub mod conditions {
    /// The overall condition.
    pub const READY: &str = "Ready";
    /// The predictor serves.
    pub const PREDICTOR_READY: &str = "PredictorReady";
    /// The transformer serves.
    pub const TRANSFORMER_READY: &str = "TransformerReady";
    /// The explainer serves.
    pub const EXPLAINER_READY: &str = "ExplainerReady";
    /// Routes reach the predictor.
    pub const PREDICTOR_ROUTE_READY: &str = "PredictorRouteReady";
    /// Routes reach the transformer.
    pub const TRANSFORMER_ROUTE_READY: &str = "TransformerRouteReady";
    /// Routes reach the explainer.
    pub const EXPLAINER_ROUTES_READY: &str = "ExplainerRoutesReady";
    /// The predictor's configuration is ready.
    pub const PREDICTOR_CONFIGURATION_READY: &str = "PredictorConfigurationReady";
    /// The transformer's configuration is ready.
    pub const TRANSFORMER_CONFIGURATION_READY: &str = "TransformerConfigurationReady";
    /// The explainer's configuration is ready.
    pub const EXPLAINER_CONFIGURATION_READY: &str = "ExplainerConfigurationReady";
    /// The ingress routes to the InferenceService.
    pub const INGRESS_READY: &str = "IngressReady";
    /// All routes are ready.
    pub const ROUTES_READY: &str = "RoutesReady";
    /// The latest deployment is ready.
    pub const LATEST_DEPLOYMENT_READY: &str = "LatestDeploymentReady";
    /// The canary predictors are ready.
    pub const CANARY_PREDICTOR_READY: &str = "CanaryPredictorReady";
    /// The InferenceService is stopped.
    pub const STOPPED: &str = "Stopped";
    /// TrainedModel: its InferenceService is ready.
    pub const INFERENCE_SERVICE_READY: &str = "InferenceServiceReady";
    /// TrainedModel: the parent has memory for it.
    pub const MEMORY_RESOURCE_AVAILABLE: &str = "MemoryResourceAvailable";
    /// TrainedModel: the parent is a multi-model predictor.
    pub const IS_MMS_PREDICTOR: &str = "IsMMSPredictor";

    /// Condition status `True`.
    pub const TRUE: &str = "True";
    /// Condition status `False`.
    pub const FALSE: &str = "False";
    /// Condition status `Unknown`.
    pub const UNKNOWN: &str = "Unknown";

    /// Reason: a model failed to load.
    pub const MODEL_LOAD_FAILED: &str = "ModelLoadFailed";
    /// Reason: the runtime is unhealthy.
    pub const RUNTIME_UNHEALTHY: &str = "RuntimeUnhealthy";
    /// Reason: the runtime named is disabled.
    pub const RUNTIME_DISABLED: &str = "RuntimeDisabled";
    /// Reason: no runtime supports the model format.
    pub const NO_SUPPORTING_RUNTIME: &str = "NoSupportingRuntime";
    /// Reason: the runtime named does not exist.
    pub const RUNTIME_NOT_RECOGNIZED: &str = "RuntimeNotRecognized";
    /// Reason: the predictor spec is invalid.
    pub const INVALID_PREDICTOR_SPEC: &str = "InvalidPredictorSpec";
    /// Reason of the `Stopped` condition.
    pub const STOPPED_REASON: &str = "Stopped";
}

/// Knative's `duckv1.Addressable`.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Addressable {
    /// Name of the address.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The URL.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// CA certificates for the URL.
    #[serde(rename = "CACerts", skip_serializing_if = "Option::is_none")]
    pub ca_certs: Option<String>,
    /// The audience of tokens for the address.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub audience: Option<String>,
}

/// Knative's `TrafficTarget`: one revision's share of traffic.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TrafficTarget {
    /// Tag (`prev`, `latest`) giving the target its own URL.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tag: Option<String>,
    /// The revision.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub revision_name: Option<String>,
    /// The configuration (component) whose latest ready revision this follows.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub configuration_name: Option<String>,
    /// Whether this target follows the latest ready revision.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub latest_revision: Option<bool>,
    /// Share of traffic, 0–100.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub percent: Option<i64>,
    /// The tag's URL.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
}

/// `status.modelStatus`.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ModelStatus {
    /// Whether the model is up to date with the spec.
    pub transition_status: TransitionStatus,
    /// The active and target model states.
    #[serde(rename = "states", skip_serializing_if = "Option::is_none")]
    pub states: Option<ModelRevisionStates>,
    /// The last failure.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_failure_info: Option<FailureInfo>,
    /// Copies of the model.
    #[serde(rename = "copies", skip_serializing_if = "Option::is_none")]
    pub copies: Option<ModelCopies>,
}

/// `modelStatus.transitionStatus`.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum TransitionStatus {
    /// The model serves the current spec.
    UpToDate,
    /// A change is rolling out.
    #[default]
    InProgress,
    /// The new model failed to load; the old one keeps serving.
    BlockedByFailedLoad,
    /// The spec cannot be served.
    InvalidSpec,
}

/// `modelStatus.states`.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ModelRevisionStates {
    /// State of the model serving now.
    pub active_model_state: ModelState,
    /// State of the model rolling out.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target_model_state: Option<ModelState>,
}

/// A model's state.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum ModelState {
    /// Not yet loading.
    #[default]
    Pending,
    /// Available to load.
    Standby,
    /// Loading.
    Loading,
    /// Loaded and serving.
    Loaded,
    /// Failed to load.
    FailedToLoad,
}

/// `modelStatus.lastFailureInfo`.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct FailureInfo {
    /// Where it failed (a pod, a replica).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub location: Option<String>,
    /// One of the reasons in [`conditions`].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Details.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// The revision that failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model_revision_name: Option<String>,
    /// When (RFC 3339).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub time: Option<String>,
    /// The exit code of the failed process.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
}

/// `modelStatus.copies`.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ModelCopies {
    /// Copies that failed to load.
    pub failed_copies: i64,
    /// All copies.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub total_copies: Option<i64>,
}
