//! Tests of the explainers: TreeSHAP against the frameworks' own contributions on the
//! fixtures and against brute-force Shapley values; KernelSHAP against exact values.

use oxserve_protocol::{InferRequest, Tensor, TensorData};
use serde_json::Value;

use crate::model::Model;
use crate::runtimes::lightgbm::LightgbmModel;
use crate::runtimes::tree::testing::{expected, fixture};
use crate::runtimes::xgboost::XgboostModel;

/// The framework's contributions of fixture `name`: `[rows, groups, features + 1]`.
fn framework_contribs(name: &str) -> (Vec<usize>, Vec<f64>) {
    let text = std::fs::read_to_string(fixture(&format!("expected/{name}.contribs.json"))).unwrap();
    let doc: Value = serde_json::from_str(&text).unwrap();
    let c = &doc["contribs"];
    let shape = c["shape"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap() as usize);
    let data = c["data"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap()).collect();
    (shape.collect(), data)
}

/// Explains fixture `name`'s test rows and returns the largest difference from the
/// framework's contributions (bias column against the expected value).
fn max_diff_from_framework(name: &str, model: &dyn Model) -> f64 {
    let (x, shape, _) = expected(name);
    let request = InferRequest {
        inputs: vec![Tensor::new("input-0", shape, TensorData::Fp32(x))],
        ..Default::default()
    };
    let a = model.exact_explainer().unwrap().explain(&request).unwrap();
    let (want_shape, want) = framework_contribs(name);
    assert_eq!(want_shape, vec![a.rows, a.width, a.features + 1], "{name}: shape");
    // XGBoost sums its margins in `f32`.
    assert!(a.additivity_error() < 1e-5, "{name}: additivity {}", a.additivity_error());
    let f = a.features;
    let mut worst = 0.0f64;
    for r in 0..a.rows {
        for g in 0..a.width {
            let at = (r * a.width + g) * (f + 1);
            for j in 0..f {
                let got = a.values[(r * a.width + g) * f + j];
                worst = worst.max((got - want[at + j]).abs());
            }
            worst = worst.max((a.expected_value[g] - want[at + f]).abs());
        }
    }
    worst
}

#[test]
fn treeshap_matches_xgboost_pred_contribs() {
    for (name, file) in [
        ("xgb-binary", "model.json"),
        ("xgb-multiclass", "model.ubj"),
        ("xgb-regression", "model.json"),
    ] {
        let model = XgboostModel::load(name, &fixture(&format!("models/{name}/{file}"))).unwrap();
        let diff = max_diff_from_framework(name, &model);
        eprintln!("{name}: max abs diff from the framework's contributions {diff:.2e}");
        assert!(diff < 1e-5, "{name}: max abs diff {diff}");
    }
}

#[test]
fn treeshap_matches_lightgbm_pred_contrib() {
    for name in ["lgbm-binary", "lgbm-multiclass", "lgbm-regression", "lgbm-categorical"] {
        let model =
            LightgbmModel::load(name, &fixture(&format!("models/{name}/model.txt"))).unwrap();
        let diff = max_diff_from_framework(name, &model);
        eprintln!("{name}: max abs diff from the framework's contributions {diff:.2e}");
        assert!(diff < 1e-5, "{name}: max abs diff {diff}");
    }
}

mod brute_force {
    //! Shapley values by enumerating every coalition, with TreeSHAP's (path-dependent)
    //! value function: features in the coalition follow the row, the others split the
    //! node's value by the children's covers.

    use proptest::prelude::*;

    use crate::explain::treeshap;
    use crate::runtimes::tree::{Child, Forest, Node, Split, Tree};

    /// `E[f(x) | x_S]` of one tree, as TreeSHAP defines it.
    fn value(tree: &Tree, row: &[f32], coalition: u32, at: Child) -> f64 {
        match at {
            Child::Leaf(j) => tree.leaves[j],
            Child::Node(i) => {
                let node = &tree.nodes[i];
                let Split::Numeric { threshold } = node.split else { unreachable!() };
                if coalition >> node.feature & 1 == 1 {
                    let v = row[node.feature];
                    let left = if v.is_nan() { node.default_left } else { v < threshold };
                    value(tree, row, coalition, if left { node.left } else { node.right })
                } else {
                    let cover = |c: Child| match c {
                        Child::Node(n) => tree.node_cover[n],
                        Child::Leaf(l) => tree.leaf_cover[l],
                    };
                    let (l, r) = (cover(node.left), cover(node.right));
                    (value(tree, row, coalition, node.left) * l
                        + value(tree, row, coalition, node.right) * r)
                        / tree.node_cover[i]
                }
            }
        }
    }

    fn shapley(tree: &Tree, row: &[f32], features: usize) -> Vec<f64> {
        let fact = |n: usize| (1..=n).map(|k| k as f64).product::<f64>();
        let root = if tree.nodes.is_empty() { Child::Leaf(0) } else { Child::Node(0) };
        let mut phi = vec![0.0; features];
        for (j, p) in phi.iter_mut().enumerate() {
            for s in 0u32..(1 << features) {
                if s >> j & 1 == 1 {
                    continue;
                }
                let size = s.count_ones() as usize;
                let w = fact(size) * fact(features - size - 1) / fact(features);
                *p += w * (value(tree, row, s | 1 << j, root) - value(tree, row, s, root));
            }
        }
        phi
    }

    /// A random tree whose covers add up (each leaf a random count, each node the sum of
    /// its children), with features repeated along paths.
    fn arb_tree(features: usize) -> impl Strategy<Value = Tree> {
        let node = (0..features, -2.0f32..2.0, any::<bool>(), any::<prop::sample::Index>());
        (prop::collection::vec(node, 1..10), prop::collection::vec((-5.0f64..5.0, 1u32..50), 11))
            .prop_map(move |(specs, leaves)| {
                let mut nodes: Vec<Node> = Vec::new();
                let mut slots: Vec<(usize, bool)> = Vec::new();
                for (i, (feature, threshold, default_left, pick)) in specs.into_iter().enumerate() {
                    if i > 0 {
                        let (parent, is_left) = slots.swap_remove(pick.index(slots.len()));
                        let child = Child::Node(i);
                        if is_left {
                            nodes[parent].left = child
                        } else {
                            nodes[parent].right = child
                        }
                    }
                    nodes.push(Node {
                        feature,
                        split: Split::Numeric { threshold },
                        default_left,
                        zero_is_missing: false,
                        left: Child::Leaf(0),
                        right: Child::Leaf(0),
                    });
                    slots.push((i, true));
                    slots.push((i, false));
                }
                let mut tree = Tree { nodes, ..Tree::default() };
                for (parent, is_left) in slots {
                    let child = Child::Leaf(tree.leaves.len());
                    let (v, c) = leaves[tree.leaves.len()];
                    tree.leaves.push(v);
                    tree.leaf_cover.push(f64::from(c));
                    if is_left {
                        tree.nodes[parent].left = child
                    } else {
                        tree.nodes[parent].right = child
                    }
                }
                // Children follow parents: sum covers from the last node up.
                tree.node_cover = vec![0.0; tree.nodes.len()];
                for i in (0..tree.nodes.len()).rev() {
                    let cover = |c: Child, t: &Tree| match c {
                        Child::Node(n) => t.node_cover[n],
                        Child::Leaf(l) => t.leaf_cover[l],
                    };
                    tree.node_cover[i] =
                        cover(tree.nodes[i].left, &tree) + cover(tree.nodes[i].right, &tree);
                }
                tree
            })
    }

    fn arb_value() -> impl Strategy<Value = f32> {
        prop_oneof![6 => -3.0f32..3.0, 1 => Just(f32::NAN)]
    }

    proptest! {
        #[test]
        fn treeshap_equals_brute_force_shapley(
            trees in prop::collection::vec(arb_tree(4), 1..4),
            row in prop::collection::vec(arb_value(), 4),
        ) {
            let mut forest = Forest::<f64>::new(4, 1).unwrap();
            for (i, tree) in trees.iter().enumerate() {
                forest.push(tree, 0, &format!("tree {i}")).unwrap();
            }
            let view = forest.shap_view().unwrap();
            let mut phi = vec![0.0; 4];
            treeshap::contributions(&view, &row, &mut phi, &mut treeshap::Scratch::default());
            let mut want = [0.0; 4];
            for tree in &trees {
                for (w, p) in want.iter_mut().zip(shapley(tree, &row, 4)) {
                    *w += p;
                }
            }
            for j in 0..4 {
                prop_assert!((phi[j] - want[j]).abs() < 1e-9, "feature {}: {} vs {}", j, phi[j], want[j]);
            }
            // Additivity: the expected value plus the attributions is the prediction.
            let expected = treeshap::expected_values(&view)[0];
            let predicted = forest.predict(&row, &[0.0]).unwrap()[0];
            prop_assert!((expected + phi.iter().sum::<f64>() - predicted).abs() < 1e-9);
        }
    }
}
