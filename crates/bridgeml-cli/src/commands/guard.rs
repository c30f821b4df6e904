//! `bridgeml guard calibrate|score|eval`: OOD guard rails.
//!
//! Inputs come either from the user's own pipeline as `.npy` (`--logits`,
//! `--features`: rows = samples) or from a model + spec + image files. All
//! computation lives in `bridgeml-guard`; the model route goes through the
//! single function [`model_outputs`] (model + spec + files -> logits and a
//! named feature tensor).

use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use bridgeml_core::fingerprint::sha256_file;
use bridgeml_core::Tensor;
use bridgeml_gate::run::run_model as run_on_files;
use bridgeml_guard::mahalanobis::labels_from_f32;
use bridgeml_guard::{
    calibrate_guard, CalibrateConfig, CalibrationData, CalibrationOptions, Expected, Guard, Inputs,
    Method, Shrinkage, Verdict,
};
use bridgeml_preprocess::Pipeline;
use ndarray::{Array2, Ix2};
use serde::Serialize;

use crate::output::{print_json, table, Format, Outcome};

#[derive(Debug, clap::Args)]
pub struct GuardArgs {
    #[command(subcommand)]
    command: GuardCommand,
}

#[derive(Debug, clap::Subcommand)]
enum GuardCommand {
    /// Calibrate an OOD threshold on in-distribution validation data and write a guard file.
    Calibrate(CalibrateArgs),
    /// Score inputs: prediction, confidence, OOD score, is_ood and reliable per input.
    Score(ScoreArgs),
    /// AUROC, AUPR-In/Out, FPR@95TPR and pass rates of an ID set vs an OOD set.
    Eval(EvalArgs),
}

/// `--method` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum MethodArg {
    Energy,
    Msp,
    Maxlogit,
    Mahalanobis,
    Knn,
}

impl From<MethodArg> for Method {
    fn from(m: MethodArg) -> Method {
        match m {
            MethodArg::Energy => Method::Energy,
            MethodArg::Msp => Method::Msp,
            MethodArg::Maxlogit => Method::Maxlogit,
            MethodArg::Mahalanobis => Method::Mahalanobis,
            MethodArg::Knn => Method::Knn,
        }
    }
}

#[derive(Debug, clap::Args)]
struct ModelArgs {
    /// ONNX model (with --spec): run it on image files instead of reading .npy.
    #[arg(long, requires = "spec")]
    model: Option<PathBuf>,
    /// Preprocessing spec of the model.
    #[arg(long, requires = "model")]
    spec: Option<PathBuf>,
}

#[derive(Debug, clap::Args)]
struct CalibrateArgs {
    #[command(flatten)]
    model: ModelArgs,
    /// Folder of in-distribution validation images (with --model/--spec).
    #[arg(long, requires = "model", conflicts_with = "logits")]
    data: Option<PathBuf>,
    /// In-distribution validation logits, .npy [n, classes], from your own pipeline.
    #[arg(long)]
    logits: Option<PathBuf>,
    /// Penultimate features: the tensor NAME with --model, else a .npy [n, d] of the validation set.
    #[arg(long)]
    features: Option<String>,
    #[arg(long, value_enum)]
    method: MethodArg,
    /// Fraction of in-distribution samples that must pass, in (0, 1).
    #[arg(long, default_value_t = 0.95)]
    tpr: f64,
    /// Where to write the guard (JSON; kNN also writes <stem>.knn-bank.npy beside it).
    #[arg(long)]
    output: PathBuf,
    /// Energy temperature T.
    #[arg(long, default_value_t = 1.0)]
    temperature: f64,
    /// kNN: rank of the neighbour whose distance is the score.
    #[arg(long, default_value_t = 50)]
    k: usize,
    /// Class labels of the validation rows, .npy [n] (Mahalanobis; default: arg-max of --logits).
    #[arg(long)]
    labels: Option<PathBuf>,
    /// Reference (training) features for Mahalanobis statistics or the kNN bank, .npy [m, d].
    /// Default: the validation features (kNN then scores them leave-one-out).
    #[arg(long)]
    reference_features: Option<PathBuf>,
    /// Class labels of the reference rows, .npy [m] (Mahalanobis with --reference-features).
    #[arg(long, requires = "reference_features")]
    reference_labels: Option<PathBuf>,
    /// Mahalanobis covariance shrinkage in [0, 1] (default: Ledoit-Wolf estimate).
    #[arg(long)]
    shrinkage: Option<f64>,
    /// Bootstrap resamples for the threshold's confidence interval (0 = none).
    #[arg(long, default_value_t = 1000)]
    bootstrap: usize,
    /// Confidence level of the interval.
    #[arg(long, default_value_t = 0.95)]
    ci_level: f64,
    /// Seed of the bootstrap.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    #[arg(long, value_enum, default_value_t)]
    format: Format,
}

#[derive(Debug, clap::Args)]
struct ScoreArgs {
    /// Guard file from `bridgeml guard calibrate`.
    #[arg(long)]
    guard: PathBuf,
    #[command(flatten)]
    model: ModelArgs,
    /// Input images (with --model/--spec).
    #[arg(long, num_args = 1.., requires = "model")]
    input: Vec<PathBuf>,
    /// Logits .npy [n, classes] (logit methods; optional with feature methods, for predictions).
    #[arg(long)]
    logits: Option<PathBuf>,
    /// Features .npy [n, d] (Mahalanobis / kNN). With --model the feature tensor comes from the guard file.
    #[arg(long)]
    features: Option<PathBuf>,
    #[arg(long, value_enum, default_value_t)]
    format: Format,
}

#[derive(Debug, clap::Args)]
struct EvalArgs {
    /// Guard file from `bridgeml guard calibrate`.
    #[arg(long)]
    guard: PathBuf,
    #[command(flatten)]
    model: ModelArgs,
    /// In-distribution set: an image folder (with --model) or a .npy of logits
    /// (energy/msp/maxlogit) or features (mahalanobis/knn).
    #[arg(long)]
    id: PathBuf,
    /// OOD set, same kind as --id.
    #[arg(long)]
    ood: PathBuf,
    #[arg(long, value_enum, default_value_t)]
    format: Format,
}

pub fn run(args: GuardArgs) -> anyhow::Result<Outcome> {
    match args.command {
        GuardCommand::Calibrate(a) => calibrate(a),
        GuardCommand::Score(a) => score(a),
        GuardCommand::Eval(a) => eval(a),
    }
}

/// What a model produces for a batch of files.
#[derive(Debug)]
struct ModelOutputs {
    logits: Array2<f32>,
    features: Option<Array2<f32>>,
}

/// Fingerprints of a model + spec pair, recorded in and checked against guard files.
#[derive(Debug)]
struct ModelFingerprints {
    model_sha256: String,
    spec_fingerprint: String,
}

fn fingerprints(model: &Path, spec: &Path) -> anyhow::Result<ModelFingerprints> {
    let model_sha256 = sha256_file(model)?;
    let spec_fingerprint = Pipeline::from_path(spec)?.fingerprint().to_string();
    Ok(ModelFingerprints {
        model_sha256,
        spec_fingerprint,
    })
}

/// Model + spec + files -> logits (+ the named feature tensor), through the
/// gate's runner: the same code the gate and the demo use.
fn model_outputs(
    model: &Path,
    spec: &Path,
    files: &[PathBuf],
    feature_tensor: Option<&str>,
) -> anyhow::Result<ModelOutputs> {
    let pipeline = Pipeline::from_path(spec)
        .with_context(|| format!("{}: cannot load the spec", spec.display()))?;
    let run = run_on_files(model, "auto", &pipeline, files, feature_tensor)?;
    Ok(ModelOutputs {
        logits: run.logits,
        features: run.features,
    })
}

/// Image files of a folder, sorted by name.
fn folder_files(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("{}: cannot list folder", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    if files.is_empty() {
        bail!("{}: no files in folder", dir.display());
    }
    Ok(files)
}

/// Reads a `.npy` as a `[rows, cols]` float32 matrix (a 1-D array is one row).
fn read_matrix(path: &Path, what: &str) -> anyhow::Result<Array2<f32>> {
    let t = Tensor::read_npy(path)?.to_f32();
    let a = match t.ndim() {
        1 => {
            let n = t.len();
            t.into_shape_with_order((1, n))?
        }
        2 => t.into_dimensionality::<Ix2>()?,
        d => bail!(
            "{}: {what} must be a 2-D array [samples, columns], got {d} dimensions {:?}",
            path.display(),
            t.shape()
        ),
    };
    Ok(a)
}

fn read_labels(path: &Path) -> anyhow::Result<Vec<usize>> {
    let t = Tensor::read_npy(path)?.to_f32();
    if t.ndim() != 1 {
        bail!("{}: labels must be a 1-D array", path.display());
    }
    let v: Vec<f32> = t.iter().copied().collect();
    labels_from_f32(&v).with_context(|| path.display().to_string())
}

#[derive(Debug, Serialize)]
struct CalibrateReport {
    guard: PathBuf,
    method: Method,
    threshold: f64,
    threshold_ci_low: f64,
    threshold_ci_high: f64,
    ci_level: f64,
    tpr: f64,
    achieved_tpr: f64,
    n_calibration: usize,
    knn_bank: Option<String>,
}

fn calibrate(a: CalibrateArgs) -> anyhow::Result<Outcome> {
    let method: Method = a.method.into();
    let mut cfg = CalibrateConfig {
        method,
        tpr: a.tpr,
        temperature: a.temperature,
        k: a.k,
        shrinkage: a.shrinkage.map_or(Shrinkage::LedoitWolf, Shrinkage::Fixed),
        bootstrap: CalibrationOptions {
            n_bootstrap: a.bootstrap,
            ci_level: a.ci_level,
            seed: a.seed,
        },
        ..Default::default()
    };
    let (logits, features) = match (&a.model.model, &a.model.spec) {
        (Some(model), Some(spec)) => {
            let Some(data) = &a.data else {
                bail!("--model needs --data DIR (in-distribution validation images)");
            };
            let fp = fingerprints(model, spec)?;
            cfg.model_sha256 = Some(fp.model_sha256);
            cfg.spec_fingerprint = Some(fp.spec_fingerprint);
            cfg.feature_tensor = a.features.clone();
            if method.uses_features() && a.features.is_none() {
                bail!("--method {method} needs --features NAME (the model's penultimate tensor)");
            }
            let out = model_outputs(model, spec, &folder_files(data)?, a.features.as_deref())?;
            (Some(out.logits), out.features)
        }
        _ => {
            if a.logits.is_none() && a.features.is_none() {
                bail!(
                    "give --logits ID.npy and/or --features ID.npy (or --model, --spec and --data)"
                );
            }
            let logits = a
                .logits
                .as_deref()
                .map(|p| read_matrix(p, "logits"))
                .transpose()?;
            let features = a
                .features
                .as_deref()
                .map(|p| read_matrix(Path::new(p), "features"))
                .transpose()?;
            (logits, features)
        }
    };
    if method.uses_features() && features.is_none() {
        bail!("--method {method} needs --features");
    }
    if !method.uses_features() && logits.is_none() {
        bail!("--method {method} needs --logits");
    }
    let labels = a.labels.as_deref().map(read_labels).transpose()?;
    let reference = a
        .reference_features
        .as_deref()
        .map(|p| read_matrix(p, "reference features"))
        .transpose()?;
    let reference_labels = a.reference_labels.as_deref().map(read_labels).transpose()?;
    let data = CalibrationData {
        inputs: Inputs {
            logits: logits.as_ref().map(|l| l.view()),
            features: features.as_ref().map(|f| f.view()),
        },
        labels: labels.as_deref(),
        reference_features: reference.as_ref().map(|r| r.view()),
        reference_labels: reference_labels.as_deref(),
    };
    let mut cal = calibrate_guard(&cfg, data)?;
    cal.file
        .save(&a.output, cal.bank.as_ref().map(|b| b.view()))?;
    let f = &cal.file;
    let report = CalibrateReport {
        guard: a.output.clone(),
        method: f.method,
        threshold: f.threshold,
        threshold_ci_low: f.threshold_ci.low,
        threshold_ci_high: f.threshold_ci.high,
        ci_level: f.threshold_ci.level,
        tpr: f.tpr,
        achieved_tpr: f.achieved_tpr,
        n_calibration: f.n_calibration,
        knn_bank: f.knn.as_ref().map(|k| k.bank.clone()),
    };
    match a.format {
        Format::Json => print_json(&report)?,
        Format::Table => {
            let mut t = table(&["method", "tpr", "threshold", "CI", "achieved_tpr", "n"]);
            t.add_row(vec![
                report.method.to_string(),
                format!("{}", report.tpr),
                format!("{:.6}", report.threshold),
                format!(
                    "[{:.6}, {:.6}] ({}%)",
                    report.threshold_ci_low,
                    report.threshold_ci_high,
                    report.ci_level * 100.0
                ),
                format!("{:.4}", report.achieved_tpr),
                report.n_calibration.to_string(),
            ]);
            println!("{t}");
            eprintln!("wrote {}", a.output.display());
        }
    }
    Ok(Outcome::Success)
}

/// Loads the guard, checking it against the model and spec when they are given.
fn load_guard(
    path: &Path,
    model: &ModelArgs,
) -> anyhow::Result<(Guard, Option<(PathBuf, PathBuf)>)> {
    match (&model.model, &model.spec) {
        (Some(m), Some(s)) => {
            let fp = fingerprints(m, s)?;
            let guard = Guard::load(
                path,
                Expected {
                    model_sha256: Some(&fp.model_sha256),
                    spec_fingerprint: Some(&fp.spec_fingerprint),
                },
            )?;
            Ok((guard, Some((m.clone(), s.clone()))))
        }
        _ => Ok((Guard::load(path, Expected::default())?, None)),
    }
}

/// Runs the model for a guard: logits plus the guard's feature tensor when it needs one.
fn run_model(
    guard: &Guard,
    model: &(PathBuf, PathBuf),
    files: &[PathBuf],
) -> anyhow::Result<ModelOutputs> {
    let tensor = guard.file.feature_tensor.as_deref();
    if guard.method().uses_features() && tensor.is_none() {
        bail!(
            "this {} guard was calibrated from .npy features and names no model tensor; pass --features .npy",
            guard.method()
        );
    }
    model_outputs(&model.0, &model.1, files, tensor)
}

#[derive(Debug, Serialize)]
struct ScoreReport {
    guard: PathBuf,
    method: Method,
    threshold: f64,
    results: Vec<Verdict>,
}

fn score(a: ScoreArgs) -> anyhow::Result<Outcome> {
    let (guard, model) = load_guard(&a.guard, &a.model)?;
    let (logits, features) = match &model {
        Some(m) => {
            if a.input.is_empty() {
                bail!("--model needs --input FILE...");
            }
            let out = run_model(&guard, m, &a.input)?;
            (Some(out.logits), out.features)
        }
        None => (
            a.logits
                .as_deref()
                .map(|p| read_matrix(p, "logits"))
                .transpose()?,
            a.features
                .as_deref()
                .map(|p| read_matrix(p, "features"))
                .transpose()?,
        ),
    };
    let inputs = Inputs {
        logits: logits.as_ref().map(|l| l.view()),
        features: features.as_ref().map(|f| f.view()),
    };
    let results = guard.verdicts(inputs)?;
    let report = ScoreReport {
        guard: a.guard.clone(),
        method: guard.method(),
        threshold: guard.file.threshold,
        results,
    };
    match a.format {
        Format::Json => print_json(&report)?,
        Format::Table => {
            let mut t = table(&[
                "#",
                "prediction",
                "confidence",
                "score",
                "is_ood",
                "reliable",
            ]);
            for (i, r) in report.results.iter().enumerate() {
                let name = a
                    .input
                    .get(i)
                    .map_or_else(|| i.to_string(), |p| p.display().to_string());
                t.add_row(vec![
                    name,
                    r.prediction.map_or("-".into(), |p| p.to_string()),
                    r.confidence.map_or("-".into(), |c| format!("{c:.4}")),
                    format!("{:.6}", r.score),
                    r.is_ood.to_string(),
                    r.reliable.to_string(),
                ]);
            }
            println!("{t}");
            eprintln!(
                "{} guard, threshold {:.6}: {} of {} flagged OOD",
                report.method,
                report.threshold,
                report.results.iter().filter(|r| r.is_ood).count(),
                report.results.len()
            );
        }
    }
    Ok(Outcome::Success)
}

#[derive(Debug, Serialize)]
struct EvalReport {
    guard: PathBuf,
    method: Method,
    threshold: f64,
    auroc: f64,
    aupr_in: f64,
    aupr_out: f64,
    fpr_at_95_tpr: f64,
    id_pass_rate: f64,
    ood_pass_rate: f64,
    n_id: usize,
    n_ood: usize,
}

/// Logits and/or features of one evaluation set.
type LogitsAndFeatures = (Option<Array2<f32>>, Option<Array2<f32>>);

fn eval_inputs(
    guard: &Guard,
    model: &Option<(PathBuf, PathBuf)>,
    path: &Path,
) -> anyhow::Result<LogitsAndFeatures> {
    match model {
        Some(m) => {
            let out = run_model(guard, m, &folder_files(path)?)?;
            Ok((Some(out.logits), out.features))
        }
        None => {
            if path.is_dir() {
                bail!(
                    "{}: an image folder needs --model and --spec; without them pass a .npy",
                    path.display()
                );
            }
            if guard.method().uses_features() {
                Ok((None, Some(read_matrix(path, "features")?)))
            } else {
                Ok((Some(read_matrix(path, "logits")?), None))
            }
        }
    }
}

fn view<'a>(l: &'a Option<Array2<f32>>, f: &'a Option<Array2<f32>>) -> Inputs<'a> {
    Inputs {
        logits: l.as_ref().map(|x| x.view()),
        features: f.as_ref().map(|x| x.view()),
    }
}

fn eval(a: EvalArgs) -> anyhow::Result<Outcome> {
    let (guard, model) = load_guard(&a.guard, &a.model)?;
    let (id_l, id_f) = eval_inputs(&guard, &model, &a.id)?;
    let (ood_l, ood_f) = eval_inputs(&guard, &model, &a.ood)?;
    let m = guard
        .evaluate(view(&id_l, &id_f), view(&ood_l, &ood_f))
        .context("evaluating the guard")?;
    let report = EvalReport {
        guard: a.guard.clone(),
        method: guard.method(),
        threshold: guard.file.threshold,
        auroc: m.auroc,
        aupr_in: m.aupr_in,
        aupr_out: m.aupr_out,
        fpr_at_95_tpr: m.fpr_at_95_tpr,
        id_pass_rate: m.id_pass_rate,
        ood_pass_rate: m.ood_pass_rate,
        n_id: m.n_id,
        n_ood: m.n_ood,
    };
    match a.format {
        Format::Json => print_json(&report)?,
        Format::Table => {
            let mut t = table(&[
                "method",
                "AUROC",
                "AUPR-In",
                "AUPR-Out",
                "FPR@95TPR",
                "ID pass",
                "OOD pass",
                "n_id",
                "n_ood",
            ]);
            let pct = |v: f64| format!("{:.2}", v * 100.0);
            t.add_row(vec![
                report.method.to_string(),
                pct(report.auroc),
                pct(report.aupr_in),
                pct(report.aupr_out),
                pct(report.fpr_at_95_tpr),
                pct(report.id_pass_rate),
                pct(report.ood_pass_rate),
                report.n_id.to_string(),
                report.n_ood.to_string(),
            ]);
            println!("{t}");
        }
    }
    Ok(Outcome::Success)
}
