//! Per-model settings: the optional `model-settings.json` beside a model, using MLServer's
//! field names where they fit, validated into [`ModelSettings`] before use.
//!
//! ```json
//! {
//!   "name": "iris",
//!   "versions": ["2"],
//!   "max_batch_size": 32,
//!   "max_batch_time": 0.002,
//!   "preferred_batch_sizes": [8, 16],
//!   "max_queue_size": 1024,
//!   "timeout": 5.0,
//!   "inputs": [{"name": "input-0", "datatype": "FP32", "shape": [-1, 4]}],
//!   "outputs": [{"name": "predict", "datatype": "INT64", "shape": [-1]}],
//!   "parameters": {"intra_op_threads": 1, "onnx_native": true}
//! }
//! ```
//! Every field is optional. Times are in seconds, as in MLServer. `inputs`/`outputs`
//! replace the metadata the runtime reports (names must exist in the model). Unknown
//! fields are an error, so a typo cannot be silently ignored.
//!
//! `explainer` configures explanations (`docs/explain.md`); tree models explain themselves
//! with TreeSHAP without it, any model (ONNX included) with KernelSHAP when it says so:
//! ```json
//! "explainer": {
//!   "type": "kernelshap",
//!   "background": {"file": "background.csv", "summary": "kmeans", "size": 10},
//!   "nsamples": 2048,
//!   "seed": 0,
//!   "output": "probabilities"
//! }
//! ```
//! `background.file` (relative to the model directory) holds rows as JSON (`[[…], …]`,
//! `null` for NaN) or CSV (one row a line, an optional header line); `summary` is `none`
//! (every row, the default), `kmeans` (`size` weighted cluster centres, as `shap.kmeans`) or
//! `sample` (`size` rows drawn with `seed`). `nsamples` is a number or `"auto"` (`2M + 2048`
//! for `M` features, as `shap`).

use std::path::{Path, PathBuf};
use std::time::Duration;

use oxserve_protocol::TensorMetadata;
use serde::Deserialize;

use crate::error::{Error, Result};

/// The file name looked for in a model directory.
pub const SETTINGS_FILE: &str = "model-settings.json";

/// `model-settings.json` as written on disk.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSettings {
    name: Option<String>,
    versions: Option<Vec<String>>,
    max_batch_size: Option<usize>,
    max_batch_time: Option<f64>,
    preferred_batch_sizes: Option<Vec<usize>>,
    max_queue_size: Option<usize>,
    timeout: Option<f64>,
    inputs: Option<Vec<TensorMetadata>>,
    outputs: Option<Vec<TensorMetadata>>,
    parameters: Option<RawParameters>,
    explainer: Option<RawExplainer>,
    /// MLServer's Python class path; accepted so MLServer files load, otherwise unused.
    #[allow(dead_code)]
    implementation: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawParameters {
    intra_op_threads: Option<usize>,
    sessions: Option<usize>,
    onnx_native: Option<bool>,
    /// MLServer's `parameters.uri` / `parameters.version`: accepted, version used as the
    /// served version name of an unversioned model.
    #[allow(dead_code)]
    uri: Option<String>,
    version: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawExplainer {
    #[serde(rename = "type")]
    kind: String,
    background: Option<RawBackground>,
    nsamples: Option<serde_json::Value>,
    seed: Option<u64>,
    output: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawBackground {
    file: PathBuf,
    summary: Option<String>,
    size: Option<usize>,
}

/// Which explainer `explainer.type` asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExplainerKind {
    /// Exact TreeSHAP (tree models only; what they use without settings too).
    TreeShap,
    /// Model-agnostic KernelSHAP over a background dataset.
    KernelShap,
}

/// How the background file's rows are summarised.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Summary {
    /// Every row, equally weighted.
    None,
    /// `k` cluster centres weighted by their sizes (`shap.kmeans`).
    KMeans(usize),
    /// `n` rows drawn without replacement.
    Sample(usize),
}

/// Where the background dataset of KernelSHAP comes from.
#[derive(Debug, Clone, PartialEq)]
pub struct BackgroundSettings {
    /// The rows' file (resolved against the model directory by [`ModelSettings::load_dir`]).
    pub file: PathBuf,
    pub summary: Summary,
}

/// Validated `explainer` settings.
#[derive(Debug, Clone, PartialEq)]
pub struct ExplainerSettings {
    pub kind: ExplainerKind,
    /// Required for KernelSHAP.
    pub background: Option<BackgroundSettings>,
    /// Coalitions per explained row; `None` is `shap`'s `"auto"`, `2M + 2048`.
    pub nsamples: Option<usize>,
    pub seed: u64,
    /// The output to explain; by default the model's first FP32/FP64 output.
    pub output: Option<String>,
}

impl ExplainerSettings {
    fn from_raw(raw: RawExplainer) -> std::result::Result<ExplainerSettings, String> {
        let kind = match raw.kind.as_str() {
            "treeshap" => ExplainerKind::TreeShap,
            "kernelshap" => ExplainerKind::KernelShap,
            other => {
                return Err(format!(
                    "explainer.type must be \"treeshap\" or \"kernelshap\", got {other:?}"
                ));
            }
        };
        let background = match raw.background {
            None if kind == ExplainerKind::KernelShap => {
                return Err("explainer.background is required for kernelshap".into());
            }
            None => None,
            Some(b) => {
                let size = || match b.size {
                    Some(n) if n > 0 => Ok(n),
                    _ => Err(format!(
                        "explainer.background.size must be at least 1 for summary {:?}",
                        b.summary.as_deref().unwrap_or_default()
                    )),
                };
                let summary = match b.summary.as_deref() {
                    None | Some("none") => Summary::None,
                    Some("kmeans") => Summary::KMeans(size()?),
                    Some("sample") => Summary::Sample(size()?),
                    Some(other) => {
                        return Err(format!(
                            "explainer.background.summary must be \"none\", \"kmeans\" or \"sample\", got {other:?}"
                        ));
                    }
                };
                Some(BackgroundSettings { file: b.file, summary })
            }
        };
        let nsamples = match raw.nsamples {
            None => None,
            Some(serde_json::Value::String(s)) if s == "auto" => None,
            Some(v) => match v.as_u64().and_then(|n| usize::try_from(n).ok()) {
                Some(n) if n >= 1 => Some(n),
                _ => {
                    return Err(format!("explainer.nsamples must be \"auto\" or a count, got {v}"));
                }
            },
        };
        Ok(ExplainerSettings {
            kind,
            background,
            nsamples,
            seed: raw.seed.unwrap_or(0),
            output: raw.output,
        })
    }
}

/// Validated per-model settings.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelSettings {
    /// Served name; defaults to the directory name.
    pub name: Option<String>,
    /// Versions to load; empty = the latest only.
    pub versions: Vec<String>,
    /// Version name of an unversioned model (default "1").
    pub version: Option<String>,
    /// Rows per batch; 0 or 1 disables the batcher.
    pub max_batch_size: usize,
    pub max_batch_time: Duration,
    pub preferred_batch_sizes: Vec<usize>,
    pub max_queue_size: usize,
    /// Per-request timeout while queued in the batcher.
    pub timeout: Option<Duration>,
    pub inputs: Option<Vec<TensorMetadata>>,
    pub outputs: Option<Vec<TensorMetadata>>,
    pub intra_op_threads: Option<usize>,
    pub sessions: Option<usize>,
    /// ONNX models: `false` keeps a graph the native evaluator supports on ONNX Runtime.
    pub onnx_native: Option<bool>,
    /// Explanations (`None`: TreeSHAP for tree models, none for others).
    pub explainer: Option<ExplainerSettings>,
}

impl Default for ModelSettings {
    fn default() -> Self {
        ModelSettings {
            name: None,
            versions: Vec::new(),
            version: None,
            max_batch_size: 0,
            max_batch_time: Duration::ZERO,
            preferred_batch_sizes: Vec::new(),
            max_queue_size: 1024,
            timeout: None,
            inputs: None,
            outputs: None,
            intra_op_threads: None,
            sessions: None,
            onnx_native: None,
            explainer: None,
        }
    }
}

impl ModelSettings {
    /// Reads `dir/model-settings.json` if present, else the defaults.
    pub fn load_dir(dir: &Path, model: &str) -> Result<ModelSettings> {
        let path = dir.join(SETTINGS_FILE);
        match std::fs::read(&path) {
            Ok(bytes) => {
                let mut settings = ModelSettings::parse(&bytes, model)?;
                if let Some(b) = settings.explainer.as_mut().and_then(|e| e.background.as_mut()) {
                    b.file = dir.join(&b.file);
                }
                Ok(settings)
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(ModelSettings::default()),
            Err(e) => Err(Error::load(model, format!("reading {}: {e}", path.display()))),
        }
    }

    /// Parses and validates settings JSON.
    pub fn parse(bytes: &[u8], model: &str) -> Result<ModelSettings> {
        let raw: RawSettings = serde_json::from_slice(bytes)
            .map_err(|e| Error::load(model, format!("{SETTINGS_FILE}: {e}")))?;
        let bad = |msg: String| Error::load(model, format!("{SETTINGS_FILE}: {msg}"));
        let seconds = |field: &str, v: f64| {
            // `try_from` refuses what `Duration` cannot hold (1e30 s) as well as NaN and < 0.
            Duration::try_from_secs_f64(v).map_err(|_| {
                bad(format!("{field} must be a non-negative number of seconds, got {v}"))
            })
        };
        let max_batch_time = seconds("max_batch_time", raw.max_batch_time.unwrap_or(0.0))?;
        let timeout = raw.timeout.map(|t| seconds("timeout", t)).transpose()?;
        let defaults = ModelSettings::default();
        let max_queue_size = raw.max_queue_size.unwrap_or(defaults.max_queue_size);
        if max_queue_size == 0 {
            return Err(bad("max_queue_size must be at least 1".into()));
        }
        let preferred = raw.preferred_batch_sizes.unwrap_or_default();
        let max_batch_size = raw.max_batch_size.unwrap_or(0);
        if let Some(p) = preferred.iter().find(|&&p| p == 0 || p > max_batch_size.max(1)) {
            return Err(bad(format!(
                "preferred batch size {p} must be between 1 and max_batch_size {max_batch_size}"
            )));
        }
        let params = raw.parameters.unwrap_or_default();
        if params.sessions == Some(0) || params.intra_op_threads == Some(0) {
            return Err(bad("parameters.sessions and intra_op_threads must be at least 1".into()));
        }
        let explainer = raw.explainer.map(ExplainerSettings::from_raw).transpose().map_err(bad)?;
        Ok(ModelSettings {
            name: raw.name,
            versions: raw.versions.unwrap_or_default(),
            version: params.version,
            max_batch_size,
            max_batch_time,
            preferred_batch_sizes: preferred,
            max_queue_size,
            timeout,
            inputs: raw.inputs,
            outputs: raw.outputs,
            intra_op_threads: params.intra_op_threads,
            sessions: params.sessions,
            onnx_native: params.onnx_native,
            explainer,
        })
    }

    /// True when requests go through the dynamic batcher.
    pub fn batching(&self) -> bool {
        self.max_batch_size > 1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_mlserver_style_settings() {
        let s = ModelSettings::parse(
            br#"{"name":"iris","implementation":"mlserver_sklearn.SKLearnModel",
                "max_batch_size":8,"max_batch_time":0.5,"parameters":{"uri":"./m","version":"v2"}}"#,
            "m",
        )
        .unwrap();
        assert_eq!(s.name.as_deref(), Some("iris"));
        assert_eq!(s.max_batch_time, Duration::from_millis(500));
        assert_eq!(s.version.as_deref(), Some("v2"));
        assert!(s.batching());
        assert_eq!(s.onnx_native, None);
        let s = ModelSettings::parse(br#"{"parameters":{"onnx_native":false}}"#, "m").unwrap();
        assert_eq!(s.onnx_native, Some(false));
    }

    #[test]
    fn rejects_typos_and_bad_values() {
        let e = ModelSettings::parse(br#"{"max_batchsize": 8}"#, "m").unwrap_err().to_string();
        assert!(e.contains("unknown field `max_batchsize`"), "{e}");
        let e = ModelSettings::parse(br#"{"max_batch_time": -1}"#, "m").unwrap_err().to_string();
        assert!(e.contains("max_batch_time must be a non-negative"), "{e}");
        let e =
            ModelSettings::parse(br#"{"max_batch_size": 4, "preferred_batch_sizes": [8]}"#, "m")
                .unwrap_err()
                .to_string();
        assert!(e.contains("preferred batch size 8"), "{e}");
    }

    /// Found by the `model_settings` fuzz target: a number of seconds too big for a
    /// `Duration` panicked in `Duration::from_secs_f64` instead of being refused.
    #[test]
    fn refuses_a_time_too_big_for_a_duration() {
        for field in ["timeout", "max_batch_time"] {
            let json = format!(r#"{{"{field}": 5555555555555555555555555555}}"#);
            let e = ModelSettings::parse(json.as_bytes(), "m").unwrap_err().to_string();
            assert!(e.contains(&format!("{field} must be a non-negative number")), "{e}");
        }
    }

    #[test]
    fn parses_and_checks_the_explainer() {
        let s = ModelSettings::parse(
            br#"{"explainer":{"type":"kernelshap","background":{"file":"bg.csv","summary":"kmeans","size":5},"nsamples":100,"seed":3,"output":"y"}}"#,
            "m",
        )
        .unwrap();
        let e = s.explainer.unwrap();
        assert_eq!(e.kind, ExplainerKind::KernelShap);
        assert_eq!(e.background.unwrap().summary, Summary::KMeans(5));
        assert_eq!((e.nsamples, e.seed, e.output.as_deref()), (Some(100), 3, Some("y")));
        let auto = br#"{"explainer":{"type":"kernelshap","background":{"file":"b.json"},"nsamples":"auto"}}"#;
        assert_eq!(ModelSettings::parse(auto, "m").unwrap().explainer.unwrap().nsamples, None);
        for (body, want) in [
            (&br#"{"explainer":{"type":"lime"}}"#[..], "explainer.type must be"),
            (br#"{"explainer":{"type":"kernelshap"}}"#, "explainer.background is required"),
            (
                br#"{"explainer":{"type":"kernelshap","background":{"file":"b","summary":"kmeans"}}}"#,
                "explainer.background.size must be at least 1",
            ),
            (
                br#"{"explainer":{"type":"kernelshap","background":{"file":"b"},"nsamples":0}}"#,
                "explainer.nsamples must be",
            ),
            (br#"{"explainer":{"type":"treeshap","nsample":5}}"#, "unknown field `nsample`"),
        ] {
            let e = ModelSettings::parse(body, "m").unwrap_err().to_string();
            assert!(e.contains(want), "{e}");
        }
    }
}
