//! REST core cases: health, server and model metadata, inference (flat and nested data,
//! `id`, `outputs`, parameters) and error responses, with and without `/versions/{v}`.

use serde_json::{Value, json};

use super::{UNKNOWN_MODEL, json_request, model_path, parse_rest_response, synth_inputs};
use crate::catalog::{Case, Checked, Level, Stop, Transport, check};
use crate::context::Ctx;
use crate::{ensure, fail, skip};

const HEALTH: &str = "REST: Health";
const SERVER_META: &str = "REST: Server Metadata";
const MODEL_META: &str = "REST: Model Metadata";
const INFER: &str = "REST: Inference";
const REQUEST: &str = "REST: Inference Request JSON Object";
const RESPONSE: &str = "REST: Inference Response JSON Object";
const TENSOR_DATA: &str = "REST: Tensor Data";
const PARAMETERS: &str = "REST: Parameters";

macro_rules! case {
    ($id:expr, $level:expr, $section:expr, $clause:expr, $f:path) => {
        Case::new($id, $level, Transport::Rest, $section, $clause, check(|ctx| Box::pin($f(ctx))))
    };
}

/// The REST core cases.
pub fn cases() -> Vec<Case> {
    use Level::{Must, Should};
    vec![
        case!(
            "rest.health.live",
            Must,
            HEALTH,
            "GET /v2/health/live answers 200 while the server is live (health is judged by status code)",
            live
        ),
        case!(
            "rest.health.ready",
            Must,
            HEALTH,
            "GET /v2/health/ready answers 200 when the server is ready to serve",
            ready
        ),
        case!(
            "rest.health.model-ready",
            Must,
            HEALTH,
            "GET /v2/models/{m}/ready answers 200 for a ready model",
            model_ready
        ),
        case!(
            "rest.health.model-ready-versioned",
            Must,
            HEALTH,
            "GET /v2/models/{m}/versions/{v}/ready answers 200 for a ready version",
            model_ready_versioned
        ),
        case!(
            "rest.health.unknown-model-not-ready",
            Must,
            HEALTH,
            "model readiness of a model the server does not have is false: a 4xx status",
            unknown_model_not_ready
        ),
        case!(
            "rest.metadata.server",
            Must,
            SERVER_META,
            "GET /v2 answers 200 with an object holding string \"name\", string \"version\" and an \"extensions\" array of strings",
            server_metadata
        ),
        case!(
            "rest.metadata.model",
            Must,
            MODEL_META,
            "GET /v2/models/{m} answers 200 with \"name\", optional \"versions\" (strings), \"platform\", and \"inputs\"/\"outputs\" of {name, datatype, shape}",
            model_metadata
        ),
        case!(
            "rest.metadata.model-versioned",
            Must,
            MODEL_META,
            "GET /v2/models/{m}/versions/{v} answers the metadata of that version",
            model_metadata_versioned
        ),
        case!(
            "rest.metadata.unknown-model-error",
            Must,
            MODEL_META,
            "a failed model metadata request answers an error status and a {\"error\": string} body",
            unknown_model_metadata
        ),
        case!(
            "rest.metadata.unknown-model-404",
            Should,
            MODEL_META,
            "metadata of a model the server does not have answers 404 Not Found",
            unknown_model_metadata_404
        ),
        case!(
            "rest.infer.flat-data",
            Must,
            INFER,
            "POST /v2/models/{m}/infer with valid inputs (flat \"data\") answers 200 with a well-formed response naming the model",
            infer_flat
        ),
        case!(
            "rest.infer.optional-fields",
            Must,
            RESPONSE,
            "optional response fields, when present, have their declared types: \"model_version\" and \"id\" strings, \"parameters\" objects (null is neither)",
            infer_optional_fields
        ),
        case!(
            "rest.infer.versioned",
            Must,
            INFER,
            "POST /v2/models/{m}/versions/{v}/infer answers like the unversioned endpoint",
            infer_versioned
        ),
        case!(
            "rest.infer.nested-data",
            Must,
            TENSOR_DATA,
            "tensor \"data\" may be nested by shape instead of flat; both give the same result",
            infer_nested
        ),
        case!(
            "rest.infer.id-echo",
            Must,
            RESPONSE,
            "the response carries the request's \"id\" unchanged",
            infer_id_echo
        ),
        case!(
            "rest.infer.all-outputs-default",
            Must,
            REQUEST,
            "without \"outputs\" the response holds every output of the model",
            infer_all_outputs
        ),
        case!(
            "rest.infer.outputs-filter",
            Must,
            REQUEST,
            "with \"outputs\" the response holds exactly the requested outputs",
            infer_outputs_filter
        ),
        case!(
            "rest.infer.parameters",
            Must,
            PARAMETERS,
            "request and input \"parameters\" objects with custom keys (string, number, bool values) are accepted",
            infer_parameters
        ),
        case!(
            "rest.infer.outputs-match-metadata",
            Should,
            RESPONSE,
            "each output's datatype and rank agree with the model metadata",
            infer_outputs_match_metadata
        ),
        case!(
            "rest.infer.malformed-json",
            Must,
            INFER,
            "a body that is not valid JSON is rejected with an error status and a {\"error\": string} body",
            infer_malformed_json
        ),
        case!(
            "rest.infer.unknown-model",
            Must,
            INFER,
            "inference on a model the server does not have answers an error status and a {\"error\": string} body",
            infer_unknown_model
        ),
        case!(
            "rest.infer.unknown-model-404",
            Should,
            INFER,
            "inference on a model the server does not have answers 404 Not Found",
            infer_unknown_model_404
        ),
        case!(
            "rest.infer.shape-data-mismatch",
            Must,
            TENSOR_DATA,
            "an input whose \"data\" holds fewer elements than its \"shape\" needs is rejected with an error status and {\"error\"} body",
            infer_shape_mismatch
        ),
        case!(
            "rest.infer.invalid-400",
            Should,
            INFER,
            "malformed requests (bad JSON, shape/data mismatch) answer 400 Bad Request",
            infer_invalid_400
        ),
        case!(
            "rest.infer.wrong-datatype",
            Should,
            REQUEST,
            "an input whose datatype differs from the model's is rejected with a 4xx status and {\"error\"} body",
            infer_wrong_datatype
        ),
        case!(
            "rest.infer.unknown-output",
            Should,
            REQUEST,
            "requesting an output the model does not have is rejected with a 4xx status and {\"error\"} body",
            infer_unknown_output
        ),
        case!(
            "rest.infer.missing-input",
            Should,
            REQUEST,
            "a request without one of the model's inputs is rejected with a 4xx status and {\"error\"} body",
            infer_missing_input
        ),
    ]
}

async fn live(ctx: &Ctx) -> Checked {
    ctx.get("/v2/health/live").await?.expect_status(200)
}

async fn ready(ctx: &Ctx) -> Checked {
    ctx.get("/v2/health/ready").await?.expect_status(200)
}

async fn model_ready(ctx: &Ctx) -> Checked {
    ctx.get(&model_path(&ctx.model_name, None, "/ready")).await?.expect_status(200)
}

fn version(ctx: &Ctx) -> Result<String, Stop> {
    match ctx.model()?.version.clone() {
        Some(v) => Ok(v),
        None => Err(Stop::Skip("the model metadata lists no versions".into())),
    }
}

async fn model_ready_versioned(ctx: &Ctx) -> Checked {
    let v = version(ctx)?;
    ctx.get(&model_path(&ctx.model_name, Some(&v), "/ready")).await?.expect_status(200)
}

async fn unknown_model_not_ready(ctx: &Ctx) -> Checked {
    let r = ctx.get(&model_path(UNKNOWN_MODEL, None, "/ready")).await?;
    ensure!(
        (400..500).contains(&r.status),
        "{} answered {} (expected a 4xx status)",
        r.what,
        r.status
    );
    Ok(())
}

async fn server_metadata(ctx: &Ctx) -> Checked {
    let v = ctx.get("/v2").await?.ok_json()?;
    ensure!(v.get("name").is_some_and(Value::is_string), "\"name\" missing or not a string: {v}");
    ensure!(
        v.get("version").is_some_and(Value::is_string),
        "\"version\" missing or not a string: {v}"
    );
    let ok = v
        .get("extensions")
        .and_then(Value::as_array)
        .is_some_and(|a| a.iter().all(Value::is_string));
    ensure!(ok, "\"extensions\" missing or not an array of strings: {v}");
    Ok(())
}

/// Checks a model metadata object; `name` is the model asked for.
pub(crate) fn check_model_metadata(v: &Value, name: &str) -> Checked {
    ensure!(v.get("name").and_then(Value::as_str) == Some(name), "\"name\" is not \"{name}\": {v}");
    if let Some(vs) = v.get("versions") {
        ensure!(
            vs.as_array().is_some_and(|a| a.iter().all(Value::is_string)),
            "\"versions\" is not an array of strings: {v}"
        );
    }
    ensure!(
        v.get("platform").is_some_and(Value::is_string),
        "\"platform\" missing or not a string: {v}"
    );
    for key in ["inputs", "outputs"] {
        let Some(items) = v.get(key).and_then(Value::as_array) else {
            fail!("\"{key}\" missing or not an array: {v}");
        };
        for t in items {
            let name_ok = t.get("name").is_some_and(Value::is_string);
            let dt = t.get("datatype").and_then(Value::as_str).unwrap_or_default();
            let shape_ok = t
                .get("shape")
                .and_then(Value::as_array)
                .is_some_and(|s| s.iter().all(|d| d.as_i64().is_some()));
            ensure!(name_ok, "an entry of \"{key}\" has no \"name\" string: {t}");
            ensure!(
                dt.parse::<oxserve_protocol::DataType>().is_ok(),
                "\"{key}\" entry has invalid datatype \"{dt}\": {t}"
            );
            ensure!(shape_ok, "\"{key}\" entry has no integer \"shape\" array: {t}");
        }
    }
    Ok(())
}

async fn model_metadata(ctx: &Ctx) -> Checked {
    let v = ctx.get(&model_path(&ctx.model_name, None, "")).await?.ok_json()?;
    check_model_metadata(&v, &ctx.model_name)
}

async fn model_metadata_versioned(ctx: &Ctx) -> Checked {
    let ver = version(ctx)?;
    let v = ctx.get(&model_path(&ctx.model_name, Some(&ver), "")).await?.ok_json()?;
    check_model_metadata(&v, &ctx.model_name)
}

async fn unknown_model_metadata(ctx: &Ctx) -> Checked {
    ctx.get(&model_path(UNKNOWN_MODEL, None, "")).await?.expect_client_error()
}

async fn unknown_model_metadata_404(ctx: &Ctx) -> Checked {
    ctx.get(&model_path(UNKNOWN_MODEL, None, "")).await?.expect_status(404)
}

/// Posts a synthesised request (flat data) to the model under test, with `edit` applied to
/// the body, and returns the parsed response after checking status and schema.
async fn infer_with(
    ctx: &Ctx,
    version: Option<&str>,
    edit: impl FnOnce(&mut Value),
) -> Result<(Value, super::RestResponse), Stop> {
    let model = ctx.model()?;
    let inputs = synth_inputs(model)?;
    let mut body = json_request(&inputs, false)?;
    edit(&mut body);
    let v = ctx.post_json(&model_path(&model.name, version, "/infer"), &body).await?.ok_json()?;
    let parsed = parse_rest_response(&v)?;
    Ok((v, parsed))
}

async fn infer_flat(ctx: &Ctx) -> Checked {
    let (_, r) = infer_with(ctx, None, |_| {}).await?;
    ensure!(
        r.model_name == ctx.model_name,
        "\"model_name\" is \"{}\", expected \"{}\"",
        r.model_name,
        ctx.model_name
    );
    ensure!(!r.outputs.is_empty(), "the response has no outputs");
    Ok(())
}

async fn infer_optional_fields(ctx: &Ctx) -> Checked {
    let (v, _) = infer_with(ctx, None, |b| b["id"] = json!("conformance-optional-fields")).await?;
    super::check_optional_fields(&v)
}

async fn infer_versioned(ctx: &Ctx) -> Checked {
    let v = version(ctx)?;
    let (_, r) = infer_with(ctx, Some(&v), |_| {}).await?;
    ensure!(
        r.model_name == ctx.model_name,
        "\"model_name\" is \"{}\", expected \"{}\"",
        r.model_name,
        ctx.model_name
    );
    ensure!(!r.outputs.is_empty(), "the response has no outputs");
    Ok(())
}

async fn infer_nested(ctx: &Ctx) -> Checked {
    let model = ctx.model()?;
    let inputs = synth_inputs(model)?;
    if inputs.iter().all(|i| i.shape.len() < 2) {
        skip!("every input has rank < 2, so nesting equals the flat form");
    }
    let path = model_path(&model.name, None, "/infer");
    let flat = ctx.post_json(&path, &json_request(&inputs, false)?).await?.ok_json()?;
    let nested = ctx.post_json(&path, &json_request(&inputs, true)?).await?.ok_json()?;
    let flat = parse_rest_response(&flat)?;
    let nested = parse_rest_response(&nested)?;
    for o in &flat.outputs {
        let Some(n) = nested.output(&o.name) else {
            fail!("output \"{}\" is missing from the nested-data response", o.name);
        };
        let a = o.data.as_ref().map(crate::synth::flatten);
        let b = n.data.as_ref().map(crate::synth::flatten);
        ensure!(
            a == b && o.shape == n.shape,
            "output \"{}\" differs between flat and nested input data",
            o.name
        );
    }
    Ok(())
}

async fn infer_id_echo(ctx: &Ctx) -> Checked {
    // ASCII first, then non-ASCII (the id is any string), so the report tells them apart.
    for id in super::ECHO_IDS {
        let (_, r) = infer_with(ctx, None, |b| b["id"] = json!(id)).await?;
        ensure!(r.id.as_deref() == Some(id), "the response \"id\" is {:?}, expected {id:?}", r.id);
    }
    Ok(())
}

async fn infer_all_outputs(ctx: &Ctx) -> Checked {
    let model = ctx.model()?;
    if model.outputs.is_empty() {
        skip!("the model metadata declares no outputs to compare with");
    }
    let (_, r) = infer_with(ctx, None, |_| {}).await?;
    for o in &model.outputs {
        ensure!(
            r.output(&o.name).is_some(),
            "output \"{}\" is missing; the response has {:?}",
            o.name,
            r.names()
        );
    }
    Ok(())
}

async fn infer_outputs_filter(ctx: &Ctx) -> Checked {
    let model = ctx.model()?;
    let Some(last) = model.outputs.last() else {
        skip!("the model metadata declares no outputs to request");
    };
    let name = last.name.clone();
    let (_, r) = infer_with(ctx, None, |b| b["outputs"] = json!([{"name": name}])).await?;
    ensure!(
        r.names() == [last.name.as_str()],
        "requested only \"{}\", got {:?}",
        last.name,
        r.names()
    );
    Ok(())
}

async fn infer_parameters(ctx: &Ctx) -> Checked {
    let params =
        json!({"conformance_tag": "probe", "conformance_count": 3, "conformance_flag": true});
    infer_with(ctx, None, |b| {
        b["parameters"] = params.clone();
        if let Some(inputs) = b["inputs"].as_array_mut() {
            for i in inputs {
                i["parameters"] = params.clone();
            }
        }
    })
    .await?;
    Ok(())
}

async fn infer_outputs_match_metadata(ctx: &Ctx) -> Checked {
    let model = ctx.model()?;
    let (_, r) = infer_with(ctx, None, |_| {}).await?;
    for o in &r.outputs {
        let Some(meta) = model.outputs.iter().find(|m| m.name == o.name) else {
            fail!("output \"{}\" is not declared in the model metadata", o.name);
        };
        ensure!(
            meta.datatype == Some(o.datatype),
            "output \"{}\" is {} but the metadata says {}",
            o.name,
            o.datatype,
            meta.datatype_name
        );
        ensure!(
            meta.shape.len() == o.shape.len(),
            "output \"{}\" has shape {:?} but the metadata says {:?}",
            o.name,
            o.shape,
            meta.shape
        );
        let dims_ok = meta.shape.iter().zip(&o.shape).all(|(m, d)| *m < 0 || m == d);
        ensure!(
            dims_ok,
            "output \"{}\" has shape {:?} but the metadata says {:?}",
            o.name,
            o.shape,
            meta.shape
        );
    }
    Ok(())
}

fn infer_path(ctx: &Ctx) -> String {
    model_path(&ctx.model_name, None, "/infer")
}

async fn infer_malformed_json(ctx: &Ctx) -> Checked {
    let body =
        br#"{"inputs": [{"name": "x", "shape": [1], "datatype": "FP32", "data": [1.0"#.to_vec();
    let r = ctx
        .post_bytes(&infer_path(ctx), body, &[("content-type", "application/json".into())])
        .await?;
    r.expect_client_error()
}

async fn unknown_model_request(ctx: &Ctx) -> Result<crate::http::HttpResponse, Stop> {
    // A valid request for the model under test, sent to a model that does not exist.
    let body = match ctx.model().ok().map(synth_inputs) {
        Some(Ok(inputs)) => json_request(&inputs, false).unwrap_or_else(|_| fallback_body()),
        _ => fallback_body(),
    };
    ctx.post_json(&model_path(UNKNOWN_MODEL, None, "/infer"), &body).await
}

fn fallback_body() -> Value {
    json!({"inputs": [{"name": "INPUT0", "shape": [1, 1], "datatype": "FP32", "data": [1.0]}]})
}

async fn infer_unknown_model(ctx: &Ctx) -> Checked {
    unknown_model_request(ctx).await?.expect_client_error()
}

async fn infer_unknown_model_404(ctx: &Ctx) -> Checked {
    unknown_model_request(ctx).await?.expect_status(404)
}

/// The synthesised request with one element dropped from the first input's data.
fn short_data_body(ctx: &Ctx) -> Result<Value, Stop> {
    let inputs = synth_inputs(ctx.model()?)?;
    let mut body = json_request(&inputs, false)?;
    let data = body["inputs"][0]["data"].as_array_mut();
    match data {
        Some(d) if !d.is_empty() => {
            d.pop();
        }
        _ => skip!("the first input has no elements to drop"),
    }
    Ok(body)
}

async fn infer_shape_mismatch(ctx: &Ctx) -> Checked {
    let body = short_data_body(ctx)?;
    ctx.post_json(&infer_path(ctx), &body).await?.expect_client_error()
}

async fn infer_invalid_400(ctx: &Ctx) -> Checked {
    let r = ctx
        .post_bytes(
            &infer_path(ctx),
            b"{not json".to_vec(),
            &[("content-type", "application/json".into())],
        )
        .await?;
    r.expect_status(400)?;
    let body = short_data_body(ctx)?;
    ctx.post_json(&infer_path(ctx), &body).await?.expect_status(400)
}

async fn infer_wrong_datatype(ctx: &Ctx) -> Checked {
    use oxserve_protocol::DataType;
    let model = ctx.model()?;
    let mut inputs = synth_inputs(model)?;
    let first = &mut inputs[0];
    // BYTES for numeric inputs, INT32 for BYTES inputs: never a lossless reinterpretation.
    let other = if first.datatype == DataType::Bytes { DataType::Int32 } else { DataType::Bytes };
    first.data = crate::synth::values(other, first.data.len());
    first.datatype = other;
    let body = json_request(&inputs, false)?;
    ctx.post_json(&infer_path(ctx), &body).await?.expect_client_error()
}

async fn infer_unknown_output(ctx: &Ctx) -> Checked {
    let inputs = synth_inputs(ctx.model()?)?;
    let mut body = json_request(&inputs, false)?;
    body["outputs"] = json!([{"name": "conformance_no_such_output"}]);
    ctx.post_json(&infer_path(ctx), &body).await?.expect_client_error()
}

async fn infer_missing_input(ctx: &Ctx) -> Checked {
    let inputs = synth_inputs(ctx.model()?)?;
    let mut body = json_request(&inputs, false)?;
    body["inputs"] = json!([]);
    ctx.post_json(&infer_path(ctx), &body).await?.expect_client_error()
}
