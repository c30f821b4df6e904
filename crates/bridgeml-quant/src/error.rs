//! Typed errors of quantization and the audit.

use std::path::PathBuf;

/// What the commands that still work on an unsupported model are.
pub const STILL_WORKS: &str =
    "`bridgeml predict`, `profile`, `diverge` and `audit quant` still work on the FP32 model";

#[derive(Debug, thiserror::Error)]
pub enum QuantError {
    #[error(transparent)]
    Runtime(#[from] bridgeml_runtime::RuntimeError),
    #[error(transparent)]
    Core(#[from] bridgeml_core::CoreError),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("unknown calibration method `{0}` (expected minmax, percentile, percentile:P with 0 < P <= 100, or entropy)")]
    UnknownMethod(String),
    #[error("unknown activation type `{0}` (expected u8 or i8)")]
    UnknownActivationType(String),
    #[error("unsupported operator `{op}` (node `{node}`{domain}): {reason}; {still}", domain = if .domain.is_empty() { String::new() } else { format!(", domain `{}`", .domain) }, still = STILL_WORKS)]
    UnsupportedOp {
        op: String,
        node: String,
        domain: String,
        reason: String,
    },
    #[error("the model imports opset {0} of the default domain; QDQ quantization needs opset >= 13 (re-export the model with opset 13 or newer); {still}", still = STILL_WORKS)]
    OldOpset(i64),
    #[error(
        "the model has no Conv, Gemm or MatMul node with a constant weight: nothing to quantize"
    )]
    NothingToQuantize,
    #[error("the model input `{name}` has shape {shape} but one preprocessed item has shape {item:?}: the model has no batch axis; quantization calibrates in batches and needs an input of shape [N, ...] (re-export with a leading batch dimension)")]
    NoBatchAxis {
        name: String,
        shape: String,
        item: Vec<usize>,
    },
    #[error("the calibration set is empty: {0}")]
    EmptyCalibration(String),
    #[error("the calibration set has {got} inputs; at least {min} are needed (use more representative inputs, or lower --min-calibration)")]
    TooFewCalibration { got: usize, min: usize },
    #[error("initializer `{name}`: {reason}")]
    BadInitializer { name: String, reason: String },
    #[error("labels: {0}")]
    Labels(String),
    #[error("{0}")]
    Invalid(String),
}

pub type Result<T> = std::result::Result<T, QuantError>;

impl QuantError {
    pub(crate) fn io(path: &std::path::Path, source: std::io::Error) -> Self {
        QuantError::Io {
            path: path.to_path_buf(),
            source,
        }
    }
}
