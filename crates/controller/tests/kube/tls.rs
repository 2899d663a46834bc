//! The client's TLS stack picks one crypto provider: the workspace builds rustls with
//! aws-lc-rs (object_store's choice), and kube is built for the same one, so building an
//! https client needs no process-wide provider installed first (two providers would make
//! rustls panic at the first connection instead).

#[tokio::test]
async fn an_https_client_builds_and_fails_cleanly_without_a_server() {
    let config = kube::Config::new("https://127.0.0.1:9".parse().unwrap());
    let client = kube::Client::try_from(config).expect("an https client");
    let err = client.apiserver_version().await.expect_err("nothing listens on port 9");
    assert!(!err.to_string().is_empty());
}
