//! `bridgeml budget`: parameters, weight bytes, MACs and peak activation memory.

use std::path::PathBuf;

use bridgeml_runtime::budget::{budget, Budget};
use clap::Args;
use serde::Serialize;

use crate::output::{print_json, table, Format, Outcome};

#[derive(Debug, Args)]
pub struct BudgetArgs {
    /// ONNX model.
    #[arg(long)]
    pub model: PathBuf,
    /// Items per batch the MACs and activation memory are computed for.
    #[arg(long, default_value_t = 1)]
    pub batch: usize,
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
}

#[derive(Debug, Serialize)]
pub struct BudgetReport {
    pub model: String,
    #[serde(flatten)]
    pub budget: Budget,
}

fn human(n: u64) -> String {
    let f = n as f64;
    if f >= 1e9 {
        format!("{:.3} G", f / 1e9)
    } else if f >= 1e6 {
        format!("{:.3} M", f / 1e6)
    } else if f >= 1e3 {
        format!("{:.3} k", f / 1e3)
    } else {
        n.to_string()
    }
}

pub fn run(args: BudgetArgs) -> anyhow::Result<Outcome> {
    let b = budget(&args.model, args.batch)?;
    let report = BudgetReport {
        model: args.model.display().to_string(),
        budget: b,
    };
    match args.format {
        Format::Json => print_json(&report)?,
        Format::Table => {
            let b = &report.budget;
            println!(
                "model {} ({}), batch {}",
                report.model, b.model_sha256, b.batch
            );
            let mut t = table(&["metric", "value", "exact"]);
            t.add_row(vec![
                "nodes".into(),
                b.nodes.to_string(),
                b.nodes.to_string(),
            ]);
            t.add_row(vec!["params".into(), human(b.params), b.params.to_string()]);
            t.add_row(vec![
                "weight bytes".into(),
                format!("{}B", human(b.weight_bytes)),
                b.weight_bytes.to_string(),
            ]);
            t.add_row(vec![
                "MACs per batch".into(),
                human(b.macs),
                b.macs.to_string(),
            ]);
            t.add_row(vec![
                "MACs per inference".into(),
                human(b.macs_per_inference),
                b.macs_per_inference.to_string(),
            ]);
            for (op, m) in &b.macs_by_op {
                t.add_row(vec![format!("  MACs {op}"), human(*m), m.to_string()]);
            }
            t.add_row(vec![
                "peak activation bytes".into(),
                format!("{}B", human(b.peak_activation_bytes)),
                b.peak_activation_bytes.to_string(),
            ]);
            println!("{t}");
            if !b.unknown_shapes.is_empty() {
                println!(
                    "note: shapes unknown for {} node(s), not counted: {}",
                    b.unknown_shapes.len(),
                    b.unknown_shapes.join(", ")
                );
            }
        }
    }
    Ok(Outcome::Success)
}
