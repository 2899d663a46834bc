//! `oxserve apply --dry-run`: the real binary on a good and a bad manifest, from a file and
//! from stdin; without `--dry-run` and without a platform it exits 2 and says so.

use std::io::Write;
use std::process::{Command, Output, Stdio};

fn apply(args: &[&str], stdin: Option<&str>) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_oxserve"))
        .arg("apply")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .env_remove("OXSERVE_SERVER")
        .env_remove("OXSERVE_NAMESPACE")
        .spawn()
        .expect("spawn oxserve apply");
    let mut input = child.stdin.take().expect("stdin");
    input.write_all(stdin.unwrap_or_default().as_bytes()).expect("write stdin");
    drop(input);
    child.wait_with_output().expect("oxserve apply runs")
}

const GOOD: &str = "apiVersion: serving.kubeflow.org/v1beta1
kind: InferenceService
metadata:
  name: sklearn-iris
spec:
  predictor:
    nodeSelector:
      disk: ssd
    canaryTrafficPercent: 10
    sklearn:
      storageUri: gs://kfserving-examples/models/sklearn/1.0/model.onnx
---
apiVersion: serving.kserve.io/v1alpha1
kind: TrainedModel
metadata:
  name: iris-2
  namespace: team
spec:
  inferenceService: sklearn-iris
  model:
    framework: sklearn
    storageUri: gs://kfserving-examples/models/sklearn/2.0/model.onnx
    memory: 256Mi
";

const BAD: &str = "apiVersion: serving.kserve.io/v1beta1
kind: InferenceService
metadata:
  name: ok
spec:
  predictor:
    onnx:
      storageUri: gs://b/m
---
apiVersion: serving.kserve.io/v1beta1
kind: InferenceService
metadata:
  name: bad
spec:
  predictor:
    canaryTrafficPercent: 150
    sklearn:
      storageUrl: gs://b/m
";

fn text(bytes: &[u8]) -> String {
    String::from_utf8(bytes.to_vec()).expect("utf-8")
}

#[test]
fn dry_run_prints_the_normalized_objects() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("isvc.yaml");
    std::fs::write(&file, GOOD).expect("write manifest");
    let out = apply(&["--dry-run", "-f", file.to_str().expect("path"), "-o", "json"], None);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let list: serde_json::Value = serde_json::from_slice(&out.stdout).expect("stdout is JSON");
    assert_eq!(list["kind"], "List");
    let isvc = &list["items"][0];
    assert_eq!(isvc["apiVersion"], "serving.kubeflow.org/v1beta1");
    assert_eq!(isvc["metadata"]["namespace"], "default");
    assert_eq!(isvc["spec"]["predictor"]["minReplicas"], 1);
    assert_eq!(isvc["spec"]["predictor"]["canaryTrafficPercent"], 10);
    assert_eq!(isvc["spec"]["predictor"]["sklearn"]["protocolVersion"], "v1");
    let tm = &list["items"][1];
    assert_eq!(tm["kind"], "TrainedModel");
    assert_eq!(tm["metadata"]["namespace"], "team");
    assert_eq!(
        text(&out.stderr),
        "warning: inferenceservice/sklearn-iris: spec.predictor.nodeSelector: a pod field; local replicas are processes on this machine\n"
    );
}

#[test]
fn dry_run_from_stdin_as_yaml_with_a_namespace() {
    let out =
        apply(&["--dry-run", "-f", "-", "-n", "models", "--backend", "kubernetes"], Some(GOOD));
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    let docs: Vec<serde_json::Value> =
        stdout.split("---\n").map(|d| serde_yaml_ng::from_str(d).expect("yaml")).collect();
    assert_eq!(docs.len(), 2);
    assert_eq!(docs[0]["metadata"]["namespace"], "models");
    assert!(out.stderr.is_empty(), "no warnings on kubernetes: {}", text(&out.stderr));
}

#[test]
fn invalid_manifests_exit_1_with_positioned_errors() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("bad.yaml");
    std::fs::write(&file, BAD).expect("write manifest");
    let path = file.to_str().expect("path");
    let out = apply(&["--dry-run", "-f", path], None);
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty());
    assert_eq!(
        text(&out.stderr),
        format!(
            "{path}:doc 2: spec.predictor.sklearn.storageUrl: unknown field, did you mean storageUri\n"
        )
    );
    // Once the field is fixed, the bad value is next.
    std::fs::write(&file, BAD.replace("storageUrl", "storageUri")).expect("write manifest");
    let out = apply(&["--dry-run", "-f", path], None);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        text(&out.stderr),
        format!(
            "{path}:doc 2: spec.predictor.canaryTrafficPercent: must be between 0 and 100, got 150\n"
        )
    );
}

#[test]
fn without_a_platform_it_exits_2_and_says_so() {
    // Port 1 on loopback: nothing listens there.
    let out = apply(&["-f", "-", "--server", "http://127.0.0.1:1"], Some(GOOD));
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stdout.is_empty(), "nothing was applied: {}", text(&out.stdout));
    let stderr = text(&out.stderr);
    assert!(
        stderr
            .contains("cannot reach the platform at http://127.0.0.1:1 (is `oxserve up` running?)"),
        "{stderr}"
    );
}

#[test]
fn a_missing_file_is_an_error_not_a_crash() {
    let out = apply(&["--dry-run", "-f", "/nonexistent/isvc.yaml"], None);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("reading /nonexistent/isvc.yaml"), "{}", text(&out.stderr));
}
