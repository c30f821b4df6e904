//! Guard rails: out-of-distribution (OOD) detection that lets a classifier
//! say "I do not know".
//!
//! Pure computation over logits and penultimate-feature arrays; running the
//! model is the caller's job (the `bridgeml guard` CLI glues model, spec and
//! guard together). Every score follows the **higher = more OOD** convention
//! of pytorch-ood:
//!
//! | method | score | reference |
//! |---|---|---|
//! | `energy` | `-T * logsumexp(z / T)` | Liu et al., 2020 |
//! | `msp` | `-max softmax(z)` | Hendrycks & Gimpel, 2017 |
//! | `maxlogit` | `-max z` | Hendrycks et al., 2022 |
//! | `mahalanobis` | `min_c (f - mu_c)^T Sigma^-1 (f - mu_c)` | Lee et al., 2018 |
//! | `knn` | distance to the k-th nearest L2-normalized reference feature | Sun et al., 2022 |
//!
//! OpenOOD's postprocessors report confidences (higher = more
//! in-distribution); its energy (`EBO`) is `+T * logsumexp(z / T)`, the
//! negative of ours.
//!
//! A guard is calibrated on in-distribution validation data: the threshold is
//! the score below which a fraction `tpr` of those samples fall
//! ([`calibrate`]), with a seeded bootstrap interval. [`metrics`] gives AUROC,
//! AUPR-In/Out, FPR@95TPR and pass rates with exactly stated definitions.
//!
//! ```
//! use bridgeml_guard::{calibrate_guard, metrics, CalibrateConfig, CalibrationData, Inputs, Method};
//! use ndarray::array;
//!
//! // Confident in-distribution logits, flat OOD logits.
//! let id = array![[9.0f32, 0.0, 0.0], [0.0, 8.0, 0.5], [0.0, 1.0, 7.0], [6.0, 0.0, 1.0]];
//! let ood = array![[0.5f32, 0.4, 0.6], [1.0, 1.1, 0.9]];
//! let cfg = CalibrateConfig { method: Method::Energy, tpr: 0.75, ..Default::default() };
//! let cal = calibrate_guard(&cfg, CalibrationData {
//!     inputs: Inputs { logits: Some(id.view()), features: None },
//!     ..Default::default()
//! })?;
//! let s_ood = bridgeml_guard::scores::energy(ood.view(), 1.0)?;
//! assert!(s_ood.iter().all(|&s| s > cal.file.threshold)); // both flagged
//! let m = metrics::evaluate(&cal.scores, &s_ood, cal.file.threshold)?;
//! assert_eq!(m.auroc, 1.0);
//! assert_eq!(m.id_pass_rate, 0.75);
//! # Ok::<(), bridgeml_guard::GuardError>(())
//! ```

pub mod calibrate;
mod error;
pub mod guard;
pub mod knn;
pub mod mahalanobis;
pub mod metrics;
pub mod scores;

pub use calibrate::{
    calibrate, threshold_at_tpr, Calibration, CalibrationOptions, ConfidenceInterval,
};
pub use error::{GuardError, Result};
pub use guard::{
    calibrate_guard, CalibrateConfig, Calibrated, CalibrationData, Expected, Guard, GuardFile,
    Inputs, KnnReference, Method, Scorer, Verdict,
};
pub use knn::KnnIndex;
pub use mahalanobis::{MahalanobisScorer, MahalanobisStats, Shrinkage};
pub use metrics::Metrics;
