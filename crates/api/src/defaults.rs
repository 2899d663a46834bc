//! KServe's webhook defaults, as a pure function of the object.

use crate::isvc::{InferenceService, LoggerMode, PredictorSpec, ProtocolVersion};
use crate::resource::Resource;

/// Port the serving container listens on for HTTP when it declares none.
pub const DEFAULT_HTTP_PORT: i32 = 8080;
/// Port the serving container listens on for gRPC when it declares none.
pub const DEFAULT_GRPC_PORT: i32 = 8081;
/// Where the storage initializer puts the model (`storageUri`).
pub const DEFAULT_MODEL_MOUNT_PATH: &str = "/mnt/models";
/// KServe's `minReplicas` default.
pub const DEFAULT_MIN_REPLICAS: i32 = 1;
/// The serving container's name in KServe.
pub const SERVING_CONTAINER_NAME: &str = "kserve-container";

/// Applies the defaults to any kind.
pub fn default_resource(resource: &mut Resource) {
    if let Resource::InferenceService { object, .. } = resource {
        default_inference_service(object);
    }
}

/// `minReplicas: 1` on every component, the predictor's protocol (v2 for `triton`, `onnx`,
/// `huggingface` and `model.modelFormat` `triton` / `vLLM`; v1 for the other framework
/// fields), and `logger.mode: all`.
pub fn default_inference_service(isvc: &mut InferenceService) {
    let spec = &mut isvc.spec;
    default_predictor(&mut spec.predictor);
    for canary in spec.canary.iter_mut().flatten() {
        default_predictor(&mut canary.predictor);
    }
    if let Some(t) = spec.transformer.as_mut() {
        t.min_replicas.get_or_insert(DEFAULT_MIN_REPLICAS);
        default_logger(&mut t.logger);
    }
    if let Some(e) = spec.explainer.as_mut() {
        e.min_replicas.get_or_insert(DEFAULT_MIN_REPLICAS);
        default_logger(&mut e.logger);
    }
}

fn default_predictor(p: &mut PredictorSpec) {
    p.min_replicas.get_or_insert(DEFAULT_MIN_REPLICAS);
    default_logger(&mut p.logger);
    let v1 = [
        &mut p.sklearn,
        &mut p.xgboost,
        &mut p.tensorflow,
        &mut p.pytorch,
        &mut p.pmml,
        &mut p.lightgbm,
        &mut p.paddle,
    ];
    for f in v1.into_iter().flatten() {
        f.protocol_version.get_or_insert(ProtocolVersion::V1);
    }
    for f in [&mut p.triton, &mut p.onnx, &mut p.huggingface].into_iter().flatten() {
        f.protocol_version.get_or_insert(ProtocolVersion::V2);
    }
    if let Some(m) = p.model.as_mut()
        && matches!(m.model_format.name.as_str(), "triton" | "vLLM")
    {
        m.protocol_version.get_or_insert(ProtocolVersion::V2);
    }
}

fn default_logger(logger: &mut Option<crate::isvc::LoggerSpec>) {
    if let Some(l) = logger.as_mut() {
        l.mode.get_or_insert(LoggerMode::All);
    }
}
