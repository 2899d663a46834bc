//! V2 REST inference request bodies (`POST /v2/models/M/infer`), JSON alone or with binary
//! tensor data after an `Inference-Header-Content-Length` header.
//!
//! Asserts: the one-pass scanner and the serde_json reference decoder agree (same request or
//! same error); a refusal is a 400 with a message; an accepted request encodes → decodes →
//! encodes to the same bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use oxserve_fuzz::{assert_client_error, assert_request_round_trip, binary_request, split_byte};
use oxserve_protocol::rest;

fuzz_target!(|data: &[u8]| {
    // The first byte chooses the header length: below 128 none (all JSON); else the last
    // `b - 128` bytes are binary tensor data.
    let (b, body) = split_byte(data);
    let header_length = b.checked_sub(128).map(|tail| body.len().saturating_sub(usize::from(tail)));
    let fast = rest::decode_request(body, header_length);
    let reference = rest::decode_request_reference(body, header_length);
    match (&fast, &reference) {
        (Ok(a), Ok(b)) => {
            assert_eq!(binary_request(a).body, binary_request(b).body, "decoders disagree");
            assert_request_round_trip(a);
        }
        (Err(a), Err(b)) => {
            assert_eq!(a.message, b.message, "decoders give different errors");
            assert_client_error(a);
        }
        (Ok(_), Err(e)) => panic!("the scanner accepts what the reference refuses: {e}"),
        (Err(e), Ok(_)) => panic!("the scanner refuses what the reference accepts: {e}"),
    }
});
