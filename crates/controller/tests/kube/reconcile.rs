//! The reconciler against the fake API server: create → finalizer, children applied, status
//! patched, route published; pods ready → Ready; a canary update and its promotion;
//! deletion through the finalizer; API errors and conflicts retried with back-off; a child
//! the API server refuses and a manifest that does not validate reported in status.

use std::sync::Arc;
use std::time::Duration;

use http::Method;
use kube::api::DynamicObject;
use kube::runtime::controller::Action;
use oxserve_controller::kubernetes::reconcile::{
    self, Config, Error, State, error_policy, reconcile_service,
};
use oxserve_controller::routes::RouteTable;
use serde_json::{Value, json};

use crate::fake::ApiServer;

const ISVC: &str = "/apis/serving.kserve.io/v1beta1/namespaces/ml/inferenceservices/iris";
const ROUTES: &str = "/api/v1/namespaces/oxserve-system/configmaps/oxserve-routes";
const STATE_CM: &str = "/api/v1/namespaces/ml/configmaps/iris-oxserve-revisions";

fn deployment(revision: &str) -> String {
    format!("/apis/apps/v1/namespaces/ml/deployments/{revision}")
}

fn config() -> Config {
    Config {
        namespace: None,
        image: "oxserve:dev".into(),
        router_namespace: "oxserve-system".into(),
        routes_config_map: "oxserve-routes".into(),
        router_selector: "app.kubernetes.io/name=oxserve-router".into(),
        router_service: "oxserve-router".into(),
        domain: "example.com".into(),
        kserve_group: true,
        resync: Duration::from_secs(2),
    }
}

fn isvc(generation: u64, predictor: Value) -> Value {
    json!({
        "apiVersion": "serving.kserve.io/v1beta1",
        "kind": "InferenceService",
        "metadata": {"name": "iris", "namespace": "ml", "uid": "uid-iris", "generation": generation},
        "spec": {"predictor": predictor},
    })
}

fn onnx(uri: &str) -> Value {
    json!({"model": {"modelFormat": {"name": "onnx"}, "storageUri": uri}})
}

/// Stores `object` as the user's latest write (keeping what the controller added).
fn write_spec(server: &ApiServer, object: Value) {
    let mut current = server.get(ISVC).unwrap_or_else(|| json!({}));
    current["apiVersion"] = object["apiVersion"].clone();
    current["kind"] = object["kind"].clone();
    current["spec"] = object["spec"].clone();
    for (k, v) in object["metadata"].as_object().unwrap() {
        current["metadata"][k] = v.clone();
    }
    server.put(ISVC, current);
}

/// A pass over the stored InferenceService, as kube's controller would run it.
async fn pass(server: &ApiServer, state: &Arc<State>) -> Result<Action, Error> {
    let obj: DynamicObject = serde_json::from_value(server.get(ISVC).unwrap()).unwrap();
    reconcile_service(Arc::new(obj), state.clone()).await
}

/// Plays the kubelet: a ready pod of `revision` at `ip`.
fn ready_pod(server: &ApiServer, revision: &str, ip: &str) {
    server.put(
        &format!("/api/v1/namespaces/ml/pods/{revision}-abc"),
        json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": format!("{revision}-abc"), "namespace": "ml",
                         "labels": {"serving.oxserve.dev/revision": revision}},
            "status": {"podIP": ip, "conditions": [{"type": "Ready", "status": "True"}]},
        }),
    );
}

fn routes(server: &ApiServer) -> RouteTable {
    let cm = server.get(ROUTES).expect("the routes ConfigMap");
    serde_yaml_ng::from_str(cm["data"]["routes.yaml"].as_str().unwrap()).unwrap()
}

fn weights(table: &RouteTable) -> Vec<(String, u32)> {
    let mut w: Vec<(String, u32)> =
        table.services[0].entry.targets.iter().map(|t| (t.revision.clone(), t.weight)).collect();
    w.sort();
    w
}

fn condition<'a>(object: &'a Value, type_: &str) -> &'a Value {
    object["status"]["conditions"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["type"] == type_))
        .unwrap_or_else(|| panic!("no {type_} condition in {:#}", object["status"]))
}

fn start() -> (ApiServer, Arc<State>) {
    let (client, server) = ApiServer::start();
    (server, Arc::new(State::new(client, config())))
}

#[tokio::test]
async fn create_applies_children_then_status_then_route() {
    let (server, state) = start();
    write_spec(&server, isvc(1, onnx("file:///opt/oxserve/models/iris-lr")));
    let action = pass(&server, &state).await.unwrap();
    assert_eq!(action, Action::requeue(Duration::from_secs(2)));

    let requests = server.take_seen();
    let status_patch = requests.iter().find(|s| s.path.ends_with("/status")).unwrap();
    assert!(
        status_patch.query.contains("fieldManager=oxserve-controller"),
        "{}",
        status_patch.query
    );
    assert_eq!(status_patch.body["kind"], "InferenceService", "server-side apply names the kind");
    let seen: Vec<String> = requests.iter().map(|s| s.line()).collect();
    assert_eq!(seen[0], format!("PATCH {ISVC}"), "the finalizer first: {seen:#?}");
    let at = |line: &str| {
        seen.iter().position(|s| s == line).unwrap_or_else(|| panic!("{line} in {seen:#?}"))
    };
    let dep = at(&format!("PATCH {}", deployment("iris-predictor-00001")));
    let status = at(&format!("PATCH {ISVC}/status"));
    assert!(dep < status && status < at(&format!("PATCH {ROUTES}")), "{seen:#?}");

    let object = server.get(ISVC).unwrap();
    assert_eq!(object["metadata"]["finalizers"], json!(["serving.oxserve.dev/finalizer"]));
    assert_eq!(object["status"]["observedGeneration"], 1);
    assert_eq!(condition(&object, "Ready")["status"], "Unknown", "no pod is ready yet");

    let d = server.get(&deployment("iris-predictor-00001")).unwrap();
    assert_eq!(d["metadata"]["ownerReferences"][0]["uid"], "uid-iris");
    assert_eq!(d["metadata"]["ownerReferences"][0]["controller"], true);
    let pod = &d["spec"]["template"]["spec"];
    assert_eq!(
        pod["initContainers"][0]["args"],
        json!(["pull", "file:///opt/oxserve/models/iris-lr", "/mnt/models"])
    );
    assert!(server.get("/api/v1/namespaces/ml/services/iris-predictor-00001").is_some());
    assert!(server.get(STATE_CM).is_some(), "the revisions are kept");
    let table = routes(&server);
    assert_eq!(table.services[0].hosts, ["iris.ml.example.com"]);
    assert!(
        table.services[0].entry.targets.is_empty(),
        "nothing to route to before a revision is ready"
    );
}

#[tokio::test]
async fn ready_pods_make_it_ready_and_routable() {
    let (server, state) = start();
    write_spec(&server, isvc(1, onnx("file:///m/iris-lr")));
    pass(&server, &state).await.unwrap();
    ready_pod(&server, "iris-predictor-00001", "10.1.0.5");
    pass(&server, &state).await.unwrap();
    let object = server.get(ISVC).unwrap();
    assert_eq!(condition(&object, "Ready")["status"], "True", "{:#}", object["status"]);
    assert_eq!(object["status"]["url"], "http://iris.ml.example.com");
    let replicas = &routes(&server).services[0].entry.targets[0].replicas;
    assert_eq!(replicas[0].http, "http://10.1.0.5:8080");
    assert!(replicas[0].ready);
}

#[tokio::test]
async fn canary_then_promotion() {
    let (server, state) = start();
    write_spec(&server, isvc(1, onnx("file:///m/iris-lr")));
    pass(&server, &state).await.unwrap();
    ready_pod(&server, "iris-predictor-00001", "10.1.0.5");
    pass(&server, &state).await.unwrap();

    let mut canary = onnx("file:///m/iris-rf");
    canary["canaryTrafficPercent"] = json!(10);
    write_spec(&server, isvc(2, canary));
    pass(&server, &state).await.unwrap();
    assert!(server.get(&deployment("iris-predictor-00002")).is_some(), "the canary's Deployment");
    ready_pod(&server, "iris-predictor-00002", "10.1.0.6");
    pass(&server, &state).await.unwrap();
    assert_eq!(
        weights(&routes(&server)),
        [("iris-predictor-00001".to_owned(), 90), ("iris-predictor-00002".to_owned(), 10)]
    );
    let object = server.get(ISVC).unwrap();
    assert_eq!(object["status"]["observedGeneration"], 2);

    write_spec(&server, isvc(3, onnx("file:///m/iris-rf")));
    pass(&server, &state).await.unwrap();
    let promoted = weights(&routes(&server));
    assert!(promoted.contains(&("iris-predictor-00002".to_owned(), 100)), "{promoted:?}");
    assert!(!promoted.iter().any(|(r, w)| r == "iris-predictor-00001" && *w > 0), "{promoted:?}");
}

#[tokio::test]
async fn deletion_withdraws_the_route_and_releases_the_finalizer() {
    let (server, state) = start();
    write_spec(&server, isvc(1, onnx("file:///m/iris-lr")));
    pass(&server, &state).await.unwrap();
    assert_eq!(routes(&server).services.len(), 1);
    let mut object = server.get(ISVC).unwrap();
    object["metadata"]["deletionTimestamp"] = json!("2026-01-01T00:00:00Z");
    server.put(ISVC, object);
    let action = pass(&server, &state).await.unwrap();
    assert_eq!(action, Action::await_change());
    assert!(routes(&server).services.is_empty());
    assert!(server.get(STATE_CM).is_none(), "the revision state is removed");
    assert_eq!(server.get(ISVC).unwrap()["metadata"]["finalizers"], json!([]));
}

#[tokio::test]
async fn api_errors_back_off_and_a_success_resets() {
    let (server, state) = start();
    write_spec(&server, isvc(1, onnx("file:///m/iris-lr")));
    server.fail(Method::GET, "/configmaps/iris-oxserve-revisions", 500, 2);
    let obj = Arc::new(serde_json::from_value::<DynamicObject>(server.get(ISVC).unwrap()).unwrap());
    for expected in [1, 2] {
        let err = pass(&server, &state).await.unwrap_err();
        assert!(matches!(err, Error::Kube(_)), "{err}");
        let action = error_policy(obj.clone(), &err, state.clone());
        assert_eq!(action, Action::requeue(Duration::from_secs(expected)));
    }
    pass(&server, &state).await.unwrap();
    let err = Error::Invalid("again".into());
    assert_eq!(error_policy(obj, &err, state.clone()), Action::requeue(Duration::from_secs(1)));
    assert_eq!(reconcile::backoff(20), Duration::from_secs(300));
}

#[tokio::test]
async fn a_stale_object_conflicts_and_the_retry_succeeds() {
    let (server, state) = start();
    write_spec(&server, isvc(1, onnx("file:///m/iris-lr")));
    let stale: DynamicObject = serde_json::from_value(server.get(ISVC).unwrap()).unwrap();
    write_spec(&server, isvc(2, onnx("file:///m/iris-rf")));
    let err = reconcile_service(Arc::new(stale), state.clone()).await.unwrap_err();
    assert!(matches!(&err, Error::Kube(kube::Error::Api(s)) if s.code == 409), "{err}");
    pass(&server, &state).await.unwrap();
    assert_eq!(server.get(ISVC).unwrap()["status"]["observedGeneration"], 2);
}

#[tokio::test]
async fn a_rejected_child_fails_its_revision_in_status() {
    let (server, state) = start();
    write_spec(&server, isvc(1, onnx("file:///m/iris-lr")));
    server.fail(Method::PATCH, "/deployments/iris-predictor-00001", 422, 1);
    pass(&server, &state).await.unwrap();
    let status = server.get(ISVC).unwrap()["status"].to_string();
    assert!(status.contains("ChildRejected"), "{status}");
}

#[tokio::test]
async fn an_invalid_manifest_is_reported_not_retried() {
    let (server, state) = start();
    write_spec(&server, isvc(1, json!({"minReplicas": "two"})));
    assert_eq!(pass(&server, &state).await.unwrap(), Action::await_change());
    let object = server.get(ISVC).unwrap();
    let ready = condition(&object, "Ready");
    assert_eq!(
        (ready["status"].as_str(), ready["reason"].as_str()),
        (Some("False"), Some("InvalidSpec"))
    );
    assert!(ready["message"].as_str().unwrap().contains("minReplicas"), "{ready}");
    assert!(server.get(&deployment("iris-predictor-00001")).is_none());
}

#[tokio::test]
async fn the_backend_applies_without_replicas_and_scales_through_the_scale_subresource() {
    let (server, state) = start();
    write_spec(&server, isvc(1, onnx("file:///m/iris-lr")));
    pass(&server, &state).await.unwrap();
    let seen = server.take_seen();
    let apply = seen
        .iter()
        .find(|s| s.method == Method::PATCH && s.path == deployment("iris-predictor-00001"))
        .expect("the Deployment applied");
    assert!(apply.query.contains("fieldManager=oxserve-controller"), "{}", apply.query);
    assert!(
        apply.body.pointer("/spec/replicas").is_none(),
        "replicas belong to /scale, not to the apply: {:#}",
        apply.body["spec"]
    );
    let scale = seen
        .iter()
        .find(|s| s.path == format!("{}/scale", deployment("iris-predictor-00001")))
        .expect("the replicas set through /scale");
    assert_eq!(scale.method, Method::PATCH);
    assert_eq!(scale.body, json!({"spec": {"replicas": 1}}), "the KPA's initial scale");
    let d = server.get(&deployment("iris-predictor-00001")).unwrap();
    assert_eq!(d["spec"]["replicas"], 1);
}

#[tokio::test]
async fn an_hpa_owns_the_count_and_the_pass_never_scales_it() {
    let (server, state) = start();
    let mut predictor = onnx("file:///m/iris-lr");
    predictor["scaleMetric"] = json!("cpu");
    predictor["maxReplicas"] = json!(3);
    write_spec(&server, isvc(1, predictor));
    pass(&server, &state).await.unwrap();
    let seen = server.take_seen();
    assert!(
        server
            .get("/apis/autoscaling/v2/namespaces/ml/horizontalpodautoscalers/iris-predictor-00001")
            .is_some(),
        "the HPA"
    );
    assert!(!seen.iter().any(|s| s.path.ends_with("/scale")), "no /scale under an HPA");
}

fn with_transformer(generation: u64) -> Value {
    let mut object = isvc(generation, onnx("file:///m/iris-lr"));
    object["spec"]["transformer"] = json!({"containers": [{
        "name": "kserve-container", "image": "kserve/image-transformer:latest",
        "args": ["--model_name", "iris"],
    }]});
    object
}

#[tokio::test]
async fn a_transformer_reaches_its_predictor_through_the_router_alias() {
    let (server, state) = start();
    write_spec(&server, with_transformer(1));
    pass(&server, &state).await.unwrap();
    let alias = server
        .get("/api/v1/namespaces/ml/services/iris-predictor")
        .expect("the NAME-predictor Service");
    assert_eq!(alias["spec"]["type"], "ExternalName");
    assert_eq!(alias["spec"]["externalName"], "oxserve-router.oxserve-system.svc.cluster.local");
    assert_eq!(alias["metadata"]["ownerReferences"][0]["uid"], "uid-iris");
    let t = server.get(&deployment("iris-transformer-00001")).expect("the transformer");
    let args = t["spec"]["template"]["spec"]["containers"][0]["args"].as_array().unwrap();
    assert!(args.contains(&json!("--predictor_host=iris-predictor.ml")), "{args:?}");

    ready_pod(&server, "iris-predictor-00001", "10.1.0.5");
    ready_pod(&server, "iris-transformer-00001", "10.1.0.7");
    pass(&server, &state).await.unwrap();
    let table = routes(&server);
    let route = &table.services[0];
    assert_eq!(route.entry.component, "transformer");
    assert_eq!(route.entry.targets[0].replicas[0].http, "http://10.1.0.7:8080");
    let predictor = route.predictor.as_ref().expect("the predictor behind the transformer");
    assert_eq!(predictor.host, "iris-predictor.ml", "the host the transformer's requests carry");
    assert_eq!(predictor.targets[0].replicas[0].http, "http://10.1.0.5:8080");
}

#[tokio::test]
async fn a_component_that_leaves_the_spec_has_its_children_deleted() {
    let (server, state) = start();
    write_spec(&server, with_transformer(1));
    pass(&server, &state).await.unwrap();
    assert!(server.get(&deployment("iris-transformer-00001")).is_some());
    write_spec(&server, isvc(2, onnx("file:///m/iris-lr")));
    let mut object = server.get(ISVC).unwrap();
    object["spec"].as_object_mut().unwrap().remove("transformer");
    server.put(ISVC, object);
    pass(&server, &state).await.unwrap();
    let seen: Vec<String> = server.take_seen().iter().map(|s| s.line()).collect();
    assert!(
        seen.contains(&format!("DELETE {}", deployment("iris-transformer-00001"))),
        "{seen:#?}"
    );
    assert!(server.get(&deployment("iris-transformer-00001")).is_none());
    assert!(server.get("/api/v1/namespaces/ml/services/iris-transformer-00001").is_none());
    assert!(server.get(&deployment("iris-predictor-00001")).is_some(), "the predictor stays");
}

#[tokio::test]
async fn trained_models_publish_the_models_config_and_add_the_puller() {
    let (server, state) = start();
    write_spec(&server, isvc(1, onnx("file:///m/iris-lr")));
    let tm = "/apis/serving.kserve.io/v1alpha1/namespaces/ml/trainedmodels/iris-a";
    server.put(
        tm,
        json!({
            "apiVersion": "serving.kserve.io/v1alpha1", "kind": "TrainedModel",
            "metadata": {"name": "iris-a", "namespace": "ml", "uid": "u2", "generation": 1},
            "spec": {"inferenceService": "iris",
                     "model": {"framework": "onnx", "storageUri": "file:///m/iris-rf", "memory": "64Mi"}},
        }),
    );
    pass(&server, &state).await.unwrap();
    let cm = server.get("/api/v1/namespaces/ml/configmaps/modelconfig-iris-0").expect("config");
    let models: Value = serde_json::from_str(cm["data"]["models.json"].as_str().unwrap()).unwrap();
    assert_eq!(models[0]["modelName"], "iris-a");
    assert_eq!(models[0]["modelSpec"]["storageUri"], "file:///m/iris-rf");
    let containers = |server: &ApiServer| {
        server.get(&deployment("iris-predictor-00001")).unwrap()["spec"]["template"]["spec"]
            ["containers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["name"].as_str().unwrap().to_owned())
            .collect::<Vec<_>>()
    };
    assert_eq!(containers(&server), ["kserve-container", "agent"], "the puller");
    assert!(routes(&server).services[0].models.contains(&"iris-a".to_owned()), "routed by name");

    // Deleted: the config empties and the next apply drops the puller.
    let mut object = server.get(tm).unwrap();
    object["metadata"]["deletionTimestamp"] = json!("2026-01-01T00:00:00Z");
    server.put(tm, object);
    pass(&server, &state).await.unwrap();
    let cm = server.get("/api/v1/namespaces/ml/configmaps/modelconfig-iris-0").unwrap();
    assert_eq!(cm["data"]["models.json"], "[]");
    // The fake merges applies (a real server-side apply would drop the agent's entry);
    // what matters is what the controller asked for.
    let apply = server
        .take_seen()
        .into_iter()
        .rfind(|s| s.method == Method::PATCH && s.path == deployment("iris-predictor-00001"))
        .unwrap();
    let asked = apply.body["spec"]["template"]["spec"]["containers"].as_array().unwrap().len();
    assert_eq!(asked, 1, "no agent without TrainedModels");
}

#[tokio::test]
async fn the_logger_routes_to_the_agent_port_even_after_a_restart() {
    let mut predictor = onnx("file:///m/iris-lr");
    predictor["logger"] = json!({"mode": "all", "url": "http://dumper.ml/"});
    let (server, state) = start();
    write_spec(&server, isvc(1, predictor));
    pass(&server, &state).await.unwrap();
    ready_pod(&server, "iris-predictor-00001", "10.1.0.5");
    pass(&server, &state).await.unwrap();
    let http =
        |server: &ApiServer| routes(server).services[0].entry.targets[0].replicas[0].http.clone();
    assert_eq!(http(&server), "http://10.1.0.5:9081", "through the agent");

    // A new leader knows nothing but the cluster: the backend reads the port from the
    // revision's Service.
    let backend = oxserve_controller::kubernetes::backend::KubeBackend::new(
        state.client.clone(),
        oxserve_controller::kubernetes::desired::Context {
            image: "oxserve:dev".into(),
            api_version: "serving.kserve.io/v1beta1".into(),
            uid: "uid-iris".into(),
        },
        "ml",
        "iris",
        Default::default(),
    );
    use oxserve_controller::backend::Backend;
    let replicas = backend.replica_status("iris-predictor-00001").await.unwrap();
    assert_eq!(replicas[0].http.as_deref(), Some("http://10.1.0.5:9081"));
    assert!(replicas[0].ready);
    let status = backend.revision_status("iris-predictor-00001").await.unwrap();
    assert_eq!(status.desired, 1);
    let err = backend.revision_status("iris-predictor-00009").await.unwrap_err();
    assert!(matches!(err, oxserve_controller::backend::Error::UnknownRevision(_)), "{err}");
}

#[tokio::test]
async fn a_failing_api_server_is_retried_not_reported_as_a_rejected_child() {
    let (server, state) = start();
    write_spec(&server, isvc(1, onnx("file:///m/iris-lr")));
    server.fail(Method::PATCH, "/deployments/iris-predictor-00001", 503, 1);
    let err = pass(&server, &state).await.unwrap_err();
    assert!(matches!(err, Error::Backend(_)), "{err}");
    pass(&server, &state).await.unwrap();
    let status = server.get(ISVC).unwrap()["status"].to_string();
    assert!(!status.contains("ChildRejected"), "{status}");
}
