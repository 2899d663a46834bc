//! The background dataset of KernelSHAP: rows read from a JSON or CSV file, optionally
//! summarised by k-means (weighted centres, as `shap.kmeans`) or by a seeded sample.
//!
//! JSON is an array of rows, each an array of numbers (`null` for NaN). CSV is one row a
//! line, values separated by commas; a first line that is not all numbers is a header and
//! skipped; an empty field or `nan` is NaN.

use std::path::Path;

use super::kernel::Rng;
use crate::settings::{BackgroundSettings, Summary};

/// Weighted background rows.
#[derive(Debug, Clone, PartialEq)]
pub struct Background {
    pub features: usize,
    /// `rows × features`, row-major.
    pub rows: Vec<f64>,
    /// One weight per row, summing to 1.
    pub weights: Vec<f64>,
}

impl Background {
    /// Equally weighted `rows` of `features` values each.
    pub fn uniform(features: usize, rows: Vec<f64>) -> Result<Background, String> {
        if features == 0 || rows.is_empty() || !rows.len().is_multiple_of(features) {
            return Err(format!(
                "{} values are not a non-empty set of rows of {features} features",
                rows.len()
            ));
        }
        let n = rows.len() / features;
        Ok(Background { features, rows, weights: vec![1.0 / n as f64; n] })
    }

    /// Number of rows.
    pub fn len(&self) -> usize {
        self.weights.len()
    }

    /// Whether there are no rows (never, once built).
    pub fn is_empty(&self) -> bool {
        self.weights.is_empty()
    }

    /// Row `i`.
    pub fn row(&self, i: usize) -> &[f64] {
        &self.rows[i * self.features..(i + 1) * self.features]
    }

    /// Reads `settings.file` and applies its summary (seeded by `seed`).
    pub fn load(settings: &BackgroundSettings, seed: u64) -> Result<Background, String> {
        let path = &settings.file;
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("explainer.background: cannot read {}: {e}", path.display()))?;
        let (features, rows) = parse(path, &text)
            .map_err(|e| format!("explainer.background {}: {e}", path.display()))?;
        let all = Background::uniform(features, rows)
            .map_err(|e| format!("explainer.background {}: {e}", path.display()))?;
        match settings.summary {
            Summary::None => Ok(all),
            Summary::Sample(n) => Ok(all.sample(n, seed)),
            Summary::KMeans(k) => all.kmeans(k, seed),
        }
    }

    /// `n` rows drawn without replacement (all of them when there are no more).
    pub fn sample(&self, n: usize, seed: u64) -> Background {
        let total = self.len();
        if n >= total {
            return self.clone();
        }
        let mut rng = Rng::new(seed);
        let mut order: Vec<usize> = (0..total).collect();
        for i in 0..n {
            let j = i + rng.below(total - i);
            order.swap(i, j);
        }
        let rows = order[..n].iter().flat_map(|&i| self.row(i).iter().copied()).collect();
        Background { features: self.features, rows, weights: vec![1.0 / n as f64; n] }
    }

    /// `k` centres by Lloyd's k-means (k-means++ start, seeded), each value then moved to
    /// the nearest value of its feature in the data, and weighted by its cluster's size, as
    /// `shap.kmeans(data, k)`.
    pub fn kmeans(&self, k: usize, seed: u64) -> Result<Background, String> {
        if self.rows.iter().any(|v| !v.is_finite()) {
            return Err("explainer.background: kmeans needs finite values (the file has NaN or infinite ones)".into());
        }
        let (n, f) = (self.len(), self.features);
        if k >= n {
            return Ok(self.clone());
        }
        let dist =
            |a: &[f64], b: &[f64]| a.iter().zip(b).map(|(x, y)| (x - y) * (x - y)).sum::<f64>();
        let mut rng = Rng::new(seed);
        // k-means++: each next centre drawn with probability proportional to the squared
        // distance to the nearest centre so far.
        let mut centres: Vec<f64> = self.row(rng.below(n)).to_vec();
        let mut nearest: Vec<f64> = (0..n).map(|i| dist(self.row(i), &centres[..f])).collect();
        while centres.len() < k * f {
            let total: f64 = nearest.iter().sum();
            let pick = if total > 0.0 {
                let mut u = rng.unit() * total;
                let mut pick = n - 1;
                for (i, d) in nearest.iter().enumerate() {
                    if u < *d {
                        pick = i;
                        break;
                    }
                    u -= d;
                }
                pick
            } else {
                rng.below(n)
            };
            let start = centres.len();
            centres.extend_from_slice(self.row(pick));
            for (i, d) in nearest.iter_mut().enumerate() {
                *d = d.min(dist(self.row(i), &centres[start..start + f]));
            }
        }
        let mut assign = vec![0usize; n];
        for _ in 0..300 {
            let mut changed = false;
            for (i, a) in assign.iter_mut().enumerate() {
                let best = (0..k)
                    .min_by(|&p, &q| {
                        let dp = dist(self.row(i), &centres[p * f..(p + 1) * f]);
                        let dq = dist(self.row(i), &centres[q * f..(q + 1) * f]);
                        dp.total_cmp(&dq)
                    })
                    .unwrap_or(0);
                changed |= *a != best;
                *a = best;
            }
            let mut sums = vec![0.0; k * f];
            let mut counts = vec![0usize; k];
            for (i, &a) in assign.iter().enumerate() {
                counts[a] += 1;
                for (s, v) in sums[a * f..(a + 1) * f].iter_mut().zip(self.row(i)) {
                    *s += v;
                }
            }
            for c in 0..k {
                if counts[c] > 0 {
                    for j in 0..f {
                        centres[c * f + j] = sums[c * f + j] / counts[c] as f64;
                    }
                }
            }
            if !changed {
                break;
            }
        }
        let mut counts = vec![0usize; k];
        for &a in &assign {
            counts[a] += 1;
        }
        // Round each centre's values to the closest value the feature takes in the data.
        for c in 0..k {
            for j in 0..f {
                let target = centres[c * f + j];
                let closest = (0..n)
                    .map(|i| self.rows[i * f + j])
                    .min_by(|a, b| (a - target).abs().total_cmp(&(b - target).abs()))
                    .unwrap_or(target);
                centres[c * f + j] = closest;
            }
        }
        let kept: Vec<usize> = (0..k).filter(|&c| counts[c] > 0).collect();
        let rows = kept.iter().flat_map(|&c| centres[c * f..(c + 1) * f].iter().copied()).collect();
        let weights = kept.iter().map(|&c| counts[c] as f64 / n as f64).collect();
        Ok(Background { features: f, rows, weights })
    }
}

/// `(features, rows)` of a JSON (`.json`) or CSV (anything else) file.
fn parse(path: &Path, text: &str) -> Result<(usize, Vec<f64>), String> {
    let json = path.extension().is_some_and(|e| e.eq_ignore_ascii_case("json"));
    let rows: Vec<Vec<f64>> = if json {
        let doc: Vec<Vec<Option<f64>>> = serde_json::from_str(text)
            .map_err(|e| format!("expected a JSON array of rows of numbers: {e}"))?;
        doc.into_iter().map(|r| r.into_iter().map(|v| v.unwrap_or(f64::NAN)).collect()).collect()
    } else {
        let mut rows = Vec::new();
        for (i, line) in text.lines().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            let values: Result<Vec<f64>, _> = line
                .split(',')
                .map(|v| match v.trim() {
                    "" => Ok(f64::NAN),
                    v => v.parse::<f64>(),
                })
                .collect();
            match values {
                Ok(v) => rows.push(v),
                // A header.
                Err(_) if rows.is_empty() && i == 0 => {}
                Err(_) => return Err(format!("line {}: not a row of numbers", i + 1)),
            }
        }
        rows
    };
    let features = rows.first().map(Vec::len).ok_or("the file has no rows")?;
    if let Some((i, r)) = rows.iter().enumerate().find(|(_, r)| r.len() != features) {
        return Err(format!("row {i} has {} values, row 0 has {features}", r.len()));
    }
    Ok((features, rows.concat()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_json_and_csv_rows() {
        let (f, rows) = parse(Path::new("b.json"), "[[1, 2], [3, null]]").unwrap();
        assert_eq!(f, 2);
        assert_eq!(rows[..3], [1.0, 2.0, 3.0]);
        assert!(rows[3].is_nan());
        let (f, rows) = parse(Path::new("b.csv"), "a,b,c\n1,2,3\n\n4,,6\n").unwrap();
        assert_eq!(f, 3);
        assert_eq!(rows.len(), 6);
        assert!(rows[4].is_nan());
        let e = parse(Path::new("b.csv"), "1,2\n3\n").unwrap_err();
        assert!(e.contains("row 1 has 1 values"), "{e}");
        let e = parse(Path::new("b.csv"), "1,2\nx,y\n").unwrap_err();
        assert!(e.contains("line 2"), "{e}");
        assert!(parse(Path::new("b.json"), "{}").is_err());
    }

    #[test]
    fn kmeans_finds_weighted_clusters_and_sampling_is_seeded() {
        // Two tight clusters of 6 and 2 points.
        let mut rows = Vec::new();
        for i in 0..6 {
            rows.extend([10.0 + f64::from(i) * 0.01, 0.0]);
        }
        rows.extend([-5.0, 1.0, -5.02, 1.0]);
        let all = Background::uniform(2, rows).unwrap();
        let km = all.kmeans(2, 7).unwrap();
        let mut got: Vec<(f64, f64)> = (0..2).map(|c| (km.row(c)[0], km.weights[c])).collect();
        got.sort_by(|a, b| a.0.total_cmp(&b.0));
        assert_eq!(got[0].1, 0.25);
        assert_eq!(got[1].1, 0.75);
        // Centres are moved onto values of the data.
        assert!(all.rows.contains(&got[0].0) && all.rows.contains(&got[1].0));
        let a = all.sample(3, 1);
        assert_eq!(a, all.sample(3, 1));
        assert_eq!(a.len(), 3);
        assert_eq!(all.sample(100, 1), all);
    }
}
