//! Every bound of the server over real loopback sockets: body size (413), request head size
//! (431), per-model admission (503 + `Retry-After`), gRPC message size
//! (RESOURCE_EXHAUSTED), BYTES element size (400), slow heads and slow bodies (closed /
//! 408) and the connection cap. Each test then checks the server still answers a normal
//! request.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use oxserve_protocol::grpc::inference as pb;
use oxserve_server::accept::ConnectionLimits;
use oxserve_server::admission::AdmissionLimits;
use oxserve_server::core::{Core, CoreConfig};
use oxserve_server::repository::Repository;
use oxserve_server::serve::{Listeners, ServeOptions, serve};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const ROW: &str = "[0.5,1.5,-2.0,3.25,0.0,1.0,2.0,-1.0,0.25,4.0]";

fn good_body() -> String {
    format!(r#"{{"inputs":[{{"name":"input-0","shape":[1,10],"datatype":"FP32","data":{ROW}}}]}}"#)
}

struct Server {
    http: SocketAddr,
    grpc: SocketAddr,
    _stop: tokio::sync::oneshot::Sender<()>,
    _repo: tempfile::TempDir,
}

/// A server of the xgb-binary fixture (as `xgb`) with `options` and `admission`.
async fn start(options: ServeOptions, admission: AdmissionLimits) -> Server {
    let repo = tempfile::tempdir().unwrap();
    let dir = repo.path().join("xgb");
    std::fs::create_dir(&dir).unwrap();
    std::fs::copy(
        super::support::fixtures().join("models/xgb-binary/model.json"),
        dir.join("model.json"),
    )
    .unwrap();
    let config = CoreConfig { admission, ..CoreConfig::default() };
    let core = Arc::new(Core::new(config, Some(Repository::open(repo.path()).unwrap())));
    core.load_all().await;
    let http = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let grpc = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let (http_addr, grpc_addr) = (http.local_addr().unwrap(), grpc.local_addr().unwrap());
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(serve(Listeners { http, grpc: Some(grpc) }, core, options, async move {
        let _ = rx.await;
    }));
    Server { http: http_addr, grpc: grpc_addr, _stop: tx, _repo: repo }
}

/// A raw HTTP/1.1 exchange: sends `head` + `body` with `Connection: close` and reads the
/// whole answer.
struct Answer {
    status: u16,
    head: String,
    body: String,
}

impl Answer {
    fn header(&self, name: &str) -> Option<String> {
        self.head.lines().find_map(|l| {
            let (n, v) = l.split_once(':')?;
            n.eq_ignore_ascii_case(name).then(|| v.trim().to_owned())
        })
    }
}

fn parse(raw: &[u8]) -> Answer {
    let text = String::from_utf8_lossy(raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    Answer { status, head: head.to_owned(), body: body.to_owned() }
}

async fn read_answer(stream: &mut TcpStream) -> Answer {
    let mut raw = Vec::new();
    let _ = stream.read_to_end(&mut raw).await;
    parse(&raw)
}

async fn post(addr: SocketAddr, path: &str, extra: &str, body: &str) -> Answer {
    let mut s = TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "POST {path} HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n{extra}\r\n",
        body.len()
    );
    s.write_all(head.as_bytes()).await.unwrap();
    s.write_all(body.as_bytes()).await.unwrap();
    read_answer(&mut s).await
}

/// A normal inference succeeds: the server kept serving.
async fn still_serves(addr: SocketAddr) {
    let ok = post(addr, "/v2/models/xgb/infer", "", &good_body()).await;
    assert_eq!(ok.status, 200, "{}", ok.body);
}

fn error_of(a: &Answer) -> String {
    let v: serde_json::Value = serde_json::from_str(&a.body)
        .unwrap_or_else(|e| panic!("not a JSON error body ({e}): {:?}", a.body));
    v["error"].as_str().unwrap_or_default().to_owned()
}

#[tokio::test]
async fn a_body_over_the_limit_is_413() {
    let options = ServeOptions { max_body_bytes: 1024, ..ServeOptions::default() };
    let server = start(options, AdmissionLimits::default()).await;
    let big = format!("{{\"pad\":\"{}\"}}", "x".repeat(2000));
    let answer = post(server.http, "/v2/models/xgb/infer", "", &big).await;
    assert_eq!(answer.status, 413);
    assert!(error_of(&answer).contains("exceeds the limit of 1024 bytes"), "{}", answer.body);
    still_serves(server.http).await;
}

#[tokio::test]
async fn a_request_head_over_the_limit_is_431() {
    let connections =
        ConnectionLimits { max_header_bytes: 16 * 1024, ..ConnectionLimits::default() };
    let server =
        start(ServeOptions { connections, ..ServeOptions::default() }, AdmissionLimits::default())
            .await;
    let huge = format!("x-padding: {}\r\n", "a".repeat(32 * 1024));
    let answer = post(server.http, "/v2/models/xgb/infer", &huge, &good_body()).await;
    assert_eq!(answer.status, 431, "{}", answer.head);
    still_serves(server.http).await;
}

/// One slot, no queue: a request whose body has not arrived holds the slot (admission comes
/// before the body is read), so the next is shed; once the first finishes, requests pass.
#[tokio::test]
async fn a_full_model_queue_is_503_with_retry_after() {
    let server =
        start(ServeOptions::default(), AdmissionLimits { max_inflight: 1, max_queue: 0 }).await;
    let body = good_body();
    let mut holder = TcpStream::connect(server.http).await.unwrap();
    let head = format!(
        "POST /v2/models/xgb/infer HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
        body.len()
    );
    holder.write_all(head.as_bytes()).await.unwrap();
    holder.write_all(&body.as_bytes()[..10]).await.unwrap();
    // The holder's head is parsed and its slot taken once a second request is shed; poll
    // until that happens (the holder may not have been admitted yet on a busy machine).
    let mut shed = None;
    for _ in 0..500 {
        let a = post(server.http, "/v2/models/xgb/infer", "", &body).await;
        if a.status == 503 {
            shed = Some(a);
            break;
        }
        assert_eq!(a.status, 200, "{}", a.body);
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let shed = shed.expect("a request shed while the only slot is held");
    assert_eq!(shed.header("retry-after").as_deref(), Some("1"), "{}", shed.head);
    assert!(error_of(&shed).contains("is overloaded"), "{}", shed.body);
    // The metrics count it.
    let mut m = TcpStream::connect(server.http).await.unwrap();
    m.write_all(b"GET /metrics HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n").await.unwrap();
    let metrics = read_answer(&mut m).await;
    let shed_line = metrics
        .body
        .lines()
        .find(|l| l.starts_with(r#"oxserve_requests_shed_total{model="xgb""#))
        .unwrap_or_else(|| panic!("no shed counter: {}", metrics.body));
    assert!(shed_line.contains(r#"reason="queue_full"} "#), "{shed_line}");
    assert!(!shed_line.ends_with(" 0"), "{shed_line}");
    holder.write_all(&body.as_bytes()[10..]).await.unwrap();
    let held = read_answer(&mut holder).await;
    assert_eq!(held.status, 200, "{}", held.body);
    still_serves(server.http).await;
}

#[tokio::test]
async fn a_grpc_message_over_the_limit_is_resource_exhausted() {
    let options = ServeOptions { max_body_bytes: 4096, ..ServeOptions::default() };
    let server = start(options, AdmissionLimits::default()).await;
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{}", server.grpc))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut client = pb::grpc_inference_service_client::GrpcInferenceServiceClient::new(channel);
    let request = |values: Vec<f32>| pb::ModelInferRequest {
        model_name: "xgb".into(),
        inputs: vec![pb::model_infer_request::InferInputTensor {
            name: "input-0".into(),
            datatype: "FP32".into(),
            shape: vec![i64::try_from(values.len() / 10).unwrap(), 10],
            contents: Some(pb::InferTensorContents { fp32_contents: values, ..Default::default() }),
            ..Default::default()
        }],
        ..Default::default()
    };
    let status = client.model_infer(request(vec![0.5; 10_000])).await.unwrap_err();
    assert_eq!(status.code(), tonic::Code::ResourceExhausted, "{status:?}");
    let ok = client.model_infer(request(vec![0.5; 10])).await.unwrap().into_inner();
    assert_eq!(ok.model_name, "xgb");
    still_serves(server.http).await;
}

#[tokio::test]
async fn an_oversized_bytes_element_is_400() {
    let server = start(ServeOptions::default(), AdmissionLimits::default()).await;
    let element = "a".repeat(oxserve_protocol::tensor::MAX_BYTES_ELEMENT_LEN + 1);
    let body = format!(
        r#"{{"inputs":[{{"name":"s","shape":[1],"datatype":"BYTES","data":["{element}"]}}]}}"#
    );
    let answer = post(server.http, "/v2/models/xgb/infer", "", &body).await;
    assert_eq!(answer.status, 400);
    assert!(error_of(&answer).contains("BYTES element 0 is"), "{}", answer.body);
    still_serves(server.http).await;
}

fn slow_options() -> ServeOptions {
    ServeOptions {
        connections: ConnectionLimits {
            header_read_timeout: Duration::from_secs(1),
            ..ConnectionLimits::default()
        },
        body_read_timeout: Duration::from_secs(1),
        ..ServeOptions::default()
    }
}

/// Sends `bytes` one at a time, 200 ms apart, until the server closes the connection;
/// returns how many were sent (all of them if it never closed).
async fn trickle(stream: &mut TcpStream, bytes: &[u8]) -> usize {
    for (i, b) in bytes.iter().enumerate() {
        if stream.write_all(&[*b]).await.is_err() {
            return i;
        }
        let mut buf = [0u8; 1024];
        match tokio::time::timeout(Duration::from_millis(200), stream.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return i + 1,
            // An answer before the close (a 408): keep reading until it closes.
            Ok(Ok(_)) => {}
            Err(_) => {}
        }
    }
    bytes.len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trickled_head_is_cut_off_while_others_are_served() {
    let server = start(slow_options(), AdmissionLimits::default()).await;
    let head =
        format!("GET /v2/health/ready HTTP/1.1\r\nhost: x\r\nx-slow: {}\r\n\r\n", "s".repeat(100));
    let mut slow = TcpStream::connect(server.http).await.unwrap();
    let slow_task = tokio::spawn(async move { trickle(&mut slow, head.as_bytes()).await });
    // Served meanwhile: the trickling client holds no worker.
    for _ in 0..3 {
        still_serves(server.http).await;
    }
    let sent = slow_task.await.unwrap();
    assert!(
        sent < 130,
        "the connection was closed before the head was complete ({sent} bytes sent)"
    );
    still_serves(server.http).await;
}

#[tokio::test]
async fn a_silent_connection_is_closed() {
    let server = start(slow_options(), AdmissionLimits::default()).await;
    let mut silent = TcpStream::connect(server.http).await.unwrap();
    let mut buf = [0u8; 16];
    let read = tokio::time::timeout(Duration::from_secs(30), silent.read(&mut buf)).await;
    assert!(matches!(read, Ok(Ok(0)) | Ok(Err(_))), "closed without a byte: {read:?}");
    still_serves(server.http).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trickled_body_is_408_and_closed_while_others_are_served() {
    let server = start(slow_options(), AdmissionLimits::default()).await;
    let body = good_body();
    let mut slow = TcpStream::connect(server.http).await.unwrap();
    let head = format!(
        "POST /v2/models/xgb/infer HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
        body.len()
    );
    slow.write_all(head.as_bytes()).await.unwrap();
    let slow_task = tokio::spawn(async move {
        let sent = trickle(&mut slow, body.as_bytes()).await;
        let rest = read_answer(&mut slow).await;
        (sent, rest)
    });
    for _ in 0..3 {
        still_serves(server.http).await;
    }
    let (sent, _) = slow_task.await.unwrap();
    assert!(sent < good_body().len(), "closed before the body was complete ({sent} bytes sent)");
    // The answer itself, on a fresh slow request read in one go after the timeout.
    let mut s = TcpStream::connect(server.http).await.unwrap();
    let head = "POST /v2/models/xgb/infer HTTP/1.1\r\nhost: x\r\ncontent-length: 100\r\n\r\n{";
    s.write_all(head.as_bytes()).await.unwrap();
    let answer = read_answer(&mut s).await;
    assert_eq!(answer.status, 408, "{}", answer.head);
    assert_eq!(answer.header("connection").as_deref(), Some("close"));
    assert!(error_of(&answer).contains("did not arrive within 1 s"), "{}", answer.body);
    still_serves(server.http).await;
}

/// With one connection slot, a second connection is not served while the first is open,
/// and is served once it closes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_beyond_the_cap_wait_for_a_free_slot() {
    let connections = ConnectionLimits { max_connections: 1, ..ConnectionLimits::default() };
    let server =
        start(ServeOptions { connections, ..ServeOptions::default() }, AdmissionLimits::default())
            .await;
    let mut first = TcpStream::connect(server.http).await.unwrap();
    first.write_all(b"GET /v2/health/live HTTP/1.1\r\nhost: x\r\n\r\n").await.unwrap();
    let mut buf = [0u8; 512];
    let n = first.read(&mut buf).await.unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
    let addr = server.http;
    let second =
        tokio::spawn(async move { post(addr, "/v2/models/xgb/infer", "", &good_body()).await });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!second.is_finished(), "the second connection waits while the first holds the slot");
    drop(first);
    let answer = second.await.unwrap();
    assert_eq!(answer.status, 200, "{}", answer.body);
}
