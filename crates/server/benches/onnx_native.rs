//! Criterion benchmark of one ONNX model served two ways: the scikit-learn logistic
//! regression fixture `iris-lr` through ONNX Runtime and through the native evaluator,
//! side by side, on batches of 1 and 100 rows.
//!
//! Needs ONNX Runtime (`cargo xtask setup`). Run with
//! `cargo bench -p oxserve-server --bench onnx_native`.

use std::hint::black_box;
use std::path::PathBuf;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use oxserve_protocol::{InferRequest, Tensor, TensorData};
use oxserve_server::Model;
use oxserve_server::runtimes::onnx::{self, OnnxOptions};

fn fixture() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../fixtures/models/iris-lr/model.onnx"))
}

/// `rows × 4` deterministic iris-like measurements in [0, 8).
fn rows(rows: usize) -> Vec<f32> {
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    (0..rows * 4)
        .map(|_| {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            (state >> 40) as f32 / (1u64 << 24) as f32 * 8.0
        })
        .collect()
}

fn iris_lr(c: &mut Criterion) {
    let mut group = c.benchmark_group("iris-lr");
    for (engine, native) in [("onnxruntime", false), ("native", true)] {
        let options = OnnxOptions { intra_op_threads: 1, sessions: 1, native };
        let model = onnx::load("iris-lr", &fixture(), &options).expect("fixture loads");
        assert_eq!(model.is_native(), native, "engine in use");
        for n in [1, 100] {
            let x = rows(n);
            group.throughput(Throughput::Elements(n as u64));
            group.bench_with_input(BenchmarkId::new(engine, n), &x, |b, x| {
                b.iter(|| {
                    let input =
                        Tensor::new("float_input", vec![n as i64, 4], TensorData::Fp32(x.clone()));
                    let request = InferRequest { inputs: vec![input], ..Default::default() };
                    model.infer(black_box(request)).expect("inference succeeds")
                })
            });
        }
    }
    group.finish();
}

criterion_group!(benches, iris_lr);
criterion_main!(benches);
