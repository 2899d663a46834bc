//! The catalog of cases, grouped by transport, and the helpers they share: building
//! requests from model metadata and judging infer responses against the protocol's schema.
//!
//! Section names cite the Open Inference Protocol specification (KServe's
//! "Open Inference Protocol (V2 Inference Protocol)": *HTTP/REST* and *GRPC* chapters) and, for
//! extensions, the Triton extension documents that define them.

pub mod explain;
pub mod extensions;
pub mod grpc;
pub mod reference;
pub mod rest;

use oxserve_protocol::{DataType, TensorData};
use serde_json::{Value, json};

use crate::catalog::{Case, Stop};
use crate::context::ModelInfo;
use crate::synth;

/// Every case, in the order the runner runs them (state-changing cases last).
pub fn catalog() -> Vec<Case> {
    let mut cases = rest::cases();
    cases.extend(grpc::cases());
    cases.extend(reference::cases());
    cases.extend(explain::cases());
    cases.extend(extensions::cases());
    cases
}

/// Request ids the id-echo cases send: plain ASCII, then non-ASCII UTF-8.
pub const ECHO_IDS: [&str; 2] = ["conformance-id-42", "conformance-id-42/é"];

/// A model name no server serves.
pub const UNKNOWN_MODEL: &str = "conformance-no-such-model";

/// An input built for a request.
#[derive(Debug, Clone)]
pub struct Input {
    /// Input name.
    pub name: String,
    /// Datatype.
    pub datatype: DataType,
    /// Concrete shape.
    pub shape: Vec<i64>,
    /// Values.
    pub data: TensorData,
}

/// Synthesises one valid input per declared input of `model`.
pub fn synth_inputs(model: &ModelInfo) -> Result<Vec<Input>, Stop> {
    if model.inputs.is_empty() {
        return Err(Stop::Skip(format!("model \"{}\" declares no inputs", model.name)));
    }
    model
        .inputs
        .iter()
        .map(|spec| {
            let (shape, data) = synth::input_for(spec).map_err(Stop::Skip)?;
            Ok(Input { name: spec.name.clone(), datatype: data.datatype(), shape, data })
        })
        .collect()
}

/// A JSON inference request body with `inputs`; skips when an input is FP16/BF16, which
/// JSON cannot carry.
pub fn json_request(inputs: &[Input], nested: bool) -> Result<Value, Stop> {
    let inputs: Vec<Value> = inputs
        .iter()
        .map(|i| {
            let data = if nested {
                synth::json_nested(&i.data, &i.shape)
            } else {
                synth::json_flat(&i.data)
            };
            let Some(data) = data else {
                return Err(Stop::Skip(format!(
                    "input \"{}\" is {}, which JSON cannot carry (covered by binary and gRPC cases)",
                    i.name, i.datatype
                )));
            };
            Ok(json!({"name": i.name, "shape": i.shape, "datatype": i.datatype.as_str(), "data": data}))
        })
        .collect::<Result<_, _>>()?;
    Ok(json!({ "inputs": inputs }))
}

/// `/v2/models/{model}[/versions/{v}]` + `suffix`.
pub fn model_path(model: &str, version: Option<&str>, suffix: &str) -> String {
    match version {
        Some(v) => format!("/v2/models/{model}/versions/{v}{suffix}"),
        None => format!("/v2/models/{model}{suffix}"),
    }
}

/// One output of a REST infer response.
#[derive(Debug, Clone)]
pub struct RestOutput {
    /// Output name.
    pub name: String,
    /// Datatype.
    pub datatype: DataType,
    /// Shape.
    pub shape: Vec<i64>,
    /// JSON `data`, absent for binary outputs.
    pub data: Option<Value>,
    /// `parameters.binary_data_size` when the output travels as binary data.
    pub binary_size: Option<usize>,
}

/// A REST infer response that follows the schema.
#[derive(Debug, Clone)]
pub struct RestResponse {
    /// `model_name`.
    pub model_name: String,
    /// `id`, when present.
    pub id: Option<String>,
    /// Outputs in order.
    pub outputs: Vec<RestOutput>,
}

impl RestResponse {
    /// The output named `name`.
    pub fn output(&self, name: &str) -> Option<&RestOutput> {
        self.outputs.iter().find(|o| o.name == name)
    }

    /// Output names in order.
    pub fn names(&self) -> Vec<&str> {
        self.outputs.iter().map(|o| o.name.as_str()).collect()
    }
}

/// Checks an inference response object against the schema (`model_name`, optional
/// `model_version`/`id`/`parameters`, `outputs` of `name`/`shape`/`datatype`/`data` with as
/// many elements as the shape says) and returns it parsed.
///
/// An optional field that is `null` is taken as absent here, so one such defect does not fail
/// every inference case; [`check_optional_fields`] (its own case) judges it.
pub fn parse_rest_response(v: &Value) -> Result<RestResponse, Stop> {
    let fail = |m: String| Stop::Fail(format!("infer response: {m}: {}", truncate(&v.to_string())));
    let obj = v.as_object().ok_or_else(|| fail("not a JSON object".into()))?;
    let model_name = obj
        .get("model_name")
        .and_then(Value::as_str)
        .ok_or_else(|| fail("\"model_name\" missing or not a string".into()))?
        .to_owned();
    if let Some(mv) = obj.get("model_version").filter(|x| !x.is_null())
        && !mv.is_string()
    {
        return Err(fail("\"model_version\" is not a string".into()));
    }
    let id = match obj.get("id") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(_) => return Err(fail("\"id\" is not a string".into())),
    };
    if let Some(p) = obj.get("parameters").filter(|x| !x.is_null())
        && !p.is_object()
    {
        return Err(fail("\"parameters\" is not an object".into()));
    }
    let outputs = obj
        .get("outputs")
        .and_then(Value::as_array)
        .ok_or_else(|| fail("\"outputs\" missing or not an array".into()))?;
    let mut parsed = Vec::new();
    for o in outputs {
        let name = o
            .get("name")
            .and_then(Value::as_str)
            .ok_or_else(|| fail("an output has no \"name\" string".into()))?
            .to_owned();
        let dt_name = o.get("datatype").and_then(Value::as_str).unwrap_or_default();
        let datatype: DataType = dt_name
            .parse()
            .map_err(|_| fail(format!("output \"{name}\" has invalid datatype \"{dt_name}\"")))?;
        let shape = o
            .get("shape")
            .and_then(Value::as_array)
            .and_then(|a| a.iter().map(Value::as_i64).collect::<Option<Vec<i64>>>())
            .filter(|s| s.iter().all(|&d| d >= 0))
            .ok_or_else(|| fail(format!("output \"{name}\" has no valid \"shape\"")))?;
        let binary_size = o
            .get("parameters")
            .and_then(|p| p.get("binary_data_size"))
            .and_then(Value::as_u64)
            .map(|n| n as usize);
        let data = o.get("data").cloned();
        match (&data, binary_size) {
            (Some(d), None) => {
                let count = synth::flatten(d).len();
                let want = synth::element_count(&shape);
                if !d.is_array() || count != want {
                    return Err(fail(format!(
                        "output \"{name}\" has shape {shape:?} ({want} elements) but {count} data elements"
                    )));
                }
            }
            (None, Some(_)) => {}
            (Some(_), Some(_)) => {
                return Err(fail(format!(
                    "output \"{name}\" has both \"data\" and binary_data_size"
                )));
            }
            (None, None) => return Err(fail(format!("output \"{name}\" has no \"data\""))),
        }
        parsed.push(RestOutput { name, datatype, shape, data, binary_size });
    }
    Ok(RestResponse { model_name, id, outputs: parsed })
}

/// Fails when an optional field of an inference response is present with the wrong type
/// (`null` included): `model_version` and `id` must be strings, `parameters` (of the response
/// and of each output) objects.
pub fn check_optional_fields(v: &Value) -> Result<(), Stop> {
    let mut wrong = Vec::new();
    for (key, want_string) in [("model_version", true), ("id", true), ("parameters", false)] {
        if let Some(x) = v.get(key) {
            let ok = if want_string { x.is_string() } else { x.is_object() };
            if !ok {
                wrong.push(format!("\"{key}\" is {x}"));
            }
        }
    }
    for o in v.get("outputs").and_then(Value::as_array).into_iter().flatten() {
        if let Some(x) = o.get("parameters")
            && !x.is_object()
        {
            wrong.push(format!("output \"parameters\" is {x}"));
        }
    }
    if wrong.is_empty() {
        Ok(())
    } else {
        Err(Stop::Fail(format!(
            "optional fields present with the wrong type ({}): {}",
            wrong.join(", "),
            truncate(&v.to_string())
        )))
    }
}

/// The first 300 characters of `s`.
pub fn truncate(s: &str) -> String {
    let mut t: String = s.chars().take(300).collect();
    if s.chars().count() > 300 {
        t.push('…');
    }
    t
}
