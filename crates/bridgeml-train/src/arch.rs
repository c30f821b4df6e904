//! Architecture files: a TOML list of layers that [`crate::Model::from_arch`]
//! turns into a trainable model.
//!
//! ```toml
//! name = "fashion_cnn"
//! input = [1, 28, 28]          # per-sample shape (C, H, W), as the spec produces it
//!
//! [[layers]]
//! op = "conv"
//! out_channels = 16
//! kernel = 3
//! padding = 1
//!
//! [[layers]]
//! op = "linear"                # out_features omitted on the last layer: one per class
//! ```

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::{io_err, Result, TrainError};

/// A parsed architecture file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Arch {
    /// Free-form name, recorded in the exported model's metadata.
    #[serde(default = "default_name")]
    pub name: String,
    /// Per-sample input shape without the batch axis: `[C, H, W]` for images.
    pub input: Vec<usize>,
    pub layers: Vec<LayerSpec>,
}

fn default_name() -> String {
    "model".to_string()
}

/// One layer of an architecture file; `op` selects the variant.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case", deny_unknown_fields)]
pub enum LayerSpec {
    /// 2-D convolution (ONNX `Conv`), square kernel, symmetric zero padding.
    Conv {
        out_channels: usize,
        kernel: usize,
        #[serde(default = "one")]
        stride: usize,
        #[serde(default)]
        padding: usize,
        #[serde(default = "yes")]
        bias: bool,
    },
    /// Batch normalization over channels (ONNX `BatchNormalization`).
    BatchNorm {
        #[serde(default = "default_eps")]
        eps: f64,
        #[serde(default = "default_momentum")]
        momentum: f64,
    },
    /// ONNX `Relu`.
    Relu,
    /// ONNX `MaxPool`; `stride` defaults to `kernel` (training requires stride == kernel).
    MaxPool {
        kernel: usize,
        #[serde(default)]
        stride: Option<usize>,
    },
    /// ONNX `AveragePool`; `stride` defaults to `kernel`.
    AvgPool {
        kernel: usize,
        #[serde(default)]
        stride: Option<usize>,
    },
    /// ONNX `GlobalAveragePool`.
    GlobalAvgPool,
    /// ONNX `Flatten` (axis 1).
    Flatten,
    /// Fully connected layer (ONNX `Gemm` with `transB = 1`). `out_features`
    /// defaults to the number of classes (only allowed on the last one).
    Linear {
        #[serde(default)]
        out_features: Option<usize>,
    },
    /// ONNX `Softmax` over the last axis; only as the final layer (training
    /// then uses the logits before it).
    Softmax,
}

fn one() -> usize {
    1
}
fn yes() -> bool {
    true
}
fn default_eps() -> f64 {
    1e-5
}
fn default_momentum() -> f64 {
    0.1
}

impl LayerSpec {
    /// The `op` key of this layer.
    pub fn op(&self) -> &'static str {
        match self {
            LayerSpec::Conv { .. } => "conv",
            LayerSpec::BatchNorm { .. } => "batch_norm",
            LayerSpec::Relu => "relu",
            LayerSpec::MaxPool { .. } => "max_pool",
            LayerSpec::AvgPool { .. } => "avg_pool",
            LayerSpec::GlobalAvgPool => "global_avg_pool",
            LayerSpec::Flatten => "flatten",
            LayerSpec::Linear { .. } => "linear",
            LayerSpec::Softmax => "softmax",
        }
    }
}

impl Arch {
    /// Parses an architecture from TOML text; `path` only names it in errors.
    pub fn from_toml(text: &str, path: &Path) -> Result<Arch> {
        let arch: Arch = toml::from_str(text).map_err(|e| TrainError::Arch {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
        if arch.input.is_empty() || arch.input.contains(&0) {
            return Err(TrainError::Arch {
                path: path.to_path_buf(),
                message: format!(
                    "`input` must be a non-empty list of positive sizes, got {:?}",
                    arch.input
                ),
            });
        }
        if arch.layers.is_empty() {
            return Err(TrainError::Arch {
                path: path.to_path_buf(),
                message: "no [[layers]]".into(),
            });
        }
        Ok(arch)
    }

    /// Reads and parses an architecture file.
    pub fn from_path(path: &Path) -> Result<Arch> {
        let text = std::fs::read_to_string(path).map_err(io_err(path))?;
        Arch::from_toml(&text, path)
    }
}
