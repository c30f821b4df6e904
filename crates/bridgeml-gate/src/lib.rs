//! The release gate's shared ground: the deployment manifest `bridgeml.toml`
//! ([`manifest`]) read by `bridgeml serve` and `bridgeml gate`.
//!
//! Loading a manifest checks everything a deployment depends on before
//! anything runs: unknown keys and wrong types are reported with the
//! manifest's `file:line`, referenced files must exist, and every recorded
//! fingerprint (model sha256, spec fingerprint, baselines, the guard's model
//! and spec) must match the files on disk.
//!
//! ```
//! use bridgeml_gate::manifest::Manifest;
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
//! // Unknown keys are refused, naming the line.
//! let e = Manifest::from_toml_str("[model]\npath='m'\npth='x'\n[spec]\npath='s'", ".".as_ref())
//!     .unwrap_err();
//! assert!(e.to_string().contains("bridgeml.toml:3"), "{e}");
//! ```

pub mod manifest;

use std::path::PathBuf;

/// Errors of the manifest and gate; each names the file (and line when
/// known) and says what to fix.
#[derive(Debug, thiserror::Error)]
pub enum GateError {
    /// TOML syntax, unknown key or wrong type, located in the manifest.
    #[error("{}:{line}:{column}: {reason}", path.display())]
    Parse {
        path: PathBuf,
        line: usize,
        column: usize,
        reason: String,
    },
    /// A value that parses but is not acceptable (`line` when the key was found).
    #[error("{}{}: {key}: {reason}", path.display(), line.map(|l| format!(":{l}")).unwrap_or_default())]
    Invalid {
        path: PathBuf,
        line: Option<usize>,
        key: String,
        reason: String,
    },
    /// A file the manifest references does not exist.
    #[error("{}{}: {key} = {:?}: no such file ({}); paths are relative to the manifest", manifest.display(), line.map(|l| format!(":{l}")).unwrap_or_default(), given.display(), resolved.display())]
    MissingFile {
        manifest: PathBuf,
        line: Option<usize>,
        key: String,
        given: PathBuf,
        resolved: PathBuf,
    },
    /// A recorded fingerprint does not match the file on disk.
    #[error("{what}: fingerprint mismatch for {}: recorded {recorded}, file has {actual}; {fix}", path.display())]
    Fingerprint {
        what: String,
        path: PathBuf,
        recorded: String,
        actual: String,
        fix: String,
    },
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Preprocess(#[from] bridgeml_preprocess::PreprocessError),
    #[error(transparent)]
    Guard(#[from] bridgeml_guard::GuardError),
}

pub type Result<T> = std::result::Result<T, GateError>;
