//! `bridgeml audit quant`: which classes pay for a quantized (or FP16, or
//! any other) candidate model against its reference, on labelled data.

use std::path::PathBuf;

use anyhow::{bail, Context};
use bridgeml_quant::audit::{audit, load_labels, AuditConfig, AuditReport};
use bridgeml_runtime::{BackendKind, LoadOptions, Model};
use clap::{Args, Subcommand};
use serde::Serialize;

use super::predict::{check_items_fit, read_labels, BackendArg, Preprocessor};
use crate::output::{print_json, table, Format, Outcome};

#[derive(Debug, Args)]
pub struct AuditArgs {
    #[command(subcommand)]
    pub command: AuditCommand,
}

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Reference vs candidate (INT8, FP16, ...) on labelled data: per-class
    /// recall, flips in the boundary band, confusion delta, recall-drop gate.
    Quant(QuantAuditArgs),
}

#[derive(Debug, Args)]
pub struct QuantAuditArgs {
    /// Reference model (usually FP32).
    #[arg(long)]
    pub reference: PathBuf,
    /// Candidate model (INT8 QDQ, FP16, QAT, ...).
    #[arg(long)]
    pub candidate: PathBuf,
    /// Preprocessing spec; without it, data files must be `.npy` items.
    #[arg(long)]
    pub spec: Option<PathBuf>,
    /// Data directory.
    #[arg(long)]
    pub data: PathBuf,
    /// Labels: the ImageFolder directory (the --data directory, one
    /// sub-folder per class) or a CSV `file,label` (paths relative to --data).
    #[arg(long)]
    pub labels: PathBuf,
    /// Class names, one per line (line i names class i); labels may then be names.
    /// Without it, integer labels are class indices, else sorted names are.
    #[arg(long)]
    pub class_names: Option<PathBuf>,
    /// Boundary band of the reference's top-1 probability, `LO-HI`.
    #[arg(long, default_value = "0.45-0.55")]
    pub band: String,
    /// Gate: fail (exit 1) when any class's recall drops by more than this many points.
    #[arg(long, default_value_t = 2.0)]
    pub max_recall_drop: f64,
    /// Warn when the class imbalance exceeds this ratio and the candidate is not QAT.
    #[arg(long, default_value_t = 10.0)]
    pub imbalance_warn: f64,
    #[arg(long, value_enum, default_value_t = BackendArg::Auto)]
    pub backend: BackendArg,
    #[arg(long, default_value_t = 8)]
    pub batch: usize,
    #[arg(long)]
    pub threads: Option<usize>,
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
}

#[derive(Debug, Serialize)]
struct ModelSide {
    model: String,
    model_sha256: String,
    backend: BackendKind,
}

#[derive(Debug, Serialize)]
struct Report {
    reference_model: ModelSide,
    candidate_model: ModelSide,
    #[serde(skip_serializing_if = "Option::is_none")]
    spec_fingerprint: Option<String>,
    #[serde(flatten)]
    audit: AuditReport,
    pass: bool,
}

fn parse_band(s: &str) -> anyhow::Result<(f64, f64)> {
    let parts: Vec<&str> = s.split(['-', ',', ':']).map(str::trim).collect();
    let [lo, hi] = parts.as_slice() else {
        bail!("--band `{s}`: expected LO-HI, e.g. 0.45-0.55");
    };
    let (lo, hi): (f64, f64) = (
        lo.parse().with_context(|| format!("--band `{s}`"))?,
        hi.parse().with_context(|| format!("--band `{s}`"))?,
    );
    if !(0.0..=1.0).contains(&lo) || !(0.0..=1.0).contains(&hi) || lo > hi {
        bail!("--band `{s}`: need 0 <= LO <= HI <= 1");
    }
    Ok((lo, hi))
}

fn pct(v: Option<f64>) -> String {
    v.map_or("-".into(), |v| format!("{:.1}", 100.0 * v))
}

pub fn run(args: AuditArgs) -> anyhow::Result<Outcome> {
    match args.command {
        AuditCommand::Quant(a) => run_quant(a),
    }
}

fn run_quant(args: QuantAuditArgs) -> anyhow::Result<Outcome> {
    let band = parse_band(&args.band)?;
    let names = read_labels(args.class_names.as_deref())?;
    let set = load_labels(&args.data, &args.labels, names.as_deref())?;
    let pre = Preprocessor::new(args.spec.as_deref())?;
    let mut items = Vec::with_capacity(set.files.len());
    for f in &set.files {
        items.push(pre.item(f)?.0);
    }
    let opts = LoadOptions::new(args.backend.into()).threads(args.threads);
    let mut mr = Model::load(&args.reference, &opts)?;
    let mut mc = Model::load(&args.candidate, &opts)?;
    check_items_fit(&mr, &items, &pre)?;
    check_items_fit(&mc, &items, &pre)?;
    let or = mr.run_items(&items, args.batch)?;
    let oc = mc.run_items(&items, args.batch)?;
    let qat = bridgeml_quant::is_qat(mc.onnx());
    let config = AuditConfig {
        band,
        max_recall_drop: args.max_recall_drop,
        imbalance_warn: args.imbalance_warn,
        training_imbalance: bridgeml_quant::training_imbalance(mr.onnx()),
        ..AuditConfig::default()
    };
    let report = audit(
        or.first(),
        oc.first(),
        &set.labels,
        &set.class_names,
        qat,
        &config,
    )?;
    let side = |m: &Model| ModelSide {
        model: m.path().display().to_string(),
        model_sha256: m.sha256().to_string(),
        backend: m.backend(),
    };
    let pass = report.gate.pass;
    let report = Report {
        reference_model: side(&mr),
        candidate_model: side(&mc),
        spec_fingerprint: pre.fingerprint(),
        audit: report,
        pass,
    };
    match args.format {
        Format::Json => print_json(&report)?,
        Format::Table => print_table(&report),
    }
    for w in &report.audit.gate.warnings {
        eprintln!("warning: {w}");
    }
    Ok(Outcome::from_pass(pass))
}

fn print_table(r: &Report) {
    let a = &r.audit;
    println!(
        "reference {} | candidate {}{} | {} samples, backend {}",
        r.reference_model.model,
        r.candidate_model.model,
        if a.candidate_qat { " (QAT)" } else { "" },
        a.samples,
        r.candidate_model.backend
    );
    println!(
        "accuracy {:.2}% -> {:.2}% ({:+.2} points); macro recall {:.2}% -> {:.2}%; imbalance {:.1}:1",
        100.0 * a.reference.accuracy,
        100.0 * a.candidate.accuracy,
        a.accuracy_delta_points,
        100.0 * a.reference.macro_recall,
        100.0 * a.candidate.macro_recall,
        a.imbalance_ratio
    );
    println!(
        "flips {} ({:.2}%): in band [{:.2}, {:.2}] {}/{} ({:.2}%), outside {}/{} ({:.2}%); correct->wrong {}, wrong->correct {}",
        a.flips.total,
        100.0 * a.flips.rate,
        a.flips.band.0,
        a.flips.band.1,
        a.flips.in_band.flips,
        a.flips.in_band.samples,
        100.0 * a.flips.in_band.rate,
        a.flips.outside_band.flips,
        a.flips.outside_band.samples,
        100.0 * a.flips.outside_band.rate,
        a.flips.correct_to_wrong,
        a.flips.wrong_to_correct
    );
    let mut t = table(&[
        "class",
        "support",
        "prior",
        "prec ref",
        "prec cand",
        "recall ref",
        "recall cand",
        "delta (pts)",
        "flips in",
        "flips out",
    ]);
    for c in &a.classes {
        t.add_row(vec![
            format!("{}{}", c.name, if c.minority { " (minority)" } else { "" }),
            c.support.to_string(),
            format!("{:.3}", c.prior),
            pct(c.reference_precision),
            pct(c.candidate_precision),
            pct(c.reference_recall),
            pct(c.candidate_recall),
            c.recall_delta_points
                .map_or("-".into(), |d| format!("{d:+.1}")),
            c.flips_into.to_string(),
            c.flips_out_of.to_string(),
        ]);
    }
    println!("{t}");
    if !a.confusion_delta.is_empty() {
        let mut t = table(&["true", "predicted", "reference", "candidate", "delta"]);
        for d in &a.confusion_delta {
            t.add_row(vec![
                d.true_class.to_string(),
                d.predicted.to_string(),
                d.reference.to_string(),
                d.candidate.to_string(),
                format!("{:+}", d.delta),
            ]);
        }
        println!("confusion-matrix delta (candidate - reference):\n{t}");
    }
    if a.gate.pass {
        println!(
            "PASS (no class lost more than {} recall points)",
            a.gate.max_recall_drop
        );
    } else {
        println!(
            "FAIL: recall dropped by more than {} points for class(es) {:?}",
            a.gate.max_recall_drop, a.gate.failed_classes
        );
    }
}
