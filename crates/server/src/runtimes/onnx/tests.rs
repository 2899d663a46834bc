//! Tests of the ONNX runtime against the committed fixtures (`fixtures/models`, with the
//! frameworks' predictions in `fixtures/expected`) and small models built here byte by byte.
//!
//! They need ONNX Runtime and fail, rather than pass vacuously, when it is missing: run
//! `cargo xtask setup` first.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use half::{bf16, f16};
use oxserve_protocol::{DataType, ErrorCode, InferRequest, Tensor, TensorData};
use serde_json::Value;

use super::zipmap::encode::{bytes, int, message};
use super::*;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures")
}

fn options(sessions: usize) -> OnnxOptions {
    OnnxOptions { intra_op_threads: 1, sessions, ..OnnxOptions::default() }
}

/// Loads a model, failing with the loader's message (which says how to install ONNX
/// Runtime when it is missing).
fn load_ok(name: &str, path: &Path, sessions: usize) -> OnnxModel {
    load(name, path, &options(sessions)).unwrap_or_else(|e| panic!("{e}"))
}

fn fixture(name: &str) -> OnnxModel {
    load_ok(name, &fixtures().join("models").join(name).join("model.onnx"), 2)
}

struct Expected {
    input: Tensor,
    outputs: Vec<Tensor>,
}

fn expected(name: &str) -> Expected {
    let path = fixtures().join("expected").join(format!("{name}.json"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let json: Value = serde_json::from_str(&text).unwrap();
    let tensor = |name: &str, v: &Value| {
        let shape: Vec<i64> = serde_json::from_value(v["shape"].clone()).unwrap();
        let data = match v["datatype"].as_str().unwrap() {
            "FP32" => TensorData::Fp32(serde_json::from_value(v["data"].clone()).unwrap()),
            "INT64" => TensorData::Int64(serde_json::from_value(v["data"].clone()).unwrap()),
            other => panic!("fixture datatype {other} not handled by this test"),
        };
        Tensor::new(name, shape, data)
    };
    let input = tensor(json["input"]["name"].as_str().unwrap(), &json["input"]);
    let outputs = json["outputs"].as_object().unwrap().iter().map(|(k, v)| tensor(k, v)).collect();
    Expected { input, outputs }
}

fn request(inputs: Vec<Tensor>) -> InferRequest {
    InferRequest { inputs, ..Default::default() }
}

/// Rows `rows` of a row-major tensor whose dimension 0 is the batch.
fn rows(t: &Tensor, rows: std::ops::Range<usize>) -> Tensor {
    let width: usize = t.shape[1..].iter().product::<i64>() as usize;
    let mut shape = t.shape.clone();
    shape[0] = rows.len() as i64;
    Tensor::new(&t.name, shape, t.data.slice(rows.start * width..rows.end * width))
}

/// Equal names, shapes and datatypes; integers exactly, floats within 1e-5 relative (with
/// an absolute floor of 1e-6 for values near zero).
fn assert_matches(got: &[Tensor], want: &[Tensor]) {
    for w in want {
        let g =
            got.iter().find(|g| g.name == w.name).unwrap_or_else(|| panic!("no output {}", w.name));
        assert_eq!(g.shape, w.shape, "shape of {}", w.name);
        match (&g.data, &w.data) {
            (TensorData::Fp32(g), TensorData::Fp32(w_)) => {
                for (i, (a, b)) in g.iter().zip(w_).enumerate() {
                    let tol = 1e-5 * a.abs().max(b.abs()).max(0.1);
                    assert!((a - b).abs() <= tol, "{}[{i}]: got {a}, expected {b}", w.name);
                }
            }
            (g, w_) => assert_eq!(g, w_, "{}", w.name),
        }
    }
}

#[test]
fn fixtures_match_the_frameworks() {
    for name in ["iris-lr", "iris-rf", "mlp"] {
        let model = fixture(name);
        let exp = expected(name);
        let meta = model.metadata();
        assert_eq!(meta.platform, "onnxruntime_onnx");
        assert_eq!(meta.inputs.len(), 1);
        assert_eq!(meta.inputs[0].name, exp.input.name);
        assert_eq!(meta.inputs[0].datatype, DataType::Fp32);
        assert_eq!(meta.inputs[0].shape[0], -1, "{name}: batch dimension is variable");
        assert_eq!(meta.outputs.len(), exp.outputs.len(), "{name}: every output is advertised");
        let got = model.infer(request(vec![exp.input.clone()])).unwrap();
        assert_eq!(got.len(), exp.outputs.len());
        assert_matches(&got, &exp.outputs);
    }
}

#[test]
fn zipmap_output_becomes_a_probability_tensor() {
    let model = fixture("iris-rf");
    let meta = model.metadata();
    let proba = meta.outputs.iter().find(|o| o.name == "output_probability").unwrap();
    assert_eq!(proba.datatype, DataType::Fp32);
    assert_eq!(proba.shape, vec![-1, 3]);
    let label = meta.outputs.iter().find(|o| o.name == "output_label").unwrap();
    assert_eq!(label.datatype, DataType::Int64);

    let exp = expected("iris-rf");
    let got = model.infer(request(vec![rows(&exp.input, 5..9)])).unwrap();
    let want: Vec<Tensor> = exp
        .outputs
        .iter()
        .map(|t| if t.shape.len() == 1 { rows_1d(t, 5..9) } else { rows(t, 5..9) })
        .collect();
    assert_matches(&got, &want);
    // Each row is a distribution over the three classes.
    let p = got.iter().find(|t| t.name == "output_probability").unwrap();
    let TensorData::Fp32(p) = &p.data else { panic!("probabilities are FP32") };
    for row in p.chunks(3) {
        assert!((row.iter().sum::<f32>() - 1.0).abs() < 1e-5, "{row:?}");
    }
}

fn rows_1d(t: &Tensor, r: std::ops::Range<usize>) -> Tensor {
    Tensor::new(&t.name, vec![r.len() as i64], t.data.slice(r))
}

#[test]
fn concurrent_requests_get_their_own_results() {
    let model = Arc::new(fixture("mlp"));
    let exp = Arc::new(expected("mlp"));
    let batch = exp.input.shape[0] as usize;
    let threads: Vec<_> = (0..8)
        .map(|t| {
            let (model, exp) = (Arc::clone(&model), Arc::clone(&exp));
            std::thread::spawn(move || {
                for i in 0..25 {
                    let start = (t * 3 + i) % batch;
                    let end = (start + 1 + (t + i) % 4).min(batch);
                    let got = model.infer(request(vec![rows(&exp.input, start..end)])).unwrap();
                    assert_matches(&got, &[rows(&exp.outputs[0], start..end)]);
                }
            })
        })
        .collect();
    for t in threads {
        t.join().expect("a worker thread failed");
    }
}

#[test]
fn inputs_the_model_rejects_are_errors() {
    let model = fixture("mlp");
    let exp = expected("mlp");

    let wrong_type = Tensor::new("input", vec![1, 8], TensorData::Fp64(vec![0.0; 8]));
    let err = model.infer(request(vec![wrong_type])).unwrap_err();
    assert_eq!(err.code(), ErrorCode::InvalidArgument, "{err}");
    assert!(err.to_string().contains("expects FP32, got FP64"), "{err}");

    // Passes the name and datatype checks; ONNX Runtime itself rejects the dimension.
    let wrong_dim = Tensor::new("input", vec![2, 7], TensorData::Fp32(vec![0.0; 14]));
    let err = model.infer(request(vec![wrong_dim])).unwrap_err();
    assert_eq!(err.code(), ErrorCode::InvalidArgument, "{err}");
    assert!(err.to_string().contains("mlp"), "{err}");

    let inconsistent = Tensor::new("input", vec![2, 8], TensorData::Fp32(vec![0.0; 3]));
    assert_eq!(
        model.infer(request(vec![inconsistent])).unwrap_err().code(),
        ErrorCode::InvalidArgument
    );

    let unknown = Tensor::new("nope", vec![1], TensorData::Fp32(vec![0.0]));
    let err = model.infer(request(vec![unknown])).unwrap_err();
    assert!(err.to_string().contains("has no input \"nope\""), "{err}");

    let err = model.infer(request(vec![])).unwrap_err();
    assert!(matches!(err.code(), ErrorCode::InvalidArgument | ErrorCode::Internal), "{err}");

    // The model still serves after all that.
    let got = model.infer(request(vec![rows(&exp.input, 0..2)])).unwrap();
    assert_matches(&got, &[rows(&exp.outputs[0], 0..2)]);
}

#[test]
fn missing_or_corrupt_model_files_are_load_errors() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("model.onnx");
    let err = load("absent", &missing, &options(1)).unwrap_err();
    assert!(matches!(err, Error::Load { .. }), "{err}");
    assert!(err.to_string().contains("model.onnx"), "{err}");

    let corrupt = dir.path().join("corrupt.onnx");
    std::fs::write(&corrupt, b"\x0a\xff\xff\xff\xff garbage").unwrap();
    let err = load("corrupt", &corrupt, &options(1)).unwrap_err();
    assert!(matches!(err, Error::Load { .. }), "{err}");
}

// ---- Models built byte by byte (onnx.proto field numbers) ----

const FLOAT: i64 = 1;
const STRING: i64 = 8;
const FLOAT16: i64 = 10;
const BFLOAT16: i64 = 16;

enum Ty {
    /// Element type and dims (`None` = symbolic `batch`).
    Tensor(i64, Vec<Option<i64>>),
    /// `seq(map(key, tensor(value)))`.
    SeqMap(i64, i64),
    /// `seq(tensor(elem))`.
    SeqTensor(i64),
}

fn type_proto(ty: &Ty) -> Vec<u8> {
    let tensor = |elem: i64, dims: Option<&[Option<i64>]>| {
        message(|t| {
            int(t, 1, elem);
            if let Some(dims) = dims {
                let shape = message(|s| {
                    for d in dims {
                        let dim = message(|m| match d {
                            Some(v) => int(m, 1, *v),
                            None => bytes(m, 2, b"batch"),
                        });
                        bytes(s, 1, &dim);
                    }
                });
                bytes(t, 2, &shape);
            }
        })
    };
    message(|tp| match ty {
        Ty::Tensor(elem, dims) => bytes(tp, 1, &tensor(*elem, Some(dims))),
        Ty::SeqMap(key, value) => {
            let value_type = message(|v| bytes(v, 1, &tensor(*value, None)));
            let map = message(|m| {
                int(m, 1, *key);
                bytes(m, 2, &value_type);
            });
            let element = message(|e| bytes(e, 5, &map));
            bytes(tp, 4, &message(|s| bytes(s, 1, &element)));
        }
        Ty::SeqTensor(elem) => {
            let element = message(|e| bytes(e, 1, &tensor(*elem, None)));
            bytes(tp, 4, &message(|s| bytes(s, 1, &element)));
        }
    })
}

fn value_info(name: &str, ty: &Ty) -> Vec<u8> {
    message(|v| {
        bytes(v, 1, name.as_bytes());
        bytes(v, 2, &type_proto(ty));
    })
}

fn node(
    op: &str,
    domain: &str,
    inputs: &[&str],
    outputs: &[&str],
    attributes: &[Vec<u8>],
) -> Vec<u8> {
    message(|n| {
        for i in inputs {
            bytes(n, 1, i.as_bytes());
        }
        for o in outputs {
            bytes(n, 2, o.as_bytes());
        }
        bytes(n, 4, op.as_bytes());
        bytes(n, 7, domain.as_bytes());
        for a in attributes {
            bytes(n, 5, a);
        }
    })
}

fn model_bytes(nodes: &[Vec<u8>], inputs: &[(&str, Ty)], outputs: &[(&str, Ty)]) -> Vec<u8> {
    let graph = message(|g| {
        for n in nodes {
            bytes(g, 1, n);
        }
        bytes(g, 2, b"test");
        for (name, ty) in inputs {
            bytes(g, 11, &value_info(name, ty));
        }
        for (name, ty) in outputs {
            bytes(g, 12, &value_info(name, ty));
        }
    });
    message(|m| {
        int(m, 1, 8); // ir_version
        bytes(m, 7, &graph);
        bytes(m, 8, &message(|o| int(o, 2, 17))); // opset ai.onnx 17
        bytes(
            m,
            8,
            &message(|o| {
                bytes(o, 1, b"ai.onnx.ml");
                int(o, 2, 3);
            }),
        );
    })
}

fn write_model(dir: &Path, name: &str, model: Vec<u8>) -> PathBuf {
    let path = dir.join(format!("{name}.onnx"));
    std::fs::write(&path, model).unwrap();
    path
}

#[test]
fn strings_and_half_precision_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_model(
        dir.path(),
        "identity",
        model_bytes(
            &[
                node("Identity", "", &["s"], &["s_out"], &[]),
                node("Identity", "", &["h"], &["h_out"], &[]),
                node("Identity", "", &["b"], &["b_out"], &[]),
            ],
            &[
                ("s", Ty::Tensor(STRING, vec![None])),
                ("h", Ty::Tensor(FLOAT16, vec![None, Some(2)])),
                ("b", Ty::Tensor(BFLOAT16, vec![None])),
            ],
            &[
                ("s_out", Ty::Tensor(STRING, vec![None])),
                ("h_out", Ty::Tensor(FLOAT16, vec![None, Some(2)])),
                ("b_out", Ty::Tensor(BFLOAT16, vec![None])),
            ],
        ),
    );
    let model = load_ok("identity", &path, 1);
    let meta = model.metadata();
    let types: Vec<(DataType, Vec<i64>)> =
        meta.inputs.iter().map(|m| (m.datatype, m.shape.clone())).collect();
    assert_eq!(
        types,
        vec![
            (DataType::Bytes, vec![-1]),
            (DataType::Fp16, vec![-1, 2]),
            (DataType::Bf16, vec![-1])
        ]
    );
    assert_eq!(meta.outputs[0].datatype, DataType::Bytes);

    let strings = TensorData::Bytes(vec![Bytes::from("héllo"), Bytes::new(), Bytes::from("x y")]);
    let halves = TensorData::Fp16([0.5, -2.0, 65504.0, 1.0e-3].map(f16::from_f32).to_vec());
    let brains = TensorData::Bf16([1.5, -3.0e30].map(bf16::from_f32).to_vec());
    let inputs = vec![
        Tensor::new("s", vec![3], strings.clone()),
        Tensor::new("h", vec![2, 2], halves.clone()),
        Tensor::new("b", vec![2], brains.clone()),
    ];
    let got = model.infer(request(inputs.clone())).unwrap();
    assert_eq!(got.len(), 3);
    for (g, (i, name)) in got.iter().zip(inputs.iter().zip(["s_out", "h_out", "b_out"])) {
        assert_eq!(g.name, name);
        assert_eq!(g.shape, i.shape);
        assert_eq!(g.data, i.data);
    }

    let mut bad = inputs;
    bad[0] = Tensor::new(
        "s",
        vec![2],
        TensorData::Bytes(vec![Bytes::from("ok"), Bytes::from_static(b"\xff\xfe")]),
    );
    let err = model.infer(request(bad)).unwrap_err();
    assert_eq!(err.code(), ErrorCode::InvalidArgument, "{err}");
    assert!(err.to_string().contains("element 1 is not valid utf-8"), "{err}");
}

fn classlabels_strings(labels: &[&str]) -> Vec<u8> {
    message(|a| {
        bytes(a, 1, b"classlabels_strings");
        for l in labels {
            bytes(a, 9, l.as_bytes());
        }
        int(a, 20, 8); // AttributeProto.type = STRINGS
    })
}

#[test]
fn zipmap_with_string_labels_keeps_label_order() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_model(
        dir.path(),
        "zipmap",
        model_bytes(
            &[node(
                "ZipMap",
                "ai.onnx.ml",
                &["p"],
                &["probabilities"],
                &[classlabels_strings(&["zeta", "alpha", "mid"])],
            )],
            &[("p", Ty::Tensor(FLOAT, vec![None, Some(3)]))],
            &[("probabilities", Ty::SeqMap(STRING, FLOAT))],
        ),
    );
    let model = load_ok("zipmap", &path, 1);
    let out = &model.metadata().outputs[0];
    assert_eq!(
        (out.name.as_str(), out.datatype, out.shape.clone()),
        ("probabilities", DataType::Fp32, vec![-1, 3])
    );

    let p = vec![0.1, 0.2, 0.7, 0.5, 0.25, 0.25];
    let got = model
        .infer(request(vec![Tensor::new("p", vec![2, 3], TensorData::Fp32(p.clone()))]))
        .unwrap();
    // The maps are sorted by key inside ONNX Runtime; the columns follow the labels.
    assert_eq!(got, vec![Tensor::new("probabilities", vec![2, 3], TensorData::Fp32(p))]);

    let empty =
        model.infer(request(vec![Tensor::new("p", vec![0, 3], TensorData::Fp32(vec![]))])).unwrap();
    assert_eq!(empty[0].shape, vec![0, 3]);
}

#[test]
fn other_sequence_outputs_are_refused_with_advice() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_model(
        dir.path(),
        "sequence",
        model_bytes(
            &[node("SequenceConstruct", "", &["x"], &["seq"], &[])],
            &[("x", Ty::Tensor(FLOAT, vec![Some(2)]))],
            &[("seq", Ty::SeqTensor(FLOAT))],
        ),
    );
    let err = load("sequence", &path, &options(1)).unwrap_err();
    assert!(matches!(err, Error::Load { .. }), "{err}");
    let msg = err.to_string();
    assert!(msg.contains("output \"seq\""), "{msg}");
    assert!(msg.contains("\"zipmap\": False"), "{msg}");
}
