//! Explanations: per-feature attributions of a model's outputs, answered by the server that
//! runs the model (`POST /v1/models/{m}:explain`, `POST /v2/models/{m}[/versions/{v}]/explain`,
//! gRPC `ModelInfer` with the `explain` parameter).
//!
//! Two explainers:
//! - **TreeSHAP** ([`treeshap`]): exact SHAP values of the raw margin of XGBoost and
//!   LightGBM models, on the same flat forest that predicts, with the node covers the
//!   loaders keep aside. Tree models have it without any settings.
//! - **KernelSHAP** ([`kernel`]): model-agnostic (ONNX included), configured in
//!   `model-settings.json` (`explainer`, see [`crate::settings::ExplainerSettings`]): a
//!   background dataset ([`background`]), coalitions enumerated and sampled as `shap`'s
//!   KernelExplainer does, one batched call into the model per explanation, and the weighted
//!   least squares with the additivity constraint.
//!
//! Either way the answer is an [`Attributions`]: for each row, each value of the explained
//! output and each feature, the feature's share, and the expected value they start from;
//! expected value plus the row's attributions equals the row's explained output.

pub mod background;
pub mod kernel;
pub(crate) mod treeshap;

use oxserve_protocol::{InferRequest, Tensor, TensorData};

use crate::error::Result;

/// The name of the explained output of tree models: the raw margin (XGBoost's
/// `output_margin`, LightGBM's `raw_score`), one value per output group.
pub const MARGIN_OUTPUT: &str = "margin";

/// The name of the tensor holding the expected values.
pub const EXPECTED_VALUE: &str = "expected_value";

/// Suffix of the attribution tensor's name: `<output>_attributions`.
pub const ATTRIBUTIONS_SUFFIX: &str = "_attributions";

/// Which explainer produced an explanation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    TreeShap,
    KernelShap,
}

impl Method {
    /// The name used in settings, responses and metrics.
    pub fn label(self) -> &'static str {
        match self {
            Method::TreeShap => "treeshap",
            Method::KernelShap => "kernelshap",
        }
    }
}

/// Attributions of one explained output for a batch of rows.
#[derive(Debug, Clone, PartialEq)]
pub struct Attributions {
    pub method: Method,
    /// The explained output ([`MARGIN_OUTPUT`] for tree models).
    pub output: String,
    pub rows: usize,
    /// Values of the explained output per row (output groups, classes …).
    pub width: usize,
    pub features: usize,
    /// `rows × width × features`, row-major.
    pub values: Vec<f64>,
    /// `width` values: the output's expected value over the training data (trees) or the
    /// background (KernelSHAP).
    pub expected_value: Vec<f64>,
    /// `rows × width`: what each row's attributions and the expected value add up to (the
    /// model's output).
    pub explained: Vec<f64>,
}

impl Attributions {
    /// `<output>_attributions` FP64 `[rows, width, features]` and `expected_value` FP64
    /// `[width]`, and the explained output itself FP64 `[rows, width]` when `with_output`.
    pub fn tensors(&self, with_output: bool) -> Vec<Tensor> {
        let (rows, width, features) = (self.rows as i64, self.width as i64, self.features as i64);
        let mut out = vec![
            Tensor::new(
                format!("{}{ATTRIBUTIONS_SUFFIX}", self.output),
                vec![rows, width, features],
                TensorData::Fp64(self.values.clone()),
            ),
            Tensor::new(EXPECTED_VALUE, vec![width], TensorData::Fp64(self.expected_value.clone())),
        ];
        if with_output {
            out.push(Tensor::new(
                self.output.clone(),
                vec![rows, width],
                TensorData::Fp64(self.explained.clone()),
            ));
        }
        out
    }

    /// The largest `|expected + Σ attributions − explained|` over rows and outputs.
    pub fn additivity_error(&self) -> f64 {
        let f = self.features;
        let mut worst = 0.0f64;
        for (i, row) in self.values.chunks_exact(f.max(1)).enumerate() {
            let sum: f64 = self.expected_value[i % self.width] + row.iter().sum::<f64>();
            worst = worst.max((sum - self.explained[i]).abs());
        }
        worst
    }
}

/// An explainer built into a model: exact attributions without settings (the tree
/// runtimes' TreeSHAP).
pub trait ExactExplainer: Send + Sync {
    /// Attributions of the rows of `request` (already validated against the model's
    /// metadata).
    fn explain(&self, request: &InferRequest) -> Result<Attributions>;
}

#[cfg(test)]
mod tests;
