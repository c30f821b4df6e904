//! `bridgeml gate`: the pre-deployment checklist as a CI step. Evidence and
//! rules live in `bridgeml-gate`; the shadow evidence comes from the
//! prediction log through `bridgeml-serve`'s report.

use std::path::PathBuf;

use bridgeml_gate::{render_json, render_markdown, render_text, write_reports, GateReport};
use bridgeml_serve::gate::gate_report;

use crate::output::Outcome;

/// Output of `gate`: text (default), json or md.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum GateFormat {
    #[default]
    Text,
    Json,
    Md,
}

#[derive(Debug, clap::Args)]
#[command(
    after_help = "Exit codes: 0 every gate passed (warnings allowed), 1 a gate failed, 2 the gate could not run.\n\
Gates: parity, quantization, guard, drift, latency, budget, shadow, policy. A gate without its data is `skip` with the reason.\n\
Example:\n  bridgeml gate --config bridgeml.toml --report-dir gate-report --format md"
)]
pub struct GateArgs {
    /// The deployment manifest.
    #[arg(long)]
    pub config: PathBuf,
    #[arg(long, value_enum, default_value_t)]
    pub format: GateFormat,
    /// Write report.json, report.md and report.html (self-contained, with plots) here.
    #[arg(long)]
    pub report_dir: Option<PathBuf>,
    /// Prediction log for the shadow gate (default: the manifest's [server] log, when it exists).
    #[arg(long)]
    pub log: Option<PathBuf>,
    /// Shorter latency measurement (smoke runs).
    #[arg(long)]
    pub quick: bool,
}

pub(crate) fn now_rfc3339() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    bridgeml_core::time::rfc3339(secs)
}

pub fn run(a: GateArgs) -> anyhow::Result<Outcome> {
    let bar = indicatif::ProgressBar::new(8);
    bar.set_style(
        indicatif::ProgressStyle::with_template("{spinner} gate {pos}/{len} {msg}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner()),
    );
    let report = gate_report(&a.config, a.log.clone(), a.quick, now_rfc3339(), |g| {
        bar.set_message(g.as_str().to_string());
        bar.inc(1);
    })?;
    bar.finish_and_clear();
    output(&report, a.format, a.report_dir.as_deref())
}

/// Writes the report files when asked, prints the report, and maps the
/// verdict to the exit code (shared with `bridgeml report`).
pub(crate) fn output(
    report: &GateReport,
    format: GateFormat,
    report_dir: Option<&std::path::Path>,
) -> anyhow::Result<Outcome> {
    if let Some(dir) = report_dir {
        let files = write_reports(report, dir)?;
        eprintln!("reports: {}", files.html.display());
    }
    match format {
        GateFormat::Text => print!("{}", render_text(report)),
        GateFormat::Json => println!("{}", render_json(report)),
        GateFormat::Md => print!("{}", render_markdown(report)),
    }
    Ok(Outcome::from_pass(report.exit_code == 0))
}
