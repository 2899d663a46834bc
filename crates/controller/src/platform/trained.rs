//! TrainedModels on the platform (KServe's multi-model serving): which of a service's
//! TrainedModels its predictor loads, within the predictor's memory budget, and the status
//! each TrainedModel gets, as KServe's TrainedModel controller writes it.
//!
//! - The budget is the predictor's memory (`resources.limits.memory`, else
//!   `resources.requests.memory`, of the model spec, the framework spec or
//!   `containers[0]`). Without one every supported model loads.
//! - A model whose `spec.model.memory` alone is over the budget never loads
//!   (`MemoryResourceAvailable` False, `MemoryResourceUnavailable`). The others are taken
//!   most recently used first (the last inference any replica reports, else when the model
//!   was applied) while they fit; the least recently used ones that do not fit are evicted
//!   (`MemoryResourceAvailable` False, `Evicted`) and come back when memory frees up.
//! - `FrameworkSupported`: the parent runs the built-in server and the model's framework
//!   (`spec.model.framework`, or `modelFormat.name`) is one it serves.
//! - `Ready` when the parent is ready, the framework supported, memory available and every
//!   ready replica of the parent's serving revisions has loaded it.
//!
//! Everything here is pure; the reconcile loop ([`super::Platform`]) feeds it.

use serde_json::{Value, json};

use super::workload::SERVER_FORMATS;

/// KServe's TrainedModel condition types.
pub const INFERENCE_SERVICE_READY: &str = "InferenceServiceReady";
pub const FRAMEWORK_SUPPORTED: &str = "FrameworkSupported";
pub const MEMORY_RESOURCE_AVAILABLE: &str = "MemoryResourceAvailable";
pub const READY: &str = "Ready";

/// A Kubernetes quantity (`256Mi`, `1G`, `1.5Gi`, `500k`, `1e9`, `1024`) in bytes.
pub fn parse_quantity(text: &str) -> Option<u64> {
    let t = text.trim();
    let suffixes: [(&str, f64); 12] = [
        ("Ki", 1024.0),
        ("Mi", 1024f64.powi(2)),
        ("Gi", 1024f64.powi(3)),
        ("Ti", 1024f64.powi(4)),
        ("Pi", 1024f64.powi(5)),
        ("Ei", 1024f64.powi(6)),
        ("k", 1e3),
        ("M", 1e6),
        ("G", 1e9),
        ("T", 1e12),
        ("P", 1e15),
        ("E", 1e18),
    ];
    let (number, factor) =
        suffixes.iter().find_map(|(s, f)| t.strip_suffix(s).map(|n| (n, *f))).unwrap_or((t, 1.0));
    let n: f64 = number.parse().ok()?;
    (n.is_finite() && n >= 0.0).then(|| (n * factor).ceil() as u64)
}

/// The predictor's memory budget in bytes, from its component spec.
pub fn memory_budget(predictor: &Value) -> Option<u64> {
    let mut places: Vec<&Value> = Vec::new();
    if let Some(m) = predictor.get("model") {
        places.push(m);
    }
    for f in ["sklearn", "xgboost", "lightgbm", "onnx", "tensorflow", "pytorch", "triton"] {
        if let Some(m) = predictor.get(f) {
            places.push(m);
        }
    }
    if let Some(c) = predictor.pointer("/containers/0") {
        places.push(c);
    }
    places.push(predictor);
    places.iter().find_map(|p| {
        ["/resources/limits/memory", "/resources/requests/memory"]
            .iter()
            .find_map(|ptr| p.pointer(ptr))
            .and_then(|q| match q {
                Value::String(s) => parse_quantity(s),
                Value::Number(n) => n.as_u64(),
                _ => None,
            })
    })
}

/// `spec.model.framework`, else `spec.model.modelFormat.name`, lower-case.
pub fn framework(tm: &Value) -> Option<String> {
    tm.pointer("/spec/model/framework")
        .or_else(|| tm.pointer("/spec/model/modelFormat/name"))
        .and_then(Value::as_str)
        .map(str::to_ascii_lowercase)
}

/// Whether the built-in server loads models of `framework`.
pub fn framework_supported(framework: Option<&str>) -> bool {
    framework.is_some_and(|f| SERVER_FORMATS.contains(&f))
}

/// One TrainedModel competing for its parent's memory.
#[derive(Clone, Debug, PartialEq)]
pub struct Candidate {
    pub name: String,
    /// `spec.model.memory` in bytes (0 when not given).
    pub memory: u64,
    /// Last use, ms since the epoch: the last inference, else when it was applied.
    pub last_used_ms: u64,
}

/// Why a model is not loaded for lack of memory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MemoryRefusal {
    /// It alone is over the budget.
    TooLarge { memory: u64, budget: u64 },
    /// It does not fit beside models used more recently.
    Evicted { memory: u64, budget: u64, in_use: u64 },
}

impl MemoryRefusal {
    /// KServe-style reason and a message.
    pub fn reason_and_message(&self) -> (&'static str, String) {
        match self {
            MemoryRefusal::TooLarge { memory, budget } => (
                "MemoryResourceUnavailable",
                format!(
                    "the model needs {memory} bytes, more than the predictor's memory of {budget} bytes"
                ),
            ),
            MemoryRefusal::Evicted { memory, budget, in_use } => (
                "Evicted",
                format!(
                    "evicted as the least recently used: {memory} bytes do not fit beside {in_use} bytes of models used more recently, within the predictor's memory of {budget} bytes"
                ),
            ),
        }
    }
}

/// Which candidates load: most recently used first while they fit in `budget` (all of them
/// without a budget). Returns the admitted names (in order) and the refused ones.
pub fn admit(
    candidates: &[Candidate],
    budget: Option<u64>,
) -> (Vec<String>, Vec<(String, MemoryRefusal)>) {
    let Some(budget) = budget else {
        return (candidates.iter().map(|c| c.name.clone()).collect(), Vec::new());
    };
    let mut order: Vec<&Candidate> = candidates.iter().collect();
    order.sort_by(|a, b| b.last_used_ms.cmp(&a.last_used_ms).then_with(|| a.name.cmp(&b.name)));
    let (mut admitted, mut refused) = (Vec::new(), Vec::new());
    let mut in_use = 0u64;
    for c in order {
        if c.memory > budget {
            refused.push((c.name.clone(), MemoryRefusal::TooLarge { memory: c.memory, budget }));
        } else if in_use + c.memory <= budget {
            in_use += c.memory;
            admitted.push(c.name.clone());
        } else {
            refused.push((
                c.name.clone(),
                MemoryRefusal::Evicted { memory: c.memory, budget, in_use },
            ));
        }
    }
    (admitted, refused)
}

/// One condition as KServe writes it.
pub fn condition(kind: &str, ok: bool, reason: Option<&str>, message: Option<String>) -> Value {
    let mut c = json!({"type": kind, "status": if ok { "True" } else { "False" }});
    if let Some(r) = reason {
        c["reason"] = r.into();
    }
    if let Some(m) = message {
        c["message"] = m.into();
    }
    c
}

/// `http://PARENT.NS.DOMAIN/v1/models/NAME`, as KServe writes a TrainedModel's URL.
pub fn url(parent: &str, namespace: &str, domain: &str, name: &str) -> String {
    format!("http://{parent}.{namespace}.{domain}/v1/models/{name}")
}

/// Keeps each condition's `lastTransitionTime` from `previous` while its status is the
/// same, else stamps `now`.
pub fn stamp(conditions: &mut [Value], previous: Option<&Value>, now: &str) {
    for c in conditions {
        let kind = c.get("type").cloned();
        let kept = previous
            .and_then(|p| p.get("conditions"))
            .and_then(Value::as_array)
            .and_then(|all| all.iter().find(|o| o.get("type") == kind.as_ref()))
            .filter(|o| o.get("status") == c.get("status"))
            .and_then(|o| o.get("lastTransitionTime").cloned());
        c["lastTransitionTime"] = kept.unwrap_or_else(|| Value::from(now));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantities_in_bytes() {
        assert_eq!(parse_quantity("256Mi"), Some(256 * 1024 * 1024));
        assert_eq!(parse_quantity("1G"), Some(1_000_000_000));
        assert_eq!(parse_quantity("1.5Gi"), Some(3 * 512 * 1024 * 1024));
        assert_eq!(parse_quantity("500k"), Some(500_000));
        assert_eq!(parse_quantity("1e3"), Some(1000));
        assert_eq!(parse_quantity("1024"), Some(1024));
        assert_eq!(parse_quantity("lots"), None);
        assert_eq!(parse_quantity("-1Mi"), None);
    }

    #[test]
    fn the_budget_is_the_predictors_memory_limit_else_request() {
        let p = json!({"model": {"modelFormat": {"name": "onnx"},
            "resources": {"limits": {"memory": "1Gi"}, "requests": {"memory": "512Mi"}}}});
        assert_eq!(memory_budget(&p), Some(1 << 30));
        let p = json!({"xgboost": {"resources": {"requests": {"memory": "100M"}}}});
        assert_eq!(memory_budget(&p), Some(100_000_000));
        let p = json!({"containers": [{"resources": {"limits": {"memory": "2k"}}}]});
        assert_eq!(memory_budget(&p), Some(2000));
        assert_eq!(memory_budget(&json!({"model": {}})), None);
    }

    fn c(name: &str, memory: u64, last_used_ms: u64) -> Candidate {
        Candidate { name: name.into(), memory, last_used_ms }
    }

    #[test]
    fn without_a_budget_everything_loads() {
        let (a, r) = admit(&[c("a", 10, 0), c("b", u64::MAX, 1)], None);
        assert_eq!(a, ["a", "b"]);
        assert!(r.is_empty());
    }

    #[test]
    fn the_least_recently_used_are_evicted_and_the_too_large_never_load() {
        let all = [c("old", 40, 100), c("recent", 40, 300), c("new", 40, 500), c("huge", 200, 900)];
        let (a, r) = admit(&all, Some(100));
        assert_eq!(a, ["new", "recent"]);
        assert_eq!(
            r,
            vec![
                ("huge".to_owned(), MemoryRefusal::TooLarge { memory: 200, budget: 100 }),
                ("old".to_owned(), MemoryRefusal::Evicted { memory: 40, budget: 100, in_use: 80 }),
            ]
        );
        // Using the old one makes it the most recent: the next least recent goes.
        let all = [c("old", 40, 1000), c("recent", 40, 300), c("new", 40, 500)];
        let (a, r) = admit(&all, Some(100));
        assert_eq!(a, ["old", "new"]);
        assert_eq!(r[0].0, "recent");
        let (reason, message) = r[0].1.reason_and_message();
        assert_eq!(reason, "Evicted");
        assert!(message.contains("least recently used"), "{message}");
    }

    #[test]
    fn frameworks_and_urls() {
        let tm = json!({"spec": {"model": {"framework": "XGBoost"}}});
        assert_eq!(framework(&tm).as_deref(), Some("xgboost"));
        assert!(framework_supported(Some("xgboost")));
        let tm = json!({"spec": {"model": {"modelFormat": {"name": "tensorflow"}}}});
        assert!(!framework_supported(framework(&tm).as_deref()));
        assert!(!framework_supported(None));
        assert_eq!(
            url("iris", "default", "example.com", "tm1"),
            "http://iris.default.example.com/v1/models/tm1"
        );
    }

    #[test]
    fn transition_times_stay_while_the_status_does() {
        let previous = json!({"conditions": [
            {"type": "Ready", "status": "False", "lastTransitionTime": "t1"},
            {"type": "FrameworkSupported", "status": "True", "lastTransitionTime": "t0"}]});
        let mut now = vec![
            condition(READY, true, None, None),
            condition(FRAMEWORK_SUPPORTED, true, None, None),
        ];
        stamp(&mut now, Some(&previous), "t2");
        assert_eq!(now[0]["lastTransitionTime"], "t2");
        assert_eq!(now[1]["lastTransitionTime"], "t0");
    }
}
