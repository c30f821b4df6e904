//! Training and quantization-aware training of small CNNs and MLPs on
//! [candle](https://github.com/huggingface/candle), with ONNX export and import.
//!
//! A model is a chain of layers from an ONNX operator subset (Conv, Gemm /
//! MatMul, Add as bias, Relu, MaxPool, AveragePool, GlobalAveragePool,
//! Flatten / Reshape, BatchNormalization, Softmax). It comes from an
//! architecture TOML ([`Arch`], [`Model::from_arch`]) or from an FP32 ONNX
//! file ([`load_onnx`]), trains with AdamW ([`fit`]), and exports to ONNX
//! ([`Model::to_onnx`]): FP32, or after [`run_qat`] a QDQ model with int8
//! per-channel weights and fake-quantized activations. The ONNX-writing
//! helpers are public in [`onnx_export`].
//!
//! The library never prints: progress goes through [`Progress`], and a
//! cancel flag is checked between batches.
//!
//! ```
//! use std::path::Path;
//! use std::sync::atomic::AtomicBool;
//! use bridgeml_train::{fit, Arch, Dataset, Model, NoProgress, TrainConfig};
//!
//! let arch = Arch::from_toml(r#"
//!     input = [1, 2, 2]
//!     [[layers]]
//!     op = "flatten"
//!     [[layers]]
//!     op = "linear"
//! "#, Path::new("inline.toml")).unwrap();
//! let mut model = Model::from_arch(&arch, 2, 7).unwrap();
//! let data = Dataset {
//!     x: vec![1.0, 1.0, 0.0, 0.0,   0.0, 0.0, 1.0, 1.0],
//!     y: vec![0, 1],
//!     sample_shape: vec![1, 2, 2],
//!     classes: vec!["top".into(), "bottom".into()],
//!     source: "inline".into(),
//! };
//! let cfg = TrainConfig { epochs: 30, batch_size: 2, lr: 0.05, ..TrainConfig::default() };
//! let stats = fit(&mut model, &data, &cfg, &mut NoProgress, &AtomicBool::new(false)).unwrap();
//! assert_eq!(stats.last().unwrap().accuracy, 1.0);
//! let onnx = model.to_onnx().unwrap();
//! assert_eq!(onnx.opset_import[0].version, 13);
//! ```

pub mod arch;
pub mod data;
mod error;
pub mod export;
pub mod import;
pub mod model;
pub mod onnx_export;
pub mod qat;
pub mod quant;
mod rng;
pub mod train;

pub use arch::{Arch, LayerSpec};
pub use data::{Dataset, Split};
pub use error::{Result, TrainError};
pub use import::load_onnx;
pub use model::{ForwardOut, Layer, Model};
pub use qat::{run_qat, QatConfig};
pub use quant::ActScheme;
pub use train::{
    evaluate, fit, BatchProgress, EpochStats, Evaluation, NoProgress, Progress, TrainConfig,
};
