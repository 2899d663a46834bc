//! The CUDA tier (feature `gpu`): ONNX models run on ONNX Runtime's CUDA execution
//! provider. Needs an NVIDIA GPU, its driver and ONNX Runtime's GPU build at
//! `OXSERVE_ONNXRUNTIME_LIB`; `cargo xtask gpu` sets that up and runs this on the
//! self-hosted GPU runner (`.github/workflows/gpu.yml`). Its own test binary, compiled
//! empty without the feature, so the default build never links the CUDA provider.
#![cfg(feature = "gpu")]

use std::path::{Path, PathBuf};

use oxserve_protocol::{InferRequest, Tensor, TensorData};
use oxserve_server::Model;
use oxserve_server::runtimes::onnx::{self, OnnxOptions};

fn model(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../fixtures/models")
        .join(name)
        .join("model.onnx")
}

/// The models ONNX Runtime evaluates (native evaluation off, so the linear iris model goes
/// through the runtime too) load on CUDA and answer with finite outputs.
#[test]
#[ignore = "needs an NVIDIA GPU and ONNX Runtime's CUDA build (cargo xtask gpu)"]
fn onnx_models_run_on_the_cuda_provider() {
    let options = OnnxOptions { native: false, ..OnnxOptions::default() };
    for name in ["mlp", "iris-lr"] {
        let model =
            onnx::load(name, &model(name), &options).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(model.execution_provider(), "CUDA", "{name}: CPU was used instead");
        let input = &model.metadata().inputs[0];
        let width = input.shape.last().copied().filter(|w| *w > 0).unwrap_or(4);
        let rows = 3;
        let data = (0..rows * width).map(|i| (i % 7) as f32 * 0.25).collect();
        let request = InferRequest {
            inputs: vec![Tensor::new(&input.name, vec![rows, width], TensorData::Fp32(data))],
            ..Default::default()
        };
        let outputs = model.infer(request).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(!outputs.is_empty(), "{name}: no outputs");
        assert_eq!(outputs[0].shape[0], rows, "{name}: one answer per row");
    }
}
