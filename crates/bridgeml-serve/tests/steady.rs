//! `bridgeml report`'s steady-state view on a real SQLite log written with
//! `log::append`: every target passes on a healthy month and fails on a
//! degraded one, with the numbers computed from the rows.

use std::path::{Path, PathBuf};

use bridgeml_gate::manifest::Manifest;
use bridgeml_gate::{GateName, GateReport, Status};
use bridgeml_monitor::psi::PsiConfig;
use bridgeml_monitor::{Baseline, CalibrationConfig, ColumnBaseline};
use bridgeml_runtime::profile::{BatchResult, Fingerprint, MeasureOptions, ProfileReport};
use bridgeml_runtime::BackendKind;
use bridgeml_serve::log::{append, FeedbackRow, PredictionRow};
use bridgeml_serve::steady::{steady_state_report, SteadyOptions};

const DAY_MS: i64 = 86_400_000;
const DAYS: usize = 10;
const PER_DAY: usize = 30;

fn repo(p: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").join(p)
}

/// 1000 reference confidences spread over [0.5, 1).
fn reference() -> Vec<f64> {
    (0..1000).map(|i| 0.5 + 0.5 * i as f64 / 1000.0).collect()
}

fn bundle(dir: &Path) -> Manifest {
    let cfg = CalibrationConfig {
        pairs: 20,
        ..CalibrationConfig::new(100)
    };
    let b = Baseline {
        format_version: Baseline::FORMAT_VERSION,
        reference_rows: 1000,
        columns: vec![ColumnBaseline::psi(
            Some("confidence".into()),
            &reference(),
            PsiConfig::default(),
            cfg,
        )
        .unwrap()],
    };
    std::fs::write(
        dir.join("baseline.json"),
        serde_json::to_string(&b).unwrap(),
    )
    .unwrap();
    let row = BatchResult {
        batch: 1,
        count: 100,
        throughput: 1000.0,
        mean_ms: 1.0,
        p50_ms: 1.0,
        p90_ms: 1.5,
        p95_ms: 1.8,
        p99_ms: 2.0,
        max_ms: 2.5,
        min_ms: 0.8,
        windows: 3,
        stable: true,
        noise_pct: 1.0,
        preprocess: None,
        compute: None,
    };
    let profile = ProfileReport {
        model: "tiny_cnn.onnx".into(),
        backend: BackendKind::Tract,
        backend_version: "test".into(),
        threads: 1,
        fingerprint: Fingerprint::new(BackendKind::Tract, "test".into(), 1, "sha256:x".into()),
        criterion: "test".into(),
        options: MeasureOptions::quick(),
        results: vec![row],
        comparison: None,
    };
    std::fs::write(
        dir.join("profile.json"),
        serde_json::to_string(&profile).unwrap(),
    )
    .unwrap();
    let text = format!(
        r#"[model]
path = "{model}"
backend = "tract"

[spec]
path = "{spec}"

[monitor]
window = 100
confidence_baseline = "baseline.json"
latency_profile = "profile.json"

[sla]
max_ood_rate = 0.03

[gate]
validation = "{val}"
"#,
        model = repo("tests/fixtures/runtime/tiny_cnn.onnx").display(),
        spec = repo("tests/fixtures/runtime/tiny_spec.toml").display(),
        val = repo("tests/fixtures/quant/labelled").display(),
    );
    let m = dir.join("bridgeml.toml");
    std::fs::write(&m, text).unwrap();
    Manifest::load(&m).unwrap()
}

/// A month of traffic: `healthy` keeps every target, otherwise each is missed.
fn write_log(path: &Path, healthy: bool) {
    let t0 = 1_790_812_800_000i64;
    let mut preds = Vec::new();
    let mut feedback = Vec::new();
    let r = reference();
    for d in 0..DAYS {
        for j in 0..PER_DAY {
            let n = d * PER_DAY + j;
            // Strided through the whole reference: every window looks like it.
            let conf = r[(n * 337) % r.len()];
            let request_id = format!("r{n}");
            preds.push(PredictionRow {
                ts_ms: t0 + d as i64 * DAY_MS + j as i64 * 60_000,
                request_id: request_id.clone(),
                instance: 0,
                segment: "web".into(),
                input_hash: format!("sha256:{n:064x}"),
                spec_fingerprint: "sha256:spec".into(),
                model_sha256: "sha256:model".into(),
                class: 1,
                label_name: None,
                confidence: if healthy { conf } else { conf - 0.4 },
                ood_score: Some(n as f64),
                // 1 in 100 flagged when healthy, 1 in 10 otherwise.
                is_ood: Some(n.is_multiple_of(if healthy { 100 } else { 10 })),
                latency_ms: if healthy { 1.0 } else { 2.0 } + (n % 10) as f64 * 0.01,
            });
            if n.is_multiple_of(2) {
                feedback.push(FeedbackRow {
                    request_id,
                    instance: Some(0),
                    // Healthy: every label agrees with the prediction.
                    label: if healthy { 1 } else { 0 },
                    ts_ms: t0 + d as i64 * DAY_MS + 3_600_000,
                });
            }
        }
    }
    append(path, &preds, &[], &[], &feedback).unwrap();
}

fn section<'a>(r: &'a GateReport, name: &str) -> &'a bridgeml_gate::GateResult {
    r.gates
        .iter()
        .find(|g| g.name == GateName::Other(name.into()))
        .unwrap_or_else(|| panic!("no section {name}"))
}

fn num(g: &bridgeml_gate::GateResult, key: &str) -> f64 {
    g.evidence[key].as_f64().unwrap()
}

#[test]
fn healthy_month_meets_every_target() {
    let dir = tempfile::tempdir().unwrap();
    let m = bundle(dir.path());
    let log = dir.path().join("bridgeml.db");
    write_log(&log, true);
    let r = steady_state_report(&m, &log, &SteadyOptions::default()).unwrap();
    assert_eq!(r.exit_code, 0, "{}", bridgeml_gate::render_text(&r));
    assert!(r.title.contains("30 days"), "{}", r.title);

    let acc = section(&r, "accuracy_gap");
    assert_eq!(acc.status, Status::Pass);
    assert_eq!(num(acc, "production_accuracy"), 1.0);
    assert_eq!(acc.evidence["labelled"], DAYS * PER_DAY / 2);
    let val = num(acc, "validation_accuracy");
    assert!((0.0..=1.0).contains(&val));
    let gap = acc.checks[0].value.as_ref().unwrap().as_f64().unwrap();
    assert!((gap - 100.0 * (val - 1.0)).abs() < 1e-9);

    let lat = section(&r, "latency");
    assert_eq!(lat.status, Status::Pass);
    // Latencies 1.00..1.09: numpy's linear-interpolation percentiles.
    assert!(
        (num(lat, "p50_ms") - 1.045).abs() < 1e-9,
        "{}",
        num(lat, "p50_ms")
    );

    let drift = section(&r, "drift");
    assert_eq!(drift.evidence["windows"], 3);
    assert_eq!(drift.status, Status::Pass, "{:?}", drift.evidence["psi"]);

    let ood = section(&r, "ood_rate");
    assert_eq!(ood.status, Status::Pass);
    assert_eq!(
        ood.checks[0].value.as_ref().unwrap().as_f64().unwrap(),
        3.0 / 300.0
    );
    // Every section draws something.
    for g in &r.gates {
        assert!(!g.plots.is_empty(), "{} has no plot", g.name);
    }
}

#[test]
fn degraded_month_misses_every_target() {
    let dir = tempfile::tempdir().unwrap();
    let m = bundle(dir.path());
    let log = dir.path().join("bridgeml.db");
    write_log(&log, false);
    let r = steady_state_report(&m, &log, &SteadyOptions::default()).unwrap();
    assert_eq!(r.exit_code, 1);
    let acc = section(&r, "accuracy_gap");
    assert_eq!(num(acc, "production_accuracy"), 0.0);
    let val = num(acc, "validation_accuracy");
    assert_eq!(
        acc.status,
        if val > 0.05 {
            Status::Fail
        } else {
            Status::Pass
        }
    );
    assert_eq!(section(&r, "latency").status, Status::Fail);
    assert_eq!(section(&r, "drift").status, Status::Fail);
    assert_eq!(section(&r, "ood_rate").status, Status::Fail);
}

#[test]
fn empty_or_missing_log_is_an_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let m = bundle(dir.path());
    let missing = dir.path().join("none.db");
    let e = steady_state_report(&m, &missing, &SteadyOptions::default()).unwrap_err();
    assert!(e.to_string().contains("none.db"), "{e}");
    let empty = dir.path().join("empty.db");
    append(&empty, &[], &[], &[], &[]).unwrap();
    let e = steady_state_report(&m, &empty, &SteadyOptions::default()).unwrap_err();
    assert!(e.to_string().contains("no predictions"), "{e}");
}
