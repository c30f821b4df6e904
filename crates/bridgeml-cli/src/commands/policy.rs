//! `bridgeml policy check`: evaluate a retraining trigger policy (TOML) on
//! observed monitor outputs (JSON) and print the actions triggered and why.

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::Context;
use bridgeml_monitor::policy::{Observation, Policy, PolicyReport, Status, TargetStatus};
use serde::Serialize;

use crate::output::{print_json, table, Format, Outcome};

#[derive(Debug, clap::Args)]
pub struct PolicyArgs {
    #[command(subcommand)]
    sub: PolicySub,
}

#[derive(Debug, clap::Subcommand)]
enum PolicySub {
    /// Evaluate a policy on observations and print the triggered actions.
    #[command(
        after_help = "OBS.json is {\"metrics\": {NAME: VALUE, ...}} (or the bare map), where NAME is\n\
family[.qualifier] (e.g. psi.confidence, per_class_accuracy_drop.fraud, ood_rate) and VALUE\n\
is a number or {\"value\": V, \"threshold\": T} for metrics with a calibrated threshold.\n\
The output of `bridgeml drift --format json` is also accepted: each result becomes\n\
METHOD.COLUMN (METHOD alone for a whole array) with its statistic and threshold; with\n\
chunks, the last chunk counts.\n\n\
Exit codes: 0 when the policy was evaluated (triggered actions are reported), 1 with\n\
--fail-on-action when any action triggered or a target was missed, 2 on an invalid\n\
policy (the line at fault is named) or unreadable observations.\n\n\
Example: bridgeml policy check --policy examples/policy.toml --observations obs.json"
    )]
    Check(CheckArgs),
}

#[derive(Debug, clap::Args)]
struct CheckArgs {
    /// The policy TOML file.
    #[arg(long)]
    policy: PathBuf,
    /// Observed metrics (JSON).
    #[arg(long)]
    observations: PathBuf,
    /// Exit 1 when an action triggers or a steady-state target is missed.
    #[arg(long)]
    fail_on_action: bool,
    #[arg(long, value_enum, default_value_t)]
    format: Format,
}

#[derive(Debug, Serialize)]
struct CheckReport {
    policy: PathBuf,
    observations: PathBuf,
    #[serde(flatten)]
    report: PolicyReport,
}

fn observations(v: serde_json::Value) -> anyhow::Result<BTreeMap<String, Observation>> {
    if let Some(results) = v.get("results").and_then(|r| r.as_array()) {
        let mut out = BTreeMap::new();
        for r in results {
            let method = r
                .get("method")
                .and_then(|m| m.as_str())
                .context("drift result without method")?;
            let name = match r.get("column").and_then(|c| c.as_str()) {
                Some(c) => format!("{method}.{c}"),
                None => method.to_owned(),
            };
            let value = r
                .get("statistic")
                .and_then(|s| s.as_f64())
                .context("drift result without statistic")?;
            let threshold = r.get("threshold").and_then(|t| t.as_f64());
            out.insert(name, Observation::WithThreshold { value, threshold });
        }
        return Ok(out);
    }
    let map = v.get("metrics").cloned().unwrap_or(v);
    serde_json::from_value(map)
        .context("expected {\"metrics\": {NAME: number | {\"value\": .., \"threshold\": ..}}}")
}

pub fn run(args: PolicyArgs) -> anyhow::Result<Outcome> {
    let PolicySub::Check(a) = args.sub;
    let text = std::fs::read_to_string(&a.policy)
        .with_context(|| format!("reading {}", a.policy.display()))?;
    let policy =
        Policy::parse(&text).with_context(|| format!("{}: invalid policy", a.policy.display()))?;
    let raw: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(&a.observations)
            .with_context(|| format!("reading {}", a.observations.display()))?,
    )
    .with_context(|| format!("{}: not JSON", a.observations.display()))?;
    let obs = observations(raw).with_context(|| format!("{}", a.observations.display()))?;
    let report = policy.evaluate(&obs);
    let failed = !report.actions.is_empty()
        || report
            .targets
            .iter()
            .any(|t| t.status == TargetStatus::Missed);
    let out = CheckReport {
        policy: a.policy,
        observations: a.observations,
        report,
    };
    match a.format {
        Format::Json => print_json(&out)?,
        Format::Table => {
            let r = &out.report;
            if r.actions.is_empty() {
                println!("actions triggered: none");
            } else {
                println!("actions triggered: {}", r.actions.join(", "));
            }
            let mut t = table(&["rule", "when", "action", "status", "why"]);
            for rule in &r.rules {
                let reason: Vec<String> = rule
                    .matches
                    .iter()
                    .filter(|m| m.holds || rule.status != Status::Triggered)
                    .map(|m| m.explanation.clone())
                    .collect();
                t.add_row(vec![
                    rule.name.clone(),
                    rule.when.clone(),
                    rule.action.clone(),
                    format!("{:?}", rule.status).to_lowercase(),
                    match (&rule.why, reason.is_empty()) {
                        (Some(w), false) => format!("{}; {w}", reason.join("; ")),
                        (Some(w), true) => w.clone(),
                        (None, _) => reason.join("; "),
                    },
                ]);
            }
            println!("{t}");
            if !r.targets.is_empty() {
                let mut t = table(&["target", "when", "status", "observed"]);
                for g in &r.targets {
                    t.add_row(vec![
                        g.name.clone(),
                        g.when.clone(),
                        format!("{:?}", g.status).to_lowercase(),
                        g.matches
                            .iter()
                            .map(|m| m.explanation.clone())
                            .collect::<Vec<_>>()
                            .join("; "),
                    ]);
                }
                println!("{t}");
            }
        }
    }
    Ok(if a.fail_on_action && failed {
        Outcome::CheckFailed
    } else {
        Outcome::Success
    })
}
