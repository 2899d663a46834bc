//! `batching`: the MLP fixture served twice, without and with the batcher, each driven
//! closed-loop (maximum throughput) at c = 1, 8, 64. Reported: throughput and p99 per
//! setting, the batch-size histogram from the replicas' `/metrics`, and the batching gain
//! (batched ÷ unbatched throughput) at the highest concurrency. Judged: no failures, the
//! batcher really forms batches under load, the unbatched service runs one row per
//! execution, and the gain at the highest concurrency is above 1.

use serde::Serialize;

use crate::verdict::Criterion;

/// One (service, concurrency) measurement.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Cell {
    pub batched: bool,
    pub concurrency: u32,
    pub requests: u64,
    pub errors: u64,
    pub rps: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
}

/// The `oxserve_batch_size` histogram of a service's replicas over a run: executions,
/// rows, and per-bucket (not cumulative) counts `(le, n)`.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct BatchSizes {
    pub executions: f64,
    pub rows: f64,
    pub buckets: Vec<(f64, f64)>,
}

impl BatchSizes {
    pub fn mean(&self) -> f64 {
        if self.executions > 0.0 { self.rows / self.executions } else { 0.0 }
    }
}

/// The gain at concurrency `c`: batched rps ÷ unbatched rps.
pub fn gain(cells: &[Cell], c: u32) -> Option<f64> {
    let rps =
        |batched| cells.iter().find(|x| x.batched == batched && x.concurrency == c).map(|x| x.rps);
    match (rps(true), rps(false)) {
        (Some(b), Some(u)) if u > 0.0 => Some(b / u),
        _ => None,
    }
}

/// The criteria; `sizes` are `None` where the replicas' `/metrics` cannot be reached.
pub fn judge(
    cells: &[Cell],
    batched_sizes: Option<&BatchSizes>,
    unbatched_sizes: Option<&BatchSizes>,
) -> Vec<Criterion> {
    let top = cells.iter().map(|c| c.concurrency).max().unwrap_or(0);
    let errors: u64 = cells.iter().map(|c| c.errors).sum();
    let requests: u64 = cells.iter().map(|c| c.requests).sum();
    let mut out = vec![Criterion::check(
        "no failed request",
        "0 failed",
        format!("{errors} failed of {}", requests + errors),
        errors == 0 && requests > 0,
    )];
    out.push(match batched_sizes {
        Some(b) => Criterion::check(
            "the batcher forms batches",
            "mean batch size > 1 over the batched runs",
            format!("{:.2} rows per execution ({} executions)", b.mean(), b.executions),
            b.mean() > 1.0,
        ),
        None => Criterion::skipped(
            "the batcher forms batches",
            "mean batch size > 1",
            "replica /metrics not reachable on this target",
        ),
    });
    out.push(match unbatched_sizes {
        Some(u) => Criterion::check(
            "no batches without the batcher",
            "every execution recorded is 1 row (the server records none without a batcher)",
            format!("{} rows in {} executions", u.rows, u.executions),
            u.rows == u.executions,
        ),
        None => Criterion::skipped(
            "no batches without the batcher",
            "1 row per execution",
            "replica /metrics not reachable on this target",
        ),
    });
    let g = gain(cells, top);
    out.push(Criterion::check(
        format!("batching gain at c={top}"),
        "batched ÷ unbatched throughput > 1",
        g.map_or("not measured".into(), |g| format!("{g:.2}×")),
        g.is_some_and(|g| g > 1.0),
    ));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::verdict::{Outcome, all_passed};

    fn cells(batched_rps_64: f64) -> Vec<Cell> {
        let cell = |batched, concurrency, rps| Cell {
            batched,
            concurrency,
            requests: 100,
            errors: 0,
            rps,
            p50_ms: 1.0,
            p99_ms: 2.0,
        };
        vec![
            cell(false, 1, 1000.0),
            cell(false, 64, 2000.0),
            cell(true, 1, 900.0),
            cell(true, 64, batched_rps_64),
        ]
    }

    fn sizes(executions: f64, rows: f64) -> BatchSizes {
        BatchSizes { executions, rows, buckets: vec![] }
    }

    #[test]
    fn a_batcher_that_pays_passes() {
        let c = judge(&cells(6000.0), Some(&sizes(100.0, 800.0)), Some(&sizes(50.0, 50.0)));
        assert!(all_passed(&c), "{c:#?}");
        assert_eq!(gain(&cells(6000.0), 64), Some(3.0));
    }

    #[test]
    fn each_criterion_fails() {
        let outcomes = |c: Vec<Criterion>| c.into_iter().map(|c| c.outcome).collect::<Vec<_>>();
        let mut with_errors = cells(6000.0);
        with_errors[0].errors = 1;
        let o = outcomes(judge(&with_errors, Some(&sizes(1.0, 1.0)), Some(&sizes(50.0, 60.0))));
        assert_eq!(outcomes(judge(&cells(6000.0), None, Some(&sizes(0.0, 0.0))))[2], Outcome::Pass);
        assert_eq!(o, [Outcome::Fail, Outcome::Fail, Outcome::Fail, Outcome::Pass]);
        let o = outcomes(judge(&cells(1500.0), None, None));
        assert_eq!(o, [Outcome::Pass, Outcome::Skipped, Outcome::Skipped, Outcome::Fail]);
    }
}
