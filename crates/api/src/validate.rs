//! Validation as pure functions: every error has a field path and a reason.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use crate::error::FieldError;
use crate::isvc::{
    Batcher, ExplainerSpec, InferenceService, LoggerSpec, MetricTargetType, PredictorSpec,
    ScaleMetric, StorageUri, TransformerSpec,
};
use crate::resource::{ApiGroup, Resource};
use crate::runtime::ServingRuntimeSpec;
use crate::trained_model::TrainedModel;

/// Longest DNS-1035 label.
pub const MAX_NAME_LEN: usize = 63;

/// `storageUri` schemes the puller understands (KServe's list); a URI without `://` is a
/// local path.
pub const STORAGE_URI_SCHEMES: [&str; 12] = [
    "gs",
    "s3",
    "pvc",
    "file",
    "https",
    "http",
    "hdfs",
    "webhdfs",
    "oci",
    "oci+native",
    "oci+fetch",
    "hf",
];

/// Knative's autoscaling annotation prefix.
pub const AUTOSCALING_PREFIX: &str = "autoscaling.knative.dev/";

/// Validates any kind.
pub fn validate_resource(resource: &Resource) -> Vec<FieldError> {
    match resource {
        Resource::InferenceService { group, object } => validate_inference_service(object, *group),
        Resource::TrainedModel { object, .. } => validate_trained_model(object),
        Resource::ServingRuntime { object, .. } => {
            let mut e = validate_name(&object.metadata, "metadata.name", 0);
            e.extend(validate_serving_runtime(&object.spec, "spec"));
            e
        }
        Resource::ClusterServingRuntime { object, .. } => {
            let mut e = validate_name(&object.metadata, "metadata.name", 0);
            e.extend(validate_serving_runtime(&object.spec.0, "spec"));
            e
        }
    }
}

/// Checks `metadata.name`: set, DNS-1035 (`[a-z]([-a-z0-9]*[a-z0-9])?`), and short enough that
/// `name` plus `suffix_len` characters (the longest derived name) fit 63.
pub fn validate_name(meta: &ObjectMeta, path: &str, suffix_len: usize) -> Vec<FieldError> {
    let Some(name) = meta.name.as_deref().filter(|n| !n.is_empty()) else {
        return vec![FieldError::new(path, "required")];
    };
    let mut errors = Vec::new();
    if !is_dns1035(name) {
        errors.push(FieldError::new(
            path,
            format!(
                "\"{name}\" is not a valid name: lowercase letters, digits and '-', starting with a letter and ending with a letter or digit"
            ),
        ));
    }
    if name.len() + suffix_len > MAX_NAME_LEN {
        let max = MAX_NAME_LEN - suffix_len;
        errors.push(FieldError::new(
            path,
            if suffix_len == 0 {
                format!("\"{name}\" is {} characters, at most {MAX_NAME_LEN}", name.len())
            } else {
                format!(
                    "\"{name}\" is {} characters, at most {max} (revision names add {suffix_len} and must fit {MAX_NAME_LEN})",
                    name.len()
                )
            },
        ));
    }
    errors
}

/// Whether `s` is a DNS-1035 label (without the length limit).
pub fn is_dns1035(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b[0].is_ascii_lowercase()
        && b.iter().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
        && b[b.len() - 1] != b'-'
}

/// Validates an InferenceService written for `group`.
pub fn validate_inference_service(isvc: &InferenceService, group: ApiGroup) -> Vec<FieldError> {
    let spec = &isvc.spec;
    // The longest revision name is NAME-<component>-00001.
    let mut suffix = "-predictor-00001".len();
    if spec.transformer.is_some() {
        suffix = "-transformer-00001".len();
    } else if spec.explainer.is_some() {
        suffix = suffix.max("-explainer-00001".len());
    }
    let mut errors = validate_name(&isvc.metadata, "metadata.name", suffix);
    if let Some(a) = &isvc.metadata.annotations {
        errors.extend(validate_annotations(a, "metadata.annotations"));
    }
    validate_predictor(&spec.predictor, "spec.predictor", &mut errors);
    if let Some(t) = &spec.transformer {
        validate_transformer(t, "spec.transformer", &mut errors);
    }
    if let Some(e) = &spec.explainer {
        validate_explainer(e, "spec.explainer", group, &mut errors);
    }
    if let Some(canaries) = &spec.canary {
        let mut names = BTreeSet::new();
        let mut total = 0i64;
        for (i, c) in canaries.iter().enumerate() {
            let path = format!("spec.canary[{i}]");
            match c.predictor.name.as_deref().filter(|n| !n.is_empty()) {
                None => errors.push(FieldError::new(
                    format!("{path}.predictor.name"),
                    "required for a canary",
                )),
                Some(n) => {
                    if !names.insert(n.to_owned()) {
                        errors.push(FieldError::new(
                            format!("{path}.predictor.name"),
                            format!("\"{n}\" is used twice"),
                        ));
                    }
                    if spec.predictor.name.as_deref() == Some(n) {
                        errors.push(FieldError::new(
                            format!("{path}.predictor.name"),
                            format!("\"{n}\" is the stable predictor's name"),
                        ));
                    }
                }
            }
            if !(0..=100).contains(&c.traffic_percent) {
                errors.push(FieldError::new(
                    format!("{path}.trafficPercent"),
                    format!("must be between 0 and 100, got {}", c.traffic_percent),
                ));
            }
            total += i64::from(c.traffic_percent);
            validate_predictor(&c.predictor, &format!("{path}.predictor"), &mut errors);
        }
        if total > 100 {
            errors.push(FieldError::new(
                "spec.canary",
                format!("trafficPercent adds up to {total}, at most 100"),
            ));
        }
    }
    errors
}

/// The implementations a predictor names, as KServe counts them: framework fields and
/// `model`, plus the custom container when `containers` has `kserve-container` or nothing
/// else is set.
pub fn predictor_implementations(p: &PredictorSpec) -> Vec<&'static str> {
    let mut found = Vec::new();
    for (name, set) in [
        ("sklearn", p.sklearn.is_some()),
        ("xgboost", p.xgboost.is_some()),
        ("tensorflow", p.tensorflow.is_some()),
        ("pytorch", p.pytorch.is_some()),
        ("triton", p.triton.is_some()),
        ("onnx", p.onnx.is_some()),
        ("huggingface", p.huggingface.is_some()),
        ("pmml", p.pmml.is_some()),
        ("lightgbm", p.lightgbm.is_some()),
        ("paddle", p.paddle.is_some()),
        ("model", p.model.is_some()),
    ] {
        if set {
            found.push(name);
        }
    }
    let containers = p.containers.as_deref().unwrap_or_default();
    if !containers.is_empty()
        && (found.is_empty()
            || containers.iter().any(|c| c.name == crate::defaults::SERVING_CONTAINER_NAME))
    {
        found.push("containers");
    }
    found
}

const PREDICTOR_KINDS: &str = "sklearn, xgboost, tensorflow, pytorch, triton, onnx, huggingface, pmml, lightgbm, paddle, model or containers";

fn validate_predictor(p: &PredictorSpec, path: &str, errors: &mut Vec<FieldError>) {
    let found = predictor_implementations(p);
    if found.len() != 1 {
        let got = if found.is_empty() { "none".to_owned() } else { found.join(", ") };
        errors.push(FieldError::new(
            path,
            format!("exactly one of {PREDICTOR_KINDS} must be set, found {got}"),
        ));
    }
    for (name, f) in [
        ("sklearn", &p.sklearn),
        ("xgboost", &p.xgboost),
        ("tensorflow", &p.tensorflow),
        ("pytorch", &p.pytorch),
        ("triton", &p.triton),
        ("onnx", &p.onnx),
        ("huggingface", &p.huggingface),
        ("pmml", &p.pmml),
        ("lightgbm", &p.lightgbm),
        ("paddle", &p.paddle),
    ] {
        if let Some(f) = f {
            let fpath = format!("{path}.{name}");
            validate_storage(f.storage_uri.as_deref(), &fpath, p.storage_uris.as_deref(), errors);
        }
    }
    if let Some(m) = &p.model {
        let mpath = format!("{path}.model");
        if m.model_format.name.is_empty() {
            errors
                .push(FieldError::new(format!("{mpath}.modelFormat.name"), "required, e.g. onnx"));
        }
        validate_storage(m.storage_uri.as_deref(), &mpath, p.storage_uris.as_deref(), errors);
    }
    if let Some(uris) = &p.storage_uris {
        validate_storage_uris(uris, &format!("{path}.storageUris"), errors);
    }
    validate_extension(&extension_of_predictor(p), path, errors);
}

fn validate_transformer(t: &TransformerSpec, path: &str, errors: &mut Vec<FieldError>) {
    if t.containers.as_deref().unwrap_or_default().is_empty() {
        errors.push(FieldError::new(
            format!("{path}.containers"),
            "a transformer needs at least one container",
        ));
    }
    if let Some(uris) = &t.storage_uris {
        validate_storage_uris(uris, &format!("{path}.storageUris"), errors);
    }
    validate_extension(&extension_of!(t), path, errors);
}

fn validate_explainer(
    e: &ExplainerSpec,
    path: &str,
    group: ApiGroup,
    errors: &mut Vec<FieldError>,
) {
    let mut found = Vec::new();
    if e.art.is_some() {
        found.push("art");
    }
    if e.explainer_type.is_some() {
        found.push("type");
        if group != ApiGroup::Oxserve {
            errors.push(FieldError::new(
                format!("{path}.type"),
                format!(
                    "oxserve's own explainer needs apiVersion serving.oxserve.dev/v1beta1; with {} write explainer.art or explainer.containers",
                    group.as_str()
                ),
            ));
        }
    } else if e.config.is_some() && e.art.is_none() {
        errors.push(FieldError::new(
            format!("{path}.config"),
            "only with explainer.type (oxserve's explainer)",
        ));
    }
    if !e.containers.as_deref().unwrap_or_default().is_empty() {
        found.push("containers");
    }
    if found.len() != 1 {
        let got = if found.is_empty() { "none".to_owned() } else { found.join(", ") };
        let choices = if group == ApiGroup::Oxserve {
            "art, type or containers"
        } else {
            "art or containers"
        };
        errors.push(FieldError::new(
            path,
            format!("exactly one of {choices} must be set, found {got}"),
        ));
    }
    if let Some(art) = &e.art
        && let Some(uri) = &art.storage_uri
    {
        validate_storage_uri(uri, &format!("{path}.art.storageUri"), errors);
    }
    if let Some(uris) = &e.storage_uris {
        validate_storage_uris(uris, &format!("{path}.storageUris"), errors);
    }
    validate_extension(&extension_of!(e), path, errors);
}

/// The component extension fields of any component, borrowed.
pub(crate) struct Extension<'a> {
    pub min_replicas: Option<i32>,
    pub max_replicas: Option<i32>,
    pub scale_target: Option<i32>,
    pub scale_metric: Option<ScaleMetric>,
    pub scale_metric_type: Option<MetricTargetType>,
    pub container_concurrency: Option<i64>,
    pub timeout: Option<i64>,
    pub canary_traffic_percent: Option<i64>,
    pub logger: Option<&'a LoggerSpec>,
    pub batcher: Option<&'a Batcher>,
    pub annotations: Option<&'a BTreeMap<String, String>>,
}

macro_rules! extension_of {
    ($c:expr) => {
        Extension {
            min_replicas: $c.min_replicas,
            max_replicas: $c.max_replicas,
            scale_target: $c.scale_target,
            scale_metric: $c.scale_metric,
            scale_metric_type: $c.scale_metric_type,
            container_concurrency: $c.container_concurrency,
            timeout: $c.timeout,
            canary_traffic_percent: $c.canary_traffic_percent,
            logger: $c.logger.as_ref(),
            batcher: $c.batcher.as_ref(),
            annotations: $c.annotations.as_ref(),
        }
    };
}
pub(crate) use extension_of;

fn extension_of_predictor(p: &PredictorSpec) -> Extension<'_> {
    extension_of!(p)
}

fn validate_extension(x: &Extension<'_>, path: &str, errors: &mut Vec<FieldError>) {
    let mut err = |field: &str, reason: String| {
        errors.push(FieldError::new(format!("{path}.{field}"), reason))
    };
    if let Some(min) = x.min_replicas.filter(|m| *m < 0) {
        err("minReplicas", format!("must not be negative, got {min}"));
    }
    if let Some(max) = x.max_replicas.filter(|m| *m < 0) {
        err("maxReplicas", format!("must not be negative, got {max}"));
    }
    if let (Some(min), Some(max)) = (x.min_replicas, x.max_replicas)
        && max > 0
        && min > max
    {
        err("minReplicas", format!("{min} is greater than maxReplicas {max}"));
    }
    if let Some(c) = x.container_concurrency.filter(|c| *c < 0) {
        err("containerConcurrency", format!("must not be negative, got {c}"));
    }
    if let Some(t) = x.timeout.filter(|t| *t <= 0) {
        err("timeout", format!("must be a positive number of seconds, got {t}"));
    }
    if let Some(p) = x.canary_traffic_percent.filter(|p| !(0..=100).contains(p)) {
        err("canaryTrafficPercent", format!("must be between 0 and 100, got {p}"));
    }
    let metric = x.scale_metric.unwrap_or(ScaleMetric::Concurrency);
    if let Some(t) = x.scale_target {
        if t < 1 {
            err("scaleTarget", format!("must be at least 1, got {t}"));
        } else if matches!(metric, ScaleMetric::Cpu | ScaleMetric::Memory)
            && x.scale_metric_type.unwrap_or(MetricTargetType::Utilization)
                == MetricTargetType::Utilization
            && t > 100
        {
            err(
                "scaleTarget",
                format!("a utilisation target is a percentage between 1 and 100, got {t}"),
            );
        }
    }
    if x.scale_metric_type.is_some() && !matches!(metric, ScaleMetric::Cpu | ScaleMetric::Memory) {
        err("scaleMetricType", "only with scaleMetric cpu or memory".to_owned());
    }
    if let Some(l) = x.logger {
        if let Some(url) = &l.url {
            if !(url.starts_with("http://") || url.starts_with("https://")) {
                err("logger.url", format!("\"{url}\" is not an http:// or https:// URL"));
            }
        } else if l.storage.is_none() {
            err(
                "logger.url",
                "required (the sink the events are sent to) unless logger.storage is set"
                    .to_owned(),
            );
        }
        if let Some(s) = &l.storage
            && (s.path.is_none() || s.parameters.is_none() || s.key.is_none())
        {
            err("logger.storage", "path, parameters and key are all required".to_owned());
        }
    }
    if let Some(b) = x.batcher {
        for (field, v) in [
            ("maxBatchSize", b.max_batch_size),
            ("maxLatency", b.max_latency),
            ("timeout", b.timeout),
        ] {
            if let Some(v) = v.filter(|v| *v < 1) {
                err(&format!("batcher.{field}"), format!("must be at least 1, got {v}"));
            }
        }
    }
    if let Some(a) = x.annotations {
        errors.extend(validate_annotations(a, &format!("{path}.annotations")));
    }
}

/// Validates the Knative autoscaling annotations in `annotations` (other keys pass).
pub fn validate_annotations(annotations: &BTreeMap<String, String>, path: &str) -> Vec<FieldError> {
    let mut errors = Vec::new();
    let mut min_scale = None;
    let mut max_scale = None;
    for (key, value) in annotations {
        let Some(name) = key.strip_prefix(AUTOSCALING_PREFIX) else { continue };
        let at = format!("{path}.{key}");
        let mut bad = |reason: String| errors.push(FieldError::new(at.clone(), reason));
        match name {
            "target" => match value.parse::<f64>() {
                Ok(v) if v > 0.0 && v.is_finite() => {}
                _ => bad(format!("\"{value}\" is not a positive number")),
            },
            "target-utilization-percentage" => match value.parse::<f64>() {
                Ok(v) if v > 0.0 && v <= 100.0 => {}
                _ => bad(format!("\"{value}\" is not a percentage between 1 and 100")),
            },
            "metric" if !["concurrency", "rps", "cpu", "memory"].contains(&value.as_str()) => {
                bad(format!("\"{value}\" is not one of concurrency, rps, cpu, memory"));
            }
            "class"
                if !["kpa.autoscaling.knative.dev", "hpa.autoscaling.knative.dev"]
                    .contains(&value.as_str()) =>
            {
                bad(format!(
                    "\"{value}\" is not one of kpa.autoscaling.knative.dev, hpa.autoscaling.knative.dev"
                ));
            }
            "window" => match parse_duration_secs(value) {
                Some(s) if (6.0..=3600.0).contains(&s) => {}
                Some(_) => bad(format!("\"{value}\" must be between 6s and 1h")),
                None => bad(format!("\"{value}\" is not a duration such as 60s or 2m")),
            },
            "scale-down-delay" | "scale-to-zero-pod-retention-period" => {
                match parse_duration_secs(value) {
                    Some(s) if (0.0..=3600.0).contains(&s) => {}
                    Some(_) => bad(format!("\"{value}\" must be between 0s and 1h")),
                    None => bad(format!("\"{value}\" is not a duration such as 60s or 2m")),
                }
            }
            "min-scale" | "minScale" | "max-scale" | "maxScale" | "initial-scale"
            | "initialScale" | "activation-scale" => match value.parse::<u64>() {
                Ok(v) => {
                    if matches!(name, "min-scale" | "minScale") {
                        min_scale = Some(v);
                    } else if matches!(name, "max-scale" | "maxScale") {
                        max_scale = Some(v);
                    } else if name == "activation-scale" && v < 1 {
                        bad("must be at least 1".to_owned());
                    }
                }
                Err(_) => bad(format!("\"{value}\" is not a whole number of replicas (0 or more)")),
            },
            "panic-window-percentage" => match value.parse::<f64>() {
                Ok(v) if (1.0..=100.0).contains(&v) => {}
                _ => bad(format!("\"{value}\" is not a percentage between 1 and 100")),
            },
            "panic-threshold-percentage" => match value.parse::<f64>() {
                Ok(v) if (110.0..=1000.0).contains(&v) => {}
                _ => bad(format!("\"{value}\" is not a percentage between 110 and 1000")),
            },
            "target-burst-capacity" => match value.parse::<f64>() {
                Ok(v) if v >= -1.0 => {}
                _ => bad(format!(
                    "\"{value}\" is not -1 (unlimited) or a number of requests, 0 or more"
                )),
            },
            _ => {}
        }
    }
    if let (Some(min), Some(max)) = (min_scale, max_scale)
        && max > 0
        && min > max
    {
        errors.push(FieldError::new(
            format!("{path}.{AUTOSCALING_PREFIX}min-scale"),
            format!("{min} is greater than max-scale {max}"),
        ));
    }
    errors
}

/// The autoscaling annotation names oxserve's autoscaler reads (after the prefix).
pub const KNOWN_AUTOSCALING_ANNOTATIONS: [&str; 17] = [
    "target",
    "target-utilization-percentage",
    "metric",
    "class",
    "window",
    "scale-down-delay",
    "scale-to-zero-pod-retention-period",
    "min-scale",
    "minScale",
    "max-scale",
    "maxScale",
    "initial-scale",
    "initialScale",
    "activation-scale",
    "panic-window-percentage",
    "panic-threshold-percentage",
    "target-burst-capacity",
];

/// Seconds in a Go-style duration (`90s`, `2m`, `1h30m`, `1.5s`, `500ms`).
pub fn parse_duration_secs(s: &str) -> Option<f64> {
    if s.is_empty() {
        return None;
    }
    let mut total = 0.0;
    let mut rest = s;
    while !rest.is_empty() {
        let num_len = rest.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(rest.len());
        if num_len == 0 {
            return None;
        }
        let n: f64 = rest[..num_len].parse().ok()?;
        rest = &rest[num_len..];
        let unit_len = rest.find(|c: char| c.is_ascii_digit() || c == '.').unwrap_or(rest.len());
        let factor = match &rest[..unit_len] {
            "h" => 3600.0,
            "m" => 60.0,
            "s" => 1.0,
            "ms" => 0.001,
            "us" | "µs" => 1e-6,
            "ns" => 1e-9,
            _ => return None,
        };
        rest = &rest[unit_len..];
        total += n * factor;
    }
    Some(total)
}

fn validate_storage(
    uri: Option<&str>,
    path: &str,
    uris: Option<&[StorageUri]>,
    errors: &mut Vec<FieldError>,
) {
    if let Some(uri) = uri {
        validate_storage_uri(uri, &format!("{path}.storageUri"), errors);
        if uris.is_some() {
            errors.push(FieldError::new(
                format!("{path}.storageUri"),
                "set either storageUri or storageUris, not both",
            ));
        }
    }
}

fn validate_storage_uris(uris: &[StorageUri], path: &str, errors: &mut Vec<FieldError>) {
    let mut mounts = BTreeSet::new();
    for (i, u) in uris.iter().enumerate() {
        validate_storage_uri(&u.uri, &format!("{path}[{i}].uri"), errors);
        if !u.mount_path.starts_with('/') {
            errors.push(FieldError::new(
                format!("{path}[{i}].mountPath"),
                format!("\"{}\" is not an absolute path", u.mount_path),
            ));
        } else if !mounts.insert(u.mount_path.as_str()) {
            errors.push(FieldError::new(
                format!("{path}[{i}].mountPath"),
                format!("\"{}\" is used twice", u.mount_path),
            ));
        }
    }
}

/// Checks a storage URI: one of [`STORAGE_URI_SCHEMES`], or a local path.
pub fn validate_storage_uri(uri: &str, path: &str, errors: &mut Vec<FieldError>) {
    if uri.is_empty() {
        errors.push(FieldError::new(path, "must not be empty"));
        return;
    }
    if let Some((scheme, rest)) = uri.split_once("://") {
        if !STORAGE_URI_SCHEMES.contains(&scheme) {
            errors.push(FieldError::new(
                path,
                format!("\"{uri}\": unsupported scheme \"{scheme}\", expected one of {}:// or a local path", STORAGE_URI_SCHEMES.join("://, ")),
            ));
        } else if rest.is_empty() {
            errors.push(FieldError::new(path, format!("\"{uri}\" names no location")));
        }
    }
}

/// Validates a TrainedModel.
pub fn validate_trained_model(tm: &TrainedModel) -> Vec<FieldError> {
    let mut errors = validate_name(&tm.metadata, "metadata.name", 0);
    if tm.spec.inference_service.is_empty() {
        errors.push(FieldError::new(
            "spec.inferenceService",
            "required: the InferenceService that serves this model",
        ));
    }
    if tm.spec.model.framework.is_empty() {
        errors.push(FieldError::new("spec.model.framework", "required, e.g. sklearn"));
    }
    validate_storage_uri(&tm.spec.model.storage_uri, "spec.model.storageUri", &mut errors);
    if parse_quantity_bytes(&tm.spec.model.memory.0).is_none() {
        errors.push(FieldError::new(
            "spec.model.memory",
            format!("\"{}\" is not a memory quantity such as 256Mi or 1G", tm.spec.model.memory.0),
        ));
    }
    errors
}

/// Bytes in a Kubernetes memory quantity (`256Mi`, `1G`, `1e3`, `512`).
pub fn parse_quantity_bytes(q: &str) -> Option<f64> {
    let q = q.trim();
    let split =
        q.find(|c: char| c.is_ascii_alphabetic() && c != 'e' && c != 'E').unwrap_or(q.len());
    let (num, suffix) = q.split_at(split);
    let n: f64 = num.parse().ok()?;
    let factor = match suffix {
        "" => 1.0,
        "Ki" => 1024.0,
        "Mi" => 1024f64.powi(2),
        "Gi" => 1024f64.powi(3),
        "Ti" => 1024f64.powi(4),
        "Pi" => 1024f64.powi(5),
        "Ei" => 1024f64.powi(6),
        "k" => 1e3,
        "M" => 1e6,
        "G" => 1e9,
        "T" => 1e12,
        "P" => 1e15,
        "E" => 1e18,
        "m" => 1e-3,
        _ => return None,
    };
    (n >= 0.0).then_some(n * factor)
}

/// Validates a ServingRuntime spec.
pub fn validate_serving_runtime(spec: &ServingRuntimeSpec, path: &str) -> Vec<FieldError> {
    let mut errors = Vec::new();
    if spec.containers.is_empty() {
        errors.push(FieldError::new(
            format!("{path}.containers"),
            "a runtime needs at least one container",
        ));
    }
    for (i, f) in spec.supported_model_formats.iter().flatten().enumerate() {
        if f.name.is_empty() {
            errors.push(FieldError::new(
                format!("{path}.supportedModelFormats[{i}].name"),
                "required",
            ));
        }
    }
    errors
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dns1035() {
        assert!(is_dns1035("my-model-1"));
        for bad in ["", "1abc", "My", "a_b", "abc-", "-abc", "a.b"] {
            assert!(!is_dns1035(bad), "{bad}");
        }
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration_secs("90s"), Some(90.0));
        assert_eq!(parse_duration_secs("1h30m"), Some(5400.0));
        assert_eq!(parse_duration_secs("500ms"), Some(0.5));
        assert_eq!(parse_duration_secs("5"), None);
        assert_eq!(parse_duration_secs("s"), None);
    }

    #[test]
    fn quantities() {
        assert_eq!(parse_quantity_bytes("256Mi"), Some(256.0 * 1024.0 * 1024.0));
        assert_eq!(parse_quantity_bytes("1G"), Some(1e9));
        assert_eq!(parse_quantity_bytes("1e3"), Some(1000.0));
        assert_eq!(parse_quantity_bytes("lots"), None);
    }

    #[test]
    fn annotations() {
        let a: BTreeMap<String, String> = [
            ("autoscaling.knative.dev/target", "0"),
            ("autoscaling.knative.dev/metric", "latency"),
            ("autoscaling.knative.dev/window", "2s"),
            ("autoscaling.knative.dev/min-scale", "3"),
            ("autoscaling.knative.dev/max-scale", "2"),
            ("autoscaling.knative.dev/class", "kpa.autoscaling.knative.dev"),
            ("example.com/other", "anything"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        let errors = validate_annotations(&a, "metadata.annotations");
        let paths: Vec<&str> = errors.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "metadata.annotations.autoscaling.knative.dev/metric",
                "metadata.annotations.autoscaling.knative.dev/target",
                "metadata.annotations.autoscaling.knative.dev/window",
                "metadata.annotations.autoscaling.knative.dev/min-scale",
            ]
        );
    }
}
