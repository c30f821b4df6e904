//! Mahalanobis distance to class-conditional means with a shared, shrunk
//! covariance (Lee et al., 2018, without input preprocessing).
//!
//! Fitting: class means `mu_c` of the reference features; the pooled
//! within-class covariance `S = (1/n) sum_i (x_i - mu_{y_i})(x_i - mu_{y_i})^T`
//! (maximum-likelihood, as `sklearn.covariance.EmpiricalCovariance`); then
//! shrinkage towards a scaled identity, `Sigma = (1 - a) S + a * (tr S / d) I`,
//! with `a` either fixed or the Ledoit–Wolf estimate (identical to
//! `sklearn.covariance.ledoit_wolf(x - mu_y, assume_centered=True)`). The
//! shrinkage keeps `Sigma` positive definite even when feature dimensions are
//! constant (dead ReLUs) or `d > n`. The precision `Sigma^-1` comes from a
//! Cholesky factorization, never an explicit general inverse.
//!
//! Score: `min_c (x - mu_c)^T Sigma^-1 (x - mu_c)`, higher = more OOD
//! (pytorch-ood's `Mahalanobis` returns the same quantity).

use ndarray::{s, Array2, ArrayView2};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::scores::validate_finite;
use crate::{GuardError, Result};

/// How the shared covariance is regularized.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub enum Shrinkage {
    /// Ledoit–Wolf optimal shrinkage intensity (default).
    #[default]
    LedoitWolf,
    /// A fixed intensity `a` in `[0, 1]`.
    Fixed(f64),
}

/// Reference statistics of a fitted Mahalanobis scorer, as stored in a guard file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MahalanobisStats {
    /// Class label of each row of `means` (classes absent from the reference set are skipped).
    pub classes: Vec<usize>,
    /// Class means, `[classes, d]`.
    pub means: Vec<Vec<f64>>,
    /// Precision matrix `Sigma^-1`, `[d, d]`.
    pub precision: Vec<Vec<f64>>,
    /// Shrinkage intensity that was applied.
    pub shrinkage: f64,
    /// Number of reference rows the statistics were fitted on.
    pub n_reference: usize,
}

/// Lower Cholesky factor `L` (`A = L L^T`) of a symmetric positive definite matrix.
pub fn cholesky(a: &Array2<f64>) -> Option<Array2<f64>> {
    let d = a.nrows();
    let mut l = Array2::<f64>::zeros((d, d));
    for j in 0..d {
        let mut s = a[[j, j]];
        for k in 0..j {
            s -= l[[j, k]] * l[[j, k]];
        }
        if !(s > 0.0 && s.is_finite()) {
            return None;
        }
        let ljj = s.sqrt();
        l[[j, j]] = ljj;
        for i in (j + 1)..d {
            let mut s = a[[i, j]];
            for k in 0..j {
                s -= l[[i, k]] * l[[j, k]];
            }
            l[[i, j]] = s / ljj;
        }
    }
    Some(l)
}

/// Inverse of a lower-triangular matrix by forward substitution.
fn lower_inverse(l: &Array2<f64>) -> Array2<f64> {
    let d = l.nrows();
    let mut inv = Array2::<f64>::zeros((d, d));
    for col in 0..d {
        inv[[col, col]] = 1.0 / l[[col, col]];
        for i in (col + 1)..d {
            let mut s = 0.0;
            for k in col..i {
                s -= l[[i, k]] * inv[[k, col]];
            }
            inv[[i, col]] = s / l[[i, i]];
        }
    }
    inv
}

fn to_f64(x: ArrayView2<'_, f32>) -> Array2<f64> {
    x.mapv(f64::from)
}

/// Fits class means and the shrunk shared covariance; returns the stats with its precision.
pub fn fit(
    features: ArrayView2<'_, f32>,
    labels: &[usize],
    shrinkage: Shrinkage,
) -> Result<MahalanobisStats> {
    let (n, d) = features.dim();
    if n == 0 || d == 0 {
        return Err(GuardError::Empty {
            what: "reference features".into(),
        });
    }
    if labels.len() != n {
        return Err(GuardError::ShapeMismatch {
            what: "class labels of the reference features".into(),
            expected: format!("{n} labels"),
            got: format!("{}", labels.len()),
        });
    }
    if let Shrinkage::Fixed(a) = shrinkage {
        if !(0.0..=1.0).contains(&a) {
            return Err(GuardError::InvalidParameter {
                name: "shrinkage",
                value: a.to_string(),
                reason: "must lie in [0, 1]".into(),
            });
        }
    }
    validate_finite(features, "reference features")?;
    let x = to_f64(features);
    let n_classes = labels.iter().max().map_or(0, |m| m + 1);
    let mut sums = Array2::<f64>::zeros((n_classes, d));
    let mut counts = vec![0usize; n_classes];
    for (row, &y) in x.outer_iter().zip(labels) {
        counts[y] += 1;
        let mut s = sums.row_mut(y);
        s += &row;
    }
    let classes: Vec<usize> = (0..n_classes).filter(|&c| counts[c] > 0).collect();
    let mut means = Array2::<f64>::zeros((n_classes, d));
    for &c in &classes {
        let m = &sums.row(c) / counts[c] as f64;
        means.row_mut(c).assign(&m);
    }
    // Centre each row on its class mean.
    let mut xc = x;
    for (mut row, &y) in xc.outer_iter_mut().zip(labels) {
        row -= &means.row(y);
    }
    // S = Xc^T Xc / n, accumulated over row chunks in parallel.
    let chunk = 2048;
    let starts: Vec<usize> = (0..n).step_by(chunk).collect();
    let gram = starts
        .par_iter()
        .map(|&r0| {
            let c = xc.slice(s![r0..(r0 + chunk).min(n), ..]);
            c.t().dot(&c)
        })
        .reduce(|| Array2::<f64>::zeros((d, d)), |a, b| a + b);
    let s = gram / n as f64;
    let mu = s.diag().sum() / d as f64;
    if mu.is_nan() || mu <= 0.0 {
        return Err(GuardError::Degenerate(
            "every feature has zero within-class variance".into(),
        ));
    }
    let a = match shrinkage {
        Shrinkage::Fixed(a) => a,
        Shrinkage::LedoitWolf => ledoit_wolf_shrinkage(&xc, &s, mu),
    };
    let mut sigma = s * (1.0 - a);
    for i in 0..d {
        sigma[[i, i]] += a * mu;
    }
    // A ridge that grows only if the factorization fails (a = 0 on rank-deficient data).
    let mut ridge = 0.0;
    let l = loop {
        let mut m = sigma.clone();
        for i in 0..d {
            m[[i, i]] += ridge;
        }
        if let Some(l) = cholesky(&m) {
            break l;
        }
        ridge = if ridge == 0.0 {
            1e-10 * mu
        } else {
            ridge * 10.0
        };
        if ridge > mu {
            return Err(GuardError::Degenerate(
                "the shared covariance is not positive definite even with a ridge".into(),
            ));
        }
    };
    let linv = lower_inverse(&l);
    let precision = linv.t().dot(&linv);
    Ok(MahalanobisStats {
        means: classes.iter().map(|&c| means.row(c).to_vec()).collect(),
        classes,
        precision: precision.outer_iter().map(|r| r.to_vec()).collect(),
        shrinkage: a,
        n_reference: n,
    })
}

/// The Ledoit–Wolf shrinkage intensity of centred data `xc` with covariance `s`
/// (`(1/n) Xc^T Xc`) and `mu = tr(s) / d`, as `sklearn.covariance.ledoit_wolf_shrinkage`.
fn ledoit_wolf_shrinkage(xc: &Array2<f64>, s: &Array2<f64>, mu: f64) -> f64 {
    let (n, d) = xc.dim();
    if n == 1 {
        return 0.0;
    }
    let (nf, df) = (n as f64, d as f64);
    // beta_ = sum_k ||x_k||^4 ; delta_ = ||S||_F^2
    let sum_norm4: f64 = xc
        .outer_iter()
        .map(|r| {
            let q = r.dot(&r);
            q * q
        })
        .sum();
    let frob2: f64 = s.iter().map(|v| v * v).sum();
    let beta = (sum_norm4 / nf - frob2) / (nf * df);
    // delta = ||S - mu I||_F^2 / d
    let delta = (frob2 - 2.0 * mu * s.diag().sum() + df * mu * mu) / df;
    let beta = beta.min(delta);
    if beta == 0.0 || delta == 0.0 {
        0.0
    } else {
        (beta / delta).clamp(0.0, 1.0)
    }
}

/// A fitted Mahalanobis scorer, ready to score batches.
#[derive(Debug, Clone)]
pub struct MahalanobisScorer {
    classes: Vec<usize>,
    /// `W` with `W W^T = Sigma^-1` (lower Cholesky factor of the precision).
    whiten: Array2<f64>,
    /// Class means mapped by `W^T`, `[classes, d]`.
    white_means: Array2<f64>,
}

impl MahalanobisScorer {
    /// Builds the scorer from stored statistics (checks shapes and positive definiteness).
    pub fn new(stats: &MahalanobisStats) -> Result<Self> {
        let d = stats.precision.len();
        let k = stats.means.len();
        if d == 0 || k == 0 || stats.classes.len() != k {
            return Err(GuardError::Degenerate(
                "Mahalanobis statistics are empty or inconsistent".into(),
            ));
        }
        let bad_shape = stats.precision.iter().any(|r| r.len() != d)
            || stats.means.iter().any(|r| r.len() != d);
        if bad_shape {
            return Err(GuardError::ShapeMismatch {
                what: "Mahalanobis statistics".into(),
                expected: format!("means and precision with {d} columns"),
                got: "rows of other lengths".into(),
            });
        }
        let p = Array2::from_shape_fn((d, d), |(i, j)| stats.precision[i][j]);
        let means = Array2::from_shape_fn((k, d), |(i, j)| stats.means[i][j]);
        let whiten = cholesky(&p).ok_or_else(|| {
            GuardError::Degenerate("the stored precision matrix is not positive definite".into())
        })?;
        let white_means = means.dot(&whiten);
        Ok(MahalanobisScorer {
            classes: stats.classes.clone(),
            whiten,
            white_means,
        })
    }

    /// Feature dimension.
    pub fn dim(&self) -> usize {
        self.whiten.nrows()
    }

    /// Minimum squared Mahalanobis distance and the nearest class of each row.
    pub fn score_with_class(&self, features: ArrayView2<'_, f32>) -> Result<Vec<(f64, usize)>> {
        let (n, d) = features.dim();
        if n == 0 {
            return Err(GuardError::Empty {
                what: "features".into(),
            });
        }
        if d != self.dim() {
            return Err(GuardError::ShapeMismatch {
                what: "feature columns".into(),
                expected: self.dim().to_string(),
                got: d.to_string(),
            });
        }
        validate_finite(features, "features")?;
        let chunk = 1024;
        let starts: Vec<usize> = (0..n).step_by(chunk).collect();
        let rows: Vec<Vec<(f64, usize)>> = starts
            .par_iter()
            .map(|&r0| {
                let c = features.slice(s![r0..(r0 + chunk).min(n), ..]);
                // (x - mu)^T W W^T (x - mu) = || W^T x - W^T mu ||^2, rows: x W - mu W.
                let w = to_f64(c).dot(&self.whiten);
                w.outer_iter()
                    .map(|wr| {
                        let mut best = (f64::INFINITY, 0usize);
                        for (ci, m) in self.white_means.outer_iter().enumerate() {
                            let dist: f64 = wr
                                .iter()
                                .zip(m.iter())
                                .map(|(a, b)| (a - b) * (a - b))
                                .sum();
                            if dist < best.0 {
                                best = (dist, self.classes[ci]);
                            }
                        }
                        best
                    })
                    .collect()
            })
            .collect();
        Ok(rows.into_iter().flatten().collect())
    }

    /// Minimum squared Mahalanobis distance of each row (higher = more OOD).
    pub fn score(&self, features: ArrayView2<'_, f32>) -> Result<Vec<f64>> {
        Ok(self
            .score_with_class(features)?
            .into_iter()
            .map(|(s, _)| s)
            .collect())
    }
}

/// Labels as class indices from a float array (the `.npy` route); rejects
/// negative, fractional or non-finite values.
pub fn labels_from_f32(values: &[f32]) -> Result<Vec<usize>> {
    values
        .iter()
        .enumerate()
        .map(|(i, &v)| {
            if v.is_finite() && v >= 0.0 && v.fract() == 0.0 && v < 1e7 {
                Ok(v as usize)
            } else {
                Err(GuardError::InvalidParameter {
                    name: "labels",
                    value: format!("{v} (row {i})"),
                    reason: "class labels must be non-negative integers".into(),
                })
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    #[test]
    fn cholesky_round_trip() {
        let a = array![[4.0, 2.0, 0.4], [2.0, 5.0, 1.0], [0.4, 1.0, 3.0]];
        let l = cholesky(&a).unwrap();
        let back = l.dot(&l.t());
        for (x, y) in back.iter().zip(a.iter()) {
            assert!((x - y).abs() < 1e-12);
        }
        let inv = lower_inverse(&l);
        let p = inv.t().dot(&inv);
        let id = a.dot(&p);
        for i in 0..3 {
            for j in 0..3 {
                let e = if i == j { 1.0 } else { 0.0 };
                assert!((id[[i, j]] - e).abs() < 1e-12);
            }
        }
        assert!(cholesky(&array![[1.0, 2.0], [2.0, 1.0]]).is_none());
    }

    #[test]
    fn constant_dimension_is_regularized() {
        // Second feature constant: S is singular, shrinkage keeps it invertible.
        let f = array![[0.0f32, 1.0], [1.0, 1.0], [2.0, 1.0], [3.0, 1.0]];
        let stats = fit(f.view(), &[0, 0, 1, 1], Shrinkage::LedoitWolf).unwrap();
        let sc = MahalanobisScorer::new(&stats).unwrap();
        let s = sc.score(array![[0.5f32, 1.0], [0.5, 5.0]].view()).unwrap();
        assert!(s[0] < s[1]);
        assert!(s.iter().all(|v| v.is_finite()));
        // Fixed 0 shrinkage on singular data falls back to a growing ridge.
        assert!(fit(f.view(), &[0, 0, 1, 1], Shrinkage::Fixed(0.0)).is_ok());
        let zero = array![[1.0f32, 1.0], [1.0, 1.0]];
        assert!(matches!(
            fit(zero.view(), &[0, 0], Shrinkage::LedoitWolf),
            Err(GuardError::Degenerate(_))
        ));
    }
}
