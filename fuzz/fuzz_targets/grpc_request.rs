//! gRPC `ModelInferRequest` messages as they arrive on the wire: protobuf bytes → prost →
//! `decode_infer_request` → `InferRequest` (typed contents or `raw_input_contents`,
//! parameters of every kind, requested outputs).
//!
//! Asserts: a refusal is INVALID_ARGUMENT with a message; an accepted request re-encodes
//! (typed and raw) to messages that decode to the same request, and encoding that again gives
//! the same protobuf bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use oxserve_fuzz::assert_client_error;
use oxserve_protocol::grpc::inference::ModelInferRequest;
use oxserve_protocol::grpc::{decode_infer_request, encode_infer_request};
use prost::Message;

fuzz_target!(|data: &[u8]| {
    let Ok(message) = ModelInferRequest::decode(data) else {
        return;
    };
    let decoded = match decode_infer_request(message) {
        Ok(d) => d,
        Err(e) => {
            assert_client_error(&e);
            return;
        }
    };
    let (name, version) = (&decoded.model_name, &decoded.model_version);
    for raw in [true, false] {
        let first = encode_infer_request(name, version, &decoded.request, raw);
        let first_bytes = first.encode_to_vec();
        let again = decode_infer_request(first)
            .unwrap_or_else(|e| panic!("an encoded request (raw: {raw}) fails to decode: {e}"));
        assert_eq!(&again.model_name, name);
        assert_eq!(&again.model_version, version);
        let second = encode_infer_request(name, version, &again.request, raw).encode_to_vec();
        assert_eq!(first_bytes, second, "encode → decode → encode is not stable (raw: {raw})");
    }
});
