//! The result of one load run: counts, throughput and latency percentiles, as JSON.

use std::time::Duration;

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

/// Highest latency the histograms record, in microseconds (60 s); slower calls are clamped.
pub const MAX_LATENCY_US: u64 = 60_000_000;

/// A latency histogram in microseconds with three significant digits.
pub fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, MAX_LATENCY_US, 3).expect("static histogram bounds are valid")
}

/// What `oxserve-grpc-load` prints: one JSON object per run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    /// Successful requests (the latencies below are theirs).
    pub requests: u64,
    /// Failed requests: a non-OK status or a response of the wrong shape.
    pub errors: u64,
    /// Successful requests per second over the measured time.
    pub rps: f64,
    /// Median latency in microseconds.
    pub p50_us: u64,
    /// 90th percentile latency in microseconds.
    pub p90_us: u64,
    /// 99th percentile latency in microseconds.
    pub p99_us: u64,
    /// Largest latency in microseconds.
    pub max_us: u64,
    /// Measured wall-clock time in seconds.
    pub elapsed_s: f64,
}

impl Summary {
    /// Summarises a run from the successful calls' latencies, the error count and its length.
    pub fn new(latencies: &Histogram<u64>, errors: u64, elapsed: Duration) -> Summary {
        let requests = latencies.len();
        let secs = elapsed.as_secs_f64();
        let rps = if secs > 0.0 { requests as f64 / secs } else { 0.0 };
        let at = |q: f64| if requests == 0 { 0 } else { latencies.value_at_quantile(q) };
        Summary {
            requests,
            errors,
            rps: (rps * 10.0).round() / 10.0,
            p50_us: at(0.50),
            p90_us: at(0.90),
            p99_us: at(0.99),
            max_us: latencies.max(),
            elapsed_s: (secs * 1000.0).round() / 1000.0,
        }
    }

    /// The summary as one line of JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("a summary always serialises")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_of_a_uniform_run() {
        let mut h = new_histogram();
        for us in 1..=1000 {
            h.record(us).unwrap();
        }
        let s = Summary::new(&h, 3, Duration::from_secs(2));
        assert_eq!(s.requests, 1000);
        assert_eq!(s.errors, 3);
        assert_eq!(s.rps, 500.0);
        assert_eq!((s.p50_us, s.p90_us, s.p99_us, s.max_us), (500, 900, 990, 1000));
    }

    #[test]
    fn empty_run_reports_zeros() {
        let s = Summary::new(&new_histogram(), 7, Duration::from_secs(1));
        assert_eq!((s.requests, s.rps, s.p50_us, s.p99_us), (0, 0.0, 0, 0));
    }

    #[test]
    fn json_shape() {
        let mut h = new_histogram();
        h.record(120).unwrap();
        let json = Summary::new(&h, 0, Duration::from_millis(500)).to_json();
        assert_eq!(
            json,
            r#"{"requests":1,"errors":0,"rps":2.0,"p50_us":120,"p90_us":120,"p99_us":120,"max_us":120,"elapsed_s":0.5}"#
        );
        assert_eq!(serde_json::from_str::<Summary>(&json).unwrap().p50_us, 120);
    }
}
