//! The bridgeml deployment gate: the deployment manifest `bridgeml.toml`
//! ([`manifest`], shared with `bridgeml serve`), the gate rules ([`gates`]),
//! typed gate results, the overall verdict, and the reports a reviewer reads.
//!
//! Loading a manifest checks everything a deployment depends on before
//! anything runs: unknown keys and wrong types are reported with the
//! manifest's `file:line`, referenced files must exist, and every recorded
//! fingerprint must match the files on disk.
//!
//! A [`GateReport`] holds one [`GateResult`] per gate (parity, quantization,
//! guard, drift, latency, budget, shadow, policy), each with a
//! [`Status`], its evidence, thresholds, individual [`Check`]s and
//! [`Plot`]s. Plots are data, not pixels: the renderers turn them into inline
//! SVG ([`svg`]) inside one self-contained HTML file.
//!
//! Renderers: [`render_json`] (the stable schema, see `docs/REPORTS.md`),
//! [`render_markdown`] (fits a pull-request comment), [`render_html`] (no
//! network fetches, no JavaScript), [`render_text`]; [`write_reports`] writes
//! `report.json`, `report.md` and `report.html` into a directory.
//!
//! ```
//! use bridgeml_gate::{Check, Comparison, GateName, GateReport, GateResult, Status, Verdict};
//!
//! let latency = GateResult::new(GateName::Latency, "p95 within the SLA")
//!     .with_check(Check::compare("p95_ms", 8.2, Comparison::Le, 10.0).with_unit("ms"));
//! let shadow = GateResult::skipped(GateName::Shadow, "no prediction log given");
//! let report = GateReport::new("2024-06-01T12:00:00Z", "bridgeml.toml", vec![latency, shadow]);
//!
//! assert_eq!(report.gates[0].status, Status::Pass);
//! assert_eq!(report.verdict, Verdict::Pass);
//! assert_eq!(report.exit_code, 0);
//! let json = bridgeml_gate::render_json(&report);
//! assert!(json.contains("\"verdict\": \"pass\""));
//! let html = bridgeml_gate::render_html(&report);
//! assert!(html.starts_with("<!DOCTYPE html>"));
//! ```

use std::path::PathBuf;

pub mod gates;
pub mod manifest;
pub mod report;
pub mod run;
pub mod svg;

pub use report::{
    render_html, render_json, render_markdown, render_text, write_reports, Artifact, BarSeries,
    Check, Comparison, GateName, GateReport, GateResult, GroupedBars, HLine, HistSeries, Histogram,
    Limit, LinePlot, LineSeries, LineStyle, Plot, ReportFiles, Status, VLine, Verdict,
    SCHEMA_VERSION,
};

/// Errors of the manifest, the gate and its reports; each names the file
/// (and line when known) and says what to fix.
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
    #[error(transparent)]
    Preprocess(#[from] bridgeml_preprocess::PreprocessError),
    #[error(transparent)]
    Guard(#[from] bridgeml_guard::GuardError),
    #[error(transparent)]
    Core(#[from] bridgeml_core::CoreError),
    #[error(transparent)]
    Quant(#[from] bridgeml_quant::QuantError),

    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A report file is not valid report JSON.
    #[error("{path}: not a bridgeml gate report: {source}")]
    ReportJson {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    /// A report uses a schema version this build does not understand.
    #[error("{path}: report schema version {found}, this build reads version {supported}")]
    SchemaVersion {
        path: PathBuf,
        found: u32,
        supported: u32,
    },
}

/// Result alias of the gate crate.
pub type Result<T, E = GateError> = std::result::Result<T, E>;
