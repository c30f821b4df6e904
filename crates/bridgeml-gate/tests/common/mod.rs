//! A realistic sample report with every gate and every plot kind, shared by
//! the integration tests.
#![allow(dead_code)]

use bridgeml_gate::{
    BarSeries, Check, Comparison, GateName, GateReport, GateResult, GroupedBars, HLine, Histogram,
    LinePlot, LineSeries, Status, VLine,
};

/// Deterministic pseudo-random normals (SplitMix64 + Box–Muller), so the
/// sample is the same on every run without a dependency.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }
    pub fn uniform(&mut self) -> f64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        ((z >> 11) as f64 + 0.5) / (1u64 << 53) as f64
    }
    pub fn normal(&mut self) -> f64 {
        let (u, v) = (self.uniform(), self.uniform());
        (-2.0 * u.ln()).sqrt() * (2.0 * std::f64::consts::PI * v).cos()
    }
    pub fn normals(&mut self, n: usize, mean: f64, sd: f64) -> Vec<f64> {
        (0..n).map(|_| mean + sd * self.normal()).collect()
    }
}

fn quantile(xs: &[f64], q: f64) -> f64 {
    let mut v = xs.to_vec();
    v.sort_by(f64::total_cmp);
    v[((v.len() - 1) as f64 * q).round() as usize]
}

pub const CLASSES: [&str; 10] = [
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
];

pub fn sample_report() -> GateReport {
    let mut rng = Rng::new(7);

    let parity = GateResult::new(
        GateName::Parity,
        "64 of 64 input hashes equal the training-side dumps",
    )
    .with_check(Check::compare("hash_mismatches", 0.0, Comparison::Eq, 0.0))
    .with_check(Check::compare("max_abs_diff", 0.0, Comparison::Le, 1e-6))
    .with_threshold("sample_size", 64)
    .with_evidence("sample_size", 64)
    .with_evidence(
        "first_hash",
        "sha256:9f2c4e1b7a3d5c6e8f90a1b2c3d4e5f60718293a4b5c6d7e8f9012345678abcd",
    );

    let fp32 = [0.86, 0.97, 0.80, 0.88, 0.81, 0.96, 0.42, 0.94, 0.97, 0.95];
    let int8 = [0.85, 0.97, 0.78, 0.88, 0.80, 0.95, 0.35, 0.94, 0.96, 0.95];
    let drop_shirt = (fp32[6] - int8[6]) * 100.0;
    let quant = GateResult::new(
        GateName::Quantization,
        "INT8 recall of \"Shirt\" is 7 points below FP32 (limit 3); the 20:1 imbalance calls for QAT",
    )
    .with_check(
        Check::compare("recall_drop[Shirt]", drop_shirt, Comparison::Le, 3.0)
            .with_unit("points")
            .with_message("minority class, 20:1 under-represented"),
    )
    .with_check(Check::compare("recall_drop_max[other]", 2.0, Comparison::Le, 3.0).with_unit("points"))
    .with_check(Check::compare("boundary_flip_rate", 0.021, Comparison::Le, 0.05))
    .with_check(
        Check::new("qat_required", Status::Warn)
            .with_value("ptq")
            .with_message("class imbalance 20:1 > 10:1: deploy the QAT model"),
    )
    .with_threshold("max_recall_drop_points", 3.0)
    .with_threshold("max_boundary_flip_rate", 0.05)
    .with_threshold("qat_imbalance_ratio", 10)
    .with_plot(GroupedBars {
        title: "Per-class recall, FP32 vs INT8 (PTQ)".into(),
        categories: CLASSES.iter().map(|s| s.to_string()).collect(),
        series: vec![
            BarSeries { name: "FP32".into(), values: fp32.to_vec() },
            BarSeries { name: "INT8 (PTQ)".into(), values: int8.to_vec() },
        ],
        y_label: "recall".into(),
        hlines: vec![],
    });

    let id_scores = rng.normals(1500, 2.0, 0.9);
    let ood_scores = rng.normals(800, 6.0, 1.6);
    let threshold = quantile(&id_scores, 0.95);
    let guard = GateResult::new(
        GateName::Guard,
        "calibrated for this model and spec; FPR@95 4.1% on MNIST digits",
    )
    .with_check(Check::compare("id_pass_rate", 0.951, Comparison::Ge, 0.93))
    .with_check(Check::compare("fpr_at_95", 0.041, Comparison::Le, 0.10))
    .with_threshold("target_id_pass_rate", 0.95)
    .with_threshold("max_fpr_at_95", 0.10)
    .with_plot(
        Histogram::from_samples(
            "OOD score: in-distribution vs OOD",
            "Mahalanobis score",
            &[
                ("Fashion-MNIST (ID)", &id_scores),
                ("MNIST digits (OOD)", &ood_scores),
            ],
            40,
            None,
            true,
        )
        .with_vline(VLine::limit("threshold", threshold)),
    );

    let reference = rng.normals(4000, 0.29, 0.08);
    let current: Vec<f64> = rng.normals(1000, 0.36, 0.09);
    let drift = GateResult::new(
        GateName::Drift,
        "baselines match the fingerprints; brightness PSI 0.27 in the last window",
    )
    .with_check(Check::compare(
        "baseline_fingerprint_match",
        1.0,
        Comparison::Eq,
        1.0,
    ))
    .with_check(Check::compare_warn(
        "psi[brightness]",
        0.27,
        Comparison::Le,
        0.2,
    ))
    .with_check(Check::compare("psi[contrast]", 0.04, Comparison::Le, 0.2))
    .with_threshold("psi_warn", 0.1)
    .with_threshold("psi_alert", 0.2)
    .with_plot(Histogram::from_samples(
        "Brightness: reference vs current (PSI 0.27)",
        "mean pixel intensity",
        &[("reference", &reference), ("current window", &current)],
        30,
        Some((0.0, 0.7)),
        true,
    ))
    .with_plot(LinePlot {
        title: "PSI per window".into(),
        x_label: "window".into(),
        y_label: "PSI".into(),
        x_labels: (1..=14).map(|d| format!("d{d}")).collect(),
        series: vec![
            LineSeries {
                name: "brightness".into(),
                values: [
                    0.02, 0.03, 0.02, 0.04, 0.05, 0.07, 0.09, 0.12, 0.15, 0.17, 0.2, 0.22, 0.25,
                    0.27,
                ]
                .into_iter()
                .enumerate()
                // A gap: no traffic on day 5.
                .map(|(i, v)| if i == 4 { None } else { Some(v) })
                .collect(),
            },
            LineSeries {
                name: "contrast".into(),
                values: [
                    0.01, 0.02, 0.02, 0.03, 0.02, 0.03, 0.04, 0.03, 0.04, 0.05, 0.04, 0.04, 0.05,
                    0.04,
                ]
                .into_iter()
                .map(Some)
                .collect(),
            },
        ],
        hlines: vec![HLine::marker("warn", 0.1), HLine::limit("alert", 0.2)],
    });

    let lat: Vec<f64> = (0..2000)
        .map(|_| {
            (1.55 + 0.25 * rng.normal()).exp()
                + if rng.uniform() < 0.03 {
                    6.0 * rng.uniform()
                } else {
                    0.0
                }
        })
        .collect();
    let (p50, p95, p99) = (
        quantile(&lat, 0.5),
        quantile(&lat, 0.95),
        quantile(&lat, 0.99),
    );
    let latency = GateResult::new(
        GateName::Latency,
        format!("p95 {p95:.2} ms, p99 {p99:.2} ms within the 15 ms SLA"),
    )
    .with_check(Check::compare("p95_ms", p95, Comparison::Le, 10.0).with_unit("ms"))
    .with_check(Check::compare("p99_ms", p99, Comparison::Le, 15.0).with_unit("ms"))
    .with_threshold("sla_p95_ms", 10.0)
    .with_threshold("sla_p99_ms", 15.0)
    .with_plot(
        Histogram::from_samples(
            "Latency, 2000 runs, batch 1",
            "latency (ms)",
            &[("tract, 1 thread", &lat)],
            50,
            None,
            false,
        )
        .with_vline(VLine::marker("p50", p50))
        .with_vline(VLine::marker("p95", p95))
        .with_vline(VLine::marker("p99", p99))
        .with_vline(VLine::limit("SLA p99", 15.0)),
    );

    let budget = GateResult::skipped(
        GateName::Budget,
        "no budget declared in the manifest ([budget] max_params, max_memory_mb)",
    );

    let shadow = GateResult::new(
        GateName::Shadow,
        "74.5 h of traffic; disagreement within limits in every segment",
    )
    .with_check(Check::compare("coverage_hours", 74.5, Comparison::Ge, 72.0).with_unit("h"))
    .with_check(Check::compare(
        "max_segment_disagreement",
        0.034,
        Comparison::Le,
        0.05,
    ))
    .with_threshold("min_coverage_hours", 72)
    .with_threshold("max_disagreement", 0.05)
    .with_plot(GroupedBars {
        title: "Disagreement with the production model by segment".into(),
        categories: vec![
            "web".into(),
            "ios".into(),
            "android".into(),
            "partner-api".into(),
            "batch".into(),
        ],
        series: vec![
            BarSeries {
                name: "first 36 h".into(),
                values: vec![0.012, 0.018, 0.021, 0.030, 0.008],
            },
            BarSeries {
                name: "last 36 h".into(),
                values: vec![0.014, 0.016, 0.025, 0.034, 0.009],
            },
        ],
        y_label: "disagreement rate".into(),
        hlines: vec![HLine::limit("limit", 0.05)],
    });

    let policy = GateResult::new(
        GateName::Policy,
        "policy.toml is valid: 3 triggers, cool-down 7 days",
    )
    .with_check(Check::new("policy_valid", Status::Pass).with_value(true))
    .with_evidence("path", "examples/policy.toml");

    GateReport::new(
        "2024-06-01T12:00:00Z",
        "bridgeml-demo/bridgeml.toml",
        vec![parity, quant, guard, drift, latency, budget, shadow, policy],
    )
    .with_model(
        "bridgeml-demo/model_int8.onnx",
        "sha256:3f9a1c0b7d2e4f6a8b0c1d2e3f405162738495a6b7c8d9e0f1a2b3c4d5e6f708",
    )
    .with_spec(
        "bridgeml-demo/spec.toml",
        "sha256:a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f90",
    )
    .with_hardware("cpu", "AMD EPYC 7B13 (2 cores)")
    .with_hardware("backend", "tract 0.23.9")
    .with_hardware("threads", 1)
}

/// Every `<svg …>…</svg>` element in a document.
pub fn svg_elements(doc: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut rest = doc;
    while let Some(start) = rest.find("<svg") {
        let end = rest[start..].find("</svg>").expect("unclosed <svg>") + start + "</svg>".len();
        out.push(&rest[start..end]);
        rest = &rest[end..];
    }
    out
}
