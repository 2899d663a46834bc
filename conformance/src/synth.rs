//! Valid inputs for any model, built from its metadata: variable dimensions become small
//! sizes and values are small, deterministic and valid for every datatype. Also the JSON
//! forms of tensor data (flat and nested) and their exact decoding back into typed data.

use bytes::Bytes;
use half::{bf16, f16};
use oxserve_protocol::{DataType, TensorData};
use serde_json::Value;

use crate::context::TensorSpec;

/// Rows used for a variable batch dimension.
pub const BATCH: i64 = 2;

/// Size used for any other variable dimension.
pub const VARIABLE_DIM: i64 = 3;

/// A concrete shape for `shape`: `-1` at dimension 0 becomes [`BATCH`], elsewhere
/// [`VARIABLE_DIM`].
pub fn concrete_shape(shape: &[i64]) -> Vec<i64> {
    shape
        .iter()
        .enumerate()
        .map(|(i, &d)| match (i, d < 0) {
            (0, true) => BATCH,
            (_, true) => VARIABLE_DIM,
            _ => d,
        })
        .collect()
}

/// Number of elements of a concrete shape (0 when a dimension is negative).
pub fn element_count(shape: &[i64]) -> usize {
    shape.iter().map(|&d| usize::try_from(d).unwrap_or(0)).product()
}

/// `n` small values of `datatype`, the same on every run.
pub fn values(datatype: DataType, n: usize) -> TensorData {
    let small = |i: usize| (i % 4) as u8;
    let real = |i: usize| (i % 7) as f32 * 0.5 + 0.25;
    match datatype {
        DataType::Bool => TensorData::Bool((0..n).map(|i| i % 2 == 0).collect()),
        DataType::Uint8 => TensorData::Uint8((0..n).map(small).collect()),
        DataType::Uint16 => TensorData::Uint16((0..n).map(|i| small(i).into()).collect()),
        DataType::Uint32 => TensorData::Uint32((0..n).map(|i| small(i).into()).collect()),
        DataType::Uint64 => TensorData::Uint64((0..n).map(|i| small(i).into()).collect()),
        DataType::Int8 => TensorData::Int8((0..n).map(|i| small(i) as i8).collect()),
        DataType::Int16 => TensorData::Int16((0..n).map(|i| small(i).into()).collect()),
        DataType::Int32 => TensorData::Int32((0..n).map(|i| small(i).into()).collect()),
        DataType::Int64 => TensorData::Int64((0..n).map(|i| small(i).into()).collect()),
        DataType::Fp16 => TensorData::Fp16((0..n).map(|i| f16::from_f32(real(i))).collect()),
        DataType::Fp32 => TensorData::Fp32((0..n).map(real).collect()),
        DataType::Fp64 => TensorData::Fp64((0..n).map(|i| real(i).into()).collect()),
        DataType::Bf16 => TensorData::Bf16((0..n).map(|i| bf16::from_f32(real(i))).collect()),
        DataType::Bytes => {
            TensorData::Bytes((0..n).map(|i| Bytes::from(format!("s{i}").into_bytes())).collect())
        }
    }
}

/// An input synthesised for `spec`: its concrete shape and values, or why none can be built.
pub fn input_for(spec: &TensorSpec) -> Result<(Vec<i64>, TensorData), String> {
    let Some(datatype) = spec.datatype else {
        return Err(format!(
            "input \"{}\" has unknown datatype \"{}\"",
            spec.name, spec.datatype_name
        ));
    };
    let shape = concrete_shape(&spec.shape);
    let data = values(datatype, element_count(&shape));
    Ok((shape, data))
}

/// The flat JSON array of `data`; `None` for FP16 and BF16, which JSON cannot carry.
pub fn json_flat(data: &TensorData) -> Option<Value> {
    let items: Vec<Value> = match data {
        TensorData::Bool(v) => v.iter().map(|&x| Value::from(x)).collect(),
        TensorData::Uint8(v) => v.iter().map(|&x| Value::from(x)).collect(),
        TensorData::Uint16(v) => v.iter().map(|&x| Value::from(x)).collect(),
        TensorData::Uint32(v) => v.iter().map(|&x| Value::from(x)).collect(),
        TensorData::Uint64(v) => v.iter().map(|&x| Value::from(x)).collect(),
        TensorData::Int8(v) => v.iter().map(|&x| Value::from(x)).collect(),
        TensorData::Int16(v) => v.iter().map(|&x| Value::from(x)).collect(),
        TensorData::Int32(v) => v.iter().map(|&x| Value::from(x)).collect(),
        TensorData::Int64(v) => v.iter().map(|&x| Value::from(x)).collect(),
        TensorData::Fp32(v) => v.iter().map(|&x| Value::from(x)).collect(),
        TensorData::Fp64(v) => v.iter().map(|&x| Value::from(x)).collect(),
        TensorData::Bytes(v) => {
            v.iter().map(|b| Value::from(String::from_utf8_lossy(b).into_owned())).collect()
        }
        TensorData::Fp16(_) | TensorData::Bf16(_) => return None,
    };
    Some(Value::Array(items))
}

/// The nested JSON array of `data` with `shape` (row-major); `None` for FP16 and BF16.
pub fn json_nested(data: &TensorData, shape: &[i64]) -> Option<Value> {
    let Value::Array(flat) = json_flat(data)? else { return None };
    fn nest(items: &[Value], shape: &[i64]) -> Value {
        match shape {
            [] | [_] => Value::Array(items.to_vec()),
            [first, rest @ ..] => {
                let n = usize::try_from(*first).unwrap_or(0).max(1);
                let chunk = items.len() / n;
                Value::Array(
                    (0..n).map(|i| nest(&items[i * chunk..(i + 1) * chunk], rest)).collect(),
                )
            }
        }
    }
    Some(nest(&flat, shape))
}

/// Flattens nested JSON arrays (row-major).
pub fn flatten(v: &Value) -> Vec<&Value> {
    fn walk<'a>(v: &'a Value, out: &mut Vec<&'a Value>) {
        match v {
            Value::Array(items) => items.iter().for_each(|i| walk(i, out)),
            other => out.push(other),
        }
    }
    let mut out = Vec::new();
    walk(v, &mut out);
    out
}

/// Decodes JSON `data` (flat or nested) of `datatype` exactly: integers must be integers in
/// range (no detour through floating point), booleans booleans, BYTES strings.
pub fn data_from_json(datatype: DataType, v: &Value) -> Result<TensorData, String> {
    let items = flatten(v);
    fn each<T>(
        items: &[&Value],
        what: &str,
        f: impl Fn(&Value) -> Option<T>,
    ) -> Result<Vec<T>, String> {
        items
            .iter()
            .enumerate()
            .map(|(i, x)| f(x).ok_or_else(|| format!("element {i} ({x}) is not a valid {what}")))
            .collect()
    }
    let int = |x: &Value| x.as_i64();
    let uint = |x: &Value| x.as_u64();
    Ok(match datatype {
        DataType::Bool => TensorData::Bool(each(&items, "BOOL", Value::as_bool)?),
        DataType::Uint8 => TensorData::Uint8(each(&items, "UINT8", |x| uint(x)?.try_into().ok())?),
        DataType::Uint16 => {
            TensorData::Uint16(each(&items, "UINT16", |x| uint(x)?.try_into().ok())?)
        }
        DataType::Uint32 => {
            TensorData::Uint32(each(&items, "UINT32", |x| uint(x)?.try_into().ok())?)
        }
        DataType::Uint64 => TensorData::Uint64(each(&items, "UINT64", uint)?),
        DataType::Int8 => TensorData::Int8(each(&items, "INT8", |x| int(x)?.try_into().ok())?),
        DataType::Int16 => TensorData::Int16(each(&items, "INT16", |x| int(x)?.try_into().ok())?),
        DataType::Int32 => TensorData::Int32(each(&items, "INT32", |x| int(x)?.try_into().ok())?),
        DataType::Int64 => TensorData::Int64(each(&items, "INT64", int)?),
        DataType::Fp32 => TensorData::Fp32(each(&items, "FP32", |x| x.as_f64().map(|f| f as f32))?),
        DataType::Fp64 => TensorData::Fp64(each(&items, "FP64", Value::as_f64)?),
        DataType::Bytes => TensorData::Bytes(each(&items, "BYTES string", |x| {
            x.as_str().map(|s| Bytes::from(s.as_bytes().to_vec()))
        })?),
        DataType::Fp16 | DataType::Bf16 => {
            return Err(format!("{datatype} has no JSON representation"));
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn variable_dims_become_small() {
        assert_eq!(concrete_shape(&[-1, 4]), vec![2, 4]);
        assert_eq!(concrete_shape(&[-1, -1, 5]), vec![2, 3, 5]);
        assert_eq!(concrete_shape(&[]), Vec::<i64>::new());
    }

    #[test]
    fn nested_json_round_trips() {
        let data = values(DataType::Int32, 6);
        let nested = json_nested(&data, &[2, 3]).unwrap();
        assert_eq!(nested, serde_json::json!([[0, 1, 2], [3, 0, 1]]));
        assert_eq!(data_from_json(DataType::Int32, &nested).unwrap(), data);
    }

    #[test]
    fn lossy_integers_are_refused() {
        let v = serde_json::json!([1.8446744073709552e19]);
        assert!(data_from_json(DataType::Uint64, &v).is_err());
        assert!(data_from_json(DataType::Uint8, &serde_json::json!([256])).is_err());
    }
}
