//! The [`Model`] trait: what every runtime (ONNX, XGBoost, LightGBM) and every custom Rust
//! model implements, with optional pre/post-processing hooks (the transformer role).

use oxserve_protocol::{InferRequest, ModelMetadata, Tensor};

use crate::error::Result;

/// A loaded model that can run inference on a batch.
///
/// The server validates every request against [`Model::metadata`] (input names, datatypes,
/// ranks and fixed dimensions) before calling [`Model::infer`], so a runtime may rely on
/// that. Implementations must be safe to call from many threads at once.
///
/// ```
/// use oxserve_protocol::{DataType, InferRequest, ModelMetadata, Tensor, TensorData, TensorMetadata};
/// use oxserve_server::{Model, Result};
///
/// /// Doubles every element of its FP32 input.
/// struct Doubler(ModelMetadata);
///
/// impl Model for Doubler {
///     fn metadata(&self) -> &ModelMetadata { &self.0 }
///     fn infer(&self, request: InferRequest) -> Result<Vec<Tensor>> {
///         let x = &request.inputs[0];
///         let TensorData::Fp32(v) = &x.data else { unreachable!("validated by the server") };
///         let doubled = v.iter().map(|e| e * 2.0).collect();
///         Ok(vec![Tensor::new("y", x.shape.clone(), TensorData::Fp32(doubled))])
///     }
/// }
/// ```
pub trait Model: Send + Sync + 'static {
    /// Inputs, outputs and platform of the model. Dimension 0 is the batch dimension
    /// when the model is batched (`-1`).
    fn metadata(&self) -> &ModelMetadata;

    /// Runs the model on `request.inputs` and returns every output the model produces; the
    /// server filters them down to `request.outputs` afterwards.
    fn infer(&self, request: InferRequest) -> Result<Vec<Tensor>>;

    /// Runs before validation and inference: a transformer hook that may rewrite the
    /// request (e.g. decode images, map strings to features).
    fn preprocess(&self, request: InferRequest) -> Result<InferRequest> {
        Ok(request)
    }

    /// Runs after inference on the full output list: a transformer hook that may rewrite
    /// outputs (e.g. map class ids to labels).
    fn postprocess(&self, outputs: Vec<Tensor>) -> Result<Vec<Tensor>> {
        Ok(outputs)
    }

    /// Approximate resident size in bytes, for memory accounting.
    fn memory_bytes(&self) -> u64 {
        0
    }

    /// The model's own exact explainer, if it has one (the tree runtimes' TreeSHAP). Models
    /// without one are explained by KernelSHAP when `model-settings.json` configures it.
    fn exact_explainer(&self) -> Option<&dyn crate::explain::ExactExplainer> {
        None
    }
}
