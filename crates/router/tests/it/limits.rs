//! The router's slow-client bounds over raw sockets: a request body that trickles in past
//! the body read timeout answers 408 and closes its connection, a head that trickles (or
//! never starts) is cut off, and meanwhile, and afterwards, normal requests are routed.

use std::time::Duration;

use oxserve_router::RouterConfig;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::support::{Gateway, Http, Replica, infer_body, service, table, target};

fn slow_config() -> RouterConfig {
    RouterConfig {
        header_read_timeout: Duration::from_secs(1),
        body_read_timeout: Duration::from_secs(1),
        ..RouterConfig::default()
    }
}

async fn routed(gw: &Gateway) {
    let ok = Http::default()
        .post(&format!("{}/v2/models/iris/infer", gw.url()), None, &infer_body())
        .await;
    assert_eq!(ok.status, 200, "{}", ok.text());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trickled_body_is_408_and_closed_and_the_replica_stays_in_rotation() {
    let replica = Replica::start("iris").await;
    let routes =
        table(vec![service("iris", vec![target("iris-1", 100, vec![replica.route("r1", true)])])]);
    let gw = Gateway::start(slow_config(), &routes).await;
    let mut slow = TcpStream::connect(gw.http).await.unwrap();
    slow.write_all(
        b"POST /v2/models/iris/infer HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n{",
    )
    .await
    .unwrap();
    routed(&gw).await;
    let mut raw = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(30), slow.read_to_end(&mut raw)).await;
    assert!(read.is_ok(), "the connection was closed");
    let text = String::from_utf8_lossy(&raw);
    assert!(text.starts_with("HTTP/1.1 408"), "{text}");
    assert!(text.to_ascii_lowercase().contains("connection: close"), "{text}");
    assert!(text.contains("did not arrive within 1 s"), "{text}");
    // The client was slow, not the replica: it still takes traffic.
    routed(&gw).await;
    drop(gw);
    replica.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trickled_or_silent_head_is_cut_off_while_others_are_routed() {
    let replica = Replica::start("iris").await;
    let routes =
        table(vec![service("iris", vec![target("iris-1", 100, vec![replica.route("r1", true)])])]);
    let gw = Gateway::start(slow_config(), &routes).await;
    let head =
        format!("GET /v2/health/live HTTP/1.1\r\nhost: x\r\nx-slow: {}\r\n\r\n", "s".repeat(100));
    let mut slow = TcpStream::connect(gw.http).await.unwrap();
    let mut silent = TcpStream::connect(gw.http).await.unwrap();
    let trickled = tokio::spawn(async move {
        for (i, b) in head.as_bytes().iter().enumerate() {
            if slow.write_all(&[*b]).await.is_err() {
                return i;
            }
            let mut buf = [0u8; 256];
            match tokio::time::timeout(Duration::from_millis(200), slow.read(&mut buf)).await {
                Ok(Ok(0)) | Ok(Err(_)) => return i + 1,
                _ => {}
            }
        }
        head.len()
    });
    for _ in 0..3 {
        routed(&gw).await;
    }
    let sent = trickled.await.unwrap();
    assert!(sent < 130, "closed before the head was complete ({sent} bytes sent)");
    let mut buf = [0u8; 16];
    let read = tokio::time::timeout(Duration::from_secs(30), silent.read(&mut buf)).await;
    assert!(matches!(read, Ok(Ok(0)) | Ok(Err(_))), "the silent connection was closed: {read:?}");
    routed(&gw).await;
    drop(gw);
    replica.stop().await;
}
