//! Every manifest under `kind/` parses as the Kubernetes type it names and has what a real
//! API server requires (names, namespaces, selectors matching their pod templates, images,
//! references to objects that exist); the RBAC grants exactly what the reconciler and the
//! leader election are seen to call on the fake API server, and nothing wildcarded; the
//! workflows parse and call only `cargo xtask`.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Service};
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, PolicyRule, Role, RoleBinding};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::fake::{ApiServer, Seen};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Every document of every YAML file under `kind/install`.
fn install() -> Vec<(String, Value)> {
    let dir = root().join("kind/install");
    let mut files: Vec<PathBuf> =
        std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().path()).collect();
    files.sort();
    let mut docs = Vec::new();
    for path in files {
        let text = std::fs::read_to_string(&path).unwrap();
        for de in serde_yaml_ng::Deserializer::from_str(&text) {
            let doc = Value::deserialize(de).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            if !doc.is_null() {
                docs.push((path.file_name().unwrap().to_string_lossy().into_owned(), doc));
            }
        }
    }
    docs
}

fn of_kind<T: serde::de::DeserializeOwned>(docs: &[(String, Value)], kind: &str) -> Vec<T> {
    docs.iter()
        .filter(|(_, d)| d["kind"] == kind)
        .map(|(f, d)| {
            serde_json::from_value(d.clone()).unwrap_or_else(|e| panic!("{f}: {kind}: {e}"))
        })
        .collect()
}

#[test]
fn every_object_names_itself_and_its_namespace() {
    let docs = install();
    assert!(docs.len() >= 10, "{}", docs.len());
    for (file, d) in &docs {
        let kind = d["kind"].as_str().unwrap_or_else(|| panic!("{file}: no kind"));
        assert!(d["apiVersion"].is_string(), "{file}: {kind}: apiVersion");
        let name = d.pointer("/metadata/name").and_then(Value::as_str).unwrap_or_default();
        assert!(!name.is_empty(), "{file}: {kind}: metadata.name");
        let cluster_scoped = matches!(kind, "Namespace" | "ClusterRole" | "ClusterRoleBinding");
        let ns = d.pointer("/metadata/namespace").and_then(Value::as_str);
        assert_eq!(ns.is_none(), cluster_scoped, "{file}: {kind} {name}: namespace");
        if let Some(ns) = ns {
            assert_eq!(ns, "oxserve-system", "{file}: {kind} {name}");
        }
    }
}

#[test]
fn deployments_select_their_pods_and_reference_what_exists() {
    let docs = install();
    let deployments: Vec<Deployment> = of_kind(&docs, "Deployment");
    let services: Vec<Service> = of_kind(&docs, "Service");
    let config_maps: Vec<ConfigMap> = of_kind(&docs, "ConfigMap");
    let accounts: BTreeSet<String> = docs
        .iter()
        .filter(|(_, d)| d["kind"] == "ServiceAccount")
        .map(|(_, d)| d["metadata"]["name"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(deployments.len(), 2);
    for d in &deployments {
        let name = d.metadata.name.clone().unwrap();
        let spec = &d.spec;
        let labels = spec.template.metadata.as_ref().and_then(|m| m.labels.clone()).unwrap();
        for (k, v) in spec.selector.match_labels.as_ref().unwrap() {
            assert_eq!(labels.get(k), Some(v), "{name}: the selector matches the template");
        }
        let pod = spec.template.spec.as_ref().unwrap();
        let account = pod.service_account_name.clone().unwrap();
        assert!(accounts.contains(&account), "{name}: service account {account}");
        for c in &pod.containers {
            assert_eq!(c.image.as_deref(), Some("oxserve:dev"), "{name}: image");
            let sub = c.args.as_ref().unwrap()[0].as_str();
            assert!(["router", "controller"].contains(&sub), "{name}: subcommand {sub}");
        }
        for v in pod.volumes.iter().flatten() {
            if let Some(cm) = &v.config_map {
                assert!(
                    config_maps.iter().any(|c| c.metadata.name == Some(cm.name.clone())),
                    "{name}: ConfigMap {}",
                    cm.name
                );
            }
        }
    }
    for s in &services {
        let selector = s.spec.as_ref().unwrap().selector.clone().unwrap();
        assert!(
            deployments.iter().any(|d| {
                let labels = d.spec.template.metadata.as_ref().unwrap().labels.clone().unwrap();
                selector.iter().all(|(k, v)| labels.get(k) == Some(v))
            }),
            "Service {:?} selects no pods",
            s.metadata.name
        );
    }
    let routes =
        config_maps.iter().find(|c| c.metadata.name.as_deref() == Some("oxserve-routes")).unwrap();
    let table: oxserve_controller::routes::RouteTable =
        serde_yaml_ng::from_str(&routes.data.as_ref().unwrap()["routes.yaml"]).unwrap();
    assert!(table.services.is_empty());
}

/// `(group, resource[/subresource], verb)` of a request the fake API server saw.
fn permission(seen: &Seen) -> (String, String, String) {
    let parts: Vec<&str> = seen.path.trim_matches('/').split('/').collect();
    let (group, rest) = match parts[0] {
        "api" => (String::new(), &parts[2..]),
        _ => (parts[1].to_owned(), &parts[3..]),
    };
    let rest = match rest {
        ["namespaces", _, rest @ ..] => rest,
        rest => rest,
    };
    let (resource, named) = match rest {
        [r] => (r.to_string(), false),
        [r, _] => (r.to_string(), true),
        [r, _, sub] => (format!("{r}/{sub}"), true),
        _ => panic!("unexpected path {}", seen.path),
    };
    let verb = match (seen.method.as_str(), named) {
        ("GET", true) => "get",
        ("GET", false) if seen.query.contains("watch=true") => "watch",
        ("GET", false) => "list",
        ("POST", _) => "create",
        ("PUT", _) => "update",
        ("PATCH", _) => "patch",
        ("DELETE", _) => "delete",
        (m, _) => panic!("unexpected method {m}"),
    };
    (group, resource, verb.to_owned())
}

fn allows(rules: &[PolicyRule], (group, resource, verb): &(String, String, String)) -> bool {
    rules.iter().any(|r| {
        r.api_groups.iter().flatten().any(|g| g == group)
            && r.resources.iter().flatten().any(|x| x == resource)
            && r.verbs.iter().any(|v| v == verb)
    })
}

#[tokio::test]
async fn rbac_grants_what_the_controller_calls_and_no_wildcards() {
    let docs = install();
    let cluster: Vec<ClusterRole> = of_kind(&docs, "ClusterRole");
    let roles: Vec<Role> = of_kind(&docs, "Role");
    let cluster_rules: Vec<PolicyRule> =
        cluster.iter().flat_map(|r| r.rules.clone().unwrap()).collect();
    let lease_rules: Vec<PolicyRule> =
        roles.iter().flat_map(|r| r.rules.clone().unwrap()).collect();
    for rule in cluster_rules.iter().chain(&lease_rules) {
        let all = rule
            .verbs
            .iter()
            .chain(rule.resources.iter().flatten())
            .chain(rule.api_groups.iter().flatten());
        for item in all {
            assert_ne!(item, "*", "no wildcards: {rule:?}");
        }
    }
    let bindings: Vec<ClusterRoleBinding> = of_kind(&docs, "ClusterRoleBinding");
    let role_bindings: Vec<RoleBinding> = of_kind(&docs, "RoleBinding");
    let subjects: Vec<String> = bindings
        .iter()
        .flat_map(|b| b.subjects.clone().unwrap())
        .chain(role_bindings.iter().flat_map(|b| b.subjects.clone().unwrap()))
        .map(|s| s.name)
        .collect();
    assert!(
        subjects.iter().all(|s| s == "oxserve-controller"),
        "the router is bound to nothing: {subjects:?}"
    );

    // What a life cycle of an InferenceService and a TrainedModel calls.
    let (client, server) = ApiServer::start();
    let config = oxserve_controller::kubernetes::reconcile::Config {
        namespace: None,
        image: "oxserve:dev".into(),
        router_namespace: "oxserve-system".into(),
        routes_config_map: "oxserve-routes".into(),
        router_selector: "app.kubernetes.io/name=oxserve-router".into(),
        domain: "example.com".into(),
        kserve_group: true,
        resync: std::time::Duration::from_secs(2),
    };
    let state =
        Arc::new(oxserve_controller::kubernetes::reconcile::State::new(client.clone(), config));
    let isvc = "/apis/serving.kserve.io/v1beta1/namespaces/ml/inferenceservices/hpa";
    let tm = "/apis/serving.kserve.io/v1alpha1/namespaces/ml/trainedmodels/m1";
    server.put(
        isvc,
        json!({
            "apiVersion": "serving.kserve.io/v1beta1", "kind": "InferenceService",
            "metadata": {"name": "hpa", "namespace": "ml", "uid": "u1", "generation": 1},
            "spec": {"predictor": {"scaleMetric": "cpu", "maxReplicas": 3,
                     "sklearn": {"storageUri": "gs://b/m"}}},
        }),
    );
    server.put(tm, json!({
        "apiVersion": "serving.kserve.io/v1alpha1", "kind": "TrainedModel",
        "metadata": {"name": "m1", "namespace": "ml", "uid": "u2", "generation": 1},
        "spec": {"inferenceService": "hpa", "model": {"framework": "sklearn", "storageUri": "gs://b/m1", "memory": "1Gi"}},
    }));
    let object = |path: &str| Arc::new(serde_json::from_value(server.get(path).unwrap()).unwrap());
    use oxserve_controller::kubernetes::reconcile::{reconcile_service, reconcile_trained_model};
    reconcile_service(object(isvc), state.clone()).await.unwrap();
    reconcile_trained_model(object(tm), state.clone()).await.unwrap();
    for path in [isvc, tm] {
        let mut o = server.get(path).unwrap();
        o["metadata"]["deletionTimestamp"] = json!("2026-01-01T00:00:00Z");
        server.put(path, o);
    }
    reconcile_trained_model(object(tm), state.clone()).await.unwrap();
    reconcile_service(object(isvc), state.clone()).await.unwrap();
    let elector = oxserve_controller::kubernetes::lease::LeaderElector::new(
        kube::Api::namespaced(client, "oxserve-system"),
        "oxserve-controller",
        "a",
        std::time::Duration::from_secs(15),
    );
    elector.try_acquire().await.unwrap();
    elector.try_acquire().await.unwrap();

    let seen = server.take_seen();
    let needed: BTreeSet<_> = seen.iter().map(permission).collect();
    assert!(
        needed.contains(&("autoscaling".into(), "horizontalpodautoscalers".into(), "patch".into())),
        "{needed:?}"
    );
    for p in &needed {
        let ok = if p.1 == "leases" { allows(&lease_rules, p) } else { allows(&cluster_rules, p) };
        assert!(ok, "not granted: {p:?}");
    }
}

#[test]
fn kustomization_lists_every_crd_and_install_file() {
    let text = std::fs::read_to_string(root().join("kind/kustomization.yaml")).unwrap();
    let k: Value = serde_yaml_ng::from_str(&text).unwrap();
    let listed: BTreeSet<String> =
        k["resources"].as_array().unwrap().iter().map(|r| r.as_str().unwrap().to_owned()).collect();
    for dir in ["crds", "install"] {
        for e in std::fs::read_dir(root().join("kind").join(dir)).unwrap() {
            let name = format!("{dir}/{}", e.unwrap().file_name().to_string_lossy());
            assert!(listed.contains(&name), "kind/kustomization.yaml misses {name}");
        }
    }
    for r in &listed {
        assert!(root().join("kind").join(r).is_file(), "{r} does not exist");
    }
    let cluster: Value = serde_yaml_ng::from_str(
        &std::fs::read_to_string(root().join("kind/cluster.yaml")).unwrap(),
    )
    .unwrap();
    assert_eq!(
        (cluster["kind"].as_str(), cluster["name"].as_str()),
        (Some("Cluster"), Some("oxserve"))
    );
}

/// Where kubectl is installed, kustomize (offline) builds `kind/` into every object.
#[test]
fn kubectl_kustomize_builds_kind_where_kubectl_is_installed() {
    let Ok(out) =
        std::process::Command::new("kubectl").arg("kustomize").arg(root().join("kind")).output()
    else {
        eprintln!("kubectl not installed; the own checks above stand");
        return;
    };
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8(out.stdout).unwrap();
    let kinds = text.lines().filter(|l| l.starts_with("kind: ")).count();
    assert_eq!(
        kinds,
        install().len() + std::fs::read_dir(root().join("kind/crds")).unwrap().count()
    );
}

#[test]
fn workflows_parse_and_call_only_xtask() {
    let dir = root().join(".github/workflows");
    let mut names = Vec::new();
    for e in std::fs::read_dir(&dir).unwrap() {
        let path = e.unwrap().path();
        let text = std::fs::read_to_string(&path).unwrap();
        let w: Value =
            serde_yaml_ng::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        assert!(w["jobs"].as_object().is_some_and(|j| !j.is_empty()), "{name}: jobs");
        for (job, spec) in w["jobs"].as_object().unwrap() {
            assert!(
                spec["runs-on"].is_string() || spec["runs-on"].is_array(),
                "{name}: {job}: runs-on"
            );
            for step in spec["steps"].as_array().unwrap() {
                assert!(
                    step["run"].is_string() || step["uses"].is_string(),
                    "{name}: {job}: {step}"
                );
                for line in step["run"].as_str().unwrap_or_default().lines() {
                    let line = line.trim();
                    if line.starts_with("cargo") {
                        assert!(line.starts_with("cargo xtask "), "{name}: {line}");
                    }
                }
            }
        }
        names.push(name);
    }
    names.sort();
    assert_eq!(names, ["ci.yml", "conformance.yml", "kind-e2e.yml"]);
}

#[test]
fn the_image_pins_the_onnx_runtime_xtask_installs() {
    let dockerfile = std::fs::read_to_string(root().join("Dockerfile")).unwrap();
    let xtask = std::fs::read_to_string(root().join("xtask/src/onnxruntime.rs")).unwrap();
    let pinned = |text: &str, prefix: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(prefix))
            .map(|v| v.trim_matches(['"', ';']).to_owned())
    };
    let image = pinned(&dockerfile, "ARG ORT_VERSION=").expect("ARG ORT_VERSION in the Dockerfile");
    let setup = pinned(&xtask, "pub const VERSION: &str = ").expect("VERSION in onnxruntime.rs");
    assert_eq!(image, setup);
    assert!(
        dockerfile.contains("-p oxserve-cli --features kubernetes"),
        "the image has `oxserve controller`"
    );
}
