//! Manifest loading against real files: errors name the manifest's
//! `file:line` and say what to fix.

use std::path::{Path, PathBuf};

use bridgeml_gate::manifest::{init_manifest, InitOptions, Manifest};
use bridgeml_gate::GateError;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/runtime")
}

/// A directory with copies of the fixture model, spec and labels.
fn workdir() -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    for f in [
        "tiny_cnn.onnx",
        "tiny_cnn_b.onnx",
        "tiny_spec.toml",
        "labels.txt",
    ] {
        std::fs::copy(fixtures().join(f), d.path().join(f)).unwrap();
    }
    d
}

fn write(dir: &Path, text: &str) -> PathBuf {
    let p = dir.join("bridgeml.toml");
    std::fs::write(&p, text).unwrap();
    p
}

#[test]
fn init_writes_a_manifest_that_loads_as_is() {
    let d = workdir();
    let text = init_manifest(&InitOptions {
        model: d.path().join("tiny_cnn.onnx"),
        spec: d.path().join("tiny_spec.toml"),
        labels: Some(d.path().join("labels.txt")),
        dir: d.path().to_path_buf(),
    })
    .unwrap();
    let p = write(d.path(), &text);
    let m = Manifest::load(&p).unwrap();
    assert_eq!(m.model.path, Path::new("tiny_cnn.onnx"));
    assert!(m.model.sha256.as_deref().unwrap().starts_with("sha256:"));
    assert!(m.spec.fingerprint.is_some());
    assert!(m.shadow.is_none() && m.guard.is_none());
}

#[test]
fn unknown_keys_and_wrong_types_name_file_and_line() {
    let d = workdir();
    let p = write(
        d.path(),
        "[model]\npath = \"tiny_cnn.onnx\"\n\n[spec]\npath = \"tiny_spec.toml\"\nfingerprnt = \"x\"\n",
    );
    let e = Manifest::load(&p).unwrap_err();
    match &e {
        GateError::Parse { line, path, .. } => {
            assert_eq!(*line, 6, "{e}");
            assert_eq!(path, &p);
        }
        other => panic!("expected a parse error, got {other:?}"),
    }
    let msg = e.to_string();
    assert!(
        msg.contains("bridgeml.toml:6:") && msg.contains("fingerprnt"),
        "{msg}"
    );

    let p = write(
        d.path(),
        "[model]\npath = \"tiny_cnn.onnx\"\ntop_k = \"five\"\n[spec]\npath = \"tiny_spec.toml\"\n",
    );
    let msg = Manifest::load(&p).unwrap_err().to_string();
    assert!(msg.contains("bridgeml.toml:3:"), "{msg}");

    // A value that parses but is out of range also names its line and key.
    let head = "[model]\npath = \"tiny_cnn.onnx\"\n[spec]\npath = \"tiny_spec.toml\"\n";
    for (tail, line, key) in [
        (
            "[shadow]\nmodel = \"tiny_cnn_b.onnx\"\nsample_rate = 1.5\n",
            7,
            "sample_rate",
        ),
        (
            "[server]\nlog_commit_window_ms = 60000\n",
            6,
            "log_commit_window_ms",
        ),
        ("[server]\ninference_cpus = []\n", 6, "inference_cpus"),
    ] {
        let p = write(d.path(), &format!("{head}{tail}"));
        let msg = Manifest::load(&p).unwrap_err().to_string();
        assert!(
            msg.contains(&format!("bridgeml.toml:{line}")) && msg.contains(key),
            "{msg}"
        );
    }
}

#[test]
fn missing_files_and_changed_fingerprints_are_refused() {
    let d = workdir();
    let p = write(
        d.path(),
        "[model]\npath = \"tiny_cnn.onnx\"\nlabels = \"nope.txt\"\n[spec]\npath = \"tiny_spec.toml\"\n",
    );
    let e = Manifest::load(&p).unwrap_err();
    assert!(
        matches!(e, GateError::MissingFile { line: Some(3), .. }),
        "{e:?}"
    );
    assert!(e.to_string().contains("nope.txt"), "{e}");

    let text = init_manifest(&InitOptions {
        model: d.path().join("tiny_cnn.onnx"),
        spec: d.path().join("tiny_spec.toml"),
        labels: None,
        dir: d.path().to_path_buf(),
    })
    .unwrap();
    let p = write(d.path(), &text);
    Manifest::load(&p).unwrap();
    // The model file is replaced: its sha256 no longer matches.
    std::fs::copy(
        d.path().join("tiny_cnn_b.onnx"),
        d.path().join("tiny_cnn.onnx"),
    )
    .unwrap();
    let e = Manifest::load(&p).unwrap_err();
    assert!(matches!(e, GateError::Fingerprint { .. }), "{e:?}");
    assert!(e.to_string().contains("fingerprint mismatch"), "{e}");
    // The spec changes: the spec fingerprint no longer matches.
    std::fs::copy(
        fixtures().join("tiny_cnn.onnx"),
        d.path().join("tiny_cnn.onnx"),
    )
    .unwrap();
    let spec = std::fs::read_to_string(d.path().join("tiny_spec.toml")).unwrap();
    std::fs::write(
        d.path().join("tiny_spec.toml"),
        spec.replace("bilinear", "nearest"),
    )
    .unwrap();
    let e = Manifest::load(&p).unwrap_err();
    assert!(e.to_string().contains("spec.fingerprint"), "{e}");
}

#[test]
fn the_example_manifest_loads() {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/bridgeml.toml");
    let m = Manifest::load(&p).unwrap();
    assert_eq!(m.segments.weights.get("premium"), Some(&3.0));
}
