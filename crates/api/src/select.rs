//! Which runtime serves a predictor: the built-in `oxserve` runtime (ONNX, XGBoost, LightGBM,
//! scikit-learn exported to ONNX), a ServingRuntime matched by model format as KServe matches
//! them, one named by `runtime:`, or the predictor's own containers.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use crate::error::{Error, FieldError, Result};
use crate::isvc::{ModelFormat, PredictorSpec, ProtocolVersion};
use crate::runtime::{ServingRuntime, ServingRuntimeSpec, SupportedModelFormat};
use crate::status::conditions;

/// Name of the built-in runtime (what `runtime: oxserve` names).
pub const BUILTIN_RUNTIME: &str = "oxserve";

/// The formats `oxserve serve` runs in-process.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BuiltinFormat {
    /// An ONNX model (ONNX Runtime).
    Onnx,
    /// An XGBoost JSON / UBJSON model.
    XGBoost,
    /// A LightGBM text model.
    LightGBM,
    /// A scikit-learn model exported to ONNX (pickles are not loaded).
    SklearnOnnx,
}

/// What runs a predictor.
#[derive(Clone, Debug, PartialEq)]
pub enum RuntimeSelection {
    /// The built-in runtime, in-process in `oxserve serve`.
    Builtin {
        /// The model's format.
        format: BuiltinFormat,
        /// The protocol the predictor asked for.
        protocol: ProtocolVersion,
    },
    /// A ServingRuntime (or ClusterServingRuntime) from the list given.
    ServingRuntime {
        /// Its name.
        name: String,
        /// The model format it was matched on.
        format: ModelFormat,
        /// The protocol the predictor asked for.
        protocol: ProtocolVersion,
    },
    /// The predictor's own containers.
    CustomContainer,
}

/// The built-in runtime as a ServingRuntime: it auto-selects `onnx`, `xgboost`, `lightgbm` and
/// `sklearn` (from an ONNX export) and speaks v1, v2 and gRPC v2.
pub fn builtin_runtime() -> ServingRuntime {
    let format = |name: &str| SupportedModelFormat {
        name: name.to_owned(),
        version: None,
        auto_select: Some(true),
        priority: None,
    };
    ServingRuntime {
        metadata: ObjectMeta { name: Some(BUILTIN_RUNTIME.to_owned()), ..Default::default() },
        spec: ServingRuntimeSpec {
            supported_model_formats: Some(vec![
                format("onnx"),
                format("xgboost"),
                format("lightgbm"),
                format("sklearn"),
            ]),
            protocol_versions: Some(vec![
                ProtocolVersion::V1,
                ProtocolVersion::V2,
                ProtocolVersion::GrpcV2,
            ]),
            multi_model: Some(false),
            ..Default::default()
        },
    }
}

/// Chooses the runtime of `predictor` (at `spec.predictor`) among `runtimes` (namespaced ones
/// first, then cluster ones converted with `ServingRuntime::from`) and the built-in runtime,
/// which is tried last. Framework fields (`sklearn: …`) are matched as
/// `model.modelFormat.name: sklearn`, as KServe's defaulter rewrites them.
///
/// KServe's rules: a runtime is a candidate when it is not disabled, is single-model, speaks
/// the predictor's protocol (or lists none) and supports the format — by name, and by version
/// when the predictor gives one — with `autoSelect: true` unless the predictor names it with
/// `runtime:`. Candidates with a `priority` for the format come first, higher first; the
/// rest keep their order.
pub fn select_runtime(
    predictor: &PredictorSpec,
    runtimes: &[ServingRuntime],
) -> Result<RuntimeSelection> {
    select_runtime_at(predictor, runtimes, "spec.predictor")
}

/// [`select_runtime`] for a predictor at `path` (e.g. `spec.canary[0].predictor`).
pub fn select_runtime_at(
    predictor: &PredictorSpec,
    runtimes: &[ServingRuntime],
    path: &str,
) -> Result<RuntimeSelection> {
    let fail = |p: String, reason: String| Err(Error::Field(FieldError::new(p, reason)));
    let implementations = crate::validate::predictor_implementations(predictor);
    let [implementation] = implementations[..] else {
        return fail(
            path.to_owned(),
            format!("exactly one predictor kind must be set, found {}", implementations.len()),
        );
    };
    let (field, format, named, protocol, storage_uri) = match implementation {
        "containers" => return Ok(RuntimeSelection::CustomContainer),
        "model" => {
            let m = predictor.model.as_ref().expect("counted above");
            (
                format!("{path}.model"),
                m.model_format.clone(),
                m.runtime.clone(),
                m.protocol_version.unwrap_or(ProtocolVersion::V1),
                m.storage_uri.clone(),
            )
        }
        framework => {
            let f = framework_spec(predictor, framework).expect("counted above");
            let default = if matches!(framework, "triton" | "onnx" | "huggingface") {
                ProtocolVersion::V2
            } else {
                ProtocolVersion::V1
            };
            (
                format!("{path}.{framework}"),
                ModelFormat { name: framework.to_owned(), version: None },
                None,
                f.protocol_version.unwrap_or(default),
                f.storage_uri.clone(),
            )
        }
    };
    let builtin = builtin_runtime();
    let chosen: &ServingRuntime = match &named {
        Some(name) => {
            let Some(rt) = runtimes
                .iter()
                .chain(std::iter::once(&builtin))
                .find(|r| r.metadata.name.as_deref() == Some(name))
            else {
                return fail(
                    format!("{field}.runtime"),
                    format!(
                        "{}: no ServingRuntime named \"{name}\": apply one, or leave runtime unset to choose by model format",
                        conditions::RUNTIME_NOT_RECOGNIZED
                    ),
                );
            };
            if rt.spec.disabled == Some(true) {
                return fail(
                    format!("{field}.runtime"),
                    format!(
                        "{}: ServingRuntime \"{name}\" is disabled",
                        conditions::RUNTIME_DISABLED
                    ),
                );
            }
            let any_version = ModelFormat { version: None, ..format.clone() };
            let checked = if name == BUILTIN_RUNTIME { &any_version } else { &format };
            if !supports(&rt.spec, checked, true) {
                return fail(
                    format!("{field}.runtime"),
                    format!(
                        "{}: ServingRuntime \"{name}\" does not support model format {}",
                        conditions::NO_SUPPORTING_RUNTIME,
                        label(&format)
                    ),
                );
            }
            if !speaks(&rt.spec, protocol) {
                return fail(
                    format!("{field}.protocolVersion"),
                    format!(
                        "ServingRuntime \"{name}\" does not speak protocol {}",
                        protocol.as_str()
                    ),
                );
            }
            rt
        }
        None => {
            let mut candidates: Vec<&ServingRuntime> = runtimes
                .iter()
                .filter(|r| {
                    r.spec.disabled != Some(true)
                        && r.spec.multi_model != Some(true)
                        && supports(&r.spec, &format, false)
                        && speaks(&r.spec, protocol)
                })
                .collect();
            candidates.sort_by(|a, b| {
                match (priority(&a.spec, &format.name), priority(&b.spec, &format.name)) {
                    (Some(x), Some(y)) => y.cmp(&x),
                    (Some(_), None) => std::cmp::Ordering::Less,
                    (None, Some(_)) => std::cmp::Ordering::Greater,
                    (None, None) => std::cmp::Ordering::Equal,
                }
            });
            match candidates.first() {
                Some(rt) => rt,
                // The built-in runtime reads every version of its formats.
                None if supports(
                    &builtin.spec,
                    &ModelFormat { version: None, ..format.clone() },
                    false,
                ) && speaks(&builtin.spec, protocol) =>
                {
                    &builtin
                }
                None => {
                    return fail(
                        field,
                        format!(
                            "{}: no runtime serves model format {} with protocol {}: oxserve serves onnx, xgboost, lightgbm and sklearn (as ONNX); apply a ServingRuntime listing {} in supportedModelFormats with autoSelect: true, or name one with runtime:",
                            conditions::NO_SUPPORTING_RUNTIME,
                            label(&format),
                            protocol.as_str(),
                            format.name
                        ),
                    );
                }
            }
        }
    };
    let name = chosen.metadata.name.clone().unwrap_or_default();
    if name != BUILTIN_RUNTIME {
        return Ok(RuntimeSelection::ServingRuntime { name, format, protocol });
    }
    let builtin_format = match format.name.as_str() {
        "onnx" => BuiltinFormat::Onnx,
        "xgboost" => BuiltinFormat::XGBoost,
        "lightgbm" => BuiltinFormat::LightGBM,
        "sklearn" => {
            if let Some(uri) = storage_uri.as_deref().filter(|u| is_pickle(u)) {
                return fail(
                    format!("{field}.storageUri"),
                    format!(
                        "\"{uri}\" is a pickle: oxserve serves scikit-learn models exported to ONNX (skl2onnx); to serve the pickle, apply a ServingRuntime for sklearn whose container has a command (e.g. an MLServer or KServe sklearn server) and name it with runtime:"
                    ),
                );
            }
            BuiltinFormat::SklearnOnnx
        }
        other => unreachable!("the built-in runtime lists no format {other}"),
    };
    Ok(RuntimeSelection::Builtin { format: builtin_format, protocol })
}

fn framework_spec<'a>(p: &'a PredictorSpec, name: &str) -> Option<&'a crate::isvc::FrameworkSpec> {
    match name {
        "sklearn" => p.sklearn.as_deref(),
        "xgboost" => p.xgboost.as_deref(),
        "tensorflow" => p.tensorflow.as_deref(),
        "pytorch" => p.pytorch.as_deref(),
        "triton" => p.triton.as_deref(),
        "onnx" => p.onnx.as_deref(),
        "huggingface" => p.huggingface.as_deref(),
        "pmml" => p.pmml.as_deref(),
        "lightgbm" => p.lightgbm.as_deref(),
        "paddle" => p.paddle.as_deref(),
        _ => None,
    }
}

fn is_pickle(uri: &str) -> bool {
    let lower = uri.to_ascii_lowercase();
    [".pkl", ".pickle", ".joblib"].iter().any(|ext| lower.ends_with(ext))
}

fn label(f: &ModelFormat) -> String {
    match &f.version {
        Some(v) => format!("{}:{v}", f.name),
        None => f.name.clone(),
    }
}

/// KServe's label match: the runtime's set holds `name` and `name:version` of each format it
/// lists (only auto-selecting ones unless named); the model's label is `name[:version]`.
fn supports(spec: &ServingRuntimeSpec, format: &ModelFormat, named: bool) -> bool {
    spec.supported_model_formats
        .iter()
        .flatten()
        .filter(|f| named || f.auto_select == Some(true))
        .any(|f| f.name == format.name && (format.version.is_none() || f.version == format.version))
}

fn speaks(spec: &ServingRuntimeSpec, protocol: ProtocolVersion) -> bool {
    match &spec.protocol_versions {
        None => true,
        Some(list) => list.is_empty() || list.contains(&protocol),
    }
}

fn priority(spec: &ServingRuntimeSpec, format: &str) -> Option<i32> {
    spec.supported_model_formats
        .iter()
        .flatten()
        .find(|f| f.name == format)
        .and_then(|f| f.priority)
}
