//! The suite's reference models, small enough to load anywhere: an identity model for every
//! datatype (`conformance-identity-<datatype>`, `INPUT0` → `OUTPUT0`, shape `[-1, 3]`) and
//! `conformance-add-sub` (`OUTPUT0 = INPUT0 + INPUT1`, `OUTPUT1 = INPUT0 - INPUT1`, FP32
//! `[-1, 4]`, the classic two-output example).
//!
//! They ship as ONNX files in `conformance/models/<name>/1/model.onnx` (written by
//! [`write_models`]; a test keeps the committed files identical to what this module
//! generates). When a server has them loaded, the suite checks every datatype round trip and
//! exact numeric results with the values defined here.

use std::path::Path;

use bytes::Bytes;
use half::{bf16, f16};
use oxserve_protocol::{DataType, TensorData};

use crate::error::{Error, Result};
use crate::onnx;

/// Name of the two-input, two-output FP32 model.
pub const ADD_SUB: &str = "conformance-add-sub";

/// Shape of the identity models' input and output (`-1` is the batch dimension).
pub const IDENTITY_SHAPE: [i64; 2] = [-1, 3];

/// Shape of the add-sub model's inputs and outputs.
pub const ADD_SUB_SHAPE: [i64; 2] = [-1, 4];

/// The shape every reference request uses: two rows.
pub const IDENTITY_REQUEST_SHAPE: [i64; 2] = [2, 3];

/// Shape of the add-sub requests.
pub const ADD_SUB_REQUEST_SHAPE: [i64; 2] = [2, 4];

/// The name of the identity model for `datatype`, e.g. `conformance-identity-fp32`.
pub fn identity_name(datatype: DataType) -> String {
    format!("conformance-identity-{}", datatype.as_str().to_lowercase())
}

/// Every reference model name.
pub fn names() -> Vec<String> {
    let mut names: Vec<String> = DataType::ALL.into_iter().map(identity_name).collect();
    names.push(ADD_SUB.to_owned());
    names
}

/// Six values of `datatype` for the identity round trip, chosen to catch lossy codecs:
/// extremes of every integer type (beyond 2^53 for 64-bit ones), values that are not exact
/// in binary floating point, BYTES with multi-byte UTF-8 and an empty element.
pub fn identity_values(datatype: DataType) -> TensorData {
    match datatype {
        DataType::Bool => TensorData::Bool(vec![true, false, true, true, false, false]),
        DataType::Uint8 => TensorData::Uint8(vec![0, 1, 2, 127, 128, 255]),
        DataType::Uint16 => TensorData::Uint16(vec![0, 1, 255, 256, 32768, u16::MAX]),
        DataType::Uint32 => {
            TensorData::Uint32(vec![0, 1, 65536, 2_147_483_648, 4_000_000_000, u32::MAX])
        }
        DataType::Uint64 => {
            TensorData::Uint64(vec![0, 1, 1 << 32, (1 << 53) + 1, 1 << 63, u64::MAX])
        }
        DataType::Int8 => TensorData::Int8(vec![i8::MIN, -1, 0, 1, 2, i8::MAX]),
        DataType::Int16 => TensorData::Int16(vec![i16::MIN, -1, 0, 1, 256, i16::MAX]),
        DataType::Int32 => TensorData::Int32(vec![i32::MIN, -1, 0, 1, 65536, i32::MAX]),
        DataType::Int64 => {
            TensorData::Int64(vec![i64::MIN, -((1 << 53) + 1), -1, 0, (1 << 53) + 1, i64::MAX])
        }
        DataType::Fp16 => TensorData::Fp16(
            [0.0, 1.0, -2.0, 0.5, 65504.0, 0.1].into_iter().map(f16::from_f32).collect(),
        ),
        DataType::Fp32 => TensorData::Fp32(vec![0.0, 1.0, -2.5, 0.1, 1.0e-7, f32::MAX]),
        DataType::Fp64 => TensorData::Fp64(vec![0.0, 1.0, -2.5, 0.1, 1.0e-300, f64::MAX]),
        DataType::Bf16 => TensorData::Bf16(
            [0.0, 1.0, -2.0, 0.5, 3.0, -1.5].into_iter().map(bf16::from_f32).collect(),
        ),
        DataType::Bytes => TensorData::Bytes(
            ["", "a", "hello", "ünïcødé", "with space", "{\"json\":1}"]
                .into_iter()
                .map(|s| Bytes::from(s.as_bytes().to_vec()))
                .collect(),
        ),
    }
}

/// The two add-sub inputs (shape [`ADD_SUB_REQUEST_SHAPE`]); chosen so that sums and
/// differences are exact in FP32.
pub fn add_sub_inputs() -> (Vec<f32>, Vec<f32>) {
    let a = vec![1.0, 2.0, 3.0, 4.0, 0.5, -1.25, 1024.0, 7.0];
    let b = vec![4.0, 3.0, 2.0, 1.0, 0.25, 2.5, -0.125, 7.0];
    (a, b)
}

/// What add-sub must answer: (`OUTPUT0`, `OUTPUT1`).
pub fn add_sub_expected() -> (Vec<f32>, Vec<f32>) {
    let (a, b) = add_sub_inputs();
    let sum = a.iter().zip(&b).map(|(x, y)| x + y).collect();
    let diff = a.iter().zip(&b).map(|(x, y)| x - y).collect();
    (sum, diff)
}

/// Every reference model as (name, ONNX bytes).
pub fn onnx_models() -> Vec<(String, Vec<u8>)> {
    let mut models: Vec<(String, Vec<u8>)> = DataType::ALL
        .into_iter()
        .map(|dt| {
            let name = identity_name(dt);
            let graph = onnx::GraphProto {
                node: vec![onnx::node("Identity", &["INPUT0"], &["OUTPUT0"])],
                input: vec![onnx::value_info("INPUT0", dt, &IDENTITY_SHAPE)],
                output: vec![onnx::value_info("OUTPUT0", dt, &IDENTITY_SHAPE)],
                ..Default::default()
            };
            let doc = format!("OUTPUT0 = INPUT0 ({dt}); V2 conformance reference model");
            let bytes = onnx::model(&name, &doc, graph);
            (name, bytes)
        })
        .collect();
    let graph = onnx::GraphProto {
        node: vec![
            onnx::node("Add", &["INPUT0", "INPUT1"], &["OUTPUT0"]),
            onnx::node("Sub", &["INPUT0", "INPUT1"], &["OUTPUT1"]),
        ],
        input: vec![
            onnx::value_info("INPUT0", DataType::Fp32, &ADD_SUB_SHAPE),
            onnx::value_info("INPUT1", DataType::Fp32, &ADD_SUB_SHAPE),
        ],
        output: vec![
            onnx::value_info("OUTPUT0", DataType::Fp32, &ADD_SUB_SHAPE),
            onnx::value_info("OUTPUT1", DataType::Fp32, &ADD_SUB_SHAPE),
        ],
        ..Default::default()
    };
    let doc =
        "OUTPUT0 = INPUT0 + INPUT1, OUTPUT1 = INPUT0 - INPUT1; V2 conformance reference model";
    models.push((ADD_SUB.to_owned(), onnx::model(ADD_SUB, doc, graph)));
    models
}

/// Writes every reference model to `<dir>/<name>/1/model.onnx` (a layout both oxserve and
/// Triton load).
pub fn write_models(dir: &Path) -> Result<()> {
    for (name, bytes) in onnx_models() {
        let model_dir = dir.join(&name).join("1");
        let io = |source| Error::Io { context: format!("writing {}", model_dir.display()), source };
        std::fs::create_dir_all(&model_dir).map_err(io)?;
        std::fs::write(model_dir.join("model.onnx"), bytes).map_err(io)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The committed models are exactly what this module generates; on a change, regenerate
    /// them with `cargo run -p oxserve-conformance -- models --out conformance/models`.
    #[test]
    fn committed_models_are_fresh() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("models");
        let mut stale = Vec::new();
        for (name, bytes) in onnx_models() {
            let path = dir.join(&name).join("1").join("model.onnx");
            if std::fs::read(&path).ok().as_deref() != Some(&bytes[..]) {
                stale.push(name);
            }
        }
        assert!(stale.is_empty(), "stale reference models (regenerate them): {stale:?}");
    }

    #[test]
    fn values_fit_the_identity_shape() {
        for dt in DataType::ALL {
            assert_eq!(identity_values(dt).len(), 6, "{dt}");
            assert_eq!(identity_values(dt).datatype(), dt);
        }
    }
}
