//! The activator: scale from zero gated on model readiness, the bounded queue, the timeout,
//! `containerConcurrency` and the in-flight count the autoscaler reads.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use oxserve_controller::metrics::RouterEvent;
use oxserve_router::RouterConfig;

use crate::support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_requests_wait_for_a_replica_started_from_zero() {
    let routes = table(vec![service("cold", vec![target("cold-predictor-00001", 100, vec![])])]);
    let mut gw = Gateway::start(RouterConfig::default(), &routes).await;
    let http = Http::default();
    let url = format!("{}/v2/models/cold/infer", gw.url());
    let requests: Vec<_> = (0..1000)
        .map(|_| {
            let (http, url) = (http.clone(), url.clone());
            tokio::spawn(async move { http.post(&url, None, &infer_body()).await })
        })
        .collect();
    let (revision, _) = gw.activation().await;
    assert_eq!(revision, "cold-predictor-00001");
    // Every request is buffered, and counted in flight for the autoscaler.
    let router = gw.router.clone();
    until("1000 requests queued", || router.queued("cold-predictor-00001") == 1000).await;
    assert_eq!(router.in_flight("cold-predictor-00001"), 1000);

    // The "backend" starts a replica: its port answers before its model is loaded, and the
    // table lists it as not ready. Process start is not readiness: nothing is released yet.
    let replica = Replica::start_unloaded("cold").await;
    let mut routes = routes.clone();
    routes.services[0].entry.targets[0].replicas = vec![replica.route("r1", false)];
    gw.router.update(&routes).unwrap();
    let ready = Http::default().get(&format!("{}/v2/models/cold/ready", replica.rest), None).await;
    assert_ne!(ready.status, 200, "the model is not loaded yet");
    assert_eq!(router.queued("cold-predictor-00001"), 1000);
    replica.core.load_all().await;

    let mut statuses = std::collections::BTreeMap::<u16, usize>::new();
    for r in requests {
        let a = r.await.unwrap();
        assert_eq!(a.revision(), "cold-predictor-00001");
        if a.status != 200 {
            panic!("a buffered request got {}: {}", a.status, a.text());
        }
        *statuses.entry(a.status.as_u16()).or_default() += 1;
    }
    assert_eq!(statuses, [(200, 1000)].into());
    until("nothing in flight", || router.in_flight("cold-predictor-00001") == 0).await;
    // The samples report the traffic.
    let mut requests_sampled = 0;
    while requests_sampled < 1000 {
        match gw.events.recv().await.unwrap() {
            RouterEvent::Sample(s) if s.revision == "cold-predictor-00001" => {
                requests_sampled += s.requests
            }
            _ => {}
        }
    }
    assert_eq!(requests_sampled, 1000);
    drop(gw);
    replica.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_queue_is_503_and_a_long_wait_is_504() {
    let mut waiting = target("slow-1", 100, vec![]);
    waiting.timeout_seconds = 1;
    let routes =
        table(vec![service("q", vec![target("q-1", 100, vec![])]), service("slow", vec![waiting])]);
    let gw =
        Gateway::start(RouterConfig { queue_depth: 3, ..RouterConfig::default() }, &routes).await;
    let http = Http::default();
    let url = format!("{}/v2/models/q/infer", gw.url());
    let held: Vec<_> = (0..3)
        .map(|_| {
            let (http, url) = (http.clone(), url.clone());
            tokio::spawn(async move { http.post(&url, None, &infer_body()).await })
        })
        .collect();
    let router = gw.router.clone();
    until("3 queued", || router.queued("q-1") == 3).await;
    let full = http.post(&url, None, &infer_body()).await;
    assert_eq!(full.status, 503);
    assert_eq!(full.headers["retry-after"], "1");
    assert!(full.error().contains("queue is full"), "{}", full.error());
    assert_eq!(full.revision(), "q-1");
    for h in held {
        h.abort();
    }
    until("the aborted requests leave the queue", || router.queued("q-1") == 0).await;

    let late = http.post(&format!("{}/v2/models/slow/infer", gw.url()), None, &infer_body()).await;
    assert_eq!(late.status, 504);
    assert!(
        late.error().contains("no ready replica within the timeout of 1 s"),
        "{}",
        late.error()
    );
}

/// A backend that answers every request after a short pause and records the most requests
/// it ever had in flight at once.
async fn counting_backend() -> (String, Arc<AtomicUsize>) {
    use hyper::service::service_fn;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let now = Arc::new(AtomicUsize::new(0));
    let max = Arc::new(AtomicUsize::new(0));
    let m = max.clone();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else { return };
            let (now, max) = (now.clone(), m.clone());
            tokio::spawn(async move {
                let svc = service_fn(move |_req: http::Request<hyper::body::Incoming>| {
                    let (now, max) = (now.clone(), max.clone());
                    async move {
                        let n = now.fetch_add(1, Ordering::SeqCst) + 1;
                        max.fetch_max(n, Ordering::SeqCst);
                        tokio::time::sleep(Duration::from_millis(5)).await;
                        now.fetch_sub(1, Ordering::SeqCst);
                        Ok::<_, hyper::Error>(http::Response::new(http_body_util::Full::new(
                            bytes::Bytes::from_static(b"{}"),
                        )))
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    (url, max)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn container_concurrency_is_a_hard_limit_per_replica() {
    let (a, max_a) = counting_backend().await;
    let (b, max_b) = counting_backend().await;
    let replica = |id: &str, http: &str| oxserve_controller::routes::Replica {
        id: id.into(),
        http: http.into(),
        grpc: None,
        ready: true,
    };
    let mut t = target("cc-1", 100, vec![replica("a", &a), replica("b", &b)]);
    t.container_concurrency = 2;
    let gw = Gateway::start(RouterConfig::default(), &table(vec![service("cc", vec![t])])).await;
    let http = Http::default();
    let url = format!("{}/v2/models/cc/infer", gw.url());
    let all: Vec<_> = (0..200)
        .map(|_| {
            let (http, url) = (http.clone(), url.clone());
            tokio::spawn(async move { http.post(&url, None, &infer_body()).await.status })
        })
        .collect();
    for a in all {
        assert_eq!(a.await.unwrap(), 200);
    }
    let (max_a, max_b) = (max_a.load(Ordering::SeqCst), max_b.load(Ordering::SeqCst));
    assert!(max_a <= 2 && max_b <= 2, "in flight at once: {max_a} and {max_b}, limit 2");
    assert!(max_a >= 1 && max_b >= 1, "both replicas took requests");
}
