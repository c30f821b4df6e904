//! The bridgeml serving sidecar: a deployment manifest ([`manifest`]), an
//! HTTP server ([`server`], axum + tokio) that answers with the training
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
//! use bridgeml_serve::manifest::Manifest;
//! use bridgeml_serve::report::wilson;
//!
//! let m = Manifest::from_toml_str(r#"
//! [model]
//! path = "model.onnx"
//! [spec]
//! path = "spec.toml"
//! [shadow]
//! model = "candidate.onnx"
//! sample_rate = 0.5
//! "#, "/srv/app".as_ref()).unwrap();
//! assert_eq!(m.resolve(&m.model.path), std::path::Path::new("/srv/app/model.onnx"));
//! assert_eq!(m.server.log, std::path::Path::new("bridgeml.db"));
//! assert_eq!(m.shadow.unwrap().queue, 64);
//! // Unknown keys are refused.
//! assert!(Manifest::from_toml_str("[model]\npath='m'\npth='x'\n[spec]\npath='s'", ".".as_ref()).is_err());
//! // 95% Wilson interval of 3 disagreements in 100.
//! let (lo, hi) = wilson(3, 100, 1.96);
//! assert!(lo > 0.0 && lo < 0.03 && hi > 0.03 && hi < 0.09);
//! ```

pub mod client;
pub mod log;
pub mod manifest;
pub mod monitor;
pub mod report;
pub mod server;

use std::path::PathBuf;

/// Errors of the serving library; each says what to fix.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("{}: {reason}", path.display())]
    Manifest { path: PathBuf, reason: String },
    #[error("{what}: fingerprint mismatch for {}: recorded {recorded}, file has {actual}; {fix}", path.display())]
    Fingerprint {
        what: String,
        path: PathBuf,
        recorded: String,
        actual: String,
        fix: String,
    },
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
