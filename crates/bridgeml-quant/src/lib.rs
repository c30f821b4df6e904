//! INT8 post-training quantization and the quantization audit.
//!
//! * [`calibrate`]: activation ranges over a calibration set, collected with
//!   the runtime's activation-range collector and reduced by `minmax`,
//!   `percentile:P` or `entropy` (KL divergence, the TensorRT / ONNX Runtime
//!   histogram method).
//! * [`qdq`]: the QDQ rewrite of an FP32 ONNX graph (standard
//!   `QuantizeLinear` / `DequantizeLinear` only, opset >= 13): symmetric
//!   int8 weights per tensor or per output channel, `u8` (asymmetric) or
//!   `i8` (symmetric) activations, int32 biases.
//! * [`audit`]: which classes pay for a candidate model (INT8, FP16, ...)
//!   against its reference, with a recall-drop gate; shares its divergence
//!   core with `bridgeml diverge`.
//!
//! The library never prints; the CLI renders its typed reports.
//!
//! ```
//! use bridgeml_quant::calibrate::Method;
//! use bridgeml_quant::qdq::{scale_zero_point, ActType};
//!
//! let m: Method = "percentile:99.99".parse().unwrap();
//! assert_eq!(m, Method::Percentile(99.99));
//! assert!("mse".parse::<Method>().is_err());
//! assert_eq!("i8".parse::<ActType>().unwrap(), ActType::I8);
//!
//! // uint8 activations over [-1, 3]: scale 4/255, zero point 64 (as ONNX Runtime).
//! let (scale, zp) = scale_zero_point(-1.0, 3.0, 0, 255, false);
//! assert_eq!(zp, 64);
//! assert!((scale - 4.0 / 255.0).abs() < 1e-9);
//! ```
//!
//! Quantizing a model (the `bridgeml quantize` command does this):
//!
//! ```no_run
//! use bridgeml_core::Tensor;
//! use bridgeml_quant::{quantize, QuantizeOptions};
//!
//! let items: Vec<Tensor> = Tensor::read_npy("calib.npy".as_ref())?.unstack();
//! let (bytes, report) = quantize("model.onnx".as_ref(), &items, &QuantizeOptions::default())?;
//! std::fs::write("model.int8.onnx", bytes)?;
//! println!("{} tensors quantized", report.tensors.len());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

pub mod audit;
pub mod calibrate;
mod error;
pub mod qdq;

use std::path::Path;

use bridgeml_core::Tensor;
use bridgeml_runtime::{BackendChoice, OnnxModel};
use prost::Message;
use serde::Serialize;

pub use error::{QuantError, Result, STILL_WORKS};
pub use qdq::{ActType, QuantSettings, QuantizedTensor};

/// Metadata key a QAT exporter writes (any value but `false` / `0`) so that
/// the audit knows the candidate was produced by quantization-aware training.
pub const QAT_KEY: &str = "bridgeml.qat";
/// Metadata key a trainer writes with the per-class sample counts of its
/// training data (a JSON array), for the audit's imbalance => QAT rule.
pub const CLASS_COUNTS_KEY: &str = "bridgeml.class_counts";
/// Prefix of the metadata keys `bridgeml quantize` writes.
pub const META_PREFIX: &str = "bridgeml.quant.";
/// Default smallest calibration set.
pub const DEFAULT_MIN_CALIBRATION: usize = 8;

/// Options of [`quantize`].
#[derive(Debug, Clone)]
pub struct QuantizeOptions {
    pub settings: QuantSettings,
    /// Backend running the calibration.
    pub backend: BackendChoice,
    pub batch: usize,
    /// Smallest accepted calibration set.
    pub min_calibration: usize,
    /// Fingerprint of the preprocessing spec the items came through.
    pub spec_fingerprint: Option<String>,
}

impl Default for QuantizeOptions {
    fn default() -> Self {
        QuantizeOptions {
            settings: QuantSettings::default(),
            backend: BackendChoice::Auto,
            batch: 8,
            min_calibration: DEFAULT_MIN_CALIBRATION,
            spec_fingerprint: None,
        }
    }
}

/// What [`quantize`] did.
#[derive(Debug, Clone, Serialize)]
pub struct QuantizeReport {
    pub source: String,
    pub source_sha256: String,
    pub settings: QuantSettings,
    pub method: String,
    pub calibration_samples: usize,
    pub opset: i64,
    pub tensors: Vec<QuantizedTensor>,
    /// Quantizable nodes left in float: (node, reason).
    pub skipped: Vec<(String, String)>,
    /// Relu / Clip nodes folded into the quantized node before them.
    pub folded: Vec<String>,
    pub metadata: Vec<(String, String)>,
}

/// Checks that `model` has a batch axis the `items` (one item each, no batch axis) stack onto.
pub fn check_batch_axis(model: &OnnxModel, item: &Tensor) -> Result<()> {
    let Some(input) = model.inputs().into_iter().next() else {
        return Err(QuantError::Invalid("the model has no input".into()));
    };
    if let Some(dims) = &input.dims {
        if dims.len() != item.shape().len() + 1 {
            return Err(QuantError::NoBatchAxis {
                name: input.name.clone(),
                shape: input.shape_text(),
                item: item.shape().to_vec(),
            });
        }
    }
    Ok(())
}

/// Whether a model's metadata marks it as produced by QAT.
pub fn is_qat(model: &OnnxModel) -> bool {
    model.proto.metadata_props.iter().any(|p| {
        p.key == QAT_KEY
            && !matches!(
                p.value.trim().to_ascii_lowercase().as_str(),
                "false" | "0" | ""
            )
    })
}

/// Largest / smallest training class count from a model's
/// [`CLASS_COUNTS_KEY`] metadata (absent, unparsable or with an empty class: `None`).
pub fn training_imbalance(model: &OnnxModel) -> Option<f64> {
    let text = model
        .proto
        .metadata_props
        .iter()
        .find(|p| p.key == CLASS_COUNTS_KEY)?
        .value
        .clone();
    let counts: Vec<u64> = serde_json::from_str(&text).ok()?;
    let (lo, hi) = (counts.iter().min()?, counts.iter().max()?);
    (*lo > 0).then(|| *hi as f64 / *lo as f64)
}

/// Calibrates `model_path` on `items` and returns the serialized QDQ model.
pub fn quantize(
    model_path: &Path,
    items: &[Tensor],
    options: &QuantizeOptions,
) -> Result<(Vec<u8>, QuantizeReport)> {
    let model = OnnxModel::from_path(model_path)?;
    let plan = qdq::plan(&model)?;
    if items.is_empty() {
        return Err(QuantError::EmptyCalibration("no calibration inputs".into()));
    }
    if items.len() < options.min_calibration {
        return Err(QuantError::TooFewCalibration {
            got: items.len(),
            min: options.min_calibration,
        });
    }
    check_batch_axis(&model, &items[0])?;
    let settings = options.settings;
    let ranges = calibrate::collect_ranges(
        model_path,
        items,
        &plan.activations,
        settings.method,
        options.backend,
        options.batch,
    )?;
    let by_name = calibrate::ranges_by_name(&ranges, settings.method);
    let sha = bridgeml_core::fingerprint::sha256_file(model_path)?;
    let mut metadata = vec![
        (format!("{META_PREFIX}format"), "qdq".to_string()),
        (format!("{META_PREFIX}method"), settings.method.to_string()),
        (
            format!("{META_PREFIX}per_channel"),
            settings.per_channel.to_string(),
        ),
        (
            format!("{META_PREFIX}activations"),
            settings.activations.to_string(),
        ),
        (
            format!("{META_PREFIX}weights"),
            "int8-symmetric".to_string(),
        ),
        (format!("{META_PREFIX}source_sha256"), sha.clone()),
        (
            format!("{META_PREFIX}calibration_samples"),
            items.len().to_string(),
        ),
        (
            format!("{META_PREFIX}tool"),
            format!("bridgeml-quant {}", env!("CARGO_PKG_VERSION")),
        ),
    ];
    if let Some(f) = &options.spec_fingerprint {
        metadata.push((format!("{META_PREFIX}spec_fingerprint"), f.clone()));
    }
    let qdq::Rewritten {
        model: proto,
        tensors,
        folded,
    } = qdq::rewrite(&model, &plan, &by_name, &settings, &metadata)?;
    let report = QuantizeReport {
        source: model_path.display().to_string(),
        source_sha256: sha,
        settings,
        method: settings.method.to_string(),
        calibration_samples: items.len(),
        opset: qdq::default_opset(&proto),
        tensors,
        skipped: plan.skipped,
        folded,
        metadata,
    };
    Ok((proto.encode_to_vec(), report))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_counts(value: &str) -> OnnxModel {
        let mut proto = tract_onnx::pb::ModelProto::default();
        proto
            .metadata_props
            .push(tract_onnx::pb::StringStringEntryProto {
                key: CLASS_COUNTS_KEY.into(),
                value: value.into(),
            });
        OnnxModel { proto }
    }

    #[test]
    fn training_imbalance_reads_the_class_counts() {
        assert_eq!(
            training_imbalance(&with_counts("[600, 30, 300]")),
            Some(20.0)
        );
        assert_eq!(training_imbalance(&with_counts("[5, 0]")), None);
        assert_eq!(training_imbalance(&with_counts("not json")), None);
        assert_eq!(training_imbalance(&with_counts("[]")), None);
    }
}
