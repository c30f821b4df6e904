//! `bridgeml demo`: the deployment gap end to end, on data the repository
//! ships. It trains a small CNN on a Fashion-MNIST subset whose "Shirt" class
//! is cut 20:1, quantizes it (PTQ and QAT), calibrates the OOD guard and the
//! drift baselines, writes a complete deployment bundle with its
//! `bridgeml.toml`, simulates production traffic carrying the six kinds of
//! deployment gap through the same monitors the server runs, replays 30 days
//! of traffic into a prediction log, and runs the gate. Everything is
//! computed by the library crates the CLI and the server use; this crate only
//! orchestrates. The main entry is [`run_demo`], its result a [`DemoReport`].
//!
//! ```
//! // The class the demo makes a minority, and how hard.
//! assert_eq!(bridgeml_demo::CLASS_NAMES[bridgeml_demo::MINORITY_CLASS], "Shirt");
//! assert_eq!(bridgeml_demo::MINORITY_RATIO, 20);
//! ```

pub mod bundle;
pub mod images;
pub mod serving;
pub mod traffic;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::time::Instant;

use bridgeml_core::fingerprint::sha256_file;
use bridgeml_core::Tensor;
use bridgeml_gate::{write_reports, GateReport, Status};
use bridgeml_guard::{
    calibrate_guard, CalibrateConfig, CalibrationData, Expected, Guard, Inputs, Method,
};
use bridgeml_monitor::psi::PsiConfig;
use bridgeml_monitor::rng::SplitMix64;
use bridgeml_monitor::{Baseline, CalibrationConfig, ColumnBaseline};
use bridgeml_preprocess::spec::Color;
use bridgeml_preprocess::{Pipeline, Source};
use bridgeml_quant::audit::{audit, AuditConfig, AuditReport};
use bridgeml_quant::{quantize, QuantizeOptions};
use bridgeml_runtime::BackendChoice;
use bridgeml_train::data::{read_idx, IdxImages};
use bridgeml_train::export::{META_CLASSES, META_PRODUCED_BY, META_SPEC};
use bridgeml_train::onnx_export::write_model_atomic;
use bridgeml_train::{
    fit, load_onnx, run_qat, Arch, BatchProgress, Dataset, EpochStats, Model, QatConfig, Split,
    TrainConfig,
};
use serde::Serialize;

use crate::serving::Served;

/// Fashion-MNIST class names, in label order.
pub const CLASS_NAMES: [&str; 10] = [
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
];
/// The class cut to a minority in training.
pub const MINORITY_CLASS: usize = 6;
/// One in this many minority samples is kept.
pub const MINORITY_RATIO: usize = 20;
/// Test images used as the labelled validation set; the rest is the pool
/// production traffic is drawn from.
pub const VALIDATION_SIZE: usize = 1000;

/// The small CNN the demo trains (`examples/arch/fashion_cnn_small.toml`).
pub const ARCH: &str = include_str!("../../../examples/arch/fashion_cnn_small.toml");

/// Errors of the demo; each names what failed.
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}: {reason}", path.display())]
    Data { path: PathBuf, reason: String },
    #[error("{0}")]
    Image(String),
    #[error(transparent)]
    Core(#[from] bridgeml_core::CoreError),
    #[error(transparent)]
    Preprocess(#[from] bridgeml_preprocess::PreprocessError),
    #[error(transparent)]
    Runtime(#[from] bridgeml_runtime::RuntimeError),
    #[error(transparent)]
    Train(#[from] bridgeml_train::TrainError),
    #[error(transparent)]
    Quant(#[from] bridgeml_quant::QuantError),
    #[error(transparent)]
    Guard(#[from] bridgeml_guard::GuardError),
    #[error(transparent)]
    Monitor(#[from] bridgeml_monitor::MonitorError),
    #[error(transparent)]
    Gate(#[from] bridgeml_gate::GateError),
    #[error(transparent)]
    Serve(#[from] bridgeml_serve::ServeError),
}

impl DemoError {
    pub fn io(path: &Path, source: std::io::Error) -> DemoError {
        DemoError::Io {
            path: path.to_path_buf(),
            source,
        }
    }
}

pub type Result<T> = std::result::Result<T, DemoError>;

/// What to run.
#[derive(Debug, Clone)]
pub struct DemoOptions {
    /// The bundle directory (created; existing demo files are overwritten).
    pub out: PathBuf,
    /// The demo data: `fashion-mnist/` and `mnist-digits/` IDX directories.
    pub data: PathBuf,
    pub seed: u64,
    /// FP32 training epochs.
    pub epochs: usize,
    /// QAT fine-tuning epochs.
    pub qat_epochs: usize,
    /// Use only the first N training samples (after the minority cut): smoke runs.
    pub train_limit: Option<usize>,
    /// RFC 3339 time stamp of the reports.
    pub created: String,
    /// Shorter latency measurement in the gate.
    pub quick_latency: bool,
}

impl DemoOptions {
    pub fn new(out: PathBuf, data: PathBuf) -> DemoOptions {
        DemoOptions {
            out,
            data,
            seed: 7,
            epochs: 4,
            qat_epochs: 1,
            train_limit: None,
            created: String::new(),
            quick_latency: true,
        }
    }
}

/// Receives progress (the library never prints).
pub trait DemoProgress {
    /// Step `n` of `of` starts.
    fn step(&mut self, _n: usize, _of: usize, _title: &str) {}
    /// A training batch finished.
    fn batch(&mut self, _p: &BatchProgress) {}
    /// A training epoch finished.
    fn epoch(&mut self, _s: &EpochStats) {}
    /// One line of result of the step that just ran.
    fn done(&mut self, _line: &str) {}
}

/// A [`DemoProgress`] that ignores everything.
#[derive(Debug, Default)]
pub struct Quiet;
impl DemoProgress for Quiet {}

struct TrainBridge<'a>(&'a mut dyn DemoProgress);
impl bridgeml_train::Progress for TrainBridge<'_> {
    fn batch(&mut self, p: &BatchProgress) {
        self.0.batch(p);
    }
    fn epoch(&mut self, s: &EpochStats) {
        self.0.epoch(s);
    }
}

/// Accuracy and recalls of one model on the validation set.
#[derive(Debug, Clone, Serialize)]
pub struct ModelEval {
    pub file: String,
    pub accuracy: f64,
    pub macro_recall: f64,
    /// Recall of the minority class ("Shirt").
    pub minority_recall: Option<f64>,
    pub recall: Vec<Option<f64>>,
    pub bytes: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct TrainingSummary {
    pub samples: usize,
    pub class_counts: Vec<usize>,
    pub epochs: Vec<EpochStats>,
    pub seconds: f64,
    pub qat_seconds: f64,
    pub parameters: usize,
    pub fp32: ModelEval,
    pub ptq: ModelEval,
    pub qat: ModelEval,
}

#[derive(Debug, Clone, Serialize)]
pub struct GuardSummary {
    pub method: String,
    pub threshold: f64,
    pub id_pass_rate: f64,
    /// OOD set name -> (AUROC, FPR at 95% TPR).
    pub ood: BTreeMap<String, (f64, f64)>,
}

/// One gate of the bundle's gate run, in short.
#[derive(Debug, Clone, Serialize)]
pub struct GateLine {
    pub gate: String,
    pub status: Status,
    pub summary: String,
}

/// Everything the demo did, with the paths of what it wrote.
#[derive(Debug, Clone, Serialize)]
pub struct DemoReport {
    pub out: PathBuf,
    pub manifest: PathBuf,
    pub log: PathBuf,
    pub gate_report_html: PathBuf,
    pub traffic_report_html: PathBuf,
    pub seed: u64,
    pub seconds: f64,
    pub training: TrainingSummary,
    pub guard: GuardSummary,
    /// The six gaps: how each was injected and what caught it.
    pub gaps: Vec<traffic::GapResult>,
    pub gate_verdict: String,
    pub gate_exit_code: i32,
    pub gates: Vec<GateLine>,
}

const STEPS: usize = 10;

fn mkdir(p: &Path) -> Result<()> {
    std::fs::create_dir_all(p).map_err(|e| DemoError::io(p, e))
}

fn write(p: &Path, text: &str) -> Result<()> {
    std::fs::write(p, text).map_err(|e| DemoError::io(p, e))
}

fn file_len(p: &Path) -> u64 {
    std::fs::metadata(p).map(|m| m.len()).unwrap_or(0)
}

/// Folder name of class `c` in the validation ImageFolder: sorts in label order.
pub fn class_folder(c: usize) -> String {
    format!("{c}-{}", CLASS_NAMES[c].replace(['/', ' '], "-"))
}

/// The demo's data, read once.
#[derive(Debug)]
pub struct DemoData {
    pub test: IdxImages,
    pub digits: IdxImages,
}

impl DemoData {
    /// Validation image `i` (the first [`VALIDATION_SIZE`] test images).
    pub fn validation_len(&self) -> usize {
        VALIDATION_SIZE.min(self.test.len())
    }

    /// Indices of the traffic pool (the test images after the validation set).
    pub fn pool(&self) -> std::ops::Range<usize> {
        self.validation_len()..self.test.len()
    }
}

/// Runs the whole demo.
pub fn run_demo(opts: &DemoOptions, progress: &mut dyn DemoProgress) -> Result<DemoReport> {
    let start = Instant::now();
    let out = &opts.out;
    mkdir(out)?;
    let fashion = opts.data.join("fashion-mnist");
    let digits_dir = opts.data.join("mnist-digits");

    // 1. Data and the bundle's static files.
    progress.step(
        1,
        STEPS,
        "Writing the bundle's data (validation, OOD, parity inputs)",
    );
    let spec_path = out.join("spec.toml");
    write(&spec_path, bundle::SPEC)?;
    write(&out.join("spec_opencv.toml"), &bundle::opencv_spec())?;
    write(&out.join("policy.toml"), bundle::POLICY)?;
    write(&out.join("labels.txt"), &(CLASS_NAMES.join("\n") + "\n"))?;
    let pipeline = Pipeline::from_path(&spec_path)?;
    let data = DemoData {
        test: read_idx(&fashion, Split::Test)?,
        digits: read_idx(&digits_dir, Split::Test)?,
    };
    if data.test.len() < VALIDATION_SIZE + traffic::WINDOW {
        return Err(DemoError::Data {
            path: fashion.clone(),
            reason: format!(
                "{} test images; the demo needs at least {}",
                data.test.len(),
                VALIDATION_SIZE + traffic::WINDOW
            ),
        });
    }
    let (val_files, val_labels) = write_validation(out, &data)?;
    let ood_sets = write_ood(out, &data, opts.seed)?;
    write_parity(out, &data, &pipeline)?;
    progress.done(&format!(
        "{} validation images, OOD: {}, parity inputs: {}",
        val_files.len(),
        ood_sets
            .iter()
            .map(|(n, f)| format!("{} {n}", f.len()))
            .collect::<Vec<_>>()
            .join(", "),
        traffic::PARITY_SAMPLES
    ));

    // 2. FP32 training.
    progress.step(2, STEPS, "Training the FP32 CNN (Shirt cut 20:1)");
    let mut train = Dataset::load(&fashion, &pipeline, Split::Train)?;
    train.subsample_class(MINORITY_CLASS, MINORITY_RATIO)?;
    if let Some(n) = opts.train_limit {
        train.truncate(n);
    }
    train.classes = CLASS_NAMES.iter().map(|s| s.to_string()).collect();
    let arch = Arch::from_toml(ARCH, Path::new("examples/arch/fashion_cnn_small.toml"))?;
    let mut model = Model::from_arch(&arch, CLASS_NAMES.len(), opts.seed)?;
    let cfg = TrainConfig {
        epochs: opts.epochs,
        batch_size: 64,
        lr: 3e-3,
        weight_decay: 1e-4,
        seed: opts.seed,
    };
    let never = AtomicBool::new(false);
    let t0 = Instant::now();
    let epochs = fit(&mut model, &train, &cfg, &mut TrainBridge(progress), &never)?;
    let train_seconds = t0.elapsed().as_secs_f64();
    let classes_json = serde_json::to_string(&CLASS_NAMES).expect("strings serialize");
    model.set_metadata(META_SPEC, pipeline.fingerprint());
    model.set_metadata(META_CLASSES, &classes_json);
    let counts_json = serde_json::to_string(&train.class_counts()).expect("numbers serialize");
    model.set_metadata(bridgeml_quant::CLASS_COUNTS_KEY, &counts_json);
    model.set_metadata(META_PRODUCED_BY, "bridgeml demo (train)");
    let fp32_path = out.join("model.onnx");
    write_model_atomic(&model.to_onnx()?, &fp32_path)?;
    let parameters = model.parameter_count();
    progress.done(&format!(
        "{} samples (Shirt: {}), {} epochs in {:.0} s, {} parameters",
        train.len(),
        train.class_counts()[MINORITY_CLASS],
        epochs.len(),
        train_seconds,
        parameters
    ));

    // 3. PTQ through the serving spec.
    progress.step(3, STEPS, "Post-training quantization (INT8 QDQ, minmax)");
    let calibration: Vec<Tensor> = val_files
        .iter()
        .step_by(5)
        .map(|f| pipeline.run_path(f))
        .collect::<std::result::Result<_, _>>()?;
    let qopts = QuantizeOptions {
        backend: BackendChoice::Tract,
        spec_fingerprint: Some(pipeline.fingerprint().to_string()),
        ..QuantizeOptions::default()
    };
    let (bytes, qrep) = quantize(&fp32_path, &calibration, &qopts)?;
    let int8_path = out.join("model_int8.onnx");
    std::fs::write(&int8_path, bytes).map_err(|e| DemoError::io(&int8_path, e))?;
    // The INT8 gap: the same PTQ fed by a calibration script that skipped
    // the spec's normalization (raw 0-255 pixels), a classic of hand-written
    // calibration loops. Kept out of the bundle.
    let raw: Vec<Tensor> = calibration.iter().map(unnormalized).collect();
    let (bytes, _) = quantize(&fp32_path, &raw, &qopts)?;
    mkdir(&out.join("scenarios"))?;
    let miscal_path = out.join("scenarios/model_int8_unnormalized_calibration.onnx");
    std::fs::write(&miscal_path, bytes).map_err(|e| DemoError::io(&miscal_path, e))?;
    progress.done(&format!(
        "{} tensors quantized on {} calibration images (and a copy calibrated on un-normalized pixels)",
        qrep.tensors.len(),
        qrep.calibration_samples
    ));

    // 4. QAT from the FP32 weights.
    progress.step(4, STEPS, "Quantization-aware fine-tuning (QAT)");
    let mut qat = load_onnx(&fp32_path)?;
    let qcfg = QatConfig {
        train: TrainConfig {
            epochs: opts.qat_epochs,
            lr: 1e-4,
            ..cfg
        },
        ..QatConfig::default()
    };
    let t0 = Instant::now();
    run_qat(&mut qat, &train, &qcfg, &mut TrainBridge(progress), &never)?;
    let qat_seconds = t0.elapsed().as_secs_f64();
    qat.set_metadata(META_SPEC, pipeline.fingerprint());
    qat.set_metadata(META_CLASSES, &classes_json);
    qat.set_metadata(bridgeml_quant::CLASS_COUNTS_KEY, &counts_json);
    qat.set_metadata(META_PRODUCED_BY, "bridgeml demo (qat)");
    qat.set_metadata(bridgeml_quant::QAT_KEY, "true");
    let qat_path = out.join("model_qat.onnx");
    write_model_atomic(&qat.to_onnx()?, &qat_path)?;
    progress.done(&format!(
        "{} epoch(s) in {:.0} s",
        opts.qat_epochs, qat_seconds
    ));

    // 5. The three models on the validation set, through the runtime.
    progress.step(
        5,
        STEPS,
        "Evaluating FP32, PTQ and QAT on the validation set",
    );
    let val_items: Vec<Tensor> = {
        use rayon::prelude::*;
        val_files
            .par_iter()
            .map(|f| pipeline.run_path(f))
            .collect::<std::result::Result<_, _>>()?
    };
    let logits_of = |path: &Path, emb: Option<&str>| -> Result<_> {
        let mut s = Served::load(path, pipeline.clone(), None, emb)?;
        s.run(&val_items)
    };
    let (fp32_logits, _) = logits_of(&fp32_path, None)?;
    // The served model, loaded once: validation and training features here,
    // then the guard is attached and it serves the traffic.
    let mut served = Served::load(&int8_path, pipeline.clone(), None, Some("features"))?;
    let (ptq_logits, ptq_features) = served.run(&val_items)?;
    let val_features = ptq_features.ok_or_else(|| no_features(&int8_path))?;
    let (qat_logits, _) = logits_of(&qat_path, None)?;
    let (miscal_logits, _) = logits_of(&miscal_path, None)?;
    let names: Vec<String> = CLASS_NAMES.iter().map(|s| s.to_string()).collect();
    let audit_cfg = AuditConfig {
        training_imbalance: bridgeml_runtime::OnnxModel::from_path(&fp32_path)
            .ok()
            .and_then(|m| bridgeml_quant::training_imbalance(&m)),
        ..AuditConfig::default()
    };
    let ptq_audit = audit(
        &fp32_logits.clone().into_dyn(),
        &ptq_logits.clone().into_dyn(),
        &val_labels,
        &names,
        false,
        &audit_cfg,
    )?;
    let qat_audit = audit(
        &fp32_logits.clone().into_dyn(),
        &qat_logits.clone().into_dyn(),
        &val_labels,
        &names,
        true,
        &audit_cfg,
    )?;
    let miscal_audit = audit(
        &fp32_logits.clone().into_dyn(),
        &miscal_logits.into_dyn(),
        &val_labels,
        &names,
        false,
        &audit_cfg,
    )?;
    let fp32_eval = eval_of(&ptq_audit, true, &fp32_path);
    let ptq_eval = eval_of(&ptq_audit, false, &int8_path);
    let qat_eval = eval_of(&qat_audit, false, &qat_path);
    progress.done(&format!(
        "accuracy FP32 {:.3}, PTQ {:.3}, QAT {:.3}; Shirt recall {} / {} / {}",
        fp32_eval.accuracy,
        ptq_eval.accuracy,
        qat_eval.accuracy,
        pct(fp32_eval.minority_recall),
        pct(ptq_eval.minority_recall),
        pct(qat_eval.minority_recall)
    ));

    // 6. The guard, on the served (INT8) model.
    progress.step(
        6,
        STEPS,
        "Calibrating the OOD guard (Mahalanobis on the features, 95% TPR)",
    );
    let int8_sha = sha256_file(&int8_path)?;
    let train_items: Vec<Tensor> = (0..train.len())
        .map(|i| sample_tensor(&train, i))
        .collect::<Result<_>>()?;
    let (_, train_features) = served.run(&train_items)?;
    let train_features = train_features.ok_or_else(|| no_features(&int8_path))?;
    let train_labels: Vec<usize> = train.y.iter().map(|&y| y as usize).collect();
    let gcfg = CalibrateConfig {
        method: Method::Mahalanobis,
        model_sha256: Some(int8_sha.clone()),
        spec_fingerprint: Some(pipeline.fingerprint().to_string()),
        feature_tensor: Some("features".into()),
        ..CalibrateConfig::default()
    };
    let mut cal = calibrate_guard(
        &gcfg,
        CalibrationData {
            inputs: Inputs {
                logits: Some(ptq_logits.view()),
                features: Some(val_features.view()),
            },
            labels: Some(&val_labels),
            reference_features: Some(train_features.view()),
            reference_labels: Some(&train_labels),
        },
    )?;
    let guard_path = out.join("guard.json");
    cal.file.save(&guard_path, None)?;
    let guard = Guard::load(
        &guard_path,
        Expected {
            model_sha256: Some(&int8_sha),
            spec_fingerprint: Some(pipeline.fingerprint()),
        },
    )?;
    served.guard = Some(guard);
    let id_scores = cal.scores.clone();
    let mut ood_metrics = BTreeMap::new();
    for (name, files) in &ood_sets {
        let items: Vec<Tensor> = files
            .iter()
            .map(|f| pipeline.run_path(f))
            .collect::<std::result::Result<_, _>>()?;
        let answers = served.answer_items(&items)?;
        let s: Vec<f64> = answers.iter().filter_map(|a| a.ood_score).collect();
        let m = bridgeml_guard::metrics::evaluate(&id_scores, &s, cal.file.threshold)?;
        ood_metrics.insert(name.clone(), (m.auroc, m.fpr_at_95_tpr));
    }
    let guard_summary = GuardSummary {
        method: "mahalanobis".into(),
        threshold: cal.file.threshold,
        id_pass_rate: cal.file.achieved_tpr,
        ood: ood_metrics,
    };
    progress.done(&format!(
        "threshold {:.3}; {}",
        guard_summary.threshold,
        guard_summary
            .ood
            .iter()
            .map(|(n, (a, f))| format!("{n}: AUROC {a:.3}, FPR@95 {f:.3}"))
            .collect::<Vec<_>>()
            .join("; ")
    ));

    // 7. Drift baselines, latency profile, manifest.
    progress.step(
        7,
        STEPS,
        "Drift baselines, latency profile, policy and manifest",
    );
    let val_answers = served.answers(&val_items, &ptq_logits, Some(&val_features))?;
    let confidences: Vec<f64> = val_answers.iter().map(|a| a.confidence).collect();
    let window = traffic::WINDOW;
    let ccfg = CalibrationConfig {
        seed: opts.seed,
        ..CalibrationConfig::new(window)
    };
    let conf_baseline = Baseline {
        format_version: Baseline::FORMAT_VERSION,
        reference_rows: confidences.len(),
        columns: vec![ColumnBaseline::psi(
            Some("confidence".into()),
            &confidences,
            PsiConfig::default(),
            ccfg,
        )?],
    };
    let emb_baseline = Baseline {
        format_version: Baseline::FORMAT_VERSION,
        reference_rows: val_features.nrows(),
        columns: vec![ColumnBaseline::mmd(val_features.view(), None, ccfg)?],
    };
    write_json(&out.join("baseline_confidence.json"), &conf_baseline)?;
    write_json(&out.join("baseline_embedding.json"), &emb_baseline)?;
    Tensor::F32(val_features.into_dyn()).write_npy(&out.join("embedding_reference.npy"))?;
    // The traffic mix: 3 in 10 requests are JPEG from the mobile app.
    let probes: Vec<Vec<u8>> = data
        .pool()
        .take(20)
        .enumerate()
        .map(|(k, i)| traffic::encode_request(&data.test.image(i), k % 10 < 3).map(|r| r.1))
        .collect::<Result<_>>()?;
    let profile = traffic::profile(&mut served, &probes, &int8_sha)?;
    let p = &profile.results[0];
    write_json(&out.join("profile.json"), &profile)?;
    let manifest_path = out.join("bridgeml.toml");
    write(
        &manifest_path,
        &bundle::manifest(&bundle::ManifestFiles {
            spec_fingerprint: pipeline.fingerprint().to_string(),
            model_sha256: sha256_file(&fp32_path)?,
            int8_sha256: int8_sha.clone(),
        }),
    )?;
    let manifest = bridgeml_gate::manifest::Manifest::load(&manifest_path)?;
    progress.done(&format!(
        "PSI threshold {:.3}, MMD^2 threshold {:.5}, batch-1 latency p50 {:.3} ms / p99 {:.3} ms",
        conf_baseline.columns[0].calibration.threshold,
        emb_baseline.columns[0].calibration.threshold,
        p.p50_ms,
        p.p99_ms
    ));

    // 8. The six gaps on simulated traffic.
    progress.step(
        8,
        STEPS,
        "Simulating production traffic with the six deployment gaps",
    );
    let ctx = traffic::Context {
        manifest: &manifest,
        data: &data,
        served: &mut served,
        pipeline: &pipeline,
        opencv: Pipeline::from_path(&out.join("spec_opencv.toml"))?,
        val_labels: &val_labels,
        val_predictions: val_answers.iter().map(|a| a.class).collect(),
        val_confidences: confidences.clone(),
        seed: opts.seed,
    };
    let audits = traffic::Audits {
        ptq: &ptq_audit,
        qat: &qat_audit,
        miscalibrated: &miscal_audit,
    };
    let (gaps, traffic_gates) = traffic::run_gaps(ctx, &audits)?;
    let caught = gaps.iter().filter(|g| g.caught).count();
    progress.done(&format!(
        "{caught} of {} gaps caught: {}",
        gaps.len(),
        gaps.iter()
            .map(|g| format!(
                "{} -> {}",
                g.gap,
                if g.caught_by.is_empty() {
                    "not caught".to_string()
                } else {
                    g.caught_by.join(", ")
                }
            ))
            .collect::<Vec<_>>()
            .join("; ")
    ));

    // 9. Thirty days of traffic, shadowed by the QAT candidate.
    progress.step(
        9,
        STEPS,
        "Replaying 30 days of traffic into the prediction log",
    );
    let log_path = out.join("bridgeml.db");
    let mut candidate = Served::load(&qat_path, pipeline.clone(), None, None)?;
    let replay = traffic::replay_log(
        &manifest,
        &data,
        &mut served,
        &mut candidate,
        &log_path,
        opts.seed,
    )?;
    progress.done(&format!(
        "{} requests over {} days, {} labelled, {} policy actions",
        replay.rows, replay.days, replay.labelled, replay.actions
    ));

    // 10. The gate on the bundle, and the reports.
    progress.step(10, STEPS, "Running the gate on the bundle");
    let report = bridgeml_serve::gate::gate_report(
        &manifest_path,
        None,
        opts.quick_latency,
        opts.created.clone(),
        |_| {},
    )?;
    let gate_files = write_reports(&report, &out.join("report"))?;
    let traffic_report = GateReport::new(
        opts.created.clone(),
        manifest_path.display().to_string(),
        traffic_gates,
    )
    .with_title(
        "bridgeml demo: six deployment gaps on simulated traffic (fail = the alarm went off)",
    );
    let traffic_files = write_reports(&traffic_report, &out.join("traffic"))?;
    let gates: Vec<GateLine> = report
        .gates
        .iter()
        .map(|g| GateLine {
            gate: g.name.as_str().to_string(),
            status: g.status,
            summary: g.summary.clone(),
        })
        .collect();
    progress.done(&format!("verdict {}", report.verdict.as_str()));

    let demo = DemoReport {
        out: out.clone(),
        manifest: manifest_path,
        log: log_path,
        gate_report_html: gate_files.html,
        traffic_report_html: traffic_files.html,
        seed: opts.seed,
        seconds: start.elapsed().as_secs_f64(),
        training: TrainingSummary {
            samples: train.len(),
            class_counts: train.class_counts(),
            epochs,
            seconds: train_seconds,
            qat_seconds,
            parameters,
            fp32: fp32_eval,
            ptq: ptq_eval,
            qat: qat_eval,
        },
        guard: guard_summary,
        gaps,
        gate_verdict: report.verdict.as_str().to_string(),
        gate_exit_code: report.exit_code,
        gates,
    };
    write_json(&out.join("demo.json"), &demo)?;
    Ok(demo)
}

fn no_features(model: &Path) -> DemoError {
    DemoError::Data {
        path: model.to_path_buf(),
        reason: "no `features` tensor".into(),
    }
}

/// Training sample `i` as a tensor (the spec's output, already in memory).
fn sample_tensor(d: &Dataset, i: usize) -> Result<Tensor> {
    let n = d.sample_len();
    let a = ndarray::ArrayD::from_shape_vec(
        ndarray::IxDyn(&d.sample_shape),
        d.x[i * n..(i + 1) * n].to_vec(),
    )
    .map_err(|e| DemoError::Data {
        path: d.source.clone(),
        reason: e.to_string(),
    })?;
    Ok(Tensor::F32(a))
}

/// A normalized tensor mapped back to raw 0-255 pixel values (the spec's
/// mean 0.286 and std 0.353 undone, times 255).
fn unnormalized(t: &Tensor) -> Tensor {
    match t {
        Tensor::F32(a) => Tensor::F32(a.mapv(|v| (v * 0.353 + 0.286) * 255.0)),
        other => other.clone(),
    }
}

fn pct(v: Option<f64>) -> String {
    v.map_or("-".into(), |v| format!("{:.0}%", v * 100.0))
}

fn write_json<T: Serialize>(path: &Path, v: &T) -> Result<()> {
    let text = serde_json::to_string_pretty(v).expect("plain data serializes");
    write(path, &(text + "\n"))
}

/// Accuracy and recalls of the audit's reference (`reference`) or candidate.
fn eval_of(a: &AuditReport, reference: bool, file: &Path) -> ModelEval {
    let (scores, recall): (_, Vec<Option<f64>>) = if reference {
        (
            &a.reference,
            a.classes.iter().map(|c| c.reference_recall).collect(),
        )
    } else {
        (
            &a.candidate,
            a.classes.iter().map(|c| c.candidate_recall).collect(),
        )
    };
    ModelEval {
        file: file
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned(),
        accuracy: scores.accuracy,
        macro_recall: scores.macro_recall,
        minority_recall: recall.get(MINORITY_CLASS).copied().flatten(),
        recall,
        bytes: file_len(file),
    }
}

/// Writes the validation ImageFolder; returns its files and labels in order.
fn write_validation(out: &Path, data: &DemoData) -> Result<(Vec<PathBuf>, Vec<usize>)> {
    let root = out.join("data/validation");
    for c in 0..CLASS_NAMES.len() {
        mkdir(&root.join(class_folder(c)))?;
    }
    let mut files = Vec::new();
    let mut labels = Vec::new();
    for i in 0..data.validation_len() {
        let c = data.test.labels[i] as usize;
        let p = root.join(class_folder(c)).join(format!("{i:04}.png"));
        images::write_png(&data.test.image(i), &p)?;
        files.push(p);
        labels.push(c);
    }
    // The gate lists the folder in sorted order: keep ours identical.
    let mut order: Vec<usize> = (0..files.len()).collect();
    order.sort_by(|&a, &b| files[a].cmp(&files[b]));
    Ok((
        order.iter().map(|&i| files[i].clone()).collect(),
        order.iter().map(|&i| labels[i]).collect(),
    ))
}

/// MNIST digits and synthetic noise, each in its own folder under `data/ood`.
fn write_ood(out: &Path, data: &DemoData, seed: u64) -> Result<Vec<(String, Vec<PathBuf>)>> {
    let mut sets = Vec::new();
    let digits = out.join("data/ood/digits");
    mkdir(&digits)?;
    let mut files = Vec::new();
    for i in 0..data.digits.len().min(500) {
        let p = digits.join(format!("{i:04}.png"));
        images::write_png(&data.digits.image(i), &p)?;
        files.push(p);
    }
    sets.push(("mnist-digits".to_string(), files));
    let noise = out.join("data/ood/noise");
    mkdir(&noise)?;
    let mut rng = SplitMix64::new(seed ^ 0x0dd);
    let mut files = Vec::new();
    for i in 0..200 {
        let p = noise.join(format!("{i:04}.png"));
        images::write_png(&images::noise_image(28, 28, i, &mut rng), &p)?;
        files.push(p);
    }
    sets.push(("noise".to_string(), files));
    Ok(sets)
}

/// Camera-resolution inputs and the training side's tensors for them (the
/// Pillow pipeline the model was trained with, here the engine in `pil` mode,
/// which is bit-exact with Pillow).
fn write_parity(out: &Path, data: &DemoData, pipeline: &Pipeline) -> Result<()> {
    let inputs = out.join("data/parity/inputs");
    let reference = out.join("data/parity/reference");
    mkdir(&inputs)?;
    mkdir(&reference)?;
    for (k, i) in data.pool().take(traffic::PARITY_SAMPLES).enumerate() {
        let big = images::upscale(&data.test.image(i), traffic::CAMERA_SIZE);
        let p = inputs.join(format!("{k:04}.png"));
        images::write_png(&big, &p)?;
        let t = pipeline.run(Source::Pixels {
            image: &big,
            color: Color::Gray,
            label: &p.display().to_string(),
        })?;
        t.write_npy(&reference.join(format!("{k:04}.npy")))?;
    }
    Ok(())
}
