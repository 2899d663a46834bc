//! gRPC core cases: every core RPC, typed and raw tensor contents (never mixed), `id`,
//! `outputs`, parameters, and status codes of failures.

use std::collections::BTreeMap;

use bytes::Bytes;
use oxserve_protocol::grpc::inference::infer_parameter::ParameterChoice;
use oxserve_protocol::grpc::inference::model_infer_request::{
    InferInputTensor, InferRequestedOutputTensor,
};
use oxserve_protocol::grpc::inference::{
    InferParameter, InferTensorContents, ModelInferRequest, ModelInferResponse,
    ModelMetadataRequest, ModelReadyRequest, ServerLiveRequest, ServerMetadataRequest,
    ServerReadyRequest,
};
use oxserve_protocol::raw::{decode_raw, encode_raw_vec};
use oxserve_protocol::{DataType, TensorData};
use tonic::Code;

use super::{Input, UNKNOWN_MODEL, synth_inputs};
use crate::catalog::{Case, Checked, Level, Stop, Transport, check};
use crate::context::Ctx;
use crate::{ensure, fail, skip};

const HEALTH: &str = "GRPC: Health";
const SERVER_META: &str = "GRPC: Server Metadata";
const MODEL_META: &str = "GRPC: Model Metadata";
const INFER: &str = "GRPC: Inference";
const TENSOR_DATA: &str = "GRPC: Tensor Data";
const PARAMETERS: &str = "GRPC: Parameters";

macro_rules! case {
    ($id:expr, $level:expr, $section:expr, $clause:expr, $f:path) => {
        Case::new($id, $level, Transport::Grpc, $section, $clause, check(|ctx| Box::pin($f(ctx))))
    };
}

/// The gRPC core cases.
pub fn cases() -> Vec<Case> {
    use Level::{Must, Should};
    vec![
        case!(
            "grpc.health.server-live",
            Must,
            HEALTH,
            "ServerLive answers OK with live = true",
            server_live
        ),
        case!(
            "grpc.health.server-ready",
            Must,
            HEALTH,
            "ServerReady answers OK with ready = true",
            server_ready
        ),
        case!(
            "grpc.health.model-ready",
            Must,
            HEALTH,
            "ModelReady answers OK with ready = true for a ready model",
            model_ready
        ),
        case!(
            "grpc.health.model-ready-versioned",
            Must,
            HEALTH,
            "ModelReady with a version answers ready = true for a ready version",
            model_ready_versioned
        ),
        case!(
            "grpc.health.unknown-model-not-ready",
            Must,
            HEALTH,
            "ModelReady for a model the server does not have never answers ready = true (an error status or ready = false)",
            unknown_model_not_ready
        ),
        case!(
            "grpc.metadata.server",
            Must,
            SERVER_META,
            "ServerMetadata answers OK with a non-empty name and version",
            server_metadata
        ),
        case!(
            "grpc.metadata.model",
            Must,
            MODEL_META,
            "ModelMetadata answers the model's name, platform and inputs/outputs with valid datatypes",
            model_metadata
        ),
        case!(
            "grpc.metadata.unknown-model",
            Must,
            MODEL_META,
            "ModelMetadata for a model the server does not have answers a non-OK status",
            unknown_model_metadata
        ),
        case!(
            "grpc.status.unknown-model-not-found",
            Should,
            MODEL_META,
            "ModelMetadata and ModelInfer for a model the server does not have answer NOT_FOUND",
            unknown_model_not_found
        ),
        case!(
            "grpc.infer.typed",
            Must,
            TENSOR_DATA,
            "ModelInfer with typed InferTensorContents answers OK with well-formed outputs (typed, or raw_output_contents) naming the model",
            infer_typed
        ),
        case!(
            "grpc.infer.raw",
            Must,
            TENSOR_DATA,
            "ModelInfer with raw_input_contents (little-endian, one entry per input) answers OK with well-formed outputs",
            infer_raw
        ),
        case!(
            "grpc.infer.typed-and-raw-agree",
            Should,
            TENSOR_DATA,
            "the same inputs sent typed and raw give the same outputs",
            infer_typed_raw_agree
        ),
        case!(
            "grpc.infer.raw-and-typed-mixed-rejected",
            Should,
            TENSOR_DATA,
            "a request with raw_input_contents and typed contents at once is rejected with INVALID_ARGUMENT",
            infer_mixed_rejected
        ),
        case!(
            "grpc.infer.versioned",
            Must,
            INFER,
            "ModelInfer with model_version set answers like without it",
            infer_versioned
        ),
        case!(
            "grpc.infer.id-echo",
            Must,
            INFER,
            "the response carries the request's id unchanged",
            infer_id_echo
        ),
        case!(
            "grpc.infer.all-outputs-default",
            Must,
            INFER,
            "without requested outputs the response holds every output of the model",
            infer_all_outputs
        ),
        case!(
            "grpc.infer.outputs-filter",
            Must,
            INFER,
            "with requested outputs the response holds exactly those",
            infer_outputs_filter
        ),
        case!(
            "grpc.infer.parameters",
            Must,
            PARAMETERS,
            "request and input parameters (bool, int64, string) are accepted",
            infer_parameters
        ),
        case!(
            "grpc.infer.unknown-model",
            Must,
            INFER,
            "ModelInfer for a model the server does not have answers a non-OK status",
            infer_unknown_model
        ),
        case!(
            "grpc.infer.shape-data-mismatch",
            Must,
            TENSOR_DATA,
            "an input whose contents hold fewer elements than its shape needs is rejected with a non-OK status",
            infer_shape_mismatch
        ),
        case!(
            "grpc.status.invalid-argument",
            Should,
            INFER,
            "a malformed request (shape/contents mismatch, mixed raw and typed) answers INVALID_ARGUMENT",
            infer_invalid_argument
        ),
    ]
}

fn status_text(s: &tonic::Status) -> String {
    format!("{:?}: {}", s.code(), s.message())
}

fn rpc_fail(rpc: &str) -> impl Fn(tonic::Status) -> Stop + '_ {
    move |s| Stop::Fail(format!("{rpc} answered {}", status_text(&s)))
}

async fn server_live(ctx: &Ctx) -> Checked {
    let r = ctx.grpc()?.server_live(ServerLiveRequest {}).await.map_err(rpc_fail("ServerLive"))?;
    ensure!(r.get_ref().live, "ServerLive answered live = false");
    Ok(())
}

async fn server_ready(ctx: &Ctx) -> Checked {
    let r =
        ctx.grpc()?.server_ready(ServerReadyRequest {}).await.map_err(rpc_fail("ServerReady"))?;
    ensure!(r.get_ref().ready, "ServerReady answered ready = false");
    Ok(())
}

async fn model_ready(ctx: &Ctx) -> Checked {
    let req = ModelReadyRequest { name: ctx.model_name.clone(), version: String::new() };
    let r = ctx.grpc()?.model_ready(req).await.map_err(rpc_fail("ModelReady"))?;
    ensure!(r.get_ref().ready, "ModelReady answered ready = false");
    Ok(())
}

async fn model_ready_versioned(ctx: &Ctx) -> Checked {
    let Some(version) = ctx.model()?.version.clone() else {
        skip!("the model metadata lists no versions");
    };
    let req = ModelReadyRequest { name: ctx.model_name.clone(), version };
    let r = ctx.grpc()?.model_ready(req).await.map_err(rpc_fail("ModelReady"))?;
    ensure!(r.get_ref().ready, "ModelReady answered ready = false");
    Ok(())
}

async fn unknown_model_not_ready(ctx: &Ctx) -> Checked {
    let req = ModelReadyRequest { name: UNKNOWN_MODEL.into(), version: String::new() };
    match ctx.grpc()?.model_ready(req).await {
        Ok(r) if r.get_ref().ready => {
            fail!("ModelReady answered ready = true for an unknown model")
        }
        _ => Ok(()),
    }
}

async fn server_metadata(ctx: &Ctx) -> Checked {
    let r = ctx
        .grpc()?
        .server_metadata(ServerMetadataRequest {})
        .await
        .map_err(rpc_fail("ServerMetadata"))?;
    let m = r.get_ref();
    ensure!(
        !m.name.is_empty() && !m.version.is_empty(),
        "name {:?} or version {:?} is empty",
        m.name,
        m.version
    );
    Ok(())
}

async fn model_metadata(ctx: &Ctx) -> Checked {
    let req = ModelMetadataRequest { name: ctx.model_name.clone(), version: String::new() };
    let r = ctx.grpc()?.model_metadata(req).await.map_err(rpc_fail("ModelMetadata"))?;
    let m = r.get_ref();
    ensure!(m.name == ctx.model_name, "name is {:?}, expected {:?}", m.name, ctx.model_name);
    ensure!(!m.inputs.is_empty(), "the metadata lists no inputs");
    for t in m.inputs.iter().chain(&m.outputs) {
        ensure!(
            t.datatype.parse::<DataType>().is_ok(),
            "tensor {:?} has invalid datatype {:?}",
            t.name,
            t.datatype
        );
    }
    Ok(())
}

async fn unknown_model_metadata(ctx: &Ctx) -> Checked {
    let req = ModelMetadataRequest { name: UNKNOWN_MODEL.into(), version: String::new() };
    match ctx.grpc()?.model_metadata(req).await {
        Ok(_) => fail!("ModelMetadata answered OK for an unknown model"),
        Err(_) => Ok(()),
    }
}

async fn unknown_model_not_found(ctx: &Ctx) -> Checked {
    let req = ModelMetadataRequest { name: UNKNOWN_MODEL.into(), version: String::new() };
    match ctx.grpc()?.model_metadata(req).await {
        Ok(_) => fail!("ModelMetadata answered OK for an unknown model"),
        Err(s) if s.code() != Code::NotFound => fail!("ModelMetadata answered {}", status_text(&s)),
        Err(_) => {}
    }
    let mut req = typed_request(ctx)?;
    req.model_name = UNKNOWN_MODEL.into();
    match ctx.grpc()?.model_infer(req).await {
        Ok(_) => fail!("ModelInfer answered OK for an unknown model"),
        Err(s) if s.code() != Code::NotFound => fail!("ModelInfer answered {}", status_text(&s)),
        Err(_) => Ok(()),
    }
}

/// Typed contents for `data`; `None` for FP16 and BF16, which have no typed field.
pub fn typed_contents(data: &TensorData) -> Option<InferTensorContents> {
    let mut c = InferTensorContents::default();
    match data {
        TensorData::Bool(v) => c.bool_contents = v.clone(),
        TensorData::Uint8(v) => c.uint_contents = v.iter().map(|&x| x.into()).collect(),
        TensorData::Uint16(v) => c.uint_contents = v.iter().map(|&x| x.into()).collect(),
        TensorData::Uint32(v) => c.uint_contents = v.clone(),
        TensorData::Uint64(v) => c.uint64_contents = v.clone(),
        TensorData::Int8(v) => c.int_contents = v.iter().map(|&x| x.into()).collect(),
        TensorData::Int16(v) => c.int_contents = v.iter().map(|&x| x.into()).collect(),
        TensorData::Int32(v) => c.int_contents = v.clone(),
        TensorData::Int64(v) => c.int64_contents = v.clone(),
        TensorData::Fp32(v) => c.fp32_contents = v.clone(),
        TensorData::Fp64(v) => c.fp64_contents = v.clone(),
        TensorData::Bytes(v) => c.bytes_contents = v.clone(),
        TensorData::Fp16(_) | TensorData::Bf16(_) => return None,
    }
    Some(c)
}

/// Decodes typed contents of `datatype`, refusing values out of the datatype's range.
pub fn data_from_contents(
    datatype: DataType,
    c: &InferTensorContents,
) -> Result<TensorData, String> {
    fn narrow<A: Copy, B: TryFrom<A>>(v: &[A], dt: DataType) -> Result<Vec<B>, String> {
        v.iter()
            .map(|&x| B::try_from(x).map_err(|_| format!("a value is out of range for {dt}")))
            .collect()
    }
    Ok(match datatype {
        DataType::Bool => TensorData::Bool(c.bool_contents.clone()),
        DataType::Uint8 => TensorData::Uint8(narrow(&c.uint_contents, datatype)?),
        DataType::Uint16 => TensorData::Uint16(narrow(&c.uint_contents, datatype)?),
        DataType::Uint32 => TensorData::Uint32(c.uint_contents.clone()),
        DataType::Uint64 => TensorData::Uint64(c.uint64_contents.clone()),
        DataType::Int8 => TensorData::Int8(narrow(&c.int_contents, datatype)?),
        DataType::Int16 => TensorData::Int16(narrow(&c.int_contents, datatype)?),
        DataType::Int32 => TensorData::Int32(c.int_contents.clone()),
        DataType::Int64 => TensorData::Int64(c.int64_contents.clone()),
        DataType::Fp32 => TensorData::Fp32(c.fp32_contents.clone()),
        DataType::Fp64 => TensorData::Fp64(c.fp64_contents.clone()),
        DataType::Bytes => TensorData::Bytes(c.bytes_contents.clone()),
        DataType::Fp16 | DataType::Bf16 => {
            return Err(format!("{datatype} has no typed contents field"));
        }
    })
}

/// An output of a gRPC response, decoded.
#[derive(Debug, Clone)]
pub struct GrpcOutput {
    /// Name.
    pub name: String,
    /// Datatype.
    pub datatype: DataType,
    /// Shape.
    pub shape: Vec<i64>,
    /// Values.
    pub data: TensorData,
}

/// Checks a `ModelInferResponse` (valid datatypes and shapes; typed or raw contents, never
/// both; element counts that match shapes) and decodes its outputs.
pub fn decode_response(resp: &ModelInferResponse) -> Result<Vec<GrpcOutput>, Stop> {
    let fail = |m: String| Stop::Fail(format!("ModelInfer response: {m}"));
    let raw = !resp.raw_output_contents.is_empty();
    if raw && resp.raw_output_contents.len() != resp.outputs.len() {
        return Err(fail(format!(
            "{} raw_output_contents entries for {} outputs",
            resp.raw_output_contents.len(),
            resp.outputs.len()
        )));
    }
    let mut out = Vec::new();
    for (i, o) in resp.outputs.iter().enumerate() {
        let datatype: DataType = o.datatype.parse().map_err(|_| {
            fail(format!("output {:?} has invalid datatype {:?}", o.name, o.datatype))
        })?;
        let data = if raw {
            // An empty contents message carries no data; only data next to raw is mixing.
            if o.contents.as_ref().is_some_and(|c| *c != InferTensorContents::default()) {
                return Err(fail(format!(
                    "output {:?} has typed contents next to raw_output_contents",
                    o.name
                )));
            }
            decode_raw(&o.name, datatype, &o.shape, &resp.raw_output_contents[i])
                .map_err(|e| fail(e.to_string()))?
        } else {
            let contents = o.contents.clone().unwrap_or_default();
            let data = data_from_contents(datatype, &contents)
                .map_err(|e| fail(format!("output {:?}: {e}", o.name)))?;
            let want = crate::synth::element_count(&o.shape);
            if o.shape.iter().any(|&d| d < 0) || data.len() != want {
                return Err(fail(format!(
                    "output {:?} has shape {:?} ({want} elements) but {} typed elements",
                    o.name,
                    o.shape,
                    data.len()
                )));
            }
            data
        };
        out.push(GrpcOutput { name: o.name.clone(), datatype, shape: o.shape.clone(), data });
    }
    Ok(out)
}

/// A request for `model` carrying `inputs` typed (or raw when `raw`).
pub fn request_for(model: &str, inputs: &[Input], raw: bool) -> Result<ModelInferRequest, Stop> {
    let mut req = ModelInferRequest { model_name: model.to_owned(), ..Default::default() };
    for i in inputs {
        let contents = if raw {
            req.raw_input_contents.push(Bytes::from(encode_raw_vec(&i.data)));
            None
        } else {
            match typed_contents(&i.data) {
                Some(c) => Some(c),
                None => skip!("input {:?} is {}, which only travels raw", i.name, i.datatype),
            }
        };
        req.inputs.push(InferInputTensor {
            name: i.name.clone(),
            datatype: i.datatype.as_str().to_owned(),
            shape: i.shape.clone(),
            parameters: BTreeMap::new(),
            contents,
        });
    }
    Ok(req)
}

/// A request for the model under test: typed, unless an input only travels raw.
fn typed_request(ctx: &Ctx) -> Result<ModelInferRequest, Stop> {
    let inputs = synth_inputs(ctx.model()?)?;
    let raw = inputs.iter().any(|i| i.datatype.is_raw_only());
    request_for(&ctx.model_name, &inputs, raw)
}

async fn infer(
    ctx: &Ctx,
    req: ModelInferRequest,
) -> Result<(ModelInferResponse, Vec<GrpcOutput>), Stop> {
    let resp = ctx.grpc()?.model_infer(req).await.map_err(rpc_fail("ModelInfer"))?.into_inner();
    let outputs = decode_response(&resp)?;
    Ok((resp, outputs))
}

async fn infer_typed(ctx: &Ctx) -> Checked {
    let inputs = synth_inputs(ctx.model()?)?;
    let req = request_for(&ctx.model_name, &inputs, false)?;
    let (resp, outputs) = infer(ctx, req).await?;
    ensure!(
        resp.model_name == ctx.model_name,
        "model_name is {:?}, expected {:?}",
        resp.model_name,
        ctx.model_name
    );
    ensure!(!outputs.is_empty(), "the response has no outputs");
    Ok(())
}

async fn infer_raw(ctx: &Ctx) -> Checked {
    let inputs = synth_inputs(ctx.model()?)?;
    let req = request_for(&ctx.model_name, &inputs, true)?;
    let (resp, outputs) = infer(ctx, req).await?;
    ensure!(
        resp.model_name == ctx.model_name,
        "model_name is {:?}, expected {:?}",
        resp.model_name,
        ctx.model_name
    );
    ensure!(!outputs.is_empty(), "the response has no outputs");
    Ok(())
}

async fn infer_typed_raw_agree(ctx: &Ctx) -> Checked {
    let inputs = synth_inputs(ctx.model()?)?;
    let (_, typed) = infer(ctx, request_for(&ctx.model_name, &inputs, false)?).await?;
    let (_, raw) = infer(ctx, request_for(&ctx.model_name, &inputs, true)?).await?;
    for t in &typed {
        let Some(r) = raw.iter().find(|r| r.name == t.name) else {
            fail!("output {:?} is missing from the raw response", t.name);
        };
        ensure!(
            t.data == r.data && t.shape == r.shape,
            "output {:?} differs between typed and raw requests",
            t.name
        );
    }
    Ok(())
}

/// The request with typed contents and raw_input_contents at once.
fn mixed_request(ctx: &Ctx) -> Result<ModelInferRequest, Stop> {
    let inputs = synth_inputs(ctx.model()?)?;
    if inputs.iter().any(|i| i.datatype.is_raw_only()) {
        skip!("an input only travels raw, so a typed half cannot be built");
    }
    let mut req = request_for(&ctx.model_name, &inputs, false)?;
    req.raw_input_contents = inputs.iter().map(|i| Bytes::from(encode_raw_vec(&i.data))).collect();
    Ok(req)
}

async fn infer_mixed_rejected(ctx: &Ctx) -> Checked {
    let req = mixed_request(ctx)?;
    match ctx.grpc()?.model_infer(req).await {
        Ok(_) => {
            fail!("ModelInfer accepted a request with both typed contents and raw_input_contents")
        }
        Err(s) if s.code() != Code::InvalidArgument => {
            fail!("ModelInfer answered {} (expected INVALID_ARGUMENT)", status_text(&s))
        }
        Err(_) => Ok(()),
    }
}

async fn infer_versioned(ctx: &Ctx) -> Checked {
    let Some(version) = ctx.model()?.version.clone() else {
        skip!("the model metadata lists no versions");
    };
    let mut req = typed_request(ctx)?;
    req.model_version = version;
    let (resp, outputs) = infer(ctx, req).await?;
    ensure!(resp.model_name == ctx.model_name, "model_name is {:?}", resp.model_name);
    ensure!(!outputs.is_empty(), "the response has no outputs");
    Ok(())
}

async fn infer_id_echo(ctx: &Ctx) -> Checked {
    // ASCII first, then non-ASCII (the id is any string), so the report tells them apart.
    for id in super::ECHO_IDS {
        let mut req = typed_request(ctx)?;
        req.id = id.to_owned();
        let resp = ctx.grpc()?.model_infer(req).await.map_err(|s| {
            Stop::Fail(format!("ModelInfer with id {id:?} answered {}", status_text(&s)))
        })?;
        let got = &resp.get_ref().id;
        ensure!(got == id, "id is {got:?}, expected {id:?}");
    }
    Ok(())
}

async fn infer_all_outputs(ctx: &Ctx) -> Checked {
    let model = ctx.model()?;
    if model.outputs.is_empty() {
        skip!("the model metadata declares no outputs to compare with");
    }
    let (_, outputs) = infer(ctx, typed_request(ctx)?).await?;
    let names: Vec<&str> = outputs.iter().map(|o| o.name.as_str()).collect();
    for o in &model.outputs {
        ensure!(
            names.contains(&o.name.as_str()),
            "output {:?} is missing; the response has {names:?}",
            o.name
        );
    }
    Ok(())
}

async fn infer_outputs_filter(ctx: &Ctx) -> Checked {
    let Some(last) = ctx.model()?.outputs.last() else {
        skip!("the model metadata declares no outputs to request");
    };
    let mut req = typed_request(ctx)?;
    req.outputs =
        vec![InferRequestedOutputTensor { name: last.name.clone(), parameters: BTreeMap::new() }];
    let (_, outputs) = infer(ctx, req).await?;
    let names: Vec<&str> = outputs.iter().map(|o| o.name.as_str()).collect();
    ensure!(names == [last.name.as_str()], "requested only {:?}, got {names:?}", last.name);
    Ok(())
}

fn param(choice: ParameterChoice) -> InferParameter {
    InferParameter { parameter_choice: Some(choice) }
}

async fn infer_parameters(ctx: &Ctx) -> Checked {
    let params = BTreeMap::from([
        ("conformance_tag".to_owned(), param(ParameterChoice::StringParam("probe".into()))),
        ("conformance_count".to_owned(), param(ParameterChoice::Int64Param(3))),
        ("conformance_flag".to_owned(), param(ParameterChoice::BoolParam(true))),
    ]);
    let mut req = typed_request(ctx)?;
    req.parameters = params.clone();
    for i in &mut req.inputs {
        i.parameters = params.clone();
    }
    infer(ctx, req).await?;
    Ok(())
}

async fn infer_unknown_model(ctx: &Ctx) -> Checked {
    let mut req = typed_request(ctx)?;
    req.model_name = UNKNOWN_MODEL.into();
    match ctx.grpc()?.model_infer(req).await {
        Ok(_) => fail!("ModelInfer answered OK for an unknown model"),
        Err(_) => Ok(()),
    }
}

/// The typed request with the first input's shape doubled in dimension 0 (contents unchanged).
fn mismatched_request(ctx: &Ctx) -> Result<ModelInferRequest, Stop> {
    let mut req = typed_request(ctx)?;
    let first = &mut req.inputs[0];
    match first.shape.first_mut() {
        Some(d) => *d *= 2,
        None => first.shape = vec![2],
    }
    Ok(req)
}

async fn infer_shape_mismatch(ctx: &Ctx) -> Checked {
    let req = mismatched_request(ctx)?;
    match ctx.grpc()?.model_infer(req).await {
        Ok(_) => {
            fail!("ModelInfer accepted an input whose contents are half of what its shape needs")
        }
        Err(_) => Ok(()),
    }
}

async fn infer_invalid_argument(ctx: &Ctx) -> Checked {
    let req = mismatched_request(ctx)?;
    match ctx.grpc()?.model_infer(req).await {
        Ok(_) => {
            fail!("ModelInfer accepted an input whose contents are half of what its shape needs")
        }
        Err(s) if s.code() != Code::InvalidArgument => fail!(
            "shape/contents mismatch answered {} (expected INVALID_ARGUMENT)",
            status_text(&s)
        ),
        Err(_) => Ok(()),
    }
}
