use std::path::PathBuf;

/// Everything that can go wrong in the guard library.
///
/// Every variant carries the data needed to tell the user what to fix; the
/// library never prints and never panics on bad input.
#[derive(Debug, thiserror::Error)]
pub enum GuardError {
    /// An input set has no rows (or no columns).
    #[error("{what} is empty")]
    Empty { what: String },
    /// A NaN or infinite value in logits, features or scores.
    #[error("{what} contains a non-finite value ({value}) at row {row}, column {col}")]
    NonFinite {
        what: String,
        row: usize,
        col: usize,
        value: f64,
    },
    /// Logit-based scores need at least two classes.
    #[error(
        "{what} has {n_classes} class column(s); OOD scores on logits need at least 2 classes"
    )]
    TooFewClasses { what: String, n_classes: usize },
    /// The requested true-positive rate is not strictly between 0 and 1.
    #[error("the requested TPR must lie strictly between 0 and 1, got {tpr}")]
    TprOutOfRange { tpr: f64 },
    /// A parameter (temperature, k, shrinkage, CI level, ...) has an invalid value.
    #[error("invalid {name} = {value}: {reason}")]
    InvalidParameter {
        name: &'static str,
        value: String,
        reason: String,
    },
    /// Two arrays that must agree in size do not.
    #[error("{what}: expected {expected}, got {got}")]
    ShapeMismatch {
        what: String,
        expected: String,
        got: String,
    },
    /// The method needs an input that was not given.
    #[error("method `{method}` needs {needs}")]
    MissingInput { method: String, needs: String },
    /// The data cannot support the requested statistics (e.g. zero variance).
    #[error("degenerate reference data: {0}")]
    Degenerate(String),
    /// The guard file was made for another model or spec, or its feature bank changed.
    #[error("guard file was calibrated for {what} {expected}, but {found} was given; recalibrate the guard for this {what}")]
    FingerprintMismatch {
        what: &'static str,
        expected: String,
        found: String,
    },
    /// A guard file or bank cannot be read or written.
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A guard file or bank is malformed.
    #[error("{path}: not a valid guard file: {reason}")]
    Parse { path: PathBuf, reason: String },
    /// Reading or writing a `.npy` feature bank failed.
    #[error(transparent)]
    Core(#[from] bridgeml_core::CoreError),
}

/// Result type of the guard library.
pub type Result<T, E = GuardError> = std::result::Result<T, E>;
