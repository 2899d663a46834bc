//! TLS on a real listener: REST answers, ALPN offers h2, plain HTTP is told to use
//! https:// and the port keeps serving, client certificates are required and checked.

use oxserve_security::{TlsFiles, server_config};
use tokio::io::AsyncWriteExt;

use crate::certs::Ca;
use crate::support::{client_config, connect, request, serve, tls_get};

#[tokio::test]
async fn tls_serves_and_a_plain_client_is_refused_cleanly() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ca = Ca::new(dir.path(), "main");
    let server = ca.server(dir.path(), "server");
    let files = TlsFiles { cert: server.cert.clone(), key: server.key.clone(), client_ca: None };
    let addr = serve(Some(server_config(&files).expect("config")), None).await;
    let client = client_config(&ca.cert, None, &[b"http/1.1"]);

    let r = tls_get(addr, client.clone(), "/hello", &[]).await.expect("TLS GET");
    assert!(r.starts_with("HTTP/1.1 200"), "{r}");
    assert!(r.ends_with("hello"), "{r}");

    // Plain HTTP to the TLS port: a 400 that says why, then the connection closes.
    let tcp = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let r = request(tcp, "GET", "/hello", &[]).await.expect("plain answer");
    assert!(r.starts_with("HTTP/1.1 400"), "{r}");
    assert!(r.contains(r#"{"error": "this port speaks TLS: use https://"}"#), "{r}");
    // Bytes that are neither TLS nor HTTP: closed without an answer.
    let mut tcp = tokio::net::TcpStream::connect(addr).await.expect("connect");
    tcp.write_all(&[0, 1, 2, 3]).await.expect("write");
    let mut buf = Vec::new();
    let n = tokio::io::AsyncReadExt::read_to_end(&mut tcp, &mut buf).await.unwrap_or(0);
    assert_eq!(n, 0, "no answer to garbage");

    let r = tls_get(addr, client, "/hello", &[]).await.expect("still serving");
    assert!(r.starts_with("HTTP/1.1 200"), "{r}");

    // A client that offers h2 gets it (gRPC needs it); one that trusts another CA does not
    // get in.
    let h2 = connect(addr, client_config(&ca.cert, None, &[b"h2", b"http/1.1"])).await.expect("h2");
    assert_eq!(h2.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    let other = Ca::new(dir.path(), "other");
    assert!(connect(addr, client_config(&other.cert, None, &[])).await.is_err());
}

#[tokio::test]
async fn client_certificates_are_required_and_checked() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ca = Ca::new(dir.path(), "main");
    let clients = Ca::new(dir.path(), "clients");
    let rogue = Ca::new(dir.path(), "rogue");
    let server = ca.server(dir.path(), "server");
    let files = TlsFiles {
        cert: server.cert.clone(),
        key: server.key.clone(),
        client_ca: Some(clients.cert.clone()),
    };
    let addr = serve(Some(server_config(&files).expect("config")), None).await;

    // TLS 1.3 finishes the client's side first: the refusal shows on the first read.
    let none = tls_get(addr, client_config(&ca.cert, None, &[]), "/hello", &[]).await;
    assert!(none.as_ref().map_or(true, |r| !r.contains("200 OK")), "{none:?}");
    let bad = rogue.client(dir.path(), "rogue-client");
    let wrong = tls_get(addr, client_config(&ca.cert, Some(&bad), &[]), "/hello", &[]).await;
    assert!(wrong.as_ref().map_or(true, |r| !r.contains("200 OK")), "{wrong:?}");

    let good = clients.client(dir.path(), "good-client");
    let r = tls_get(addr, client_config(&ca.cert, Some(&good), &[]), "/hello", &[])
        .await
        .expect("a client with a good certificate");
    assert!(r.starts_with("HTTP/1.1 200"), "{r}");
}

#[test]
fn a_key_that_does_not_fit_the_certificate_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ca = Ca::new(dir.path(), "main");
    let a = ca.server(dir.path(), "a");
    let b = ca.server(dir.path(), "b");
    let files = TlsFiles { cert: a.cert.clone(), key: b.key.clone(), client_ca: None };
    let e = server_config(&files).expect_err("mismatched key");
    assert!(e.to_string().contains("a.pem"), "{e}");
    assert!(e.to_string().contains("do not fit"), "{e}");
}
