//! The derived status as `oxserve_api`'s `InferenceServiceStatus` (the type the API server
//! stores and serves). Both write KServe's JSON; the conversion keeps every field the
//! derivation fills and leaves the rest (`address`, `observedGeneration`, `copies`, …) unset.

use oxserve_api::isvc::{ComponentStatusSpec, ComponentsStatus, InferenceServiceStatus};
use oxserve_api::status as api;

use super::status::{
    ComponentStatus, Condition, ConditionStatus, FailureInfo, ModelState, ModelStatus,
    ServiceStatus, TrafficTarget, TransitionStatus,
};
use crate::revision::Component;

impl From<&ServiceStatus> for InferenceServiceStatus {
    fn from(s: &ServiceStatus) -> InferenceServiceStatus {
        let component = |c: Component| s.components.get(&c).map(component_status);
        let components = (!s.components.is_empty()).then(|| ComponentsStatus {
            predictor: component(Component::Predictor),
            transformer: component(Component::Transformer),
            explainer: component(Component::Explainer),
        });
        InferenceServiceStatus {
            conditions: (!s.conditions.is_empty())
                .then(|| s.conditions.iter().map(condition).collect()),
            url: s.url.clone(),
            components,
            model_status: s.model_status.as_ref().map(model_status),
            ..InferenceServiceStatus::default()
        }
    }
}

fn condition(c: &Condition) -> api::Condition {
    let status = match c.status {
        ConditionStatus::True => api::conditions::TRUE,
        ConditionStatus::False => api::conditions::FALSE,
        ConditionStatus::Unknown => api::conditions::UNKNOWN,
    };
    api::Condition {
        type_: c.type_.clone(),
        status: status.to_owned(),
        severity: None,
        last_transition_time: c.last_transition_time.map(|t| t.to_string()),
        reason: c.reason.clone(),
        message: c.message.clone(),
    }
}

fn component_status(c: &ComponentStatus) -> ComponentStatusSpec {
    ComponentStatusSpec {
        latest_ready_revision: c.latest_ready_revision.clone(),
        latest_created_revision: c.latest_created_revision.clone(),
        previous_rolledout_revision: c.previous_rolledout_revision.clone(),
        latest_rolledout_revision: c.latest_rolledout_revision.clone(),
        traffic: (!c.traffic.is_empty()).then(|| c.traffic.iter().map(traffic_target).collect()),
        url: c.url.clone(),
        ..ComponentStatusSpec::default()
    }
}

fn traffic_target(t: &TrafficTarget) -> api::TrafficTarget {
    api::TrafficTarget {
        tag: t.tag.clone(),
        revision_name: Some(t.revision_name.clone()),
        configuration_name: None,
        latest_revision: Some(t.latest_revision),
        percent: Some(i64::from(t.percent)),
        url: t.url.clone(),
    }
}

fn model_status(m: &ModelStatus) -> api::ModelStatus {
    let state = |s: ModelState| match s {
        ModelState::Pending => api::ModelState::Pending,
        ModelState::Loading => api::ModelState::Loading,
        ModelState::Loaded => api::ModelState::Loaded,
        ModelState::FailedToLoad => api::ModelState::FailedToLoad,
    };
    api::ModelStatus {
        transition_status: match m.transition_status {
            TransitionStatus::UpToDate => api::TransitionStatus::UpToDate,
            TransitionStatus::InProgress => api::TransitionStatus::InProgress,
            TransitionStatus::BlockedByFailedLoad => api::TransitionStatus::BlockedByFailedLoad,
        },
        states: m.states.as_ref().map(|s| api::ModelRevisionStates {
            active_model_state: state(s.active_model_state),
            target_model_state: Some(state(s.target_model_state)),
        }),
        last_failure_info: m.last_failure_info.as_ref().map(failure_info),
        copies: None,
    }
}

fn failure_info(f: &FailureInfo) -> api::FailureInfo {
    api::FailureInfo {
        location: None,
        reason: Some(f.reason.clone()),
        message: Some(f.message.clone()),
        model_revision_name: Some(f.model_revision_name.clone()),
        time: Some(f.time.to_string()),
        exit_code: None,
    }
}
