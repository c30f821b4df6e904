//! The bridgeml model runtime: load an ONNX model on **tract** (pure Rust,
//! always available) or **ONNX Runtime** (`ort`, loaded at run time from
//! `ORT_DYLIB_PATH` or the `onnxruntime` Python package), run batches of any
//! size, read intermediate tensors by name, and measure what matters before
//! shipping: latency distributions ([`profile`]), activation ranges
//! ([`activations`]), cross-runtime divergence ([`diverge`]) and resource
//! budgets ([`budget`]).
//!
//! The library never prints; the CLI renders its typed reports.
//!
//! ```
//! use bridgeml_runtime::diverge::compare_outputs;
//! use bridgeml_runtime::{BackendChoice, BackendKind};
//! use ndarray::ArrayD;
//!
//! // `auto` picks ONNX Runtime when its library is found, else tract.
//! let kind = BackendChoice::Auto.resolve();
//! assert!(matches!(kind, BackendKind::Ort | BackendKind::Tract));
//! assert_eq!(BackendChoice::Tract.resolve(), BackendKind::Tract);
//!
//! // The divergence core works on any two output arrays.
//! let a = ArrayD::from_shape_vec(vec![1, 3], vec![0.1f32, 2.0, 0.3]).unwrap();
//! let b = ArrayD::from_shape_vec(vec![1, 3], vec![0.1f32, 1.9, 0.3]).unwrap();
//! let d = compare_outputs("logits", &a, &b, 0.05).unwrap();
//! assert!((d.max_abs_error - 0.1).abs() < 1e-6);
//! assert_eq!(d.top1.unwrap().agreement, 1.0);
//! ```
//!
//! Loading and running (`Model::load`, `Model::run`) takes an `.onnx` path:
//!
//! ```no_run
//! use bridgeml_runtime::{BackendChoice, LoadOptions, Model};
//! use bridgeml_core::Tensor;
//!
//! let opts = LoadOptions::new(BackendChoice::Tract).extra_outputs(vec!["features".into()]);
//! let mut model = Model::load("tiny_cnn.onnx".as_ref(), &opts)?;
//! let x = Tensor::read_npy("inputs.npy".as_ref())?;
//! let out = model.run(&x)?;
//! println!("{:?} {:?}", out.first().shape(), out.get("features").map(|f| f.shape()));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

pub mod activations;
mod backend;
pub mod budget;
pub mod diverge;
mod error;
mod model;
pub mod onnx;
mod ort_backend;
pub mod profile;
mod tract_backend;

pub use backend::{Backend, BackendChoice, BackendKind};
pub use error::{Result, RuntimeError};
pub use model::{available_cores, LoadOptions, Model, Outputs};
pub use ndarray;
pub use onnx::{ElemType, IoInfo, OnnxModel};
pub use ort_backend::{find_ort_library, ort_available, ort_library, OrtLibrary};
pub use tract_backend::TRACT_VERSION;
