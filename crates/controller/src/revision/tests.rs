//! Revision naming, change detection and the life cycle.

use super::*;
use serde_json::json;

const T0: Timestamp = Timestamp(1_796_299_200);

fn at(secs: u64) -> Timestamp {
    Timestamp(T0.0 + secs)
}

fn spec(uri: &str) -> Value {
    json!({"predictor": {"sklearn": {"storageUri": uri}}})
}

#[test]
fn first_sync_creates_one_revision_per_component() {
    let mut revs = ServiceRevisions::new("iris");
    let spec = json!({
        "predictor": {"sklearn": {"storageUri": "gs://a"}},
        "transformer": {"containers": [{"image": "t:1"}]},
        "explainer": null,
    });
    let synced = revs.sync(&spec, T0).unwrap();
    assert_eq!(synced.created, ["iris-predictor-00001", "iris-transformer-00001"]);
    assert!(synced.removed.is_empty());
    let r = revs.revision("iris-predictor-00001").unwrap();
    assert_eq!(
        (r.component, r.number, r.state(), r.created_at()),
        (Component::Predictor, 1, &RevisionState::Created, T0)
    );
    assert!(revs.component(Component::Explainer).is_none());
    assert_eq!(revs.sync(&spec, at(1)).unwrap(), Synced::default(), "same spec, nothing new");
}

#[test]
fn a_spec_change_makes_the_next_number_and_key_order_does_not_count() {
    let mut revs = ServiceRevisions::new("iris");
    revs.sync(&spec("gs://a"), T0).unwrap();
    let reordered = json!({"predictor": {"sklearn": {"storageUri": "gs://a"}, "minReplicas": 1}});
    assert_eq!(revs.sync(&reordered, at(1)).unwrap().created, ["iris-predictor-00002"]);
    let same_other_order: Value = serde_json::from_str(
        r#"{"predictor": {"minReplicas": 1, "sklearn": {"storageUri": "gs://a"}}}"#,
    )
    .unwrap();
    assert!(revs.sync(&same_other_order, at(2)).unwrap().created.is_empty());
}

#[test]
fn canary_traffic_percent_alone_makes_no_revision() {
    let mut revs = ServiceRevisions::new("iris");
    revs.sync(&spec("gs://a"), T0).unwrap();
    let canary =
        json!({"predictor": {"canaryTrafficPercent": 10, "sklearn": {"storageUri": "gs://a"}}});
    assert!(revs.sync(&canary, at(1)).unwrap().created.is_empty());
    let r = revs.revision("iris-predictor-00001").unwrap();
    assert_eq!(
        r.spec,
        json!({"sklearn": {"storageUri": "gs://a"}}),
        "the snapshot has no canaryTrafficPercent"
    );
    // With a real change alongside it, a revision is made and it holds no percent either.
    let canary_b =
        json!({"predictor": {"canaryTrafficPercent": 10, "sklearn": {"storageUri": "gs://b"}}});
    assert_eq!(revs.sync(&canary_b, at(2)).unwrap().created, ["iris-predictor-00002"]);
    assert_eq!(
        revs.revision("iris-predictor-00002").unwrap().spec,
        json!({"sklearn": {"storageUri": "gs://b"}})
    );
}

#[test]
fn a_rollback_is_a_new_revision_and_numbers_are_never_reused() {
    let mut revs = ServiceRevisions::new("iris");
    revs.sync(&spec("gs://a"), T0).unwrap();
    revs.sync(&spec("gs://b"), at(1)).unwrap();
    assert_eq!(revs.sync(&spec("gs://a"), at(2)).unwrap().created, ["iris-predictor-00003"]);
    let hashes: Vec<_> = revs.revisions().map(|r| r.spec_hash.clone()).collect();
    assert_eq!(hashes[0], hashes[2]);
    assert_ne!(hashes[0], hashes[1]);

    // A component removed and added back continues its count.
    let with_t = json!({"predictor": {"sklearn": {"storageUri": "gs://a"}}, "transformer": {"containers": []}});
    assert_eq!(revs.sync(&with_t, at(3)).unwrap().created, ["iris-transformer-00001"]);
    let removed = revs.sync(&spec("gs://a"), at(4)).unwrap();
    assert_eq!(removed, Synced { created: vec![], removed: vec!["iris-transformer-00001".into()] });
    assert_eq!(revs.sync(&with_t, at(5)).unwrap().created, ["iris-transformer-00002"]);
}

#[test]
fn numbers_past_five_digits_grow_the_name() {
    assert_eq!(revision_name("m", Component::Explainer, 7), "m-explainer-00007");
    assert_eq!(revision_name("m", Component::Predictor, 123_456), "m-predictor-123456");
}

#[test]
fn bad_specs_are_errors_naming_the_field() {
    let mut revs = ServiceRevisions::new("iris");
    let cases = [
        (json!([]), "spec: must be an object, got an array"),
        (json!({}), "spec.predictor: required"),
        (json!({"predictor": null}), "spec.predictor: required"),
        (
            json!({"predictor": {}, "transformer": "x"}),
            "spec.transformer: must be an object, got a string",
        ),
    ];
    for (spec, message) in cases {
        assert_eq!(revs.sync(&spec, T0).unwrap_err().to_string(), message);
    }
    assert!(revs.components.is_empty(), "a refused spec changes nothing");
}

#[test]
fn the_happy_path_records_each_transition_time() {
    let mut revs = ServiceRevisions::new("iris");
    revs.sync(&spec("gs://a"), T0).unwrap();
    let name = "iris-predictor-00001";
    revs.transition(name, RevisionState::Pulling, at(1)).unwrap();
    revs.transition(name, RevisionState::Loading, at(5)).unwrap();
    let r = revs.transition(name, RevisionState::Ready, at(9)).unwrap();
    let states: Vec<_> = r.history().iter().map(|t| (t.state.name(), t.at)).collect();
    assert_eq!(states, [("Created", T0), ("Pulling", at(1)), ("Loading", at(5)), ("Ready", at(9))]);
    assert_eq!(r.since(), at(9));
}

/// Every pair of states: allowed exactly where the documented life cycle says.
#[test]
fn every_transition_is_allowed_or_refused_as_documented() {
    use RevisionState::*;
    let failed = || Failed { reason: "x".into() };
    let all = [Created, Pulling, Loading, Ready, failed()];
    let allowed = [
        ("Created", "Pulling"),
        ("Created", "Loading"),
        ("Created", "Failed"),
        ("Pulling", "Loading"),
        ("Pulling", "Failed"),
        ("Loading", "Ready"),
        ("Loading", "Failed"),
        ("Ready", "Loading"),
        ("Ready", "Failed"),
        ("Failed", "Pulling"),
        ("Failed", "Loading"),
    ];
    for from in &all {
        for to in &all {
            let expected = allowed.contains(&(from.name(), to.name()));
            assert_eq!(from.can_become(to), expected, "{} -> {}", from.name(), to.name());
        }
    }
}

#[test]
fn invalid_moves_and_time_going_back_are_errors() {
    let mut revs = ServiceRevisions::new("iris");
    revs.sync(&spec("gs://a"), T0).unwrap();
    let name = "iris-predictor-00001";
    let err = revs.transition(name, RevisionState::Ready, at(1)).unwrap_err();
    assert_eq!(
        err.to_string(),
        r#"revision "iris-predictor-00001": cannot go from Created to Ready"#
    );
    revs.transition(name, RevisionState::Pulling, at(10)).unwrap();
    let err = revs.transition(name, RevisionState::Loading, at(9)).unwrap_err();
    assert_eq!(
        err.to_string(),
        r#"revision "iris-predictor-00001": transition to Loading at 2026-12-03T12:00:09Z is earlier than its last one at 2026-12-03T12:00:10Z"#
    );
    let err = revs.transition(name, RevisionState::Pulling, at(11)).unwrap_err();
    assert!(matches!(err, Error::InvalidTransition { from: "Pulling", to: "Pulling", .. }));
    let err = revs.transition("iris-predictor-00009", RevisionState::Pulling, at(11)).unwrap_err();
    assert_eq!(err.to_string(), r#"revision "iris-predictor-00009": no such revision"#);
    assert_eq!(revs.revision(name).unwrap().history().len(), 2, "refused moves leave no trace");
}

#[test]
fn a_failed_revision_is_retried_and_a_ready_one_restarted() {
    let mut revs = ServiceRevisions::new("iris");
    revs.sync(&spec("gs://a"), T0).unwrap();
    let name = "iris-predictor-00001";
    revs.transition(name, RevisionState::Loading, at(1)).unwrap();
    revs.transition(name, RevisionState::Failed { reason: "model file is not ONNX".into() }, at(2))
        .unwrap();
    assert_eq!(revs.revision(name).unwrap().state().failure(), Some("model file is not ONNX"));
    revs.transition(name, RevisionState::Loading, at(3)).unwrap();
    revs.transition(name, RevisionState::Ready, at(4)).unwrap();
    revs.transition(
        name,
        RevisionState::Failed { reason: "replica exited with status 137".into() },
        at(5),
    )
    .unwrap();
    revs.transition(name, RevisionState::Pulling, at(6)).unwrap();
    revs.transition(name, RevisionState::Loading, at(7)).unwrap();
    revs.transition(name, RevisionState::Ready, at(8)).unwrap();
    revs.transition(name, RevisionState::Loading, at(9)).unwrap();
    assert_eq!(revs.revision(name).unwrap().state(), &RevisionState::Loading);
}

#[test]
fn latest_ready_is_the_newest_ready_now() {
    let mut revs = ServiceRevisions::new("iris");
    revs.sync(&spec("gs://a"), T0).unwrap();
    revs.sync(&spec("gs://b"), at(1)).unwrap();
    let c = |revs: &ServiceRevisions| revs.component(Component::Predictor).unwrap().clone();
    assert!(c(&revs).latest_ready().is_none());
    for name in ["iris-predictor-00001", "iris-predictor-00002"] {
        revs.transition(name, RevisionState::Loading, at(2)).unwrap();
        revs.transition(name, RevisionState::Ready, at(3)).unwrap();
    }
    assert_eq!(c(&revs).latest_ready().unwrap().name, "iris-predictor-00002");
    revs.transition(
        "iris-predictor-00002",
        RevisionState::Failed { reason: "crash".into() },
        at(4),
    )
    .unwrap();
    assert_eq!(c(&revs).latest_ready().unwrap().name, "iris-predictor-00001");
    assert_eq!(c(&revs).latest_created().unwrap().name, "iris-predictor-00002");
}

#[test]
fn record_keeps_only_known_revisions() {
    let mut revs = ServiceRevisions::new("iris");
    revs.sync(&spec("gs://a"), T0).unwrap();
    let rollout = Rollout {
        latest: Some("iris-predictor-00001".into()),
        previous: Some("other-predictor-00001".into()),
    };
    revs.record(Component::Predictor, &rollout);
    assert_eq!(
        revs.component(Component::Predictor).unwrap().rollout,
        Rollout { latest: Some("iris-predictor-00001".into()), previous: None }
    );
}

#[test]
fn state_round_trips_through_json_and_bad_state_is_refused() {
    let mut revs = ServiceRevisions::new("iris");
    revs.sync(&spec("gs://a"), T0).unwrap();
    revs.transition(
        "iris-predictor-00001",
        RevisionState::Failed { reason: "no such bucket".into() },
        at(1),
    )
    .unwrap();
    let text = serde_json::to_value(&revs).unwrap();
    assert_eq!(
        text["components"]["predictor"]["revisions"][0]["history"],
        json!([
            {"state": "Created", "at": "2026-12-03T12:00:00Z"},
            {"state": "Failed", "reason": "no such bucket", "at": "2026-12-03T12:00:01Z"},
        ])
    );
    let back: ServiceRevisions = serde_json::from_value(text.clone()).unwrap();
    assert_eq!(back, revs);
    back.validate().unwrap();

    let mut empty = text.clone();
    empty["components"]["predictor"]["revisions"][0]["history"] = json!([]);
    let err = serde_json::from_value::<ServiceRevisions>(empty).unwrap_err().to_string();
    assert!(err.contains("history must start with Created"), "{err}");

    let mut backwards = text.clone();
    backwards["components"]["predictor"]["revisions"][0]["history"][1]["at"] =
        json!("2026-12-03T11:00:00Z");
    let err = serde_json::from_value::<ServiceRevisions>(backwards).unwrap_err().to_string();
    assert!(err.contains("history goes from Created to Failed"), "{err}");

    let mut renamed = text;
    renamed["name"] = json!("other");
    let renamed: ServiceRevisions = serde_json::from_value(renamed).unwrap();
    assert!(
        renamed
            .validate()
            .unwrap_err()
            .to_string()
            .contains("name does not match service \"other\"")
    );
}
