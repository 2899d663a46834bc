//! From a revision's component spec (KServe's JSON, as stored in the revision) to the
//! backend-neutral [`RevisionSpec`] a [`Backend`](crate::backend::Backend) runs.
//!
//! - `model` (`modelFormat` + `storageUri`/`storageUris`, `args`, `env`) and the older
//!   framework fields (`sklearn:`, `xgboost:`, `onnx:`, `lightgbm:` …) run the built-in
//!   server for the formats it serves (onnx, sklearn exported to ONNX, xgboost, lightgbm);
//!   another format needs a container.
//! - `containers[0]` (a custom predictor, a transformer, an explainer) runs its `command` +
//!   `args`; its `STORAGE_URI` env (KServe's convention) is pulled like a `storageUri`.
//! - `batcher` and `logger` are carried over; the logger's `endpoint` is given by the caller
//!   (`default`/`canary`).
//! - An oxserve explainer folded into the predictor (key [`EXPLAINER_KEY`], see
//!   [`super::effective_spec`]) becomes the server's `explainer` settings: `type`, and from
//!   `config` `background` (a file in the model directory, `/mnt/models/…` or relative),
//!   `summary`, `size`, `nsamples`, `seed`, `output`; its `storageUris` are pulled into the
//!   model directory beside the model.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::backend::{BatcherSpec, EnvVar, LoggerSpec, ModelSource, RevisionSpec, Runner};
use crate::local::pull::KSERVE_MODEL_DIR;

/// Where an oxserve explainer sits in a predictor's revision spec.
pub const EXPLAINER_KEY: &str = "explainer";

/// The keys of an oxserve explainer's `config`.
const EXPLAINER_CONFIG: &[&str] = &["background", "summary", "size", "nsamples", "seed", "output"];

/// The model formats the built-in server serves.
pub const SERVER_FORMATS: &[&str] = &["onnx", "sklearn", "xgboost", "lightgbm"];

/// KServe's framework fields of a predictor (the older spelling of `model.modelFormat`).
const FRAMEWORKS: &[&str] = &[
    "sklearn",
    "xgboost",
    "lightgbm",
    "onnx",
    "tensorflow",
    "pytorch",
    "triton",
    "pmml",
    "paddle",
    "huggingface",
];

/// Who the revision belongs to.
#[derive(Clone, Copy, Debug)]
pub struct Owner<'a> {
    pub service: &'a str,
    pub namespace: &'a str,
    /// `predictor`, `transformer` or `explainer`.
    pub component: &'a str,
    /// `default` or `canary`, for the logger's `endpoint` extension.
    pub endpoint: &'a str,
    /// Where a transformer reaches its predictor (`host:port`).
    pub predictor_host: Option<&'a str>,
}

/// The workload of revision `revision` with component spec `spec`; the error is the reason
/// the revision cannot run.
pub fn revision_spec(
    owner: Owner<'_>,
    revision: &str,
    spec: &Value,
) -> Result<RevisionSpec, String> {
    let mut out = RevisionSpec {
        revision: revision.to_owned(),
        service: owner.service.to_owned(),
        namespace: owner.namespace.to_owned(),
        component: owner.component.to_owned(),
        model_name: owner.service.to_owned(),
        runner: Runner::Server { args: Vec::new() },
        sources: Vec::new(),
        env: Vec::new(),
        batcher: batcher(spec),
        logger: logger(spec, owner.endpoint),
        explainer: None,
    };
    let container = spec.get("containers").and_then(Value::as_array).and_then(|c| c.first());
    let model = spec
        .get("model")
        .map(|m| ("model", m))
        .or_else(|| FRAMEWORKS.iter().find_map(|f| spec.get(*f).map(|m| (*f, m))));
    match (model, container) {
        (Some((field, model)), _) => {
            let format = match field {
                "model" => model
                    .pointer("/modelFormat/name")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_ascii_lowercase(),
                framework => framework.to_owned(),
            };
            out.sources = sources(model);
            out.env = env(model);
            let args = strings(model.get("args"));
            let command = strings(model.get("command"));
            if !command.is_empty() {
                // A model spec with its own command runs it, as a container would.
                out.runner = Runner::Container {
                    image: model.get("image").and_then(Value::as_str).map(str::to_owned),
                    command,
                    args,
                    predictor_host: None,
                };
            } else if SERVER_FORMATS.contains(&format.as_str()) {
                out.runner = Runner::Server { args };
                if let Some(e) = spec.get(EXPLAINER_KEY) {
                    out.explainer = Some(explainer_settings(e)?);
                    out.sources.extend(sources(e));
                }
            } else {
                return Err(format!(
                    "{field}: model format {format:?} is not served by the built-in server \
                     (it serves {}); give the predictor a container with a command",
                    SERVER_FORMATS.join(", ")
                ));
            }
        }
        (None, Some(c)) => {
            out.env = env(c);
            if let Some(uri) = out.env.iter().find(|e| e.name == "STORAGE_URI") {
                out.sources = vec![ModelSource { uri: uri.value.clone(), path: String::new() }];
            }
            out.runner = Runner::Container {
                image: c.get("image").and_then(Value::as_str).map(str::to_owned),
                command: strings(c.get("command")),
                args: strings(c.get("args")),
                predictor_host: (owner.component == "transformer")
                    .then(|| owner.predictor_host.map(str::to_owned))
                    .flatten(),
            };
        }
        (None, None) => {
            return Err(format!("{}: neither a model nor a container to run", owner.component));
        }
    }
    Ok(out)
}

/// The server's `explainer` settings from an oxserve explainer spec.
fn explainer_settings(e: &Value) -> Result<Value, String> {
    let kind = e.get("type").and_then(Value::as_str).unwrap_or_default();
    let mut out = serde_json::Map::new();
    out.insert("type".into(), kind.into());
    let config: BTreeMap<String, String> = e
        .get("config")
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .map(|(k, v)| (k.clone(), v.as_str().map_or_else(|| v.to_string(), str::to_owned)))
                .collect()
        })
        .unwrap_or_default();
    if let Some(k) = config.keys().find(|k| !EXPLAINER_CONFIG.contains(&k.as_str())) {
        return Err(format!(
            "explainer.config.{k}: unknown key (known: {})",
            EXPLAINER_CONFIG.join(", ")
        ));
    }
    let int = |k: &str| -> Result<Option<u64>, String> {
        config
            .get(k)
            .map(|v| {
                v.parse::<u64>().map_err(|_| format!("explainer.config.{k}: {v:?} is not a count"))
            })
            .transpose()
    };
    if let Some(file) = config.get("background") {
        let file = file
            .strip_prefix(KSERVE_MODEL_DIR)
            .map_or(file.as_str(), |f| f.trim_start_matches('/'));
        let mut b = serde_json::json!({ "file": file });
        if let Some(summary) = config.get("summary") {
            b["summary"] = summary.clone().into();
        }
        if let Some(size) = int("size")? {
            b["size"] = size.into();
        }
        out.insert("background".into(), b);
    }
    match config.get("nsamples").map(String::as_str) {
        None => {}
        Some("auto") => {
            out.insert("nsamples".into(), "auto".into());
        }
        Some(_) => {
            out.insert("nsamples".into(), int("nsamples")?.into());
        }
    }
    if let Some(seed) = int("seed")? {
        out.insert("seed".into(), seed.into());
    }
    if let Some(o) = config.get("output") {
        out.insert("output".into(), o.clone().into());
    }
    Ok(Value::Object(out))
}

fn strings(v: Option<&Value>) -> Vec<String> {
    v.and_then(Value::as_array)
        .map(|a| a.iter().filter_map(|s| s.as_str().map(str::to_owned)).collect())
        .unwrap_or_default()
}

fn sources(model: &Value) -> Vec<ModelSource> {
    if let Some(uri) = model.get("storageUri").and_then(Value::as_str) {
        return vec![ModelSource { uri: uri.to_owned(), path: String::new() }];
    }
    if let Some(uri) = model.pointer("/storage/path").and_then(Value::as_str) {
        return vec![ModelSource { uri: uri.to_owned(), path: String::new() }];
    }
    model
        .get("storageUris")
        .and_then(Value::as_array)
        .map(|all| {
            all.iter()
                .filter_map(|s| {
                    let uri = s.get("uri").and_then(Value::as_str)?;
                    let path = s.get("mountPath").and_then(Value::as_str).unwrap_or_default();
                    Some(ModelSource { uri: uri.to_owned(), path: path.to_owned() })
                })
                .collect()
        })
        .unwrap_or_default()
}

fn env(v: &Value) -> Vec<EnvVar> {
    v.get("env")
        .and_then(Value::as_array)
        .map(|all| {
            all.iter()
                .filter_map(|e| {
                    let name = e.get("name").and_then(Value::as_str)?;
                    let value = e.get("value").and_then(Value::as_str).unwrap_or_default();
                    Some(EnvVar { name: name.to_owned(), value: value.to_owned() })
                })
                .collect()
        })
        .unwrap_or_default()
}

fn u32_field(v: &Value, key: &str) -> Option<u32> {
    let f = v.get(key)?;
    f.as_u64()
        .or_else(|| f.as_str().and_then(|s| s.parse().ok()))
        .and_then(|n| u32::try_from(n).ok())
}

fn batcher(spec: &Value) -> Option<BatcherSpec> {
    let b = spec.get("batcher")?;
    Some(BatcherSpec {
        max_batch_size: u32_field(b, "maxBatchSize"),
        max_latency: u32_field(b, "maxLatency"),
        timeout: u32_field(b, "timeout"),
    })
}

fn logger(spec: &Value, endpoint: &str) -> Option<LoggerSpec> {
    let l = spec.get("logger")?;
    let url = l.get("url").and_then(Value::as_str)?;
    Some(LoggerSpec {
        url: url.to_owned(),
        mode: l.get("mode").and_then(Value::as_str).unwrap_or("all").to_owned(),
        endpoint: endpoint.to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn owner(component: &str) -> Owner<'_> {
        Owner {
            service: "iris",
            namespace: "default",
            component,
            endpoint: "default",
            predictor_host: Some("127.0.0.1:8080"),
        }
    }

    #[test]
    fn a_model_spec_runs_the_server_with_its_sources_args_env_batcher_and_logger() {
        let spec = json!({
            "model": {"modelFormat": {"name": "sklearn"}, "storageUri": "s3://b/iris",
                      "args": ["--threads", "2"], "env": [{"name": "A", "value": "1"}]},
            "batcher": {"maxBatchSize": 8, "maxLatency": 50},
            "logger": {"url": "http://sink", "mode": "request"},
            "minReplicas": 0
        });
        let r = revision_spec(owner("predictor"), "iris-predictor-00001", &spec).unwrap();
        assert_eq!(r.runner, Runner::Server { args: vec!["--threads".into(), "2".into()] });
        assert_eq!(r.sources, vec![ModelSource { uri: "s3://b/iris".into(), path: String::new() }]);
        assert_eq!(r.env, vec![EnvVar { name: "A".into(), value: "1".into() }]);
        assert_eq!(r.model_name, "iris");
        assert_eq!(
            r.batcher,
            Some(BatcherSpec { max_batch_size: Some(8), max_latency: Some(50), timeout: None })
        );
        assert_eq!(
            r.logger,
            Some(LoggerSpec {
                url: "http://sink".into(),
                mode: "request".into(),
                endpoint: "default".into()
            })
        );
    }

    #[test]
    fn framework_fields_storage_uris_and_unserved_formats() {
        let r = revision_spec(
            owner("predictor"),
            "r",
            &json!({"xgboost": {"storageUris": [{"uri": "gs://a"}, {"uri": "gs://b", "mountPath": "/mnt/models/x"}]}}),
        )
        .unwrap();
        assert_eq!(r.runner, Runner::Server { args: vec![] });
        assert_eq!(
            r.sources[1],
            ModelSource { uri: "gs://b".into(), path: "/mnt/models/x".into() }
        );
        let e = revision_spec(
            owner("predictor"),
            "r",
            &json!({"tensorflow": {"storageUri": "gs://a"}}),
        )
        .unwrap_err();
        assert!(e.contains("model format \"tensorflow\" is not served"), "{e}");
        let e = revision_spec(owner("predictor"), "r", &json!({"minReplicas": 1})).unwrap_err();
        assert_eq!(e, "predictor: neither a model nor a container to run");
    }

    #[test]
    fn an_oxserve_explainer_becomes_the_servers_explainer_settings() {
        let spec = json!({
            "model": {"modelFormat": {"name": "onnx"}, "storageUri": "file:///m"},
            "explainer": {"type": "kernelshap",
                "config": {"background": "/mnt/models/bg/rows.csv", "summary": "kmeans", "size": "5",
                           "nsamples": "200", "seed": "7"},
                "storageUris": [{"uri": "file:///bg", "mountPath": "/mnt/models/bg"}]}
        });
        let r = revision_spec(owner("predictor"), "iris-predictor-00002", &spec).unwrap();
        assert_eq!(
            r.explainer,
            Some(json!({"type": "kernelshap",
                "background": {"file": "bg/rows.csv", "summary": "kmeans", "size": 5},
                "nsamples": 200, "seed": 7}))
        );
        assert_eq!(
            r.sources[1],
            ModelSource { uri: "file:///bg".into(), path: "/mnt/models/bg".into() }
        );
        let mut bad = spec.clone();
        bad["explainer"]["config"]["nsample"] = json!("5");
        let e = revision_spec(owner("predictor"), "r", &bad).unwrap_err();
        assert!(e.starts_with("explainer.config.nsample: unknown key"), "{e}");
        bad["explainer"]["config"] = json!({"seed": "x"});
        let e = revision_spec(owner("predictor"), "r", &bad).unwrap_err();
        assert_eq!(e, "explainer.config.seed: \"x\" is not a count");
    }

    #[test]
    fn containers_run_their_command_and_transformers_get_the_predictor_host() {
        let spec = json!({"containers": [{"name": "kserve-container", "image": "me/t:1",
            "command": ["python", "-m", "t"], "args": ["--model_name", "iris"],
            "env": [{"name": "STORAGE_URI", "value": "file:///m"}]}]});
        let r = revision_spec(owner("transformer"), "iris-transformer-00001", &spec).unwrap();
        assert_eq!(
            r.runner,
            Runner::Container {
                image: Some("me/t:1".into()),
                command: vec!["python".into(), "-m".into(), "t".into()],
                args: vec!["--model_name".into(), "iris".into()],
                predictor_host: Some("127.0.0.1:8080".into()),
            }
        );
        assert_eq!(r.sources, vec![ModelSource { uri: "file:///m".into(), path: String::new() }]);
        let r = revision_spec(owner("predictor"), "p", &spec).unwrap();
        assert!(matches!(r.runner, Runner::Container { predictor_host: None, .. }));
    }
}
