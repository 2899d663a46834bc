//! The explanation endpoints: V2 `/explain`, V1 `:explain` and gRPC `ModelInfer` with
//! `explain: true`, for TreeSHAP (tree fixtures, against the frameworks' contributions) and
//! KernelSHAP (the ONNX `mlp`), their errors, metrics and statistics.

use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use oxserve_protocol::grpc::inference as pb;
use serde_json::{Value, json};
use tower::ServiceExt;

use crate::support::{self, background_rows, fixtures};

async fn call(
    router: &axum::Router,
    method: &str,
    path: &str,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let request = Request::builder()
        .method(method)
        .uri(path)
        .header("content-type", "application/json")
        .body(body.map_or_else(Body::empty, |b| Body::from(b.to_string())))
        .unwrap();
    let response = router.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    let text = String::from_utf8_lossy(&bytes).into_owned();
    (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
}

fn output<'a>(response: &'a Value, name: &str) -> &'a Value {
    response["outputs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["name"] == name)
        .unwrap_or_else(|| panic!("no output {name} in {response}"))
}

fn numbers(v: &Value) -> Vec<f64> {
    v.as_array().unwrap().iter().map(|x| x.as_f64().unwrap()).collect()
}

/// The NaN-free rows of a fixture's expected input (JSON has no NaN) with their indices.
fn fixture_rows(name: &str) -> (Vec<usize>, Vec<Vec<f64>>) {
    let text = std::fs::read_to_string(fixtures().join(format!("expected/{name}.json"))).unwrap();
    let doc: Value = serde_json::from_str(&text).unwrap();
    let shape = doc["input"]["shape"].as_array().unwrap();
    let f = shape[1].as_u64().unwrap() as usize;
    let data = doc["input"]["data"].as_array().unwrap();
    let mut kept = Vec::new();
    let mut rows = Vec::new();
    for (i, row) in data.chunks(f).enumerate() {
        if row.iter().all(Value::is_number) {
            kept.push(i);
            rows.push(row.iter().map(|v| v.as_f64().unwrap()).collect());
        }
    }
    (kept, rows)
}

fn contribs(name: &str) -> (Vec<usize>, Vec<f64>) {
    let text =
        std::fs::read_to_string(fixtures().join(format!("expected/{name}.contribs.json"))).unwrap();
    let doc: Value = serde_json::from_str(&text).unwrap();
    let shape = doc["contribs"]["shape"].as_array().unwrap();
    (
        shape.iter().map(|v| v.as_u64().unwrap() as usize).collect(),
        numbers(&doc["contribs"]["data"]),
    )
}

fn v2_body(rows: &[Vec<f64>]) -> Value {
    json!({"inputs": [{"name": "input-0", "datatype": "FP32", "shape": [rows.len(), rows[0].len()],
        "data": rows.concat()}]})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn treeshap_over_rest_matches_the_frameworks_and_is_counted_apart() {
    let repo = support::repository();
    let (_core, state) = support::core(repo.path()).await;
    let router = oxserve_server::rest::router(state);

    let (status, meta) = call(&router, "GET", "/v2", None).await;
    assert_eq!(status, StatusCode::OK);
    assert!(meta["extensions"].as_array().unwrap().contains(&json!("explain")), "{meta}");

    // V2: XGBoost, one output group.
    let (kept, rows) = fixture_rows("xgb-binary");
    let (shape, want) = contribs("xgb-binary");
    let f = shape[2] - 1;
    let (status, body) =
        call(&router, "POST", "/v2/models/xgb-binary/explain", Some(v2_body(&rows))).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["parameters"]["explainer"], "treeshap");
    assert_eq!(output(&body, "predict_proba")["shape"], json!([rows.len(), 2]));
    let attributions = output(&body, "margin_attributions");
    assert_eq!(attributions["shape"], json!([rows.len(), 1, f]));
    assert_eq!(attributions["datatype"], "FP64");
    let values = numbers(&attributions["data"]);
    let expected = numbers(&output(&body, "expected_value")["data"]);
    let margins = numbers(&output(&body, "margin")["data"]);
    for (r, &i) in kept.iter().enumerate() {
        for j in 0..f {
            let (got, want) = (values[r * f + j], want[i * (f + 1) + j]);
            assert!((got - want).abs() < 1e-5, "row {i} feature {j}: {got} vs {want}");
        }
        assert!((expected[0] - want[i * (f + 1) + f]).abs() < 1e-5);
        let sum: f64 = expected[0] + values[r * f..(r + 1) * f].iter().sum::<f64>();
        assert!((sum - margins[r]).abs() < 1e-5, "row {i}: {sum} vs margin {}", margins[r]);
    }
    // With /versions/{v} too.
    let (status, _) = call(
        &router,
        "POST",
        "/v2/models/xgb-binary/versions/1/explain",
        Some(v2_body(&rows[..1])),
    )
    .await;
    assert_eq!(status, StatusCode::OK);

    // V1: LightGBM multiclass, instances in, explanations out.
    let (kept, rows) = fixture_rows("lgbm-multiclass");
    let (shape, want) = contribs("lgbm-multiclass");
    let (k, f) = (shape[1], shape[2] - 1);
    let (status, body) = call(
        &router,
        "POST",
        "/v1/models/lgbm-multiclass:explain",
        Some(json!({"instances": rows})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["predictions"].as_array().unwrap().len(), rows.len());
    let explanations = body["explanations"].as_array().unwrap();
    assert_eq!(explanations.len(), rows.len());
    for (e, &i) in explanations.iter().zip(&kept) {
        assert_eq!(e["explainer"], "treeshap");
        assert_eq!(e["output"], "margin");
        let a = e["attributions"].as_array().unwrap();
        assert_eq!(a.len(), k);
        for (g, per_class) in a.iter().enumerate() {
            let got = numbers(per_class);
            for j in 0..f {
                let w = want[(i * k + g) * (f + 1) + j];
                assert!((got[j] - w).abs() < 1e-9, "row {i} class {g} feature {j}");
            }
        }
    }

    // Counted as explanations, not inferences.
    let (_, stats) = call(&router, "GET", "/v2/models/xgb-binary/stats", None).await;
    let s = &stats["model_stats"][0];
    assert_eq!(s["inference_count"], 0, "{stats}");
    assert_eq!(s["explain_stats"]["success"]["count"], 2, "{stats}");
    let request = Request::get("/metrics").body(Body::empty()).unwrap();
    let metrics =
        router.clone().oneshot(request).await.unwrap().into_body().collect().await.unwrap();
    let metrics = String::from_utf8(metrics.to_bytes().to_vec()).unwrap();
    assert!(metrics.contains(
        r#"oxserve_explain_requests_total{model="xgb-binary",version="1",protocol="rest",outcome="success"} 2"#
    ), "{metrics}");
    assert!(metrics.contains(
        r#"oxserve_explain_requests_total{model="lgbm-multiclass",version="1",protocol="v1",outcome="success"} 1"#
    ), "{metrics}");
    assert!(!metrics.contains(r#"oxserve_inference_requests_total{model="xgb-binary",version="1",protocol="rest",outcome="success"} 1"#));
}

fn mlp_rows() -> Vec<Vec<f64>> {
    vec![
        vec![0.5, -1.0, 0.25, 2.0, -0.5, 1.5, 0.0, -2.0],
        vec![1.0, 1.0, -1.0, 0.5, 0.75, -1.25, 2.0, 0.1],
    ]
}

fn mlp_body(rows: &[Vec<f64>], parameters: Value) -> Value {
    json!({"parameters": parameters, "inputs": [{"name": "input", "datatype": "FP32",
        "shape": [rows.len(), 8], "data": rows.concat()}]})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kernelshap_explains_the_onnx_mlp_additively_and_deterministically() {
    let repo = support::repository();
    let (_core, state) = support::core(repo.path()).await;
    let router = oxserve_server::rest::router(state);
    let rows = mlp_rows();
    let (status, body) =
        call(&router, "POST", "/v2/models/mlp/explain", Some(mlp_body(&rows, json!({})))).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["parameters"]["explainer"], "kernelshap");
    let a = output(&body, "output_attributions");
    assert_eq!(a["shape"], json!([2, 4, 8]));
    let values = numbers(&a["data"]);
    let expected = numbers(&output(&body, "expected_value")["data"]);
    let predicted = numbers(&output(&body, "output")["data"]);
    // The expected value is the model's mean over the background.
    let bg = background_rows();
    let (_, mean) =
        call(&router, "POST", "/v2/models/mlp/infer", Some(mlp_body(&bg, json!({})))).await;
    let bg_out = numbers(&output(&mean, "output")["data"]);
    for d in 0..4 {
        let m: f64 = (0..bg.len()).map(|i| bg_out[i * 4 + d]).sum::<f64>() / bg.len() as f64;
        assert!((expected[d] - m).abs() < 1e-5, "output {d}: {} vs {m}", expected[d]);
    }
    // Additivity, against the prediction in the same response.
    for r in 0..2 {
        for d in 0..4 {
            let sum: f64 =
                expected[d] + values[(r * 4 + d) * 8..(r * 4 + d + 1) * 8].iter().sum::<f64>();
            assert!((sum - predicted[r * 4 + d]).abs() < 1e-5, "row {r} output {d}");
        }
    }
    // Same request, same answer; sampled budgets depend on the seed only.
    let (_, again) =
        call(&router, "POST", "/v2/models/mlp/explain", Some(mlp_body(&rows, json!({})))).await;
    assert_eq!(output(&again, "output_attributions"), a);
    let sampled = |seed: u64| mlp_body(&rows, json!({"nsamples": 60, "seed": seed}));
    let (_, s1) = call(&router, "POST", "/v2/models/mlp/explain", Some(sampled(1))).await;
    let (_, s1b) = call(&router, "POST", "/v2/models/mlp/explain", Some(sampled(1))).await;
    let (_, s2) = call(&router, "POST", "/v2/models/mlp/explain", Some(sampled(2))).await;
    assert_eq!(output(&s1, "output_attributions"), output(&s1b, "output_attributions"));
    assert_ne!(output(&s1, "output_attributions"), output(&s2, "output_attributions"));

    // A k-means background (3 weighted rows) through batches of 64.
    let (status, body) =
        call(&router, "POST", "/v2/models/mlp-kmeans/explain", Some(mlp_body(&rows, json!({}))))
            .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let values = numbers(&output(&body, "output_attributions")["data"]);
    let expected = numbers(&output(&body, "expected_value")["data"]);
    let predicted = numbers(&output(&body, "output")["data"]);
    let sum: f64 = expected[0] + values[..8].iter().sum::<f64>();
    assert!((sum - predicted[0]).abs() < 1e-5);

    // V1 for a KernelSHAP model too.
    let (status, body) =
        call(&router, "POST", "/v1/models/mlp:explain", Some(json!({"instances": rows}))).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["explanations"][0]["explainer"], "kernelshap");
    assert_eq!(body["explanations"][1]["attributions"].as_array().unwrap().len(), 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_explanation_requests_answer_4xx_with_the_reason() {
    let repo = support::repository();
    let (_core, state) = support::core(repo.path()).await;
    let router = oxserve_server::rest::router(state);
    let iris = json!({"inputs": [{"name": "float_input", "datatype": "FP32", "shape": [1, 4], "data": [5.1, 3.5, 1.4, 0.2]}]});
    let cases = [
        (
            "/v2/models/iris-lr/explain",
            iris.clone(),
            StatusCode::BAD_REQUEST,
            "no explainer is configured",
        ),
        (
            "/v2/models/mlp-wide/explain",
            mlp_body(&mlp_rows(), json!({})),
            StatusCode::BAD_REQUEST,
            "background rows have 5 values but input \"input\" has 8 features",
        ),
        (
            "/v2/models/xgb-binary/explain",
            json!({"inputs": [{"name": "input-0", "datatype": "FP32", "shape": [1, 3], "data": [1, 2, 3]}]}),
            StatusCode::BAD_REQUEST,
            "input-0",
        ),
        (
            "/v2/models/mlp/explain",
            mlp_body(&mlp_rows(), json!({"nsamples": 0})),
            StatusCode::BAD_REQUEST,
            "parameter \"nsamples\" must be a positive integer",
        ),
        (
            "/v2/models/nope/explain",
            iris.clone(),
            StatusCode::NOT_FOUND,
            "model \"nope\" not found",
        ),
    ];
    for (path, body, want_status, want) in cases {
        let (status, answer) = call(&router, "POST", path, Some(body)).await;
        assert_eq!(status, want_status, "{path}: {answer}");
        let message = answer["error"].as_str().unwrap_or_default();
        assert!(message.contains(want), "{path}: {message}");
    }
    let (status, answer) = call(
        &router,
        "POST",
        "/v1/models/iris-lr:explain",
        Some(json!({"instances": [[5.1, 3.5, 1.4, 0.2]]})),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
    // Failed explanations are counted as such.
    let (_, stats) = call(&router, "GET", "/v2/models/iris-lr/stats", None).await;
    assert_eq!(stats["model_stats"][0]["explain_stats"]["fail"]["count"], 2, "{stats}");
}

/// Explainers that load but cannot explain, and requests the explainer itself refuses:
/// 400 with what is wrong, over REST, V1 and gRPC alike.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn misconfigured_explainers_and_bad_explain_inputs_answer_400_with_the_reason() {
    let repo = support::repository();
    let (core, state) = support::core(repo.path()).await;
    let router = oxserve_server::rest::router(state);
    let rows = mlp_rows();
    let cases = [
        (
            "/v2/models/mlp-treeshap/explain",
            mlp_body(&rows, json!({})),
            "explainer.type \"treeshap\" needs a tree model (xgboost or lightgbm)",
        ),
        (
            "/v2/models/mlp-no-output/explain",
            mlp_body(&rows, json!({})),
            "explainer.output: the model has no output \"probabilities\"",
        ),
        (
            "/v2/models/mlp-no-background/explain",
            mlp_body(&rows, json!({})),
            "explainer.background: cannot read",
        ),
        (
            "/v2/models/mlp/explain",
            mlp_body(&rows, json!({"seed": "seven"})),
            "parameter \"seed\" must be a positive integer",
        ),
        (
            "/v2/models/mlp/explain",
            json!({"inputs": [{"name": "input", "datatype": "INT64", "shape": [1, 8], "data": [1, 2, 3, 4, 5, 6, 7, 8]}]}),
            "INT64",
        ),
        (
            "/v2/models/mlp/explain",
            json!({"inputs": [{"name": "input", "datatype": "FP32", "shape": [0, 8], "data": []}]}),
            "explain needs shape [N, 8] with N >= 1",
        ),
        (
            "/v2/models/xgb-binary/explain",
            json!({"inputs": [{"name": "input-0", "datatype": "FP32", "shape": [1, 10], "data": [1, 2, 3]}]}),
            "needs 10 elements, got 3",
        ),
    ];
    for (path, body, want) in cases {
        let (status, answer) = call(&router, "POST", path, Some(body.clone())).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{path} {body}: {answer}");
        let message = answer["error"].as_str().unwrap_or_default();
        assert!(message.contains(want), "{path} {body}: {message:?} lacks {want:?}");
    }
    // The model itself still predicts: only its explanations are refused.
    let (status, _) =
        call(&router, "POST", "/v2/models/mlp-treeshap/infer", Some(mlp_body(&rows, json!({}))))
            .await;
    assert_eq!(status, StatusCode::OK);
    // V1: instances of the wrong width.
    let (status, answer) = call(
        &router,
        "POST",
        "/v1/models/xgb-binary:explain",
        Some(json!({"instances": [[1.0, 2.0, 3.0]]})),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
    assert!(answer["error"].is_string(), "{answer}");

    // gRPC: a model without an explainer answers INVALID_ARGUMENT with the reason.
    let (_, grpc, stop) = support::start(core).await;
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{grpc}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut client = pb::grpc_inference_service_client::GrpcInferenceServiceClient::new(channel);
    let request = pb::ModelInferRequest {
        model_name: "iris-lr".into(),
        parameters: [(
            "explain".to_owned(),
            pb::InferParameter {
                parameter_choice: Some(pb::infer_parameter::ParameterChoice::BoolParam(true)),
            },
        )]
        .into(),
        inputs: vec![pb::model_infer_request::InferInputTensor {
            name: "float_input".into(),
            datatype: "FP32".into(),
            shape: vec![1, 4],
            contents: Some(pb::InferTensorContents {
                fp32_contents: vec![5.1, 3.5, 1.4, 0.2],
                ..Default::default()
            }),
            ..Default::default()
        }],
        ..Default::default()
    };
    let status = client.model_infer(request).await.unwrap_err();
    assert_eq!(status.code(), tonic::Code::InvalidArgument);
    assert!(status.message().contains("no explainer is configured"), "{}", status.message());
    let _ = stop.send(());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_model_infer_explains_with_the_explain_parameter() {
    let repo = support::repository();
    let (core, _) = support::core(repo.path()).await;
    let (_, grpc, stop) = support::start(core).await;
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{grpc}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut client = pb::grpc_inference_service_client::GrpcInferenceServiceClient::new(channel);
    let (_, rows) = fixture_rows("xgb-regression");
    let request = |explain: pb::InferParameter| pb::ModelInferRequest {
        model_name: "xgb-binary".into(),
        parameters: [("explain".to_owned(), explain)].into(),
        inputs: vec![pb::model_infer_request::InferInputTensor {
            name: "input-0".into(),
            datatype: "FP32".into(),
            shape: vec![rows.len() as i64, 10],
            contents: Some(pb::InferTensorContents {
                fp32_contents: rows.concat().iter().map(|&v| v as f32).collect(),
                ..Default::default()
            }),
            ..Default::default()
        }],
        ..Default::default()
    };
    let flag = |b: bool| pb::InferParameter {
        parameter_choice: Some(pb::infer_parameter::ParameterChoice::BoolParam(b)),
    };
    let response = client.model_infer(request(flag(true))).await.unwrap().into_inner();
    let names: Vec<&str> = response.outputs.iter().map(|o| o.name.as_str()).collect();
    assert_eq!(
        names,
        ["predict", "predict_proba", "margin_attributions", "expected_value", "margin"]
    );
    let a = &response.outputs[2];
    assert_eq!(a.shape, vec![rows.len() as i64, 1, 10]);
    assert_eq!(a.contents.as_ref().unwrap().fp64_contents.len(), rows.len() * 10);
    // `explain: false` is a plain inference.
    let plain = client.model_infer(request(flag(false))).await.unwrap().into_inner();
    assert_eq!(plain.outputs.len(), 2);
    let bad = pb::InferParameter {
        parameter_choice: Some(pb::infer_parameter::ParameterChoice::StringParam("yes".into())),
    };
    let status = client.model_infer(request(bad)).await.unwrap_err();
    assert_eq!(status.code(), tonic::Code::InvalidArgument);
    assert!(
        status.message().contains("parameter \"explain\" must be a bool"),
        "{}",
        status.message()
    );
    let _ = stop.send(());
}
