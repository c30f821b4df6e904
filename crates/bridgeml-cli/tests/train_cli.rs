//! `bridgeml train` and `bridgeml qat` on the committed fixture.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn bridgeml(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_bridgeml"))
        .args(args)
        .current_dir(root())
        .output()
        .expect("run bridgeml")
}

const SPEC: &str = "tests/fixtures/train/fashion_spec.toml";
const DATA: &str = "tests/fixtures/train/data";

fn train(out: &Path, seed: &str) -> serde_json::Value {
    let o = bridgeml(&[
        "train",
        "--arch",
        "examples/arch/fashion_cnn.toml",
        "--data",
        DATA,
        "--spec",
        SPEC,
        "--epochs",
        "2",
        "--batch-size",
        "16",
        "--seed",
        seed,
        "--val",
        DATA,
        "--minority",
        "tshirt:4",
        "--format",
        "json",
        "--output",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    serde_json::from_slice(&o.stdout).expect("json report")
}

#[test]
fn train_is_reproducible_and_qat_exports_qdq() {
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("a.onnx");
    let b = dir.path().join("b.onnx");
    let report = train(&a, "5");
    train(&b, "5");
    assert_eq!(std::fs::read(&a).unwrap(), std::fs::read(&b).unwrap());
    assert_eq!(
        report["classes"],
        serde_json::json!(["sneaker", "trouser", "tshirt"])
    );
    // tshirt cut 4:1: 20 -> 5 samples.
    assert_eq!(report["class_counts"], serde_json::json!([20, 20, 5]));
    assert_eq!(report["epochs"].as_array().unwrap().len(), 2);
    assert!(report["val"]["minority_recall"].is_number());
    let bytes = std::fs::read(&a).unwrap();
    let text = String::from_utf8_lossy(&bytes);
    assert!(text.contains("bridgeml.spec_fingerprint") && text.contains("features"));

    let q = dir.path().join("a.qat.onnx");
    let o = bridgeml(&[
        "qat",
        "--model",
        a.to_str().unwrap(),
        "--data",
        DATA,
        "--spec",
        SPEC,
        "--epochs",
        "1",
        "--batch-size",
        "16",
        "--val",
        DATA,
        "--output",
        q.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(stdout.contains("validation"), "{stdout}");
    let qbytes = std::fs::read(&q).unwrap();
    let qtext = String::from_utf8_lossy(&qbytes);
    assert!(qtext.contains("QuantizeLinear") && qtext.contains("DequantizeLinear"));
    assert!(!qtext.contains("BatchNormalization"));
    // The audit's QAT rule must recognise what `qat` wrote.
    let qmodel = bridgeml_runtime::OnnxModel::from_path(&q).unwrap();
    assert!(
        bridgeml_quant::is_qat(&qmodel),
        "QAT output lacks the bridgeml.qat marker"
    );

    // A spec that differs from the one the model was trained with is refused.
    let other_spec = dir.path().join("other.toml");
    let spec_text = std::fs::read_to_string(root().join(SPEC)).unwrap();
    std::fs::write(&other_spec, spec_text.replace("0.286", "0.5")).unwrap();
    let o = bridgeml(&[
        "qat",
        "--model",
        a.to_str().unwrap(),
        "--data",
        DATA,
        "--spec",
        other_spec.to_str().unwrap(),
        "--epochs",
        "1",
        "--output",
        dir.path().join("x.onnx").to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("fingerprint"));
    assert!(!dir.path().join("x.onnx").exists());
}

#[test]
fn qat_names_an_unsupported_operator() {
    use bridgeml_train::onnx_export as ox;
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("sig.onnx");
    let g = ox::graph(
        "g",
        vec![
            ox::node(
                "Flatten",
                "flat",
                &["input"],
                &["f"],
                vec![ox::attr_int("axis", 1)],
            ),
            ox::node("Sigmoid", "gate_7", &["f"], &["logits"], vec![]),
        ],
        vec![],
        vec![ox::value_info_f32(
            "input",
            &[
                ox::Dim::param("N"),
                ox::Dim::Fixed(1),
                ox::Dim::Fixed(28),
                ox::Dim::Fixed(28),
            ],
        )],
        vec![ox::value_info_f32(
            "logits",
            &[ox::Dim::param("N"), ox::Dim::Fixed(784)],
        )],
    );
    ox::write_model_atomic(&ox::model(g, 13, &[]), &model).unwrap();
    let out = dir.path().join("q.onnx");
    let o = bridgeml(&[
        "qat",
        "--model",
        model.to_str().unwrap(),
        "--data",
        DATA,
        "--spec",
        SPEC,
        "--epochs",
        "1",
        "--output",
        out.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("Sigmoid") && err.contains("gate_7") && err.contains("bridgeml quantize"),
        "{err}"
    );
    assert!(!out.exists());
}

#[test]
fn ctrl_c_leaves_no_output() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("m.onnx");
    let child = Command::new(env!("CARGO_BIN_EXE_bridgeml"))
        .args([
            "train",
            "--arch",
            "examples/arch/fashion_mlp.toml",
            "--data",
            DATA,
            "--spec",
            SPEC,
            "--epochs",
            "100000",
            "--quiet",
            "--output",
            out.to_str().unwrap(),
        ])
        .current_dir(root())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(2500));
    let status = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let o = child.wait_with_output().unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("interrupted"));
    let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
    assert!(left.is_empty(), "files left behind: {left:?}");
}
