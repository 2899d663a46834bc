//! TLS and bearer tokens end to end: `oxserve serve` over TLS (REST and gRPC), a plain
//! client refused cleanly, client certificates required; tokens on the data plane (401,
//! gRPC UNAUTHENTICATED, health open, a rotated file honoured without a restart); and
//! `oxserve up` with TLS and tokens on the router and the api port, driven by
//! `oxserve apply`/`get`/`delete` with `--ca-cert` and `OXSERVE_TOKEN`.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use oxserve_client::GrpcClient;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};

#[path = "../../../security/tests/it/certs.rs"]
mod certs;

use crate::support::{Server, fixtures};
use certs::{Ca, Pair};

const XGB_V2: &str = r#"{"inputs":[{"name":"input-0","shape":[1,10],"datatype":"FP32","data":[1,2,3,4,5,6,7,8,9,0]}]}"#;

fn model() -> std::path::PathBuf {
    fixtures().join("models").join("xgb-binary")
}

fn path(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

/// An HTTP client trusting `ca`, presenting `identity` when given.
fn https(ca: &Path, identity: Option<&Pair>) -> reqwest::Client {
    let ca = reqwest::Certificate::from_pem(&std::fs::read(ca).expect("ca")).expect("ca pem");
    let mut b = reqwest::Client::builder().no_proxy().tls_certs_merge([ca]);
    if let Some(p) = identity {
        let pem = format!("{}\n{}", p.cert_pem, p.key_pem);
        b = b.identity(reqwest::Identity::from_pem(pem.as_bytes()).expect("identity"));
    }
    b.build().expect("client")
}

/// A gRPC client over TLS (ALPN h2) to `addr`, as `localhost`, trusting `ca`.
async fn grpc_tls(addr: &str, ca: &Path) -> GrpcClient {
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_file_iter(ca).expect("ca") {
        roots.add(c.expect("ca cert")).expect("add ca");
    }
    let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("versions")
    .with_root_certificates(roots)
    .with_no_client_auth();
    config.alpn_protocols = vec![b"h2".to_vec()];
    let config = Arc::new(config);
    let addr: SocketAddr = addr.parse().expect("grpc addr");
    let connector = tower::service_fn(move |_: tonic::codegen::http::Uri| {
        let config = config.clone();
        async move {
            let tcp = tokio::net::TcpStream::connect(addr).await?;
            let name = ServerName::try_from("localhost").expect("name");
            let tls = tokio_rustls::TlsConnector::from(config).connect(name, tcp).await?;
            Ok::<_, std::io::Error>(hyper_util::rt::TokioIo::new(tls))
        }
    });
    let channel = tonic::transport::Endpoint::from_static("http://localhost")
        .connect_with_connector(connector)
        .await
        .expect("gRPC over TLS connects");
    GrpcClient::from_channel(channel)
}

#[tokio::test]
async fn serve_over_tls_answers_rest_and_grpc_and_tells_plain_clients_to_use_https() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ca = Ca::new(dir.path(), "main");
    let cert = ca.server(dir.path(), "server");
    let server =
        Server::start(&model(), &["--tls-cert", path(&cert.cert), "--tls-key", path(&cert.key)]);
    let addr = server.rest.strip_prefix("https://").expect("the line says https").to_owned();
    let client = https(&ca.cert, None);
    let infer = format!("{}/v2/models/xgb-binary/infer", server.rest);
    let r = client.post(&infer).body(XGB_V2).send().await.expect("REST over TLS");
    assert_eq!(r.status(), 200);

    let plain = reqwest::Client::builder().no_proxy().build().expect("client");
    let r = plain.get(format!("http://{addr}/v2/health/ready")).send().await.expect("an answer");
    assert_eq!(r.status(), 400);
    let body: serde_json::Value = r.json().await.expect("json");
    assert_eq!(body["error"], "this port speaks TLS: use https://");

    let grpc = grpc_tls(&server.grpc, &ca.cert).await;
    assert!(grpc.server_live().await.expect("ServerLive over TLS"));
    let meta = grpc.model_metadata("xgb-binary", None).await.expect("metadata over TLS");
    assert_eq!(meta.name, "xgb-binary");

    let r = client.post(&infer).body(XGB_V2).send().await.expect("still serving");
    assert_eq!(r.status(), 200);
    drop((client, plain, grpc));
    assert!(stop(server).await, "exits 0 on SIGTERM");
}

/// Stops `server` off the runtime, so the clients' connections can close meanwhile rather
/// than hold its drain.
async fn stop(server: Server) -> bool {
    tokio::task::spawn_blocking(move || server.stop()).await.expect("stop")
}

#[tokio::test]
async fn serve_with_a_client_ca_lets_only_its_certificates_in() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ca = Ca::new(dir.path(), "main");
    let clients = Ca::new(dir.path(), "clients");
    let rogue = Ca::new(dir.path(), "rogue");
    let cert = ca.server(dir.path(), "server");
    let server = Server::start(
        &model(),
        &[
            "--tls-cert",
            path(&cert.cert),
            "--tls-key",
            path(&cert.key),
            "--tls-client-ca",
            path(&clients.cert),
            "--no-grpc",
        ],
    );
    let ready = format!("{}/v2/health/ready", server.rest);
    assert!(https(&ca.cert, None).get(&ready).send().await.is_err(), "no certificate");
    let other = rogue.client(dir.path(), "rogue-client");
    assert!(https(&ca.cert, Some(&other)).get(&ready).send().await.is_err(), "another CA's");
    let good = clients.client(dir.path(), "good-client");
    let r = https(&ca.cert, Some(&good)).get(&ready).send().await.expect("a good certificate");
    assert_eq!(r.status(), 200);
    assert!(stop(server).await);
}

#[tokio::test]
async fn serve_with_tokens_refuses_without_one_keeps_health_open_and_follows_the_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let tokens = dir.path().join("tokens");
    std::fs::write(&tokens, "# data plane\nfirst-token\n").expect("write");
    let server = Server::start(&model(), &["--auth-token-file", path(&tokens)]);
    let http = reqwest::Client::builder().no_proxy().build().expect("client");
    let infer = format!("{}/v2/models/xgb-binary/infer", server.rest);
    let send = |token: Option<&str>| {
        let mut req = http.post(&infer).body(XGB_V2);
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        req.send()
    };

    let r = send(None).await.expect("answer");
    assert_eq!(r.status(), 401);
    assert_eq!(r.headers()["www-authenticate"], r#"Bearer realm="oxserve""#);
    let body: serde_json::Value = r.json().await.expect("json");
    assert!(
        body["error"].as_str().is_some_and(|e| e.starts_with("missing bearer token")),
        "{body}"
    );
    let r = send(Some("wrong")).await.expect("answer");
    assert_eq!(r.status(), 401);
    assert!(r.headers()["www-authenticate"].to_str().unwrap().contains("invalid_token"));
    assert_eq!(send(Some("first-token")).await.expect("answer").status(), 200);
    for open in ["/v2/health/live", "/v2/health/ready", "/v2/models/xgb-binary/ready"] {
        let r = http.get(format!("{}{open}", server.rest)).send().await.expect("answer");
        assert_eq!(r.status(), 200, "{open} stays open");
    }

    let grpc = GrpcClient::connect(&server.grpc).await.expect("connect");
    assert!(grpc.server_live().await.expect("ServerLive stays open"));
    let e = grpc.model_metadata("xgb-binary", None).await.expect_err("needs a token");
    assert!(
        matches!(e, oxserve_client::Error::Server { status: 16, .. }),
        "UNAUTHENTICATED: {e:?}"
    );

    // Rotated by rename: the new token works and the old one stops, without a restart.
    let tmp = dir.path().join("tokens.new");
    std::fs::write(&tmp, "second-token\n").expect("write");
    std::fs::rename(&tmp, &tokens).expect("rename");
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while send(Some("second-token")).await.expect("answer").status() != 200 {
        assert!(std::time::Instant::now() < deadline, "the new token was never accepted");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(send(Some("first-token")).await.expect("answer").status(), 401);
    drop((grpc, http));
    assert!(stop(server).await);
}

/// `oxserve up` with `args`, on ephemeral ports; its child and its ready line.
fn up(state: &Path, args: &[&str]) -> (Child, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_oxserve"))
        .arg("up")
        .arg("--state-dir")
        .arg(state)
        .args(["--http-port", "0", "--grpc-port", "0", "--api-port", "0"])
        .args(args)
        .env("OXSERVE_LOG", "warn")
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn oxserve up");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let line = lines.next().expect("oxserve up exited before its line").expect("read");
    std::thread::spawn(move || for _ in lines {});
    (child, line)
}

/// `oxserve ARGS` against the state dir; its exit code and stderr.
fn cli(state: &Path, args: &[&str], env: &[(&str, &str)]) -> (i32, String, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_oxserve"));
    cmd.args(args).arg("--state-dir").arg(state).env_remove("OXSERVE_TOKEN");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("run oxserve");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test]
async fn up_serves_tls_and_its_api_needs_a_token_to_change_anything() {
    let dir = tempfile::tempdir().expect("tempdir");
    let state = dir.path().join("state");
    let ca = Ca::new(dir.path(), "main");
    let cert = ca.server(dir.path(), "server");
    let (api_tokens, data_tokens) = (dir.path().join("api-tokens"), dir.path().join("tokens"));
    std::fs::write(&api_tokens, "operator-token\n").expect("write");
    std::fs::write(&data_tokens, "client-token\n").expect("write");
    let (mut child, line) = up(
        &state,
        &[
            "--tls-cert",
            path(&cert.cert),
            "--tls-key",
            path(&cert.key),
            "--auth-token-file",
            path(&data_tokens),
            "--api-token-file",
            path(&api_tokens),
            "--api-read-open",
        ],
    );
    let field = |k: &str| {
        line.split_whitespace().find_map(|f| f.strip_prefix(k)).expect("field").to_owned()
    };
    let (rest, api) = (field("rest="), field("api="));
    assert!(rest.starts_with("https://127.0.0.1:"), "{line}");
    assert!(api.starts_with("https://127.0.0.1:"), "{line}");

    // The router: TLS, and a token for anything but health.
    let client = https(&ca.cert, None);
    let r = client.post(format!("{rest}/v2/models/m/infer")).body(XGB_V2).send().await;
    assert_eq!(r.expect("router over TLS").status(), 401);

    let manifest = dir.path().join("isvc.yaml");
    let uri = format!("file://{}", model().display());
    std::fs::write(
        &manifest,
        format!(
            "apiVersion: serving.kserve.io/v1beta1\nkind: InferenceService\nmetadata:\n  name: m\nspec:\n  predictor:\n    model:\n      modelFormat:\n        name: xgboost\n      storageUri: {uri}\n"
        ),
    )
    .expect("write");
    let ca_cert = path(&ca.cert);
    let apply = ["apply", "-f", path(&manifest), "--ca-cert", ca_cert];

    let (code, _, err) = cli(&state, &apply, &[]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("401"), "{err}");
    assert!(err.contains("pass --token or set OXSERVE_TOKEN"), "{err}");
    let (code, _, err) = cli(&state, &apply, &[("OXSERVE_TOKEN", "wrong")]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("invalid bearer token"), "{err}");

    let (code, out, err) = cli(&state, &apply, &[("OXSERVE_TOKEN", "operator-token")]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out.trim(), "inferenceservice.serving.kserve.io/m created");

    // Reads are open (--api-read-open); without the CA the https:// api is not trusted.
    let (code, out, err) = cli(&state, &["get", "isvc", "--ca-cert", ca_cert], &[]);
    assert_eq!(code, 0, "{err}");
    assert!(out.lines().nth(1).is_some_and(|l| l.starts_with("m ")), "{out}");
    let (code, _, err) = cli(&state, &["get", "isvc"], &[]);
    assert_eq!(code, 1, "an untrusted certificate: {err}");

    let delete = ["delete", "isvc", "m", "--ca-cert", ca_cert];
    let (code, _, err) = cli(&state, &delete, &[]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("401"), "{err}");
    let (code, _, err) = cli(&state, &delete, &[("OXSERVE_TOKEN", "operator-token")]);
    assert_eq!(code, 0, "{err}");

    drop(client);
    let pid = child.id().to_string();
    let _ = Command::new("kill").args(["-TERM", &pid]).status();
    let exited = tokio::task::spawn_blocking(move || child.wait().expect("wait")).await;
    assert!(exited.expect("wait").success());
}
