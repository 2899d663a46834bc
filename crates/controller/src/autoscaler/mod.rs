//! Knative's KPA autoscaler as a pure state machine.
//!
//! [`AutoscalerConfig`] is Knative's `config-autoscaler` (same keys, same defaults);
//! [`ScalingSpec::from_component`] resolves one revision's parameters from its component
//! fields and `autoscaling.knative.dev/*` annotations; [`Autoscaler`] is fed the router's
//! [`RevisionSample`](crate::metrics::RevisionSample)s and activations and, at each
//! [`tick`](Autoscaler::tick), answers a [`Decision`]: how many replicas to run, whether it is
//! panicking, the excess burst capacity (whether the router must keep buffering for the
//! revision) and why. Nothing here reads a clock or does I/O: time is always a parameter, so
//! every scenario can be replayed tick by tick.
//!
//! The algorithm is Knative's, step for step: `pkg/autoscaler/scaling/autoscaler.go` (the
//! decider), `pkg/autoscaler/aggregation` (the windows) and
//! `pkg/reconciler/autoscaling/kpa/{scaler,kpa}.go` (bounds, initial scale, scale to zero).
//! `docs/autoscaler.md` describes it.

mod config;
mod kpa;
mod spec;
mod window;

#[cfg(test)]
mod scenarios;

pub use config::{
    AutoscalerConfig, DEFAULT_TARGET_UTILIZATION, HPA_CLASS, KEYS, KPA_CLASS, TARGET_MIN,
    WINDOW_MAX, WINDOW_MIN,
};
pub use kpa::{Activity, Autoscaler, Decision, Reason};
pub use spec::{
    AutoscalerClass, ComponentScaling, DEFAULT_ACTIVATION_TIMEOUT,
    DEFAULT_UTILIZATION_TARGET_PERCENT, ScaleMetric, ScalingOptions, ScalingSpec,
};
pub use window::Aggregation;

/// The Knative annotation names this module reads.
pub mod annotations {
    pub use super::spec::{
        ACTIVATION_SCALE, CLASS, GROUP, INITIAL_SCALE, MAX_SCALE, METRIC,
        METRIC_AGGREGATION_ALGORITHM, MIN_SCALE, PANIC_THRESHOLD_PERCENTAGE,
        PANIC_WINDOW_PERCENTAGE, SCALE_DOWN_DELAY, SCALE_TO_ZERO_POD_RETENTION_PERIOD, TARGET,
        TARGET_BURST_CAPACITY, TARGET_UTILIZATION_PERCENTAGE, WINDOW,
    };
}

/// What can be wrong with an autoscaler configuration or a revision's scaling inputs.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Error {
    /// A `config-autoscaler` key is unknown or its value is bad.
    #[error("autoscaler config {key}: {reason}")]
    Config { key: String, reason: String },
    /// The `autoscaler:` section is not a map of keys to values.
    #[error("autoscaler config: {0}")]
    ConfigShape(String),
    /// An `autoscaling.knative.dev/*` annotation is bad.
    #[error("annotation {key}: {reason}")]
    Annotation { key: String, reason: String },
    /// A component field (`minReplicas`, `scaleMetric`, …) is bad.
    #[error("{field}: {reason}")]
    Field { field: String, reason: String },
}

/// This module's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
