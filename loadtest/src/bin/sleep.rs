//! `oxserve-sleep`: a V2 model server whose every inference takes a fixed time, the predictor
//! of the `autoscale` load test (as Knative's autoscaling e2e tests use their `autoscale`
//! image, which sleeps per request).
//!
//! With the request time dominated by the server's own delay, the requests in flight at the
//! router (what the KPA scales on) are the requests the load generator has in flight, even
//! when the generator, the router and the replicas share a busy machine. It runs as a custom
//! predictor container of `oxserve up` (`command: [oxserve-sleep]`), which passes
//! `--http_port=PORT` (and `PORT`): `GET /v2/health/{live,ready}` and
//! `GET /v2/models/{m}/ready` answer 200 (the local backend's readiness probe), `GET
//! /v2/models/{m}` the model's metadata, and `POST /v2/models/{m}[/versions/{v}]/infer`
//! answers one FP32 output after `--delay-ms`. It prints `oxserve-sleep listening
//! rest=http://ADDR` once bound, and exits on SIGTERM or Ctrl-C.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use anyhow::{Context, Result};
use axum::Json;
use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use clap::Parser;
use serde_json::{Value, json};

/// A V2 model server that answers every inference after a fixed delay.
#[derive(Parser)]
#[command(name = "oxserve-sleep", version)]
struct Args {
    /// Address to bind.
    #[arg(long, default_value = "127.0.0.1")]
    host: IpAddr,
    /// REST port (KServe's flag; 0 picks a free port).
    #[arg(long = "http_port", alias = "http-port", env = "PORT", default_value_t = 0)]
    http_port: u16,
    /// How long each inference takes, milliseconds.
    #[arg(long = "delay-ms", default_value_t = 50)]
    delay_ms: u64,
}

fn main() -> Result<()> {
    let Args { host, http_port, delay_ms } = Args::parse();
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .context("starting the async runtime")?
        .block_on(async move {
            let listener = tokio::net::TcpListener::bind(SocketAddr::new(host, http_port))
                .await
                .with_context(|| format!("binding {host}:{http_port}"))?;
            println!("oxserve-sleep listening rest=http://{}", listener.local_addr()?);
            let app = app(Duration::from_millis(delay_ms));
            axum::serve(listener, app).with_graceful_shutdown(shutdown()).await?;
            Ok(())
        })
}

fn app(delay: Duration) -> Router {
    Router::new()
        .route("/v2/health/live", get(ok))
        .route("/v2/health/ready", get(ok))
        .route("/v2/models/{model}/ready", get(ok))
        .route("/v2/models/{model}", get(metadata))
        .route("/v2/models/{model}/infer", post(infer))
        .route("/v2/models/{model}/versions/{version}/infer", post(infer_version))
        .with_state(delay)
}

async fn shutdown() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    tokio::select! {
        _ = term => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}

async fn ok() -> StatusCode {
    StatusCode::OK
}

async fn metadata(Path(model): Path<String>) -> Json<Value> {
    Json(json!({
        "name": model,
        "platform": "oxserve-sleep",
        "inputs": [{"name": "input-0", "datatype": "FP32", "shape": [-1, -1]}],
        "outputs": [{"name": "output-0", "datatype": "FP32", "shape": [-1, 1]}],
    }))
}

async fn infer(State(delay): State<Duration>, Path(model): Path<String>, body: String) -> Response {
    answer(delay, &model, &body).await
}

async fn infer_version(
    State(delay): State<Duration>,
    Path((model, _version)): Path<(String, String)>,
    body: String,
) -> Response {
    answer(delay, &model, &body).await
}

/// Sleeps, then answers one `output-0` row per request (the id echoed); a body that is not
/// a JSON object is a 400 with `{"error": …}`.
async fn answer(delay: Duration, model: &str, body: &str) -> Response {
    let request: Value = match serde_json::from_str(body) {
        Ok(v @ Value::Object(_)) => v,
        Ok(_) => return bad_request("the request body must be a JSON object".into()),
        Err(e) => return bad_request(format!("invalid JSON: {e}")),
    };
    tokio::time::sleep(delay).await;
    let mut out = json!({
        "model_name": model,
        "outputs": [{"name": "output-0", "datatype": "FP32", "shape": [1, 1], "data": [0.5]}],
    });
    if let Some(id) = request.get("id") {
        out["id"] = id.clone();
    }
    Json(out).into_response()
}

fn bad_request(error: String) -> Response {
    (StatusCode::BAD_REQUEST, Json(json!({ "error": error }))).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn call(delay_ms: u64, method: &str, uri: &str, body: &str) -> (StatusCode, Value) {
        use tower::ServiceExt;
        let request = axum::http::Request::builder()
            .method(method)
            .uri(uri)
            .body(axum::body::Body::from(body.to_owned()))
            .unwrap();
        let r = app(Duration::from_millis(delay_ms)).oneshot(request).await.unwrap();
        let status = r.status();
        let bytes = axum::body::to_bytes(r.into_body(), 1 << 20).await.unwrap();
        (status, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
    }

    #[tokio::test]
    async fn infer_waits_the_delay_and_answers_v2() {
        let started = tokio::time::Instant::now();
        let (status, body) =
            call(30, "POST", "/v2/models/m/infer", r#"{"id":"7","inputs":[]}"#).await;
        assert_eq!(status, StatusCode::OK);
        assert!(started.elapsed() >= Duration::from_millis(30));
        assert_eq!(body["model_name"], "m");
        assert_eq!(body["id"], "7");
        assert_eq!(body["outputs"][0]["data"][0], 0.5);
    }

    #[tokio::test]
    async fn readiness_and_bad_input() {
        assert_eq!(call(0, "GET", "/v2/models/any/ready", "").await.0, StatusCode::OK);
        assert_eq!(call(0, "GET", "/v2/health/ready", "").await.0, StatusCode::OK);
        let (status, body) = call(0, "POST", "/v2/models/m/versions/1/infer", "[1]").await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert!(body["error"].as_str().unwrap().contains("JSON object"));
        let (status, body) = call(0, "POST", "/v2/models/m/infer", "{").await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert!(body["error"].as_str().unwrap().contains("invalid JSON"));
    }
}
