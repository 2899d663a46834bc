//! The InferenceService status as KServe writes it (`pkg/apis/serving/v1beta1/
//! inference_service_status.go`, Knative's `duckv1.Status` and `TrafficTarget`): the same
//! field names (camelCase), the same omissions, the same condition type strings. These are
//! plain output types; [`super::derive`] fills them.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::revision::{Component, Timestamp};

/// `Ready`: the InferenceService as a whole (Knative's happy condition over
/// `PredictorReady` and `IngressReady`).
pub const READY: &str = "Ready";
/// The ingress (here: the router's host routes) is in place for every component.
pub const INGRESS_READY: &str = "IngressReady";
/// Every component's configuration (its latest created revision) is ready.
pub const LATEST_DEPLOYMENT_READY: &str = "LatestDeploymentReady";
/// Every component's route is ready.
pub const ROUTES_READY: &str = "RoutesReady";
pub const PREDICTOR_READY: &str = "PredictorReady";
pub const TRANSFORMER_READY: &str = "TransformerReady";
pub const EXPLAINER_READY: &str = "ExplainerReady";
pub const PREDICTOR_ROUTE_READY: &str = "PredictorRouteReady";
pub const TRANSFORMER_ROUTE_READY: &str = "TransformerRouteReady";
/// Note the plural: KServe's constant is `ExplainerRoutesReady`.
pub const EXPLAINER_ROUTES_READY: &str = "ExplainerRoutesReady";
pub const PREDICTOR_CONFIGURATION_READY: &str = "PredictorConfigurationReady";
pub const TRANSFORMER_CONFIGURATION_READY: &str = "TransformerConfigurationReady";
pub const EXPLAINER_CONFIGURATION_READY: &str = "ExplainerConfigurationReady";

/// `modelStatus.lastFailureInfo.reason` of a revision that failed.
pub const MODEL_LOAD_FAILED: &str = "ModelLoadFailed";

/// The condition types of one component: (ready, route, configuration).
pub fn component_condition_types(
    component: Component,
) -> (&'static str, &'static str, &'static str) {
    match component {
        Component::Predictor => {
            (PREDICTOR_READY, PREDICTOR_ROUTE_READY, PREDICTOR_CONFIGURATION_READY)
        }
        Component::Transformer => {
            (TRANSFORMER_READY, TRANSFORMER_ROUTE_READY, TRANSFORMER_CONFIGURATION_READY)
        }
        Component::Explainer => {
            (EXPLAINER_READY, EXPLAINER_ROUTES_READY, EXPLAINER_CONFIGURATION_READY)
        }
    }
}

/// Reasons oxserve writes (Knative's and KServe's strings where they have one).
pub mod reason {
    /// Knative: the latest created revision failed.
    pub const REVISION_FAILED: &str = "RevisionFailed";
    /// Knative: a revision the traffic names is not ready (or there is none).
    pub const REVISION_MISSING: &str = "RevisionMissing";
    /// Knative: no revision exists yet for the current spec.
    pub const OUT_OF_DATE: &str = "OutOfDate";
    /// KServe's ingress reasons, per component.
    pub const PREDICTOR_INGRESS_NOT_CREATED: &str = "Predictor ingress not created";
    pub const TRANSFORMER_INGRESS_NOT_CREATED: &str = "Transformer ingress not created";
    pub const EXPLAINER_INGRESS_NOT_CREATED: &str = "Explainer ingress not created";
}

/// `True`, `False` or `Unknown`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ConditionStatus {
    True,
    False,
    Unknown,
}

/// One Knative-style condition.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Condition {
    #[serde(rename = "type")]
    pub type_: String,
    pub status: ConditionStatus,
    /// When the condition took its current value: the time of the revision transition that
    /// caused it (so the status is derived, not remembered).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_transition_time: Option<Timestamp>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

impl Condition {
    /// Whether the status is `True`.
    pub fn is_true(&self) -> bool {
        self.status == ConditionStatus::True
    }
}

/// One entry of a component's `traffic[]` (Knative's `TrafficTarget` as a Route's status
/// writes it: the revision resolved, `latestRevision` and `percent` always present).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TrafficTarget {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tag: Option<String>,
    pub revision_name: String,
    /// Whether this entry follows the latest ready revision.
    pub latest_revision: bool,
    pub percent: u32,
    /// The tag's own URL (`http://TAG-NAME-COMPONENT.NS.DOMAIN`), for tagged entries.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
}

/// `status.components.<component>` (KServe's `ComponentStatusSpec`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ComponentStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latest_ready_revision: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latest_created_revision: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_rolledout_revision: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latest_rolledout_revision: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub traffic: Vec<TrafficTarget>,
    /// `http://NAME-COMPONENT.NS.DOMAIN`, once the component serves.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
}

/// `status` of an InferenceService.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ServiceStatus {
    /// Sorted by type, as Knative keeps them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// `http://NAME.NS.DOMAIN`, once the service serves.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub components: BTreeMap<Component, ComponentStatus>,
    /// The predictor's model, from its latest created revision.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model_status: Option<ModelStatus>,
}

/// `status.modelStatus` (KServe's `ModelStatus`, without `copies`: replica counts are not
/// part of the derivation).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ModelStatus {
    pub transition_status: TransitionStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub states: Option<ModelRevisionStates>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_failure_info: Option<FailureInfo>,
}

/// `modelStatus.transitionStatus`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum TransitionStatus {
    /// The latest created revision serves.
    UpToDate,
    /// The latest created revision is on its way.
    InProgress,
    /// The latest created revision failed; what served before keeps serving.
    BlockedByFailedLoad,
}

/// `modelStatus.states`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ModelRevisionStates {
    /// `Loaded` while some predictor revision serves, else `Pending`.
    pub active_model_state: ModelState,
    /// The latest created revision's model.
    pub target_model_state: ModelState,
}

/// KServe's `ModelState`: `Created` → `Pending`, `Pulling`/`Loading` → `Loading`, `Ready` →
/// `Loaded`, `Failed` → `FailedToLoad`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ModelState {
    Pending,
    Loading,
    Loaded,
    FailedToLoad,
}

/// `modelStatus.lastFailureInfo`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FailureInfo {
    /// Always `ModelLoadFailed`.
    pub reason: String,
    pub message: String,
    pub model_revision_name: String,
    pub time: Timestamp,
}

impl ServiceStatus {
    /// The condition of type `type_`.
    pub fn condition(&self, type_: &str) -> Option<&Condition> {
        self.conditions.iter().find(|c| c.type_ == type_)
    }

    /// Whether `Ready` is `True`.
    pub fn is_ready(&self) -> bool {
        self.condition(READY).is_some_and(Condition::is_true)
    }
}
