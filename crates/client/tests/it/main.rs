//! End-to-end tests of both clients against the real oxserve server, started in-process on
//! 127.0.0.1:0 with a small Rust model.

mod support;

use oxserve_client::{Error, GrpcClient, RestClient};
use oxserve_protocol::extensions::ModelState;
use oxserve_protocol::{DataType, InferRequest, RequestedOutput, Tensor, TensorData};

use support::TestServer;

/// `x` as an FP32 `[rows, 2]` request with id `id`.
fn request(id: &str, x: &[f32]) -> InferRequest {
    let rows = i64::try_from(x.len() / 2).unwrap();
    InferRequest {
        id: Some(id.to_owned()),
        inputs: vec![Tensor::new("x", vec![rows, 2], TensorData::Fp32(x.to_vec()))],
        ..InferRequest::default()
    }
}

fn fp32(t: &Tensor) -> &[f32] {
    match &t.data {
        TensorData::Fp32(v) => v,
        other => panic!("output {} is not FP32: {other:?}", t.name),
    }
}

#[tokio::test]
async fn health_and_metadata_agree_over_both_transports() {
    let server = TestServer::start().await;
    let rest = RestClient::new(&server.http_url()).unwrap();
    let grpc = GrpcClient::connect(&server.grpc_addr()).await.unwrap();

    assert!(rest.server_live().await.unwrap());
    assert!(rest.server_ready().await.unwrap());
    assert!(grpc.server_live().await.unwrap());
    assert!(grpc.server_ready().await.unwrap());

    let meta = rest.server_metadata().await.unwrap();
    assert_eq!(meta.name, "oxserve");
    assert_eq!(grpc.server_metadata().await.unwrap(), meta);

    let model = rest.model_metadata("sum", None).await.unwrap();
    assert_eq!(model.name, "sum");
    assert_eq!(model.versions, ["1"]);
    assert_eq!(model.inputs.len(), 1);
    assert_eq!(model.inputs[0].name, "x");
    assert_eq!(model.inputs[0].datatype, DataType::Fp32);
    assert_eq!(model.inputs[0].shape, [-1, 2]);
    assert_eq!(model.outputs.iter().map(|o| o.name.as_str()).collect::<Vec<_>>(), ["sum", "max"]);
    // gRPC metadata has no parameters; everything else must match.
    let mut model_without_params = model.clone();
    model_without_params.parameters = None;
    assert_eq!(grpc.model_metadata("sum", Some("1")).await.unwrap(), model_without_params);
    assert_eq!(rest.model_metadata("sum", Some("1")).await.unwrap(), model);

    assert!(rest.model_ready("sum", None).await.unwrap());
    assert!(rest.model_ready("sum", Some("1")).await.unwrap());
    assert!(grpc.model_ready("sum", None).await.unwrap());
    assert!(grpc.model_ready("sum", Some("1")).await.unwrap());

    server.stop().await;
}

#[tokio::test]
async fn infer_json_binary_typed_and_raw_give_identical_results() {
    let server = TestServer::start().await;
    let rest = RestClient::new(&server.http_url()).unwrap();
    let grpc = GrpcClient::connect(&server.grpc_addr()).await.unwrap();
    let req = request("req-1", &[1.0, 2.0, 3.0, -4.5, 0.25, 1e-3]);

    let json = rest.infer("sum", None, &req, false).await.unwrap();
    assert_eq!(json.model_name, "sum");
    assert_eq!(json.model_version.as_deref(), Some("1"));
    assert_eq!(json.id.as_deref(), Some("req-1"));
    assert_eq!(json.outputs.len(), 2);
    assert_eq!(json.outputs[0].name, "sum");
    assert_eq!(json.outputs[0].shape, [3]);
    assert_eq!(fp32(&json.outputs[0]), [3.0, -1.5, 0.251]);
    assert_eq!(json.outputs[1].name, "max");
    assert_eq!(fp32(&json.outputs[1]), [2.0, 3.0, 0.25]);

    let binary = rest.infer("sum", Some("1"), &req, true).await.unwrap();
    let typed = grpc.infer("sum", None, &req, false).await.unwrap();
    let raw = grpc.infer("sum", Some("1"), &req, true).await.unwrap();
    for (how, other) in [("binary", &binary), ("typed", &typed), ("raw", &raw)] {
        assert_eq!(other.outputs, json.outputs, "{how} outputs differ from JSON");
        assert_eq!(other.model_name, json.model_name, "{how}");
        assert_eq!(other.model_version, json.model_version, "{how}");
        assert_eq!(other.id, json.id, "{how}");
    }

    // Only the requested output comes back, over every path.
    let mut only_max = req.clone();
    only_max.outputs = vec![RequestedOutput { name: "max".into(), ..RequestedOutput::default() }];
    for resp in [
        rest.infer("sum", None, &only_max, false).await.unwrap(),
        rest.infer("sum", None, &only_max, true).await.unwrap(),
        grpc.infer("sum", None, &only_max, false).await.unwrap(),
        grpc.infer("sum", None, &only_max, true).await.unwrap(),
    ] {
        assert_eq!(resp.outputs.len(), 1);
        assert_eq!(resp.outputs[0].name, "max");
        assert_eq!(fp32(&resp.outputs[0]), [2.0, 3.0, 0.25]);
    }

    server.stop().await;
}

#[tokio::test]
async fn stream_answers_every_request_in_order() {
    let server = TestServer::start().await;
    let grpc = GrpcClient::connect(&server.grpc_addr()).await.unwrap();
    let requests: Vec<InferRequest> =
        (0..8u8).map(|i| request(&format!("s{i}"), &[f32::from(i), 1.0])).collect();

    for raw in [false, true] {
        let results = grpc.infer_stream("sum", None, requests.clone(), raw).await.unwrap();
        assert_eq!(results.len(), 8);
        for (i, result) in (0..8u8).zip(results) {
            let resp = result.unwrap();
            assert_eq!(resp.id, Some(format!("s{i}")));
            assert_eq!(fp32(&resp.outputs[0]), [f32::from(i) + 1.0]);
        }
    }

    // A refused request takes its own slot; the stream goes on.
    let mut bad = request("bad", &[1.0, 2.0, 3.0]);
    bad.inputs[0].shape = vec![1, 3];
    let mixed = vec![request("a", &[1.0, 1.0]), bad, request("c", &[2.0, 2.0])];
    let results = grpc.infer_stream("sum", Some("1"), mixed, false).await.unwrap();
    assert_eq!(results.len(), 3);
    assert_eq!(fp32(&results[0].as_ref().unwrap().outputs[0]), [2.0]);
    match &results[1] {
        Err(Error::Server { status: 2, message }) => {
            assert!(message.contains("\"x\""), "message does not name the input: {message}")
        }
        other => panic!("expected a refused request, got {other:?}"),
    }
    assert_eq!(fp32(&results[2].as_ref().unwrap().outputs[0]), [4.0]);

    assert!(grpc.infer_stream("sum", None, Vec::new(), false).await.unwrap().is_empty());

    server.stop().await;
}

#[tokio::test]
async fn server_errors_carry_status_and_message() {
    let server = TestServer::start().await;
    let rest = RestClient::new(&server.http_url()).unwrap();
    let grpc = GrpcClient::connect(&server.grpc_addr()).await.unwrap();
    let req = request("r", &[1.0, 2.0]);
    let not_found = "model \"nope\" not found".to_owned();

    for binary in [false, true] {
        let e = rest.infer("nope", None, &req, binary).await.unwrap_err();
        assert_eq!(e, Error::Server { status: 404, message: not_found.clone() });
        let e = grpc.infer("nope", None, &req, binary).await.unwrap_err();
        assert_eq!(e, Error::Server { status: 5, message: not_found.clone() });
    }
    let e = rest.model_metadata("nope", None).await.unwrap_err();
    assert_eq!(e, Error::Server { status: 404, message: not_found.clone() });
    let e = grpc.model_metadata("nope", None).await.unwrap_err();
    assert_eq!(e, Error::Server { status: 5, message: not_found.clone() });
    let e = rest.model_ready("nope", None).await.unwrap_err();
    assert_eq!(e, Error::Server { status: 404, message: not_found.clone() });
    let e = grpc.model_ready("nope", None).await.unwrap_err();
    assert_eq!(e, Error::Server { status: 5, message: not_found });

    let e = rest.infer("sum", Some("7"), &req, false).await.unwrap_err();
    assert_eq!(e.server_status(), Some(404));
    assert!(e.to_string().contains("\"7\""), "{e}");

    // A request that does not fit the model: 400 / INVALID_ARGUMENT, naming the input.
    let mut wrong = request("w", &[1.0, 2.0, 3.0]);
    wrong.inputs[0].shape = vec![1, 3];
    let rest_err = rest.infer("sum", None, &wrong, false).await.unwrap_err();
    let grpc_err = grpc.infer("sum", None, &wrong, true).await.unwrap_err();
    let (
        Error::Server { status: 400, message: rest_msg },
        Error::Server { status: 3, message: grpc_msg },
    ) = (&rest_err, &grpc_err)
    else {
        panic!("expected 400 and INVALID_ARGUMENT, got {rest_err:?} and {grpc_err:?}");
    };
    assert!(rest_msg.contains("\"x\""), "{rest_msg}");
    assert_eq!(rest_msg, grpc_msg);

    server.stop().await;
}

#[tokio::test]
async fn repository_statistics_and_config() {
    let server = TestServer::start().await;
    let rest = RestClient::new(&server.http_url()).unwrap();
    let grpc = GrpcClient::connect(&server.grpc_addr()).await.unwrap();

    let index = rest.repository_index().await.unwrap();
    assert_eq!(index.len(), 1);
    assert_eq!(index[0].name, "sum");
    assert_eq!(index[0].version.as_deref(), Some("1"));
    assert_eq!(index[0].state, Some(ModelState::Ready));
    assert_eq!(grpc.repository_index().await.unwrap(), index);

    let config = rest.model_config("sum", None).await.unwrap();
    assert_eq!(config.name, "sum");
    assert_eq!(config.input.len(), 1);
    assert_eq!(config.input[0].name, "x");
    assert_eq!(config.output.len(), 2);
    assert_eq!(grpc.model_config("sum", Some("1")).await.unwrap(), config);

    let req = request("r", &[1.0, 2.0]);
    rest.infer("sum", None, &req, false).await.unwrap();
    grpc.infer("sum", None, &req, true).await.unwrap();
    let stats = rest.model_statistics(Some("sum")).await.unwrap();
    assert_eq!(stats.model_stats.len(), 1);
    let sum = &stats.model_stats[0];
    assert_eq!((sum.name.as_str(), sum.version.as_str()), ("sum", "1"));
    assert_eq!(sum.inference_stats.success.count, 2);
    assert_eq!(sum.inference_count, 2);
    assert!(sum.last_inference > 0);
    assert_eq!(grpc.model_statistics(Some("sum")).await.unwrap(), stats);
    assert_eq!(rest.model_statistics(None).await.unwrap(), stats);
    assert_eq!(grpc.model_statistics(None).await.unwrap(), stats);
    let e = rest.model_statistics(Some("nope")).await.unwrap_err();
    assert_eq!(e.server_status(), Some(404));

    // Unload over gRPC: no longer ready anywhere, and inference is refused.
    grpc.unload_model("sum").await.unwrap();
    assert!(!rest.model_ready("sum", None).await.unwrap());
    assert!(!grpc.model_ready("sum", None).await.unwrap());
    let index = rest.repository_index().await.unwrap();
    assert_eq!(index.len(), 1);
    assert_eq!(index[0].state, Some(ModelState::Unavailable));
    let e = rest.infer("sum", None, &req, false).await.unwrap_err();
    assert!(matches!(e, Error::Server { status: 503, .. }), "{e:?}");
    let e = rest.unload_model("nope").await.unwrap_err();
    assert_eq!(e, Error::Server { status: 404, message: "model \"nope\" not found".into() });

    // This server has no repository to load from: the server says so over both transports.
    let rest_err = rest.load_model("sum").await.unwrap_err();
    let grpc_err = grpc.load_model("sum").await.unwrap_err();
    let (
        Error::Server { status: 404, message: rest_msg },
        Error::Server { status: 5, message: grpc_msg },
    ) = (&rest_err, &grpc_err)
    else {
        panic!("expected 404 and NOT_FOUND, got {rest_err:?} and {grpc_err:?}");
    };
    assert!(rest_msg.contains("repository"), "{rest_msg}");
    assert_eq!(rest_msg, grpc_msg);

    server.stop().await;
}

#[tokio::test]
async fn unreachable_servers_are_transport_errors() {
    // Bind then drop a listener: nothing listens on that port afterwards.
    let port = {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        l.local_addr().unwrap().port()
    };
    let rest = RestClient::new(&format!("127.0.0.1:{port}")).unwrap();
    assert!(matches!(rest.server_live().await, Err(Error::Transport(_))));
    let e = rest.infer("sum", None, &request("r", &[1.0, 2.0]), true).await.unwrap_err();
    assert!(matches!(e, Error::Transport(_)), "{e:?}");
    let e = GrpcClient::connect(&format!("127.0.0.1:{port}")).await.unwrap_err();
    assert!(matches!(e, Error::Transport(_)), "{e:?}");
}

#[tokio::test]
async fn clients_see_a_stopped_server_as_gone() {
    let server = TestServer::start().await;
    let rest = RestClient::new(&server.http_url()).unwrap();
    let grpc = GrpcClient::connect(&server.grpc_addr()).await.unwrap();
    assert!(rest.server_live().await.unwrap());
    assert!(grpc.server_live().await.unwrap());
    server.stop().await;
    assert!(matches!(rest.server_live().await, Err(Error::Transport(_))));
    assert!(matches!(grpc.server_live().await, Err(Error::Transport(_))));
}
