//! The V1 (TF-Serving / KServe V1) API: `:predict` request and response bodies, and the small
//! model status types of `GET /v1/models/{m}` and `GET /v1/models`.
//!
//! A predict request is either row-wise, `{"instances": [row, …]}`, or columnar,
//! `{"inputs": …}`. Rows are stacked along a new dimension 0 into one tensor per model input,
//! of the input's datatype, so a V1 request becomes an ordinary [`InferRequest`]. Responses
//! are written as `{"predictions": [row, …]}`.
//!
//! Not supported: TF-Serving's `{"b64": "…"}` objects in requests (BYTES must be JSON strings)
//! and `signature_name` (ignored).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use crate::datatype::DataType;
use crate::error::{ProtocolError, Result};
use crate::infer::{InferRequest, InferResponse, TensorMetadata};
use crate::rest::{JsonElem, ShapeTracker, WriteJson, parse_into, write_nested, write_str};
use crate::tensor::{Tensor, TensorData, shape_string};

/// `GET /v1/models/{m}`: whether the model is ready.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct V1ModelStatus {
    pub name: String,
    pub ready: bool,
}

/// `GET /v1/models`: the names of the served models.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct V1ModelList {
    pub models: Vec<String>,
}

#[derive(Deserialize)]
struct PredictBody<'a> {
    #[serde(default, borrow)]
    instances: Option<&'a RawValue>,
    #[serde(default, borrow)]
    inputs: Option<&'a RawValue>,
}

/// One model input's rows as JSON text, with where each came from for error messages.
struct Rows<'a> {
    meta: &'a TensorMetadata,
    /// `(instance index, JSON text)`; a single entry with no index for columnar input.
    texts: Vec<(Option<usize>, &'a str)>,
}

fn is_object(raw: &RawValue) -> bool {
    raw.get().trim_start().starts_with('{')
}

fn instance_prefix(index: Option<usize>) -> String {
    index.map(|i| format!("instance {i}: ")).unwrap_or_default()
}

/// Decodes a V1 `:predict` body for a model with `inputs`.
///
/// Row-wise (`instances`): for a single-input model each instance is one row — a scalar or a
/// (nested) list matching the input's dimensions after the first; for several inputs each
/// instance is an object `{input_name: row}` (a single-input model accepts that too). The
/// rows are stacked into one tensor `[N, …]` per input. Columnar (`inputs`): a (nested) list
/// holding the whole tensor of a single-input model, or an object of input name → tensor.
pub fn decode_predict(body: &[u8], inputs: &[TensorMetadata]) -> Result<InferRequest> {
    let wire: PredictBody<'_> = serde_json::from_slice(body)
        .map_err(|e| ProtocolError::invalid(format!("malformed JSON: {e}")))?;
    if inputs.is_empty() {
        return Err(ProtocolError::invalid("the model has no inputs to predict from"));
    }
    let tensors = match (wire.instances, wire.inputs) {
        (Some(_), Some(_)) => {
            return Err(ProtocolError::invalid(
                "the request has both \"instances\" and \"inputs\"; send one",
            ));
        }
        (None, None) => {
            return Err(ProtocolError::invalid(
                "missing required field \"instances\" or \"inputs\"",
            ));
        }
        (Some(instances), None) => decode_instances(instances, inputs)?,
        (None, Some(columns)) => decode_columns(columns, inputs)?,
    };
    Ok(InferRequest { inputs: tensors, ..InferRequest::default() })
}

fn decode_instances(instances: &RawValue, inputs: &[TensorMetadata]) -> Result<Vec<Tensor>> {
    let rows: Vec<&RawValue> = serde_json::from_str(instances.get())
        .map_err(|_| ProtocolError::invalid("\"instances\" must be a list"))?;
    let named = inputs.len() > 1 || rows.first().is_some_and(|r| is_object(r));
    let mut per_input: Vec<Rows<'_>> =
        inputs.iter().map(|meta| Rows { meta, texts: Vec::with_capacity(rows.len()) }).collect();
    for (i, row) in rows.iter().enumerate() {
        if !named {
            if let Some(r) = per_input.first_mut() {
                r.texts.push((Some(i), row.get()));
            }
            continue;
        }
        let object: BTreeMap<String, &RawValue> =
            serde_json::from_str(row.get()).map_err(|_| {
                ProtocolError::invalid(format!(
                    "instance {i}: expected an object of input name to value for a model \
                     with {} inputs",
                    inputs.len()
                ))
            })?;
        assign_named(&object, &mut per_input, Some(i))?;
    }
    per_input.iter().map(|r| stack(r, true)).collect()
}

fn decode_columns(columns: &RawValue, inputs: &[TensorMetadata]) -> Result<Vec<Tensor>> {
    let mut per_input: Vec<Rows<'_>> =
        inputs.iter().map(|meta| Rows { meta, texts: Vec::with_capacity(1) }).collect();
    if is_object(columns) {
        let object: BTreeMap<String, &RawValue> = serde_json::from_str(columns.get())
            .map_err(|e| ProtocolError::invalid(format!("malformed \"inputs\": {e}")))?;
        assign_named(&object, &mut per_input, None)?;
    } else if let [single] = per_input.as_mut_slice() {
        single.texts.push((None, columns.get()));
    } else {
        return Err(ProtocolError::invalid(format!(
            "\"inputs\" must be an object of input name to value for a model with {} inputs",
            inputs.len()
        )));
    }
    per_input.iter().map(|r| stack(r, false)).collect()
}

/// Distributes the members of one named object (an instance or the columnar `inputs`) to the
/// model's inputs, refusing unknown and missing names.
fn assign_named<'a>(
    object: &BTreeMap<String, &'a RawValue>,
    per_input: &mut [Rows<'a>],
    index: Option<usize>,
) -> Result<()> {
    if let Some(unknown) = object.keys().find(|k| !per_input.iter().any(|r| &r.meta.name == *k)) {
        return Err(ProtocolError::invalid(format!(
            "{}unknown input \"{unknown}\"",
            instance_prefix(index)
        )));
    }
    for r in per_input.iter_mut() {
        let value = object.get(&r.meta.name).ok_or_else(|| {
            ProtocolError::invalid(format!(
                "{}missing input \"{}\"",
                instance_prefix(index),
                r.meta.name
            ))
        })?;
        r.texts.push((index, value.get()));
    }
    Ok(())
}

/// Whether `got` fits the metadata dims `want` (`-1` matches any size).
fn shape_fits(want: &[i64], got: &[i64]) -> bool {
    want.len() == got.len() && want.iter().zip(got).all(|(w, g)| *w < 0 || w == g)
}

/// Parses and stacks the rows of one input. With `batched` each text is one row and a batch
/// dimension is prepended; otherwise the single text is the whole tensor.
fn stack(rows: &Rows<'_>, batched: bool) -> Result<Tensor> {
    fn typed<T: JsonElem>(rows: &Rows<'_>, batched: bool) -> Result<(Vec<T>, Vec<i64>)> {
        let meta = rows.meta;
        let want: &[i64] = match (batched, meta.shape.split_first()) {
            (true, Some((_, rest))) => rest,
            (true, None) => &[],
            (false, _) => &meta.shape,
        };
        let mut out: Vec<T> = Vec::new();
        let mut row: Vec<T> = Vec::new();
        let mut first: Option<(usize, Vec<i64>)> = None;
        for &(index, text) in &rows.texts {
            let prefix = || format!("{}input \"{}\"", instance_prefix(index), meta.name);
            let mut tracker = ShapeTracker::default();
            row.clear();
            parse_into(text, &mut row, Some(&mut tracker))
                .map_err(|msg| ProtocolError::invalid(format!("{}: {msg}", prefix())))?;
            let got: Vec<i64> =
                tracker.shape().into_iter().map(|d| i64::try_from(d).unwrap_or(i64::MAX)).collect();
            if !shape_fits(want, &got) {
                return Err(ProtocolError::invalid(format!(
                    "{}: expected shape {}, got {}",
                    prefix(),
                    shape_string(want),
                    shape_string(&got)
                )));
            }
            match &first {
                None => first = Some((index.unwrap_or(0), got)),
                Some((at, shape)) if *shape != got => {
                    return Err(ProtocolError::invalid(format!(
                        "{}: shape {} differs from instance {at}'s {}",
                        prefix(),
                        shape_string(&got),
                        shape_string(shape)
                    )));
                }
                Some(_) => {}
            }
            out.append(&mut row);
        }
        let row_shape = first.map(|(_, s)| s).unwrap_or_else(|| {
            // No rows: an empty batch, with any variable dimension taken as 0.
            want.iter().map(|d| (*d).max(0)).collect()
        });
        let shape = if batched {
            let n = i64::try_from(rows.texts.len()).unwrap_or(i64::MAX);
            std::iter::once(n).chain(row_shape).collect()
        } else {
            row_shape
        };
        Ok((out, shape))
    }
    macro_rules! dispatch {
        ($($dt:ident),*) => {
            match rows.meta.datatype {
                $(DataType::$dt => {
                    let (v, shape) = typed(rows, batched)?;
                    (TensorData::$dt(v), shape)
                })*
            }
        };
    }
    let (data, shape) = dispatch!(
        Bool, Uint8, Uint16, Uint32, Uint64, Int8, Int16, Int32, Int64, Fp16, Fp32, Fp64, Bf16,
        Bytes
    );
    let tensor = Tensor::new(rows.meta.name.clone(), shape, data);
    tensor.validate()?;
    Ok(tensor)
}

/// Encodes a V1 `:predict` response. With one output, `predictions` is the list of its rows
/// (dim-0 slices, nested by the remaining dims; a scalar output is one row). With several,
/// `predictions` holds one object `{output_name: row}` per row of the first output; an output
/// with fewer rows is left out of the later objects. BYTES rows are strings when UTF-8 and
/// `{"b64": "…"}` otherwise; FP16/BF16 are written as numbers.
pub fn encode_predict(resp: &InferResponse) -> Vec<u8> {
    let mut out =
        Vec::with_capacity(64 + resp.outputs.iter().map(|t| t.data.len() * 12).sum::<usize>());
    out.extend_from_slice(b"{\"predictions\":");
    match resp.outputs.as_slice() {
        [] => out.extend_from_slice(b"[]"),
        [only] => {
            if only.shape.is_empty() {
                out.push(b'[');
                write_row(only, 0, &mut out);
                out.push(b']');
            } else {
                let dims = dims_of(&only.shape);
                crate::for_each_variant!(&only.data, v => write_nested(v, &dims, &mut out));
            }
        }
        outputs @ [first, ..] => {
            out.push(b'[');
            for i in 0..row_count(first) {
                if i > 0 {
                    out.push(b',');
                }
                out.push(b'{');
                let mut wrote = false;
                for t in outputs.iter().filter(|t| i < row_count(t)) {
                    if wrote {
                        out.push(b',');
                    }
                    wrote = true;
                    write_str(&t.name, &mut out);
                    out.push(b':');
                    write_row(t, i, &mut out);
                }
                out.push(b'}');
            }
            out.push(b']');
        }
    }
    out.push(b'}');
    out
}

fn dims_of(shape: &[i64]) -> Vec<usize> {
    shape.iter().map(|d| usize::try_from(*d).unwrap_or(0)).collect()
}

/// Rows of an output: its dim 0, or one for a scalar.
fn row_count(t: &Tensor) -> usize {
    match t.shape.first() {
        Some(d) => usize::try_from(*d).unwrap_or(0),
        None => 1,
    }
}

/// Writes row `i` (the dim-0 slice) of `t`, nested by its remaining dims.
fn write_row(t: &Tensor, i: usize, out: &mut Vec<u8>) {
    fn row<T: WriteJson>(v: &[T], dims: &[usize], i: usize, out: &mut Vec<u8>) {
        let rest = dims.get(1..).unwrap_or_default();
        let stride = rest.iter().product::<usize>();
        let slice = v.get(i * stride..(i + 1) * stride).unwrap_or_default();
        write_nested(slice, rest, out);
    }
    let dims = dims_of(&t.shape);
    crate::for_each_variant!(&t.data, v => row(v, &dims, i, out));
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn meta(name: &str, datatype: DataType, shape: Vec<i64>) -> TensorMetadata {
        TensorMetadata { name: name.into(), datatype, shape, parameters: None }
    }

    fn err(body: &str, inputs: &[TensorMetadata]) -> String {
        let e = decode_predict(body.as_bytes(), inputs).unwrap_err();
        assert_eq!(e.code, crate::ErrorCode::InvalidArgument);
        e.message
    }

    #[test]
    fn stacks_instances_of_a_single_input() {
        let m = [meta("x", DataType::Fp32, vec![-1, 2, 2])];
        let req = decode_predict(br#"{"instances":[[[1,2],[3,4]],[[5,6],[7,8]]]}"#, &m).unwrap();
        assert_eq!(req.inputs.len(), 1);
        assert_eq!(req.inputs[0].shape, [2, 2, 2]);
        assert_eq!(req.inputs[0].data, TensorData::Fp32((1..=8).map(|i| i as f32).collect()));
        let m = [meta("x", DataType::Int64, vec![-1])];
        let req = decode_predict(br#"{"instances":[1,2,3]}"#, &m).unwrap();
        assert_eq!(req.inputs[0].shape, [3]);
        assert_eq!(req.inputs[0].data, TensorData::Int64(vec![1, 2, 3]));
        let m = [meta("s", DataType::Bytes, vec![-1, -1])];
        let req = decode_predict(br#"{"instances":[["a","b"]]}"#, &m).unwrap();
        assert_eq!(req.inputs[0].shape, [1, 2]);
        let req = decode_predict(br#"{"instances":[{"s":["a"]}]}"#, &m).unwrap();
        assert_eq!(req.inputs[0].data, TensorData::Bytes(vec![Bytes::from_static(b"a")]));
        let req = decode_predict(br#"{"instances":[]}"#, &m).unwrap();
        assert_eq!(req.inputs[0].shape, [0, 0]);
    }

    #[test]
    fn multi_input_instances_and_columns() {
        let m = [meta("a", DataType::Fp32, vec![-1, 2]), meta("b", DataType::Bool, vec![-1])];
        let req =
            decode_predict(br#"{"instances":[{"a":[1,2],"b":true},{"b":false,"a":[3,4]}]}"#, &m)
                .unwrap();
        assert_eq!(req.inputs[0].shape, [2, 2]);
        assert_eq!(req.inputs[0].data, TensorData::Fp32(vec![1.0, 2.0, 3.0, 4.0]));
        assert_eq!(req.inputs[1].data, TensorData::Bool(vec![true, false]));
        let req =
            decode_predict(br#"{"inputs":{"a":[[1,2],[3,4]],"b":[true,false]}}"#, &m).unwrap();
        assert_eq!(req.inputs[0].shape, [2, 2]);
        assert_eq!(req.inputs[1].shape, [2]);
        let single = [meta("x", DataType::Int32, vec![-1, 3])];
        let req = decode_predict(br#"{"inputs":[[1,2,3]]}"#, &single).unwrap();
        assert_eq!(req.inputs[0].shape, [1, 3]);
    }

    #[test]
    fn predict_error_messages() {
        let one = [meta("x", DataType::Fp32, vec![-1, 4])];
        let two = [meta("a", DataType::Fp32, vec![-1]), meta("b", DataType::Fp32, vec![-1])];
        assert_eq!(
            err(r#"{"instances":[[1,2,3,4],[1,2,3]]}"#, &one),
            "instance 1: input \"x\": expected shape [4], got [3]"
        );
        assert_eq!(
            err(r#"{"instances":[[1,2,3,"a"]]}"#, &one),
            "instance 0: input \"x\": data element 3: expected FP32, found a string"
        );
        assert_eq!(
            err(r#"{"instances":[[[1,2],[3]]]}"#, &one),
            "instance 0: input \"x\": nested arrays are ragged: lengths 2 and 1 at depth 1"
        );
        let var = [meta("x", DataType::Fp32, vec![-1, -1])];
        assert_eq!(
            err(r#"{"instances":[[1,2],[1,2,3]]}"#, &var),
            "instance 1: input \"x\": shape [3] differs from instance 0's [2]"
        );
        assert_eq!(err(r#"{"instances":{}}"#, &one), "\"instances\" must be a list");
        assert_eq!(err(r#"{}"#, &one), "missing required field \"instances\" or \"inputs\"");
        assert_eq!(
            err(r#"{"instances":[],"inputs":[]}"#, &one),
            "the request has both \"instances\" and \"inputs\"; send one"
        );
        assert_eq!(
            err(r#"{"instances":[{"a":1,"b":2},[1,2]]}"#, &two),
            "instance 1: expected an object of input name to value for a model with 2 inputs"
        );
        assert_eq!(err(r#"{"instances":[{"a":1}]}"#, &two), "instance 0: missing input \"b\"");
        assert_eq!(
            err(r#"{"instances":[{"a":1,"b":2,"c":3}]}"#, &two),
            "instance 0: unknown input \"c\""
        );
        assert_eq!(
            err(r#"{"inputs":[1,2]}"#, &two),
            "\"inputs\" must be an object of input name to value for a model with 2 inputs"
        );
        assert_eq!(err(r#"{"inputs":{"a":[1]}}"#, &two), "missing input \"b\"");
        assert_eq!(
            err(r#"{"inputs":[1,2,3]}"#, &one),
            "input \"x\": expected shape [-1,4], got [3]"
        );
        assert_eq!(err(r#"{"instances":[]}"#, &[]), "the model has no inputs to predict from");
        assert!(err("[", &one).starts_with("malformed JSON: "));
    }

    #[test]
    fn encodes_predictions_by_row() {
        let t = |name: &str, shape: Vec<i64>, data| Tensor::new(name, shape, data);
        let resp = |outputs| InferResponse { outputs, ..InferResponse::default() };
        let one = resp(vec![t("p", vec![2, 2], TensorData::Fp32(vec![0.5, 1.0, f32::NAN, 2.0]))]);
        assert_eq!(encode_predict(&one), br#"{"predictions":[[0.5,1.0],[null,2.0]]}"#);
        let flat = resp(vec![t("p", vec![3], TensorData::Int64(vec![1, 2, 3]))]);
        assert_eq!(encode_predict(&flat), br#"{"predictions":[1,2,3]}"#);
        let scalar = resp(vec![t("p", vec![], TensorData::Bool(vec![true]))]);
        assert_eq!(encode_predict(&scalar), br#"{"predictions":[true]}"#);
        let two = resp(vec![
            t(
                "label",
                vec![2],
                TensorData::Bytes(vec![Bytes::from("a"), Bytes::from_static(&[0xff])]),
            ),
            t("prob", vec![2, 2], TensorData::Fp64(vec![0.25, 0.75, 1.0, 0.0])),
        ]);
        assert_eq!(
            String::from_utf8(encode_predict(&two)).unwrap(),
            r#"{"predictions":[{"label":"a","prob":[0.25,0.75]},{"label":{"b64":"/w=="},"prob":[1.0,0.0]}]}"#
        );
        assert_eq!(encode_predict(&resp(vec![])), br#"{"predictions":[]}"#);
        let status = V1ModelStatus { name: "m".into(), ready: true };
        assert_eq!(serde_json::to_string(&status).unwrap(), r#"{"name":"m","ready":true}"#);
        let list = V1ModelList { models: vec!["a".into()] };
        assert_eq!(serde_json::to_string(&list).unwrap(), r#"{"models":["a"]}"#);
    }

    proptest::proptest! {
        #[test]
        fn predictions_decode_back_as_instances(
            (shape, data) in crate::raw::tests::arb_tensor_parts(),
            rows in 1i64..4,
        ) {
            // Rows of at least one element, JSON-capable data: what V1 can carry exactly.
            let datatype = data.datatype();
            proptest::prop_assume!(
                !datatype.is_raw_only()
                    && shape.iter().all(|d| *d > 0)
                    && match &data {
                    TensorData::Fp32(v) => !v.iter().any(|x| x.is_nan()),
                    TensorData::Fp64(v) => !v.iter().any(|x| x.is_nan()),
                    _ => true,
                }
                    && match &data {
                        TensorData::Bytes(v) => v.iter().all(|b| std::str::from_utf8(b).is_ok()),
                        _ => true,
                    }
            );
            let mut full = TensorData::with_capacity(datatype, 0);
            for _ in 0..rows {
                full.extend_from(&data).unwrap();
            }
            let shape: Vec<i64> = std::iter::once(rows).chain(shape).collect();
            let out = Tensor::new("y", shape.clone(), full);
            let body = encode_predict(&InferResponse { outputs: vec![out.clone()], ..InferResponse::default() });
            let text = String::from_utf8(body).unwrap().replacen("predictions", "instances", 1);
            let mut want: Vec<i64> = shape.clone();
            want[0] = -1;
            let req = decode_predict(text.as_bytes(), &[meta("y", datatype, want)]).unwrap();
            proptest::prop_assert_eq!(&req.inputs[0], &out);
        }
    }
}
