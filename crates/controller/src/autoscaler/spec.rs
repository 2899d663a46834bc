//! One revision's scaling parameters, resolved from its component's fields (`minReplicas`,
//! `maxReplicas`, `scaleTarget`, `scaleMetric`, `containerConcurrency`) and the Knative
//! `autoscaling.knative.dev/*` annotations against the cluster [`AutoscalerConfig`].
//!
//! Validation follows Knative's `annotation_validation.go` (names, old camelCase spellings,
//! bounds); resolution follows `pa_lifecycle.go`, `ResolveMetricTarget`, `MakeMetric` and
//! `MakeDecider`. A component field, when set, wins over the matching annotation, because
//! KServe writes the field into that annotation.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use super::config::{
    AutoscalerConfig, DEFAULT_TARGET_UTILIZATION, HPA_CLASS, KPA_CLASS,
    PANIC_THRESHOLD_PERCENTAGE_MAX, PANIC_THRESHOLD_PERCENTAGE_MIN, PANIC_WINDOW_PERCENTAGE_MAX,
    PANIC_WINDOW_PERCENTAGE_MIN, TARGET_MIN, WINDOW_MAX, WINDOW_MIN, format_duration,
    parse_go_duration,
};
use super::window::Aggregation;
use super::{Error, Result};

/// The annotation group.
pub const GROUP: &str = "autoscaling.knative.dev";
pub const CLASS: &str = "autoscaling.knative.dev/class";
pub const METRIC: &str = "autoscaling.knative.dev/metric";
pub const TARGET: &str = "autoscaling.knative.dev/target";
pub const WINDOW: &str = "autoscaling.knative.dev/window";
pub const MIN_SCALE: &str = "autoscaling.knative.dev/min-scale";
pub const MAX_SCALE: &str = "autoscaling.knative.dev/max-scale";
pub const INITIAL_SCALE: &str = "autoscaling.knative.dev/initial-scale";
pub const ACTIVATION_SCALE: &str = "autoscaling.knative.dev/activation-scale";
pub const TARGET_UTILIZATION_PERCENTAGE: &str =
    "autoscaling.knative.dev/target-utilization-percentage";
pub const PANIC_WINDOW_PERCENTAGE: &str = "autoscaling.knative.dev/panic-window-percentage";
pub const PANIC_THRESHOLD_PERCENTAGE: &str = "autoscaling.knative.dev/panic-threshold-percentage";
pub const SCALE_DOWN_DELAY: &str = "autoscaling.knative.dev/scale-down-delay";
pub const TARGET_BURST_CAPACITY: &str = "autoscaling.knative.dev/target-burst-capacity";
pub const SCALE_TO_ZERO_POD_RETENTION_PERIOD: &str =
    "autoscaling.knative.dev/scale-to-zero-pod-retention-period";
pub const METRIC_AGGREGATION_ALGORITHM: &str =
    "autoscaling.knative.dev/metric-aggregation-algorithm";

/// Each annotation with the older spellings Knative still reads, first match wins
/// (Knative's `kmap.KeyPriority` lists).
const SPELLINGS: &[&[&str]] = &[
    &[CLASS],
    &[METRIC],
    &[TARGET],
    &[WINDOW],
    &[MIN_SCALE, "autoscaling.knative.dev/minScale"],
    &[MAX_SCALE, "autoscaling.knative.dev/maxScale"],
    &[INITIAL_SCALE, "autoscaling.knative.dev/initialScale"],
    &[ACTIVATION_SCALE],
    &[TARGET_UTILIZATION_PERCENTAGE, "autoscaling.knative.dev/targetUtilizationPercentage"],
    &[PANIC_WINDOW_PERCENTAGE, "autoscaling.knative.dev/panicWindowPercentage"],
    &[PANIC_THRESHOLD_PERCENTAGE, "autoscaling.knative.dev/panicThresholdPercentage"],
    &[SCALE_DOWN_DELAY, "autoscaling.knative.dev/scaleDownDelay"],
    &[TARGET_BURST_CAPACITY, "autoscaling.knative.dev/targetBurstCapacity"],
    &[SCALE_TO_ZERO_POD_RETENTION_PERIOD, "autoscaling.knative.dev/scaleToZeroPodRetentionPeriod"],
    &[METRIC_AGGREGATION_ALGORITHM, "autoscaling.knative.dev/metricAggregationAlgorithm"],
];

/// The default utilisation target of the cpu and memory metrics, in percent (Kubernetes'
/// and KServe's `DefaultCPUUtilization`).
pub const DEFAULT_UTILIZATION_TARGET_PERCENT: f64 = 80.0;

/// Knative's fallback progress deadline (`config-deployment` `progress-deadline`, 600 s)
/// plus its `activationTimeoutBuffer` (30 s): an activating revision that has not become
/// ready by then may be scaled to zero.
pub const DEFAULT_ACTIVATION_TIMEOUT: Duration = Duration::from_secs(630);

/// What a revision is scaled on (KServe's `scaleMetric`, Knative's `metric` annotation).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ScaleMetric {
    /// Requests in flight per replica (KPA).
    Concurrency,
    /// Requests per second per replica (KPA).
    Rps,
    /// CPU utilisation in percent of the request (HPA formula).
    Cpu,
    /// Memory utilisation in percent of the request (HPA formula).
    Memory,
}

impl ScaleMetric {
    pub fn as_str(self) -> &'static str {
        match self {
            ScaleMetric::Concurrency => "concurrency",
            ScaleMetric::Rps => "rps",
            ScaleMetric::Cpu => "cpu",
            ScaleMetric::Memory => "memory",
        }
    }

    /// Whether the metric is a resource utilisation (scaled by the HPA formula).
    pub fn is_utilization(self) -> bool {
        matches!(self, ScaleMetric::Cpu | ScaleMetric::Memory)
    }
}

impl fmt::Display for ScaleMetric {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ScaleMetric {
    type Err = Error;
    fn from_str(s: &str) -> Result<ScaleMetric> {
        match s {
            "concurrency" => Ok(ScaleMetric::Concurrency),
            "rps" => Ok(ScaleMetric::Rps),
            "cpu" => Ok(ScaleMetric::Cpu),
            "memory" => Ok(ScaleMetric::Memory),
            other => Err(Error::Field {
                field: "scaleMetric".into(),
                reason: format!("{other:?} is not one of concurrency, rps, cpu, memory"),
            }),
        }
    }
}

/// Which algorithm scales the revision.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AutoscalerClass {
    /// Knative's pod autoscaler: windows, panic mode, scale to zero.
    Kpa,
    /// The Kubernetes HPA formula on a utilisation metric; never scales to zero.
    Hpa,
}

/// The component's own scaling fields (KServe's `ComponentExtensionSpec`), as plain values.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ComponentScaling {
    /// `minReplicas`.
    pub min_replicas: Option<i64>,
    /// `maxReplicas` (0 = not set, as in KServe).
    pub max_replicas: Option<i64>,
    /// `scaleTarget`.
    pub scale_target: Option<i64>,
    /// `scaleMetric`.
    pub scale_metric: Option<ScaleMetric>,
    /// `containerConcurrency` (0 or unset = unlimited).
    pub container_concurrency: Option<i64>,
}

/// Options of one revision that are not autoscaling annotations.
#[derive(Clone, Debug, PartialEq)]
pub struct ScalingOptions {
    /// How long an activating revision may take to become ready before it may be scaled to
    /// zero (Knative: progress deadline + 30 s).
    pub activation_timeout: Duration,
}

impl Default for ScalingOptions {
    fn default() -> ScalingOptions {
        ScalingOptions { activation_timeout: DEFAULT_ACTIVATION_TIMEOUT }
    }
}

/// One revision's resolved scaling parameters (Knative's `DeciderSpec` plus the scaler's
/// per-revision knobs).
#[derive(Clone, Debug, PartialEq)]
pub struct ScalingSpec {
    pub class: AutoscalerClass,
    pub metric: ScaleMetric,
    /// The per-replica value the autoscaler aims for (`TargetValue`): concurrency, requests
    /// per second, or a utilisation percentage.
    pub target: f64,
    /// The per-replica value a replica can take at most (`TotalValue`), used for the excess
    /// burst capacity.
    pub total: f64,
    /// -1 = the activator always stays in the path; 0 = never kept for capacity.
    pub target_burst_capacity: f64,
    /// As a factor (200 % → 2.0).
    pub panic_threshold: f64,
    pub stable_window: Duration,
    pub panic_window: Duration,
    pub scale_down_delay: Duration,
    pub min_scale: u32,
    /// 0 = unbounded.
    pub max_scale: u32,
    pub initial_scale: u32,
    /// 0 = not set; otherwise at least 2: the scale a revision jumps to from zero.
    pub activation_scale: u32,
    pub scale_to_zero_pod_retention_period: Duration,
    pub aggregation: Aggregation,
    pub activation_timeout: Duration,
}

impl ScalingSpec {
    /// Resolves a revision's spec from its component fields and annotations; every
    /// annotation is validated first, so a bad one is an error that names it.
    pub fn from_component(
        config: &AutoscalerConfig,
        component: &ComponentScaling,
        annotations: &BTreeMap<String, String>,
        options: &ScalingOptions,
    ) -> Result<ScalingSpec> {
        let anns = merge_component(component, annotations)?;
        validate_annotations(config, &anns)?;
        let get = |key: &str| lookup(&anns, key).map(|(_, v)| v);
        let float = |key: &str| get(key).map(|v| v.trim().parse::<f64>().unwrap_or(0.0));
        let int = |key: &str| get(key).map(|v| v.trim().parse::<u32>().unwrap_or(0));
        let duration = |key: &str| {
            get(key).map(|v| parse_go_duration(v).map(|d| d.magnitude).unwrap_or_default())
        };

        let class_name = get(CLASS).unwrap_or(&config.pod_autoscaler_class).to_string();
        let metric = match get(METRIC) {
            Some(m) => m.parse::<ScaleMetric>().map_err(|_| invalid(METRIC, m))?,
            None if class_name == HPA_CLASS => ScaleMetric::Cpu,
            None => ScaleMetric::Concurrency,
        };
        // A utilisation metric is scaled by the HPA formula whatever the class says (KServe
        // picks the HPA class for cpu and memory).
        let class =
            if metric.is_utilization() { AutoscalerClass::Hpa } else { AutoscalerClass::Kpa };

        let cc = component.container_concurrency.unwrap_or(0).max(0) as f64;
        let annotation_target = float(TARGET);
        let (target, total) = match metric {
            ScaleMetric::Cpu | ScaleMetric::Memory => {
                let t = annotation_target.unwrap_or(DEFAULT_UTILIZATION_TARGET_PERCENT);
                (t, t)
            }
            ScaleMetric::Rps | ScaleMetric::Concurrency => {
                // Knative's ResolveMetricTarget.
                let (mut total, mut utilization) = if metric == ScaleMetric::Rps {
                    (config.requests_per_second_target_default, DEFAULT_TARGET_UTILIZATION)
                } else if cc > 0.0 {
                    (cc, config.container_concurrency_target_fraction)
                } else {
                    (
                        config.container_concurrency_target_default,
                        config.container_concurrency_target_fraction,
                    )
                };
                if let Some(t) = annotation_target {
                    // Never aim above what containerConcurrency lets a replica take.
                    total =
                        if metric == ScaleMetric::Concurrency && cc > 0.0 { t.min(cc) } else { t };
                }
                if let Some(tu) = float(TARGET_UTILIZATION_PERCENTAGE) {
                    utilization = tu / 100.0;
                }
                ((total * utilization).max(TARGET_MIN), total)
            }
        };

        let stable_window = duration(WINDOW).unwrap_or(config.stable_window);
        let panic_pct = float(PANIC_WINDOW_PERCENTAGE).unwrap_or(config.panic_window_percentage);
        // Knative's MakeMetric: rounded to a second, at least one bucket.
        let panic_window = Duration::from_secs(
            (stable_window.as_secs_f64() * panic_pct / 100.0).round().max(1.0) as u64,
        );
        let panic_threshold =
            float(PANIC_THRESHOLD_PERCENTAGE).unwrap_or(config.panic_threshold_percentage) / 100.0;

        let min_scale = int(MIN_SCALE).unwrap_or(config.min_scale);
        let max_scale = int(MAX_SCALE).unwrap_or(config.max_scale);
        // Knative's GetInitialScale: a revision's 0 counts only where the cluster allows it.
        let initial_scale = match int(INITIAL_SCALE) {
            Some(0) if !config.allow_zero_initial_scale => config.initial_scale,
            Some(n) => n,
            None => config.initial_scale,
        };

        let aggregation = match get(METRIC_AGGREGATION_ALGORITHM) {
            Some("weighted-exponential" | "weightedExponential") => {
                Aggregation::WeightedExponential
            }
            _ => Aggregation::Linear,
        };

        Ok(ScalingSpec {
            class,
            metric,
            target,
            total,
            target_burst_capacity: float(TARGET_BURST_CAPACITY)
                .unwrap_or(config.target_burst_capacity),
            panic_threshold,
            stable_window,
            panic_window,
            scale_down_delay: duration(SCALE_DOWN_DELAY).unwrap_or(config.scale_down_delay),
            min_scale,
            max_scale,
            initial_scale,
            activation_scale: int(ACTIVATION_SCALE).unwrap_or(0),
            scale_to_zero_pod_retention_period: duration(SCALE_TO_ZERO_POD_RETENTION_PERIOD)
                .unwrap_or(config.scale_to_zero_pod_retention_period),
            aggregation,
            activation_timeout: options.activation_timeout,
        })
    }
}

fn lookup<'a>(anns: &'a BTreeMap<String, String>, key: &str) -> Option<(&'a str, &'a str)> {
    let spellings = SPELLINGS.iter().find(|s| s[0] == key).copied().unwrap_or(&[]);
    spellings.iter().find_map(|k| anns.get_key_value(*k)).map(|(k, v)| (k.as_str(), v.as_str()))
}

fn invalid(key: &str, value: &str) -> Error {
    Error::Annotation { key: key.into(), reason: format!("invalid value {value:?}") }
}

fn out_of_bounds(key: &str, value: &str, low: impl fmt::Display, high: impl fmt::Display) -> Error {
    Error::Annotation { key: key.into(), reason: format!("expected {low} <= {value} <= {high}") }
}

fn annotation(key: &str, reason: String) -> Error {
    Error::Annotation { key: key.into(), reason }
}

/// Writes the component fields over the annotations they stand for (what KServe does when
/// it makes the Knative service), after checking the fields themselves.
fn merge_component(
    c: &ComponentScaling,
    annotations: &BTreeMap<String, String>,
) -> Result<BTreeMap<String, String>> {
    let field = |field: &str, reason: String| Error::Field { field: field.into(), reason };
    let mut anns = annotations.clone();
    let mut set = |keys: &[&str], value: String| {
        for k in keys {
            anns.remove(*k);
        }
        anns.insert(keys[0].to_string(), value);
    };
    let spellings = |key: &str| SPELLINGS.iter().find(|s| s[0] == key).copied().unwrap_or(&[]);
    if let Some(min) = c.min_replicas {
        if min < 0 {
            return Err(field("minReplicas", format!("{min} must be at least 0")));
        }
        set(spellings(MIN_SCALE), min.to_string());
    }
    if let Some(max) = c.max_replicas {
        if max < 0 {
            return Err(field("maxReplicas", format!("{max} must be at least 0")));
        }
        if let Some(min) = c.min_replicas
            && max > 0
            && max < min
        {
            return Err(field("maxReplicas", format!("{max} is less than minReplicas {min}")));
        }
        if max > 0 {
            set(spellings(MAX_SCALE), max.to_string());
        }
    }
    if let Some(target) = c.scale_target {
        if target <= 0 {
            return Err(field("scaleTarget", format!("{target} must be at least 1")));
        }
        set(spellings(TARGET), target.to_string());
    }
    if let Some(metric) = c.scale_metric {
        set(spellings(METRIC), metric.as_str().to_string());
    }
    if let Some(cc) = c.container_concurrency
        && cc < 0
    {
        return Err(field("containerConcurrency", format!("{cc} must be at least 0")));
    }
    Ok(anns)
}

/// Knative's `ValidateAnnotations`, first error returned.
fn validate_annotations(config: &AutoscalerConfig, anns: &BTreeMap<String, String>) -> Result<()> {
    // Class: any *.knative.dev class other than KPA and HPA is a typo.
    let class = lookup(anns, CLASS);
    if let Some((k, v)) = class
        && v != KPA_CLASS
        && v != HPA_CLASS
    {
        return Err(annotation(
            k,
            format!("{v:?} is not supported, use {KPA_CLASS} or {HPA_CLASS}"),
        ));
    }

    // min-scale / max-scale / activation-scale.
    let int_ge0 = |key: &str| -> Result<Option<u32>> {
        match lookup(anns, key) {
            None => Ok(None),
            Some((k, v)) => match v.trim().parse::<i64>() {
                Ok(i) if (0..=i64::from(i32::MAX)).contains(&i) => Ok(Some(i as u32)),
                Ok(_) => Err(out_of_bounds(k, v, 0, i32::MAX)),
                Err(_) => Err(invalid(k, v)),
            },
        }
    };
    let min = int_ge0(MIN_SCALE)?.unwrap_or(0);
    let max_set = int_ge0(MAX_SCALE)?;
    let max = max_set.unwrap_or(0);
    if max != 0 && max < min {
        return Err(annotation(MAX_SCALE, format!("max-scale={max} is less than min-scale={min}")));
    }
    if let (Some((k, _)), Some(max)) = (lookup(anns, MAX_SCALE), max_set) {
        let limit = config.max_scale_limit;
        if limit > 0 && max > limit {
            return Err(out_of_bounds(k, &max.to_string(), 1, limit));
        }
        if limit > 0 && max == 0 {
            return Err(annotation(
                k,
                format!("max-scale=0 (unlimited), must be less than {limit}"),
            ));
        }
    }
    if let Some((k, v)) = lookup(anns, ACTIVATION_SCALE) {
        let n = v.trim().parse::<i32>().map_err(|_| invalid(k, v))?;
        if i64::from(min) > i64::from(n) {
            return Err(annotation(
                k,
                format!("min-scale={min} is greater than activation-scale={n}"),
            ));
        }
        if max != 0 && i64::from(max) < i64::from(n) {
            return Err(annotation(
                k,
                format!("max-scale={max} is less than activation-scale={n}"),
            ));
        }
        if n < 2 {
            return Err(annotation(k, format!("activation-scale={n} must be greater than 1")));
        }
    }

    // Floats.
    let float = |key: &str| -> Result<Option<(&str, &str, f64)>> {
        match lookup(anns, key) {
            None => Ok(None),
            Some((k, v)) => match v.trim().parse::<f64>() {
                Ok(f) if f.is_finite() => Ok(Some((k, v, f))),
                _ => Err(invalid(k, v)),
            },
        }
    };
    if let Some((k, v, f)) = float(PANIC_WINDOW_PERCENTAGE)?
        && !(PANIC_WINDOW_PERCENTAGE_MIN..=PANIC_WINDOW_PERCENTAGE_MAX).contains(&f)
    {
        return Err(out_of_bounds(k, v, PANIC_WINDOW_PERCENTAGE_MIN, PANIC_WINDOW_PERCENTAGE_MAX));
    }
    if let Some((k, v, f)) = float(PANIC_THRESHOLD_PERCENTAGE)?
        && !(PANIC_THRESHOLD_PERCENTAGE_MIN..=PANIC_THRESHOLD_PERCENTAGE_MAX).contains(&f)
    {
        return Err(out_of_bounds(
            k,
            v,
            PANIC_THRESHOLD_PERCENTAGE_MIN,
            PANIC_THRESHOLD_PERCENTAGE_MAX,
        ));
    }
    if let Some((k, v, f)) = float(TARGET)?
        && f < TARGET_MIN
    {
        return Err(annotation(k, format!("target {v} should be at least {TARGET_MIN}")));
    }
    if let Some((k, v, f)) = float(TARGET_UTILIZATION_PERCENTAGE)?
        && !(1.0..=100.0).contains(&f)
    {
        return Err(out_of_bounds(k, v, 1, 100));
    }
    if let Some((k, v)) = lookup(anns, TARGET_BURST_CAPACITY) {
        match v.trim().parse::<f64>() {
            Ok(f) if f.is_finite() && (f >= 0.0 || f == -1.0) => {}
            _ => {
                return Err(annotation(
                    k,
                    format!(
                        "invalid value {v:?}: must be either non-negative or -1 (for unlimited)"
                    ),
                ));
            }
        }
    }

    // Durations.
    let duration = |key: &str| -> Result<Option<(&str, &str, Duration)>> {
        match lookup(anns, key) {
            None => Ok(None),
            Some((k, v)) => {
                let d = parse_go_duration(v).map_err(|_| invalid(k, v))?;
                if d.negative && !d.magnitude.is_zero() {
                    return Err(out_of_bounds(k, v, "0s", format_duration(WINDOW_MAX)));
                }
                Ok(Some((k, v, d.magnitude)))
            }
        }
    };
    if let Some((k, v, d)) = duration(WINDOW)? {
        if d < WINDOW_MIN || d > WINDOW_MAX {
            return Err(out_of_bounds(
                k,
                v,
                format_duration(WINDOW_MIN),
                format_duration(WINDOW_MAX),
            ));
        }
        if d.subsec_nanos() != 0 {
            return Err(annotation(k, "must be specified with at most second precision".into()));
        }
    }
    if let Some((k, v, d)) = duration(SCALE_TO_ZERO_POD_RETENTION_PERIOD)?
        && d > WINDOW_MAX
    {
        return Err(out_of_bounds(k, v, "0s", format_duration(WINDOW_MAX)));
    }
    if let Some((k, v, d)) = duration(SCALE_DOWN_DELAY)? {
        if d > WINDOW_MAX {
            return Err(out_of_bounds(k, v, "0s", format_duration(WINDOW_MAX)));
        }
        if d.subsec_nanos() != 0 {
            return Err(annotation(k, "must be specified with at most second precision".into()));
        }
    }

    // Metric, for the class in effect.
    if let Some((k, m)) = lookup(anns, METRIC) {
        let class = class.map_or(config.pod_autoscaler_class.as_str(), |(_, v)| v);
        let ok = match class {
            KPA_CLASS => matches!(m, "concurrency" | "rps" | "cpu" | "memory"),
            _ => matches!(m, "cpu" | "memory"),
        };
        if !ok {
            return Err(annotation(
                k,
                format!(
                    "invalid value {m:?}: the {class} class takes concurrency, rps, cpu or memory"
                ),
            ));
        }
    }

    // Aggregation algorithm.
    if let Some((k, v)) = lookup(anns, METRIC_AGGREGATION_ALGORITHM)
        && !matches!(v, "linear" | "weighted-exponential" | "weightedExponential")
    {
        return Err(invalid(k, v));
    }

    // Initial scale.
    if let Some((k, v)) = lookup(anns, INITIAL_SCALE) {
        let n = v.trim().parse::<i32>().map_err(|_| invalid(k, v))?;
        if n < 0 {
            return Err(annotation(k, format!("invalid value {v:?}: must be at least 0")));
        }
        if n == 0 && !config.allow_zero_initial_scale {
            return Err(annotation(
                k,
                format!(
                    "invalid value {v:?}: 0 not allowed by cluster (allow-zero-initial-scale is false)"
                ),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(component: ComponentScaling, anns: &[(&str, &str)]) -> Result<ScalingSpec> {
        spec_with(&AutoscalerConfig::default(), component, anns)
    }

    fn spec_with(
        config: &AutoscalerConfig,
        component: ComponentScaling,
        anns: &[(&str, &str)],
    ) -> Result<ScalingSpec> {
        let anns = anns.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        ScalingSpec::from_component(config, &component, &anns, &ScalingOptions::default())
    }

    fn err(anns: &[(&str, &str)]) -> String {
        spec(ComponentScaling::default(), anns).unwrap_err().to_string()
    }

    #[test]
    fn defaults_resolve_like_knative() {
        let s = spec(ComponentScaling::default(), &[]).unwrap();
        assert_eq!(s.class, AutoscalerClass::Kpa);
        assert_eq!(s.metric, ScaleMetric::Concurrency);
        // containerConcurrency 0: total = the default 100, target 100 × 70 %.
        assert!((s.target - 70.0).abs() < 1e-9);
        assert_eq!(s.total, 100.0);
        assert_eq!(s.panic_threshold, 2.0);
        assert_eq!(s.stable_window, Duration::from_secs(60));
        assert_eq!(s.panic_window, Duration::from_secs(6));
        assert_eq!(s.target_burst_capacity, 211.0);
        assert_eq!((s.min_scale, s.max_scale, s.initial_scale, s.activation_scale), (0, 0, 1, 0));
        assert_eq!(s.scale_down_delay, Duration::ZERO);
    }

    // Replays knative/serving pkg/reconciler/autoscaling/resources/target_test.go.
    #[test]
    fn targets_follow_resolve_metric_target() {
        let cc = |n| ComponentScaling { container_concurrency: Some(n), ..Default::default() };
        let s = spec(cc(10), &[]).unwrap();
        assert!((s.target - 7.0).abs() < 1e-9 && s.total == 10.0);
        // The annotation target is capped by containerConcurrency.
        let s = spec(cc(10), &[(TARGET, "20")]).unwrap();
        assert!((s.target - 7.0).abs() < 1e-9);
        let s = spec(cc(10), &[(TARGET, "5"), (TARGET_UTILIZATION_PERCENTAGE, "80")]).unwrap();
        assert!((s.target - 4.0).abs() < 1e-9 && s.total == 5.0);
        // rps: default 200 at the fixed 70 %.
        let s = spec(ComponentScaling::default(), &[(METRIC, "rps")]).unwrap();
        assert_eq!(s.metric, ScaleMetric::Rps);
        assert!((s.target - 140.0).abs() < 1e-9 && s.total == 200.0);
        let s = spec(cc(10), &[(METRIC, "rps"), (TARGET, "50")]).unwrap();
        assert!((s.target - 35.0).abs() < 1e-9);
        // The floor of every target.
        let s = spec(
            ComponentScaling::default(),
            &[(TARGET, "0.01"), (TARGET_UTILIZATION_PERCENTAGE, "1")],
        )
        .unwrap();
        assert_eq!(s.target, TARGET_MIN);
    }

    #[test]
    fn component_fields_win_over_annotations() {
        let c = ComponentScaling {
            min_replicas: Some(2),
            max_replicas: Some(5),
            scale_target: Some(10),
            scale_metric: Some(ScaleMetric::Rps),
            container_concurrency: None,
        };
        let s = spec(
            c,
            &[(MIN_SCALE, "1"), ("autoscaling.knative.dev/maxScale", "9"), (METRIC, "concurrency")],
        )
        .unwrap();
        assert_eq!((s.min_scale, s.max_scale, s.metric), (2, 5, ScaleMetric::Rps));
        assert!((s.target - 7.0).abs() < 1e-9);
        // maxReplicas 0 means unset, as in KServe: the annotation stays.
        let c = ComponentScaling { max_replicas: Some(0), ..Default::default() };
        assert_eq!(spec(c, &[(MAX_SCALE, "4")]).unwrap().max_scale, 4);
    }

    #[test]
    fn old_spellings_are_read() {
        let s = spec(
            ComponentScaling::default(),
            &[
                ("autoscaling.knative.dev/minScale", "1"),
                ("autoscaling.knative.dev/maxScale", "3"),
                ("autoscaling.knative.dev/initialScale", "2"),
                ("autoscaling.knative.dev/panicWindowPercentage", "20"),
                ("autoscaling.knative.dev/panicThresholdPercentage", "300"),
                ("autoscaling.knative.dev/scaleDownDelay", "30s"),
                ("autoscaling.knative.dev/targetBurstCapacity", "-1"),
            ],
        )
        .unwrap();
        assert_eq!((s.min_scale, s.max_scale, s.initial_scale), (1, 3, 2));
        assert_eq!(s.panic_window, Duration::from_secs(12));
        assert_eq!(s.panic_threshold, 3.0);
        assert_eq!(s.scale_down_delay, Duration::from_secs(30));
        assert_eq!(s.target_burst_capacity, -1.0);
        // The new spelling wins when both are there.
        let s = spec(
            ComponentScaling::default(),
            &[(MIN_SCALE, "2"), ("autoscaling.knative.dev/minScale", "1")],
        )
        .unwrap();
        assert_eq!(s.min_scale, 2);
    }

    #[test]
    fn windows_and_utilisation_metrics() {
        let s =
            spec(ComponentScaling::default(), &[(WINDOW, "2m"), (PANIC_WINDOW_PERCENTAGE, "1")])
                .unwrap();
        assert_eq!(s.stable_window, Duration::from_secs(120));
        // 1.2 s rounds to 1 s.
        assert_eq!(s.panic_window, Duration::from_secs(1));
        let c = ComponentScaling {
            scale_metric: Some(ScaleMetric::Cpu),
            scale_target: Some(60),
            ..Default::default()
        };
        let s = spec(c, &[]).unwrap();
        assert_eq!((s.class, s.metric, s.target), (AutoscalerClass::Hpa, ScaleMetric::Cpu, 60.0));
        let s = spec(ComponentScaling::default(), &[(CLASS, HPA_CLASS)]).unwrap();
        assert_eq!((s.metric, s.target), (ScaleMetric::Cpu, DEFAULT_UTILIZATION_TARGET_PERCENT));
    }

    #[test]
    fn initial_scale_zero_only_where_allowed() {
        let e = err(&[(INITIAL_SCALE, "0")]);
        assert_eq!(
            e,
            "annotation autoscaling.knative.dev/initial-scale: invalid value \"0\": 0 not allowed by cluster (allow-zero-initial-scale is false)"
        );
        let config = AutoscalerConfig { allow_zero_initial_scale: true, ..Default::default() };
        let s = spec_with(&config, ComponentScaling::default(), &[(INITIAL_SCALE, "0")]).unwrap();
        assert_eq!(s.initial_scale, 0);
    }

    // Replays knative/serving pkg/apis/autoscaling/annotation_validation_test.go.
    #[test]
    fn annotations_are_validated_with_knatives_bounds() {
        let cases: &[(&[(&str, &str)], &str)] = &[
            (
                &[(MIN_SCALE, "-1")],
                "annotation autoscaling.knative.dev/min-scale: expected 0 <= -1 <= 2147483647",
            ),
            (
                &[(MIN_SCALE, "many")],
                "annotation autoscaling.knative.dev/min-scale: invalid value \"many\"",
            ),
            (
                &[("autoscaling.knative.dev/maxScale", "-2")],
                "annotation autoscaling.knative.dev/maxScale: expected 0 <= -2 <= 2147483647",
            ),
            (
                &[(MIN_SCALE, "5"), (MAX_SCALE, "2")],
                "annotation autoscaling.knative.dev/max-scale: max-scale=2 is less than min-scale=5",
            ),
            (
                &[(ACTIVATION_SCALE, "1")],
                "annotation autoscaling.knative.dev/activation-scale: activation-scale=1 must be greater than 1",
            ),
            (
                &[(MIN_SCALE, "3"), (ACTIVATION_SCALE, "2")],
                "annotation autoscaling.knative.dev/activation-scale: min-scale=3 is greater than activation-scale=2",
            ),
            (
                &[(MAX_SCALE, "3"), (ACTIVATION_SCALE, "4")],
                "annotation autoscaling.knative.dev/activation-scale: max-scale=3 is less than activation-scale=4",
            ),
            (
                &[(PANIC_WINDOW_PERCENTAGE, "0.5")],
                "annotation autoscaling.knative.dev/panic-window-percentage: expected 1 <= 0.5 <= 100",
            ),
            (
                &[(PANIC_THRESHOLD_PERCENTAGE, "105")],
                "annotation autoscaling.knative.dev/panic-threshold-percentage: expected 110 <= 105 <= 1000",
            ),
            (
                &[(PANIC_THRESHOLD_PERCENTAGE, "fifty")],
                "annotation autoscaling.knative.dev/panic-threshold-percentage: invalid value \"fifty\"",
            ),
            (
                &[(TARGET, "0.001")],
                "annotation autoscaling.knative.dev/target: target 0.001 should be at least 0.01",
            ),
            (
                &[(TARGET_UTILIZATION_PERCENTAGE, "101")],
                "annotation autoscaling.knative.dev/target-utilization-percentage: expected 1 <= 101 <= 100",
            ),
            (
                &[(TARGET_BURST_CAPACITY, "-2")],
                "annotation autoscaling.knative.dev/target-burst-capacity: invalid value \"-2\": must be either non-negative or -1 (for unlimited)",
            ),
            (
                &[(WINDOW, "5s")],
                "annotation autoscaling.knative.dev/window: expected 6s <= 5s <= 3600s",
            ),
            (
                &[(WINDOW, "61500ms")],
                "annotation autoscaling.knative.dev/window: must be specified with at most second precision",
            ),
            (
                &[(WINDOW, "soon")],
                "annotation autoscaling.knative.dev/window: invalid value \"soon\"",
            ),
            (
                &[(SCALE_DOWN_DELAY, "-5s")],
                "annotation autoscaling.knative.dev/scale-down-delay: expected 0s <= -5s <= 3600s",
            ),
            (
                &[(SCALE_DOWN_DELAY, "2h")],
                "annotation autoscaling.knative.dev/scale-down-delay: expected 0s <= 2h <= 3600s",
            ),
            (
                &[(SCALE_DOWN_DELAY, "1500ms")],
                "annotation autoscaling.knative.dev/scale-down-delay: must be specified with at most second precision",
            ),
            (
                &[(SCALE_TO_ZERO_POD_RETENTION_PERIOD, "2h")],
                "annotation autoscaling.knative.dev/scale-to-zero-pod-retention-period: expected 0s <= 2h <= 3600s",
            ),
            (
                &[(METRIC, "latency")],
                "annotation autoscaling.knative.dev/metric: invalid value \"latency\": the kpa.autoscaling.knative.dev class takes concurrency, rps, cpu or memory",
            ),
            (
                &[(CLASS, "xpa.autoscaling.knative.dev")],
                "annotation autoscaling.knative.dev/class: \"xpa.autoscaling.knative.dev\" is not supported, use kpa.autoscaling.knative.dev or hpa.autoscaling.knative.dev",
            ),
            (
                &[(METRIC_AGGREGATION_ALGORITHM, "median")],
                "annotation autoscaling.knative.dev/metric-aggregation-algorithm: invalid value \"median\"",
            ),
            (
                &[(INITIAL_SCALE, "-1")],
                "annotation autoscaling.knative.dev/initial-scale: invalid value \"-1\": must be at least 0",
            ),
        ];
        for (anns, want) in cases {
            assert_eq!(err(anns), *want, "{anns:?}");
        }
        let limited = AutoscalerConfig { max_scale_limit: 10, max_scale: 5, ..Default::default() };
        let e = spec_with(&limited, ComponentScaling::default(), &[(MAX_SCALE, "11")]).unwrap_err();
        assert_eq!(
            e.to_string(),
            "annotation autoscaling.knative.dev/max-scale: expected 1 <= 11 <= 10"
        );
        let e = spec_with(&limited, ComponentScaling::default(), &[(MAX_SCALE, "0")]).unwrap_err();
        assert_eq!(
            e.to_string(),
            "annotation autoscaling.knative.dev/max-scale: max-scale=0 (unlimited), must be less than 10"
        );
    }

    #[test]
    fn component_fields_are_checked() {
        let e = spec(ComponentScaling { min_replicas: Some(-1), ..Default::default() }, &[])
            .unwrap_err();
        assert_eq!(e.to_string(), "minReplicas: -1 must be at least 0");
        let e = spec(
            ComponentScaling { min_replicas: Some(3), max_replicas: Some(2), ..Default::default() },
            &[],
        )
        .unwrap_err();
        assert_eq!(e.to_string(), "maxReplicas: 2 is less than minReplicas 3");
        let e = spec(ComponentScaling { scale_target: Some(0), ..Default::default() }, &[])
            .unwrap_err();
        assert_eq!(e.to_string(), "scaleTarget: 0 must be at least 1");
        let e = "latency".parse::<ScaleMetric>().unwrap_err();
        assert_eq!(
            e.to_string(),
            "scaleMetric: \"latency\" is not one of concurrency, rps, cpu, memory"
        );
    }
}
