//! The [`Backend`] trait and backend selection.

use std::fmt;

use bridgeml_core::Tensor;
use ndarray::ArrayD;

use crate::Result;

/// A concrete inference engine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BackendKind {
    /// tract: pure Rust, always available.
    Tract,
    /// ONNX Runtime, loaded at run time from `libonnxruntime`.
    Ort,
}

impl BackendKind {
    pub fn name(self) -> &'static str {
        match self {
            BackendKind::Tract => "tract",
            BackendKind::Ort => "ort",
        }
    }
}

impl fmt::Display for BackendKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for BackendKind {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s.trim() {
            "tract" => Ok(BackendKind::Tract),
            "ort" | "onnxruntime" => Ok(BackendKind::Ort),
            other => Err(format!("unknown backend `{other}` (expected tract or ort)")),
        }
    }
}

/// What the user asked for: a backend, or `auto` (ort when its library is
/// found, else tract).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BackendChoice {
    #[default]
    Auto,
    Tract,
    Ort,
}

impl BackendChoice {
    /// The backend this choice resolves to on this machine.
    pub fn resolve(self) -> BackendKind {
        match self {
            BackendChoice::Tract => BackendKind::Tract,
            BackendChoice::Ort => BackendKind::Ort,
            BackendChoice::Auto => {
                if crate::ort_backend::ort_available() {
                    BackendKind::Ort
                } else {
                    BackendKind::Tract
                }
            }
        }
    }
}

impl From<BackendKind> for BackendChoice {
    fn from(k: BackendKind) -> Self {
        match k {
            BackendKind::Tract => BackendChoice::Tract,
            BackendKind::Ort => BackendChoice::Ort,
        }
    }
}

/// One loaded model on one engine. Implementations run a whole batch (the
/// leading axis of `input`) and return the requested outputs, converted to
/// `float32`, in the order they were requested at load time.
pub trait Backend: Send + fmt::Debug {
    fn kind(&self) -> BackendKind;
    /// Version of the engine (tract crate version, or ONNX Runtime library version).
    fn version(&self) -> String;
    /// Intra-op threads the engine was configured with.
    fn threads(&self) -> usize;
    fn run(&mut self, input: &Tensor) -> Result<Vec<ArrayD<f32>>>;
}
