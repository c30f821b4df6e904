//! `bridgeml report`: the steady-state (30-day) view of a deployment from
//! its prediction log (computation in `bridgeml_serve::steady`).

use std::path::PathBuf;

use bridgeml_gate::manifest::Manifest;
use bridgeml_serve::steady::{steady_state_report, SteadyOptions};

use super::gate::{now_rfc3339, output, GateFormat};
use crate::output::Outcome;

#[derive(Debug, clap::Args)]
#[command(
    after_help = "Targets: validation-to-production accuracy gap on labelled feedback < 5 points, \
latency p50/p99 within 10% of the profiled baseline ([monitor] latency_profile), drift monitors \
stable (PSI windows against the calibrated threshold), OOD flag rate < [sla] max_ood_rate (3%).\n\
Exit codes: 0 every target met (warnings allowed), 1 a target missed, 2 could not run.\n\
Example:\n  bridgeml report --log bridgeml.db --config bridgeml.toml --report-dir steady"
)]
pub struct ReportArgs {
    /// The prediction log written by `bridgeml serve`.
    #[arg(long)]
    pub log: PathBuf,
    /// The deployment manifest.
    #[arg(long)]
    pub config: PathBuf,
    /// Days before the log's last entry to cover.
    #[arg(long, default_value_t = 30)]
    pub days: u32,
    /// Largest acceptable validation-to-production accuracy gap, in points.
    #[arg(long, default_value_t = 5.0)]
    pub max_accuracy_gap: f64,
    /// Largest acceptable latency ratio to the profiled baseline.
    #[arg(long, default_value_t = 1.10)]
    pub max_latency_ratio: f64,
    #[arg(long, value_enum, default_value_t)]
    pub format: GateFormat,
    /// Write report.json, report.md and report.html here.
    #[arg(long)]
    pub report_dir: Option<PathBuf>,
}

pub fn run(a: ReportArgs) -> anyhow::Result<Outcome> {
    let manifest = Manifest::load(&a.config)?;
    let opts = SteadyOptions {
        days: a.days,
        max_accuracy_gap_points: a.max_accuracy_gap,
        max_latency_ratio: a.max_latency_ratio,
        created: now_rfc3339(),
        ..SteadyOptions::default()
    };
    let report = steady_state_report(&manifest, &a.log, &opts)?;
    output(&report, a.format, a.report_dir.as_deref())
}
