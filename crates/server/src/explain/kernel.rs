//! KernelSHAP (Lundberg and Lee, 2017) for any model, as `shap`'s `KernelExplainer` computes
//! it, with one batched model call per explanation.
//!
//! For each explained row, only the features whose value differs from some background row
//! can matter (`M` of them; the others get 0). Coalitions of those features are chosen as
//! `shap` does: subset sizes `s` and `M − s` are paired, the Shapley kernel gives each size a
//! weight, sizes whose every subset fits in the remaining budget are enumerated in full
//! (smallest first), and the rest of the `nsamples` budget is drawn at random by size
//! weight, repeated draws adding to one sample's weight. Each coalition's rows are the
//! background rows with the coalition's features set to the explained row's values; the
//! expected output over the background (weighted) is the coalition's value. Every
//! coalition of every row, the background itself and the explained rows go to the model in
//! one batch (split only where the model's `max_batch_size` demands). The attributions are
//! the weighted least-squares fit of the values on the coalition masks, constrained to add
//! up to `f(x) − E[f]` by eliminating the last feature, as `shap` (with `l1_reg=False`: no
//! feature selection). Random draws come from a seeded generator, so an explanation is a
//! function of the request, the background and the seed.

use std::collections::HashMap;

use oxserve_protocol::{DataType, InferRequest, ModelMetadata, Tensor, TensorData};

use super::background::Background;
use super::{Attributions, Method};
use crate::error::{Error, Result};
use crate::model::Model;
use crate::settings::ExplainerSettings;

/// A small seeded generator (xoshiro256** seeded through splitmix64): explanations must
/// not depend on anything but their seed.
#[derive(Debug, Clone)]
pub(crate) struct Rng([u64; 4]);

impl Rng {
    pub(crate) fn new(seed: u64) -> Rng {
        let mut z = seed;
        let mut next = || {
            z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut x = z;
            x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            x ^ (x >> 31)
        };
        Rng([next(), next(), next(), next()])
    }

    fn next_u64(&mut self) -> u64 {
        let s = &mut self.0;
        let result = s[1].wrapping_mul(5).rotate_left(7).wrapping_mul(9);
        let t = s[1] << 17;
        s[2] ^= s[0];
        s[3] ^= s[1];
        s[1] ^= s[2];
        s[0] ^= s[3];
        s[2] ^= t;
        s[3] = s[3].rotate_left(45);
        result
    }

    /// Uniform in `[0, 1)`.
    pub(crate) fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// Uniform in `0..n` (`n > 0`).
    pub(crate) fn below(&mut self, n: usize) -> usize {
        ((u128::from(self.next_u64()) * n as u128) >> 64) as usize
    }
}

/// Coalitions of `m` features: `masks` (`len × m`) and their kernel weights.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Coalitions {
    pub m: usize,
    pub masks: Vec<bool>,
    pub weights: Vec<f64>,
}

impl Coalitions {
    pub(crate) fn len(&self) -> usize {
        self.weights.len()
    }

    fn mask(&self, i: usize) -> &[bool] {
        &self.masks[i * self.m..(i + 1) * self.m]
    }

    fn push(&mut self, mask: &[bool], weight: f64) {
        self.masks.extend_from_slice(mask);
        self.weights.push(weight);
    }
}

fn binomial(n: usize, k: usize) -> f64 {
    (0..k).fold(1.0, |acc, i| acc * (n - i) as f64 / (i + 1) as f64)
}

/// `shap`'s `nsamples="auto"`: `2M + 2048`.
pub(crate) fn auto_nsamples(m: usize) -> usize {
    2 * m + 2048
}

/// The coalitions `shap`'s KernelExplainer evaluates for `m >= 2` varying features with a
/// budget of `nsamples`.
pub(crate) fn coalitions(m: usize, nsamples: usize, rng: &mut Rng) -> Coalitions {
    assert!(m >= 2);
    let nsamples = if m <= 30 { nsamples.min((1usize << m) - 2) } else { nsamples };
    let mut out = Coalitions { m, masks: Vec::new(), weights: Vec::new() };
    let num_sizes = (m - 1).div_ceil(2);
    let num_paired = (m - 1) / 2;
    let mut weight: Vec<f64> =
        (1..=num_sizes).map(|i| (m as f64 - 1.0) / (i as f64 * (m - i) as f64)).collect();
    for w in weight.iter_mut().take(num_paired) {
        *w *= 2.0;
    }
    let total: f64 = weight.iter().sum();
    weight.iter_mut().for_each(|w| *w /= total);

    // Sizes enumerated in full while the budget covers every subset of them.
    let mut full = 0;
    let mut left = nsamples as f64;
    let mut remaining = weight.clone();
    let mut mask = vec![false; m];
    for size in 1..=num_sizes {
        let paired = size <= num_paired;
        let subsets = binomial(m, size) * if paired { 2.0 } else { 1.0 };
        if left * remaining[size - 1] / subsets < 1.0 - 1e-8 {
            break;
        }
        full += 1;
        left -= subsets;
        if remaining[size - 1] < 1.0 {
            let r = remaining[size - 1];
            remaining.iter_mut().for_each(|w| *w /= 1.0 - r);
        }
        let mut w = weight[size - 1] / binomial(m, size);
        if paired {
            w /= 2.0;
        }
        // Every combination of `size` features, in lexicographic order.
        let mut pick: Vec<usize> = (0..size).collect();
        loop {
            mask.iter_mut().for_each(|b| *b = false);
            pick.iter().for_each(|&j| mask[j] = true);
            out.push(&mask, w);
            if paired {
                mask.iter_mut().for_each(|b| *b = !*b);
                out.push(&mask, w);
            }
            let Some(i) = (0..size).rev().find(|&i| pick[i] != i + m - size) else { break };
            pick[i] += 1;
            for j in i + 1..size {
                pick[j] = pick[j - 1] + 1;
            }
        }
    }

    // The rest drawn by size weight.
    let fixed = out.len();
    let mut samples_left = nsamples.saturating_sub(fixed);
    if full != num_sizes && samples_left > 0 {
        let mut probs = weight.clone();
        for p in probs.iter_mut().take(num_paired) {
            *p /= 2.0;
        }
        let probs = &probs[full..];
        let total: f64 = probs.iter().sum();
        let mut used: HashMap<Vec<bool>, usize> = HashMap::new();
        let mut order: Vec<usize> = (0..m).collect();
        for _ in 0..4 * samples_left {
            if samples_left == 0 {
                break;
            }
            let mut u = rng.unit() * total;
            let mut ind = probs.len() - 1;
            for (i, p) in probs.iter().enumerate() {
                if u < *p {
                    ind = i;
                    break;
                }
                u -= p;
            }
            let size = ind + full + 1;
            // The first `size` of a random permutation.
            for i in 0..size {
                let j = i + rng.below(m - i);
                order.swap(i, j);
            }
            mask.iter_mut().for_each(|b| *b = false);
            order[..size].iter().for_each(|&j| mask[j] = true);
            let seen = used.get(&mask).copied();
            match seen {
                None => {
                    used.insert(mask.clone(), out.len());
                    samples_left -= 1;
                    out.push(&mask, 1.0);
                }
                Some(at) => out.weights[at] += 1.0,
            }
            if samples_left > 0 && size <= num_paired {
                mask.iter_mut().for_each(|b| *b = !*b);
                match seen {
                    None => {
                        samples_left -= 1;
                        out.push(&mask, 1.0);
                    }
                    Some(at) if at + 1 < out.len() => out.weights[at + 1] += 1.0,
                    Some(_) => {}
                }
            }
        }
        let weight_left: f64 = weight[full..].iter().sum();
        let drawn: f64 = out.weights[fixed..].iter().sum();
        if drawn > 0.0 {
            out.weights[fixed..].iter_mut().for_each(|w| *w *= weight_left / drawn);
        }
    }
    out
}

/// The constrained weighted least squares of `shap`'s `solve`: attributions `phi` (`m`
/// values) of values `ey` (one per coalition, already less the expected value) with the
/// constraint `Σ phi = total`.
pub(crate) fn solve(c: &Coalitions, ey: &[f64], total: f64) -> Vec<f64> {
    let m = c.m;
    let last = m - 1;
    // Eliminate the last feature: phi_last = total − Σ others.
    let n = last;
    let mut xtwx = vec![0.0; n * n];
    let mut xtwy = vec![0.0; n];
    let mut row = vec![0.0; n];
    for (s, (&e, &w)) in ey.iter().zip(&c.weights).enumerate() {
        let mask = c.mask(s);
        let z_last = f64::from(u8::from(mask[last]));
        let y = e - z_last * total;
        for j in 0..n {
            row[j] = f64::from(u8::from(mask[j])) - z_last;
        }
        for i in 0..n {
            if row[i] == 0.0 {
                continue;
            }
            let wi = w * row[i];
            xtwy[i] += wi * y;
            for j in 0..n {
                xtwx[i * n + j] += wi * row[j];
            }
        }
    }
    let w = solve_linear(&mut xtwx, &mut xtwy, n);
    let mut phi = w;
    let sum: f64 = phi.iter().sum();
    phi.push(total - sum);
    phi
}

/// Solves `a x = b` (`n × n`) by Gaussian elimination with partial pivoting; a pivot that
/// vanishes (a singular system) leaves its variable at 0, as a minimum-norm solution would
/// for a feature no coalition separates.
fn solve_linear(a: &mut [f64], b: &mut [f64], n: usize) -> Vec<f64> {
    let scale = a.iter().fold(0.0f64, |m, v| m.max(v.abs())).max(f64::MIN_POSITIVE);
    let mut pivot_of = vec![usize::MAX; n];
    let mut row = 0;
    for col in 0..n {
        let Some(p) =
            (row..n).max_by(|&i, &j| a[i * n + col].abs().total_cmp(&a[j * n + col].abs()))
        else {
            break;
        };
        if a[p * n + col].abs() <= 1e-12 * scale {
            continue;
        }
        for k in 0..n {
            a.swap(row * n + k, p * n + k);
        }
        b.swap(row, p);
        for i in 0..n {
            if i != row {
                let f = a[i * n + col] / a[row * n + col];
                if f != 0.0 {
                    for k in col..n {
                        a[i * n + k] -= f * a[row * n + k];
                    }
                    b[i] -= f * b[row];
                }
            }
        }
        pivot_of[col] = row;
        row += 1;
    }
    (0..n)
        .map(|col| match pivot_of[col] {
            usize::MAX => 0.0,
            r => b[r] / a[r * n + col],
        })
        .collect()
}

/// Whether `a` and `b` differ, NaN equal to NaN (as `shap`'s `not_equal`).
fn differs(a: f64, b: f64) -> bool {
    !(a == b || (a.is_nan() && b.is_nan()))
}

/// A configured KernelSHAP explainer of one model version.
#[derive(Debug, Clone)]
pub struct KernelExplainer {
    input: String,
    datatype: DataType,
    background: Background,
    nsamples: Option<usize>,
    seed: u64,
    output: Option<String>,
}

impl KernelExplainer {
    /// Builds the explainer of a model with `metadata` from its settings, reading the
    /// background file. Errors say what does not fit (no single 2-D FP32/FP64 input, a
    /// background of the wrong width, an unknown output).
    pub fn new(
        settings: &ExplainerSettings,
        metadata: &ModelMetadata,
    ) -> Result<KernelExplainer, String> {
        let background = settings
            .background
            .as_ref()
            .ok_or("explainer.background is required for kernelshap")?;
        let background = Background::load(background, settings.seed)?;
        KernelExplainer::with_background(settings, metadata, background)
    }

    /// As [`KernelExplainer::new`] with the background given.
    pub fn with_background(
        settings: &ExplainerSettings,
        metadata: &ModelMetadata,
        background: Background,
    ) -> Result<KernelExplainer, String> {
        let [input] = metadata.inputs.as_slice() else {
            return Err(format!(
                "kernelshap explains models with one input; the model has {}",
                metadata.inputs.len()
            ));
        };
        let features = match input.shape.as_slice() {
            [_, f] if *f > 0 => *f as usize,
            _ => {
                return Err(format!(
                    "kernelshap needs an input of shape [-1, features]; input \"{}\" has shape {:?}",
                    input.name, input.shape
                ));
            }
        };
        if !matches!(input.datatype, DataType::Fp32 | DataType::Fp64) {
            return Err(format!(
                "kernelshap needs an FP32 or FP64 input; input \"{}\" is {}",
                input.name, input.datatype
            ));
        }
        if background.features != features {
            return Err(format!(
                "explainer.background rows have {} values but input \"{}\" has {features} features",
                background.features, input.name
            ));
        }
        if let Some(o) = &settings.output
            && !metadata.outputs.iter().any(|m| &m.name == o)
        {
            return Err(format!("explainer.output: the model has no output \"{o}\""));
        }
        Ok(KernelExplainer {
            input: input.name.clone(),
            datatype: input.datatype,
            background,
            nsamples: settings.nsamples,
            seed: settings.seed,
            output: settings.output.clone(),
        })
    }

    /// The background rows and weights.
    pub fn background(&self) -> &Background {
        &self.background
    }

    /// Explains the rows of `request`'s input with `model`, in one batched call (several
    /// when `max_batch > 0` is below the batch). `nsamples` and `seed` override the
    /// settings (request parameters).
    pub fn explain(
        &self,
        model: &dyn Model,
        request: &InferRequest,
        max_batch: usize,
        nsamples: Option<usize>,
        seed: Option<u64>,
    ) -> Result<Attributions> {
        let f = self.background.features;
        let input = request
            .input(&self.input)
            .ok_or_else(|| Error::invalid(format!("explain: missing input \"{}\"", self.input)))?;
        let x: Vec<f64> = match &input.data {
            TensorData::Fp32(v) => v.iter().map(|&v| f64::from(v)).collect(),
            TensorData::Fp64(v) => v.clone(),
            other => {
                return Err(Error::invalid(format!(
                    "input \"{}\": kernelshap needs FP32 or FP64 data, got {}",
                    self.input,
                    other.datatype()
                )));
            }
        };
        let rows_ok = matches!(input.shape.as_slice(), [r, w] if *w == f as i64 && *r >= 0 && (*r as usize) * f == x.len());
        if !rows_ok || x.is_empty() {
            return Err(Error::invalid(format!(
                "input \"{}\": explain needs shape [N, {f}] with N >= 1, got {:?}",
                self.input, input.shape
            )));
        }
        let rows = x.len() / f;
        let b = self.background.len();
        let seed = seed.unwrap_or(self.seed);

        // Coalitions per row, over the features that vary from the background.
        let mut plans = Vec::with_capacity(rows);
        for r in 0..rows {
            let xr = &x[r * f..(r + 1) * f];
            let varying: Vec<usize> = (0..f)
                .filter(|&j| (0..b).any(|i| differs(xr[j], self.background.row(i)[j])))
                .collect();
            let m = varying.len();
            let c = if m >= 2 {
                let budget = nsamples.or(self.nsamples).unwrap_or_else(|| auto_nsamples(m));
                let mut rng = Rng::new(seed.wrapping_add(r as u64));
                coalitions(m, budget, &mut rng)
            } else {
                Coalitions { m, masks: Vec::new(), weights: Vec::new() }
            };
            plans.push((varying, c));
        }

        // One batch: the background, the rows, then each coalition's background rows.
        let total_rows = b + rows + plans.iter().map(|(_, c)| c.len() * b).sum::<usize>();
        let mut batch = Vec::with_capacity(total_rows * f);
        batch.extend_from_slice(&self.background.rows);
        batch.extend_from_slice(&x);
        for (r, (varying, c)) in plans.iter().enumerate() {
            let xr = &x[r * f..(r + 1) * f];
            for s in 0..c.len() {
                let mask = c.mask(s);
                for i in 0..b {
                    let start = batch.len();
                    batch.extend_from_slice(self.background.row(i));
                    for (k, &j) in varying.iter().enumerate() {
                        if mask[k] {
                            batch[start + j] = xr[j];
                        }
                    }
                }
            }
        }
        let (name, width, y) = self.run(model, &batch, total_rows, max_batch)?;

        // Expected output over the background, the rows' outputs, and each coalition's value.
        let weights = &self.background.weights;
        let mean_over_background = |first: usize, d: usize| -> f64 {
            (0..b).map(|i| weights[i] * y[(first + i) * width + d]).sum()
        };
        let fnull: Vec<f64> = (0..width).map(|d| mean_over_background(0, d)).collect();
        let mut values = vec![0.0; rows * width * f];
        let mut explained = Vec::with_capacity(rows * width);
        let mut next = b + rows;
        let mut ey = Vec::new();
        for (r, (varying, c)) in plans.iter().enumerate() {
            let fx = &y[(b + r) * width..(b + r + 1) * width];
            explained.extend_from_slice(fx);
            for d in 0..width {
                let total = fx[d] - fnull[d];
                let phi = match varying.len() {
                    0 => Vec::new(),
                    1 => vec![total],
                    _ => {
                        ey.clear();
                        ey.extend(
                            (0..c.len()).map(|s| mean_over_background(next + s * b, d) - fnull[d]),
                        );
                        solve(c, &ey, total)
                    }
                };
                for (k, &j) in varying.iter().enumerate() {
                    values[(r * width + d) * f + j] = phi[k];
                }
            }
            next += c.len() * b;
        }
        Ok(Attributions {
            method: Method::KernelShap,
            output: name,
            rows,
            width,
            features: f,
            values,
            expected_value: fnull,
            explained,
        })
    }

    /// Runs `rows` rows of `batch` through the model (in chunks of `max_batch` when that is
    /// set and smaller) and returns the explained output's name, its values per row and all
    /// of them as `f64`.
    fn run(
        &self,
        model: &dyn Model,
        batch: &[f64],
        rows: usize,
        max_batch: usize,
    ) -> Result<(String, usize, Vec<f64>)> {
        let f = self.background.features;
        let chunk_rows = if max_batch > 0 { max_batch } else { rows };
        let mut out: Option<(String, usize, Vec<f64>)> = None;
        for chunk in batch.chunks(chunk_rows * f) {
            let n = chunk.len() / f;
            let data = match self.datatype {
                DataType::Fp64 => TensorData::Fp64(chunk.to_vec()),
                _ => TensorData::Fp32(chunk.iter().map(|&v| v as f32).collect()),
            };
            let request = InferRequest {
                inputs: vec![Tensor::new(self.input.clone(), vec![n as i64, f as i64], data)],
                ..Default::default()
            };
            let outputs = model.infer(request)?;
            let tensor = match &self.output {
                Some(name) => outputs.iter().find(|t| &t.name == name),
                None => outputs.iter().find(|t| matches!(t.datatype(), DataType::Fp32 | DataType::Fp64)),
            }
            .ok_or_else(|| {
                Error::invalid(match &self.output {
                    Some(name) => format!("explain: the model returned no output \"{name}\""),
                    None => "explain: the model has no FP32 or FP64 output to explain; set explainer.output".to_owned(),
                })
            })?;
            let values = numbers(&tensor.data).ok_or_else(|| {
                Error::invalid(format!(
                    "explain: output \"{}\" is {}, not numeric",
                    tensor.name,
                    tensor.datatype()
                ))
            })?;
            if values.is_empty() || !values.len().is_multiple_of(n) {
                return Err(Error::invalid(format!(
                    "explain: output \"{}\" has {} values for {n} rows",
                    tensor.name,
                    values.len()
                )));
            }
            let width = values.len() / n;
            match &mut out {
                None => out = Some((tensor.name.clone(), width, values)),
                Some((_, w, all)) if *w == width => all.extend(values),
                Some((_, w, _)) => {
                    return Err(Error::invalid(format!(
                        "explain: output \"{}\" changed width between chunks ({w} and {width})",
                        tensor.name
                    )));
                }
            }
        }
        out.ok_or_else(|| Error::invalid("explain: nothing to run"))
    }
}

/// Numeric tensor data as `f64`.
fn numbers(data: &TensorData) -> Option<Vec<f64>> {
    Some(match data {
        TensorData::Fp32(v) => v.iter().map(|&x| f64::from(x)).collect(),
        TensorData::Fp64(v) => v.clone(),
        TensorData::Int64(v) => v.iter().map(|&x| x as f64).collect(),
        TensorData::Int32(v) => v.iter().map(|&x| f64::from(x)).collect(),
        TensorData::Uint8(v) => v.iter().map(|&x| f64::from(x)).collect(),
        TensorData::Bool(v) => v.iter().map(|&x| f64::from(u8::from(x))).collect(),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_feature_sets_are_enumerated_in_full_with_kernel_weights() {
        let c = coalitions(4, 2048, &mut Rng::new(0));
        // 2^4 − 2 subsets, each once.
        assert_eq!(c.len(), 14);
        let mut seen: Vec<&[bool]> = (0..c.len()).map(|i| c.mask(i)).collect();
        seen.sort();
        seen.dedup();
        assert_eq!(seen.len(), 14);
        assert!((c.weights.iter().sum::<f64>() - 1.0).abs() < 1e-12);
        // The Shapley kernel (M − 1) / (C(M, s) s (M − s)): 1/4 for sizes 1 and 3, 1/8 for 2.
        let w = |s: usize| (0..c.len()).find(|&i| c.mask(i).iter().filter(|b| **b).count() == s);
        let (w1, w2, w3) =
            (c.weights[w(1).unwrap()], c.weights[w(2).unwrap()], c.weights[w(3).unwrap()]);
        assert!((w1 / w2 - 2.0).abs() < 1e-12 && (w1 - w3).abs() < 1e-15, "{w1} {w2} {w3}");
    }

    #[test]
    fn sampled_coalitions_are_seeded_and_within_budget() {
        let a = coalitions(12, 300, &mut Rng::new(5));
        assert_eq!(a, coalitions(12, 300, &mut Rng::new(5)));
        assert_ne!(a, coalitions(12, 300, &mut Rng::new(6)));
        assert!(a.len() <= 300 && a.len() > 24, "{}", a.len());
        assert!((a.weights.iter().sum::<f64>() - 1.0).abs() < 1e-9);
    }

    #[test]
    fn a_linear_model_gets_exact_attributions() {
        // f(x) = 2 x0 − x1 + 0.5 x2 (+ 0 x3): phi_j = w_j (x_j − E[x_j]).
        let w = [2.0, -1.0, 0.5, 0.0];
        let bg = [0.0, 1.0, 2.0, 3.0, 1.0, -1.0, 0.0, 3.0];
        let mean = [0.5, 0.0, 1.0, 3.0];
        let x = [1.0, 2.0, -1.0, 5.0];
        let c = coalitions(4, 100, &mut Rng::new(0));
        let f = |z: &[f64]| z.iter().zip(&w).map(|(a, b)| a * b).sum::<f64>();
        let fnull = (f(&bg[..4]) + f(&bg[4..])) / 2.0;
        let ey: Vec<f64> = (0..c.len())
            .map(|s| {
                let v: f64 = (0..2)
                    .map(|i| {
                        let mut row = bg[i * 4..(i + 1) * 4].to_vec();
                        for j in 0..4 {
                            if c.mask(s)[j] {
                                row[j] = x[j];
                            }
                        }
                        f(&row)
                    })
                    .sum();
                v / 2.0 - fnull
            })
            .collect();
        let phi = solve(&c, &ey, f(&x) - fnull);
        for j in 0..4 {
            assert!((phi[j] - w[j] * (x[j] - mean[j])).abs() < 1e-9, "{j}: {phi:?}");
        }
    }

    #[test]
    fn singular_systems_leave_unidentified_features_at_zero() {
        let mut a = vec![1.0, 1.0, 1.0, 1.0];
        let mut b = vec![2.0, 2.0];
        let x = solve_linear(&mut a, &mut b, 2);
        assert_eq!(x, vec![2.0, 0.0]);
    }
}
