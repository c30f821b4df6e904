//! `bridgeml parity`: compare the engine with tensors dumped by another
//! pipeline (and diagnose the difference), or two specs with each other.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use bridgeml_core::Tensor;
use bridgeml_preprocess::parity::{self, Comparison, Diagnosis, StageDivergence};
use bridgeml_preprocess::{Pipeline, Source};
use indicatif::{ProgressBar, ProgressStyle};
use rayon::prelude::*;
use serde::Serialize;

use crate::output::{print_json, table, Format, Outcome};

#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:\n  \
bridgeml parity --spec spec.toml --reference dumps/ --inputs images/\n  \
bridgeml parity --spec train.toml --against serve.toml --inputs images/\n\n\
With --reference, DIR/<input-stem>.npy is compared with the engine's output at the\n\
stage of the same dtype and shape (uint8 HWC dumps are compared with the last 8-bit\n\
stage, float tensors with the output). When they differ, neighbouring variants of the\n\
spec are tried and the closest is named. Exit 0 when everything matches exactly, 1 otherwise.")]
pub struct ParityArgs {
    /// The spec the engine runs.
    #[arg(long)]
    spec: PathBuf,
    /// Directory of reference tensors, one `<input-stem>.npy` per input.
    #[arg(long, conflicts_with = "against", required_unless_present = "against")]
    reference: Option<PathBuf>,
    /// A second spec to compare with, stage by stage.
    #[arg(long)]
    against: Option<PathBuf>,
    /// Directory of inputs (or a single input file).
    #[arg(long)]
    inputs: PathBuf,
    /// Skip the diagnosis of mismatches (faster).
    #[arg(long)]
    no_diagnose: bool,
    #[arg(long, value_enum, default_value_t)]
    format: Format,
}

#[derive(Debug, Serialize)]
struct InputResult {
    input: PathBuf,
    reference: PathBuf,
    /// Stage the reference was compared with: `decode` or `<index>:<op>`.
    stage: String,
    #[serde(flatten)]
    comparison: Comparison,
    diagnosis: Option<Diagnosis>,
}

#[derive(Debug, Serialize)]
struct Summary {
    inputs: usize,
    exact: usize,
    hash_match: usize,
    max_abs_diff: Option<f64>,
    /// Most frequent best explanation across mismatching inputs.
    diagnosis: Option<String>,
    pass: bool,
}

#[derive(Debug, Serialize)]
struct ReferenceReport {
    spec: PathBuf,
    spec_fingerprint: String,
    results: Vec<InputResult>,
    summary: Summary,
}

#[derive(Debug, Serialize)]
struct AgainstResult {
    input: PathBuf,
    #[serde(flatten)]
    divergence: StageDivergence,
}

#[derive(Debug, Serialize)]
struct AgainstReport {
    spec: PathBuf,
    against: PathBuf,
    results: Vec<AgainstResult>,
    identical: usize,
    pass: bool,
}

pub fn list_inputs(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    if dir.is_file() {
        return Ok(vec![dir.to_path_buf()]);
    }
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("cannot read input directory {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file())
        .filter(|p| p.extension().is_none_or(|e| e != "npy"))
        .collect();
    files.sort();
    if files.is_empty() {
        bail!("{}: no input files", dir.display());
    }
    Ok(files)
}

fn progress(len: usize, what: &str) -> ProgressBar {
    let bar = ProgressBar::new(len as u64);
    bar.set_style(
        ProgressStyle::with_template("{msg} [{bar:30}] {pos}/{len} ({eta})")
            .expect("valid template")
            .progress_chars("=> "),
    );
    bar.set_message(what.to_string());
    bar
}

pub fn run(args: ParityArgs) -> anyhow::Result<Outcome> {
    let pipeline = Pipeline::from_path(&args.spec)?;
    let inputs = list_inputs(&args.inputs)?;
    if let Some(against) = &args.against {
        return run_against(&args, &pipeline, against, &inputs);
    }
    let reference_dir = args
        .reference
        .clone()
        .expect("clap requires one of the two");
    let bar = progress(inputs.len(), "parity");
    let results: Vec<InputResult> = inputs
        .par_iter()
        .map(|input| {
            let r = check_one(&pipeline, input, &reference_dir, !args.no_diagnose);
            bar.inc(1);
            r
        })
        .collect::<anyhow::Result<_>>()?;
    bar.finish_and_clear();
    let mut votes: BTreeMap<String, usize> = BTreeMap::new();
    for r in &results {
        if let Some(best) = r.diagnosis.as_ref().and_then(|d| d.best.as_ref()) {
            *votes.entry(best.variant.clone()).or_default() += 1;
        }
    }
    let exact = results.iter().filter(|r| r.comparison.exact).count();
    let summary = Summary {
        inputs: results.len(),
        exact,
        hash_match: results.iter().filter(|r| r.comparison.hash_match).count(),
        max_abs_diff: results
            .iter()
            .filter_map(|r| r.comparison.max_abs_diff)
            .reduce(f64::max),
        diagnosis: results
            .iter()
            .filter_map(|r| r.diagnosis.as_ref())
            .filter(|d| d.best.is_some())
            .max_by_key(|d| {
                votes
                    .get(&d.best.as_ref().expect("filtered").variant)
                    .copied()
            })
            .map(|d| d.summary.clone()),
        pass: exact == results.len(),
    };
    let report = ReferenceReport {
        spec: args.spec.clone(),
        spec_fingerprint: pipeline.fingerprint().to_string(),
        results,
        summary,
    };
    match args.format {
        Format::Json => print_json(&report)?,
        Format::Table => render_reference(&report),
    }
    Ok(Outcome::from_pass(report.summary.pass))
}

fn check_one(
    pipeline: &Pipeline,
    input: &Path,
    reference_dir: &Path,
    diagnose: bool,
) -> anyhow::Result<InputResult> {
    let stem = input
        .file_stem()
        .with_context(|| format!("{}: no file name", input.display()))?;
    let reference_path = reference_dir.join(stem).with_extension("npy");
    let reference = Tensor::read_npy(&reference_path)
        .with_context(|| format!("no usable reference for {}", input.display()))?;
    let bytes = std::fs::read(input).with_context(|| format!("cannot read {}", input.display()))?;
    let label = input.display().to_string();
    let source = Source::Bytes {
        bytes: &bytes,
        label: &label,
    };
    let trace = pipeline.trace(source)?;
    let stage_index = parity::matching_stage(&trace, &reference);
    let stage = &trace[stage_index];
    let comparison = parity::compare(&stage.tensor, &reference);
    let diagnosis = if diagnose && !comparison.exact {
        Some(parity::diagnose(pipeline, source, &reference, &comparison)?)
    } else {
        None
    };
    Ok(InputResult {
        input: input.to_path_buf(),
        reference: reference_path,
        stage: match stage.step {
            Some(i) => format!("{i}:{}", stage.name),
            None => stage.name.clone(),
        },
        comparison,
        diagnosis,
    })
}

fn fmt_opt(v: Option<f64>, digits: usize) -> String {
    v.map_or("-".into(), |x| format!("{x:.digits$}"))
}

fn render_reference(report: &ReferenceReport) {
    let mut t = table(&[
        "input",
        "stage",
        "shape",
        "max abs",
        "mean abs",
        "% differing",
        "hash",
        "diagnosis",
    ]);
    for r in &report.results {
        let c = &r.comparison;
        t.add_row(vec![
            r.input.display().to_string(),
            r.stage.clone(),
            if c.shape_match {
                format!("{:?}", c.ours_shape)
            } else {
                format!("{:?} vs ref {:?}", c.ours_shape, c.reference_shape)
            },
            fmt_opt(c.max_abs_diff, 4),
            fmt_opt(c.mean_abs_diff, 5),
            fmt_opt(c.pct_differing, 2),
            if c.hash_match { "match" } else { "differs" }.into(),
            r.diagnosis.as_ref().map_or(
                if c.exact {
                    "exact".into()
                } else {
                    String::new()
                },
                |d| d.summary.clone(),
            ),
        ]);
    }
    println!("{t}");
    let s = &report.summary;
    println!(
        "{} of {} inputs match exactly ({} by hash); max abs diff {}",
        s.exact,
        s.inputs,
        s.hash_match,
        fmt_opt(s.max_abs_diff, 4)
    );
    if let Some(d) = &s.diagnosis {
        println!("diagnosis: {d}");
    }
    println!("{}", if s.pass { "PASS" } else { "FAIL" });
}

fn run_against(
    args: &ParityArgs,
    pipeline: &Pipeline,
    against: &Path,
    inputs: &[PathBuf],
) -> anyhow::Result<Outcome> {
    let other = Pipeline::from_path(against)?;
    let results: Vec<AgainstResult> = inputs
        .par_iter()
        .map(|input| {
            let bytes =
                std::fs::read(input).with_context(|| format!("cannot read {}", input.display()))?;
            let label = input.display().to_string();
            let source = Source::Bytes {
                bytes: &bytes,
                label: &label,
            };
            Ok(AgainstResult {
                input: input.clone(),
                divergence: parity::first_divergence(pipeline, &other, source)?,
            })
        })
        .collect::<anyhow::Result<_>>()?;
    let identical = results
        .iter()
        .filter(|r| r.divergence.first_diverging_op.is_none())
        .count();
    let report = AgainstReport {
        spec: args.spec.clone(),
        against: against.to_path_buf(),
        pass: identical == results.len(),
        identical,
        results,
    };
    match args.format {
        Format::Json => print_json(&report)?,
        Format::Table => {
            let mut t = table(&[
                "input",
                "first diverging step",
                "max abs",
                "% differing",
                "final max abs",
            ]);
            for r in &report.results {
                let d = &r.divergence;
                t.add_row(vec![
                    r.input.display().to_string(),
                    match (&d.first_diverging_op, d.first_diverging_step) {
                        (Some(op), Some(i)) => format!("{i}:{op}"),
                        (Some(op), None) => op.clone(),
                        _ => "none (identical)".into(),
                    },
                    fmt_opt(d.comparison.as_ref().and_then(|c| c.max_abs_diff), 4),
                    fmt_opt(d.comparison.as_ref().and_then(|c| c.pct_differing), 2),
                    fmt_opt(d.final_comparison.max_abs_diff, 4),
                ]);
            }
            println!("{t}");
            println!(
                "{} of {} inputs identical; {}",
                report.identical,
                report.results.len(),
                if report.pass { "PASS" } else { "FAIL" }
            );
        }
    }
    Ok(Outcome::from_pass(report.pass))
}
