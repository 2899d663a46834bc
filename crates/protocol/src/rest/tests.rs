//! Unit and property tests of the V2 REST codec.

use bytes::Bytes;
use half::f16;
use proptest::prelude::*;

use super::*;
use crate::ErrorCode;
use crate::raw::tests::{arb_data_for, bits_eq};

fn err(body: &str, header_length: Option<usize>) -> String {
    let e = decode_request(body.as_bytes(), header_length).unwrap_err();
    assert_eq!(e.code, ErrorCode::InvalidArgument);
    e.message
}

#[test]
fn decodes_nested_and_flat_json() {
    let body = r#"{"id":"r1","parameters":{"p":1},"inputs":[
        {"name":"a","shape":[2,2],"datatype":"FP32","data":[[1,2.5],[3,null]]},
        {"name":"b","shape":[3],"datatype":"BOOL","data":[true,false,true]},
        {"name":"c","shape":[1,2],"datatype":"BYTES","data":["hé","\n"]},
        {"name":"d","shape":[2],"datatype":"INT64","data":[-9223372036854775808, 7],"extra":1}
    ],"outputs":[{"name":"o","parameters":{"binary_data":true}}],"unknown":{}}"#;
    let req = decode_request(body.as_bytes(), None).unwrap();
    assert_eq!(req.id.as_deref(), Some("r1"));
    assert_eq!(req.parameters.get("p"), Some(&Parameter::Int64(1)));
    let TensorData::Fp32(a) = &req.inputs[0].data else { panic!("not FP32") };
    assert_eq!(&a[..3], [1.0, 2.5, 3.0]);
    assert!(a[3].is_nan());
    assert_eq!(req.inputs[1].data, TensorData::Bool(vec![true, false, true]));
    assert_eq!(
        req.inputs[2].data,
        TensorData::Bytes(vec![Bytes::from("hé".as_bytes()), Bytes::from_static(b"\n")])
    );
    assert_eq!(req.inputs[3].data, TensorData::Int64(vec![i64::MIN, 7]));
    assert_eq!(req.outputs[0].name, "o");
    assert_eq!(req.outputs[0].parameters.get("binary_data"), Some(&Parameter::Bool(true)));
}

#[test]
fn decodes_binary_tensor_data() {
    let json = br#"{"inputs":[
        {"name":"a","shape":[2],"datatype":"FP16","parameters":{"binary_data_size":4,"k":"v"}},
        {"name":"b","shape":[1],"datatype":"INT32","data":[5]},
        {"name":"c","shape":[1],"datatype":"BYTES","parameters":{"binary_data_size":6}}]}"#;
    let mut body = json.to_vec();
    body.extend_from_slice(&f16::from_f32(1.5).to_le_bytes());
    body.extend_from_slice(&f16::from_f32(-2.0).to_le_bytes());
    body.extend_from_slice(&[2, 0, 0, 0, 0xff, 0]);
    let req = decode_request(&body, Some(json.len())).unwrap();
    assert_eq!(req.inputs[0].data, TensorData::Fp16(vec![f16::from_f32(1.5), f16::from_f32(-2.0)]));
    assert!(!req.inputs[0].parameters.contains_key("binary_data_size"));
    assert_eq!(req.inputs[0].parameters.get("k"), Some(&Parameter::String("v".into())));
    assert_eq!(req.inputs[1].data, TensorData::Int32(vec![5]));
    assert_eq!(req.inputs[2].data, TensorData::Bytes(vec![Bytes::from_static(&[0xff, 0])]));
}

#[test]
fn request_error_messages() {
    assert_eq!(err("{", None), "malformed JSON: EOF while parsing an object at line 1 column 1");
    assert_eq!(err("{}", None), "missing required field \"inputs\"");
    assert_eq!(
        err(r#"{"inputs":[{"shape":[1],"datatype":"FP32","data":[1]}]}"#, None),
        "input 0: missing required field \"name\""
    );
    assert_eq!(
        err(r#"{"inputs":[{"name":"x","datatype":"FP32","data":[1]}]}"#, None),
        "input \"x\": missing required field \"shape\""
    );
    assert_eq!(
        err(r#"{"inputs":[{"name":"x","shape":[1],"data":[1]}]}"#, None),
        "input \"x\": missing required field \"datatype\""
    );
    assert_eq!(
        err(r#"{"inputs":[{"name":"x","shape":[1],"datatype":"FP32"}]}"#, None),
        "input \"x\": missing required field \"data\""
    );
    assert_eq!(
        err(r#"{"inputs":[{"name":"x","shape":[1],"datatype":"FLOAT","data":[1]}]}"#, None),
        "input \"x\": unknown datatype \"FLOAT\""
    );
    assert_eq!(
        err(r#"{"inputs":[{"name":"x","shape":[1],"datatype":"FP16","data":[1]}]}"#, None),
        "input \"x\": FP16 data is only accepted as binary tensor data"
    );
    assert_eq!(
        err(r#"{"inputs":[{"name":"x","shape":[1],"datatype":"BF16","data":[1]}]}"#, None),
        "input \"x\": BF16 data is only accepted as binary tensor data"
    );
    assert_eq!(
        err(
            r#"{"inputs":[{"name":"x","shape":[2,3],"datatype":"FP32","data":[1,2,3,4,5]}]}"#,
            None
        ),
        "tensor \"x\": shape [2,3] needs 6 elements, got 5"
    );
    assert_eq!(
        err(r#"{"inputs":[{"name":"x","shape":[2],"datatype":"INT8","data":[1,128]}]}"#, None),
        "input \"x\": data element 1: 128 is out of range for INT8"
    );
    assert_eq!(
        err(r#"{"inputs":[{"name":"x","shape":[1],"datatype":"UINT32","data":[0.5]}]}"#, None),
        "input \"x\": data element 0: 0.5 is not an integer (UINT32)"
    );
    assert_eq!(
        err(r#"{"inputs":[{"name":"x","shape":[1],"datatype":"INT32","data":[null]}]}"#, None),
        "input \"x\": data element 0: expected INT32, found null"
    );
    assert_eq!(
        err(r#"{"inputs":[{"name":"x","shape":[1],"datatype":"BYTES","data":[1]}]}"#, None),
        "input \"x\": data element 0: expected BYTES, found a number"
    );
    assert_eq!(
        err(r#"{"inputs":[{"name":"x","shape":[-1],"datatype":"FP32","data":[]}]}"#, None),
        "tensor \"x\": shape [-1] has a negative dimension"
    );
    assert_eq!(
        err(r#"{"inputs":[],"outputs":[{"parameters":{}}]}"#, None),
        "output 0: missing required field \"name\""
    );
}

#[test]
fn binary_data_error_messages() {
    let json = r#"{"inputs":[{"name":"x","shape":[2],"datatype":"FP32","parameters":{"binary_data_size":8}}]}"#;
    let mut short = json.to_owned();
    short.push_str("abcd");
    assert_eq!(
        err(&short, Some(json.len())),
        "input \"x\": binary_data_size is 8 but only 4 bytes of binary tensor data remain"
    );
    assert_eq!(
        err(json, None),
        "input \"x\": binary_data_size is 8 but only 0 bytes of binary tensor data remain"
    );
    let mut extra = json.to_owned();
    extra.push_str("abcdefgh!!");
    assert_eq!(
        err(&extra, Some(json.len())),
        "2 bytes of binary tensor data were not claimed by any binary_data_size"
    );
    assert_eq!(
        err(json, Some(json.len() + 1)),
        format!(
            "inference-header-content-length {} exceeds the body size {}",
            json.len() + 1,
            json.len()
        )
    );
    let wrong = r#"{"inputs":[{"name":"x","shape":[2],"datatype":"FP32","parameters":{"binary_data_size":4}}]}abcd"#;
    assert_eq!(
        err(wrong, Some(wrong.len() - 4)),
        "tensor \"x\": shape [2] of FP32 needs 8 bytes of raw data, got 4"
    );
    let both = r#"{"inputs":[{"name":"x","shape":[1],"datatype":"FP32","data":[1],"parameters":{"binary_data_size":4}}]}abcd"#;
    assert_eq!(
        err(both, Some(both.len() - 4)),
        "input \"x\": has both \"data\" and binary_data_size"
    );
    let neg = r#"{"inputs":[{"name":"x","shape":[1],"datatype":"FP32","parameters":{"binary_data_size":-4}}]}"#;
    assert_eq!(
        err(neg, Some(neg.len())),
        "input \"x\": binary_data_size must be a non-negative integer"
    );
}

#[test]
fn raw_single_input_infers_the_variable_dimension() {
    let meta = |shape: Vec<i64>, datatype| TensorMetadata {
        name: "x".into(),
        datatype,
        shape,
        parameters: None,
    };
    let body: Vec<u8> = (0..6).flat_map(|i| (i as f32).to_le_bytes()).collect();
    let req = decode_raw_single_input(&body, &meta(vec![-1, 3], DataType::Fp32)).unwrap();
    assert_eq!(req.inputs[0].shape, [2, 3]);
    assert_eq!(req.inputs[0].data, TensorData::Fp32(vec![0.0, 1.0, 2.0, 3.0, 4.0, 5.0]));
    let req = decode_raw_single_input(&body, &meta(vec![6], DataType::Fp32)).unwrap();
    assert_eq!(req.inputs[0].shape, [6]);
    let e = decode_raw_single_input(&body, &meta(vec![-1, 4], DataType::Fp32)).unwrap_err();
    assert_eq!(
        e.message,
        "input \"x\": raw body of 24 bytes is not a whole number of FP32 rows of shape [-1,4]"
    );
    let e = decode_raw_single_input(&body, &meta(vec![-1, -1], DataType::Fp32)).unwrap_err();
    assert_eq!(
        e.message,
        "input \"x\": shape [-1,-1] has more than one variable dimension, so a raw body cannot determine it"
    );
    let e = decode_raw_single_input(&body, &meta(vec![5], DataType::Fp32)).unwrap_err();
    assert_eq!(e.message, "tensor \"x\": shape [5] of FP32 needs 20 bytes of raw data, got 24");
    let strings = [1, 0, 0, 0, b'a', 2, 0, 0, 0, b'b', b'c'];
    let req = decode_raw_single_input(&strings, &meta(vec![-1], DataType::Bytes)).unwrap();
    assert_eq!(req.inputs[0].shape, [2]);
    let e = decode_raw_single_input(&strings, &meta(vec![-1, 3], DataType::Bytes)).unwrap_err();
    assert_eq!(e.message, "input \"x\": raw body of 2 elements does not fit shape [-1,3]");
    let e = decode_raw_single_input(&strings[..10], &meta(vec![-1], DataType::Bytes)).unwrap_err();
    assert_eq!(e.message, "tensor \"x\": BYTES element 1 declares 2 bytes, only 1 remain");
}

#[test]
fn response_encoding_follows_the_request() {
    let req = decode_request(
        br#"{"inputs":[],"parameters":{"binary_data_output":true},
             "outputs":[{"name":"a","parameters":{"binary_data":false}},{"name":"b"}]}"#,
        None,
    )
    .unwrap();
    let enc = ResponseEncoding::from_request(&req);
    let resp = InferResponse {
        model_name: "m".into(),
        model_version: Some("1".into()),
        id: Some("r".into()),
        parameters: Parameters::default(),
        outputs: vec![
            Tensor::new("a", vec![2], TensorData::Fp32(vec![0.5, f32::NAN])),
            Tensor::new("b", vec![1], TensorData::Int32(vec![7])),
        ],
    };
    let body = encode_response(&resp, &enc);
    let json_len = body.header_length.unwrap();
    assert_eq!(
        std::str::from_utf8(&body.body[..json_len]).unwrap(),
        r#"{"model_name":"m","model_version":"1","id":"r","outputs":[{"name":"a","datatype":"FP32","shape":[2],"data":[0.5,null]},{"name":"b","datatype":"INT32","shape":[1],"parameters":{"binary_data_size":4}}]}"#
    );
    assert_eq!(&body.body[json_len..], 7i32.to_le_bytes());

    // Without any binary request, plain JSON and no header; FP16 and non-UTF-8 BYTES still
    // go binary.
    let json = encode_response(&resp, &ResponseEncoding::default());
    assert_eq!(json.header_length, None);
    assert!(std::str::from_utf8(&json.body).unwrap().ends_with(r#""data":[7]}]}"#));
    let forced = InferResponse {
        outputs: vec![
            Tensor::new("h", vec![1], TensorData::Fp16(vec![f16::ONE])),
            Tensor::new("s", vec![1], TensorData::Bytes(vec![Bytes::from_static(&[0xc3])])),
            Tensor::new("u", vec![1], TensorData::Bytes(vec![Bytes::from_static(b"ok")])),
        ],
        ..resp.clone()
    };
    let enc = ResponseEncoding::default();
    assert_eq!(
        forced.outputs.iter().map(|t| enc.is_binary(t)).collect::<Vec<_>>(),
        [true, true, false]
    );
    let body = encode_response(&forced, &enc);
    let back = decode_response(&body.body, body.header_length).unwrap();
    assert_eq!(back, forced);
    assert!(ResponseEncoding::all_binary().is_binary(&forced.outputs[2]));
}

#[test]
fn response_decoding_errors() {
    let e = decode_response(br#"{"outputs":[]}"#, None).unwrap_err();
    assert_eq!(e.message, "missing required field \"model_name\"");
    let e = decode_response(br#"{"model_name":"m"}"#, None).unwrap_err();
    assert_eq!(e.message, "missing required field \"outputs\"");
    let e = decode_response(br#"{"model_name":"m","outputs":[{"name":"o","shape":[1]}]}"#, None)
        .unwrap_err();
    assert_eq!(e.message, "output \"o\": missing required field \"datatype\"");
}

/// Data that JSON carries bit-exactly: any value of a JSON-capable datatype, with NaNs
/// canonical (JSON's `null` reads back as the canonical NaN) and UTF-8 BYTES.
fn arb_json_data(datatype: DataType, n: usize) -> BoxedStrategy<TensorData> {
    use proptest::collection::vec;
    match datatype {
        DataType::Fp32 => vec(any::<u32>().prop_map(f32::from_bits), n)
            .prop_map(|v| {
                TensorData::Fp32(
                    v.into_iter().map(|x| if x.is_nan() { f32::NAN } else { x }).collect(),
                )
            })
            .boxed(),
        DataType::Fp64 => vec(any::<u64>().prop_map(f64::from_bits), n)
            .prop_map(|v| {
                TensorData::Fp64(
                    v.into_iter().map(|x| if x.is_nan() { f64::NAN } else { x }).collect(),
                )
            })
            .boxed(),
        DataType::Bytes => vec(".{0,5}".prop_map(|s: String| Bytes::from(s.into_bytes())), n)
            .prop_map(TensorData::Bytes)
            .boxed(),
        other => arb_data_for(other, n),
    }
}

fn arb_shape() -> impl Strategy<Value = Vec<i64>> {
    proptest::collection::vec(0i64..4, 0..4)
}

fn count(shape: &[i64]) -> usize {
    shape.iter().product::<i64>() as usize
}

/// A tensor of any datatype (JSON-capable ones only, with UTF-8 BYTES, when `json_only`).
fn arb_tensor(name: String, json_only: bool) -> impl Strategy<Value = Tensor> {
    let datatypes: Vec<DataType> =
        DataType::ALL.into_iter().filter(|d| !(json_only && d.is_raw_only())).collect();
    (proptest::sample::select(datatypes), arb_shape()).prop_flat_map(move |(dt, shape)| {
        let n = count(&shape);
        // Floats always with canonical NaNs (they may take the JSON path); BYTES only
        // UTF-8 when everything must be JSON (otherwise non-UTF-8 goes binary).
        let canonical = matches!(dt, DataType::Fp32 | DataType::Fp64);
        let data = if json_only || canonical { arb_json_data(dt, n) } else { arb_data_for(dt, n) };
        let name = name.clone();
        (Just(shape), data, any::<bool>()).prop_map(move |(shape, data, with_param)| {
            let mut t = Tensor::new(name.clone(), shape, data);
            if with_param {
                t.parameters.insert("content_type".into(), Parameter::String("np\"".into()));
            }
            t
        })
    })
}

fn arb_tensors(json_only: bool) -> impl Strategy<Value = Vec<Tensor>> {
    // Sometimes more tensors than the encoder keeps its binary flags for on the stack.
    prop_oneof![4 => 0usize..4, 1 => 17usize..20].prop_flat_map(move |n| {
        (0..n).map(|i| arb_tensor(format!("t{i}"), json_only)).collect::<Vec<_>>()
    })
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
    fn json_data_round_trips_bit_exactly(t in arb_tensor("x".into(), true)) {
        let req = InferRequest { inputs: vec![t], ..InferRequest::default() };
        let body = encode_request(&req, false);
        // Only non-UTF-8 BYTES could force binary, and this data is UTF-8.
        prop_assert_eq!(body.header_length, None);
        let back = decode_request(&body.body, None).unwrap();
        prop_assert!(tensors_bits_eq(&back.inputs, &req.inputs), "{:?} != {:?}", back, req);
    }

    #[test]
    fn requests_round_trip(
        inputs in arb_tensors(false),
        binary in any::<bool>(),
        id in proptest::option::of("[a-z\"]{0,4}"),
        binary_output in any::<bool>(),
    ) {
        let mut req = InferRequest { id, inputs, ..InferRequest::default() };
        req.parameters.insert("binary_data_output".into(), Parameter::Bool(binary_output));
        req.outputs.push(RequestedOutput { name: "o".into(), parameters: Parameters::default() });
        let body = encode_request(&req, binary);
        let back = decode_request(&body.body, body.header_length).unwrap();
        prop_assert!(tensors_bits_eq(&back.inputs, &req.inputs), "{:?} != {:?}", back, req);
        prop_assert_eq!(back.id, req.id);
        prop_assert_eq!(back.parameters, req.parameters);
        prop_assert_eq!(back.outputs, req.outputs);
    }

    #[test]
    fn responses_round_trip(
        outputs in arb_tensors(false),
        binary_default in any::<bool>(),
        overrides in proptest::collection::vec(proptest::option::of(any::<bool>()), 4),
    ) {
        let mut req = InferRequest::default();
        req.parameters.insert("binary_data_output".into(), Parameter::Bool(binary_default));
        for (i, o) in overrides.iter().enumerate() {
            let mut parameters = Parameters::default();
            if let Some(b) = o {
                parameters.insert("binary_data".into(), Parameter::Bool(*b));
            }
            req.outputs.push(RequestedOutput { name: format!("t{i}"), parameters });
        }
        let enc = ResponseEncoding::from_request(&req);
        let resp = InferResponse {
            model_name: "m".into(),
            model_version: None,
            id: Some("id".into()),
            parameters: Parameters::default(),
            outputs,
        };
        let body = encode_response(&resp, &enc);
        let any_binary = resp.outputs.iter().any(|t| enc.is_binary(t));
        prop_assert_eq!(body.header_length.is_some(), any_binary);
        let back = decode_response(&body.body, body.header_length).unwrap();
        prop_assert!(tensors_bits_eq(&back.outputs, &resp.outputs), "{:?} != {:?}", back, resp);
        prop_assert_eq!(back.id, resp.id);
        prop_assert_eq!(back.model_name, resp.model_name);
        for (t, o) in resp.outputs.iter().zip(&overrides) {
            let expect = needs_binary(&t.data) || o.unwrap_or(binary_default);
            prop_assert_eq!(enc.is_binary(t), expect);
        }
    }
}

#[test]
fn extreme_floats_round_trip_through_json() {
    let f32s =
        vec![f32::INFINITY, f32::NEG_INFINITY, f32::NAN, f32::MAX, f32::MIN, 1e-45, -0.0, 0.1];
    let f64s = vec![f64::INFINITY, f64::NEG_INFINITY, f64::NAN, f64::MAX, 5e-324, -0.0, 0.1];
    let req = InferRequest {
        inputs: vec![
            Tensor::new("a", vec![8], TensorData::Fp32(f32s)),
            Tensor::new("b", vec![7], TensorData::Fp64(f64s)),
        ],
        ..InferRequest::default()
    };
    let body = encode_request(&req, false);
    assert_eq!(body.header_length, None);
    let text = std::str::from_utf8(&body.body).unwrap();
    assert!(text.contains(r#""data":[1e999,-1e999,null,"#), "{text}");
    let back = decode_request(&body.body, None).unwrap();
    assert!(tensors_bits_eq(&back.inputs, &req.inputs), "{back:?}");
}

proptest! {
    #[test]
    fn arbitrary_bodies_never_panic(
        body in proptest::collection::vec(any::<u8>(), 0..128),
        header in proptest::option::of(0usize..160),
    ) {
        let _ = decode_request(&body, header);
        let _ = decode_response(&body, header);
    }

    #[test]
    fn arbitrary_json_data_never_panics(
        datatype in proptest::sample::select(DataType::ALL.to_vec()),
        data in r#"[\[\]{}",:0-9a-z.eE\\ +-]{0,40}"#,
    ) {
        let body = format!(
            r#"{{"inputs":[{{"name":"x","shape":[2],"datatype":"{datatype}","data":{data}}}]}}"#
        );
        if let Ok(req) = decode_request(body.as_bytes(), None) {
            // Whatever was accepted is a valid tensor.
            prop_assert_eq!(req.inputs[0].data.len(), 2);
        }
    }
}

// ---------------------------------------------------------------------------------------
// The one-pass scanner against the serde_json reference decoder
// ---------------------------------------------------------------------------------------

fn requests_bits_eq(a: &InferRequest, b: &InferRequest) -> bool {
    a.id == b.id
        && a.parameters == b.parameters
        && a.outputs == b.outputs
        && tensors_bits_eq(&a.inputs, &b.inputs)
}

/// Whenever the scanner decodes `body`, the reference decoder decodes it to the same request;
/// and `decode_request` always answers as the reference does. Returns whether the scanner
/// took it.
fn check_against_reference(body: &[u8], header: Option<usize>) -> Result<bool, TestCaseError> {
    let reference = decode_request_reference(body, header);
    let taken = match split_body(body, header) {
        Ok((json, binary)) => match scan::decode_request(json, binary) {
            Ok(fast) => {
                let Ok(reference) = &reference else {
                    return Err(TestCaseError::fail(format!(
                        "scanner accepted what the reference refuses ({reference:?}): {}",
                        String::from_utf8_lossy(body)
                    )));
                };
                prop_assert!(
                    requests_bits_eq(&fast, reference),
                    "{:?} != {:?} for {}",
                    fast,
                    reference,
                    String::from_utf8_lossy(body)
                );
                true
            }
            Err(scan::Bail) => false,
        },
        Err(_) => false,
    };
    match (decode_request(body, header), &reference) {
        (Ok(a), Ok(b)) => prop_assert!(requests_bits_eq(&a, b)),
        (Err(a), Err(b)) => prop_assert_eq!(&a, b),
        (a, b) => prop_assert!(false, "{:?} vs reference {:?}", a, b),
    }
    Ok(taken)
}

fn takes(body: &str) -> bool {
    check_against_reference(body.as_bytes(), None).unwrap()
}

#[test]
fn scanner_takes_common_forms() {
    // As encoders write them, with whitespace, in any member order, with unknown members,
    // escaped strings, parameters of every type and data before its datatype.
    assert!(takes(r#"{"inputs":[]}"#));
    assert!(takes(
        r#" { "id" : "a\"b\u00e9" , "parameters" : {"b":true,"i":-3,"u":18446744073709551615,
        "d":0.1,"s":"x","big":1e300} , "inputs" : [ { "data" : [ [1 , 2.5e-3] ,
        [ -0.0 , null ] ] , "shape" : [ 2 , 2 ] , "datatype" : "FP32" , "extra" : {"a":[{}]},
        "name" : "in\tput" } ] , "outputs" : [ {"name":"o","parameters":{"binary_data":true},
        "x":null} ] , "unknown" : [1, "é", {"k": [true, false, null]}] } "#
    ));
    assert!(takes(
        r#"{"inputs":[{"name":"x","datatype":"BYTES","shape":[3],"data":["a","\u00e9\n","é"]}]}"#
    ));
    assert!(takes(
        r#"{"inputs":[{"name":"x","datatype":"UINT8","shape":[3],"data":[0,255,2.0]}]}"#
    ));
    assert!(takes(
        r#"{"inputs":[{"name":"x","datatype":"INT64","shape":[],"data":-9223372036854775808}]}"#
    ));
    assert!(takes(r#"{"inputs":[{"name":"x","datatype":"BOOL","shape":[0],"data":[]}]}"#));
    assert!(takes(r#"{"inputs":[{"name":"x","shape":[1],"datatype":"FP32","data":[[1]]}]}"#));
    assert!(takes(
        r#"{"inputs":[{"name":"x","datatype":"FP64","shape":[2],"data":[1e999, 0.30000000000000004]}]}"#
    ));
    let binary = r#"{"inputs":[{"name":"x","shape":[1],"datatype":"INT32","parameters":{"binary_data_size":4}}]}"#;
    let mut body = binary.as_bytes().to_vec();
    body.extend_from_slice(&7i32.to_le_bytes());
    assert!(check_against_reference(&body, Some(binary.len())).unwrap());
}

#[test]
fn scanner_leaves_errors_and_rare_forms_to_the_reference() {
    for body in [
        "",
        "{",
        "[]",
        "{}",
        r#"{"inputs":[]} x"#,
        r#"{"inputs":[],}"#,
        r#"{"inputs":[],"inputs":[]}"#,
        r#"{"id":null,"inputs":[]}"#,
        r#"{"\u0069d":"a","inputs":[]}"#,
        r#"{"inputs":[{"name":"x","shape":[-0],"datatype":"FP32","data":[]}]}"#,
        r#"{"inputs":[{"name":"x","shape":[1],"datatype":"FP32","data":null}]}"#,
        r#"{"inputs":[{"name":"x","shape":[1],"datatype":"FP32","data":[01]}]}"#,
        r#"{"inputs":[{"name":"x","shape":[1],"datatype":"FP32","data":[1.]}]}"#,
        r#"{"inputs":[{"name":"x","shape":[1],"datatype":"FP32","data":[1],"data":[2]}]}"#,
        r#"{"inputs":[{"name":"x","shape":[1],"datatype":"INT8","data":[128]}]}"#,
        r#"{"inputs":[{"name":"x","shape":[1],"datatype":"BYTES","data":["\ud800"]}]}"#,
        r#"{"inputs":[{"name":"x","shape":[1],"datatype":"BYTES","data":["a	b"]}]}"#,
        r#"{"inputs":[],"unknown":"\x"}"#,
        r#"{"inputs":[],"parameters":{"p":null}}"#,
        r#"{"inputs":[],"parameters":{"p":1e400}}"#,
        r#"{"inputs":[],"outputs":[{"parameters":{}}]}"#,
    ] {
        assert!(!takes(body), "{body}");
    }
    // Invalid UTF-8 in a string.
    let body = b"{\"id\":\"\xff\",\"inputs\":[]}";
    assert!(!check_against_reference(body, None).unwrap());
    // Deeper than the scanner goes, in data and in an unknown member.
    let deep = |n: usize| format!("{}1{}", "[".repeat(n), "]".repeat(n));
    let body = format!(
        r#"{{"inputs":[{{"name":"x","shape":[1],"datatype":"FP32","data":{}}}]}}"#,
        deep(200)
    );
    assert!(!takes(&body));
    assert!(!takes(&format!(r#"{{"inputs":[],"u":{}}}"#, deep(300))));
    assert!(takes(&format!(r#"{{"inputs":[],"u":{}}}"#, deep(90))));
}

/// Bytes that keep bodies close to JSON when inserted.
const JSONISH: &[u8] = b"{}[],:\"\\0123456789.-+eEnulltruefals \n\tx\xc3\xa9\xff";

#[derive(Debug, Clone)]
enum Edit {
    Delete(proptest::sample::Index),
    Insert(proptest::sample::Index, u8),
    Replace(proptest::sample::Index, u8),
}

fn arb_edit() -> impl Strategy<Value = Edit> {
    let byte = proptest::sample::select(JSONISH);
    prop_oneof![
        any::<proptest::sample::Index>().prop_map(Edit::Delete),
        (any::<proptest::sample::Index>(), byte.clone()).prop_map(|(i, b)| Edit::Insert(i, b)),
        (any::<proptest::sample::Index>(), byte).prop_map(|(i, b)| Edit::Replace(i, b)),
    ]
}

fn apply(body: &mut Vec<u8>, edit: &Edit) {
    if body.is_empty() {
        return;
    }
    match edit {
        Edit::Delete(i) => {
            body.remove(i.index(body.len()));
        }
        Edit::Insert(i, b) => body.insert(i.index(body.len() + 1), *b),
        Edit::Replace(i, b) => {
            let at = i.index(body.len());
            body[at] = *b;
        }
    }
}

/// A JSON value for a tensor member, in one of its accepted or refused forms.
fn arb_member_value() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("null".to_owned()),
        Just("[1,2]".to_owned()),
        Just("[[1],[2]]".to_owned()),
        Just(r#"["a","b"]"#.to_owned()),
        Just("[true,false]".to_owned()),
        Just("[1.5,-0,1e999]".to_owned()),
        Just(r#""FP32""#.to_owned()),
        Just(r#""BYTES""#.to_owned()),
        Just(r#""INT8""#.to_owned()),
        Just(r#""BOOL""#.to_owned()),
        Just(r#"{"binary_data_size":0}"#.to_owned()),
        Just(r#"{"k":"v","n":1.25}"#.to_owned()),
        Just("[2]".to_owned()),
        Just("[1,2]".to_owned()),
        Just(r#""x""#.to_owned()),
        Just("7".to_owned()),
    ]
}

fn arb_tensor_object() -> impl Strategy<Value = String> {
    let keys = proptest::sample::select(vec![
        "name",
        "shape",
        "datatype",
        "data",
        "parameters",
        "other",
        "n\\u0061me",
    ]);
    proptest::collection::vec((keys, arb_member_value()), 0..7).prop_map(|members| {
        let members: Vec<String> = members.iter().map(|(k, v)| format!(r#""{k}":{v}"#)).collect();
        format!("{{{}}}", members.join(","))
    })
}

proptest! {
    /// Encoded requests, some edited into malformed or unusual ones: the scanner agrees
    /// with the reference decoder whenever it answers, and takes every unedited body.
    #[test]
    fn scanner_agrees_with_the_reference_on_edited_bodies(
        inputs in arb_tensors(false),
        binary in any::<bool>(),
        id in proptest::option::of("[a-z\"é]{0,4}"),
        edits in proptest::collection::vec(arb_edit(), 0..4),
    ) {
        let mut req = InferRequest { id, inputs, ..InferRequest::default() };
        req.parameters.insert("binary_data_output".into(), Parameter::Bool(binary));
        req.outputs.push(RequestedOutput { name: "o".into(), parameters: Parameters::default() });
        let encoded = encode_request(&req, binary);
        let mut body = encoded.body.clone();
        for e in &edits {
            apply(&mut body, e);
        }
        let header = encoded.header_length.map(|n| n.min(body.len()));
        let taken = check_against_reference(&body, header)?;
        if edits.is_empty() {
            prop_assert!(taken, "scanner refused an encoded request");
        }
    }

    /// Tensor objects with members in any order, repeated, missing or of the wrong type.
    #[test]
    fn scanner_agrees_with_the_reference_on_odd_tensors(
        tensors in proptest::collection::vec(arb_tensor_object(), 0..3),
    ) {
        let body = format!(r#"{{"inputs":[{}]}}"#, tensors.join(","));
        check_against_reference(body.as_bytes(), None)?;
    }

    #[test]
    fn scanner_agrees_with_the_reference_on_arbitrary_data(
        datatype in proptest::sample::select(DataType::ALL.to_vec()),
        data in r#"[\[\]{}",:0-9a-z.eE\\ +-]{0,40}"#,
        shape in proptest::sample::select(vec!["[2]", "[1,2]", "[]", "[0]"]),
    ) {
        let body = format!(
            r#"{{"inputs":[{{"name":"x","shape":{shape},"datatype":"{datatype}","data":{data}}}]}}"#
        );
        check_against_reference(body.as_bytes(), None)?;
    }

    #[test]
    fn scanner_never_panics_on_arbitrary_bytes(
        body in proptest::collection::vec(proptest::sample::select(JSONISH), 0..96),
    ) {
        check_against_reference(&body, None)?;
    }
}
