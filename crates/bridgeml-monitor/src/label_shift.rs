//! Label shift: class priors move while p(x|y) stays. Black-box shift
//! estimation (Lipton, Wang & Smola, 2018): with the validation joint
//! confusion matrix C[i][j] = P(prediction = i, label = j) and the current
//! predicted-class frequencies mu, the importance weights w_j = q(y=j)/p(y=j)
//! solve C w = mu. The solve is regularized towards "no shift":
//! w = argmin ||C w - mu||^2 + lambda ||w - 1||^2, i.e.
//! (C^T C + lambda I) w = C^T mu + lambda 1, then clipped at 0. Estimated
//! priors are q_j = w_j p_j renormalized, and the reported weights are
//! q_j / p_j (0 for a class absent from the validation labels). Intervals are
//! seeded percentile bootstraps resampling both the validation pairs and the
//! current predictions.

use serde::{Deserialize, Serialize};

use crate::error::{invalid, MonitorError, Result};
use crate::psi::quantiles_linear;
use crate::rng::SplitMix64;
use crate::univariate::{chi2_from_counts, TestResult};

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct LabelShiftConfig {
    /// Ridge towards w = 1 (default 1e-4).
    pub lambda: f64,
    /// Bootstrap replicates for the intervals (default 200; 0 disables).
    pub bootstrap: usize,
    /// Interval coverage (default 0.95).
    pub confidence: f64,
    pub seed: u64,
}

impl Default for LabelShiftConfig {
    fn default() -> Self {
        Self {
            lambda: 1e-4,
            bootstrap: 200,
            confidence: 0.95,
            seed: 0,
        }
    }
}

/// Estimates per class (indices into `classes`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LabelShiftEstimate {
    pub classes: Vec<String>,
    pub validation_priors: Vec<f64>,
    pub validation_predicted: Vec<f64>,
    pub current_predicted: Vec<f64>,
    pub estimated_priors: Vec<f64>,
    pub priors_lower: Vec<f64>,
    pub priors_upper: Vec<f64>,
    pub weights: Vec<f64>,
    pub weights_lower: Vec<f64>,
    pub weights_upper: Vec<f64>,
    /// Chi-square homogeneity of the predicted-class counts (validation vs current).
    pub predicted_shift: TestResult,
    pub n_validation: usize,
    pub n_current: usize,
    pub config: LabelShiftConfig,
}

/// Solves a small dense system by Gaussian elimination with partial pivoting.
fn solve(mut a: Vec<Vec<f64>>, mut b: Vec<f64>) -> Result<Vec<f64>> {
    let k = b.len();
    for col in 0..k {
        let piv = (col..k)
            .max_by(|&i, &j| a[i][col].abs().total_cmp(&a[j][col].abs()))
            .expect("non-empty");
        if a[piv][col].abs() < 1e-300 {
            return Err(MonitorError::Degenerate(
                "the regularized confusion system is singular; increase lambda".into(),
            ));
        }
        a.swap(col, piv);
        b.swap(col, piv);
        let (upper, lower) = a.split_at_mut(col + 1);
        let pivot_row = &upper[col];
        for (offset, row) in lower.iter_mut().enumerate() {
            let f = row[col] / pivot_row[col];
            for (x, p) in row[col..k].iter_mut().zip(&pivot_row[col..k]) {
                *x -= f * p;
            }
            b[col + 1 + offset] -= f * b[col];
        }
    }
    let mut x = vec![0.0; k];
    for r in (0..k).rev() {
        let s: f64 = (r + 1..k).map(|c| a[r][c] * x[c]).sum();
        x[r] = (b[r] - s) / a[r][r];
    }
    Ok(x)
}

/// Point estimate: (validation priors, estimated priors, weights).
fn point(
    labels: &[usize],
    preds: &[usize],
    current: &[usize],
    k: usize,
    lambda: f64,
) -> Result<(Vec<f64>, Vec<f64>, Vec<f64>)> {
    let nv = labels.len() as f64;
    let nc = current.len() as f64;
    let mut c = vec![vec![0.0; k]; k];
    let mut p = vec![0.0; k];
    for (&y, &yhat) in labels.iter().zip(preds) {
        c[yhat][y] += 1.0 / nv;
        p[y] += 1.0 / nv;
    }
    let mut mu = vec![0.0; k];
    for &yhat in current {
        mu[yhat] += 1.0 / nc;
    }
    // (C^T C + lambda I) w = C^T mu + lambda 1
    let mut a = vec![vec![0.0; k]; k];
    let mut rhs = vec![lambda; k];
    for i in 0..k {
        for j in 0..k {
            a[i][j] = (0..k).map(|r| c[r][i] * c[r][j]).sum::<f64>();
        }
        a[i][i] += lambda;
        rhs[i] += (0..k).map(|r| c[r][i] * mu[r]).sum::<f64>();
    }
    let w: Vec<f64> = solve(a, rhs)?.into_iter().map(|v| v.max(0.0)).collect();
    let mass: f64 = w.iter().zip(&p).map(|(w, p)| w * p).sum();
    if mass <= 0.0 {
        return Err(MonitorError::Degenerate(
            "every estimated class weight is 0: the current predictions are incompatible with the \
             validation confusion matrix"
                .into(),
        ));
    }
    let q: Vec<f64> = w.iter().zip(&p).map(|(w, p)| w * p / mass).collect();
    let weights = q
        .iter()
        .zip(&p)
        .map(|(q, p)| if *p > 0.0 { q / p } else { 0.0 })
        .collect();
    Ok((p, q, weights))
}

/// BBSE with bootstrap intervals. `labels`/`predictions` are validation
/// class indices (< classes.len()), `current` the current predictions.
pub fn estimate_label_shift(
    classes: Vec<String>,
    labels: &[usize],
    predictions: &[usize],
    current: &[usize],
    config: LabelShiftConfig,
) -> Result<LabelShiftEstimate> {
    let k = classes.len();
    if labels.len() != predictions.len() {
        return Err(MonitorError::DimensionMismatch {
            reference: labels.len(),
            current: predictions.len(),
        });
    }
    if labels.is_empty() {
        return Err(MonitorError::Empty {
            what: "validation predictions".into(),
        });
    }
    if current.is_empty() {
        return Err(MonitorError::Empty {
            what: "current predictions".into(),
        });
    }
    if k < 2 {
        return Err(MonitorError::Degenerate(
            "label shift needs at least 2 classes".into(),
        ));
    }
    if labels
        .iter()
        .chain(predictions)
        .chain(current)
        .any(|&c| c >= k)
    {
        return Err(invalid("class index", "out of range of the class list"));
    }
    if !(config.lambda.is_finite() && config.lambda >= 0.0) {
        return Err(invalid("lambda", "must be finite and >= 0"));
    }
    if !(config.confidence > 0.0 && config.confidence < 1.0) {
        return Err(invalid("confidence", "must be in (0, 1)"));
    }
    let (p, q, w) = point(labels, predictions, current, k, config.lambda)?;
    let mut vp = vec![0u64; k];
    let mut cp = vec![0u64; k];
    predictions.iter().for_each(|&c| vp[c] += 1);
    current.iter().for_each(|&c| cp[c] += 1);
    let predicted_shift = chi2_from_counts(&vp, &cp)?;
    let mut boot_q = vec![Vec::new(); k];
    let mut boot_w = vec![Vec::new(); k];
    let mut rng = SplitMix64::new(config.seed);
    for _ in 0..config.bootstrap {
        let vi: Vec<usize> = (0..labels.len()).map(|_| rng.below(labels.len())).collect();
        let l: Vec<usize> = vi.iter().map(|&i| labels[i]).collect();
        let pr: Vec<usize> = vi.iter().map(|&i| predictions[i]).collect();
        let cur: Vec<usize> = (0..current.len())
            .map(|_| current[rng.below(current.len())])
            .collect();
        if let Ok((_, bq, bw)) = point(&l, &pr, &cur, k, config.lambda) {
            for j in 0..k {
                boot_q[j].push(bq[j]);
                boot_w[j].push(bw[j]);
            }
        }
    }
    let alpha = (1.0 - config.confidence) / 2.0;
    let interval = |v: &mut Vec<f64>, est: f64| -> (f64, f64) {
        if v.is_empty() {
            return (est, est);
        }
        let qs = quantiles_linear(v, &[alpha, 1.0 - alpha]);
        (qs[0], qs[1])
    };
    let (mut pl, mut pu, mut wl, mut wu) = (vec![], vec![], vec![], vec![]);
    for j in 0..k {
        let (a, b) = interval(&mut boot_q[j], q[j]);
        pl.push(a);
        pu.push(b);
        let (a, b) = interval(&mut boot_w[j], w[j]);
        wl.push(a);
        wu.push(b);
    }
    let freq = |counts: &[u64], n: usize| counts.iter().map(|&c| c as f64 / n as f64).collect();
    Ok(LabelShiftEstimate {
        classes,
        validation_priors: p,
        validation_predicted: freq(&vp, labels.len()),
        current_predicted: freq(&cp, current.len()),
        estimated_priors: q,
        priors_lower: pl,
        priors_upper: pu,
        weights: w,
        weights_lower: wl,
        weights_upper: wu,
        predicted_shift,
        n_validation: labels.len(),
        n_current: current.len(),
        config,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recovers_priors_under_pure_label_shift() {
        // A classifier with 90% accuracy on 2 classes; validation priors 50/50.
        let mut rng = SplitMix64::new(1);
        let mut draw = |n: usize, prior1: f64| -> (Vec<usize>, Vec<usize>) {
            let mut y = vec![];
            let mut yh = vec![];
            for _ in 0..n {
                let c = usize::from(rng.next_f64() < prior1);
                let correct = rng.next_f64() < 0.9;
                y.push(c);
                yh.push(if correct { c } else { 1 - c });
            }
            (y, yh)
        };
        let (vy, vp) = draw(20_000, 0.5);
        let (_, cp) = draw(20_000, 0.2);
        let cfg = LabelShiftConfig {
            bootstrap: 50,
            ..Default::default()
        };
        let e = estimate_label_shift(vec!["a".into(), "b".into()], &vy, &vp, &cp, cfg).unwrap();
        assert!(
            (e.estimated_priors[1] - 0.2).abs() < 0.02,
            "{:?}",
            e.estimated_priors
        );
        assert!(
            e.priors_lower[1] <= e.estimated_priors[1]
                && e.estimated_priors[1] <= e.priors_upper[1]
        );
        assert!((e.weights[1] - 0.4).abs() < 0.06, "{:?}", e.weights);
        assert!(e.predicted_shift.p_value < 1e-6);
    }
}
