//! Leader election against the fake API server: the first replica creates the Lease, a
//! second follows while it is renewed, takes over once it expires, loses a race on a
//! conflict, and a leader that sees another holder stops leading.

use std::time::Duration;

use http::Method;
use k8s_openapi::api::coordination::v1::Lease;
use kube::Api;
use oxserve_controller::kubernetes::lease::{Election, LeaderElector};
use serde_json::json;

use crate::fake::ApiServer;

const LEASE: &str =
    "/apis/coordination.k8s.io/v1/namespaces/oxserve-system/leases/oxserve-controller";

fn elector(client: &kube::Client, identity: &str, seconds: u64) -> LeaderElector {
    let api: Api<Lease> = Api::namespaced(client.clone(), "oxserve-system");
    LeaderElector::new(api, "oxserve-controller", identity, Duration::from_secs(seconds))
}

/// Rewrites the stored lease as held by `holder`, renewed `ago` seconds ago.
fn held_by(server: &ApiServer, holder: &str, ago: i64) {
    let mut lease = server.get(LEASE).expect("a lease");
    let renewed =
        k8s_openapi::jiff::Timestamp::now() - k8s_openapi::jiff::SignedDuration::from_secs(ago);
    lease["spec"]["holderIdentity"] = json!(holder);
    lease["spec"]["renewTime"] = json!(renewed.to_string());
    server.put(LEASE, lease);
}

#[tokio::test]
async fn one_leader_until_its_lease_expires() {
    let (client, server) = ApiServer::start();
    let (a, b) = (elector(&client, "a", 15), elector(&client, "b", 15));
    assert_eq!(a.try_acquire().await.unwrap(), Election::Leader);
    assert_eq!(server.get(LEASE).unwrap()["spec"]["holderIdentity"], "a");
    assert_eq!(b.try_acquire().await.unwrap(), Election::Follower { holder: "a".into() });
    assert_eq!(a.try_acquire().await.unwrap(), Election::Leader, "renewal");

    held_by(&server, "a", 60);
    assert_eq!(b.try_acquire().await.unwrap(), Election::Leader, "an expired lease is taken");
    let lease = server.get(LEASE).unwrap();
    assert_eq!(
        (lease["spec"]["holderIdentity"].as_str(), lease["spec"]["leaseTransitions"].as_i64()),
        (Some("b"), Some(1))
    );
    assert_eq!(a.try_acquire().await.unwrap(), Election::Follower { holder: "b".into() });
}

#[tokio::test]
async fn the_loser_of_a_race_follows() {
    let (client, server) = ApiServer::start();
    let (a, b) = (elector(&client, "a", 15), elector(&client, "b", 15));
    a.try_acquire().await.unwrap();
    held_by(&server, "a", 60);
    // b read the expired lease, but another replica's write came first.
    server.fail(Method::PUT, "/leases/oxserve-controller", 409, 1);
    assert!(matches!(b.try_acquire().await.unwrap(), Election::Follower { .. }));
    // Two creates racing: the second gets AlreadyExists and follows.
    let (client2, _server2) = ApiServer::start();
    let c = elector(&client2, "c", 15);
    _server2.fail(Method::POST, "/leases", 409, 1);
    assert!(matches!(c.try_acquire().await.unwrap(), Election::Follower { .. }));
}

#[tokio::test]
async fn a_leader_that_loses_its_lease_stops() {
    let (client, server) = ApiServer::start();
    let a = elector(&client, "a", 3);
    let lost = tokio::spawn(async move { a.lead(std::future::pending()).await });
    while server.get(LEASE).is_none() {
        tokio::task::yield_now().await;
    }
    held_by(&server, "b", 0);
    let result = tokio::time::timeout(Duration::from_secs(20), lost).await.expect("stops").unwrap();
    let lost = result.unwrap_err();
    assert_eq!(lost.holder.as_deref(), Some("b"));
}

#[tokio::test]
async fn work_runs_only_while_leading() {
    let (client, server) = ApiServer::start();
    held_by_new(&server, "other");
    let a = elector(&client, "a", 3);
    let ran = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flag = ran.clone();
    let leading = tokio::spawn(async move {
        a.lead(async move { flag.store(true, std::sync::atomic::Ordering::SeqCst) }).await
    });
    // The other holder keeps renewing for a while: a waits.
    for _ in 0..3 {
        tokio::time::sleep(Duration::from_millis(300)).await;
        held_by(&server, "other", 0);
        assert!(!ran.load(std::sync::atomic::Ordering::SeqCst), "ran while following");
    }
    // It stops renewing: a takes over and runs its work to the end.
    tokio::time::timeout(Duration::from_secs(20), leading).await.expect("leads").unwrap().unwrap();
    assert!(ran.load(std::sync::atomic::Ordering::SeqCst));
}

fn held_by_new(server: &ApiServer, holder: &str) {
    server.put(
        LEASE,
        json!({
            "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
            "metadata": {"name": "oxserve-controller", "namespace": "oxserve-system"},
            "spec": {"holderIdentity": holder, "leaseDurationSeconds": 3,
                     "renewTime": k8s_openapi::jiff::Timestamp::now().to_string()},
        }),
    );
}
