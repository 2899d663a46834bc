//! The V2 gRPC API: the generated `inference` package (Triton's numbering) and conversions
//! between its messages and the transport-independent types of this crate.
//!
//! Server side: [`decode_infer_request`] turns a `ModelInferRequest` into a validated
//! [`InferRequest`] and [`encode_infer_response`] answers in the representation the client
//! used. Client side: [`encode_infer_request`] and [`decode_infer_response`]. Tensor data
//! travels either typed (`InferTensorContents`, one repeated field per datatype) or raw
//! (`raw_input_contents` / `raw_output_contents`, the little-endian layout of
//! [`crate::raw`]); one message never mixes the two, and FP16/BF16 are raw only.

use std::collections::BTreeMap;

use bytes::Bytes;

use crate::datatype::DataType;
use crate::error::{ProtocolError, Result};
use crate::infer::{
    InferRequest, InferResponse, ModelMetadata, RequestedOutput, ServerMetadata, TensorMetadata,
};
use crate::parameters::{Parameter, Parameters};
use crate::raw::{decode_raw, encode_raw_vec};
use crate::tensor::{Tensor, TensorData};

/// Messages, server and client of the `inference` protobuf package, generated from
/// `proto/grpc_service.proto` and `proto/model_config.proto`.
///
/// Maps are `BTreeMap`s and bytes fields are `bytes::Bytes`. The client is generated without
/// tonic's transport helpers (this crate does no I/O): build it with
/// `GrpcInferenceServiceClient::new(channel)`.
#[allow(missing_docs, clippy::all, clippy::pedantic)]
pub mod inference {
    tonic::include_proto!("inference");
}

use inference::infer_parameter::ParameterChoice;
use inference::model_infer_request::{InferInputTensor, InferRequestedOutputTensor};
use inference::model_infer_response::InferOutputTensor;
use inference::{InferParameter, InferTensorContents, ModelInferRequest, ModelInferResponse};

/// A decoded `ModelInferRequest`: the routing fields plus the validated request.
#[derive(Debug, Clone, PartialEq)]
pub struct DecodedInferRequest {
    /// `model_name` as sent.
    pub model_name: String,
    /// `model_version` as sent; empty means "the server's choice".
    pub model_version: String,
    /// The validated request.
    pub request: InferRequest,
    /// True when the client sent `raw_input_contents`; the response should then be raw too.
    pub raw: bool,
}

// ---------------------------------------------------------------------------------------
// Parameters
// ---------------------------------------------------------------------------------------

impl From<Parameter> for InferParameter {
    fn from(p: Parameter) -> InferParameter {
        let choice = match p {
            Parameter::Bool(b) => ParameterChoice::BoolParam(b),
            Parameter::Int64(i) => ParameterChoice::Int64Param(i),
            Parameter::Uint64(u) => ParameterChoice::Uint64Param(u),
            Parameter::Double(d) => ParameterChoice::DoubleParam(d),
            Parameter::String(s) => ParameterChoice::StringParam(s),
        };
        InferParameter { parameter_choice: Some(choice) }
    }
}

/// Converts one `InferParameter` named `name`; a parameter with no value set is refused.
pub fn parameter_from_proto(name: &str, p: InferParameter) -> Result<Parameter> {
    match p.parameter_choice {
        Some(ParameterChoice::BoolParam(b)) => Ok(Parameter::Bool(b)),
        Some(ParameterChoice::Int64Param(i)) => Ok(Parameter::Int64(i)),
        Some(ParameterChoice::Uint64Param(u)) => Ok(Parameter::Uint64(u)),
        Some(ParameterChoice::DoubleParam(d)) => Ok(Parameter::Double(d)),
        Some(ParameterChoice::StringParam(s)) => Ok(Parameter::String(s)),
        None => Err(ProtocolError::invalid(format!("parameter \"{name}\" has no value"))),
    }
}

/// Converts a protobuf parameters map.
pub fn parameters_from_proto(map: BTreeMap<String, InferParameter>) -> Result<Parameters> {
    map.into_iter()
        .map(|(k, v)| {
            let p = parameter_from_proto(&k, v)?;
            Ok((k, p))
        })
        .collect()
}

/// Converts a parameters map to its protobuf form.
pub fn parameters_to_proto(params: &Parameters) -> BTreeMap<String, InferParameter> {
    params.iter().map(|(k, v)| (k.clone(), InferParameter::from(v.clone()))).collect()
}

// ---------------------------------------------------------------------------------------
// Tensor contents
// ---------------------------------------------------------------------------------------

/// Whether tensors are inputs (of a request) or outputs (of a response); only changes the
/// wording of errors and the name of the raw field.
#[derive(Clone, Copy)]
enum Role {
    Input,
    Output,
}

impl Role {
    fn noun(self) -> &'static str {
        match self {
            Role::Input => "input",
            Role::Output => "output",
        }
    }

    fn raw_field(self) -> &'static str {
        match self {
            Role::Input => "raw_input_contents",
            Role::Output => "raw_output_contents",
        }
    }
}

/// The common shape of `InferInputTensor` and `InferOutputTensor`.
struct WireTensor {
    name: String,
    datatype: String,
    shape: Vec<i64>,
    parameters: BTreeMap<String, InferParameter>,
    contents: Option<InferTensorContents>,
}

/// Names of the non-empty fields of `c`, in field-number order.
fn populated_fields(c: &InferTensorContents) -> Vec<&'static str> {
    let fields = [
        ("bool_contents", c.bool_contents.is_empty()),
        ("int_contents", c.int_contents.is_empty()),
        ("int64_contents", c.int64_contents.is_empty()),
        ("uint_contents", c.uint_contents.is_empty()),
        ("uint64_contents", c.uint64_contents.is_empty()),
        ("fp32_contents", c.fp32_contents.is_empty()),
        ("fp64_contents", c.fp64_contents.is_empty()),
        ("bytes_contents", c.bytes_contents.is_empty()),
    ];
    fields.into_iter().filter(|(_, empty)| !empty).map(|(n, _)| n).collect()
}

/// True when `contents` carries at least one element in any field.
fn has_typed_data(contents: Option<&InferTensorContents>) -> bool {
    contents.is_some_and(|c| !populated_fields(c).is_empty())
}

/// The `InferTensorContents` field that carries `datatype`, `None` for FP16/BF16.
pub fn contents_field(datatype: DataType) -> Option<&'static str> {
    match datatype {
        DataType::Bool => Some("bool_contents"),
        DataType::Int8 | DataType::Int16 | DataType::Int32 => Some("int_contents"),
        DataType::Int64 => Some("int64_contents"),
        DataType::Uint8 | DataType::Uint16 | DataType::Uint32 => Some("uint_contents"),
        DataType::Uint64 => Some("uint64_contents"),
        DataType::Fp32 => Some("fp32_contents"),
        DataType::Fp64 => Some("fp64_contents"),
        DataType::Bytes => Some("bytes_contents"),
        DataType::Fp16 | DataType::Bf16 => None,
    }
}

/// Narrows 32-bit wire integers to `T`, naming the tensor and field on overflow.
fn narrow<S, T>(
    role: Role,
    name: &str,
    datatype: DataType,
    field: &str,
    v: Vec<S>,
) -> Result<Vec<T>>
where
    S: Copy + std::fmt::Display,
    T: TryFrom<S>,
{
    v.into_iter()
        .map(|x| {
            T::try_from(x).map_err(|_| {
                ProtocolError::invalid(format!(
                    "{} \"{name}\": value {x} in {field} is out of range for {datatype}",
                    role.noun()
                ))
            })
        })
        .collect()
}

/// Typed contents of tensor `name` as `datatype`. Only the field for the datatype may
/// carry data.
fn decode_contents(
    role: Role,
    name: &str,
    datatype: DataType,
    contents: InferTensorContents,
) -> Result<TensorData> {
    let Some(field) = contents_field(datatype) else {
        return Err(ProtocolError::invalid(format!(
            "{} \"{name}\": {datatype} data must be sent in {}",
            role.noun(),
            role.raw_field()
        )));
    };
    if let Some(wrong) = populated_fields(&contents).into_iter().find(|f| *f != field) {
        return Err(ProtocolError::invalid(format!(
            "{} \"{name}\": {datatype} data must be in {field}, got {wrong}",
            role.noun()
        )));
    }
    let c = contents;
    Ok(match datatype {
        DataType::Bool => TensorData::Bool(c.bool_contents),
        DataType::Int8 => TensorData::Int8(narrow(role, name, datatype, field, c.int_contents)?),
        DataType::Int16 => TensorData::Int16(narrow(role, name, datatype, field, c.int_contents)?),
        DataType::Int32 => TensorData::Int32(c.int_contents),
        DataType::Int64 => TensorData::Int64(c.int64_contents),
        DataType::Uint8 => TensorData::Uint8(narrow(role, name, datatype, field, c.uint_contents)?),
        DataType::Uint16 => {
            TensorData::Uint16(narrow(role, name, datatype, field, c.uint_contents)?)
        }
        DataType::Uint32 => TensorData::Uint32(c.uint_contents),
        DataType::Uint64 => TensorData::Uint64(c.uint64_contents),
        DataType::Fp32 => TensorData::Fp32(c.fp32_contents),
        DataType::Fp64 => TensorData::Fp64(c.fp64_contents),
        DataType::Bytes => TensorData::Bytes(c.bytes_contents),
        // `contents_field` returned `None` for these above.
        DataType::Fp16 | DataType::Bf16 => TensorData::with_capacity(datatype, 0),
    })
}

/// Typed contents for `data`. FP16/BF16 have no typed field; callers send those raw, and
/// get empty contents here should they not.
fn encode_contents(data: TensorData) -> InferTensorContents {
    let mut c = InferTensorContents::default();
    match data {
        TensorData::Bool(v) => c.bool_contents = v,
        TensorData::Int8(v) => c.int_contents = v.into_iter().map(i32::from).collect(),
        TensorData::Int16(v) => c.int_contents = v.into_iter().map(i32::from).collect(),
        TensorData::Int32(v) => c.int_contents = v,
        TensorData::Int64(v) => c.int64_contents = v,
        TensorData::Uint8(v) => c.uint_contents = v.into_iter().map(u32::from).collect(),
        TensorData::Uint16(v) => c.uint_contents = v.into_iter().map(u32::from).collect(),
        TensorData::Uint32(v) => c.uint_contents = v,
        TensorData::Uint64(v) => c.uint64_contents = v,
        TensorData::Fp32(v) => c.fp32_contents = v,
        TensorData::Fp64(v) => c.fp64_contents = v,
        TensorData::Bytes(v) => c.bytes_contents = v,
        TensorData::Fp16(_) | TensorData::Bf16(_) => {}
    }
    c
}

/// Decodes and validates `tensors`, whose data is typed or in `raw` (one entry per tensor,
/// in order). Returns the tensors and whether raw contents were used.
fn decode_tensors(
    role: Role,
    tensors: Vec<WireTensor>,
    raw: Vec<Bytes>,
) -> Result<(Vec<Tensor>, bool)> {
    let use_raw = !raw.is_empty();
    if use_raw {
        if let Some(t) = tensors.iter().find(|t| has_typed_data(t.contents.as_ref())) {
            return Err(ProtocolError::invalid(format!(
                "{} mixes {} and typed contents ({} \"{}\" has contents)",
                if matches!(role, Role::Input) { "request" } else { "response" },
                role.raw_field(),
                role.noun(),
                t.name
            )));
        }
        if raw.len() != tensors.len() {
            return Err(ProtocolError::invalid(format!(
                "{} has {} entries for {} {}s",
                role.raw_field(),
                raw.len(),
                tensors.len(),
                role.noun()
            )));
        }
    }
    let mut raw = raw.into_iter();
    let mut out = Vec::with_capacity(tensors.len());
    for t in tensors {
        let datatype: DataType = t
            .datatype
            .parse()
            .map_err(|e| ProtocolError::invalid(format!("{} \"{}\": {e}", role.noun(), t.name)))?;
        let data = match raw.next() {
            Some(bytes) => decode_raw(&t.name, datatype, &t.shape, &bytes)?,
            None => decode_contents(role, &t.name, datatype, t.contents.unwrap_or_default())?,
        };
        let tensor = Tensor {
            parameters: parameters_from_proto(t.parameters)?,
            name: t.name,
            shape: t.shape,
            data,
        };
        tensor.validate()?;
        out.push(tensor);
    }
    Ok((out, use_raw))
}

/// Splits `tensors` into (metadata, contents, raw entries): raw when `raw` is set or any
/// tensor is FP16/BF16, typed otherwise.
fn encode_tensors(tensors: Vec<Tensor>, raw: bool) -> (Vec<WireTensor>, Vec<Bytes>) {
    let raw = raw || tensors.iter().any(|t| t.datatype().is_raw_only());
    let mut raw_contents = Vec::new();
    let mut wire = Vec::with_capacity(tensors.len());
    for t in tensors {
        let datatype = t.datatype().as_str().to_owned();
        let parameters = parameters_to_proto(&t.parameters);
        let contents = if raw {
            raw_contents.push(Bytes::from(encode_raw_vec(&t.data)));
            None
        } else {
            Some(encode_contents(t.data))
        };
        wire.push(WireTensor { name: t.name, datatype, shape: t.shape, parameters, contents });
    }
    (wire, raw_contents)
}

fn non_empty(s: String) -> Option<String> {
    if s.is_empty() { None } else { Some(s) }
}

// ---------------------------------------------------------------------------------------
// Server side
// ---------------------------------------------------------------------------------------

/// Decodes a `ModelInferRequest`: parameters of all five kinds, inputs from typed contents
/// or `raw_input_contents` (never both), requested outputs, and validates every input.
pub fn decode_infer_request(req: ModelInferRequest) -> Result<DecodedInferRequest> {
    let wire = req
        .inputs
        .into_iter()
        .map(|i| WireTensor {
            name: i.name,
            datatype: i.datatype,
            shape: i.shape,
            parameters: i.parameters,
            contents: i.contents,
        })
        .collect();
    let (inputs, raw) = decode_tensors(Role::Input, wire, req.raw_input_contents)?;
    let outputs = req
        .outputs
        .into_iter()
        .map(|o| {
            Ok(RequestedOutput { parameters: parameters_from_proto(o.parameters)?, name: o.name })
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(DecodedInferRequest {
        model_name: req.model_name,
        model_version: req.model_version,
        request: InferRequest {
            id: non_empty(req.id),
            parameters: parameters_from_proto(req.parameters)?,
            inputs,
            outputs,
        },
        raw,
    })
}

/// Encodes a response. With `raw` every output goes to `raw_output_contents` (as Triton
/// does for raw requests); otherwise each output gets typed contents, unless some output is
/// FP16/BF16, in which case all go raw since one message cannot mix the two.
pub fn encode_infer_response(resp: InferResponse, raw: bool) -> ModelInferResponse {
    let (wire, raw_output_contents) = encode_tensors(resp.outputs, raw);
    ModelInferResponse {
        model_name: resp.model_name,
        model_version: resp.model_version.unwrap_or_default(),
        id: resp.id.unwrap_or_default(),
        parameters: parameters_to_proto(&resp.parameters),
        outputs: wire
            .into_iter()
            .map(|t| InferOutputTensor {
                name: t.name,
                datatype: t.datatype,
                shape: t.shape,
                parameters: t.parameters,
                contents: t.contents,
            })
            .collect(),
        raw_output_contents,
    }
}

/// A `ModelStreamInfer` message carrying a successful response.
pub fn stream_response(resp: ModelInferResponse) -> inference::ModelStreamInferResponse {
    inference::ModelStreamInferResponse { error_message: String::new(), infer_response: Some(resp) }
}

/// A `ModelStreamInfer` message carrying an error: on a stream, failures of one request
/// travel in `error_message` instead of ending the stream with a status.
pub fn stream_error(e: &ProtocolError) -> inference::ModelStreamInferResponse {
    inference::ModelStreamInferResponse { error_message: e.message.clone(), infer_response: None }
}

// ---------------------------------------------------------------------------------------
// Client side
// ---------------------------------------------------------------------------------------

/// Encodes a request for `model_name` (and `model_version`, empty for the server's
/// choice). With `raw`, or when any input is FP16/BF16, all inputs go to
/// `raw_input_contents`.
pub fn encode_infer_request(
    model_name: &str,
    model_version: &str,
    req: &InferRequest,
    raw: bool,
) -> ModelInferRequest {
    let (wire, raw_input_contents) = encode_tensors(req.inputs.clone(), raw);
    ModelInferRequest {
        model_name: model_name.to_owned(),
        model_version: model_version.to_owned(),
        id: req.id.clone().unwrap_or_default(),
        parameters: parameters_to_proto(&req.parameters),
        inputs: wire
            .into_iter()
            .map(|t| InferInputTensor {
                name: t.name,
                datatype: t.datatype,
                shape: t.shape,
                parameters: t.parameters,
                contents: t.contents,
            })
            .collect(),
        outputs: req
            .outputs
            .iter()
            .map(|o| InferRequestedOutputTensor {
                name: o.name.clone(),
                parameters: parameters_to_proto(&o.parameters),
            })
            .collect(),
        raw_input_contents,
    }
}

/// Decodes a `ModelInferResponse` with the same rules as requests: outputs typed or from
/// `raw_output_contents`, never both, each validated.
pub fn decode_infer_response(resp: ModelInferResponse) -> Result<InferResponse> {
    let wire = resp
        .outputs
        .into_iter()
        .map(|o| WireTensor {
            name: o.name,
            datatype: o.datatype,
            shape: o.shape,
            parameters: o.parameters,
            contents: o.contents,
        })
        .collect();
    let (outputs, _raw) = decode_tensors(Role::Output, wire, resp.raw_output_contents)?;
    Ok(InferResponse {
        model_name: resp.model_name,
        model_version: non_empty(resp.model_version),
        id: non_empty(resp.id),
        parameters: parameters_from_proto(resp.parameters)?,
        outputs,
    })
}

// ---------------------------------------------------------------------------------------
// Metadata
// ---------------------------------------------------------------------------------------

impl From<ServerMetadata> for inference::ServerMetadataResponse {
    fn from(m: ServerMetadata) -> Self {
        inference::ServerMetadataResponse {
            name: m.name,
            version: m.version,
            extensions: m.extensions,
        }
    }
}

impl From<inference::ServerMetadataResponse> for ServerMetadata {
    fn from(m: inference::ServerMetadataResponse) -> Self {
        ServerMetadata { name: m.name, version: m.version, extensions: m.extensions }
    }
}

/// The protobuf message has no `parameters`; they are dropped.
impl From<TensorMetadata> for inference::model_metadata_response::TensorMetadata {
    fn from(t: TensorMetadata) -> Self {
        inference::model_metadata_response::TensorMetadata {
            name: t.name,
            datatype: t.datatype.as_str().to_owned(),
            shape: t.shape,
        }
    }
}

impl TryFrom<inference::model_metadata_response::TensorMetadata> for TensorMetadata {
    type Error = ProtocolError;

    fn try_from(t: inference::model_metadata_response::TensorMetadata) -> Result<Self> {
        let datatype = t
            .datatype
            .parse()
            .map_err(|e| ProtocolError::invalid(format!("tensor metadata \"{}\": {e}", t.name)))?;
        Ok(TensorMetadata { name: t.name, datatype, shape: t.shape, parameters: None })
    }
}

/// The protobuf message has no `parameters`; they are dropped.
impl From<ModelMetadata> for inference::ModelMetadataResponse {
    fn from(m: ModelMetadata) -> Self {
        inference::ModelMetadataResponse {
            name: m.name,
            versions: m.versions,
            platform: m.platform,
            inputs: m.inputs.into_iter().map(Into::into).collect(),
            outputs: m.outputs.into_iter().map(Into::into).collect(),
        }
    }
}

impl TryFrom<inference::ModelMetadataResponse> for ModelMetadata {
    type Error = ProtocolError;

    fn try_from(m: inference::ModelMetadataResponse) -> Result<Self> {
        Ok(ModelMetadata {
            name: m.name,
            versions: m.versions,
            platform: m.platform,
            inputs: m.inputs.into_iter().map(TryInto::try_into).collect::<Result<_>>()?,
            outputs: m.outputs.into_iter().map(TryInto::try_into).collect::<Result<_>>()?,
            parameters: None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::raw::tests::{arb_tensor_parts, bits_eq};
    use half::f16;
    use proptest::prelude::*;
    use prost::Message;

    fn input(
        name: &str,
        datatype: &str,
        shape: Vec<i64>,
        c: Option<InferTensorContents>,
    ) -> InferInputTensor {
        InferInputTensor {
            name: name.into(),
            datatype: datatype.into(),
            shape,
            parameters: BTreeMap::new(),
            contents: c,
        }
    }

    fn request(inputs: Vec<InferInputTensor>, raw: Vec<Bytes>) -> ModelInferRequest {
        ModelInferRequest {
            model_name: "m".into(),
            inputs,
            raw_input_contents: raw,
            ..Default::default()
        }
    }

    fn err(req: ModelInferRequest) -> String {
        let e = decode_infer_request(req).unwrap_err();
        assert_eq!(e.code, crate::ErrorCode::InvalidArgument);
        e.message
    }

    fn all_kinds() -> Parameters {
        Parameters::from([
            ("b".to_owned(), Parameter::Bool(true)),
            ("i".to_owned(), Parameter::Int64(-3)),
            ("u".to_owned(), Parameter::Uint64(u64::MAX)),
            ("d".to_owned(), Parameter::Double(0.25)),
            ("s".to_owned(), Parameter::String("x".into())),
        ])
    }

    fn tensors_bits_eq(a: &[Tensor], b: &[Tensor]) -> bool {
        a.len() == b.len()
            && a.iter().zip(b).all(|(x, y)| {
                x.name == y.name
                    && x.shape == y.shape
                    && x.parameters == y.parameters
                    && bits_eq(&x.data, &y.data)
            })
    }

    proptest! {
        #[test]
        fn request_round_trips_bit_exactly(
            parts in proptest::collection::vec(arb_tensor_parts(), 1..4),
            raw in any::<bool>(),
        ) {
            let inputs: Vec<Tensor> = parts
                .into_iter()
                .enumerate()
                .map(|(i, (shape, data))| Tensor::new(format!("in{i}"), shape, data))
                .collect();
            let forced_raw = raw || inputs.iter().any(|t| t.datatype().is_raw_only());
            let req = InferRequest {
                id: Some("r1".into()),
                parameters: all_kinds(),
                inputs,
                outputs: vec![RequestedOutput { name: "out".into(), parameters: all_kinds() }],
            };
            let wire = encode_infer_request("m", "2", &req, raw);
            prop_assert_eq!(wire.raw_input_contents.is_empty(), !forced_raw);
            // Through the actual protobuf encoding, not just the structs.
            let wire = ModelInferRequest::decode(wire.encode_to_vec().as_slice()).unwrap();
            let back = decode_infer_request(wire).unwrap();
            prop_assert_eq!(&back.model_name, "m");
            prop_assert_eq!(&back.model_version, "2");
            prop_assert_eq!(back.raw, forced_raw);
            prop_assert_eq!(&back.request.id, &req.id);
            prop_assert_eq!(&back.request.parameters, &req.parameters);
            prop_assert_eq!(&back.request.outputs, &req.outputs);
            prop_assert!(tensors_bits_eq(&back.request.inputs, &req.inputs));
        }

        #[test]
        fn response_round_trips_bit_exactly(
            parts in proptest::collection::vec(arb_tensor_parts(), 0..4),
            raw in any::<bool>(),
        ) {
            let outputs: Vec<Tensor> = parts
                .into_iter()
                .enumerate()
                .map(|(i, (shape, data))| {
                    let mut t = Tensor::new(format!("out{i}"), shape, data);
                    t.parameters = all_kinds();
                    t
                })
                .collect();
            let forced_raw = raw || outputs.iter().any(|t| t.datatype().is_raw_only());
            let resp = InferResponse {
                model_name: "m".into(),
                model_version: Some("1".into()),
                id: None,
                parameters: all_kinds(),
                outputs,
            };
            let wire = encode_infer_response(resp.clone(), raw);
            prop_assert_eq!(wire.raw_output_contents.len(), if forced_raw { resp.outputs.len() } else { 0 });
            prop_assert!(wire.outputs.iter().all(|o| o.contents.is_some() != forced_raw));
            let wire = ModelInferResponse::decode(wire.encode_to_vec().as_slice()).unwrap();
            let back = decode_infer_response(wire).unwrap();
            prop_assert_eq!(&back.model_name, "m");
            prop_assert_eq!(&back.model_version, &resp.model_version);
            prop_assert_eq!(&back.id, &None);
            prop_assert_eq!(&back.parameters, &resp.parameters);
            prop_assert!(tensors_bits_eq(&back.outputs, &resp.outputs));
        }
    }

    #[test]
    fn typed_request_decodes_each_field() {
        let c = |f: fn(&mut InferTensorContents)| {
            let mut c = InferTensorContents::default();
            f(&mut c);
            Some(c)
        };
        let req = request(
            vec![
                input("a", "INT8", vec![2], c(|c| c.int_contents = vec![-128, 127])),
                input("b", "UINT16", vec![1], c(|c| c.uint_contents = vec![65535])),
                input(
                    "c",
                    "BYTES",
                    vec![1],
                    c(|c| c.bytes_contents = vec![Bytes::from_static(b"hi")]),
                ),
                input("d", "FP32", vec![0], None),
            ],
            vec![],
        );
        let d = decode_infer_request(req).unwrap();
        assert!(!d.raw);
        assert_eq!(d.request.id, None);
        let data: Vec<_> = d.request.inputs.into_iter().map(|t| t.data).collect();
        assert_eq!(
            data,
            [
                TensorData::Int8(vec![-128, 127]),
                TensorData::Uint16(vec![65535]),
                TensorData::Bytes(vec![Bytes::from_static(b"hi")]),
                TensorData::Fp32(vec![]),
            ]
        );
    }

    #[test]
    fn mixing_raw_and_typed_is_refused() {
        let typed = InferTensorContents { fp32_contents: vec![1.0], ..Default::default() };
        let req = request(
            vec![input("a", "FP32", vec![1], None), input("b", "FP32", vec![1], Some(typed))],
            vec![Bytes::from_static(&[0; 4]), Bytes::from_static(&[0; 4])],
        );
        assert_eq!(
            err(req),
            "request mixes raw_input_contents and typed contents (input \"b\" has contents)"
        );
        // An empty contents message next to raw data carries nothing and is accepted.
        let req = request(
            vec![input("a", "FP32", vec![1], Some(InferTensorContents::default()))],
            vec![Bytes::copy_from_slice(&1.5f32.to_le_bytes())],
        );
        let d = decode_infer_request(req).unwrap();
        assert!(d.raw);
        assert_eq!(d.request.inputs[0].data, TensorData::Fp32(vec![1.5]));
    }

    #[test]
    fn raw_entry_count_must_match_inputs() {
        let req = request(
            vec![input("a", "UINT8", vec![1], None), input("b", "UINT8", vec![1], None)],
            vec![Bytes::from_static(&[1])],
        );
        assert_eq!(err(req), "raw_input_contents has 1 entries for 2 inputs");
    }

    #[test]
    fn raw_size_is_checked() {
        let req =
            request(vec![input("a", "INT32", vec![2], None)], vec![Bytes::from_static(&[0; 7])]);
        assert_eq!(err(req), "tensor \"a\": shape [2] of INT32 needs 8 bytes of raw data, got 7");
    }

    #[test]
    fn half_floats_are_raw_only() {
        let typed = InferTensorContents { fp32_contents: vec![1.0], ..Default::default() };
        let req = request(vec![input("h", "FP16", vec![1], Some(typed))], vec![]);
        assert_eq!(err(req), "input \"h\": FP16 data must be sent in raw_input_contents");
        let req = request(vec![input("h", "BF16", vec![1], None)], vec![]);
        assert_eq!(err(req), "input \"h\": BF16 data must be sent in raw_input_contents");
        let req = request(
            vec![input("h", "FP16", vec![1], None)],
            vec![Bytes::copy_from_slice(&f16::from_f32(0.5).to_le_bytes())],
        );
        let d = decode_infer_request(req).unwrap();
        assert_eq!(d.request.inputs[0].data, TensorData::Fp16(vec![f16::from_f32(0.5)]));
    }

    #[test]
    fn typed_contents_must_use_the_datatype_field() {
        let c = InferTensorContents { int64_contents: vec![1], ..Default::default() };
        let req = request(vec![input("x", "INT32", vec![1], Some(c))], vec![]);
        assert_eq!(err(req), "input \"x\": INT32 data must be in int_contents, got int64_contents");
        let c = InferTensorContents {
            fp32_contents: vec![1.0],
            fp64_contents: vec![1.0],
            ..Default::default()
        };
        let req = request(vec![input("x", "FP32", vec![1], Some(c))], vec![]);
        assert_eq!(err(req), "input \"x\": FP32 data must be in fp32_contents, got fp64_contents");
    }

    #[test]
    fn narrow_integers_are_range_checked() {
        let c = InferTensorContents { int_contents: vec![1, 128], ..Default::default() };
        let req = request(vec![input("x", "INT8", vec![2], Some(c))], vec![]);
        assert_eq!(err(req), "input \"x\": value 128 in int_contents is out of range for INT8");
        let c = InferTensorContents { int_contents: vec![-32769], ..Default::default() };
        let req = request(vec![input("x", "INT16", vec![1], Some(c))], vec![]);
        assert_eq!(err(req), "input \"x\": value -32769 in int_contents is out of range for INT16");
        let c = InferTensorContents { uint_contents: vec![256], ..Default::default() };
        let req = request(vec![input("x", "UINT8", vec![1], Some(c))], vec![]);
        assert_eq!(err(req), "input \"x\": value 256 in uint_contents is out of range for UINT8");
        let c = InferTensorContents { uint_contents: vec![65536], ..Default::default() };
        let req = request(vec![input("x", "UINT16", vec![1], Some(c))], vec![]);
        assert_eq!(
            err(req),
            "input \"x\": value 65536 in uint_contents is out of range for UINT16"
        );
    }

    #[test]
    fn shape_and_datatype_are_validated() {
        let c = InferTensorContents { fp32_contents: vec![1.0; 5], ..Default::default() };
        let req = request(vec![input("x", "FP32", vec![2, 3], Some(c))], vec![]);
        assert_eq!(err(req), "tensor \"x\": shape [2,3] needs 6 elements, got 5");
        let req = request(vec![input("x", "FLOAT", vec![1], None)], vec![]);
        assert_eq!(err(req), "input \"x\": unknown datatype \"FLOAT\"");
        let req = request(vec![input("x", "FP32", vec![-1], None)], vec![]);
        assert_eq!(err(req), "tensor \"x\": shape [-1] has a negative dimension");
    }

    #[test]
    fn parameters_convert_all_kinds_and_refuse_empty() {
        let proto = parameters_to_proto(&all_kinds());
        assert_eq!(proto["u"].parameter_choice, Some(ParameterChoice::Uint64Param(u64::MAX)));
        assert_eq!(proto["d"].parameter_choice, Some(ParameterChoice::DoubleParam(0.25)));
        assert_eq!(parameters_from_proto(proto).unwrap(), all_kinds());
        let mut req = request(vec![], vec![]);
        req.parameters.insert("p".into(), InferParameter { parameter_choice: None });
        assert_eq!(err(req), "parameter \"p\" has no value");
    }

    #[test]
    fn kserve_core_parameters_decode() {
        // A KServe-core client only knows fields 1-3; Triton's 4 (double) and 5 (uint64)
        // must decode too. Hand-encoded: field 4 as fixed64, field 5 as varint.
        let double = [0x21u8, 0, 0, 0, 0, 0, 0, 0xf0, 0x3f]; // tag (4 << 3) | 1, 1.0
        let p = InferParameter::decode(&double[..]).unwrap();
        assert_eq!(parameter_from_proto("d", p).unwrap(), Parameter::Double(1.0));
        let uint = [0x28u8, 0x07]; // tag (5 << 3) | 0, 7
        let p = InferParameter::decode(&uint[..]).unwrap();
        assert_eq!(parameter_from_proto("u", p).unwrap(), Parameter::Uint64(7));
    }

    #[test]
    fn typed_response_goes_raw_when_an_output_is_half() {
        let resp = InferResponse {
            model_name: "m".into(),
            outputs: vec![
                Tensor::new("a", vec![1], TensorData::Int32(vec![7])),
                Tensor::new("h", vec![1], TensorData::Fp16(vec![f16::ONE])),
            ],
            ..Default::default()
        };
        let wire = encode_infer_response(resp, false);
        assert_eq!(wire.raw_output_contents.len(), 2);
        assert_eq!(wire.raw_output_contents[0].as_ref(), &[7, 0, 0, 0]);
        assert!(wire.outputs.iter().all(|o| o.contents.is_none()));
        assert_eq!(wire.outputs[1].datatype, "FP16");
    }

    #[test]
    fn response_decoding_applies_the_same_rules() {
        let resp = ModelInferResponse {
            outputs: vec![InferOutputTensor {
                name: "o".into(),
                datatype: "FP32".into(),
                shape: vec![1],
                parameters: BTreeMap::new(),
                contents: Some(InferTensorContents {
                    fp32_contents: vec![1.0],
                    ..Default::default()
                }),
            }],
            raw_output_contents: vec![Bytes::from_static(&[0; 4])],
            ..Default::default()
        };
        assert_eq!(
            decode_infer_response(resp).unwrap_err().message,
            "response mixes raw_output_contents and typed contents (output \"o\" has contents)"
        );
    }

    #[test]
    fn stream_messages() {
        let ok =
            stream_response(ModelInferResponse { model_name: "m".into(), ..Default::default() });
        assert_eq!(ok.error_message, "");
        assert_eq!(ok.infer_response.map(|r| r.model_name).as_deref(), Some("m"));
        let e = stream_error(&ProtocolError::not_found("unknown model \"x\""));
        assert_eq!(e.error_message, "unknown model \"x\"");
        assert!(e.infer_response.is_none());
    }

    #[test]
    fn metadata_converts_both_ways() {
        let server = ServerMetadata {
            name: "oxserve".into(),
            version: "0.1.0".into(),
            extensions: vec!["model_repository".into()],
        };
        let proto = inference::ServerMetadataResponse::from(server.clone());
        assert_eq!(proto.extensions, ["model_repository"]);
        assert_eq!(ServerMetadata::from(proto), server);

        let model = ModelMetadata {
            name: "m".into(),
            versions: vec!["1".into()],
            platform: "onnxruntime_onnx".into(),
            inputs: vec![TensorMetadata {
                name: "x".into(),
                datatype: DataType::Bytes,
                shape: vec![-1, 3],
                parameters: None,
            }],
            outputs: vec![],
            parameters: None,
        };
        let proto = inference::ModelMetadataResponse::from(model.clone());
        assert_eq!(proto.inputs[0].datatype, "BYTES");
        assert_eq!(ModelMetadata::try_from(proto.clone()).unwrap(), model);
        let mut bad = proto;
        bad.inputs[0].datatype = "STRING".into();
        assert_eq!(
            ModelMetadata::try_from(bad).unwrap_err().message,
            "tensor metadata \"x\": unknown datatype \"STRING\""
        );
    }
}
