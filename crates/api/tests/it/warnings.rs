//! Fields accepted but not acted on are warnings, per backend.

use oxserve_api::{Backend, warnings};

fn parse_one(path: &str) -> oxserve_api::Resource {
    let text =
        std::fs::read_to_string(format!("{}/tests/samples/{path}", env!("CARGO_MANIFEST_DIR")))
            .expect("sample");
    oxserve_api::parse(&text, path).unwrap_or_else(|e| panic!("{e}")).remove(0)
}

fn paths(r: &oxserve_api::Resource, b: Backend) -> Vec<String> {
    warnings(r, b).into_iter().map(|w| w.path).collect()
}

#[test]
fn builtin_runtime_ignores_the_framework_container() {
    let r = parse_one("pytorch.yaml");
    // pytorch is not built in: its container runs; on the local backend resources are not applied.
    assert!(paths(&r, Backend::Kubernetes).is_empty());
    let text = "apiVersion: serving.kserve.io/v1beta1\nkind: InferenceService\nmetadata: {name: m}\nspec:\n  predictor:\n    nodeSelector: {gpu: \"true\"}\n    serviceAccountName: sa\n    tolerations: [{key: k, operator: Exists}]\n    onnx:\n      storageUri: gs://b/m\n      image: example/onnx-server:v1\n      resources: {limits: {cpu: \"1\"}}\n";
    let r = oxserve_api::parse(text, "t").expect("parses").remove(0);
    assert_eq!(
        paths(&r, Backend::Local),
        [
            "spec.predictor.nodeSelector",
            "spec.predictor.serviceAccountName",
            "spec.predictor.tolerations",
            "spec.predictor.onnx.image",
            "spec.predictor.onnx.resources",
        ]
    );
    assert_eq!(paths(&r, Backend::Kubernetes), ["spec.predictor.onnx.image"]);
}

#[test]
fn unknown_autoscaling_annotations_are_warnings() {
    let text = "apiVersion: serving.kserve.io/v1beta1\nkind: InferenceService\nmetadata:\n  name: m\n  annotations:\n    autoscaling.knative.dev/targetx: \"3\"\nspec:\n  predictor:\n    onnx:\n      storageUri: gs://b/m\n";
    let r = oxserve_api::parse(text, "t").expect("parses").remove(0);
    let w = warnings(&r, Backend::Kubernetes);
    assert_eq!(w.len(), 1);
    assert_eq!(
        w[0].to_string(),
        "metadata.annotations.autoscaling.knative.dev/targetx: not an autoscaling setting oxserve reads"
    );
}

#[test]
fn plain_samples_have_no_warnings() {
    for s in ["sklearn.yaml", "onnx.yaml", "canary.yaml", "batcher.yaml", "logger.yaml"] {
        assert!(warnings(&parse_one(s), Backend::Local).is_empty(), "{s}");
    }
}
