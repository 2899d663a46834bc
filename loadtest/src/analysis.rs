//! Pure arithmetic over the recorded samples and ticks: failures and splits in a time
//! window, when a new split took effect, latency percentiles, and the per-second series the
//! charts draw.

use std::collections::BTreeMap;

use hdrhistogram::Histogram;
use serde::Serialize;

use crate::record::{Sample, Tick};
use crate::summary::new_histogram;

/// The samples whose intended start lies in `[from_ms, to_ms)`.
pub fn window(samples: &[Sample], from_ms: f64, to_ms: f64) -> impl Iterator<Item = &Sample> {
    samples.iter().filter(move |s| s.t_ms >= from_ms && s.t_ms < to_ms)
}

/// Non-2xx answers (and requests with no answer) in the window.
pub fn failures(samples: &[Sample], from_ms: f64, to_ms: f64) -> usize {
    window(samples, from_ms, to_ms).filter(|s| !s.ok()).count()
}

/// Successful answers per revision (`?` for a response without the header) in the window.
pub fn split(samples: &[Sample], from_ms: f64, to_ms: f64) -> BTreeMap<String, u64> {
    let mut counts = BTreeMap::new();
    for s in window(samples, from_ms, to_ms).filter(|s| s.ok()) {
        *counts.entry(s.revision.clone().unwrap_or_else(|| "?".into())).or_insert(0) += 1;
    }
    counts
}

/// `revision`'s percentage of `counts` (0 when there are none).
pub fn share(counts: &BTreeMap<String, u64>, revision: &str) -> f64 {
    let total: u64 = counts.values().sum();
    if total == 0 {
        return 0.0;
    }
    100.0 * *counts.get(revision).unwrap_or(&0) as f64 / total as f64
}

/// `counts` as `name 12.3 % (n)` lines joined by `, `.
pub fn describe_split(counts: &BTreeMap<String, u64>) -> String {
    if counts.is_empty() {
        return "no successful responses".into();
    }
    counts
        .iter()
        .map(|(rev, n)| format!("{rev} {:.2} % ({n})", share(counts, rev)))
        .collect::<Vec<_>>()
        .join(", ")
}

/// When the split of successful answers started to follow a new plan: the time after
/// `from_ms` of the first sliding window of `window` consecutive successful answers in
/// which `revision` has `planned` % within `tolerance` points, or `None` if none does
/// before `to_ms`. `samples` must be sorted by intended start.
pub fn effect_time(
    samples: &[Sample],
    from_ms: f64,
    to_ms: f64,
    revision: &str,
    planned: f64,
    window_len: usize,
    tolerance: f64,
) -> Option<f64> {
    let ok: Vec<&Sample> = window(samples, from_ms, to_ms).filter(|s| s.ok()).collect();
    if ok.len() < window_len || window_len == 0 {
        return None;
    }
    let hit = |s: &Sample| s.revision.as_deref() == Some(revision);
    let mut hits = ok[..window_len].iter().filter(|s| hit(s)).count();
    for start in 0..=ok.len() - window_len {
        if start > 0 {
            hits -= hit(ok[start - 1]) as usize;
            hits += hit(ok[start + window_len - 1]) as usize;
        }
        let pct = 100.0 * hits as f64 / window_len as f64;
        if (pct - planned).abs() <= tolerance {
            return Some(ok[start].t_ms - from_ms);
        }
    }
    None
}

/// The latencies (µs) of the successful samples.
pub fn histogram<'a>(samples: impl IntoIterator<Item = &'a Sample>) -> Histogram<u64> {
    let mut h = new_histogram();
    for s in samples.into_iter().filter(|s| s.ok()) {
        h.saturating_record(s.latency_us.max(1));
    }
    h
}

/// A percentile in ms of a histogram (0 when empty).
pub fn percentile_ms(h: &Histogram<u64>, q: f64) -> f64 {
    if h.is_empty() { 0.0 } else { h.value_at_quantile(q) as f64 / 1000.0 }
}

/// One second of the run, for the charts and the JSON report.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Second {
    pub t_s: u64,
    pub requests: u64,
    pub errors: u64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    /// Successful answers per revision.
    pub split: BTreeMap<String, u64>,
}

/// The samples bucketed by the second of their intended start.
pub fn per_second(samples: &[Sample]) -> Vec<Second> {
    let mut buckets: BTreeMap<u64, Vec<&Sample>> = BTreeMap::new();
    for s in samples {
        buckets.entry((s.t_ms / 1000.0).max(0.0) as u64).or_default().push(s);
    }
    buckets
        .into_iter()
        .map(|(t_s, v)| {
            let h = histogram(v.iter().copied());
            let mut split = BTreeMap::new();
            for s in v.iter().filter(|s| s.ok()) {
                *split.entry(s.revision.clone().unwrap_or_else(|| "?".into())).or_insert(0) += 1;
            }
            Second {
                t_s,
                requests: v.len() as u64,
                errors: v.iter().filter(|s| !s.ok()).count() as u64,
                p50_ms: percentile_ms(&h, 0.5),
                p99_ms: percentile_ms(&h, 0.99),
                max_ms: if h.is_empty() { 0.0 } else { h.max() as f64 / 1000.0 },
                split,
            }
        })
        .collect()
}

/// The last tick at or before `t_ms`.
pub fn tick_at(ticks: &[Tick], t_ms: f64) -> Option<&Tick> {
    ticks.iter().rev().find(|t| t.t_ms <= t_ms)
}

/// The time of the first tick in `[from_ms, to_ms)` for which `cond` holds.
pub fn first_tick(
    ticks: &[Tick],
    from_ms: f64,
    to_ms: f64,
    cond: impl Fn(&Tick) -> bool,
) -> Option<f64> {
    ticks.iter().filter(|t| t.t_ms >= from_ms && t.t_ms < to_ms).find(|t| cond(t)).map(|t| t.t_ms)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::record::Protocol;

    /// A successful REST sample at `t_ms` answered by `revision`.
    pub fn ok(t_ms: f64, revision: &str) -> Sample {
        Sample {
            t_ms,
            latency_us: 2000,
            status: 200,
            revision: Some(revision.into()),
            protocol: Protocol::Rest,
            model: None,
        }
    }

    /// `n` samples from `from_ms`, `every_ms` apart, split by a deterministic cycle that
    /// sends `canary_pct` % to `canary`.
    pub fn stream(
        from_ms: f64,
        n: usize,
        every_ms: f64,
        canary: &str,
        stable: &str,
        canary_pct: u32,
    ) -> Vec<Sample> {
        (0..n)
            .map(|i| {
                let (i, p) = (i as u32, canary_pct);
                let rev = if ((i + 1) * p) / 100 > (i * p) / 100 { canary } else { stable };
                ok(from_ms + i as f64 * every_ms, rev)
            })
            .collect()
    }

    #[test]
    fn stream_realises_its_split() {
        let s = stream(0.0, 1000, 1.0, "c", "s", 10);
        assert_eq!(share(&split(&s, 0.0, 1e9), "c"), 10.0);
        let s = stream(0.0, 1000, 1.0, "c", "s", 30);
        assert_eq!(share(&split(&s, 0.0, 1e9), "c"), 30.0);
    }

    #[test]
    fn failures_and_split_in_a_window() {
        let mut s = stream(0.0, 100, 10.0, "c", "s", 50);
        s[10].status = 502;
        s[90].status = 0;
        assert_eq!(failures(&s, 0.0, 500.0), 1);
        assert_eq!(failures(&s, 0.0, 1000.0), 2);
        let counts = split(&s, 0.0, 500.0);
        assert_eq!(counts.values().sum::<u64>(), 49);
        assert!(describe_split(&counts).contains("c "));
    }

    #[test]
    fn effect_time_finds_the_change() {
        let mut s = stream(0.0, 500, 10.0, "c", "s", 0);
        s.extend(stream(5000.0, 500, 10.0, "c", "s", 50));
        let t = effect_time(&s, 2000.0, 1e9, "c", 50.0, 20, 5.0).unwrap();
        assert!((2900.0..=3000.0).contains(&t), "{t}");
        assert_eq!(effect_time(&s, 0.0, 4000.0, "c", 50.0, 20, 5.0), None);
    }

    #[test]
    fn per_second_buckets() {
        let mut s = stream(0.0, 20, 100.0, "c", "s", 50);
        s[3].status = 503;
        let secs = per_second(&s);
        assert_eq!(secs.len(), 2);
        assert_eq!((secs[0].requests, secs[0].errors), (10, 1));
        assert_eq!(secs[1].split.values().sum::<u64>(), 10);
        assert_eq!(secs[0].p99_ms, 2.0);
    }
}
