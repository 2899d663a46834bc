//! The per-revision autoscaler: Knative's decider (`scaling/autoscaler.go`) followed by the
//! KPA scaler's bounds and scale-to-zero rules (`reconciler/autoscaling/kpa/scaler.go`) and
//! the PodAutoscaler's Active condition (`kpa.go` `computeActiveCondition`), with the HPA
//! formula for utilisation metrics.

use std::fmt;
use std::time::{Duration, Instant};

use super::config::AutoscalerConfig;
use super::spec::{AutoscalerClass, ScaleMetric, ScalingSpec};
use super::window::{Buckets, MaxWindow};
use crate::metrics::{RevisionSample, RouterEvent};

/// The HPA's tolerance: no change while the usage ratio is within 10 % of 1 (Kubernetes'
/// `--horizontal-pod-autoscaler-tolerance` default).
pub const HPA_TOLERANCE: f64 = 0.1;

/// Knative's PodAutoscaler `Active` condition.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Activity {
    /// Replicas are wanted but fewer than needed are ready (`Active=Unknown`); requests are
    /// buffered.
    Activating,
    /// Enough replicas are ready (`Active=True`).
    Active,
    /// No traffic (`Active=False`): the router buffers, and the last replica goes after the
    /// grace period.
    Inactive,
}

impl Activity {
    pub fn as_str(self) -> &'static str {
        match self {
            Activity::Activating => "activating",
            Activity::Active => "active",
            Activity::Inactive => "inactive",
        }
    }
}

/// Why a decision is what it is (a short label for status and metrics).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Reason {
    /// The stable window's load over the target.
    Stable,
    /// Panic mode: the largest scale asked for since panicking began.
    Panic,
    /// The scale-up was clamped by `max-scale-up-rate`.
    ScaleUpRate,
    /// The scale-down was clamped by `max-scale-down-rate`.
    ScaleDownRate,
    /// Held at the largest scale of the last `scale-down-delay`.
    ScaleDownDelay,
    /// Raised to `activation-scale` on activation from zero.
    ActivationScale,
    /// A request arrived at a revision scaled to zero.
    Activation,
    /// Raised to `min-scale`.
    MinScale,
    /// Lowered to `max-scale`.
    MaxScale,
    /// Raised to `initial-scale` until the revision first became ready.
    InitialScale,
    /// A request is in flight: at least one replica stays.
    InFlight,
    /// Waiting for the revision to become ready; the scale is held.
    Activating,
    /// The revision did not become ready within the activation timeout: scaled to zero.
    ActivationTimedOut,
    /// No traffic, but active for less than a stable window: at most one replica until then.
    IdleWait,
    /// No traffic for a stable window: the revision turns inactive, its replicas stay.
    Deactivating,
    /// Inactive; the last replica waits out `scale-to-zero-pod-retention-period`.
    RetentionWait,
    /// Inactive; the last replica waits out `scale-to-zero-grace-period`.
    GraceWait,
    /// Inactive for long enough: scaled to zero.
    ScaledToZero,
    /// No traffic, but `enable-scale-to-zero` is false: one replica stays.
    ScaleToZeroDisabled,
    /// HPA formula: `ceil(ready × utilisation / target)`.
    Utilization,
    /// HPA: the utilisation is within the tolerance of the target; no change.
    WithinTolerance,
    /// HPA: no utilisation reported yet; the scale is held.
    NoUtilization,
}

impl Reason {
    /// A short snake_case label (a metric label value).
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Stable => "stable",
            Reason::Panic => "panic",
            Reason::ScaleUpRate => "scale_up_rate",
            Reason::ScaleDownRate => "scale_down_rate",
            Reason::ScaleDownDelay => "scale_down_delay",
            Reason::ActivationScale => "activation_scale",
            Reason::Activation => "activation",
            Reason::MinScale => "min_scale",
            Reason::MaxScale => "max_scale",
            Reason::InitialScale => "initial_scale",
            Reason::InFlight => "in_flight",
            Reason::Activating => "activating",
            Reason::ActivationTimedOut => "activation_timed_out",
            Reason::IdleWait => "idle_wait",
            Reason::Deactivating => "deactivating",
            Reason::RetentionWait => "retention_wait",
            Reason::GraceWait => "grace_wait",
            Reason::ScaledToZero => "scaled_to_zero",
            Reason::ScaleToZeroDisabled => "scale_to_zero_disabled",
            Reason::Utilization => "utilization",
            Reason::WithinTolerance => "within_tolerance",
            Reason::NoUtilization => "no_utilization",
        }
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One scaling decision.
#[derive(Clone, Debug, PartialEq)]
pub struct Decision {
    pub at: Instant,
    /// The replicas the revision should run now.
    pub desired: u32,
    /// What the decider recommends from the load (and the requests in flight), before
    /// `min-scale`/`max-scale`/`initial-scale` and the scale-to-zero rules (Knative's
    /// Decider `DesiredScale`).
    pub recommended: u32,
    /// `ready × total − observed panic load − target-burst-capacity`, floored; −1 when
    /// `target-burst-capacity` is −1, 0 when it is 0. Negative: the router must keep
    /// buffering requests for the revision (the activator stays in the path).
    pub excess_burst_capacity: i64,
    /// Whether the router must stay in the path as the activator: nothing wanted, or too
    /// little spare capacity (Knative's SKS proxy mode).
    pub activator_in_path: bool,
    pub panicking: bool,
    pub activity: Activity,
    /// The stable and panic windows' averages of the scaling metric (revision totals).
    pub stable_value: f64,
    pub panic_value: f64,
    /// The per-replica target of the scaling metric.
    pub target: f64,
    pub reason: Reason,
}

/// One revision's autoscaler. Feed it samples with [`record`](Self::record), call
/// [`tick`](Self::tick) every `tick-interval`, and [`activate`](Self::activate) the moment a
/// request finds no ready replica.
#[derive(Clone, Debug)]
pub struct Autoscaler {
    config: AutoscalerConfig,
    spec: ScalingSpec,
    /// Bucket indices count whole seconds from here.
    epoch: Instant,
    concurrency_stable: Buckets,
    concurrency_panic: Buckets,
    rps_stable: Buckets,
    rps_panic: Buckets,
    /// The latest utilisation report (HPA metrics).
    utilization: Option<(Instant, f64)>,
    panic_since: Option<Instant>,
    max_panic_pods: u32,
    delay: Option<MaxWindow>,
    activity: Activity,
    activity_since: Instant,
    /// Whether the revision has once had its initial scale ready.
    initialized: bool,
    /// Since when the router has been in the path as the activator.
    proxy_since: Option<Instant>,
    /// The replicas last asked for.
    applied: u32,
    excess_burst_capacity: i64,
    reachable: bool,
    last_ready: u32,
    last_in_flight: u32,
    last: Option<Decision>,
    /// Knative's tests feed the decider from a fake metric client; the scenarios that
    /// replay them set the stable and panic values here.
    #[cfg(test)]
    pub(crate) fake_observed: Option<(f64, f64)>,
}

const SECOND: Duration = Duration::from_secs(1);

fn bucket_count(window: Duration, granularity: Duration) -> usize {
    (window.as_secs_f64() / granularity.as_secs_f64()).ceil().max(1.0) as usize
}

impl Autoscaler {
    /// A new revision's autoscaler, created at `now` with nothing ready yet.
    pub fn new(config: &AutoscalerConfig, spec: ScalingSpec, now: Instant) -> Autoscaler {
        let aggregation = spec.aggregation;
        let stable = bucket_count(spec.stable_window, SECOND);
        let panic = bucket_count(spec.panic_window, SECOND);
        let delay = (!spec.scale_down_delay.is_zero())
            .then(|| MaxWindow::new(bucket_count(spec.scale_down_delay, config.tick_interval)));
        // Knative's createScaler: the EBC before the first decision.
        let ebc = initial_ebc(&spec);
        Autoscaler {
            config: config.clone(),
            concurrency_stable: Buckets::new(stable, aggregation),
            concurrency_panic: Buckets::new(panic, aggregation),
            rps_stable: Buckets::new(stable, aggregation),
            rps_panic: Buckets::new(panic, aggregation),
            utilization: None,
            panic_since: None,
            max_panic_pods: 0,
            delay,
            activity: Activity::Activating,
            activity_since: now,
            initialized: false,
            proxy_since: (ebc < 0).then_some(now),
            applied: spec.initial_scale,
            excess_burst_capacity: ebc,
            reachable: true,
            last_ready: 0,
            last_in_flight: 0,
            last: None,
            #[cfg(test)]
            fake_observed: None,
            epoch: now,
            spec,
        }
    }

    /// An autoscaler taking over a revision that already runs `ready` replicas (after a
    /// restart of the control plane). As in Knative, it starts in panic mode when more than
    /// one replica is up, so that the lost history cannot scale the revision down before a
    /// stable window of data is in.
    pub fn resume(
        config: &AutoscalerConfig,
        spec: ScalingSpec,
        now: Instant,
        ready: u32,
    ) -> Autoscaler {
        let mut a = Autoscaler::new(config, spec, now);
        a.max_panic_pods = ready;
        a.panic_since = (ready > 1).then_some(now);
        a.applied = ready;
        a.last_ready = ready;
        if ready > 0 {
            a.activity = Activity::Active;
            a.initialized = true;
        }
        a
    }

    pub fn spec(&self) -> &ScalingSpec {
        &self.spec
    }

    /// Replaces the revision's spec (an annotation changed); the windows keep their data.
    pub fn update(&mut self, spec: ScalingSpec) {
        let aggregation = spec.aggregation;
        if spec.stable_window != self.spec.stable_window
            || spec.panic_window != self.spec.panic_window
            || aggregation != self.spec.aggregation
        {
            // Resizing keeps nothing exact; start the windows afresh (as a restart would).
            let stable = bucket_count(spec.stable_window, SECOND);
            let panic = bucket_count(spec.panic_window, SECOND);
            self.concurrency_stable = Buckets::new(stable, aggregation);
            self.concurrency_panic = Buckets::new(panic, aggregation);
            self.rps_stable = Buckets::new(stable, aggregation);
            self.rps_panic = Buckets::new(panic, aggregation);
        }
        if spec.scale_down_delay != self.spec.scale_down_delay {
            self.delay = (!spec.scale_down_delay.is_zero()).then(|| {
                MaxWindow::new(bucket_count(spec.scale_down_delay, self.config.tick_interval))
            });
        }
        self.spec = spec;
    }

    /// Whether any route sends traffic to the revision (Knative's reachability). An
    /// unreachable revision ignores `min-scale`, the scale-down rate and delay, and the pod
    /// retention period.
    pub fn set_reachable(&mut self, reachable: bool) {
        self.reachable = reachable;
    }

    /// The latest decision, if any.
    pub fn last_decision(&self) -> Option<&Decision> {
        self.last.as_ref()
    }

    /// The replicas last asked for (the initial scale before the first decision).
    pub fn desired(&self) -> u32 {
        self.applied
    }

    /// The excess burst capacity of the latest decision (before any, Knative's initial
    /// value: `initial-scale × total − target-burst-capacity`).
    pub fn excess_burst_capacity(&self) -> i64 {
        self.excess_burst_capacity
    }

    /// How many router replicas (activators) the revision's capacity and burst need, at least
    /// two: `ceil((ready × total + max(tbc, 0)) / activator-capacity)` (Knative's
    /// `computeNumActivators`; with `target-burst-capacity` 0 the minimum).
    pub fn activators(&self, ready: u32) -> u32 {
        const MIN_ACTIVATORS: f64 = 2.0;
        let tbc = self.spec.target_burst_capacity;
        if tbc == 0.0 {
            return MIN_ACTIVATORS as u32;
        }
        let capacity = f64::from(ready) * self.spec.total + tbc.max(0.0);
        (capacity / self.config.activator_capacity).ceil().max(MIN_ACTIVATORS) as u32
    }

    /// Feeds one router event: a sample is recorded (no decision), an activation decides at
    /// once. The caller routes events by revision.
    pub fn on_event(&mut self, event: &RouterEvent) -> Option<Decision> {
        match event {
            RouterEvent::Sample(sample) => {
                self.record(sample);
                None
            }
            RouterEvent::Activation { at, .. } => Some(self.activate(*at)),
        }
    }

    fn index(&self, t: Instant) -> i64 {
        index_of(self.epoch, t, SECOND)
    }

    /// Records one sample of the router. Samples in the same second add up, as the stats of
    /// several reporters do in Knative. The caller routes samples by `sample.revision`.
    pub fn record(&mut self, sample: &RevisionSample) {
        let i = self.index(sample.at);
        let concurrency = sample.average_concurrency.max(0.0);
        let secs = sample.interval.as_secs_f64();
        let rps = if secs > 0.0 { sample.requests as f64 / secs } else { sample.requests as f64 };
        self.concurrency_stable.record(i, concurrency);
        self.concurrency_panic.record(i, concurrency);
        self.rps_stable.record(i, rps);
        self.rps_panic.record(i, rps);
    }

    /// Records a utilisation report for the cpu and memory metrics: the average over the
    /// ready replicas, in percent of their request.
    pub fn record_utilization(&mut self, at: Instant, percent: f64) {
        if self.utilization.is_none_or(|(t, _)| t <= at) {
            self.utilization = Some((at, percent.max(0.0)));
        }
    }

    /// A request arrived while no replica was ready: decide now, not at the next tick. The
    /// request counts as load of one in this second's bucket (as the activator's own stat
    /// does in Knative) unless the router has reported this second already, and it is in
    /// flight, so the decision asks for at least one replica.
    pub fn activate(&mut self, now: Instant) -> Decision {
        let i = self.index(now);
        if !self.concurrency_stable.written_at(i) {
            self.concurrency_stable.record(i, 1.0);
            self.concurrency_panic.record(i, 1.0);
        }
        if !self.rps_stable.written_at(i) {
            self.rps_stable.record(i, 1.0);
            self.rps_panic.record(i, 1.0);
        }
        let was = self.applied;
        let mut d = self.tick(now, self.last_ready, self.last_in_flight.max(1));
        if was == 0 && d.desired > 0 && matches!(d.reason, Reason::Stable | Reason::InFlight) {
            d.reason = Reason::Activation;
            if let Some(last) = self.last.as_mut() {
                last.reason = Reason::Activation;
            }
        }
        d
    }

    /// One autoscaler tick at `now`, with `ready` replicas ready and `in_flight` requests in
    /// flight (queued ones included).
    pub fn tick(&mut self, now: Instant, ready: u32, in_flight: u32) -> Decision {
        self.last_ready = ready;
        self.last_in_flight = in_flight;
        let d = match self.spec.class {
            AutoscalerClass::Kpa => self.tick_kpa(now, ready, in_flight),
            AutoscalerClass::Hpa => self.tick_hpa(now, ready),
        };
        self.last = Some(d.clone());
        d
    }

    fn observed(&self, now: Instant) -> (f64, f64) {
        #[cfg(test)]
        if let Some(fake) = self.fake_observed {
            return fake;
        }
        let i = self.index(now);
        match self.spec.metric {
            ScaleMetric::Rps => (self.rps_stable.average(i), self.rps_panic.average(i)),
            _ => (self.concurrency_stable.average(i), self.concurrency_panic.average(i)),
        }
    }

    fn tick_kpa(&mut self, now: Instant, ready: u32, in_flight: u32) -> Decision {
        let spec = &self.spec;
        let target = spec.target;
        // 1. The decider (autoscaler.go Scale).
        let ready_f = f64::from(ready.max(1));
        let (stable, panic) = self.observed(now);
        // At least one more replica even when the rate is tiny (ceil), and floor for down.
        let max_up = (self.config.max_scale_up_rate * ready_f).ceil();
        let max_down =
            if self.reachable { (ready_f / self.config.max_scale_down_rate).floor() } else { 0.0 };
        let dspc = (stable / target).ceil();
        let dppc = (panic / target).ceil();
        let mut stable_pods = dspc.max(max_down).min(max_up) as u32;
        let mut panic_pods = dppc.max(max_down).min(max_up) as u32;
        let mut reason = if dspc > max_up {
            Reason::ScaleUpRate
        } else if dspc < max_down {
            Reason::ScaleDownRate
        } else {
            Reason::Stable
        };
        if spec.activation_scale > 1 {
            if dspc > 0.0 && spec.activation_scale > stable_pods {
                stable_pods = spec.activation_scale;
                reason = Reason::ActivationScale;
            }
            if dppc > 0.0 && spec.activation_scale > panic_pods {
                panic_pods = spec.activation_scale;
            }
        }

        let over_threshold = dppc / ready_f >= spec.panic_threshold;
        match self.panic_since {
            _ if over_threshold => {
                // Enter panic, or extend it: it lasts a stable window past the last trigger.
                self.panic_since = Some(now);
            }
            Some(since) if since + spec.stable_window < now => {
                self.panic_since = None;
                self.max_panic_pods = 0;
            }
            _ => {}
        }

        let mut desired = stable_pods;
        if self.panic_since.is_some() {
            // Provision for the larger of the two windows, and never scale down in panic.
            desired = desired.max(panic_pods);
            self.max_panic_pods = self.max_panic_pods.max(desired);
            desired = self.max_panic_pods;
            reason = Reason::Panic;
        }

        if self.reachable
            && let Some(delay) = self.delay.as_mut()
        {
            delay.record(index_of(self.epoch, now, self.config.tick_interval), desired);
            let held = delay.current();
            if held != desired {
                desired = held;
                reason = Reason::ScaleDownDelay;
            }
        }

        let ebc = ebc(spec, ready, panic);

        if in_flight > 0 && desired == 0 {
            desired = 1;
            reason = Reason::InFlight;
        }
        let recommended = desired;

        // 2. The KPA scaler: bounds, initial scale, scale to zero.
        let (want, apply, reason) = self.scale(now, desired, reason);
        if apply && let Some(w) = want {
            self.applied = w;
        }

        // 3. Whether the router must stay in the path (SKS mode): only a revision that wants
        // replicas and has spare capacity for the burst can do without it.
        let serve = matches!(want, Some(w) if w > 0) && ebc >= 0;
        if serve {
            self.proxy_since = None;
        } else if self.proxy_since.is_none() {
            self.proxy_since = Some(now);
        }
        self.excess_burst_capacity = ebc;

        // 4. The Active condition.
        self.update_activity(now, want, ready);

        Decision {
            at: now,
            desired: self.applied,
            recommended,
            excess_burst_capacity: ebc,
            activator_in_path: !serve,
            panicking: self.panic_since.is_some(),
            activity: self.activity,
            stable_value: stable,
            panic_value: panic,
            target,
            reason,
        }
    }

    /// The KPA scaler's `scale`: the answer is the scale wanted (`None`: unknown, leave it)
    /// and whether to apply it.
    fn scale(&mut self, now: Instant, desired: u32, reason: Reason) -> (Option<u32>, bool, Reason) {
        let spec = &self.spec;
        let mut min = if self.reachable { spec.min_scale } else { 0 };
        let max = spec.max_scale;
        let mut min_reason = Reason::MinScale;
        // Until the initial scale has once been reached, it is the floor.
        if spec.initial_scale > 1 && !self.initialized && self.reachable {
            if spec.initial_scale > min {
                min_reason = Reason::InitialScale;
            }
            min = min.max(spec.initial_scale);
        }
        let (bounded, reason) = if desired < min {
            (min, min_reason)
        } else if max != 0 && desired > max {
            (max, Reason::MaxScale)
        } else {
            (desired, reason)
        };
        if bounded != 0 {
            return (Some(bounded), true, reason);
        }

        // handleScaleToZero.
        if !self.config.enable_scale_to_zero {
            return (Some(1), true, Reason::ScaleToZeroDisabled);
        }
        let in_state = now.saturating_duration_since(self.activity_since);
        match self.activity {
            Activity::Activating => {
                if in_state > spec.activation_timeout {
                    (Some(0), true, Reason::ActivationTimedOut)
                } else {
                    (None, false, Reason::Activating)
                }
            }
            Activity::Active => {
                if in_state >= spec.stable_window {
                    (Some(0), false, Reason::Deactivating)
                } else {
                    (Some(1), true, Reason::IdleWait)
                }
            }
            Activity::Inactive => {
                // The router is the activator and always able to take the traffic back, so
                // Knative's activator probe always succeeds here.
                let retention = if self.reachable {
                    spec.scale_to_zero_pod_retention_period
                } else {
                    Duration::ZERO
                };
                let grace = self.config.scale_to_zero_grace_period;
                if in_state >= grace.max(retention) {
                    return (Some(0), true, Reason::ScaledToZero);
                }
                if !retention.is_zero() && in_state < retention {
                    return (Some(0), false, Reason::RetentionWait);
                }
                let proxied =
                    self.proxy_since.map_or(Duration::ZERO, |t| now.saturating_duration_since(t));
                if proxied >= grace {
                    (Some(0), true, Reason::ScaledToZero)
                } else {
                    (Some(0), false, Reason::GraceWait)
                }
            }
        }
    }

    /// Knative's `computeActiveCondition`.
    fn update_activity(&mut self, now: Instant, want: Option<u32>, ready: u32) {
        let min = if self.reachable { self.spec.min_scale } else { 0 };
        let min_ready =
            if self.initialized { min.max(1) } else { min.max(self.spec.initial_scale) };
        if ready >= min_ready {
            self.initialized = true;
        }
        let want = want.map_or(-1, i64::from);
        let next = if want == 0 || min_ready == 0 {
            Activity::Inactive
        } else if want > 0 || self.activity != Activity::Inactive {
            if ready < min_ready { Activity::Activating } else { Activity::Active }
        } else {
            Activity::Inactive
        };
        if next != self.activity {
            self.activity = next;
            self.activity_since = now;
        }
    }

    /// The HPA formula on a utilisation metric: `ceil(ready × utilisation / target)`, no
    /// change within the tolerance, bounded by `[max(min-scale, 1), max-scale]` (an HPA never
    /// scales to zero).
    fn tick_hpa(&mut self, now: Instant, ready: u32) -> Decision {
        let spec = &self.spec;
        let min = spec.min_scale.max(1);
        let max = if spec.max_scale == 0 { u32::MAX } else { spec.max_scale };
        let utilization = self
            .utilization
            .filter(|(t, _)| now.saturating_duration_since(*t) <= spec.stable_window)
            .map(|(_, u)| u);
        let (raw, mut reason) = match (ready, utilization) {
            (0, _) => (self.applied.max(spec.initial_scale), Reason::InitialScale),
            (_, None) => (ready, Reason::NoUtilization),
            (_, Some(u)) => {
                let ratio = u / spec.target;
                if (ratio - 1.0).abs() <= HPA_TOLERANCE {
                    (ready, Reason::WithinTolerance)
                } else {
                    (
                        (ratio * f64::from(ready)).ceil().min(f64::from(u32::MAX)) as u32,
                        Reason::Utilization,
                    )
                }
            }
        };
        let desired = if raw < min {
            reason = Reason::MinScale;
            min
        } else if raw > max {
            reason = Reason::MaxScale;
            max
        } else {
            raw
        };
        self.applied = desired;
        self.excess_burst_capacity = 0;
        if ready >= desired.min(min) {
            self.initialized = true;
        }
        let activity = if ready == 0 { Activity::Activating } else { Activity::Active };
        if activity != self.activity {
            self.activity = activity;
            self.activity_since = now;
        }
        let u = utilization.unwrap_or(0.0);
        Decision {
            at: now,
            desired,
            recommended: raw,
            excess_burst_capacity: 0,
            activator_in_path: ready == 0,
            panicking: false,
            activity,
            stable_value: u,
            panic_value: u,
            target: spec.target,
            reason,
        }
    }
}

/// Whole `granularity` steps from `epoch` to `t` (negative before the epoch).
fn index_of(epoch: Instant, t: Instant, granularity: Duration) -> i64 {
    let g = granularity.as_nanos().max(1);
    match t.checked_duration_since(epoch) {
        Some(d) => (d.as_nanos() / g) as i64,
        None => -(epoch.duration_since(t).as_nanos().div_ceil(g) as i64),
    }
}

/// Knative's excess burst capacity: `floor(ready × total − tbc − observed panic load)`.
fn ebc(spec: &ScalingSpec, ready: u32, panic: f64) -> i64 {
    let tbc = spec.target_burst_capacity;
    if tbc == 0.0 {
        0
    } else if tbc > 0.0 {
        (f64::from(ready) * spec.total - tbc - panic).floor() as i64
    } else {
        -1
    }
}

/// Knative's `createScaler`: the EBC of a revision before its first decision.
fn initial_ebc(spec: &ScalingSpec) -> i64 {
    let tbc = spec.target_burst_capacity;
    if tbc == 0.0 || tbc == -1.0 {
        tbc as i64
    } else {
        (f64::from(spec.initial_scale) * spec.total - tbc) as i64
    }
}
