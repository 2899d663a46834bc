//! Encodes a REST request with every input as binary tensor data and every output asked for
//! as binary data (the request parameter `binary_data_output`).
//!
//! `oxserve_protocol::rest::encode_request` covers binary inputs but writes the request's
//! parameters as given; adding `binary_data_output` through it would mean copying every
//! input tensor. Here the JSON header (names, shapes, parameters: no tensor data) is written
//! from borrowed fields and the data goes straight into the body with the protocol's raw
//! codec, so the tensors are copied once, into the body.

use oxserve_protocol::parameters::{Parameter, Parameters};
use oxserve_protocol::raw::encode_raw;
use oxserve_protocol::rest::EncodedBody;
use oxserve_protocol::{DataType, InferRequest};
use serde::Serialize;

/// Request parameter asking for every output as binary data.
const BINARY_DATA_OUTPUT: &str = "binary_data_output";
/// Tensor parameter giving the size of the tensor's binary data.
const BINARY_DATA_SIZE: &str = "binary_data_size";

#[derive(Serialize)]
struct Header<'a> {
    inputs: Vec<Input<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<&'a str>,
    parameters: Parameters,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    outputs: Vec<Output<'a>>,
}

#[derive(Serialize)]
struct Input<'a> {
    name: &'a str,
    datatype: DataType,
    shape: &'a [i64],
    parameters: Parameters,
}

#[derive(Serialize)]
struct Output<'a> {
    name: &'a str,
    #[serde(skip_serializing_if = "Parameters::is_empty")]
    parameters: &'a Parameters,
}

/// The body of `request` with all inputs binary and `binary_data_output: true` (unless the
/// request already sets `binary_data_output` itself).
pub(crate) fn encode_binary_request(request: &InferRequest) -> EncodedBody {
    let mut parameters = request.parameters.clone();
    parameters.entry(BINARY_DATA_OUTPUT.to_owned()).or_insert(Parameter::Bool(true));
    let header = Header {
        inputs: request
            .inputs
            .iter()
            .map(|t| {
                let mut parameters = t.parameters.clone();
                let size = u64::try_from(t.data.raw_byte_len()).unwrap_or(u64::MAX);
                parameters.insert(BINARY_DATA_SIZE.to_owned(), Parameter::Uint64(size));
                Input { name: &t.name, datatype: t.datatype(), shape: &t.shape, parameters }
            })
            .collect(),
        id: request.id.as_deref(),
        parameters,
        outputs: request
            .outputs
            .iter()
            .map(|o| Output { name: &o.name, parameters: &o.parameters })
            .collect(),
    };
    let data_len: usize = request.inputs.iter().map(|t| t.data.raw_byte_len()).sum();
    let mut body = Vec::with_capacity(256 + data_len);
    // Serializing borrowed strings, numbers and scalar parameters into a Vec cannot fail;
    // an `Err` could only come from a non-string map key, which `Parameters` cannot have.
    if serde_json::to_writer(&mut body, &header).is_err() {
        body.clear();
        body.extend_from_slice(b"{}");
    }
    let header_length = body.len();
    for t in &request.inputs {
        encode_raw(&t.data, &mut body);
    }
    EncodedBody { body, header_length: Some(header_length) }
}

#[cfg(test)]
mod tests {
    use oxserve_protocol::rest::{ResponseEncoding, decode_request};
    use oxserve_protocol::{RequestedOutput, Tensor, TensorData};

    use super::*;

    fn request() -> InferRequest {
        InferRequest {
            id: Some("r1".into()),
            parameters: Parameters::from([("priority".to_owned(), Parameter::Int64(2))]),
            inputs: vec![
                Tensor::new("x", vec![2, 2], TensorData::Fp32(vec![1.0, -2.5, 3.0, 4.0])),
                Tensor::new(
                    "s",
                    vec![1],
                    TensorData::Bytes(vec![bytes::Bytes::from_static(b"hi")]),
                ),
            ],
            outputs: vec![RequestedOutput {
                name: "y".into(),
                parameters: Parameters::from([("binary_data".to_owned(), Parameter::Bool(false))]),
            }],
        }
    }

    #[test]
    fn binary_body_decodes_to_the_same_request() {
        let req = request();
        let encoded = encode_binary_request(&req);
        let n = encoded.header_length.unwrap();
        let header: serde_json::Value = serde_json::from_slice(&encoded.body[..n]).unwrap();
        assert_eq!(header["parameters"]["binary_data_output"], true);
        assert_eq!(header["inputs"][0]["parameters"]["binary_data_size"], 16);
        assert!(header["inputs"][0].get("data").is_none());

        let decoded = decode_request(&encoded.body, Some(n)).unwrap();
        assert_eq!(decoded.inputs, req.inputs);
        assert_eq!(decoded.outputs, req.outputs);
        assert_eq!(decoded.id, req.id);
        assert_eq!(decoded.parameters["priority"], Parameter::Int64(2));
        // The server would send `x`-like outputs binary, but `y` asked for JSON.
        let enc = ResponseEncoding::from_request(&decoded);
        let y = Tensor::new("y", vec![1], TensorData::Fp32(vec![0.0]));
        let z = Tensor::new("z", vec![1], TensorData::Fp32(vec![0.0]));
        assert!(!enc.is_binary(&y));
        assert!(enc.is_binary(&z));
    }

    #[test]
    fn an_explicit_binary_data_output_is_kept() {
        let mut req = request();
        req.parameters.insert(BINARY_DATA_OUTPUT.into(), Parameter::Bool(false));
        let encoded = encode_binary_request(&req);
        let decoded = decode_request(&encoded.body, encoded.header_length).unwrap();
        assert_eq!(decoded.parameters[BINARY_DATA_OUTPUT], Parameter::Bool(false));
    }
}
