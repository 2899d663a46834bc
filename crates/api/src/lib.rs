//! oxserve-api: the control plane's resource types — `InferenceService` (v1beta1),
//! `TrainedModel` (v1alpha1), `ServingRuntime` / `ClusterServingRuntime` (v1alpha1) — with
//! parsing, defaulting and validation as pure functions. No I/O.
//!
//! The types carry KServe's schema field for field ([`isvc`], [`trained_model`],
//! [`runtime`], [`status`]); Kubernetes core types (containers, probes, resources, pod
//! fields) are k8s-openapi's. Manifests are accepted as written for `serving.kserve.io`,
//! `serving.kubeflow.org` and the native `serving.oxserve.dev` ([`ApiGroup`]).
//!
//! # Entry points
//!
//! - [`parse`]`(text, source) -> Result<Vec<Resource>, ParseErrors>`: multi-document YAML or
//!   JSON (a `kind: List` expands) to [`Resource`]s that are already defaulted
//!   ([`defaults`]) and validated ([`validate`]). Unknown fields, type errors, bad values
//!   and the retired v1alpha2 / alibi shapes are errors; each displays as
//!   `source:doc N: field path: reason`. No input field is ever dropped.
//! - [`Resource`]: one object with the group it was written for; [`Resource::to_json`],
//!   [`Resource::to_yaml`], [`Resource::to_value`] give the normalized object.
//! - [`warnings`]`(&resource, Backend) -> Vec<Warning>`: fields parsed but not acted on by the
//!   local or the Kubernetes backend.
//! - [`select_runtime`]`(&predictor, &[ServingRuntime]) -> Result<RuntimeSelection>`: the
//!   built-in runtime, a ServingRuntime matched by model format as KServe matches them, one
//!   named by `runtime:`, or custom containers ([`select`]).
//! - [`crd::files`]: the CustomResourceDefinitions for `kind/crds/` (`cargo xtask codegen`).
//!
//! ```
//! let text = "
//! apiVersion: serving.kserve.io/v1beta1
//! kind: InferenceService
//! metadata:
//!   name: sklearn-iris
//! spec:
//!   predictor:
//!     sklearn:
//!       storageUri: gs://kfserving-examples/models/sklearn/1.0/model.onnx
//! ";
//! let resources = oxserve_api::parse(text, "isvc.yaml").unwrap();
//! let value = resources[0].to_value();
//! assert_eq!(value["spec"]["predictor"]["minReplicas"], 1); // KServe's default
//!
//! let typo = text.replace("storageUri", "storageUrl");
//! let errors = oxserve_api::parse(&typo, "isvc.yaml").unwrap_err();
//! assert_eq!(
//!     errors.to_string(),
//!     "isvc.yaml:doc 1: spec.predictor.sklearn.storageUrl: unknown field, did you mean storageUri"
//! );
//! ```

pub mod crd;
pub mod defaults;
mod error;
mod fields;
pub mod isvc;
mod parse;
pub mod resource;
pub mod runtime;
mod schema;
pub mod select;
pub mod status;
pub mod trained_model;
pub mod validate;
pub mod warnings;

pub use error::{Error, FieldError, ParseError, ParseErrors, Result};
pub use parse::parse;
pub use resource::{ApiGroup, Kind, Resource};
pub use select::{RuntimeSelection, select_runtime};
pub use warnings::{Backend, Warning, warnings};
