//! `autoscale`: step load (closed loop, c = 1 → 16 → 64 → 0) at a service with target
//! concurrency 4; replicas must follow within the KPA's bounds — panic on the step up, keep
//! replicas through the stable window after the load stops, reach zero after the grace
//! period — and no request may fail while replicas come and go.

use crate::analysis::{failures, first_tick, tick_at};
use crate::record::{Sample, Tick};
use crate::verdict::Criterion;

use super::{GRACE_S, PANIC_WINDOW_S, STABLE_WINDOW_S, TICK_S};

/// Slack for process start, readiness polling and the api poll interval, in seconds.
pub const SLACK_S: f64 = 3.0;

/// One load step: `concurrency` users from `start_ms` to `end_ms`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Step {
    pub concurrency: u32,
    pub start_ms: f64,
    pub end_ms: f64,
}

/// What the scenario asked for.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    /// Target concurrency per replica (annotation `target`, utilisation 100 %).
    pub target: f64,
    pub max_replicas: u32,
    pub steps: Vec<Step>,
}

/// The replicas the KPA settles on for `concurrency` (0 without load).
pub fn expected_replicas(concurrency: u32, target: f64, max_replicas: u32) -> u32 {
    if concurrency == 0 {
        return 0;
    }
    ((concurrency as f64 / target).ceil() as u32).clamp(1, max_replicas.max(1))
}

/// What the platform saw of one step, beside what was offered: reported, not judged (the
/// criteria stay on the KPA's bounds for the offered concurrency).
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct Observed {
    /// The mean of the load generator's requests in flight over the step's second half.
    pub client_in_flight: f64,
    /// The KPA's stable-window average (requests in flight at the router) at the last tick
    /// inside the step; `None` when the api does not report it.
    pub kpa_stable_at_end: Option<f64>,
    /// The highest panic-window average during the step.
    pub kpa_panic_max: Option<f64>,
}

/// [`Observed`] for `step` from the ticks.
pub fn observed(ticks: &[Tick], step: &Step) -> Observed {
    let mid = (step.start_ms + step.end_ms) / 2.0;
    let late: Vec<f64> = ticks
        .iter()
        .filter(|t| t.t_ms >= mid && t.t_ms < step.end_ms)
        .map(|t| t.in_flight as f64)
        .collect();
    let client_in_flight =
        if late.is_empty() { 0.0 } else { late.iter().sum::<f64>() / late.len() as f64 };
    let kpa_stable_at_end = tick_at(ticks, step.end_ms - 1.0)
        .filter(|t| t.t_ms >= step.start_ms)
        .and_then(Tick::kpa_stable);
    let kpa_panic_max = ticks
        .iter()
        .filter(|t| t.t_ms >= step.start_ms && t.t_ms < step.end_ms)
        .filter_map(Tick::kpa_panic)
        .reduce(f64::max);
    Observed { client_in_flight, kpa_stable_at_end, kpa_panic_max }
}

/// The criteria of a run.
pub fn judge(plan: &Plan, samples: &[Sample], ticks: &[Tick]) -> Vec<Criterion> {
    let mut out = Vec::new();
    let failed = failures(samples, f64::NEG_INFINITY, f64::INFINITY);
    out.push(Criterion::check(
        "no request failed during scaling",
        "0 failed",
        format!("{failed} failed of {}", samples.len()),
        failed == 0 && !samples.is_empty(),
    ));
    for step in plan.steps.iter().filter(|s| s.concurrency > 0) {
        let want = expected_replicas(step.concurrency, plan.target, plan.max_replicas);
        let (lo, hi) = (want.saturating_sub(1).max(1), (want + 1).min(plan.max_replicas));
        // The last tick inside the step (one at its very end may already see the next).
        let ready = tick_at(ticks, step.end_ms - 1.0).map(Tick::ready);
        out.push(Criterion::check(
            format!("replicas at the end of c={}", step.concurrency),
            format!("{lo}..={hi} ready (ceil({}/{}) = {want})", step.concurrency, plan.target),
            ready.map_or("no tick".into(), |r| format!("{r} ready")),
            ready.is_some_and(|r| (lo..=hi).contains(&r)),
        ));
    }
    let most = ticks.iter().map(|t| t.desired().max(t.ready())).max().unwrap_or(0);
    out.push(Criterion::check(
        "within max-scale",
        format!("≤ {} replicas", plan.max_replicas),
        format!("at most {most}"),
        most <= plan.max_replicas,
    ));

    // The step to the highest concurrency: the panic window must carry it.
    if let Some(top) = plan.steps.iter().max_by_key(|s| s.concurrency) {
        let want = expected_replicas(top.concurrency, plan.target, plan.max_replicas);
        let bound = PANIC_WINDOW_S + 2.0 * TICK_S + SLACK_S;
        let reached = first_tick(ticks, top.start_ms, top.end_ms, |t| t.desired() >= want)
            .map(|t| (t - top.start_ms) / 1000.0);
        out.push(Criterion::check(
            format!("panic: {want} desired after the step to c={}", top.concurrency),
            format!("within {bound:.0} s (panic window {PANIC_WINDOW_S} s + 2 ticks + slack)"),
            reached.map_or("never".into(), |s| format!("{s:.1} s")),
            reached.is_some_and(|s| s <= bound),
        ));
    }

    // After the last step: replicas stay for the stable window, then go to zero.
    if let Some(end) = plan.steps.iter().map(|s| s.end_ms).reduce(f64::max) {
        let zero = first_tick(ticks, end, f64::INFINITY, |t| t.desired() == 0 && t.ready() == 0)
            .map(|t| (t - end) / 1000.0);
        let early = STABLE_WINDOW_S - TICK_S;
        let late = STABLE_WINDOW_S + GRACE_S + 3.0 * TICK_S + SLACK_S;
        out.push(Criterion::check(
            "replicas kept through the stable window",
            format!("none reaches 0 before {early:.0} s after the load stops"),
            zero.map_or("never reached 0".into(), |s| format!("0 at {s:.1} s")),
            zero.is_none_or(|s| s >= early),
        ));
        out.push(Criterion::check(
            "scaled to zero after the grace period",
            format!("0 replicas within {late:.0} s (stable {STABLE_WINDOW_S} s + grace {GRACE_S} s + ticks)"),
            zero.map_or("never reached 0".into(), |s| format!("0 at {s:.1} s")),
            zero.is_some_and(|s| s <= late),
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis::tests::stream;
    use crate::record::RevisionTick;
    use crate::verdict::{Outcome, all_passed};

    fn plan() -> Plan {
        let step =
            |c, s: f64| Step { concurrency: c, start_ms: s * 1000.0, end_ms: (s + 10.0) * 1000.0 };
        Plan {
            target: 4.0,
            max_replicas: 8,
            steps: vec![step(1, 0.0), step(16, 10.0), step(64, 20.0)],
        }
    }

    fn tick(t_s: f64, ready: u32, desired: u32) -> Tick {
        Tick {
            t_ms: t_s * 1000.0,
            revisions: vec![RevisionTick {
                name: "r".into(),
                ready,
                desired,
                traffic: 100,
                ..RevisionTick::default()
            }],
            in_flight: 0,
            queue_depth: 0,
        }
    }

    /// Replicas as the KPA should give them: 1, 4, 8 (panic within 2 s), zero 9 s after.
    fn good_ticks() -> Vec<Tick> {
        let mut t = Vec::new();
        for s in 0..60 {
            let s = s as f64;
            let (r, d) = match s {
                s if s < 10.0 => (1, 1),
                s if s < 12.0 => (1, 4),
                s if s < 20.0 => (4, 4),
                s if s < 22.0 => (4, 8),
                s if s < 30.0 => (8, 8),
                s if s < 39.0 => (1, 1),
                _ => (0, 0),
            };
            t.push(tick(s, r, d));
        }
        t
    }

    fn verdicts(ticks: &[Tick], samples: &[Sample]) -> Vec<(String, Outcome)> {
        judge(&plan(), samples, ticks).into_iter().map(|c| (c.name, c.outcome)).collect()
    }

    fn failed(v: &[(String, Outcome)]) -> Vec<&str> {
        v.iter().filter(|(_, o)| *o == Outcome::Fail).map(|(n, _)| n.as_str()).collect()
    }

    #[test]
    fn observed_reports_the_client_and_the_kpa_side_by_side() {
        let step = Step { concurrency: 16, start_ms: 10_000.0, end_ms: 20_000.0 };
        let ticks: Vec<Tick> = (0..30)
            .map(|s| {
                let mut t = tick(s as f64, 1, 1);
                t.in_flight = if s < 15 { 4 } else { 16 };
                t.revisions[0].kpa_stable = Some(s as f64);
                t.revisions[0].kpa_panic = Some(if s == 12 { 30.0 } else { 1.0 });
                t
            })
            .collect();
        let o = observed(&ticks, &step);
        assert_eq!(o.client_in_flight, 16.0);
        assert_eq!(o.kpa_stable_at_end, Some(19.0));
        assert_eq!(o.kpa_panic_max, Some(30.0));
        // A platform that does not report the KPA's averages: none, not zero.
        let plain = good_ticks();
        assert_eq!(observed(&plain, &step).kpa_stable_at_end, None);
    }

    #[test]
    fn expected_counts() {
        assert_eq!(expected_replicas(1, 4.0, 8), 1);
        assert_eq!(expected_replicas(16, 4.0, 8), 4);
        assert_eq!(expected_replicas(64, 4.0, 8), 8);
        assert_eq!(expected_replicas(0, 4.0, 8), 0);
    }

    #[test]
    fn a_well_behaved_platform_passes() {
        let samples = stream(0.0, 300, 100.0, "r", "r", 0);
        assert!(all_passed(&judge(&plan(), &samples, &good_ticks())));
    }

    #[test]
    fn each_criterion_fails_when_the_platform_misbehaves() {
        let samples = stream(0.0, 300, 100.0, "r", "r", 0);
        let mut bad = samples.clone();
        bad[150].status = 502;
        assert_eq!(failed(&verdicts(&good_ticks(), &bad)), ["no request failed during scaling"]);

        // Never scales past one replica.
        let flat: Vec<Tick> = good_ticks()
            .into_iter()
            .map(|t| {
                let (r, d) = if t.ready() > 0 { (1, 1) } else { (0, 0) };
                tick(t.t_ms / 1000.0, r, d)
            })
            .collect();
        let v = verdicts(&flat, &samples);
        assert!(failed(&v).contains(&"replicas at the end of c=16"), "{v:?}");
        assert!(failed(&v).iter().any(|n| n.starts_with("panic")), "{v:?}");

        // Over max-scale.
        let over: Vec<Tick> = good_ticks()
            .into_iter()
            .map(|mut t| {
                t.revisions[0].desired = t.revisions[0]
                    .desired
                    .max(if t.t_ms > 25_000.0 && t.t_ms < 30_000.0 { 12 } else { 0 });
                t
            })
            .collect();
        assert!(failed(&verdicts(&over, &samples)).contains(&"within max-scale"));

        // Slow to follow the step up (panic mode missing).
        let slow: Vec<Tick> = good_ticks()
            .into_iter()
            .map(|mut t| {
                if (20_000.0..28_000.0).contains(&t.t_ms) {
                    t.revisions[0].desired = 4;
                }
                t
            })
            .collect();
        assert!(failed(&verdicts(&slow, &samples)).iter().any(|n| n.starts_with("panic")));

        // Drops to zero at once, or never.
        let early: Vec<Tick> = good_ticks()
            .into_iter()
            .map(|t| if t.t_ms >= 31_000.0 { tick(t.t_ms / 1000.0, 0, 0) } else { t })
            .collect();
        assert_eq!(
            failed(&verdicts(&early, &samples)),
            ["replicas kept through the stable window"]
        );
        let never: Vec<Tick> = good_ticks()
            .into_iter()
            .map(|t| if t.t_ms >= 30_000.0 { tick(t.t_ms / 1000.0, 1, 1) } else { t })
            .collect();
        assert_eq!(failed(&verdicts(&never, &samples)), ["scaled to zero after the grace period"]);
    }
}
