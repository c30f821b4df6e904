//! Calibrated thresholds for monitors that must not cry wolf: B pairs of
//! disjoint random subsets of the reference, each the size of a monitoring
//! window, the statistic on each pair, threshold = mean + k x std
//! (population std, numpy's default `ddof=0`). Everything needed to
//! recompute the threshold is kept in the [`Baseline`] file.

use ndarray::{Array2, ArrayView2, Axis};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::error::{invalid, MonitorError, Result};
use crate::mmd::{mmd2_unbiased, Bandwidth, Real};
use crate::psi::{PsiConfig, ReferenceBins};
use crate::rng::SplitMix64;

/// Calibration settings: `pairs` = B (default 50), `k` (default 2), the
/// monitoring `window` size and the seed.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct CalibrationConfig {
    pub pairs: usize,
    pub k: f64,
    pub window: usize,
    pub seed: u64,
}

impl CalibrationConfig {
    pub fn new(window: usize) -> Self {
        Self {
            pairs: 50,
            k: 2.0,
            window,
            seed: 0,
        }
    }
}

/// The null distribution drawn from the reference and the threshold derived from it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NullCalibration {
    pub config: CalibrationConfig,
    pub null_statistics: Vec<f64>,
    pub mean: f64,
    pub std: f64,
    pub threshold: f64,
}

impl NullCalibration {
    /// Recomputes mean, std and threshold from the stored statistics.
    pub fn from_statistics(config: CalibrationConfig, null_statistics: Vec<f64>) -> Self {
        let b = null_statistics.len() as f64;
        let mean = null_statistics.iter().sum::<f64>() / b;
        let var = null_statistics
            .iter()
            .map(|v| (v - mean) * (v - mean))
            .sum::<f64>()
            / b;
        let std = var.sqrt();
        Self {
            config,
            null_statistics,
            mean,
            std,
            threshold: mean + config.k * std,
        }
    }
}

/// The index pairs (X_b, Y_b) of the calibration, drawn with the seed.
pub fn calibration_splits(
    n_reference: usize,
    config: &CalibrationConfig,
) -> Result<Vec<(Vec<usize>, Vec<usize>)>> {
    if config.pairs < 2 {
        return Err(invalid(
            "pairs",
            "need at least 2 subset pairs for a standard deviation",
        ));
    }
    if !(config.k.is_finite() && config.k >= 0.0) {
        return Err(invalid(
            "k",
            format!("must be finite and >= 0, got {}", config.k),
        ));
    }
    if config.window < 2 {
        return Err(invalid("window", "must be at least 2 rows"));
    }
    if 2 * config.window > n_reference {
        return Err(MonitorError::TooFew {
            what: "reference (two disjoint windows per calibration pair)".into(),
            needed: 2 * config.window,
            got: n_reference,
        });
    }
    let mut rng = SplitMix64::new(config.seed);
    Ok((0..config.pairs)
        .map(|_| {
            let idx = rng.sample_indices(n_reference, 2 * config.window);
            (idx[..config.window].to_vec(), idx[config.window..].to_vec())
        })
        .collect())
}

/// Calibrates any two-sample statistic given by index sets into the reference.
pub fn calibrate<F>(
    n_reference: usize,
    config: CalibrationConfig,
    statistic: F,
) -> Result<NullCalibration>
where
    F: Fn(&[usize], &[usize]) -> Result<f64> + Sync,
{
    let splits = calibration_splits(n_reference, &config)?;
    let stats: Vec<f64> = splits
        .par_iter()
        .map(|(a, b)| statistic(a, b))
        .collect::<Result<_>>()?;
    Ok(NullCalibration::from_statistics(config, stats))
}

/// Calibrates MMD^2_u at a fixed bandwidth.
pub fn calibrate_mmd<T: Real>(
    reference: ArrayView2<T>,
    sigma2: f64,
    config: CalibrationConfig,
) -> Result<NullCalibration> {
    calibrate(reference.nrows(), config, |a, b| {
        let x: Array2<T> = reference.select(Axis(0), a);
        let y: Array2<T> = reference.select(Axis(0), b);
        mmd2_unbiased(x.view(), y.view(), sigma2)
    })
}

/// Calibrates PSI: X_b plays the reference (its own quantile bins), Y_b the window.
pub fn calibrate_psi(
    reference: &[f64],
    psi: PsiConfig,
    config: CalibrationConfig,
) -> Result<NullCalibration> {
    calibrate(reference.len(), config, |a, b| {
        let x: Vec<f64> = a.iter().map(|&i| reference[i]).collect();
        let y: Vec<f64> = b.iter().map(|&i| reference[i]).collect();
        ReferenceBins::fit(&x, psi)?.psi(&y)
    })
}

/// One monitored quantity in a baseline file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ColumnBaseline {
    /// Column name; `None` for a whole 2-D array.
    pub column: Option<String>,
    /// "psi", "mmd", "chi2", ...
    pub method: String,
    pub calibration: NullCalibration,
    /// PSI: the full reference's bins, for scoring windows from counts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bins: Option<ReferenceBins>,
    /// MMD: the bandwidth used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bandwidth: Option<Bandwidth>,
}

/// What `bridgeml drift calibrate` writes and the server reuses.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Baseline {
    pub format_version: u32,
    pub reference_rows: usize,
    pub columns: Vec<ColumnBaseline>,
}

impl ColumnBaseline {
    /// PSI of a numeric column: the calibrated null of window-vs-window PSI
    /// and the full reference's bins (windows are scored against them).
    pub fn psi(
        column: Option<String>,
        reference: &[f64],
        psi: PsiConfig,
        config: CalibrationConfig,
    ) -> Result<ColumnBaseline> {
        Ok(ColumnBaseline {
            column,
            method: "psi".into(),
            calibration: calibrate_psi(reference, psi, config)?,
            bins: Some(ReferenceBins::fit(reference, psi)?),
            bandwidth: None,
        })
    }

    /// Unbiased MMD^2 of a 2-D array (e.g. embeddings): the bandwidth is
    /// `sigma2` when given, else the median heuristic (seeded by `config.seed`).
    pub fn mmd<T: Real>(
        reference: ArrayView2<'_, T>,
        sigma2: Option<f64>,
        config: CalibrationConfig,
    ) -> Result<ColumnBaseline> {
        let bandwidth = match sigma2 {
            Some(sigma2) => Bandwidth {
                sigma2,
                median_sq_distance: None,
                rows_used: 0,
                subsampled: false,
            },
            None => crate::mmd::median_heuristic(reference, config.seed)?,
        };
        Ok(ColumnBaseline {
            column: None,
            method: "mmd".into(),
            calibration: calibrate_mmd(reference, bandwidth.sigma2, config)?,
            bins: None,
            bandwidth: Some(bandwidth),
        })
    }
}

impl Baseline {
    pub const FORMAT_VERSION: u32 = 1;

    /// The stored calibration of (column, method), if any.
    pub fn find(&self, column: Option<&str>, method: &str) -> Option<&ColumnBaseline> {
        self.columns
            .iter()
            .find(|c| c.column.as_deref() == column && c.method == method)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn threshold_is_mean_plus_k_std_and_reproducible() {
        let r: Vec<f64> = (0..1000).map(|i| ((i * 7919) % 1000) as f64).collect();
        let cfg = CalibrationConfig::new(100);
        let a = calibrate_psi(&r, PsiConfig::default(), cfg).unwrap();
        let b = calibrate_psi(&r, PsiConfig::default(), cfg).unwrap();
        assert_eq!(a, b);
        assert_eq!(a.null_statistics.len(), 50);
        let again = NullCalibration::from_statistics(cfg, a.null_statistics.clone());
        assert_eq!(again.threshold, a.mean + 2.0 * a.std);
        assert!(matches!(
            calibrate_psi(&r[..150], PsiConfig::default(), cfg),
            Err(MonitorError::TooFew { .. })
        ));
    }
}
