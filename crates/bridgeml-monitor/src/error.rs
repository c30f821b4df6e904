/// Every way a monitoring computation can refuse its input.
///
/// Variants carry the data needed to tell the user what to fix; none of the
/// statistics in this crate returns `NaN` silently or panics on bad input.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum MonitorError {
    /// A sample with no usable values.
    #[error("{what} is empty")]
    Empty { what: String },
    /// Too few rows for the statistic (e.g. MMD^2_u needs two rows per sample).
    #[error("{what} needs at least {needed} rows, got {got}")]
    TooFew {
        what: String,
        needed: usize,
        got: usize,
    },
    /// Reference and current rows have different widths.
    #[error("dimension mismatch: reference has {reference} columns, current has {current}")]
    DimensionMismatch { reference: usize, current: usize },
    /// A value that is not finite where the statistic does not define one.
    #[error("{what} has a non-finite value ({value}) at row {row}")]
    NonFinite {
        what: String,
        row: usize,
        value: f64,
    },
    /// A parameter out of its valid range.
    #[error("invalid {name}: {reason}")]
    InvalidParameter { name: String, reason: String },
    /// The input makes the statistic undefined (e.g. all reference rows identical for the median heuristic).
    #[error("degenerate input: {0}")]
    Degenerate(String),
    /// An invalid policy file, with the 1-based line at fault.
    #[error("policy line {line}: {reason}")]
    Policy { line: usize, reason: String },
}

pub type Result<T, E = MonitorError> = std::result::Result<T, E>;

pub(crate) fn invalid(name: &str, reason: impl Into<String>) -> MonitorError {
    MonitorError::InvalidParameter {
        name: name.into(),
        reason: reason.into(),
    }
}
