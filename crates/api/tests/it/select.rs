//! Runtime selection: the built-in runtime, ServingRuntimes matched as KServe matches them,
//! runtimes by name, custom containers and the refusals.

use oxserve_api::isvc::ProtocolVersion;
use oxserve_api::runtime::ServingRuntime;
use oxserve_api::select::BuiltinFormat;
use oxserve_api::{Resource, RuntimeSelection, select_runtime};

fn predictor(yaml: &str) -> oxserve_api::isvc::PredictorSpec {
    let text = format!(
        "apiVersion: serving.kserve.io/v1beta1\nkind: InferenceService\nmetadata:\n  name: m\nspec:\n  predictor:\n{}",
        yaml.lines().map(|l| format!("    {l}\n")).collect::<String>()
    );
    match oxserve_api::parse(&text, "t").unwrap_or_else(|e| panic!("{e}")).remove(0) {
        Resource::InferenceService { object, .. } => object.spec.predictor,
        other => panic!("{other:?}"),
    }
}

fn runtimes() -> Vec<ServingRuntime> {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/samples/serving-runtime.yaml"
    ))
    .expect("sample");
    oxserve_api::parse(&text, "rt")
        .expect("runtimes parse")
        .into_iter()
        .map(|r| match r {
            Resource::ServingRuntime { object, .. } => *object,
            Resource::ClusterServingRuntime { object, .. } => ServingRuntime::from(*object),
            other => panic!("{other:?}"),
        })
        .collect()
}

fn err(r: oxserve_api::Result<RuntimeSelection>) -> String {
    r.expect_err("refused").to_string()
}

#[test]
fn native_formats_use_the_builtin_runtime() {
    for (yaml, format, protocol) in [
        ("onnx:\n  storageUri: gs://b/m", BuiltinFormat::Onnx, ProtocolVersion::V2),
        ("xgboost:\n  storageUri: gs://b/m", BuiltinFormat::XGBoost, ProtocolVersion::V1),
        ("lightgbm:\n  storageUri: gs://b/m", BuiltinFormat::LightGBM, ProtocolVersion::V1),
        (
            "sklearn:\n  storageUri: gs://b/model.onnx",
            BuiltinFormat::SklearnOnnx,
            ProtocolVersion::V1,
        ),
        (
            "model:\n  modelFormat: {name: xgboost}\n  protocolVersion: v2\n  storageUri: gs://b/m",
            BuiltinFormat::XGBoost,
            ProtocolVersion::V2,
        ),
    ] {
        assert_eq!(
            select_runtime(&predictor(yaml), &[]).expect(yaml),
            RuntimeSelection::Builtin { format, protocol }
        );
    }
}

#[test]
fn sklearn_pickles_are_refused_with_what_to_do() {
    let e = err(select_runtime(&predictor("sklearn:\n  storageUri: gs://b/model.joblib"), &[]));
    assert!(e.starts_with("spec.predictor.sklearn.storageUri: \"gs://b/model.joblib\" is a pickle: oxserve serves scikit-learn models exported to ONNX"), "{e}");
    assert!(e.contains("apply a ServingRuntime for sklearn whose container has a command"), "{e}");
}

#[test]
fn formats_without_a_runtime_are_refused() {
    let e = err(select_runtime(&predictor("tensorflow:\n  storageUri: gs://b/m"), &[]));
    assert!(e.starts_with("spec.predictor.tensorflow: NoSupportingRuntime: no runtime serves model format tensorflow with protocol v1"), "{e}");
}

#[test]
fn applied_runtimes_win_by_priority_and_protocol() {
    let rts = runtimes();
    // Both auto-select sklearn v1; only the cluster runtime speaks v1.
    let p =
        predictor("model:\n  modelFormat: {name: sklearn, version: \"1\"}\n  storageUri: gs://b/m");
    assert!(
        matches!(select_runtime(&p, &rts), Ok(RuntimeSelection::ServingRuntime { name, .. }) if name == "kserve-sklearnserver")
    );
    // With v2 both qualify; mlserver has the higher priority (2).
    let p = predictor(
        "model:\n  modelFormat: {name: sklearn}\n  protocolVersion: v2\n  storageUri: gs://b/m",
    );
    assert!(
        matches!(select_runtime(&p, &rts), Ok(RuntimeSelection::ServingRuntime { name, .. }) if name == "kserve-mlserver")
    );
    // A version no runtime lists falls back to the built-in runtime (no version check there).
    let p = predictor(
        "model:\n  modelFormat: {name: xgboost, version: \"2\"}\n  protocolVersion: v2\n  storageUri: gs://b/m",
    );
    assert!(
        matches!(
            select_runtime(&p, &rts),
            Ok(RuntimeSelection::Builtin { format: BuiltinFormat::XGBoost, .. })
        ),
        "{:?}",
        select_runtime(&p, &rts)
    );
}

#[test]
fn runtime_by_name() {
    let rts = runtimes();
    let p = predictor(
        "model:\n  modelFormat: {name: xgboost}\n  runtime: kserve-mlserver\n  protocolVersion: v2\n  storageUri: gs://b/m",
    );
    assert!(
        matches!(select_runtime(&p, &rts), Ok(RuntimeSelection::ServingRuntime { name, .. }) if name == "kserve-mlserver")
    );
    let p = predictor(
        "model:\n  modelFormat: {name: onnx}\n  runtime: kserve-mlserver\n  protocolVersion: v2\n  storageUri: gs://b/m",
    );
    assert_eq!(
        err(select_runtime(&p, &rts)),
        "spec.predictor.model.runtime: NoSupportingRuntime: ServingRuntime \"kserve-mlserver\" does not support model format onnx"
    );
    let p =
        predictor("model:\n  modelFormat: {name: onnx}\n  runtime: triton\n  storageUri: gs://b/m");
    assert_eq!(
        err(select_runtime(&p, &rts)),
        "spec.predictor.model.runtime: RuntimeNotRecognized: no ServingRuntime named \"triton\": apply one, or leave runtime unset to choose by model format"
    );
}

#[test]
fn custom_containers() {
    let p = predictor("containers:\n  - name: kserve-container\n    image: example/server:v1");
    assert_eq!(select_runtime(&p, &[]).expect("custom"), RuntimeSelection::CustomContainer);
}
