use std::path::{Path, PathBuf};

/// Errors of the preprocessing engine. Each names the file (spec or input)
/// and the reason, because the message is what the user sees.
#[derive(Debug, thiserror::Error)]
pub enum PreprocessError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}invalid spec: {reason}", path.as_ref().map(|p| format!("{}: ", p.display())).unwrap_or_default())]
    SpecParse {
        path: Option<PathBuf>,
        reason: String,
    },
    #[error("invalid spec{}: {}{reason}",
        path.as_ref().map(|p| format!(" {}", p.display())).unwrap_or_default(),
        step.map(|i| format!("step {i} ({}) ", op.as_deref().unwrap_or("?"))).unwrap_or_default())]
    SpecInvalid {
        step: Option<usize>,
        op: Option<String>,
        reason: String,
        #[doc(hidden)]
        path: Option<PathBuf>,
    },
    #[error("{input}: cannot decode image: {reason}")]
    Decode { input: String, reason: String },
    #[error(
        "{input}: image has {pixels} pixels, more than the limit of {limit} (input.max_pixels)"
    )]
    TooLarge {
        input: String,
        pixels: u64,
        limit: u64,
    },
    #[error("{input}: step {step} ({op}): {reason}")]
    Step {
        input: String,
        step: usize,
        op: String,
        reason: String,
    },
    #[error("{input}: {reason}")]
    Tabular { input: String, reason: String },
    #[error("{0}")]
    InvalidArgument(String),
    #[error(transparent)]
    Core(#[from] bridgeml_core::CoreError),
}

impl PreprocessError {
    /// Attaches the spec file a parse or validation error came from.
    pub fn in_file(self, file: &Path) -> Self {
        match self {
            PreprocessError::SpecParse { reason, .. } => PreprocessError::SpecParse {
                path: Some(file.to_path_buf()),
                reason,
            },
            PreprocessError::SpecInvalid {
                step, op, reason, ..
            } => PreprocessError::SpecInvalid {
                step,
                op,
                reason,
                path: Some(file.to_path_buf()),
            },
            other => other,
        }
    }
}

pub type Result<T, E = PreprocessError> = std::result::Result<T, E>;
