//! Criterion benchmarks of the pure-Rust tree runtimes: XGBoost and LightGBM evaluation of the
//! fixture models (10–30 trees per class, depth ≤ 4 / 15 leaves) on batches of 1 and 10,000
//! rows with about 10 % missing values.
//!
//! Run with `cargo bench -p oxserve-server --bench trees`.

use std::hint::black_box;
use std::path::PathBuf;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use oxserve_server::runtimes::lightgbm::LightgbmModel;
use oxserve_server::runtimes::xgboost::XgboostModel;

fn fixture(rel: &str) -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../fixtures/models")).join(rel)
}

/// `rows × features` deterministic pseudo-random values in [-2, 2), about 10 % NaN.
fn rows(rows: usize, features: usize) -> Vec<f32> {
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    (0..rows * features)
        .map(|_| {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            let u = (state >> 40) as f32 / (1u64 << 24) as f32;
            if u < 0.1 { f32::NAN } else { u * 4.0 - 2.0 }
        })
        .collect()
}

fn trees(c: &mut Criterion) {
    let mut group = c.benchmark_group("trees");
    for name in ["xgb-binary/model.json", "xgb-multiclass/model.ubj"] {
        let model = XgboostModel::load(name, &fixture(name)).expect("fixture loads");
        for n in [1, 10_000] {
            let x = rows(n, model.num_features());
            group.throughput(Throughput::Elements(n as u64));
            group.bench_with_input(BenchmarkId::new(name, n), &x, |b, x| {
                b.iter(|| model.predict(black_box(x)))
            });
        }
    }
    for name in ["lgbm-binary/model.txt", "lgbm-multiclass/model.txt"] {
        let model = LightgbmModel::load(name, &fixture(name)).expect("fixture loads");
        for n in [1, 10_000] {
            let x = rows(n, model.num_features());
            group.throughput(Throughput::Elements(n as u64));
            group.bench_with_input(BenchmarkId::new(name, n), &x, |b, x| {
                b.iter(|| model.predict(black_box(x)))
            });
        }
    }
    group.finish();
}

criterion_group!(benches, trees);
criterion_main!(benches);
