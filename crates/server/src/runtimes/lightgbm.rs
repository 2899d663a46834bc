//! The LightGBM runtime in pure Rust: reads the text model format (`model.txt`, as written by
//! `Booster.save_model`) and predicts as LightGBM's `Booster.predict` does.
//!
//! Splits follow LightGBM's `Tree::NumericalDecision`/`CategoricalDecision` exactly: a row goes
//! left when `x <= threshold`; by the node's missing type, NaN is read as 0 (None), NaN and
//! values within ±1e-35 take the default direction (Zero), or NaN takes the default
//! direction (NaN); categorical splits go left when `trunc(x)` is a non-negative category in
//! the node's bitset, and NaN goes right. Raw scores accumulate in `f64` in tree order, then
//! the objective's transform applies (sigmoid, softmax, exp, …). Linear trees are refused at
//! load with a message that says so.

use std::collections::HashMap;
use std::path::Path;

use oxserve_protocol::{InferRequest, ModelMetadata, Tensor};

use crate::error::{Error, Result};
use crate::explain::{Attributions, ExactExplainer, treeshap};
use crate::model::Model;
use crate::runtimes::tree::{self, Child, Forest, Node, Split, Task, Tree};

/// Node `decision_type` bit: categorical split.
const CATEGORICAL_MASK: i64 = 1;
/// Node `decision_type` bit: missing values go left.
const DEFAULT_LEFT_MASK: i64 = 2;

/// How an objective turns raw scores into predictions.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Transform {
    Identity,
    /// `1 / (1 + exp(-k x))` per output (binary, multiclassova, cross_entropy).
    Sigmoid(f64),
    /// Softmax across classes (multiclass).
    Softmax,
    /// `exp(x)` (poisson, gamma, tweedie).
    Exp,
    /// `ln(1 + exp(x))` (cross_entropy_lambda).
    Softplus,
    /// `sign(x) x²` (regression objectives trained with `reg_sqrt`).
    SignedSquare,
}

/// A loaded LightGBM tree ensemble.
#[derive(Debug, Clone)]
pub struct LightgbmModel {
    metadata: ModelMetadata,
    forest: Forest<f64>,
    /// Outputs per row: the number of trees per iteration.
    groups: usize,
    transform: Transform,
    task: Task,
    /// `1 / iterations` for random-forest models (`average_output`), else 1.
    scale: f64,
    /// Per output group, the trees' expected value (TreeSHAP); `None` when the file has no
    /// node counts (`internal_count`, `leaf_count`).
    tree_expected: Option<Vec<f64>>,
}

impl LightgbmModel {
    /// Loads a text model file. Every problem with it (unreadable, malformed, unsupported
    /// objective or tree kind) is [`Error::Load`].
    pub fn load(name: &str, path: &Path) -> Result<LightgbmModel> {
        let bytes = std::fs::read(path)
            .map_err(|e| Error::load(name, format!("cannot read {}: {e}", path.display())))?;
        let text = std::str::from_utf8(&bytes).map_err(|_| {
            Error::load(name, format!("{} is not a utf-8 text model", path.display()))
        })?;
        LightgbmModel::from_text(name, text)
    }

    /// Loads a model from the contents of a text model file.
    pub fn from_text(name: &str, text: &str) -> Result<LightgbmModel> {
        LightgbmModel::parse(name, text).map_err(|message| Error::load(name, message))
    }

    fn parse(name: &str, text: &str) -> Result<LightgbmModel, String> {
        let mut lines = text.lines().map(str::trim_end).peekable();
        match lines.next() {
            Some("tree") => {}
            _ => {
                return Err("not a lightgbm text model (the first line is not \"tree\")".to_owned());
            }
        }
        // Header: `key=value` lines (and flags like `average_output`) up to the first tree.
        let mut header = HashMap::new();
        while let Some(line) = lines.next_if(|l| !l.starts_with("Tree=") && *l != "end of trees") {
            if let Some((key, value)) = line.split_once('=') {
                header.insert(key, value);
            } else if !line.is_empty() {
                header.insert(line, "");
            }
        }
        let count = |key: &str| -> Result<usize, String> {
            let value = header.get(key).ok_or_else(|| format!("the header has no {key}"))?;
            value.trim().parse().map_err(|_| format!("{key}={value} is not a count"))
        };
        let num_class = count("num_class")?;
        let per_iteration = count("num_tree_per_iteration")?;
        let max_feature_idx: i64 = header
            .get("max_feature_idx")
            .ok_or("the header has no max_feature_idx")?
            .trim()
            .parse()
            .map_err(|_| "max_feature_idx is not an integer".to_owned())?;
        let num_features = usize::try_from(max_feature_idx + 1)
            .map_err(|_| format!("max_feature_idx={max_feature_idx} is negative"))?;
        let objective = header.get("objective").copied().ok_or("the header has no objective")?;
        let (transform, task) = parse_objective(objective, num_class)?;
        if per_iteration == 0 || num_class == 0 {
            return Err("num_class and num_tree_per_iteration must be positive".to_owned());
        }
        if matches!(task, Task::Multiclass(_)) && per_iteration != num_class {
            return Err(format!("{num_class} classes but {per_iteration} trees per iteration"));
        }
        if !matches!(task, Task::Multiclass(_)) && per_iteration != 1 {
            return Err(format!(
                "objective {objective:?} with {per_iteration} trees per iteration is not supported"
            ));
        }

        let mut forest = Forest::new(num_features, per_iteration)?;
        let mut index = 0;
        loop {
            let Some(line) = lines.next() else {
                return Err("truncated model: no \"end of trees\" line".to_owned());
            };
            if line == "end of trees" {
                break;
            }
            if line.is_empty() {
                continue;
            }
            let Some(id) = line.strip_prefix("Tree=") else {
                return Err(format!("expected \"Tree=<n>\" or \"end of trees\", found {line:?}"));
            };
            let what = format!("tree {id}");
            let mut fields = HashMap::new();
            while let Some(line) =
                lines.next_if(|l| !l.is_empty() && !l.starts_with("Tree=") && *l != "end of trees")
            {
                if let Some((key, value)) = line.split_once('=') {
                    fields.insert(key, value);
                }
            }
            let tree = parse_tree(&fields).map_err(|e| format!("{what}: {e}"))?;
            forest.push(&tree, index % per_iteration, &what)?;
            index += 1;
        }
        if !index.is_multiple_of(per_iteration) {
            return Err(format!(
                "{index} trees is not a whole number of iterations of {per_iteration}"
            ));
        }
        let iterations = index / per_iteration;
        let scale = if header.contains_key("average_output") && iterations > 0 {
            1.0 / iterations as f64
        } else {
            1.0
        };

        let tree_expected = forest.shap_view().map(|v| treeshap::expected_values(&v));
        Ok(LightgbmModel {
            metadata: tree::metadata(name, "lightgbm", num_features, task),
            forest,
            groups: per_iteration,
            transform,
            task,
            scale,
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

    /// Predictions for row-major `rows` (`num_features` values per row), as LightGBM's
    /// `Booster.predict`: per row the class-1 probability (binary), the class probabilities
    /// (multiclass) or the value (regression).
    pub fn predict(&self, rows: &[f32]) -> Result<Vec<f64>> {
        let base = vec![0.0; self.groups];
        let mut out = self
            .forest
            .predict(rows, &base)
            .map_err(|e| Error::invalid(format!("model \"{}\": {e}", self.metadata.name)))?;
        if self.scale != 1.0 {
            out.iter_mut().for_each(|v| *v *= self.scale);
        }
        match self.transform {
            Transform::Identity => {}
            Transform::Sigmoid(k) => {
                out.iter_mut().for_each(|v| *v = 1.0 / (1.0 + (-k * *v).exp()))
            }
            Transform::Softmax => out.chunks_exact_mut(self.groups).for_each(tree::softmax_f64),
            Transform::Exp => out.iter_mut().for_each(|v| *v = v.exp()),
            Transform::Softplus => out.iter_mut().for_each(|v| *v = v.exp().ln_1p()),
            Transform::SignedSquare => out.iter_mut().for_each(|v| *v = v.signum() * *v * *v),
        }
        Ok(out)
    }
}

impl Model for LightgbmModel {
    fn metadata(&self) -> &ModelMetadata {
        &self.metadata
    }

    fn infer(&self, request: InferRequest) -> Result<Vec<Tensor>> {
        let rows = tree::input_rows(&request, self.num_features())?;
        let values = self.predict(rows)?;
        Ok(tree::outputs(self.task, rows.len() / self.num_features(), &values))
    }

    fn memory_bytes(&self) -> u64 {
        (std::mem::size_of::<Self>() + self.forest.memory_bytes()) as u64
    }

    fn exact_explainer(&self) -> Option<&dyn ExactExplainer> {
        Some(self)
    }
}

impl ExactExplainer for LightgbmModel {
    /// TreeSHAP of the raw score, as LightGBM's `predict(pred_contrib=True)` (weighted by
    /// the nodes' data counts): its last column per class is the expected value.
    fn explain(&self, request: &InferRequest) -> Result<Attributions> {
        let rows = tree::input_rows(request, self.num_features())?;
        let (Some(view), Some(expected)) = (self.forest.shap_view(), &self.tree_expected) else {
            return Err(Error::invalid(format!(
                "model \"{}\" cannot be explained: its trees have no internal_count/leaf_count",
                self.metadata.name
            )));
        };
        let base = vec![0.0; self.groups];
        let mut raw = self
            .forest
            .predict(rows, &base)
            .map_err(|e| Error::invalid(format!("model \"{}\": {e}", self.metadata.name)))?;
        raw.iter_mut().for_each(|v| *v *= self.scale);
        Ok(treeshap::attributions(&view, rows, &base, expected, self.scale, raw))
    }
}

/// The transform and task of an `objective=` header line such as `binary sigmoid:1` or
/// `multiclass num_class:3`.
fn parse_objective(line: &str, num_class: usize) -> Result<(Transform, Task), String> {
    let mut words = line.split_whitespace();
    let name = words.next().ok_or("the objective is empty")?;
    let mut sigmoid = 1.0;
    let mut sqrt = false;
    for word in words {
        if let Some(v) = word.strip_prefix("sigmoid:") {
            sigmoid = v
                .parse::<f64>()
                .ok()
                .filter(|s| *s > 0.0)
                .ok_or_else(|| format!("invalid {word:?} in the objective"))?;
        } else if word == "sqrt" {
            sqrt = true;
        }
    }
    let multiclass = || {
        if num_class < 2 {
            Err(format!("objective {name:?} needs num_class >= 2, the model has {num_class}"))
        } else {
            Ok(Task::Multiclass(num_class))
        }
    };
    let regression = if sqrt { Transform::SignedSquare } else { Transform::Identity };
    Ok(match name {
        "binary" => (Transform::Sigmoid(sigmoid), Task::Binary),
        "cross_entropy" | "xentropy" => (Transform::Sigmoid(1.0), Task::Binary),
        "cross_entropy_lambda" | "xentlambda" => (Transform::Softplus, Task::Regression),
        "multiclass" | "softmax" => (Transform::Softmax, multiclass()?),
        "multiclassova" | "multiclass_ova" | "ova" | "ovr" => {
            (Transform::Sigmoid(sigmoid), multiclass()?)
        }
        "regression"
        | "regression_l2"
        | "l2"
        | "mean_squared_error"
        | "mse"
        | "regression_l1"
        | "l1"
        | "mean_absolute_error"
        | "mae"
        | "huber"
        | "fair"
        | "quantile"
        | "mape" => (regression, Task::Regression),
        "poisson" | "gamma" | "tweedie" => (Transform::Exp, Task::Regression),
        "lambdarank" | "rank_xendcg" => (Transform::Identity, Task::Regression),
        other => return Err(format!("unsupported objective {other:?}")),
    })
}

fn parse_tree(fields: &HashMap<&str, &str>) -> Result<Tree, String> {
    let get = |key: &str| fields.get(key).copied().ok_or_else(|| format!("missing {key}"));
    if fields.get("is_linear").is_some_and(|v| v.trim() != "0") {
        return Err("linear trees are not supported".to_owned());
    }
    let num_leaves: usize =
        get("num_leaves")?.trim().parse().map_err(|_| "num_leaves is not a count".to_owned())?;
    if num_leaves == 0 {
        return Err("num_leaves is 0".to_owned());
    }
    let leaves = numbers::<f64>(get("leaf_value")?, "leaf_value")?;
    if leaves.len() != num_leaves {
        return Err(format!("leaf_value has {} values for {num_leaves} leaves", leaves.len()));
    }
    // Covers, for explanations only (LightGBM's own SHAP weighs by counts): a model
    // without them still predicts.
    let counts = |key: &str, len: usize| -> Vec<f64> {
        fields
            .get(key)
            .and_then(|text| numbers::<f64>(text, key).ok())
            .filter(|v| v.len() == len)
            .unwrap_or_default()
    };
    let leaf_cover = counts("leaf_count", num_leaves);
    if num_leaves == 1 {
        return Ok(Tree { nodes: Vec::new(), leaves, node_cover: Vec::new(), leaf_cover });
    }
    let n = num_leaves - 1;
    let node_cover = counts("internal_count", n);
    let feature = numbers::<i64>(get("split_feature")?, "split_feature")?;
    let threshold = numbers::<f64>(get("threshold")?, "threshold")?;
    let decision = numbers::<i64>(get("decision_type")?, "decision_type")?;
    let left = numbers::<i64>(get("left_child")?, "left_child")?;
    let right = numbers::<i64>(get("right_child")?, "right_child")?;
    for (field, len) in [
        ("split_feature", feature.len()),
        ("threshold", threshold.len()),
        ("decision_type", decision.len()),
        ("left_child", left.len()),
        ("right_child", right.len()),
    ] {
        if len != n {
            return Err(format!("{field} has {len} values for {n} splits"));
        }
    }
    let (boundaries, bits) = if decision.iter().any(|d| d & CATEGORICAL_MASK != 0) {
        let boundaries = numbers::<usize>(get("cat_boundaries")?, "cat_boundaries")?;
        let bits = numbers::<u32>(get("cat_threshold")?, "cat_threshold")?;
        (boundaries, bits)
    } else {
        (Vec::new(), Vec::new())
    };

    // Children: `>= 0` an internal node, `< 0` the leaf `!child`.
    let child = |c: i64| -> Result<Child, String> {
        if c >= 0 {
            Ok(Child::Node(usize::try_from(c).map_err(|_| format!("invalid child {c}"))?))
        } else {
            Ok(Child::Leaf(usize::try_from(!c).map_err(|_| format!("invalid child {c}"))?))
        }
    };
    let mut nodes = Vec::with_capacity(n);
    for i in 0..n {
        let feature = usize::try_from(feature[i])
            .map_err(|_| format!("node {i} has invalid feature {}", feature[i]))?;
        let d = decision[i];
        let default_left = d & DEFAULT_LEFT_MASK != 0;
        let (split, default_left, zero_is_missing) = if d & CATEGORICAL_MASK != 0 {
            // The threshold holds the index of the node's bitset in cat_boundaries.
            let t = threshold[i];
            let set = (t >= 0.0 && t.fract() == 0.0 && t < boundaries.len() as f64)
                .then_some(t as usize)
                .ok_or_else(|| {
                    format!("node {i}: categorical threshold {t} is not a bitset index")
                })?;
            let range = boundaries
                .get(set..=set + 1)
                .filter(|b| b[0] <= b[1] && b[1] <= bits.len())
                .ok_or_else(|| format!("node {i}: cat_boundaries do not frame bitset {set}"))?;
            // NaN always goes right of a categorical split.
            (Split::Categorical { bits: bits[range[0]..range[1]].to_vec() }, false, false)
        } else {
            let t = threshold[i];
            let split = Split::Numeric { threshold: tree::less_equal_threshold(t) };
            match (d >> 2) & 3 {
                // None: NaN is read as 0, which lands where 0 compares.
                0 => (split, 0.0 <= t, false),
                // Zero: zeros and NaN (read as 0) take the default direction.
                1 => (split, default_left, true),
                // NaN: NaN takes the default direction.
                2 => (split, default_left, false),
                other => {
                    return Err(format!(
                        "node {i}: unknown missing type {other} in decision_type {d}"
                    ));
                }
            }
        };
        nodes.push(Node {
            feature,
            split,
            default_left,
            zero_is_missing,
            left: child(left[i])?,
            right: child(right[i])?,
        });
    }
    Ok(Tree { nodes, leaves, node_cover, leaf_cover })
}

/// Space-separated numbers of a tree field.
fn numbers<T: std::str::FromStr>(text: &str, what: &str) -> Result<Vec<T>, String> {
    text.split_whitespace()
        .map(|w| w.parse::<T>().map_err(|_| format!("{what}: {w:?} is not a valid number")))
        .collect()
}

#[cfg(test)]
mod tests {
    use oxserve_protocol::TensorData;

    use super::*;
    use crate::runtimes::tree::testing::{self, fixture};

    fn check_fixture(name: &str) {
        let model =
            LightgbmModel::load(name, &fixture(&format!("models/{name}/model.txt"))).unwrap();
        testing::check_fixture(name, &model);
    }

    #[test]
    fn binary_matches_lightgbm() {
        check_fixture("lgbm-binary");
    }

    #[test]
    fn multiclass_matches_lightgbm() {
        check_fixture("lgbm-multiclass");
    }

    #[test]
    fn regression_with_zero_as_missing_matches_lightgbm() {
        check_fixture("lgbm-regression");
    }

    #[test]
    fn categorical_matches_lightgbm() {
        check_fixture("lgbm-categorical");
    }

    #[test]
    fn metadata_describes_the_model() {
        let model = LightgbmModel::load("m", &fixture("models/lgbm-multiclass/model.txt")).unwrap();
        let md = model.metadata();
        assert_eq!(md.platform, "lightgbm");
        assert_eq!(md.inputs[0].name, "input-0");
        assert_eq!(md.inputs[0].shape, vec![-1, 8]);
        assert_eq!(md.outputs[1].name, "predict_proba");
        assert_eq!(md.outputs[1].shape, vec![-1, 3]);
        assert_eq!(model.num_trees(), 45);
        assert!(model.memory_bytes() > 10_000);
    }

    fn binary_text() -> String {
        std::fs::read_to_string(fixture("models/lgbm-binary/model.txt")).unwrap()
    }

    #[test]
    fn truncated_and_malformed_files_are_load_errors() {
        let text = binary_text();
        for cut in [0, 5, 100, text.len() / 4, text.len() / 2, text.find("end of trees").unwrap()] {
            let err = LightgbmModel::from_text("m", &text[..cut]).unwrap_err();
            assert!(matches!(err, Error::Load { .. }), "cut at {cut}: {err}");
        }
        for (from, to, message) in [
            ("left_child=1 ", "left_child=0 ", "invalid child node 0"),
            ("split_feature=6 ", "split_feature=99 ", "feature 99"),
            ("split_feature=6 ", "split_feature=-1 ", "invalid feature -1"),
            // Evaluation indexes its tables unchecked: children must exist and come after
            // their parents.
            ("left_child=2 5 ", "left_child=2 99 ", "node 1 has invalid child node 99"),
            ("right_child=1 3 ", "right_child=0 3 ", "node 0 has invalid child node 0"),
            ("left_child=2 5 -1 ", "left_child=2 5 -99 ", "node 2 points at missing leaf 98"),
            ("num_leaves=15", "num_leaves=16", "leaf_value has 15 values for 16 leaves"),
            ("threshold=", "threshold=abc ", "\"abc\" is not a valid number"),
            ("decision_type=2 ", "decision_type=12 ", "unknown missing type 3"),
            ("is_linear=0", "is_linear=1", "linear trees are not supported"),
            ("max_feature_idx=7", "max_feature_idx=-3", "negative"),
        ] {
            assert!(text.contains(from), "fixture lacks {from:?}");
            let bad = text.replacen(from, to, 1);
            let err = LightgbmModel::from_text("m", &bad).unwrap_err().to_string();
            assert!(err.contains(message), "{from:?} → {to:?}: {err}");
        }
        let err = LightgbmModel::load("m", Path::new("/nonexistent/model.txt")).unwrap_err();
        assert!(err.to_string().contains("cannot read"), "{err}");
    }

    #[test]
    fn unknown_objective_is_rejected_by_name() {
        let bad =
            binary_text().replacen("objective=binary sigmoid:1", "objective=lambdamart_fancy", 1);
        let err = LightgbmModel::from_text("m", &bad).unwrap_err();
        assert!(err.to_string().contains("unsupported objective \"lambdamart_fancy\""), "{err}");
    }

    #[test]
    fn malformed_categorical_bitsets_are_load_errors() {
        let text = std::fs::read_to_string(fixture("models/lgbm-categorical/model.txt")).unwrap();
        let bad = text.replacen("cat_boundaries=0 1", "cat_boundaries=0 9", 1);
        let err = LightgbmModel::from_text("m", &bad).unwrap_err().to_string();
        assert!(err.contains("cat_boundaries do not frame bitset"), "{err}");
    }

    #[test]
    fn objectives_map_to_transforms() {
        assert_eq!(
            parse_objective("binary sigmoid:2", 1).unwrap(),
            (Transform::Sigmoid(2.0), Task::Binary)
        );
        assert_eq!(
            parse_objective("multiclass num_class:4", 4).unwrap(),
            (Transform::Softmax, Task::Multiclass(4))
        );
        assert_eq!(
            parse_objective("regression sqrt", 1).unwrap(),
            (Transform::SignedSquare, Task::Regression)
        );
        assert_eq!(parse_objective("poisson", 1).unwrap(), (Transform::Exp, Task::Regression));
        assert!(parse_objective("multiclass num_class:1", 1).is_err());
    }

    #[test]
    fn single_leaf_trees_and_wrong_counts() {
        let text = "tree\nversion=v4\nnum_class=1\nnum_tree_per_iteration=1\nlabel_index=0\nmax_feature_idx=1\n\
                    objective=regression\n\nTree=0\nnum_leaves=1\nnum_cat=0\nleaf_value=2.5\nis_linear=0\nshrinkage=1\n\n\
                    end of trees\n";
        let model = LightgbmModel::from_text("m", text).unwrap();
        assert_eq!(model.predict(&[1.0, f32::NAN, 0.0, 0.0]).unwrap(), vec![2.5, 2.5]);
        assert!(model.predict(&[1.0]).is_err());
        let request = InferRequest {
            inputs: vec![Tensor::new("input-0", vec![3, 2], TensorData::Fp32(vec![0.0; 4]))],
            ..Default::default()
        };
        assert!(model.infer(request).unwrap_err().to_string().contains("[N, 2]"));
    }
}
