//! Tests of the native evaluator: models built here with the [`proto`](super::proto)
//! messages and the `iris-lr` fixture, each loaded twice — once on ONNX Runtime (native
//! evaluation turned off) and once natively — and run on many random inputs, which must
//! give the same outputs (names, datatypes, shapes; floats within 1e-6 absolute or
//! relative, everything else exactly).
//!
//! They need ONNX Runtime and fail, rather than pass vacuously, when it is missing: run
//! `cargo xtask setup` first.

use std::path::{Path, PathBuf};

use oxserve_protocol::{DataType, ErrorCode, InferRequest, Tensor, TensorData};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use prost::Message;

use super::proto::{
    AttributeProto, Dimension, GraphProto, MapTypeProto, ModelProto, NodeProto, OperatorSetIdProto,
    SequenceTypeProto, TensorShapeProto, TensorTypeProto, TypeProto, ValueInfoProto,
    attribute_type, data_type,
};
use crate::model::Model;
use crate::runtimes::onnx::{OnnxModel, OnnxOptions, load};

// ---- Building models ----

fn attr(name: &str, ty: i32, f: impl FnOnce(&mut AttributeProto)) -> AttributeProto {
    let mut a = AttributeProto { name: Some(name.into()), r#type: Some(ty), ..Default::default() };
    f(&mut a);
    a
}

fn floats(name: &str, v: &[f32]) -> AttributeProto {
    attr(name, attribute_type::FLOATS, |a| a.floats = v.to_vec())
}

fn ints(name: &str, v: &[i64]) -> AttributeProto {
    attr(name, attribute_type::INTS, |a| a.ints = v.to_vec())
}

fn strings(name: &str, v: &[&str]) -> AttributeProto {
    attr(name, attribute_type::STRINGS, |a| {
        a.strings = v.iter().map(|s| s.as_bytes().to_vec()).collect()
    })
}

fn int(name: &str, v: i64) -> AttributeProto {
    attr(name, attribute_type::INT, |a| a.i = Some(v))
}

fn string(name: &str, v: &str) -> AttributeProto {
    attr(name, attribute_type::STRING, |a| a.s = Some(v.as_bytes().to_vec()))
}

fn node(op: &str, inputs: &[&str], outputs: &[&str], attribute: Vec<AttributeProto>) -> NodeProto {
    let ml = !matches!(op, "Cast" | "Identity" | "Add" | "Softmax");
    NodeProto {
        input: inputs.iter().map(|s| s.to_string()).collect(),
        output: outputs.iter().map(|s| s.to_string()).collect(),
        name: Some(format!("{op}-{}", outputs.first().unwrap_or(&""))),
        op_type: Some(op.into()),
        attribute,
        domain: Some(if ml { "ai.onnx.ml" } else { "" }.into()),
        overload: None,
    }
}

/// A tensor type; `None` dimensions are the symbolic `N`.
fn tensor(elem: i32, dims: &[Option<i64>]) -> TypeProto {
    let dim = dims
        .iter()
        .map(|d| match d {
            Some(v) => Dimension { dim_value: Some(*v), dim_param: None },
            None => Dimension { dim_value: None, dim_param: Some("N".into()) },
        })
        .collect();
    TypeProto {
        tensor_type: Some(TensorTypeProto {
            elem_type: Some(elem),
            shape: Some(TensorShapeProto { dim }),
        }),
        ..Default::default()
    }
}

/// `seq(map(key, float))`, what a ZipMap produces.
fn seq_map(key: i32) -> TypeProto {
    let value = TypeProto {
        tensor_type: Some(TensorTypeProto { elem_type: Some(data_type::FLOAT), shape: None }),
        ..Default::default()
    };
    let map = TypeProto {
        map_type: Some(Box::new(MapTypeProto {
            key_type: Some(key),
            value_type: Some(Box::new(value)),
        })),
        ..Default::default()
    };
    TypeProto {
        sequence_type: Some(Box::new(SequenceTypeProto { elem_type: Some(Box::new(map)) })),
        ..Default::default()
    }
}

fn value(name: &str, ty: TypeProto) -> ValueInfoProto {
    ValueInfoProto { name: Some(name.into()), r#type: Some(ty) }
}

fn model(
    nodes: Vec<NodeProto>,
    inputs: Vec<ValueInfoProto>,
    outputs: Vec<ValueInfoProto>,
) -> Vec<u8> {
    let opset = |domain: &str, version| OperatorSetIdProto {
        domain: Some(domain.into()),
        version: Some(version),
    };
    ModelProto {
        ir_version: Some(8),
        producer_name: Some("oxserve-tests".into()),
        graph: Some(GraphProto {
            node: nodes,
            name: Some("test".into()),
            input: inputs,
            output: outputs,
            ..Default::default()
        }),
        opset_import: vec![opset("", 17), opset("ai.onnx.ml", 3)],
        functions: Vec::new(),
    }
    .encode_to_vec()
}

/// Deterministic pseudo-random weights in [-scale, scale).
fn weights(n: usize, seed: u64, scale: f32) -> Vec<f32> {
    let mut state = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    (0..n)
        .map(|_| {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            ((state >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0) * scale
        })
        .collect()
}

// ---- Loading and comparing ----

fn options(native: bool) -> OnnxOptions {
    OnnxOptions { intra_op_threads: 1, sessions: 1, native }
}

fn load_at(path: &Path, native: bool) -> OnnxModel {
    load("test", path, &options(native)).unwrap_or_else(|e| panic!("{e}"))
}

/// The model loaded on ONNX Runtime and with native evaluation allowed.
struct Pair {
    ort: OnnxModel,
    native: OnnxModel,
    _dir: tempfile::TempDir,
}

fn pair(bytes: Vec<u8>) -> Pair {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("model.onnx");
    std::fs::write(&path, bytes).unwrap();
    let ort = load_at(&path, false);
    let native = load_at(&path, true);
    assert!(!ort.is_native());
    assert_eq!(ort.metadata(), native.metadata(), "both engines advertise the same metadata");
    Pair { ort, native, _dir: dir }
}

/// A model the native evaluator must take.
fn supported(bytes: Vec<u8>) -> Pair {
    let pair = pair(bytes);
    assert!(pair.native.is_native(), "the native plan is used");
    assert_eq!(pair.native.execution_provider(), "native");
    pair
}

fn request(inputs: Vec<Tensor>) -> InferRequest {
    InferRequest { inputs, ..Default::default() }
}

fn close(a: f64, b: f64) -> bool {
    (a.is_nan() && b.is_nan())
        || a == b
        || (a - b).abs() <= 1e-6
        || (a - b).abs() <= 1e-6 * a.abs().max(b.abs())
}

/// Runs both engines on `inputs` and compares every output.
fn same_outputs(pair: &Pair, inputs: Vec<Tensor>) -> Result<(), String> {
    let want = pair.ort.infer(request(inputs.clone())).map_err(|e| format!("onnx runtime: {e}"))?;
    let got = pair.native.infer(request(inputs)).map_err(|e| format!("native: {e}"))?;
    if want.len() != got.len() {
        return Err(format!("{} outputs, expected {}", got.len(), want.len()));
    }
    for (w, g) in want.iter().zip(&got) {
        let at = &w.name;
        if (&g.name, &g.shape, g.datatype()) != (&w.name, &w.shape, w.datatype()) {
            return Err(format!(
                "got {} {:?} {}, expected {} {:?} {}",
                g.name,
                g.shape,
                g.datatype(),
                w.name,
                w.shape,
                w.datatype()
            ));
        }
        let floats: Option<(Vec<f64>, Vec<f64>)> = match (&w.data, &g.data) {
            (TensorData::Fp32(w), TensorData::Fp32(g)) => {
                Some((w.iter().map(|&v| v.into()).collect(), g.iter().map(|&v| v.into()).collect()))
            }
            (TensorData::Fp64(w), TensorData::Fp64(g)) => Some((w.clone(), g.clone())),
            _ => None,
        };
        match floats {
            Some((w, g)) => {
                for (i, (a, b)) in w.iter().zip(&g).enumerate() {
                    if !close(*a, *b) {
                        return Err(format!("{at}[{i}]: native {b}, onnx runtime {a}"));
                    }
                }
            }
            None if w.data != g.data => {
                return Err(format!("{at}: native {:?}, onnx runtime {:?}", g.data, w.data));
            }
            None => {}
        }
    }
    Ok(())
}

/// Input values: mostly moderate, some zeros, some large.
fn element() -> impl Strategy<Value = f64> {
    prop_oneof![
        8 => -8.0f64..8.0,
        1 => Just(0.0),
        1 => -1.0e4f64..1.0e4,
    ]
}

/// Random `[n, width]` batches (n in 1..=8) of input `name` of `datatype`.
fn batches(name: &'static str, width: usize, datatype: DataType) -> impl Strategy<Value = Tensor> {
    (1usize..=8).prop_flat_map(move |n| {
        prop::collection::vec(element(), n * width).prop_map(move |v| {
            let data = match datatype {
                DataType::Fp64 => TensorData::Fp64(v),
                _ => TensorData::Fp32(v.into_iter().map(|x| x as f32).collect()),
            };
            Tensor::new(name, vec![n as i64, width as i64], data)
        })
    })
}

/// Compares both engines on 64 random batches of the model's single input.
fn agree_on_random_inputs(pair: &Pair) {
    let input = &pair.ort.metadata().inputs[0];
    let name: &'static str = Box::leak(input.name.clone().into_boxed_str());
    let width = input.shape[1] as usize;
    let mut runner =
        TestRunner::new(Config { cases: 64, failure_persistence: None, ..Config::default() });
    runner
        .run(&batches(name, width, input.datatype), |x| {
            same_outputs(pair, vec![x]).map_err(TestCaseError::fail)
        })
        .unwrap();
    // An empty batch too.
    let empty = match input.datatype {
        DataType::Fp64 => TensorData::Fp64(vec![]),
        _ => TensorData::Fp32(vec![]),
    };
    same_outputs(pair, vec![Tensor::new(name, vec![0, width as i64], empty)]).unwrap();
}

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures")
}

// ---- Models ----

const X: &str = "float_input";

fn x(elem: i32, width: i64) -> Vec<ValueInfoProto> {
    vec![value(X, tensor(elem, &[None, Some(width)]))]
}

fn f32_out(name: &str, width: i64) -> ValueInfoProto {
    value(name, tensor(data_type::FLOAT, &[None, Some(width)]))
}

fn label_out(name: &str, elem: i32) -> ValueInfoProto {
    value(name, tensor(elem, &[None]))
}

/// A `LinearClassifier` over `features` with `rows` coefficient rows.
fn classifier(
    features: usize,
    rows: usize,
    transform: &str,
    labels: AttributeProto,
    seed: u64,
) -> NodeProto {
    node(
        "LinearClassifier",
        &[X],
        &["label", "scores"],
        vec![
            floats("coefficients", &weights(features * rows, seed, 2.0)),
            floats("intercepts", &weights(rows, seed + 1, 1.0)),
            labels,
            int("multi_class", 0),
            string("post_transform", transform),
        ],
    )
}

#[test]
fn binary_logistic_regression_with_two_rows() {
    // skl2onnx's binary LogisticRegression: coefficients [-w, w], LOGISTIC.
    let w = weights(5, 3, 2.0);
    let coefficients: Vec<f32> = w.iter().map(|v| -v).chain(w.iter().copied()).collect();
    let lc = node(
        "LinearClassifier",
        &[X],
        &["label", "probabilities"],
        vec![
            ints("classlabels_ints", &[0, 1]),
            floats("coefficients", &coefficients),
            floats("intercepts", &[0.25, -0.25]),
            string("post_transform", "LOGISTIC"),
        ],
    );
    let pair = supported(model(
        vec![lc],
        x(data_type::FLOAT, 5),
        vec![label_out("label", data_type::INT64), f32_out("probabilities", 2)],
    ));
    agree_on_random_inputs(&pair);
}

#[test]
fn binary_classifier_with_one_row_adds_the_second_class() {
    for transform in ["NONE", "LOGISTIC", "SOFTMAX", "SOFTMAX_ZERO"] {
        let lc = classifier(3, 1, transform, ints("classlabels_ints", &[3, 7]), 11);
        let pair = supported(model(
            vec![lc],
            x(data_type::FLOAT, 3),
            vec![label_out("label", data_type::INT64), f32_out("scores", 2)],
        ));
        agree_on_random_inputs(&pair);
    }
    let lc = classifier(3, 1, "NONE", strings("classlabels_strings", &["no", "yes"]), 12);
    let pair = supported(model(
        vec![lc],
        x(data_type::FLOAT, 3),
        vec![label_out("label", data_type::STRING), f32_out("scores", 2)],
    ));
    agree_on_random_inputs(&pair);
}

#[test]
fn multiclass_transforms_and_string_labels() {
    for (classes, transform) in
        [(3, "SOFTMAX"), (6, "SOFTMAX"), (4, "SOFTMAX_ZERO"), (3, "NONE"), (5, "LOGISTIC")]
    {
        let labels: Vec<String> = (0..classes).map(|c| format!("class-{c}")).collect();
        let labels: Vec<&str> = labels.iter().map(String::as_str).collect();
        let lc = classifier(
            4,
            classes,
            transform,
            strings("classlabels_strings", &labels),
            classes as u64,
        );
        let pair = supported(model(
            vec![lc],
            x(data_type::FLOAT, 4),
            vec![label_out("label", data_type::STRING), f32_out("scores", classes as i64)],
        ));
        agree_on_random_inputs(&pair);
    }
}

#[test]
fn classifier_with_l1_normalizer_cast_and_zipmap() {
    // skl2onnx's multinomial LogisticRegression with its default ZipMap output.
    let nodes = vec![
        classifier(4, 4, "SOFTMAX", ints("classlabels_ints", &[10, 20, 30, 40]), 21),
        node("Normalizer", &["scores"], &["probabilities"], vec![string("norm", "L1")]),
        node("Cast", &["label"], &["output_label"], vec![int("to", i64::from(data_type::INT64))]),
        node(
            "ZipMap",
            &["probabilities"],
            &["output_probability"],
            vec![ints("classlabels_int64s", &[10, 20, 30, 40])],
        ),
    ];
    let pair = supported(model(
        nodes,
        x(data_type::FLOAT, 4),
        vec![
            label_out("output_label", data_type::INT64),
            value("output_probability", seq_map(data_type::INT64)),
        ],
    ));
    let proba = &pair.native.metadata().outputs[1];
    assert_eq!((proba.datatype, proba.shape.clone()), (DataType::Fp32, vec![-1, 4]));
    agree_on_random_inputs(&pair);

    // String keys, after a SOFTMAX classifier with a MAX normalizer.
    let labels = ["b", "a", "c"];
    let nodes = vec![
        classifier(4, 3, "SOFTMAX", strings("classlabels_strings", &labels), 22),
        node("Normalizer", &["scores"], &["probabilities"], vec![string("norm", "MAX")]),
        node(
            "ZipMap",
            &["probabilities"],
            &["output_probability"],
            vec![strings("classlabels_strings", &labels)],
        ),
    ];
    let pair = supported(model(
        nodes,
        x(data_type::FLOAT, 4),
        vec![
            label_out("label", data_type::STRING),
            value("output_probability", seq_map(data_type::STRING)),
        ],
    ));
    agree_on_random_inputs(&pair);
}

#[test]
fn linear_regressors_single_and_multi_target() {
    for (targets, intercepts) in [(1, Some(vec![0.5])), (3, Some(weights(3, 7, 4.0))), (2, None)] {
        let mut attrs = vec![
            floats("coefficients", &weights(6 * targets, 40 + targets as u64, 3.0)),
            int("targets", targets as i64),
        ];
        if let Some(i) = intercepts {
            attrs.push(floats("intercepts", &i));
        }
        let lr = node("LinearRegressor", &[X], &["variable"], attrs);
        let pair = supported(model(
            vec![lr],
            x(data_type::FLOAT, 6),
            vec![f32_out("variable", targets as i64)],
        ));
        agree_on_random_inputs(&pair);
    }
}

#[test]
fn double_inputs_through_casts_scaler_and_normalizers() {
    // FP64 in: scaled in double, then float; normalized (L2) in float; back to double.
    let nodes = vec![
        node(
            "Scaler",
            &[X],
            &["scaled"],
            vec![floats("offset", &[1.0, -2.0, 0.5]), floats("scale", &[0.5, 2.0, 3.0])],
        ),
        node("Normalizer", &["scaled"], &["normalized"], vec![string("norm", "L2")]),
        node("Cast", &["normalized"], &["wide"], vec![int("to", i64::from(data_type::DOUBLE))]),
        node("Identity", &["wide"], &["out"], vec![]),
        node("Cast", &[X], &["narrow"], vec![int("to", i64::from(data_type::FLOAT))]),
        node(
            "Scaler",
            &["narrow"],
            &["shifted"],
            vec![floats("offset", &[0.25]), floats("scale", &[-4.0])],
        ),
        node("Normalizer", &["shifted"], &["maxed"], vec![string("norm", "MAX")]),
    ];
    let pair = supported(model(
        nodes,
        x(data_type::DOUBLE, 3),
        vec![value("out", tensor(data_type::DOUBLE, &[None, Some(3)])), f32_out("maxed", 3)],
    ));
    agree_on_random_inputs(&pair);

    // Double input straight into a classifier, whose integer labels go through casts.
    let nodes = vec![
        classifier(3, 3, "SOFTMAX", ints("classlabels_ints", &[-1, 5, 1 << 40]), 31),
        node("Cast", &["label"], &["label32"], vec![int("to", i64::from(data_type::INT32))]),
        node("Cast", &["label32"], &["label_f"], vec![int("to", i64::from(data_type::DOUBLE))]),
        node("Normalizer", &["scores"], &["l1"], vec![string("norm", "L1")]),
    ];
    let pair = supported(model(
        nodes,
        x(data_type::DOUBLE, 3),
        vec![
            value("label_f", tensor(data_type::DOUBLE, &[None])),
            f32_out("l1", 3),
            label_out("label", data_type::INT64),
        ],
    ));
    agree_on_random_inputs(&pair);
}

#[test]
fn graphs_with_more_values_than_the_stack_holds() {
    // X, the scaled value and a chain of copies: more values than a plan keeps on the stack.
    let copies = super::STACK_SLOTS + 3;
    let mut nodes = vec![node(
        "Scaler",
        &[X],
        &["v0"],
        vec![floats("offset", &[1.0, -2.0]), floats("scale", &[0.5, 2.0])],
    )];
    let names: Vec<String> = (0..=copies).map(|i| format!("v{i}")).collect();
    for pair in names.windows(2) {
        nodes.push(node("Identity", &[pair[0].as_str()], &[pair[1].as_str()], vec![]));
    }
    let last = names.last().unwrap();
    let pair = supported(model(nodes, x(data_type::FLOAT, 2), vec![f32_out(last, 2)]));
    agree_on_random_inputs(&pair);
}

#[test]
fn iris_lr_fixture_runs_natively_and_matches() {
    let path = fixtures().join("models/iris-lr/model.onnx");
    let ort = load_at(&path, false);
    let native = load_at(&path, true);
    assert!(native.is_native() && !ort.is_native());
    let pair = Pair { ort, native, _dir: tempfile::tempdir().unwrap() };
    assert_eq!(pair.ort.metadata(), pair.native.metadata());
    agree_on_random_inputs(&pair);

    // The frameworks' predictions.
    let text = std::fs::read_to_string(fixtures().join("expected/iris-lr.json")).unwrap();
    let json: serde_json::Value = serde_json::from_str(&text).unwrap();
    let input: Vec<f32> = serde_json::from_value(json["input"]["data"].clone()).unwrap();
    let rows = input.len() / 4;
    let got = pair
        .native
        .infer(request(vec![Tensor::new(X, vec![rows as i64, 4], TensorData::Fp32(input))]))
        .unwrap();
    let labels: Vec<i64> =
        serde_json::from_value(json["outputs"]["label"]["data"].clone()).unwrap();
    let proba: Vec<f32> =
        serde_json::from_value(json["outputs"]["probabilities"]["data"].clone()).unwrap();
    assert_eq!(got[0], Tensor::new("label", vec![rows as i64], TensorData::Int64(labels)));
    let TensorData::Fp32(p) = &got[1].data else { panic!("probabilities are FP32") };
    assert_eq!(got[1].shape, vec![rows as i64, 3]);
    for (a, b) in p.iter().zip(&proba) {
        assert!((a - b).abs() < 1e-5, "{a} vs {b}");
    }
}

#[test]
fn unsupported_graphs_stay_on_onnx_runtime() {
    let lc = |transform: &str| classifier(4, 3, transform, ints("classlabels_ints", &[0, 1, 2]), 5);
    let outputs = || vec![label_out("label", data_type::INT64), f32_out("scores", 3)];
    let cases = vec![
        // PROBIT is not reproduced.
        model(vec![lc("PROBIT")], x(data_type::FLOAT, 4), outputs()),
        // An operator outside the set.
        model(
            vec![lc("SOFTMAX"), node("Softmax", &["scores"], &["soft"], vec![])],
            x(data_type::FLOAT, 4),
            vec![label_out("label", data_type::INT64), f32_out("soft", 3)],
        ),
        // One-vs-rest: LOGISTIC scores normalized. ONNX Runtime's logistic differs from
        // the one here by an ulp or two, which a row of tiny scores turns into large
        // differences once normalized.
        model(
            vec![
                classifier(4, 3, "LOGISTIC", ints("classlabels_ints", &[0, 1, 2]), 5),
                node("Normalizer", &["scores"], &["p"], vec![string("norm", "L1")]),
            ],
            x(data_type::FLOAT, 4),
            vec![label_out("label", data_type::INT64), f32_out("p", 3)],
        ),
        // A post-transform on a regressor.
        model(
            vec![node(
                "LinearRegressor",
                &[X],
                &["y"],
                vec![
                    floats("coefficients", &[1.0, 2.0, 3.0, 4.0]),
                    int("targets", 1),
                    string("post_transform", "LOGISTIC"),
                ],
            )],
            x(data_type::FLOAT, 4),
            vec![f32_out("y", 1)],
        ),
        // Integer graph input.
        model(
            vec![node("Cast", &[X], &["c"], vec![int("to", i64::from(data_type::FLOAT))])],
            x(data_type::INT64, 4),
            vec![f32_out("c", 4)],
        ),
        // Floating point to integer cast.
        model(
            vec![node("Cast", &[X], &["c"], vec![int("to", i64::from(data_type::INT64))])],
            x(data_type::FLOAT, 4),
            vec![value("c", tensor(data_type::INT64, &[None, Some(4)]))],
        ),
    ];
    for bytes in cases {
        let pair = pair(bytes);
        assert!(!pair.native.is_native(), "falls back to onnx runtime");
        assert_eq!(pair.native.execution_provider(), "CPU");
        let x = Tensor::new(
            X,
            vec![2, 4],
            match pair.ort.metadata().inputs[0].datatype {
                DataType::Int64 => TensorData::Int64(vec![1, 2, 3, 4, 5, 6, 7, 8]),
                _ => TensorData::Fp32(vec![0.5, 1.0, -2.0, 3.0, 0.0, 1.5, 2.5, -1.0]),
            },
        );
        same_outputs(&pair, vec![x]).unwrap();
    }
}

#[test]
fn compiler_refusals_say_why() {
    let refuse = |bytes: Vec<u8>| super::compile(&bytes).unwrap_err();
    let lc = classifier(4, 3, "PROBIT", ints("classlabels_ints", &[0, 1, 2]), 5);
    assert_eq!(
        refuse(model(vec![lc], x(data_type::FLOAT, 4), vec![f32_out("scores", 3)])),
        "LinearClassifier post_transform PROBIT"
    );
    let lc = classifier(4, 3, "NONE", ints("classlabels_ints", &[0, 1]), 5);
    assert!(
        refuse(model(vec![lc], x(data_type::FLOAT, 4), vec![]))
            .contains("3 coefficient rows and 2 class labels")
    );
    let lc = classifier(5, 3, "NONE", ints("classlabels_ints", &[0, 1, 2]), 5);
    assert!(refuse(model(vec![lc], x(data_type::FLOAT, 4), vec![])).contains("coefficients"));
    let unknown_width = vec![value(X, tensor(data_type::FLOAT, &[None, None]))];
    let id = node("Identity", &[X], &["y"], vec![]);
    assert!(refuse(model(vec![id], unknown_width, vec![])).contains("no fixed feature dimension"));
    assert!(refuse(b"\x0a\xff\xff garbage".to_vec()).starts_with("not a readable onnx model"));
    let extra = node("Normalizer", &[X], &["n"], vec![string("norm", "L1"), int("extra", 1)]);
    assert_eq!(
        refuse(model(vec![extra], x(data_type::FLOAT, 4), vec![])),
        "Normalizer attribute \"extra\" is not supported"
    );
    let zipmap_then_identity = vec![
        node("ZipMap", &[X], &["z"], vec![ints("classlabels_int64s", &[1, 2, 3, 4])]),
        node("Identity", &["z"], &["y"], vec![]),
    ];
    assert!(
        refuse(model(zipmap_then_identity, x(data_type::FLOAT, 4), vec![]))
            .contains("ZipMap output")
    );
}

#[test]
fn settings_can_turn_native_evaluation_off() {
    let path = fixtures().join("models/iris-lr/model.onnx");
    let model = load_at(&path, false);
    assert!(!model.is_native());
    assert_eq!(model.execution_provider(), "CPU");
}

#[test]
fn requests_that_do_not_fit_are_invalid() {
    let path = fixtures().join("models/iris-lr/model.onnx");
    let iris = load_at(&path, true);
    assert!(iris.is_native());
    let bad = [
        Tensor::new(X, vec![2, 3], TensorData::Fp32(vec![0.0; 6])),
        Tensor::new(X, vec![8], TensorData::Fp32(vec![0.0; 8])),
        Tensor::new(X, vec![1, 2, 4], TensorData::Fp32(vec![0.0; 8])),
        Tensor::new(X, vec![2, 4], TensorData::Fp32(vec![0.0; 3])),
        Tensor::new(X, vec![1, 4], TensorData::Fp64(vec![0.0; 4])),
        Tensor::new("other", vec![1, 4], TensorData::Fp32(vec![0.0; 4])),
    ];
    for t in bad {
        let err = iris.infer(request(vec![t.clone()])).unwrap_err();
        assert_eq!(err.code(), ErrorCode::InvalidArgument, "{t:?}: {err}");
    }
    let err = iris.infer(request(vec![])).unwrap_err();
    assert_eq!(err.code(), ErrorCode::InvalidArgument, "{err}");
    assert!(err.to_string().contains("input \"float_input\" is missing"), "{err}");

    // A fixed batch dimension is checked too.
    let id = node("Identity", &[X], &["y"], vec![]);
    let fixed = vec![value(X, tensor(data_type::FLOAT, &[Some(2), Some(3)]))];
    let pair = supported(model(vec![id], fixed, vec![f32_out("y", 3)]));
    let three_rows = Tensor::new(X, vec![3, 3], TensorData::Fp32(vec![0.0; 9]));
    for m in [&pair.ort, &pair.native] {
        let err = m.infer(request(vec![three_rows.clone()])).unwrap_err();
        assert_eq!(err.code(), ErrorCode::InvalidArgument, "{err}");
    }
    same_outputs(
        &pair,
        vec![Tensor::new(X, vec![2, 3], TensorData::Fp32(vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0]))],
    )
    .unwrap();
}

#[test]
fn string_labels_are_bytes() {
    let lc =
        classifier(2, 2, "SOFTMAX", strings("classlabels_strings", &["setosa", "virginica"]), 9);
    let pair = supported(model(
        vec![lc],
        x(data_type::FLOAT, 2),
        vec![label_out("label", data_type::STRING), f32_out("scores", 2)],
    ));
    let got = pair
        .native
        .infer(request(vec![Tensor::new(X, vec![1, 2], TensorData::Fp32(vec![1.0, 2.0]))]))
        .unwrap();
    let TensorData::Bytes(labels) = &got[0].data else { panic!("string labels are BYTES") };
    assert!(labels[0] == "setosa" || labels[0] == "virginica");
}
