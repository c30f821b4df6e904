//! Distribution monitoring for bridgeml: watch the inputs and scores a model
//! sees in production and decide, by a policy written before launch, when to
//! act — without waiting for labels.
//!
//! This crate is pure computation (no file IO, no printing); the `bridgeml`
//! CLI and the server read data and render results.
//!
//! - [`psi`]: Population Stability Index on stored reference bins (quantile
//!   edges as numpy computes them), updatable from counts; windowed monitor.
//! - [`univariate`]: two-sample KS (exact/asymptotic as `scipy.stats.ks_2samp`),
//!   chi-square over categories (unseen categories counted), Jensen-Shannon,
//!   Wasserstein-1, Bonferroni and Benjamini-Hochberg corrections.
//! - [`mmd`]: exact unbiased MMD^2_u with a Gaussian kernel, tiled, fused and
//!   parallel (never an n x n matrix), the permutation test in one pass over
//!   the pooled kernel, the median heuristic, random Fourier features.
//! - [`calibrate`]: thresholds from the reference's own null distribution,
//!   stored in a [`Baseline`].
//! - [`label_shift`]: black-box shift estimation of current class priors.
//! - [`policy`]: the retraining trigger policy (TOML rules over metrics).
//!
//! ```
//! use bridgeml_monitor::psi::{psi, PsiBand, PsiConfig};
//! use bridgeml_monitor::univariate::ks_2samp;
//!
//! let reference: Vec<f64> = (0..1000).map(|i| i as f64 / 1000.0).collect();
//! let shifted: Vec<f64> = reference.iter().map(|v| v + 0.3).collect();
//! let p = psi(&reference, &shifted, PsiConfig::default()).unwrap();
//! assert_eq!(PsiBand::of(p), PsiBand::Significant);
//! assert!(ks_2samp(&reference, &shifted).unwrap().p_value < 1e-6);
//! assert_eq!(psi(&reference, &reference, PsiConfig::default()).unwrap(), 0.0);
//! ```

pub mod calibrate;
mod error;
mod fused;
pub mod label_shift;
pub mod mmd;
pub mod policy;
pub mod psi;
pub mod rng;
pub mod special;
pub mod univariate;

pub use calibrate::{Baseline, CalibrationConfig, ColumnBaseline, NullCalibration};
pub use error::{MonitorError, Result};
/// The `ndarray` version this crate's array arguments use.
pub use ndarray;
