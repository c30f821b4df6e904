//! `bridgeml gate` end to end on a bundle built from the repository's own
//! tiny CNN: FP32 and INT8 models, a guard calibrated with the CLI, a drift
//! baseline, a policy; pass and fail cases, reports written and parsed.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

fn repo(p: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").join(p)
}

fn bridgeml(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_bridgeml"))
        .args(args)
        .output()
        .expect("run bridgeml")
}

fn ok(args: &[&str]) -> Output {
    let out = bridgeml(args);
    assert!(
        out.status.success(),
        "{args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// A deployment bundle in `dir`; returns the manifest path.
fn bundle(dir: &Path, extra: &str) -> PathBuf {
    for (from, to) in [
        ("tests/fixtures/runtime/tiny_cnn.onnx", "model.onnx"),
        (
            "tests/fixtures/quant/bridgeml_minmax_pc.onnx",
            "model.int8.onnx",
        ),
        ("tests/fixtures/runtime/tiny_spec.toml", "spec.toml"),
        ("examples/policy.toml", "policy.toml"),
    ] {
        std::fs::copy(repo(from), dir.join(to)).unwrap();
    }
    // A flat copy of the labelled images for the guard's calibration.
    let flat = dir.join("val_flat");
    std::fs::create_dir_all(&flat).unwrap();
    for class in std::fs::read_dir(repo("tests/fixtures/quant/labelled")).unwrap() {
        let class = class.unwrap().path();
        for f in std::fs::read_dir(&class).unwrap() {
            let f = f.unwrap().path();
            let name = format!(
                "{}_{}",
                class.file_name().unwrap().to_string_lossy(),
                f.file_name().unwrap().to_string_lossy()
            );
            std::fs::copy(&f, flat.join(name)).unwrap();
        }
    }
    ok(&[
        "guard",
        "calibrate",
        "--model",
        s(&dir.join("model.onnx")),
        "--spec",
        s(&dir.join("spec.toml")),
        "--data",
        s(&flat),
        "--method",
        "energy",
        "--output",
        s(&dir.join("guard.json")),
    ]);
    // Confidence baseline: the validation set's max-softmax from `predict`.
    let pred = ok(&[
        "predict",
        "--model",
        s(&dir.join("model.onnx")),
        "--spec",
        s(&dir.join("spec.toml")),
        "--input",
        s(&flat),
        "--format",
        "json",
    ]);
    let pred: Value = serde_json::from_slice(&pred.stdout).unwrap();
    let mut csv = String::from("confidence\n");
    for r in pred["results"].as_array().unwrap() {
        csv += &format!("{}\n", r["top_k"][0]["probability"].as_f64().unwrap());
    }
    std::fs::write(dir.join("confidence.csv"), csv).unwrap();
    ok(&[
        "drift",
        "calibrate",
        "--reference",
        s(&dir.join("confidence.csv")),
        "--window",
        "12",
        "--pairs",
        "10",
        "--bins",
        "5",
        "--output",
        s(&dir.join("baseline.json")),
    ]);
    let manifest = format!(
        r#"[model]
path = "model.onnx"
int8_path = "model.int8.onnx"
backend = "tract"

[spec]
path = "spec.toml"

[guard]
path = "guard.json"

[monitor]
confidence_baseline = "baseline.json"

[policy]
path = "policy.toml"

[gate]
validation = "{val}"
ood = "{ood}"
{extra}
"#,
        val = repo("tests/fixtures/quant/labelled").display(),
        ood = repo("tests/fixtures/images").display(),
    );
    let m = dir.join("bridgeml.toml");
    std::fs::write(&m, manifest).unwrap();
    m
}

fn gate_json(m: &Path, report_dir: &Path) -> (i32, Value) {
    let out = bridgeml(&[
        "gate",
        "--config",
        s(m),
        "--quick",
        "--format",
        "json",
        "--report-dir",
        s(report_dir),
    ]);
    let code = out.status.code().unwrap();
    assert!(
        code == 0 || code == 1,
        "gate could not run: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    (
        code,
        serde_json::from_slice(&out.stdout).expect("JSON report"),
    )
}

fn gate<'a>(report: &'a Value, name: &str) -> &'a Value {
    report["gates"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["name"] == name)
        .unwrap_or_else(|| panic!("no gate {name}"))
}

#[test]
fn gate_runs_every_gate_and_writes_reports() {
    let tmp = tempfile::tempdir().unwrap();
    let m = bundle(
        tmp.path(),
        "[gate.thresholds]\nmax_fpr_at_95_tpr = 1.0\nmax_recall_drop_points = 100.0\n",
    );
    // Generous SLA: passes on any machine.
    let text =
        std::fs::read_to_string(&m).unwrap() + "\n[sla]\np95_ms = 10000.0\nmax_params = 1000000\n";
    std::fs::write(&m, text).unwrap();
    let (code, r) = gate_json(&m, &tmp.path().join("out"));
    for name in [
        "quantization",
        "guard",
        "drift",
        "latency",
        "budget",
        "policy",
    ] {
        let g = gate(&r, name);
        assert_ne!(g["status"], "fail", "{name}: {g:#}");
        assert_ne!(g["status"], "skip", "{name}: {g:#}");
    }
    assert_eq!(gate(&r, "parity")["status"], "skip");
    assert_eq!(gate(&r, "shadow")["status"], "skip");
    assert_eq!(code, 0, "{r:#}");
    assert_eq!(r["exit_code"], 0);
    for f in ["report.json", "report.md", "report.html"] {
        assert!(tmp.path().join("out").join(f).is_file(), "{f}");
    }
    let html = std::fs::read_to_string(tmp.path().join("out/report.html")).unwrap();
    assert!(
        html.matches("<svg").count() >= 3,
        "plots in the HTML report"
    );
}

#[test]
fn gate_fails_on_sla_budget_and_missing_policy() {
    let tmp = tempfile::tempdir().unwrap();
    let m = bundle(tmp.path(), "");
    let text = std::fs::read_to_string(&m)
        .unwrap()
        .replace("[policy]\npath = \"policy.toml\"\n", "")
        + "\n[sla]\np95_ms = 0.000001\nmax_params = 10\n";
    std::fs::write(&m, text).unwrap();
    let (code, r) = gate_json(&m, &tmp.path().join("out"));
    assert_eq!(code, 1);
    assert_eq!(r["verdict"], "fail");
    assert_eq!(gate(&r, "latency")["status"], "fail");
    assert_eq!(gate(&r, "budget")["status"], "fail");
    assert_eq!(gate(&r, "policy")["status"], "fail");
}

#[test]
fn gate_parity_compares_training_side_dumps() {
    let tmp = tempfile::tempdir().unwrap();
    // Training-side dumps: the engine's own output for two photos (a match),
    // and the OpenCV pipeline's dump of a third under the Pillow spec (a mismatch).
    let (inputs, dumps) = (tmp.path().join("parity_in"), tmp.path().join("parity_ref"));
    std::fs::create_dir_all(&inputs).unwrap();
    std::fs::create_dir_all(&dumps).unwrap();
    for f in ["chelsea.png", "coffee.png"] {
        std::fs::copy(repo("tests/fixtures/images").join(f), inputs.join(f)).unwrap();
    }
    let m = bundle(
        tmp.path(),
        "parity_inputs = \"parity_in\"\nparity_reference = \"parity_ref\"\n",
    );
    let spec = tmp.path().join("spec.toml");
    ok(&[
        "preprocess",
        "--spec",
        s(&spec),
        "--input",
        s(&inputs.join("chelsea.png")),
        "--output",
        s(&dumps.join("chelsea.npy")),
    ]);
    let (_, r) = gate_json(&m, &tmp.path().join("out"));
    assert_eq!(
        gate(&r, "parity")["status"],
        "pass",
        "{:#}",
        gate(&r, "parity")
    );
    // A dump made under another spec (different resize filter) must fail.
    let other = tmp.path().join("other_spec.toml");
    std::fs::write(
        &other,
        std::fs::read_to_string(&spec)
            .unwrap()
            .replace("\"bilinear\"", "\"nearest\""),
    )
    .unwrap();
    ok(&[
        "preprocess",
        "--spec",
        s(&other),
        "--input",
        s(&inputs.join("coffee.png")),
        "--output",
        s(&dumps.join("coffee.npy")),
    ]);
    let (code, r) = gate_json(&m, &tmp.path().join("out"));
    assert_eq!(
        gate(&r, "parity")["status"],
        "fail",
        "{:#}",
        gate(&r, "parity")
    );
    assert_eq!(code, 1);
}

#[test]
fn bad_manifests_exit_2_naming_the_problem() {
    let tmp = tempfile::tempdir().unwrap();
    let m = bundle(tmp.path(), "");
    let bad = tmp.path().join("bad.toml");
    std::fs::write(
        &bad,
        std::fs::read_to_string(&m).unwrap() + "\n[gate.thresholds]\nmax_recal_drop = 3\n",
    )
    .unwrap();
    let out = bridgeml(&["gate", "--config", s(&bad)]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("bad.toml:") && err.contains("max_recal_drop"),
        "{err}"
    );
    // A guard calibrated for another model.
    std::fs::copy(
        repo("tests/fixtures/runtime/tiny_cnn_b.onnx"),
        tmp.path().join("model.onnx"),
    )
    .unwrap();
    let out = bridgeml(&["gate", "--config", s(&m)]);
    assert_eq!(
        out.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!String::from_utf8_lossy(&out.stderr).contains("panicked"));
}
