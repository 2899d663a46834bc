//! ServingRuntimes in the choice of what runs a predictor revision.
//!
//! A predictor's `model` (`modelFormat` + `runtime`) runs:
//!
//! - the built-in server when `runtime` is unset (or `oxserve`) and the format is one it
//!   serves ([`workload::SERVER_FORMATS`]): it stays the default for those formats even when
//!   a ServingRuntime also lists them;
//! - otherwise the runtime [`oxserve_api::select_runtime`] picks among the namespace's
//!   ServingRuntimes and the ClusterServingRuntimes (KServe's rules: by name with
//!   `runtime:`, else by `autoSelect`, format, version, protocol and priority). Its first
//!   container's `command` + `args` (the model's `args` after them, `{{.Name}}` replaced by
//!   the service name) and `env` (the model's after it) run as a local process exactly like
//!   a custom container, with the model's `storageUri` in `/mnt/models`. A runtime without
//!   a command is refused by the local backend (it runs commands, not images).

use std::collections::BTreeMap;

use oxserve_api::RuntimeSelection;
use oxserve_api::isvc::PredictorSpec;
use oxserve_api::runtime::{ClusterServingRuntime, ServingRuntime};
use serde_json::Value;

use super::workload::{self, EXPLAINER_KEY, Owner, SERVER_FORMATS};
use crate::backend::RevisionSpec;

/// The runtimes a predictor in `namespace` can use: the namespace's, then the cluster's.
/// Objects that do not convert (they were validated on apply) are skipped.
pub fn runtimes_for(
    namespaced: &BTreeMap<(String, String), Value>,
    cluster: &BTreeMap<(String, String), Value>,
    namespace: &str,
) -> Vec<ServingRuntime> {
    let mut out: Vec<ServingRuntime> = namespaced
        .iter()
        .filter(|((ns, _), _)| ns == namespace)
        .filter_map(|(_, v)| serde_json::from_value(v.clone()).ok())
        .collect();
    out.extend(
        cluster
            .values()
            .filter_map(|v| serde_json::from_value::<ClusterServingRuntime>(v.clone()).ok())
            .map(ServingRuntime::from),
    );
    out
}

/// The workload of a revision, with `runtimes` taken into account (see the module docs).
pub fn revision_spec(
    owner: Owner<'_>,
    revision: &str,
    spec: &Value,
    runtimes: &[ServingRuntime],
) -> Result<RevisionSpec, String> {
    let Some(model) = spec.get("model").filter(|_| owner.component == "predictor") else {
        return workload::revision_spec(owner, revision, spec);
    };
    let named = model.get("runtime").and_then(Value::as_str);
    let format = model
        .pointer("/modelFormat/name")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_ascii_lowercase();
    let builtin = match named {
        None => SERVER_FORMATS.contains(&format.as_str()),
        Some(n) => n == oxserve_api::select::BUILTIN_RUNTIME,
    };
    if builtin || model.get("command").is_some() {
        return workload::revision_spec(owner, revision, spec);
    }
    let mut typed = spec.clone();
    if let Some(m) = typed.as_object_mut() {
        m.remove(EXPLAINER_KEY);
    }
    let predictor: PredictorSpec = serde_json::from_value(typed)
        .map_err(|e| format!("predictor: cannot choose a runtime: {e}"))?;
    match oxserve_api::select_runtime(&predictor, runtimes) {
        Ok(RuntimeSelection::ServingRuntime { name, .. }) => {
            let runtime = runtimes
                .iter()
                .find(|r| r.metadata.name.as_deref() == Some(name.as_str()))
                .ok_or_else(|| format!("ServingRuntime {name:?} is gone"))?;
            let spec = with_runtime(spec, runtime, owner.service)?;
            workload::revision_spec(owner, revision, &spec)
        }
        Ok(_) => workload::revision_spec(owner, revision, spec),
        // A format nobody serves: the built-in server's reason names what it serves.
        Err(e) if named.is_none() && runtimes.is_empty() => {
            workload::revision_spec(owner, revision, spec).and(Err(e.to_string()))
        }
        Err(e) => Err(e.to_string()),
    }
}

/// `spec` with the runtime's first container as the model's command, args, env and image.
fn with_runtime(spec: &Value, runtime: &ServingRuntime, service: &str) -> Result<Value, String> {
    let name = runtime.metadata.name.as_deref().unwrap_or_default();
    let rt = serde_json::to_value(&runtime.spec).map_err(|e| e.to_string())?;
    let container = rt
        .pointer("/containers/0")
        .ok_or_else(|| format!("ServingRuntime {name:?} has no containers"))?;
    let mut spec = spec.clone();
    let model = spec
        .get_mut("model")
        .and_then(Value::as_object_mut)
        .ok_or_else(|| "predictor.model: not an object".to_owned())?;
    let list = |v: Option<&Value>| v.and_then(Value::as_array).cloned().unwrap_or_default();
    let substitute = |v: Value| match v {
        Value::String(s) => Value::String(s.replace("{{.Name}}", service)),
        other => other,
    };
    let command: Vec<Value> = list(container.get("command"));
    if command.is_empty() {
        let image = container.get("image").and_then(Value::as_str).unwrap_or("(none)");
        return Err(format!(
            "ServingRuntime {name:?}: container image {image} has no command: the local backend \
             runs a runtime's command and args as a local process, not images"
        ));
    }
    let mut args = list(container.get("args"));
    args.extend(list(model.get("args")));
    let mut env = list(container.get("env"));
    env.extend(list(model.get("env")));
    model.insert("command".into(), command.into_iter().map(substitute).collect());
    model.insert("args".into(), args.into_iter().map(substitute).collect());
    model.insert("env".into(), env.into());
    if let Some(image) = container.get("image") {
        model.insert("image".into(), image.clone());
    }
    Ok(spec)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::Runner;
    use serde_json::json;

    fn owner() -> Owner<'static> {
        Owner {
            service: "iris",
            namespace: "default",
            component: "predictor",
            endpoint: "default",
            predictor_host: None,
        }
    }

    fn runtime(name: &str, formats: &[&str], command: &[&str]) -> Value {
        json!({
            "apiVersion": "serving.kserve.io/v1alpha1", "kind": "ServingRuntime",
            "metadata": {"name": name, "namespace": "default"},
            "spec": {
                "supportedModelFormats": formats.iter().map(|f| json!({"name": f, "autoSelect": true})).collect::<Vec<_>>(),
                "containers": [{"name": "kserve-container", "image": "me/rt:1",
                    "command": command, "args": ["--model_name={{.Name}}", "/mnt/models"],
                    "env": [{"name": "A", "value": "1"}]}]
            }
        })
    }

    fn runtimes(all: &[Value]) -> Vec<ServingRuntime> {
        let map: BTreeMap<(String, String), Value> = all
            .iter()
            .map(|v| {
                (
                    ("default".to_owned(), v["metadata"]["name"].as_str().unwrap().to_owned()),
                    v.clone(),
                )
            })
            .collect();
        runtimes_for(&map, &BTreeMap::new(), "default")
    }

    #[test]
    fn a_runtime_with_a_command_runs_it_for_its_format() {
        let rts = runtimes(&[runtime("mlserver", &["pickle"], &["python", "-m", "mlserver_like"])]);
        let spec = json!({"model": {"modelFormat": {"name": "pickle"}, "storageUri": "file:///m",
            "args": ["--workers", "1"]}});
        let r = revision_spec(owner(), "iris-predictor-00001", &spec, &rts).unwrap();
        assert_eq!(
            r.runner,
            Runner::Container {
                image: Some("me/rt:1".into()),
                command: vec!["python".into(), "-m".into(), "mlserver_like".into()],
                args: vec![
                    "--model_name=iris".into(),
                    "/mnt/models".into(),
                    "--workers".into(),
                    "1".into()
                ],
                predictor_host: None,
            }
        );
        assert_eq!(r.sources[0].uri, "file:///m");
        assert_eq!(r.env[0].name, "A");
    }

    #[test]
    fn the_built_in_server_stays_the_default_for_its_formats() {
        let rts = runtimes(&[runtime("mlserver", &["sklearn"], &["mlserver"])]);
        let spec =
            json!({"model": {"modelFormat": {"name": "sklearn"}, "storageUri": "file:///m"}});
        let r = revision_spec(owner(), "r", &spec, &rts).unwrap();
        assert!(matches!(r.runner, Runner::Server { .. }));
        // Named, it is used.
        let spec = json!({"model": {"modelFormat": {"name": "sklearn"}, "runtime": "mlserver",
            "storageUri": "file:///m"}});
        let r = revision_spec(owner(), "r", &spec, &rts).unwrap();
        assert!(matches!(r.runner, Runner::Container { .. }));
    }

    #[test]
    fn unknown_runtimes_and_runtimes_without_a_command_are_reasons() {
        let rts = runtimes(&[runtime("imageonly", &["pickle"], &[])]);
        let spec = json!({"model": {"modelFormat": {"name": "pickle"}, "storageUri": "file:///m"}});
        let e = revision_spec(owner(), "r", &spec, &rts).unwrap_err();
        assert!(e.contains("has no command"), "{e}");
        let spec = json!({"model": {"modelFormat": {"name": "pickle"}, "runtime": "nope",
            "storageUri": "file:///m"}});
        let e = revision_spec(owner(), "r", &spec, &rts).unwrap_err();
        assert!(e.contains("no ServingRuntime named \"nope\""), "{e}");
        let e = revision_spec(
            owner(),
            "r",
            &json!({"model": {"modelFormat": {"name": "tensorflow"}}}),
            &[],
        )
        .unwrap_err();
        assert!(e.contains("not served by the built-in server"), "{e}");
    }
}
