//! Benchmarks of the REST codecs: a one-row iris request, a 100×20 FP32 request in JSON and
//! in binary tensor data, and a response encode. Request decoding is also measured through
//! the serde_json reference decoder (`decode_request_reference/…`) for comparison, and on
//! FP32 data written the way Python's `json` writes float32 values (17 significant digits).

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use oxserve_protocol::rest::{
    ResponseEncoding, decode_request, decode_request_reference, decode_response, encode_request,
    encode_response,
};
use oxserve_protocol::{InferRequest, InferResponse, Tensor, TensorData};

fn request(rows: i64, cols: i64) -> InferRequest {
    let data = (0..rows * cols).map(|i| (i as f32) * 0.37 - 11.5).collect();
    InferRequest {
        id: Some("bench".into()),
        inputs: vec![Tensor::new("input", vec![rows, cols], TensorData::Fp32(data))],
        ..InferRequest::default()
    }
}

fn bench_requests(c: &mut Criterion) {
    let cases = [
        ("iris_1x4_json", request(1, 4), false),
        ("fp32_100x20_json", request(100, 20), false),
        ("fp32_100x20_binary", request(100, 20), true),
    ];
    for (name, req, binary) in cases {
        let body = encode_request(&req, binary);
        c.bench_function(&format!("decode_request/{name}"), |b| {
            b.iter(|| decode_request(black_box(&body.body), body.header_length))
        });
        c.bench_function(&format!("decode_request_reference/{name}"), |b| {
            b.iter(|| decode_request_reference(black_box(&body.body), body.header_length))
        });
        c.bench_function(&format!("encode_request/{name}"), |b| {
            b.iter(|| encode_request(black_box(&req), binary))
        });
    }
    // `json.dumps(np.float32 array .tolist())` writes each value's shortest f64 form.
    let long = python_style_body(100, 20);
    c.bench_function("decode_request/fp32_100x20_json_f64_digits", |b| {
        b.iter(|| decode_request(black_box(&long), None))
    });
    c.bench_function("decode_request_reference/fp32_100x20_json_f64_digits", |b| {
        b.iter(|| decode_request_reference(black_box(&long), None))
    });
}

/// A request body whose FP32 data is written with the digits of each value's `f64` form.
fn python_style_body(rows: usize, cols: usize) -> Vec<u8> {
    let mut body = format!(
        r#"{{"id":"bench","inputs":[{{"name":"input","shape":[{rows},{cols}],"datatype":"FP32","data":["#
    );
    for i in 0..rows * cols {
        let x = (i as f32) * 0.37 - 11.5;
        if i > 0 {
            body.push(',');
        }
        body.push_str(ryu::Buffer::new().format(f64::from(x)));
    }
    body.push_str("]}]}");
    body.into_bytes()
}

fn bench_responses(c: &mut Criterion) {
    let probs = (0..300).map(|i| (i as f32) / 300.0).collect();
    let resp = InferResponse {
        model_name: "model".into(),
        model_version: Some("1".into()),
        id: Some("bench".into()),
        outputs: vec![
            Tensor::new("label", vec![100], TensorData::Int64((0..100).collect())),
            Tensor::new("probabilities", vec![100, 3], TensorData::Fp32(probs)),
        ],
        ..InferResponse::default()
    };
    for (name, enc) in
        [("json", ResponseEncoding::default()), ("binary", ResponseEncoding::all_binary())]
    {
        c.bench_function(&format!("encode_response/100_rows_{name}"), |b| {
            b.iter(|| encode_response(black_box(&resp), &enc))
        });
        let body = encode_response(&resp, &enc);
        c.bench_function(&format!("decode_response/100_rows_{name}"), |b| {
            b.iter(|| decode_response(black_box(&body.body), body.header_length))
        });
    }
}

criterion_group!(benches, bench_requests, bench_responses);
criterion_main!(benches);
