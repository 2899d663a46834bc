//! Injected faults, each checking that nothing is lost: the payload log sink goes down and
//! comes back on the same port; an S3 download is cut mid-body by a proxy (under `s3::`, run
//! with the S3 test server by `cargo xtask test`).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use axum::routing::post;
use oxserve_agent::logger::{LoggerConfig, PayloadLogger, REQUEST_TYPE, RESPONSE_TYPE};
use oxserve_agent::proxy::{ProxyState, serve};

use crate::logger::{Received, Sink};
use crate::support::{repo_with, start_server};

const MODEL: &str = "xgb-binary";
const BODY: &str = r#"{"inputs":[{"name":"input-0","datatype":"FP32","shape":[1,10],"data":[0.5,1.5,-2.0,3.25,0.0,1.0,2.0,-1.0,0.25,4.0]}]}"#;

/// The sink served on `addr` until `stop` fires; the task ends once every connection closed,
/// so after awaiting it the port refuses connections.
async fn sink_on(
    sink: &Sink,
    addr: SocketAddr,
) -> (tokio::task::JoinHandle<()>, tokio::sync::oneshot::Sender<()>) {
    async fn handle(
        axum::extract::State(s): axum::extract::State<Sink>,
        headers: axum::http::HeaderMap,
        body: axum::body::Bytes,
    ) -> axum::http::StatusCode {
        s.received.lock().unwrap().push(Received { headers, body });
        axum::http::StatusCode::ACCEPTED
    }
    let listener =
        tokio::net::TcpListener::bind(addr).await.expect("binding the sink's port again");
    let router = Router::new().route("/", post(handle)).with_state(sink.clone());
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        axum::serve(listener, router)
            .with_graceful_shutdown(async move {
                let _ = rx.await;
            })
            .await
            .unwrap();
    });
    (task, tx)
}

async fn infer(http: &reqwest::Client, agent: &str, id: &str) {
    let r = http
        .post(format!("{agent}/v2/models/{MODEL}/infer"))
        .header("content-type", "application/json")
        .header("ce-id", id)
        .body(BODY)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "inference goes on while the sink is down");
}

async fn until(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while !f() {
        assert!(tokio::time::Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The agent's `/metrics` value of `oxserve_agent_payload_log_events_total{outcome}`.
async fn metric(agent: &str, outcome: &str) -> u64 {
    let text = reqwest::get(format!("{agent}/metrics")).await.unwrap().text().await.unwrap();
    assert!(text.contains("oxserve_models_loaded"), "the server's metrics come first: {text}");
    let key = format!("oxserve_agent_payload_log_events_total{{outcome=\"{outcome}\"}} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&key))
        .unwrap_or_else(|| panic!("no {key} in {text}"))
        .parse()
        .unwrap()
}

/// Each id's events in arrival order: request first, then response, once each.
fn check_pairs(events: &[Received]) -> BTreeMap<String, Vec<String>> {
    let mut by_id: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for e in events {
        by_id.entry(e.h("ce-id").to_owned()).or_default().push(e.h("ce-type").to_owned());
    }
    for (id, types) in &by_id {
        let ok = match types.as_slice() {
            [a, b] => a == REQUEST_TYPE && b == RESPONSE_TYPE,
            [_] => true,
            _ => false,
        };
        assert!(ok, "{id}: {types:?}");
    }
    by_id
}

/// The sink is down (its port refuses connections) while inference goes on, then comes back:
/// every event that fit the queue is delivered, a request before its response; past the
/// queue's bound the excess is dropped and counted on the agent's `/metrics`. The outage is
/// 2 s here with backoff capped at 100 ms; the logic is the same for the default 30 s+ window
/// (`LoggerConfig::retry_window`, unit-tested against 30 s).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sink_outage_then_return_delivers_every_event_in_pair_order() {
    const QUEUE: usize = 64;
    let dir = tempfile::tempdir().unwrap();
    let (server, _server_stop) = start_server(&repo_with(dir.path(), &[MODEL])).await;
    let sink = Sink::new(true);
    let addr = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let (task, stop) = sink_on(&sink, addr).await;

    let mut c = LoggerConfig::new(format!("http://{addr}/"), dir.path().join("spill.jsonl"));
    c.queue_capacity = QUEUE;
    c.initial_backoff = Duration::from_millis(10);
    c.max_backoff = Duration::from_millis(100);
    c.max_retries = 600; // about a minute of retries: longer than any outage below
    c.timeout = Duration::from_secs(2);
    let logger = PayloadLogger::start(c).unwrap();
    let state = ProxyState::new(&server, Some(logger.clone()), None, None, 1 << 20).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let agent = format!("http://{}", listener.local_addr().unwrap());
    let (agent_stop, rx) = tokio::sync::oneshot::channel::<()>();
    let agent_task = tokio::spawn(serve(listener, state, async move {
        let _ = rx.await;
    }));
    let http = reqwest::Client::new();

    for i in 0..5 {
        infer(&http, &agent, &format!("up-{i}")).await;
    }
    until("the first 10 events", || sink.events().len() == 10).await;

    // Outage 1: 20 pairs, 40 events, fit the queue.
    drop(stop);
    task.await.unwrap();
    for i in 0..20 {
        infer(&http, &agent, &format!("out1-{i}")).await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(sink.events().len(), 10, "nothing reaches a sink that is down");
    assert_eq!(logger.counts().dropped, 0);
    let (task, stop) = sink_on(&sink, addr).await;
    until("every event of the outage", || sink.events().len() == 50).await;
    let by_id = check_pairs(&sink.events());
    assert_eq!(by_id.len(), 25);
    assert!(by_id.values().all(|t| t.len() == 2), "both halves of every pair");
    let counts = logger.counts();
    assert_eq!((counts.sent, counts.dropped, counts.spilled, counts.lost), (50, 0, 0, 0));

    // Outage 2: 60 pairs, 120 events, more than the queue and the lanes hold.
    drop(stop);
    task.await.unwrap();
    for i in 0..60 {
        infer(&http, &agent, &format!("out2-{i}")).await;
    }
    let dropped = logger.counts().dropped;
    assert!(dropped > 0, "past the bound events are dropped: {:?}", logger.counts());
    assert_eq!(metric(&agent, "dropped").await, dropped, "and counted on /metrics");
    let (_task, _stop) = sink_on(&sink, addr).await;
    let want = 170 - dropped as usize;
    until("every event that was kept", || sink.events().len() == want).await;
    check_pairs(&sink.events());
    drop(agent_stop);
    agent_task.await.unwrap().unwrap();
    let counts = logger.counts();
    assert_eq!(counts.sent + counts.dropped, 170, "every event delivered or counted: {counts:?}");
    assert_eq!((counts.spilled, counts.lost), (0, 0));
    assert_eq!(sink.events().len(), want, "nothing delivered twice");
    println!("outage 2: {dropped} of 120 events dropped and counted, {} delivered", 120 - dropped);
}

/// The puller against an S3-compatible server whose connection is cut mid-download.
mod s3 {
    use std::net::SocketAddr;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
    use std::time::Duration;

    use oxserve_agent::progress::ProgressMode;
    use oxserve_agent::puller::{Puller, PullerConfig};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use crate::support::{Dirs, S3Server, bytes, tree};

    /// A TCP proxy that, while armed, cuts the first connection whose answers pass
    /// `cut_after` bytes: it forwards exactly that many, then closes both sides.
    struct CutProxy {
        addr: SocketAddr,
        armed: Arc<AtomicBool>,
        cuts: Arc<AtomicU32>,
    }

    impl CutProxy {
        async fn start(upstream: SocketAddr, cut_after: u64) -> CutProxy {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap();
            let (armed, cuts) = (Arc::new(AtomicBool::new(true)), Arc::new(AtomicU32::new(0)));
            let (a, c) = (armed.clone(), cuts.clone());
            tokio::spawn(async move {
                while let Ok((client, _)) = listener.accept().await {
                    let Ok(server) = tokio::net::TcpStream::connect(upstream).await else {
                        continue;
                    };
                    tokio::spawn(relay(client, server, cut_after, a.clone(), c.clone()));
                }
            });
            CutProxy { addr, armed, cuts }
        }
    }

    async fn relay(
        client: tokio::net::TcpStream,
        server: tokio::net::TcpStream,
        cut_after: u64,
        armed: Arc<AtomicBool>,
        cuts: Arc<AtomicU32>,
    ) {
        let (mut cr, mut cw) = client.into_split();
        let (mut sr, mut sw) = server.into_split();
        let up = tokio::spawn(async move {
            let _ = tokio::io::copy(&mut cr, &mut sw).await;
            let _ = sw.shutdown().await;
        });
        let mut buf = vec![0u8; 64 * 1024];
        let mut sent = 0u64;
        loop {
            let n = match sr.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            if sent + n as u64 > cut_after && armed.swap(false, Ordering::SeqCst) {
                let keep = (cut_after - sent) as usize;
                let _ = cw.write_all(&buf[..keep]).await;
                cuts.fetch_add(1, Ordering::SeqCst);
                break; // Dropping both halves closes the connection mid-body.
            }
            if cw.write_all(&buf[..n]).await.is_err() {
                break;
            }
            sent += n as u64;
        }
        up.abort();
    }

    /// The connection carrying an 8 MB object is cut after 1 MB: the pull fails, nothing
    /// (no model directory, cache entry or temporary download) is left visible; the retry,
    /// with the connection whole again, restarts the object from its first byte and the model
    /// has the right bytes.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    #[ignore = "needs the S3 test server venv; run by cargo xtask test"]
    async fn a_download_cut_mid_body_leaves_nothing_and_the_retry_restarts_it() {
        const SIZE: usize = 8 << 20;
        const CUT: u64 = 1 << 20;
        let s3 = S3Server::start();
        s3.create_bucket("cut").await;
        let model = bytes(SIZE, 7);
        s3.put("cut", "m/weights.bin", model.clone()).await;
        s3.put("cut", "m/model-settings.json", b"{\"name\":\"m\"}".to_vec()).await;
        let upstream: SocketAddr = s3.endpoint.trim_start_matches("http://").parse().unwrap();
        let proxy = CutProxy::start(upstream, CUT).await;

        let dirs = Dirs::new();
        let downloaded = Arc::new(AtomicU64::new(0));
        let puller = |retries: usize| {
            let mut cfg = PullerConfig::new(dirs.cache());
            cfg.store.options = s3
                .options()
                .into_iter()
                .map(|(k, v)| {
                    let v = if k == "aws_endpoint" { format!("http://{}", proxy.addr) } else { v };
                    (k, v)
                })
                .collect();
            cfg.store.max_retries = retries;
            cfg.store.retry_timeout = Duration::from_secs(5);
            cfg.progress = ProgressMode::Off;
            let d = downloaded.clone();
            cfg.on_progress = Some(Arc::new(move |done, _| {
                d.fetch_max(done, Ordering::SeqCst);
            }));
            Puller::new(cfg).unwrap()
        };
        let dest = dirs.models().join("m");

        // No retries inside the store client, so the cut fails the pull.
        let err = puller(0).pull("s3://cut/m", &dest).await.unwrap_err();
        assert_eq!(proxy.cuts.load(Ordering::SeqCst), 1, "the proxy cut the download: {err}");
        let at = downloaded.load(Ordering::SeqCst);
        assert!(at < SIZE as u64, "the pull failed part way, after {at} bytes: {err}");
        assert!(!dest.exists(), "no model directory");
        assert_eq!(tree(&dirs.models()), Vec::<String>::new(), "no staging leftovers");
        assert!(dirs.entries().is_empty(), "no cache entry");
        assert_eq!(tree(&dirs.cache().join("tmp")), Vec::<String>::new(), "no partial file");
        eprintln!("pull failed after {at} bytes at the cut: {err}");

        // The connection is whole again: a retry downloads everything from the start.
        assert!(!proxy.armed.load(Ordering::SeqCst));
        downloaded.store(0, Ordering::SeqCst);
        let out = puller(0).pull("s3://cut/m", &dest).await.unwrap();
        assert!(!out.cache_hit);
        assert_eq!(out.bytes, SIZE as u64 + 12);
        assert_eq!(std::fs::read(dest.join("weights.bin")).unwrap(), model, "the right bytes");
        assert_eq!(
            downloaded.load(Ordering::SeqCst),
            SIZE as u64 + 12,
            "restarted: every byte fetched again"
        );
        assert_eq!(dirs.entries().len(), 1);
        assert_eq!(tree(&dirs.cache().join("tmp")), Vec::<String>::new());
    }
}
