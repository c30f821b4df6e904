//! `bridgeml demo` end to end (a short training run), then `bridgeml gate`
//! and `bridgeml report` re-run on the bundle it wrote.

use std::path::Path;
use std::process::{Command, Output};

use serde_json::Value;

fn bridgeml(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_bridgeml"))
        .args(args)
        .output()
        .expect("the binary runs")
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn text(o: &Output) -> String {
    format!(
        "{}\n{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// A short demo run into `out`.
fn short_demo(out: &Path) -> Output {
    bridgeml(&[
        "demo",
        "--out",
        s(out),
        "--limit",
        "400",
        "--epochs",
        "1",
        "--qat-epochs",
        "1",
    ])
}

#[test]
fn demo_writes_a_bundle_the_gate_and_report_rerun_on() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("bridgeml-demo");
    let o = short_demo(&out);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(stdout.contains("gate verdict"), "{stdout}");
    assert!(stdout.contains("report/report.html"), "{stdout}");
    for f in [
        "bridgeml.toml",
        "model.onnx",
        "model_int8.onnx",
        "model_qat.onnx",
        "spec.toml",
        "guard.json",
        "baseline_confidence.json",
        "baseline_embedding.json",
        "embedding_reference.npy",
        "profile.json",
        "policy.toml",
        "bridgeml.db",
        "demo.json",
        "report/report.html",
        "report/report.json",
        "report/report.md",
        "traffic/report.html",
    ] {
        assert!(out.join(f).is_file(), "missing {f}");
    }

    let demo: Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("demo.json")).unwrap()).unwrap();
    assert_eq!(demo["training"]["samples"], 400);
    let gaps = demo["gaps"].as_array().unwrap();
    let kinds: Vec<&str> = gaps.iter().map(|g| g["gap"].as_str().unwrap()).collect();
    for k in [
        "none",
        "covariate-shift",
        "label-prior-shift",
        "int8",
        "preprocessing-mismatch",
        "temporal-drift",
        "ood-inputs",
    ] {
        assert!(kinds.contains(&k), "no {k} in {kinds:?}");
    }
    // The OpenCV-vs-Pillow resize changes every camera-size input's tensor:
    // the parity gate must see it whatever the model learned.
    let pre = gaps
        .iter()
        .find(|g| g["gap"] == "preprocessing-mismatch")
        .unwrap();
    assert_eq!(pre["caught"], true);
    assert_eq!(pre["evidence"]["parity_mismatches"], 16.0);
    // The traffic report has one section per scenario.
    let traffic: Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("traffic/report.json")).unwrap())
            .unwrap();
    assert_eq!(traffic["gates"].as_array().unwrap().len(), gaps.len());

    // The manifest is complete: every gate has its data.
    let manifest = out.join("bridgeml.toml");
    let o = bridgeml(&[
        "gate",
        "--config",
        s(&manifest),
        "--quick",
        "--format",
        "json",
    ]);
    let code = o.status.code();
    assert!(matches!(code, Some(0) | Some(1)), "{}", text(&o));
    let gate: Value = serde_json::from_slice(&o.stdout).unwrap();
    let gates = gate["gates"].as_array().unwrap();
    assert_eq!(gates.len(), 8);
    for g in gates {
        assert_ne!(g["status"], "skip", "{g}");
    }
    let parity = gates.iter().find(|g| g["name"] == "parity").unwrap();
    assert_eq!(parity["status"], "pass");
    // The served PTQ model learned from data with Shirt cut 20:1: the
    // imbalance => QAT rule reads the training counts from the FP32 model.
    let quant = gates.iter().find(|g| g["name"] == "quantization").unwrap();
    let rule = quant["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "qat_when_imbalanced")
        .unwrap();
    assert_eq!(rule["status"], "warn", "{rule}");
    assert!(
        rule["message"].as_str().unwrap().contains("training data"),
        "{rule}"
    );
    let shadow = gates.iter().find(|g| g["name"] == "shadow").unwrap();
    assert!(
        shadow["summary"].as_str().unwrap().contains("1440 samples"),
        "{shadow}"
    );

    let o = bridgeml(&[
        "report",
        "--log",
        s(&out.join("bridgeml.db")),
        "--config",
        s(&manifest),
        "--format",
        "json",
    ]);
    assert!(matches!(o.status.code(), Some(0) | Some(1)), "{}", text(&o));
    let r: Value = serde_json::from_slice(&o.stdout).unwrap();
    let names: Vec<&str> = r["gates"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["accuracy_gap", "latency", "drift", "ood_rate"]);
    for g in r["gates"].as_array().unwrap() {
        assert_ne!(g["status"], "skip", "{g}");
        assert_eq!(g["evidence"]["rows"], 1440);
    }

    // Deterministic given the seed: the same artifacts and findings again
    // (only measured latencies may differ).
    let again = dir.path().join("again");
    let o = short_demo(&again);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    for f in [
        "model.onnx",
        "model_int8.onnx",
        "model_qat.onnx",
        "guard.json",
        "baseline_confidence.json",
        "baseline_embedding.json",
        "embedding_reference.npy",
        "bridgeml.toml",
        "data/parity/reference/0000.npy",
    ] {
        assert!(
            std::fs::read(out.join(f)).unwrap() == std::fs::read(again.join(f)).unwrap(),
            "{f} differs between two runs with the same seed"
        );
    }
    let second: Value =
        serde_json::from_str(&std::fs::read_to_string(again.join("demo.json")).unwrap()).unwrap();
    assert_eq!(second["gaps"], demo["gaps"]);
    assert_eq!(second["guard"], demo["guard"]);
    assert_eq!(second["training"]["fp32"], demo["training"]["fp32"]);
}

#[test]
fn demo_without_its_data_exits_2_naming_the_directory() {
    let dir = tempfile::tempdir().unwrap();
    let o = bridgeml(&[
        "demo",
        "--data",
        s(&dir.path().join("nothing-here")),
        "--out",
        s(&dir.path().join("out")),
    ]);
    assert_eq!(o.status.code(), Some(2));
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(e.contains("nothing-here") && e.contains("--data"), "{e}");
}
