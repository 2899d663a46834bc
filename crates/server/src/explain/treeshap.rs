//! Exact TreeSHAP on the flat forest of the tree runtimes: the polynomial-time path algorithm
//! of Lundberg et al. (2018, "Consistent individualized feature attribution for tree
//! ensembles", Algorithm 2), as XGBoost's `TreeShap` and LightGBM's `Tree::TreeSHAP`
//! implement it.
//!
//! One walk per tree follows every root-to-leaf path while keeping, for the unique features
//! met on the way, the fraction of training cover that flows down the path when the feature
//! is unknown (`zero`) and whether the row itself goes that way (`one`), and the weights of
//! every subset size (`pweight`, EXTEND). At a leaf, UNWIND gives each feature's share of
//! the leaf value. A feature split on twice along a path is unwound and extended again, so
//! paths stay unique. Decisions (default directions, missing values, categorical sets) are
//! the very ones prediction takes, and covers are read from the side tables the loaders keep.
//! Everything is in `f64`; attributions plus the expected value sum to the raw margin.

use crate::runtimes::tree::{Score, ShapView, signed_row};

/// One element of a unique path: a feature with the cover fraction that goes this way when
/// it is unknown (`zero`), whether the row goes this way (`one`, 0 or 1) and the weight of
/// the subsets of the element's size.
#[derive(Debug, Clone, Copy, Default)]
struct PathElement {
    feature: i32,
    zero: f64,
    one: f64,
    pweight: f64,
}

/// Per-tree expected values (the cover-weighted mean of the leaves), summed per output
/// group. A node's mean weighs its children's by their covers over its own, as XGBoost's
/// `FillNodeMeanValues`; LightGBM's counts add up, which makes that its `ExpectedValue`.
pub(crate) fn expected_values<S: Score + Into<f64>>(view: &ShapView<'_, S>) -> Vec<f64> {
    fn mean<S: Score + Into<f64>>(view: &ShapView<'_, S>, link: i32) -> f64 {
        if link < 0 {
            return view.leaf_value(link);
        }
        let (left, right) = view.children(link as usize);
        let cover = view.cover(link);
        let sum = mean(view, left) * view.cover(left) + mean(view, right) * view.cover(right);
        if cover > 0.0 { sum / cover } else { 0.0 }
    }
    let mut out = vec![0.0; view.num_groups()];
    for t in 0..view.num_trees() {
        let (root, group, _) = view.tree(t);
        out[group] += mean(view, root);
    }
    out
}

/// Reusable buffers of [`contributions`], sized for one forest.
#[derive(Debug, Default)]
pub(crate) struct Scratch {
    signed: Vec<f32>,
    path: Vec<PathElement>,
}

/// Adds the SHAP values of the rows of `x` (row-major, `num_features` values a row) to
/// `phi`, laid out `[row][group][feature]` (`rows × groups × features` values).
pub(crate) fn contributions<S: Score + Into<f64>>(
    view: &ShapView<'_, S>,
    x: &[f32],
    phi: &mut [f64],
    scratch: &mut Scratch,
) {
    let f = view.num_features();
    let k = view.num_groups();
    assert!(x.len().is_multiple_of(f) && phi.len() == x.len() / f * k * f);
    // A path holds at most depth + 1 elements and each level keeps its own copy.
    let len = view.max_depth() + 1;
    scratch.path.clear();
    scratch.path.resize(len * (len + 1) / 2, PathElement::default());
    for (row, phi_row) in x.chunks_exact(f).zip(phi.chunks_exact_mut(k * f)) {
        signed_row(row, &mut scratch.signed);
        for t in 0..view.num_trees() {
            let (root, group, _) = view.tree(t);
            if root < 0 {
                continue; // a lone leaf only adds to the expected value
            }
            let walk = Walk { view, signed: &scratch.signed };
            walk.tree(
                root,
                &mut phi_row[group * f..(group + 1) * f],
                &mut scratch.path,
                0,
                0,
                1.0,
                1.0,
                -1,
            );
        }
    }
}

/// One row's walk through the trees.
struct Walk<'v, 'a, S> {
    view: &'v ShapView<'a, S>,
    signed: &'v [f32],
}

impl<S: Score + Into<f64>> Walk<'_, '_, S> {
    /// Algorithm 2's RECURSE at `link`: the parent's path is `path[parent..parent + depth]`;
    /// this level's copy goes right after it.
    #[allow(clippy::too_many_arguments)]
    fn tree(
        &self,
        link: i32,
        phi: &mut [f64],
        path: &mut [PathElement],
        parent: usize,
        depth: usize,
        zero: f64,
        one: f64,
        feature: i32,
    ) {
        let start = parent + depth;
        if depth > 0 {
            path.copy_within(parent..parent + depth, start);
        }
        let mut depth = depth;
        let here = &mut path[start..];
        extend(here, depth, zero, one, feature);
        if link < 0 {
            let value = self.view.leaf_value(link);
            // An element the row does not follow (`one == 0`) unwinds to
            // `(depth + 1) / zero × Σ_i pweight_i / (depth − i)`: the sum is the same for
            // all of them, so it is taken once.
            let mut cold_sum = None;
            for i in 1..=depth {
                let el = here[i];
                let w = if el.one != 0.0 {
                    unwound_sum(here, depth, i)
                } else if el.zero != 0.0 {
                    let sum = *cold_sum.get_or_insert_with(|| {
                        (0..depth).map(|j| here[j].pweight * recip(depth - j)).sum::<f64>()
                    });
                    sum * (depth + 1) as f64 / el.zero
                } else {
                    0.0
                };
                phi[el.feature as usize] += w * (el.one - el.zero) * value;
            }
            return;
        }
        let node = link as usize;
        let (hot, cold) = self.view.hot_cold(node, self.signed);
        let split = self.view.feature(node) as i32;
        let cover = self.view.cover(link);
        let (hot_zero, cold_zero) = if cover > 0.0 {
            (self.view.cover(hot) / cover, self.view.cover(cold) / cover)
        } else {
            (0.0, 0.0)
        };
        let (mut incoming_zero, mut incoming_one) = (1.0, 1.0);
        // A feature already on the path is unwound, to be extended again below.
        if let Some(k) = (0..=depth).find(|&k| here[k].feature == split) {
            incoming_zero = here[k].zero;
            incoming_one = here[k].one;
            unwind(here, depth, k);
            depth -= 1;
        }
        self.tree(hot, phi, path, start, depth + 1, hot_zero * incoming_zero, incoming_one, split);
        self.tree(cold, phi, path, start, depth + 1, cold_zero * incoming_zero, 0.0, split);
    }
}

/// `1 / n` for small `n`: the path arithmetic multiplies by these instead of dividing (a
/// division costs several multiplications, and the leaves' sums do little else).
const RECIPROCALS: [f64; 256] = {
    let mut table = [0.0; 256];
    let mut n = 1;
    while n < 256 {
        table[n] = 1.0 / n as f64;
        n += 1;
    }
    table
};

#[inline(always)]
fn recip(n: usize) -> f64 {
    if n < RECIPROCALS.len() { RECIPROCALS[n] } else { 1.0 / n as f64 }
}

/// EXTEND: adds an element to the path of `depth + 1` elements (`path[..depth]` plus this).
#[inline]
fn extend(path: &mut [PathElement], depth: usize, zero: f64, one: f64, feature: i32) {
    path[depth] = PathElement { feature, zero, one, pweight: if depth == 0 { 1.0 } else { 0.0 } };
    let inv_d1 = recip(depth + 1);
    for i in (0..depth).rev() {
        path[i + 1].pweight += one * path[i].pweight * ((i + 1) as f64 * inv_d1);
        path[i].pweight = zero * path[i].pweight * ((depth - i) as f64 * inv_d1);
    }
}

// Without conditioning, every element's `one` is exactly 0 or 1 (the row goes that way or
// not), so the divisions by `one` of the published algorithm are left out where `one` is 1.

/// UNWIND: removes element `k` from the path `path[..=depth]`, undoing its EXTEND.
#[inline]
fn unwind(path: &mut [PathElement], depth: usize, k: usize) {
    let PathElement { one, zero, .. } = path[k];
    let d1 = (depth + 1) as f64;
    let inv_d1 = recip(depth + 1);
    let mut next_one = path[depth].pweight;
    if one != 0.0 {
        debug_assert!(one == 1.0);
        for i in (0..depth).rev() {
            let tmp = path[i].pweight;
            path[i].pweight = next_one * d1 * recip(i + 1);
            next_one = tmp - path[i].pweight * zero * ((depth - i) as f64 * inv_d1);
        }
    } else {
        let inv_zero = 1.0 / zero;
        for i in (0..depth).rev() {
            path[i].pweight = path[i].pweight * d1 * inv_zero * recip(depth - i);
        }
    }
    for i in k..depth {
        path[i].feature = path[i + 1].feature;
        path[i].zero = path[i + 1].zero;
        path[i].one = path[i + 1].one;
    }
}

/// The total weight of the path `path[..=depth]` with element `k` unwound, without
/// changing the path.
#[inline]
fn unwound_sum(path: &[PathElement], depth: usize, k: usize) -> f64 {
    let PathElement { one, zero, .. } = path[k];
    let d1 = (depth + 1) as f64;
    let mut total = 0.0;
    if one != 0.0 {
        debug_assert!(one == 1.0);
        let zero_over_d1 = zero * recip(depth + 1);
        let mut next_one = path[depth].pweight;
        for i in (0..depth).rev() {
            let tmp = next_one * d1 * recip(i + 1);
            total += tmp;
            next_one = path[i].pweight - tmp * zero_over_d1 * (depth - i) as f64;
        }
    } else if zero != 0.0 {
        let scale = d1 / zero;
        for i in (0..depth).rev() {
            total += path[i].pweight * scale * recip(depth - i);
        }
    }
    total
}

/// The TreeSHAP explanation of the rows `x` (row-major) of a forest: attributions of every
/// output group, scaled by `scale` (LightGBM's averaged random forests), the expected value
/// `base + scale × tree_expected` per group, and the margins `explained` they add up to.
pub(crate) fn attributions<S: Score + Into<f64>>(
    view: &ShapView<'_, S>,
    x: &[f32],
    base: &[f64],
    tree_expected: &[f64],
    scale: f64,
    explained: Vec<f64>,
) -> super::Attributions {
    let f = view.num_features();
    let k = view.num_groups();
    let rows = x.len() / f;
    let mut values = vec![0.0; rows * k * f];
    contributions(view, x, &mut values, &mut Scratch::default());
    if scale != 1.0 {
        values.iter_mut().for_each(|v| *v *= scale);
    }
    super::Attributions {
        method: super::Method::TreeShap,
        output: super::MARGIN_OUTPUT.to_owned(),
        rows,
        width: k,
        features: f,
        values,
        expected_value: base.iter().zip(tree_expected).map(|(b, e)| b + scale * e).collect(),
        explained,
    }
}
