//! Every transport through the router to a real replica, routing by host, tag host, path and
//! gRPC model name, transformer chaining, and the errors a client gets when nothing matches.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use oxserve_client::{GrpcClient, RestClient};
use oxserve_controller::routes::ComponentRoute;
use oxserve_protocol::{InferRequest, Tensor, TensorData};
use oxserve_router::RouterConfig;

use crate::support::*;

fn request() -> InferRequest {
    InferRequest {
        inputs: vec![Tensor::new("input-0", vec![1, 10], TensorData::Fp32(ROW.to_vec()))],
        ..InferRequest::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rest_json_binary_v1_and_grpc_pass_through() {
    let replica = Replica::start("iris").await;
    let routes = table(vec![service(
        "iris",
        vec![target("iris-predictor-00001", 100, vec![replica.route("r1", true)])],
    )]);
    let gw = Gateway::start(RouterConfig::default(), &routes).await;
    let direct = RestClient::new(&replica.rest)
        .unwrap()
        .infer("iris", None, &request(), false)
        .await
        .unwrap();

    // REST JSON and the binary tensor extension, through the router by model name in the path.
    let rest = RestClient::new(&gw.url()).unwrap();
    let json = rest.infer("iris", None, &request(), false).await.unwrap();
    let binary = rest.infer("iris", None, &request(), true).await.unwrap();
    assert_eq!(json.outputs, direct.outputs);
    assert_eq!(binary.outputs, direct.outputs);

    // The revision header, on routed answers, by path and by host.
    let http = Http::default();
    let a = http.post(&format!("{}/v2/models/iris/infer", gw.url()), None, &infer_body()).await;
    assert_eq!((a.status.as_u16(), a.revision()), (200, "iris-predictor-00001"), "{}", a.text());
    let a = http
        .get(&format!("{}/v2/models/iris", gw.url()), Some("iris.default.example.com:80"))
        .await;
    assert_eq!((a.status.as_u16(), a.revision()), (200, "iris-predictor-00001"));

    // V1.
    let v1 = http
        .post(
            &format!("{}/v1/models/iris:predict", gw.url()),
            None,
            &format!(r#"{{"instances":[{:?}]}}"#, ROW),
        )
        .await;
    assert_eq!(v1.status, 200, "{}", v1.text());
    assert!(v1.text().contains("predictions"), "{}", v1.text());
    assert_eq!(v1.revision(), "iris-predictor-00001");
    let status = http.get(&format!("{}/v1/models/iris", gw.url()), None).await;
    assert_eq!(status.status, 200, "{}", status.text());

    // gRPC unary and streaming, routed by the model name in the message.
    let grpc = GrpcClient::connect(&gw.grpc.to_string()).await.unwrap();
    assert!(grpc.server_live().await.unwrap());
    assert!(grpc.model_ready("iris", None).await.unwrap());
    let unary = grpc.infer("iris", None, &request(), false).await.unwrap();
    let raw = grpc.infer("iris", None, &request(), true).await.unwrap();
    assert_eq!(unary.outputs, direct.outputs);
    assert_eq!(raw.outputs, direct.outputs);
    let streamed = grpc
        .infer_stream("iris", None, vec![request(), request(), request()], false)
        .await
        .unwrap();
    assert_eq!(streamed.len(), 3);
    for r in streamed {
        assert_eq!(r.unwrap().outputs, direct.outputs);
    }
    let metadata = grpc.model_metadata("iris", None).await.unwrap();
    assert_eq!(metadata.name, "iris");

    // The router's own endpoints.
    assert_eq!(http.get(&format!("{}/v2/health/ready", gw.url()), None).await.status, 200);
    assert_eq!(http.get(&format!("{}/v2/health/live", gw.url()), None).await.status, 200);
    let meta = http.get(&format!("{}/v2", gw.url()), None).await;
    assert!(meta.text().contains("oxserve-router"), "{}", meta.text());
    let metrics = http.get(&format!("{}/metrics", gw.url()), None).await.text();
    assert!(
        metrics.contains(
            r#"oxserve_router_requests_total{revision="iris-predictor-00001",code="200"}"#
        ),
        "{metrics}"
    );
    assert!(metrics.contains("oxserve_router_request_duration_seconds_bucket"), "{metrics}");
    assert!(
        metrics.contains(
            r#"oxserve_router_split_picks_total{service="iris",revision="iris-predictor-00001"}"#
        ),
        "{metrics}"
    );
    drop(gw);
    replica.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tag_hosts_and_trained_models_reach_their_revision() {
    let a = Replica::start("iris").await;
    let b = Replica::start("iris").await;
    let mut old = target("iris-predictor-00001", 100, vec![a.route("a", true)]);
    old.tag = Some("prev".into());
    let mut new = target("iris-predictor-00002", 0, vec![b.route("b", true)]);
    new.tag = Some("latest".into());
    let mut svc = service("iris", vec![old, new]);
    svc.models.push("iris-tm".into());
    let gw = Gateway::start(
        RouterConfig { domain: "models.test".into(), ..RouterConfig::default() },
        &table(vec![svc]),
    )
    .await;
    let http = Http::default();
    let url = format!("{}/v2/models/iris/ready", gw.url());
    assert_eq!(
        http.get(&url, Some("iris.default.models.test")).await.revision(),
        "iris-predictor-00001"
    );
    assert_eq!(
        http.get(&url, Some("latest-iris.default.models.test")).await.revision(),
        "iris-predictor-00002"
    );
    assert_eq!(
        http.get(&url, Some("prev-iris.default.models.test")).await.revision(),
        "iris-predictor-00001"
    );
    // A TrainedModel name reaches its parent service (here the replica does not know it).
    let tm = http.get(&format!("{}/v2/models/iris-tm/ready", gw.url()), None).await;
    assert_eq!(tm.revision(), "iris-predictor-00001");
    drop(gw);
    a.stop().await;
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_name_what_was_looked_up() {
    let replica = Replica::start("iris").await;
    let routes =
        table(vec![service("iris", vec![target("iris-1", 100, vec![replica.route("r1", true)])])]);
    let gw =
        Gateway::start(RouterConfig { max_body_bytes: 1024, ..RouterConfig::default() }, &routes)
            .await;
    let http = Http::default();

    let bad_host = http
        .get(&format!("{}/v2/models/iris/ready", gw.url()), Some("nope.default.example.com"))
        .await;
    assert_eq!(bad_host.status, 404);
    assert!(bad_host.error().contains("\"nope.default.example.com\""), "{}", bad_host.error());

    let unknown =
        http.post(&format!("{}/v2/models/ghost/infer", gw.url()), None, &infer_body()).await;
    assert_eq!(unknown.status, 404);
    assert!(unknown.error().contains("\"ghost\""), "{}", unknown.error());
    let unknown_v1 = http.post(&format!("{}/v1/models/ghost:predict", gw.url()), None, "{}").await;
    assert!(unknown_v1.error().contains("\"ghost\""), "{}", unknown_v1.error());

    let nothing = http.get(&format!("{}/somewhere", gw.url()), None).await;
    assert_eq!(nothing.status, 404);
    assert!(nothing.error().contains("/somewhere"), "{}", nothing.error());

    let big =
        http.post(&format!("{}/v2/models/iris/infer", gw.url()), None, &"x".repeat(2000)).await;
    assert_eq!(big.status, 413);
    assert!(big.error().contains("2000 bytes"), "{}", big.error());

    // gRPC: unknown model → NOT_FOUND naming it.
    let grpc = GrpcClient::connect(&gw.grpc.to_string()).await.unwrap();
    let e = grpc.infer("ghost", None, &request(), false).await.unwrap_err().to_string();
    assert!(e.contains("ghost"), "{e}");

    // Malformed gRPC frames, sent as raw bytes.
    let h2: Client<_, Full<Bytes>> =
        Client::builder(TokioExecutor::new()).http2_only(true).build_http();
    let send = |body: Vec<u8>| {
        let h2 = h2.clone();
        let uri = format!("http://{}/inference.GRPCInferenceService/ModelInfer", gw.grpc);
        async move {
            let req = http::Request::post(uri)
                .header("content-type", "application/grpc")
                .header("te", "trailers")
                .body(Full::new(Bytes::from(body)))
                .unwrap();
            let r = h2.request(req).await.unwrap();
            let status = r.headers().get("grpc-status").map(|v| v.to_str().unwrap().to_owned());
            let message = r.headers().get("grpc-message").map(|v| v.to_str().unwrap().to_owned());
            let _ = r.into_body().collect().await;
            (status, message.unwrap_or_default())
        }
    };
    let (code, message) = send(vec![0, 0, 0]).await;
    assert_eq!(code.as_deref(), Some("3"), "{message}");
    assert!(message.contains("body ends after 3 bytes"), "{message}");
    let (code, message) = send(vec![1, 0, 0, 0, 2, 0x0a, 0]).await;
    assert_eq!(code.as_deref(), Some("3"));
    assert!(message.contains("compressed"), "{message}");
    let (code, message) = send(vec![0, 0, 0, 0, 3, 0x0a, 9, b'x']).await;
    assert_eq!(code.as_deref(), Some("3"));
    assert!(message.contains("truncated"), "{message}");
    let (code, message) = send(vec![0, 0, 0, 0, 2, 0x12, 0]).await;
    assert_eq!(code.as_deref(), Some("3"));
    assert!(message.contains("no model name"), "{message}");
    let (code, _) = send(vec![0, 0x10, 0, 0, 0]).await;
    assert_eq!(code.as_deref(), Some("8"), "a first message over the limit is RESOURCE_EXHAUSTED");
    drop(gw);
    replica.stop().await;
}

/// A transformer stand-in: forwards every request to the router with the predictor's host,
/// as a KServe transformer does with `--predictor_host`.
async fn transformer(router: String, predictor_host: String) -> String {
    use hyper::service::service_fn;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let http = Http::default();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else { return };
            let (http, router, host) = (http.clone(), router.clone(), predictor_host.clone());
            tokio::spawn(async move {
                let svc = service_fn(move |req: http::Request<hyper::body::Incoming>| {
                    let (http, router, host) = (http.clone(), router.clone(), host.clone());
                    async move {
                        let method = req.method().to_string();
                        let path = req.uri().path().to_owned();
                        let body = req.into_body().collect().await?.to_bytes();
                        let a = http
                            .send(
                                &method,
                                &format!("{router}{path}"),
                                Some(&host),
                                std::str::from_utf8(&body).unwrap(),
                            )
                            .await;
                        let mut r = http::Response::new(Full::new(a.body));
                        *r.status_mut() = a.status;
                        r.headers_mut().insert(
                            "x-predictor-revision",
                            a.headers["x-oxserve-revision"].clone(),
                        );
                        Ok::<_, hyper::Error>(r)
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    url
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transformer_reaches_the_predictor_through_the_router() {
    let replica = Replica::start("chain").await;
    let (router, events) = oxserve_router::Router::new(RouterConfig::default());
    drop(events);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let router_url = format!("http://{}", listener.local_addr().unwrap());
    let predictor_host = "chain-predictor.default.example.com".to_owned();
    let t = transformer(router_url.clone(), predictor_host.clone()).await;
    let mut svc = service("chain", vec![]);
    svc.entry = ComponentRoute {
        component: "transformer".into(),
        host: "chain-transformer.default.example.com".into(),
        targets: vec![target(
            "chain-transformer-00001",
            100,
            vec![oxserve_controller::routes::Replica {
                id: "t".into(),
                http: t,
                grpc: None,
                ready: true,
            }],
        )],
    };
    svc.predictor = Some(ComponentRoute {
        component: "predictor".into(),
        host: predictor_host,
        targets: vec![target("chain-predictor-00001", 100, vec![replica.route("p", true)])],
    });
    router.update(&table(vec![svc])).unwrap();
    let r = router.clone();
    tokio::spawn(oxserve_router::serve(
        oxserve_router::Listeners { http: listener, grpc: None },
        r,
        std::future::pending(),
    ));
    let a = Http::default()
        .post(&format!("{router_url}/v2/models/chain/infer"), None, &infer_body())
        .await;
    assert_eq!(a.status, 200, "{}", a.text());
    assert_eq!(a.revision(), "chain-transformer-00001");
    assert_eq!(a.headers["x-predictor-revision"], "chain-predictor-00001");
    let metrics = router.metrics_text();
    for rev in ["chain-transformer-00001", "chain-predictor-00001"] {
        assert!(
            metrics.contains(&format!(
                r#"oxserve_router_requests_total{{revision="{rev}",code="200"}} 1"#
            )),
            "{metrics}"
        );
    }
    replica.stop().await;
}
