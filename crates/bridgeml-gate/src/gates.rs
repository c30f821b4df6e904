//! The gate rules: each function turns evidence already computed by the
//! other crates (a profile, a budget, an audit, guard scores, parity hashes,
//! baseline checks, a parsed policy) into one [`GateResult`] with its checks,
//! thresholds and plots. They do no IO, so every rule is tested on its own,
//! pass and fail; the runner that gathers the evidence from a manifest lives
//! apart from them.

use std::collections::BTreeMap;

use bridgeml_guard::Metrics;
use bridgeml_quant::audit::AuditReport;
use bridgeml_runtime::budget::Budget;
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::report::{
    BarSeries, Check, Comparison, GateName, GateResult, GroupedBars, HLine, Histogram, Status,
    VLine,
};

/// Every threshold of the gate, with the defaults of the deployment
/// checklist; each can be set in the manifest's `[gate]` table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Thresholds {
    /// Quantization: fail when any class's recall drops by more than this (points).
    pub max_recall_drop_points: f64,
    /// Quantization: warn when the flip rate inside the boundary band exceeds this fraction.
    pub max_boundary_flip_rate: f64,
    /// Quantization: imbalance ratio above which a non-QAT candidate warns.
    pub qat_imbalance_ratio: f64,
    /// Guard: the in-distribution pass rate may fall this far below the calibrated TPR.
    pub guard_pass_rate_tolerance: f64,
    /// Guard: fail when FPR at 95% TPR on the OOD set exceeds this fraction.
    pub max_fpr_at_95_tpr: f64,
    /// Latency: warn when the profile is not stable (noise above this percentage).
    pub max_latency_noise_pct: f64,
    /// Shadow: minimum hours of mirrored traffic.
    pub min_shadow_hours: f64,
    /// Shadow: fail when any segment's disagreement exceeds this fraction.
    pub max_segment_disagreement: f64,
    /// Parity: how many inputs to hash when the manifest names a folder.
    pub parity_sample: usize,
    /// Drift: PSI of the validation set against the baseline that warns.
    pub psi_alert: f64,
}

impl Default for Thresholds {
    fn default() -> Self {
        Thresholds {
            max_recall_drop_points: 2.0,
            max_boundary_flip_rate: 0.5,
            qat_imbalance_ratio: 10.0,
            guard_pass_rate_tolerance: 0.03,
            max_fpr_at_95_tpr: 0.5,
            max_latency_noise_pct: 10.0,
            min_shadow_hours: 72.0,
            max_segment_disagreement: 0.05,
            parity_sample: 32,
            psi_alert: 0.2,
        }
    }
}

/// Latency evidence: per-run latencies at batch 1 on this machine.
#[derive(Debug, Clone, PartialEq)]
pub struct LatencyEvidence {
    pub samples_ms: Vec<f64>,
    pub p50_ms: f64,
    pub p95_ms: f64,
    pub p99_ms: f64,
    pub stable: bool,
    pub noise_pct: f64,
    pub backend: String,
    pub hardware: BTreeMap<String, serde_json::Value>,
}

/// The latency gate: p95 and p99 against the SLA, with the histogram.
pub fn latency(
    e: &LatencyEvidence,
    sla_p95_ms: Option<f64>,
    sla_p99_ms: Option<f64>,
    t: &Thresholds,
) -> GateResult {
    let mut g = GateResult::new(
        GateName::Latency,
        format!(
            "batch 1 on this machine ({}): p50 {:.2} ms, p95 {:.2} ms, p99 {:.2} ms",
            e.backend, e.p50_ms, e.p95_ms, e.p99_ms
        ),
    );
    let mut hist = Histogram::from_samples(
        "Latency, batch 1",
        "milliseconds",
        &[("runs", e.samples_ms.as_slice())],
        30,
        None,
        false,
    )
    .with_vline(VLine::marker("p50", e.p50_ms))
    .with_vline(VLine::marker("p95", e.p95_ms))
    .with_vline(VLine::marker("p99", e.p99_ms));
    if let Some(s) = sla_p95_ms {
        g.push_check(Check::compare("p95_ms", e.p95_ms, Comparison::Le, s).with_unit("ms"));
        g = g.with_threshold("sla_p95_ms", s);
        hist = hist.with_vline(VLine::limit("SLA p95", s));
    }
    if let Some(s) = sla_p99_ms {
        g.push_check(Check::compare("p99_ms", e.p99_ms, Comparison::Le, s).with_unit("ms"));
        g = g.with_threshold("sla_p99_ms", s);
        hist = hist.with_vline(VLine::limit("SLA p99", s));
    }
    if sla_p95_ms.is_none() && sla_p99_ms.is_none() {
        g.push_check(
            Check::new("sla_declared", Status::Warn)
                .with_message("no latency SLA in the manifest ([sla] p95_ms / p99_ms)"),
        );
    }
    g.push_check(
        Check::compare_warn(
            "noise_pct",
            e.noise_pct,
            Comparison::Le,
            t.max_latency_noise_pct,
        )
        .with_unit("%")
        .with_message(if e.stable {
            "stable windows"
        } else {
            "windows did not stabilise: the machine is busy"
        }),
    );
    g.with_evidence("runs", e.samples_ms.len())
        .with_evidence("backend", e.backend.clone())
        .with_evidence("hardware", json!(e.hardware))
        .with_plot(hist)
}

/// Declared resource limits (`[sla]` in the manifest).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct BudgetLimits {
    pub max_params: Option<u64>,
    pub max_weight_bytes: Option<u64>,
    pub max_peak_activation_bytes: Option<u64>,
}

/// The budget gate: parameters, weight bytes and peak activation memory.
pub fn budget(b: &Budget, limits: &BudgetLimits) -> GateResult {
    let mut g = GateResult::new(
        GateName::Budget,
        format!(
            "{} parameters, {} weight bytes, {} MACs per inference, peak activations {} bytes",
            b.params, b.weight_bytes, b.macs_per_inference, b.peak_activation_bytes
        ),
    );
    let pairs = [
        ("params", b.params, limits.max_params),
        ("weight_bytes", b.weight_bytes, limits.max_weight_bytes),
        (
            "peak_activation_bytes",
            b.peak_activation_bytes,
            limits.max_peak_activation_bytes,
        ),
    ];
    let mut any = false;
    for (name, value, limit) in pairs {
        if let Some(l) = limit {
            any = true;
            g.push_check(Check::compare(name, value as f64, Comparison::Le, l as f64));
            g = g.with_threshold(format!("max_{name}"), l);
        }
    }
    if !any {
        g.push_check(Check::new("limits_declared", Status::Pass).with_message(
            "no limits declared; figures recorded for the record ([sla] max_params, ...)",
        ));
    }
    g.with_evidence("macs_per_inference", b.macs_per_inference)
        .with_evidence("nodes", b.nodes)
        .with_evidence("model_sha256", b.model_sha256.clone())
}

/// The policy gate: a retraining policy exists and parses.
pub fn policy(path: Option<&str>, parsed: Option<Result<usize, String>>) -> GateResult {
    match (path, parsed) {
        (None, _) | (_, None) => GateResult::new(GateName::Policy, "no retraining policy")
            .with_check(
                Check::new("policy_present", Status::Fail)
                    .with_message("write a trigger policy and name it in [policy] path"),
            ),
        (Some(p), Some(Ok(rules))) => {
            GateResult::new(GateName::Policy, format!("{p}: {rules} rules, valid"))
                .with_check(Check::new("policy_valid", Status::Pass).with_value(rules))
                .with_evidence("path", p.to_string())
        }
        (Some(p), Some(Err(e))) => GateResult::new(GateName::Policy, format!("{p}: invalid"))
            .with_check(Check::new("policy_valid", Status::Fail).with_message(e)),
    }
}

/// One input's parity evidence: the engine's hash and the training side's.
#[derive(Debug, Clone, PartialEq)]
pub struct ParityItem {
    pub input: String,
    pub engine_hash: String,
    pub reference_hash: String,
    /// The parity diagnosis when the hashes differ (which setting explains it).
    pub diagnosis: Option<String>,
}

/// The parity gate: every sampled input hashes the same on both sides.
pub fn parity(items: &[ParityItem]) -> GateResult {
    let mismatched: Vec<&ParityItem> = items
        .iter()
        .filter(|i| i.engine_hash != i.reference_hash)
        .collect();
    let mut g = GateResult::new(
        GateName::Parity,
        format!(
            "{} of {} inputs hash identically on the training side and in the engine",
            items.len() - mismatched.len(),
            items.len()
        ),
    )
    .with_check(Check::compare(
        "mismatched_inputs",
        mismatched.len() as f64,
        Comparison::Eq,
        0.0,
    ));
    for m in mismatched.iter().take(10) {
        g.push_check(
            Check::new(format!("hash[{}]", m.input), Status::Fail).with_message(
                m.diagnosis
                    .clone()
                    .unwrap_or_else(|| "no single setting explains the difference".into()),
            ),
        );
    }
    if let Some(d) = mismatched.iter().find_map(|m| m.diagnosis.clone()) {
        g = g.with_evidence("diagnosis", d);
    }
    g.with_evidence("inputs", items.len())
}

/// The quantization gate from the audit of the deployed model against FP32.
pub fn quantization(a: &AuditReport, t: &Thresholds) -> GateResult {
    let mut g = GateResult::new(
        GateName::Quantization,
        format!(
            "accuracy {:.4} -> {:.4}; {} flips ({:.2}%), {:.1}% of them in the boundary band",
            a.reference.accuracy,
            a.candidate.accuracy,
            a.flips.total,
            100.0 * a.flips.rate,
            if a.flips.total == 0 {
                0.0
            } else {
                100.0 * a.flips.in_band.flips as f64 / a.flips.total as f64
            }
        ),
    )
    .with_threshold("max_recall_drop_points", t.max_recall_drop_points)
    .with_threshold("qat_imbalance_ratio", t.qat_imbalance_ratio);
    let worst = a
        .classes
        .iter()
        .filter_map(|c| c.recall_delta_points.map(|d| (c, d)))
        .min_by(|x, y| x.1.total_cmp(&y.1));
    if let Some((c, d)) = worst {
        g.push_check(
            Check::compare(
                format!("recall_drop[{}]", c.name),
                -d,
                Comparison::Le,
                t.max_recall_drop_points,
            )
            .with_unit("points")
            .with_message("the class that pays most"),
        );
    }
    for c in &a.classes {
        if let Some(d) = c.recall_delta_points {
            if -d > t.max_recall_drop_points && worst.is_some_and(|(w, _)| w.index != c.index) {
                g.push_check(
                    Check::compare(
                        format!("recall_drop[{}]", c.name),
                        -d,
                        Comparison::Le,
                        t.max_recall_drop_points,
                    )
                    .with_unit("points"),
                );
            }
        }
    }
    g.push_check(
        Check::compare_warn(
            "boundary_band_flip_rate",
            a.flips.in_band.rate,
            Comparison::Le,
            t.max_boundary_flip_rate,
        )
        .with_message(format!(
            "band {:.2}-{:.2}: {} of {} samples flipped",
            a.flips.band.0, a.flips.band.1, a.flips.in_band.flips, a.flips.in_band.samples
        )),
    );
    let source = if a.imbalance_from_training {
        "training data"
    } else {
        "validation set"
    };
    let qat_rule = if a.imbalance_ratio > t.qat_imbalance_ratio && !a.candidate_qat {
        Check::new("qat_when_imbalanced", Status::Warn).with_message(format!(
            "{source} imbalance {:.1}:1 exceeds {:.0}:1 and the candidate is not QAT: use bridgeml qat",
            a.imbalance_ratio, t.qat_imbalance_ratio
        ))
    } else {
        Check::new("qat_when_imbalanced", Status::Pass).with_message(format!(
            "{source} imbalance {:.1}:1{}",
            a.imbalance_ratio,
            if a.candidate_qat {
                ", candidate is QAT"
            } else {
                ""
            }
        ))
    };
    g.push_check(qat_rule.with_value(a.imbalance_ratio));
    let categories: Vec<String> = a.classes.iter().map(|c| c.name.clone()).collect();
    let recall = |f: fn(&bridgeml_quant::audit::ClassReport) -> Option<f64>| -> Vec<f64> {
        a.classes.iter().map(|c| f(c).unwrap_or(0.0)).collect()
    };
    g.with_evidence("samples", a.samples)
        .with_evidence("flip_rate", a.flips.rate)
        .with_evidence("imbalance_ratio", a.imbalance_ratio)
        .with_evidence("minority_classes", json!(a.minority_classes))
        .with_plot(GroupedBars {
            title: "Per-class recall, reference vs deployed".into(),
            categories,
            series: vec![
                BarSeries {
                    name: "reference (FP32)".into(),
                    values: recall(|c| c.reference_recall),
                },
                BarSeries {
                    name: "deployed".into(),
                    values: recall(|c| c.candidate_recall),
                },
            ],
            y_label: "recall".into(),
            hlines: vec![],
        })
}

/// Guard evidence: scores of the in-distribution validation set (and of an
/// OOD set when given) under the calibrated guard.
#[derive(Debug, Clone, PartialEq)]
pub struct GuardEvidence {
    pub method: String,
    pub threshold: f64,
    pub target_tpr: f64,
    pub id_scores: Vec<f64>,
    pub ood_scores: Option<Vec<f64>>,
    pub metrics: Option<Metrics>,
}

/// The guard gate: calibrated for this model, in-distribution pass rate near
/// target, FPR@95 on the OOD set when one is given.
pub fn guard(e: &GuardEvidence, t: &Thresholds) -> GateResult {
    let n = e.id_scores.len().max(1) as f64;
    let pass_rate = e.id_scores.iter().filter(|&&s| s <= e.threshold).count() as f64 / n;
    let mut g = GateResult::new(
        GateName::Guard,
        format!(
            "{} guard, threshold {:.4}: {:.1}% of in-distribution inputs pass (target {:.0}%)",
            e.method,
            e.threshold,
            100.0 * pass_rate,
            100.0 * e.target_tpr
        ),
    )
    .with_threshold("guard_pass_rate_tolerance", t.guard_pass_rate_tolerance)
    .with_check(Check::compare(
        "id_pass_rate",
        pass_rate,
        Comparison::Ge,
        e.target_tpr - t.guard_pass_rate_tolerance,
    ));
    let mut series: Vec<(&str, &[f64])> = vec![("in-distribution", e.id_scores.as_slice())];
    if let Some(ood) = &e.ood_scores {
        series.push(("OOD", ood.as_slice()));
    }
    if let Some(m) = &e.metrics {
        g.push_check(Check::compare(
            "fpr_at_95_tpr",
            m.fpr_at_95_tpr,
            Comparison::Le,
            t.max_fpr_at_95_tpr,
        ));
        g = g
            .with_evidence("auroc", m.auroc)
            .with_evidence("aupr_in", m.aupr_in)
            .with_evidence("aupr_out", m.aupr_out)
            .with_threshold("max_fpr_at_95_tpr", t.max_fpr_at_95_tpr);
    } else {
        g.push_check(
            Check::new("ood_set", Status::Pass)
                .with_message("no OOD set given: FPR@95 not measured"),
        );
    }
    let hist = Histogram::from_samples(
        format!("OOD score ({})", e.method),
        "score (higher = more out-of-distribution)",
        &series,
        40,
        None,
        true,
    )
    .with_vline(VLine::limit("threshold", e.threshold));
    g.with_evidence("method", e.method.clone())
        .with_evidence("threshold", e.threshold)
        .with_plot(hist)
}

/// One drift baseline's evidence.
#[derive(Debug, Clone, PartialEq)]
pub struct BaselineEvidence {
    pub signal: String,
    pub path: String,
    /// `Ok` when it loads and its fingerprints match, else the reason.
    pub check: Result<(), String>,
    /// Reference histogram (bin edges, fractions) behind the PSI, and the
    /// validation set's under the same bins, when known.
    pub reference: Option<(Vec<f64>, Vec<f64>)>,
    pub current: Option<Vec<f64>>,
    pub psi: Option<f64>,
}

/// The drift-baselines gate: calibrated baselines exist for the monitored
/// signals and match the model and spec.
pub fn drift(baselines: &[BaselineEvidence], psi_alert: f64) -> GateResult {
    if baselines.is_empty() {
        return GateResult::new(GateName::Drift, "no drift baselines").with_check(
            Check::new("baselines_present", Status::Fail).with_message(
                "calibrate baselines (bridgeml drift calibrate) and name them in [monitor]",
            ),
        );
    }
    let ok = baselines.iter().filter(|b| b.check.is_ok()).count();
    let mut g = GateResult::new(
        GateName::Drift,
        format!(
            "{ok} of {} baselines valid for this model and spec",
            baselines.len()
        ),
    )
    .with_threshold("psi_alert", psi_alert);
    for b in baselines {
        let c = match &b.check {
            Ok(()) => Check::new(format!("baseline[{}]", b.signal), Status::Pass)
                .with_message(b.path.clone()),
            Err(e) => Check::new(format!("baseline[{}]", b.signal), Status::Fail)
                .with_message(format!("{}: {e}", b.path)),
        };
        g.push_check(c);
        if let Some(psi) = b.psi {
            g.push_check(Check::compare_warn(
                format!("validation_psi[{}]", b.signal),
                psi,
                Comparison::Lt,
                psi_alert,
            ));
        }
        if let Some((edges, reference)) = &b.reference {
            let mut series = vec![crate::report::HistSeries {
                name: "reference".into(),
                counts: reference.clone(),
            }];
            if let Some(cur) = &b.current {
                series.push(crate::report::HistSeries {
                    name: "validation".into(),
                    counts: cur.clone(),
                });
            }
            g = g.with_plot(Histogram {
                title: format!("{}: reference vs validation", b.signal),
                x_label: b.signal.clone(),
                y_label: "fraction".into(),
                bins: edges.clone(),
                series,
                vlines: vec![],
            });
        }
    }
    g
}

/// Shadow evidence, as summarised from the prediction log.
#[derive(Debug, Clone, PartialEq)]
pub struct ShadowEvidence {
    pub hours: f64,
    pub samples: usize,
    /// Per segment: (name, samples, disagreement rate).
    pub segments: Vec<(String, usize, f64)>,
    pub overall_disagreement: f64,
}

/// The shadow gate: coverage and per-segment disagreement.
pub fn shadow(e: &ShadowEvidence, t: &Thresholds) -> GateResult {
    let mut g = GateResult::new(
        GateName::Shadow,
        format!(
            "{:.1} h of mirrored traffic, {} samples, {:.2}% disagreement overall",
            e.hours,
            e.samples,
            100.0 * e.overall_disagreement
        ),
    )
    .with_check(
        Check::compare(
            "coverage_hours",
            e.hours,
            Comparison::Ge,
            t.min_shadow_hours,
        )
        .with_unit("h"),
    )
    .with_threshold("min_shadow_hours", t.min_shadow_hours)
    .with_threshold("max_segment_disagreement", t.max_segment_disagreement);
    for (name, _, rate) in &e.segments {
        g.push_check(Check::compare(
            format!("disagreement[{name}]"),
            *rate,
            Comparison::Le,
            t.max_segment_disagreement,
        ));
    }
    g.with_plot(GroupedBars {
        title: "Disagreement by segment".into(),
        categories: e.segments.iter().map(|s| s.0.clone()).collect(),
        series: vec![BarSeries {
            name: "candidate vs live".into(),
            values: e.segments.iter().map(|s| s.2).collect(),
        }],
        y_label: "disagreement rate".into(),
        hlines: vec![HLine::limit("limit", t.max_segment_disagreement)],
    })
}
