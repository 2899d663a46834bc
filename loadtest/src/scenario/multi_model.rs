//! `multi-model`: N TrainedModels (1,000 by default) applied into one service while a hot
//! model (the service's own) takes constant open-loop load. Reported: load time per model
//! (apply → `/v2/models/{tm}/ready` answering 200 through the router) p50/p99, memory per
//! model (the replicas' RSS delta ÷ N, local targets), the hot model's p99 before and while
//! the others load. Judged: every model loads, the hot model loses no request, and its p99
//! while loading stays within [`HOT_P99_FACTOR`] × its p99 before.

use serde::Serialize;

use crate::analysis::{histogram, percentile_ms};
use crate::record::Sample;
use crate::verdict::Criterion;

/// How much slower the hot model's p99 may get while the others load.
pub const HOT_P99_FACTOR: f64 = 5.0;

/// What the scenario measured, for the report.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Figures {
    pub models: usize,
    pub loaded: usize,
    pub load_p50_ms: f64,
    pub load_p99_ms: f64,
    /// RSS delta of the service's replicas ÷ models, when the replicas are local.
    pub memory_per_model_bytes: Option<f64>,
    pub hot_p99_before_ms: f64,
    pub hot_p99_loading_ms: f64,
}

fn quantile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    sorted[((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len()) - 1]
}

/// The figures: `load_ms[i]` is model i's load time (`None`: never ready).
pub fn figures(
    load_ms: &[Option<f64>],
    rss_delta_bytes: Option<f64>,
    hot_before: &[Sample],
    hot_loading: &[Sample],
) -> Figures {
    let mut loaded: Vec<f64> = load_ms.iter().flatten().copied().collect();
    loaded.sort_by(f64::total_cmp);
    Figures {
        models: load_ms.len(),
        loaded: loaded.len(),
        load_p50_ms: quantile(&loaded, 0.5),
        load_p99_ms: quantile(&loaded, 0.99),
        memory_per_model_bytes: rss_delta_bytes
            .filter(|_| !load_ms.is_empty())
            .map(|d| d / load_ms.len() as f64),
        hot_p99_before_ms: percentile_ms(&histogram(hot_before), 0.99),
        hot_p99_loading_ms: percentile_ms(&histogram(hot_loading), 0.99),
    }
}

/// The criteria.
pub fn judge(f: &Figures, hot_before: &[Sample], hot_loading: &[Sample]) -> Vec<Criterion> {
    let failed = hot_loading.iter().chain(hot_before).filter(|s| !s.ok()).count();
    let total = hot_loading.len() + hot_before.len();
    vec![
        Criterion::check(
            "every TrainedModel loaded",
            format!("{} of {} ready", f.models, f.models),
            format!(
                "{} of {} ready (load p50 {:.0} ms, p99 {:.0} ms)",
                f.loaded, f.models, f.load_p50_ms, f.load_p99_ms
            ),
            f.models > 0 && f.loaded == f.models,
        ),
        Criterion::check(
            "hot model: no failed request",
            "0 failed",
            format!("{failed} failed of {total}"),
            failed == 0 && total > 0,
        ),
        Criterion::check(
            "hot model p99 while others load",
            format!("≤ {HOT_P99_FACTOR}× the p99 before ({:.2} ms)", f.hot_p99_before_ms),
            format!("{:.2} ms", f.hot_p99_loading_ms),
            !hot_loading.is_empty()
                && f.hot_p99_loading_ms <= HOT_P99_FACTOR * f.hot_p99_before_ms.max(0.001),
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis::tests::ok;
    use crate::verdict::{Outcome, all_passed};

    fn hot(n: usize, latency_us: u64) -> Vec<Sample> {
        (0..n).map(|i| Sample { latency_us, ..ok(i as f64, "r") }).collect()
    }

    #[test]
    fn loaded_models_and_a_steady_hot_model_pass() {
        let loads: Vec<Option<f64>> = (1..=100).map(|i| Some(i as f64)).collect();
        let f = figures(&loads, Some(100_000.0), &hot(50, 2000), &hot(50, 3000));
        assert_eq!((f.loaded, f.load_p50_ms, f.load_p99_ms), (100, 50.0, 99.0));
        assert_eq!(f.memory_per_model_bytes, Some(1000.0));
        assert!(all_passed(&judge(&f, &hot(50, 2000), &hot(50, 3000))));
    }

    #[test]
    fn each_criterion_fails() {
        let loads = vec![Some(5.0), None];
        let mut loading = hot(50, 20_000);
        loading[3].status = 404;
        let f = figures(&loads, None, &hot(50, 2000), &loading);
        let o: Vec<Outcome> =
            judge(&f, &hot(50, 2000), &loading).into_iter().map(|c| c.outcome).collect();
        assert_eq!(o, [Outcome::Fail, Outcome::Fail, Outcome::Fail]);
    }
}
