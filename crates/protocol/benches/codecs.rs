//! Benchmarks of the REST codecs: a one-row iris request, a 100×20 FP32 request in JSON and
//! in binary tensor data, and a response encode.

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use oxserve_protocol::rest::{
    ResponseEncoding, decode_request, decode_response, encode_request, encode_response,
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
        c.bench_function(&format!("encode_request/{name}"), |b| {
            b.iter(|| encode_request(black_box(&req), binary))
        });
    }
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
