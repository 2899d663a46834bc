//! Knative's own autoscaler tests replayed tick by tick with an explicit clock, each scenario
//! named after the Knative test it replays, and proptests of the scaling invariants.
//!
//! Two tables: the decider scenarios of `pkg/autoscaler/scaling/autoscaler_test.go`, fed (as
//! there) stable and panic values directly, and whole-revision scenarios of
//! `pkg/reconciler/autoscaling/kpa/scaler_test.go` and `multiscaler_test.go`, fed the
//! router's per-second samples, with replicas becoming ready by the next tick.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use proptest::prelude::*;

use super::annotations as ann;
use super::*;
use crate::metrics::RevisionSample;

// ---------------------------------------------------------------------------------------
// Decider scenarios (autoscaler_test.go).
// ---------------------------------------------------------------------------------------

/// autoscaler_test.go's `targetUtilization`: `TotalValue = TargetValue / 0.75`.
const TEST_UTILIZATION: f64 = 0.75;

/// The spec of `newTestAutoscalerWithScalingMetric`: panic threshold 2, rates 10 (in the
/// config), stable window 60 s, reachable.
fn knative_spec(target: f64, tbc: f64, metric: ScaleMetric) -> ScalingSpec {
    ScalingSpec {
        class: AutoscalerClass::Kpa,
        metric,
        target,
        total: target / TEST_UTILIZATION,
        target_burst_capacity: tbc,
        panic_threshold: 2.0,
        stable_window: Duration::from_secs(60),
        panic_window: Duration::from_secs(6),
        scale_down_delay: Duration::ZERO,
        min_scale: 0,
        max_scale: 0,
        initial_scale: 1,
        activation_scale: 0,
        scale_to_zero_pod_retention_period: Duration::ZERO,
        aggregation: Aggregation::Linear,
        activation_timeout: DEFAULT_ACTIVATION_TIMEOUT,
    }
}

fn knative_config(up: f64, down: f64) -> AutoscalerConfig {
    AutoscalerConfig { max_scale_up_rate: up, max_scale_down_rate: down, ..Default::default() }
}

/// autoscaler_test.go's `expectedEBC`.
fn expected_ebc(tot_cap: f64, target_bc: f64, recorded: f64, pods: f64) -> i64 {
    (tot_cap / TEST_UTILIZATION * pods - target_bc - recorded).floor() as i64
}

#[derive(Clone)]
enum Change {
    Spec(ScalingSpec),
    Unreachable,
}

#[derive(Clone)]
struct Step {
    /// Seconds from the scenario's start.
    at: f64,
    ready: u32,
    stable: f64,
    panic: f64,
    want: u32,
    ebc: Option<i64>,
    panicking: Option<bool>,
    before: Option<Change>,
}

fn step(at: f64, ready: u32, stable: f64, panic: f64, want: u32) -> Step {
    Step { at, ready, stable, panic, want, ebc: None, panicking: None, before: None }
}

impl Step {
    fn ebc(mut self, ebc: i64) -> Step {
        self.ebc = Some(ebc);
        self
    }
    fn panicking(mut self, p: bool) -> Step {
        self.panicking = Some(p);
        self
    }
    fn before(mut self, c: Change) -> Step {
        self.before = Some(c);
        self
    }
}

struct DeciderCase {
    name: &'static str,
    config: AutoscalerConfig,
    spec: ScalingSpec,
    /// `resume` at (seconds from start, ready): Knative's start-in-panic and `prepFunc`
    /// panic state (`panicTime = now - 5s; maxPanicPods = ready`).
    resume: Option<(f64, u32)>,
    steps: Vec<Step>,
}

fn decider_cases() -> Vec<DeciderCase> {
    use ScaleMetric::{Concurrency as C, Rps};
    let rates = knative_config(10.0, 10.0);
    let case =
        |name, spec, steps| DeciderCase { name, config: rates.clone(), spec, resume: None, steps };
    let delay_spec = || ScalingSpec {
        total: 0.0,
        target_burst_capacity: 0.0,
        panic_threshold: 100.0,
        scale_down_delay: Duration::from_secs(300),
        ..knative_spec(10.0, 0.0, C)
    };
    let min = 60.0;
    vec![
        case(
            "TestAutoscalerScaleDownDelay/simple+gradual",
            delay_spec(),
            vec![
                step(2.0, 0, 40.0, 40.0, 4),
                // Five minutes at reduced load: less than the delay, no scale-down.
                step(5.0 * min, 0, 0.0, 0.0, 4),
                step(5.0 * min + 2.0, 0, 0.0, 0.0, 0),
                // gradual
                step(9.0 * min, 0, 40.0, 40.0, 4),
                step(10.0 * min, 0, 30.0, 30.0, 4),
                step(11.0 * min, 0, 0.0, 0.0, 4),
                step(14.0 * min, 0, 0.0, 0.0, 3),
                step(15.0 * min, 0, 0.0, 0.0, 0),
            ],
        ),
        case(
            "TestAutoscalerScaleDownDelayNotReachable",
            delay_spec(),
            vec![
                step(2.0, 0, 40.0, 40.0, 4),
                step(min, 0, 0.0, 0.0, 4),
                // Another revision took the traffic: the delay no longer holds.
                step(min + 2.0, 0, 0.0, 0.0, 0).before(Change::Unreachable),
            ],
        ),
        case(
            "TestAutoscalerScaleDownDelayZero",
            ScalingSpec { scale_down_delay: Duration::ZERO, ..delay_spec() },
            vec![step(0.0, 0, 40.0, 40.0, 4), step(0.5, 0, 20.0, 20.0, 2)],
        ),
        case(
            "TestAutoscalerMetrics",
            knative_spec(10.0, 100.0, C),
            vec![
                step(0.0, 1, 50.0, 50.0, 5)
                    .ebc(expected_ebc(10.0, 100.0, 50.0, 1.0))
                    .panicking(true),
            ],
        ),
        case(
            "TestAutoscalerMetricsWithRPS",
            knative_spec(10.0, 100.0, Rps),
            vec![
                step(61.0, 1, 100.0, 99.0, 10)
                    .ebc(expected_ebc(10.0, 100.0, 99.0, 1.0))
                    .panicking(true),
            ],
        ),
        case(
            "TestAutoscalerStableModeIncreaseWithConcurrencyDefault",
            knative_spec(10.0, 101.0, C),
            vec![
                step(0.0, 1, 50.0, 10.0, 5).ebc(expected_ebc(10.0, 101.0, 10.0, 1.0)),
                step(0.0, 1, 100.0, 10.0, 10).ebc(expected_ebc(10.0, 101.0, 10.0, 1.0)),
            ],
        ),
        case(
            "TestAutoscalerStableModeIncreaseWithRPS",
            knative_spec(10.0, 101.0, Rps),
            vec![
                step(0.0, 1, 50.0, 50.0, 5).ebc(expected_ebc(10.0, 101.0, 50.0, 1.0)),
                step(0.0, 1, 100.0, 99.0, 10).ebc(expected_ebc(10.0, 101.0, 99.0, 1.0)),
            ],
        ),
        case(
            "TestAutoscalerUnpanicAfterSlowIncrease",
            knative_spec(1.0, 98.0, C),
            vec![
                step(0.0, 10, 11.0, 25.0, 25)
                    .ebc(expected_ebc(1.0, 98.0, 25.0, 10.0))
                    .panicking(true),
                // Half a stable window later, one pod added per cycle: +15.
                step(30.0, 40, 30.0, 41.0, 41)
                    .ebc(expected_ebc(1.0, 98.0, 41.0, 40.0))
                    .panicking(true),
                // A stable window and a tick after the panic began: it ends.
                step(62.0, 55, 50.0, 56.0, 50)
                    .ebc(expected_ebc(1.0, 98.0, 56.0, 55.0))
                    .panicking(false),
            ],
        ),
        case(
            "TestAutoscalerExtendPanicWindow",
            knative_spec(1.0, 98.0, C),
            vec![
                step(0.0, 10, 11.0, 25.0, 25).panicking(true),
                step(30.0, 40, 30.0, 80.0, 80)
                    .ebc(expected_ebc(1.0, 98.0, 80.0, 40.0))
                    .panicking(true),
                // The panic was extended at 30 s: still panicking at 62 s, never scaling down.
                step(62.0, 80, 30.0, 30.0, 80).panicking(true),
                step(91.0, 80, 30.0, 30.0, 30).panicking(false),
            ],
        ),
        case(
            "TestAutoscalerStableModeDecrease",
            knative_spec(10.0, 98.0, C),
            vec![
                step(0.0, 8, 100.0, 100.0, 10).ebc(expected_ebc(10.0, 98.0, 100.0, 8.0)),
                step(0.0, 8, 50.0, 50.0, 5).ebc(expected_ebc(10.0, 98.0, 50.0, 8.0)),
            ],
        ),
        case(
            "TestAutoscalerStableModeNoTrafficScaleToZero",
            knative_spec(10.0, 75.0, C),
            vec![
                step(0.0, 1, 1.0, 0.0, 1).ebc(expected_ebc(10.0, 75.0, 0.0, 1.0)),
                step(0.0, 1, 0.0, 0.0, 0).ebc(expected_ebc(10.0, 75.0, 0.0, 1.0)),
            ],
        ),
        case(
            "TestAutoscalerActivationScale",
            ScalingSpec { activation_scale: 2, ..knative_spec(10.0, 75.0, C) },
            vec![step(0.0, 1, 0.0, 0.0, 0), step(0.0, 1, 1.0, 0.0, 2)],
        ),
        case(
            "TestAutoscalerPanicModeExponentialTrackAndStabilize",
            knative_spec(1.0, 101.0, C),
            vec![
                step(0.0, 1, 6.0, 6.0, 6).ebc(expected_ebc(1.0, 101.0, 6.0, 1.0)),
                step(0.0, 6, 36.0, 36.0, 36)
                    .ebc(expected_ebc(1.0, 101.0, 36.0, 6.0))
                    .panicking(true),
                step(1.0, 36, 216.0, 216.0, 216).ebc(expected_ebc(1.0, 101.0, 216.0, 36.0)),
                step(1.0, 216, 1296.0, 1296.0, 1296).ebc(expected_ebc(1.0, 101.0, 1296.0, 216.0)),
                step(2.0, 1296, 1296.0, 1296.0, 1296).ebc(expected_ebc(1.0, 101.0, 1296.0, 1296.0)),
            ],
        ),
        // TestAutoscalerScale's table.
        case(
            "TestAutoscalerScale/AutoscalerNoDataAtZeroNoAutoscale",
            knative_spec(10.0, 100.0, C),
            vec![step(0.0, 1, 0.0, 0.0, 0).ebc(expected_ebc(10.0, 100.0, 0.0, 1.0))],
        ),
        case(
            "TestAutoscalerScale/AutoscalerStableModeUnlimitedTBC",
            knative_spec(181.0, -1.0, C),
            vec![step(0.0, 1, 21.0, 26.0, 1).ebc(-1)],
        ),
        case(
            "TestAutoscalerScale/Autoscaler0TBC",
            knative_spec(10.0, 0.0, C),
            vec![step(0.0, 1, 50.0, 49.0, 5).ebc(0)],
        ),
        case(
            "TestAutoscalerScale/AutoscalerStableModeNoChange",
            knative_spec(10.0, 100.0, C),
            vec![step(0.0, 1, 50.0, 50.0, 5).ebc(expected_ebc(10.0, 100.0, 50.0, 1.0))],
        ),
        DeciderCase {
            resume: Some((-5.0, 5)),
            ..case(
                "TestAutoscalerScale/AutoscalerPanicStableLargerThanPanic",
                knative_spec(1.0, 100.0, C),
                vec![
                    step(0.0, 5, 50.0, 30.0, 50)
                        .ebc(expected_ebc(1.0, 100.0, 30.0, 5.0))
                        .panicking(true),
                ],
            )
        },
        DeciderCase {
            resume: Some((-5.0, 5)),
            ..case(
                "TestAutoscalerScale/AutoscalerPanicStableLessThanPanic",
                knative_spec(1.0, 100.0, C),
                vec![
                    step(0.0, 5, 20.0, 30.0, 30)
                        .ebc(expected_ebc(1.0, 100.0, 30.0, 5.0))
                        .panicking(true),
                ],
            )
        },
        case(
            "TestAutoscalerScale/AutoscalerStableModeNoChangeAlreadyScaled",
            knative_spec(10.0, 100.0, C),
            vec![step(0.0, 5, 50.0, 50.0, 5).ebc(expected_ebc(10.0, 100.0, 50.0, 5.0))],
        ),
        DeciderCase {
            config: knative_config(1.1, 10.0),
            ..case(
                "TestAutoscalerScale/AutoscalerStableModeIncreaseWithSmallScaleUpRate",
                knative_spec(1.0, 1982.0, C),
                vec![step(0.0, 2, 3.0, 3.1, 3).ebc(expected_ebc(1.0, 1982.0, 3.1, 2.0))],
            )
        },
        DeciderCase {
            config: knative_config(10.0, 1.1),
            ..case(
                "TestAutoscalerScale/AutoscalerStableModeDecreaseWithSmallScaleDownRate",
                knative_spec(10.0, 1982.0, C),
                vec![step(0.0, 100, 1.0, 1.0, 90).ebc(expected_ebc(10.0, 1982.0, 1.0, 100.0))],
            )
        },
        DeciderCase {
            config: knative_config(10.0, 1.1),
            ..case(
                "TestAutoscalerScale/AutoscalerStableModeDecreaseNonReachable",
                knative_spec(10.0, 1982.0, C),
                vec![step(0.0, 100, 1.0, 1.0, 1).before(Change::Unreachable)],
            )
        },
        case(
            "TestAutoscalerScale/AutoscalerPanicModeDoublePodCount",
            knative_spec(10.0, 84.0, C),
            vec![
                step(0.0, 1, 50.0, 100.0, 10)
                    .ebc(expected_ebc(10.0, 84.0, 100.0, 1.0))
                    .panicking(true),
            ],
        ),
        case(
            "TestAutoscalerPanicThenUnPanicScaleDown",
            knative_spec(10.0, 93.0, C),
            vec![
                step(0.0, 1, 100.0, 100.0, 10).ebc(expected_ebc(10.0, 93.0, 100.0, 1.0)),
                step(0.0, 10, 100.0, 1000.0, 100).ebc(expected_ebc(10.0, 93.0, 1000.0, 10.0)),
                // Traffic dropped off; still panicking, so the scale stays.
                step(30.0, 10, 1.0, 1.0, 100)
                    .ebc(expected_ebc(10.0, 93.0, 1.0, 10.0))
                    .panicking(true),
                // Scale down after the stable window.
                step(61.0, 10, 1.0, 1.0, 1).panicking(false),
            ],
        ),
        case(
            "TestAutoscalerRateLimitScaleUp",
            knative_spec(10.0, 61.0, C),
            vec![
                // Needs 100 replicas, but only ×10 per tick.
                step(0.0, 1, 1000.0, 1001.0, 10).ebc(expected_ebc(10.0, 61.0, 1001.0, 1.0)),
                step(0.0, 10, 1000.0, 1001.0, 100).ebc(expected_ebc(10.0, 61.0, 1001.0, 10.0)),
            ],
        ),
        case(
            "TestAutoscalerRateLimitScaleDown",
            knative_spec(10.0, 61.0, C),
            vec![
                // Needs 1, but only ÷10 per tick.
                step(0.0, 100, 1.0, 1.0, 10).ebc(expected_ebc(10.0, 61.0, 1.0, 100.0)),
                step(0.0, 10, 1.0, 1.0, 1).ebc(expected_ebc(10.0, 61.0, 1.0, 10.0)),
            ],
        ),
        case(
            "TestAutoscalerUseOnePodAsMinimumIfEndpointsNotFound",
            knative_spec(10.0, 81.0, C),
            vec![step(0.0, 0, 1000.0, 888.0, 10).ebc(expected_ebc(10.0, 81.0, 888.0, 0.0))],
        ),
        case(
            "TestAutoscalerUpdateTarget",
            knative_spec(10.0, 77.0, C),
            vec![
                step(0.0, 1, 100.0, 101.0, 10).ebc(expected_ebc(10.0, 77.0, 101.0, 1.0)),
                step(0.0, 10, 100.0, 101.0, 100)
                    .ebc(expected_ebc(1.0, 71.0, 101.0, 10.0))
                    .before(Change::Spec(knative_spec(1.0, 71.0, C))),
            ],
        ),
        // TestStartInPanicMode: created with 0 or 1 ready, no panic; with 2, panic.
        DeciderCase {
            resume: Some((0.0, 1)),
            ..case(
                "TestStartInPanicMode/1",
                ScalingSpec {
                    total: 120.0,
                    target_burst_capacity: 11.0,
                    panic_threshold: 2.2,
                    ..knative_spec(100.0, 11.0, C)
                },
                vec![step(0.0, 1, 10.0, 10.0, 1).panicking(false)],
            )
        },
        DeciderCase {
            resume: Some((0.0, 2)),
            ..case(
                "TestStartInPanicMode/2",
                ScalingSpec {
                    total: 120.0,
                    target_burst_capacity: 11.0,
                    panic_threshold: 2.2,
                    ..knative_spec(100.0, 11.0, C)
                },
                // Panicking from the start: the two replicas stay though one would do.
                vec![step(0.0, 2, 10.0, 10.0, 2).panicking(true)],
            )
        },
    ]
}

#[test]
fn knative_decider_scenarios() {
    let t0 = Instant::now() + Duration::from_secs(3600);
    let at = |s: f64| {
        if s >= 0.0 { t0 + Duration::from_secs_f64(s) } else { t0 - Duration::from_secs_f64(-s) }
    };
    for case in decider_cases() {
        let mut a = match case.resume {
            Some((s, ready)) => Autoscaler::resume(&case.config, case.spec.clone(), at(s), ready),
            None => Autoscaler::new(&case.config, case.spec.clone(), t0),
        };
        for (i, st) in case.steps.iter().enumerate() {
            match &st.before {
                Some(Change::Spec(spec)) => a.update(spec.clone()),
                Some(Change::Unreachable) => a.set_reachable(false),
                None => {}
            }
            a.fake_observed = Some((st.stable, st.panic));
            let d = a.tick(at(st.at), st.ready, 0);
            let ctx = format!("{} step {i} at {}s", case.name, st.at);
            assert_eq!(d.recommended, st.want, "{ctx}: {d:?}");
            if let Some(ebc) = st.ebc {
                // Knative compares the EBC within ±1 (float rounding across platforms).
                assert!(
                    (d.excess_burst_capacity - ebc).abs() <= 1,
                    "{ctx}: ebc {} want {ebc}",
                    d.excess_burst_capacity
                );
            }
            if let Some(p) = st.panicking {
                assert_eq!(d.panicking, p, "{ctx}: panicking");
            }
        }
    }
}

// TestMultiscalerCreateTBC42 / TestMultiscalerCreateTBCMinus1: the EBC before any decision.
#[test]
fn knative_multiscaler_create_ebc() {
    let now = Instant::now();
    let config = AutoscalerConfig::default();
    let spec = ScalingSpec {
        initial_scale: 2,
        total: 25.0,
        target_burst_capacity: 42.0,
        ..knative_spec(10.0, 42.0, ScaleMetric::Concurrency)
    };
    assert_eq!(Autoscaler::new(&config, spec, now).excess_burst_capacity(), 50 - 42);
    let spec = knative_spec(10.0, -1.0, ScaleMetric::Concurrency);
    assert_eq!(Autoscaler::new(&config, spec, now).excess_burst_capacity(), -1);
}

// TestComputeActivatorNum (kpa_test.go): total 100, activator capacity 100.
#[test]
fn knative_compute_activator_num() {
    let now = Instant::now();
    let config = AutoscalerConfig::default();
    for (name, pods, tbc, want) in [
        ("default", 0, 200.0, 2),
        ("1 pod", 1, 200.0, 3),
        ("tbc = 0", 100, 0.0, 2),
        ("tbc = -1", 5, -1.0, 5),
        ("many pods", 15, 200.0, 17),
    ] {
        let spec =
            ScalingSpec { total: 100.0, ..knative_spec(70.0, tbc, ScaleMetric::Concurrency) };
        assert_eq!(Autoscaler::new(&config, spec, now).activators(pods), want, "{name}");
    }
}

// Router events: a sample records, an activation decides at once.
#[test]
fn router_events_feed_the_autoscaler() {
    use crate::metrics::RouterEvent;
    let t0 = Instant::now();
    let config = AutoscalerConfig::default();
    let mut a = Autoscaler::new(&config, knative_spec(10.0, 0.0, ScaleMetric::Concurrency), t0);
    let sample = RevisionSample {
        revision: "r".into(),
        at: t0 + Duration::from_secs(1),
        interval: Duration::from_secs(1),
        average_concurrency: 25.0,
        requests: 25,
    };
    assert_eq!(a.on_event(&RouterEvent::Sample(sample)), None);
    let d = a.tick(t0 + Duration::from_secs(2), 1, 0);
    assert_eq!(d.stable_value, 25.0);
    let at = t0 + Duration::from_secs(3);
    let d = a.on_event(&RouterEvent::Activation { revision: "r".into(), at, queued: 1 }).unwrap();
    assert_eq!(d.at, at);
    assert!(d.desired >= 1);
}

// ---------------------------------------------------------------------------------------
// Whole-revision scenarios: samples every second, a tick every two seconds.
// ---------------------------------------------------------------------------------------

#[derive(Clone, Copy, Default)]
struct Expect {
    desired: Option<u32>,
    reason: Option<Reason>,
    activity: Option<Activity>,
    panicking: Option<bool>,
    in_path: Option<bool>,
    ebc: Option<i64>,
}

fn want(desired: u32, reason: Reason) -> Expect {
    Expect { desired: Some(desired), reason: Some(reason), ..Default::default() }
}

impl Expect {
    fn activity(mut self, a: Activity) -> Expect {
        self.activity = Some(a);
        self
    }
    fn panicking(mut self, p: bool) -> Expect {
        self.panicking = Some(p);
        self
    }
    fn in_path(mut self, p: bool) -> Expect {
        self.in_path = Some(p);
        self
    }
    fn ebc(mut self, e: i64) -> Expect {
        self.ebc = Some(e);
        self
    }
}

struct RevisionCase {
    name: &'static str,
    config: AutoscalerConfig,
    annotations: &'static [(&'static str, &'static str)],
    component: ComponentScaling,
    reachable: bool,
    /// The revision's load in second `s`: (average concurrency, requests).
    load: fn(u64) -> (f64, u64),
    /// Ready replicas at second `s` given the last desired scale (default: all of them).
    ready: fn(u64, u32) -> u32,
    /// Requests in flight at second `s`.
    in_flight: fn(u64) -> u32,
    /// Seconds at which a request finds no ready replica.
    activations: &'static [u64],
    checks: Vec<(u64, Expect)>,
}

fn idle(_: u64) -> (f64, u64) {
    (0.0, 0)
}
fn first_ten_seconds(s: u64) -> (f64, u64) {
    if (1..=10).contains(&s) { (1.0, 1) } else { (0.0, 0) }
}
fn all_ready(_: u64, desired: u32) -> u32 {
    desired
}
fn none_in_flight(_: u64) -> u32 {
    0
}

fn revision_case(name: &'static str, checks: Vec<(u64, Expect)>) -> RevisionCase {
    RevisionCase {
        name,
        config: AutoscalerConfig::default(),
        annotations: &[],
        component: ComponentScaling::default(),
        reachable: true,
        load: first_ten_seconds,
        ready: all_ready,
        in_flight: none_in_flight,
        activations: &[],
        checks,
    }
}

fn revision_cases() -> Vec<RevisionCase> {
    use Activity::{Active, Inactive};
    use Reason::*;
    let tbc0: &'static [(&str, &str)] = &[(ann::TARGET_BURST_CAPACITY, "0")];
    vec![
        // Traffic for ten seconds, then none. With TBC 0 the router left the path while the
        // replica served, so after the stable window the last replica waits out the grace.
        RevisionCase {
            annotations: tbc0,
            ..revision_case(
                "TestScaler/waits to scale to zero after idle period + scale to zero after grace period",
                vec![
                    // Created activating: the scale holds until the condition turns active.
                    (0, want(1, Activating).activity(Active)),
                    (10, want(1, Stable).activity(Active).in_path(false).ebc(0)),
                    (68, want(1, Stable)),
                    // A stable window without traffic: inactive, the router back in the path.
                    (70, want(1, Deactivating).activity(Inactive).in_path(true)),
                    (98, want(1, GraceWait).activity(Inactive)),
                    (100, want(0, ScaledToZero).activity(Inactive)),
                    (200, want(0, ScaledToZero)),
                ],
            )
        },
        // Default TBC 211 with one replica: EBC = 100 - 211 < 0, so the router has been in
        // the path all along and the grace period is already served (Knative's fast path).
        revision_case(
            "TestScaler/waits to scale to zero (just before grace period, sks in proxy long)",
            vec![
                (10, want(1, Stable).in_path(true).ebc(100 - 211 - 1)),
                (70, want(1, Deactivating).activity(Inactive)),
                (72, want(0, ScaledToZero)),
            ],
        ),
        RevisionCase {
            config: AutoscalerConfig {
                scale_to_zero_pod_retention_period: Duration::from_secs(60),
                ..Default::default()
            },
            ..revision_case(
                "TestScaler/can't scale to zero after grace period, but before last pod retention",
                vec![
                    (70, want(1, Deactivating)),
                    (100, want(1, RetentionWait)),
                    (128, want(1, RetentionWait)),
                    (130, want(0, ScaledToZero)),
                ],
            )
        },
        RevisionCase {
            config: AutoscalerConfig {
                scale_to_zero_pod_retention_period: Duration::from_secs(60),
                ..Default::default()
            },
            annotations: &[
                (ann::SCALE_TO_ZERO_POD_RETENTION_PERIOD, "0"),
                (ann::TARGET_BURST_CAPACITY, "0"),
            ],
            ..revision_case(
                "TestScaler/can scale to zero after grace period, but 0 PA retention",
                vec![(98, want(1, GraceWait)), (100, want(0, ScaledToZero))],
            )
        },
        RevisionCase {
            config: AutoscalerConfig {
                scale_to_zero_pod_retention_period: Duration::from_secs(300),
                ..Default::default()
            },
            annotations: tbc0,
            reachable: false,
            ..revision_case(
                "TestScaler/scale to zero ignore last pod retention if revision is unreachable",
                vec![(70, want(1, Deactivating)), (100, want(0, ScaledToZero))],
            )
        },
        RevisionCase {
            annotations: &[(ann::MIN_SCALE, "2")],
            load: idle,
            ..revision_case(
                "TestScaler/scale down to minScale before grace period",
                vec![
                    (0, want(2, MinScale).activity(Activity::Activating)),
                    (2, want(2, MinScale).activity(Active)),
                    (300, want(2, MinScale).activity(Active)),
                ],
            )
        },
        RevisionCase {
            annotations: &[(ann::INITIAL_SCALE, "10")],
            load: idle,
            ..revision_case(
                "TestScaler/scale to 1 waiting for idle expires",
                vec![
                    // The initial scale holds until it has been ready once.
                    (0, want(10, InitialScale).activity(Active)),
                    // Then down by at most max-scale-down-rate (2) per tick.
                    (2, want(5, ScaleDownRate).activity(Active)),
                    (4, want(2, ScaleDownRate)),
                    (6, want(1, ScaleDownRate)),
                    // No traffic, active for less than a stable window: one replica.
                    (8, want(1, IdleWait).activity(Active)),
                    (58, want(1, IdleWait)),
                    (60, want(1, Deactivating).activity(Inactive)),
                    (62, want(0, ScaledToZero)),
                ],
            )
        },
        RevisionCase {
            load: idle,
            ready: |_, _| 0,
            ..revision_case(
                "TestScaler/waits to scale to zero while activating until after deadline exceeded",
                vec![
                    (0, want(1, Activating).activity(Activity::Activating).in_path(true)),
                    (630, want(1, Activating).activity(Activity::Activating)),
                    // TestScaler/scale to zero while activating after deadline exceeded.
                    (632, want(0, ActivationTimedOut).activity(Inactive)),
                ],
            )
        },
        RevisionCase {
            config: AutoscalerConfig { enable_scale_to_zero: false, ..Default::default() },
            ..revision_case(
                "TestScaler/scale to zero disabled",
                vec![(70, want(1, ScaleToZeroDisabled)), (600, want(1, ScaleToZeroDisabled))],
            )
        },
        RevisionCase {
            annotations: &[(ann::MAX_SCALE, "3")],
            load: |_| (1000.0, 1000),
            ..revision_case(
                "TestScaler/scales up to maxScale",
                vec![(2, want(3, MaxScale)), (60, want(3, MaxScale))],
            )
        },
        // Scaled to zero (as in the sks-in-proxy-long case), then a request arrives at 100 s:
        // the activation asks for a replica at once; it is ready by the next tick.
        RevisionCase {
            activations: &[101],
            load: |s| {
                if (1..=10).contains(&s) || (101..=104).contains(&s) { (1.0, 1) } else { (0.0, 0) }
            },
            ..revision_case(
                "TestMultiScalerScaleFromZero",
                vec![
                    (100, want(0, ScaledToZero).activity(Inactive)),
                    (101, want(1, Activation).activity(Activity::Activating).in_path(true)),
                    (102, want(1, Stable).activity(Active)),
                    (160, want(1, Stable).activity(Active)),
                ],
            )
        },
        // activation-scale 3: any load means three replicas. Three ready leave room for the
        // burst (EBC 300 − 211 ≥ 0), so the router is out of the path until the revision
        // turns inactive at 72 s, and the last replica waits out the whole grace period.
        RevisionCase {
            activations: &[111],
            annotations: &[(ann::ACTIVATION_SCALE, "3")],
            load: |s| if (1..=10).contains(&s) || s == 111 { (1.0, 1) } else { (0.0, 0) },
            ..revision_case(
                "TestAutoscalerActivationScale (from zero)",
                vec![
                    (4, want(3, ActivationScale).in_path(false)),
                    (70, want(1, ScaleDownRate)),
                    (72, want(1, Deactivating).in_path(true)),
                    (100, want(1, GraceWait)),
                    (102, want(0, ScaledToZero)),
                    (111, want(3, ActivationScale).activity(Activity::Activating)),
                    (112, want(3, ActivationScale).activity(Active)),
                ],
            )
        },
        // A request in flight (longer than the stable window, so the samples stopped showing
        // it) keeps the last replica.
        RevisionCase {
            in_flight: |s| u32::from((60..=120).contains(&s)),
            ..revision_case(
                "no scale to zero with a request in flight",
                vec![
                    (70, want(1, InFlight).activity(Active)),
                    (120, want(1, InFlight).activity(Active)),
                    // The request is done: the window has long been empty.
                    (122, want(1, Deactivating)),
                    (124, want(0, ScaledToZero)),
                ],
            )
        },
        // rps metric: 280 requests per second over a 140 rps target (200 × 70 %).
        RevisionCase {
            annotations: &[(ann::METRIC, "rps")],
            load: |s| if s >= 1 { (0.5, 280) } else { (0.0, 0) },
            ..revision_case(
                "TestAutoscalerStableModeIncreaseWithRPS (samples)",
                vec![
                    // 280 over 140 with the one initial replica: twice the capacity, panic.
                    (2, want(2, Panic).panicking(true)),
                    (64, want(2, Stable).panicking(false)),
                    (120, want(2, Stable).panicking(false)),
                ],
            )
        },
        // Panic entry and exit from samples: 10 per replica at target 10, then a burst of 50
        // for 10 s. The panic window sees it first; the stable window follows; no scale-down
        // until a stable window after the last over-threshold tick.
        RevisionCase {
            annotations: &[(ann::TARGET, "10"), (ann::TARGET_UTILIZATION_PERCENTAGE, "100")],
            load: |s| match s {
                0 => (0.0, 0),
                61..=70 => (50.0, 50),
                _ => (10.0, 10),
            },
            ..revision_case(
                "TestAutoscalerPanicThenUnPanicScaleDown (samples)",
                vec![
                    (60, want(1, Stable).panicking(false)),
                    // (5×10 + 2×50)/6 → 25 → 3 replicas wanted of 1 ready: panic.
                    (62, want(3, Panic).panicking(true)),
                    (70, want(5, Panic).panicking(true)),
                    // Load back at 10 from 71 s; the panic window shows it at 76 s, and the
                    // stable one still averages above 10: no scale-down in panic.
                    (80, want(5, Panic).panicking(true)),
                    // The last over-threshold tick was at 62 s: panic lasts to 122 s.
                    (122, want(5, Panic).panicking(true)),
                    // The stable window still holds six seconds of 50: 14 → 2 replicas.
                    (124, want(2, Stable).panicking(false)),
                    (132, want(1, Stable)),
                ],
            )
        },
        // scale-down-delay 60 s (30 ticks): three replicas for the load of 210 over 30 s;
        // each lower decision waits until the larger ones have been out of the delay window
        // for a minute, then the scale steps down by max-scale-down-rate.
        RevisionCase {
            annotations: &[
                (ann::SCALE_DOWN_DELAY, "60s"),
                (ann::PANIC_THRESHOLD_PERCENTAGE, "1000"),
            ],
            load: |s| if (1..=30).contains(&s) { (210.0, 210) } else { (0.0, 0) },
            ..revision_case(
                "TestAutoscalerScaleDownDelay (samples)",
                vec![
                    (4, want(3, Stable).panicking(false)),
                    (42, want(3, Stable)),
                    // 6300 / 45 buckets = 140: two replicas would do.
                    (44, want(3, ScaleDownDelay)),
                    (100, want(3, ScaleDownDelay)),
                    (102, want(2, ScaleDownDelay)),
                    (126, want(2, ScaleDownDelay)),
                    // Two ready: the rate alone allows no lower than one.
                    (128, want(1, ScaleDownRate)),
                    (130, want(1, ScaleDownDelay)),
                    (186, want(1, ScaleDownDelay)),
                    (188, want(1, Deactivating).activity(Inactive)),
                    (190, want(0, ScaledToZero)),
                ],
            )
        },
        // EBC: ready × 100 − 211 − panic load decides whether the router stays in the path.
        RevisionCase {
            load: |_| (150.0, 150),
            ..revision_case(
                "TestComputeActivatorNum / EBC (samples)",
                vec![
                    // 150 in flight over target 70 with one replica: panic, 3 replicas; then
                    // EBC 300 − 211 − 150 < 0: the router stays in the path.
                    (0, want(3, Panic).panicking(true)),
                    (6, want(3, Panic).in_path(true).ebc(-61)),
                    (62, want(3, Stable).panicking(false).in_path(true).ebc(-61)),
                ],
            )
        },
        RevisionCase {
            load: |_| (50.0, 50),
            annotations: &[(ann::MIN_SCALE, "3")],
            ..revision_case(
                "TestAutoscalerScale/AutoscalerStableModeNoChangeAlreadyScaled (EBC ≥ 0)",
                vec![(6, want(3, MinScale).in_path(false).ebc(300 - 211 - 50))],
            )
        },
    ]
}

#[test]
fn knative_revision_scenarios() {
    let t0 = Instant::now();
    let mut failures = Vec::new();
    for case in revision_cases() {
        let anns: BTreeMap<String, String> =
            case.annotations.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        let spec = ScalingSpec::from_component(
            &case.config,
            &case.component,
            &anns,
            &ScalingOptions::default(),
        )
        .unwrap_or_else(|e| panic!("{}: {e}", case.name));
        let mut a = Autoscaler::new(&case.config, spec, t0);
        a.set_reachable(case.reachable);
        let end = case.checks.iter().map(|(s, _)| *s).max().unwrap_or(0);
        let mut desired = a.desired();
        let mut seen = 0;
        for s in 0..=end {
            let now = t0 + Duration::from_secs(s);
            let (concurrency, requests) = (case.load)(s);
            a.record(&RevisionSample {
                revision: "r".into(),
                at: now,
                interval: Duration::from_secs(1),
                average_concurrency: concurrency,
                requests,
            });
            let decision = if case.activations.contains(&s) {
                Some(a.activate(now))
            } else if s % 2 == 0 {
                Some(a.tick(now, (case.ready)(s, desired), (case.in_flight)(s)))
            } else {
                None
            };
            let Some(d) = decision else { continue };
            desired = d.desired;
            for (_, e) in case.checks.iter().filter(|(at, _)| *at == s) {
                seen += 1;
                let ctx = format!("{} at {s}s: {d:?}", case.name);
                let mut check = |field: &str, want: Option<String>, got: String| {
                    if let Some(w) = want
                        && w != got
                    {
                        failures.push(format!("{field}: want {w}, {ctx}"));
                    }
                };
                let show = |v: &dyn std::fmt::Debug| format!("{v:?}");
                check("desired", e.desired.map(|w| show(&w)), show(&d.desired));
                check("reason", e.reason.map(|w| show(&w)), show(&d.reason));
                check("activity", e.activity.map(|w| show(&w)), show(&d.activity));
                check("panicking", e.panicking.map(|w| show(&w)), show(&d.panicking));
                check("activator in path", e.in_path.map(|w| show(&w)), show(&d.activator_in_path));
                check("ebc", e.ebc.map(|w| show(&w)), show(&d.excess_burst_capacity));
            }
        }
        assert_eq!(
            seen,
            case.checks.len(),
            "{}: a check fell on a second without a decision",
            case.name
        );
    }
    assert!(failures.is_empty(), "{} failures:\n{}", failures.len(), failures.join("\n"));
}

// HPA formula for the cpu and memory metrics.
#[test]
fn hpa_utilisation_scenario() {
    let t0 = Instant::now();
    let config = AutoscalerConfig::default();
    let component = ComponentScaling {
        scale_metric: Some(ScaleMetric::Cpu),
        scale_target: Some(80),
        min_replicas: Some(1),
        max_replicas: Some(6),
        ..Default::default()
    };
    let spec = ScalingSpec::from_component(
        &config,
        &component,
        &BTreeMap::new(),
        &ScalingOptions::default(),
    )
    .unwrap();
    let mut a = Autoscaler::new(&config, spec, t0);
    let at = |s| t0 + Duration::from_secs(s);
    // Nothing reported yet: hold.
    let d = a.tick(at(0), 4, 0);
    assert_eq!((d.desired, d.reason), (4, Reason::NoUtilization));
    // 100 % of 80 %: ceil(4 × 1.25) = 5.
    a.record_utilization(at(1), 100.0);
    let d = a.tick(at(2), 4, 0);
    assert_eq!((d.desired, d.reason), (5, Reason::Utilization));
    // 85 %: within 10 % of the target, no change.
    a.record_utilization(at(3), 85.0);
    let d = a.tick(at(4), 5, 0);
    assert_eq!((d.desired, d.reason), (5, Reason::WithinTolerance));
    // 200 %: ceil(5 × 2.5) = 13, capped at 6.
    a.record_utilization(at(5), 200.0);
    let d = a.tick(at(6), 5, 0);
    assert_eq!((d.desired, d.reason), (6, Reason::MaxScale));
    // 5 %: ceil(6 × 0.0625) = 1; never below one replica.
    a.record_utilization(at(7), 5.0);
    let d = a.tick(at(8), 6, 0);
    assert_eq!((d.desired, d.reason), (1, Reason::Utilization));
    a.record_utilization(at(9), 0.0);
    let d = a.tick(at(10), 1, 0);
    assert_eq!((d.desired, d.reason), (1, Reason::MinScale));
    assert!(!d.panicking);
}

// ---------------------------------------------------------------------------------------
// Invariants.
// ---------------------------------------------------------------------------------------

#[derive(Clone, Debug)]
enum Event {
    Tick { dt: u64, ready: u32, in_flight: u32 },
    Sample { concurrency: f64 },
    Activate,
}

fn event() -> impl Strategy<Value = Event> {
    prop_oneof![
        4 => (1u64..4, 0u32..60, 0u32..3).prop_map(|(dt, ready, in_flight)| Event::Tick { dt, ready, in_flight }),
        4 => (0.0f64..2000.0).prop_map(|concurrency| Event::Sample { concurrency }),
        1 => Just(Event::Activate),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Every decision lies within [min-scale, max-scale]; in one tick the scale never drops
    /// below ready / max-scale-down-rate (or max-scale) and never rises above
    /// ready × max-scale-up-rate (or the floors: min-, initial-, activation-scale, one).
    #[test]
    fn decisions_respect_bounds_and_rates(
        min in 0u32..4,
        extra in 0u32..40,
        unbounded in any::<bool>(),
        up in 1.1f64..20.0,
        down in 1.1f64..10.0,
        target in 1.0f64..200.0,
        delay in prop_oneof![Just(0u64), 1u64..30],
        activation in prop_oneof![Just(0u32), 2u32..5],
        events in proptest::collection::vec(event(), 1..120),
    ) {
        let max = if unbounded { 0 } else { (min + extra).max(activation).max(1) };
        let config = AutoscalerConfig { max_scale_up_rate: up, max_scale_down_rate: down, ..Default::default() };
        let spec = ScalingSpec {
            min_scale: min,
            max_scale: max,
            scale_down_delay: Duration::from_secs(delay * 2),
            activation_scale: activation.max(min).min(if max == 0 { u32::MAX } else { max }),
            ..knative_spec(target, 211.0, ScaleMetric::Concurrency)
        };
        let spec = if spec.activation_scale < 2 { ScalingSpec { activation_scale: 0, ..spec } } else { spec };
        let floors = spec.min_scale.max(spec.initial_scale).max(spec.activation_scale).max(1);
        let t0 = Instant::now();
        let mut a = Autoscaler::new(&config, spec, t0);
        let mut now = t0;
        let mut ready = 0u32;
        let mut previous = a.desired();
        for e in events {
            let d = match e {
                Event::Tick { dt, ready: r, in_flight } => {
                    now += Duration::from_secs(dt);
                    ready = r;
                    a.tick(now, ready, in_flight)
                }
                Event::Sample { concurrency } => {
                    a.record(&RevisionSample { revision: "r".into(), at: now, interval: Duration::from_secs(1), average_concurrency: concurrency, requests: concurrency as u64 });
                    continue;
                }
                Event::Activate => a.activate(now),
            };
            prop_assert!(d.desired >= min, "below min-scale: {d:?}");
            if max > 0 {
                prop_assert!(d.desired <= max, "above max-scale: {d:?}");
            }
            let ready_f = f64::from(ready.max(1));
            if d.desired > previous {
                let cap = ((up * ready_f).ceil() as u32).max(floors);
                prop_assert!(d.desired <= cap, "rose from {previous} above {cap} with {ready} ready: {d:?}");
            }
            if d.desired < previous {
                let floor = (ready_f / down).floor() as u32;
                let floor = if max > 0 { floor.min(max) } else { floor };
                prop_assert!(d.desired >= floor, "fell from {previous} below {floor} with {ready} ready: {d:?}");
            }
            previous = d.desired;
        }
    }

    /// A request in flight never leaves a revision without a replica.
    #[test]
    fn never_zero_with_a_request_in_flight(events in proptest::collection::vec(event(), 1..150)) {
        let config = AutoscalerConfig::default();
        let spec = knative_spec(70.0, 211.0, ScaleMetric::Concurrency);
        let t0 = Instant::now();
        let mut a = Autoscaler::new(&config, spec, t0);
        let mut now = t0;
        for e in events {
            match e {
                Event::Tick { dt, ready, in_flight } => {
                    now += Duration::from_secs(dt * 20);
                    let d = a.tick(now, ready.min(3), in_flight);
                    if in_flight > 0 {
                        prop_assert!(d.desired >= 1, "{d:?}");
                    }
                }
                Event::Sample { concurrency } => a.record(&RevisionSample { revision: "r".into(), at: now, interval: Duration::from_secs(1), average_concurrency: concurrency / 100.0, requests: 0 }),
                Event::Activate => {
                    let d = a.activate(now);
                    prop_assert!(d.desired >= 1, "activation left zero: {d:?}");
                }
            }
        }
    }
}

// A short panic window (17 % of 6 s: two one-second buckets) fed by a router whose
// samples land just before each second ends, read by ticks just after it begins: the
// panic average must be the load of the last sample, not zero.
#[test]
fn a_two_bucket_panic_window_reads_the_last_sample() {
    let t0 = Instant::now();
    let config = AutoscalerConfig::default();
    let spec = ScalingSpec {
        stable_window: Duration::from_secs(6),
        panic_window: Duration::from_millis(1020),
        ..knative_spec(4.0, 0.0, ScaleMetric::Concurrency)
    };
    let mut a = Autoscaler::new(&config, spec, t0);
    let mut panic = Vec::new();
    for k in 0..8u64 {
        let at = t0 + Duration::from_millis(k * 1000 + 900);
        a.record(&RevisionSample {
            revision: "r".into(),
            at,
            interval: Duration::from_secs(1),
            average_concurrency: 16.0,
            requests: 16,
        });
        let d = a.tick(t0 + Duration::from_millis(k * 1000 + 1100), 1, 16);
        panic.push(d.panic_value);
    }
    assert!(panic.iter().all(|v| *v == 16.0), "panic averages {panic:?}");
}
