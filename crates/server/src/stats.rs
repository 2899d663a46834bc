//! Per-version inference statistics in the shape of the statistics extension (Triton's
//! `ModelStatistics`): counts and cumulative nanoseconds, updated with atomics.
//! Explanations are counted on their own (`explain_success`, `explain_fail`), never as
//! inferences.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use parking_lot::Mutex;

/// A count and the total time of the things counted.
#[derive(Debug, Default)]
pub struct DurationStat {
    count: AtomicU64,
    ns: AtomicU64,
}

impl DurationStat {
    pub fn record(&self, d: Duration) {
        self.count.fetch_add(1, Relaxed);
        self.ns.fetch_add(u64::try_from(d.as_nanos()).unwrap_or(u64::MAX), Relaxed);
    }

    /// `(count, ns)`.
    pub fn snapshot(&self) -> (u64, u64) {
        (self.count.load(Relaxed), self.ns.load(Relaxed))
    }
}

/// Statistics of one model version.
#[derive(Debug, Default)]
pub struct ModelStats {
    /// Milliseconds since the epoch of the last inference, 0 if none.
    pub last_inference_ms: AtomicU64,
    /// Requests answered successfully (Triton counts rows; we count requests).
    pub inference_count: AtomicU64,
    /// Model executions (a batch of several requests is one execution).
    pub execution_count: AtomicU64,
    pub success: DurationStat,
    pub fail: DurationStat,
    pub queue: DurationStat,
    pub compute_infer: DurationStat,
    /// Explanation requests answered, and failed.
    pub explain_success: DurationStat,
    pub explain_fail: DurationStat,
    /// Executions per batch size: `(count, compute ns)`.
    batches: Mutex<BTreeMap<u64, (u64, u64)>>,
}

impl ModelStats {
    /// Records a finished request.
    pub fn record_request(&self, ok: bool, total: Duration) {
        if ok {
            self.success.record(total);
            self.inference_count.fetch_add(1, Relaxed);
        } else {
            self.fail.record(total);
        }
        let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
        self.last_inference_ms.store(u64::try_from(now.as_millis()).unwrap_or(0), Relaxed);
    }

    /// Records a finished explanation request.
    pub fn record_explain(&self, ok: bool, total: Duration) {
        if ok { self.explain_success.record(total) } else { self.explain_fail.record(total) }
    }

    /// Records one execution of the model on `batch_size` rows.
    pub fn record_execution(&self, batch_size: usize, compute: Duration) {
        self.execution_count.fetch_add(1, Relaxed);
        self.compute_infer.record(compute);
        let ns = u64::try_from(compute.as_nanos()).unwrap_or(u64::MAX);
        let mut batches = self.batches.lock();
        let entry = batches.entry(batch_size as u64).or_default();
        entry.0 += 1;
        entry.1 = entry.1.saturating_add(ns);
    }

    /// Executions per batch size: `(batch_size, count, compute ns)`.
    pub fn batch_snapshot(&self) -> Vec<(u64, u64, u64)> {
        self.batches.lock().iter().map(|(&size, &(count, ns))| (size, count, ns)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_requests_and_batches() {
        let s = ModelStats::default();
        s.record_request(true, Duration::from_nanos(100));
        s.record_request(false, Duration::from_nanos(50));
        s.record_execution(4, Duration::from_nanos(30));
        s.record_execution(4, Duration::from_nanos(10));
        assert_eq!(s.success.snapshot(), (1, 100));
        assert_eq!(s.fail.snapshot(), (1, 50));
        assert_eq!(s.inference_count.load(Relaxed), 1);
        assert_eq!(s.batch_snapshot(), vec![(4, 2, 40)]);
        assert!(s.last_inference_ms.load(Relaxed) > 0);
        s.record_explain(true, Duration::from_nanos(7));
        s.record_explain(false, Duration::from_nanos(3));
        assert_eq!(s.explain_success.snapshot(), (1, 7));
        assert_eq!(s.explain_fail.snapshot(), (1, 3));
        assert_eq!(s.inference_count.load(Relaxed), 1);
    }
}
