//! Least privilege, both ways: the RBAC of the cluster-wide install (`kind/install/rbac.yaml`)
//! and of namespace mode (`kind/namespaced/rbac.yaml` beside the base's leader-election
//! Role) grants every call the controller makes and nothing it does not make.
//!
//! The calls are the ones the fake API server sees while the controller lives through a
//! whole scenario: its watches and the router scrape (`reconcile::run`, briefly), an
//! InferenceService with a transformer and an HPA created, its transformer removed, a
//! TrainedModel added and deleted, the service deleted, and the Lease taken and renewed.
//! What a request implies beyond its own verb is added the way the API server asks for it:
//! a server-side apply can create (`create`), and a child whose owner reference blocks
//! the owner's deletion needs `update` on the owner's `finalizers`. Both API groups run
//! the same code, so a call seen in one is needed in the other.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, PolicyRule, Role, RoleBinding};
use oxserve_controller::kubernetes::lease::LeaderElector;
use oxserve_controller::kubernetes::reconcile::{
    self, Config, State, reconcile_service, reconcile_trained_model,
};
use serde_json::{Value, json};

use crate::fake::{ApiServer, Seen};
use crate::manifests::{documents, install, of_kind};

const GROUPS: [&str; 2] = ["serving.kserve.io", "serving.oxserve.dev"];

/// `(namespace, group, resource[/subresource], verb)`; the namespace is `None` for a
/// cluster-wide request.
type Permission = (Option<String>, String, String, String);

fn permissions(seen: &Seen) -> Vec<Permission> {
    let parts: Vec<&str> = seen.path.trim_matches('/').split('/').collect();
    let (group, rest) = match parts[0] {
        "api" => (String::new(), &parts[2..]),
        _ => (parts[1].to_owned(), &parts[3..]),
    };
    let (namespace, rest) = match rest {
        ["namespaces", ns, rest @ ..] => (Some(ns.to_string()), rest),
        rest => (None, rest),
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
    let mut out = vec![(namespace.clone(), group.clone(), resource.clone(), verb.to_owned())];
    let apply = seen.method == "PATCH" && seen.query.contains("force=true");
    if apply && !resource.contains('/') {
        out.push((namespace.clone(), group.clone(), resource.clone(), "create".into()));
    }
    for owner in seen
        .body
        .pointer("/metadata/ownerReferences")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        if owner["blockOwnerDeletion"] == true {
            let owner_group = owner["apiVersion"].as_str().unwrap().split('/').next().unwrap();
            let plural = format!("{}s", owner["kind"].as_str().unwrap().to_ascii_lowercase());
            out.push((
                namespace.clone(),
                owner_group.to_owned(),
                format!("{plural}/finalizers"),
                "update".into(),
            ));
        }
    }
    // Both groups run the same code.
    for p in out.clone() {
        if let Some(other) = GROUPS.iter().find(|g| GROUPS.contains(&p.1.as_str()) && **g != p.1) {
            out.push((p.0.clone(), other.to_string(), p.2.clone(), p.3.clone()));
        }
    }
    out
}

fn config(namespace: Option<&str>) -> Config {
    Config {
        namespace: namespace.map(str::to_owned),
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

/// Every permission the controller uses over a whole scenario in namespace `ns`,
/// watching `watch` (cluster-wide when `None`).
async fn used(ns: &str, watch: Option<&str>) -> BTreeSet<Permission> {
    let (client, server) = ApiServer::start();
    let state = Arc::new(State::new(client.clone(), config(watch)));
    let isvc = format!("/apis/serving.kserve.io/v1beta1/namespaces/{ns}/inferenceservices/hpa");
    let tm = format!("/apis/serving.kserve.io/v1alpha1/namespaces/{ns}/trainedmodels/m1");
    let spec = |transformer: bool| {
        let mut spec = json!({"predictor": {"scaleMetric": "cpu", "maxReplicas": 3,
                              "sklearn": {"storageUri": "gs://b/m"}}});
        if transformer {
            spec["transformer"] =
                json!({"containers": [{"name": "kserve-container", "image": "t:1"}]});
        }
        spec
    };
    server.put(
        &isvc,
        json!({
            "apiVersion": "serving.kserve.io/v1beta1", "kind": "InferenceService",
            "metadata": {"name": "hpa", "namespace": ns, "uid": "u1", "generation": 1},
            "spec": spec(true),
        }),
    );
    server.put(&tm, json!({
        "apiVersion": "serving.kserve.io/v1alpha1", "kind": "TrainedModel",
        "metadata": {"name": "m1", "namespace": ns, "uid": "u2", "generation": 1},
        "spec": {"inferenceService": "hpa", "model": {"framework": "sklearn", "storageUri": "gs://b/m1", "memory": "1Gi"}},
    }));
    let object = |path: &str| Arc::new(serde_json::from_value(server.get(path).unwrap()).unwrap());

    // The watches, the router scrape and the passes they start.
    let _ = tokio::time::timeout(
        Duration::from_millis(1500),
        reconcile::run(state.clone(), Duration::from_millis(200)),
    )
    .await;

    reconcile_service(object(&isvc), state.clone()).await.unwrap();
    reconcile_trained_model(object(&tm), state.clone()).await.unwrap();
    let mut o = server.get(&isvc).unwrap();
    o["spec"] = spec(false);
    o["metadata"]["generation"] = json!(2);
    server.put(&isvc, o);
    reconcile_service(object(&isvc), state.clone()).await.unwrap();
    for path in [&isvc, &tm] {
        let mut o = server.get(path).unwrap();
        o["metadata"]["deletionTimestamp"] = json!("2026-01-01T00:00:00Z");
        server.put(path, o);
    }
    reconcile_trained_model(object(&tm), state.clone()).await.unwrap();
    reconcile_service(object(&isvc), state.clone()).await.unwrap();
    let elector = LeaderElector::new(
        kube::Api::namespaced(client, "oxserve-system"),
        "oxserve-controller",
        "a",
        Duration::from_secs(15),
    );
    elector.try_acquire().await.unwrap();
    elector.try_acquire().await.unwrap();

    let seen = server.take_seen();
    let lines: BTreeSet<String> = seen.iter().map(Seen::line).collect();
    for expected in [
        format!("DELETE /apis/apps/v1/namespaces/{ns}/deployments/hpa-transformer-00001"),
        format!("PATCH /api/v1/namespaces/{ns}/configmaps/modelconfig-hpa-0"),
    ] {
        assert!(lines.contains(&expected), "the scenario reaches {expected}: {lines:#?}");
    }
    assert!(seen.iter().any(|s| s.query.contains("watch=true")), "the watches ran");
    seen.iter().flat_map(permissions).collect()
}

/// Every `(group, resource, verb)` a rule grants.
fn expand(rule: &PolicyRule) -> Vec<(String, String, String)> {
    let mut out = Vec::new();
    for g in rule.api_groups.iter().flatten() {
        for r in rule.resources.iter().flatten() {
            for v in &rule.verbs {
                assert!(g != "*" && r != "*" && v != "*", "no wildcards: {rule:?}");
                out.push((g.clone(), r.clone(), v.clone()));
            }
        }
    }
    out
}

/// A set of grants: rules of ClusterRoles (every namespace and cluster-wide) and of Roles
/// (their namespace), each bound to the controller's service account.
struct Grants {
    cluster: Vec<(String, String, String)>,
    namespaced: Vec<(String, (String, String, String))>,
}

impl Grants {
    fn of(docs: &[(String, Value)]) -> Grants {
        let subject_ok = |subjects: &[k8s_openapi::api::rbac::v1::Subject]| {
            subjects.iter().all(|s| {
                s.name == "oxserve-controller" && s.namespace.as_deref() == Some("oxserve-system")
            })
        };
        let cluster_bindings: Vec<ClusterRoleBinding> = of_kind(docs, "ClusterRoleBinding");
        let role_bindings: Vec<RoleBinding> = of_kind(docs, "RoleBinding");
        let mut grants = Grants { cluster: Vec::new(), namespaced: Vec::new() };
        for role in of_kind::<ClusterRole>(docs, "ClusterRole") {
            let name = role.metadata.name.clone().unwrap();
            let bound = cluster_bindings.iter().any(|b| {
                b.role_ref.name == name && subject_ok(b.subjects.as_deref().unwrap_or_default())
            });
            assert!(bound, "ClusterRole {name} is bound to the controller alone");
            grants.cluster.extend(role.rules.iter().flatten().flat_map(expand));
        }
        for role in of_kind::<Role>(docs, "Role") {
            let name = role.metadata.name.clone().unwrap();
            let ns = role.metadata.namespace.clone().unwrap();
            let bound = role_bindings.iter().any(|b| {
                b.role_ref.kind == "Role"
                    && b.role_ref.name == name
                    && b.metadata.namespace.as_deref() == Some(&ns)
                    && subject_ok(b.subjects.as_deref().unwrap_or_default())
            });
            assert!(bound, "Role {ns}/{name} is bound to the controller alone");
            grants
                .namespaced
                .extend(role.rules.iter().flatten().flat_map(expand).map(|g| (ns.clone(), g)));
        }
        grants
    }

    fn allows(&self, (ns, group, resource, verb): &Permission) -> bool {
        let triple = (group.clone(), resource.clone(), verb.clone());
        self.cluster.contains(&triple)
            || ns.as_ref().is_some_and(|ns| self.namespaced.contains(&(ns.clone(), triple)))
    }

    /// Asserts both ways: every use granted, every grant used (listing every miss).
    fn check(&self, used: &BTreeSet<Permission>) {
        let missing: Vec<&Permission> = used.iter().filter(|p| !self.allows(p)).collect();
        let unused_cluster: Vec<_> = self
            .cluster
            .iter()
            .filter(|g| !used.iter().any(|(_, group, r, v)| (group, r, v) == (&g.0, &g.1, &g.2)))
            .collect();
        let unused_namespaced: Vec<_> = self
            .namespaced
            .iter()
            .filter(|(ns, g)| {
                !used.contains(&(Some(ns.clone()), g.0.clone(), g.1.clone(), g.2.clone()))
            })
            .collect();
        assert!(
            missing.is_empty() && unused_cluster.is_empty() && unused_namespaced.is_empty(),
            "not granted: {missing:#?}\ngranted cluster-wide, never used: {unused_cluster:#?}\n\
             granted in a namespace, never used there: {unused_namespaced:#?}"
        );
    }
}

#[tokio::test]
async fn the_cluster_wide_install_grants_exactly_what_the_controller_uses() {
    let docs = install();
    let grants = Grants::of(&docs);
    assert!(!grants.cluster.is_empty(), "the ClusterRole");
    let used = used("ml", None).await;
    assert!(
        used.contains(&(
            None,
            "serving.kserve.io".into(),
            "inferenceservices".into(),
            "watch".into()
        )),
        "watched cluster-wide: {used:#?}"
    );
    grants.check(&used);
}

#[tokio::test]
async fn namespace_mode_grants_exactly_what_the_controller_uses_there() {
    // The base's leader-election Role stays; the overlay's Roles replace the ClusterRole.
    let mut docs: Vec<(String, Value)> = install()
        .into_iter()
        .filter(|(_, d)| !matches!(d["kind"].as_str(), Some("ClusterRole" | "ClusterRoleBinding")))
        .collect();
    docs.extend(documents("kind/namespaced"));
    let grants = Grants::of(&docs);
    assert!(grants.cluster.is_empty());
    let used = used("oxserve-models", Some("oxserve-models")).await;
    assert!(
        used.iter().all(|(ns, ..)| ns.is_some()),
        "nothing cluster-wide in namespace mode: {used:#?}"
    );
    grants.check(&used);
}
