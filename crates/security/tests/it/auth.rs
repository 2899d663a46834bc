//! Bearer tokens on a real listener: 401 with a challenge and a JSON error, gRPC
//! UNAUTHENTICATED, health open, and a rotated token file honoured without a restart.

use std::time::Duration;

use oxserve_security::{AuthLayer, OpenPaths, TokenFile};

use crate::support::{request, serve};

async fn get(addr: std::net::SocketAddr, path: &str, headers: &[(&str, &str)]) -> String {
    let tcp = tokio::net::TcpStream::connect(addr).await.expect("connect");
    request(tcp, "GET", path, headers).await.expect("request")
}

#[tokio::test]
async fn requests_need_a_token_except_health() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("tokens");
    std::fs::write(&path, "# team tokens\nalpha\nbeta\n").expect("write");
    let tokens = TokenFile::open(&path).expect("tokens");
    let addr = serve(None, Some(AuthLayer::new(tokens, OpenPaths::HEALTH))).await;

    let r = get(addr, "/hello", &[]).await;
    assert!(r.starts_with("HTTP/1.1 401"), "{r}");
    assert!(r.contains("www-authenticate: Bearer realm=\"oxserve\"\r\n"), "{r}");
    assert!(r.contains("content-type: application/json"), "{r}");
    assert!(
        r.ends_with(r#"{"error":"missing bearer token: send Authorization: Bearer TOKEN"}"#),
        "{r}"
    );

    let r = get(addr, "/hello", &[("authorization", "Bearer gamma")]).await;
    assert!(r.starts_with("HTTP/1.1 401"), "{r}");
    assert!(r.contains(r#"error="invalid_token""#), "{r}");
    let r = get(addr, "/hello", &[("authorization", "Basic YWxwaGE6")]).await;
    assert!(r.starts_with("HTTP/1.1 401"), "{r}");

    for token in ["Bearer alpha", "bearer beta"] {
        let r = get(addr, "/hello", &[("authorization", token)]).await;
        assert!(r.starts_with("HTTP/1.1 200") && r.ends_with("hello"), "{token}: {r}");
    }
    let r = get(addr, "/v2/health/live", &[]).await;
    assert!(r.starts_with("HTTP/1.1 200"), "health stays open: {r}");

    let r = get(addr, "/hello", &[("content-type", "application/grpc+proto")]).await;
    assert!(r.starts_with("HTTP/1.1 200"), "{r}");
    assert!(r.contains("grpc-status: 16\r\n"), "{r}");
}

#[tokio::test]
async fn a_rotated_token_file_is_honoured_without_a_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("tokens");
    std::fs::write(&path, "old-token\n").expect("write");
    let tokens = TokenFile::open(&path).expect("tokens");
    let _watch = tokens.watch(Duration::from_millis(20));
    let addr = serve(None, Some(AuthLayer::new(tokens, OpenPaths::HEALTH))).await;
    let with = |t: &'static str| [("authorization", t)];
    assert!(get(addr, "/hello", &with("Bearer old-token")).await.starts_with("HTTP/1.1 200"));

    let tmp = dir.path().join("tokens.tmp");
    std::fs::write(&tmp, "new-token\n").expect("write");
    std::fs::rename(&tmp, &path).expect("rename");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let r = get(addr, "/hello", &with("Bearer new-token")).await;
        if r.starts_with("HTTP/1.1 200") {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "the new token was never accepted");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let r = get(addr, "/hello", &with("Bearer old-token")).await;
    assert!(r.starts_with("HTTP/1.1 401"), "the old token is refused: {r}");
}
