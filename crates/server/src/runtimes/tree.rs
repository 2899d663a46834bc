//! The decision-forest engine shared by the XGBoost and LightGBM runtimes.
//!
//! Loaders describe each tree as a small [`Tree`] (nodes with local child indices); a
//! [`Forest`] validates and flattens all trees into structure-of-arrays node tables and
//! evaluates a whole batch at once. Evaluation walks rows in blocks and, inside a block, trees
//! outermost, so one tree's nodes stay in cache while every row of the block goes through it;
//! within a tree, eight rows step in lockstep, so that the core overlaps their independent
//! load-compare chains (one row alone waits on each node before it can load the next). Per-row,
//! per-output-group sums accumulate in the framework's own precision (`f32` for XGBoost, `f64`
//! for LightGBM) through the [`Score`] parameter.
//!
//! Every split sends a row left when `x < threshold`; loaders translate their framework's rule
//! into that form (LightGBM's `x <= t` becomes `x < next_up(t)` in `f32`). Missing values
//! (NaN, and for some LightGBM splits values within ±1e-35 of zero) follow the node's default
//! direction; for plain numeric splits that takes no test of its own (see [`Forest`]).
//! Validation on load guarantees that evaluation can neither index out of bounds nor loop
//! (every feature exists, every child exists and has a larger index than its parent), which
//! is what lets the node walk index its tables unchecked.

use oxserve_protocol::{DataType, InferRequest, ModelMetadata, Tensor, TensorData, TensorMetadata};

use crate::error::{Error, Result};

/// Node flag: missing values go to the left child.
const DEFAULT_LEFT: u8 = 1;
/// Node flag: values within ±[`ZERO_THRESHOLD`] count as missing (LightGBM missing type Zero).
const ZERO_MISSING: u8 = 2;
/// Node flag: a categorical split (left when the category is in the node's set).
const CATEGORICAL: u8 = 4;
/// Node flag: the node takes the general test ([`Forest::goes_left`]), not the one-compare
/// form of plain numeric splits ([`Forest::step`]).
const GENERAL: u8 = 8;

/// LightGBM's `kZeroThreshold`: magnitudes up to this are zero for missing-value purposes.
const ZERO_THRESHOLD: f32 = 1e-35;

/// Rows evaluated together; their features (a few KiB) stay in L1 while trees are walked.
const BLOCK_ROWS: usize = 64;

/// Where a node's branch leads, as an index local to its [`Tree`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Child {
    /// An internal node of the same tree.
    Node(usize),
    /// A leaf of the same tree.
    Leaf(usize),
}

/// How an internal node splits.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Split {
    /// Left when `x < threshold`.
    Numeric { threshold: f32 },
    /// Left when `trunc(x)` is a non-negative category whose bit is set in `bits` (32
    /// categories per word, least significant bit first), as LightGBM's bitsets.
    Categorical { bits: Vec<u32> },
}

/// An internal node of a [`Tree`].
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Node {
    pub feature: usize,
    pub split: Split,
    /// Where missing values go.
    pub default_left: bool,
    /// Whether values within ±1e-35 of zero are missing too.
    pub zero_is_missing: bool,
    pub left: Child,
    pub right: Child,
}

/// One tree as a loader describes it. The root is node 0, or leaf 0 when there are no nodes.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Tree {
    pub nodes: Vec<Node>,
    pub leaves: Vec<f64>,
    /// The training cover of each node (XGBoost's `sum_hessian`, LightGBM's
    /// `internal_count`), which TreeSHAP weighs paths by; empty when the file has none.
    pub node_cover: Vec<f64>,
    /// The cover of each leaf (`sum_hessian`, `leaf_count`); empty when the file has none.
    pub leaf_cover: Vec<f64>,
}

impl Tree {
    fn root(&self) -> Child {
        if self.nodes.is_empty() { Child::Leaf(0) } else { Child::Node(0) }
    }
}

/// The accumulator type of a forest: `f32` (XGBoost) or `f64` (LightGBM).
pub(crate) trait Score:
    Copy + Default + std::ops::AddAssign + Send + Sync + 'static
{
    /// The leaf value in this precision.
    fn from_f64(v: f64) -> Self;
}

impl Score for f32 {
    fn from_f64(v: f64) -> f32 {
        v as f32
    }
}

impl Score for f64 {
    fn from_f64(v: f64) -> f64 {
        v
    }
}

/// Rows stepped through a tree in lockstep: their node-to-node load chains do not depend on
/// each other, so the core overlaps them instead of waiting on one row's chain at a time.
const LANES: usize = 8;

/// Where one tree starts and what it adds to.
#[derive(Debug, Clone, Copy)]
struct TreeInfo {
    /// The root link (see [`Forest::children`]).
    root: i32,
    /// Steps every walk takes at least (the depth of the shallowest leaf): a lockstep walk
    /// takes them without checking whether its rows have arrived.
    min_depth: u32,
    /// The output group the tree adds to.
    group: u32,
    /// Whether no node of the tree is [`GENERAL`], so every step is one compare.
    plain: bool,
}

/// All trees of a model in flat node tables, ready for batched evaluation.
///
/// Nodes do not read a row itself but its *signed* form: `2 × num_features` values, each
/// feature's value and then its negation (see [`Forest::predict`]). A plain numeric split
/// (not [`GENERAL`]) is then one compare that also sends NaN the default way: `v < t`, false
/// for NaN, when missing values go right (children `[right, left]`); and when they go left,
/// `x >= t` as `-x < next_up(-t)`, also false for NaN, with the children swapped to
/// `[left, right]`. `feature` holds the signed index `2 × feature + negated`.
///
/// [`Forest::push`] establishes these invariants, on which evaluation's unchecked indexing
/// relies:
/// - (I1) `feature`, `threshold`, `children`, `flags` and `cat_set` hold one entry per
///   internal node;
/// - (I2) every link (a tree's root, a node's children) `>= 0` is an internal node of the
///   same tree, and every link `< 0` is the leaf `!link`, an index into `leaf_value`;
/// - (I3) every `feature` (a signed index) is `< 2 × num_features`;
/// - (I4) a node's child node has a larger index than the node, so every walk ends.
#[derive(Debug, Clone)]
pub(crate) struct Forest<S> {
    num_features: usize,
    num_groups: usize,
    // One entry per internal node of every tree.
    feature: Vec<u32>,
    threshold: Vec<f32>,
    /// Child links, indexed by the outcome of the node's compare so that choosing one needs
    /// no branch: `>= 0` an internal node, `< 0` the leaf `!link`.
    children: Vec<[i32; 2]>,
    flags: Vec<u8>,
    /// Index into `cat_ranges` (categorical nodes only; 0 elsewhere).
    cat_set: Vec<u32>,
    /// `(start, len)` of each category bitset in `cat_bits`.
    cat_ranges: Vec<(u32, u32)>,
    cat_bits: Vec<u32>,
    leaf_value: Vec<S>,
    trees: Vec<TreeInfo>,
    /// Side tables read only by explanations (TreeSHAP), never by [`Forest::predict`]: the
    /// cover of every node and leaf (one entry each, as `feature` and `leaf_value`, while
    /// `has_cover`), and each tree's depth (the longest root-to-leaf path).
    node_cover: Vec<f64>,
    leaf_cover: Vec<f64>,
    depth: Vec<u32>,
    /// Whether every tree pushed so far came with its covers.
    has_cover: bool,
}

impl<S: Score> Forest<S> {
    /// An empty forest over rows of `num_features` features with `num_groups` outputs.
    pub(crate) fn new(num_features: usize, num_groups: usize) -> Result<Forest<S>, String> {
        if num_features == 0 {
            return Err("the model has no features".to_owned());
        }
        if num_groups == 0 {
            return Err("the model has no outputs".to_owned());
        }
        // Signed feature indices go up to twice the count.
        if num_features.checked_mul(2).and_then(|n| u32::try_from(n).ok()).is_none() {
            return Err(format!("{num_features} features are too many"));
        }
        Ok(Forest {
            num_features,
            num_groups,
            feature: Vec::new(),
            threshold: Vec::new(),
            children: Vec::new(),
            flags: Vec::new(),
            cat_set: Vec::new(),
            cat_ranges: Vec::new(),
            cat_bits: Vec::new(),
            leaf_value: Vec::new(),
            trees: Vec::new(),
            node_cover: Vec::new(),
            leaf_cover: Vec::new(),
            depth: Vec::new(),
            has_cover: true,
        })
    }

    /// Number of features of a row.
    pub(crate) fn num_features(&self) -> usize {
        self.num_features
    }

    /// Number of trees.
    pub(crate) fn num_trees(&self) -> usize {
        self.trees.len()
    }

    /// Approximate heap size in bytes.
    pub(crate) fn memory_bytes(&self) -> usize {
        self.feature.len() * (4 + 4 + 8 + 1 + 4)
            + self.cat_ranges.len() * 8
            + self.cat_bits.len() * 4
            + self.leaf_value.len() * std::mem::size_of::<S>()
            + self.trees.len() * std::mem::size_of::<TreeInfo>()
            + (self.node_cover.len() + self.leaf_cover.len()) * 8
            + self.depth.len() * 4
    }

    /// Validates `tree` and appends it, adding to output `group`. `what` names the tree in
    /// error messages (e.g. `tree 3`).
    pub(crate) fn push(&mut self, tree: &Tree, group: usize, what: &str) -> Result<(), String> {
        if group >= self.num_groups {
            return Err(format!(
                "{what}: output group {group} is out of range (the model has {})",
                self.num_groups
            ));
        }
        if tree.leaves.is_empty() {
            return Err(format!("{what}: has no leaves"));
        }
        let node_base = self.feature.len();
        let leaf_base = self.leaf_value.len();
        let too_big = || format!("{what}: the model has too many nodes");
        let total_nodes = node_base.checked_add(tree.nodes.len()).ok_or_else(too_big)?;
        let total_leaves = leaf_base.checked_add(tree.leaves.len()).ok_or_else(too_big)?;
        if i32::try_from(total_nodes).is_err() || i32::try_from(total_leaves).is_err() {
            return Err(too_big());
        }
        // (I2) and (I4).
        let link = |from: usize, child: Child| -> Result<i32, String> {
            match child {
                // A child must come after its parent: this is what makes every walk finish.
                Child::Node(j) if j > from && j < tree.nodes.len() => Ok((node_base + j) as i32),
                Child::Node(j) => Err(format!("{what}: node {from} has invalid child node {j}")),
                Child::Leaf(j) if j < tree.leaves.len() => Ok(!((leaf_base + j) as i32)),
                Child::Leaf(j) => Err(format!("{what}: node {from} points at missing leaf {j}")),
            }
        };
        // A lone leaf needs no cover: its expected value is its value.
        let lone_leaf = tree.nodes.is_empty() && tree.leaves.len() == 1;
        let covered = lone_leaf
            || (tree.node_cover.len() == tree.nodes.len()
                && tree.leaf_cover.len() == tree.leaves.len()
                && tree
                    .node_cover
                    .iter()
                    .chain(&tree.leaf_cover)
                    .all(|c| c.is_finite() && *c >= 0.0));
        // Check everything before touching the tables, so a failed push leaves them intact.
        let mut links = Vec::with_capacity(tree.nodes.len());
        // Depths of nodes (parents come first, so a node's is final when it is reached) and
        // the shallowest leaf.
        let mut depth = vec![0u32; tree.nodes.len()];
        let mut min_depth = if tree.nodes.is_empty() { 0 } else { u32::MAX };
        let mut max_depth = 0;
        for (i, node) in tree.nodes.iter().enumerate() {
            // (I3): `2 × feature + 1 < 2 × num_features`.
            if node.feature >= self.num_features {
                return Err(format!(
                    "{what}: node {i} splits on feature {} but the model has {} features",
                    node.feature, self.num_features
                ));
            }
            let (left, right) = (link(i, node.left)?, link(i, node.right)?);
            for child in [left, right] {
                if child >= 0 {
                    depth[child as usize - node_base] = depth[i] + 1;
                } else {
                    min_depth = min_depth.min(depth[i] + 1);
                    max_depth = max_depth.max(depth[i] + 1);
                }
            }
            links.push((left, right));
        }
        let root = match tree.root() {
            Child::Node(_) => node_base as i32,
            Child::Leaf(_) => !(leaf_base as i32),
        };
        let mut plain = true;
        for (node, (left, right)) in tree.nodes.iter().zip(links) {
            let mut flags = 0;
            if node.default_left {
                flags |= DEFAULT_LEFT;
            }
            if node.zero_is_missing {
                flags |= ZERO_MISSING;
            }
            let signed = 2 * node.feature as u32;
            let (feature, threshold, children, cat_set) = match &node.split {
                Split::Numeric { threshold: t } if !node.zero_is_missing => {
                    if !node.default_left {
                        // Left when `x < t`; NaN compares false and goes right.
                        (signed, *t, [right, left], 0)
                    } else if t.is_nan() || *t == f32::NEG_INFINITY {
                        // `x >= t` has no `-x < u` form: only NaN goes left, by the general
                        // test.
                        flags |= GENERAL;
                        (signed, *t, [right, left], 0)
                    } else {
                        // Right when `x >= t` ⇔ `-x <= -t` ⇔ `-x < next_up(-t)` (`-t` is
                        // below +∞); NaN compares false and goes left.
                        (signed + 1, (-*t).next_up(), [left, right], 0)
                    }
                }
                Split::Numeric { threshold: t } => {
                    flags |= GENERAL;
                    (signed, *t, [right, left], 0)
                }
                Split::Categorical { bits } => {
                    flags |= CATEGORICAL | GENERAL;
                    let start = u32::try_from(self.cat_bits.len()).map_err(|_| too_big())?;
                    let len = u32::try_from(bits.len()).map_err(|_| too_big())?;
                    let set = u32::try_from(self.cat_ranges.len()).map_err(|_| too_big())?;
                    self.cat_bits.extend_from_slice(bits);
                    self.cat_ranges.push((start, len));
                    (signed, 0.0, [right, left], set)
                }
            };
            plain &= flags & GENERAL == 0;
            self.feature.push(feature);
            self.threshold.push(threshold);
            self.children.push(children);
            self.flags.push(flags);
            self.cat_set.push(cat_set);
        }
        self.leaf_value.extend(tree.leaves.iter().map(|&v| S::from_f64(v)));
        self.trees.push(TreeInfo { root, min_depth, group: group as u32, plain });
        self.has_cover &= covered;
        if self.has_cover && lone_leaf {
            self.leaf_cover.push(tree.leaf_cover.first().copied().unwrap_or(1.0));
        } else if self.has_cover {
            self.node_cover.extend_from_slice(&tree.node_cover);
            self.leaf_cover.extend_from_slice(&tree.leaf_cover);
        } else {
            self.node_cover = Vec::new();
            self.leaf_cover = Vec::new();
        }
        self.depth.push(max_depth);
        Ok(())
    }

    /// The view of the forest that explanations walk, when every tree has its covers.
    pub(crate) fn shap_view(&self) -> Option<ShapView<'_, S>> {
        self.has_cover.then_some(ShapView { forest: self })
    }

    /// Sums of leaf values per row and group, starting from `base` (one value per group), for
    /// the rows of `x` (row-major, `num_features` per row). Returns `rows × groups` values.
    pub(crate) fn predict(&self, x: &[f32], base: &[S]) -> Result<Vec<S>, String> {
        let f = self.num_features;
        let k = self.num_groups;
        if !x.len().is_multiple_of(f) {
            return Err(format!(
                "{} input values are not a whole number of rows of {f} features",
                x.len()
            ));
        }
        if base.len() != k {
            return Err(format!("{} base scores for {k} outputs", base.len()));
        }
        let rows = x.len() / f;
        let mut out = Vec::with_capacity(rows * k);
        for _ in 0..rows {
            out.extend_from_slice(base);
        }
        // The block's rows in signed form (`2f` values a row): groups of `LANES` rows
        // transposed, value `s` of lane `l` at `s × LANES + l`, so that a node's one signed
        // index serves every lane; then the rows left over, one after the other.
        let mut signed = vec![0.0f32; 2 * f * rows.min(BLOCK_ROWS)];
        for (xs, outs) in x.chunks(BLOCK_ROWS * f).zip(out.chunks_mut(BLOCK_ROWS * k)) {
            // The only division per block: slicing by index below needs none (a
            // `chunks_exact` per tree would pay several, which a one-row batch notices).
            let n = xs.len() / f;
            let lockstep = n - n % LANES;
            let signed = &mut signed[..2 * f * n];
            for (r, row) in xs.chunks_exact(f).enumerate() {
                let (at, stride) = if r < lockstep {
                    (r / LANES * LANES * 2 * f + r % LANES, LANES)
                } else {
                    (r * 2 * f, 1)
                };
                for (j, &v) in row.iter().enumerate() {
                    signed[at + 2 * j * stride] = v;
                    signed[at + (2 * j + 1) * stride] = -v;
                }
            }
            for t in 0..self.trees.len() {
                if self.trees[t].plain {
                    self.add_tree::<true>(t, signed, outs, n);
                } else {
                    self.add_tree::<false>(t, signed, outs, n);
                }
            }
        }
        Ok(out)
    }

    /// Adds tree `t`'s leaf to the sums `outs` of the `n` rows of `signed` (laid out as in
    /// [`Forest::predict`]): [`LANES`] rows at a time in lockstep, the rest one by one.
    /// `PLAIN` must be the tree's `plain`.
    #[inline(always)]
    fn add_tree<const PLAIN: bool>(&self, t: usize, signed: &[f32], outs: &mut [S], n: usize) {
        let (f2, k) = (2 * self.num_features, self.num_groups);
        let group = self.trees[t].group as usize;
        let lockstep = n - n % LANES;
        for r in (0..lockstep).step_by(LANES) {
            let leaves = self.walk_lanes::<PLAIN>(t, &signed[r * f2..(r + LANES) * f2]);
            for (l, leaf) in leaves.into_iter().enumerate() {
                outs[(r + l) * k + group] += self.leaf_value[leaf];
            }
        }
        for r in lockstep..n {
            let leaf = self.walk::<PLAIN>(t, &signed[r * f2..(r + 1) * f2]);
            outs[r * k + group] += self.leaf_value[leaf];
        }
    }

    /// The leaf (index into `leaf_value`) that the signed row `row` reaches in tree `t`.
    #[inline(always)]
    fn walk<const PLAIN: bool>(&self, t: usize, row: &[f32]) -> usize {
        assert_eq!(row.len(), 2 * self.num_features);
        let mut link = self.trees[t].root;
        while link >= 0 {
            // SAFETY: `link >= 0` is a node (I2). Its signed feature index `s` is below
            // `2 × num_features` (I3), which `row` holds (asserted above).
            link = unsafe { self.step::<PLAIN>(link as usize, |s| *row.get_unchecked(s)) };
        }
        !link as usize
    }

    /// The leaves (indices into `leaf_value`) that the [`LANES`] transposed signed rows `x`
    /// reach in tree `t`, walking them in lockstep: first the steps every path takes, then
    /// steps until every row is at a leaf, rows already there staying put.
    #[inline(always)]
    fn walk_lanes<const PLAIN: bool>(&self, t: usize, x: &[f32]) -> [usize; LANES] {
        let tree = self.trees[t];
        assert_eq!(x.len(), LANES * 2 * self.num_features);
        let mut at = [tree.root; LANES];
        // No path ends before `min_depth` steps, so these only visit nodes.
        for _ in 0..tree.min_depth {
            for (l, link) in at.iter_mut().enumerate() {
                // SAFETY: `*link` is a node (I2; `min_depth` steps from the root are on
                // every path). Its signed feature index `s < 2 × num_features` (I3), so
                // `s × LANES + l < LANES × 2 × num_features`, which `x` holds (asserted).
                *link = unsafe {
                    self.step::<PLAIN>(*link as usize, |s| *x.get_unchecked(s * LANES + l))
                };
            }
        }
        // Until every link is a leaf (negative).
        while at.iter().fold(-1, |all, &link| all & link) >= 0 {
            for (l, link) in at.iter_mut().enumerate() {
                // A row at its leaf steps from the root instead, and keeps its leaf: a select,
                // not a branch.
                let node = std::hint::select_unpredictable(*link >= 0, *link, tree.root);
                // SAFETY: `node` is a node (I2): `*link` when that is `>= 0`, or else the
                // root, which is one since some row is not at a leaf yet. Reading `x` as in
                // the loop above.
                let next = unsafe {
                    self.step::<PLAIN>(node as usize, |s| *x.get_unchecked(s * LANES + l))
                };
                // (A branch here, which LLVM would otherwise pick, is a coin flip.)
                *link = std::hint::select_unpredictable(*link >= 0, next, *link);
            }
        }
        at.map(|link| !link as usize)
    }

    /// One step of a walk: the link to the child of node `i` that the row goes to, the row
    /// read through `value` (signed feature index → value). `PLAIN`: the node is not
    /// [`GENERAL`].
    ///
    /// # Safety
    ///
    /// `i` must be a node (`< self.feature.len()`), and `value` must be safe to call with
    /// any index `< 2 × num_features`.
    #[inline(always)]
    unsafe fn step<const PLAIN: bool>(&self, i: usize, value: impl Fn(usize) -> f32) -> i32 {
        debug_assert!(i < self.feature.len());
        // SAFETY: `i` is a node (caller), and every node table has one entry per node (I1).
        let (signed, threshold, children) = unsafe {
            (
                *self.feature.get_unchecked(i) as usize,
                *self.threshold.get_unchecked(i),
                self.children.get_unchecked(i),
            )
        };
        let v = value(signed);
        // Without branches in the plain case: random rows make any branch here a coin flip
        // for the predictor.
        let outcome = if PLAIN || self.flags[i] & GENERAL == 0 {
            v < threshold
        } else {
            self.goes_left(i, v)
        };
        children[usize::from(outcome)]
    }

    /// Whether `v` (the value itself: general nodes use unnegated signed indices) goes left
    /// at the [`GENERAL`] node `i`.
    #[cold]
    fn goes_left(&self, i: usize, v: f32) -> bool {
        let flags = self.flags[i];
        if v.is_nan() || (flags & ZERO_MISSING != 0 && v.abs() <= ZERO_THRESHOLD) {
            return flags & DEFAULT_LEFT != 0;
        }
        if flags & CATEGORICAL != 0 {
            return self.in_category(i, v);
        }
        v < self.threshold[i]
    }

    /// LightGBM's categorical test: the category is `trunc(v)`; negative categories (and
    /// ones too large for an `i32`) are in no set.
    fn in_category(&self, i: usize, v: f32) -> bool {
        if v <= -1.0 || v >= 2_147_483_648.0 {
            return false;
        }
        let category = v as u32; // truncates toward zero, (-1, 0) → 0
        let (start, len) = self.cat_ranges[self.cat_set[i] as usize];
        let word = category / 32;
        if word >= len {
            return false;
        }
        (self.cat_bits[(start + word) as usize] >> (category % 32)) & 1 == 1
    }
}

/// What TreeSHAP reads of a [`Forest`] whose trees all have covers: links, decisions, leaf
/// values and covers. Links are those of the node tables: `>= 0` an internal node, `< 0`
/// the leaf `!link`.
#[derive(Clone, Copy)]
pub(crate) struct ShapView<'a, S> {
    forest: &'a Forest<S>,
}

impl<'a, S: Score + Into<f64>> ShapView<'a, S> {
    /// Number of features of a row.
    pub(crate) fn num_features(&self) -> usize {
        self.forest.num_features
    }

    /// Number of output groups.
    pub(crate) fn num_groups(&self) -> usize {
        self.forest.num_groups
    }

    /// Number of trees.
    pub(crate) fn num_trees(&self) -> usize {
        self.forest.trees.len()
    }

    /// Tree `t`'s root link, output group and depth.
    pub(crate) fn tree(&self, t: usize) -> (i32, usize, usize) {
        let info = &self.forest.trees[t];
        (info.root, info.group as usize, self.forest.depth[t] as usize)
    }

    /// The deepest tree's depth.
    pub(crate) fn max_depth(&self) -> usize {
        self.forest.depth.iter().copied().max().unwrap_or(0) as usize
    }

    /// The feature node `i` splits on.
    pub(crate) fn feature(&self, i: usize) -> usize {
        self.forest.feature[i] as usize / 2
    }

    /// The children of node `i` as `(hot, cold)`: the one the row goes to and the other.
    /// `signed` is the row in signed form (see [`signed_row`]), so the decision is the very
    /// one prediction takes.
    pub(crate) fn hot_cold(&self, i: usize, signed: &[f32]) -> (i32, i32) {
        assert!(i < self.forest.feature.len() && signed.len() == 2 * self.forest.num_features);
        // SAFETY: `i` is a node (asserted), and every signed feature index is below
        // `2 × num_features` (I3), the length of `signed` (asserted).
        let hot = unsafe { self.forest.step::<false>(i, |s| *signed.get_unchecked(s)) };
        let [a, b] = self.forest.children[i];
        (hot, if hot == a { b } else { a })
    }

    /// Both children of node `i`, in no particular order.
    pub(crate) fn children(&self, i: usize) -> (i32, i32) {
        let [a, b] = self.forest.children[i];
        (a, b)
    }

    /// The cover of the node or leaf `link`.
    pub(crate) fn cover(&self, link: i32) -> f64 {
        if link >= 0 {
            self.forest.node_cover[link as usize]
        } else {
            self.forest.leaf_cover[!link as usize]
        }
    }

    /// The value of leaf `link` (`< 0`).
    pub(crate) fn leaf_value(&self, link: i32) -> f64 {
        self.forest.leaf_value[!link as usize].into()
    }
}

/// `row` in the signed form the node tables read (each value, then its negation).
pub(crate) fn signed_row(row: &[f32], signed: &mut Vec<f32>) {
    signed.clear();
    signed.extend(row.iter().flat_map(|&v| [v, -v]));
}

/// The largest `f32` not above `t`: `x <= t` ⇔ `x <= down(t)` for every `f32` `x`.
pub(crate) fn f32_at_most(t: f64) -> f32 {
    let r = t as f32; // round to nearest
    if f64::from(r) > t { r.next_down() } else { r }
}

/// The `f32` threshold `u` with `x < u` ⇔ `x <= t` for every `f32` `x` (LightGBM's rule).
pub(crate) fn less_equal_threshold(t: f64) -> f32 {
    if t.is_nan() {
        return f32::NAN; // nothing compares: every value goes right, as in LightGBM
    }
    f32_at_most(t).next_up()
}

/// What a tree model predicts, which decides its outputs.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Task {
    /// Probability of class 1: outputs `predict` (INT64, `p > 0.5`) and `predict_proba`
    /// (FP32 `[N, 2]`).
    Binary,
    /// Class probabilities: outputs `predict` (INT64 argmax) and `predict_proba` (FP32
    /// `[N, classes]`).
    Multiclass(usize),
    /// One value per row: output `predict` (FP32 `[N]`).
    Regression,
}

/// The name of the single input of tree models.
pub(crate) const INPUT_NAME: &str = "input-0";

/// Metadata of a tree model: one FP32 `[-1, num_features]` input and the task's outputs.
pub(crate) fn metadata(
    name: &str,
    platform: &str,
    num_features: usize,
    task: Task,
) -> ModelMetadata {
    let tensor = |name: &str, datatype, shape| TensorMetadata {
        name: name.to_owned(),
        datatype,
        shape,
        parameters: None,
    };
    let outputs = match task {
        Task::Binary => vec![
            tensor("predict", DataType::Int64, vec![-1]),
            tensor("predict_proba", DataType::Fp32, vec![-1, 2]),
        ],
        Task::Multiclass(k) => vec![
            tensor("predict", DataType::Int64, vec![-1]),
            tensor("predict_proba", DataType::Fp32, vec![-1, k as i64]),
        ],
        Task::Regression => vec![tensor("predict", DataType::Fp32, vec![-1])],
    };
    ModelMetadata {
        name: name.to_owned(),
        versions: Vec::new(),
        platform: platform.to_owned(),
        inputs: vec![tensor(INPUT_NAME, DataType::Fp32, vec![-1, num_features as i64])],
        outputs,
        parameters: None,
    }
}

/// The FP32 rows of the request's single input, checked against `num_features` (the server
/// validated the request already; this only refuses what would make evaluation wrong).
pub(crate) fn input_rows(request: &InferRequest, num_features: usize) -> Result<&[f32]> {
    let [input] = request.inputs.as_slice() else {
        return Err(Error::invalid(format!(
            "the model takes one input \"{INPUT_NAME}\", got {}",
            request.inputs.len()
        )));
    };
    let TensorData::Fp32(values) = &input.data else {
        return Err(Error::invalid(format!(
            "input \"{}\": expected FP32 data, got {}",
            input.name,
            input.datatype()
        )));
    };
    let rows_ok = match input.shape.as_slice() {
        [rows, features] => {
            *features == num_features as i64
                && usize::try_from(*rows)
                    .is_ok_and(|r| r.checked_mul(num_features) == Some(values.len()))
        }
        _ => false,
    };
    if !rows_ok {
        return Err(Error::invalid(format!(
            "input \"{}\": expected shape [N, {num_features}] holding N×{num_features} values, got shape {:?} with {} values",
            input.name,
            input.shape,
            values.len()
        )));
    }
    Ok(values)
}

/// Output tensors of `task` for `rows` rows, from per-row probabilities (`Binary`: one per
/// row, `Multiclass`: one per row and class) or predictions (`Regression`).
pub(crate) fn outputs(task: Task, rows: usize, values: &[f64]) -> Vec<Tensor> {
    match task {
        Task::Binary => {
            let predict = values.iter().map(|&p| i64::from(p > 0.5)).collect();
            let proba = values.iter().flat_map(|&p| [(1.0 - p) as f32, p as f32]).collect();
            vec![
                Tensor::new("predict", vec![rows as i64], TensorData::Int64(predict)),
                Tensor::new("predict_proba", vec![rows as i64, 2], TensorData::Fp32(proba)),
            ]
        }
        Task::Multiclass(k) => {
            let predict = values.chunks_exact(k).map(|row| argmax(row) as i64).collect();
            let proba = values.iter().map(|&p| p as f32).collect();
            vec![
                Tensor::new("predict", vec![rows as i64], TensorData::Int64(predict)),
                Tensor::new("predict_proba", vec![rows as i64, k as i64], TensorData::Fp32(proba)),
            ]
        }
        Task::Regression => {
            let predict = values.iter().map(|&v| v as f32).collect();
            vec![Tensor::new("predict", vec![rows as i64], TensorData::Fp32(predict))]
        }
    }
}

/// Index of the first largest value (NaN never wins), as numpy's argmax on finite data.
pub(crate) fn argmax(values: &[f64]) -> usize {
    let mut best = 0;
    for (i, &v) in values.iter().enumerate() {
        if v > values[best] || values[best].is_nan() {
            best = i;
        }
    }
    best
}

/// Numerically stable softmax in place, as XGBoost computes it: `f32` exponentials summed
/// in `f64`.
pub(crate) fn softmax_f32(x: &mut [f32]) {
    let max = x.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let mut sum = 0.0f64;
    for v in x.iter_mut() {
        *v = (*v - max).exp();
        sum += f64::from(*v);
    }
    let sum = sum as f32;
    for v in x.iter_mut() {
        *v /= sum;
    }
}

/// Numerically stable softmax in place (`f64`, as LightGBM).
pub(crate) fn softmax_f64(x: &mut [f64]) {
    let max = x.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let mut sum = 0.0;
    for v in x.iter_mut() {
        *v = (*v - max).exp();
        sum += *v;
    }
    for v in x.iter_mut() {
        *v /= sum;
    }
}

#[cfg(test)]
pub(crate) mod testing {
    //! Helpers for the runtimes' tests: reading fixtures and comparing predictions.

    use std::path::PathBuf;

    use serde_json::Value;

    /// `fixtures/<rel>` in the workspace.
    pub(crate) fn fixture(rel: &str) -> PathBuf {
        PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../fixtures")).join(rel)
    }

    /// The expected input rows (NaN for null) and its shape from `fixtures/expected/<name>.json`.
    pub(crate) fn expected(name: &str) -> (Vec<f32>, Vec<i64>, Value) {
        let text = std::fs::read_to_string(fixture(&format!("expected/{name}.json"))).unwrap();
        let doc: Value = serde_json::from_str(&text).unwrap();
        let input = &doc["input"];
        let data = input["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().map_or(f32::NAN, |v| v as f32))
            .collect();
        let shape =
            input["shape"].as_array().unwrap().iter().map(|v| v.as_i64().unwrap()).collect();
        (data, shape, doc["outputs"].clone())
    }

    /// Runs fixture `name`'s expected input through `model` and asserts its metadata and
    /// every output match the framework's.
    pub(crate) fn check_fixture(name: &str, model: &dyn crate::model::Model) {
        use oxserve_protocol::{InferRequest, Tensor, TensorData};
        let (x, shape, want) = expected(name);
        assert_eq!(model.metadata().inputs[0].shape, vec![-1, shape[1]]);
        let request = InferRequest {
            inputs: vec![Tensor::new("input-0", shape, TensorData::Fp32(x))],
            ..Default::default()
        };
        let outputs = model.infer(request).unwrap();
        assert_outputs_match(name, &outputs, &want);
    }

    /// Asserts the model's `outputs` are exactly the expected outputs `want` (the `outputs`
    /// object of an expected file): same names, shapes, and values (floats within
    /// [`assert_close`], integers equal).
    pub(crate) fn assert_outputs_match(
        name: &str,
        outputs: &[oxserve_protocol::Tensor],
        want: &Value,
    ) {
        use oxserve_protocol::TensorData;
        let mut got_names: Vec<&str> = outputs.iter().map(|t| t.name.as_str()).collect();
        let mut want_names: Vec<&str> =
            want.as_object().unwrap().keys().map(String::as_str).collect();
        got_names.sort_unstable();
        want_names.sort_unstable();
        assert_eq!(got_names, want_names, "{name}: output names");
        for out in outputs {
            let w = &want[&out.name];
            let want_shape: Vec<i64> =
                w["shape"].as_array().unwrap().iter().map(|v| v.as_i64().unwrap()).collect();
            assert_eq!(out.shape, want_shape, "{name}/{}", out.name);
            let data = w["data"].as_array().unwrap();
            match &out.data {
                TensorData::Fp32(v) => {
                    let got: Vec<f64> = v.iter().map(|&x| f64::from(x)).collect();
                    let want: Vec<f64> = data.iter().map(|x| x.as_f64().unwrap()).collect();
                    assert_close(&format!("{name}/{}", out.name), &got, &want);
                }
                TensorData::Int64(v) => {
                    let want: Vec<i64> = data.iter().map(|x| x.as_i64().unwrap()).collect();
                    assert_eq!(v, &want, "{name}/{}", out.name);
                }
                other => panic!("unexpected output type {:?}", other.datatype()),
            }
        }
    }

    /// Asserts `got` matches `want` within 1e-5 relative (plus 1e-6 absolute near zero).
    pub(crate) fn assert_close(what: &str, got: &[f64], want: &[f64]) {
        assert_eq!(got.len(), want.len(), "{what}: length");
        for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
            let tol = 1e-5 * w.abs() + 1e-6;
            assert!((g - w).abs() <= tol, "{what}[{i}]: got {g}, expected {w}");
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    /// Straightforward per-row evaluation of a [`Tree`], independent of the flat tables.
    fn reference(tree: &Tree, row: &[f32]) -> f64 {
        let mut at = tree.root();
        loop {
            match at {
                Child::Leaf(j) => return tree.leaves[j],
                Child::Node(i) => {
                    let node = &tree.nodes[i];
                    let v = row[node.feature];
                    let missing = v.is_nan() || (node.zero_is_missing && v.abs() <= 1e-35);
                    let left = if missing {
                        node.default_left
                    } else {
                        match &node.split {
                            Split::Numeric { threshold } => v < *threshold,
                            Split::Categorical { bits } => {
                                let c = v.trunc();
                                (0.0..2_147_483_648.0).contains(&c)
                                    && bits
                                        .get(c as usize / 32)
                                        .is_some_and(|w| w >> (c as usize % 32) & 1 == 1)
                            }
                        }
                    };
                    at = if left { node.left } else { node.right };
                }
            }
        }
    }

    /// A random tree on `features` features: node `i > 0` replaces a random leaf slot of the
    /// tree built so far, so every node has one parent and children follow parents.
    fn arb_tree(features: usize) -> impl Strategy<Value = Tree> {
        let node = (
            0..features,
            prop_oneof![
                3 => (-2.0f32..2.0).prop_map(|threshold| Split::Numeric { threshold }),
                // Thresholds that rows hit exactly, and the edges of the one-compare form.
                1 => prop::sample::select(vec![
                    0.0f32, -0.0, 1.0, -1.0, f32::MIN_POSITIVE, f32::MAX, f32::INFINITY,
                    f32::NEG_INFINITY, f32::NAN,
                ]).prop_map(|threshold| Split::Numeric { threshold }),
                1 => prop::collection::vec(any::<u32>(), 0..3).prop_map(|bits| Split::Categorical { bits }),
            ],
            any::<bool>(),
            any::<bool>(),
            any::<prop::sample::Index>(),
        );
        (prop::collection::vec(node, 0..12), prop::collection::vec(-5.0f64..5.0, 13)).prop_map(
            |(specs, values)| {
                let mut nodes: Vec<Node> = Vec::new();
                // Open slots: (node, is_left).
                let mut slots: Vec<(usize, bool)> = Vec::new();
                for (i, (feature, split, default_left, zero_is_missing, pick)) in
                    specs.into_iter().enumerate()
                {
                    if i > 0 {
                        let (parent, is_left) = slots.swap_remove(pick.index(slots.len()));
                        if is_left {
                            nodes[parent].left = Child::Node(i);
                        } else {
                            nodes[parent].right = Child::Node(i);
                        }
                    }
                    nodes.push(Node {
                        feature,
                        split,
                        default_left,
                        zero_is_missing,
                        left: Child::Leaf(0),
                        right: Child::Leaf(0),
                    });
                    slots.push((i, true));
                    slots.push((i, false));
                }
                let mut leaves = Vec::new();
                for (parent, is_left) in slots {
                    let child = Child::Leaf(leaves.len());
                    leaves.push(values[leaves.len()]);
                    if is_left {
                        nodes[parent].left = child;
                    } else {
                        nodes[parent].right = child;
                    }
                }
                if leaves.is_empty() {
                    leaves.push(values[0]);
                }
                Tree { nodes, leaves, ..Tree::default() }
            },
        )
    }

    fn arb_value() -> impl Strategy<Value = f32> {
        prop_oneof![
            4 => -3.0f32..3.0,
            1 => Just(f32::NAN),
            1 => Just(0.0f32),
            1 => (0u32..70).prop_map(|c| c as f32),
            1 => prop::sample::select(vec![
                -0.0f32, 1.0, -1.0, f32::MIN_POSITIVE, 1e-45, -1e-45, f32::MAX, f32::MIN,
                f32::INFINITY, f32::NEG_INFINITY,
            ]),
        ]
    }

    proptest! {
        #[test]
        fn batched_evaluation_equals_row_by_row(
            trees in prop::collection::vec((arb_tree(4), 0usize..3), 1..8),
            rows in prop::collection::vec(prop::collection::vec(arb_value(), 4), 1..150),
        ) {
            let mut forest = Forest::<f64>::new(4, 3).unwrap();
            for (i, (tree, group)) in trees.iter().enumerate() {
                forest.push(tree, *group, &format!("tree {i}")).unwrap();
            }
            let base = [0.5, -1.0, 0.0];
            let flat: Vec<f32> = rows.concat();
            let batched = forest.predict(&flat, &base).unwrap();
            prop_assert_eq!(batched.len(), rows.len() * 3);
            for (r, row) in rows.iter().enumerate() {
                let single = forest.predict(row, &base).unwrap();
                let mut want = base;
                for (tree, group) in &trees {
                    want[*group] += reference(tree, row);
                }
                for g in 0..3 {
                    prop_assert_eq!(batched[r * 3 + g].to_bits(), single[g].to_bits());
                    prop_assert!((batched[r * 3 + g] - want[g]).abs() < 1e-9);
                }
            }
        }
    }

    fn stump(split: Split, default_left: bool, zero_is_missing: bool) -> Tree {
        Tree {
            nodes: vec![Node {
                feature: 0,
                split,
                default_left,
                zero_is_missing,
                left: Child::Leaf(0),
                right: Child::Leaf(1),
            }],
            leaves: vec![1.0, 2.0],
            ..Tree::default()
        }
    }

    fn eval(tree: &Tree, x: &[f32]) -> Vec<f64> {
        let mut forest = Forest::<f64>::new(1, 1).unwrap();
        forest.push(tree, 0, "tree 0").unwrap();
        forest.predict(x, &[0.0]).unwrap()
    }

    #[test]
    fn numeric_missing_and_zero_rules() {
        let t = stump(Split::Numeric { threshold: 0.5 }, false, false);
        assert_eq!(eval(&t, &[0.4, 0.5, f32::NAN, 0.0]), [1.0, 2.0, 2.0, 1.0]);
        let t = stump(Split::Numeric { threshold: 0.5 }, false, true);
        assert_eq!(
            eval(&t, &[0.4, 0.0, -0.0, 1e-36, 1e-30, f32::NAN]),
            [1.0, 2.0, 2.0, 2.0, 1.0, 2.0]
        );
    }

    #[test]
    fn categorical_rule_truncates_and_refuses_negatives() {
        // Categories 1 and 33 go left.
        let t = stump(Split::Categorical { bits: vec![0b10, 0b10] }, false, false);
        let got =
            eval(&t, &[1.0, 1.9, 33.0, 0.0, -0.5, -1.0, 64.0, 2.0e9, f32::NAN, f32::INFINITY]);
        assert_eq!(got, [1.0, 1.0, 1.0, 2.0, 2.0, 2.0, 2.0, 2.0, 2.0, 2.0]);
    }

    #[test]
    fn less_equal_thresholds_are_exact_in_f32() {
        for t in [0.5f64, 0.1, -0.1, 1e-40, -1e300, 1e300, 3.4028234663852886e38] {
            let u = less_equal_threshold(t);
            for x in
                [t as f32, (t as f32).next_up(), (t as f32).next_down(), 0.0, f32::MAX, f32::MIN]
            {
                assert_eq!(x < u, f64::from(x) <= t, "t={t} x={x}");
            }
        }
    }

    #[test]
    fn default_left_edges_of_the_one_compare_form() {
        // Enough rows for both the lockstep walk (8) and the one-row walk (the rest).
        let x = [
            f32::NEG_INFINITY,
            -1.0,
            -0.0,
            0.0,
            1e-45,
            1.0,
            f32::MAX,
            f32::INFINITY,
            f32::NAN,
            0.0,
            f32::NAN,
        ];
        for t in [f32::NEG_INFINITY, -1.0, -0.0, 0.0, 1e-45, 1.0, f32::INFINITY, f32::NAN] {
            let tree = stump(Split::Numeric { threshold: t }, true, false);
            let want: Vec<f64> =
                x.iter().map(|&v| if v.is_nan() || v < t { 1.0 } else { 2.0 }).collect();
            assert_eq!(eval(&tree, &x), want, "threshold {t}");
        }
    }

    #[test]
    fn invalid_trees_are_rejected() {
        let mut forest = Forest::<f32>::new(2, 1).unwrap();
        let mut t = stump(Split::Numeric { threshold: 0.0 }, true, false);
        t.nodes[0].feature = 2;
        assert!(forest.push(&t, 0, "tree 0").unwrap_err().contains("feature 2"));
        let mut t = stump(Split::Numeric { threshold: 0.0 }, true, false);
        t.nodes[0].left = Child::Node(0);
        assert!(forest.push(&t, 0, "tree 0").unwrap_err().contains("invalid child"));
        let mut t = stump(Split::Numeric { threshold: 0.0 }, true, false);
        t.nodes[0].right = Child::Leaf(5);
        assert!(forest.push(&t, 0, "tree 0").unwrap_err().contains("missing leaf"));
        let t = stump(Split::Numeric { threshold: 0.0 }, true, false);
        assert!(forest.push(&t, 1, "tree 0").unwrap_err().contains("group"));
        assert!(forest.push(&Tree::default(), 0, "tree 0").unwrap_err().contains("no leaves"));
        assert_eq!(forest.num_trees(), 0);
        assert!(forest.predict(&[1.0, 2.0, 3.0], &[0.0]).is_err());
    }
}
