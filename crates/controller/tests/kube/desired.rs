//! The desired state as pure functions, snapshot-tested as YAML for each kind of sample:
//! a framework predictor, a canary (its route table), a transformer, the logger, a batcher,
//! scale to zero, an HPA (`scaleMetric: cpu`) and a multi-model parent with its
//! TrainedModels (the `modelconfig-<isvc>-0` ConfigMap).

use oxserve_controller::kubernetes::desired::{self, Children, Context};
use oxserve_controller::revision::{RevisionState, ServiceRevisions, Timestamp};
use oxserve_controller::routes::Replica;
use oxserve_controller::traffic::{self, Service};
use serde_json::{Value, json};
use std::collections::HashMap;

const T0: Timestamp = Timestamp::from_unix(1_767_225_600);

/// The objects of a manifest as the API server would hand them to the controller: parsed
/// and normalized by `oxserve_api`, in namespace `ml`, with a uid.
pub fn objects(yaml: &str) -> Vec<Value> {
    oxserve_api::parse(yaml, "test.yaml")
        .unwrap_or_else(|e| panic!("{e}"))
        .iter()
        .map(|r| {
            let mut v = r.to_value();
            v["metadata"]["namespace"] = json!("ml");
            v["metadata"]["uid"] = json!(format!("uid-{}", r.name()));
            v
        })
        .collect()
}

fn ctx(isvc: &Value) -> Context {
    Context {
        image: "oxserve:dev".into(),
        api_version: isvc["apiVersion"].as_str().unwrap().into(),
        uid: isvc["metadata"]["uid"].as_str().unwrap().into(),
    }
}

/// Every revision's children of the first object of `yaml`, by revision name.
fn children(yaml: &str, replicas: u32, multi_model: bool) -> Vec<(String, Children)> {
    let isvc = objects(yaml).remove(0);
    let mut revisions = ServiceRevisions::new(isvc["metadata"]["name"].as_str().unwrap());
    revisions.sync(&isvc["spec"], T0).unwrap();
    revisions
        .revisions()
        .map(|r| {
            let c = desired::desired(&isvc, r, replicas, multi_model, &ctx(&isvc))
                .unwrap_or_else(|e| panic!("{}: {e}", r.name));
            (r.name.clone(), c)
        })
        .collect()
}

fn sample(name: &str) -> String {
    let path = format!("{}/../api/tests/samples/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

#[test]
fn framework_predictor() {
    let all = children(&sample("sklearn-v2.yaml"), 1, false);
    assert_eq!(all.len(), 1);
    let (name, c) = &all[0];
    assert_eq!(name, "sklearn-irisv2-predictor-00001");
    let pod = c.deployment.spec.template.spec.as_ref().unwrap();
    let init = &pod.init_containers.as_ref().unwrap()[0];
    assert_eq!(init.name, desired::STORAGE_INITIALIZER);
    assert_eq!(init.args.as_ref().unwrap()[0], "pull");
    assert_eq!(pod.containers.len(), 1, "no agent without logger or batcher");
    insta::assert_yaml_snapshot!(c);
}

#[test]
fn logger_adds_the_agent_in_front() {
    let all = children(&sample("logger.yaml"), 1, false);
    let c = &all[0].1;
    let pod = c.deployment.spec.template.spec.as_ref().unwrap();
    assert_eq!(pod.containers[1].name, desired::AGENT_CONTAINER);
    let port = c.service.spec.as_ref().unwrap().ports.as_ref().unwrap()[0].target_port.clone();
    assert_eq!(
        port,
        Some(k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::Int(desired::AGENT_PORT))
    );
    insta::assert_yaml_snapshot!(c);
}

const TRANSFORMER: &str = "
# After KServe's docs/samples/v1beta1/transformer (an ONNX predictor the built-in server runs)
apiVersion: serving.kserve.io/v1beta1
kind: InferenceService
metadata:
  name: mnist
spec:
  transformer:
    containers:
      - name: kserve-container
        image: kserve/image-transformer:latest
        args: [--model_name, mnist]
  predictor:
    model:
      modelFormat: {name: onnx}
      storageUri: gs://oxserve-examples/mnist
";

#[test]
fn transformer_and_predictor() {
    let all = children(TRANSFORMER, 1, false);
    let names: Vec<&str> = all.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["mnist-predictor-00001", "mnist-transformer-00001"]);
    let transformer = &all[1].1;
    let args = transformer.deployment.spec.template.spec.as_ref().unwrap().containers[0]
        .args
        .clone()
        .unwrap();
    assert!(args.contains(&"--predictor_host=mnist-predictor.ml".to_owned()), "{args:?}");
    insta::assert_yaml_snapshot!("transformer", transformer);
    // The predictor host resolves to the router through the service's alias.
    let isvc = objects(TRANSFORMER).remove(0);
    let owner = desired::owner_reference(&isvc, &ctx(&isvc));
    let alias = desired::predictor_service(
        "mnist",
        "ml",
        "oxserve-router.oxserve-system.svc.cluster.local",
        &owner,
    );
    assert_eq!(desired::predictor_host("mnist", "ml"), "mnist-predictor.ml");
    assert_eq!(alias.metadata.name.as_deref(), Some("mnist-predictor"));
    insta::assert_yaml_snapshot!("transformer_predictor_alias", alias);
}

const BATCHER: &str = "
# After KServe's docs/samples/batcher, with a custom container (the built-in server batches
# itself, so only a container gets the agent's batcher)
apiVersion: serving.kserve.io/v1beta1
kind: InferenceService
metadata:
  name: torchserve-batcher
spec:
  predictor:
    minReplicas: 1
    batcher:
      maxBatchSize: 32
      maxLatency: 500
    containers:
      - name: kserve-container
        image: pytorch/torchserve:0.9.0-cpu
        env:
          - {name: STORAGE_URI, value: gs://kfserving-examples/models/torchserve/image_classifier}
";

#[test]
fn batcher_runs_in_the_agent() {
    let c = &children(BATCHER, 1, false)[0].1;
    let pod = c.deployment.spec.template.spec.as_ref().unwrap();
    let agent = pod.containers[1].args.clone().unwrap();
    assert!(agent.contains(&"--enable-batcher".to_owned()), "{agent:?}");
    insta::assert_yaml_snapshot!(c);
}

const SCALE_TO_ZERO: &str = "
apiVersion: serving.kserve.io/v1beta1
kind: InferenceService
metadata:
  name: xgb
spec:
  predictor:
    minReplicas: 0
    maxReplicas: 3
    model:
      modelFormat: {name: xgboost}
      storageUri: file:///opt/oxserve/models/xgb-binary
";

#[test]
fn scaled_to_zero_keeps_its_deployment() {
    let c = &children(SCALE_TO_ZERO, 0, false)[0].1;
    assert_eq!(c.deployment.spec.replicas, Some(0));
    assert!(c.hpa.is_none(), "the KPA scales it");
    insta::assert_yaml_snapshot!(c);
}

const HPA: &str = "
# KServe's raw-deployment autoscaling (docs/samples/autoscaling, scaleMetric cpu)
apiVersion: serving.kserve.io/v1beta1
kind: InferenceService
metadata:
  name: sklearn-hpa
spec:
  predictor:
    minReplicas: 1
    maxReplicas: 5
    scaleMetric: cpu
    scaleTarget: 60
    sklearn:
      storageUri: gs://kfserving-examples/models/sklearn/1.0/model
";

#[test]
fn cpu_metric_makes_an_hpa_that_owns_the_replicas() {
    let c = &children(HPA, 3, false)[0].1;
    assert_eq!(c.deployment.spec.replicas, None, "the HPA owns the count");
    let hpa = c.hpa.as_ref().expect("an HPA");
    assert_eq!((hpa.spec.min_replicas, hpa.spec.max_replicas), (Some(1), 5));
    insta::assert_yaml_snapshot!(c);
}

const MULTI_MODEL: &str = "
# After KServe's docs/samples/multimodelserving (an sklearn parent the built-in server runs)
apiVersion: serving.kserve.io/v1beta1
kind: InferenceService
metadata:
  name: mms
spec:
  predictor:
    sklearn:
      storageUri: gs://kfserving-examples/models/sklearn/1.0/model
---
apiVersion: serving.kserve.io/v1alpha1
kind: TrainedModel
metadata:
  name: model2
spec:
  inferenceService: mms
  model:
    framework: sklearn
    storageUri: gs://kfserving-examples/models/sklearn/1.0/model-2
    memory: 256Mi
---
apiVersion: serving.kserve.io/v1alpha1
kind: TrainedModel
metadata:
  name: model1
spec:
  inferenceService: mms
  model:
    framework: sklearn
    storageUri: gs://kfserving-examples/models/sklearn/1.0/model-1
    memory: 256Mi
";

#[test]
fn trained_models_make_the_models_config_and_the_puller() {
    let all = objects(MULTI_MODEL);
    let isvc = &all[0];
    let owner = desired::owner_reference(isvc, &ctx(isvc));
    let cm = desired::model_config_map("mms", "ml", &all[1..], &owner);
    assert_eq!(cm.metadata.name.as_deref(), Some("modelconfig-mms-0"));
    let models: Value =
        serde_json::from_str(&cm.data.as_ref().unwrap()[desired::MODEL_CONFIG_KEY]).unwrap();
    assert_eq!(models[0]["modelName"], "model1", "sorted by name");
    assert_eq!(
        models[1]["modelSpec"]["storageUri"],
        "gs://kfserving-examples/models/sklearn/1.0/model-2"
    );
    insta::assert_yaml_snapshot!("models_config", cm);
    let c = &children(MULTI_MODEL, 1, true)[0].1;
    let pod = c.deployment.spec.template.spec.as_ref().unwrap();
    let agent = pod.containers[1].args.clone().unwrap();
    assert!(agent.contains(&"--enable-puller".to_owned()), "{agent:?}");
    insta::assert_yaml_snapshot!("multi_model_parent", c);
}

const CANARY_V1: &str = "
apiVersion: serving.kserve.io/v1beta1
kind: InferenceService
metadata:
  name: iris
spec:
  predictor:
    model:
      modelFormat: {name: onnx}
      storageUri: file:///opt/oxserve/models/iris-lr
";

#[test]
fn canary_route_table() {
    let v1 = objects(CANARY_V1).remove(0);
    let v2_yaml = CANARY_V1
        .replace("    model:", "    canaryTrafficPercent: 10\n    model:")
        .replace("iris-lr", "iris-rf");
    let v2 = objects(&v2_yaml).remove(0);
    let mut revisions = ServiceRevisions::new("iris");
    revisions.sync(&v1["spec"], T0).unwrap();
    let ready = |revisions: &mut ServiceRevisions, name: &str, at: u64| {
        for state in [RevisionState::Loading, RevisionState::Ready] {
            revisions.transition(name, state, Timestamp::from_unix(at)).unwrap();
        }
    };
    ready(&mut revisions, "iris-predictor-00001", T0.unix() + 1);
    let annotations = Default::default();
    let service = |spec| Service {
        name: "iris",
        namespace: "ml",
        spec,
        annotations: &annotations,
        domain: "example.com",
    };
    traffic::derive(&service(&v1["spec"]), &revisions).unwrap().record(&mut revisions);
    revisions.sync(&v2["spec"], T0).unwrap();
    ready(&mut revisions, "iris-predictor-00002", T0.unix() + 2);
    let derived = traffic::derive(&service(&v2["spec"]), &revisions).unwrap();
    let replicas: HashMap<String, Vec<Replica>> = ["iris-predictor-00001", "iris-predictor-00002"]
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let replica = Replica {
                id: format!("{r}-pod"),
                http: format!("http://10.0.0.{}:8080", i + 1),
                grpc: None,
                ready: true,
            };
            (r.to_string(), vec![replica])
        })
        .collect();
    let route =
        traffic::service_route(&service(&v2["spec"]), &derived.plan, &revisions, &replicas, &[]);
    let mut weights: Vec<(String, u32)> =
        route.entry.targets.iter().map(|t| (t.revision.clone(), t.weight)).collect();
    weights.sort();
    assert_eq!(
        weights,
        [("iris-predictor-00001".to_owned(), 90), ("iris-predictor-00002".to_owned(), 10)]
    );
    let table = oxserve_controller::routes::RouteTable { services: vec![route] };
    insta::assert_yaml_snapshot!(desired::routes_config_map(
        "oxserve-routes",
        "oxserve-system",
        &table
    ));
}

#[test]
fn a_model_the_server_cannot_run_is_a_reason_not_a_crash() {
    // KServe's TensorFlow canary sample: no built-in TensorFlow runtime.
    let isvc = objects(&sample("canary.yaml")).remove(0);
    let mut revisions = ServiceRevisions::new("my-model");
    revisions.sync(&isvc["spec"], T0).unwrap();
    let r = revisions.revisions().next().unwrap();
    let err = desired::desired(&isvc, r, 1, false, &ctx(&isvc)).unwrap_err();
    assert!(err.contains("tensorflow"), "{err}");
}
