//! The agent's proxy (payload logging and batching) in front of a real oxserve server.

use std::collections::BTreeMap;
use std::time::Duration;

use bytes::Bytes;
use oxserve_agent::batcher::BatcherConfig;
use oxserve_agent::logger::{LoggerConfig, PayloadLogger, REQUEST_TYPE, RESPONSE_TYPE};
use oxserve_agent::proxy::{ProxyState, serve};
use oxserve_protocol::rest::decode_response;

use crate::logger::Sink;
use crate::support::{repo_with, start_server};

const MODEL: &str = "xgb-binary";

/// A V2 request body with `rows` rows of the 10-feature model.
fn v2_body(id: &str, rows: usize, outputs: &str, seed: f32) -> String {
    let data: Vec<String> =
        (0..rows * 10).map(|i| format!("{}", (i as f32 * 0.37 + seed).sin())).collect();
    format!(
        r#"{{"id":"{id}","inputs":[{{"name":"input-0","datatype":"FP32","shape":[{rows},10],"data":[{}]}}]{outputs}}}"#,
        data.join(",")
    )
}

struct Setup {
    server: String,
    agent: String,
    sink: Sink,
    logger: PayloadLogger,
    _stops: Vec<tokio::sync::oneshot::Sender<()>>,
    _dir: tempfile::TempDir,
}

async fn setup(batcher: Option<BatcherConfig>) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let (server, s1) = start_server(&repo_with(dir.path(), &[MODEL])).await;
    let sink = Sink::new(true);
    let (sink_url, s2) = sink.serve().await;
    let logger =
        PayloadLogger::start(LoggerConfig::new(sink_url, dir.path().join("spill.jsonl"))).unwrap();
    let state = ProxyState::new(&server, Some(logger.clone()), batcher, None, 1 << 20).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let agent = format!("http://{}", listener.local_addr().unwrap());
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(serve(listener, state, async move {
        let _ = rx.await;
    }));
    Setup { server, agent, sink, logger, _stops: vec![s1, s2, tx], _dir: dir }
}

async fn post(url: &str, body: String) -> (u16, reqwest::header::HeaderMap, Bytes) {
    let r = reqwest::Client::new()
        .post(url)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.headers().clone(), r.bytes().await.unwrap())
}

async fn execution_count(server: &str) -> (u64, u64) {
    let v: serde_json::Value = reqwest::get(format!("{server}/v2/models/{MODEL}/stats"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let s = &v["model_stats"][0];
    (s["inference_count"].as_u64().unwrap(), s["execution_count"].as_u64().unwrap())
}

fn decode(headers: &reqwest::header::HeaderMap, body: &[u8]) -> oxserve_protocol::InferResponse {
    let hl = headers
        .get("inference-header-content-length")
        .map(|v| v.to_str().unwrap().parse().unwrap());
    decode_response(body, hl).unwrap()
}

#[tokio::test]
async fn v2_requests_are_batched_split_and_logged() {
    // The batch closes on size (4 rows), so it holds exactly these three requests.
    let cfg = BatcherConfig {
        max_batch_size: 4,
        max_latency: Duration::from_secs(30),
        timeout: Duration::from_secs(60),
    };
    let s = setup(Some(cfg)).await;
    let bodies = [
        v2_body("a", 1, r#","outputs":[{"name":"predict"}]"#, 0.0),
        v2_body("b", 2, "", 1.0),
        v2_body(
            "c",
            1,
            r#","outputs":[{"name":"predict_proba","parameters":{"binary_data":true}}]"#,
            2.0,
        ),
    ];
    let mut direct = Vec::new();
    for b in &bodies {
        let (status, h, body) =
            post(&format!("{}/v2/models/{MODEL}/infer", s.server), b.clone()).await;
        assert_eq!(status, 200);
        direct.push(decode(&h, &body));
    }
    let before = execution_count(&s.server).await;
    let url = format!("{}/v2/models/{MODEL}/infer", s.agent);
    let (ra, rb, rc) = tokio::join!(
        post(&url, bodies[0].clone()),
        post(&url, bodies[1].clone()),
        post(&url, bodies[2].clone())
    );
    let after = execution_count(&s.server).await;
    assert_eq!(after.1 - before.1, 1, "one upstream execution for three requests");
    for ((status, h, body), want) in [ra, rb, rc].into_iter().zip(&direct) {
        assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
        let got = decode(&h, &body);
        assert_eq!(got.id, want.id);
        assert_eq!(got.outputs, want.outputs, "request {:?}", want.id);
    }
    // c asked for binary data; a and b for JSON.
    assert!(
        direct[2].outputs.len() == 1
            && direct[0].outputs.len() == 1
            && direct[1].outputs.len() == 2
    );

    let counts = s.logger.shutdown().await;
    assert_eq!(counts.sent, 6);
    let mut by_id: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for e in s.sink.events() {
        by_id.entry(e.h("ce-id").to_owned()).or_default().push(e.h("ce-type").to_owned());
    }
    assert_eq!(by_id.len(), 3);
    for types in by_id.values_mut() {
        types.sort();
        assert_eq!(types, &vec![REQUEST_TYPE.to_owned(), RESPONSE_TYPE.to_owned()]);
    }
}

#[tokio::test]
async fn v1_instances_are_merged_and_predictions_split() {
    let cfg = BatcherConfig {
        max_batch_size: 4,
        max_latency: Duration::from_secs(30),
        timeout: Duration::from_secs(60),
    };
    let s = setup(Some(cfg)).await;
    let row = |k: f32| {
        format!(
            "[{}]",
            (0..10).map(|i| format!("{}", (i as f32 + k).cos())).collect::<Vec<_>>().join(",")
        )
    };
    let b1 = format!(r#"{{"instances":[{},{}]}}"#, row(0.0), row(1.0));
    let b2 = format!(r#"{{"instances":[{},{}]}}"#, row(2.0), row(3.0));
    let direct1 = post(&format!("{}/v1/models/{MODEL}:predict", s.server), b1.clone()).await;
    let direct2 = post(&format!("{}/v1/models/{MODEL}:predict", s.server), b2.clone()).await;
    assert_eq!(direct1.0, 200, "{}", String::from_utf8_lossy(&direct1.2));
    let before = execution_count(&s.server).await;
    let url = format!("{}/v1/models/{MODEL}:predict", s.agent);
    let (r1, r2) = tokio::join!(post(&url, b1), post(&url, b2));
    let after = execution_count(&s.server).await;
    assert_eq!(after.1 - before.1, 1);
    let json = |b: &Bytes| serde_json::from_slice::<serde_json::Value>(b).unwrap();
    assert_eq!(json(&r1.2), json(&direct1.2));
    assert_eq!(json(&r2.2), json(&direct2.2));
    assert_eq!(json(&r1.2)["predictions"].as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn unbatchable_requests_pass_through_and_failures_are_logged() {
    let s = setup(Some(BatcherConfig::default())).await;
    // 3 features for a 10-feature model: the server's own 400 comes back unchanged.
    let bad = r#"{"inputs":[{"name":"input-0","datatype":"FP32","shape":[1,3],"data":[1,2,3]}]}"#
        .to_owned();
    let direct = post(&format!("{}/v2/models/{MODEL}/infer", s.server), bad.clone()).await;
    let via = post(&format!("{}/v2/models/{MODEL}/infer", s.agent), bad).await;
    assert_eq!(direct.0, 400);
    assert_eq!((via.0, &via.2), (direct.0, &direct.2));
    // Not JSON at all: passes through, the server answers.
    let garbage = post(&format!("{}/v2/models/{MODEL}/infer", s.agent), "{nope".into()).await;
    assert_eq!(garbage.0, 400);
    // Non-inference routes are proxied and not logged.
    let ready = reqwest::get(format!("{}/v2/health/ready", s.agent)).await.unwrap();
    assert_eq!(ready.status(), 200);

    s.logger.shutdown().await;
    let evs = s.sink.events();
    assert_eq!(evs.len(), 4, "two failed exchanges, request + response each");
    let statuses: Vec<&str> = evs
        .iter()
        .filter(|e| e.h("ce-type") == RESPONSE_TYPE)
        .map(|e| e.h("ce-statuscode"))
        .collect();
    assert_eq!(statuses, vec!["400", "400"]);
}

#[tokio::test]
async fn an_unreachable_server_is_a_502_and_is_logged() {
    let dir = tempfile::tempdir().unwrap();
    let sink = Sink::new(true);
    let (sink_url, _s) = sink.serve().await;
    let logger =
        PayloadLogger::start(LoggerConfig::new(sink_url, dir.path().join("spill.jsonl"))).unwrap();
    // A port with nothing listening: bind, note it, close.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let state = ProxyState::new(
        &format!("http://127.0.0.1:{port}"),
        Some(logger.clone()),
        None,
        None,
        1024,
    )
    .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let agent = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(serve(listener, state, std::future::pending()));
    let r = post(&format!("{agent}/v2/models/m/infer"), v2_body("x", 1, "", 0.0)).await;
    assert_eq!(r.0, 502);
    let too_big = post(&format!("{agent}/v2/models/m/infer"), "x".repeat(2048)).await;
    assert_eq!(too_big.0, 413);
    logger.shutdown().await;
    let statuses: Vec<String> =
        sink.events().iter().map(|e| e.h("ce-statuscode").to_owned()).collect();
    assert_eq!(statuses.iter().filter(|s| *s == "502").count(), 1);
}
