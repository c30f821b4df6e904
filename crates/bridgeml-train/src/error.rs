use std::path::PathBuf;

/// Everything that can go wrong while building, training, importing or
/// exporting a model. Variants carry the data needed for a precise message.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    #[error("cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("invalid architecture file {path}: {message}")]
    Arch { path: PathBuf, message: String },
    #[error("architecture: layer {index} ({op}): {message}")]
    Layer {
        index: usize,
        op: String,
        message: String,
    },
    #[error("dataset {path}: {message}")]
    Data { path: PathBuf, message: String },
    #[error(
        "unsupported ONNX operator `{op}` at node `{node}`: the trainable subset is Conv, Gemm, MatMul(+Add), Add (bias), Relu, MaxPool, AveragePool, GlobalAveragePool, Flatten, Reshape (to [N,-1]), BatchNormalization, Softmax (last); `bridgeml quantize` and `bridgeml profile` still work on this model"
    )]
    UnsupportedOp { op: String, node: String },
    #[error(
        "ONNX node `{node}` ({op}): {message}; `bridgeml quantize` and `bridgeml profile` still work on this model"
    )]
    UnsupportedAttribute {
        op: String,
        node: String,
        message: String,
    },
    #[error("ONNX model {path}: {message}")]
    Model { path: PathBuf, message: String },
    #[error(
        "the model was trained with preprocessing spec {model} but --spec has fingerprint {spec}; use the spec the model was trained with"
    )]
    SpecMismatch { model: String, spec: String },
    #[error("the dataset has {data} classes but the model outputs {model}")]
    ClassCount { data: usize, model: usize },
    #[error("input shape mismatch: the spec produces {data:?} per sample but the model expects {model:?}")]
    InputShape { data: Vec<usize>, model: Vec<usize> },
    #[error("training diverged at epoch {epoch}: loss is {loss}")]
    Diverged { epoch: usize, loss: f32 },
    #[error("interrupted (Ctrl-C); no output was written")]
    Interrupted,
    #[error("preprocessing: {0}")]
    Preprocess(#[from] bridgeml_preprocess::PreprocessError),
    #[error("tensor computation: {0}")]
    Candle(#[from] candle_core::Error),
    #[error("invalid option: {0}")]
    Config(String),
}

/// Result alias of this crate.
pub type Result<T> = std::result::Result<T, TrainError>;

pub(crate) fn io_err(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> TrainError {
    let path = path.into();
    move |source| TrainError::Io { path, source }
}
