//! Helpers shared by the fuzz targets: splitting the fuzzer's bytes into the parts a decoder
//! takes, and the checks several targets make on what a decoder gives back.

use oxserve_protocol::rest::{self, EncodedBody};
use oxserve_protocol::{DataType, InferRequest, InferResponse, ProtocolError};

/// Takes the first byte of `data` (0 when empty) and the rest.
pub fn split_byte(data: &[u8]) -> (u8, &[u8]) {
    match data.split_first() {
        Some((b, rest)) => (*b, rest),
        None => (0, data),
    }
}

/// The datatype a fuzzer byte selects.
pub fn datatype(b: u8) -> DataType {
    DataType::ALL[usize::from(b) % DataType::ALL.len()]
}

/// A request's binary REST encoding: every input as binary tensor data, so it is bit-exact
/// (NaN payloads included), which makes two encodings comparable byte for byte.
pub fn binary_request(req: &InferRequest) -> EncodedBody {
    rest::encode_request(req, true)
}

/// Checks that `req`, decoded from outside bytes, encodes and decodes back to itself: its
/// binary encoding decodes, and encoding that again gives the same bytes; its JSON encoding
/// (binary only where JSON cannot carry the data) decodes too.
pub fn assert_request_round_trip(req: &InferRequest) {
    let first = binary_request(req);
    let again = rest::decode_request(&first.body, first.header_length)
        .unwrap_or_else(|e| panic!("the binary encoding of a decoded request fails: {e}"));
    let second = binary_request(&again);
    assert_eq!(first.body, second.body, "binary encode → decode → encode is not stable");
    assert_eq!(first.header_length, second.header_length);
    let json = rest::encode_request(req, false);
    if let Err(e) = rest::decode_request(&json.body, json.header_length) {
        panic!("the JSON encoding of a decoded request fails: {e}");
    }
}

/// Checks the same of a response, through the client-side decoder.
pub fn assert_response_round_trip(resp: &InferResponse) {
    let enc = rest::ResponseEncoding::all_binary();
    let first = rest::encode_response(resp, &enc);
    let again = rest::decode_response(&first.body, first.header_length)
        .unwrap_or_else(|e| panic!("the binary encoding of a decoded response fails: {e}"));
    let second = rest::encode_response(&again, &enc);
    assert_eq!(first.body, second.body, "binary encode → decode → encode is not stable");
}

/// Checks that a refusal of outside bytes is a client error with a message.
pub fn assert_client_error(e: &ProtocolError) {
    assert_eq!(
        e.code,
        oxserve_protocol::ErrorCode::InvalidArgument,
        "bad input must be refused as invalid: {e}"
    );
    assert!(!e.message.is_empty(), "a refusal must say why");
}

/// Rows to predict on a tree model of `features` features: one of zeros, one of NaNs (a
/// missing value at every split) and one of alternating large magnitudes; `None` when the
/// model claims too many features to build rows for cheaply.
pub fn probe_rows(features: usize) -> Option<(usize, Vec<f32>)> {
    if features > 1 << 14 {
        return None;
    }
    let mut rows = vec![0.0f32; features];
    rows.extend(std::iter::repeat_n(f32::NAN, features));
    rows.extend((0..features).map(|i| if i % 2 == 0 { 1e30 } else { -1e30 }));
    Some((3, rows))
}

/// Checks that a model-load refusal is a load error naming the model.
pub fn assert_load_error(e: &oxserve_server::Error, model: &str) {
    match e {
        oxserve_server::Error::Load { model: m, message } => {
            assert_eq!(m, model);
            assert!(!message.is_empty(), "a refusal must say why");
        }
        other => panic!("a bad model file must be a load error, got {other:?}"),
    }
}

/// The checks on a tree model loaded from outside bytes (the XGBoost and LightGBM loaders):
/// a refusal is a load error naming the model; an accepted model predicts on the
/// [`probe_rows`] of its feature count without panicking, and when it answers, it gives a
/// whole, non-zero number of values per row.
pub fn check_tree_model<M, T>(
    loaded: oxserve_server::Result<M>,
    num_features: impl FnOnce(&M) -> usize,
    predict: impl FnOnce(&M, &[f32]) -> oxserve_server::Result<Vec<T>>,
) {
    let model = match loaded {
        Ok(m) => m,
        Err(e) => return assert_load_error(&e, "fuzz"),
    };
    let Some((n, rows)) = probe_rows(num_features(&model)) else {
        return;
    };
    if let Ok(out) = predict(&model, &rows) {
        assert!(!out.is_empty() && out.len() % n == 0, "{} values for {n} rows", out.len());
    }
}
