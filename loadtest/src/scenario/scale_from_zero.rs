//! `scale-from-zero`: a burst of concurrent requests (1,000 by default) at a service that has
//! scaled to zero. Every request must get a 2xx (the activator buffers them until a replica
//! is ready), and the activator's queue must drain; the first and last response latencies
//! and the queue depth over time are reported.

use crate::analysis::{histogram, percentile_ms};
use crate::record::{Sample, Tick};
use crate::verdict::Criterion;

/// What the burst measured, for the report.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Figures {
    pub first_response_ms: f64,
    pub last_response_ms: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_queue_depth: i64,
}

/// The figures of a burst sent at `burst_ms`.
pub fn figures(samples: &[Sample], ticks: &[Tick], burst_ms: f64) -> Figures {
    let ends = samples.iter().filter(|s| s.ok()).map(|s| s.end_ms() - burst_ms);
    let (first, last) = ends.fold((f64::INFINITY, 0.0_f64), |(lo, hi), e| (lo.min(e), hi.max(e)));
    let h = histogram(samples);
    Figures {
        first_response_ms: if first.is_finite() { first } else { 0.0 },
        last_response_ms: last,
        p50_ms: percentile_ms(&h, 0.5),
        p99_ms: percentile_ms(&h, 0.99),
        max_queue_depth: ticks.iter().map(|t| t.queue_depth).max().unwrap_or(0),
    }
}

/// The criteria: `requested` requests sent at `burst_ms` with `ready_before` replicas ready.
pub fn judge(
    requested: usize,
    ready_before: u32,
    burst_ms: f64,
    samples: &[Sample],
    ticks: &[Tick],
) -> Vec<Criterion> {
    let ok = samples.iter().filter(|s| s.ok()).count();
    let mut statuses: Vec<u16> = samples.iter().filter(|s| !s.ok()).map(|s| s.status).collect();
    statuses.sort();
    statuses.dedup();
    let after: Vec<&Tick> = ticks.iter().filter(|t| t.t_ms >= burst_ms).collect();
    let last_depth = after.last().map(|t| t.queue_depth);
    let peak = after.iter().map(|t| t.queue_depth).max().unwrap_or(0);
    vec![
        Criterion::check(
            "started from zero",
            "0 ready replicas when the burst is sent",
            format!("{ready_before} ready"),
            ready_before == 0,
        ),
        Criterion::check(
            "every request answered 2xx",
            format!("{requested} of {requested}"),
            if statuses.is_empty() {
                format!("{ok} of {requested}")
            } else {
                format!("{ok} of {requested}; other statuses {statuses:?} (0: no response)")
            },
            ok == requested && samples.len() == requested,
        ),
        Criterion::check(
            "the activator's queue drained",
            "queue depth 0 at the end",
            match last_depth {
                Some(d) => format!("{d} at the end, peak {peak}"),
                None => "no tick after the burst".into(),
            },
            last_depth == Some(0),
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis::tests::ok;
    use crate::verdict::{Outcome, all_passed};

    fn tick(t_ms: f64, depth: i64) -> Tick {
        Tick { t_ms, revisions: vec![], in_flight: 0, queue_depth: depth }
    }

    #[test]
    fn a_clean_cold_start_passes_and_reports_first_and_last() {
        let samples: Vec<Sample> = (0..10)
            .map(|i| Sample { latency_us: 500_000 + i * 10_000, ..ok(100.0, "r") })
            .collect();
        let ticks = [tick(50.0, 0), tick(200.0, 10), tick(900.0, 0)];
        assert!(all_passed(&judge(10, 0, 100.0, &samples, &ticks)));
        let f = figures(&samples, &ticks, 100.0);
        assert_eq!(
            (f.first_response_ms, f.last_response_ms, f.max_queue_depth),
            (500.0, 590.0, 10)
        );
    }

    #[test]
    fn each_criterion_fails() {
        let mut samples: Vec<Sample> = (0..10).map(|_| ok(100.0, "r")).collect();
        let ticks = [tick(200.0, 10), tick(900.0, 0)];
        let c = judge(10, 1, 100.0, &samples, &ticks);
        assert_eq!(c[0].outcome, Outcome::Fail);
        samples[3].status = 503;
        let c = judge(10, 0, 100.0, &samples, &ticks);
        assert_eq!(c[1].outcome, Outcome::Fail);
        assert!(c[1].measured.contains("[503]"), "{}", c[1].measured);
        let c = judge(10, 0, 100.0, &samples[..9], &[tick(200.0, 10), tick(900.0, 2)]);
        assert_eq!((c[1].outcome, c[2].outcome), (Outcome::Fail, Outcome::Fail));
    }
}
