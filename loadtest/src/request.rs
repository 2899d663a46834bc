//! The benchmark request: one iris row (`float_input`, FP32 `[1, 4]`) for `iris-lr`.

use oxserve_protocol::grpc::inference::model_infer_request::InferInputTensor;
use oxserve_protocol::grpc::inference::{InferTensorContents, ModelInferRequest};

/// The row every benchmark request carries (a setosa from the iris data set).
pub const IRIS_ROW: [f32; 4] = [5.1, 3.5, 1.4, 0.2];

/// The model input name of the iris fixtures.
pub const INPUT_NAME: &str = "float_input";

/// The gRPC `ModelInferRequest` for one iris row, with typed (`fp32_contents`) data or,
/// with `raw`, `raw_input_contents` as Triton's clients send it.
pub fn iris_grpc_request(model: &str, raw: bool) -> ModelInferRequest {
    let mut input = InferInputTensor {
        name: INPUT_NAME.to_owned(),
        datatype: "FP32".to_owned(),
        shape: vec![1, IRIS_ROW.len() as i64],
        ..Default::default()
    };
    let mut raw_input_contents = Vec::new();
    if raw {
        let bytes: Vec<u8> = IRIS_ROW.iter().flat_map(|v| v.to_le_bytes()).collect();
        raw_input_contents.push(bytes.into());
    } else {
        input.contents =
            Some(InferTensorContents { fp32_contents: IRIS_ROW.to_vec(), ..Default::default() });
    }
    ModelInferRequest {
        model_name: model.to_owned(),
        inputs: vec![input],
        raw_input_contents,
        ..Default::default()
    }
}

/// The V2 REST JSON body for one iris row (the same data as [`iris_grpc_request`]).
pub fn iris_rest_body() -> String {
    let row: Vec<String> = IRIS_ROW.iter().map(|v| v.to_string()).collect();
    format!(
        r#"{{"inputs":[{{"name":"{INPUT_NAME}","shape":[1,4],"datatype":"FP32","data":[{}]}}]}}"#,
        row.join(",")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rest_body_is_one_row() {
        let body: serde_json::Value = serde_json::from_str(&iris_rest_body()).unwrap();
        assert_eq!(body["inputs"][0]["shape"], serde_json::json!([1, 4]));
        assert_eq!(body["inputs"][0]["data"], serde_json::json!([5.1, 3.5, 1.4, 0.2]));
    }

    #[test]
    fn raw_and_typed_carry_the_same_row() {
        let typed = iris_grpc_request("iris-lr", false);
        let raw = iris_grpc_request("iris-lr", true);
        let values = &typed.inputs[0].contents.as_ref().unwrap().fp32_contents;
        let decoded: Vec<f32> = raw.raw_input_contents[0]
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
            .collect();
        assert_eq!(values, &decoded);
        assert!(raw.inputs[0].contents.is_none());
    }
}
