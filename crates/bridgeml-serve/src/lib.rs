//! The bridgeml serving sidecar: it serves the deployment manifest of
//! `bridgeml-gate` ([`bridgeml_gate::manifest`], re-exported as
//! [`manifest`]) through an HTTP server ([`server`], axum + tokio) that answers with the training
//! preprocessing, an OOD flag, and the fingerprints of what answered; a
//! durable prediction log ([`log`], SQLite WAL); rolling drift, OOD and
//! latency monitors with a policy evaluated at each window close
//! ([`monitor`]); shadow testing of a candidate off the critical path and
//! its report ([`report`]).
//!
//! The library never prints: it logs through `tracing` and returns data;
//! the `bridgeml` CLI starts it (`bridgeml init`, `bridgeml serve`,
//! `bridgeml shadow report`).
//!
//! ```
//! use bridgeml_serve::report::wilson;
//!
//! // 95% Wilson interval of 3 disagreements in 100.
//! let (lo, hi) = wilson(3, 100, 1.96);
//! assert!(lo > 0.0 && lo < 0.03 && hi > 0.03 && hi < 0.09);
//! ```

pub mod client;
pub mod gate;
pub mod log;
pub mod monitor;
mod priority;
pub mod report;
pub mod server;
pub mod steady;

pub use bridgeml_gate::manifest;

use std::path::PathBuf;

/// Errors of the serving library; each says what to fix.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// A file the manifest points to (baseline, profile, policy) is unusable.
    #[error("{}: {reason}", path.display())]
    Config { path: PathBuf, reason: String },
    #[error(transparent)]
    Manifest(#[from] bridgeml_gate::GateError),
    #[error(transparent)]
    Guard(#[from] bridgeml_guard::GuardError),
    #[error("prediction log {}: {reason}", path.display())]
    Log { path: PathBuf, reason: String },
    #[error(transparent)]
    Preprocess(#[from] bridgeml_preprocess::PreprocessError),
    #[error(transparent)]
    Runtime(#[from] bridgeml_runtime::RuntimeError),
    #[error(transparent)]
    Monitor(#[from] bridgeml_monitor::MonitorError),
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
}

pub type Result<T> = std::result::Result<T, ServeError>;
