//! `bridgeml quantize`: INT8 post-training quantization into a QDQ ONNX
//! model, calibrated through the serving preprocessing spec.

use std::path::PathBuf;

use anyhow::{bail, Context};
use bridgeml_quant::calibrate::Method;
use bridgeml_quant::{quantize, ActType, QuantSettings, QuantizeOptions, QuantizeReport};
use clap::Args;
use serde::Serialize;

use super::predict::{expand_inputs, BackendArg, Preprocessor};
use crate::output::{print_json, table, Format, Outcome};

#[derive(Debug, Args)]
pub struct QuantizeArgs {
    /// FP32 ONNX model.
    #[arg(long)]
    pub model: PathBuf,
    /// Preprocessing spec (the one used in serving); without it, calibration inputs must be `.npy` items.
    #[arg(long)]
    pub spec: Option<PathBuf>,
    /// Calibration inputs: files or directories of representative data.
    #[arg(long, num_args = 1.., required = true)]
    pub calibration: Vec<PathBuf>,
    /// Calibration method: minmax, percentile[:P] (default P 99.999), entropy.
    #[arg(long, default_value = "minmax")]
    pub method: String,
    /// Quantize weights per output channel (default: per tensor).
    #[arg(long)]
    pub per_channel: bool,
    /// Activation type: u8 (asymmetric) or i8 (symmetric).
    #[arg(long, default_value = "u8")]
    pub activations: String,
    /// Output QDQ model.
    #[arg(long)]
    pub output: PathBuf,
    /// Smallest accepted calibration set.
    #[arg(long, default_value_t = bridgeml_quant::DEFAULT_MIN_CALIBRATION)]
    pub min_calibration: usize,
    /// Backend running the calibration.
    #[arg(long, value_enum, default_value_t = BackendArg::Auto)]
    pub backend: BackendArg,
    #[arg(long, default_value_t = 8)]
    pub batch: usize,
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
}

#[derive(Debug, Serialize)]
struct Report {
    output: String,
    output_sha256: String,
    #[serde(flatten)]
    quant: QuantizeReport,
}

pub fn run(args: QuantizeArgs) -> anyhow::Result<Outcome> {
    let method: Method = args.method.parse()?;
    let activations: ActType = args.activations.parse()?;
    let pre = Preprocessor::new(args.spec.as_deref())?;
    let files = match expand_inputs(&args.calibration) {
        Ok(f) => f,
        Err(e) => {
            return Err(bridgeml_quant::QuantError::EmptyCalibration(format!("{e:#}")).into())
        }
    };
    let mut items = Vec::with_capacity(files.len());
    for f in &files {
        items.push(pre.item(f)?.0);
    }
    if args.output.exists() && args.output.is_dir() {
        bail!("{}: is a directory", args.output.display());
    }
    let options = QuantizeOptions {
        settings: QuantSettings {
            method,
            per_channel: args.per_channel,
            activations,
        },
        backend: args.backend.into(),
        batch: args.batch,
        min_calibration: args.min_calibration,
        spec_fingerprint: pre.fingerprint(),
    };
    let (bytes, quant) = quantize(&args.model, &items, &options)
        .with_context(|| format!("cannot quantize {}", args.model.display()))?;
    // Write next to the target, then rename: no half-written model.
    let tmp = args.output.with_extension("onnx.partial");
    std::fs::write(&tmp, &bytes).with_context(|| format!("{}: cannot write", tmp.display()))?;
    std::fs::rename(&tmp, &args.output)
        .with_context(|| format!("{}: cannot write", args.output.display()))?;
    let report = Report {
        output: args.output.display().to_string(),
        output_sha256: bridgeml_core::fingerprint::sha256_bytes(&bytes),
        quant,
    };
    match args.format {
        Format::Json => print_json(&report)?,
        Format::Table => {
            let q = &report.quant;
            println!(
                "{} -> {} | {} | weights int8 {} | activations {} | {} calibration inputs | opset {}",
                q.source,
                report.output,
                q.method,
                if q.settings.per_channel { "per-channel" } else { "per-tensor" },
                q.settings.activations,
                q.calibration_samples,
                q.opset
            );
            let mut t = table(&["tensor", "kind", "type", "range", "scale", "zero point"]);
            for x in &q.tensors {
                let scale = if x.scale.len() == 1 {
                    format!("{:.6e}", x.scale[0])
                } else {
                    let lo = x.scale.iter().copied().fold(f32::INFINITY, f32::min);
                    let hi = x.scale.iter().copied().fold(0.0f32, f32::max);
                    format!("{} ch: {lo:.3e}..{hi:.3e}", x.scale.len())
                };
                t.add_row(vec![
                    x.name.clone(),
                    x.kind.clone(),
                    x.dtype.clone(),
                    x.range
                        .map_or("-".into(), |(a, b)| format!("[{a:.4}, {b:.4}]")),
                    scale,
                    if x.zero_point.len() == 1 {
                        x.zero_point[0].to_string()
                    } else {
                        "0 (all)".into()
                    },
                ]);
            }
            println!("{t}");
            for (n, why) in &q.skipped {
                println!("kept in float: {n}: {why}");
            }
            if !q.folded.is_empty() {
                println!(
                    "folded into the node before them ({}): {}",
                    q.folded.len(),
                    q.folded.join(", ")
                );
            }
        }
    }
    Ok(Outcome::Success)
}
