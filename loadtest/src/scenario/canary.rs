//! `canary`: constant open-loop load while the service goes 100 % v1 → 10 % canary → 50 %
//! canary → promoted (100 % v2). Per phase, the realised split (from `x-oxserve-revision`)
//! must be within [`TOLERANCE_PCT`] points of the plan once the phase has settled, no
//! request may fail across any change, and the new split must take effect within the
//! settle time; the time from the apply to the new split is reported.

use crate::analysis::{describe_split, effect_time, failures, share, split};
use crate::record::Sample;
use crate::verdict::Criterion;

/// How far the realised split may be from the plan, in percentage points.
pub const TOLERANCE_PCT: f64 = 1.0;
/// Successful answers per sliding window when looking for the moment a split took effect.
pub const EFFECT_WINDOW: usize = 50;
/// How close a window's share must be to the new plan to count as "in effect", in points.
pub const EFFECT_TOLERANCE_PCT: f64 = 4.0;

/// One phase: from `apply_ms` (when its manifest was applied) to `end_ms`, `canary_pct` % to
/// `canary`, the rest to `stable`.
#[derive(Debug, Clone, PartialEq)]
pub struct Phase {
    pub name: String,
    pub apply_ms: f64,
    pub end_ms: f64,
    pub stable: String,
    pub canary: String,
    pub canary_pct: f64,
}

/// The criteria of a run; the split of a phase is judged from `apply_ms + settle_ms` on.
pub fn judge(phases: &[Phase], settle_ms: f64, samples: &[Sample]) -> Vec<Criterion> {
    let mut out = Vec::new();
    for p in phases {
        let failed = failures(samples, p.apply_ms, p.end_ms);
        let total = crate::analysis::window(samples, p.apply_ms, p.end_ms).count();
        out.push(Criterion::check(
            format!("{}: no failed request", p.name),
            "0 failed",
            format!("{failed} failed of {total}"),
            failed == 0 && total > 0,
        ));
        let counts = split(samples, p.apply_ms + settle_ms, p.end_ms);
        let got = share(&counts, &p.canary);
        out.push(Criterion::check(
            format!("{}: split", p.name),
            format!("{} {:.0} % ± {TOLERANCE_PCT}", p.canary, p.canary_pct),
            describe_split(&counts),
            counts.values().sum::<u64>() > 0 && (got - p.canary_pct).abs() <= TOLERANCE_PCT,
        ));
        let effect = effect_time(
            samples,
            p.apply_ms,
            p.end_ms,
            &p.canary,
            p.canary_pct,
            EFFECT_WINDOW,
            EFFECT_TOLERANCE_PCT,
        );
        out.push(Criterion::check(
            format!("{}: took effect", p.name),
            format!("within {:.1} s of the apply", settle_ms / 1000.0),
            effect.map_or("never".into(), |ms| format!("{:.2} s after the apply", ms / 1000.0)),
            effect.is_some_and(|ms| ms <= settle_ms),
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis::tests::stream;
    use crate::verdict::{Outcome, all_passed};

    fn phases() -> Vec<Phase> {
        let phase = |name: &str, from: f64, pct: f64| Phase {
            name: name.into(),
            apply_ms: from,
            end_ms: from + 10_000.0,
            stable: "v1".into(),
            canary: "v2".into(),
            canary_pct: pct,
        };
        vec![
            phase("baseline", 0.0, 0.0),
            phase("10 %", 10_000.0, 10.0),
            phase("50 %", 20_000.0, 50.0),
        ]
    }

    /// 100 req/s; each phase's new split starts `lag_ms` after its apply.
    fn run(pcts: [u32; 3], lag_ms: f64) -> Vec<Sample> {
        let mut s = stream(0.0, 1000, 10.0, "v2", "v1", pcts[0]);
        s.extend(stream(10_000.0, (lag_ms / 10.0) as usize, 10.0, "v2", "v1", pcts[0]));
        s.extend(stream(
            10_000.0 + lag_ms,
            1000 - (lag_ms / 10.0) as usize,
            10.0,
            "v2",
            "v1",
            pcts[1],
        ));
        s.extend(stream(20_000.0, (lag_ms / 10.0) as usize, 10.0, "v2", "v1", pcts[1]));
        s.extend(stream(
            20_000.0 + lag_ms,
            1000 - (lag_ms / 10.0) as usize,
            10.0,
            "v2",
            "v1",
            pcts[2],
        ));
        s.sort_by(|a, b| a.t_ms.total_cmp(&b.t_ms));
        s
    }

    fn failed(c: &[Criterion]) -> Vec<&str> {
        c.iter().filter(|c| c.outcome == Outcome::Fail).map(|c| c.name.as_str()).collect()
    }

    #[test]
    fn the_planned_split_passes() {
        let c = judge(&phases(), 3000.0, &run([0, 10, 50], 1000.0));
        assert!(all_passed(&c), "{c:#?}");
        // The change happened 1 s after the apply; a window of 50 sees it up to 0.3 s early.
        let effect = &c.iter().find(|c| c.name == "10 %: took effect").unwrap().measured;
        let s: f64 = effect.split(' ').next().unwrap().parse().unwrap();
        assert!((0.7..=1.0).contains(&s), "{effect}");
    }

    #[test]
    fn a_router_splitting_30_70_when_asked_for_10_90_fails() {
        // (A window passing through 10 % on the way to 30 % counts as "took effect"; the
        // split criterion is the one that catches a wrong split.)
        let c = judge(&phases(), 3000.0, &run([0, 30, 50], 1000.0));
        assert_eq!(failed(&c), ["10 %: split"]);
    }

    #[test]
    fn a_split_two_points_off_fails() {
        let c = judge(&phases(), 3000.0, &run([0, 10, 52], 1000.0));
        assert_eq!(failed(&c), ["50 %: split"]);
    }

    #[test]
    fn a_failed_request_or_a_slow_change_fails() {
        let mut s = run([0, 10, 50], 1000.0);
        s[1500].status = 503;
        assert_eq!(failed(&judge(&phases(), 3000.0, &s)), ["10 %: no failed request"]);
        let slow = run([0, 10, 50], 5000.0);
        let c = judge(&phases(), 3000.0, &slow);
        assert!(failed(&c).contains(&"10 %: took effect"), "{c:#?}");
    }
}
