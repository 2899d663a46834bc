//! oxserve-api: the control plane's resource types — `InferenceService` (v1beta1),
//! `TrainedModel` (v1alpha1), `ServingRuntime` / `ClusterServingRuntime` (v1alpha1) — with
//! parsing, defaulting and validation as pure functions. No I/O.

mod fields;
pub mod isvc;
pub mod runtime;
pub mod status;
pub mod trained_model;
pub mod crd;
pub mod defaults;
mod error;
mod parse;
pub mod resource;
mod schema;
pub mod validate;

pub use error::{Error, FieldError, ParseError, ParseErrors, Result};
pub use parse::parse;
pub use resource::{ApiGroup, Kind, Resource};
pub mod select;
pub mod warnings;

pub use select::{RuntimeSelection, select_runtime};
pub use warnings::{Backend, Warning, warnings};
