//! Guard files and the serve-time [`Guard`]: calibration from arrays, the
//! JSON file with its fingerprints, and scoring with a `reliable` flag.

use std::path::{Path, PathBuf};

use bridgeml_core::fingerprint::sha256_file;
use bridgeml_core::Tensor;
use ndarray::{Array2, ArrayView2, Ix2};
use serde::{Deserialize, Serialize};

use crate::calibrate::{calibrate, validate_tpr, CalibrationOptions, ConfidenceInterval};
use crate::knn::KnnIndex;
use crate::mahalanobis::{fit, MahalanobisScorer, MahalanobisStats, Shrinkage};
use crate::metrics::{evaluate, Metrics};
use crate::scores::{self, validate_logits};
use crate::{GuardError, Result};

/// Value of the `format` key of every guard file.
pub const FORMAT: &str = "bridgeml-guard";
/// Current guard file version.
pub const VERSION: u32 = 1;

/// OOD scoring method.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Method {
    /// `-T * logsumexp(logits / T)`.
    Energy,
    /// Negative maximum softmax probability.
    Msp,
    /// Negative maximum logit.
    Maxlogit,
    /// Minimum class-conditional Mahalanobis distance of features.
    Mahalanobis,
    /// Distance to the k-th nearest normalized reference feature.
    Knn,
}

impl Method {
    pub const ALL: [Method; 5] = [
        Method::Energy,
        Method::Msp,
        Method::Maxlogit,
        Method::Mahalanobis,
        Method::Knn,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Method::Energy => "energy",
            Method::Msp => "msp",
            Method::Maxlogit => "maxlogit",
            Method::Mahalanobis => "mahalanobis",
            Method::Knn => "knn",
        }
    }

    /// Whether the method scores features (true) or logits (false).
    pub fn uses_features(self) -> bool {
        matches!(self, Method::Mahalanobis | Method::Knn)
    }
}

impl std::fmt::Display for Method {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Pointer to the kNN reference bank, stored next to the guard file as `.npy`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KnnReference {
    pub k: usize,
    /// Path of the L2-normalized float32 bank, relative to the guard file's folder.
    pub bank: String,
    /// Fingerprint of the bank file, checked at load.
    pub bank_sha256: String,
    pub rows: usize,
    pub dim: usize,
}

/// The on-disk guard: method, calibrated threshold and reference statistics.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GuardFile {
    pub format: String,
    pub version: u32,
    pub method: Method,
    /// Scores `<=` threshold pass as in-distribution; higher scores are OOD.
    pub threshold: f64,
    pub threshold_ci: ConfidenceInterval,
    /// Requested fraction of in-distribution samples that pass.
    pub tpr: f64,
    /// Fraction of the calibration samples that pass at `threshold`.
    pub achieved_tpr: f64,
    pub n_calibration: usize,
    /// Energy temperature (1 for the other methods).
    pub temperature: f64,
    /// Number of logit columns the guard was calibrated on, when logits were used.
    pub n_classes: Option<usize>,
    /// `sha256:` fingerprint of the model file, when calibrated through a model.
    pub model_sha256: Option<String>,
    /// Fingerprint of the preprocessing spec, when calibrated through a model.
    pub spec_fingerprint: Option<String>,
    /// Name of the model's feature tensor (Mahalanobis / kNN through a model).
    pub feature_tensor: Option<String>,
    pub mahalanobis: Option<MahalanobisStats>,
    pub knn: Option<KnnReference>,
}

/// Inputs of a guard: logits and/or penultimate features, one row per sample.
#[derive(Debug, Clone, Copy, Default)]
pub struct Inputs<'a> {
    pub logits: Option<ArrayView2<'a, f32>>,
    pub features: Option<ArrayView2<'a, f32>>,
}

/// Settings of [`calibrate_guard`].
#[derive(Debug, Clone)]
pub struct CalibrateConfig {
    pub method: Method,
    pub tpr: f64,
    pub temperature: f64,
    /// Neighbour rank of kNN.
    pub k: usize,
    pub shrinkage: Shrinkage,
    pub bootstrap: CalibrationOptions,
    pub model_sha256: Option<String>,
    pub spec_fingerprint: Option<String>,
    pub feature_tensor: Option<String>,
}

impl Default for CalibrateConfig {
    fn default() -> Self {
        CalibrateConfig {
            method: Method::Energy,
            tpr: 0.95,
            temperature: 1.0,
            k: 50,
            shrinkage: Shrinkage::LedoitWolf,
            bootstrap: CalibrationOptions::default(),
            model_sha256: None,
            spec_fingerprint: None,
            feature_tensor: None,
        }
    }
}

/// Calibration data: the in-distribution validation set, optionally a
/// separate reference (training) set for Mahalanobis / kNN.
#[derive(Debug, Clone, Copy, Default)]
pub struct CalibrationData<'a> {
    /// Validation inputs whose scores set the threshold.
    pub inputs: Inputs<'a>,
    /// Class labels of the validation rows (Mahalanobis without a reference set).
    pub labels: Option<&'a [usize]>,
    /// Reference features for means/covariance or the kNN bank. Without them
    /// the validation features serve as reference (kNN then scores leave-one-out).
    pub reference_features: Option<ArrayView2<'a, f32>>,
    /// Class labels of the reference rows.
    pub reference_labels: Option<&'a [usize]>,
}

/// Result of [`calibrate_guard`]: the file, the bank to save with it, and the calibration scores.
#[derive(Debug, Clone)]
pub struct Calibrated {
    pub file: GuardFile,
    /// The normalized kNN bank; [`GuardFile::save`] writes it next to the file.
    pub bank: Option<Array2<f32>>,
    pub scores: Vec<f64>,
}

/// A ready-to-score method with its reference statistics.
#[derive(Debug, Clone)]
pub enum Scorer {
    Energy { temperature: f64 },
    Msp,
    Maxlogit,
    Mahalanobis(MahalanobisScorer),
    Knn(KnnIndex),
}

fn need<'a>(
    x: Option<ArrayView2<'a, f32>>,
    method: Method,
    what: &str,
) -> Result<ArrayView2<'a, f32>> {
    x.ok_or_else(|| GuardError::MissingInput {
        method: method.to_string(),
        needs: what.to_string(),
    })
}

impl Scorer {
    pub fn method(&self) -> Method {
        match self {
            Scorer::Energy { .. } => Method::Energy,
            Scorer::Msp => Method::Msp,
            Scorer::Maxlogit => Method::Maxlogit,
            Scorer::Mahalanobis(_) => Method::Mahalanobis,
            Scorer::Knn(_) => Method::Knn,
        }
    }

    /// OOD scores (higher = more OOD) of a batch.
    pub fn score(&self, inputs: Inputs<'_>) -> Result<Vec<f64>> {
        let m = self.method();
        match self {
            Scorer::Energy { temperature } => {
                scores::energy(need(inputs.logits, m, "logits")?, *temperature)
            }
            Scorer::Msp => scores::msp(need(inputs.logits, m, "logits")?),
            Scorer::Maxlogit => scores::max_logit(need(inputs.logits, m, "logits")?),
            Scorer::Mahalanobis(s) => s.score(need(inputs.features, m, "features")?),
            Scorer::Knn(k) => k.score(need(inputs.features, m, "features")?),
        }
    }
}

fn check_rows(a: usize, b: usize, what: &str) -> Result<()> {
    if a == b {
        Ok(())
    } else {
        Err(GuardError::ShapeMismatch {
            what: what.to_string(),
            expected: format!("{a} rows"),
            got: format!("{b} rows"),
        })
    }
}

/// Fits reference statistics, scores the validation set and calibrates the threshold.
pub fn calibrate_guard(cfg: &CalibrateConfig, data: CalibrationData<'_>) -> Result<Calibrated> {
    validate_tpr(cfg.tpr)?;
    let m = cfg.method;
    let inputs = data.inputs;
    if let (Some(l), Some(f)) = (inputs.logits, inputs.features) {
        check_rows(l.nrows(), f.nrows(), "features vs logits")?;
    }
    let n_classes = match inputs.logits {
        Some(l) => {
            validate_logits(l, "calibration logits")?;
            Some(l.ncols())
        }
        None => None,
    };
    let mut temperature = 1.0;
    let mut mahalanobis = None;
    let mut knn = None;
    let mut bank = None;
    let scores = match m {
        Method::Energy => {
            temperature = cfg.temperature;
            Scorer::Energy { temperature }.score(inputs)?
        }
        Method::Msp => Scorer::Msp.score(inputs)?,
        Method::Maxlogit => Scorer::Maxlogit.score(inputs)?,
        Method::Mahalanobis => {
            let feats = need(inputs.features, m, "features")?;
            let derived;
            let (reference, labels) = match data.reference_features {
                Some(r) => {
                    let labels = data
                        .reference_labels
                        .ok_or_else(|| GuardError::MissingInput {
                            method: m.to_string(),
                            needs: "class labels of the reference features".into(),
                        })?;
                    (r, labels)
                }
                None => {
                    let labels = match (data.labels, inputs.logits) {
                        (Some(l), _) => l,
                        (None, Some(logits)) => {
                            derived = scores::predictions(logits)?
                                .into_iter()
                                .map(|(c, _)| c)
                                .collect::<Vec<_>>();
                            &derived
                        }
                        (None, None) => {
                            return Err(GuardError::MissingInput {
                                method: m.to_string(),
                                needs: "class labels (or logits, whose arg-max is used as labels)"
                                    .into(),
                            })
                        }
                    };
                    (feats, labels)
                }
            };
            let stats = fit(reference, labels, cfg.shrinkage)?;
            let scorer = MahalanobisScorer::new(&stats)?;
            mahalanobis = Some(stats);
            scorer.score(feats)?
        }
        Method::Knn => {
            let feats = need(inputs.features, m, "features")?;
            let (index, s) = match data.reference_features {
                Some(r) => {
                    let index = KnnIndex::new(r, cfg.k)?;
                    let s = index.score(feats)?;
                    (index, s)
                }
                None => {
                    let index = KnnIndex::new(feats, cfg.k)?;
                    let s = index.score_bank_leave_one_out()?;
                    (index, s)
                }
            };
            knn = Some(KnnReference {
                k: cfg.k,
                bank: String::new(),
                bank_sha256: String::new(),
                rows: index.rows(),
                dim: index.dim(),
            });
            bank = Some(index.bank().to_owned());
            s
        }
    };
    let cal = calibrate(&scores, cfg.tpr, cfg.bootstrap)?;
    let file = GuardFile {
        format: FORMAT.into(),
        version: VERSION,
        method: m,
        threshold: cal.threshold,
        threshold_ci: cal.ci,
        tpr: cal.tpr,
        achieved_tpr: cal.achieved_tpr,
        n_calibration: cal.n,
        temperature,
        n_classes,
        model_sha256: cfg.model_sha256.clone(),
        spec_fingerprint: cfg.spec_fingerprint.clone(),
        feature_tensor: cfg.feature_tensor.clone(),
        mahalanobis,
        knn,
    };
    Ok(Calibrated { file, bank, scores })
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> GuardError + '_ {
    move |source| GuardError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Fingerprints a loaded guard is checked against; `None` = not checked
/// (e.g. logits computed by the user's own pipeline).
#[derive(Debug, Clone, Copy, Default)]
pub struct Expected<'a> {
    pub model_sha256: Option<&'a str>,
    pub spec_fingerprint: Option<&'a str>,
}

impl GuardFile {
    /// Writes the guard as pretty JSON; for kNN also writes `bank` as
    /// `<file stem>.knn-bank.npy` next to it and records its fingerprint.
    pub fn save(&mut self, path: &Path, bank: Option<ArrayView2<'_, f32>>) -> Result<()> {
        if let Some(knn) = self.knn.as_mut() {
            let bank = bank.ok_or_else(|| GuardError::MissingInput {
                method: "knn".into(),
                needs: "the reference bank to save".into(),
            })?;
            let stem = path
                .file_stem()
                .map_or_else(|| "guard".into(), |s| s.to_string_lossy().into_owned());
            let name = format!("{stem}.knn-bank.npy");
            let bank_path = path.parent().unwrap_or(Path::new("")).join(&name);
            Tensor::F32(bank.to_owned().into_dyn()).write_npy(&bank_path)?;
            knn.bank = name;
            knn.bank_sha256 = sha256_file(&bank_path)?;
            knn.rows = bank.nrows();
            knn.dim = bank.ncols();
        }
        let json = serde_json::to_string_pretty(self).map_err(|e| GuardError::Parse {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
        std::fs::write(path, json + "\n").map_err(io_err(path))
    }

    /// Reads and validates a guard file (format, version, finite threshold,
    /// method-specific statistics present).
    pub fn load(path: &Path) -> Result<GuardFile> {
        let text = std::fs::read_to_string(path).map_err(io_err(path))?;
        let parse = |reason: String| GuardError::Parse {
            path: path.to_path_buf(),
            reason,
        };
        let f: GuardFile = serde_json::from_str(&text).map_err(|e| parse(e.to_string()))?;
        if f.format != FORMAT {
            return Err(parse(format!(
                "format is {:?}, expected {FORMAT:?}",
                f.format
            )));
        }
        if f.version != VERSION {
            return Err(parse(format!(
                "version {} is not supported (expected {VERSION})",
                f.version
            )));
        }
        if !f.threshold.is_finite() {
            return Err(parse("threshold is not finite".into()));
        }
        if f.method == Method::Mahalanobis && f.mahalanobis.is_none() {
            return Err(parse(
                "method mahalanobis without `mahalanobis` statistics".into(),
            ));
        }
        if f.method == Method::Knn && f.knn.is_none() {
            return Err(parse("method knn without a `knn` bank reference".into()));
        }
        Ok(f)
    }

    /// Errors when the guard was calibrated for another model or spec.
    pub fn check_fingerprints(&self, expected: Expected<'_>) -> Result<()> {
        let pairs = [
            ("model", &self.model_sha256, expected.model_sha256),
            ("spec", &self.spec_fingerprint, expected.spec_fingerprint),
        ];
        for (what, stored, given) in pairs {
            if let (Some(s), Some(g)) = (stored.as_deref(), given) {
                if s != g {
                    return Err(GuardError::FingerprintMismatch {
                        what,
                        expected: s.to_string(),
                        found: g.to_string(),
                    });
                }
            }
        }
        Ok(())
    }
}

/// One scored sample.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Verdict {
    /// Arg-max class of the logits (nearest class mean for Mahalanobis without logits).
    pub prediction: Option<usize>,
    /// Softmax probability of the predicted class (needs logits).
    pub confidence: Option<f64>,
    /// OOD score, higher = more OOD.
    pub score: f64,
    /// `score > threshold`.
    pub is_ood: bool,
    /// `!is_ood`: the prediction may be acted upon.
    pub reliable: bool,
}

/// A loaded guard: file, checked fingerprints and a ready scorer.
#[derive(Debug, Clone)]
pub struct Guard {
    pub file: GuardFile,
    pub path: PathBuf,
    scorer: Scorer,
}

impl Guard {
    /// Loads a guard file (and its kNN bank), checks fingerprints, builds the scorer.
    pub fn load(path: &Path, expected: Expected<'_>) -> Result<Guard> {
        let file = GuardFile::load(path)?;
        file.check_fingerprints(expected)?;
        let scorer = match file.method {
            Method::Energy => Scorer::Energy {
                temperature: file.temperature,
            },
            Method::Msp => Scorer::Msp,
            Method::Maxlogit => Scorer::Maxlogit,
            Method::Mahalanobis => Scorer::Mahalanobis(MahalanobisScorer::new(
                file.mahalanobis.as_ref().expect("checked at load"),
            )?),
            Method::Knn => {
                let r = file.knn.as_ref().expect("checked at load");
                let bank_path = path.parent().unwrap_or(Path::new("")).join(&r.bank);
                let sha = sha256_file(&bank_path)?;
                if sha != r.bank_sha256 {
                    return Err(GuardError::FingerprintMismatch {
                        what: "kNN bank",
                        expected: r.bank_sha256.clone(),
                        found: sha,
                    });
                }
                let bank = Tensor::read_npy(&bank_path)?
                    .to_f32()
                    .into_dimensionality::<Ix2>()
                    .map_err(|_| GuardError::Parse {
                        path: bank_path.clone(),
                        reason: "the kNN bank must be a 2-D array".into(),
                    })?;
                Scorer::Knn(KnnIndex::new(bank.view(), r.k)?)
            }
        };
        Ok(Guard {
            file,
            path: path.to_path_buf(),
            scorer,
        })
    }

    pub fn method(&self) -> Method {
        self.file.method
    }

    fn check_classes(&self, inputs: Inputs<'_>) -> Result<()> {
        if let (Some(l), Some(c)) = (inputs.logits, self.file.n_classes) {
            if l.ncols() != c {
                return Err(GuardError::ShapeMismatch {
                    what: "logit columns (classes)".into(),
                    expected: c.to_string(),
                    got: l.ncols().to_string(),
                });
            }
        }
        Ok(())
    }

    /// OOD scores of a batch.
    pub fn scores(&self, inputs: Inputs<'_>) -> Result<Vec<f64>> {
        self.check_classes(inputs)?;
        self.scorer.score(inputs)
    }

    /// Per-sample prediction, confidence, score and flags.
    pub fn verdicts(&self, inputs: Inputs<'_>) -> Result<Vec<Verdict>> {
        self.check_classes(inputs)?;
        if let (Some(l), Some(f)) = (inputs.logits, inputs.features) {
            check_rows(l.nrows(), f.nrows(), "features vs logits")?;
        }
        let preds: Option<Vec<(usize, f64)>> =
            inputs.logits.map(scores::predictions).transpose()?;
        let (scores, nearest): (Vec<f64>, Option<Vec<usize>>) = match (&self.scorer, &preds) {
            (Scorer::Mahalanobis(m), None) => {
                let both =
                    m.score_with_class(need(inputs.features, Method::Mahalanobis, "features")?)?;
                let (s, c) = both.into_iter().unzip();
                (s, Some(c))
            }
            _ => (self.scorer.score(inputs)?, None),
        };
        Ok(scores
            .iter()
            .enumerate()
            .map(|(i, &score)| {
                let is_ood = score > self.file.threshold;
                let (prediction, confidence) = match (&preds, &nearest) {
                    (Some(p), _) => (Some(p[i].0), Some(p[i].1)),
                    (None, Some(c)) => (Some(c[i]), None),
                    (None, None) => (None, None),
                };
                Verdict {
                    prediction,
                    confidence,
                    score,
                    is_ood,
                    reliable: !is_ood,
                }
            })
            .collect())
    }

    /// Metrics of an in-distribution vs an OOD set at this guard's threshold.
    pub fn evaluate(&self, id: Inputs<'_>, ood: Inputs<'_>) -> Result<Metrics> {
        let s_id = self.scores(id)?;
        let s_ood = self.scores(ood)?;
        evaluate(&s_id, &s_ood, self.file.threshold)
    }
}
