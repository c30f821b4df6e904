use std::path::PathBuf;

use crate::BackendKind;

/// Everything that can go wrong when loading or running a model.
///
/// Variants carry the data a caller needs to explain the failure (the file,
/// the tensor name, the expected and actual shapes); none of them is a panic.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: not a valid ONNX model: {reason}")]
    InvalidModel { path: PathBuf, reason: String },
    #[error(
        "ONNX Runtime is not available: {reason}. Install it with `pip install onnxruntime` \
         or set ORT_DYLIB_PATH to a libonnxruntime shared library, or use `--backend tract`"
    )]
    OrtUnavailable { reason: String },
    #[error("the model has {count} inputs ({names}); only single-input models are supported")]
    MultipleInputs { count: usize, names: String },
    #[error("input `{name}`: the model expects {expected}, got {got}")]
    InputMismatch {
        name: String,
        expected: String,
        got: String,
    },
    #[error("no tensor named `{name}` in the model (some names: {available})")]
    UnknownTensor { name: String, available: String },
    #[error("{backend} backend: {reason}")]
    Backend {
        backend: BackendKind,
        reason: String,
    },
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    #[error(transparent)]
    Core(#[from] bridgeml_core::CoreError),
}

impl RuntimeError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        RuntimeError::Io {
            path: path.into(),
            source,
        }
    }

    pub(crate) fn backend(backend: BackendKind, reason: impl std::fmt::Display) -> Self {
        RuntimeError::Backend {
            backend,
            reason: format!("{reason:#}"),
        }
    }
}

pub type Result<T, E = RuntimeError> = std::result::Result<T, E>;
