//! `bridgeml preprocess` and `bridgeml hash`: run the engine on files.

use std::path::{Path, PathBuf};

use anyhow::Context;
use bridgeml_core::Tensor;
use bridgeml_preprocess::Pipeline;
use rayon::prelude::*;
use serde::Serialize;

use crate::output::{print_json, table, Format, Outcome};

#[derive(Debug, clap::Args)]
pub struct PreprocessArgs {
    /// The preprocessing spec (.toml or .json).
    #[arg(long)]
    spec: PathBuf,
    /// Input files: images for image specs, .csv/.parquet for tabular specs.
    #[arg(long, num_args = 1.., required = true)]
    input: Vec<PathBuf>,
    /// Output .npy. Several inputs are stacked along a new leading batch axis.
    #[arg(long)]
    output: PathBuf,
    /// Stop after this step: a 0-based index, an op name (first match), or `decode`.
    /// Integer stages are written as uint8 HWC, float stages as float32.
    #[arg(long)]
    until: Option<String>,
}

#[derive(Debug, clap::Args)]
pub struct HashArgs {
    /// The preprocessing spec (.toml or .json).
    #[arg(long)]
    spec: PathBuf,
    /// Input files.
    #[arg(long, num_args = 1.., required = true)]
    input: Vec<PathBuf>,
    #[arg(long, value_enum, default_value_t)]
    format: Format,
}

/// Runs the pipeline on every input in parallel, keeping input order.
pub fn run_inputs(
    pipeline: &Pipeline,
    inputs: &[PathBuf],
    until: Option<Option<usize>>,
) -> anyhow::Result<Vec<Tensor>> {
    inputs
        .par_iter()
        .map(|p| {
            pipeline
                .run_path_until(p, until)
                .map_err(anyhow::Error::from)
        })
        .collect()
}

pub fn resolve_until(
    pipeline: &Pipeline,
    until: Option<&str>,
) -> anyhow::Result<Option<Option<usize>>> {
    Ok(match until {
        Some(u) => Some(pipeline.spec().resolve_until(u)?),
        None => None,
    })
}

pub fn run_preprocess(args: PreprocessArgs) -> anyhow::Result<Outcome> {
    let pipeline = Pipeline::from_path(&args.spec)?;
    let until = resolve_until(&pipeline, args.until.as_deref())?;
    let tensors = run_inputs(&pipeline, &args.input, until)?;
    let out = if tensors.len() == 1 {
        tensors.into_iter().next().expect("one tensor")
    } else {
        Tensor::stack(&tensors).context(
            "inputs produce tensors of different shapes; add resize/crop steps or preprocess them one by one",
        )?
    };
    write_npy(&out, &args.output)?;
    eprintln!(
        "wrote {} ({} {:?})",
        args.output.display(),
        out.dtype().name(),
        out.shape()
    );
    Ok(Outcome::Success)
}

fn write_npy(t: &Tensor, path: &Path) -> anyhow::Result<()> {
    t.write_npy(path)?;
    Ok(())
}

#[derive(Debug, Serialize)]
struct HashReport {
    spec_fingerprint: String,
    results: Vec<HashRow>,
}

#[derive(Debug, Serialize)]
struct HashRow {
    input: PathBuf,
    input_hash: String,
    dtype: &'static str,
    shape: Vec<usize>,
}

pub fn run_hash(args: HashArgs) -> anyhow::Result<Outcome> {
    let pipeline = Pipeline::from_path(&args.spec)?;
    let tensors = run_inputs(&pipeline, &args.input, None)?;
    let report = HashReport {
        spec_fingerprint: pipeline.fingerprint().to_string(),
        results: args
            .input
            .iter()
            .zip(&tensors)
            .map(|(p, t)| HashRow {
                input: p.clone(),
                input_hash: t.content_hash(),
                dtype: t.dtype().name(),
                shape: t.shape().to_vec(),
            })
            .collect(),
    };
    match args.format {
        Format::Json => print_json(&report)?,
        Format::Table => {
            let mut t = table(&["input", "input_hash", "dtype", "shape"]);
            for r in &report.results {
                t.add_row(vec![
                    r.input.display().to_string(),
                    r.input_hash.clone(),
                    r.dtype.to_string(),
                    format!("{:?}", r.shape),
                ]);
            }
            println!("{t}");
        }
    }
    Ok(Outcome::Success)
}
