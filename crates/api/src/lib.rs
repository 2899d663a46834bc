//! oxserve-api: the control plane's resource types — `InferenceService` (v1beta1),
//! `TrainedModel` (v1alpha1), `ServingRuntime` / `ClusterServingRuntime` (v1alpha1) — with
//! parsing, defaulting and validation as pure functions. No I/O.

mod fields;
pub mod isvc;
pub mod runtime;
pub mod status;
pub mod trained_model;
