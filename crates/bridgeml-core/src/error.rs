use std::path::PathBuf;

/// Errors raised by the shared IO and tensor helpers.
///
/// Every variant names the file involved when there is one, so that a message
/// shown to the user says which input to fix.
#[derive(Debug, thiserror::Error)]
pub enum CoreError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: not a readable .npy file: {reason}")]
    Npy { path: PathBuf, reason: String },
    #[error("{path}: cannot read CSV: {reason}")]
    Csv { path: PathBuf, reason: String },
    #[error("{path}: cannot read Parquet: {reason}")]
    Parquet { path: PathBuf, reason: String },
    #[error("{path}: unsupported file type (expected {expected})")]
    UnsupportedFormat { path: PathBuf, expected: String },
    #[error("shape error: {0}")]
    Shape(String),
}

impl CoreError {
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        CoreError::Io {
            path: path.into(),
            source,
        }
    }
}

pub type Result<T, E = CoreError> = std::result::Result<T, E>;
