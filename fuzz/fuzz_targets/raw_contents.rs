//! Raw tensor contents: the little-endian layout of REST binary data, gRPC
//! `raw_input_contents` and Triton's raw single-input body (`Inference-Header-Content-Length:
//! 0`, shape taken from the model with one `-1` dimension inferred).
//!
//! Asserts: accepted bytes re-encode to exactly the same bytes (BOOL: to 0/1 of the same
//! truthiness) and the tensor validates; a refusal is a 400 naming the tensor.
#![no_main]

use libfuzzer_sys::arbitrary::{self, Arbitrary};
use libfuzzer_sys::fuzz_target;
use oxserve_fuzz::{assert_client_error, datatype};
use oxserve_protocol::raw::{decode_raw, encode_raw_vec};
use oxserve_protocol::rest::decode_raw_single_input;
use oxserve_protocol::{DataType, TensorMetadata};

#[derive(Arbitrary, Debug)]
struct Case {
    datatype: u8,
    shape: Vec<i16>,
    /// Through [`decode_raw_single_input`] (the model's shape, `-1` inferred) when true.
    single_input: bool,
    bytes: Vec<u8>,
}

fuzz_target!(|case: Case| {
    let dt = datatype(case.datatype);
    let shape: Vec<i64> = case.shape.iter().take(4).map(|&d| i64::from(d)).collect();
    let data = if case.single_input {
        let meta = TensorMetadata {
            name: "x".into(),
            datatype: dt,
            shape: shape.iter().map(|&d| if d < 0 { -1 } else { d }).collect(),
            parameters: None,
        };
        match decode_raw_single_input(&case.bytes, &meta) {
            Ok(req) => {
                assert_eq!(req.inputs.len(), 1);
                let t = &req.inputs[0];
                assert_eq!(t.datatype(), dt);
                t.validate().expect("a decoded tensor validates");
                t.data.clone()
            }
            Err(e) => {
                assert_client_error(&e);
                assert!(e.message.contains("\"x\""), "the error names the input: {e}");
                return;
            }
        }
    } else {
        match decode_raw("x", dt, &shape, &case.bytes) {
            Ok(data) => data,
            Err(e) => {
                assert_client_error(&e);
                assert!(e.message.contains("\"x\""), "the error names the tensor: {e}");
                return;
            }
        }
    };
    assert_eq!(data.datatype(), dt);
    let again = encode_raw_vec(&data);
    if dt == DataType::Bool {
        let truth: Vec<bool> = case.bytes.iter().map(|&b| b != 0).collect();
        let back: Vec<bool> = again.iter().map(|&b| b != 0).collect();
        assert_eq!(truth, back, "BOOL raw contents change meaning");
    } else {
        assert_eq!(again, case.bytes, "raw decode → encode changes the bytes");
    }
});
