//! Extension cases, run when the server advertises the extension in `GET /v2`: binary tensor
//! data (inputs, outputs, BYTES length prefixes, raw single-input bodies), model repository
//! (index, load/unload round trip), statistics and model configuration; plus a SHOULD case
//! that reports extensions a server implements without advertising them (the explain
//! extension's own cases are in [`super::explain`]).

use std::collections::BTreeMap;

use oxserve_protocol::grpc::inference::{
    ModelConfigRequest, ModelStatisticsRequest, RepositoryIndexRequest,
};
use oxserve_protocol::raw::{decode_raw, encode_raw_vec};
use oxserve_protocol::{DataType, TensorData};
use serde_json::{Value, json};

use super::{
    Input, RestResponse, UNKNOWN_MODEL, json_request, model_path, parse_rest_response, synth_inputs,
};
use crate::catalog::{Case, Checked, Level, Stop, Transport, check};
use crate::context::{Ctx, ModelInfo};
use crate::http::HttpResponse;
use crate::{ensure, fail, reference, skip, synth};

/// Name of the binary tensor data extension.
pub const BINARY: &str = "binary_tensor_data";
/// Name of the model repository extension.
pub const REPOSITORY: &str = "model_repository";
/// Name of the statistics extension.
pub const STATISTICS: &str = "statistics";
/// Name of the model configuration extension.
pub const CONFIG: &str = "model_configuration";

const BINARY_DOC: &str = "Binary Tensor Data extension";
const REPOSITORY_DOC: &str = "Model Repository extension";
const STATISTICS_DOC: &str = "Statistics extension";
const CONFIG_DOC: &str = "Model Configuration extension";

/// The header that gives the length of the JSON part of a binary body.
pub const HEADER_LENGTH: &str = "inference-header-content-length";

macro_rules! case {
    ($id:expr, $level:expr, $transport:expr, $section:expr, $clause:expr, $f:path) => {
        Case::new($id, $level, $transport, $section, $clause, check(|ctx| Box::pin($f(ctx))))
    };
}

/// The extension cases (state-changing repository cases last).
pub fn cases() -> Vec<Case> {
    use Transport::{Grpc, Rest};
    let b = Level::Extension(BINARY);
    let r = Level::Extension(REPOSITORY);
    let s = Level::Extension(STATISTICS);
    let c = Level::Extension(CONFIG);
    vec![
        case!(
            "rest.ext.advertised",
            Level::Should,
            Rest,
            "REST: Server Metadata",
            "extensions the server implements are listed in server metadata \"extensions\" (probes each known extension that is not listed)",
            unadvertised
        ),
        case!(
            "rest.binary.input",
            b,
            Rest,
            BINARY_DOC,
            "inputs may travel as raw bytes after the JSON header (binary_data_size parameter, Inference-Header-Content-Length) with the same result as JSON data",
            binary_input
        ),
        case!(
            "rest.binary.output",
            b,
            Rest,
            BINARY_DOC,
            "outputs requested with binary_data: true come back as raw bytes after the JSON header, sized by binary_data_size, with the header length in Inference-Header-Content-Length",
            binary_output
        ),
        case!(
            "rest.binary.bytes-length-prefix",
            b,
            Rest,
            BINARY_DOC,
            "BYTES elements in binary data are each a 4-byte little-endian length followed by the bytes, in both directions",
            binary_bytes
        ),
        case!(
            "rest.binary.raw-single-input",
            b,
            Rest,
            BINARY_DOC,
            "with Inference-Header-Content-Length: 0 the whole body is the raw data of the model's only input",
            binary_raw_single_input
        ),
        case!(
            "rest.statistics.model",
            s,
            Rest,
            STATISTICS_DOC,
            "GET /v2/models/{m}/stats answers {\"model_stats\": [...]} with the model's entry, whose inference_count grows with each inference",
            statistics_model
        ),
        case!(
            "rest.statistics.all",
            s,
            Rest,
            STATISTICS_DOC,
            "GET /v2/models/stats answers {\"model_stats\": [...]} including the model",
            statistics_all
        ),
        case!(
            "grpc.statistics.model",
            s,
            Grpc,
            STATISTICS_DOC,
            "ModelStatistics answers the model's entry",
            grpc_statistics
        ),
        case!(
            "rest.config.model",
            c,
            Rest,
            CONFIG_DOC,
            "GET /v2/models/{m}/config answers the model configuration object named after the model",
            config_model
        ),
        case!(
            "rest.config.model-versioned",
            c,
            Rest,
            CONFIG_DOC,
            "GET /v2/models/{m}/versions/{v}/config answers the configuration of that version",
            config_model_versioned
        ),
        case!(
            "grpc.config.model",
            c,
            Grpc,
            CONFIG_DOC,
            "ModelConfig answers a configuration named after the model",
            grpc_config
        ),
        case!(
            "rest.repository.index",
            r,
            Rest,
            REPOSITORY_DOC,
            "POST /v2/repository/index answers an array of {name, version, state, reason} listing the model as READY",
            repository_index
        ),
        case!(
            "grpc.repository.index",
            r,
            Grpc,
            REPOSITORY_DOC,
            "RepositoryIndex lists the model as READY",
            grpc_repository_index
        ),
        case!(
            "rest.repository.load-unknown",
            r,
            Rest,
            REPOSITORY_DOC,
            "loading a model the repository does not have answers a 4xx status and {\"error\"} body",
            repository_load_unknown
        ),
        case!(
            "rest.repository.round-trip",
            r,
            Rest,
            REPOSITORY_DOC,
            "unload makes the model not ready (and not READY in the index); load makes it ready and serving again",
            repository_round_trip
        ),
    ]
}

// ---------------------------------------------------------------------------------------
// Binary tensor data
// ---------------------------------------------------------------------------------------

/// A binary request body: the JSON header (inputs with `binary_data_size`, no `data`) and
/// the raw data of every input after it; returns (body, header length).
pub fn binary_body(inputs: &[Input], outputs: Option<Value>) -> (Vec<u8>, usize) {
    let mut raw = Vec::new();
    let json_inputs: Vec<Value> = inputs
        .iter()
        .map(|i| {
            let bytes = encode_raw_vec(&i.data);
            let size = bytes.len();
            raw.extend_from_slice(&bytes);
            json!({"name": i.name, "shape": i.shape, "datatype": i.datatype.as_str(),
                   "parameters": {"binary_data_size": size}})
        })
        .collect();
    let mut header = json!({ "inputs": json_inputs });
    if let Some(o) = outputs {
        header["outputs"] = o;
    }
    let mut body = serde_json::to_vec(&header).unwrap_or_default();
    let len = body.len();
    body.extend_from_slice(&raw);
    (body, len)
}

/// Posts a binary body.
pub async fn post_binary(
    ctx: &Ctx,
    model: &str,
    body: Vec<u8>,
    header_len: usize,
) -> Result<HttpResponse, Stop> {
    ctx.post_bytes(
        &model_path(model, None, "/infer"),
        body,
        &[
            ("content-type", "application/octet-stream".into()),
            (HEADER_LENGTH, header_len.to_string()),
        ],
    )
    .await
}

/// Parses a response that may carry binary outputs: checks the header length, the schema and
/// that the binary parts add up to the rest of the body; returns every output's data.
pub fn parse_binary_response(
    r: &HttpResponse,
) -> Result<(RestResponse, BTreeMap<String, TensorData>), Stop> {
    r.expect_status(200)?;
    let header_len = match r.header(HEADER_LENGTH) {
        None => r.body.len(),
        Some(v) => {
            v.trim().parse::<usize>().ok().filter(|n| *n <= r.body.len()).ok_or_else(|| {
                Stop::Fail(format!("{HEADER_LENGTH} is {v:?} for a body of {} bytes", r.body.len()))
            })?
        }
    };
    let json: Value = serde_json::from_slice(&r.body[..header_len])
        .map_err(|e| Stop::Fail(format!("the JSON part of the response is not JSON ({e})")))?;
    let parsed = parse_rest_response(&json)?;
    let mut at = header_len;
    let mut data = BTreeMap::new();
    for o in &parsed.outputs {
        let tensor = match (o.binary_size, &o.data) {
            (Some(size), _) => {
                let Some(bytes) = r.body.get(at..at + size) else {
                    fail!("output {:?} claims {size} binary bytes but the body ends first", o.name);
                };
                at += size;
                decode_raw(&o.name, o.datatype, &o.shape, bytes)
                    .map_err(|e| Stop::Fail(format!("binary output: {e}")))?
            }
            (None, Some(v)) => synth::data_from_json(o.datatype, v)
                .map_err(|e| Stop::Fail(format!("output {:?}: {e}", o.name)))?,
            (None, None) => fail!("output {:?} has no data", o.name),
        };
        data.insert(o.name.clone(), tensor);
    }
    ensure!(at == r.body.len(), "{} bytes follow the last binary output", r.body.len() - at);
    Ok((parsed, data))
}

async fn binary_input(ctx: &Ctx) -> Checked {
    let model = ctx.model()?;
    let inputs = synth_inputs(model)?;
    let (body, len) = binary_body(&inputs, None);
    let (_, binary) = parse_binary_response(&post_binary(ctx, &model.name, body, len).await?)?;
    ensure!(!binary.is_empty(), "the response has no outputs");
    // Compare with the JSON path when JSON can carry the inputs.
    if let Ok(json_body) = json_request(&inputs, false) {
        let r = ctx.post_json(&model_path(&model.name, None, "/infer"), &json_body).await?;
        let (_, plain) = parse_binary_response(&r)?;
        ensure!(plain == binary, "outputs differ between binary and JSON input data");
    }
    Ok(())
}

async fn binary_output(ctx: &Ctx) -> Checked {
    let model = ctx.model()?;
    if model.outputs.is_empty() {
        skip!("the model metadata declares no outputs to request as binary");
    }
    let inputs = synth_inputs(model)?;
    let outputs: Vec<Value> = model
        .outputs
        .iter()
        .map(|o| json!({"name": o.name, "parameters": {"binary_data": true}}))
        .collect();
    let (body, len) = binary_body(&inputs, Some(Value::Array(outputs)));
    let r = post_binary(ctx, &model.name, body, len).await?;
    ensure!(r.header(HEADER_LENGTH).is_some(), "the response has no {HEADER_LENGTH} header");
    let (parsed, binary) = parse_binary_response(&r)?;
    for o in &parsed.outputs {
        ensure!(
            o.binary_size.is_some(),
            "output {:?} was requested as binary but came back as JSON",
            o.name
        );
    }
    // The same outputs requested without binary_data, so only the encoding differs.
    let plain_outputs: Vec<Value> = model.outputs.iter().map(|o| json!({"name": o.name})).collect();
    let (body, len) = binary_body(&inputs, Some(Value::Array(plain_outputs)));
    let (_, plain) = parse_binary_response(&post_binary(ctx, &model.name, body, len).await?)?;
    ensure!(plain == binary, "outputs differ between binary and JSON output encodings");
    Ok(())
}

/// A model with a BYTES input: the model under test if it has one, else the BYTES
/// reference model.
fn bytes_model(ctx: &Ctx) -> Result<&ModelInfo, Stop> {
    if let Some(m) =
        ctx.model.as_ref().filter(|m| m.inputs.iter().any(|i| i.datatype == Some(DataType::Bytes)))
    {
        return Ok(m);
    }
    ctx.reference_model(&reference::identity_name(DataType::Bytes)).map_err(|_| {
        Stop::Skip(
            "no model with a BYTES input (load the reference models to run this case)".into(),
        )
    })
}

async fn binary_bytes(ctx: &Ctx) -> Checked {
    let model = bytes_model(ctx)?;
    let mut inputs = synth_inputs(model)?;
    let identity = model.name == reference::identity_name(DataType::Bytes);
    if identity {
        inputs[0].shape = reference::IDENTITY_REQUEST_SHAPE.to_vec();
        inputs[0].data = reference::identity_values(DataType::Bytes);
    }
    let outputs: Vec<Value> = model
        .outputs
        .iter()
        .map(|o| json!({"name": o.name, "parameters": {"binary_data": true}}))
        .collect();
    let (body, len) = binary_body(&inputs, Some(Value::Array(outputs)));
    let (_, data) = parse_binary_response(&post_binary(ctx, &model.name, body, len).await?)?;
    if identity {
        let got = data.get("OUTPUT0");
        ensure!(
            got == Some(&inputs[0].data),
            "OUTPUT0 is {got:?}, expected the input {:?}",
            inputs[0].data
        );
    }
    Ok(())
}

/// A model with one input of a fixed-size datatype and at most one variable dimension.
fn single_input_model(ctx: &Ctx) -> Result<&ModelInfo, Stop> {
    let fits = |m: &&ModelInfo| {
        m.inputs.len() == 1
            && m.inputs[0].datatype.is_some_and(|d| d.element_size().is_some())
            && m.inputs[0].shape.iter().filter(|d| **d < 0).count() <= 1
    };
    if let Some(m) = ctx.model.as_ref().filter(fits) {
        return Ok(m);
    }
    ctx.reference_model(&reference::identity_name(DataType::Fp32)).map_err(|_| {
        Stop::Skip(
            "no model with a single fixed-size input (load the reference models to run this case)"
                .into(),
        )
    })
}

async fn binary_raw_single_input(ctx: &Ctx) -> Checked {
    let model = single_input_model(ctx)?;
    let inputs = synth_inputs(model)?;
    let raw = encode_raw_vec(&inputs[0].data);
    let r = ctx
        .post_bytes(
            &model_path(&model.name, None, "/infer"),
            raw,
            &[("content-type", "application/octet-stream".into()), (HEADER_LENGTH, "0".into())],
        )
        .await?;
    let (_, raw_outputs) = parse_binary_response(&r)?;
    let (body, len) = binary_body(&inputs, None);
    let (_, plain) = parse_binary_response(&post_binary(ctx, &model.name, body, len).await?)?;
    ensure!(
        raw_outputs == plain,
        "outputs differ between a raw single-input body and the same input as binary data"
    );
    Ok(())
}

// ---------------------------------------------------------------------------------------
// Statistics
// ---------------------------------------------------------------------------------------

fn stats_entry<'a>(v: &'a Value, model: &str) -> Result<&'a Value, Stop> {
    let Some(entries) = v.get("model_stats").and_then(Value::as_array) else {
        fail!("no \"model_stats\" array: {}", super::truncate(&v.to_string()));
    };
    entries
        .iter()
        .find(|e| e.get("name").and_then(Value::as_str) == Some(model))
        .ok_or_else(|| Stop::Fail(format!("\"model_stats\" has no entry for \"{model}\"")))
}

async fn statistics_model(ctx: &Ctx) -> Checked {
    let model = ctx.model()?;
    let path = model_path(&model.name, None, "/stats");
    let count = |v: &Value| -> Result<u64, Stop> {
        stats_entry(v, &model.name)?
            .get("inference_count")
            .and_then(Value::as_u64)
            .ok_or_else(|| Stop::Fail("the entry has no integer \"inference_count\"".into()))
    };
    let before = count(&ctx.get(&path).await?.ok_json()?)?;
    let inputs = synth_inputs(model)?;
    let (body, len) = binary_body(&inputs, None);
    post_binary(ctx, &model.name, body, len).await?.expect_status(200)?;
    let after = count(&ctx.get(&path).await?.ok_json()?)?;
    ensure!(after > before, "inference_count stayed at {before} after an inference (now {after})");
    Ok(())
}

async fn statistics_all(ctx: &Ctx) -> Checked {
    let v = ctx.get("/v2/models/stats").await?.ok_json()?;
    stats_entry(&v, &ctx.model_name).map(|_| ())
}

async fn grpc_statistics(ctx: &Ctx) -> Checked {
    let req = ModelStatisticsRequest { name: ctx.model_name.clone(), version: String::new() };
    let r = ctx.grpc()?.model_statistics(req).await.map_err(|s| {
        Stop::Fail(format!("ModelStatistics answered {:?}: {}", s.code(), s.message()))
    })?;
    ensure!(
        r.get_ref().model_stats.iter().any(|m| m.name == ctx.model_name),
        "no entry for {:?}",
        ctx.model_name
    );
    Ok(())
}

// ---------------------------------------------------------------------------------------
// Model configuration
// ---------------------------------------------------------------------------------------

async fn config_at(ctx: &Ctx, version: Option<&str>) -> Checked {
    let v = ctx.get(&model_path(&ctx.model_name, version, "/config")).await?.ok_json()?;
    // Triton answers the configuration object itself; some servers wrap it in "config".
    let name = v.get("name").or_else(|| v.get("config").and_then(|c| c.get("name")));
    ensure!(
        name.and_then(Value::as_str) == Some(ctx.model_name.as_str()),
        "the configuration is not named \"{}\": {}",
        ctx.model_name,
        super::truncate(&v.to_string())
    );
    Ok(())
}

async fn config_model(ctx: &Ctx) -> Checked {
    config_at(ctx, None).await
}

async fn config_model_versioned(ctx: &Ctx) -> Checked {
    let Some(v) = ctx.model()?.version.clone() else {
        skip!("the model metadata lists no versions");
    };
    config_at(ctx, Some(&v)).await
}

async fn grpc_config(ctx: &Ctx) -> Checked {
    let req = ModelConfigRequest { name: ctx.model_name.clone(), version: String::new() };
    let r =
        ctx.grpc()?.model_config(req).await.map_err(|s| {
            Stop::Fail(format!("ModelConfig answered {:?}: {}", s.code(), s.message()))
        })?;
    let name = r.get_ref().config.as_ref().map(|c| c.name.clone()).unwrap_or_default();
    ensure!(
        name == ctx.model_name,
        "the configuration is named {name:?}, expected {:?}",
        ctx.model_name
    );
    Ok(())
}

// ---------------------------------------------------------------------------------------
// Model repository
// ---------------------------------------------------------------------------------------

async fn index(ctx: &Ctx) -> Result<Vec<Value>, Stop> {
    let v = ctx.post_json("/v2/repository/index", &json!({})).await?.ok_json()?;
    match v {
        Value::Array(rows) => Ok(rows),
        other => fail!("the index is not an array: {}", super::truncate(&other.to_string())),
    }
}

fn index_state(rows: &[Value], model: &str) -> Option<String> {
    rows.iter()
        .find(|r| r.get("name").and_then(Value::as_str) == Some(model))
        .map(|r| r.get("state").and_then(Value::as_str).unwrap_or_default().to_owned())
}

async fn repository_index(ctx: &Ctx) -> Checked {
    let rows = index(ctx).await?;
    for r in &rows {
        ensure!(
            r.get("name").is_some_and(Value::is_string),
            "an index entry has no \"name\" string: {r}"
        );
    }
    let state = index_state(&rows, &ctx.model_name);
    ensure!(
        state.as_deref() == Some("READY"),
        "the index lists \"{}\" with state {state:?}",
        ctx.model_name
    );
    Ok(())
}

async fn grpc_repository_index(ctx: &Ctx) -> Checked {
    let r = ctx
        .grpc()?
        .repository_index(RepositoryIndexRequest { repository_name: String::new(), ready: false })
        .await
        .map_err(|s| {
            Stop::Fail(format!("RepositoryIndex answered {:?}: {}", s.code(), s.message()))
        })?;
    let entry = r.get_ref().models.iter().find(|m| m.name == ctx.model_name);
    ensure!(
        entry.is_some_and(|e| e.state == "READY"),
        "the index lists {:?} as {:?}",
        ctx.model_name,
        entry.map(|e| &e.state)
    );
    Ok(())
}

async fn repository_load_unknown(ctx: &Ctx) -> Checked {
    ctx.post_json(&format!("/v2/repository/models/{UNKNOWN_MODEL}/load"), &json!({}))
        .await?
        .expect_client_error()
}

async fn repository_round_trip(ctx: &Ctx) -> Checked {
    // Prefer a reference model so the model under test keeps serving.
    let fp32 = reference::identity_name(DataType::Fp32);
    let model = match ctx.reference.get(&fp32) {
        Some(m) => m,
        None => ctx.model()?,
    };
    let name = model.name.clone();
    let unload = ctx.post_json(&format!("/v2/repository/models/{name}/unload"), &json!({})).await?;
    unload.expect_status(200)?;
    let result = async {
        let ready = ctx.get(&model_path(&name, None, "/ready")).await?;
        ensure!(ready.status != 200, "after unload, GET /v2/models/{name}/ready still answers 200");
        let state = index_state(&index(ctx).await?, &name);
        ensure!(
            state.as_deref() != Some("READY"),
            "after unload, the index still lists \"{name}\" as READY"
        );
        Ok(())
    }
    .await;
    let load = ctx.post_json(&format!("/v2/repository/models/{name}/load"), &json!({})).await?;
    load.expect_status(200)?;
    result?;
    ctx.get(&model_path(&name, None, "/ready")).await?.expect_status(200)?;
    let inputs = synth_inputs(model)?;
    let (body, len) = binary_body(&inputs, None);
    parse_binary_response(&post_binary(ctx, &name, body, len).await?)?;
    Ok(())
}

// ---------------------------------------------------------------------------------------
// Extensions used but not advertised
// ---------------------------------------------------------------------------------------

async fn unadvertised(ctx: &Ctx) -> Checked {
    let mut found = Vec::new();
    if !ctx.advertises(BINARY)
        && let Some(model) = ctx.model.as_ref()
        && let Ok(inputs) = synth_inputs(model)
    {
        let (body, len) = binary_body(&inputs, None);
        if post_binary(ctx, &model.name, body, len).await?.status == 200 {
            found.push(format!("{BINARY} (accepts binary input data)"));
        }
    }
    if !ctx.advertises(REPOSITORY) {
        let r = ctx.post_json("/v2/repository/index", &json!({})).await?;
        if r.status == 200 && r.json().is_ok_and(|v| v.is_array()) {
            found.push(format!("{REPOSITORY} (POST /v2/repository/index answers)"));
        }
    }
    if !ctx.advertises(STATISTICS) {
        let r = ctx.get(&model_path(&ctx.model_name, None, "/stats")).await?;
        if r.status == 200 && r.json().is_ok_and(|v| v.get("model_stats").is_some()) {
            found.push(format!("{STATISTICS} (GET /v2/models/{{m}}/stats answers)"));
        }
    }
    if !ctx.advertises(CONFIG) {
        let r = ctx.get(&model_path(&ctx.model_name, None, "/config")).await?;
        if r.status == 200 && r.json().is_ok() {
            found.push(format!("{CONFIG} (GET /v2/models/{{m}}/config answers)"));
        }
    }
    if !ctx.advertises(super::explain::EXPLAIN)
        && let Ok(model) = super::explain::explain_model(ctx).await
    {
        found.push(format!(
            "{} (POST /v2/models/{}/explain answers)",
            super::explain::EXPLAIN,
            model.name
        ));
    }
    ensure!(found.is_empty(), "implemented but not advertised in GET /v2: {}", found.join("; "));
    Ok(())
}
