//! The deterministic weighted splitter: picks a backend for each request so that the realised
//! split follows the plan's weights as closely as integer counts allow.
//!
//! The plan is turned once into the sequence that smooth weighted round-robin (nginx's
//! algorithm) produces over one cycle of `sum(weights)` picks; a request takes the next entry
//! of that sequence through one atomic counter. So picking takes no lock, every cycle realises
//! the weights exactly, and within a cycle the backends are interleaved as evenly as
//! possible (a 10/90 plan sends one request in ten to the first backend, not ten in a row).
//! A new plan is a new `Splitter`: swapping it in (e.g. behind an `ArcSwap`) never touches a
//! request already routed.

use std::sync::atomic::{AtomicU64, Ordering};

/// Weights are reduced by their greatest common divisor and then scaled down to this many
/// slots at most, so a cycle stays short whatever numbers a plan uses.
const MAX_CYCLE: u64 = 10_000;

/// Picks backend indices in proportion to their weights.
#[derive(Debug)]
pub struct Splitter {
    /// One cycle of picks: indices into the weights the splitter was built from.
    cycle: Vec<u32>,
    next: AtomicU64,
}

impl Splitter {
    /// A splitter over `weights` (index `i` is picked `weights[i] / sum` of the time). Zero
    /// weights are never picked; when every weight is zero nothing is.
    pub fn new(weights: &[u32]) -> Splitter {
        let weights = reduce(weights);
        let total: u64 = weights.iter().map(|&w| u64::from(w)).sum();
        let mut cycle = Vec::with_capacity(total as usize);
        let mut current = vec![0i64; weights.len()];
        for _ in 0..total {
            let mut best = 0;
            for (i, &w) in weights.iter().enumerate() {
                current[i] += i64::from(w);
                if current[i] > current[best] {
                    best = i;
                }
            }
            current[best] -= total as i64;
            cycle.push(best as u32);
        }
        Splitter { cycle, next: AtomicU64::new(0) }
    }

    /// The index of the backend for the next request, or `None` when every weight is zero.
    pub fn pick(&self) -> Option<usize> {
        if self.cycle.is_empty() {
            return None;
        }
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        Some(self.cycle[(n % self.cycle.len() as u64) as usize] as usize)
    }

    /// How many picks make one exact cycle of the plan.
    pub fn cycle_len(&self) -> usize {
        self.cycle.len()
    }
}

/// The weights divided by their gcd, then scaled down (largest remainders kept, every
/// non-zero weight at least 1) when their sum is over [`MAX_CYCLE`].
fn reduce(weights: &[u32]) -> Vec<u32> {
    let g = weights.iter().fold(0u32, |g, &w| gcd(g, w));
    if g == 0 {
        return vec![0; weights.len()];
    }
    let reduced: Vec<u64> = weights.iter().map(|&w| u64::from(w / g)).collect();
    let total: u64 = reduced.iter().sum();
    if total <= MAX_CYCLE {
        return reduced.iter().map(|&w| w as u32).collect();
    }
    reduced
        .iter()
        .map(|&w| if w == 0 { 0 } else { ((w * MAX_CYCLE) / total).max(1) as u32 })
        .collect()
}

fn gcd(a: u32, b: u32) -> u32 {
    if b == 0 { a } else { gcd(b, a % b) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn counts(splitter: &Splitter, n: usize, backends: usize) -> Vec<usize> {
        let mut counts = vec![0; backends];
        for _ in 0..n {
            counts[splitter.pick().unwrap()] += 1;
        }
        counts
    }

    #[test]
    fn ten_ninety_is_interleaved_and_exact_per_cycle() {
        let s = Splitter::new(&[10, 90]);
        assert_eq!(s.cycle_len(), 10);
        let first: Vec<_> = (0..10).map(|_| s.pick().unwrap()).collect();
        assert_eq!(first.iter().filter(|&&i| i == 0).count(), 1);
        assert_eq!(counts(&s, 10_000, 2), vec![1_000, 9_000]);
    }

    #[test]
    fn zero_weights_are_never_picked() {
        let s = Splitter::new(&[0, 100, 0]);
        assert_eq!(counts(&s, 1_000, 3), vec![0, 1_000, 0]);
        assert_eq!(Splitter::new(&[0, 0]).pick(), None);
        assert_eq!(Splitter::new(&[]).pick(), None);
    }

    #[test]
    fn huge_weights_keep_a_short_cycle() {
        let s = Splitter::new(&[u32::MAX, 1, u32::MAX / 3]);
        assert!(s.cycle_len() <= MAX_CYCLE as usize + 3);
        let c = counts(&s, s.cycle_len(), 3);
        assert!(c[1] >= 1, "a non-zero weight keeps at least one slot");
    }

    proptest! {
        /// Over any 10,000 consecutive requests (starting anywhere in the cycle) every
        /// backend's share is within 0.5 percentage points of its planned share.
        #[test]
        fn any_window_of_ten_thousand_is_within_half_a_percent(
            weights in proptest::collection::vec(0u32..=100, 1..6),
            offset in 0usize..10_000,
        ) {
            let total: u32 = weights.iter().sum();
            prop_assume!(total > 0);
            let s = Splitter::new(&weights);
            for _ in 0..offset { s.pick(); }
            let c = counts(&s, 10_000, weights.len());
            for (i, &w) in weights.iter().enumerate() {
                let planned = f64::from(w) / f64::from(total);
                let realised = c[i] as f64 / 10_000.0;
                prop_assert!((planned - realised).abs() <= 0.005,
                    "backend {i}: planned {planned:.4}, realised {realised:.4} ({weights:?})");
            }
        }
    }
}
