//! The load-test scenarios of `cargo xtask loadtest`: their names, the platform.yaml and
//! manifests each applies, and — in one submodule per scenario — the pure judgement of what
//! was measured against what the platform promises. The driving (processes, sockets, goose)
//! lives in the `oxserve-loadtest` binary; everything here is tested without a platform,
//! including that every criterion fails when the platform misbehaves.

pub mod autoscale;
pub mod batching;
pub mod canary;
pub mod multi_model;
pub mod scale_from_zero;
pub mod soak;

use std::fmt;
use std::str::FromStr;

/// A scenario name on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Autoscale,
    ScaleFromZero,
    Canary,
    Batching,
    MultiModel,
    Soak,
}

impl Kind {
    pub const ALL: [Kind; 6] = [
        Kind::Autoscale,
        Kind::ScaleFromZero,
        Kind::Canary,
        Kind::Batching,
        Kind::MultiModel,
        Kind::Soak,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Kind::Autoscale => "autoscale",
            Kind::ScaleFromZero => "scale-from-zero",
            Kind::Canary => "canary",
            Kind::Batching => "batching",
            Kind::MultiModel => "multi-model",
            Kind::Soak => "soak",
        }
    }

    /// The platform.yaml a local run starts `oxserve up` with: short autoscaler windows so a
    /// scenario sees scale-up, scale-down and scale to zero in seconds.
    pub fn platform_yaml(self) -> &'static str {
        match self {
            Kind::Autoscale | Kind::ScaleFromZero => FAST_AUTOSCALER,
            _ => STEADY,
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Kind {
    type Err = String;
    fn from_str(s: &str) -> Result<Kind, String> {
        Kind::ALL.into_iter().find(|k| k.name() == s).ok_or_else(|| {
            let names: Vec<&str> = Kind::ALL.iter().map(|k| k.name()).collect();
            format!("unknown scenario \"{s}\" (one of {})", names.join(", "))
        })
    }
}

/// The autoscaler windows of the scaling scenarios (also what their judgement assumes).
pub const STABLE_WINDOW_S: f64 = 6.0;
pub const PANIC_WINDOW_S: f64 = 1.0;
pub const GRACE_S: f64 = 2.0;
pub const TICK_S: f64 = 1.0;

const FAST_AUTOSCALER: &str = "\
autoscaler:
  stable-window: 6s
  panic-window-percentage: \"17\"
  scale-to-zero-grace-period: 2s
  tick-interval: 1s
activator:
  queue-depth: 10000
";

const STEADY: &str = "\
autoscaler:
  stable-window: 6s
  tick-interval: 1s
";

/// An InferenceService manifest with the fields the scenarios vary.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Service {
    pub name: String,
    /// `xgboost`, `onnx`, …
    pub format: String,
    pub storage_uri: String,
    pub min_replicas: Option<u32>,
    pub max_replicas: Option<u32>,
    pub canary_percent: Option<u32>,
    /// `autoscaling.knative.dev/…` annotations, without the prefix.
    pub autoscaling: Vec<(String, String)>,
    /// `(maxBatchSize, maxLatency ms)`.
    pub batcher: Option<(u32, u32)>,
    /// Model environment; a change makes a new revision (the canary's second version).
    pub env: Vec<(String, String)>,
    /// A custom predictor container's `command` (program and arguments) instead of a
    /// model: the local backend runs it with `--http_port=PORT` appended.
    pub command: Vec<String>,
}

impl Service {
    pub fn new(name: &str, format: &str, storage_uri: &str) -> Service {
        Service {
            name: name.into(),
            format: format.into(),
            storage_uri: storage_uri.into(),
            ..Service::default()
        }
    }

    /// The manifest as YAML, as a user would PUT it.
    pub fn yaml(&self) -> String {
        let mut s = format!(
            "apiVersion: serving.kserve.io/v1beta1\nkind: InferenceService\nmetadata:\n  name: {}\n",
            self.name
        );
        if !self.autoscaling.is_empty() {
            s.push_str("  annotations:\n");
            for (k, v) in &self.autoscaling {
                s.push_str(&format!("    autoscaling.knative.dev/{k}: \"{v}\"\n"));
            }
        }
        s.push_str("spec:\n  predictor:\n");
        if let Some(m) = self.min_replicas {
            s.push_str(&format!("    minReplicas: {m}\n"));
        }
        if let Some(m) = self.max_replicas {
            s.push_str(&format!("    maxReplicas: {m}\n"));
        }
        if let Some(p) = self.canary_percent {
            s.push_str(&format!("    canaryTrafficPercent: {p}\n"));
        }
        if let Some((size, latency)) = self.batcher {
            s.push_str(&format!(
                "    batcher:\n      maxBatchSize: {size}\n      maxLatency: {latency}\n"
            ));
        }
        if !self.command.is_empty() {
            let quoted: Vec<String> = self
                .command
                .iter()
                .map(|a| serde_json::Value::from(a.as_str()).to_string())
                .collect();
            s.push_str(&format!(
                "    containers:\n      - name: kserve-container\n        image: oxserve-loadtest/{}\n        command: [{}]\n",
                self.format,
                quoted.join(", ")
            ));
            if !self.env.is_empty() {
                s.push_str("        env:\n");
                for (k, v) in &self.env {
                    s.push_str(&format!("          - name: {k}\n            value: \"{v}\"\n"));
                }
            }
            return s;
        }
        s.push_str(&format!(
            "    model:\n      modelFormat:\n        name: {}\n      storageUri: {}\n",
            self.format, self.storage_uri
        ));
        if !self.env.is_empty() {
            s.push_str("      env:\n");
            for (k, v) in &self.env {
                s.push_str(&format!("        - name: {k}\n          value: \"{v}\"\n"));
            }
        }
        s
    }
}

/// A TrainedModel manifest loaded into `parent`.
pub fn trained_model_yaml(name: &str, parent: &str, framework: &str, storage_uri: &str) -> String {
    format!(
        "apiVersion: serving.kserve.io/v1alpha1\nkind: TrainedModel\nmetadata:\n  name: {name}\n\
         spec:\n  inferenceService: {parent}\n  model:\n    framework: {framework}\n    \
         storageUri: {storage_uri}\n    memory: 1Mi\n"
    )
}

/// The api path of an InferenceService.
pub fn isvc_path(namespace: &str, name: &str) -> String {
    format!("/apis/serving.kserve.io/v1beta1/namespaces/{namespace}/inferenceservices/{name}")
}

/// The api path of a TrainedModel.
pub fn tm_path(namespace: &str, name: &str) -> String {
    format!("/apis/serving.kserve.io/v1alpha1/namespaces/{namespace}/trainedmodels/{name}")
}

/// The first revision name of a service's predictor, and the next ones.
pub fn revision(service: &str, n: u32) -> String {
    format!("{service}-predictor-{n:05}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for k in Kind::ALL {
            assert_eq!(k.name().parse::<Kind>(), Ok(k));
        }
        assert!("nope".parse::<Kind>().unwrap_err().contains("autoscale, scale-from-zero"));
    }

    #[test]
    fn manifest_yaml_has_every_field() {
        let mut s = Service::new("a", "xgboost", "file:///m");
        s.min_replicas = Some(0);
        s.max_replicas = Some(8);
        s.canary_percent = Some(10);
        s.autoscaling = vec![("target".into(), "4".into())];
        s.batcher = Some((32, 5));
        s.env = vec![("VERSION".into(), "2".into())];
        let y = s.yaml();
        for want in [
            "autoscaling.knative.dev/target: \"4\"",
            "minReplicas: 0",
            "maxReplicas: 8",
            "canaryTrafficPercent: 10",
            "maxBatchSize: 32",
            "maxLatency: 5",
            "storageUri: file:///m",
            "- name: VERSION",
        ] {
            assert!(y.contains(want), "{want} missing in\n{y}");
        }
        assert!(
            trained_model_yaml("t1", "a", "xgboost", "file:///m").contains("inferenceService: a")
        );
        let mut c = Service::new("slow", "sleep", "");
        c.command = vec!["/bin/oxserve-sleep".into(), "--delay-ms=200".into()];
        let y = c.yaml();
        assert!(y.contains("containers:\n      - name: kserve-container\n"), "{y}");
        assert!(y.contains(r#"command: ["/bin/oxserve-sleep", "--delay-ms=200"]"#), "{y}");
        assert!(!y.contains("model:"), "{y}");
        assert_eq!(revision("a", 2), "a-predictor-00002");
    }
}
