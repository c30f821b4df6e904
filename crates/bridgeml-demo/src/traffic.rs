//! Simulated production traffic: the six deployment gaps injected into
//! windows of requests that go through the served model and the monitors
//! the server runs (`bridgeml_serve::monitor`, configured from the bundle's
//! manifest), and a 30-day replay written to a real prediction log.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Instant;

use bridgeml_gate::gates::{self, ParityItem};
use bridgeml_gate::manifest::Manifest;
use bridgeml_gate::{
    BarSeries, Check, Comparison, GateName, GateResult, GroupedBars, HLine, Histogram, LinePlot,
    LineSeries, Status,
};
use bridgeml_monitor::label_shift::{estimate_label_shift, LabelShiftConfig};
use bridgeml_monitor::policy::Status as RuleStatus;
use bridgeml_monitor::rng::SplitMix64;
use bridgeml_preprocess::parity::{compare, diagnose};
use bridgeml_preprocess::spec::Color;
use bridgeml_preprocess::{ImageU8, Pipeline, Source};
use bridgeml_quant::audit::AuditReport;
use bridgeml_runtime::profile::{
    measure, BatchResult, Fingerprint, MeasureOptions, ProfileReport, Timing,
};
use bridgeml_serve::log::{append, ActionRow, FeedbackRow, PredictionRow, ShadowRow};
use bridgeml_serve::monitor::{Monitors, Observed, WindowReport};
use bridgeml_serve::server::load_monitors;
use serde::Serialize;

use crate::images;
use crate::serving::{Answer, Served};
use crate::{DemoData, DemoError, Result, CLASS_NAMES};

/// Requests per monitoring window (the manifest's `[monitor] window`).
pub const WINDOW: usize = 200;
/// Camera-resolution inputs hashed by the parity gate.
pub const PARITY_SAMPLES: usize = 16;
/// Side of the camera-resolution images the server must resize.
pub const CAMERA_SIZE: u32 = 112;
/// Start of the simulated 30 days (2026-10-01T00:00:00Z).
pub const REPLAY_START_MS: i64 = 1_790_812_800_000;
/// Requests per simulated day.
pub const REPLAY_PER_DAY: usize = 48;
pub const REPLAY_DAYS: usize = 30;
/// First day of the simulated lighting drift.
pub const REPLAY_DRIFT_FROM_DAY: usize = 22;

/// One deployment gap: how it was injected and what caught it.
#[derive(Debug, Clone, Serialize)]
pub struct GapResult {
    /// `covariate-shift`, `label-prior-shift`, `int8`, `preprocessing-mismatch`,
    /// `temporal-drift`, `ood-inputs`, or `none` for the clean control.
    pub gap: String,
    pub scenario: String,
    /// A few words: what was done to the traffic.
    pub what: String,
    pub injected: String,
    pub caught: bool,
    /// Monitors / gates that raised an alarm.
    pub caught_by: Vec<String>,
    /// Accuracy of the served model on this traffic (labels known here).
    pub accuracy: Option<f64>,
    /// Numbers behind the verdict (statistic and threshold pairs, rates).
    pub evidence: BTreeMap<String, f64>,
}

/// What the gap simulation needs.
#[derive(Debug)]
pub struct Context<'a> {
    pub manifest: &'a Manifest,
    pub data: &'a DemoData,
    pub served: &'a mut Served,
    pub pipeline: &'a Pipeline,
    /// The server-side rewrite with OpenCV's resize.
    pub opencv: Pipeline,
    pub val_labels: &'a [usize],
    pub val_predictions: Vec<usize>,
    pub val_confidences: Vec<f64>,
    pub seed: u64,
}

/// The quantization audits of step 5.
#[derive(Debug)]
pub struct Audits<'a> {
    /// The served PTQ model, calibrated through the spec.
    pub ptq: &'a AuditReport,
    /// The QAT shadow candidate.
    pub qat: &'a AuditReport,
    /// PTQ calibrated on un-normalized pixels: the INT8 gap.
    pub miscalibrated: &'a AuditReport,
}

/// One window through the served model and fresh monitors.
struct Window {
    answers: Vec<Answer>,
    report: WindowReport,
    accuracy: f64,
}

fn monitors(ctx: &Context<'_>) -> Result<Monitors> {
    let cfg = load_monitors(
        ctx.manifest,
        ctx.served.model.sha256(),
        ctx.pipeline.fingerprint(),
    )?;
    Ok(Monitors::new(cfg))
}

fn run_window(ctx: &mut Context<'_>, inputs: &[Vec<u8>], labels: &[usize]) -> Result<Window> {
    let answers = ctx.served.answer(inputs)?;
    let mut mon = monitors(ctx)?;
    let mut report = None;
    for a in &answers {
        if let Some(r) = mon.observe_instance(Observed {
            segment: "web",
            confidence: a.confidence,
            is_ood: a.is_ood,
            embedding: Some(&a.embedding),
        }) {
            report = Some(r);
        }
    }
    let report = report.ok_or_else(|| DemoError::Data {
        path: ctx.manifest.source.clone(),
        reason: format!(
            "a window of {} requests did not close the monitors' window",
            inputs.len()
        ),
    })?;
    let correct = answers
        .iter()
        .zip(labels)
        .filter(|(a, &l)| a.class == l)
        .count();
    Ok(Window {
        accuracy: correct as f64 / answers.len().max(1) as f64,
        answers,
        report,
    })
}

/// Policy rules that fired in a window, as `rule -> action`.
fn fired(r: &WindowReport) -> Vec<String> {
    fired_rules(r)
        .into_iter()
        .map(|(rule, action)| format!("{rule} -> {action}"))
        .collect()
}

fn window_checks(r: &WindowReport) -> Vec<Check> {
    let mut v = Vec::new();
    if let (Some(p), Some(t)) = (r.psi_confidence, r.psi_threshold) {
        v.push(Check::compare("psi.confidence", p, Comparison::Le, t));
    }
    if let (Some(m), Some(t)) = (r.mmd, r.mmd_threshold) {
        v.push(Check::compare("mmd.embedding", m, Comparison::Le, t));
    }
    if let Some(o) = r.ood_rate {
        v.push(Check::compare("ood_rate", o, Comparison::Le, 0.08));
    }
    v
}

fn window_evidence(w: &Window) -> BTreeMap<String, f64> {
    let r = &w.report;
    let mut e = BTreeMap::new();
    let mut put = |k: &str, v: Option<f64>| {
        if let Some(v) = v {
            e.insert(k.to_string(), v);
        }
    };
    put("psi_confidence", r.psi_confidence);
    put("psi_threshold", r.psi_threshold);
    put("mmd", r.mmd);
    put("mmd_threshold", r.mmd_threshold);
    put("ood_rate", r.ood_rate);
    put("accuracy", Some(w.accuracy));
    e
}

fn png_all(imgs: &[ImageU8]) -> Result<Vec<Vec<u8>>> {
    imgs.iter().map(images::png_bytes).collect()
}

/// Chi-square of the predicted-class counts against validation, and the
/// BBSE estimate of the class priors (`bridgeml drift label-shift`).
fn label_shift(ctx: &Context<'_>, answers: &[Answer]) -> Result<(f64, Vec<f64>)> {
    let current: Vec<usize> = answers.iter().map(|a| a.class).collect();
    let est = estimate_label_shift(
        CLASS_NAMES.iter().map(|s| s.to_string()).collect(),
        ctx.val_labels,
        &ctx.val_predictions,
        &current,
        LabelShiftConfig {
            bootstrap: 0,
            ..LabelShiftConfig::default()
        },
    )?;
    Ok((est.predicted_shift.p_value, est.estimated_priors))
}

/// One window of the overview plot: each monitor's statistic over its alarm level.
struct OverviewRow {
    name: String,
    psi: Option<f64>,
    mmd: Option<f64>,
    ood: Option<f64>,
}

/// Largest ratio drawn in the overview plot.
const RATIO_CAP: f64 = 5.0;

/// A significance level for the predicted-class chi-square.
const LABEL_SHIFT_ALPHA: f64 = 0.01;

/// "Covariate shift: brightness +70 (over-exposed camera)" -> "brightness +70".
fn short(title: &str) -> String {
    let t = title.split_once(": ").map_or(title, |(_, t)| t);
    t.split(" (").next().unwrap_or(t).to_string()
}

struct Section {
    result: GapResult,
    gate: GateResult,
}

fn section(
    id: &str,
    title: &str,
    gap: &str,
    injected: String,
    w: Option<&Window>,
    mut extra_checks: Vec<Check>,
    mut caught_by: Vec<String>,
) -> Section {
    let mut checks = w.map(|w| window_checks(&w.report)).unwrap_or_default();
    checks.append(&mut extra_checks);
    if let Some(w) = w {
        let mut f = fired(&w.report);
        f.retain(|x| !caught_by.contains(x));
        caught_by.splice(0..0, f);
    }
    let caught = !caught_by.is_empty();
    let summary = format!(
        "{injected}: {}",
        if caught {
            format!("caught by {}", caught_by.join(", "))
        } else {
            "no alarm".to_string()
        }
    );
    let mut gate = GateResult::new(GateName::Other(id.to_string()), summary)
        .with_evidence("gap", gap)
        .with_evidence("title", title)
        .with_evidence("injected", injected.clone());
    if let Some(w) = w {
        gate = gate.with_evidence("accuracy", w.accuracy);
    }
    for c in checks {
        gate.push_check(c);
    }
    // The section's colour is the alarm, not the checks' mix: a gap is
    // "fail" when anything fired, the clean control "pass" when nothing did.
    gate = gate.with_status(if caught { Status::Fail } else { Status::Pass });
    let mut evidence = w.map(window_evidence).unwrap_or_default();
    if let Some(w) = w {
        evidence.insert("accuracy".into(), w.accuracy);
    }
    Section {
        result: GapResult {
            gap: gap.to_string(),
            scenario: id.to_string(),
            what: short(title),
            injected,
            caught,
            caught_by,
            accuracy: w.map(|w| w.accuracy),
            evidence,
        },
        gate,
    }
}

/// Runs every gap; returns the results and the sections of the traffic report.
pub fn run_gaps(
    mut ctx: Context<'_>,
    audits: &Audits<'_>,
) -> Result<(Vec<GapResult>, Vec<GateResult>)> {
    let data: &DemoData = ctx.data;
    let manifest: &Manifest = ctx.manifest;
    let pool: Vec<usize> = data.pool().collect();
    let test = &data.test;
    let base: Vec<ImageU8> = pool[..WINDOW].iter().map(|&i| test.image(i)).collect();
    let base_labels: Vec<usize> = pool[..WINDOW]
        .iter()
        .map(|&i| test.labels[i] as usize)
        .collect();
    let mut rng = SplitMix64::new(ctx.seed ^ 0x7aff1c);
    let mut sections: Vec<Section> = Vec::new();
    let mut summary_rows: Vec<OverviewRow> = Vec::new();
    let mut note = |name: &str, w: &Window| {
        let r = &w.report;
        summary_rows.push(OverviewRow {
            name: name.to_string(),
            psi: r.psi_confidence.zip(r.psi_threshold).map(|(p, t)| p / t),
            mmd: r.mmd.zip(r.mmd_threshold).map(|(m, t)| m / t),
            ood: r.ood_rate.map(|o| o / 0.08),
        });
    };

    // Control: the same requests, untouched.
    let clean = run_window(&mut ctx, &png_all(&base)?, &base_labels)?;
    note("clean", &clean);
    let (p_clean, _) = label_shift(&ctx, &clean.answers)?;
    let mut s = section(
        "control-clean",
        "Control: clean traffic",
        "none",
        format!("{WINDOW} untouched test images"),
        Some(&clean),
        vec![Check::compare(
            "predicted_class_chi2_p",
            p_clean,
            Comparison::Ge,
            LABEL_SHIFT_ALPHA,
        )],
        if p_clean < LABEL_SHIFT_ALPHA {
            vec!["predicted-class chi2".into()]
        } else {
            vec![]
        },
    );
    s.gate = s.gate.with_plot(Histogram::from_samples(
        "Confidence: validation vs this window",
        "max softmax probability",
        &[
            ("validation", &ctx.val_confidences),
            (
                "window",
                &clean
                    .answers
                    .iter()
                    .map(|a| a.confidence)
                    .collect::<Vec<_>>(),
            ),
        ],
        20,
        Some((0.0, 1.0)),
        true,
    ));
    sections.push(s);

    // 1. Covariate shift: four corruptions of the same requests.
    let corruptions: Vec<(&str, &str, Vec<Vec<u8>>)> = vec![
        (
            "covariate-brightness",
            "brightness +70 (over-exposed camera)",
            png_all(
                &base
                    .iter()
                    .map(|i| images::brighten(i, 70))
                    .collect::<Vec<_>>(),
            )?,
        ),
        (
            "covariate-blur",
            "Gaussian blur sigma 1.5 (out-of-focus lens)",
            png_all(
                &base
                    .iter()
                    .map(|i| images::blur(i, 1.5))
                    .collect::<Vec<_>>(),
            )?,
        ),
        (
            "covariate-jpeg",
            "JPEG recompression at quality 10 (a client's upload path)",
            base.iter()
                .map(|i| images::jpeg_bytes(i, 10))
                .collect::<Result<Vec<_>>>()?,
        ),
        (
            "covariate-noise",
            "Gaussian sensor noise sigma 40",
            png_all(
                &base
                    .iter()
                    .map(|i| images::add_noise(i, 40.0, &mut rng))
                    .collect::<Vec<_>>(),
            )?,
        ),
    ];
    for (id, what, inputs) in corruptions {
        let w = run_window(&mut ctx, &inputs, &base_labels)?;
        note(id.trim_start_matches("covariate-"), &w);
        let mut s = section(
            id,
            &format!("Covariate shift: {what}"),
            "covariate-shift",
            format!(
                "{what}; accuracy {:.3} (clean {:.3})",
                w.accuracy, clean.accuracy
            ),
            Some(&w),
            vec![],
            vec![],
        );
        s.gate = s.gate.with_plot(Histogram::from_samples(
            "Confidence: clean vs shifted window",
            "max softmax probability",
            &[
                (
                    "clean",
                    &clean
                        .answers
                        .iter()
                        .map(|a| a.confidence)
                        .collect::<Vec<_>>(),
                ),
                (
                    "shifted",
                    &w.answers.iter().map(|a| a.confidence).collect::<Vec<_>>(),
                ),
            ],
            20,
            Some((0.0, 1.0)),
            true,
        ));
        sections.push(s);
    }

    // 2. Label-prior shift: the same kind of images, other class frequencies.
    let by_class: Vec<Vec<usize>> = (0..CLASS_NAMES.len())
        .map(|c| {
            pool.iter()
                .copied()
                .filter(|&i| test.labels[i] as usize == c)
                .collect()
        })
        .collect();
    // Tops season: T-shirts, shirts and pullovers make up 70% of requests.
    let weights = [0.25, 0.03, 0.2, 0.04, 0.04, 0.04, 0.25, 0.05, 0.05, 0.05];
    let mut prior_imgs = Vec::new();
    let mut prior_labels = Vec::new();
    for _ in 0..WINDOW {
        let u = rng.next_f64() * weights.iter().sum::<f64>();
        let mut acc = 0.0;
        let mut c = weights.len() - 1;
        for (k, w) in weights.iter().enumerate() {
            acc += w;
            if u < acc {
                c = k;
                break;
            }
        }
        let i = by_class[c][rng.below(by_class[c].len())];
        prior_imgs.push(test.image(i));
        prior_labels.push(c);
    }
    let w = run_window(&mut ctx, &png_all(&prior_imgs)?, &prior_labels)?;
    note("label prior", &w);
    let (p, priors) = label_shift(&ctx, &w.answers)?;
    let mut s = section(
        "label-prior-shift",
        "Label-prior shift: tops season",
        "label-prior-shift",
        format!(
            "class mix moved to 70% T-shirt/Shirt/Pullover; accuracy {:.3} (clean {:.3})",
            w.accuracy, clean.accuracy
        ),
        Some(&w),
        vec![Check::compare(
            "predicted_class_chi2_p",
            p,
            Comparison::Ge,
            LABEL_SHIFT_ALPHA,
        )
        .with_message(
            "chi-square of predicted-class counts vs validation (bridgeml drift label-shift)",
        )],
        if p < LABEL_SHIFT_ALPHA {
            vec!["predicted-class chi2 (bridgeml drift label-shift)".into()]
        } else {
            vec![]
        },
    );
    s.result.evidence.insert("predicted_class_chi2_p".into(), p);
    let true_mix: Vec<f64> = (0..CLASS_NAMES.len())
        .map(|c| prior_labels.iter().filter(|&&l| l == c).count() as f64 / WINDOW as f64)
        .collect();
    s.gate = s.gate.with_plot(GroupedBars {
        title: "Class priors: validation, this window (true), BBSE estimate".into(),
        categories: CLASS_NAMES.iter().map(|s| s.to_string()).collect(),
        series: vec![
            BarSeries {
                name: "validation".into(),
                values: (0..CLASS_NAMES.len())
                    .map(|c| {
                        ctx.val_labels.iter().filter(|&&l| l == c).count() as f64
                            / ctx.val_labels.len().max(1) as f64
                    })
                    .collect(),
            },
            BarSeries {
                name: "window (true)".into(),
                values: true_mix,
            },
            BarSeries {
                name: "BBSE estimate".into(),
                values: priors,
            },
        ],
        y_label: "fraction".into(),
        hlines: vec![],
    });
    sections.push(s);

    // 3. INT8: PTQ whose calibration skipped the normalization, audited
    // against FP32 on the validation set; the served PTQ alongside.
    let t = &manifest.gate.thresholds;
    let q = gates::quantization(audits.miscalibrated, t);
    let served_q = gates::quantization(audits.ptq, t);
    let max_drop = |a: &AuditReport| {
        a.classes
            .iter()
            .filter_map(|c| c.recall_delta_points)
            .fold(0.0f64, |m, d| m.max(-d))
    };
    let mut caught = Vec::new();
    if q.status != Status::Pass {
        caught.push(format!("quantization gate ({})", q.status.as_str()));
    }
    let mut s = section(
        "int8",
        "INT8: PTQ calibrated on un-normalized pixels",
        "int8",
        format!(
            "PTQ whose calibration fed raw 0-255 pixels: accuracy {:.3} vs FP32 {:.3}, largest recall drop {:.1} points; the served PTQ (calibrated through the spec): {:.3}, drop {:.1} points, gate {}",
            audits.miscalibrated.candidate.accuracy,
            audits.miscalibrated.reference.accuracy,
            max_drop(audits.miscalibrated),
            audits.ptq.candidate.accuracy,
            max_drop(audits.ptq),
            served_q.status.as_str()
        ),
        None,
        q.checks.clone(),
        caught,
    );
    s.result.accuracy = Some(audits.miscalibrated.candidate.accuracy);
    let e = &mut s.result.evidence;
    e.insert("fp32_accuracy".into(), audits.ptq.reference.accuracy);
    e.insert("ptq_accuracy".into(), audits.ptq.candidate.accuracy);
    e.insert("qat_accuracy".into(), audits.qat.candidate.accuracy);
    e.insert(
        "miscalibrated_accuracy".into(),
        audits.miscalibrated.candidate.accuracy,
    );
    e.insert("ptq_flips".into(), audits.ptq.flips.total as f64);
    e.insert("ptq_max_recall_drop_points".into(), max_drop(audits.ptq));
    e.insert(
        "miscalibrated_max_recall_drop_points".into(),
        max_drop(audits.miscalibrated),
    );
    let recall = |a: &AuditReport, reference: bool| -> Vec<f64> {
        a.classes
            .iter()
            .map(|c| {
                if reference {
                    c.reference_recall
                } else {
                    c.candidate_recall
                }
                .unwrap_or(f64::NAN)
            })
            .collect()
    };
    s.gate = s.gate.with_plot(GroupedBars {
        title: "Per-class recall: FP32, served PTQ, QAT, mis-calibrated PTQ".into(),
        categories: CLASS_NAMES.iter().map(|s| s.to_string()).collect(),
        series: vec![
            BarSeries {
                name: "FP32".into(),
                values: recall(audits.ptq, true),
            },
            BarSeries {
                name: "PTQ (served)".into(),
                values: recall(audits.ptq, false),
            },
            BarSeries {
                name: "QAT (shadow)".into(),
                values: recall(audits.qat, false),
            },
            BarSeries {
                name: "PTQ, raw-pixel calibration".into(),
                values: recall(audits.miscalibrated, false),
            },
        ],
        y_label: "recall".into(),
        hlines: vec![],
    });
    sections.push(s);

    // 4. Preprocessing mismatch: camera-size images, the server resizes
    // them with OpenCV while training used Pillow.
    let camera: Vec<ImageU8> = base
        .iter()
        .map(|i| images::upscale(i, CAMERA_SIZE))
        .collect();
    let camera_png = png_all(&camera)?;
    let mut items = Vec::new();
    for (k, (img, bytes)) in camera
        .iter()
        .zip(&camera_png)
        .take(PARITY_SAMPLES)
        .enumerate()
    {
        let label = format!("camera/{k:04}.png");
        let theirs = ctx.pipeline.run(Source::Pixels {
            image: img,
            color: Color::Gray,
            label: &label,
        })?;
        let ours = ctx.opencv.run_bytes(bytes, &label)?;
        let (engine_hash, reference_hash) = (ours.content_hash(), theirs.content_hash());
        let diagnosis = if engine_hash != reference_hash {
            let base_cmp = compare(&ours, &theirs);
            diagnose(
                &ctx.opencv,
                Source::Bytes {
                    bytes,
                    label: &label,
                },
                &theirs,
                &base_cmp,
            )
            .ok()
            .map(|d| d.summary)
        } else {
            None
        };
        items.push(ParityItem {
            input: label,
            engine_hash,
            reference_hash,
            diagnosis,
        });
    }
    let parity = gates::parity(&items);
    let pil_window = run_window(&mut ctx, &camera_png, &base_labels)?;
    let saved = std::mem::replace(&mut ctx.served.pipeline, ctx.opencv.clone());
    let cv_window = run_window(&mut ctx, &camera_png, &base_labels);
    ctx.served.pipeline = saved;
    let cv_window = cv_window?;
    note("opencv resize", &cv_window);
    let mismatched = items
        .iter()
        .filter(|i| i.engine_hash != i.reference_hash)
        .count();
    let mut caught = Vec::new();
    if parity.status != Status::Pass {
        caught.push(format!(
            "parity gate ({} of {} hashes differ)",
            mismatched,
            items.len()
        ));
    }
    let mut s = section(
        "preprocessing-mismatch",
        "Preprocessing mismatch: OpenCV resize in the server, Pillow in training",
        "preprocessing-mismatch",
        format!(
            "{CAMERA_SIZE}x{CAMERA_SIZE} camera images; accuracy served with OpenCV resize {:.3} vs Pillow resize {:.3}",
            cv_window.accuracy, pil_window.accuracy
        ),
        Some(&cv_window),
        parity.checks.clone(),
        caught,
    );
    s.result
        .evidence
        .insert("accuracy_pillow_resize".into(), pil_window.accuracy);
    s.result
        .evidence
        .insert("parity_mismatches".into(), mismatched as f64);
    for (k, v) in &parity.evidence {
        s.gate = s.gate.with_evidence(format!("parity_{k}"), v.clone());
    }
    sections.push(s);

    // 5. Temporal drift: lighting degrades a little every window.
    let steps = 10usize;
    let mut psi_ratio = Vec::new();
    let mut mmd_ratio = Vec::new();
    let mut accs = Vec::new();
    let mut first_alarm: Option<(usize, i32, Vec<String>)> = None;
    let mut last = None;
    for k in 0..steps {
        let delta = 8 * k as i32;
        let idx: Vec<usize> = (0..WINDOW)
            .map(|j| pool[(k * 37 + j * 5) % pool.len()])
            .collect();
        let imgs: Vec<ImageU8> = idx
            .iter()
            .map(|&i| images::brighten(&test.image(i), delta))
            .collect();
        let labels: Vec<usize> = idx.iter().map(|&i| test.labels[i] as usize).collect();
        let w = run_window(&mut ctx, &png_all(&imgs)?, &labels)?;
        let r = &w.report;
        psi_ratio.push(r.psi_confidence.zip(r.psi_threshold).map(|(p, t)| p / t));
        mmd_ratio.push(r.mmd.zip(r.mmd_threshold).map(|(m, t)| m / t));
        accs.push(Some(w.accuracy));
        let f = fired(r);
        if first_alarm.is_none() && !f.is_empty() {
            first_alarm = Some((k, delta, f));
        }
        last = Some(w);
    }
    let last = last.expect("at least one window");
    let (caught, injected) = match &first_alarm {
        Some((k, delta, f)) => (
            f.iter().map(|x| format!("{x} at window {}", k + 1)).collect(),
            format!(
                "brightness +8 per window over {steps} windows; first alarm at window {} (+{delta}); accuracy {:.3} -> {:.3}",
                k + 1,
                accs[0].unwrap_or(f64::NAN),
                last.accuracy
            ),
        ),
        None => (
            vec![],
            format!("brightness +8 per window over {steps} windows; no alarm"),
        ),
    };
    let mut s = section(
        "temporal-drift",
        "Temporal drift: lighting degrades over ten windows",
        "temporal-drift",
        injected,
        None,
        window_checks(&last.report),
        caught,
    );
    s.result.accuracy = Some(last.accuracy);
    if let Some((k, delta, _)) = &first_alarm {
        s.result
            .evidence
            .insert("first_alarm_window".into(), (*k + 1) as f64);
        s.result
            .evidence
            .insert("first_alarm_brightness".into(), f64::from(*delta));
    }
    s.gate = s.gate.with_plot(LinePlot {
        title: "Monitors over windows (statistic / calibrated threshold)".into(),
        x_label: "window (brightness +8 each)".into(),
        y_label: "ratio to threshold; accuracy".into(),
        x_labels: (1..=steps).map(|k| k.to_string()).collect(),
        series: vec![
            LineSeries {
                name: "PSI / threshold".into(),
                values: psi_ratio,
            },
            LineSeries {
                name: "MMD / threshold".into(),
                values: mmd_ratio,
            },
            LineSeries {
                name: "accuracy".into(),
                values: accs,
            },
        ],
        hlines: vec![HLine::limit("alarm", 1.0)],
    });
    sections.push(s);

    // 6. OOD inputs: a client starts sending handwritten digits.
    let n_ood = WINDOW * 3 / 10;
    let mut mixed: Vec<ImageU8> = base[..WINDOW - n_ood].to_vec();
    let mut mixed_labels: Vec<usize> = base_labels[..WINDOW - n_ood].to_vec();
    let digits = &data.digits;
    for k in 0..n_ood {
        // From the end of the digits: the guard's evaluation used the first 500.
        mixed.push(digits.image(digits.len() - 1 - k));
        mixed_labels.push(usize::MAX);
    }
    let w = run_window(&mut ctx, &png_all(&mixed)?, &mixed_labels)?;
    note("ood inputs", &w);
    let flagged_ood = w.answers[WINDOW - n_ood..]
        .iter()
        .filter(|a| a.is_ood == Some(true))
        .count();
    let mut s = section(
        "ood-inputs",
        "OOD inputs: 30% of requests are handwritten digits",
        "ood-inputs",
        format!(
            "{n_ood} MNIST digits among {WINDOW} requests; guard flagged {flagged_ood} of them"
        ),
        Some(&w),
        vec![],
        vec![],
    );
    s.result
        .evidence
        .insert("digits_flagged".into(), flagged_ood as f64);
    s.result.evidence.insert("digits".into(), n_ood as f64);
    s.result.accuracy = None;
    s.result.evidence.remove("accuracy");
    sections.push(s);

    // The overview plot goes on the control section, shown first.
    let names: Vec<String> = summary_rows.iter().map(|r| r.name.clone()).collect();
    let series = |name: &str, f: fn(&OverviewRow) -> Option<f64>| BarSeries {
        name: name.into(),
        // Capped so one huge ratio does not flatten the others.
        values: summary_rows
            .iter()
            .map(|r| f(r).map_or(f64::NAN, |v| v.min(RATIO_CAP)))
            .collect(),
    };
    let overview = GroupedBars {
        title: "Monitors per window, as a ratio to their alarm level".into(),
        categories: names,
        series: vec![
            series("PSI / threshold", |r| r.psi),
            series("MMD / threshold", |r| r.mmd),
            series("OOD rate / 8%", |r| r.ood),
        ],
        y_label: format!("ratio (> 1 = alarm; capped at {RATIO_CAP})"),
        hlines: vec![HLine::limit("alarm", 1.0)],
    };
    if let Some(first) = sections.first_mut() {
        first.gate = first.gate.clone().with_plot(overview);
    }
    Ok(sections.into_iter().map(|s| (s.result, s.gate)).unzip())
}

/// Batch-1 latency of the served path (preprocess, model, guard) over
/// `inputs` in turn (a sample of the traffic mix), as the monitors' baseline
/// (`[monitor] latency_profile`).
pub fn profile(served: &mut Served, inputs: &[Vec<u8>], model_sha: &str) -> Result<ProfileReport> {
    let opts = MeasureOptions::quick();
    let mut next = 0usize;
    let m = measure(
        &opts,
        || {
            let input = &inputs[next % inputs.len()];
            next += 1;
            let start = Instant::now();
            served
                .answer_one(input)
                .map_err(|e| bridgeml_runtime::RuntimeError::InvalidArgument(e.to_string()))?;
            Ok(Timing {
                preprocess_ms: 0.0,
                compute_ms: start.elapsed().as_secs_f64() * 1000.0,
            })
        },
        |_| {},
    )?;
    let model = &served.model;
    Ok(ProfileReport {
        model: model.path().display().to_string(),
        backend: model.backend(),
        backend_version: model.backend_version(),
        threads: model.threads(),
        fingerprint: Fingerprint::new(
            model.backend(),
            model.backend_version(),
            model.threads(),
            model_sha.to_string(),
        ),
        criterion: "quick: bridgeml demo (preprocessing + model + guard, batch 1, traffic mix)"
            .into(),
        options: opts,
        results: vec![BatchResult::from_measurement(1, &m, false, 3)],
        comparison: None,
    })
}

/// Share of requests from the mobile app, which uploads JPEG.
pub const MOBILE_SHARE: f64 = 0.3;

/// A request as a client sends it: the web client PNG, the mobile app a
/// quality-40 JPEG.
pub fn encode_request(img: &ImageU8, mobile: bool) -> Result<(&'static str, Vec<u8>)> {
    Ok(if mobile {
        ("mobile", images::jpeg_bytes(img, 40)?)
    } else {
        ("web", images::png_bytes(img)?)
    })
}

/// What [`replay_log`] wrote.
#[derive(Debug, Clone, Serialize)]
pub struct ReplaySummary {
    pub rows: usize,
    pub days: usize,
    pub labelled: usize,
    pub actions: usize,
}

/// Thirty simulated days of traffic, every request shadowed by `candidate`,
/// half of them labelled later, with lighting drift in the last week;
/// written to `log` (replaced) through the server's log statements, and
/// monitored window by window as the server would.
pub fn replay_log(
    manifest: &Manifest,
    data: &DemoData,
    served: &mut Served,
    candidate: &mut Served,
    log: &Path,
    seed: u64,
) -> Result<ReplaySummary> {
    for suffix in ["", "-wal", "-shm"] {
        let p = std::path::PathBuf::from(format!("{}{suffix}", log.display()));
        if p.exists() {
            std::fs::remove_file(&p).map_err(|e| DemoError::io(&p, e))?;
        }
    }
    let pool: Vec<usize> = data.pool().collect();
    let mut rng = SplitMix64::new(seed ^ 0x10a);
    let mut mon = Monitors::new(load_monitors(
        manifest,
        served.model.sha256(),
        served.pipeline.fingerprint(),
    )?);
    let cand_sha = candidate.model.sha256().to_string();
    let (mut preds, mut shadows, mut actions, mut feedback) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for day in 0..REPLAY_DAYS {
        let drift = if day >= REPLAY_DRIFT_FROM_DAY {
            12 * (day + 1 - REPLAY_DRIFT_FROM_DAY) as i32
        } else {
            0
        };
        for j in 0..REPLAY_PER_DAY {
            let n = day * REPLAY_PER_DAY + j;
            let i = pool[rng.below(pool.len())];
            let label = data.test.labels[i] as usize;
            let img = images::brighten(&data.test.image(i), drift);
            let mobile = rng.next_f64() < MOBILE_SHARE;
            let (segment, bytes) = encode_request(&img, mobile)?;
            let ts = REPLAY_START_MS + (day as i64) * 86_400_000 + (j as i64) * 1_800_000;
            let (a, ms) = served.answer_one(&bytes)?;
            let (c, cms) = candidate.answer_one(&bytes)?;
            mon.observe_request("ok", Some(ms));
            let request_id = format!("demo-{n:05}");
            if let Some(r) = mon.observe_instance(Observed {
                segment,
                confidence: a.confidence,
                is_ood: a.is_ood,
                embedding: Some(&a.embedding),
            }) {
                for rule in fired_rules(&r) {
                    actions.push(ActionRow {
                        ts_ms: ts,
                        window: r.index as i64,
                        action: rule.1,
                        rule: rule.0,
                        detail: format!("simulated day {}", day + 1),
                    });
                }
            }
            preds.push(PredictionRow {
                ts_ms: ts,
                request_id: request_id.clone(),
                instance: 0,
                segment: segment.to_string(),
                input_hash: a.input_hash.clone(),
                spec_fingerprint: served.pipeline.fingerprint().to_string(),
                model_sha256: served.model.sha256().to_string(),
                class: a.class as i64,
                label_name: Some(CLASS_NAMES[a.class].to_string()),
                confidence: a.confidence,
                ood_score: a.ood_score,
                is_ood: a.is_ood,
                latency_ms: ms,
            });
            shadows.push(ShadowRow {
                request_id: request_id.clone(),
                instance: 0,
                model_sha256: cand_sha.clone(),
                class: Some(c.class as i64),
                confidence: Some(c.confidence),
                ood_score: None,
                latency_ms: cms,
                error: None,
            });
            if j % 2 == 0 {
                feedback.push(FeedbackRow {
                    request_id,
                    instance: Some(0),
                    label: label as i64,
                    ts_ms: ts + 3_600_000,
                });
            }
        }
    }
    append(log, &preds, &shadows, &actions, &feedback)?;
    Ok(ReplaySummary {
        rows: preds.len(),
        days: REPLAY_DAYS,
        labelled: feedback.len(),
        actions: actions.len(),
    })
}

/// (rule, action) pairs that fired in a window.
fn fired_rules(r: &WindowReport) -> Vec<(String, String)> {
    r.policy
        .as_ref()
        .map(|p| {
            p.rules
                .iter()
                .filter(|x| x.status == RuleStatus::Triggered)
                .map(|x| (x.name.clone(), x.action.clone()))
                .collect()
        })
        .unwrap_or_default()
}
