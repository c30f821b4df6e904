//! `bridgeml train`: train a CNN/MLP from an architecture file and export FP32 ONNX.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use bridgeml_preprocess::Pipeline;
use bridgeml_train::export::{META_CLASSES, META_PRODUCED_BY, META_SPEC};
use bridgeml_train::onnx_export::write_model_atomic;
use bridgeml_train::{
    evaluate, fit, Arch, BatchProgress, Dataset, EpochStats, Evaluation, Model, Progress, Split,
    TrainConfig,
};
use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;

use crate::output::{print_json, table, Format, Outcome};

#[derive(Debug, clap::Args)]
pub struct TrainArgs {
    /// Architecture file (TOML), e.g. examples/arch/fashion_cnn.toml.
    #[arg(long)]
    arch: PathBuf,
    #[command(flatten)]
    common: CommonArgs,
    /// Learning rate (AdamW).
    #[arg(long, default_value_t = 1e-3)]
    lr: f64,
}

/// Options shared by `train` and `qat`.
#[derive(Debug, clap::Args)]
pub struct CommonArgs {
    /// Training data: an ImageFolder directory (one sub-folder per class) or a
    /// directory holding IDX files (train-images-idx3-ubyte[.gz] + train-labels-idx1-ubyte[.gz]).
    #[arg(long)]
    pub data: PathBuf,
    /// The preprocessing spec applied to every sample (its fingerprint is embedded in the model).
    #[arg(long)]
    pub spec: PathBuf,
    /// Number of passes over the training data.
    #[arg(long, default_value_t = 5)]
    pub epochs: usize,
    /// Output ONNX file (written atomically at the end).
    #[arg(long)]
    pub output: PathBuf,
    /// Seed for initialization and shuffling: the same seed and data give identical bytes.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    #[arg(long, default_value_t = 64)]
    pub batch_size: usize,
    /// AdamW weight decay.
    #[arg(long, default_value_t = 1e-4)]
    pub weight_decay: f64,
    /// Held-out evaluation data (same layouts as --data; for an IDX directory the
    /// t10k-* files are used): reports accuracy, macro recall and per-class recall.
    #[arg(long)]
    pub val: Option<PathBuf>,
    /// Make a class a minority in the training data: CLASS:RATIO keeps one in RATIO
    /// of its samples (e.g. 6:20 cuts Fashion-MNIST "Shirt" 20:1). CLASS is a label
    /// index or a class folder name.
    #[arg(long, value_name = "CLASS:RATIO")]
    pub minority: Option<String>,
    /// Use only the first N training samples (after --minority), for quick runs.
    #[arg(long)]
    pub limit: Option<usize>,
    /// No progress bar.
    #[arg(long)]
    pub quiet: bool,
    #[arg(long, value_enum, default_value_t)]
    pub format: Format,
}

/// Draws an indicatif bar: epoch, loss, accuracy, ETA.
pub struct BarProgress {
    bar: ProgressBar,
}

impl BarProgress {
    pub fn new(total_batches: u64, quiet: bool) -> BarProgress {
        let bar = if quiet {
            ProgressBar::hidden()
        } else {
            ProgressBar::new(total_batches)
        };
        bar.set_style(
            ProgressStyle::with_template("{msg} [{bar:30}] {pos}/{len} batches, ETA {eta}")
                .expect("valid template")
                .progress_chars("=> "),
        );
        BarProgress { bar }
    }

    pub fn finish(&self) {
        self.bar.finish_and_clear();
    }
}

impl Progress for BarProgress {
    fn batch(&mut self, p: &BatchProgress) {
        self.bar.set_message(format!(
            "epoch {}/{} loss {:.4} acc {:.3}",
            p.epoch, p.epochs, p.loss, p.accuracy
        ));
        self.bar.inc(1);
    }
    fn epoch(&mut self, s: &EpochStats) {
        self.bar.println(format!(
            "epoch {}: loss {:.4}, accuracy {:.4}, {:.1}s",
            s.epoch, s.loss, s.accuracy, s.seconds
        ));
    }
}

/// A cancel flag set by Ctrl-C (checked between batches).
pub fn cancel_flag() -> Arc<AtomicBool> {
    let flag = Arc::new(AtomicBool::new(false));
    let f = flag.clone();
    // Only one handler per process; a second call (tests) keeps the first.
    let _ = ctrlc::set_handler(move || f.store(true, Ordering::SeqCst));
    flag
}

/// Loads the training data, applying --minority and --limit.
pub fn load_training(common: &CommonArgs, pipeline: &Pipeline) -> anyhow::Result<Dataset> {
    let mut data = Dataset::load(&common.data, pipeline, Split::Train)?;
    if let Some(m) = &common.minority {
        let (class, ratio) = m
            .split_once(':')
            .with_context(|| format!("--minority {m}: expected CLASS:RATIO, e.g. 6:20"))?;
        let ratio: usize = ratio
            .parse()
            .ok()
            .filter(|&r| r > 0)
            .with_context(|| format!("--minority {m}: RATIO must be a positive integer"))?;
        let idx = data
            .classes
            .iter()
            .position(|c| c == class)
            .or_else(|| class.parse().ok())
            .with_context(|| format!("--minority {m}: no class `{class}` in {:?}", data.classes))?;
        data.subsample_class(idx, ratio)?;
    }
    if let Some(n) = common.limit {
        data.truncate(n);
    }
    Ok(data)
}

/// Evaluation summary in reports.
#[derive(Debug, Serialize)]
pub struct EvalReport {
    pub data: PathBuf,
    pub samples: usize,
    pub accuracy: f64,
    pub macro_recall: f64,
    /// Per class name; null when the class has no samples.
    pub recall: Vec<(String, Option<f64>)>,
    /// Recall of the --minority class, when one was given.
    pub minority_recall: Option<f64>,
}

pub fn eval_report(
    model: &mut Model,
    val: &Path,
    pipeline: &Pipeline,
    classes: &[String],
    minority: Option<usize>,
    batch_size: usize,
) -> anyhow::Result<(EvalReport, Evaluation)> {
    let data = Dataset::load(val, pipeline, Split::Test)?;
    if data.classes != classes {
        anyhow::bail!(
            "--val classes {:?} differ from the training classes {:?}",
            data.classes,
            classes
        );
    }
    let ev = evaluate(model, &data, batch_size)?;
    Ok((
        EvalReport {
            data: val.to_path_buf(),
            samples: ev.samples,
            accuracy: ev.accuracy,
            macro_recall: ev.macro_recall,
            recall: classes
                .iter()
                .cloned()
                .zip(ev.recall.iter().copied())
                .collect(),
            minority_recall: minority.and_then(|m| ev.recall.get(m).copied().flatten()),
        },
        ev,
    ))
}

/// The index of the --minority class, if any.
pub fn minority_index(common: &CommonArgs, classes: &[String]) -> Option<usize> {
    let (class, _) = common.minority.as_deref()?.split_once(':')?;
    classes
        .iter()
        .position(|c| c == class)
        .or_else(|| class.parse().ok())
}

/// The report of `train` and `qat`.
#[derive(Debug, Serialize)]
pub struct TrainReport {
    pub command: &'static str,
    pub output: PathBuf,
    pub spec_fingerprint: String,
    pub classes: Vec<String>,
    pub train_samples: usize,
    pub class_counts: Vec<usize>,
    pub parameters: usize,
    pub config: TrainConfig,
    pub epochs: Vec<EpochStats>,
    pub train_seconds: f64,
    pub seconds_per_epoch: f64,
    pub val: Option<EvalReport>,
}

pub fn render(report: &TrainReport, format: Format) -> anyhow::Result<()> {
    match format {
        Format::Json => print_json(report),
        Format::Table => {
            let mut t = table(&["epoch", "loss", "accuracy", "seconds"]);
            for e in &report.epochs {
                t.add_row(vec![
                    e.epoch.to_string(),
                    format!("{:.4}", e.loss),
                    format!("{:.4}", e.accuracy),
                    format!("{:.1}", e.seconds),
                ]);
            }
            println!("{t}");
            if let Some(v) = &report.val {
                let mut t = table(&["class", "recall"]);
                for (c, r) in &v.recall {
                    t.add_row(vec![c.clone(), r.map_or("-".into(), |r| format!("{r:.4}"))]);
                }
                println!("{t}");
                println!(
                    "validation ({} samples): accuracy {:.4}, macro recall {:.4}{}",
                    v.samples,
                    v.accuracy,
                    v.macro_recall,
                    v.minority_recall
                        .map(|m| format!(", minority recall {m:.4}"))
                        .unwrap_or_default()
                );
            }
            println!(
                "wrote {} ({} training samples, {} parameters, {:.1}s per epoch)",
                report.output.display(),
                report.train_samples,
                report.parameters,
                report.seconds_per_epoch
            );
            Ok(())
        }
    }
}

pub fn run(args: TrainArgs) -> anyhow::Result<Outcome> {
    let c = &args.common;
    let cancel = cancel_flag();
    let pipeline = Pipeline::from_path(&c.spec)?;
    let arch = Arch::from_path(&args.arch)?;
    let data = load_training(c, &pipeline)?;
    let mut model = Model::from_arch(&arch, data.classes.len(), c.seed)?;
    let cfg = TrainConfig {
        epochs: c.epochs,
        batch_size: c.batch_size,
        lr: args.lr,
        weight_decay: c.weight_decay,
        seed: c.seed,
    };
    let mut bar = BarProgress::new(
        (c.epochs * data.len().div_ceil(c.batch_size.max(1))) as u64,
        c.quiet,
    );
    let start = Instant::now();
    let stats = fit(&mut model, &data, &cfg, &mut bar, &cancel);
    bar.finish();
    let stats = stats?;
    let train_seconds = start.elapsed().as_secs_f64();
    model.set_metadata(META_SPEC, pipeline.fingerprint());
    model.set_metadata(META_CLASSES, &serde_json::to_string(&data.classes)?);
    model.set_metadata(
        bridgeml_quant::CLASS_COUNTS_KEY,
        &serde_json::to_string(&data.class_counts())?,
    );
    model.set_metadata(META_PRODUCED_BY, "bridgeml train");
    let minority = minority_index(c, &data.classes);
    let val = match &c.val {
        Some(v) => Some(
            eval_report(
                &mut model,
                v,
                &pipeline,
                &data.classes,
                minority,
                c.batch_size,
            )?
            .0,
        ),
        None => None,
    };
    if cancel.load(Ordering::SeqCst) {
        anyhow::bail!(bridgeml_train::TrainError::Interrupted);
    }
    write_model_atomic(&model.to_onnx()?, &c.output)?;
    let report = TrainReport {
        command: "train",
        output: c.output.clone(),
        spec_fingerprint: pipeline.fingerprint().to_string(),
        class_counts: data.class_counts(),
        classes: data.classes.clone(),
        train_samples: data.len(),
        parameters: model.parameter_count(),
        seconds_per_epoch: train_seconds / stats.len().max(1) as f64,
        config: cfg,
        epochs: stats,
        train_seconds,
        val,
    };
    render(&report, c.format)?;
    Ok(Outcome::Success)
}
