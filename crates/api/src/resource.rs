//! [`Resource`]: one parsed, defaulted and validated object of any of the kinds, with the API
//! group its manifest was written for.

use serde::Serialize;
use serde_json::Value;

use crate::isvc::InferenceService;
use crate::runtime::{ClusterServingRuntime, ServingRuntime};
use crate::trained_model::TrainedModel;

/// The API groups a manifest may be written for; all three carry the same schema.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ApiGroup {
    /// `serving.kserve.io`, KServe's group.
    Kserve,
    /// `serving.kubeflow.org`, the KFServing group (v1beta1 and v1alpha1 only).
    Kubeflow,
    /// `serving.oxserve.dev`, oxserve's native group (also takes oxserve's own explainer).
    Oxserve,
}

impl ApiGroup {
    /// Every group, native first.
    pub const ALL: [ApiGroup; 3] = [ApiGroup::Oxserve, ApiGroup::Kserve, ApiGroup::Kubeflow];

    /// The group name.
    pub fn as_str(self) -> &'static str {
        match self {
            ApiGroup::Kserve => "serving.kserve.io",
            ApiGroup::Kubeflow => "serving.kubeflow.org",
            ApiGroup::Oxserve => "serving.oxserve.dev",
        }
    }

    /// The group named `name`, if it is one of ours.
    pub fn from_name(name: &str) -> Option<ApiGroup> {
        ApiGroup::ALL.into_iter().find(|g| g.as_str() == name)
    }
}

/// The kinds this crate knows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kind {
    /// `InferenceService` (v1beta1).
    InferenceService,
    /// `TrainedModel` (v1alpha1).
    TrainedModel,
    /// `ServingRuntime` (v1alpha1).
    ServingRuntime,
    /// `ClusterServingRuntime` (v1alpha1).
    ClusterServingRuntime,
}

impl Kind {
    /// Every kind.
    pub const ALL: [Kind; 4] = [
        Kind::InferenceService,
        Kind::TrainedModel,
        Kind::ServingRuntime,
        Kind::ClusterServingRuntime,
    ];

    /// The kind as written in manifests.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::InferenceService => "InferenceService",
            Kind::TrainedModel => "TrainedModel",
            Kind::ServingRuntime => "ServingRuntime",
            Kind::ClusterServingRuntime => "ClusterServingRuntime",
        }
    }

    /// The one version of the kind this crate accepts.
    pub fn version(self) -> &'static str {
        match self {
            Kind::InferenceService => "v1beta1",
            _ => "v1alpha1",
        }
    }

    /// The kind named `name`.
    pub fn from_name(name: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.as_str() == name)
    }
}

/// One object from a manifest: parsed, defaulted and validated.
#[derive(Clone, Debug, PartialEq)]
pub enum Resource {
    /// An InferenceService.
    InferenceService {
        /// The group the manifest was written for.
        group: ApiGroup,
        /// The object.
        object: Box<InferenceService>,
    },
    /// A TrainedModel.
    TrainedModel {
        /// The group the manifest was written for.
        group: ApiGroup,
        /// The object.
        object: Box<TrainedModel>,
    },
    /// A ServingRuntime.
    ServingRuntime {
        /// The group the manifest was written for.
        group: ApiGroup,
        /// The object.
        object: Box<ServingRuntime>,
    },
    /// A ClusterServingRuntime.
    ClusterServingRuntime {
        /// The group the manifest was written for.
        group: ApiGroup,
        /// The object.
        object: Box<ClusterServingRuntime>,
    },
}

impl Resource {
    /// The kind.
    pub fn kind(&self) -> Kind {
        match self {
            Resource::InferenceService { .. } => Kind::InferenceService,
            Resource::TrainedModel { .. } => Kind::TrainedModel,
            Resource::ServingRuntime { .. } => Kind::ServingRuntime,
            Resource::ClusterServingRuntime { .. } => Kind::ClusterServingRuntime,
        }
    }

    /// The group the manifest was written for.
    pub fn group(&self) -> ApiGroup {
        match self {
            Resource::InferenceService { group, .. }
            | Resource::TrainedModel { group, .. }
            | Resource::ServingRuntime { group, .. }
            | Resource::ClusterServingRuntime { group, .. } => *group,
        }
    }

    /// `apiVersion` as the manifest wrote it (group of the manifest, version of the kind).
    pub fn api_version(&self) -> String {
        format!("{}/{}", self.group().as_str(), self.kind().version())
    }

    /// The object's metadata.
    pub fn metadata(&self) -> &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
        match self {
            Resource::InferenceService { object, .. } => &object.metadata,
            Resource::TrainedModel { object, .. } => &object.metadata,
            Resource::ServingRuntime { object, .. } => &object.metadata,
            Resource::ClusterServingRuntime { object, .. } => &object.metadata,
        }
    }

    /// `metadata.name` (validation guarantees it is set).
    pub fn name(&self) -> &str {
        self.metadata().name.as_deref().unwrap_or_default()
    }

    /// `metadata.namespace`, if the manifest set one.
    pub fn namespace(&self) -> Option<&str> {
        self.metadata().namespace.as_deref()
    }

    /// The object as JSON, with `apiVersion` in the manifest's group.
    pub fn to_value(&self) -> Value {
        let mut value = match self {
            Resource::InferenceService { object, .. } => to_value(object),
            Resource::TrainedModel { object, .. } => to_value(object),
            Resource::ServingRuntime { object, .. } => to_value(object),
            Resource::ClusterServingRuntime { object, .. } => to_value(object),
        };
        if let Some(map) = value.as_object_mut() {
            map.insert("apiVersion".into(), Value::String(self.api_version()));
        }
        value
    }

    /// Pretty-printed JSON of [`Resource::to_value`].
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(&self.to_value()).expect("a JSON value always serializes")
    }

    /// YAML of [`Resource::to_value`] (one document, no `---`).
    pub fn to_yaml(&self) -> String {
        serde_yaml_ng::to_string(&self.to_value()).expect("a JSON value always serializes as YAML")
    }
}

fn to_value<T: Serialize>(object: &T) -> Value {
    // Our types are maps of strings, numbers and bools all the way down: serializing to a
    // `Value` cannot fail.
    serde_json::to_value(object).expect("resource types serialize to JSON")
}
