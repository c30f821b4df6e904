//! Threshold calibration on in-distribution scores, with a bootstrap
//! confidence interval.
//!
//! A sample *passes* (is treated as in-distribution) when `score <= threshold`.
//! The threshold for a requested TPR is the empirical `tpr`-quantile of the
//! in-distribution scores by the inverted-CDF rule (`numpy.quantile(s, tpr,
//! method="inverted_cdf")`): the `ceil(tpr * n)`-th smallest score, so that at
//! least `tpr` of the calibration samples pass (more when scores tie).

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::{GuardError, Result};

/// Bootstrap settings of [`calibrate`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CalibrationOptions {
    /// Number of bootstrap resamples (0 disables the interval).
    pub n_bootstrap: usize,
    /// Two-sided confidence level of the interval, in (0, 1).
    pub ci_level: f64,
    /// Seed of the resampling generator; the same seed gives the same interval.
    pub seed: u64,
}

impl Default for CalibrationOptions {
    fn default() -> Self {
        CalibrationOptions {
            n_bootstrap: 1000,
            ci_level: 0.95,
            seed: 0,
        }
    }
}

/// A calibrated threshold and its bootstrap percentile interval.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Calibration {
    /// Scores `<=` this pass as in-distribution.
    pub threshold: f64,
    /// Requested fraction of in-distribution samples that pass.
    pub tpr: f64,
    /// Fraction of the calibration samples that actually pass (>= `tpr`).
    pub achieved_tpr: f64,
    /// Number of calibration samples.
    pub n: usize,
    /// Bootstrap percentile interval of the threshold.
    pub ci: ConfidenceInterval,
}

/// Bootstrap percentile confidence interval of the threshold.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConfidenceInterval {
    pub low: f64,
    pub high: f64,
    pub level: f64,
    pub n_bootstrap: usize,
    pub seed: u64,
}

/// Validates a TPR: finite and strictly between 0 and 1.
pub fn validate_tpr(tpr: f64) -> Result<()> {
    if tpr.is_finite() && tpr > 0.0 && tpr < 1.0 {
        Ok(())
    } else {
        Err(GuardError::TprOutOfRange { tpr })
    }
}

fn validate_scores(scores: &[f64], what: &str) -> Result<()> {
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

/// 0-based rank of the inverted-CDF `q`-quantile among `n` sorted values.
/// A tolerance of 1e-9 absorbs binary rounding of `q * n` (0.7 * 10 is
/// 7.000000000000001 in floating point, which must give rank 7, not 8).
fn quantile_rank(q: f64, n: usize) -> usize {
    let k = (q * n as f64 - 1e-9).ceil();
    (k.max(1.0) as usize).min(n) - 1
}

fn select_quantile(values: &mut [f64], q: f64) -> f64 {
    let r = quantile_rank(q, values.len());
    let (_, v, _) = values.select_nth_unstable_by(r, f64::total_cmp);
    *v
}

/// The threshold at which a fraction `tpr` of `id_scores` pass (`score <= threshold`).
pub fn threshold_at_tpr(id_scores: &[f64], tpr: f64) -> Result<f64> {
    validate_tpr(tpr)?;
    validate_scores(id_scores, "in-distribution calibration scores")?;
    let mut v = id_scores.to_vec();
    Ok(select_quantile(&mut v, tpr))
}

/// SplitMix64 (Steele et al., 2014): a small, fast, seedable generator;
/// enough for bootstrap resampling and identical on every platform.
#[derive(Debug, Clone)]
pub struct SplitMix64(u64);

impl SplitMix64 {
    pub fn new(seed: u64) -> Self {
        SplitMix64(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform integer in `0..n` (Lemire's multiply-shift; bias < n / 2^64).
    pub fn below(&mut self, n: usize) -> usize {
        ((u128::from(self.next_u64()) * n as u128) >> 64) as usize
    }
}

/// Calibrates the threshold at `tpr` and its bootstrap percentile interval.
///
/// Each of the `n_bootstrap` replicates resamples the scores with replacement
/// (replicate `b` uses its own generator seeded from `(seed, b)`, so the result
/// does not depend on the thread count) and recomputes the threshold; the
/// interval is the inverted-CDF `(1 - level)/2` and `(1 + level)/2` quantiles
/// of the replicate thresholds.
pub fn calibrate(id_scores: &[f64], tpr: f64, opts: CalibrationOptions) -> Result<Calibration> {
    let threshold = threshold_at_tpr(id_scores, tpr)?;
    if !(opts.ci_level.is_finite() && opts.ci_level > 0.0 && opts.ci_level < 1.0) {
        return Err(GuardError::InvalidParameter {
            name: "ci_level",
            value: opts.ci_level.to_string(),
            reason: "must lie strictly between 0 and 1".into(),
        });
    }
    let n = id_scores.len();
    let passed = id_scores.iter().filter(|&&s| s <= threshold).count();
    let (low, high) = if opts.n_bootstrap == 0 {
        (threshold, threshold)
    } else {
        let mut reps: Vec<f64> = (0..opts.n_bootstrap)
            .into_par_iter()
            .map_init(
                || Vec::with_capacity(n),
                |buf, b| {
                    let mut rng =
                        SplitMix64::new(opts.seed ^ (b as u64).wrapping_mul(0xD1B5_4A32_D192_ED03));
                    rng.next_u64();
                    buf.clear();
                    buf.extend((0..n).map(|_| id_scores[rng.below(n)]));
                    select_quantile(buf, tpr)
                },
            )
            .collect();
        let a = (1.0 - opts.ci_level) / 2.0;
        let lo = select_quantile(&mut reps, a);
        let hi = select_quantile(&mut reps, 1.0 - a);
        (lo, hi)
    };
    Ok(Calibration {
        threshold,
        tpr,
        achieved_tpr: passed as f64 / n as f64,
        n,
        ci: ConfidenceInterval {
            low,
            high,
            level: opts.ci_level,
            n_bootstrap: opts.n_bootstrap,
            seed: opts.seed,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantile_rank_handles_float_rounding() {
        assert_eq!(quantile_rank(0.7, 10), 6);
        assert_eq!(quantile_rank(0.95, 100), 94);
        assert_eq!(quantile_rank(0.951, 100), 95);
        assert_eq!(quantile_rank(0.01, 10), 0);
        assert_eq!(quantile_rank(0.999, 10), 9);
    }

    #[test]
    fn threshold_passes_requested_fraction() {
        let s: Vec<f64> = (0..100).map(f64::from).collect();
        let t = threshold_at_tpr(&s, 0.95).unwrap();
        assert_eq!(t, 94.0);
        assert_eq!(s.iter().filter(|&&v| v <= t).count(), 95);
    }

    #[test]
    fn bad_inputs_are_errors() {
        assert!(matches!(
            threshold_at_tpr(&[1.0], 1.0),
            Err(GuardError::TprOutOfRange { .. })
        ));
        assert!(matches!(
            threshold_at_tpr(&[1.0], 0.0),
            Err(GuardError::TprOutOfRange { .. })
        ));
        assert!(threshold_at_tpr(&[1.0], f64::NAN).is_err());
        assert!(matches!(
            threshold_at_tpr(&[], 0.5),
            Err(GuardError::Empty { .. })
        ));
        assert!(matches!(
            threshold_at_tpr(&[1.0, f64::NAN], 0.5),
            Err(GuardError::NonFinite { row: 1, .. })
        ));
    }

    #[test]
    fn bootstrap_is_seeded_and_brackets_threshold() {
        let mut rng = SplitMix64::new(7);
        let s: Vec<f64> = (0..2000)
            .map(|_| rng.next_u64() as f64 / u64::MAX as f64)
            .collect();
        let opts = CalibrationOptions {
            n_bootstrap: 300,
            ci_level: 0.9,
            seed: 42,
        };
        let a = calibrate(&s, 0.95, opts).unwrap();
        let b = calibrate(&s, 0.95, opts).unwrap();
        assert_eq!(a, b);
        assert!(a.ci.low <= a.threshold && a.threshold <= a.ci.high);
        assert!(a.ci.high - a.ci.low < 0.05);
        assert!(a.achieved_tpr >= 0.95);
        let c = calibrate(&s, 0.95, CalibrationOptions { seed: 43, ..opts }).unwrap();
        assert_ne!((a.ci.low, a.ci.high), (c.ci.low, c.ci.high));
    }
}
