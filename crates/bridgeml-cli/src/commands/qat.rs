//! `bridgeml qat`: fine-tune an FP32 ONNX model with fake quantization and export QDQ ONNX.

use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::time::Instant;

use bridgeml_preprocess::Pipeline;
use bridgeml_train::export::{META_CLASSES, META_PRODUCED_BY, META_SPEC};
use bridgeml_train::onnx_export::write_model_atomic;
use bridgeml_train::{load_onnx, run_qat, ActScheme, QatConfig, TrainConfig, TrainError};

use super::train::{
    cancel_flag, eval_report, load_training, minority_index, render, BarProgress, CommonArgs,
    TrainReport,
};
use crate::output::Outcome;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Activations {
    /// Asymmetric uint8 (zero point in 0..=255), as ONNX Runtime's default.
    U8,
    /// Symmetric int8 (zero point 0).
    I8,
}

#[derive(Debug, clap::Args)]
pub struct QatArgs {
    /// FP32 ONNX model within the trainable op subset (e.g. from `bridgeml train`).
    #[arg(long)]
    model: PathBuf,
    #[command(flatten)]
    common: CommonArgs,
    /// Learning rate (AdamW); fine-tuning wants a small one.
    #[arg(long, default_value_t = 1e-4)]
    lr: f64,
    /// Activation quantization.
    #[arg(long, value_enum, default_value_t = Activations::U8)]
    activations: Activations,
    /// Batches used to initialize the activation ranges before fine-tuning.
    #[arg(long, default_value_t = 8)]
    calibration_batches: usize,
}

pub fn run(args: QatArgs) -> anyhow::Result<Outcome> {
    let c = &args.common;
    let cancel = cancel_flag();
    let pipeline = Pipeline::from_path(&c.spec)?;
    let mut model = load_onnx(&args.model)?;
    if let Some(fp) = model.metadata_value(META_SPEC) {
        if fp != pipeline.fingerprint() {
            return Err(TrainError::SpecMismatch {
                model: fp.to_string(),
                spec: pipeline.fingerprint().to_string(),
            }
            .into());
        }
    }
    let data = load_training(c, &pipeline)?;
    if let Some(classes) = model.metadata_value(META_CLASSES) {
        let names: Vec<String> = serde_json::from_str(classes).unwrap_or_default();
        if !names.is_empty() && names != data.classes {
            anyhow::bail!(
                "the model was trained on classes {names:?} but --data has {:?}",
                data.classes
            );
        }
    }
    let cfg = QatConfig {
        train: TrainConfig {
            epochs: c.epochs,
            batch_size: c.batch_size,
            lr: args.lr,
            weight_decay: c.weight_decay,
            seed: c.seed,
        },
        activations: match args.activations {
            Activations::U8 => ActScheme::U8,
            Activations::I8 => ActScheme::I8,
        },
        calibration_batches: args.calibration_batches,
        ..QatConfig::default()
    };
    let mut bar = BarProgress::new(
        (c.epochs * data.len().div_ceil(c.batch_size.max(1))) as u64,
        c.quiet,
    );
    let start = Instant::now();
    let stats = run_qat(&mut model, &data, &cfg, &mut bar, &cancel);
    bar.finish();
    let stats = stats?;
    let train_seconds = start.elapsed().as_secs_f64();
    model.set_metadata(META_SPEC, pipeline.fingerprint());
    model.set_metadata(META_CLASSES, &serde_json::to_string(&data.classes)?);
    model.set_metadata(
        bridgeml_quant::CLASS_COUNTS_KEY,
        &serde_json::to_string(&data.class_counts())?,
    );
    model.set_metadata(META_PRODUCED_BY, "bridgeml qat");
    // `audit quant` reads this to waive its imbalance => QAT warning.
    model.set_metadata(bridgeml_quant::QAT_KEY, "true");
    model.set_metadata(
        "bridgeml.quantization",
        &format!(
            "qat; weights int8 symmetric per-channel; activations {}",
            match cfg.activations {
                ActScheme::U8 => "uint8 asymmetric",
                ActScheme::I8 => "int8 symmetric",
            }
        ),
    );
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
        anyhow::bail!(TrainError::Interrupted);
    }
    write_model_atomic(&model.to_onnx()?, &c.output)?;
    let report = TrainReport {
        command: "qat",
        output: c.output.clone(),
        spec_fingerprint: pipeline.fingerprint().to_string(),
        class_counts: data.class_counts(),
        classes: data.classes.clone(),
        train_samples: data.len(),
        parameters: model.parameter_count(),
        seconds_per_epoch: train_seconds / stats.len().max(1) as f64,
        config: cfg.train,
        epochs: stats,
        train_seconds,
        val,
    };
    render(&report, c.format)?;
    Ok(Outcome::Success)
}
