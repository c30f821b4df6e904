//! `bridgeml shadow report`: the candidate's disagreement with the live model.

use std::path::PathBuf;

use anyhow::{anyhow, Context};
use bridgeml_serve::report::{parse_time_ms, shadow_report, ReportRule, ShadowReport};
use clap::{Args, Subcommand};

use crate::output::{print_json, Outcome};

#[derive(Debug, Args)]
pub struct ShadowArgs {
    #[command(subcommand)]
    pub command: ShadowCommand,
}

#[derive(Debug, Subcommand)]
pub enum ShadowCommand {
    /// Coverage, per-segment disagreement with Wilson intervals, accuracy, verdict.
    Report(ReportArgs),
}

/// `--format` of the shadow report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum ReportFormat {
    #[default]
    Md,
    Json,
}

#[derive(Debug, Args)]
pub struct ReportArgs {
    /// Prediction log written by `bridgeml serve`.
    #[arg(long)]
    pub log: PathBuf,
    /// Start (Unix seconds or RFC 3339 UTC, e.g. 2026-01-02T00:00:00Z).
    #[arg(long)]
    pub since: Option<String>,
    /// End (exclusive), same forms as --since.
    #[arg(long)]
    pub until: Option<String>,
    /// Hours of traffic required.
    #[arg(long, default_value_t = 72.0)]
    pub min_hours: f64,
    /// Largest acceptable disagreement rate of a high-value segment (0..1).
    #[arg(long, default_value_t = 0.05)]
    pub max_disagreement: f64,
    /// Manifest whose [segments] weights name the high-value segments.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Value weight from which a segment counts as high value.
    #[arg(long, default_value_t = 2.0)]
    pub high_value_weight: f64,
    #[arg(long, value_enum, default_value_t = ReportFormat::Md)]
    pub format: ReportFormat,
}

pub fn run(a: ShadowArgs) -> anyhow::Result<Outcome> {
    let ShadowCommand::Report(a) = a.command;
    let t = |s: &Option<String>| -> anyhow::Result<Option<i64>> {
        s.as_deref()
            .map(|v| {
                parse_time_ms(v)
                    .ok_or_else(|| anyhow!("{v:?}: expected Unix seconds or RFC 3339 UTC"))
            })
            .transpose()
    };
    let mut rule = ReportRule {
        min_hours: a.min_hours,
        max_disagreement: a.max_disagreement,
        high_value_weight: a.high_value_weight,
        ..ReportRule::default()
    };
    if let Some(c) = &a.config {
        rule.weights = bridgeml_serve::manifest::Manifest::load(c)
            .with_context(|| format!("reading {}", c.display()))?
            .segments
            .weights;
    }
    let r = shadow_report(&a.log, t(&a.since)?, t(&a.until)?, rule)?;
    match a.format {
        ReportFormat::Json => print_json(&r)?,
        ReportFormat::Md => print!("{}", markdown(&r)),
    }
    Ok(Outcome::from_pass(r.verdict == "accept"))
}

fn pct(v: f64) -> String {
    format!("{:.1}%", 100.0 * v)
}

fn markdown(r: &ShadowReport) -> String {
    let mut o = format!(
        "# Shadow report\n\nLog: `{}`, {} rows, {} compared, {} candidate errors, {} not shadowed.\n\nCoverage: {:.2} h of traffic (required {} h).\n\n",
        r.log, r.rows, r.compared, r.shadow_errors, r.not_shadowed, r.hours_covered, r.min_hours
    );
    o.push_str("| segment | weight | compared | disagreements | rate | 95% CI | labelled | live acc | candidate acc |\n|---|---|---|---|---|---|---|---|---|\n");
    for s in std::iter::once(&r.overall).chain(&r.segments) {
        o.push_str(&format!(
            "| {} | {} | {} | {} | {} | {}..{} | {} | {} | {} |\n",
            s.segment,
            s.weight,
            s.compared,
            s.disagreements,
            pct(s.disagreement_rate),
            pct(s.ci95_low),
            pct(s.ci95_high),
            s.labelled,
            s.live_accuracy.map_or("-".into(), pct),
            s.candidate_accuracy.map_or("-".into(), pct),
        ));
    }
    o.push_str(&format!("\n**Verdict: {}**\n\n", r.verdict));
    for reason in &r.reasons {
        o.push_str(&format!("- {reason}\n"));
    }
    o
}
