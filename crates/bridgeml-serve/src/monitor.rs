//! Rolling monitors and counters: tumbling windows of instances, the policy
//! evaluated at each window close, and the Prometheus exposition. Filling a
//! window ([`Monitors`]) and evaluating it ([`WindowEvaluator`]) are separate
//! so that the server can keep the evaluation off the request path.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::{mpsc, Arc};

use bridgeml_monitor::mmd::{MmdReference, MmdWindowMonitor};
use bridgeml_monitor::policy::{Observation, Policy, PolicyReport};
use bridgeml_monitor::psi::ReferenceBins;
use serde::Serialize;

use crate::log::{now_ms, ActionRow};

/// Upper bounds (seconds) of the latency histogram buckets.
pub const BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// Most distinct segment label values exported; later ones count as "other".
pub const MAX_SEGMENTS: usize = 32;

/// Request pipeline stages timed by `bridgeml_request_duration_seconds{stage}`.
pub const STAGES: &[&str] = &[
    "parse",
    "preprocess",
    "inference",
    "postprocess",
    "log",
    "total",
];

#[derive(Debug, Clone, Default)]
struct Histogram {
    counts: Vec<u64>,
    sum: f64,
    count: u64,
}

impl Histogram {
    fn observe(&mut self, v: f64) {
        if self.counts.is_empty() {
            self.counts = vec![0; BUCKETS.len()];
        }
        for (i, b) in BUCKETS.iter().enumerate() {
            if v <= *b {
                self.counts[i] += 1;
            }
        }
        self.sum += v;
        self.count += 1;
    }
}

/// The monitors' configuration, built from the manifest.
#[derive(Debug)]
pub struct MonitorConfig {
    pub window: usize,
    pub confidence_bins: Option<(ReferenceBins, f64)>,
    /// The MMD monitor; its reference carries the calibrated threshold.
    pub mmd: Option<MmdWindowMonitor>,
    /// Profiled batch-1 latency (p50, p95, p99) in ms.
    pub latency_baseline_ms: Option<[f64; 3]>,
    pub policy: Option<Policy>,
    pub model_info: (String, String),
}

/// What evaluating a window needs, immutable after load: shared by the
/// request path (which only fills windows) and the thread evaluating them.
#[derive(Debug)]
pub struct WindowEvaluator {
    confidence_bins: Option<(ReferenceBins, f64)>,
    mmd: Option<Arc<MmdReference>>,
    latency_baseline_ms: Option<[f64; 3]>,
    policy: Option<Policy>,
}

/// A window's raw observations: filled by the requests, then, once closed
/// (`index` and `closed_at_ms` set), evaluated.
#[derive(Debug, Clone, Default)]
pub struct WindowObservations {
    pub index: u64,
    pub closed_at_ms: i64,
    confidences: Vec<f64>,
    latencies_ms: Vec<f64>,
    /// Per segment: (flagged, scored).
    ood: BTreeMap<String, (u64, u64)>,
    errors: u64,
    requests: u64,
    /// The MMD monitor's completed window of embedding rows.
    embeddings: Option<ndarray::Array2<f64>>,
}

impl WindowEvaluator {
    /// PSI of the confidences, MMD of the embeddings, OOD rates, latency
    /// quantiles and the policy's verdict for one closed window.
    pub fn evaluate(&self, w: &WindowObservations) -> WindowReport {
        let (psi, psi_thr) = match &self.confidence_bins {
            Some((bins, thr)) => (bins.psi(&w.confidences).ok(), Some(*thr)),
            None => (None, None),
        };
        let mmd = match (&self.mmd, &w.embeddings) {
            (Some(r), Some(rows)) => match r.statistic(rows.view()) {
                Ok(v) => Some(v),
                Err(e) => {
                    tracing::warn!(error = %e, "MMD of the window failed");
                    None
                }
            },
            _ => None,
        };
        let mmd_threshold = self.mmd.as_ref().map(|r| r.threshold());
        let (mut flagged, mut scored) = (0u64, 0u64);
        let mut by_seg = BTreeMap::new();
        for (s, (f, n)) in &w.ood {
            flagged += f;
            scored += n;
            if *n > 0 {
                by_seg.insert(s.clone(), *f as f64 / *n as f64);
            }
        }
        let ood_rate = (scored > 0).then(|| flagged as f64 / scored as f64);
        let base = self.latency_baseline_ms;
        let lat = &w.latencies_ms;
        let p99 = q(lat, 99.0);
        let latency = LatencyWindow {
            p50: q(lat, 50.0),
            p95: q(lat, 95.0),
            p99,
            baseline_p50: base.map(|b| b[0]),
            baseline_p95: base.map(|b| b[1]),
            baseline_p99: base.map(|b| b[2]),
            p99_ratio: base.and_then(|b| (b[2] > 0.0 && p99.is_finite()).then(|| p99 / b[2])),
        };
        let error_rate = w.errors as f64 / w.requests.max(1) as f64;
        let mut obs: BTreeMap<String, Observation> = BTreeMap::new();
        if let Some(p) = psi {
            obs.insert(
                "psi.confidence".into(),
                Observation::WithThreshold {
                    value: p,
                    threshold: psi_thr,
                },
            );
        }
        if let Some(m) = mmd {
            obs.insert(
                "mmd".into(),
                Observation::WithThreshold {
                    value: m,
                    threshold: mmd_threshold,
                },
            );
        }
        if let Some(r) = ood_rate {
            obs.insert("ood_rate".into(), Observation::Value(r));
            for (s, r) in &by_seg {
                obs.insert(format!("ood_rate.{s}"), Observation::Value(*r));
            }
        }
        if let Some(r) = latency.p99_ratio {
            obs.insert("latency_ratio".into(), Observation::Value(r));
        }
        obs.insert("error_rate".into(), Observation::Value(error_rate));
        let policy = self.policy.as_ref().map(|p| p.evaluate(&obs));
        let actions = policy
            .as_ref()
            .map(|p| p.actions.clone())
            .unwrap_or_default();
        WindowReport {
            index: w.index,
            closed_at_ms: w.closed_at_ms,
            instances: w.confidences.len(),
            psi_confidence: psi,
            psi_threshold: psi_thr,
            mmd,
            mmd_threshold,
            ood_rate,
            ood_rate_by_segment: by_seg,
            latency_ms: latency,
            error_rate,
            policy,
            actions,
        }
    }
}

/// Everything measured in one closed window.
#[derive(Debug, Clone, Serialize)]
pub struct WindowReport {
    pub index: u64,
    pub closed_at_ms: i64,
    pub instances: usize,
    pub psi_confidence: Option<f64>,
    pub psi_threshold: Option<f64>,
    pub mmd: Option<f64>,
    pub mmd_threshold: Option<f64>,
    /// `null` when no OOD scores were available (no guard).
    pub ood_rate: Option<f64>,
    pub ood_rate_by_segment: BTreeMap<String, f64>,
    pub latency_ms: LatencyWindow,
    pub error_rate: f64,
    pub policy: Option<PolicyReport>,
    pub actions: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct LatencyWindow {
    pub p50: f64,
    pub p95: f64,
    pub p99: f64,
    /// Profiled baseline (batch 1) when configured.
    pub baseline_p50: Option<f64>,
    pub baseline_p95: Option<f64>,
    pub baseline_p99: Option<f64>,
    /// Observed p99 / baseline p99.
    pub p99_ratio: Option<f64>,
}

/// One instance as the monitors see it.
#[derive(Debug, Clone)]
pub struct Observed<'a> {
    pub segment: &'a str,
    pub confidence: f64,
    pub is_ood: Option<bool>,
    pub embedding: Option<&'a [f64]>,
}

/// One instance the shadow candidate answered (or failed on).
#[derive(Debug, Clone)]
pub struct ShadowOutcome {
    pub segment: String,
    /// Whether its class differs from the live one; `None` when it failed.
    pub disagree: Option<bool>,
}

/// All mutable monitoring state, behind one mutex in the server.
#[derive(Debug)]
pub struct Monitors {
    cfg: MonitorConfig,
    /// The open window.
    open: WindowObservations,
    windows_closed: u64,
    windows_evaluated: u64,
    evaluator: Arc<WindowEvaluator>,
    last: Option<WindowReport>,
    // counters
    durations: BTreeMap<&'static str, Histogram>,
    requests: BTreeMap<String, u64>,
    instances: BTreeMap<String, u64>,
    ood_flagged: BTreeMap<String, u64>,
    feedback: BTreeMap<String, (u64, u64)>,
    shadow_compared: BTreeMap<String, u64>,
    shadow_disagreements: BTreeMap<String, u64>,
    shadow_dropped: u64,
    shadow_errors: u64,
    /// The shadow worker's findings, folded in by [`Monitors::collect_shadow`].
    shadow_reports: Option<mpsc::Receiver<ShadowOutcome>>,
    actions_active: BTreeMap<String, bool>,
    actions_total: BTreeMap<String, u64>,
    pending_actions: Vec<ActionRow>,
}

fn q(v: &[f64], p: f64) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    bridgeml_runtime::profile::percentile_sorted(&s, p)
}

impl Monitors {
    pub fn new(mut cfg: MonitorConfig) -> Monitors {
        let mut actions_active = BTreeMap::new();
        if let Some(p) = &cfg.policy {
            for r in &p.rules {
                actions_active.insert(r.action.clone(), false);
            }
        }
        // The evaluation's inputs move to the evaluator (no second copy).
        let evaluator = Arc::new(WindowEvaluator {
            confidence_bins: cfg.confidence_bins.take(),
            mmd: cfg.mmd.as_ref().map(MmdWindowMonitor::reference),
            latency_baseline_ms: cfg.latency_baseline_ms.take(),
            policy: cfg.policy.take(),
        });
        Monitors {
            cfg,
            open: WindowObservations::default(),
            windows_closed: 0,
            windows_evaluated: 0,
            evaluator,
            last: None,
            durations: BTreeMap::new(),
            requests: BTreeMap::new(),
            instances: BTreeMap::new(),
            ood_flagged: BTreeMap::new(),
            feedback: BTreeMap::new(),
            shadow_compared: BTreeMap::new(),
            shadow_disagreements: BTreeMap::new(),
            shadow_dropped: 0,
            shadow_errors: 0,
            shadow_reports: None,
            actions_active,
            actions_total: BTreeMap::new(),
            pending_actions: Vec::new(),
        }
    }

    /// Bounds label cardinality: a segment beyond [`MAX_SEGMENTS`] becomes "other".
    pub fn segment_label(&self, segment: &str) -> String {
        if self.instances.contains_key(segment) || self.instances.len() < MAX_SEGMENTS {
            segment.to_string()
        } else {
            "other".to_string()
        }
    }

    pub fn observe_stage(&mut self, stage: &'static str, seconds: f64) {
        self.durations.entry(stage).or_default().observe(seconds);
    }

    /// Counts a finished request (`outcome`: ok, client_error, server_error, timeout).
    pub fn observe_request(&mut self, outcome: &str, latency_ms: Option<f64>) {
        *self.requests.entry(outcome.to_string()).or_default() += 1;
        self.open.requests += 1;
        if outcome != "ok" && outcome != "client_error" {
            self.open.errors += 1;
        }
        if let Some(ms) = latency_ms {
            self.open.latencies_ms.push(ms);
        }
    }

    /// Adds one served instance; when it fills the window, closes and
    /// evaluates the window here and returns its report.
    pub fn observe_instance(&mut self, o: Observed<'_>) -> Option<WindowReport> {
        let closed = self.observe_instance_deferred(o)?;
        let report = self.evaluator.evaluate(&closed);
        self.record(report.clone());
        self.recycle(closed);
        Some(report)
    }

    /// Takes an evaluated window back, so that its embedding storage holds
    /// a later window (no window-sized allocation on the request path, and
    /// no free of one on the evaluating thread).
    pub fn recycle(&mut self, w: WindowObservations) {
        if let (Some(m), Some(rows)) = (self.cfg.mmd.as_mut(), w.embeddings) {
            m.recycle(rows);
        }
    }

    /// Adds one served instance; when it fills the window, closes it and
    /// returns its raw observations, for [`WindowEvaluator::evaluate`] and
    /// then [`Monitors::record`]. The server evaluates windows on a
    /// low-priority thread: PSI, MMD against the reference and the policy
    /// stay off the request path.
    pub fn observe_instance_deferred(&mut self, o: Observed<'_>) -> Option<WindowObservations> {
        let seg = self.segment_label(o.segment);
        *self.instances.entry(seg.clone()).or_default() += 1;
        let e = self.open.ood.entry(seg.clone()).or_default();
        if let Some(flag) = o.is_ood {
            e.1 += 1;
            if flag {
                e.0 += 1;
                *self.ood_flagged.entry(seg).or_default() += 1;
            }
        }
        self.open.confidences.push(o.confidence);
        if let (Some(m), Some(emb)) = (self.cfg.mmd.as_mut(), o.embedding) {
            match m.push_deferred(emb) {
                Ok(Some(rows)) => self.open.embeddings = Some(rows),
                Ok(None) => {}
                Err(e) => tracing::warn!(error = %e, "MMD monitor rejected an embedding"),
            }
        }
        if self.open.confidences.len() >= self.cfg.window {
            Some(self.close_window())
        } else {
            None
        }
    }

    fn close_window(&mut self) -> WindowObservations {
        self.windows_closed += 1;
        WindowObservations {
            index: self.windows_closed,
            closed_at_ms: now_ms(),
            ..std::mem::take(&mut self.open)
        }
    }

    /// The immutable half of the monitors, for evaluating closed windows elsewhere.
    pub fn evaluator(&self) -> Arc<WindowEvaluator> {
        Arc::clone(&self.evaluator)
    }

    /// Closed windows whose report has been recorded (equals
    /// `windows_closed` once the evaluation thread has caught up).
    pub fn windows_evaluated(&self) -> u64 {
        self.windows_evaluated
    }

    /// Windows closed so far.
    pub fn windows_closed(&self) -> u64 {
        self.windows_closed
    }

    /// Takes in an evaluated window: the policy's actions become active
    /// (and pending for the log) and the report becomes `last_window`.
    pub fn record(&mut self, report: WindowReport) {
        for v in self.actions_active.values_mut() {
            *v = false;
        }
        if let Some(p) = &report.policy {
            for r in &p.rules {
                if r.status == bridgeml_monitor::policy::Status::Triggered {
                    self.actions_active.insert(r.action.clone(), true);
                    *self.actions_total.entry(r.action.clone()).or_default() += 1;
                    let detail = serde_json::to_string(&r.matches).unwrap_or_default();
                    tracing::warn!(action = %r.action, rule = %r.name, window = report.index, "policy action triggered");
                    self.pending_actions.push(ActionRow {
                        ts_ms: report.closed_at_ms,
                        window: report.index as i64,
                        action: r.action.clone(),
                        rule: r.name.clone(),
                        detail,
                    });
                }
            }
        }
        self.windows_evaluated += 1;
        self.last = Some(report);
    }

    /// Actions triggered since the last call, for the log.
    pub fn take_actions(&mut self) -> Vec<ActionRow> {
        std::mem::take(&mut self.pending_actions)
    }

    pub fn observe_feedback(&mut self, class_name: &str, correct: bool) {
        let e = self.feedback.entry(class_name.to_string()).or_default();
        e.1 += 1;
        if correct {
            e.0 += 1;
        }
    }

    pub fn observe_shadow(&mut self, segment: &str, disagree: Option<bool>) {
        let seg = self.segment_label(segment);
        match disagree {
            Some(d) => {
                *self.shadow_compared.entry(seg.clone()).or_default() += 1;
                if d {
                    *self.shadow_disagreements.entry(seg).or_default() += 1;
                }
            }
            None => self.shadow_errors += 1,
        }
    }

    /// A channel through which the shadow worker reports each instance
    /// without taking the monitors' lock: it runs at `SCHED_IDLE`, and a
    /// request that found the lock held by it would wait until it ran again.
    pub fn shadow_reporter(&mut self) -> mpsc::Sender<ShadowOutcome> {
        let (tx, rx) = mpsc::channel();
        self.shadow_reports = Some(rx);
        tx
    }

    /// Counts what the shadow worker reported since the last call (cheap
    /// when nothing came: the request path calls it under the lock it
    /// already holds; `/metrics` and `/v1/status` before rendering).
    pub fn collect_shadow(&mut self) {
        while let Some(o) = self
            .shadow_reports
            .as_ref()
            .and_then(|rx| rx.try_recv().ok())
        {
            self.observe_shadow(&o.segment, o.disagree);
        }
    }

    pub fn shadow_dropped(&mut self) {
        self.shadow_dropped += 1;
    }

    /// The `/v1/status` body.
    pub fn status(&self) -> serde_json::Value {
        let acc: BTreeMap<&String, serde_json::Value> = self
            .feedback
            .iter()
            .map(|(k, (c, n))| {
                (
                    k,
                    serde_json::json!({"correct": c, "labelled": n, "accuracy": *c as f64 / (*n).max(1) as f64}),
                )
            })
            .collect();
        let active: Vec<&String> = self
            .actions_active
            .iter()
            .filter(|(_, v)| **v)
            .map(|(k, _)| k)
            .collect();
        serde_json::json!({
            "window": {
                "size": self.cfg.window,
                "filled": self.open.confidences.len(),
                "closed": self.windows_closed,
                "evaluated": self.windows_evaluated,
            },
            "last_window": self.last,
            "active_actions": active,
            "actions_total": self.actions_total,
            "requests_total": self.requests,
            "instances_total": self.instances,
            "ood_flagged_total": self.ood_flagged,
            "feedback_accuracy": acc,
            "shadow": {
                "compared": self.shadow_compared,
                "disagreements": self.shadow_disagreements,
                "dropped": self.shadow_dropped,
                "errors": self.shadow_errors,
            },
        })
    }

    /// Prometheus text exposition (version 0.0.4).
    pub fn render_metrics(&self) -> String {
        let mut o = String::with_capacity(4096);
        let esc = |s: &str| {
            s.replace('\\', "\\\\")
                .replace('"', "\\\"")
                .replace('\n', "\\n")
        };
        let _ = writeln!(o, "# HELP bridgeml_model_info Served model and spec fingerprints.\n# TYPE bridgeml_model_info gauge");
        let _ = writeln!(
            o,
            "bridgeml_model_info{{model=\"{}\",spec=\"{}\"}} 1",
            esc(&self.cfg.model_info.0),
            esc(&self.cfg.model_info.1)
        );
        let _ = writeln!(o, "# HELP bridgeml_request_duration_seconds Time per request stage.\n# TYPE bridgeml_request_duration_seconds histogram");
        for (stage, h) in &self.durations {
            let mut cum = 0;
            for (i, b) in BUCKETS.iter().enumerate() {
                cum = h.counts.get(i).copied().unwrap_or(0);
                let _ = writeln!(
                    o,
                    "bridgeml_request_duration_seconds_bucket{{stage=\"{stage}\",le=\"{b}\"}} {cum}"
                );
            }
            let _ = cum;
            let _ = writeln!(
                o,
                "bridgeml_request_duration_seconds_bucket{{stage=\"{stage}\",le=\"+Inf\"}} {}",
                h.count
            );
            let _ = writeln!(
                o,
                "bridgeml_request_duration_seconds_sum{{stage=\"{stage}\"}} {}",
                h.sum
            );
            let _ = writeln!(
                o,
                "bridgeml_request_duration_seconds_count{{stage=\"{stage}\"}} {}",
                h.count
            );
        }
        let counter =
            |o: &mut String, name: &str, help: &str, label: &str, m: &BTreeMap<String, u64>| {
                let _ = writeln!(o, "# HELP {name} {help}\n# TYPE {name} counter");
                for (k, v) in m {
                    let _ = writeln!(o, "{name}{{{label}=\"{}\"}} {v}", esc(k));
                }
            };
        counter(
            &mut o,
            "bridgeml_requests_total",
            "Requests by outcome.",
            "outcome",
            &self.requests,
        );
        counter(
            &mut o,
            "bridgeml_instances_total",
            "Instances served by segment.",
            "segment",
            &self.instances,
        );
        counter(
            &mut o,
            "bridgeml_ood_flagged_total",
            "Instances flagged out-of-distribution by segment.",
            "segment",
            &self.ood_flagged,
        );
        counter(
            &mut o,
            "bridgeml_shadow_comparisons_total",
            "Instances answered by both models, by segment.",
            "segment",
            &self.shadow_compared,
        );
        counter(
            &mut o,
            "bridgeml_shadow_disagreements_total",
            "Instances where the candidate's class differs, by segment.",
            "segment",
            &self.shadow_disagreements,
        );
        counter(
            &mut o,
            "bridgeml_policy_actions_total",
            "Policy actions triggered at window closes.",
            "action",
            &self.actions_total,
        );
        let _ = writeln!(o, "# HELP bridgeml_shadow_dropped_total Shadow copies dropped because the queue was full.\n# TYPE bridgeml_shadow_dropped_total counter\nbridgeml_shadow_dropped_total {}", self.shadow_dropped);
        let _ = writeln!(o, "# HELP bridgeml_shadow_errors_total Shadow copies that failed, panicked or timed out.\n# TYPE bridgeml_shadow_errors_total counter\nbridgeml_shadow_errors_total {}", self.shadow_errors);
        let _ = writeln!(o, "# HELP bridgeml_drift_psi PSI of a score against its reference bins, last closed window.\n# TYPE bridgeml_drift_psi gauge");
        if let Some(p) = self.last.as_ref().and_then(|l| l.psi_confidence) {
            let _ = writeln!(o, "bridgeml_drift_psi{{signal=\"confidence\"}} {p}");
        }
        let _ = writeln!(o, "# HELP bridgeml_drift_mmd MMD^2_u of embeddings against the reference, last closed window.\n# TYPE bridgeml_drift_mmd gauge");
        if let Some(m) = self.last.as_ref().and_then(|l| l.mmd) {
            let _ = writeln!(o, "bridgeml_drift_mmd {m}");
        }
        if let Some(t) = self.evaluator.mmd.as_ref().map(|r| r.threshold()) {
            let _ = writeln!(o, "# HELP bridgeml_drift_mmd_threshold Calibrated MMD threshold.\n# TYPE bridgeml_drift_mmd_threshold gauge\nbridgeml_drift_mmd_threshold {t}");
        }
        let _ = writeln!(o, "# HELP bridgeml_ood_rate OOD flag rate by segment, last closed window.\n# TYPE bridgeml_ood_rate gauge");
        if let Some(l) = &self.last {
            for (s, r) in &l.ood_rate_by_segment {
                let _ = writeln!(o, "bridgeml_ood_rate{{segment=\"{}\"}} {r}", esc(s));
            }
        }
        let _ = writeln!(o, "# HELP bridgeml_window_latency_seconds Request latency quantiles, last closed window.\n# TYPE bridgeml_window_latency_seconds gauge");
        if let Some(l) = &self.last {
            for (qn, v) in [
                ("0.5", l.latency_ms.p50),
                ("0.95", l.latency_ms.p95),
                ("0.99", l.latency_ms.p99),
            ] {
                if v.is_finite() {
                    let _ = writeln!(
                        o,
                        "bridgeml_window_latency_seconds{{quantile=\"{qn}\"}} {}",
                        v / 1000.0
                    );
                }
            }
        }
        let _ = writeln!(o, "# HELP bridgeml_feedback_accuracy Accuracy on labelled feedback by true class.\n# TYPE bridgeml_feedback_accuracy gauge");
        for (k, (c, n)) in &self.feedback {
            let _ = writeln!(
                o,
                "bridgeml_feedback_accuracy{{class=\"{}\"}} {}",
                esc(k),
                *c as f64 / (*n).max(1) as f64
            );
        }
        let _ = writeln!(o, "# HELP bridgeml_policy_action 1 when the action was triggered at the last window close.\n# TYPE bridgeml_policy_action gauge");
        for (k, v) in &self.actions_active {
            let _ = writeln!(
                o,
                "bridgeml_policy_action{{action=\"{}\"}} {}",
                esc(k),
                u8::from(*v)
            );
        }
        let _ = writeln!(o, "# HELP bridgeml_windows_closed_total Monitor windows closed.\n# TYPE bridgeml_windows_closed_total counter\nbridgeml_windows_closed_total {}", self.windows_closed);
        o
    }
}
