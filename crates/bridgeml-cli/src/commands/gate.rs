//! `bridgeml gate`: the pre-deployment checklist as a CI step. Evidence and
//! rules live in `bridgeml-gate`; the shadow evidence comes from the
//! prediction log through `bridgeml-serve`'s report.

use std::path::PathBuf;

use anyhow::Context;
use bridgeml_gate::gates::ShadowEvidence;
use bridgeml_gate::manifest::Manifest;
use bridgeml_gate::run::{run_gate, RunOptions};
use bridgeml_gate::{render_json, render_markdown, render_text, write_reports, GateReport};
use bridgeml_serve::report::{shadow_report, ReportRule};

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

/// Shadow evidence from the log, or why there is none.
pub(crate) fn shadow_evidence(
    manifest: &Manifest,
    log: Option<PathBuf>,
) -> anyhow::Result<(Option<ShadowEvidence>, Option<String>)> {
    if manifest.shadow.is_none() && log.is_none() {
        return Ok((None, Some("no [shadow] candidate in the manifest".into())));
    }
    let log = log.unwrap_or_else(|| manifest.resolve(&manifest.server.log));
    if !log.exists() {
        return Ok((
            None,
            Some(format!("no prediction log yet ({})", log.display())),
        ));
    }
    let t = &manifest.gate.thresholds;
    let rule = ReportRule {
        min_hours: t.min_shadow_hours,
        max_disagreement: t.max_segment_disagreement,
        ..ReportRule::default()
    };
    let r = shadow_report(&log, None, None, rule)
        .with_context(|| format!("{}: cannot read the prediction log", log.display()))?;
    if r.compared == 0 {
        return Ok((
            None,
            Some(format!("{}: no shadowed requests logged", log.display())),
        ));
    }
    Ok((
        Some(ShadowEvidence {
            hours: r.hours_covered,
            samples: r.compared as usize,
            segments: r
                .segments
                .iter()
                .map(|s| (s.segment.clone(), s.compared as usize, s.disagreement_rate))
                .collect(),
            overall_disagreement: r.overall.disagreement_rate,
        }),
        None,
    ))
}

pub(crate) fn now_rfc3339() -> String {
    // Seconds since the epoch rendered as UTC without a date crate.
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (h, m, s) = (rem / 3600, (rem % 3600) / 60, rem % 60);
    // Civil from days (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let mo = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(mo <= 2);
    format!("{y:04}-{mo:02}-{d:02}T{h:02}:{m:02}:{s:02}Z")
}

/// Runs the gate on a manifest; shared with `bridgeml demo`.
pub(crate) fn gate_report(
    config: &std::path::Path,
    log: Option<PathBuf>,
    quick: bool,
    progress: impl FnMut(bridgeml_gate::GateName),
) -> anyhow::Result<GateReport> {
    let manifest = Manifest::load(config)?;
    let (shadow, shadow_skip_reason) = shadow_evidence(&manifest, log)?;
    let opts = RunOptions {
        quick,
        shadow,
        shadow_skip_reason,
        created: now_rfc3339(),
    };
    Ok(run_gate(&manifest, &opts, progress)?)
}

pub fn run(a: GateArgs) -> anyhow::Result<Outcome> {
    let bar = indicatif::ProgressBar::new(8);
    bar.set_style(
        indicatif::ProgressStyle::with_template("{spinner} gate {pos}/{len} {msg}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner()),
    );
    let report = gate_report(&a.config, a.log.clone(), a.quick, |g| {
        bar.set_message(g.as_str().to_string());
        bar.inc(1);
    })?;
    bar.finish_and_clear();
    if let Some(dir) = &a.report_dir {
        let files = write_reports(&report, dir)?;
        eprintln!("reports: {}", files.html.display());
    }
    match a.format {
        GateFormat::Text => print!("{}", render_text(&report)),
        GateFormat::Json => println!("{}", render_json(&report)),
        GateFormat::Md => print!("{}", render_markdown(&report)),
    }
    Ok(Outcome::from_pass(report.exit_code == 0))
}
