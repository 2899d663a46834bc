//! The payload logger against a real HTTP sink that counts CloudEvents.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use oxserve_agent::logger::{
    Counts, Event, EventKind, LoggerConfig, Overflow, PayloadLogger, REQUEST_TYPE, RESPONSE_TYPE,
};

use crate::support::serve_http;

/// One event as the sink received it.
#[derive(Debug, Clone)]
pub struct Received {
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Received {
    pub fn h(&self, name: &str) -> &str {
        self.headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or("")
    }
}

/// A CloudEvents sink: records events; can fail the first N deliveries and hold every
/// delivery until the test releases permits.
#[derive(Clone)]
pub struct Sink {
    pub received: Arc<std::sync::Mutex<Vec<Received>>>,
    pub fail_first: Arc<AtomicU32>,
    pub gate: Arc<tokio::sync::Semaphore>,
}

impl Sink {
    pub fn new(open: bool) -> Sink {
        Sink {
            received: Default::default(),
            fail_first: Arc::new(AtomicU32::new(0)),
            gate: Arc::new(tokio::sync::Semaphore::new(if open {
                tokio::sync::Semaphore::MAX_PERMITS
            } else {
                0
            })),
        }
    }

    pub fn open(&self) {
        self.gate.add_permits(tokio::sync::Semaphore::MAX_PERMITS - self.gate.available_permits());
    }

    pub fn events(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }

    pub async fn serve(&self) -> (String, tokio::sync::oneshot::Sender<()>) {
        async fn handle(State(s): State<Sink>, headers: HeaderMap, body: Bytes) -> StatusCode {
            let _permit = s.gate.acquire().await.unwrap();
            if s.fail_first
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                .is_ok()
            {
                return StatusCode::SERVICE_UNAVAILABLE;
            }
            s.received.lock().unwrap().push(Received { headers, body });
            StatusCode::ACCEPTED
        }
        let (addr, stop) =
            serve_http(Router::new().route("/", post(handle)).with_state(self.clone())).await;
        (format!("http://{addr}/"), stop)
    }
}

fn event(id: &str, kind: EventKind, status: Option<u16>) -> Event {
    Event {
        id: id.into(),
        kind,
        model: "sk".into(),
        content_type: "application/json".into(),
        body: Bytes::from(format!("{{\"id\":\"{id}\"}}")),
        status,
    }
}

fn config(url: &str, dir: &tempfile::TempDir) -> LoggerConfig {
    let mut c = LoggerConfig::new(url, dir.path().join("spill.jsonl"));
    c.initial_backoff = Duration::from_millis(5);
    c.max_backoff = Duration::from_millis(20);
    c.inference_service_name = "isvc".into();
    c.namespace = "ns".into();
    c.endpoint = "default".into();
    c
}

#[tokio::test]
async fn pairs_share_an_id_and_retries_deliver() {
    let sink = Sink::new(true);
    sink.fail_first.store(2, Ordering::SeqCst);
    let (url, _stop) = sink.serve().await;
    let dir = tempfile::tempdir().unwrap();
    let logger = PayloadLogger::start(config(&url, &dir)).unwrap();
    logger.log(event("abc", EventKind::Request, None)).await;
    logger.log(event("abc", EventKind::Response, Some(500))).await;
    let counts = logger.shutdown().await;
    assert_eq!(counts, Counts { sent: 2, failed: 0, dropped: 0, spilled: 0, lost: 0 });
    let mut evs = sink.events();
    evs.sort_by_key(|e| e.h("ce-type").to_owned());
    assert_eq!(evs.len(), 2);
    assert_eq!(evs[0].h("ce-type"), REQUEST_TYPE);
    assert_eq!(evs[1].h("ce-type"), RESPONSE_TYPE);
    for e in &evs {
        assert_eq!(e.h("ce-id"), "abc");
        assert_eq!(e.h("ce-specversion"), "1.0");
        assert_eq!(e.h("ce-inferenceservicename"), "isvc");
        assert_eq!(e.h("ce-namespace"), "ns");
        assert_eq!(e.h("ce-component"), "predictor");
        assert_eq!(e.h("ce-endpoint"), "default");
        assert_eq!(e.h("content-type"), "application/json");
        assert_eq!(e.body, Bytes::from_static(b"{\"id\":\"abc\"}"));
    }
    assert_eq!(evs[1].h("ce-statuscode"), "500");
    assert_eq!(evs[0].h("ce-statuscode"), "");
}

#[tokio::test]
async fn graceful_shutdown_delivers_every_queued_event() {
    let sink = Sink::new(false);
    let (url, _stop) = sink.serve().await;
    let dir = tempfile::tempdir().unwrap();
    let mut c = config(&url, &dir);
    c.queue_capacity = 64;
    let logger = PayloadLogger::start(c).unwrap();
    for i in 0..50 {
        logger.log(event(&format!("e{i}"), EventKind::Request, None)).await;
    }
    // Nothing can be delivered yet: the sink holds every request.
    assert!(sink.events().is_empty());
    let l = logger.clone();
    let shutdown = tokio::spawn(async move { l.shutdown().await });
    sink.open();
    let counts = shutdown.await.unwrap();
    assert_eq!(counts, Counts { sent: 50, failed: 0, dropped: 0, spilled: 0, lost: 0 });
    let ids: BTreeSet<String> = sink.events().iter().map(|e| e.h("ce-id").to_owned()).collect();
    assert_eq!(ids.len(), 50);
    assert!(!dir.path().join("spill.jsonl").exists());
}

#[tokio::test]
async fn events_a_dead_sink_cannot_take_are_spilled_on_shutdown() {
    let sink = Sink::new(true);
    let (url, stop) = sink.serve().await;
    drop(stop); // The sink goes away before anything is logged.
    let dir = tempfile::tempdir().unwrap();
    let mut c = config(&url, &dir);
    c.max_retries = 1000;
    let logger = PayloadLogger::start(c).unwrap();
    for i in 0..30 {
        logger.log(event(&format!("s{i}"), EventKind::Response, Some(200))).await;
    }
    let counts = logger.shutdown().await;
    assert_eq!(counts.sent, 0);
    assert_eq!(counts.spilled, 30);
    assert_eq!(counts.failed, 30);
    let spill = std::fs::read_to_string(dir.path().join("spill.jsonl")).unwrap();
    let ids: BTreeSet<String> = spill
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["id"].as_str().unwrap().to_owned()
        })
        .collect();
    assert_eq!(ids.len(), 30);
    // After shutdown, events are refused and counted.
    logger.log(event("late", EventKind::Request, None)).await;
    assert_eq!(logger.counts().dropped, 1);
}

#[tokio::test]
async fn a_full_queue_drops_and_counts_under_the_drop_policy() {
    let sink = Sink::new(false);
    let (url, _stop) = sink.serve().await;
    let dir = tempfile::tempdir().unwrap();
    let mut c = config(&url, &dir);
    c.queue_capacity = 2;
    c.overflow = Overflow::Drop;
    let logger = PayloadLogger::start(c).unwrap();
    for i in 0..20 {
        logger.log(event(&format!("d{i}"), EventKind::Request, None)).await;
    }
    let l = logger.clone();
    let shutdown = tokio::spawn(async move { l.shutdown().await });
    sink.open();
    let counts = shutdown.await.unwrap();
    assert!(counts.dropped > 0, "{counts:?}");
    assert_eq!(counts.sent + counts.dropped, 20, "{counts:?}");
    assert_eq!(sink.events().len() as u64, counts.sent);
}
