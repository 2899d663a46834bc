//! Test doubles: a V2 server that breaks one clause at a time. It is a proxy (REST and gRPC)
//! in front of a conforming upstream (oxserve) that rewrites requests or responses in exactly
//! one way; running the suite through it must make exactly the cases of that clause fail.

use std::collections::BTreeSet;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::Response;
use bytes::Bytes;
use oxserve_conformance::Outcome;
use oxserve_protocol::grpc::inference as pb;
use pb::grpc_inference_service_client::GrpcInferenceServiceClient;
use pb::grpc_inference_service_server::{GrpcInferenceService, GrpcInferenceServiceServer};
use serde_json::Value;
use tokio::net::TcpListener;
use tonic::transport::Channel;
use tonic::{Code, Status, Streaming};

use crate::support;

/// One clause to violate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Break {
    LiveNot200,
    UnknownModelReady200,
    ServerVersionNotString,
    ModelMetadataBadDatatype,
    MetadataErrorNotJson,
    UnknownModelMetadata400,
    DropId,
    NullModelVersion,
    IgnoreOutputsFilter,
    DropLastOutputByDefault,
    RejectNestedData,
    AcceptMalformedJson,
    ErrorsWithoutBody,
    UnknownModelInfer500,
    RejectParameters,
    Int64AsFloat,
    DropBinaryHeaderLength,
    StatisticsFrozen,
    UnloadIgnored,
    ConfigRenamed,
    HideStatisticsExtension,
    GrpcLiveFalse,
    GrpcDropId,
    GrpcAcceptMixed,
    GrpcUnknownModelInternal,
    GrpcIgnoreOutputsFilter,
    GrpcUnknownModelReady,
    ExplainExpectedValueOff,
    ExplainFlatAttributions,
    ExplainUnknownModel500,
    ExplainV1OutputValueOff,
    HideExplainExtension,
    GrpcExplainIgnored,
}

/// Each break and the cases it must fail (no more, no fewer).
fn expectations() -> Vec<(Break, &'static [&'static str])> {
    use Break::*;
    vec![
        (LiveNot200, &["rest.health.live"]),
        (UnknownModelReady200, &["rest.health.unknown-model-not-ready"]),
        (ServerVersionNotString, &["rest.metadata.server"]),
        (ModelMetadataBadDatatype, &["rest.metadata.model"]),
        (MetadataErrorNotJson, &["rest.metadata.unknown-model-error"]),
        (UnknownModelMetadata400, &["rest.metadata.unknown-model-404"]),
        (DropId, &["rest.infer.id-echo"]),
        (NullModelVersion, &["rest.infer.optional-fields"]),
        (
            IgnoreOutputsFilter,
            // Dropping the filter also drops the request for an output the model lacks.
            &["rest.infer.outputs-filter", "rest.infer.add-sub-exact", "rest.infer.unknown-output"],
        ),
        (DropLastOutputByDefault, &["rest.infer.all-outputs-default", "rest.infer.add-sub-exact"]),
        (RejectNestedData, &["rest.infer.nested-data"]),
        (AcceptMalformedJson, &["rest.infer.malformed-json", "rest.infer.invalid-400"]),
        (
            ErrorsWithoutBody,
            &[
                "rest.metadata.unknown-model-error",
                "rest.infer.malformed-json",
                "rest.infer.unknown-model",
                "rest.infer.shape-data-mismatch",
                "rest.infer.wrong-datatype",
                "rest.infer.unknown-output",
                "rest.infer.missing-input",
                "rest.repository.load-unknown",
                "rest.explain.shape-data-mismatch",
                "rest.explain.unknown-model",
            ],
        ),
        (UnknownModelInfer500, &["rest.infer.unknown-model", "rest.infer.unknown-model-404"]),
        (RejectParameters, &["rest.infer.parameters"]),
        (Int64AsFloat, &["rest.infer.datatype.int64", "rest.infer.datatype.uint64"]),
        (
            DropBinaryHeaderLength,
            &[
                "rest.binary.output",
                "rest.binary.bytes-length-prefix",
                "rest.infer.datatype.fp16",
                "rest.infer.datatype.bf16",
            ],
        ),
        (StatisticsFrozen, &["rest.statistics.model"]),
        (UnloadIgnored, &["rest.repository.round-trip"]),
        (ConfigRenamed, &["rest.config.model", "rest.config.model-versioned"]),
        (HideStatisticsExtension, &["rest.ext.advertised"]),
        (GrpcLiveFalse, &["grpc.health.server-live"]),
        (GrpcDropId, &["grpc.infer.id-echo"]),
        (GrpcAcceptMixed, &["grpc.infer.raw-and-typed-mixed-rejected"]),
        (GrpcUnknownModelInternal, &["grpc.status.unknown-model-not-found"]),
        (GrpcIgnoreOutputsFilter, &["grpc.infer.outputs-filter", "grpc.infer.add-sub-exact"]),
        (GrpcUnknownModelReady, &["grpc.health.unknown-model-not-ready"]),
        (ExplainExpectedValueOff, &["rest.explain.additivity"]),
        // Additivity is judged on the shapes, so it fails with them.
        (ExplainFlatAttributions, &["rest.explain.shapes", "rest.explain.additivity"]),
        (ExplainUnknownModel500, &["rest.explain.unknown-model"]),
        (ExplainV1OutputValueOff, &["rest.explain.v1"]),
        // The explain cases are skipped; the probe for unadvertised extensions finds it.
        (HideExplainExtension, &["rest.ext.advertised"]),
        // Without the flag a string flag is not rejected either.
        (GrpcExplainIgnored, &["grpc.explain.parameter", "grpc.explain.bad-parameter"]),
    ]
}

#[derive(Clone)]
struct Proxy {
    upstream_rest: String,
    http: reqwest::Client,
    grpc: GrpcInferenceServiceClient<Channel>,
    brk: Option<Break>,
}

fn json_of(body: &[u8]) -> Option<Value> {
    serde_json::from_slice(body).ok()
}

fn to_bytes(v: &Value) -> Bytes {
    Bytes::from(serde_json::to_vec(v).unwrap_or_default())
}

fn respond(status: u16, headers: Vec<(String, String)>, body: Bytes) -> Response {
    let mut r = Response::builder().status(status);
    for (k, v) in headers {
        r = r.header(k, v);
    }
    r.body(Body::from(body)).unwrap_or_default()
}

fn error(status: u16, msg: &str) -> Response {
    respond(
        status,
        vec![("content-type".into(), "application/json".into())],
        to_bytes(&serde_json::json!({"error": msg})),
    )
}

const UNKNOWN: &str = "conformance-no-such-model";

async fn rest_proxy(State(p): State<Arc<Proxy>>, req: Request) -> Response {
    use Break::*;
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    let mut headers: Vec<(String, String)> = req
        .headers()
        .iter()
        .filter(|(k, _)| matches!(k.as_str(), "content-type" | "inference-header-content-length"))
        .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or_default().to_owned()))
        .collect();
    let mut body = axum::body::to_bytes(req.into_body(), usize::MAX).await.unwrap_or_default();
    let is_infer = path.ends_with("/infer");
    let is_explain = path.ends_with("/explain");
    let binary = headers.iter().any(|(k, _)| k == "inference-header-content-length");
    let mut request_json = if binary { None } else { json_of(&body) };

    // Request-side breaks.
    match p.brk {
        Some(RejectNestedData) if is_infer => {
            let nested = request_json
                .as_ref()
                .and_then(|v| v["inputs"][0]["data"].as_array())
                .is_some_and(|d| d.first().is_some_and(Value::is_array));
            if nested {
                return error(400, "nested data is not supported");
            }
        }
        Some(AcceptMalformedJson) if is_infer && !binary && request_json.is_none() => {
            return respond(
                200,
                vec![],
                to_bytes(&serde_json::json!({"model_name": "x", "outputs": []})),
            );
        }
        Some(RejectParameters)
            if is_infer && request_json.as_ref().is_some_and(|v| v.get("parameters").is_some()) =>
        {
            return error(400, "unknown parameter");
        }
        Some(IgnoreOutputsFilter) if is_infer => {
            if let Some(v) = request_json.as_mut()
                && v["outputs"]
                    .as_array()
                    .is_some_and(|o| o.iter().all(|x| x.get("parameters").is_none()))
                && let Some(obj) = v.as_object_mut()
            {
                obj.remove("outputs");
                body = to_bytes(v);
            }
        }
        Some(UnknownModelInfer500) if is_infer && path.contains(UNKNOWN) => {
            return error(500, "internal");
        }
        Some(ExplainUnknownModel500) if is_explain && path.contains(UNKNOWN) => {
            return error(500, "internal");
        }
        Some(UnloadIgnored) if path.ends_with("/unload") => {
            return respond(200, vec![], Bytes::from_static(b"{}"));
        }
        _ => {}
    }
    // For binary bodies the JSON header is the first Inference-Header-Content-Length bytes.
    let header_json = headers
        .iter()
        .find(|(k, _)| k == "inference-header-content-length")
        .and_then(|(_, v)| v.parse::<usize>().ok())
        .and_then(|n| body.get(..n).and_then(json_of));
    let had_outputs =
        request_json.as_ref().or(header_json.as_ref()).is_some_and(|v| v.get("outputs").is_some());

    let url = format!("{}{}", p.upstream_rest, path);
    let mut upstream = p.http.request(method, url).body(body);
    for (k, v) in &headers {
        upstream = upstream.header(k.as_str(), v.as_str());
    }
    let Ok(resp) = upstream.send().await else { return error(502, "upstream unreachable") };
    let mut status = resp.status().as_u16();
    headers = resp
        .headers()
        .iter()
        .filter(|(k, _)| matches!(k.as_str(), "content-type" | "inference-header-content-length"))
        .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or_default().to_owned()))
        .collect();
    let mut body = resp.bytes().await.unwrap_or_default();
    let binary_response = headers.iter().any(|(k, _)| k == "inference-header-content-length");

    // Response-side breaks.
    let mut edit_json = |f: &mut dyn FnMut(&mut Value)| {
        if !binary_response && let Some(mut v) = json_of(&body) {
            f(&mut v);
            body = to_bytes(&v);
        }
    };
    match p.brk {
        Some(LiveNot200) if path == "/v2/health/live" => status = 503,
        Some(UnknownModelReady200) if path == format!("/v2/models/{UNKNOWN}/ready") => status = 200,
        Some(ServerVersionNotString) if path == "/v2" => {
            edit_json(&mut |v| v["version"] = serde_json::json!(2))
        }
        Some(HideStatisticsExtension) if path == "/v2" => edit_json(&mut |v| {
            if let Some(e) = v["extensions"].as_array_mut() {
                e.retain(|x| x != "statistics");
            }
        }),
        Some(ModelMetadataBadDatatype) if path == "/v2/models/conformance-add-sub" => {
            edit_json(&mut |v| v["inputs"][0]["datatype"] = serde_json::json!("FLOAT32"))
        }
        Some(MetadataErrorNotJson) if path == format!("/v2/models/{UNKNOWN}") => {
            body = Bytes::from_static(b"model not found")
        }
        Some(UnknownModelMetadata400) if path == format!("/v2/models/{UNKNOWN}") => status = 400,
        Some(ErrorsWithoutBody) if (400..500).contains(&status) => body = Bytes::new(),
        Some(DropId) if is_infer => edit_json(&mut |v| {
            if let Some(o) = v.as_object_mut() {
                o.remove("id");
            }
        }),
        Some(NullModelVersion) if is_infer => edit_json(&mut |v| v["model_version"] = Value::Null),
        Some(DropLastOutputByDefault) if is_infer && !had_outputs => edit_json(&mut |v| {
            if let Some(o) = v["outputs"].as_array_mut()
                && o.len() > 1
            {
                o.pop();
            }
        }),
        Some(Int64AsFloat) if is_infer => edit_json(&mut |v| {
            for o in v["outputs"].as_array_mut().into_iter().flatten() {
                if matches!(o["datatype"].as_str(), Some("INT64" | "UINT64")) {
                    for x in o["data"].as_array_mut().into_iter().flatten() {
                        *x = serde_json::json!(x.as_f64().unwrap_or(0.0));
                    }
                }
            }
        }),
        Some(DropBinaryHeaderLength) if binary_response => {
            headers.retain(|(k, _)| k != "inference-header-content-length")
        }
        Some(StatisticsFrozen) if path.ends_with("/stats") => edit_json(&mut |v| {
            for e in v["model_stats"].as_array_mut().into_iter().flatten() {
                e["inference_count"] = serde_json::json!(0);
            }
        }),
        Some(ConfigRenamed) if path.ends_with("/config") => {
            edit_json(&mut |v| v["name"] = serde_json::json!("renamed"))
        }
        Some(ExplainExpectedValueOff) if is_explain => edit_json(&mut |v| {
            for o in v["outputs"].as_array_mut().into_iter().flatten() {
                if o["name"] == "expected_value" {
                    for x in o["data"].as_array_mut().into_iter().flatten() {
                        *x = serde_json::json!(x.as_f64().unwrap_or(0.0) + 1.0);
                    }
                }
            }
        }),
        Some(ExplainFlatAttributions) if is_explain => edit_json(&mut |v| {
            for o in v["outputs"].as_array_mut().into_iter().flatten() {
                let flat = o["shape"]
                    .as_array()
                    .filter(|_| o["name"].as_str().is_some_and(|n| n.ends_with("_attributions")))
                    .map(|s| {
                        let d: Vec<i64> = s.iter().filter_map(Value::as_i64).collect();
                        serde_json::json!([d[0], d[1..].iter().product::<i64>()])
                    });
                if let Some(flat) = flat {
                    o["shape"] = flat;
                }
            }
        }),
        Some(ExplainV1OutputValueOff) if path.ends_with(":explain") => edit_json(&mut |v| {
            for e in v["explanations"].as_array_mut().into_iter().flatten() {
                for x in e["output_value"].as_array_mut().into_iter().flatten() {
                    *x = serde_json::json!(x.as_f64().unwrap_or(0.0) + 1.0);
                }
            }
        }),
        Some(HideExplainExtension) if path == "/v2" => edit_json(&mut |v| {
            if let Some(e) = v["extensions"].as_array_mut() {
                e.retain(|x| x != "explain");
            }
        }),
        _ => {}
    }
    respond(status, headers, body)
}

type Res<T> = Result<tonic::Response<T>, Status>;

#[tonic::async_trait]
impl GrpcInferenceService for Proxy {
    async fn server_live(
        &self,
        r: tonic::Request<pb::ServerLiveRequest>,
    ) -> Res<pb::ServerLiveResponse> {
        let mut resp = self.grpc.clone().server_live(r.into_inner()).await?;
        if self.brk == Some(Break::GrpcLiveFalse) {
            resp.get_mut().live = false;
        }
        Ok(resp)
    }
    async fn server_ready(
        &self,
        r: tonic::Request<pb::ServerReadyRequest>,
    ) -> Res<pb::ServerReadyResponse> {
        self.grpc.clone().server_ready(r.into_inner()).await
    }
    async fn model_ready(
        &self,
        r: tonic::Request<pb::ModelReadyRequest>,
    ) -> Res<pb::ModelReadyResponse> {
        let req = r.into_inner();
        if self.brk == Some(Break::GrpcUnknownModelReady) && req.name == UNKNOWN {
            return Ok(tonic::Response::new(pb::ModelReadyResponse { ready: true }));
        }
        self.grpc.clone().model_ready(req).await
    }
    async fn server_metadata(
        &self,
        r: tonic::Request<pb::ServerMetadataRequest>,
    ) -> Res<pb::ServerMetadataResponse> {
        self.grpc.clone().server_metadata(r.into_inner()).await
    }
    async fn model_metadata(
        &self,
        r: tonic::Request<pb::ModelMetadataRequest>,
    ) -> Res<pb::ModelMetadataResponse> {
        self.grpc.clone().model_metadata(r.into_inner()).await.map_err(|s| self.status(s))
    }
    async fn model_infer(
        &self,
        r: tonic::Request<pb::ModelInferRequest>,
    ) -> Res<pb::ModelInferResponse> {
        let mut req = r.into_inner();
        match self.brk {
            Some(Break::GrpcAcceptMixed) if !req.raw_input_contents.is_empty() => {
                for i in &mut req.inputs {
                    i.contents = None;
                }
            }
            Some(Break::GrpcIgnoreOutputsFilter) => req.outputs.clear(),
            Some(Break::GrpcExplainIgnored) => {
                req.parameters.remove("explain");
            }
            _ => {}
        }
        let mut resp = self.grpc.clone().model_infer(req).await.map_err(|s| self.status(s))?;
        if self.brk == Some(Break::GrpcDropId) {
            resp.get_mut().id.clear();
        }
        Ok(resp)
    }
    type ModelStreamInferStream =
        futures::stream::Empty<Result<pb::ModelStreamInferResponse, Status>>;
    async fn model_stream_infer(
        &self,
        _r: tonic::Request<Streaming<pb::ModelInferRequest>>,
    ) -> Res<Self::ModelStreamInferStream> {
        Err(Status::unimplemented("not proxied"))
    }
    async fn model_config(
        &self,
        r: tonic::Request<pb::ModelConfigRequest>,
    ) -> Res<pb::ModelConfigResponse> {
        self.grpc.clone().model_config(r.into_inner()).await
    }
    async fn model_statistics(
        &self,
        r: tonic::Request<pb::ModelStatisticsRequest>,
    ) -> Res<pb::ModelStatisticsResponse> {
        self.grpc.clone().model_statistics(r.into_inner()).await
    }
    async fn repository_index(
        &self,
        r: tonic::Request<pb::RepositoryIndexRequest>,
    ) -> Res<pb::RepositoryIndexResponse> {
        self.grpc.clone().repository_index(r.into_inner()).await
    }
    async fn repository_model_load(
        &self,
        r: tonic::Request<pb::RepositoryModelLoadRequest>,
    ) -> Res<pb::RepositoryModelLoadResponse> {
        self.grpc.clone().repository_model_load(r.into_inner()).await
    }
    async fn repository_model_unload(
        &self,
        r: tonic::Request<pb::RepositoryModelUnloadRequest>,
    ) -> Res<pb::RepositoryModelUnloadResponse> {
        self.grpc.clone().repository_model_unload(r.into_inner()).await
    }
}

impl Proxy {
    fn status(&self, s: Status) -> Status {
        if self.brk == Some(Break::GrpcUnknownModelInternal) && s.code() == Code::NotFound {
            return Status::internal(s.message().to_owned());
        }
        s
    }
}

/// A proxy listening on loopback, stopped when dropped.
struct Running {
    rest: String,
    grpc: String,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Drop for Running {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

async fn start_proxy(upstream: &support::Oxserve, brk: Option<Break>) -> Running {
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{}", upstream.grpc))
        .expect("upstream gRPC address")
        .connect_lazy();
    let proxy = Arc::new(Proxy {
        upstream_rest: upstream.rest.clone(),
        http: reqwest::Client::new(),
        grpc: GrpcInferenceServiceClient::new(channel).max_decoding_message_size(64 << 20),
        brk,
    });
    let http = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy REST");
    let grpc = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy gRPC");
    let rest = format!("http://{}", http.local_addr().expect("address"));
    let grpc_addr = grpc.local_addr().expect("address").to_string();
    let app = axum::Router::new().fallback(rest_proxy).with_state(proxy.clone());
    let rest_task = tokio::spawn(async move {
        let _ = axum::serve(http, app).await;
    });
    let service = GrpcInferenceServiceServer::from_arc(proxy);
    let grpc_task = tokio::spawn(async move {
        let incoming = tokio_stream::wrappers::TcpListenerStream::new(grpc);
        let _ = tonic::transport::Server::builder()
            .add_service(service)
            .serve_with_incoming(incoming)
            .await;
    });
    Running { rest, grpc: grpc_addr, tasks: vec![rest_task, grpc_task] }
}

fn failed(report: &oxserve_conformance::Report) -> BTreeSet<String> {
    report
        .results
        .iter()
        .filter(|r| matches!(r.outcome, Outcome::Fail(_)))
        .map(|r| r.id.clone())
        .collect()
}

/// Through a proxy that breaks nothing every case passes; through each broken proxy exactly
/// the cases of the broken clause fail.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_broken_clause_fails_exactly_its_cases() {
    let upstream = support::Oxserve::start().await;
    let mut problems = Vec::new();

    let clean = start_proxy(&upstream, None).await;
    let report = support::run_suite(&clean.rest, Some(&clean.grpc)).await;
    let unexpected: Vec<String> = report
        .results
        .iter()
        .filter(|r| r.outcome != Outcome::Pass)
        .map(|r| format!("{} {}", r.id, r.outcome.reason()))
        .collect();
    if !unexpected.is_empty() {
        problems.push(format!("through a clean proxy: {unexpected:?}"));
    }
    drop(clean);

    for (brk, expected) in expectations() {
        let proxy = start_proxy(&upstream, Some(brk)).await;
        let report = support::run_suite(&proxy.rest, Some(&proxy.grpc)).await;
        let got = failed(&report);
        let want: BTreeSet<String> = expected.iter().map(|s| (*s).to_owned()).collect();
        if got != want {
            let extra: Vec<_> = got
                .difference(&want)
                .map(|id| {
                    let reason = report
                        .result(id)
                        .map(|r| r.outcome.reason().to_owned())
                        .unwrap_or_default();
                    format!("{id} ({reason})")
                })
                .collect();
            let missing: Vec<_> = want.difference(&got).collect();
            problems.push(format!("{brk:?}: unexpected failures {extra:?}, cases that should have failed but did not {missing:?}"));
        }
        drop(proxy);
    }
    upstream.stop().await;
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}
