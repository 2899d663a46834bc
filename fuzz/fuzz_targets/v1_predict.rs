//! V1 `:predict` bodies (`instances` row-wise or `inputs` columnar) decoded against one of a
//! few model signatures (the first byte picks it).
//!
//! Asserts: a refusal is a 400 with a message; an accepted body yields exactly the model's
//! inputs, each validated, with the model's datatype, its rank and row dims,
//! and the request's tensors encode as a V1 response that is valid JSON.
#![no_main]

use libfuzzer_sys::fuzz_target;
use oxserve_fuzz::{assert_client_error, split_byte};
use oxserve_protocol::v1::{decode_predict, encode_predict};
use oxserve_protocol::{DataType, InferResponse, TensorMetadata};

fn meta(name: &str, datatype: DataType, shape: &[i64]) -> TensorMetadata {
    TensorMetadata { name: name.into(), datatype, shape: shape.to_vec(), parameters: None }
}

fn signature(b: u8) -> Vec<TensorMetadata> {
    match b % 6 {
        0 => vec![meta("input-0", DataType::Fp32, &[-1, 4])],
        1 => vec![meta("x", DataType::Fp64, &[-1])],
        2 => vec![meta("a", DataType::Int64, &[-1, 2]), meta("b", DataType::Bytes, &[-1])],
        3 => vec![meta("t", DataType::Bytes, &[-1, 1])],
        4 => vec![meta("m", DataType::Bool, &[-1, 2, 2])],
        _ => vec![meta("f", DataType::Fp16, &[2, -1])],
    }
}

fuzz_target!(|data: &[u8]| {
    let (b, body) = split_byte(data);
    let inputs = signature(b);
    let req = match decode_predict(body, &inputs) {
        Ok(req) => req,
        Err(e) => {
            assert_client_error(&e);
            return;
        }
    };
    assert_eq!(req.inputs.len(), inputs.len(), "one tensor per model input");
    for (t, m) in req.inputs.iter().zip(&inputs) {
        assert_eq!(t.name, m.name);
        assert_eq!(t.datatype(), m.datatype);
        t.validate().expect("a decoded tensor validates");
        assert_eq!(t.shape.len(), m.shape.len(), "rank of {}: {:?}", m.name, t.shape);
        // Row-wise input stacks rows into a batch of any size; the row dims must fit.
        for (d, want) in t.shape.iter().zip(&m.shape).skip(1) {
            assert!(*want < 0 || d == want, "shape {:?} does not fit {:?}", t.shape, m.shape);
        }
    }
    let resp = InferResponse { model_name: "m".into(), outputs: req.inputs, ..Default::default() };
    let out = encode_predict(&resp);
    // The encoder writes ±infinity as `±1e999` on purpose (Python and JavaScript read it back
    // as infinity); serde_json refuses numbers beyond f64, so those two tokens become the
    // largest finite ones before the grammar check.
    let text = String::from_utf8_lossy(&out).replace("1e999", "1e308");
    if let Err(e) = serde_json::from_str::<serde_json::Value>(&text) {
        panic!("encode_predict wrote invalid JSON ({e}): {}", String::from_utf8_lossy(&out));
    }
});
