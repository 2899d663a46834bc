//! Every rollout transition, replayed against the derived status (exact JSON for the main
//! ones) and the route table.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use serde_json::{Value, json};

use super::status::*;
use super::*;
use crate::revision::{RevisionState, Synced};
use crate::routes::Replica;
use crate::split::Splitter;

const T0: u64 = 1_796_299_200; // 2026-12-03T12:00:00Z

const R1: &str = "iris-predictor-00001";
const R2: &str = "iris-predictor-00002";
const R3: &str = "iris-predictor-00003";

/// One InferenceService driven through time as a reconcile loop would drive it.
struct World {
    spec: Value,
    annotations: BTreeMap<String, String>,
    revisions: ServiceRevisions,
    now: u64,
}

impl World {
    fn new() -> World {
        World {
            spec: json!(null),
            annotations: BTreeMap::new(),
            revisions: ServiceRevisions::new("iris"),
            now: T0,
        }
    }

    fn at(&mut self, secs: u64) -> &mut World {
        self.now = T0 + secs;
        self
    }

    fn time(&self) -> Timestamp {
        Timestamp(self.now)
    }

    fn apply(&mut self, spec: Value) -> Synced {
        self.spec = spec;
        self.revisions.sync(&self.spec, self.time()).unwrap()
    }

    fn state(&mut self, revision: &str, state: RevisionState) {
        let at = self.time();
        self.revisions.transition(revision, state, at).unwrap();
    }

    /// Loading then Ready, both now.
    fn up(&mut self, revision: &str) {
        self.state(revision, RevisionState::Loading);
        self.state(revision, RevisionState::Ready);
    }

    fn fail(&mut self, revision: &str, reason: &str) {
        self.state(revision, RevisionState::Failed { reason: reason.into() });
    }

    fn service(&self) -> Service<'_> {
        Service {
            name: "iris",
            namespace: "default",
            spec: &self.spec,
            annotations: &self.annotations,
            domain: "example.com",
        }
    }

    /// Derives, records the bookkeeping, and checks that deriving again gives the same.
    fn derive(&mut self) -> Derived {
        let derived = derive(&self.service(), &self.revisions).unwrap();
        derived.record(&mut self.revisions);
        let again = derive(&self.service(), &self.revisions).unwrap();
        assert_eq!(again, derived, "deriving from the recorded bookkeeping changes nothing");
        derived
    }

    /// The status as JSON; `oxserve_api`'s status type, converted from it, writes the same.
    fn status(&mut self) -> Value {
        let status = self.derive().status;
        let ours = serde_json::to_value(&status).unwrap();
        let api =
            serde_json::to_value(oxserve_api::isvc::InferenceServiceStatus::from(&status)).unwrap();
        assert_eq!(api, ours, "oxserve_api writes the status as derived");
        ours
    }

    /// `(revision, percent, tag)` of the predictor's traffic.
    fn traffic(&mut self) -> Vec<(String, u32, Option<String>)> {
        self.derive().plan.components[&Component::Predictor]
            .traffic
            .iter()
            .map(|t| (t.revision_name.clone(), t.percent, t.tag.clone()))
            .collect()
    }

    fn route(
        &mut self,
        replicas: &HashMap<String, Vec<Replica>>,
        models: &[String],
    ) -> crate::routes::ServiceRoute {
        let plan = self.derive().plan;
        service_route(&self.service(), &plan, &self.revisions, replicas, models)
    }

    fn rollout(&mut self) -> Rollout {
        self.derive().plan.components[&Component::Predictor].rollout.clone()
    }
}

fn predictor(uri: &str, canary: Option<u32>) -> Value {
    let mut p = json!({"sklearn": {"storageUri": uri}});
    if let Some(c) = canary {
        p["canaryTrafficPercent"] = json!(c);
    }
    json!({"predictor": p})
}

fn ts(secs: u64) -> String {
    Timestamp(T0 + secs).to_string()
}

fn t(revision: &str, percent: u32, tag: Option<&str>) -> (String, u32, Option<String>) {
    (revision.to_owned(), percent, tag.map(str::to_owned))
}

fn all_true(at: u64) -> Value {
    let c = |ty: &str| json!({"type": ty, "status": "True", "lastTransitionTime": ts(at)});
    json!([
        c("IngressReady"),
        c("LatestDeploymentReady"),
        c("PredictorConfigurationReady"),
        c("PredictorReady"),
        c("PredictorRouteReady"),
        c("Ready"),
        c("RoutesReady"),
    ])
}

fn up_to_date() -> Value {
    json!({"transitionStatus": "UpToDate", "states": {"activeModelState": "Loaded", "targetModelState": "Loaded"}})
}

/// First deploy: rev 1 is created, then ready; it takes 100 % and becomes the rolled-out one.
fn deployed() -> World {
    let mut w = World::new();
    assert_eq!(w.apply(predictor("gs://models/iris/v1", None)).created, [R1]);
    w.at(10).up(R1);
    w
}

/// Canary: rev 2 with 10 %, ready.
fn canary() -> World {
    let mut w = deployed();
    w.derive();
    assert_eq!(w.at(60).apply(predictor("gs://models/iris/v2", Some(10))).created, [R2]);
    w.at(70).up(R2);
    w
}

/// Promotion: `canaryTrafficPercent` removed.
fn promoted() -> World {
    let mut w = canary();
    w.derive();
    assert!(w.at(120).apply(predictor("gs://models/iris/v2", None)).created.is_empty());
    w
}

#[test]
fn first_deploy_while_loading() {
    let mut w = World::new();
    w.apply(predictor("gs://models/iris/v1", None));
    w.at(5).state(R1, RevisionState::Pulling);
    let waiting = r#"Configuration "iris-predictor" is waiting for a Revision to become ready."#;
    assert_eq!(
        w.status(),
        json!({
            "conditions": [
                {"type": "IngressReady", "status": "Unknown", "lastTransitionTime": ts(5), "reason": "Predictor ingress not created"},
                {"type": "LatestDeploymentReady", "status": "Unknown", "lastTransitionTime": ts(5), "reason": "PredictorConfigurationReady not ready"},
                {"type": "PredictorConfigurationReady", "status": "Unknown", "lastTransitionTime": ts(5), "reason": "Pulling",
                 "message": r#"Revision "iris-predictor-00001" is pulling its model."#},
                {"type": "PredictorReady", "status": "Unknown", "lastTransitionTime": ts(5), "reason": "RevisionMissing", "message": waiting},
                {"type": "PredictorRouteReady", "status": "Unknown", "lastTransitionTime": ts(5), "reason": "RevisionMissing", "message": waiting},
                {"type": "Ready", "status": "Unknown", "lastTransitionTime": ts(5), "reason": "Predictor ingress not created"},
                {"type": "RoutesReady", "status": "Unknown", "lastTransitionTime": ts(5), "reason": "PredictorRouteReady not ready"},
            ],
            "components": {"predictor": {"latestCreatedRevision": R1}},
            "modelStatus": {"transitionStatus": "InProgress",
                            "states": {"activeModelState": "Pending", "targetModelState": "Loading"}},
        })
    );
    let route = w.route(&HashMap::new(), &[]);
    assert!(route.entry.targets.is_empty(), "nothing ready, nothing to route to");
}

#[test]
fn first_deploy() {
    let mut w = deployed();
    assert_eq!(
        w.status(),
        json!({
            "conditions": all_true(10),
            "url": "http://iris.default.example.com",
            "components": {"predictor": {
                "latestReadyRevision": R1,
                "latestCreatedRevision": R1,
                "latestRolledoutRevision": R1,
                "traffic": [{"revisionName": R1, "latestRevision": true, "percent": 100}],
                "url": "http://iris-predictor.default.example.com",
            }},
            "modelStatus": up_to_date(),
        })
    );
}

#[test]
fn canary_splits_between_latest_ready_and_rolled_out() {
    let mut w = canary();
    assert_eq!(
        w.status(),
        json!({
            "conditions": all_true(70),
            "url": "http://iris.default.example.com",
            "components": {"predictor": {
                "latestReadyRevision": R2,
                "latestCreatedRevision": R2,
                "latestRolledoutRevision": R1,
                "traffic": [
                    {"revisionName": R2, "latestRevision": true, "percent": 10},
                    {"tag": "prev", "revisionName": R1, "latestRevision": false, "percent": 90,
                     "url": "http://prev-iris-predictor.default.example.com"},
                ],
                "url": "http://iris-predictor.default.example.com",
            }},
            "modelStatus": up_to_date(),
        })
    );
}

#[test]
fn promote() {
    let mut w = promoted();
    assert_eq!(
        w.status(),
        json!({
            "conditions": all_true(70),
            "url": "http://iris.default.example.com",
            "components": {"predictor": {
                "latestReadyRevision": R2,
                "latestCreatedRevision": R2,
                "previousRolledoutRevision": R1,
                "latestRolledoutRevision": R2,
                "traffic": [{"revisionName": R2, "latestRevision": true, "percent": 100}],
                "url": "http://iris-predictor.default.example.com",
            }},
            "modelStatus": up_to_date(),
        })
    );
}

#[test]
fn rollback_to_the_old_spec_is_a_new_revision_rolled_out_like_any_other() {
    let mut w = promoted();
    w.derive();
    assert_eq!(w.at(180).apply(predictor("gs://models/iris/v1", None)).created, [R3]);
    assert_eq!(
        w.traffic(),
        [t(R2, 100, None)],
        "the rollback revision takes no traffic before it is ready"
    );
    w.at(190).up(R3);
    assert_eq!(
        w.status(),
        json!({
            "conditions": all_true(190),
            "url": "http://iris.default.example.com",
            "components": {"predictor": {
                "latestReadyRevision": R3,
                "latestCreatedRevision": R3,
                "previousRolledoutRevision": R2,
                "latestRolledoutRevision": R3,
                "traffic": [{"revisionName": R3, "latestRevision": true, "percent": 100}],
                "url": "http://iris-predictor.default.example.com",
            }},
            "modelStatus": up_to_date(),
        })
    );
    let revisions = &w.revisions.component(Component::Predictor).unwrap().revisions;
    assert_eq!(revisions[0].spec_hash, revisions[2].spec_hash, "same spec as rev 1, new revision");
}

#[test]
fn failed_canary_keeps_traffic_on_the_rolled_out_revision_and_says_why() {
    let mut w = deployed();
    w.derive();
    w.at(60).apply(predictor("gs://models/iris/v2", Some(10)));
    w.at(65).state(R2, RevisionState::Loading);
    w.at(66).fail(R2, "model file is not ONNX");
    let failed = r#"Revision "iris-predictor-00002" failed with message: model file is not ONNX."#;
    let c = |ty: &str, status: &str, at: u64| json!({"type": ty, "status": status, "lastTransitionTime": ts(at)});
    assert_eq!(
        w.status(),
        json!({
            "conditions": [
                {"type": "IngressReady", "status": "False", "lastTransitionTime": ts(66), "reason": "Predictor ingress not created"},
                {"type": "LatestDeploymentReady", "status": "False", "lastTransitionTime": ts(66), "reason": "PredictorConfigurationReady not ready"},
                {"type": "PredictorConfigurationReady", "status": "False", "lastTransitionTime": ts(66), "reason": "RevisionFailed", "message": failed},
                {"type": "PredictorReady", "status": "False", "lastTransitionTime": ts(66), "reason": "RevisionFailed", "message": failed},
                c("PredictorRouteReady", "True", 10),
                {"type": "Ready", "status": "False", "lastTransitionTime": ts(66), "reason": "Predictor ingress not created"},
                c("RoutesReady", "True", 10),
            ],
            "url": "http://iris.default.example.com",
            "components": {"predictor": {
                "latestReadyRevision": R1,
                "latestCreatedRevision": R2,
                "latestRolledoutRevision": R1,
                "traffic": [
                    {"revisionName": R1, "latestRevision": true, "percent": 10},
                    {"tag": "prev", "revisionName": R1, "latestRevision": false, "percent": 90,
                     "url": "http://prev-iris-predictor.default.example.com"},
                ],
                "url": "http://iris-predictor.default.example.com",
            }},
            "modelStatus": json!({
                "transitionStatus": "BlockedByFailedLoad",
                "states": {"activeModelState": "Loaded", "targetModelState": "FailedToLoad"},
                "lastFailureInfo": {"reason": "ModelLoadFailed", "message": "model file is not ONNX",
                                    "modelRevisionName": R2, "time": ts(66)},
            }),
        })
    );
    // Promoting a failed canary changes nothing either: it never takes traffic.
    w.at(90).apply(predictor("gs://models/iris/v2", None));
    assert_eq!(w.traffic(), [t(R1, 100, None)]);
    assert_eq!(w.rollout(), Rollout { latest: Some(R1.into()), previous: None });
    // A retry that succeeds takes traffic and is rolled out.
    w.at(100).state(R2, RevisionState::Loading);
    w.at(101).state(R2, RevisionState::Ready);
    assert_eq!(w.traffic(), [t(R2, 100, None)]);
    assert_eq!(w.rollout(), Rollout { latest: Some(R2.into()), previous: Some(R1.into()) });
    assert!(w.derive().status.is_ready());
}

#[test]
fn canary_while_the_new_revision_is_still_loading_stays_on_what_serves() {
    let mut w = deployed();
    w.derive();
    w.at(60).apply(predictor("gs://models/iris/v2", Some(10)));
    w.at(61).state(R2, RevisionState::Pulling);
    w.at(62).state(R2, RevisionState::Loading);
    assert_eq!(w.traffic(), [t(R1, 10, None), t(R1, 90, Some("prev"))]);
    let status = w.derive().status;
    let config = status.condition(PREDICTOR_CONFIGURATION_READY).unwrap();
    assert_eq!(
        (config.status, config.reason.as_deref()),
        (ConditionStatus::Unknown, Some("Loading"))
    );
    assert!(status.condition(PREDICTOR_ROUTE_READY).unwrap().is_true());
    assert_eq!(status.condition(READY).unwrap().status, ConditionStatus::Unknown);
    // No canary at all while loading: the same, 100 % on what serves.
    w.at(63).apply(predictor("gs://models/iris/v2", None));
    assert_eq!(w.traffic(), [t(R1, 100, None)]);
    assert_eq!(w.rollout().latest.as_deref(), Some(R1));
}

#[test]
fn canary_on_a_previous_revision_that_never_served_gives_the_new_one_everything() {
    let mut w = World::new();
    w.apply(predictor("gs://models/iris/broken", None));
    w.at(5).fail(R1, "storage uri not found");
    let status = w.derive().status;
    let route = status.condition(PREDICTOR_ROUTE_READY).unwrap();
    assert_eq!(route.status, ConditionStatus::False);
    assert_eq!(
        route.message.as_deref(),
        Some(r#"Configuration "iris-predictor" does not have any ready Revision."#)
    );
    assert!(status.components[&Component::Predictor].traffic.is_empty());
    assert_eq!(status.url, None);

    // Nothing was rolled out, so a canary percent has nothing to split against (KServe
    // splits only when a rolled-out revision exists).
    w.at(60).apply(predictor("gs://models/iris/v2", Some(10)));
    w.at(70).up(R2);
    assert_eq!(w.traffic(), [t(R2, 10, None), t(R2, 90, Some("prev"))]);
    assert_eq!(w.rollout(), Rollout { latest: Some(R2.into()), previous: None });
    assert!(w.derive().status.is_ready());
}

#[test]
fn canary_on_a_rolled_out_revision_that_failed_sends_its_share_to_the_canary() {
    let mut w = deployed();
    w.derive();
    w.at(60).apply(predictor("gs://models/iris/v2", Some(10)));
    w.at(70).up(R2);
    w.derive();
    w.at(80).fail(R1, "replica exited with status 137");
    assert_eq!(w.traffic(), [t(R2, 100, None), t(R1, 0, Some("prev"))]);
    let status = w.derive().status;
    let route = status.condition(PREDICTOR_ROUTE_READY).unwrap();
    assert_eq!(
        (
            route.status,
            route.reason.as_deref(),
            route.message.as_deref(),
            route.last_transition_time
        ),
        (
            ConditionStatus::False,
            Some("RevisionMissing"),
            Some(
                r#"Revision "iris-predictor-00001" failed to become ready: replica exited with status 137"#
            ),
            Some(Timestamp(T0 + 80)),
        )
    );
    assert_eq!(
        status.condition(PREDICTOR_READY).unwrap().reason.as_deref(),
        Some("RevisionMissing")
    );
    assert!(status.condition(PREDICTOR_CONFIGURATION_READY).unwrap().is_true());
    assert_eq!(w.rollout().latest.as_deref(), Some(R1), "a fallback is not a promotion");
    // The old revision recovers: the planned split comes back.
    w.at(90).state(R1, RevisionState::Loading);
    assert_eq!(w.traffic(), [t(R2, 100, None), t(R1, 0, Some("prev"))]);
    assert_eq!(
        w.derive().status.condition(PREDICTOR_ROUTE_READY).unwrap().status,
        ConditionStatus::Unknown
    );
    w.at(95).state(R1, RevisionState::Ready);
    assert_eq!(w.traffic(), [t(R2, 10, None), t(R1, 90, Some("prev"))]);
}

#[test]
fn pinned_to_the_previous_revision_with_zero_percent() {
    // Pinning a canary before promotion: all traffic on the rolled-out revision.
    let mut w = canary();
    w.derive();
    w.at(100).apply(predictor("gs://models/iris/v2", Some(0)));
    assert_eq!(w.traffic(), [t(R2, 0, None), t(R1, 100, Some("prev"))]);

    // Pinning after promotion (KServe's "rollback and pin"): back to the revision rolled out
    // before, which becomes the rolled-out one again.
    let mut w = promoted();
    w.derive();
    w.at(200).apply(predictor("gs://models/iris/v2", Some(0)));
    assert_eq!(
        w.status(),
        json!({
            "conditions": all_true(70),
            "url": "http://iris.default.example.com",
            "components": {"predictor": {
                "latestReadyRevision": R2,
                "latestCreatedRevision": R2,
                "previousRolledoutRevision": R1,
                "latestRolledoutRevision": R1,
                "traffic": [
                    {"revisionName": R2, "latestRevision": true, "percent": 0},
                    {"tag": "prev", "revisionName": R1, "latestRevision": false, "percent": 100,
                     "url": "http://prev-iris-predictor.default.example.com"},
                ],
                "url": "http://iris-predictor.default.example.com",
            }},
            "modelStatus": up_to_date(),
        })
    );
    let route = w.route(&HashMap::new(), &[]);
    let weights: Vec<_> =
        route.entry.targets.iter().map(|t| (t.revision.as_str(), t.weight)).collect();
    assert_eq!(
        weights,
        [(R2, 0), (R1, 100)],
        "the 0 % entry stays for its tag; the splitter never picks it"
    );
    // Unpinning promotes the latest again.
    w.at(300).apply(predictor("gs://models/iris/v2", None));
    assert_eq!(w.traffic(), [t(R2, 100, None)]);
    assert_eq!(w.rollout(), Rollout { latest: Some(R2.into()), previous: Some(R1.into()) });
}

#[test]
fn canary_percent_only_changes_move_traffic_without_a_revision() {
    let mut w = canary();
    w.derive();
    assert!(w.at(100).apply(predictor("gs://models/iris/v2", Some(50))).created.is_empty());
    assert_eq!(w.traffic(), [t(R2, 50, None), t(R1, 50, Some("prev"))]);
    assert!(w.at(110).apply(predictor("gs://models/iris/v2", Some(100))).created.is_empty());
    assert_eq!(w.traffic(), [t(R2, 100, None)], "100 % leaves the prev entry out");
    assert_eq!(
        w.rollout(),
        Rollout { latest: Some(R2.into()), previous: Some(R1.into()) },
        "and promotes"
    );
    // After a promotion, a canary percent on the same revision splits it against the one
    // rolled out before (KServe's rollback of latestRolledoutRevision).
    w.at(120).apply(predictor("gs://models/iris/v2", Some(30)));
    assert_eq!(w.traffic(), [t(R2, 30, None), t(R1, 70, Some("prev"))]);
    assert_eq!(w.revisions.revisions().count(), 2);
}

#[test]
fn metadata_only_changes_make_no_revision() {
    let mut w = canary();
    w.derive();
    let mut isvc = json!({
        "apiVersion": "serving.kserve.io/v1beta1",
        "kind": "InferenceService",
        "metadata": {"name": "iris", "namespace": "default", "labels": {"team": "a"}},
        "spec": predictor("gs://models/iris/v2", Some(10)),
    });
    let before = w.status();
    isvc["metadata"]["labels"]["team"] = json!("b");
    isvc["metadata"]["annotations"] = json!({"owner": "someone"});
    assert_eq!(w.at(500).apply(isvc["spec"].clone()), Synced::default());
    w.annotations.insert("owner".into(), "someone".into());
    assert_eq!(w.status(), before);
}

#[test]
fn tag_routing_annotation_adds_the_latest_tag() {
    let mut w = canary();
    w.annotations.insert(ENABLE_TAG_ROUTING_ANNOTATION.into(), "true".into());
    let traffic =
        serde_json::to_value(&w.derive().status.components[&Component::Predictor].traffic).unwrap();
    assert_eq!(
        traffic,
        json!([
            {"tag": "latest", "revisionName": R2, "latestRevision": true, "percent": 10,
             "url": "http://latest-iris-predictor.default.example.com"},
            {"tag": "prev", "revisionName": R1, "latestRevision": false, "percent": 90,
             "url": "http://prev-iris-predictor.default.example.com"},
        ])
    );
    w.annotations.insert(ENABLE_TAG_ROUTING_ANNOTATION.into(), "false".into());
    assert_eq!(w.traffic(), [t(R2, 10, None), t(R1, 90, Some("prev"))]);
}

fn with_transformer(uri: &str) -> Value {
    let mut spec = predictor(uri, None);
    spec["transformer"] =
        json!({"containers": [{"name": "kserve-container", "image": "example/transformer:1"}]});
    spec
}

#[test]
fn transformer_and_predictor_then_the_transformer_removed() {
    const T1: &str = "iris-transformer-00001";
    let mut w = World::new();
    assert_eq!(w.apply(with_transformer("gs://models/iris/v1")).created, [R1, T1]);
    w.at(10).up(R1);
    let status = w.derive().status;
    assert_eq!(
        status.condition(INGRESS_READY).unwrap().reason.as_deref(),
        Some("Transformer ingress not created")
    );
    assert_eq!(
        status.condition(ROUTES_READY).unwrap().reason.as_deref(),
        Some("TransformerRouteReady not ready")
    );
    assert_eq!(status.url, None, "the entry (the transformer) does not serve yet");
    w.at(20).up(T1);
    let status = w.status();
    let types: Vec<_> = status["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["type"].as_str().unwrap())
        .collect();
    assert_eq!(
        types,
        [
            "IngressReady",
            "LatestDeploymentReady",
            "PredictorConfigurationReady",
            "PredictorReady",
            "PredictorRouteReady",
            "Ready",
            "RoutesReady",
            "TransformerConfigurationReady",
            "TransformerReady",
            "TransformerRouteReady",
        ]
    );
    assert!(status["conditions"].as_array().unwrap().iter().all(|c| c["status"] == "True"));
    assert_eq!(status["conditions"][0]["lastTransitionTime"], json!(ts(20)));
    assert_eq!(
        status["components"]["transformer"]["url"],
        json!("http://iris-transformer.default.example.com")
    );
    assert_eq!(status["url"], json!("http://iris.default.example.com"));

    let mut replicas = HashMap::new();
    replicas.insert(R1.to_owned(), vec![replica("p0", 9001)]);
    replicas.insert(T1.to_owned(), vec![replica("t0", 9002)]);
    let route = w.route(&replicas, &[]);
    assert_eq!(
        (route.entry.component.as_str(), route.entry.host.as_str()),
        ("transformer", "iris-transformer.default.example.com")
    );
    assert_eq!(route.entry.targets[0].replicas, [replica("t0", 9002)]);
    let p = route.predictor.as_ref().unwrap();
    assert_eq!(
        (p.host.as_str(), p.targets[0].revision.as_str()),
        ("iris-predictor.default.example.com", R1)
    );

    // The transformer is removed: its revisions go, its status and conditions too.
    let synced = w.at(30).apply(predictor("gs://models/iris/v1", None));
    assert_eq!(synced, Synced { created: vec![], removed: vec![T1.into()] });
    let status = w.status();
    assert_eq!(status["conditions"], all_true(10));
    assert_eq!(status["components"].as_object().unwrap().keys().collect::<Vec<_>>(), ["predictor"]);
    let route = w.route(&replicas, &[]);
    assert_eq!((route.entry.component.as_str(), route.predictor), ("predictor", None));
}

#[test]
fn an_explainer_has_its_own_conditions_with_kserve_s_names() {
    let mut w = World::new();
    let mut spec = predictor("gs://models/iris/v1", None);
    spec["explainer"] = json!({"containers": [{"image": "example/explainer:1"}]});
    w.apply(spec);
    w.at(10).up(R1);
    let status = w.derive().status;
    assert_eq!(status.condition(EXPLAINER_ROUTES_READY).unwrap().status, ConditionStatus::Unknown);
    assert!(status.condition(EXPLAINER_CONFIGURATION_READY).is_some());
    assert_eq!(
        status.condition(INGRESS_READY).unwrap().reason.as_deref(),
        Some("Explainer ingress not created")
    );
    assert_eq!(
        status.url.as_deref(),
        Some("http://iris.default.example.com"),
        "the explainer is not in the entry chain"
    );
    w.at(20).up("iris-explainer-00001");
    assert!(w.derive().status.is_ready());
}

#[test]
fn bad_canary_percent_is_an_error_naming_the_field() {
    let mut w = deployed();
    for (bad, shown) in
        [(json!(101), "101"), (json!(-1), "-1"), (json!("10"), "\"10\""), (json!(2.5), "2.5")]
    {
        let mut spec = predictor("gs://models/iris/v1", None);
        spec["predictor"]["canaryTrafficPercent"] = bad;
        w.spec = spec;
        let err = derive(&w.service(), &w.revisions).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "spec.predictor.canaryTrafficPercent: must be an integer from 0 to 100, got {shown}"
            )
        );
    }
}

fn replica(id: &str, port: u16) -> Replica {
    Replica { id: id.into(), http: format!("http://127.0.0.1:{port}"), grpc: None, ready: true }
}

#[test]
fn route_carries_hosts_models_limits_and_replicas() {
    let mut w = deployed();
    w.derive();
    let mut v2 = predictor("gs://models/iris/v2", Some(25));
    v2["predictor"]["containerConcurrency"] = json!(4);
    v2["predictor"]["timeout"] = json!(30);
    w.at(60).apply(v2);
    w.at(70).up(R2);
    w.annotations.insert(ENABLE_TAG_ROUTING_ANNOTATION.into(), "true".into());
    let mut replicas = HashMap::new();
    replicas.insert(R1.to_owned(), vec![replica("a", 9001), replica("b", 9002)]);
    let models = ["iris".to_owned(), "iris-extra".to_owned()];
    let route = w.route(&replicas, &models);
    assert_eq!(
        serde_json::to_value(&route).unwrap(),
        json!({
            "name": "iris",
            "namespace": "default",
            "hosts": ["iris.default.example.com"],
            "models": ["iris", "iris-extra"],
            "entry": {
                "component": "predictor",
                "host": "iris-predictor.default.example.com",
                "targets": [
                    {"revision": R2, "weight": 25, "tag": "latest", "model": "iris", "containerConcurrency": 4,
                     "timeoutSeconds": 30, "replicas": []},
                    {"revision": R1, "weight": 75, "tag": "prev", "model": "iris", "containerConcurrency": 0,
                     "timeoutSeconds": 300, "replicas": [
                        {"id": "a", "http": "http://127.0.0.1:9001", "ready": true},
                        {"id": "b", "http": "http://127.0.0.1:9002", "ready": true},
                     ]},
                ],
            },
        })
    );
}

/// A plan as the router holds it: the targets and the splitter built from their weights.
struct Plan {
    weights: Vec<u32>,
    splitter: Splitter,
}

impl Plan {
    fn new(weights: &[u32]) -> Arc<Plan> {
        Arc::new(Plan { weights: weights.to_vec(), splitter: Splitter::new(weights) })
    }
}

/// Swapping plans behind an `ArcSwap` while several threads pick: every pick is an index of
/// the plan it was made from, never a zero-weight one, and nothing panics.
#[test]
fn plan_swaps_under_concurrent_picks_stay_inside_the_current_plan() {
    let plans = [
        Plan::new(&[10, 90]),
        Plan::new(&[100]),
        Plan::new(&[0, 100]),
        Plan::new(&[5, 0, 60, 35]),
        Plan::new(&[0, 0]),
        Plan::new(&[1, 1, 1, 1, 1, 1, 1]),
    ];
    let current = Arc::new(arc_swap::ArcSwap::new(plans[0].clone()));
    let stop = Arc::new(AtomicBool::new(false));
    let pickers: Vec<_> = (0..4)
        .map(|_| {
            let current = current.clone();
            let stop = stop.clone();
            std::thread::spawn(move || {
                let (mut picks, mut none) = (0u64, 0u64);
                while !stop.load(Ordering::Relaxed) || picks < 10_000 {
                    let plan = current.load();
                    match plan.splitter.pick() {
                        Some(i) => {
                            assert!(
                                i < plan.weights.len(),
                                "index {i} outside a plan of {}",
                                plan.weights.len()
                            );
                            assert!(
                                plan.weights[i] > 0,
                                "zero-weight target {i} picked from {:?}",
                                plan.weights
                            );
                            picks += 1;
                        }
                        None => {
                            assert!(plan.weights.iter().all(|&w| w == 0));
                            none += 1;
                        }
                    }
                }
                (picks, none)
            })
        })
        .collect();
    for round in 0..300 {
        current.store(plans[round % plans.len()].clone());
        std::thread::yield_now();
    }
    // End on a plan that can be picked from, so each picker reaches its count.
    current.store(plans[0].clone());
    stop.store(true, Ordering::Relaxed);
    for picker in pickers {
        let (picks, _) = picker.join().expect("a picker panicked");
        assert!(picks >= 10_000);
    }
}

mod properties {
    use super::*;
    use proptest::prelude::*;

    #[derive(Clone, Debug)]
    enum Op {
        /// Apply the predictor with one of three storage URIs and maybe a canary percent.
        Apply(u8, Option<u32>),
        /// Move revision `n` (modulo how many exist) to a state.
        Move(usize, u8),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            (0u8..3, proptest::option::of(prop_oneof![Just(0u32), Just(100), 0u32..=100]))
                .prop_map(|(u, c)| Op::Apply(u, c)),
            (0usize..8, 0u8..4).prop_map(|(n, s)| Op::Move(n, s)),
        ]
    }

    proptest! {
        /// Whatever happens: traffic sums to 100 % (or is empty when nothing is ready), only
        /// ready revisions carry traffic, the `latestRevision` entry is the latest ready
        /// revision, conditions are sorted and unique, `Ready` means the latest created
        /// revision serves, and deriving is idempotent (checked in `World::derive`).
        #[test]
        fn invariants_hold_over_any_history(ops in proptest::collection::vec(op(), 1..40)) {
            let mut w = World::new();
            w.apply(predictor("gs://models/iris/0", None));
            for (i, op) in ops.into_iter().enumerate() {
                w.at(i as u64 + 1);
                match op {
                    Op::Apply(uri, canary) => {
                        w.apply(predictor(&format!("gs://models/iris/{uri}"), canary));
                    }
                    Op::Move(n, s) => {
                        let names: Vec<String> = w.revisions.revisions().map(|r| r.name.clone()).collect();
                        let name = &names[n % names.len()];
                        let state = match s {
                            0 => RevisionState::Pulling,
                            1 => RevisionState::Loading,
                            2 => RevisionState::Ready,
                            _ => RevisionState::Failed { reason: "boom".into() },
                        };
                        let at = w.time();
                        let _refused_moves_are_fine = w.revisions.transition(name, state, at);
                    }
                }
                let derived = w.derive();
                let p = &derived.plan.components[&Component::Predictor];
                let total: u32 = p.traffic.iter().map(|t| t.percent).sum();
                prop_assert!(p.traffic.is_empty() == p.latest_ready.is_none());
                prop_assert!(p.traffic.is_empty() || total == 100, "{:?}", p.traffic);
                for t in &p.traffic {
                    let r = w.revisions.revision(&t.revision_name).unwrap();
                    prop_assert!(t.percent == 0 || r.state().is_ready(), "{} carries {} %", t.revision_name, t.percent);
                    if t.latest_revision {
                        prop_assert_eq!(Some(&t.revision_name), p.latest_ready.as_ref());
                    }
                }
                let types: Vec<&str> = derived.status.conditions.iter().map(|c| c.type_.as_str()).collect();
                let mut sorted = types.clone();
                sorted.sort();
                sorted.dedup();
                prop_assert_eq!(&types, &sorted);
                if derived.status.is_ready() {
                    prop_assert_eq!(p.latest_created.as_ref(), p.latest_ready.as_ref());
                }
            }
        }
    }
}
