//! Every gate rule, pass and fail, on evidence built in the test (the rules
//! do no IO). The audit evidence comes from the real audit core.

use std::collections::BTreeMap;

use bridgeml_gate::gates::{
    self, BaselineEvidence, BudgetLimits, GuardEvidence, LatencyEvidence, ParityItem,
    ShadowEvidence, Thresholds,
};
use bridgeml_gate::{Plot, Status};
use bridgeml_quant::audit::{audit, AuditConfig};
use bridgeml_runtime::budget::Budget;
use ndarray::ArrayD;

fn latency_evidence(p95: f64) -> LatencyEvidence {
    let samples: Vec<f64> = (0..100).map(|i| 1.0 + p95 * i as f64 / 100.0).collect();
    LatencyEvidence {
        samples_ms: samples,
        p50_ms: p95 / 2.0,
        p95_ms: p95,
        p99_ms: p95 * 1.1,
        stable: true,
        noise_pct: 2.0,
        backend: "tract".into(),
        hardware: BTreeMap::new(),
    }
}

#[test]
fn latency_passes_within_sla_and_fails_beyond() {
    let t = Thresholds::default();
    let ok = gates::latency(&latency_evidence(8.0), Some(10.0), Some(20.0), &t);
    assert_eq!(ok.status, Status::Pass);
    assert!(matches!(ok.plots[0], Plot::Histogram(_)));
    let slow = gates::latency(&latency_evidence(12.0), Some(10.0), None, &t);
    assert_eq!(slow.status, Status::Fail);
    assert_eq!(slow.checks[0].name, "p95_ms");
    // No SLA declared: a warning, not a silent pass.
    assert_eq!(
        gates::latency(&latency_evidence(8.0), None, None, &t).status,
        Status::Warn
    );
}

fn budget_of(params: u64) -> Budget {
    Budget {
        model_sha256: "sha256:x".into(),
        batch: 1,
        nodes: 10,
        params,
        weight_bytes: params * 4,
        macs: 1000,
        macs_per_inference: 1000,
        macs_by_op: BTreeMap::new(),
        peak_activation_bytes: 4096,
        unknown_shapes: vec![],
    }
}

#[test]
fn budget_checks_declared_limits() {
    let limits = BudgetLimits {
        max_params: Some(10_000),
        max_weight_bytes: None,
        max_peak_activation_bytes: Some(8192),
    };
    assert_eq!(
        gates::budget(&budget_of(5_000), &limits).status,
        Status::Pass
    );
    let g = gates::budget(&budget_of(50_000), &limits);
    assert_eq!(g.status, Status::Fail);
    assert!(g
        .checks
        .iter()
        .any(|c| c.name == "params" && c.status == Status::Fail));
    assert_eq!(
        gates::budget(&budget_of(50_000), &BudgetLimits::default()).status,
        Status::Pass
    );
}

#[test]
fn policy_must_exist_and_parse() {
    assert_eq!(
        gates::policy(Some("p.toml"), Some(Ok(3))).status,
        Status::Pass
    );
    assert_eq!(
        gates::policy(Some("p.toml"), Some(Err("line 2: bad".into()))).status,
        Status::Fail
    );
    assert_eq!(gates::policy(None, None).status, Status::Fail);
}

#[test]
fn parity_fails_on_any_mismatch_with_the_diagnosis() {
    let same = |i: usize| ParityItem {
        input: format!("img{i}.png"),
        engine_hash: format!("h{i}"),
        reference_hash: format!("h{i}"),
        diagnosis: None,
    };
    let items: Vec<ParityItem> = (0..4).map(same).collect();
    assert_eq!(gates::parity(&items).status, Status::Pass);
    let mut bad = items.clone();
    bad[2].reference_hash = "other".into();
    bad[2].diagnosis = Some("resize_shorter compat=opencv filter=bilinear".into());
    let g = gates::parity(&bad);
    assert_eq!(g.status, Status::Fail);
    assert!(g.evidence["diagnosis"]
        .as_str()
        .unwrap()
        .contains("compat=opencv"));
}

/// Scores for `labels`: a confident correct answer, except where `wrong`
/// says to predict another class.
fn scores(labels: &[usize], classes: usize, wrong: &[usize]) -> ArrayD<f32> {
    let mut v = vec![0f32; labels.len() * classes];
    for (i, &l) in labels.iter().enumerate() {
        let p = if wrong.contains(&i) {
            (l + 1) % classes
        } else {
            l
        };
        v[i * classes + p] = 5.0;
    }
    ArrayD::from_shape_vec(vec![labels.len(), classes], v).unwrap()
}

#[test]
fn quantization_fails_when_a_class_pays_and_warns_on_imbalance() {
    // 3 classes, class 2 a 20:1 minority.
    let mut labels = vec![0usize; 100];
    labels.extend(vec![1usize; 100]);
    labels.extend(vec![2usize; 5]);
    let names: Vec<String> = ["a", "b", "c"].iter().map(|s| s.to_string()).collect();
    let reference = scores(&labels, 3, &[]);
    let cfg = AuditConfig::default();
    let t = Thresholds::default();
    let same = audit(&reference, &reference, &labels, &names, true, &cfg).unwrap();
    let g = gates::quantization(&same, &t);
    assert_eq!(g.status, Status::Pass, "{:?}", g.checks);
    assert!(matches!(g.plots[0], Plot::GroupedBars(_)));
    // Not QAT with 20:1 imbalance: warn.
    let not_qat = audit(&reference, &reference, &labels, &names, false, &cfg).unwrap();
    assert_eq!(gates::quantization(&not_qat, &t).status, Status::Warn);
    // One minority sample flips: recall of class c drops 20 points.
    let candidate = scores(&labels, 3, &[201]);
    let flipped = audit(&reference, &candidate, &labels, &names, true, &cfg).unwrap();
    let g = gates::quantization(&flipped, &t);
    assert_eq!(g.status, Status::Fail);
    assert!(g
        .checks
        .iter()
        .any(|c| c.name == "recall_drop[c]" && c.status == Status::Fail));
}

#[test]
fn guard_checks_pass_rate_and_fpr() {
    let t = Thresholds::default();
    let id: Vec<f64> = (0..100).map(|i| i as f64 / 100.0).collect();
    let metrics = |fpr: f64| bridgeml_guard::Metrics {
        auroc: 0.9,
        aupr_in: 0.9,
        aupr_out: 0.9,
        fpr_at_95_tpr: fpr,
        id_pass_rate: 0.95,
        ood_pass_rate: 0.1,
        n_id: 100,
        n_ood: 50,
    };
    let e = GuardEvidence {
        method: "energy".into(),
        threshold: 0.945,
        target_tpr: 0.95,
        id_scores: id.clone(),
        ood_scores: Some(vec![2.0; 50]),
        metrics: Some(metrics(0.1)),
    };
    assert_eq!(gates::guard(&e, &t).status, Status::Pass);
    // A threshold calibrated on other data lets far fewer ID inputs pass.
    let drifted = GuardEvidence {
        threshold: 0.5,
        ..e.clone()
    };
    assert_eq!(gates::guard(&drifted, &t).status, Status::Fail);
    let weak = GuardEvidence {
        metrics: Some(metrics(0.9)),
        ..e
    };
    assert_eq!(gates::guard(&weak, &t).status, Status::Fail);
}

#[test]
fn drift_needs_valid_baselines() {
    assert_eq!(gates::drift(&[], 0.2).status, Status::Fail);
    let good = BaselineEvidence {
        signal: "confidence".into(),
        path: "b.json".into(),
        check: Ok(()),
        reference: Some((vec![0.0, 0.5, 1.0], vec![0.5, 0.5])),
        current: Some(vec![0.45, 0.55]),
        psi: Some(0.01),
    };
    let g = gates::drift(std::slice::from_ref(&good), 0.2);
    assert_eq!(g.status, Status::Pass);
    assert_eq!(g.plots.len(), 1);
    let stale = BaselineEvidence {
        check: Err("calibrated for model sha256:aa, not sha256:bb".into()),
        ..good
    };
    assert_eq!(gates::drift(&[stale], 0.2).status, Status::Fail);
}

#[test]
fn shadow_needs_coverage_and_segment_agreement() {
    let t = Thresholds::default();
    let e = ShadowEvidence {
        hours: 80.0,
        samples: 10_000,
        segments: vec![("web".into(), 6000, 0.01), ("mobile".into(), 4000, 0.02)],
        overall_disagreement: 0.014,
    };
    assert_eq!(gates::shadow(&e, &t).status, Status::Pass);
    let short = ShadowEvidence {
        hours: 10.0,
        ..e.clone()
    };
    assert_eq!(gates::shadow(&short, &t).status, Status::Fail);
    let mut seg = e;
    seg.segments[1].2 = 0.15;
    let g = gates::shadow(&seg, &t);
    assert_eq!(g.status, Status::Fail);
    assert!(g
        .checks
        .iter()
        .any(|c| c.name == "disagreement[mobile]" && c.status == Status::Fail));
}
