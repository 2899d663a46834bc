//! `oxserve serve` end to end over real sockets: every fixture model through every transport
//! against the frameworks' own predictions, errors, repository load/unload, batching,
//! graceful shutdown and a missing ONNX Runtime library.

use std::path::Path;

use oxserve_client::{GrpcClient, RestClient};
use oxserve_protocol::{InferRequest, RequestedOutput, Tensor, TensorData};
use serde_json::Value;

use crate::support::{Server, fixtures};

/// One fixture: its input tensor and the framework's outputs.
struct Expected {
    model: String,
    input: Tensor,
    outputs: Vec<(String, Vec<f64>)>,
}

fn expected_fixtures() -> Vec<Expected> {
    let dir = fixtures().join("expected");
    let mut all = Vec::new();
    // `NAME.contribs.json` beside a fixture holds its TreeSHAP contributions, not predictions.
    let mut paths: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| !p.to_string_lossy().ends_with(".contribs.json"))
        .collect();
    paths.sort();
    for path in paths {
        let v: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        let input = &v["input"];
        let data: Vec<f32> = input["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_f64().map_or(f32::NAN, |f| f as f32))
            .collect();
        let shape: Vec<i64> =
            input["shape"].as_array().unwrap().iter().map(|d| d.as_i64().unwrap()).collect();
        let outputs = v["outputs"]
            .as_object()
            .unwrap()
            .iter()
            .map(|(name, o)| {
                (
                    name.clone(),
                    o["data"].as_array().unwrap().iter().map(|x| x.as_f64().unwrap()).collect(),
                )
            })
            .collect();
        all.push(Expected {
            model: path.file_stem().unwrap().to_string_lossy().into_owned(),
            input: Tensor::new(input["name"].as_str().unwrap(), shape, TensorData::Fp32(data)),
            outputs,
        });
    }
    assert!(all.len() >= 9, "expected the fixture set, found {}", all.len());
    all
}

fn as_f64(data: &TensorData) -> Vec<f64> {
    match data {
        TensorData::Fp32(v) => v.iter().map(|&x| f64::from(x)).collect(),
        TensorData::Fp64(v) => v.clone(),
        TensorData::Int64(v) => v.iter().map(|&x| x as f64).collect(),
        TensorData::Int32(v) => v.iter().map(|&x| f64::from(x)).collect(),
        other => panic!("unexpected output datatype {}", other.datatype()),
    }
}

fn assert_close(context: &str, got: &[f64], want: &[f64]) {
    assert_eq!(got.len(), want.len(), "{context}: element count");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        let tol = 1e-5 * w.abs().max(1e-1);
        assert!((g - w).abs() <= tol, "{context}[{i}]: got {g}, framework says {w}");
    }
}

fn request_for(e: &Expected) -> InferRequest {
    InferRequest {
        id: Some(format!("{}-req", e.model)),
        inputs: vec![e.input.clone()],
        outputs: e
            .outputs
            .iter()
            .map(|(n, _)| RequestedOutput { name: n.clone(), ..Default::default() })
            .collect(),
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_fixture_matches_its_framework_over_rest_and_grpc() {
    let server = Server::start(&fixtures().join("models"), &[]);
    let rest = RestClient::new(&server.rest).unwrap();
    let grpc = GrpcClient::connect(&server.grpc).await.unwrap();
    assert!(rest.server_ready().await.unwrap());
    for e in expected_fixtures() {
        let request = request_for(&e);
        let has_nan = matches!(&e.input.data, TensorData::Fp32(v) if v.iter().any(|x| x.is_nan()));
        let mut answers = vec![
            ("rest binary", rest.infer(&e.model, None, &request, true).await),
            ("grpc typed", grpc.infer(&e.model, None, &request, false).await),
            ("grpc raw", grpc.infer(&e.model, None, &request, true).await),
        ];
        if !has_nan {
            // JSON has no NaN: rows with missing values travel as binary data above.
            answers.push(("rest json", rest.infer(&e.model, None, &request, false).await));
        }
        for (transport, answer) in answers {
            let response =
                answer.unwrap_or_else(|err| panic!("{} over {transport}: {err}", e.model));
            assert_eq!(response.id.as_deref(), request.id.as_deref(), "{} id echo", e.model);
            assert_eq!(response.outputs.len(), e.outputs.len());
            for (name, want) in &e.outputs {
                let got = response.outputs.iter().find(|t| &t.name == name).unwrap();
                assert_close(
                    &format!("{} {name} over {transport}", e.model),
                    &as_f64(&got.data),
                    want,
                );
            }
        }
    }
    assert!(server.stop(), "server exits cleanly on SIGTERM");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_get_clear_errors_and_the_server_keeps_serving() {
    let server = Server::start(&fixtures().join("models"), &["--max-body-bytes", "4096"]);
    let http = reqwest::Client::new();
    let infer = format!("{}/v2/models/xgb-binary/infer", server.rest);
    let cases: Vec<(&str, Vec<u8>, u16, &str)> = vec![
        ("malformed json", b"{\"inputs\": [".to_vec(), 400, "malformed JSON"),
        ("wrong shape", br#"{"inputs":[{"name":"input-0","shape":[1,3],"datatype":"FP32","data":[1,2,3]}]}"#.to_vec(), 400, "shape [1,3]"),
        ("wrong datatype", br#"{"inputs":[{"name":"input-0","shape":[1,10],"datatype":"INT32","data":[1,2,3,4,5,6,7,8,9,0]}]}"#.to_vec(), 400, "datatype INT32"),
        ("element count", br#"{"inputs":[{"name":"input-0","shape":[2,10],"datatype":"FP32","data":[1,2,3]}]}"#.to_vec(), 400, "needs 20 elements"),
        ("unknown output", br#"{"inputs":[{"name":"input-0","shape":[1,10],"datatype":"FP32","data":[1,2,3,4,5,6,7,8,9,0]}],"outputs":[{"name":"nope"}]}"#.to_vec(), 400, "unknown output \"nope\""),
        ("too large", vec![b' '; 8192], 413, "exceeds the limit"),
    ];
    for (what, body, status, message) in cases {
        let r = http.post(&infer).body(body).send().await.unwrap();
        assert_eq!(r.status().as_u16(), status, "{what}");
        let v: Value = r.json().await.unwrap();
        let error = v["error"].as_str().unwrap_or_else(|| panic!("{what}: no error field in {v}"));
        assert!(error.contains(message), "{what}: {error}");
    }
    let r =
        http.post(format!("{}/v2/models/nope/infer", server.rest)).body("{}").send().await.unwrap();
    assert_eq!(r.status().as_u16(), 404);
    let r =
        http.get(format!("{}/v2/models/xgb-binary/versions/9", server.rest)).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 404);
    let grpc = GrpcClient::connect(&server.grpc).await.unwrap();
    let err = grpc.model_metadata("nope", None).await.unwrap_err();
    assert_eq!(err.server_status(), Some(5), "gRPC NOT_FOUND: {err}");
    // Still serving.
    let ok = http
        .post(&infer)
        .body(r#"{"inputs":[{"name":"input-0","shape":[1,10],"datatype":"FP32","data":[1,2,3,4,5,6,7,8,9,0]}]}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status().as_u16(), 200);
    let v1 = http
        .post(format!("{}/v1/models/xgb-binary:predict", server.rest))
        .body(r#"{"instances":[[1,2,3,4,5,6,7,8,9,0],[0,0,0,0,0,0,0,0,0,0]]}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(v1.status().as_u16(), 200);
    let v: Value = v1.json().await.unwrap();
    assert_eq!(v["predictions"].as_array().unwrap().len(), 2, "{v}");
    assert!(server.stop());
}

fn copy_model(from: &str, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(fixtures().join("models").join(from)).unwrap() {
        let p = entry.unwrap().path();
        std::fs::copy(&p, to.join(p.file_name().unwrap())).unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repository_load_unload_and_runtime_added_models() {
    let tmp = tempfile_dir();
    let repo = tmp.path();
    copy_model("lgbm-regression", &repo.join("reg"));
    let server = Server::start(repo, &[]);
    let rest = RestClient::new(&server.rest).unwrap();
    let request = InferRequest {
        inputs: vec![Tensor::new("input-0", vec![1, 8], TensorData::Fp32(vec![0.5; 8]))],
        ..Default::default()
    };
    let before = rest.infer("reg", None, &request, false).await.unwrap();
    rest.unload_model("reg").await.unwrap();
    assert!(!rest.model_ready("reg", None).await.unwrap_or(false));
    let err = rest.infer("reg", None, &request, false).await.unwrap_err();
    assert_eq!(err.server_status(), Some(503), "{err}");
    assert!(
        rest.server_ready().await.unwrap(),
        "an unloaded model does not make the server unready"
    );
    let index = rest.repository_index().await.unwrap();
    assert_eq!(index[0].reason.as_deref(), Some("unloaded"));
    rest.load_model("reg").await.unwrap();
    let after = rest.infer("reg", None, &request, false).await.unwrap();
    assert_eq!(before.outputs, after.outputs);

    // A model copied in while serving appears on load; a bogus one fails with a reason.
    copy_model("xgb-regression", &repo.join("late"));
    rest.load_model("late").await.unwrap();
    assert!(rest.model_ready("late", None).await.unwrap());
    std::fs::create_dir_all(repo.join("broken")).unwrap();
    std::fs::write(repo.join("broken/model.json"), b"{\"learner\": 1}").unwrap();
    let err = rest.load_model("broken").await.unwrap_err();
    assert_eq!(err.server_status(), Some(500), "{err}");
    assert!(!rest.server_ready().await.unwrap(), "a failed model makes the server unready");
    let err = rest.load_model("missing").await.unwrap_err();
    assert_eq!(err.server_status(), Some(404), "{err}");
    assert!(server.stop());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batched_model_serves_each_request_its_own_rows_and_drains_on_shutdown() {
    let tmp = tempfile_dir();
    let repo = tmp.path();
    copy_model("xgb-regression", &repo.join("batched"));
    // A long delay keeps requests queued, so SIGTERM arrives while they are in flight.
    std::fs::write(
        repo.join("batched/model-settings.json"),
        br#"{"max_batch_size": 64, "max_batch_time": 0.5}"#,
    )
    .unwrap();
    let server = Server::start(repo, &[]);
    let rest = RestClient::new(&server.rest).unwrap();
    let single = |v: f32| InferRequest {
        inputs: vec![Tensor::new("input-0", vec![1, 10], TensorData::Fp32(vec![v; 10]))],
        ..Default::default()
    };
    // Reference answers, one request at a time.
    let mut want = Vec::new();
    for i in 0..8 {
        want.push(
            rest.infer("batched", None, &single(i as f32 / 4.0), false).await.unwrap().outputs,
        );
    }
    let mut handles = Vec::new();
    for i in 0..8 {
        let rest = rest.clone();
        let request = single(i as f32 / 4.0);
        handles
            .push(tokio::spawn(async move { rest.infer("batched", None, &request, true).await }));
    }
    // Once all 8 are inside the server (queued behind the 0.5 s batch delay), ask for a
    // graceful stop.
    let pid = server.pid();
    wait_until_in_flight(&rest, "batched", 8).await;
    std::process::Command::new("kill").args(["-TERM", &pid.to_string()]).status().unwrap();
    for (i, h) in handles.into_iter().enumerate() {
        let got = h.await.unwrap().expect("request in flight during shutdown still answered");
        assert_eq!(got.outputs, want[i], "request {i} got its own rows");
    }
    assert!(server.stop(), "clean exit after draining");
}

/// Polls `/metrics` until `model` has at least `n` requests in flight.
async fn wait_until_in_flight(rest: &RestClient, model: &str, n: usize) {
    for _ in 0..200 {
        let text = reqwest::get(format!("{}metrics", rest.base_url()))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let queued = text
            .lines()
            .find(|l| {
                l.starts_with("oxserve_inflight_requests{")
                    && l.contains(&format!("model=\"{model}\""))
            })
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0);
        if queued >= n as f64 {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    panic!("requests never queued");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_onnx_runtime_fails_onnx_models_only() {
    let server = Server::start_with_env(
        &fixtures().join("models"),
        &[],
        &[("OXSERVE_ONNXRUNTIME_LIB", "/nonexistent/libonnxruntime.so")],
    );
    let rest = RestClient::new(&server.rest).unwrap();
    assert!(!rest.server_ready().await.unwrap());
    let index = rest.repository_index().await.unwrap();
    let iris = index.iter().find(|e| e.name == "iris-lr").unwrap();
    let reason = iris.reason.as_deref().unwrap();
    assert!(reason.contains("/nonexistent/libonnxruntime.so"), "{reason}");
    assert!(reason.contains("cargo xtask setup"), "{reason}");
    let request = InferRequest {
        inputs: vec![Tensor::new("input-0", vec![1, 10], TensorData::Fp32(vec![0.0; 10]))],
        ..Default::default()
    };
    rest.infer("xgb-binary", None, &request, false).await.expect("tree models still serve");
    assert!(server.stop());
}

fn tempfile_dir() -> tempfile::TempDir {
    tempfile::tempdir().unwrap()
}
