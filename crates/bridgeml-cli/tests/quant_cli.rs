//! `quantize` and `audit quant` on the committed tiny CNN and the labelled
//! image set of tests/fixtures/quant/, through the built binary.

use std::path::PathBuf;
use std::process::{Command, Output};

use serde_json::Value;

fn fx(rel: &str) -> String {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures")
        .join(rel)
        .display()
        .to_string()
}

fn bridgeml(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_bridgeml"))
        .args(args)
        .output()
        .expect("run bridgeml")
}

fn code_json(args: &[&str]) -> (i32, Value) {
    let out = bridgeml(args);
    let code = out.status.code().unwrap_or(-1);
    let v = serde_json::from_slice(&out.stdout).unwrap_or_else(|_| {
        panic!(
            "{args:?}: exit {code}\nstdout: {}\nstderr: {}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (code, v)
}

fn quantize(dir: &std::path::Path, extra: &[&str]) -> String {
    let out = dir.join("tiny.int8.onnx").display().to_string();
    let (model, spec, calib) = (
        fx("runtime/tiny_cnn.onnx"),
        fx("runtime/tiny_spec.toml"),
        fx("quant/calib"),
    );
    let mut args = vec![
        "quantize",
        "--model",
        &model,
        "--spec",
        &spec,
        "--calibration",
        &calib,
        "--output",
        &out,
        "--backend",
        "tract",
        "--format",
        "json",
    ];
    args.extend_from_slice(extra);
    let (code, v) = code_json(&args);
    assert_eq!(code, 0, "{v}");
    assert_eq!(v["output"], out.as_str());
    out
}

#[test]
fn quantize_writes_a_qdq_model_with_metadata() {
    let d = tempfile::tempdir().unwrap();
    let out = quantize(d.path(), &["--method", "percentile:99.99", "--per-channel"]);
    let m = bridgeml_runtime::OnnxModel::from_path(out.as_ref()).unwrap();
    let meta: Vec<(String, String)> = m
        .proto
        .metadata_props
        .iter()
        .map(|p| (p.key.clone(), p.value.clone()))
        .collect();
    assert!(meta.contains(&("bridgeml.quant.method".into(), "percentile:99.99".into())));
    assert!(meta.contains(&("bridgeml.quant.per_channel".into(), "true".into())));
    assert!(meta
        .iter()
        .any(|(k, _)| k == "bridgeml.quant.spec_fingerprint"));
    // It runs through predict.
    let out2 = bridgeml(&[
        "predict",
        "--model",
        &out,
        "--input",
        &fx("runtime/input_0.npy"),
        "--backend",
        "tract",
    ]);
    assert_eq!(out2.status.code(), Some(0));
}

#[test]
fn quantize_bad_input_is_exit_2_with_a_clear_message() {
    let d = tempfile::tempdir().unwrap();
    let out = d.path().join("x.onnx").display().to_string();
    let (model, spec) = (fx("runtime/tiny_cnn.onnx"), fx("runtime/tiny_spec.toml"));
    let calib = fx("quant/calib");
    let r = bridgeml(&[
        "quantize",
        "--model",
        &model,
        "--spec",
        &spec,
        "--calibration",
        &calib,
        "--method",
        "mse",
        "--output",
        &out,
    ]);
    assert_eq!(r.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&r.stderr).contains("unknown calibration method `mse`"));
    let empty = tempfile::tempdir().unwrap();
    let e = empty.path().display().to_string();
    let r = bridgeml(&[
        "quantize",
        "--model",
        &model,
        "--spec",
        &spec,
        "--calibration",
        &e,
        "--output",
        &out,
    ]);
    assert_eq!(r.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&r.stderr).contains("calibration set is empty"));
    let one = fx("quant/calib/calib_00.png");
    let r = bridgeml(&[
        "quantize",
        "--model",
        &model,
        "--spec",
        &spec,
        "--calibration",
        &one,
        "--output",
        &out,
    ]);
    assert!(String::from_utf8_lossy(&r.stderr).contains("at least 8"));
    assert!(!std::path::Path::new(&out).exists());
}

#[test]
fn audit_quant_imagefolder_and_csv_agree() {
    let d = tempfile::tempdir().unwrap();
    let cand = quantize(d.path(), &["--method", "minmax"]);
    let (reference, spec, data) = (
        fx("runtime/tiny_cnn.onnx"),
        fx("runtime/tiny_spec.toml"),
        fx("quant/labelled"),
    );
    let base = [
        "audit",
        "quant",
        "--reference",
        &reference,
        "--candidate",
        &cand,
        "--spec",
        &spec,
        "--data",
        &data,
        "--backend",
        "tract",
        "--format",
        "json",
    ];
    let mut a = base.to_vec();
    a.extend(["--labels", &data]);
    let (code, v) = code_json(&a);
    assert_eq!(code, if v["pass"].as_bool().unwrap() { 0 } else { 1 });
    assert_eq!(v["samples"], 48);
    // The fixture relabels every 6th image: reference accuracy is 40/48.
    assert!(
        (v["reference"]["accuracy"].as_f64().unwrap() - 40.0 / 48.0).abs() < 1e-9,
        "{v}"
    );
    for key in [
        "imbalance_ratio",
        "minority_classes",
        "classes",
        "flips",
        "confusion_delta",
        "divergence",
        "gate",
    ] {
        assert!(v.get(key).is_some(), "missing {key}");
    }
    assert!(v["flips"]["in_band"]["samples"].is_u64());
    assert_eq!(v["candidate_qat"], false);
    let csv = fx("quant/labels.csv");
    let mut b = base.to_vec();
    b.extend(["--labels", &csv]);
    let (code2, v2) = code_json(&b);
    assert_eq!(code, code2);
    assert_eq!(v["classes"], v2["classes"]);
    assert_eq!(v["flips"], v2["flips"]);
}

#[test]
fn audit_gate_fails_on_a_different_model_and_labels_must_match() {
    let (reference, spec, data) = (
        fx("runtime/tiny_cnn.onnx"),
        fx("runtime/tiny_spec.toml"),
        fx("quant/labelled"),
    );
    let other = fx("runtime/tiny_cnn_b.onnx");
    // A tight gate (0 points) on the perturbed model.
    let (code, v) = code_json(&[
        "audit",
        "quant",
        "--reference",
        &reference,
        "--candidate",
        &other,
        "--spec",
        &spec,
        "--data",
        &data,
        "--labels",
        &data,
        "--backend",
        "tract",
        "--max-recall-drop",
        "0",
        "--band",
        "0.3-0.7",
        "--format",
        "json",
    ]);
    assert_eq!(v["flips"]["band"], serde_json::json!([0.3, 0.7]));
    let failed = !v["gate"]["failed_classes"].as_array().unwrap().is_empty();
    assert_eq!(code, if failed { 1 } else { 0 });
    // A CSV naming a missing file.
    let d = tempfile::tempdir().unwrap();
    let bad = d.path().join("bad.csv");
    std::fs::write(&bad, "file,label\n1/nope.png,1\n").unwrap();
    let bad = bad.display().to_string();
    let r = bridgeml(&[
        "audit",
        "quant",
        "--reference",
        &reference,
        "--candidate",
        &other,
        "--spec",
        &spec,
        "--data",
        &data,
        "--labels",
        &bad,
    ]);
    assert_eq!(r.status.code(), Some(2));
    let err = String::from_utf8_lossy(&r.stderr);
    assert!(err.contains("does not match the data"), "{err}");
}
