//! `bridgeml diverge`: the same inputs through two runtimes (or two models),
//! per-output error and top-1 agreement.

use std::path::PathBuf;

use anyhow::{bail, Context};
use bridgeml_runtime::diverge::{compare_outputs, OutputDivergence};
use bridgeml_runtime::{BackendChoice, BackendKind, LoadOptions, Model};
use clap::Args;
use serde::Serialize;

use super::predict::{check_items_fit, expand_inputs, Preprocessor};
use crate::output::{print_json, table, Format, Outcome};

#[derive(Debug, Args)]
pub struct DivergeArgs {
    /// ONNX model (the reference, side A).
    #[arg(long)]
    pub model: PathBuf,
    /// A second model (side B), run on the first backend of --backends.
    #[arg(long)]
    pub model_b: Option<PathBuf>,
    /// Two backends (A,B) for one model, or one backend for two models.
    /// Default: `tract,ort`, or `auto` with --model-b.
    #[arg(long, value_delimiter = ',')]
    pub backends: Vec<String>,
    /// Preprocessing spec; without it, inputs must be `.npy` items.
    #[arg(long)]
    pub spec: Option<PathBuf>,
    /// Input files or directories.
    #[arg(long, num_args = 1.., required = true)]
    pub input: Vec<PathBuf>,
    /// A top-1 disagreement is "near the boundary" when the reference's
    /// top-1 probability exceeds its top-2 by at most this much.
    #[arg(long, default_value_t = 0.05)]
    pub margin: f64,
    /// Fail (exit 1) when top-1 agreement of the first output is below this fraction.
    #[arg(long)]
    pub min_agreement: Option<f64>,
    /// Fail (exit 1) when any output's max absolute error exceeds this.
    #[arg(long)]
    pub max_abs: Option<f64>,
    #[arg(long, default_value_t = 8)]
    pub batch: usize,
    #[arg(long)]
    pub threads: Option<usize>,
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
}

#[derive(Debug, Serialize)]
pub struct Side {
    pub model: String,
    pub model_sha256: String,
    pub backend: BackendKind,
    pub backend_version: String,
}

#[derive(Debug, Serialize)]
pub struct DivergeReport {
    pub a: Side,
    pub b: Side,
    pub inputs: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub spec_fingerprint: Option<String>,
    pub margin: f64,
    pub outputs: Vec<OutputDivergence>,
    pub pass: bool,
}

fn parse_backend(s: &str) -> anyhow::Result<BackendChoice> {
    if s.trim() == "auto" {
        return Ok(BackendChoice::Auto);
    }
    Ok(s.parse::<BackendKind>().map_err(anyhow::Error::msg)?.into())
}

pub fn run(args: DivergeArgs) -> anyhow::Result<Outcome> {
    let backends: Vec<BackendChoice> = args
        .backends
        .iter()
        .map(|s| parse_backend(s))
        .collect::<anyhow::Result<_>>()?;
    let (path_b, choice_a, choice_b) = match (&args.model_b, backends.as_slice()) {
        (None, []) => (args.model.clone(), BackendChoice::Tract, BackendChoice::Ort),
        (None, [a, b]) => (args.model.clone(), *a, *b),
        (None, _) => bail!("--backends takes two backends (A,B) when comparing runtimes"),
        (Some(mb), []) => (mb.clone(), BackendChoice::Auto, BackendChoice::Auto),
        (Some(mb), [a]) => (mb.clone(), *a, *a),
        (Some(mb), [a, b]) => (mb.clone(), *a, *b),
        (Some(_), _) => bail!("--backends takes at most two backends"),
    };
    let files = expand_inputs(&args.input)?;
    let pre = Preprocessor::new(args.spec.as_deref())?;
    let mut items = Vec::with_capacity(files.len());
    for f in &files {
        items.push(pre.item(f)?.0);
    }
    let load = |path: &PathBuf, choice: BackendChoice| -> anyhow::Result<Model> {
        let m = Model::load(path, &LoadOptions::new(choice).threads(args.threads))?;
        check_items_fit(&m, &items, &pre)?;
        Ok(m)
    };
    let mut ma = load(&args.model, choice_a)?;
    let mut mb = load(&path_b, choice_b)?;
    let oa = ma.run_items(&items, args.batch)?;
    let ob = mb.run_items(&items, args.batch)?;
    let mut outputs = Vec::new();
    for (name, va) in oa.names.iter().zip(&oa.values) {
        let vb = ob
            .get(name)
            .with_context(|| format!("model B has no output named `{name}`"))?;
        outputs.push(compare_outputs(name, va, vb, args.margin)?);
    }
    let mut pass = true;
    if let (Some(min), Some(t)) = (
        args.min_agreement,
        outputs.first().and_then(|o| o.top1.as_ref()),
    ) {
        pass &= t.agreement >= min;
    }
    if let Some(tol) = args.max_abs {
        pass &= outputs.iter().all(|o| o.max_abs_error <= tol);
    }
    let side = |m: &Model| Side {
        model: m.path().display().to_string(),
        model_sha256: m.sha256().to_string(),
        backend: m.backend(),
        backend_version: m.backend_version(),
    };
    let report = DivergeReport {
        a: side(&ma),
        b: side(&mb),
        inputs: items.len(),
        spec_fingerprint: pre.fingerprint(),
        margin: args.margin,
        outputs,
        pass,
    };
    match args.format {
        Format::Json => print_json(&report)?,
        Format::Table => {
            println!(
                "A: {} on {} {} | B: {} on {} {} | {} inputs",
                report.a.model,
                report.a.backend,
                report.a.backend_version,
                report.b.model,
                report.b.backend,
                report.b.backend_version,
                report.inputs
            );
            let mut t = table(&[
                "output",
                "max abs",
                "mean abs",
                "max rel",
                "top-1 agree",
                "disagree",
                "near boundary",
            ]);
            for o in &report.outputs {
                let (agree, dis, near) = match &o.top1 {
                    Some(t) => (
                        format!("{}/{} ({:.2}%)", t.agree, t.rows, 100.0 * t.agreement),
                        t.disagreements.to_string(),
                        t.near_boundary.to_string(),
                    ),
                    None => ("-".into(), "-".into(), "-".into()),
                };
                t.add_row(vec![
                    o.name.clone(),
                    format!("{:.3e}", o.max_abs_error),
                    format!("{:.3e}", o.mean_abs_error),
                    format!("{:.3e}", o.max_rel_error),
                    agree,
                    dis,
                    near,
                ]);
            }
            println!("{t}");
            println!("{}", if report.pass { "PASS" } else { "FAIL" });
        }
    }
    Ok(Outcome::from_pass(report.pass))
}
