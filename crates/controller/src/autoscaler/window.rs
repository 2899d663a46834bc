//! The windows the autoscaler averages over: per-second buckets of observed load (Knative's
//! `aggregation.TimedFloat64Buckets` and its weighted-exponential variant) and the sliding
//! maximum that delays scale-down decisions (`aggregation/max.TimeWindow`).
//!
//! Time is a bucket index here — whole granularity steps since the autoscaler's epoch — so
//! nothing in this module reads a clock.

use std::collections::VecDeque;

/// How a window's buckets are reduced to one value (Knative's
/// `autoscaling.knative.dev/metric-aggregation-algorithm`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Aggregation {
    /// The plain average over the buckets of the window (Knative's default).
    #[default]
    Linear,
    /// An exponentially weighted average: recent buckets weigh more.
    WeightedExponential,
}

/// The smallest decay multiplier of the weighted average (Knative's `minExponent`).
const MIN_EXPONENT: f64 = 0.2;
/// The weights of the weighted average sum to at least this (Knative's `weightPrecision`).
const WEIGHT_PRECISION: f64 = 0.9999;
/// Averages are rounded to this many decimal digits, as Knative does, so that float noise
/// (e.g. `1e-17` left over from subtracting buckets) cannot ask for one more replica.
const PRECISION_DIGITS: i32 = 6;

/// A ring of per-granularity buckets covering one window; values recorded in the same bucket
/// add up (several reporters in one second make one total).
#[derive(Clone, Debug)]
pub(crate) struct Buckets {
    buckets: Vec<f64>,
    /// Index of the first write, reset after a whole window without data.
    first_write: Option<i64>,
    /// Index of the last write; `None` before any.
    last_write: Option<i64>,
    /// Sum of every bucket in the ring, stale ones included (as in Knative).
    window_total: f64,
    aggregation: Aggregation,
    smoothing: f64,
}

impl Buckets {
    /// A window of `len` buckets (`ceil(window / granularity)`, at least one).
    pub(crate) fn new(len: usize, aggregation: Aggregation) -> Buckets {
        let len = len.max(1);
        let smoothing = (1.0 - (1.0 - WEIGHT_PRECISION).powf(1.0 / len as f64)).max(MIN_EXPONENT);
        Buckets {
            buckets: vec![0.0; len],
            first_write: None,
            last_write: None,
            window_total: 0.0,
            aggregation,
            smoothing,
        }
    }

    fn len(&self) -> i64 {
        self.buckets.len() as i64
    }

    fn slot(&self, index: i64) -> usize {
        index.rem_euclid(self.len()) as usize
    }

    /// Adds `value` to the bucket of `index`. Buckets skipped since the last write become
    /// zero; after a whole window without data the window starts afresh; a value older than
    /// one window before the last write is dropped.
    pub(crate) fn record(&mut self, index: i64, value: f64) {
        match self.last_write {
            Some(last) if last == index => {}
            Some(last) if index + self.len() <= last => return,
            Some(last) if index < last => {
                // Late but inside the window: it only moves the first write back.
                if self.first_write.is_none_or(|first| first > index) {
                    self.first_write = Some(index);
                }
            }
            Some(last) if index - last < self.len() => {
                for i in last + 1..=index {
                    let slot = self.slot(i);
                    self.window_total -= self.buckets[slot];
                    self.buckets[slot] = 0.0;
                }
                self.last_write = Some(index);
            }
            _ => {
                // First write, or a whole window without data: start again.
                self.buckets.iter_mut().for_each(|b| *b = 0.0);
                self.window_total = 0.0;
                self.first_write = Some(index);
                self.last_write = Some(index);
            }
        }
        let slot = self.slot(index);
        self.buckets[slot] += value;
        self.window_total += value;
    }

    /// Whether nothing was recorded during the window that ends at `now`.
    pub(crate) fn is_empty(&self, now: i64) -> bool {
        self.last_write.is_none_or(|last| now - last > self.len())
    }

    /// Whether the bucket of `index` already holds a value written at that index.
    pub(crate) fn written_at(&self, index: i64) -> bool {
        self.last_write == Some(index)
    }

    /// The window's average as of `now`.
    pub(crate) fn average(&self, now: i64) -> f64 {
        match self.aggregation {
            Aggregation::Linear => self.linear_average(now),
            Aggregation::WeightedExponential => self.weighted_average(now),
        }
    }

    fn linear_average(&self, now: i64) -> f64 {
        let (Some(first), Some(last)) = (self.first_write, self.last_write) else {
            return 0.0;
        };
        let gap = now - last;
        if gap <= 0 {
            let valid = (last - first + 1).min(self.len());
            round_digits(self.window_total / valid as f64)
        } else if gap < self.len() {
            // Buckets after the last write hold data from an older cycle: take them out.
            let mut total = self.window_total;
            for i in last + 1..=now {
                total -= self.buckets[self.slot(i)];
            }
            let valid = (last - first + 1).min(self.len() - gap);
            round_digits(total / valid as f64)
        } else {
            0.0
        }
    }

    fn weighted_average(&self, now: i64) -> f64 {
        let Some(last) = self.last_write else {
            return 0.0;
        };
        if self.is_empty(now) {
            return 0.0;
        }
        let mut buckets = self.len();
        let mut multiplier = self.smoothing;
        if now > last {
            let zeros = now - last;
            multiplier *= (1.0 - self.smoothing).powi(zeros as i32);
            buckets -= zeros;
        }
        let mut sum = 0.0;
        for i in 0..buckets {
            sum += self.buckets[self.slot(last - i)] * multiplier;
            multiplier *= 1.0 - self.smoothing;
        }
        sum
    }
}

fn round_digits(value: f64) -> f64 {
    let p = 10f64.powi(PRECISION_DIGITS);
    (value * p).round() / p
}

/// The maximum of the values recorded over the last `len` indices (Knative's descending-minima
/// `max.window`), used to hold a scale for `scale-down-delay` after the load has dropped.
#[derive(Clone, Debug)]
pub(crate) struct MaxWindow {
    len: i64,
    /// `(index, value)` with strictly descending values and ascending indices.
    maxima: VecDeque<(i64, u32)>,
}

impl MaxWindow {
    pub(crate) fn new(len: usize) -> MaxWindow {
        MaxWindow { len: len.max(1) as i64, maxima: VecDeque::new() }
    }

    /// Records `value` at `index` (indices never decrease).
    pub(crate) fn record(&mut self, index: i64, value: u32) {
        let mut value = value;
        // A smaller, older value can never be the maximum again.
        while self.maxima.back().is_some_and(|&(_, v)| v <= value) {
            self.maxima.pop_back();
        }
        while self.maxima.front().is_some_and(|&(i, _)| index - i >= self.len) {
            self.maxima.pop_front();
        }
        // Two values at one index: keep the larger.
        if let Some(&(i, v)) = self.maxima.back()
            && i == index
        {
            value = value.max(v);
            self.maxima.pop_back();
        }
        self.maxima.push_back((index, value));
    }

    /// The maximum over the window (0 before any record).
    pub(crate) fn current(&self) -> u32 {
        self.maxima.front().map_or(0, |&(_, v)| v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Replays knative/serving pkg/autoscaler/aggregation/bucketing_test.go TestTimedFloat64BucketsSimple.
    #[test]
    fn timed_buckets_simple() {
        let mut b = Buckets::new(5, Aggregation::Linear);
        assert!(b.is_empty(0));
        assert_eq!(b.average(0), 0.0);
        b.record(0, 2.0);
        b.record(0, 3.0);
        assert_eq!(b.average(0), 5.0);
        b.record(1, 5.0);
        // Two buckets written: (5 + 5) / 2.
        assert_eq!(b.average(1), 5.0);
        // Two seconds later without data: the average is over the written part only.
        assert_eq!(b.average(3), 5.0);
        b.record(3, 2.0);
        // 5 + 5 + 0 + 2 over four buckets.
        assert_eq!(b.average(3), 3.0);
        // Everything older than the window rolls out.
        assert_eq!(b.average(8), 0.0);
        // Empty only once more than a window has passed since the last write (Knative's `>`).
        assert!(!b.is_empty(8));
        assert!(b.is_empty(9));
    }

    // Replays TestTimedFloat64BucketsWindowAverage: data older than the window leaves it.
    #[test]
    fn timed_buckets_roll_over() {
        let mut b = Buckets::new(5, Aggregation::Linear);
        for i in 0..5 {
            b.record(i, (i + 1) as f64);
        }
        assert_eq!(b.average(4), 3.0); // (1+2+3+4+5)/5
        b.record(5, 6.0);
        assert_eq!(b.average(5), 4.0); // (2+3+4+5+6)/5
        // Two buckets later: 5 and 6 are left of the last write's window.
        assert_eq!(b.average(7), (4.0 + 5.0 + 6.0) / 3.0);
        // A record a whole window after the last write starts afresh.
        b.record(20, 1.0);
        assert_eq!(b.average(20), 1.0);
        // A record older than a window before the last write is dropped.
        b.record(10, 100.0);
        assert_eq!(b.average(20), 1.0);
    }

    #[test]
    fn weighted_buckets_favour_recent_values() {
        // Knative's doc example: data [10, 10, 5, 5] (newest last) with coefficient 0.6.
        let mut b = Buckets::new(4, Aggregation::WeightedExponential);
        b.smoothing = 0.6;
        for (i, v) in [10.0, 10.0, 5.0, 5.0].into_iter().enumerate() {
            b.record(i as i64, v);
        }
        let want = 5.0 * 0.6 + 5.0 * 0.6 * 0.4 + 10.0 * 0.6 * 0.16 + 10.0 * 0.6 * 0.064;
        assert!((b.average(3) - want).abs() < 1e-9);
    }

    // Replays knative/serving pkg/autoscaler/aggregation/max/window_test.go.
    #[test]
    fn max_window_keeps_the_largest_recent_value() {
        let mut w = MaxWindow::new(2);
        w.record(0, 5);
        assert_eq!(w.current(), 5);
        w.record(1, 3);
        assert_eq!(w.current(), 5);
        w.record(2, 2);
        assert_eq!(w.current(), 3);
        w.record(2, 4); // same index, larger value
        assert_eq!(w.current(), 4);
        w.record(10, 1);
        assert_eq!(w.current(), 1);
    }
}
