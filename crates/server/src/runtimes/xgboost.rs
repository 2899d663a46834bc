//! The XGBoost runtime in pure Rust: reads `model.json` and `model.ubj` (XGBoost ≥ 1.6
//! schema, as written by XGBoost 2.x and 3.x) and predicts as XGBoost's CPU predictor does.
//!
//! Margins start at the model's intercept (`base_score`, turned into a margin the way the
//! objective does: logit for logistic objectives, log for Poisson/Gamma/Tweedie) and add one
//! leaf per tree in `f32`, trees in order; the objective then maps margins to predictions
//! with XGBoost's own `f32` sigmoid and softmax, so results agree to the last bit or two.
//! Missing values (NaN) take each split's default direction. Categorical splits, `gblinear`,
//! DART and multi-target trees are refused at load with a message that says so.

use std::path::Path;

use oxserve_protocol::{InferRequest, ModelMetadata, Tensor};
use serde_json::Value;

use crate::error::{Error, Result};
use crate::explain::{Attributions, ExactExplainer, treeshap};
use crate::model::Model;
use crate::runtimes::tree::{self, Child, Forest, Node, Split, Task, Tree};
use crate::runtimes::ubjson;

/// How an objective turns margins into predictions.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Transform {
    /// The margin itself (squared error, pseudo-Huber, absolute error …).
    Identity,
    /// XGBoost's `f32` sigmoid (binary:logistic, binary:logitraw, reg:logistic).
    Sigmoid,
    /// `exp` (count:poisson, reg:gamma, reg:tweedie).
    Exp,
    /// Softmax over the classes (multi:softprob, multi:softmax).
    Softmax,
}

/// A loaded XGBoost tree ensemble.
#[derive(Debug, Clone)]
pub struct XgboostModel {
    metadata: ModelMetadata,
    forest: Forest<f32>,
    /// Per output group, the margin every row starts from.
    base_margin: Vec<f32>,
    transform: Transform,
    task: Task,
    /// Per output group, the trees' expected value (TreeSHAP); `None` when the file has no
    /// node covers (`sum_hessian`).
    tree_expected: Option<Vec<f64>>,
}

impl XgboostModel {
    /// Loads `path`: UBJSON when its extension is `ubj`, JSON otherwise. Every problem with
    /// the file (unreadable, malformed, unsupported objective or booster) is [`Error::Load`].
    pub fn load(name: &str, path: &Path) -> Result<XgboostModel> {
        let bytes = std::fs::read(path)
            .map_err(|e| Error::load(name, format!("cannot read {}: {e}", path.display())))?;
        let ubj = path.extension().is_some_and(|e| e.eq_ignore_ascii_case("ubj"));
        XgboostModel::from_slice(name, &bytes, ubj)
    }

    /// Loads a model from the bytes of a `model.json` (`ubj == false`) or `model.ubj`.
    pub fn from_slice(name: &str, bytes: &[u8], ubj: bool) -> Result<XgboostModel> {
        let value = if ubj {
            ubjson::parse(bytes)
                .map_err(|e| Error::load(name, format!("invalid xgboost ubjson model: {e}")))?
        } else {
            serde_json::from_slice(bytes)
                .map_err(|e| Error::load(name, format!("invalid xgboost json model: {e}")))?
        };
        XgboostModel::from_value(name, &value).map_err(|message| Error::load(name, message))
    }

    fn from_value(name: &str, doc: &Value) -> Result<XgboostModel, String> {
        let learner = get(doc, "learner")?;
        let params = get(learner, "learner_model_param")?;
        let num_features = usize_param(params, "num_feature")?;
        let num_class = usize_param(params, "num_class")?;
        if let Some(targets) = params.get("num_target") {
            let targets =
                parse_usize(targets).ok_or("learner_model_param.num_target is not a number")?;
            if targets > 1 {
                return Err(format!("multi-target models ({targets} targets) are not supported"));
            }
        }

        let objective = get(get(learner, "objective")?, "name")?
            .as_str()
            .ok_or("learner.objective.name is not a string")?;
        let (transform, task, margin_of) = match objective {
            "binary:logistic" | "binary:logitraw" => {
                (Transform::Sigmoid, Task::Binary, Margin::Logit)
            }
            "reg:logistic" => (Transform::Sigmoid, Task::Regression, Margin::Logit),
            "reg:squarederror"
            | "reg:pseudohubererror"
            | "reg:absoluteerror"
            | "reg:squaredlogerror" => (Transform::Identity, Task::Regression, Margin::Identity),
            "count:poisson" | "reg:gamma" | "reg:tweedie" => {
                (Transform::Exp, Task::Regression, Margin::Log)
            }
            "multi:softprob" | "multi:softmax" => {
                if num_class < 2 {
                    return Err(format!(
                        "objective {objective:?} needs num_class >= 2, the model has {num_class}"
                    ));
                }
                (Transform::Softmax, Task::Multiclass(num_class), Margin::Identity)
            }
            other => return Err(format!("unsupported objective {other:?}")),
        };
        let groups = match task {
            Task::Multiclass(k) => k,
            Task::Binary | Task::Regression => 1,
        };

        let base_scores = parse_base_score(get(params, "base_score")?)?;
        let base_margin = match base_scores.as_slice() {
            [b] => vec![margin_of.apply(*b)?; groups],
            many if many.len() == groups => {
                many.iter().map(|&b| margin_of.apply(b)).collect::<Result<_, _>>()?
            }
            many => {
                return Err(format!("base_score has {} values for {groups} outputs", many.len()));
            }
        };

        let booster = get(learner, "gradient_booster")?;
        let booster_name = get(booster, "name")?.as_str().unwrap_or("");
        if booster_name != "gbtree" {
            return Err(format!("unsupported booster {booster_name:?} (only gbtree is supported)"));
        }
        let model = get(booster, "model")?;
        let trees = get(model, "trees")?
            .as_array()
            .ok_or("gradient_booster.model.trees is not an array")?;
        let tree_info = int_array(get(model, "tree_info")?, "tree_info")?;
        if tree_info.len() != trees.len() {
            return Err(format!(
                "{} trees but tree_info has {} entries",
                trees.len(),
                tree_info.len()
            ));
        }
        let mut forest = Forest::new(num_features, groups)?;
        for (i, (tree, &group)) in trees.iter().zip(&tree_info).enumerate() {
            let what = format!("tree {i}");
            let group = usize::try_from(group)
                .map_err(|_| format!("{what}: negative output group {group}"))?;
            let tree = parse_tree(tree).map_err(|e| format!("{what}: {e}"))?;
            forest.push(&tree, group, &what)?;
        }

        let tree_expected = forest.shap_view().map(|v| treeshap::expected_values(&v));
        Ok(XgboostModel {
            metadata: tree::metadata(name, "xgboost", num_features, task),
            forest,
            base_margin,
            transform,
            task,
            tree_expected,
        })
    }

    /// Number of features a row must have.
    pub fn num_features(&self) -> usize {
        self.forest.num_features()
    }

    /// Number of trees.
    pub fn num_trees(&self) -> usize {
        self.forest.num_trees()
    }

    /// Predictions for row-major `rows` (`num_features` values per row): per row the class-1
    /// probability (binary), the class probabilities (multiclass) or the value (regression).
    pub fn predict(&self, rows: &[f32]) -> Result<Vec<f32>> {
        let mut out = self
            .forest
            .predict(rows, &self.base_margin)
            .map_err(|e| Error::invalid(format!("model \"{}\": {e}", self.metadata.name)))?;
        match self.transform {
            Transform::Identity => {}
            Transform::Sigmoid => out.iter_mut().for_each(|m| *m = sigmoid(*m)),
            Transform::Exp => out.iter_mut().for_each(|m| *m = m.exp()),
            Transform::Softmax => {
                let k = self.base_margin.len();
                out.chunks_exact_mut(k).for_each(tree::softmax_f32);
            }
        }
        Ok(out)
    }
}

impl Model for XgboostModel {
    fn metadata(&self) -> &ModelMetadata {
        &self.metadata
    }

    fn infer(&self, request: InferRequest) -> Result<Vec<Tensor>> {
        let rows = tree::input_rows(&request, self.num_features())?;
        let values: Vec<f64> = self.predict(rows)?.into_iter().map(f64::from).collect();
        Ok(tree::outputs(self.task, rows.len() / self.num_features(), &values))
    }

    fn memory_bytes(&self) -> u64 {
        (std::mem::size_of::<Self>() + self.forest.memory_bytes()) as u64
    }

    fn exact_explainer(&self) -> Option<&dyn ExactExplainer> {
        Some(self)
    }
}

impl ExactExplainer for XgboostModel {
    /// TreeSHAP of the margin, as XGBoost's `predict(pred_contribs=True)`: its last column
    /// (the bias) is the expected value.
    fn explain(&self, request: &InferRequest) -> Result<Attributions> {
        let rows = tree::input_rows(request, self.num_features())?;
        let (Some(view), Some(expected)) = (self.forest.shap_view(), &self.tree_expected) else {
            return Err(Error::invalid(format!(
                "model \"{}\" cannot be explained: its trees have no node covers (sum_hessian)",
                self.metadata.name
            )));
        };
        let margins = self
            .forest
            .predict(rows, &self.base_margin)
            .map_err(|e| Error::invalid(format!("model \"{}\": {e}", self.metadata.name)))?;
        let base: Vec<f64> = self.base_margin.iter().map(|&b| f64::from(b)).collect();
        let explained = margins.into_iter().map(f64::from).collect();
        Ok(treeshap::attributions(&view, rows, &base, expected, 1.0, explained))
    }
}

/// XGBoost's `common::Sigmoid` (the `1e-16` it adds is below `f32` resolution at 1).
fn sigmoid(x: f32) -> f32 {
    let x = (-x).min(88.7);
    1.0 / (x.exp() + 1.0)
}

/// How an objective turns `base_score` (a mean prediction) into a margin.
#[derive(Debug, Clone, Copy)]
enum Margin {
    Identity,
    /// `-ln(1/b - 1)`, in `f32` as XGBoost.
    Logit,
    Log,
}

impl Margin {
    fn apply(self, b: f32) -> Result<f32, String> {
        match self {
            Margin::Identity => Ok(b),
            Margin::Logit if b > 0.0 && b < 1.0 => Ok(-(1.0 / b - 1.0).ln()),
            Margin::Logit => {
                Err(format!("base_score {b} must be between 0 and 1 for a logistic objective"))
            }
            Margin::Log if b > 0.0 => Ok(b.ln()),
            Margin::Log => Err(format!("base_score {b} must be positive for this objective")),
        }
    }
}

/// `base_score` as XGBoost writes it: `"5E-1"`, `"[5E-1]"` or `"[a,b,c]"` (one per class).
fn parse_base_score(v: &Value) -> Result<Vec<f32>, String> {
    let text = match v {
        Value::String(s) => s.as_str(),
        Value::Number(n) => {
            return n
                .as_f64()
                .map(|f| vec![f as f32])
                .ok_or_else(|| "base_score is not a number".into());
        }
        _ => return Err("base_score is neither a string nor a number".to_owned()),
    };
    let inner = text.trim().trim_start_matches('[').trim_end_matches(']');
    let scores = inner
        .split(',')
        .map(|s| s.trim().parse::<f32>().ok().filter(|v| v.is_finite()))
        .collect::<Option<Vec<f32>>>()
        .ok_or_else(|| format!("base_score {text:?} is not a number or list of numbers"))?;
    Ok(scores)
}

fn parse_tree(tree: &Value) -> Result<Tree, String> {
    let left = int_array(get(tree, "left_children")?, "left_children")?;
    let right = int_array(get(tree, "right_children")?, "right_children")?;
    let feature = int_array(get(tree, "split_indices")?, "split_indices")?;
    let cond = float_array(get(tree, "split_conditions")?, "split_conditions")?;
    let default_left = int_array(get(tree, "default_left")?, "default_left")?;
    // Node covers, for explanations only: a model without them still predicts.
    let hessian = match tree.get("sum_hessian") {
        Some(v) => Some(float_array(v, "sum_hessian")?).filter(|h| h.len() == left.len()),
        None => None,
    };
    let n = left.len();
    if n == 0 {
        return Err("has no nodes".to_owned());
    }
    for (field, len) in [
        ("right_children", right.len()),
        ("split_indices", feature.len()),
        ("split_conditions", cond.len()),
        ("default_left", default_left.len()),
    ] {
        if len != n {
            return Err(format!("{field} has {len} entries for {n} nodes"));
        }
    }
    if let Some(split_type) = tree.get("split_type") {
        let split_type = int_array(split_type, "split_type")?;
        if split_type.iter().zip(&left).any(|(&t, &l)| t != 0 && l != -1) {
            return Err("categorical splits are not supported".to_owned());
        }
    }
    if let Some(size) = tree.get("tree_param").and_then(|p| p.get("size_leaf_vector")) {
        let size = parse_usize(size).ok_or("tree_param.size_leaf_vector is not a number")?;
        if size > 1 {
            return Err("vector leaves (multi-target trees) are not supported".to_owned());
        }
    }

    // XGBoost keeps leaves and internal nodes in one array (a leaf has left child -1 and its
    // value in split_conditions), may leave pruned nodes in it and may reuse their slots, so
    // ids need not grow from parent to child. Renumber breadth-first from the root: children
    // then always follow their parents, unreachable nodes drop out, and a node reached twice
    // (a cycle or a shared subtree) is refused.
    let is_leaf = |id: usize| left[id] == -1;
    let mut seen = vec![false; n];
    let mut order = std::collections::VecDeque::from([0usize]);
    seen[0] = true;
    let mut out = Tree::default();
    // Index 0 of its kind belongs to the root.
    let (mut next_node, mut next_leaf) = (1usize, 0usize);
    while let Some(id) = order.pop_front() {
        if is_leaf(id) {
            out.leaves.push(f64::from(cond[id]));
            if let Some(h) = &hessian {
                out.leaf_cover.push(f64::from(h[id]));
            }
            continue;
        }
        if let Some(h) = &hessian {
            out.node_cover.push(f64::from(h[id]));
        }
        let mut child = |c: i64| -> Result<Child, String> {
            let cid = usize::try_from(c)
                .ok()
                .filter(|&cid| cid < n)
                .ok_or_else(|| format!("node {id} has invalid child {c}"))?;
            if std::mem::replace(&mut seen[cid], true) {
                return Err(format!("node {cid} is reached twice: the nodes do not form a tree"));
            }
            order.push_back(cid);
            Ok(if is_leaf(cid) {
                next_leaf += 1;
                Child::Leaf(next_leaf - 1)
            } else {
                next_node += 1;
                Child::Node(next_node - 1)
            })
        };
        let (l, r) = (child(left[id])?, child(right[id])?);
        let feature = usize::try_from(feature[id])
            .map_err(|_| format!("node {id} has invalid feature {}", feature[id]))?;
        out.nodes.push(Node {
            feature,
            split: Split::Numeric { threshold: cond[id] },
            default_left: default_left[id] != 0,
            zero_is_missing: false,
            left: l,
            right: r,
        });
    }
    Ok(out)
}

fn get<'a>(v: &'a Value, key: &str) -> Result<&'a Value, String> {
    v.get(key).ok_or_else(|| format!("missing field {key:?}"))
}

/// A count that XGBoost writes as a string (`"10"`) or, in some versions, a number.
fn parse_usize(v: &Value) -> Option<usize> {
    match v {
        Value::String(s) => s.trim().parse().ok(),
        Value::Number(n) => n.as_u64().and_then(|n| usize::try_from(n).ok()),
        _ => None,
    }
}

fn usize_param(params: &Value, key: &str) -> Result<usize, String> {
    parse_usize(get(params, key)?)
        .ok_or_else(|| format!("learner_model_param.{key} is not a count"))
}

/// Integers (booleans count as 0/1, as old models wrote `default_left`).
fn int_array(v: &Value, what: &str) -> Result<Vec<i64>, String> {
    let items = v.as_array().ok_or_else(|| format!("{what} is not an array"))?;
    items
        .iter()
        .map(|x| match x {
            Value::Bool(b) => Some(i64::from(*b)),
            other => other.as_i64(),
        })
        .collect::<Option<Vec<_>>>()
        .ok_or_else(|| format!("{what} holds a value that is not an integer"))
}

/// Numbers as `f32` (XGBoost stores `f32`; JSON writes their shortest decimal, so the
/// round trip is exact).
fn float_array(v: &Value, what: &str) -> Result<Vec<f32>, String> {
    let items = v.as_array().ok_or_else(|| format!("{what} is not an array"))?;
    items
        .iter()
        .map(|x| x.as_f64().map(|f| f as f32))
        .collect::<Option<Vec<_>>>()
        .ok_or_else(|| format!("{what} holds a value that is not a number"))
}

#[cfg(test)]
mod tests {
    use oxserve_protocol::TensorData;

    use super::*;
    use crate::runtimes::tree::testing::{self, fixture};

    /// Loads fixture `name`, runs its expected input through `infer` and compares every output.
    fn check_fixture(name: &str, file: &str) {
        let model = XgboostModel::load(name, &fixture(&format!("models/{name}/{file}"))).unwrap();
        testing::check_fixture(name, &model);
    }

    #[test]
    fn binary_json_matches_xgboost() {
        check_fixture("xgb-binary", "model.json");
    }

    #[test]
    fn multiclass_ubjson_matches_xgboost() {
        check_fixture("xgb-multiclass", "model.ubj");
    }

    #[test]
    fn regression_json_matches_xgboost() {
        check_fixture("xgb-regression", "model.json");
    }

    #[test]
    fn metadata_describes_the_model() {
        let model = XgboostModel::load("m", &fixture("models/xgb-multiclass/model.ubj")).unwrap();
        let md = model.metadata();
        assert_eq!(md.platform, "xgboost");
        assert_eq!(md.inputs[0].name, "input-0");
        assert_eq!(md.inputs[0].shape, vec![-1, 10]);
        assert_eq!(md.outputs[1].shape, vec![-1, 3]);
        assert_eq!(model.num_trees(), 30);
        assert!(model.memory_bytes() > 10_000);
    }

    #[test]
    fn truncated_and_malformed_files_are_load_errors() {
        for (file, ubj) in [("xgb-binary/model.json", false), ("xgb-multiclass/model.ubj", true)] {
            let bytes = std::fs::read(fixture(&format!("models/{file}"))).unwrap();
            for cut in [0, 1, 7, bytes.len() / 3, bytes.len() / 2, bytes.len() - 1] {
                let err = XgboostModel::from_slice("m", &bytes[..cut], ubj).unwrap_err();
                assert!(matches!(err, Error::Load { .. }), "{file} cut at {cut}: {err}");
            }
            // Flipping bytes must never panic, whatever it does.
            for at in (0..bytes.len()).step_by(997) {
                let mut bad = bytes.clone();
                bad[at] ^= 0x5a;
                let _ = XgboostModel::from_slice("m", &bad, ubj);
            }
        }
        let err = XgboostModel::load("m", Path::new("/nonexistent/model.json")).unwrap_err();
        assert!(err.to_string().contains("cannot read"), "{err}");
    }

    /// The xgb-binary fixture with the value at JSON `pointer` replaced, loaded.
    fn edited(pointer: &str, value: Value) -> Result<XgboostModel> {
        let text = std::fs::read_to_string(fixture("models/xgb-binary/model.json")).unwrap();
        let mut doc: Value = serde_json::from_str(&text).unwrap();
        *doc.pointer_mut(pointer).unwrap_or_else(|| panic!("no {pointer} in the fixture")) = value;
        XgboostModel::from_slice("m", doc.to_string().as_bytes(), false)
    }

    #[test]
    fn unsupported_models_are_rejected_with_a_reason() {
        let trees = "/learner/gradient_booster/model/trees";
        let base_score = "/learner/learner_model_param/base_score";
        let cases: [(String, Value, &str); 10] = [
            (
                "/learner/objective/name".into(),
                "rank:pairwise".into(),
                "unsupported objective \"rank:pairwise\"",
            ),
            ("/learner/gradient_booster/name".into(), "gblinear".into(), "gblinear"),
            (
                format!("{trees}/0/split_type/0"),
                1.into(),
                "tree 0: categorical splits are not supported",
            ),
            (format!("{trees}/2/left_children/0"), 0.into(), "tree 2: node 0 is reached twice"),
            (format!("{trees}/1/split_indices/0"), 10.into(), "feature 10"),
            // Evaluation indexes its tables unchecked: features and children must exist.
            (format!("{trees}/1/split_indices/0"), (-1).into(), "invalid feature -1"),
            (
                format!("{trees}/3/right_children/0"),
                9999.into(),
                "tree 3: node 0 has invalid child 9999",
            ),
            (
                format!("{trees}/3/right_children/0"),
                (-2).into(),
                "tree 3: node 0 has invalid child -2",
            ),
            (base_score.into(), "[2E0]".into(), "base_score 2"),
            (base_score.into(), "abc".into(), "base_score"),
        ];
        for (pointer, value, expected) in cases {
            let err = edited(&pointer, value).unwrap_err();
            assert!(err.to_string().contains(expected), "{pointer}: {err}");
        }
    }

    /// A one-tree regression model: node 0 splits feature 1 at 0.5 (NaN right) into node 2
    /// (ids need not grow: XGBoost reuses pruned slots) and leaf 1; node 2 splits feature 0 at
    /// -1 (NaN left) into leaves 3 and 4; node 5 is a pruned leftover nobody reaches.
    const HAND_MADE: &str = r#"{"learner": {
        "learner_model_param": {"base_score": "1E0", "num_class": "0", "num_feature": "2", "num_target": "1"},
        "objective": {"name": "reg:squarederror"},
        "gradient_booster": {"name": "gbtree", "model": {"tree_info": [0], "trees": [{
            "left_children":    [2, -1, 3, -1, -1, -1],
            "right_children":   [1, -1, 4, -1, -1, -1],
            "split_indices":    [1, 0, 0, 0, 0, 0],
            "split_conditions": [0.5, 10.0, -1.0, 20.0, 30.0, 99.0],
            "default_left":     [0, 0, 1, 0, 0, 0],
            "split_type":       [0, 0, 0, 0, 0, 0]
        }]}}
    }}"#;

    #[test]
    fn hand_made_tree_follows_xgboost_rules() {
        let model = XgboostModel::from_slice("m", HAND_MADE.as_bytes(), false).unwrap();
        let rows = [
            [0.0, 0.4],      // f1 < 0.5 → node 2; f0 = 0 ≥ -1 → leaf 4
            [-2.0, 0.4],     // → node 2; f0 < -1 → leaf 3
            [f32::NAN, 0.4], // → node 2; NaN default left → leaf 3
            [0.0, 0.5],      // f1 = 0.5 is not < 0.5 → leaf 1
            [0.0, f32::NAN], // NaN default right → leaf 1
        ];
        let got = model.predict(rows.as_flattened()).unwrap();
        assert_eq!(got, vec![31.0, 21.0, 21.0, 11.0, 11.0]);
        let cyclic = HAND_MADE.replace("[2, -1, 3, -1, -1, -1]", "[2, -1, 0, -1, -1, -1]");
        let err = XgboostModel::from_slice("m", cyclic.as_bytes(), false).unwrap_err();
        assert!(err.to_string().contains("node 0 is reached twice"), "{err}");
    }

    #[test]
    fn base_score_forms() {
        assert_eq!(parse_base_score(&"5E-1".into()).unwrap(), vec![0.5]);
        assert_eq!(parse_base_score(&"[5E-1]".into()).unwrap(), vec![0.5]);
        assert_eq!(parse_base_score(&"[1E0,-2.5E-1]".into()).unwrap(), vec![1.0, -0.25]);
        assert!(parse_base_score(&"[]".into()).is_err());
        // A logistic base_score of 0.5 is a zero margin.
        assert_eq!(Margin::Logit.apply(0.5).unwrap(), 0.0);
    }

    #[test]
    fn wrong_element_count_is_an_error_not_a_panic() {
        let model = XgboostModel::load("m", &fixture("models/xgb-regression/model.json")).unwrap();
        let request = InferRequest {
            inputs: vec![Tensor::new("input-0", vec![2, 10], TensorData::Fp32(vec![0.0; 19]))],
            ..Default::default()
        };
        assert!(model.infer(request).unwrap_err().to_string().contains("[N, 10]"));
        let request = InferRequest {
            inputs: vec![Tensor::new("input-0", vec![2, 10], TensorData::Fp64(vec![0.0; 20]))],
            ..Default::default()
        };
        assert!(model.infer(request).unwrap_err().to_string().contains("FP32"));
        assert!(model.predict(&[0.0; 15]).is_err());
        assert_eq!(model.predict(&[]).unwrap(), Vec::<f32>::new());
    }
}
