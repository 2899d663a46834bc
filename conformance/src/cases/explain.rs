//! Cases of oxserve's `explain` extension (`docs/explain.md`), run only when `GET /v2` lists
//! `explain`, so servers without it are never failed by them.
//!
//! The extension: `POST /v2/models/{m}[/versions/{v}]/explain` takes a V2 inference request
//! and answers the prediction plus, for each explained output `<o>`, a tensor
//! `<o>_attributions` of shape `[rows, outputs, features]` and `expected_value` of shape
//! `[outputs]`; `<o>` itself is in the response, and for every row and output value
//! `expected_value + Σ features = <o>` (additivity). V1 `POST /v1/models/{m}:explain` answers
//! `{"predictions", "explanations"}` with one explanation per instance, and gRPC
//! `ModelInfer` with the request parameter `explain: true` answers what REST's `/explain`
//! does.
//!
//! Not every model need be explainable (KernelSHAP needs a configured background), so the
//! cases explain the first model that answers `/explain` with 200: `--explain-model` when
//! given, else the model under test, else the ready models of the repository index in name
//! order (reference models excluded). When none does, the cases are skipped.

use oxserve_protocol::grpc::inference::InferParameter;
use oxserve_protocol::grpc::inference::infer_parameter::ParameterChoice;
use oxserve_protocol::{DataType, TensorData};
use serde_json::{Value, json};
use tonic::Code;

use super::grpc::{decode_response, request_for};
use super::{Input, UNKNOWN_MODEL, json_request, model_path, parse_rest_response, synth_inputs};
use crate::catalog::{Case, Checked, Level, Stop, Transport, check};
use crate::context::{Ctx, ModelInfo};
use crate::{ensure, fail, reference, skip, synth};

/// Name of the explain extension in server metadata.
pub const EXPLAIN: &str = "explain";

/// The gRPC `ModelInfer` request parameter that asks for an explanation.
pub const EXPLAIN_PARAMETER: &str = "explain";

/// Name of the tensor of expected values.
pub const EXPECTED_VALUE: &str = "expected_value";

/// Suffix of an attributions tensor: `<output>_attributions`.
pub const ATTRIBUTIONS_SUFFIX: &str = "_attributions";

const DOC: &str = "oxserve explain extension (docs/explain.md)";

/// How far `expected_value + Σ attributions` may be from the output: relative to the
/// output's magnitude (at least 1), loose enough for FP32 outputs.
pub const ADDITIVITY_TOLERANCE: f64 = 1e-4;

/// True when `sum` is `want` within [`ADDITIVITY_TOLERANCE`] (NaN never is).
fn adds_up(sum: f64, want: f64) -> bool {
    (sum - want).abs() <= ADDITIVITY_TOLERANCE * want.abs().max(1.0)
}

/// Most index entries probed for an explainable model.
const MAX_PROBES: usize = 32;

macro_rules! case {
    ($id:expr, $transport:expr, $clause:expr, $f:path) => {
        Case::new(
            $id,
            Level::Extension(EXPLAIN),
            $transport,
            DOC,
            $clause,
            check(|ctx| Box::pin($f(ctx))),
        )
    };
}

/// The explain extension's cases.
pub fn cases() -> Vec<Case> {
    use Transport::{Grpc, Rest};
    vec![
        case!(
            "rest.explain.shapes",
            Rest,
            "POST /v2/models/{m}/explain answers an inference response with <output>_attributions of shape [rows, outputs, features] (FP32/FP64) and expected_value with one value per output",
            rest_shapes
        ),
        case!(
            "rest.explain.additivity",
            Rest,
            "the explained output <output> is in the response, and expected_value plus the sum of a row's attributions equals that row's output",
            rest_additivity
        ),
        case!(
            "rest.explain.prediction",
            Rest,
            "the explain response carries the prediction: every output /infer answers for the same request, with the same values",
            rest_prediction
        ),
        case!(
            "rest.explain.versioned",
            Rest,
            "POST /v2/models/{m}/versions/{v}/explain answers the same attributions as the unversioned endpoint",
            rest_versioned
        ),
        case!(
            "rest.explain.shape-data-mismatch",
            Rest,
            "an explain request whose data does not fill its shape is rejected with 4xx + {\"error\"}",
            rest_shape_mismatch
        ),
        case!(
            "rest.explain.unknown-model",
            Rest,
            "explaining a model the server does not have answers 4xx + {\"error\"}",
            rest_unknown_model
        ),
        case!(
            "rest.explain.v1",
            Rest,
            "POST /v1/models/{m}:explain with instances answers one explanation per instance: expected_value [outputs], output_value [outputs] and attributions [outputs][features] that add up",
            rest_v1
        ),
        case!(
            "grpc.explain.parameter",
            Grpc,
            "ModelInfer with the parameter explain: true answers the prediction plus additive <output>_attributions [rows, outputs, features] and expected_value",
            grpc_parameter
        ),
        case!(
            "grpc.explain.false-is-inference",
            Grpc,
            "ModelInfer with explain: false answers the plain inference: the same outputs as without the parameter",
            grpc_false
        ),
        case!(
            "grpc.explain.bad-parameter",
            Grpc,
            "an explain parameter that is not a bool is rejected with INVALID_ARGUMENT",
            grpc_bad_parameter
        ),
    ]
}

// ---------------------------------------------------------------------------------------
// The model to explain
// ---------------------------------------------------------------------------------------

/// The model the explain cases use, found once per run (see the module docs), or a skip.
pub async fn explain_model(ctx: &Ctx) -> Result<&ModelInfo, Stop> {
    ctx.explain_model
        .get_or_init(|| find_explain_model(ctx))
        .await
        .as_ref()
        .map_err(|why| Stop::Skip(why.clone()))
}

async fn find_explain_model(ctx: &Ctx) -> Result<ModelInfo, String> {
    if let Some(name) = &ctx.target.explain_model {
        return ctx.ready_model(name).await.ok_or_else(|| {
            format!("--explain-model \"{name}\" is not ready or its metadata is unusable")
        });
    }
    let references = reference::names();
    let mut names = vec![ctx.model_name.clone()];
    for name in ctx.ready_index_names().await {
        if !references.contains(&name) && !names.contains(&name) {
            names.push(name);
        }
    }
    names.truncate(MAX_PROBES);
    for name in &names {
        let Some(info) = ctx.ready_model(name).await else { continue };
        let Ok(body) = synth_inputs(&info).and_then(|i| json_request(&i, false)) else {
            continue;
        };
        let probe = ctx.post_json(&model_path(name, None, "/explain"), &body).await;
        if probe.is_ok_and(|r| r.status == 200) {
            return Ok(info);
        }
    }
    Err(format!(
        "no model answers POST /v2/models/{{m}}/explain with 200 (tried {}); pass --explain-model NAME",
        names.join(", ")
    ))
}

/// The model's inputs for an explanation and the rows and features they describe
/// (features: the second dimension of a single 2-D input, else unknown).
struct Request {
    model: ModelInfo,
    inputs: Vec<Input>,
    rows: i64,
    features: Option<i64>,
}

async fn request(ctx: &Ctx) -> Result<Request, Stop> {
    let model = explain_model(ctx).await?.clone();
    let inputs = synth_inputs(&model)?;
    let rows = inputs[0].shape.first().copied().unwrap_or(1);
    let features = match inputs.as_slice() {
        [only] if only.shape.len() == 2 => Some(only.shape[1]),
        _ => None,
    };
    Ok(Request { model, inputs, rows, features })
}

// ---------------------------------------------------------------------------------------
// Judging an explanation (REST and gRPC alike)
// ---------------------------------------------------------------------------------------

/// An output reduced to what the checks compare: name, shape and numeric values (`None`
/// for BYTES and BOOL).
#[derive(Debug, Clone, PartialEq)]
struct Numeric {
    name: String,
    shape: Vec<i64>,
    values: Option<Vec<f64>>,
}

fn numbers(data: &TensorData) -> Option<Vec<f64>> {
    fn all<T: Copy + Into<f64>>(v: &[T]) -> Option<Vec<f64>> {
        Some(v.iter().map(|&x| x.into()).collect())
    }
    match data {
        TensorData::Fp64(v) => Some(v.clone()),
        TensorData::Fp32(v) => all(v),
        TensorData::Fp16(v) => Some(v.iter().map(|x| x.to_f64()).collect()),
        TensorData::Bf16(v) => Some(v.iter().map(|x| x.to_f64()).collect()),
        TensorData::Int8(v) => all(v),
        TensorData::Int16(v) => all(v),
        TensorData::Int32(v) => all(v),
        TensorData::Int64(v) => Some(v.iter().map(|&x| x as f64).collect()),
        TensorData::Uint8(v) => all(v),
        TensorData::Uint16(v) => all(v),
        TensorData::Uint32(v) => all(v),
        TensorData::Uint64(v) => Some(v.iter().map(|&x| x as f64).collect()),
        TensorData::Bool(_) | TensorData::Bytes(_) => None,
    }
}

/// The outputs of a REST response, checked against the schema. Values are compared as
/// numbers (the datatype cases judge their exact JSON form).
fn rest_outputs(v: &Value) -> Result<Vec<Numeric>, Stop> {
    let parsed = parse_rest_response(v)?;
    parsed
        .outputs
        .into_iter()
        .map(|o| {
            let Some(data) = &o.data else { fail!("output \"{}\" has no JSON data", o.name) };
            let numeric = !matches!(o.datatype, DataType::Bool | DataType::Bytes);
            let values = numeric
                .then(|| {
                    synth::flatten(data)
                        .into_iter()
                        .map(Value::as_f64)
                        .collect::<Option<Vec<f64>>>()
                })
                .flatten();
            ensure!(!numeric || values.is_some(), "output \"{}\" has non-numeric data", o.name);
            Ok(Numeric { name: o.name, shape: o.shape, values })
        })
        .collect()
}

fn find<'a>(outputs: &'a [Numeric], name: &str) -> Option<&'a Numeric> {
    outputs.iter().find(|o| o.name == name)
}

fn names(outputs: &[Numeric]) -> String {
    outputs.iter().map(|o| o.name.as_str()).collect::<Vec<_>>().join(", ")
}

/// Checks the attribution and expected-value tensors; returns the attribution tensors.
fn check_shapes<'a>(outputs: &'a [Numeric], req: &Request) -> Result<Vec<&'a Numeric>, Stop> {
    let attributions: Vec<&Numeric> =
        outputs.iter().filter(|o| o.name.ends_with(ATTRIBUTIONS_SUFFIX)).collect();
    ensure!(
        !attributions.is_empty(),
        "no <output>{ATTRIBUTIONS_SUFFIX} output among [{}]",
        names(outputs)
    );
    let Some(expected) = find(outputs, EXPECTED_VALUE) else {
        fail!("no {EXPECTED_VALUE} output among [{}]", names(outputs));
    };
    ensure!(expected.values.is_some(), "{EXPECTED_VALUE} is not numeric");
    let width = synth::element_count(&expected.shape) as i64;
    for a in &attributions {
        ensure!(a.values.is_some(), "{} is not numeric", a.name);
        let &[rows, outs, features] = a.shape.as_slice() else {
            fail!("{} has shape {:?}, expected [rows, outputs, features]", a.name, a.shape);
        };
        ensure!(rows == req.rows, "{} has {rows} rows for a request of {}", a.name, req.rows);
        ensure!(
            outs == width,
            "{} has {outs} output values per row but {EXPECTED_VALUE} has {width}",
            a.name
        );
        if let Some(f) = req.features {
            ensure!(features == f, "{} has {features} features; the input has {f}", a.name);
        }
    }
    Ok(attributions)
}

/// Checks shapes and `expected_value + Σ attributions = output` for every row and value.
fn check_additivity(outputs: &[Numeric], req: &Request) -> Checked {
    let expected = find(outputs, EXPECTED_VALUE).and_then(|e| e.values.clone()).unwrap_or_default();
    for a in check_shapes(outputs, req)? {
        let explained = a.name.trim_end_matches(ATTRIBUTIONS_SUFFIX);
        let Some(out) = find(outputs, explained) else {
            fail!("{} explains \"{explained}\", which is not in the response", a.name);
        };
        let Some(got) = &out.values else { fail!("output \"{explained}\" is not numeric") };
        let (rows, width, features) =
            (a.shape[0] as usize, a.shape[1] as usize, a.shape[2] as usize);
        ensure!(
            got.len() == rows * width,
            "output \"{explained}\" has {} values; {} has {rows} rows × {width} outputs",
            got.len(),
            a.name
        );
        let values = a.values.as_deref().unwrap_or_default();
        for r in 0..rows {
            for d in 0..width {
                let at = (r * width + d) * features;
                let sum = expected[d] + values[at..at + features].iter().sum::<f64>();
                let want = got[r * width + d];
                ensure!(
                    adds_up(sum, want),
                    "row {r}, output value {d}: {EXPECTED_VALUE} + Σ attributions = {sum}, but \"{explained}\" is {want}"
                );
            }
        }
    }
    Ok(())
}

/// True when the two sets of values agree to a relative 1e-6 (or both are non-numeric and
/// equal in shape).
fn same_values(a: &Numeric, b: &Numeric) -> bool {
    a.shape == b.shape
        && match (&a.values, &b.values) {
            (Some(x), Some(y)) => {
                x.len() == y.len()
                    && x.iter().zip(y).all(|(p, q)| (p - q).abs() <= 1e-6 * p.abs().max(1.0))
            }
            (None, None) => true,
            _ => false,
        }
}

// ---------------------------------------------------------------------------------------
// REST
// ---------------------------------------------------------------------------------------

async fn explain_rest(
    ctx: &Ctx,
    req: &Request,
    version: Option<&str>,
) -> Result<Vec<Numeric>, Stop> {
    let body = json_request(&req.inputs, false)?;
    let v =
        ctx.post_json(&model_path(&req.model.name, version, "/explain"), &body).await?.ok_json()?;
    rest_outputs(&v)
}

async fn rest_shapes(ctx: &Ctx) -> Checked {
    let req = request(ctx).await?;
    let outputs = explain_rest(ctx, &req, None).await?;
    check_shapes(&outputs, &req).map(|_| ())
}

async fn rest_additivity(ctx: &Ctx) -> Checked {
    let req = request(ctx).await?;
    let outputs = explain_rest(ctx, &req, None).await?;
    check_additivity(&outputs, &req)
}

async fn rest_prediction(ctx: &Ctx) -> Checked {
    let req = request(ctx).await?;
    let explained = explain_rest(ctx, &req, None).await?;
    let body = json_request(&req.inputs, false)?;
    let v = ctx.post_json(&model_path(&req.model.name, None, "/infer"), &body).await?.ok_json()?;
    for o in rest_outputs(&v)? {
        let Some(e) = find(&explained, &o.name) else {
            fail!(
                "/infer answers output \"{}\" but /explain does not ([{}])",
                o.name,
                names(&explained)
            );
        };
        ensure!(
            same_values(&o, e),
            "output \"{}\" differs between /infer ({:?} {:?}) and /explain ({:?} {:?})",
            o.name,
            o.shape,
            o.values,
            e.shape,
            e.values
        );
    }
    Ok(())
}

async fn rest_versioned(ctx: &Ctx) -> Checked {
    let req = request(ctx).await?;
    let Some(version) = req.model.version.clone() else {
        skip!("the metadata of \"{}\" lists no versions", req.model.name);
    };
    let plain = explain_rest(ctx, &req, None).await?;
    let versioned = explain_rest(ctx, &req, Some(&version)).await?;
    for a in plain.iter().filter(|o| o.name.ends_with(ATTRIBUTIONS_SUFFIX)) {
        let Some(v) = find(&versioned, &a.name) else {
            fail!("/versions/{version}/explain has no {} ([{}])", a.name, names(&versioned));
        };
        ensure!(
            same_values(a, v),
            "{} differs between /explain and /versions/{version}/explain",
            a.name
        );
    }
    Ok(())
}

async fn rest_shape_mismatch(ctx: &Ctx) -> Checked {
    let req = request(ctx).await?;
    let mut body = json_request(&req.inputs, false)?;
    match body["inputs"][0]["data"].as_array_mut() {
        Some(d) if !d.is_empty() => {
            d.pop();
        }
        _ => skip!("the first input has no elements to drop"),
    }
    ctx.post_json(&model_path(&req.model.name, None, "/explain"), &body)
        .await?
        .expect_client_error()
}

async fn rest_unknown_model(ctx: &Ctx) -> Checked {
    let req = request(ctx).await?;
    let body = json_request(&req.inputs, false)?;
    ctx.post_json(&model_path(UNKNOWN_MODEL, None, "/explain"), &body).await?.expect_client_error()
}

/// A JSON array of numbers, or a failure naming `what`.
fn number_array(v: &Value, what: &str) -> Result<Vec<f64>, Stop> {
    v.as_array()
        .and_then(|a| a.iter().map(Value::as_f64).collect::<Option<Vec<_>>>())
        .ok_or_else(|| Stop::Fail(format!("{what} is not an array of numbers: {v}")))
}

async fn rest_v1(ctx: &Ctx) -> Checked {
    let req = request(ctx).await?;
    let [input] = req.inputs.as_slice() else {
        skip!(
            "V1 instances need a model with one input; \"{}\" has {}",
            req.model.name,
            req.inputs.len()
        );
    };
    let (Some(features), true) =
        (req.features, matches!(input.datatype, DataType::Fp32 | DataType::Fp64))
    else {
        skip!("V1 instances here are rows of a 2-D FP32/FP64 input");
    };
    let Some(instances) = synth::json_nested(&input.data, &input.shape) else {
        skip!("input \"{}\" cannot travel as JSON", input.name);
    };
    let path = format!("/v1/models/{}:explain", req.model.name);
    let v = ctx.post_json(&path, &json!({ "instances": instances })).await?.ok_json()?;
    let Some(explanations) = v.get("explanations").and_then(Value::as_array) else {
        fail!("no \"explanations\" array: {}", super::truncate(&v.to_string()));
    };
    ensure!(
        explanations.len() as i64 == req.rows,
        "{} explanations for {} instances",
        explanations.len(),
        req.rows
    );
    for (r, e) in explanations.iter().enumerate() {
        let expected =
            number_array(&e[EXPECTED_VALUE], &format!("explanation {r}: {EXPECTED_VALUE}"))?;
        let output = number_array(&e["output_value"], &format!("explanation {r}: output_value"))?;
        let Some(per_output) = e["attributions"].as_array() else {
            fail!("explanation {r} has no \"attributions\" array");
        };
        ensure!(
            per_output.len() == expected.len() && output.len() == expected.len(),
            "explanation {r}: {} attribution rows, {} expected values, {} output values",
            per_output.len(),
            expected.len(),
            output.len()
        );
        for (d, a) in per_output.iter().enumerate() {
            let a = number_array(a, &format!("explanation {r}: attributions[{d}]"))?;
            ensure!(
                a.len() as i64 == features,
                "explanation {r}: {} attributions for {features} features",
                a.len()
            );
            let sum = expected[d] + a.iter().sum::<f64>();
            ensure!(
                adds_up(sum, output[d]),
                "explanation {r}, output value {d}: expected_value + Σ attributions = {sum}, output_value {}",
                output[d]
            );
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------
// gRPC
// ---------------------------------------------------------------------------------------

fn flag(choice: ParameterChoice) -> InferParameter {
    InferParameter { parameter_choice: Some(choice) }
}

async fn grpc_infer(
    ctx: &Ctx,
    req: &Request,
    explain: Option<ParameterChoice>,
) -> Result<Result<Vec<Numeric>, tonic::Status>, Stop> {
    let raw = req.inputs.iter().any(|i| i.datatype.is_raw_only());
    let mut r = request_for(&req.model.name, &req.inputs, raw)?;
    if let Some(choice) = explain {
        r.parameters.insert(EXPLAIN_PARAMETER.to_owned(), flag(choice));
    }
    match ctx.grpc()?.model_infer(r).await {
        Ok(resp) => {
            let outputs = decode_response(resp.get_ref())?;
            Ok(Ok(outputs
                .into_iter()
                .map(|o| Numeric { values: numbers(&o.data), name: o.name, shape: o.shape })
                .collect()))
        }
        Err(status) => Ok(Err(status)),
    }
}

fn ok_or_fail(r: Result<Vec<Numeric>, tonic::Status>) -> Result<Vec<Numeric>, Stop> {
    r.map_err(|s| Stop::Fail(format!("ModelInfer answered {:?}: {}", s.code(), s.message())))
}

async fn grpc_parameter(ctx: &Ctx) -> Checked {
    let req = request(ctx).await?;
    let outputs = ok_or_fail(grpc_infer(ctx, &req, Some(ParameterChoice::BoolParam(true))).await?)?;
    check_additivity(&outputs, &req)
}

async fn grpc_false(ctx: &Ctx) -> Checked {
    let req = request(ctx).await?;
    let plain = ok_or_fail(grpc_infer(ctx, &req, None).await?)?;
    let off = ok_or_fail(grpc_infer(ctx, &req, Some(ParameterChoice::BoolParam(false))).await?)?;
    ensure!(
        plain.len() == off.len()
            && plain.iter().zip(&off).all(|(a, b)| a.name == b.name && same_values(a, b)),
        "explain: false answered [{}], the plain inference [{}]",
        names(&off),
        names(&plain)
    );
    Ok(())
}

async fn grpc_bad_parameter(ctx: &Ctx) -> Checked {
    let req = request(ctx).await?;
    match grpc_infer(ctx, &req, Some(ParameterChoice::StringParam("yes".into()))).await? {
        Ok(outputs) => fail!("explain: \"yes\" was accepted (outputs [{}])", names(&outputs)),
        Err(s) if s.code() != Code::InvalidArgument => {
            fail!("explain: \"yes\" answered {:?}: {}", s.code(), s.message())
        }
        Err(_) => Ok(()),
    }
}
