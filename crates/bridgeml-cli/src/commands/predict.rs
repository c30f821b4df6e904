//! `bridgeml predict`: preprocessing from the shared engine, then the model;
//! per input the top-k classes. Also holds the input helpers the other
//! runtime commands share.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context};
use bridgeml_core::Tensor;
use bridgeml_runtime::diverge::{argmax, probabilities};
use bridgeml_runtime::{BackendChoice, BackendKind, LoadOptions, Model};
use clap::Args;
use serde::Serialize;

use crate::output::{print_json, table, Format, Outcome};

/// `--backend` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum BackendArg {
    /// ONNX Runtime when its library is found, else tract.
    #[default]
    Auto,
    /// tract (pure Rust).
    Tract,
    /// ONNX Runtime (needs libonnxruntime: ORT_DYLIB_PATH or `pip install onnxruntime`).
    Ort,
}

impl From<BackendArg> for BackendChoice {
    fn from(b: BackendArg) -> Self {
        match b {
            BackendArg::Auto => BackendChoice::Auto,
            BackendArg::Tract => BackendChoice::Tract,
            BackendArg::Ort => BackendChoice::Ort,
        }
    }
}

#[derive(Debug, Args)]
pub struct PredictArgs {
    /// ONNX model.
    #[arg(long)]
    pub model: PathBuf,
    /// Preprocessing spec; without it, inputs must be `.npy` tensors of one item.
    #[arg(long)]
    pub spec: Option<PathBuf>,
    /// Class names, one per line (line i names class i).
    #[arg(long)]
    pub labels: Option<PathBuf>,
    /// Input files (images with --spec, or `.npy`) or directories.
    #[arg(long, num_args = 1.., required = true)]
    pub input: Vec<PathBuf>,
    #[arg(long, default_value_t = 5)]
    pub top_k: usize,
    #[arg(long, value_enum, default_value_t = BackendArg::Auto)]
    pub backend: BackendArg,
    /// Intra-op threads (default: all cores).
    #[arg(long)]
    pub threads: Option<usize>,
    /// Items per model run.
    #[arg(long, default_value_t = 8)]
    pub batch: usize,
    /// Also report the raw logits of every input.
    #[arg(long)]
    pub with_logits: bool,
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
}

#[derive(Debug, Serialize)]
pub struct TopK {
    pub index: usize,
    pub label: Option<String>,
    pub probability: f64,
}

#[derive(Debug, Serialize)]
pub struct PredictResult {
    pub input: String,
    pub top_k: Vec<TopK>,
    pub argmax: usize,
    pub input_hash: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub logits: Option<Vec<f32>>,
}

#[derive(Debug, Serialize)]
pub struct PredictReport {
    pub model: String,
    pub model_sha256: String,
    pub backend: BackendKind,
    pub backend_version: String,
    pub threads: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub spec_fingerprint: Option<String>,
    pub output: String,
    pub results: Vec<PredictResult>,
}

/// Expands directories (sorted, non-recursive, hidden files skipped).
pub(crate) fn expand_inputs(inputs: &[PathBuf]) -> anyhow::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for p in inputs {
        if p.is_dir() {
            let mut files: Vec<PathBuf> = std::fs::read_dir(p)
                .with_context(|| format!("{}: cannot list directory", p.display()))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|f| {
                    f.is_file()
                        && !f
                            .file_name()
                            .and_then(|n| n.to_str())
                            .is_some_and(|n| n.starts_with('.'))
                })
                .collect();
            files.sort();
            if files.is_empty() {
                bail!("{}: directory has no files", p.display());
            }
            out.extend(files);
        } else if p.is_file() {
            out.push(p.clone());
        } else {
            bail!("{}: no such file or directory", p.display());
        }
    }
    if out.is_empty() {
        bail!("no inputs given");
    }
    Ok(out)
}

/// Turns input files into model items: through the spec's pipeline, or read
/// as `.npy` when there is no spec.
#[derive(Debug)]
pub(crate) struct Preprocessor {
    spec: Option<SpecPipeline>,
}

#[derive(Debug)]
struct SpecPipeline {
    pipeline: bridgeml_preprocess::Pipeline,
}

impl Preprocessor {
    pub(crate) fn new(spec: Option<&Path>) -> anyhow::Result<Self> {
        let spec = match spec {
            None => None,
            Some(p) => Some(SpecPipeline {
                pipeline: bridgeml_preprocess::Pipeline::from_path(p)
                    .with_context(|| format!("{}: cannot load the spec", p.display()))?,
            }),
        };
        Ok(Preprocessor { spec })
    }

    pub(crate) fn fingerprint(&self) -> Option<String> {
        self.spec
            .as_ref()
            .map(|s| s.pipeline.fingerprint().to_string())
    }

    pub(crate) fn has_spec(&self) -> bool {
        self.spec.is_some()
    }

    /// One item (no batch axis), and the time it took in milliseconds.
    pub(crate) fn item(&self, path: &Path) -> anyhow::Result<(Tensor, f64)> {
        let start = Instant::now();
        let t = match &self.spec {
            Some(s) => s
                .pipeline
                .run_path(path)
                .with_context(|| format!("{}: preprocessing failed", path.display()))?,
            None => {
                if !path
                    .extension()
                    .is_some_and(|e| e.eq_ignore_ascii_case("npy"))
                {
                    bail!(
                        "{}: not a .npy tensor; pass --spec to preprocess images",
                        path.display()
                    );
                }
                Tensor::read_npy(path)?
            }
        };
        Ok((t, start.elapsed().as_secs_f64() * 1000.0))
    }
}

/// Checks that items fit the model, naming the spec when one made them.
pub(crate) fn check_items_fit(
    model: &Model,
    items: &[Tensor],
    pre: &Preprocessor,
) -> anyhow::Result<()> {
    if let Some(first) = items.first() {
        let batch = Tensor::stack(std::slice::from_ref(first))?;
        if let Err(e) = model.check_input(&batch) {
            if pre.has_spec() {
                return Err(e).context("the spec's output does not fit the model");
            }
            return Err(e.into());
        }
    }
    Ok(())
}

pub(crate) fn read_labels(path: Option<&Path>) -> anyhow::Result<Option<Vec<String>>> {
    let Some(p) = path else { return Ok(None) };
    let text = std::fs::read_to_string(p)
        .with_context(|| format!("{}: cannot read labels", p.display()))?;
    Ok(Some(text.lines().map(|l| l.trim().to_string()).collect()))
}

pub fn run(args: PredictArgs) -> anyhow::Result<Outcome> {
    let files = expand_inputs(&args.input)?;
    let pre = Preprocessor::new(args.spec.as_deref())?;
    let labels = read_labels(args.labels.as_deref())?;
    let opts = LoadOptions::new(args.backend.into()).threads(args.threads);
    let mut model = Model::load(&args.model, &opts)?;
    let mut items = Vec::with_capacity(files.len());
    for f in &files {
        items.push(pre.item(f)?.0);
    }
    check_items_fit(&model, &items, &pre)?;
    let outputs = model.run_items(&items, args.batch)?;
    let logits = outputs.first();
    if logits.ndim() != 2 {
        bail!(
            "output `{}` has shape {:?}; predict expects class scores [N, C]",
            outputs.names[0],
            logits.shape()
        );
    }
    let mut results = Vec::with_capacity(files.len());
    for (i, (f, item)) in files.iter().zip(&items).enumerate() {
        let row: Vec<f64> = outputs.row(0, i);
        let probs = probabilities(&row);
        let mut order: Vec<usize> = (0..probs.len()).collect();
        order.sort_by(|&a, &b| probs[b].total_cmp(&probs[a]).then(a.cmp(&b)));
        let top_k = order
            .iter()
            .take(args.top_k)
            .map(|&index| TopK {
                index,
                label: labels.as_ref().and_then(|l| l.get(index).cloned()),
                probability: probs[index],
            })
            .collect();
        results.push(PredictResult {
            input: f.display().to_string(),
            top_k,
            argmax: argmax(&row).unwrap_or(0),
            input_hash: item.content_hash(),
            logits: args
                .with_logits
                .then(|| row.iter().map(|&v| v as f32).collect()),
        });
    }
    let report = PredictReport {
        model: args.model.display().to_string(),
        model_sha256: model.sha256().to_string(),
        backend: model.backend(),
        backend_version: model.backend_version(),
        threads: model.threads(),
        spec_fingerprint: pre.fingerprint(),
        output: outputs.names[0].clone(),
        results,
    };
    match args.format {
        Format::Json => print_json(&report)?,
        Format::Table => {
            println!(
                "model {} ({}), backend {} {}",
                report.model, report.model_sha256, report.backend, report.backend_version
            );
            let mut t = table(&["input", "rank", "index", "label", "probability"]);
            for r in &report.results {
                for (rank, k) in r.top_k.iter().enumerate() {
                    t.add_row(vec![
                        if rank == 0 {
                            r.input.clone()
                        } else {
                            String::new()
                        },
                        (rank + 1).to_string(),
                        k.index.to_string(),
                        k.label.clone().unwrap_or_default(),
                        format!("{:.4}", k.probability),
                    ]);
                }
            }
            println!("{t}");
        }
    }
    Ok(Outcome::Success)
}
