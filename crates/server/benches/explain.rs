//! Times oxserve's explainers for `cargo xtask bench explain` (a plain binary: the xtask
//! pins it to the core the frameworks were timed on and reads its one JSON line).
//!
//! `cargo bench -p oxserve-server --bench explain -- DIR` reads the models, rows and
//! framework contributions `fixtures/bench/explain_models.py` wrote to `DIR` and prints, per
//! model: TreeSHAP nanoseconds per row with one row per call (cycling through 200 rows) and
//! with all rows in one call, the largest difference from the framework's contributions,
//! and KernelSHAP milliseconds per one-row explanation (background: 50 k-means centres of
//! the rows, `nsamples` "auto", the model's prediction as the explained output). Times are
//! the thread's CPU time.

use std::hint::black_box;
use std::path::Path;

use oxserve_protocol::{InferRequest, Tensor, TensorData};
use oxserve_server::Model;
use oxserve_server::explain::background::Background;
use oxserve_server::explain::kernel::KernelExplainer;
use oxserve_server::runtimes::lightgbm::LightgbmModel;
use oxserve_server::runtimes::xgboost::XgboostModel;
use oxserve_server::settings::{ExplainerKind, ExplainerSettings};

fn read_f32(path: &Path) -> Vec<f32> {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    bytes.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect()
}

fn read_f64(path: &Path) -> Vec<f64> {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    bytes.chunks_exact(8).map(|b| f64::from_le_bytes(b.try_into().unwrap())).collect()
}

fn request(rows: &[f32], features: usize) -> InferRequest {
    InferRequest {
        inputs: vec![Tensor::new(
            "input-0",
            vec![(rows.len() / features) as i64, features as i64],
            TensorData::Fp32(rows.to_vec()),
        )],
        ..Default::default()
    }
}

/// The calling thread's CPU time in nanoseconds: on a shared machine, time spent waiting
/// for the core does not count (Python's `time.thread_time_ns`, which the frameworks are
/// timed with).
fn thread_ns() -> f64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: `ts` is a valid timespec to write; the clock id is a constant Linux knows.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    assert_eq!(rc, 0, "clock_gettime(CLOCK_THREAD_CPUTIME_ID)");
    ts.tv_sec as f64 * 1e9 + ts.tv_nsec as f64
}

/// Best of three rounds of `calls` calls, in thread CPU nanoseconds per call.
fn time(calls: usize, mut f: impl FnMut(usize)) -> f64 {
    f(0);
    (0..3)
        .map(|_| {
            let start = thread_ns();
            for i in 0..calls {
                f(i);
            }
            (thread_ns() - start) / calls as f64
        })
        .fold(f64::INFINITY, f64::min)
}

fn main() {
    // `cargo bench` passes `--bench`; the directory is the one other argument.
    // Under `cargo test --all-targets` it runs with no directory: nothing to time then.
    let Some(dir) = std::env::args().skip(1).find(|a| !a.starts_with("--")) else {
        eprintln!("usage: explain DIR (cargo xtask bench explain writes DIR); nothing to time");
        return;
    };
    let dir = Path::new(&dir);
    let x = read_f32(&dir.join("x.f32"));
    let features = 20;
    let rows = x.len() / features;
    let mut results = Vec::new();
    for (name, model) in [
        (
            "xgb",
            Box::new(XgboostModel::load("xgb", &dir.join("xgb/model.json")).unwrap())
                as Box<dyn Model>,
        ),
        ("lgbm", Box::new(LightgbmModel::load("lgbm", &dir.join("lgbm/model.txt")).unwrap())),
    ] {
        let exact = model.exact_explainer().unwrap();
        let want = read_f64(&dir.join(format!("{name}/contribs.f64")));
        let all = request(&x, features);
        let a = exact.explain(&all).unwrap();
        let mut max_abs_diff = 0.0f64;
        for r in 0..rows {
            for j in 0..features {
                max_abs_diff = max_abs_diff
                    .max((a.values[r * features + j] - want[r * (features + 1) + j]).abs());
            }
            max_abs_diff =
                max_abs_diff.max((a.expected_value[0] - want[r * (features + 1) + features]).abs());
        }
        let singles: Vec<InferRequest> =
            (0..200).map(|r| request(&x[r * features..(r + 1) * features], features)).collect();
        let one = time(2000, |i| {
            black_box(exact.explain(&singles[i % 200]).unwrap());
        });
        let full = time(5, |_| {
            black_box(exact.explain(&all).unwrap());
        }) / rows as f64;

        // KernelSHAP of one row through the model's own batched predict.
        let finite: Vec<f64> =
            x.iter().map(|&v| if v.is_nan() { 0.0 } else { f64::from(v) }).collect();
        let background = Background::uniform(features, finite).unwrap().kmeans(50, 0).unwrap();
        let settings = ExplainerSettings {
            kind: ExplainerKind::KernelShap,
            background: None,
            nsamples: None,
            seed: 0,
            output: Some("predict_proba".into()),
        };
        let kernel =
            KernelExplainer::with_background(&settings, model.metadata(), background).unwrap();
        let kernel_ms = time(5, |i| {
            black_box(kernel.explain(&*model, &singles[i % 200], 0, None, None).unwrap());
        }) / 1e6;
        results.push(serde_json::json!({
            "model": name,
            "rust_1": one,
            "rust_full": full,
            "max_abs_diff": max_abs_diff,
            "kernel_ms": kernel_ms,
            "kernel_model_rows": 50 * (2 * features + 2048) + 51,
        }));
    }
    println!("{}", serde_json::json!({ "models": results }));
}
