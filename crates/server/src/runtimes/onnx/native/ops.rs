//! The operators' arithmetic, written to follow ONNX Runtime's CPU kernels step by step
//! (the same operation order, in `f32` where they use `f32`), so that results agree with
//! what ONNX Runtime returns for the same model to within float rounding.
//!
//! Everything here works on row-major `[rows, width]` buffers whose sizes the plan compiler
//! and the input checks have already made consistent; slices are still walked with
//! iterators and `chunks`, never indexed with computed offsets, so a size mismatch can only
//! give a short result, never a panic.

/// `post_transform` of `LinearClassifier` as supported here. ONNX Runtime's `PROBIT` is
/// not supported.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PostTransform {
    None,
    Logistic,
    Softmax,
    SoftmaxZero,
}

impl PostTransform {
    /// Parses the attribute value; `None` for values not supported here.
    pub fn parse(s: &[u8]) -> Option<PostTransform> {
        Some(match s {
            b"NONE" => PostTransform::None,
            b"LOGISTIC" => PostTransform::Logistic,
            b"SOFTMAX" => PostTransform::Softmax,
            b"SOFTMAX_ZERO" => PostTransform::SoftmaxZero,
            _ => return None,
        })
    }
}

/// `Normalizer`'s `norm`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Norm {
    Max,
    L1,
    L2,
}

/// `scores = x · coefficientsᵀ + intercepts` for `[rows, features]` input and
/// `[targets, features]` coefficients, in the order ONNX Runtime's `Gemm` over MLAS sums on
/// x86-64 with AVX2, so that even sums that nearly cancel come out the same:
/// - a single row goes through MLAS's `M = 1` kernel: eight lane sums of products (lane
///   `k mod 8`), reduced in a fixed pattern that depends on the target's position;
/// - several rows go through the general kernel: one chain of fused multiply-adds per
///   block of features, each block's sum added to the output, which starts at the
///   intercept.
#[derive(Debug, Clone)]
pub struct Linear {
    /// Row-major `[targets, features]`.
    pub coefficients: Vec<f32>,
    /// One per target, or `None` when the model gives none (the output starts at zero).
    pub intercepts: Option<Vec<f32>>,
    pub features: usize,
    pub targets: usize,
}

impl Linear {
    /// MLAS steps through the shared dimension in blocks whose length grows as the output
    /// narrows (`MlasSgemmOperation`: `StrideK` doubles each time `StrideN` halves, from
    /// 128 and 128, while `StrideN > 16` and `StrideN / 2 >= N`).
    fn block(&self) -> usize {
        let (mut stride_n, mut stride_k) = (128usize, 128usize);
        while stride_n > 16 && stride_n / 2 >= self.targets {
            stride_n /= 2;
            stride_k *= 2;
        }
        stride_k
    }

    fn intercept(&self, target: usize) -> Option<f32> {
        self.intercepts.as_ref().map(|b| b.get(target).copied().unwrap_or(0.0))
    }

    /// Scores of every row of `x` (`rows * features` values): `rows * targets` values.
    pub fn scores(&self, x: &[f32]) -> Vec<f32> {
        let features = self.features.max(1);
        let rows = x.len() / features;
        let mut out = Vec::with_capacity(rows * self.targets);
        let weights = self.coefficients.chunks_exact(features);
        if rows == 1 {
            for (t, w) in weights.enumerate() {
                let sum = self.m1_dot(x, w, t);
                out.push(sum + self.intercept(t).unwrap_or(0.0));
            }
            return out;
        }
        let block = self.block();
        for row in x.chunks_exact(features) {
            for (t, weights) in self.coefficients.chunks_exact(features).enumerate() {
                let mut sum = self.intercept(t);
                for (xs, ws) in row.chunks(block).zip(weights.chunks(block)) {
                    let dot = xs.iter().zip(ws).fold(0.0f32, |acc, (x, w)| fma(*x, *w, acc));
                    sum = Some(match sum {
                        Some(s) => dot + s,
                        None => dot,
                    });
                }
                out.push(sum.unwrap_or(0.0));
            }
        }
        out
    }

    /// The dot product of target `t` as `MlasSgemmKernelM1TransposeBAvx` computes it: the
    /// targets go in groups of four, then a pair, then a single one, and each group shape
    /// reduces its eight lane sums in its own order.
    fn m1_dot(&self, x: &[f32], w: &[f32], t: usize) -> f32 {
        let mut l = [0.0f32; 8];
        for (k, (x, w)) in x.iter().zip(w).enumerate() {
            // Separate multiply and add (AVX, no FMA), as the kernel does.
            l[k % 8] += x * w;
        }
        let in_fours = self.targets / 4 * 4;
        let pair = self.targets % 4 >= 2;
        if t < in_fours {
            (((l[0] + l[1]) + l[2]) + l[3]) + (((l[4] + l[5]) + l[6]) + l[7])
        } else if pair && t < in_fours + 2 {
            ((l[0] + l[2]) + (l[4] + l[6])) + ((l[1] + l[3]) + (l[5] + l[7]))
        } else {
            ((l[0] + l[1]) + (l[2] + l[3])) + ((l[4] + l[5]) + (l[6] + l[7]))
        }
    }
}

/// `a * b + c` rounded once, as the FMA instruction computes it, without a call into libm
/// (`f32::mul_add` is a function call unless the build targets FMA): the product of two
/// `f32` is exact in `f64`, so only the sum is rounded, first to `f64` and then to `f32`.
/// That double rounding differs from a single one only when the `f64` sum lands exactly
/// halfway between two `f32` values, a last-bit difference that rarely happens.
fn fma(a: f32, b: f32, c: f32) -> f32 {
    (f64::from(a) * f64::from(b) + f64::from(c)) as f32
}

/// The index of the first largest score of a row, by ONNX Runtime's `score > max` scan
/// from the first element: a later NaN never wins, a leading NaN always does.
pub fn argmax(row: &[f32]) -> usize {
    let mut best = 0;
    let mut max = row.first().copied().unwrap_or(0.0);
    for (j, &v) in row.iter().enumerate().skip(1) {
        if v > max {
            max = v;
            best = j;
        }
    }
    best
}

/// ONNX Runtime's `ComputeSoftmax`: subtract the row maximum, exponentiate, divide by the
/// sum, all in `f32`.
pub fn softmax(row: &mut [f32]) {
    let mut max = -f32::MAX;
    for &v in row.iter() {
        if v > max {
            max = v;
        }
    }
    let mut sum = 0.0f32;
    for v in row.iter_mut() {
        *v = (*v - max).exp();
        sum += *v;
    }
    for v in row.iter_mut() {
        *v /= sum;
    }
}

/// ONNX Runtime's `ComputeSoftmaxZero`: like [`softmax`] but scores within 1e-7 of zero
/// stay (almost) zero instead of contributing `exp(0 - max)`.
pub fn softmax_zero(row: &mut [f32]) {
    let mut max = -f32::MAX;
    for &v in row.iter() {
        if v > max {
            max = v;
        }
    }
    let exp_neg_max = (-max).exp();
    let mut sum = 0.0f32;
    for v in row.iter_mut() {
        if *v > 0.000_000_1 || *v < -0.000_000_1 {
            *v = (*v - max).exp();
            sum += *v;
        } else {
            *v *= exp_neg_max;
        }
    }
    for v in row.iter_mut() {
        *v /= sum;
    }
}

/// MLAS's `MlasComputeLogistic`, which ONNX Runtime uses for a `LOGISTIC` post-transform
/// over two or more scores: Eigen's rational approximation of `1 / (1 + e^-x)` on
/// `[-18, 18]`, floored at 0. NaN stays NaN.
///
/// The ONNX Runtime build in use agrees with this to an ulp or two (at most 6e-8 apart,
/// the last bits differ in about a third of the inputs), not bit for bit; the plan
/// compiler therefore lets these scores reach only graph outputs, never a `Normalizer`
/// that could magnify the difference.
pub fn logistic(x: f32) -> f32 {
    // The coefficients as MLAS publishes them (`MlasLogisticConstants`).
    #[allow(clippy::excessive_precision)]
    const ALPHA: [f32; 5] = [
        4.37031012579801e-11,
        1.15627324459942e-07,
        6.08574864600143e-05,
        8.51377133304701e-03,
        2.48287947061529e-01,
    ];
    #[allow(clippy::excessive_precision)]
    const BETA: [f32; 6] = [
        6.10247389755681e-13,
        5.76102136993427e-09,
        6.29106785017040e-06,
        1.70198817374094e-03,
        1.16817656904453e-01,
        9.93151921023180e-01,
    ];
    let v = if x < -18.0 { -18.0 } else { x };
    let v = if v > 18.0 { 18.0 } else { v };
    let v2 = v * v;
    let p = ALPHA[1..].iter().fold(ALPHA[0], |p, a| p.mul_add(v2, *a)) * v;
    let q = BETA[1..].iter().fold(BETA[0], |q, b| q.mul_add(v2, *b));
    let y = p / q + 0.5;
    if y < 0.0 { 0.0 } else { y }
}

/// ONNX Runtime's `ComputeLogistic`, used for a single score: `1 / (1 + e^-|x|)`, mirrored
/// for negative `x`.
pub fn logistic_exact(x: f32) -> f32 {
    let v = 1.0 / (1.0 + (-x.abs()).exp());
    if x < 0.0 { 1.0 - v } else { v }
}

/// `LinearClassifier`'s post-transform of `rows × targets` scores in place, as ONNX
/// Runtime's `batched_update_scores_inplace` does it when there are two or more targets.
pub fn post_transform(scores: &mut [f32], targets: usize, transform: PostTransform) {
    match transform {
        PostTransform::None => {}
        PostTransform::Logistic => scores.iter_mut().for_each(|s| *s = logistic(*s)),
        PostTransform::Softmax => scores.chunks_mut(targets.max(1)).for_each(softmax),
        PostTransform::SoftmaxZero => scores.chunks_mut(targets.max(1)).for_each(softmax_zero),
    }
}

/// A value that `Normalizer` and `Scaler` read as it is and convert to `f32` as ONNX
/// Runtime's templated kernels do (`static_cast<float>`).
pub trait Real: Copy {
    fn to_f32(self) -> f32;
    fn abs(self) -> Self;
    /// `x * x` in the input type.
    fn square(self) -> Self;
    fn is_negative(self) -> bool;
    /// `(x - offset) * scale` with `offset` and `scale` promoted to the input type.
    fn scale(self, offset: f32, scale: f32) -> f32;
}

impl Real for f32 {
    fn to_f32(self) -> f32 {
        self
    }
    fn abs(self) -> f32 {
        f32::abs(self)
    }
    fn square(self) -> f32 {
        self * self
    }
    fn is_negative(self) -> bool {
        self < 0.0
    }
    fn scale(self, offset: f32, scale: f32) -> f32 {
        (self - offset) * scale
    }
}

impl Real for f64 {
    fn to_f32(self) -> f32 {
        self as f32
    }
    fn abs(self) -> f64 {
        f64::abs(self)
    }
    fn square(self) -> f64 {
        self * self
    }
    fn is_negative(self) -> bool {
        self < 0.0
    }
    fn scale(self, offset: f32, scale: f32) -> f32 {
        ((self - f64::from(offset)) * f64::from(scale)) as f32
    }
}

/// ONNX Runtime's `Normalizer` over each row of width `width`; the result is `f32`.
pub fn normalize<T: Real>(x: &[T], width: usize, norm: Norm) -> Vec<f32> {
    let mut out = Vec::with_capacity(x.len());
    for row in x.chunks(width.max(1)) {
        match norm {
            Norm::Max => {
                let mut max = f32::MIN;
                for v in row {
                    // std::max(max, v): v only when max < v, so NaN never becomes the max.
                    let v = v.to_f32();
                    if max < v {
                        max = v;
                    }
                }
                if max != 0.0 {
                    out.extend(row.iter().map(|v| v.to_f32() / max));
                } else {
                    out.extend(row.iter().map(|v| v.to_f32()));
                }
            }
            Norm::L1 => {
                let mut sum = 0.0f32;
                for v in row {
                    sum += v.abs().to_f32();
                }
                if sum != 0.0 {
                    out.extend(row.iter().map(|v| v.to_f32() / sum));
                } else {
                    out.extend(row.iter().map(|v| v.to_f32()));
                }
            }
            Norm::L2 => {
                let start = out.len();
                let mut sum = 0.0f32;
                for v in row {
                    let square = v.square().to_f32();
                    out.push(square);
                    sum += square;
                }
                let written = out.get_mut(start..).unwrap_or_default();
                if sum != 0.0 {
                    for (o, v) in written.iter_mut().zip(row) {
                        let r = (*o / sum).sqrt();
                        *o = if v.is_negative() { -r } else { r };
                    }
                } else {
                    for (o, v) in written.iter_mut().zip(row) {
                        *o = v.to_f32();
                    }
                }
            }
        }
    }
    out
}

/// ONNX Runtime's `Scaler`: `(x - offset[j]) * scale[j]` per column `j` (or with the single
/// offset and scale for every element); the result is `f32`.
pub fn scale<T: Real>(x: &[T], offset: &[f32], scale: &[f32]) -> Vec<f32> {
    if let ([o], [s]) = (offset, scale) {
        return x.iter().map(|v| v.scale(*o, *s)).collect();
    }
    let width = offset.len().max(1);
    let mut out = Vec::with_capacity(x.len());
    for row in x.chunks(width) {
        out.extend(row.iter().zip(offset.iter().zip(scale)).map(|(v, (o, s))| v.scale(*o, *s)));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gemm_blocks_follow_mlas_strides() {
        let linear =
            |targets| Linear { coefficients: vec![], intercepts: None, features: 1, targets };
        assert_eq!(linear(1).block(), 1024);
        assert_eq!(linear(3).block(), 1024);
        assert_eq!(linear(20).block(), 512);
        assert_eq!(linear(64).block(), 256);
        assert_eq!(linear(65).block(), 128);
    }

    #[test]
    fn scores_are_dot_products_plus_intercepts() {
        let l = Linear {
            coefficients: vec![1.0, 2.0, -1.0, 0.5],
            intercepts: Some(vec![0.5, -0.5]),
            features: 2,
            targets: 2,
        };
        assert_eq!(l.scores(&[1.0, 1.0, 2.0, 0.0]), vec![3.5, -1.0, 2.5, -2.5]);
        assert_eq!(l.scores(&[2.0, 0.0]), vec![2.5, -2.5]);
        assert_eq!(l.scores(&[]), Vec::<f32>::new());
    }

    #[test]
    fn transforms_match_their_definitions() {
        let mut row = [1.0f32, 2.0, 3.0];
        softmax(&mut row);
        assert!((row.iter().sum::<f32>() - 1.0).abs() < 1e-6);
        assert!(row[2] > row[1] && row[1] > row[0]);
        for x in [-30.0f32, -5.0, -0.1, 0.0, 0.3, 4.0, 25.0] {
            let exact = 1.0 / (1.0 + (-f64::from(x)).exp());
            assert!((f64::from(logistic(x)) - exact).abs() < 1e-6, "{x}");
        }
        assert!(logistic(f32::NAN).is_nan());
        assert_eq!(argmax(&[f32::NAN, 1.0, 1.0]), 0);
        assert_eq!(argmax(&[0.5, 1.0, 1.0]), 1);
        assert_eq!(argmax(&[2.0, f32::NAN, 3.0]), 2);
        let mut zero = [0.0f32, 1.0];
        softmax_zero(&mut zero);
        assert_eq!(zero[1], 1.0);
    }

    #[test]
    fn normalizers_and_scaler() {
        assert_eq!(normalize(&[1.0f32, -3.0, 0.0, 0.0], 2, Norm::L1), vec![0.25, -0.75, 0.0, 0.0]);
        assert_eq!(normalize(&[2.0f64, 4.0], 2, Norm::Max), vec![0.5, 1.0]);
        assert_eq!(normalize(&[3.0f32, -4.0], 2, Norm::L2), vec![0.6, -0.8]);
        assert_eq!(scale(&[1.0f32, 2.0], &[1.0, 0.0], &[2.0, 3.0]), vec![0.0, 6.0]);
        assert_eq!(scale(&[1.0f64, 2.0], &[1.0], &[2.0]), vec![0.0, 2.0]);
    }
}
