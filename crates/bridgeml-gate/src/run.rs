//! The gate runner: gathers each gate's evidence from what the manifest
//! names (runs the models, the guard, the profiler, the audit) and applies
//! the rules of [`crate::gates`]. A gate without the data it needs is
//! `skip` with the reason; a gate whose data is present but wrong is `fail`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use bridgeml_core::Tensor;
use bridgeml_guard::{Expected, Guard, Inputs};
use bridgeml_monitor::psi::ReferenceBins;
use bridgeml_monitor::Baseline;
use bridgeml_preprocess::parity::{compare, diagnose};
use bridgeml_preprocess::{Pipeline, Source};
use bridgeml_quant::audit::{audit, load_labels, AuditConfig};
use bridgeml_runtime::profile::{measure, LatencyStats, MeasureOptions, Timing};
use bridgeml_runtime::{BackendChoice, LoadOptions, Model};
use ndarray::Array2;
use rayon::prelude::*;
use serde_json::json;

use crate::gates::{
    self, BaselineEvidence, BudgetLimits, GuardEvidence, LatencyEvidence, ParityItem,
    ShadowEvidence,
};
use crate::manifest::Manifest;
use crate::report::{GateName, GateReport, GateResult};
use crate::{GateError, Result};

/// What the caller adds to the manifest.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// Shorter latency measurement (tests, demos).
    pub quick: bool,
    /// Shadow evidence summarised from a prediction log (the log reader
    /// lives with the server, below this crate).
    pub shadow: Option<ShadowEvidence>,
    /// Why there is no shadow evidence, when there is none.
    pub shadow_skip_reason: Option<String>,
    /// RFC 3339 time stamp for the report.
    pub created: String,
}

/// Logits (and a named intermediate tensor) of a model over files.
#[derive(Debug)]
pub struct ModelRun {
    pub logits: Array2<f32>,
    pub features: Option<Array2<f32>>,
}

fn backend_choice(name: &str) -> BackendChoice {
    match name {
        "tract" => BackendChoice::Tract,
        "ort" => BackendChoice::Ort,
        _ => BackendChoice::Auto,
    }
}

/// Flattens `[N, ...]` into `[N, prod(...)]` (e.g. pooled `[N, C, 1, 1]` features).
fn as_rows(model: &Path, t: &ndarray::ArrayD<f32>, name: &str) -> Result<Array2<f32>> {
    let invalid = |reason: String| GateError::Invalid {
        path: model.to_path_buf(),
        line: None,
        key: "model".into(),
        reason,
    };
    let Some((&n, rest)) = t.shape().split_first() else {
        return Err(invalid(format!(
            "tensor `{name}` is a scalar; expected [N, ...]"
        )));
    };
    let d: usize = rest.iter().product();
    Array2::from_shape_vec((n, d), t.iter().copied().collect())
        .map_err(|e| invalid(format!("tensor `{name}`: {e}")))
}

/// Batch size for running a model over files: large enough to amortise
/// per-call overhead, small enough to keep activation memory modest.
const MODEL_BATCH: usize = 32;

/// Runs `model` through `pipeline` on `files`: the same engine as serving.
/// The one place where "model + spec + files -> logits (+ a named
/// intermediate tensor)" lives; the CLI's guard commands call it too.
pub fn run_model(
    model: &Path,
    backend: &str,
    pipeline: &Pipeline,
    files: &[PathBuf],
    feature: Option<&str>,
) -> Result<ModelRun> {
    let extra: Vec<String> = feature.map(str::to_string).into_iter().collect();
    let opts = LoadOptions::new(backend_choice(backend)).extra_outputs(extra);
    let mut m = Model::load(model, &opts).map_err(|e| runtime(model, e))?;
    // Decoding dominates on image folders and the pipeline is pure, so
    // preprocess in parallel; the model then sees batches in file order.
    let items = files
        .par_iter()
        .map(|f| {
            pipeline.run_path(f).map_err(|e| GateError::Invalid {
                path: f.clone(),
                line: None,
                key: "input".into(),
                reason: format!("preprocessing failed: {e}"),
            })
        })
        .collect::<Result<Vec<_>>>()?;
    if let Some(first) = items.first() {
        let batch = Tensor::stack(std::slice::from_ref(first))?;
        m.check_input(&batch).map_err(|e| {
            runtime(
                model,
                format!("the spec's output does not fit the model: {e}"),
            )
        })?;
    }
    let out = m
        .run_items(&items, MODEL_BATCH)
        .map_err(|e| runtime(model, e))?;
    let logits = as_rows(model, out.first(), &out.names[0])?;
    let features = match feature {
        Some(name) => {
            let t = out.get(name).ok_or_else(|| GateError::Invalid {
                path: model.to_path_buf(),
                line: None,
                key: "model.embedding".into(),
                reason: format!("the model has no tensor named `{name}`"),
            })?;
            Some(as_rows(model, t, name)?)
        }
        None => None,
    };
    Ok(ModelRun { logits, features })
}

fn runtime(path: &Path, e: impl std::fmt::Display) -> GateError {
    GateError::Invalid {
        path: path.to_path_buf(),
        line: None,
        key: "model".into(),
        reason: e.to_string(),
    }
}

fn list_images(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let rd = std::fs::read_dir(&d).map_err(|source| GateError::Io {
            path: d.clone(),
            source,
        })?;
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if p
                .file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| !n.starts_with('.'))
            {
                out.push(p);
            }
        }
    }
    out.sort();
    Ok(out)
}

/// Runs every gate the manifest has data for.
pub fn run_gate(
    manifest: &Manifest,
    opts: &RunOptions,
    mut progress: impl FnMut(GateName),
) -> Result<GateReport> {
    let t = manifest.gate.thresholds.clone();
    let pipeline = Pipeline::from_path(&manifest.resolve(&manifest.spec.path))?;
    let (served, _) = manifest.served_model()?;
    let fp32 = manifest.resolve(&manifest.model.path);
    let backend = manifest.model.backend.clone();
    let validation = manifest
        .gate
        .validation
        .as_ref()
        .map(|p| manifest.resolve(p));
    let labels = manifest.gate.labels.as_ref().map(|p| manifest.resolve(p));
    let mut gates_out = Vec::new();

    progress(GateName::Parity);
    gates_out.push(parity_gate(manifest, &pipeline)?);

    progress(GateName::Quantization);
    gates_out.push(match (&manifest.model.int8_path, &validation) {
        (None, _) => GateResult::skipped(
            GateName::Quantization,
            "no INT8 model in the manifest ([model] int8_path)",
        ),
        (Some(_), None) => GateResult::skipped(
            GateName::Quantization,
            "no labelled validation set ([gate] validation)",
        ),
        (Some(int8), Some(val)) => {
            let int8 = manifest.resolve(int8);
            let labels_path = labels.clone().unwrap_or_else(|| val.clone());
            let set = load_labels(val, &labels_path, None)?;
            let reference = run_model(&fp32, &backend, &pipeline, &set.files, None)?;
            let candidate = run_model(&int8, &backend, &pipeline, &set.files, None)?;
            let qat = bridgeml_runtime::OnnxModel::from_path(&int8)
                .map(|m| bridgeml_quant::is_qat(&m))
                .unwrap_or(false);
            let cfg = AuditConfig {
                max_recall_drop: t.max_recall_drop_points,
                imbalance_warn: t.qat_imbalance_ratio,
                training_imbalance: bridgeml_runtime::OnnxModel::from_path(&fp32)
                    .ok()
                    .and_then(|m| bridgeml_quant::training_imbalance(&m)),
                ..AuditConfig::default()
            };
            let report = audit(
                &reference.logits.into_dyn(),
                &candidate.logits.into_dyn(),
                &set.labels,
                &set.class_names,
                qat,
                &cfg,
            )?;
            gates::quantization(&report, &t)
        }
    });

    progress(GateName::Guard);
    let mut val_confidence: Option<Vec<f64>> = None;
    gates_out.push(match (&manifest.guard, &validation) {
        (None, _) => GateResult::new(GateName::Guard, "no OOD guard").with_check(
            crate::Check::new("guard_present", crate::Status::Fail).with_message(
                "calibrate one (bridgeml guard calibrate) and name it in [guard] path",
            ),
        ),
        (Some(_), None) => GateResult::skipped(
            GateName::Guard,
            "no in-distribution validation set ([gate] validation)",
        ),
        (Some(g), Some(val)) => {
            let model_sha = bridgeml_core::fingerprint::sha256_file(&served)?;
            let guard = Guard::load(
                &manifest.resolve(&g.path),
                Expected {
                    model_sha256: Some(&model_sha),
                    spec_fingerprint: Some(pipeline.fingerprint()),
                },
            )?;
            let feature = guard.file.feature_tensor.clone();
            let id_files = list_images(val)?;
            let id = run_model(&served, &backend, &pipeline, &id_files, feature.as_deref())?;
            val_confidence = Some(max_softmax(&id.logits));
            let id_in = Inputs {
                logits: Some(id.logits.view()),
                features: id.features.as_ref().map(|f| f.view()),
            };
            let id_scores = guard.scores(id_in)?;
            let (ood_scores, metrics) = match &manifest.gate.ood {
                None => (None, None),
                Some(o) => {
                    let files = list_images(&manifest.resolve(o))?;
                    let ood = run_model(&served, &backend, &pipeline, &files, feature.as_deref())?;
                    let ood_in = Inputs {
                        logits: Some(ood.logits.view()),
                        features: ood.features.as_ref().map(|f| f.view()),
                    };
                    // Metrics from the scores already computed, not a second
                    // scoring pass through `Guard::evaluate`.
                    let s = guard.scores(ood_in)?;
                    let m =
                        bridgeml_guard::metrics::evaluate(&id_scores, &s, guard.file.threshold)?;
                    (Some(s), Some(m))
                }
            };
            gates::guard(
                &GuardEvidence {
                    method: guard.method().name().to_string(),
                    threshold: guard.file.threshold,
                    target_tpr: guard.file.tpr,
                    id_scores,
                    ood_scores,
                    metrics,
                },
                &t,
            )
        }
    });

    progress(GateName::Drift);
    gates_out.push(drift_gate(manifest, val_confidence.as_deref(), t.psi_alert));

    progress(GateName::Latency);
    let lat = latency_evidence(
        &served,
        &backend,
        &pipeline,
        validation.as_deref(),
        opts.quick,
    )?;
    let hardware = lat.hardware.clone();
    gates_out.push(gates::latency(
        &lat,
        manifest.sla.p95_ms,
        manifest.sla.p99_ms,
        &t,
    ));

    progress(GateName::Budget);
    let b = bridgeml_runtime::budget::budget(&served, 1).map_err(|e| runtime(&served, e))?;
    gates_out.push(gates::budget(
        &b,
        &BudgetLimits {
            max_params: manifest.sla.max_params,
            max_weight_bytes: manifest.sla.max_weight_bytes,
            max_peak_activation_bytes: manifest.sla.max_peak_activation_bytes,
        },
    ));

    progress(GateName::Shadow);
    gates_out.push(match &opts.shadow {
        Some(e) => gates::shadow(e, &t),
        None => GateResult::skipped(
            GateName::Shadow,
            opts.shadow_skip_reason
                .clone()
                .unwrap_or_else(|| "no prediction log yet".into()),
        ),
    });

    progress(GateName::Policy);
    gates_out.push(match &manifest.policy {
        None => gates::policy(None, None),
        Some(p) => {
            let path = manifest.resolve(&p.path);
            let parsed = std::fs::read_to_string(&path)
                .map_err(|e| e.to_string())
                .and_then(|text| {
                    bridgeml_monitor::policy::Policy::parse(&text)
                        .map(|pol| pol.rules.len())
                        .map_err(|e| e.to_string())
                });
            gates::policy(Some(&path.display().to_string()), Some(parsed))
        }
    });

    let mut report = GateReport::new(
        opts.created.clone(),
        manifest.source.display().to_string(),
        gates_out,
    )
    .with_model(
        served.display().to_string(),
        bridgeml_core::fingerprint::sha256_file(&served)?,
    )
    .with_spec(
        manifest.spec.path.display().to_string(),
        pipeline.fingerprint().to_string(),
    );
    for (k, v) in hardware {
        report = report.with_hardware(k, v);
    }
    Ok(report)
}

fn max_softmax(logits: &Array2<f32>) -> Vec<f64> {
    logits
        .rows()
        .into_iter()
        .map(|r| {
            let row: Vec<f64> = r.iter().map(|&v| v as f64).collect();
            bridgeml_runtime::diverge::probabilities(&row)
                .into_iter()
                .fold(0.0, f64::max)
        })
        .collect()
}

fn parity_gate(manifest: &Manifest, pipeline: &Pipeline) -> Result<GateResult> {
    let (Some(inputs), Some(reference)) = (
        &manifest.gate.parity_inputs,
        &manifest.gate.parity_reference,
    ) else {
        return Ok(GateResult::skipped(
            GateName::Parity,
            "no training-side dumps ([gate] parity_inputs and parity_reference)",
        ));
    };
    let (inputs, reference) = (manifest.resolve(inputs), manifest.resolve(reference));
    let mut dumps: Vec<PathBuf> = list_images(&reference)?
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "npy"))
        .collect();
    dumps.truncate(manifest.gate.thresholds.parity_sample.max(1));
    let candidates = list_images(&inputs)?;
    let mut items = Vec::new();
    for dump in &dumps {
        let stem = dump.file_stem().unwrap_or_default();
        let Some(input) = candidates.iter().find(|c| c.file_stem() == Some(stem)) else {
            return Err(GateError::Invalid {
                path: dump.clone(),
                line: manifest.line_of("gate.parity_inputs"),
                key: "gate.parity_inputs".into(),
                reason: format!(
                    "no input named {}.* in {}",
                    stem.to_string_lossy(),
                    inputs.display()
                ),
            });
        };
        let theirs = Tensor::read_npy(dump)?;
        let ours = pipeline.run_path(input)?;
        let (engine_hash, reference_hash) = (ours.content_hash(), theirs.content_hash());
        let diagnosis = if engine_hash != reference_hash {
            let bytes = std::fs::read(input).map_err(|source| GateError::Io {
                path: input.clone(),
                source,
            })?;
            let label = input.display().to_string();
            let base = compare(&ours, &theirs);
            diagnose(
                pipeline,
                Source::Bytes {
                    bytes: &bytes,
                    label: &label,
                },
                &theirs,
                &base,
            )
            .ok()
            .map(|d| d.summary)
        } else {
            None
        };
        items.push(ParityItem {
            input: input
                .file_name()
                .unwrap_or_default()
                .to_string_lossy()
                .into_owned(),
            engine_hash,
            reference_hash,
            diagnosis,
        });
    }
    if items.is_empty() {
        return Ok(GateResult::skipped(
            GateName::Parity,
            format!("no .npy dumps in {}", reference.display()),
        ));
    }
    Ok(gates::parity(&items))
}

fn drift_gate(manifest: &Manifest, val_confidence: Option<&[f64]>, psi_alert: f64) -> GateResult {
    let Some(mon) = &manifest.monitor else {
        return gates::drift(&[], psi_alert);
    };
    let mut out = Vec::new();
    let files = [
        ("confidence", &mon.confidence_baseline),
        ("embedding", &mon.embedding_baseline),
    ];
    for (signal, path) in files {
        let Some(p) = path else { continue };
        let resolved = manifest.resolve(p);
        let loaded: std::result::Result<Baseline, String> = std::fs::read_to_string(&resolved)
            .map_err(|e| e.to_string())
            .and_then(|t| {
                serde_json::from_str(&t).map_err(|e| format!("not a drift baseline: {e}"))
            });
        let mut ev = BaselineEvidence {
            signal: signal.to_string(),
            path: p.display().to_string(),
            check: loaded.as_ref().map(|_| ()).map_err(|e| e.clone()),
            reference: None,
            current: None,
            psi: None,
        };
        if signal == "confidence" {
            if let Ok(b) = &loaded {
                let column = mon.confidence_column.as_deref().unwrap_or("confidence");
                let col = b.find(Some(column), "psi").or_else(|| b.find(None, "psi"));
                match col.and_then(|c| c.bins.clone()) {
                    None => ev.check = Err(format!("no PSI bins for column `{column}`")),
                    Some(bins) => {
                        let (edges, reference) = bin_plot(&bins);
                        ev.reference = Some((edges, reference));
                        if let Some(v) = val_confidence {
                            if let Ok(c) = bins.count(v) {
                                let total = c.counts.iter().sum::<u64>().max(1) as f64;
                                ev.current =
                                    Some(c.counts.iter().map(|&x| x as f64 / total).collect());
                                ev.psi = bins.psi_from_counts(&c).ok();
                            }
                        }
                    }
                }
            }
        }
        out.push(ev);
    }
    gates::drift(&out, psi_alert)
}

/// Plot edges and fractions of reference bins: the open outer bins are
/// drawn as wide as their neighbours.
pub fn bin_plot(bins: &ReferenceBins) -> (Vec<f64>, Vec<f64>) {
    let e = &bins.edges;
    let total = bins.counts.iter().sum::<u64>().max(1) as f64;
    let fractions: Vec<f64> = bins.counts.iter().map(|&c| c as f64 / total).collect();
    let (lo, hi) = match (e.first(), e.last()) {
        (Some(&a), Some(&b)) if e.len() >= 2 => {
            let w = (b - a) / (e.len() - 1) as f64;
            (a - w, b + w)
        }
        (Some(&a), _) => (a - 1.0, a + 1.0),
        _ => (0.0, 1.0),
    };
    let mut edges = vec![lo];
    edges.extend(e.iter().copied());
    edges.push(hi);
    (edges, fractions)
}

fn latency_evidence(
    model: &Path,
    backend: &str,
    pipeline: &Pipeline,
    validation: Option<&Path>,
    quick: bool,
) -> Result<LatencyEvidence> {
    let mut m = Model::load(model, &LoadOptions::new(backend_choice(backend)))
        .map_err(|e| runtime(model, e))?;
    // A real input when there is one: some kernels are data-dependent.
    let item = match validation
        .map(list_images)
        .transpose()?
        .and_then(|v| v.into_iter().next())
    {
        Some(f) => pipeline.run_path(&f)?,
        None => {
            let dims: Vec<usize> = m
                .item_dims()
                .unwrap_or_default()
                .iter()
                .map(|d| d.unwrap_or(1).max(1) as usize)
                .collect();
            Tensor::F32(ndarray::ArrayD::zeros(dims))
        }
    };
    let batch = Tensor::stack(std::slice::from_ref(&item))?;
    let mopts = if quick {
        MeasureOptions::quick()
    } else {
        MeasureOptions::default()
    };
    let meas = measure(
        &mopts,
        || {
            let start = Instant::now();
            m.run(&batch)?;
            Ok(Timing {
                preprocess_ms: 0.0,
                compute_ms: start.elapsed().as_secs_f64() * 1000.0,
            })
        },
        |_| {},
    )
    .map_err(|e| runtime(model, e))?;
    let samples: Vec<f64> = meas.samples.iter().map(Timing::total_ms).collect();
    let stats = LatencyStats::from_ms(&samples);
    let hw = bridgeml_runtime::profile::hardware();
    let mut hardware = BTreeMap::new();
    hardware.insert("cpu".to_string(), json!(hw.cpu_model));
    hardware.insert("cores".to_string(), json!(hw.cores_available));
    hardware.insert("simd".to_string(), json!(hw.simd));
    hardware.insert("os".to_string(), json!(hw.os));
    hardware.insert("arch".to_string(), json!(hw.arch));
    hardware.insert("backend".to_string(), json!(m.backend().name()));
    hardware.insert("backend_version".to_string(), json!(m.backend_version()));
    Ok(LatencyEvidence {
        noise_pct: meas.noise_pct(3),
        stable: meas.stable,
        samples_ms: samples,
        p50_ms: stats.p50_ms,
        p95_ms: stats.p95_ms,
        p99_ms: stats.p99_ms,
        backend: m.backend().name().to_string(),
        hardware,
    })
}
