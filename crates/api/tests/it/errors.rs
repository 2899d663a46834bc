//! Error messages: unknown fields with a did-you-mean, bad values, type errors with their
//! path, and positions in multi-document files.

fn errors(text: &str) -> Vec<String> {
    match oxserve_api::parse(text, "isvc.yaml") {
        Ok(r) => panic!("expected errors, parsed {} resources", r.len()),
        Err(e) => e.0.iter().map(ToString::to_string).collect(),
    }
}

fn isvc(predictor: &str) -> String {
    format!(
        "apiVersion: serving.kserve.io/v1beta1\nkind: InferenceService\nmetadata:\n  name: m\nspec:\n  predictor:\n{}",
        predictor.lines().map(|l| format!("    {l}\n")).collect::<String>()
    )
}

#[test]
fn unknown_field_names_its_path_and_the_likely_field() {
    assert_eq!(
        errors(&isvc("sklearn:\n  storageUrl: gs://bucket/model")),
        [
            "isvc.yaml:doc 1: spec.predictor.sklearn.storageUrl: unknown field, did you mean storageUri"
        ]
    );
}

#[test]
fn unknown_fields_inside_kubernetes_types_are_found() {
    let text = isvc(
        "containers:\n  - name: kserve-container\n    image: x\n    env:\n      - name: A\n        valueFrm:\n          fieldRef:\n            fieldPath: metadata.name\n    readinessProbe:\n      httpGet:\n        paht: /ready\n        port: 8080",
    );
    assert_eq!(
        errors(&text),
        [
            "isvc.yaml:doc 1: spec.predictor.containers[0].env[0].valueFrm: unknown field, did you mean valueFrom",
            "isvc.yaml:doc 1: spec.predictor.containers[0].readinessProbe.httpGet.paht: unknown field, did you mean path",
        ]
    );
}

#[test]
fn unknown_field_without_a_close_name() {
    assert_eq!(
        errors(&isvc("colour: blue\nonnx:\n  storageUri: gs://b/m")),
        ["isvc.yaml:doc 1: spec.predictor.colour: unknown field"]
    );
}

#[test]
fn unknown_metadata_and_top_level_fields() {
    let text = "apiVersion: serving.kserve.io/v1beta1\nkind: InferenceService\nmetadata:\n  name: m\n  lables: {a: b}\nspce: {}\nspec:\n  predictor:\n    onnx:\n      storageUri: gs://b/m\n";
    assert_eq!(
        errors(text),
        [
            "isvc.yaml:doc 1: metadata.lables: unknown field, did you mean labels",
            "isvc.yaml:doc 1: spce: unknown field, did you mean spec",
        ]
    );
}

#[test]
fn type_errors_carry_their_path() {
    let e = errors(&isvc("minReplicas: lots\nonnx:\n  storageUri: gs://b/m"));
    assert_eq!(e.len(), 1);
    assert!(
        e[0].starts_with(
            "isvc.yaml:doc 1: spec.predictor.minReplicas: invalid type: string \"lots\""
        ),
        "{}",
        e[0]
    );
    let e = errors(&isvc("scaleMetric: latency\nonnx:\n  storageUri: gs://b/m"));
    assert!(
        e[0].starts_with("isvc.yaml:doc 1: spec.predictor.scaleMetric: unknown variant `latency`"),
        "{}",
        e[0]
    );
}

#[test]
fn bad_values_are_reported_with_reasons() {
    let cases = [
        (
            "canaryTrafficPercent: 120\nonnx:\n  storageUri: gs://b/m",
            "spec.predictor.canaryTrafficPercent: must be between 0 and 100, got 120",
        ),
        (
            "minReplicas: 3\nmaxReplicas: 2\nonnx:\n  storageUri: gs://b/m",
            "spec.predictor.minReplicas: 3 is greater than maxReplicas 2",
        ),
        (
            "minReplicas: -1\nonnx:\n  storageUri: gs://b/m",
            "spec.predictor.minReplicas: must not be negative, got -1",
        ),
        (
            "scaleMetric: rps\nscaleTarget: 0\nonnx:\n  storageUri: gs://b/m",
            "spec.predictor.scaleTarget: must be at least 1, got 0",
        ),
        (
            "batcher:\n  maxBatchSize: 0\nonnx:\n  storageUri: gs://b/m",
            "spec.predictor.batcher.maxBatchSize: must be at least 1, got 0",
        ),
        (
            "logger:\n  mode: all\nonnx:\n  storageUri: gs://b/m",
            "spec.predictor.logger.url: required (the sink the events are sent to) unless logger.storage is set",
        ),
        (
            "onnx:\n  storageUri: ftp://host/model",
            "spec.predictor.onnx.storageUri: \"ftp://host/model\": unsupported scheme \"ftp\", expected one of gs://, s3://, pvc://, file://, https://, http://, hdfs://, webhdfs://, oci://, oci+native://, oci+fetch://, hf:// or a local path",
        ),
        (
            "onnx:\n  storageUri: gs://b/m\nxgboost:\n  storageUri: gs://b/m",
            "spec.predictor: exactly one of sklearn, xgboost, tensorflow, pytorch, triton, onnx, huggingface, pmml, lightgbm, paddle, model or containers must be set, found xgboost, onnx",
        ),
        (
            "minReplicas: 1",
            "spec.predictor: exactly one of sklearn, xgboost, tensorflow, pytorch, triton, onnx, huggingface, pmml, lightgbm, paddle, model or containers must be set, found none",
        ),
        (
            "annotations:\n  autoscaling.knative.dev/metric: latency\nonnx:\n  storageUri: gs://b/m",
            "spec.predictor.annotations.autoscaling.knative.dev/metric: \"latency\" is not one of concurrency, rps, cpu, memory",
        ),
    ];
    for (predictor, want) in cases {
        assert_eq!(errors(&isvc(predictor)), [format!("isvc.yaml:doc 1: {want}")], "{predictor}");
    }
}

#[test]
fn names_follow_dns_1035() {
    let text = "apiVersion: serving.kserve.io/v1beta1\nkind: InferenceService\nmetadata:\n  name: My_Model\nspec:\n  predictor:\n    onnx:\n      storageUri: gs://b/m\n";
    assert_eq!(
        errors(text),
        [
            "isvc.yaml:doc 1: metadata.name: \"My_Model\" is not a valid name: lowercase letters, digits and '-', starting with a letter and ending with a letter or digit"
        ]
    );
    let long = "a".repeat(48);
    let text = text.replace("My_Model", &long);
    assert_eq!(
        errors(&text),
        [format!(
            "isvc.yaml:doc 1: metadata.name: \"{long}\" is 48 characters, at most 47 (revision names add 16 and must fit 63)"
        )]
    );
}

#[test]
fn multi_document_positions() {
    let good = isvc("onnx:\n  storageUri: gs://b/m");
    let text = format!(
        "{good}---\n{}---\n# empty\n---\n{}",
        good.replace("name: m", "name: ok"),
        isvc("onnx:\n  storageUrl: x")
    );
    // Document 3 is empty (a comment only) and still counts.
    assert_eq!(
        errors(&text),
        ["isvc.yaml:doc 4: spec.predictor.onnx.storageUrl: unknown field, did you mean storageUri"]
    );
}

#[test]
fn yaml_syntax_errors_name_the_document() {
    let e = errors(&format!("{}---\nkind: [unclosed\n", isvc("onnx:\n  storageUri: gs://b/m")));
    assert_eq!(e.len(), 1);
    assert!(e[0].starts_with("isvc.yaml:doc 2: invalid YAML: "), "{}", e[0]);
}

#[test]
fn api_version_and_kind_are_checked() {
    let body = "metadata:\n  name: m\nspec:\n  predictor:\n    onnx:\n      storageUri: gs://b/m\n";
    assert_eq!(
        errors(&format!("apiVersion: serving.kserve.io/v1beta1\nkind: InferenceServise\n{body}")),
        [
            "isvc.yaml:doc 1: kind: unknown kind \"InferenceServise\", expected one of InferenceService, TrainedModel, ServingRuntime, ClusterServingRuntime, did you mean InferenceService"
        ]
    );
    assert_eq!(
        errors(&format!("apiVersion: example.com/v1beta1\nkind: InferenceService\n{body}")),
        [
            "isvc.yaml:doc 1: apiVersion: unknown group \"example.com\", expected serving.kserve.io, serving.kubeflow.org or serving.oxserve.dev"
        ]
    );
    assert_eq!(
        errors(&format!("apiVersion: serving.kserve.io/v1alpha1\nkind: InferenceService\n{body}")),
        [
            "isvc.yaml:doc 1: apiVersion: InferenceService is served as serving.kserve.io/v1beta1, got version \"v1alpha1\""
        ]
    );
    assert_eq!(
        errors(&format!("kind: InferenceService\n{body}")),
        ["isvc.yaml:doc 1: apiVersion: required, e.g. serving.kserve.io/v1beta1"]
    );
}

#[test]
fn oxserve_explainer_needs_the_native_group() {
    let text =
        format!("{}  explainer:\n    type: kernelshap\n", isvc("onnx:\n  storageUri: gs://b/m"));
    assert_eq!(
        errors(&text),
        [
            "isvc.yaml:doc 1: spec.explainer.type: oxserve's own explainer needs apiVersion serving.oxserve.dev/v1beta1; with serving.kserve.io write explainer.art or explainer.containers"
        ]
    );
    let native = text.replace("serving.kserve.io", "serving.oxserve.dev");
    assert!(oxserve_api::parse(&native, "isvc.yaml").is_ok());
}

#[test]
fn json_lists_and_errors() {
    let text = r#"{"apiVersion": "v1", "kind": "List", "items": [
        {"apiVersion": "serving.kserve.io/v1beta1", "kind": "InferenceService", "metadata": {"name": "a"},
         "spec": {"predictor": {"onnx": {"storageUri": "gs://b/m"}}}},
        {"apiVersion": "serving.kserve.io/v1beta1", "kind": "InferenceService", "metadata": {"name": "b"},
         "spec": {"predictor": {"onnx": {"storageUri": "gs://b/m", "protocolVersion": "v3"}}}}]}"#;
    let e = errors(text);
    assert_eq!(e.len(), 1);
    assert!(
        e[0].starts_with(
            "isvc.yaml:doc 1: items[1].spec.predictor.onnx.protocolVersion: unknown variant `v3`"
        ),
        "{}",
        e[0]
    );
}

#[test]
fn null_fields_are_absent_fields() {
    let r = oxserve_api::parse(&isvc("logger: null\nonnx:\n  storageUri: gs://b/m"), "isvc.yaml")
        .expect("parses");
    assert!(r[0].to_value().pointer("/spec/predictor/logger").is_none());
}
