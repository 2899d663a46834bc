//! Fields oxserve parses but does not act on, per backend: `apply` prints them as warnings so
//! that no field is silently ignored.

use serde_json::Value;

use crate::isvc::{ExplainerSpec, PredictorSpec, TransformerSpec};
use crate::resource::Resource;
use crate::select::{RuntimeSelection, select_runtime};

/// Where the resources will run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    /// `oxserve up`: replicas are local `oxserve serve` processes.
    Local,
    /// The Kubernetes controller: replicas are pods.
    Kubernetes,
}

/// A field that is accepted but has no effect on the backend.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Warning {
    /// The field's path.
    pub path: String,
    /// Why it has no effect.
    pub reason: String,
}

impl std::fmt::Display for Warning {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.path, self.reason)
    }
}

/// Pod-level fields: scheduling and identity that only a cluster has.
const POD_FIELDS_LOCAL: [&str; 30] = [
    "volumes",
    "initContainers",
    "ephemeralContainers",
    "restartPolicy",
    "terminationGracePeriodSeconds",
    "activeDeadlineSeconds",
    "dnsPolicy",
    "nodeSelector",
    "serviceAccountName",
    "serviceAccount",
    "automountServiceAccountToken",
    "nodeName",
    "hostNetwork",
    "hostPID",
    "hostIPC",
    "shareProcessNamespace",
    "securityContext",
    "imagePullSecrets",
    "hostname",
    "subdomain",
    "affinity",
    "schedulerName",
    "tolerations",
    "hostAliases",
    "priorityClassName",
    "priority",
    "dnsConfig",
    "readinessGates",
    "runtimeClassName",
    "topologySpreadConstraints",
];

/// Fields of a framework predictor's container that the built-in runtime does not use.
const BUILTIN_CONTAINER_FIELDS: [&str; 19] = [
    "name",
    "image",
    "command",
    "args",
    "workingDir",
    "ports",
    "envFrom",
    "env",
    "resources",
    "volumeMounts",
    "livenessProbe",
    "readinessProbe",
    "startupProbe",
    "lifecycle",
    "imagePullPolicy",
    "securityContext",
    "runtimeVersion",
    "terminationMessagePath",
    "terminationMessagePolicy",
];

/// Fields oxserve accepts but does not act on for `resource` on `backend`, in path order.
pub fn warnings(resource: &Resource, backend: Backend) -> Vec<Warning> {
    let mut out = Vec::new();
    let value = resource.to_value();
    let Resource::InferenceService { object, .. } = resource else {
        if let Resource::TrainedModel { .. } = resource {
            return out;
        }
        // ServingRuntimes are used for matching on both backends; their pod fields only on
        // Kubernetes.
        if backend == Backend::Local {
            for f in [
                "volumes",
                "nodeSelector",
                "affinity",
                "tolerations",
                "imagePullSecrets",
                "hostIPC",
                "schedulerName",
                "resourceClaims",
            ] {
                if value.pointer(&format!("/spec/{f}")).is_some() {
                    out.push(warn(
                        format!("spec.{f}"),
                        "a cluster scheduling field; local replicas are processes on this machine",
                    ));
                }
            }
            if value.pointer("/spec/multiModel") == Some(&Value::Bool(true)) {
                out.push(warn(
                    "spec.multiModel".into(),
                    "multi-model runtimes (ModelMesh) are not run",
                ));
            }
        }
        return out;
    };
    let spec = &object.spec;
    predictor_warnings(
        &spec.predictor,
        "spec.predictor",
        &value["spec"]["predictor"],
        backend,
        &mut out,
    );
    for (i, c) in spec.canary.iter().flatten().enumerate() {
        let path = format!("spec.canary[{i}].predictor");
        predictor_warnings(
            &c.predictor,
            &path,
            &value["spec"]["canary"][i]["predictor"],
            backend,
            &mut out,
        );
    }
    if let Some(t) = &spec.transformer {
        transformer_warnings(t, &value["spec"]["transformer"], backend, &mut out);
    }
    if let Some(e) = &spec.explainer {
        explainer_warnings(e, &value["spec"]["explainer"], backend, &mut out);
    }
    annotation_warnings(object.metadata.annotations.as_ref(), "metadata.annotations", &mut out);
    out
}

fn warn(path: String, reason: &str) -> Warning {
    Warning { path, reason: reason.to_owned() }
}

fn pod_warnings(value: &Value, path: &str, backend: Backend, out: &mut Vec<Warning>) {
    if backend != Backend::Local {
        return;
    }
    for f in POD_FIELDS_LOCAL {
        if value.get(f).is_some() {
            out.push(warn(
                format!("{path}.{f}"),
                "a pod field; local replicas are processes on this machine",
            ));
        }
    }
}

fn extension_warnings(value: &Value, path: &str, backend: Backend, out: &mut Vec<Warning>) {
    if value.get("deploymentStrategy").is_some() {
        out.push(warn(
            format!("{path}.deploymentStrategy"),
            "revisions roll out by traffic split, not by a Deployment strategy",
        ));
    }
    if value.get("autoScaling").is_some() {
        out.push(warn(
            format!("{path}.autoScaling"),
            "HPA / KEDA metrics are not read; oxserve's KPA autoscaler uses scaleMetric and scaleTarget",
        ));
    }
    if backend == Backend::Local {
        if let Some(m) = value
            .get("scaleMetric")
            .and_then(Value::as_str)
            .filter(|m| *m == "cpu" || *m == "memory")
        {
            out.push(warn(
                format!("{path}.scaleMetric"),
                &format!("the local backend reports no {m} utilisation; scaling uses concurrency"),
            ));
        }
        if value.get("labels").is_some() {
            out.push(warn(
                format!("{path}.labels"),
                "labels of pods; local replicas are processes",
            ));
        }
    }
    if value.pointer("/logger/storage").is_some() {
        out.push(warn(format!("{path}.logger.storage"), "payloads are logged to logger.url only"));
    }
    if value.pointer("/logger/marshallerUrl").is_some() {
        out.push(warn(
            format!("{path}.logger.marshallerUrl"),
            "events are sent as CloudEvents without a marshaller",
        ));
    }
    if let Some(a) = value.get("annotations").and_then(Value::as_object) {
        let map = a.iter().filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_owned()))).collect();
        annotation_warnings(Some(&map), &format!("{path}.annotations"), out);
    }
}

fn annotation_warnings(
    annotations: Option<&std::collections::BTreeMap<String, String>>,
    path: &str,
    out: &mut Vec<Warning>,
) {
    for key in annotations.into_iter().flat_map(|a| a.keys()) {
        if let Some(name) = key.strip_prefix(crate::validate::AUTOSCALING_PREFIX)
            && !crate::validate::KNOWN_AUTOSCALING_ANNOTATIONS.contains(&name)
        {
            out.push(warn(format!("{path}.{key}"), "not an autoscaling setting oxserve reads"));
        }
    }
}

fn predictor_warnings(
    p: &PredictorSpec,
    path: &str,
    value: &Value,
    backend: Backend,
    out: &mut Vec<Warning>,
) {
    pod_warnings(value, path, backend, out);
    extension_warnings(value, path, backend, out);
    if value.get("workerSpec").is_some() {
        out.push(warn(format!("{path}.workerSpec"), "multi-node predictors are not run"));
    }
    if value.get("storageContainerName").is_some() {
        out.push(warn(
            format!("{path}.storageContainerName"),
            "models are pulled by oxserve's own puller",
        ));
    }
    // The built-in runtime runs in-process: the framework container's fields do not apply.
    if let Ok(RuntimeSelection::Builtin { .. }) = select_runtime(p, &[]) {
        let implementation = crate::validate::predictor_implementations(p)[0];
        let fvalue = &value[implementation];
        for f in BUILTIN_CONTAINER_FIELDS {
            if f == "resources" && backend == Backend::Kubernetes {
                continue;
            }
            if fvalue.get(f).is_some() {
                out.push(warn(
                    format!("{path}.{implementation}.{f}"),
                    "the built-in oxserve runtime serves this model; the framework server's container settings do not apply",
                ));
            }
        }
        for f in ["storage", "confidential"] {
            if fvalue.get(f).is_some() {
                out.push(warn(
                    format!("{path}.{implementation}.{f}"),
                    "not supported by the built-in runtime",
                ));
            }
        }
    } else if backend == Backend::Local {
        container_warnings(value, path, out);
    }
}

fn container_warnings(value: &Value, path: &str, out: &mut Vec<Warning>) {
    for (i, c) in
        value.get("containers").and_then(Value::as_array).into_iter().flatten().enumerate()
    {
        for f in ["resources", "securityContext", "volumeMounts", "imagePullPolicy"] {
            if c.get(f).is_some() {
                out.push(warn(
                    format!("{path}.containers[{i}].{f}"),
                    "a pod field; local replicas are processes on this machine",
                ));
            }
        }
    }
}

fn transformer_warnings(
    _t: &TransformerSpec,
    value: &Value,
    backend: Backend,
    out: &mut Vec<Warning>,
) {
    pod_warnings(value, "spec.transformer", backend, out);
    extension_warnings(value, "spec.transformer", backend, out);
    if backend == Backend::Local {
        container_warnings(value, "spec.transformer", out);
    }
}

fn explainer_warnings(_e: &ExplainerSpec, value: &Value, backend: Backend, out: &mut Vec<Warning>) {
    pod_warnings(value, "spec.explainer", backend, out);
    extension_warnings(value, "spec.explainer", backend, out);
    if backend == Backend::Local {
        container_warnings(value, "spec.explainer", out);
    }
}
