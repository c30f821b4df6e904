//! `bridgeml profile`: latency distribution per batch size with a hardware and
//! runtime fingerprint, `--compare` against a baseline, and `--activations`
//! (activation ranges over representative data).

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{bail, Context};
use bridgeml_core::Tensor;
use bridgeml_runtime::activations::{
    ActivationCollector, ActivationRanges, ACTIVATIONS_FORMAT, DEFAULT_PERCENTILES,
    DEFAULT_RESERVOIR,
};
use bridgeml_runtime::ndarray::ArrayD;
use bridgeml_runtime::profile::{
    compare, measure, BatchResult, CompareRule, Fingerprint, MeasureOptions, ProfileReport,
    Progress, Timing, STABILITY_CRITERION,
};
use bridgeml_runtime::{ElemType, LoadOptions, Model};
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};

use super::predict::{check_items_fit, expand_inputs, BackendArg, Preprocessor};
use crate::output::{print_json, table, Format, Outcome};

#[derive(Debug, Args)]
pub struct ProfileArgs {
    /// ONNX model.
    #[arg(long)]
    pub model: PathBuf,
    /// Preprocessing spec: each measured run then preprocesses its batch
    /// (reported split into preprocess and compute).
    #[arg(long)]
    pub spec: Option<PathBuf>,
    /// Input files or directories (images with --spec, else `.npy` items).
    /// Without inputs, a deterministic synthetic input of the model's shape is used.
    #[arg(long, num_args = 1..)]
    pub input: Vec<PathBuf>,
    #[arg(long, value_enum, default_value_t = BackendArg::Auto)]
    pub backend: BackendArg,
    /// Batch sizes to measure.
    #[arg(long, value_delimiter = ',', default_value = "1")]
    pub batch: Vec<usize>,
    /// Intra-op threads (default: all cores).
    #[arg(long)]
    pub threads: Option<usize>,
    /// Baseline profile (JSON from `profile --format json`) to compare p50 with.
    #[arg(long)]
    pub compare: Option<PathBuf>,
    /// Regression floor in percent for --compare.
    #[arg(long, default_value_t = 5.0)]
    pub floor_pct: f64,
    /// Noise multiplier k for --compare: threshold = max(floor, k x noise).
    #[arg(long, default_value_t = 3.0)]
    pub noise_k: f64,
    /// Warm-up runs per batch size.
    #[arg(long, default_value_t = 5)]
    pub warmup: usize,
    /// Minimum length of one measurement window.
    #[arg(long, default_value_t = 1000)]
    pub window_ms: u64,
    /// Minimum runs per measurement window.
    #[arg(long, default_value_t = 10)]
    pub min_runs: usize,
    /// Windows whose p50 must agree.
    #[arg(long, default_value_t = 3)]
    pub stable_windows: usize,
    /// Allowed deviation of each window's p50 from their mean, in percent.
    #[arg(long, default_value_t = 10.0)]
    pub stability_pct: f64,
    #[arg(long, default_value_t = 10)]
    pub max_windows: usize,
    /// Record activation ranges instead of latency.
    #[arg(long)]
    pub activations: bool,
    /// With --activations: the tensors to record (default: every intermediate tensor).
    #[arg(long, value_delimiter = ',')]
    pub tensors: Vec<String>,
    /// With --activations: histogram bins.
    #[arg(long, default_value_t = 128)]
    pub bins: usize,
    /// With --activations: percentiles to record.
    #[arg(long, value_delimiter = ',')]
    pub percentiles: Vec<f64>,
    /// With --activations: write the ranges file here.
    #[arg(long)]
    pub output: Option<PathBuf>,
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
}

fn bar(len: u64, msg: String) -> ProgressBar {
    let pb = ProgressBar::new(len);
    pb.set_style(
        ProgressStyle::with_template("{msg} [{bar:30}] {pos}/{len} {elapsed}")
            .expect("valid template")
            .progress_chars("=> "),
    );
    pb.set_message(msg);
    pb
}

/// A deterministic synthetic item of the model's input shape.
fn synthetic_item(model: &Model) -> anyhow::Result<Tensor> {
    let dims = model
        .item_dims()
        .context("the model input has no declared shape; pass --input")?;
    let mut shape = Vec::with_capacity(dims.len());
    for d in &dims {
        match d {
            Some(v) => shape.push(*v as usize),
            None => bail!(
                "input `{}` has a dynamic dimension {}; pass --input to profile it",
                model.input().name,
                model.input().shape_text()
            ),
        }
    }
    let n: usize = shape.iter().product();
    let mut state: u32 = 0x1234_5678;
    let mut next = move || {
        state = state.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
        state >> 8
    };
    Ok(match model.input().elem_type {
        ElemType::Uint8 => Tensor::U8(ndarray_from(&shape, (0..n).map(|_| (next() & 0xff) as u8))),
        _ => Tensor::F32(ndarray_from(
            &shape,
            (0..n).map(|_| next() as f32 / (1u32 << 24) as f32 * 2.0 - 1.0),
        )),
    })
}

fn ndarray_from<T: Clone>(shape: &[usize], it: impl Iterator<Item = T>) -> ArrayD<T> {
    ArrayD::from_shape_vec(shape.to_vec(), it.collect()).expect("length matches shape")
}

fn run_activations(args: &ProfileArgs) -> anyhow::Result<Outcome> {
    if args.input.is_empty() {
        bail!("--activations needs representative data: --input FILE|DIR (with --spec for images)");
    }
    let files = expand_inputs(&args.input)?;
    let pre = Preprocessor::new(args.spec.as_deref())?;
    let probe = bridgeml_runtime::OnnxModel::from_path(&args.model)?;
    let names = if args.tensors.is_empty() {
        probe.intermediate_names()
    } else {
        args.tensors.clone()
    };
    if names.is_empty() {
        bail!("the model has no intermediate tensors; name some with --tensors");
    }
    let opts = LoadOptions::new(args.backend.into())
        .threads(args.threads)
        .extra_outputs(names.clone());
    let mut model = Model::load(&args.model, &opts)?;
    let percentiles = if args.percentiles.is_empty() {
        DEFAULT_PERCENTILES.to_vec()
    } else {
        args.percentiles.clone()
    };
    let mut collector =
        ActivationCollector::new(&names, args.bins, &percentiles, DEFAULT_RESERVOIR);
    let batch = args.batch.first().copied().unwrap_or(8).max(1);
    let pb = bar(files.len() as u64, "activations".into());
    for chunk in files.chunks(batch) {
        let mut items = Vec::with_capacity(chunk.len());
        for f in chunk {
            items.push(pre.item(f)?.0);
        }
        check_items_fit(&model, &items, &pre)?;
        let out = model.run(&Tensor::stack(&items)?)?;
        let values: Vec<_> = names
            .iter()
            .map(|n| out.get(n).context("missing requested tensor"))
            .collect::<anyhow::Result<_>>()?;
        collector.add(&values);
        pb.inc(chunk.len() as u64);
    }
    pb.finish_and_clear();
    let ranges = ActivationRanges {
        format: ACTIVATIONS_FORMAT.into(),
        model_sha256: model.sha256().to_string(),
        backend: model.backend(),
        samples: collector.samples(),
        spec_fingerprint: pre.fingerprint(),
        tensors: collector.finish(),
    };
    if let Some(out) = &args.output {
        let text = serde_json::to_string_pretty(&ranges)?;
        std::fs::write(out, text + "\n")
            .with_context(|| format!("{}: cannot write", out.display()))?;
    }
    match args.format {
        Format::Json => print_json(&ranges)?,
        Format::Table => {
            println!(
                "activation ranges over {} items, backend {}{}",
                ranges.samples,
                ranges.backend,
                args.output
                    .as_ref()
                    .map(|o| format!(", written to {}", o.display()))
                    .unwrap_or_default()
            );
            let mut t = table(&["tensor", "shape", "min", "max", "mean", "p1", "p99"]);
            for r in &ranges.tensors {
                let p = |q: f64| {
                    r.percentiles
                        .iter()
                        .find(|p| (p.q - q).abs() < 1e-9)
                        .map_or("-".into(), |p| format!("{:.4}", p.value))
                };
                t.add_row(vec![
                    r.name.clone(),
                    format!("{:?}", r.item_shape),
                    format!("{:.4}", r.min),
                    format!("{:.4}", r.max),
                    format!("{:.4}", r.mean),
                    p(1.0),
                    p(99.0),
                ]);
            }
            println!("{t}");
        }
    }
    Ok(Outcome::Success)
}

pub fn run(args: ProfileArgs) -> anyhow::Result<Outcome> {
    if args.activations {
        return run_activations(&args);
    }
    if args.batch.is_empty() || args.batch.contains(&0) {
        bail!("--batch needs positive batch sizes, e.g. 1,8,32");
    }
    let baseline: Option<ProfileReport> = match &args.compare {
        None => None,
        Some(p) => {
            let text = std::fs::read_to_string(p)
                .with_context(|| format!("{}: cannot read the baseline", p.display()))?;
            Some(serde_json::from_str(&text).with_context(|| {
                format!(
                    "{}: not a profile report (`profile --format json`)",
                    p.display()
                )
            })?)
        }
    };
    let opts = LoadOptions::new(args.backend.into()).threads(args.threads);
    let mut model = Model::load(&args.model, &opts)?;
    let pre = Preprocessor::new(args.spec.as_deref())?;
    let files = if args.input.is_empty() {
        if pre.has_spec() {
            bail!("--spec needs --input files to preprocess");
        }
        Vec::new()
    } else {
        expand_inputs(&args.input)?
    };
    // Without a spec, items are prepared once, outside the measurement.
    let items: Vec<Tensor> = if pre.has_spec() {
        vec![pre.item(&files[0])?.0]
    } else if files.is_empty() {
        vec![synthetic_item(&model)?]
    } else {
        files
            .iter()
            .map(|f| pre.item(f).map(|t| t.0))
            .collect::<anyhow::Result<_>>()?
    };
    check_items_fit(&model, &items, &pre)?;
    let mopts = MeasureOptions {
        warmup_runs: args.warmup,
        window_ms: args.window_ms,
        min_runs_per_window: args.min_runs,
        stable_windows: args.stable_windows,
        stability_pct: args.stability_pct,
        max_windows: args.max_windows,
    };
    let mut results = Vec::new();
    for &b in &args.batch {
        let pb = bar(
            (mopts.warmup_runs + mopts.max_windows) as u64,
            format!("batch {b}"),
        );
        let mut cursor = 0usize;
        let result = if pre.has_spec() {
            let m = measure(
                &mopts,
                || {
                    let start = Instant::now();
                    let mut batch_items = Vec::with_capacity(b);
                    for _ in 0..b {
                        let f = &files[cursor % files.len()];
                        cursor += 1;
                        batch_items.push(
                            pre.item(f)
                                .map_err(|e| {
                                    bridgeml_runtime::RuntimeError::InvalidArgument(format!(
                                        "{e:#}"
                                    ))
                                })?
                                .0,
                        );
                    }
                    let batch = Tensor::stack(&batch_items)?;
                    let preprocess_ms = start.elapsed().as_secs_f64() * 1000.0;
                    let start = Instant::now();
                    model.run(&batch)?;
                    Ok(Timing {
                        preprocess_ms,
                        compute_ms: start.elapsed().as_secs_f64() * 1000.0,
                    })
                },
                |_| pb.inc(1),
            )?;
            BatchResult::from_measurement(b, &m, true, mopts.stable_windows)
        } else {
            let batch_items: Vec<Tensor> = (0..b).map(|i| items[i % items.len()].clone()).collect();
            let batch = Tensor::stack(&batch_items)?;
            let m = measure(
                &mopts,
                || {
                    let start = Instant::now();
                    model.run(&batch)?;
                    Ok(Timing {
                        preprocess_ms: 0.0,
                        compute_ms: start.elapsed().as_secs_f64() * 1000.0,
                    })
                },
                |p| {
                    if let Progress::Window { p50_ms, .. } = p {
                        pb.set_message(format!("batch {b} p50 {p50_ms:.3} ms"));
                    }
                    pb.inc(1)
                },
            )?;
            BatchResult::from_measurement(b, &m, false, mopts.stable_windows)
        };
        pb.finish_and_clear();
        results.push(result);
    }
    let fingerprint = Fingerprint::new(
        model.backend(),
        model.backend_version(),
        model.threads(),
        model.sha256().to_string(),
    );
    let mut report = ProfileReport {
        model: args.model.display().to_string(),
        backend: model.backend(),
        backend_version: model.backend_version(),
        threads: model.threads(),
        fingerprint,
        criterion: STABILITY_CRITERION.into(),
        options: mopts,
        results,
        comparison: None,
    };
    if let Some(base) = &baseline {
        report.comparison = Some(compare(
            base,
            &report,
            CompareRule {
                floor_pct: args.floor_pct,
                k: args.noise_k,
            },
        ));
    }
    let regression = report.comparison.as_ref().is_some_and(|c| c.regression);
    match args.format {
        Format::Json => print_json(&report)?,
        Format::Table => print_table(&report),
    }
    Ok(Outcome::from_pass(!regression))
}

fn print_table(r: &ProfileReport) {
    let f = &r.fingerprint;
    println!("model    {} ({})", r.model, f.model_sha256);
    println!(
        "backend  {} {} | threads {} of {} cores",
        r.backend, r.backend_version, r.threads, f.cores_available
    );
    println!("cpu      {} ({}) | {}", f.cpu_model, f.arch, f.os);
    println!("simd     {}", f.simd.join(" "));
    let mut t = table(&[
        "batch", "count", "inf/s", "mean ms", "p50 ms", "p90 ms", "p95 ms", "p99 ms", "max ms",
        "noise %", "stable",
    ]);
    for b in &r.results {
        t.add_row(vec![
            b.batch.to_string(),
            b.count.to_string(),
            format!("{:.1}", b.throughput),
            format!("{:.3}", b.mean_ms),
            format!("{:.3}", b.p50_ms),
            format!("{:.3}", b.p90_ms),
            format!("{:.3}", b.p95_ms),
            format!("{:.3}", b.p99_ms),
            format!("{:.3}", b.max_ms),
            format!("{:.1}", b.noise_pct),
            b.stable.to_string(),
        ]);
    }
    println!("{t}");
    if r.results.iter().any(|b| b.preprocess.is_some()) {
        let mut t = table(&[
            "batch",
            "preprocess p50 ms",
            "compute p50 ms",
            "compute p95 ms",
        ]);
        for b in &r.results {
            if let (Some(p), Some(c)) = (&b.preprocess, &b.compute) {
                t.add_row(vec![
                    b.batch.to_string(),
                    format!("{:.3}", p.p50_ms),
                    format!("{:.3}", c.p50_ms),
                    format!("{:.3}", c.p95_ms),
                ]);
            }
        }
        println!("{t}");
    }
    if let Some(c) = &r.comparison {
        let mut t = table(&[
            "batch",
            "baseline p50",
            "current p50",
            "change %",
            "threshold %",
            "regression",
        ]);
        for row in &c.rows {
            t.add_row(vec![
                row.batch.to_string(),
                format!("{:.3}", row.baseline_p50_ms),
                format!("{:.3}", row.current_p50_ms),
                format!("{:+.1}", row.change_pct),
                format!("{:.1}", row.threshold_pct),
                row.regression.to_string(),
            ]);
        }
        println!("{t}");
        if !c.same_hardware {
            println!("note: the baseline was measured on other hardware or thread count");
        }
        println!(
            "{}",
            if c.regression {
                "REGRESSION"
            } else {
                "no regression"
            }
        );
    }
}
