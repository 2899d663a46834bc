//! The V2 REST inference codec: JSON requests and responses, the binary tensor data
//! extension (`Inference-Header-Content-Length`) and Triton's raw single-input bodies.
//!
//! A body is a JSON header optionally followed by binary tensor data. Tensors that carry the
//! `binary_data_size` parameter take their elements, in order, from the binary part (in the
//! raw little-endian layout of [`crate::raw`]); the others carry a JSON `data` array, flat or
//! nested, which is parsed straight into the tensor's typed vector.
//!
//! Requests are decoded in one pass by a hand-written scanner (`rest/scan.rs`, numbers in
//! `rest/number.rs`); a body it does not take — malformed, or in a rare form — is decoded
//! again through serde_json, which is the reference for what is accepted and for every
//! error message. Responses are decoded through serde_json.
//!
//! JSON has no NaN: `FP32`/`FP64` elements read `null` as NaN and are written that way (tree
//! models use NaN for missing values); infinities are written as `1e999`/`-1e999`. `FP16` and
//! `BF16` have no JSON form and always travel as binary data.

mod json;
mod number;
mod scan;

pub(crate) use json::{JsonElem, ShapeTracker, WriteJson, parse_into, write_nested, write_str};

use std::borrow::Cow;
use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::value::RawValue;

use crate::datatype::DataType;
use crate::error::{ProtocolError, Result};
use crate::infer::{InferRequest, InferResponse, RequestedOutput, TensorMetadata};
use crate::parameters::{Parameter, Parameters};
use crate::raw::{decode_raw, encode_raw};
use crate::tensor::{Tensor, TensorData, element_count, shape_string};

/// The HTTP header giving the length of the JSON part of a body with binary tensor data.
pub const INFERENCE_HEADER_CONTENT_LENGTH: &str = "inference-header-content-length";

/// Tensor parameter giving the size of the tensor's binary data.
const BINARY_DATA_SIZE: &str = "binary_data_size";
/// Requested-output parameter asking for the output as binary data.
const BINARY_DATA: &str = "binary_data";
/// Request parameter asking for every output as binary data.
const BINARY_DATA_OUTPUT: &str = "binary_data_output";

/// An encoded REST body: JSON, followed by binary tensor data when `header_length` is set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncodedBody {
    pub body: Vec<u8>,
    /// `Some(json_len)` exactly when binary tensor data follows the JSON; the sender then sets
    /// `Inference-Header-Content-Length` and `Content-Type: application/octet-stream`.
    pub header_length: Option<usize>,
}

// ---------------------------------------------------------------------------------------
// Decoding
// ---------------------------------------------------------------------------------------

#[derive(Deserialize)]
struct WireRequest<'a> {
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    parameters: Option<Parameters>,
    #[serde(default, borrow)]
    inputs: Option<Vec<WireTensor<'a>>>,
    #[serde(default)]
    outputs: Option<Vec<WireOutput>>,
}

#[derive(Deserialize)]
struct WireResponse<'a> {
    #[serde(default)]
    model_name: Option<String>,
    #[serde(default)]
    model_version: Option<String>,
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    parameters: Option<Parameters>,
    #[serde(default, borrow)]
    outputs: Option<Vec<WireTensor<'a>>>,
}

#[derive(Deserialize)]
struct WireTensor<'a> {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    shape: Option<Vec<i64>>,
    #[serde(default, borrow)]
    datatype: Option<Cow<'a, str>>,
    #[serde(default)]
    parameters: Option<Parameters>,
    #[serde(default, borrow)]
    data: Option<&'a RawValue>,
}

/// A tensor's members as read from JSON, before any check.
#[derive(Default)]
struct TensorParts<'a> {
    name: Option<String>,
    shape: Option<Vec<i64>>,
    datatype: Option<Cow<'a, str>>,
    parameters: Option<Parameters>,
    data: Option<WireData<'a>>,
}

/// A tensor's `data` member.
enum WireData<'a> {
    /// The JSON text, well-formed, still to parse.
    Text(&'a str),
    /// Already parsed for the tensor's datatype (by the one-pass request scanner).
    Parsed(TensorData),
}

impl<'a> From<WireTensor<'a>> for TensorParts<'a> {
    fn from(w: WireTensor<'a>) -> Self {
        TensorParts {
            name: w.name,
            shape: w.shape,
            datatype: w.datatype,
            parameters: w.parameters,
            data: w.data.map(|raw| WireData::Text(raw.get())),
        }
    }
}

#[derive(Deserialize)]
struct WireOutput {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    parameters: Option<Parameters>,
}

/// Splits a body into its JSON header and binary part.
fn split_body(body: &[u8], header_length: Option<usize>) -> Result<(&[u8], &[u8])> {
    match header_length {
        None => Ok((body, &[])),
        Some(n) => body.split_at_checked(n).ok_or_else(|| {
            ProtocolError::invalid(format!(
                "{INFERENCE_HEADER_CONTENT_LENGTH} {n} exceeds the body size {}",
                body.len()
            ))
        }),
    }
}

fn json_error(e: serde_json::Error) -> ProtocolError {
    ProtocolError::invalid(format!("malformed JSON: {e}"))
}

/// The binary part of a body, consumed tensor by tensor.
struct BinaryCursor<'a> {
    rest: &'a [u8],
}

impl BinaryCursor<'_> {
    fn finish(&self) -> Result<()> {
        if self.rest.is_empty() {
            Ok(())
        } else {
            Err(ProtocolError::invalid(format!(
                "{} bytes of binary tensor data were not claimed by any binary_data_size",
                self.rest.len()
            )))
        }
    }
}

/// Decodes a V2 REST inference request.
///
/// `header_length` is the value of the `Inference-Header-Content-Length` header when
/// present: the first `header_length` bytes are JSON and the rest is binary tensor data,
/// consumed in input order by the inputs that carry `binary_data_size` (the parameter is
/// removed once used). Without it the whole body is JSON. Every input is validated.
///
/// A header length of 0 means Triton's raw single-input body, which needs the model's
/// metadata: route those to [`decode_raw_single_input`] instead.
pub fn decode_request(body: &[u8], header_length: Option<usize>) -> Result<InferRequest> {
    let (header, binary) = split_body(body, header_length)?;
    match scan::decode_request(header, binary) {
        Ok(req) => Ok(req),
        // The one-pass scanner gives up on anything it does not accept; serde_json then
        // decides, with its exact diagnostics.
        Err(scan::Bail) => decode_request_parts(header, binary),
    }
}

/// [`decode_request`] through serde_json alone: the reference the one-pass scanner is
/// tested and benchmarked against.
#[doc(hidden)]
pub fn decode_request_reference(body: &[u8], header_length: Option<usize>) -> Result<InferRequest> {
    let (header, binary) = split_body(body, header_length)?;
    decode_request_parts(header, binary)
}

/// Decodes a request's JSON `header` with serde_json, taking binary tensor data from
/// `binary`.
fn decode_request_parts(header: &[u8], binary: &[u8]) -> Result<InferRequest> {
    let wire: WireRequest<'_> = serde_json::from_slice(header).map_err(json_error)?;
    let wire_inputs =
        wire.inputs.ok_or_else(|| ProtocolError::invalid("missing required field \"inputs\""))?;
    let mut cursor = BinaryCursor { rest: binary };
    let mut inputs = Vec::with_capacity(wire_inputs.len());
    for (i, w) in wire_inputs.into_iter().enumerate() {
        inputs.push(decode_tensor("input", i, w.into(), &mut cursor)?);
    }
    cursor.finish()?;
    let outputs = match wire.outputs {
        None => Vec::new(),
        Some(outs) => outs
            .into_iter()
            .enumerate()
            .map(|(i, o)| {
                let name = o.name.ok_or_else(|| {
                    ProtocolError::invalid(format!("output {i}: missing required field \"name\""))
                })?;
                Ok(RequestedOutput { name, parameters: o.parameters.unwrap_or_default() })
            })
            .collect::<Result<_>>()?,
    };
    Ok(InferRequest {
        id: wire.id,
        parameters: wire.parameters.unwrap_or_default(),
        inputs,
        outputs,
    })
}

/// Decodes a V2 REST inference response (the client side of [`encode_response`]).
pub fn decode_response(body: &[u8], header_length: Option<usize>) -> Result<InferResponse> {
    let (header, binary) = split_body(body, header_length)?;
    let wire: WireResponse<'_> = serde_json::from_slice(header).map_err(json_error)?;
    let model_name = wire
        .model_name
        .ok_or_else(|| ProtocolError::invalid("missing required field \"model_name\""))?;
    let wire_outputs =
        wire.outputs.ok_or_else(|| ProtocolError::invalid("missing required field \"outputs\""))?;
    let mut cursor = BinaryCursor { rest: binary };
    let mut outputs = Vec::with_capacity(wire_outputs.len());
    for (i, w) in wire_outputs.into_iter().enumerate() {
        outputs.push(decode_tensor("output", i, w.into(), &mut cursor)?);
    }
    cursor.finish()?;
    Ok(InferResponse {
        model_name,
        model_version: wire.model_version,
        id: wire.id,
        parameters: wire.parameters.unwrap_or_default(),
        outputs,
    })
}

/// Decodes one input or output (`kind`), taking binary data from `cursor` when it carries
/// `binary_data_size`.
fn decode_tensor(
    kind: &str,
    index: usize,
    w: TensorParts<'_>,
    cursor: &mut BinaryCursor<'_>,
) -> Result<Tensor> {
    let name = w.name.ok_or_else(|| {
        ProtocolError::invalid(format!("{kind} {index}: missing required field \"name\""))
    })?;
    let missing = |field: &str| {
        ProtocolError::invalid(format!("{kind} \"{name}\": missing required field \"{field}\""))
    };
    let shape = w.shape.ok_or_else(|| missing("shape"))?;
    let datatype_name = w.datatype.ok_or_else(|| missing("datatype"))?;
    let datatype: DataType = datatype_name
        .parse()
        .map_err(|e| ProtocolError::invalid(format!("{kind} \"{name}\": {e}")))?;
    let mut parameters = w.parameters.unwrap_or_default();
    let data = match parameters.remove(BINARY_DATA_SIZE) {
        Some(size) => {
            if w.data.is_some() {
                return Err(ProtocolError::invalid(format!(
                    "{kind} \"{name}\": has both \"data\" and binary_data_size"
                )));
            }
            let size = size.as_u64().and_then(|s| usize::try_from(s).ok()).ok_or_else(|| {
                ProtocolError::invalid(format!(
                    "{kind} \"{name}\": binary_data_size must be a non-negative integer"
                ))
            })?;
            let Some((bytes, rest)) = cursor.rest.split_at_checked(size) else {
                return Err(ProtocolError::invalid(format!(
                    "{kind} \"{name}\": binary_data_size is {size} but only {} bytes of binary \
                     tensor data remain",
                    cursor.rest.len()
                )));
            };
            cursor.rest = rest;
            decode_raw(&name, datatype, &shape, bytes)?
        }
        None => {
            let data = w.data.ok_or_else(|| missing("data"))?;
            if datatype.is_raw_only() {
                return Err(ProtocolError::invalid(format!(
                    "{kind} \"{name}\": {datatype} data is only accepted as binary tensor data"
                )));
            }
            match data {
                WireData::Text(text) => {
                    // The declared shape bounds the allocation only as far as the text could
                    // hold that many elements (each takes at least one character and a
                    // separator).
                    let hint = element_count(&name, &shape)?.min(text.len() / 2 + 1);
                    decode_json_data(datatype, text, hint, None).map_err(|msg| {
                        ProtocolError::invalid(format!("{kind} \"{name}\": {msg}"))
                    })?
                }
                WireData::Parsed(data) => data,
            }
        }
    };
    let tensor = Tensor { name, shape, data, parameters };
    tensor.validate()?;
    Ok(tensor)
}

/// Parses JSON `data` text into a typed vector of `datatype`.
pub(crate) fn decode_json_data(
    datatype: DataType,
    text: &str,
    capacity: usize,
    shape: Option<&mut ShapeTracker>,
) -> std::result::Result<TensorData, String> {
    fn typed<T: JsonElem>(
        text: &str,
        capacity: usize,
        shape: Option<&mut ShapeTracker>,
    ) -> std::result::Result<Vec<T>, String> {
        let mut v = Vec::with_capacity(capacity);
        parse_into(text, &mut v, shape)?;
        Ok(v)
    }
    Ok(match datatype {
        DataType::Bool => TensorData::Bool(typed(text, capacity, shape)?),
        DataType::Uint8 => TensorData::Uint8(typed(text, capacity, shape)?),
        DataType::Uint16 => TensorData::Uint16(typed(text, capacity, shape)?),
        DataType::Uint32 => TensorData::Uint32(typed(text, capacity, shape)?),
        DataType::Uint64 => TensorData::Uint64(typed(text, capacity, shape)?),
        DataType::Int8 => TensorData::Int8(typed(text, capacity, shape)?),
        DataType::Int16 => TensorData::Int16(typed(text, capacity, shape)?),
        DataType::Int32 => TensorData::Int32(typed(text, capacity, shape)?),
        DataType::Int64 => TensorData::Int64(typed(text, capacity, shape)?),
        DataType::Fp16 => TensorData::Fp16(typed(text, capacity, shape)?),
        DataType::Fp32 => TensorData::Fp32(typed(text, capacity, shape)?),
        DataType::Fp64 => TensorData::Fp64(typed(text, capacity, shape)?),
        DataType::Bf16 => TensorData::Bf16(typed(text, capacity, shape)?),
        DataType::Bytes => TensorData::Bytes(typed(text, capacity, shape)?),
    })
}

/// Decodes Triton's raw binary request (`Inference-Header-Content-Length: 0`): the whole
/// body is the raw data of the model's only input. The shape comes from `input`, with at most
/// one `-1` dimension inferred from the body size.
pub fn decode_raw_single_input(body: &[u8], input: &TensorMetadata) -> Result<InferRequest> {
    let name = &input.name;
    let datatype = input.datatype;
    let mut variable = input.shape.iter().enumerate().filter(|(_, d)| **d < 0);
    let shape = match (variable.next(), variable.next()) {
        (None, _) => input.shape.clone(),
        (Some(_), Some(_)) => {
            return Err(ProtocolError::invalid(format!(
                "input \"{name}\": shape {} has more than one variable dimension, so a raw \
                 body cannot determine it",
                shape_string(&input.shape)
            )));
        }
        (Some((at, _)), None) => {
            let fixed: Vec<i64> = input.shape.iter().copied().filter(|d| *d >= 0).collect();
            let per_row = element_count(name, &fixed)?;
            let elements = match datatype.element_size() {
                Some(size) => {
                    let unit = per_row.saturating_mul(size);
                    if unit == 0 || !body.len().is_multiple_of(unit) {
                        return Err(ProtocolError::invalid(format!(
                            "input \"{name}\": raw body of {} bytes is not a whole number of \
                             {datatype} rows of shape {}",
                            body.len(),
                            shape_string(&input.shape)
                        )));
                    }
                    body.len() / size
                }
                None => count_bytes_elements(body),
            };
            if per_row == 0 || !elements.is_multiple_of(per_row) {
                return Err(ProtocolError::invalid(format!(
                    "input \"{name}\": raw body of {elements} elements does not fit shape {}",
                    shape_string(&input.shape)
                )));
            }
            let dim = i64::try_from(elements / per_row).map_err(|_| {
                ProtocolError::invalid(format!("input \"{name}\": raw body is too large"))
            })?;
            let mut shape = input.shape.clone();
            if let Some(d) = shape.get_mut(at) {
                *d = dim;
            }
            shape
        }
    };
    let data = decode_raw(name, datatype, &shape, body)?;
    let tensor = Tensor::new(name.clone(), shape, data);
    tensor.validate()?;
    Ok(InferRequest { inputs: vec![tensor], ..InferRequest::default() })
}

/// Counts the length-prefixed BYTES elements of a raw body (a truncated last element counts,
/// so the decoder then reports it precisely).
fn count_bytes_elements(mut body: &[u8]) -> usize {
    let mut n = 0;
    while let Some((prefix, rest)) = body.split_first_chunk::<4>() {
        n += 1;
        let len = u32::from_le_bytes(*prefix) as usize;
        body = rest.get(len..).unwrap_or_default();
    }
    if !body.is_empty() { n + 1 } else { n }
}

// ---------------------------------------------------------------------------------------
// Encoding
// ---------------------------------------------------------------------------------------

/// Which outputs of a response go as binary tensor data, as the request asked.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ResponseEncoding {
    /// The request-level `binary_data_output` parameter.
    binary_by_default: bool,
    /// Each requested output's `binary_data` parameter, when it gave one.
    per_output: BTreeMap<String, bool>,
}

impl ResponseEncoding {
    /// An output goes binary when its requested-output parameter `binary_data` is true, or
    /// when the request parameter `binary_data_output` is true and the output did not say
    /// false.
    pub fn from_request(req: &InferRequest) -> ResponseEncoding {
        let binary_by_default =
            req.parameters.get(BINARY_DATA_OUTPUT).and_then(Parameter::as_bool).unwrap_or(false);
        let per_output = req
            .outputs
            .iter()
            .filter_map(|o| {
                let b = o.parameters.get(BINARY_DATA).and_then(Parameter::as_bool)?;
                Some((o.name.clone(), b))
            })
            .collect();
        ResponseEncoding { binary_by_default, per_output }
    }

    /// Every output as binary data.
    pub fn all_binary() -> ResponseEncoding {
        ResponseEncoding { binary_by_default: true, per_output: BTreeMap::new() }
    }

    /// Whether `output` goes as binary data. FP16/BF16 outputs and BYTES outputs that are
    /// not valid UTF-8 always do, since JSON cannot carry them.
    pub fn is_binary(&self, output: &Tensor) -> bool {
        needs_binary(&output.data)
            || self.per_output.get(&output.name).copied().unwrap_or(self.binary_by_default)
    }
}

/// Data that has no JSON form.
fn needs_binary(data: &TensorData) -> bool {
    match data {
        TensorData::Fp16(_) | TensorData::Bf16(_) => true,
        TensorData::Bytes(v) => v.iter().any(|b| std::str::from_utf8(b).is_err()),
        _ => false,
    }
}

/// Encodes a V2 REST inference response. Binary outputs carry
/// `"parameters": {"binary_data_size": N}` and no `data`; their bytes follow the JSON in
/// output order.
pub fn encode_response(resp: &InferResponse, enc: &ResponseEncoding) -> EncodedBody {
    with_binary_flags(
        &resp.outputs,
        |t| enc.is_binary(t),
        |binary| encode_response_with(resp, binary),
    )
}

fn encode_response_with(resp: &InferResponse, binary: &[bool]) -> EncodedBody {
    let mut out = Vec::with_capacity(256 + resp.outputs.iter().map(json_size_hint).sum::<usize>());
    out.extend_from_slice(b"{\"model_name\":");
    write_str(&resp.model_name, &mut out);
    if let Some(v) = &resp.model_version {
        out.extend_from_slice(b",\"model_version\":");
        write_str(v, &mut out);
    }
    write_common(resp.id.as_deref(), &resp.parameters, &mut out);
    out.extend_from_slice(b",\"outputs\":");
    write_tensors(&resp.outputs, binary, &mut out);
    out.push(b'}');
    finish_body(out, &resp.outputs, binary)
}

/// Encodes a V2 REST inference request (client side). With `binary_inputs` every input goes
/// as binary data; FP16/BF16 inputs and non-UTF-8 BYTES inputs always do.
pub fn encode_request(req: &InferRequest, binary_inputs: bool) -> EncodedBody {
    let is_binary = |t: &Tensor| binary_inputs || needs_binary(&t.data);
    with_binary_flags(&req.inputs, is_binary, |binary| encode_request_with(req, binary))
}

fn encode_request_with(req: &InferRequest, binary: &[bool]) -> EncodedBody {
    let mut out = Vec::with_capacity(256 + req.inputs.iter().map(json_size_hint).sum::<usize>());
    out.push(b'{');
    // `write_common` writes each member with a leading comma; the first member is `inputs`.
    out.extend_from_slice(b"\"inputs\":");
    write_tensors(&req.inputs, binary, &mut out);
    write_common(req.id.as_deref(), &req.parameters, &mut out);
    if !req.outputs.is_empty() {
        out.extend_from_slice(b",\"outputs\":[");
        for (i, o) in req.outputs.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            out.extend_from_slice(b"{\"name\":");
            write_str(&o.name, &mut out);
            if !o.parameters.is_empty() {
                out.extend_from_slice(b",\"parameters\":");
                write_parameters(&o.parameters, None, &mut out);
            }
            out.push(b'}');
        }
        out.push(b']');
    }
    out.push(b'}');
    finish_body(out, &req.inputs, binary)
}

/// Calls `then` with whether each tensor goes as binary data, kept on the stack for the
/// usual handful of tensors.
fn with_binary_flags<R>(
    tensors: &[Tensor],
    is_binary: impl Fn(&Tensor) -> bool,
    then: impl FnOnce(&[bool]) -> R,
) -> R {
    const ON_STACK: usize = 16;
    if tensors.len() > ON_STACK {
        return then(&tensors.iter().map(is_binary).collect::<Vec<_>>());
    }
    let mut flags = [false; ON_STACK];
    for (flag, t) in flags.iter_mut().zip(tensors) {
        *flag = is_binary(t);
    }
    then(flags.get(..tensors.len()).unwrap_or_default())
}

fn json_size_hint(t: &Tensor) -> usize {
    // Roughly a short number and a comma per element.
    t.data.len().saturating_mul(12)
}

/// `,"id":…,"parameters":{…}` when present.
fn write_common(id: Option<&str>, parameters: &Parameters, out: &mut Vec<u8>) {
    if let Some(id) = id {
        out.extend_from_slice(b",\"id\":");
        write_str(id, out);
    }
    if !parameters.is_empty() {
        out.extend_from_slice(b",\"parameters\":");
        write_parameters(parameters, None, out);
    }
}

/// Appends the binary parts after the JSON and sets the header length when there are any.
fn finish_body(mut out: Vec<u8>, tensors: &[Tensor], binary: &[bool]) -> EncodedBody {
    if !binary.contains(&true) {
        return EncodedBody { body: out, header_length: None };
    }
    let json_len = out.len();
    out.reserve(tensors.iter().map(|t| t.data.raw_byte_len()).sum());
    for (t, _) in tensors.iter().zip(binary).filter(|(_, b)| **b) {
        encode_raw(&t.data, &mut out);
    }
    EncodedBody { body: out, header_length: Some(json_len) }
}

fn write_tensors(tensors: &[Tensor], binary: &[bool], out: &mut Vec<u8>) {
    out.push(b'[');
    for (i, (t, &bin)) in tensors.iter().zip(binary).enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(b"{\"name\":");
        write_str(&t.name, out);
        out.extend_from_slice(b",\"datatype\":\"");
        out.extend_from_slice(t.datatype().as_str().as_bytes());
        out.extend_from_slice(b"\",\"shape\":[");
        for (k, d) in t.shape.iter().enumerate() {
            if k > 0 {
                out.push(b',');
            }
            d.write_json(out);
        }
        out.push(b']');
        let binary_size = bin.then(|| t.data.raw_byte_len());
        if binary_size.is_some() || !t.parameters.is_empty() {
            out.extend_from_slice(b",\"parameters\":");
            write_parameters(&t.parameters, binary_size, out);
        }
        if !bin {
            out.extend_from_slice(b",\"data\":");
            write_json_data(&t.data, out);
        }
        out.push(b'}');
    }
    out.push(b']');
}

/// Writes `data` as a flat JSON array.
fn write_json_data(data: &TensorData, out: &mut Vec<u8>) {
    crate::for_each_variant!(data, v => json::write_flat(v, out));
}

/// Writes a parameters object, with `binary_data_size` set (replacing any given value) when
/// `binary_size` is given.
fn write_parameters(params: &Parameters, binary_size: Option<usize>, out: &mut Vec<u8>) {
    out.push(b'{');
    let mut first = true;
    let mut sep = |out: &mut Vec<u8>| {
        if !first {
            out.push(b',');
        }
        first = false;
    };
    for (k, v) in params {
        if binary_size.is_some() && k == BINARY_DATA_SIZE {
            continue;
        }
        sep(out);
        write_str(k, out);
        out.push(b':');
        match v {
            Parameter::Bool(b) => b.write_json(out),
            Parameter::Int64(i) => i.write_json(out),
            Parameter::Uint64(u) => u.write_json(out),
            Parameter::Double(d) => d.write_json(out),
            Parameter::String(s) => write_str(s, out),
        }
    }
    if let Some(size) = binary_size {
        sep(out);
        write_str(BINARY_DATA_SIZE, out);
        out.push(b':');
        (size as u64).write_json(out);
    }
    out.push(b'}');
}

#[cfg(test)]
mod tests;
