//! The binary tensor extension: a JSON header whose inputs (or a response's outputs) carry
//! `binary_data_size`, then the tensors' raw bytes — fixed-size elements, BOOL bytes and
//! 4-byte little-endian BYTES length prefixes — split by `Inference-Header-Content-Length`.
//!
//! The header is built from structured input so that most runs reach the binary part.
//! Asserts: the scanner and the reference decoder agree; a refusal is a 400 with a message;
//! accepted requests and responses encode → decode → encode to the same bytes; when every
//! input is binary, the sizes claimed must add up to the tail exactly.
#![no_main]

use libfuzzer_sys::arbitrary::{self, Arbitrary};
use libfuzzer_sys::fuzz_target;
use oxserve_fuzz::{
    assert_client_error, assert_request_round_trip, assert_response_round_trip, binary_request,
    datatype,
};
use oxserve_protocol::rest;

#[derive(Arbitrary, Debug)]
struct Input {
    name: u8,
    datatype: u8,
    shape: Vec<i8>,
    /// `binary_data_size`; none means the tensor is JSON (`data` then comes from `json`).
    binary_data_size: Option<u16>,
    json: Option<String>,
    /// The request-level `binary_data` of this input's requested output.
    binary_output: Option<bool>,
}

#[derive(Arbitrary, Debug)]
struct Body {
    response: bool,
    inputs: Vec<Input>,
    /// BYTES elements for the tail, each written with its length prefix.
    elements: Vec<Vec<u8>>,
    /// Bytes appended after the elements.
    tail: Vec<u8>,
    /// Shortens the header length the server is told by this much.
    header_skew: u8,
}

fn header(body: &Body) -> String {
    let tensors: Vec<String> = body
        .inputs
        .iter()
        .take(8)
        .map(|i| {
            let shape: Vec<String> = i.shape.iter().take(4).map(|d| d.to_string()).collect();
            let mut t = format!(
                "{{\"name\":\"t{}\",\"datatype\":\"{}\",\"shape\":[{}]",
                i.name % 4,
                datatype(i.datatype),
                shape.join(",")
            );
            match (&i.binary_data_size, &i.json) {
                (Some(n), _) => {
                    t.push_str(&format!(",\"parameters\":{{\"binary_data_size\":{n}}}"))
                }
                (None, Some(j)) => t.push_str(&format!(",\"data\":{j}")),
                (None, None) => {}
            }
            t.push('}');
            t
        })
        .collect();
    let list = if body.response { "outputs" } else { "inputs" };
    let mut h = format!("{{\"{list}\":[{}]", tensors.join(","));
    if body.response {
        h.push_str(",\"model_name\":\"m\"");
    } else {
        let outs: Vec<String> = body
            .inputs
            .iter()
            .filter_map(|i| i.binary_output.map(|b| (i.name, b)))
            .map(|(n, b)| format!("{{\"name\":\"o{n}\",\"parameters\":{{\"binary_data\":{b}}}}}"))
            .collect();
        if !outs.is_empty() {
            h.push_str(&format!(",\"outputs\":[{}]", outs.join(",")));
        }
    }
    h.push('}');
    h
}

fuzz_target!(|body: Body| {
    let head = header(&body);
    let mut bytes = head.clone().into_bytes();
    for e in &body.elements {
        bytes.extend_from_slice(&(e.len() as u32).to_le_bytes());
        bytes.extend_from_slice(e);
    }
    bytes.extend_from_slice(&body.tail);
    let header_length = Some(head.len().saturating_sub(usize::from(body.header_skew % 4)));
    if body.response {
        match rest::decode_response(&bytes, header_length) {
            Ok(resp) => assert_response_round_trip(&resp),
            Err(e) => assert_client_error(&e),
        }
        return;
    }
    let fast = rest::decode_request(&bytes, header_length);
    let reference = rest::decode_request_reference(&bytes, header_length);
    match (&fast, &reference) {
        (Ok(a), Ok(b)) => {
            assert_eq!(binary_request(a).body, binary_request(b).body, "decoders disagree");
            assert_request_round_trip(a);
            let all_binary = body.inputs.iter().take(8).all(|i| i.binary_data_size.is_some());
            if all_binary && body.header_skew % 4 == 0 {
                let claimed: usize = body
                    .inputs
                    .iter()
                    .take(8)
                    .filter_map(|i| i.binary_data_size.map(usize::from))
                    .sum();
                assert_eq!(claimed, bytes.len() - head.len(), "binary sizes must cover the tail");
            }
        }
        (Err(a), Err(b)) => {
            assert_eq!(a.message, b.message, "decoders give different errors");
            assert_client_error(a);
        }
        (Ok(_), Err(e)) => panic!("the scanner accepts what the reference refuses: {e}"),
        (Err(e), Ok(_)) => panic!("the scanner refuses what the reference accepts: {e}"),
    }
});
