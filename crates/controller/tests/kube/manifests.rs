//! Every manifest under `kind/` parses as the Kubernetes type it names and has what a real
//! API server requires (names, namespaces, selectors matching their pod templates, images,
//! references to objects that exist); the RBAC grants exactly what the reconciler and the
//! leader election are seen to call on the fake API server, and nothing wildcarded; the
//! workflows parse and call only `cargo xtask`.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Service};
use serde::Deserialize;
use serde_json::Value;

pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Every document of every YAML file under `kind/install`.
pub fn install() -> Vec<(String, Value)> {
    documents("kind/install")
}

/// Every document of every YAML file in `dir` (relative to the repository), its
/// `kustomization.yaml` left out, with the file's name.
pub fn documents(dir: &str) -> Vec<(String, Value)> {
    let dir = root().join(dir);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file() && p.file_name().is_some_and(|n| n != "kustomization.yaml"))
        .collect();
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

pub fn of_kind<T: serde::de::DeserializeOwned>(docs: &[(String, Value)], kind: &str) -> Vec<T> {
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

/// The `resources` a `kustomization.yaml` in `dir` lists.
fn resources(dir: &str) -> BTreeSet<String> {
    let path = root().join(dir).join("kustomization.yaml");
    let k: Value = serde_yaml_ng::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    k["resources"].as_array().unwrap().iter().map(|r| r.as_str().unwrap().to_owned()).collect()
}

/// The YAML files of `dir` but its kustomization.
fn yaml_files(dir: &str) -> BTreeSet<String> {
    std::fs::read_dir(root().join(dir))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".yaml") && n != "kustomization.yaml")
        .collect()
}

#[test]
fn kustomizations_list_every_crd_and_install_file() {
    assert_eq!(resources("kind"), BTreeSet::from(["crds".to_owned(), "install".to_owned()]));
    for dir in ["kind/crds", "kind/install"] {
        assert_eq!(resources(dir), yaml_files(dir), "{dir}/kustomization.yaml");
    }
    let crds: BTreeSet<String> =
        oxserve_api::crd::files().into_iter().map(|(name, _)| name).collect();
    assert_eq!(yaml_files("kind/crds"), crds, "kind/crds holds the generated CRDs");
    let overlay = resources("kind/namespaced");
    let mut expected: BTreeSet<String> = ["../crds", "../install"].map(str::to_owned).into();
    expected.extend(yaml_files("kind/namespaced"));
    assert_eq!(overlay, expected, "kind/namespaced/kustomization.yaml");
    let cluster: Value = serde_yaml_ng::from_str(
        &std::fs::read_to_string(root().join("kind/cluster.yaml")).unwrap(),
    )
    .unwrap();
    assert_eq!(
        (cluster["kind"].as_str(), cluster["name"].as_str()),
        (Some("Cluster"), Some("oxserve"))
    );
}

/// `kubectl kustomize DIR`, or `None` where kubectl is not installed.
pub fn kustomize(dir: &str) -> Option<Vec<Value>> {
    let Ok(out) =
        std::process::Command::new("kubectl").arg("kustomize").arg(root().join(dir)).output()
    else {
        eprintln!("kubectl not installed; the own checks stand");
        return None;
    };
    assert!(out.status.success(), "{dir}: {}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8(out.stdout).unwrap();
    Some(
        serde_yaml_ng::Deserializer::from_str(&text)
            .map(|de| Value::deserialize(de).unwrap())
            .filter(|d| !d.is_null())
            .collect(),
    )
}

/// Where kubectl is installed, kustomize (offline) builds `kind/` into every object, and
/// `kind/namespaced` into the same install without the ClusterRole, with Roles and the
/// controller's `--namespace`.
#[test]
fn kubectl_kustomize_builds_both_installs_where_kubectl_is_installed() {
    let Some(all) = kustomize("kind") else { return };
    assert_eq!(all.len(), install().len() + yaml_files("kind/crds").len());
    let Some(namespaced) = kustomize("kind/namespaced") else { return };
    let kinds = |docs: &[Value], kind: &str| docs.iter().filter(|d| d["kind"] == kind).count();
    assert_eq!(kinds(&namespaced, "ClusterRole") + kinds(&namespaced, "ClusterRoleBinding"), 0);
    assert_eq!(kinds(&namespaced, "CustomResourceDefinition"), 8);
    assert_eq!(kinds(&namespaced, "Role"), 3);
    let controller = namespaced
        .iter()
        .find(|d| d["kind"] == "Deployment" && d["metadata"]["name"] == "oxserve-controller")
        .unwrap();
    let args = &controller["spec"]["template"]["spec"]["containers"][0]["args"];
    let args: Vec<&str> = args.as_array().unwrap().iter().map(|a| a.as_str().unwrap()).collect();
    assert!(args.windows(2).any(|w| w == ["--namespace", "oxserve-models"]), "{args:?}");
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
                    let tool = line.split_whitespace().next().unwrap_or_default();
                    assert!(
                        line.starts_with("cargo xtask ")
                            || ["mkdir", "cat"].contains(&tool)
                            || line.is_empty(),
                        "{name}: {job}: only cargo xtask is run: {line}"
                    );
                }
            }
        }
        names.push(name);
    }
    names.sort();
    assert_eq!(names, ["ci.yml", "conformance.yml", "gpu.yml", "kind-e2e.yml"]);
    let gpu: Value =
        serde_yaml_ng::from_str(&std::fs::read_to_string(dir.join("gpu.yml")).unwrap()).unwrap();
    assert_eq!(gpu["jobs"]["gpu"]["runs-on"], serde_json::json!(["self-hosted", "gpu"]));
    let kind: Value =
        serde_yaml_ng::from_str(&std::fs::read_to_string(dir.join("kind-e2e.yml")).unwrap())
            .unwrap();
    let runs: Vec<&str> = kind["jobs"]["kind"]["steps"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|s| s["run"].as_str())
        .collect();
    for step in ["up", "load", "e2e", "logs", "down"] {
        let line = format!("cargo xtask kind {step}");
        assert!(runs.iter().any(|r| r.trim() == line), "kind-e2e.yml runs {line}: {runs:?}");
    }
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
