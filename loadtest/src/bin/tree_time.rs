//! `oxserve-tree-time`: times oxserve's pure-Rust XGBoost or LightGBM evaluator on one thread.
//!
//! The same measurement `fixtures/bench/make_models.py trees` makes of the frameworks' own
//! predict: one row per call (cycling through the test rows) and all rows per call (median of
//! `--repeats`). It also compares its predictions for all rows with the framework's
//! (`--preds`, float32) and prints one JSON line:
//! `{"rust_1_ns", "rust_full_ns", "max_abs_diff"}`.

use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result, ensure};
use clap::Parser;
use oxserve_server::runtimes::lightgbm::LightgbmModel;
use oxserve_server::runtimes::xgboost::XgboostModel;

/// Times a tree model's evaluation in oxserve.
#[derive(Parser)]
#[command(name = "oxserve-tree-time", version)]
struct Args {
    /// `xgboost` or `lightgbm`.
    #[arg(long, env = "OXSERVE_TREE_KIND")]
    kind: String,
    /// The model file (XGBoost JSON/UBJSON or LightGBM text).
    #[arg(long, env = "OXSERVE_TREE_MODEL")]
    model: PathBuf,
    /// Test rows: little-endian float32, row-major.
    #[arg(long, env = "OXSERVE_TREE_ROWS")]
    rows: PathBuf,
    /// The framework's predictions for all rows (float32), to compare with.
    #[arg(long, env = "OXSERVE_TREE_PREDS")]
    preds: PathBuf,
    /// One-row calls to time.
    #[arg(long, env = "OXSERVE_TREE_SINGLE_CALLS", default_value_t = 5_000)]
    single_calls: usize,
    /// All-row calls to time (the median is reported).
    #[arg(long, env = "OXSERVE_TREE_REPEATS", default_value_t = 7)]
    repeats: usize,
}

/// A model's predict over row-major rows.
type Predict = Box<dyn Fn(&[f32]) -> Vec<f64>>;

fn read_f32(path: &Path) -> Result<Vec<f32>> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    ensure!(bytes.len() % 4 == 0, "{}: not a float32 file", path.display());
    Ok(bytes.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect())
}

fn main() -> Result<()> {
    let Args { kind, model, rows, preds, single_calls, repeats } = Args::parse();
    ensure!(single_calls > 0 && repeats > 0, "--single-calls and --repeats must be positive");
    let x = read_f32(&rows)?;
    let expected = read_f32(&preds)?;
    let name = "bench";
    let (predict, features): (Predict, usize) = match kind.as_str() {
        "xgboost" => {
            let m = XgboostModel::load(name, &model).context("loading the XGBoost model")?;
            let n = m.num_features();
            (
                Box::new(move |r| {
                    m.predict(r).expect("valid rows").into_iter().map(f64::from).collect()
                }),
                n,
            )
        }
        "lightgbm" => {
            let m = LightgbmModel::load(name, &model).context("loading the LightGBM model")?;
            let n = m.num_features();
            (Box::new(move |r| m.predict(r).expect("valid rows")), n)
        }
        other => anyhow::bail!("--kind {other:?}: expected xgboost or lightgbm"),
    };
    ensure!(x.len() % features == 0, "the rows file does not hold {features}-feature rows");
    let n_rows = x.len() / features;

    let all = predict(&x);
    ensure!(
        all.len() == expected.len(),
        "{} predictions, the framework made {}",
        all.len(),
        expected.len()
    );
    let max_abs_diff =
        all.iter().zip(&expected).map(|(a, b)| (a - f64::from(*b)).abs()).fold(0.0, f64::max);

    black_box(predict(&x[..features]));
    let start = Instant::now();
    for i in 0..single_calls {
        let row = i % n_rows;
        black_box(predict(black_box(&x[row * features..(row + 1) * features])));
    }
    let one = start.elapsed().as_nanos() as f64 / single_calls as f64;
    let mut full: Vec<f64> = (0..repeats)
        .map(|_| {
            let start = Instant::now();
            black_box(predict(black_box(&x)));
            start.elapsed().as_nanos() as f64
        })
        .collect();
    full.sort_by(f64::total_cmp);
    let median = full[full.len() / 2];
    println!(
        "{}",
        serde_json::json!({"rust_1_ns": one, "rust_full_ns": median, "max_abs_diff": max_abs_diff})
    );
    Ok(())
}
