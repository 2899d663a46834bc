//! The cluster-wide autoscaler configuration: Knative's `config-autoscaler` ConfigMap, key for
//! key and default for default (`pkg/autoscaler/config/config.go`), plus oxserve's
//! `tick-interval`. It is read from the `autoscaler:` section of `platform.yaml` or from a
//! ConfigMap's string data; every key is optional, unknown keys are refused by name, and the
//! result is validated with Knative's bounds before use.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::ser::{SerializeMap, Serializer};
use serde::{Deserialize, Serialize};

use super::{Error, Result};

/// Knative's class name of the KPA.
pub const KPA_CLASS: &str = "kpa.autoscaling.knative.dev";
/// Knative's class name of the HPA.
pub const HPA_CLASS: &str = "hpa.autoscaling.knative.dev";

/// The smallest target a metric may have (Knative's `TargetMin`).
pub const TARGET_MIN: f64 = 0.01;
/// Bounds of the stable window (Knative's `WindowMin` / `WindowMax`).
pub const WINDOW_MIN: Duration = Duration::from_secs(6);
pub const WINDOW_MAX: Duration = Duration::from_secs(3600);
/// Bounds of the panic window as a percentage of the stable window.
pub const PANIC_WINDOW_PERCENTAGE_MIN: f64 = 1.0;
pub const PANIC_WINDOW_PERCENTAGE_MAX: f64 = 100.0;
/// Bounds of the panic threshold percentage (annotation only; the ConfigMap is not bounded).
pub const PANIC_THRESHOLD_PERCENTAGE_MIN: f64 = 110.0;
pub const PANIC_THRESHOLD_PERCENTAGE_MAX: f64 = 1000.0;

/// The target utilisation of metrics other than concurrency (Knative's fixed
/// `defaultTargetUtilization`; not a ConfigMap key).
pub const DEFAULT_TARGET_UTILIZATION: f64 = 0.7;

/// Every key of the configuration, in the order of Knative's ConfigMap.
pub const KEYS: &[&str] = &[
    "container-concurrency-target-percentage",
    "container-concurrency-target-default",
    "requests-per-second-target-default",
    "target-burst-capacity",
    "stable-window",
    "panic-window-percentage",
    "panic-threshold-percentage",
    "max-scale-up-rate",
    "max-scale-down-rate",
    "enable-scale-to-zero",
    "scale-to-zero-grace-period",
    "scale-to-zero-pod-retention-period",
    "pod-autoscaler-class",
    "activator-capacity",
    "initial-scale",
    "allow-zero-initial-scale",
    "min-scale",
    "max-scale",
    "scale-down-delay",
    "max-scale-limit",
    "tick-interval",
];

/// The autoscaler configuration (Knative's `autoscalerconfig.Config`), validated.
#[derive(Clone, Debug, PartialEq)]
pub struct AutoscalerConfig {
    /// `container-concurrency-target-percentage` as a fraction (70 → 0.7; values in (0, 1]
    /// are taken as fractions already, as Knative does for legacy reasons).
    pub container_concurrency_target_fraction: f64,
    /// `container-concurrency-target-default`: the per-replica capacity when
    /// `containerConcurrency` is 0 (unlimited).
    pub container_concurrency_target_default: f64,
    /// `requests-per-second-target-default`.
    pub requests_per_second_target_default: f64,
    /// `target-burst-capacity`: 0 never keeps the activator in the path for capacity, -1
    /// always does.
    pub target_burst_capacity: f64,
    pub stable_window: Duration,
    pub panic_window_percentage: f64,
    pub panic_threshold_percentage: f64,
    pub max_scale_up_rate: f64,
    pub max_scale_down_rate: f64,
    pub enable_scale_to_zero: bool,
    pub scale_to_zero_grace_period: Duration,
    pub scale_to_zero_pod_retention_period: Duration,
    pub pod_autoscaler_class: String,
    pub activator_capacity: f64,
    pub initial_scale: u32,
    pub allow_zero_initial_scale: bool,
    pub min_scale: u32,
    /// 0 = unbounded.
    pub max_scale: u32,
    /// 0 = no limit on `max-scale`.
    pub max_scale_limit: u32,
    pub scale_down_delay: Duration,
    /// How often the platform calls [`Autoscaler::tick`](super::Autoscaler::tick) (Knative's
    /// fixed `tickInterval`); also the bucket width of the `scale-down-delay` window.
    pub tick_interval: Duration,
}

impl Default for AutoscalerConfig {
    fn default() -> AutoscalerConfig {
        AutoscalerConfig {
            container_concurrency_target_fraction: 0.7,
            container_concurrency_target_default: 100.0,
            requests_per_second_target_default: 200.0,
            target_burst_capacity: 211.0,
            stable_window: Duration::from_secs(60),
            panic_window_percentage: 10.0,
            panic_threshold_percentage: 200.0,
            max_scale_up_rate: 1000.0,
            max_scale_down_rate: 2.0,
            enable_scale_to_zero: true,
            scale_to_zero_grace_period: Duration::from_secs(30),
            scale_to_zero_pod_retention_period: Duration::ZERO,
            pod_autoscaler_class: KPA_CLASS.to_string(),
            activator_capacity: 100.0,
            initial_scale: 1,
            allow_zero_initial_scale: false,
            min_scale: 0,
            max_scale: 0,
            max_scale_limit: 0,
            scale_down_delay: Duration::ZERO,
            tick_interval: Duration::from_secs(2),
        }
    }
}

/// One value as written in YAML/JSON: ConfigMaps hold strings, `platform.yaml` may hold plain
/// numbers and booleans.
#[derive(Clone, Debug, PartialEq)]
enum Raw {
    Str(String),
    Num(f64),
    Bool(bool),
}

impl Raw {
    fn text(&self) -> String {
        match self {
            Raw::Str(s) => s.clone(),
            Raw::Num(n) => n.to_string(),
            Raw::Bool(b) => b.to_string(),
        }
    }
}

impl AutoscalerConfig {
    /// Parses a ConfigMap's `data` (every value a string). `_example` (Knative's
    /// documentation key) is ignored.
    pub fn from_config_map(data: &BTreeMap<String, String>) -> Result<AutoscalerConfig> {
        let raw = data.iter().map(|(k, v)| (k.clone(), Raw::Str(v.clone()))).collect::<Vec<_>>();
        Self::from_raw(raw)
    }

    /// Parses the `autoscaler:` section of `platform.yaml` (or any self-describing value:
    /// a `serde_yaml::Value`, a `serde_json::Value`, …).
    pub fn from_yaml_value<'de, D: Deserializer<'de>>(value: D) -> Result<AutoscalerConfig> {
        let raw =
            value.deserialize_any(RawMapVisitor).map_err(|e| Error::ConfigShape(e.to_string()))?;
        Self::from_raw(raw)
    }

    fn from_raw(raw: Vec<(String, Raw)>) -> Result<AutoscalerConfig> {
        let mut c = AutoscalerConfig::default();
        for (key, value) in raw {
            if key == "_example" {
                continue;
            }
            let bad = |reason: String| Error::Config { key: key.clone(), reason };
            let float = || parse_float(&value).map_err(bad);
            let int = || parse_int(&value).map_err(bad);
            let boolean = || parse_bool(&value).map_err(bad);
            let duration = || {
                parse_go_duration(&value.text())
                    .map_err(|e| bad(format!("{:?}: {e}", value.text())))
                    .and_then(|d| d.non_negative().map_err(|r| bad(r.to_string())))
            };
            match key.as_str() {
                "container-concurrency-target-percentage" => {
                    c.container_concurrency_target_fraction = float()?
                }
                "container-concurrency-target-default" => {
                    c.container_concurrency_target_default = float()?
                }
                "requests-per-second-target-default" => {
                    c.requests_per_second_target_default = float()?
                }
                "target-burst-capacity" => c.target_burst_capacity = float()?,
                "stable-window" => c.stable_window = duration()?,
                "panic-window-percentage" => c.panic_window_percentage = float()?,
                "panic-threshold-percentage" => c.panic_threshold_percentage = float()?,
                "max-scale-up-rate" => c.max_scale_up_rate = float()?,
                "max-scale-down-rate" => c.max_scale_down_rate = float()?,
                "enable-scale-to-zero" => c.enable_scale_to_zero = boolean()?,
                "scale-to-zero-grace-period" => c.scale_to_zero_grace_period = duration()?,
                "scale-to-zero-pod-retention-period" => {
                    c.scale_to_zero_pod_retention_period = duration()?
                }
                "pod-autoscaler-class" => c.pod_autoscaler_class = value.text(),
                "activator-capacity" => c.activator_capacity = float()?,
                "initial-scale" => c.initial_scale = non_negative(int()?, &key)?,
                "allow-zero-initial-scale" => c.allow_zero_initial_scale = boolean()?,
                "min-scale" => c.min_scale = non_negative(int()?, &key)?,
                "max-scale" => c.max_scale = non_negative(int()?, &key)?,
                "max-scale-limit" => c.max_scale_limit = non_negative(int()?, &key)?,
                "scale-down-delay" => c.scale_down_delay = duration()?,
                "tick-interval" => c.tick_interval = duration()?,
                _ => {
                    return Err(Error::Config {
                        key: key.clone(),
                        reason: unknown_key_reason(&key),
                    });
                }
            }
        }
        // Percent ⇒ fraction: values in (0, 1] are fractions already (Knative's legacy rule).
        if c.container_concurrency_target_fraction > 1.0 {
            c.container_concurrency_target_fraction /= 100.0;
        }
        c.validate()?;
        Ok(c)
    }

    /// Knative's `validate` (same bounds, same order), plus `tick-interval`.
    pub fn validate(&self) -> Result<()> {
        let err = |key: &str, reason: String| Err(Error::Config { key: key.into(), reason });
        if self.scale_to_zero_grace_period.is_zero() {
            return err("scale-to-zero-grace-period", "must be positive, was 0s".into());
        }
        if !whole_seconds(self.scale_down_delay) {
            return err(
                "scale-down-delay",
                format!(
                    "{} must be specified with at most second precision",
                    format_duration(self.scale_down_delay)
                ),
            );
        }
        if self.target_burst_capacity < 0.0 && self.target_burst_capacity != -1.0 {
            return err(
                "target-burst-capacity",
                format!(
                    "must be either non-negative or -1 (for unlimited), was {}",
                    self.target_burst_capacity
                ),
            );
        }
        let f = self.container_concurrency_target_fraction;
        if f <= 0.0 || f > 1.0 || f.is_nan() {
            return err(
                "container-concurrency-target-percentage",
                format!("{} is outside of valid range of (0, 100]", f * 100.0),
            );
        }
        let target = f * self.container_concurrency_target_default;
        if target < TARGET_MIN || target.is_nan() {
            return err(
                "container-concurrency-target-default",
                format!(
                    "container-concurrency-target-percentage and container-concurrency-target-default yield target concurrency of {target}, can't be less than {TARGET_MIN}"
                ),
            );
        }
        if self.requests_per_second_target_default < TARGET_MIN
            || self.requests_per_second_target_default.is_nan()
        {
            return err(
                "requests-per-second-target-default",
                format!(
                    "must be at least {TARGET_MIN}, was {}",
                    self.requests_per_second_target_default
                ),
            );
        }
        if self.activator_capacity < 1.0 || self.activator_capacity.is_nan() {
            return err(
                "activator-capacity",
                format!("{} must be at least 1", self.activator_capacity),
            );
        }
        if self.max_scale_up_rate <= 1.0 || self.max_scale_up_rate.is_nan() {
            return err(
                "max-scale-up-rate",
                format!("{} must be greater than 1.0", self.max_scale_up_rate),
            );
        }
        if self.max_scale_down_rate <= 1.0 || self.max_scale_down_rate.is_nan() {
            return err(
                "max-scale-down-rate",
                format!("{} must be greater than 1.0", self.max_scale_down_rate),
            );
        }
        if self.stable_window < WINDOW_MIN || self.stable_window > WINDOW_MAX {
            return err(
                "stable-window",
                format!(
                    "{} must be in [{}, {}] range",
                    format_duration(self.stable_window),
                    format_duration(WINDOW_MIN),
                    format_duration(WINDOW_MAX)
                ),
            );
        }
        if !whole_seconds(self.stable_window) {
            return err(
                "stable-window",
                format!(
                    "{} must be specified with at most second precision",
                    format_duration(self.stable_window)
                ),
            );
        }
        let p = self.panic_window_percentage;
        if !(PANIC_WINDOW_PERCENTAGE_MIN..=PANIC_WINDOW_PERCENTAGE_MAX).contains(&p) {
            return err(
                "panic-window-percentage",
                format!(
                    "{p} must be in [{PANIC_WINDOW_PERCENTAGE_MIN}, {PANIC_WINDOW_PERCENTAGE_MAX}] interval"
                ),
            );
        }
        if self.panic_threshold_percentage <= 0.0 || self.panic_threshold_percentage.is_nan() {
            return err(
                "panic-threshold-percentage",
                format!("{} must be positive", self.panic_threshold_percentage),
            );
        }
        if self.initial_scale == 0 && !self.allow_zero_initial_scale {
            return err(
                "initial-scale",
                "0 must be at least 1 when allow-zero-initial-scale is false".into(),
            );
        }
        let min_max_scale = u32::from(self.max_scale_limit > 0);
        if self.max_scale < min_max_scale
            || (self.max_scale_limit > 0 && self.max_scale > self.max_scale_limit)
        {
            return err(
                "max-scale",
                format!(
                    "{} must be in [{min_max_scale}, max-scale-limit({})] range",
                    self.max_scale, self.max_scale_limit
                ),
            );
        }
        if self.max_scale > 0 && self.min_scale > self.max_scale {
            return err(
                "min-scale",
                format!(
                    "min-scale ({}) must be less than max-scale ({})",
                    self.min_scale, self.max_scale
                ),
            );
        }
        if self.tick_interval.is_zero() || self.tick_interval > self.stable_window {
            return err(
                "tick-interval",
                format!(
                    "{} must be positive and at most the stable window",
                    format_duration(self.tick_interval)
                ),
            );
        }
        if self.pod_autoscaler_class != KPA_CLASS && self.pod_autoscaler_class != HPA_CLASS {
            return err(
                "pod-autoscaler-class",
                format!(
                    "{:?} is not supported, use {KPA_CLASS} or {HPA_CLASS}",
                    self.pod_autoscaler_class
                ),
            );
        }
        Ok(())
    }

    /// The configuration as ConfigMap data (every key, values as strings).
    pub fn to_config_map(&self) -> BTreeMap<String, String> {
        let mut m = BTreeMap::new();
        let mut put = |k: &str, v: String| {
            m.insert(k.to_string(), v);
        };
        put(
            "container-concurrency-target-percentage",
            fmt_float(self.container_concurrency_target_fraction * 100.0),
        );
        put(
            "container-concurrency-target-default",
            fmt_float(self.container_concurrency_target_default),
        );
        put(
            "requests-per-second-target-default",
            fmt_float(self.requests_per_second_target_default),
        );
        put("target-burst-capacity", fmt_float(self.target_burst_capacity));
        put("stable-window", format_duration(self.stable_window));
        put("panic-window-percentage", fmt_float(self.panic_window_percentage));
        put("panic-threshold-percentage", fmt_float(self.panic_threshold_percentage));
        put("max-scale-up-rate", fmt_float(self.max_scale_up_rate));
        put("max-scale-down-rate", fmt_float(self.max_scale_down_rate));
        put("enable-scale-to-zero", self.enable_scale_to_zero.to_string());
        put("scale-to-zero-grace-period", format_duration(self.scale_to_zero_grace_period));
        put(
            "scale-to-zero-pod-retention-period",
            format_duration(self.scale_to_zero_pod_retention_period),
        );
        put("pod-autoscaler-class", self.pod_autoscaler_class.clone());
        put("activator-capacity", fmt_float(self.activator_capacity));
        put("initial-scale", self.initial_scale.to_string());
        put("allow-zero-initial-scale", self.allow_zero_initial_scale.to_string());
        put("min-scale", self.min_scale.to_string());
        put("max-scale", self.max_scale.to_string());
        put("scale-down-delay", format_duration(self.scale_down_delay));
        put("max-scale-limit", self.max_scale_limit.to_string());
        put("tick-interval", format_duration(self.tick_interval));
        m
    }
}

fn fmt_float(v: f64) -> String {
    // Rounded to hide binary noise (0.7 * 100 = 70.00000000000001).
    let r = (v * 1e9).round() / 1e9;
    r.to_string()
}

fn unknown_key_reason(key: &str) -> String {
    let close = KEYS.iter().min_by_key(|k| edit_distance(k, key)).filter(|k| {
        let d = edit_distance(k, key);
        d <= 3 || k.contains(key) || key.contains(*k)
    });
    match close {
        Some(k) => format!("unknown key, did you mean {k}"),
        None => "unknown key".to_string(),
    }
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != *cb);
            cur[j + 1] = (prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

fn whole_seconds(d: Duration) -> bool {
    d.subsec_nanos() == 0
}

fn non_negative(v: i64, key: &str) -> Result<u32> {
    u32::try_from(v).map_err(|_| Error::Config {
        key: key.to_string(),
        reason: format!("{v} must be at least 0"),
    })
}

fn parse_float(v: &Raw) -> Result<f64, String> {
    match v {
        Raw::Num(n) => Ok(*n),
        Raw::Str(s) => s
            .trim()
            .parse::<f64>()
            .ok()
            .filter(|f| f.is_finite())
            .ok_or_else(|| format!("{s:?} is not a number")),
        Raw::Bool(b) => Err(format!("{b} is not a number")),
    }
}

fn parse_int(v: &Raw) -> Result<i64, String> {
    match v {
        Raw::Num(n) if n.fract() == 0.0 && n.abs() < 2f64.powi(53) => Ok(*n as i64),
        Raw::Str(s) => {
            let parsed = s.trim().parse::<i64>().map_err(|_| format!("{s:?} is not an integer"))?;
            i32::try_from(parsed).map_err(|_| format!("{s:?} is out of the 32-bit range"))?;
            Ok(parsed)
        }
        other => Err(format!("{} is not an integer", other.text())),
    }
}

fn parse_bool(v: &Raw) -> Result<bool, String> {
    match v {
        Raw::Bool(b) => Ok(*b),
        // Go's strconv.ParseBool, which Knative's cm.AsBool uses.
        Raw::Str(s) => match s.trim() {
            "1" | "t" | "T" | "true" | "TRUE" | "True" => Ok(true),
            "0" | "f" | "F" | "false" | "FALSE" | "False" => Ok(false),
            other => Err(format!("{other:?} is not a boolean")),
        },
        Raw::Num(n) => Err(format!("{n} is not a boolean")),
    }
}

/// A duration as Go's `time.ParseDuration` reads it, sign kept so that a negative value can
/// be refused with a precise reason.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct SignedDuration {
    pub(crate) negative: bool,
    pub(crate) magnitude: Duration,
}

impl SignedDuration {
    pub(crate) fn non_negative(self) -> Result<Duration, &'static str> {
        if self.negative && !self.magnitude.is_zero() {
            Err("cannot be negative")
        } else {
            Ok(self.magnitude)
        }
    }
}

/// Go's `time.ParseDuration`: a possibly signed sequence of decimal numbers, each with an
/// optional fraction and a unit (`ns`, `us`, `µs`, `ms`, `s`, `m`, `h`), e.g. `60s`, `1m30s`,
/// `1.5h`; `0` alone needs no unit.
pub(crate) fn parse_go_duration(text: &str) -> Result<SignedDuration, String> {
    let mut s = text.trim();
    let mut negative = false;
    if let Some(rest) = s.strip_prefix('-') {
        negative = true;
        s = rest;
    } else if let Some(rest) = s.strip_prefix('+') {
        s = rest;
    }
    if s == "0" {
        return Ok(SignedDuration { negative, magnitude: Duration::ZERO });
    }
    if s.is_empty() {
        return Err("invalid duration".into());
    }
    let mut total: u128 = 0;
    while !s.is_empty() {
        let digits = s.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(s.len());
        let number = &s[..digits];
        if number.is_empty() || number == "." || number.matches('.').count() > 1 {
            return Err("invalid duration".into());
        }
        s = &s[digits..];
        let unit_len = s.find(|c: char| c.is_ascii_digit() || c == '.').unwrap_or(s.len());
        let unit = &s[..unit_len];
        s = &s[unit_len..];
        let nanos_per_unit: u128 = match unit {
            "ns" => 1,
            "us" | "µs" | "μs" => 1_000,
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "m" => 60_000_000_000,
            "h" => 3_600_000_000_000,
            "" => return Err("missing unit in duration".into()),
            other => return Err(format!("unknown unit {other:?} in duration")),
        };
        let (whole, frac) = number.split_once('.').unwrap_or((number, ""));
        let whole: u128 = if whole.is_empty() {
            0
        } else {
            whole.parse().map_err(|_| "invalid duration".to_string())?
        };
        let mut nanos = whole.checked_mul(nanos_per_unit).ok_or("duration out of range")?;
        let mut scale = nanos_per_unit;
        for d in frac.chars() {
            scale /= 10;
            if scale == 0 {
                break;
            }
            nanos += u128::from(d.to_digit(10).unwrap_or(0)) * scale;
        }
        total = total.checked_add(nanos).ok_or("duration out of range")?;
    }
    // Go's Duration is an int64 of nanoseconds.
    if total > i64::MAX as u128 {
        return Err("duration out of range".into());
    }
    Ok(SignedDuration { negative, magnitude: Duration::from_nanos(total as u64) })
}

/// Formats a duration so that [`parse_go_duration`] reads it back: `60s`, `1500ms`, `0s`.
pub(crate) fn format_duration(d: Duration) -> String {
    if d.subsec_nanos() == 0 {
        format!("{}s", d.as_secs())
    } else if d.as_nanos().is_multiple_of(1_000_000) {
        format!("{}ms", d.as_millis())
    } else if d.as_nanos().is_multiple_of(1_000) {
        format!("{}us", d.as_micros())
    } else {
        format!("{}ns", d.as_nanos())
    }
}

struct RawMapVisitor;

impl<'de> Visitor<'de> for RawMapVisitor {
    type Value = Vec<(String, Raw)>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a map of config-autoscaler keys to values")
    }

    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        // `autoscaler:` with nothing under it: all defaults.
        Ok(Vec::new())
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut out = Vec::new();
        while let Some(key) = map.next_key::<String>()? {
            let value = map
                .next_value::<RawValue>()
                .map_err(|e| de::Error::custom(format_args!("{key}: {e}")))?;
            out.push((key, value.0));
        }
        Ok(out)
    }
}

struct RawValue(Raw);

impl<'de> Deserialize<'de> for RawValue {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<RawValue, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = RawValue;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string, number or boolean")
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<RawValue, E> {
                Ok(RawValue(Raw::Bool(v)))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<RawValue, E> {
                Ok(RawValue(Raw::Num(v as f64)))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<RawValue, E> {
                Ok(RawValue(Raw::Num(v as f64)))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<RawValue, E> {
                Ok(RawValue(Raw::Num(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<RawValue, E> {
                Ok(RawValue(Raw::Str(v.to_string())))
            }
        }
        d.deserialize_any(V)
    }
}

impl<'de> Deserialize<'de> for AutoscalerConfig {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<AutoscalerConfig, D::Error> {
        let raw = d.deserialize_any(RawMapVisitor)?;
        AutoscalerConfig::from_raw(raw).map_err(de::Error::custom)
    }
}

impl Serialize for AutoscalerConfig {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let m = self.to_config_map();
        let mut map = s.serialize_map(Some(m.len()))?;
        for key in KEYS {
            map.serialize_entry(key, &m[*key])?;
        }
        map.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn from_json(v: serde_json::Value) -> Result<AutoscalerConfig> {
        AutoscalerConfig::from_yaml_value(v)
    }

    fn err_text(v: serde_json::Value) -> String {
        from_json(v).unwrap_err().to_string()
    }

    /// Knative's own `config/core/configmaps/autoscaler.yaml` `_example` values, as written
    /// there (strings, `10.0`, `"kpa.autoscaling.knative.dev"`).
    fn knative_example() -> BTreeMap<String, String> {
        [
            ("container-concurrency-target-percentage", "70"),
            ("container-concurrency-target-default", "100"),
            ("requests-per-second-target-default", "200"),
            ("target-burst-capacity", "211"),
            ("stable-window", "60s"),
            ("panic-window-percentage", "10.0"),
            ("panic-threshold-percentage", "200.0"),
            ("max-scale-up-rate", "1000.0"),
            ("max-scale-down-rate", "2.0"),
            ("enable-scale-to-zero", "true"),
            ("scale-to-zero-grace-period", "30s"),
            ("scale-to-zero-pod-retention-period", "0s"),
            ("pod-autoscaler-class", "kpa.autoscaling.knative.dev"),
            ("activator-capacity", "100.0"),
            ("initial-scale", "1"),
            ("allow-zero-initial-scale", "false"),
            ("min-scale", "0"),
            ("max-scale", "0"),
            ("scale-down-delay", "0s"),
            ("max-scale-limit", "0"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
    }

    #[test]
    fn defaults_equal_knatives_configmap() {
        let parsed = AutoscalerConfig::from_config_map(&knative_example()).unwrap();
        assert_eq!(parsed, AutoscalerConfig::default());
        // An empty section is all defaults too.
        assert_eq!(from_json(json!({})).unwrap(), AutoscalerConfig::default());
        assert_eq!(from_json(serde_json::Value::Null).unwrap(), AutoscalerConfig::default());
        // Every Knative key is a key here, and the example names every key but ours.
        let example = knative_example();
        for key in KEYS {
            assert!(example.contains_key(*key) || *key == "tick-interval", "{key}");
        }
        assert_eq!(example.len() + 1, KEYS.len());
    }

    #[test]
    fn default_values_one_by_one() {
        let c = AutoscalerConfig::default();
        assert_eq!(c.container_concurrency_target_fraction, 0.7);
        assert_eq!(c.container_concurrency_target_default, 100.0);
        assert_eq!(c.requests_per_second_target_default, 200.0);
        assert_eq!(c.target_burst_capacity, 211.0);
        assert_eq!(c.stable_window, Duration::from_secs(60));
        assert_eq!(c.panic_window_percentage, 10.0);
        assert_eq!(c.panic_threshold_percentage, 200.0);
        assert_eq!(c.max_scale_up_rate, 1000.0);
        assert_eq!(c.max_scale_down_rate, 2.0);
        assert!(c.enable_scale_to_zero);
        assert_eq!(c.scale_to_zero_grace_period, Duration::from_secs(30));
        assert_eq!(c.scale_to_zero_pod_retention_period, Duration::ZERO);
        assert_eq!(c.pod_autoscaler_class, KPA_CLASS);
        assert_eq!(c.activator_capacity, 100.0);
        assert_eq!(c.initial_scale, 1);
        assert!(!c.allow_zero_initial_scale);
        assert_eq!((c.min_scale, c.max_scale, c.max_scale_limit), (0, 0, 0));
        assert_eq!(c.scale_down_delay, Duration::ZERO);
        assert_eq!(c.tick_interval, Duration::from_secs(2));
        assert!(c.validate().is_ok());
    }

    #[test]
    fn yaml_values_may_be_plain_numbers_and_booleans() {
        let c = from_json(json!({
            "stable-window": "2m",
            "max-scale-up-rate": 10,
            "enable-scale-to-zero": false,
            "container-concurrency-target-percentage": 0.5,
            "max-scale": "20",
            "min-scale": 2,
            "scale-down-delay": "1m30s",
        }))
        .unwrap();
        assert_eq!(c.stable_window, Duration::from_secs(120));
        assert_eq!(c.max_scale_up_rate, 10.0);
        assert!(!c.enable_scale_to_zero);
        assert_eq!(c.container_concurrency_target_fraction, 0.5);
        assert_eq!((c.min_scale, c.max_scale), (2, 20));
        assert_eq!(c.scale_down_delay, Duration::from_secs(90));
    }

    #[test]
    fn unknown_key_is_refused_by_name() {
        let e = err_text(json!({ "stable-windw": "60s" }));
        assert_eq!(e, "autoscaler config stable-windw: unknown key, did you mean stable-window");
        let e = err_text(json!({ "colour": "blue" }));
        assert_eq!(e, "autoscaler config colour: unknown key");
        // serde's path: the same check through Deserialize.
        let e = serde_json::from_value::<AutoscalerConfig>(json!({ "panic-window": "6s" }))
            .unwrap_err()
            .to_string();
        assert!(e.contains("panic-window: unknown key"), "{e}");
    }

    #[test]
    fn bad_durations_are_refused_with_key_and_value() {
        for (value, want) in [
            ("not a duration", "\"not a duration\": invalid duration"),
            ("60", "\"60\": missing unit in duration"),
            ("5x", "\"5x\": unknown unit \"x\" in duration"),
        ] {
            let e = err_text(json!({ "stable-window": value }));
            assert_eq!(e, format!("autoscaler config stable-window: {want}"));
        }
        let e = err_text(json!({ "scale-down-delay": "-1m23s" }));
        assert_eq!(e, "autoscaler config scale-down-delay: cannot be negative");
        let e = err_text(json!({ "scale-to-zero-pod-retention-period": "-4m11s" }));
        assert_eq!(e, "autoscaler config scale-to-zero-pod-retention-period: cannot be negative");
    }

    // Replays the failing cases of knative/serving pkg/autoscaler/config/config_test.go.
    #[test]
    fn knative_invalid_configs_are_refused() {
        let cases: &[(&[(&str, &str)], &str)] = &[
            (&[("max-scale-up-rate", "not a float")], "max-scale-up-rate"),
            (&[("target-burst-capacity", "-11")], "target-burst-capacity"),
            (
                &[("container-concurrency-target-percentage", "-42")],
                "container-concurrency-target-percentage",
            ),
            (
                &[("container-concurrency-target-percentage", "142.4")],
                "container-concurrency-target-percentage",
            ),
            (
                &[("requests-per-second-target-default", "-5.25")],
                "requests-per-second-target-default",
            ),
            (&[("max-scale-up-rate", "1")], "max-scale-up-rate"),
            (&[("max-scale-down-rate", "-55")], "max-scale-down-rate"),
            (&[("max-scale-down-rate", "1")], "max-scale-down-rate"),
            (&[("stable-window", "1h1s")], "stable-window"),
            (&[("stable-window", "1s")], "stable-window"),
            (&[("stable-window", "61984ms")], "stable-window"),
            (&[("scale-down-delay", "61984ms")], "scale-down-delay"),
            (&[("activator-capacity", "0.95")], "activator-capacity"),
            (&[("panic-window-percentage", "0.1")], "panic-window-percentage"),
            (&[("panic-window-percentage", "110")], "panic-window-percentage"),
            (
                &[
                    ("container-concurrency-target-percentage", "1"),
                    ("container-concurrency-target-default", "0.001"),
                ],
                "container-concurrency-target-default",
            ),
            (&[("scale-to-zero-grace-period", "0s")], "scale-to-zero-grace-period"),
            (&[("allow-zero-initial-scale", "false"), ("initial-scale", "0")], "initial-scale"),
            (&[("initial-scale", "-1")], "initial-scale"),
            (&[("initial-scale", "invalid")], "initial-scale"),
            (&[("allow-zero-initial-scale", "invalid")], "allow-zero-initial-scale"),
            (&[("max-scale", "-1")], "max-scale"),
            (&[("max-scale", "10"), ("max-scale-limit", "9")], "max-scale"),
            (&[("max-scale-limit", "-9")], "max-scale-limit"),
            (&[("max-scale", "0"), ("max-scale-limit", "11")], "max-scale"),
            (&[("min-scale", "4"), ("max-scale", "3")], "min-scale"),
            (&[("tick-interval", "0s")], "tick-interval"),
            (&[("pod-autoscaler-class", "custom.example.com")], "pod-autoscaler-class"),
        ];
        for (pairs, key) in cases {
            let data: BTreeMap<String, String> =
                pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
            let e = AutoscalerConfig::from_config_map(&data).unwrap_err();
            assert!(matches!(&e, Error::Config { key: k, .. } if k == key), "{pairs:?}: got {e}");
        }
        // A few of the messages in full.
        let e = err_text(json!({ "stable-window": "1s" }));
        assert_eq!(e, "autoscaler config stable-window: 1s must be in [6s, 3600s] range");
        let e = err_text(json!({ "max-scale": "10", "max-scale-limit": "9" }));
        assert_eq!(e, "autoscaler config max-scale: 10 must be in [1, max-scale-limit(9)] range");
    }

    #[test]
    fn fractions_and_percentages() {
        let c = from_json(json!({ "container-concurrency-target-percentage": "1" })).unwrap();
        assert_eq!(c.container_concurrency_target_fraction, 1.0);
        let c = from_json(json!({ "container-concurrency-target-percentage": "85" })).unwrap();
        assert!((c.container_concurrency_target_fraction - 0.85).abs() < 1e-12);
    }

    #[test]
    fn go_durations() {
        let ok = |s: &str| parse_go_duration(s).unwrap().non_negative().unwrap();
        assert_eq!(ok("0"), Duration::ZERO);
        assert_eq!(ok("0s"), Duration::ZERO);
        assert_eq!(ok("1m30s"), Duration::from_secs(90));
        assert_eq!(ok("1.5h"), Duration::from_secs(5400));
        assert_eq!(ok("500ms"), Duration::from_millis(500));
        assert_eq!(ok("2us"), Duration::from_micros(2));
        assert_eq!(ok(".5s"), Duration::from_millis(500));
        assert!(parse_go_duration("").is_err());
        assert!(parse_go_duration("s").is_err());
        assert!(parse_go_duration("1..2s").is_err());
        assert!(parse_go_duration("-5s").unwrap().non_negative().is_err());
        for d in [Duration::ZERO, Duration::from_secs(60), Duration::from_millis(1500)] {
            assert_eq!(ok(&format_duration(d)), d);
        }
    }

    #[test]
    fn serializes_back_to_the_same_config() {
        let c = from_json(json!({ "stable-window": "90s", "target-burst-capacity": -1 })).unwrap();
        let v = serde_json::to_value(&c).unwrap();
        assert_eq!(v["stable-window"], "90s");
        assert_eq!(v["container-concurrency-target-percentage"], "70");
        assert_eq!(from_json(v).unwrap(), c);
    }
}
