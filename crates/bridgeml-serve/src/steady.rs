//! `bridgeml report`: the steady-state view of a deployment over the last
//! days of its prediction log, against the targets of a healthy launch:
//! validation-to-production accuracy gap on labelled feedback (< 5 points),
//! latency within 10% of the profiled baseline, drift monitors stable, OOD
//! flag rate (< 3%). The result is a [`GateReport`] with one section per
//! target, so it renders as JSON, Markdown and HTML like the gate.

use std::collections::BTreeMap;
use std::path::Path;

use bridgeml_gate::manifest::Manifest;
use bridgeml_gate::run::run_model;
use bridgeml_gate::{
    Check, Comparison, GateName, GateReport, GateResult, HLine, Histogram, LinePlot, LineSeries,
    Status, VLine,
};
use bridgeml_preprocess::Pipeline;
use bridgeml_runtime::profile::LatencyStats;

use crate::log::{read_actions, read_predictions, LoggedPrediction};
use crate::server::{confidence_baseline, latency_baseline};
use crate::{Result, ServeError};

const DAY_MS: i64 = 86_400_000;

/// Targets and the period of the report.
#[derive(Debug, Clone)]
pub struct SteadyOptions {
    /// Days before the log's last entry that the report covers.
    pub days: u32,
    /// Largest acceptable validation-to-production accuracy gap, in points.
    pub max_accuracy_gap_points: f64,
    /// Largest acceptable latency ratio to the profiled baseline (p50 and p99).
    pub max_latency_ratio: f64,
    /// Largest acceptable OOD flag rate (default: the manifest's
    /// `[sla] max_ood_rate`, else 3%).
    pub max_ood_rate: Option<f64>,
    /// RFC 3339 time stamp of the report.
    pub created: String,
}

impl Default for SteadyOptions {
    fn default() -> Self {
        SteadyOptions {
            days: 30,
            max_accuracy_gap_points: 5.0,
            max_latency_ratio: 1.10,
            max_ood_rate: None,
            created: String::new(),
        }
    }
}

/// Per-day groups of the rows, `days` entries, oldest first.
fn by_day(rows: &[LoggedPrediction], start: i64, days: usize) -> Vec<Vec<&LoggedPrediction>> {
    let mut out = vec![Vec::new(); days];
    for r in rows {
        let d = ((r.ts_ms - start).div_euclid(DAY_MS)) as usize;
        if let Some(g) = out.get_mut(d) {
            g.push(r);
        }
    }
    out
}

/// The report over `log` for the deployment of `manifest`.
pub fn steady_state_report(
    manifest: &Manifest,
    log: &Path,
    opts: &SteadyOptions,
) -> Result<GateReport> {
    let all = read_predictions(log, None, None)?;
    let Some(last) = all.last().map(|r| r.ts_ms) else {
        return Err(ServeError::Log {
            path: log.to_path_buf(),
            reason: "no predictions logged yet".into(),
        });
    };
    let days = opts.days.max(1) as usize;
    // Whole days ending with the day of the last entry.
    let end = (last.div_euclid(DAY_MS) + 1) * DAY_MS;
    let start = end - days as i64 * DAY_MS;
    let rows: Vec<LoggedPrediction> = all.into_iter().filter(|r| r.ts_ms >= start).collect();
    let daily = by_day(&rows, start, days);
    let labels: Vec<String> = (0..days)
        .map(|d| bridgeml_core::time::date((start + d as i64 * DAY_MS) / 1000)[5..].to_string())
        .collect();
    let (served, _) = manifest.served_model()?;
    let pipeline = Pipeline::from_path(&manifest.resolve(&manifest.spec.path))?;

    let mut sections = vec![
        accuracy_section(manifest, &served, &pipeline, &rows, &daily, &labels, opts)?,
        latency_section(manifest, &rows, &daily, &labels, opts)?,
        drift_section(manifest, log, &rows, start, end)?,
        ood_section(manifest, &rows, &daily, &labels, opts),
    ];
    for s in &mut sections {
        s.evidence.insert("rows".into(), rows.len().into());
    }
    let mut report = GateReport::new(
        opts.created.clone(),
        manifest.source.display().to_string(),
        sections,
    )
    .with_title(format!(
        "bridgeml report: {} days of production, {} to {}",
        days,
        bridgeml_core::time::date(start / 1000),
        bridgeml_core::time::date((end - 1) / 1000)
    ))
    .with_model(
        served.display().to_string(),
        bridgeml_gate::manifest::sha256_file(&served)?,
    )
    .with_spec(
        manifest.spec.path.display().to_string(),
        pipeline.fingerprint().to_string(),
    );
    report.refresh_verdict();
    Ok(report)
}

fn accuracy_section(
    manifest: &Manifest,
    served: &Path,
    pipeline: &Pipeline,
    rows: &[LoggedPrediction],
    daily: &[Vec<&LoggedPrediction>],
    labels: &[String],
    opts: &SteadyOptions,
) -> Result<GateResult> {
    let name = GateName::Other("accuracy_gap".into());
    let labelled: Vec<&LoggedPrediction> = rows.iter().filter(|r| r.label.is_some()).collect();
    if labelled.is_empty() {
        return Ok(GateResult::skipped(
            name,
            "no labelled feedback in the log (POST /v1/feedback)",
        ));
    }
    let Some(val) = manifest
        .gate
        .validation
        .as_ref()
        .map(|p| manifest.resolve(p))
    else {
        return Ok(GateResult::skipped(
            name,
            "no validation set to compare with ([gate] validation)",
        ));
    };
    let labels_path = manifest
        .gate
        .labels
        .as_ref()
        .map_or_else(|| val.clone(), |p| manifest.resolve(p));
    let set = bridgeml_quant::audit::load_labels(&val, &labels_path, None).map_err(|e| {
        ServeError::Config {
            path: labels_path.clone(),
            reason: e.to_string(),
        }
    })?;
    let run = run_model(served, &manifest.model.backend, pipeline, &set.files, None)?;
    let correct = run
        .logits
        .rows()
        .into_iter()
        .zip(&set.labels)
        .filter(|(r, &l)| {
            let row: Vec<f64> = r.iter().map(|&v| f64::from(v)).collect();
            bridgeml_runtime::diverge::argmax(&row) == Some(l)
        })
        .count();
    let val_acc = correct as f64 / set.labels.len().max(1) as f64;
    let acc = |rs: &[&LoggedPrediction]| -> Option<f64> {
        let l: Vec<_> = rs.iter().filter(|r| r.label.is_some()).collect();
        (!l.is_empty())
            .then(|| l.iter().filter(|r| r.label == Some(r.class)).count() as f64 / l.len() as f64)
    };
    let prod = acc(&labelled).unwrap_or(f64::NAN);
    let gap = 100.0 * (val_acc - prod);
    let daily_acc: Vec<Option<f64>> = daily.iter().map(|d| acc(d)).collect();
    let mut by_segment: BTreeMap<String, Vec<&LoggedPrediction>> = BTreeMap::new();
    for r in &labelled {
        by_segment.entry(r.segment.clone()).or_default().push(r);
    }
    let mut g = GateResult::new(
        name,
        format!(
            "production accuracy {:.3} on {} labelled requests vs validation {:.3}: gap {:.1} points",
            prod,
            labelled.len(),
            val_acc,
            gap
        ),
    )
    .with_check(
        Check::compare(
            "accuracy_gap_points",
            gap,
            Comparison::Lt,
            opts.max_accuracy_gap_points,
        )
        .with_unit("points"),
    )
    .with_evidence("validation_accuracy", val_acc)
    .with_evidence("production_accuracy", prod)
    .with_evidence("labelled", labelled.len())
    .with_threshold("max_accuracy_gap_points", opts.max_accuracy_gap_points);
    for (seg, rs) in &by_segment {
        if let Some(a) = acc(rs) {
            g = g.with_evidence(format!("accuracy[{seg}]"), a);
        }
    }
    Ok(g.with_plot(LinePlot {
        title: "Accuracy on labelled feedback, per day".into(),
        x_label: "day".into(),
        y_label: "accuracy".into(),
        x_labels: labels.to_vec(),
        series: vec![LineSeries {
            name: "production".into(),
            values: daily_acc,
        }],
        hlines: vec![
            HLine::marker("validation", val_acc),
            HLine::limit(
                format!("validation - {} points", opts.max_accuracy_gap_points),
                val_acc - opts.max_accuracy_gap_points / 100.0,
            ),
        ],
    }))
}

fn latency_section(
    manifest: &Manifest,
    rows: &[LoggedPrediction],
    daily: &[Vec<&LoggedPrediction>],
    labels: &[String],
    opts: &SteadyOptions,
) -> Result<GateResult> {
    let name = GateName::Other("latency".into());
    let lat: Vec<f64> = rows.iter().map(|r| r.latency_ms).collect();
    let stats = LatencyStats::from_ms(&lat);
    let (p50, p95, p99) = (stats.p50_ms, stats.p95_ms, stats.p99_ms);
    let Some((profile_path, base)) = latency_baseline(manifest)? else {
        return Ok(GateResult::skipped(
            name,
            format!(
                "p50 {p50:.2} ms, p99 {p99:.2} ms; no profiled baseline ([monitor] latency_profile)"
            ),
        ));
    };
    let (r50, r99) = (p50 / base.p50_ms, p99 / base.p99_ms);
    let daily_p99: Vec<Option<f64>> = daily
        .iter()
        .map(|d| {
            let ms: Vec<f64> = d.iter().map(|r| r.latency_ms).collect();
            (!ms.is_empty()).then(|| LatencyStats::from_ms(&ms).p99_ms)
        })
        .collect();
    let t = opts.max_latency_ratio;
    Ok(GateResult::new(
        name,
        format!(
            "p50 {p50:.3} ms ({:+.0}% vs profiled {:.3} ms), p99 {p99:.3} ms ({:+.0}% vs {:.3} ms)",
            100.0 * (r50 - 1.0),
            base.p50_ms,
            100.0 * (r99 - 1.0),
            base.p99_ms
        ),
    )
    .with_check(Check::compare("p50_ratio", r50, Comparison::Le, t))
    .with_check(Check::compare("p99_ratio", r99, Comparison::Le, t))
    .with_evidence("p50_ms", p50)
    .with_evidence("p95_ms", p95)
    .with_evidence("p99_ms", p99)
    .with_evidence("baseline_p50_ms", base.p50_ms)
    .with_evidence("baseline_p99_ms", base.p99_ms)
    .with_evidence("baseline", profile_path.display().to_string())
    .with_threshold("max_latency_ratio", t)
    .with_plot(
        Histogram::from_samples(
            "Logged request latency",
            "ms",
            &[("requests", &lat)],
            30,
            None,
            false,
        )
        .with_vline(VLine::marker("p50", p50))
        .with_vline(VLine::marker("p99", p99))
        .with_vline(VLine::limit("baseline p99 +10%", base.p99_ms * t)),
    )
    .with_plot(LinePlot {
        title: "p99 latency per day".into(),
        x_label: "day".into(),
        y_label: "ms".into(),
        x_labels: labels.to_vec(),
        series: vec![LineSeries {
            name: "p99".into(),
            values: daily_p99,
        }],
        hlines: vec![HLine::limit("baseline p99 +10%", base.p99_ms * t)],
    }))
}

fn drift_section(
    manifest: &Manifest,
    log: &Path,
    rows: &[LoggedPrediction],
    start: i64,
    end: i64,
) -> Result<GateResult> {
    let name = GateName::Other("drift".into());
    let (Some(mon), Some((_, bins, threshold))) =
        (manifest.monitor.as_ref(), confidence_baseline(manifest)?)
    else {
        return Ok(GateResult::skipped(
            name,
            "no confidence baseline ([monitor] confidence_baseline)",
        ));
    };
    // The windows the server closes: `window` consecutive requests, the
    // size the threshold was calibrated for.
    let window = mon.window.max(1);
    let mut psi = Vec::new();
    for chunk in rows.chunks(window).filter(|c| c.len() == window) {
        let conf: Vec<f64> = chunk.iter().map(|r| r.confidence).collect();
        psi.push(bins.psi(&conf)?);
    }
    let alarms: Vec<usize> = (0..psi.len()).filter(|&i| psi[i] > threshold).collect();
    let consecutive = alarms.windows(2).any(|w| w[1] == w[0] + 1);
    let actions = read_actions(log, Some(start), Some(end))?;
    // One isolated alarm is what a mean + 2 std threshold produces by
    // chance now and then; two in a row, or more than 10% of windows, is drift.
    let status = if psi.is_empty() {
        Status::Skip
    } else if consecutive || alarms.len() as f64 > 0.1 * psi.len() as f64 {
        Status::Fail
    } else if alarms.is_empty() {
        Status::Pass
    } else {
        Status::Warn
    };
    let mut action_counts: BTreeMap<String, usize> = BTreeMap::new();
    for a in &actions {
        *action_counts.entry(a.action.clone()).or_default() += 1;
    }
    let latest: Vec<f64> = rows
        .iter()
        .rev()
        .take(window)
        .map(|r| r.confidence)
        .collect();
    let (edges, reference) = bridgeml_gate::run::bin_plot(&bins);
    let current = bins
        .count(&latest)
        .map(|c| {
            let n = c.counts.iter().sum::<u64>().max(1) as f64;
            c.counts.iter().map(|&x| x as f64 / n).collect::<Vec<f64>>()
        })
        .unwrap_or_default();
    let mut g = GateResult::new(
        name,
        format!(
            "{} of {} windows of {window} requests above the calibrated PSI threshold {:.3}; {} policy actions logged",
            alarms.len(),
            psi.len(),
            threshold,
            actions.len()
        ),
    )
    .with_check(
        Check::new("psi_windows_alarmed", status)
            .with_value(alarms.len())
            .with_message(format!(
                "fail on two consecutive alarms or more than 10% of {} windows",
                psi.len()
            )),
    )
    .with_status(status)
    .with_evidence("windows", psi.len())
    .with_evidence("psi", serde_json::json!(psi))
    .with_evidence("actions", serde_json::json!(action_counts))
    .with_threshold("psi_threshold", threshold)
    .with_plot(LinePlot {
        title: "PSI of confidence per window".into(),
        x_label: format!("window ({window} requests)"),
        y_label: "PSI".into(),
        x_labels: (1..=psi.len()).map(|i| i.to_string()).collect(),
        series: vec![LineSeries {
            name: "PSI".into(),
            values: psi.iter().map(|&v| Some(v)).collect(),
        }],
        hlines: vec![HLine::limit("calibrated threshold", threshold)],
    });
    if current.len() == reference.len() {
        g = g.with_plot(bridgeml_gate::Histogram {
            title: "Confidence: reference vs the latest window".into(),
            x_label: "max softmax probability".into(),
            y_label: "fraction".into(),
            bins: edges,
            series: vec![
                bridgeml_gate::HistSeries {
                    name: "reference".into(),
                    counts: reference,
                },
                bridgeml_gate::HistSeries {
                    name: "latest window".into(),
                    counts: current,
                },
            ],
            vlines: vec![],
        });
    }
    Ok(g)
}

fn ood_section(
    manifest: &Manifest,
    rows: &[LoggedPrediction],
    daily: &[Vec<&LoggedPrediction>],
    labels: &[String],
    opts: &SteadyOptions,
) -> GateResult {
    let name = GateName::Other("ood_rate".into());
    let scored: Vec<bool> = rows.iter().filter_map(|r| r.is_ood).collect();
    if scored.is_empty() {
        return GateResult::skipped(name, "no OOD scores logged (no [guard] in the manifest)");
    }
    let limit = opts
        .max_ood_rate
        .or(manifest.sla.max_ood_rate)
        .unwrap_or(0.03);
    let rate = scored.iter().filter(|&&f| f).count() as f64 / scored.len() as f64;
    let daily_rate: Vec<Option<f64>> = daily
        .iter()
        .map(|d| {
            let s: Vec<bool> = d.iter().filter_map(|r| r.is_ood).collect();
            (!s.is_empty()).then(|| s.iter().filter(|&&f| f).count() as f64 / s.len() as f64)
        })
        .collect();
    let scores: Vec<f64> = rows.iter().filter_map(|r| r.ood_score).collect();
    let mut g = GateResult::new(
        name,
        format!(
            "{:.2}% of {} requests flagged out-of-distribution (target < {:.0}%)",
            100.0 * rate,
            scored.len(),
            100.0 * limit
        ),
    )
    .with_check(Check::compare("ood_rate", rate, Comparison::Lt, limit))
    .with_threshold("max_ood_rate", limit)
    .with_plot(LinePlot {
        title: "OOD flag rate per day".into(),
        x_label: "day".into(),
        y_label: "fraction flagged".into(),
        x_labels: labels.to_vec(),
        series: vec![LineSeries {
            name: "OOD rate".into(),
            values: daily_rate,
        }],
        hlines: vec![HLine::limit("target", limit)],
    });
    if !scores.is_empty() {
        let mut h = Histogram::from_samples(
            "Logged OOD scores",
            "score (higher = more out-of-distribution)",
            &[("requests", &scores)],
            30,
            None,
            false,
        );
        let threshold = manifest
            .guard
            .as_ref()
            .and_then(|gs| bridgeml_guard::GuardFile::load(&manifest.resolve(&gs.path)).ok())
            .map(|f| f.threshold);
        if let Some(t) = threshold {
            h = h.with_vline(VLine::limit("guard threshold", t));
        }
        g = g.with_plot(h);
    }
    g
}
