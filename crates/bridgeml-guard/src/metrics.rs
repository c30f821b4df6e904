//! OOD detection metrics on two score sets (higher score = more OOD).
//!
//! Definitions (OOD is the positive class for AUROC, AUPR-Out and FPR@95TPR,
//! as in OpenOOD v1.5 and pytorch-ood):
//!
//! - **AUROC**: `P(s_ood > s_id) + 0.5 * P(s_ood == s_id)`, the Mann–Whitney
//!   U statistic divided by `n_id * n_ood`, with half credit for ties. Equal
//!   to `sklearn.metrics.roc_auc_score(is_ood, s)`.
//! - **AUPR-In**: average precision with in-distribution as positive and
//!   `-s` as the score; **AUPR-Out**: OOD as positive and `s` as the score.
//!   Average precision is the step-wise sum
//!   `sum_n (R_n - R_{n-1}) P_n` over distinct thresholds, exactly
//!   `sklearn.metrics.average_precision_score` (what pytorch-ood's
//!   torchmetrics-based `binary_average_precision` computes). OpenOOD instead
//!   integrates `precision_recall_curve` with the trapezoidal rule
//!   (`sklearn.metrics.auc`), which can differ in the third decimal.
//! - **FPR@95TPR**: at the highest threshold `t` where at least 95% of OOD
//!   samples have `s >= t` (are detected), the fraction of in-distribution
//!   samples with `s >= t` (wrongly flagged). Equal to
//!   `fpr[argmax(tpr >= 0.95)]` of `sklearn.metrics.roc_curve(is_ood, s,
//!   drop_intermediate=False)` (OpenOOD and pytorch-ood use the same rule; with
//!   sklearn's default `drop_intermediate=True` a collinear point on a tie can
//!   be skipped, which only changes the value in rare tie patterns).
//! - **ID pass rate** / **OOD pass rate**: the fraction of in-distribution /
//!   OOD samples with `s <= threshold` at the calibrated threshold. The OOD pass
//!   rate at a threshold calibrated for TPR 0.95 is the "FPR at 95% TPR with
//!   in-distribution as positive" of the ODIN / Hendrycks papers.

use serde::{Deserialize, Serialize};

use crate::{GuardError, Result};

/// The metrics of [`evaluate`]; all fractions in `[0, 1]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Metrics {
    pub auroc: f64,
    pub aupr_in: f64,
    pub aupr_out: f64,
    pub fpr_at_95_tpr: f64,
    /// Fraction of in-distribution samples that pass at the threshold.
    pub id_pass_rate: f64,
    /// Fraction of OOD samples that pass (are not caught) at the threshold.
    pub ood_pass_rate: f64,
    pub n_id: usize,
    pub n_ood: usize,
}

fn check(scores: &[f64], what: &str) -> Result<()> {
    if scores.is_empty() {
        return Err(GuardError::Empty {
            what: what.to_string(),
        });
    }
    if let Some((row, &value)) = scores.iter().enumerate().find(|(_, v)| !v.is_finite()) {
        return Err(GuardError::NonFinite {
            what: what.to_string(),
            row,
            col: 0,
            value,
        });
    }
    Ok(())
}

/// Groups of equal scores in descending score order: `(n_id, n_ood)` per distinct value.
fn descending_groups(id: &[f64], ood: &[f64]) -> Vec<(usize, usize)> {
    let mut all: Vec<(f64, bool)> = id
        .iter()
        .map(|&s| (s, false))
        .chain(ood.iter().map(|&s| (s, true)))
        .collect();
    all.sort_unstable_by(|a, b| b.0.total_cmp(&a.0));
    let mut groups: Vec<(usize, usize)> = Vec::new();
    let mut prev = f64::NAN;
    for (s, is_ood) in all {
        // -0.0 and 0.0 compare equal, as in numpy.
        #[allow(clippy::float_cmp)]
        if groups.is_empty() || s != prev {
            groups.push((0, 0));
            prev = s;
        }
        let g = groups.last_mut().expect("pushed above");
        if is_ood {
            g.1 += 1;
        } else {
            g.0 += 1;
        }
    }
    groups
}

/// AUROC with OOD as positive: Mann–Whitney U with half-credit ties.
pub fn auroc(id: &[f64], ood: &[f64]) -> Result<f64> {
    check(id, "in-distribution scores")?;
    check(ood, "OOD scores")?;
    Ok(auroc_groups(
        &descending_groups(id, ood),
        id.len(),
        ood.len(),
    ))
}

fn auroc_groups(groups: &[(usize, usize)], n_id: usize, n_ood: usize) -> f64 {
    // Walk from the lowest score up: each OOD sample earns one point per ID
    // sample strictly below it and half a point per ID sample tied with it.
    // Counts stay integral (doubled) so the sum is exact.
    let mut id_below: u128 = 0;
    let mut twice_u: u128 = 0;
    for &(gi, go) in groups.iter().rev() {
        twice_u += go as u128 * (2 * id_below + gi as u128);
        id_below += gi as u128;
    }
    twice_u as f64 / (2.0 * n_id as f64 * n_ood as f64)
}

/// `sklearn.metrics.average_precision_score` given groups of `(positives, negatives)`
/// in descending order of the positive-class score.
fn average_precision(groups: impl Iterator<Item = (usize, usize)>, n_pos: usize) -> f64 {
    let mut tp = 0usize;
    let mut fp = 0usize;
    let mut prev_recall = 0.0;
    let mut ap = 0.0;
    for (p, n) in groups {
        tp += p;
        fp += n;
        let recall = tp as f64 / n_pos as f64;
        let precision = tp as f64 / (tp + fp) as f64;
        ap += (recall - prev_recall) * precision;
        prev_recall = recall;
    }
    ap
}

/// FPR (fraction of ID flagged) at the first descending threshold where TPR (fraction of OOD flagged) >= `tpr`.
fn fpr_at_tpr_groups(groups: &[(usize, usize)], n_id: usize, n_ood: usize, tpr: f64) -> f64 {
    let mut tp = 0usize;
    let mut fp = 0usize;
    for &(gi, go) in groups {
        tp += go;
        fp += gi;
        if tp as f64 / n_ood as f64 >= tpr {
            return fp as f64 / n_id as f64;
        }
    }
    1.0
}

/// FPR at a TPR (OOD as positive); see the module docs.
pub fn fpr_at_tpr(id: &[f64], ood: &[f64], tpr: f64) -> Result<f64> {
    crate::calibrate::validate_tpr(tpr)?;
    check(id, "in-distribution scores")?;
    check(ood, "OOD scores")?;
    Ok(fpr_at_tpr_groups(
        &descending_groups(id, ood),
        id.len(),
        ood.len(),
        tpr,
    ))
}

/// All metrics of the module docs, with pass rates at `threshold`.
pub fn evaluate(id: &[f64], ood: &[f64], threshold: f64) -> Result<Metrics> {
    check(id, "in-distribution scores")?;
    check(ood, "OOD scores")?;
    let (n_id, n_ood) = (id.len(), ood.len());
    let groups = descending_groups(id, ood);
    let aupr_out = average_precision(groups.iter().map(|&(i, o)| (o, i)), n_ood);
    let aupr_in = average_precision(groups.iter().rev().copied(), n_id);
    Ok(Metrics {
        auroc: auroc_groups(&groups, n_id, n_ood),
        aupr_in,
        aupr_out,
        fpr_at_95_tpr: fpr_at_tpr_groups(&groups, n_id, n_ood, 0.95),
        id_pass_rate: id.iter().filter(|&&s| s <= threshold).count() as f64 / n_id as f64,
        ood_pass_rate: ood.iter().filter(|&&s| s <= threshold).count() as f64 / n_ood as f64,
        n_id,
        n_ood,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn perfect_and_inverted_and_tied() {
        let id = [0.0, 1.0, 2.0];
        let ood = [3.0, 4.0];
        let m = evaluate(&id, &ood, 2.0).unwrap();
        assert_eq!(m.auroc, 1.0);
        assert_eq!(m.aupr_in, 1.0);
        assert_eq!(m.aupr_out, 1.0);
        assert_eq!(m.fpr_at_95_tpr, 0.0);
        assert_eq!(m.id_pass_rate, 1.0);
        assert_eq!(m.ood_pass_rate, 0.0);
        assert_eq!(auroc(&ood, &id).unwrap(), 0.0);
        assert_eq!(auroc(&[1.0, 1.0], &[1.0]).unwrap(), 0.5);
        // One OOD above one ID, tied with the other: (1 + 0.5) / 2.
        assert_eq!(auroc(&[0.0, 1.0], &[1.0]).unwrap(), 0.75);
    }

    #[test]
    fn empty_or_nan_is_error() {
        assert!(evaluate(&[], &[1.0], 0.0).is_err());
        assert!(evaluate(&[1.0], &[], 0.0).is_err());
        assert!(evaluate(&[1.0], &[f64::INFINITY], 0.0).is_err());
    }
}
