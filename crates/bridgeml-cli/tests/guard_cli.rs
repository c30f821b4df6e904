//! `bridgeml guard calibrate|score|eval` end to end on the committed fixtures
//! (`tests/fixtures/guard`, made by `scripts/fixtures/make_guard_fixtures.py`).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures/guard")
        .join(name)
}

fn bridgeml(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_bridgeml"))
        .args(args)
        .output()
        .expect("run bridgeml")
}

fn ok_json(args: &[&str]) -> Value {
    let out = bridgeml(args);
    assert!(
        out.status.success(),
        "{args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("JSON on stdout")
}

fn fails_with(args: &[&str], needle: &str) {
    let out = bridgeml(args);
    assert_eq!(out.status.code(), Some(2), "{args:?} should exit 2");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(needle), "{args:?}: {err:?} lacks {needle:?}");
    assert!(!err.contains("panicked"), "{err}");
}

fn expected() -> Value {
    serde_json::from_str(&std::fs::read_to_string(fixture("expected.json")).unwrap()).unwrap()
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn energy_calibrate_score_eval_match_reference() {
    let tmp = tempfile::tempdir().unwrap();
    let g = tmp.path().join("energy.json");
    let (lid, lood) = (fixture("logits_id.npy"), fixture("logits_ood.npy"));
    let e = expected();
    let cal = ok_json(&[
        "guard",
        "calibrate",
        "--logits",
        s(&lid),
        "--method",
        "energy",
        "--tpr",
        "0.95",
        "--output",
        s(&g),
        "--format",
        "json",
    ]);
    let want_t = e["energy_t1"]["threshold"].as_f64().unwrap();
    assert!((cal["threshold"].as_f64().unwrap() - want_t).abs() < 1e-9);
    let file: Value = serde_json::from_str(&std::fs::read_to_string(&g).unwrap()).unwrap();
    assert_eq!(file["threshold"], cal["threshold"]);
    assert_eq!(file["method"], "energy");
    assert!(file["threshold_ci"]["low"].as_f64().unwrap() <= want_t + 1e-9);

    let ev = ok_json(&[
        "guard",
        "eval",
        "--guard",
        s(&g),
        "--id",
        s(&lid),
        "--ood",
        s(&lood),
        "--format",
        "json",
    ]);
    let m = &e["energy_t1"]["metrics"];
    for key in [
        "auroc",
        "aupr_in",
        "aupr_out",
        "fpr_at_95_tpr",
        "id_pass_rate",
    ] {
        let (got, want) = (ev[key].as_f64().unwrap(), m[key].as_f64().unwrap());
        assert!((got - want).abs() < 1e-12, "{key}: {got} vs {want}");
        assert!((0.0..=1.0).contains(&got));
    }

    let sc = ok_json(&[
        "guard",
        "score",
        "--guard",
        s(&g),
        "--logits",
        s(&lood),
        "--format",
        "json",
    ]);
    let results = sc["results"].as_array().unwrap();
    assert_eq!(results.len(), 150);
    let ood_scores: Vec<f64> = e["energy_t1"]["ood"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect();
    for (r, want) in results.iter().zip(&ood_scores) {
        let mut keys: Vec<&str> = r.as_object().unwrap().keys().map(String::as_str).collect();
        keys.sort_unstable();
        assert_eq!(
            keys,
            ["confidence", "is_ood", "prediction", "reliable", "score"]
        );
        let score = r["score"].as_f64().unwrap();
        assert!((score - want).abs() < 1e-9 * want.abs().max(1.0));
        assert_eq!(r["is_ood"].as_bool().unwrap(), score > want_t);
        assert_eq!(
            r["reliable"].as_bool().unwrap(),
            !r["is_ood"].as_bool().unwrap()
        );
        assert!(r["prediction"].as_u64().unwrap() < 10);
        let c = r["confidence"].as_f64().unwrap();
        assert!(c > 0.0 && c <= 1.0);
    }
    // Table output works too.
    let out = bridgeml(&[
        "guard",
        "eval",
        "--guard",
        s(&g),
        "--id",
        s(&lid),
        "--ood",
        s(&lood),
    ]);
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("AUROC"));
}

#[test]
fn feature_methods_through_npy() {
    let tmp = tempfile::tempdir().unwrap();
    let e = expected();
    let (fref, yref, fid, food) = (
        fixture("features_ref.npy"),
        fixture("labels_ref.npy"),
        fixture("features_id.npy"),
        fixture("features_ood.npy"),
    );
    for method in ["mahalanobis", "knn"] {
        let g = tmp.path().join(format!("{method}.json"));
        ok_json(&[
            "guard",
            "calibrate",
            "--features",
            s(&fid),
            "--reference-features",
            s(&fref),
            "--reference-labels",
            s(&yref),
            "--method",
            method,
            "--k",
            "5",
            "--output",
            s(&g),
            "--format",
            "json",
        ]);
        let ev = ok_json(&[
            "guard",
            "eval",
            "--guard",
            s(&g),
            "--id",
            s(&fid),
            "--ood",
            s(&food),
            "--format",
            "json",
        ]);
        let m = &e[method]["metrics"];
        for key in [
            "auroc",
            "aupr_in",
            "aupr_out",
            "fpr_at_95_tpr",
            "id_pass_rate",
        ] {
            let (got, want) = (ev[key].as_f64().unwrap(), m[key].as_f64().unwrap());
            assert!(
                (got - want).abs() < 1e-12,
                "{method} {key}: {got} vs {want}"
            );
        }
        let sc = ok_json(&[
            "guard",
            "score",
            "--guard",
            s(&g),
            "--features",
            s(&food),
            "--format",
            "json",
        ]);
        assert_eq!(sc["results"].as_array().unwrap().len(), 120);
    }
    assert!(tmp.path().join("knn.knn-bank.npy").exists());
    // Mahalanobis on the validation set alone, labels from --labels.
    let g = tmp.path().join("m2.json");
    ok_json(&[
        "guard",
        "calibrate",
        "--features",
        s(&fid),
        "--labels",
        s(&fixture("labels_id.npy")),
        "--method",
        "mahalanobis",
        "--output",
        s(&g),
        "--format",
        "json",
    ]);
}

#[test]
fn bad_inputs_exit_2_with_clear_messages() {
    let tmp = tempfile::tempdir().unwrap();
    let g = tmp.path().join("g.json");
    let lid = fixture("logits_id.npy");
    fails_with(
        &[
            "guard",
            "calibrate",
            "--logits",
            s(&lid),
            "--method",
            "energy",
            "--tpr",
            "1.0",
            "--output",
            s(&g),
        ],
        "TPR",
    );
    // NaN logits.
    let nan = tmp.path().join("nan.npy");
    let mut bytes = std::fs::read(&lid).unwrap();
    let n = bytes.len();
    bytes[n - 4..].copy_from_slice(&f32::NAN.to_le_bytes());
    std::fs::write(&nan, &bytes).unwrap();
    fails_with(
        &[
            "guard",
            "calibrate",
            "--logits",
            s(&nan),
            "--method",
            "msp",
            "--output",
            s(&g),
        ],
        "non-finite",
    );
    // A logit method given only features.
    fails_with(
        &[
            "guard",
            "calibrate",
            "--features",
            s(&fixture("features_id.npy")),
            "--method",
            "energy",
            "--output",
            s(&g),
        ],
        "needs --logits",
    );
    fails_with(
        &[
            "guard",
            "calibrate",
            "--features",
            s(&fixture("features_id.npy")),
            "--method",
            "mahalanobis",
            "--output",
            s(&g),
        ],
        "labels",
    );
    // Model inputs: the runtime is not part of this build yet.
    let model = tmp.path().join("m.onnx");
    std::fs::write(&model, b"not really a model").unwrap();
    let spec = tmp.path().join("spec.toml");
    std::fs::write(&spec, "[input]\nkind = \"image\"\n[[steps]]\nop = \"resize\"\nheight = 2\nwidth = 2\nfilter = \"box\"\n").unwrap();
    fails_with(
        &[
            "guard",
            "calibrate",
            "--model",
            s(&model),
            "--spec",
            s(&spec),
            "--data",
            s(tmp.path()),
            "--method",
            "energy",
            "--output",
            s(&g),
        ],
        "not a valid ONNX model",
    );
}

#[test]
fn guard_is_bound_to_its_model_and_spec() {
    let tmp = tempfile::tempdir().unwrap();
    let lid = fixture("logits_id.npy");
    let g = tmp.path().join("g.json");
    ok_json(&[
        "guard",
        "calibrate",
        "--logits",
        s(&lid),
        "--method",
        "maxlogit",
        "--output",
        s(&g),
        "--format",
        "json",
    ]);
    // Pretend it was calibrated for another model and spec.
    let mut file: Value = serde_json::from_str(&std::fs::read_to_string(&g).unwrap()).unwrap();
    file["model_sha256"] = "sha256:0000".into();
    file["spec_fingerprint"] = "sha256:1111".into();
    std::fs::write(&g, serde_json::to_string(&file).unwrap()).unwrap();
    let model = tmp.path().join("m.onnx");
    std::fs::write(&model, b"other model").unwrap();
    let spec = tmp.path().join("spec.toml");
    std::fs::write(&spec, "[input]\nkind = \"image\"\n[[steps]]\nop = \"resize\"\nheight = 2\nwidth = 2\nfilter = \"box\"\n").unwrap();
    let img = tmp.path().join("x.png");
    std::fs::write(&img, b"").unwrap();
    fails_with(
        &[
            "guard",
            "score",
            "--guard",
            s(&g),
            "--model",
            s(&model),
            "--spec",
            s(&spec),
            "--input",
            s(&img),
        ],
        "calibrated for model",
    );
    // Wrong number of classes.
    let ood_feats = fixture("features_ood.npy");
    ok_json(&[
        "guard",
        "calibrate",
        "--logits",
        s(&lid),
        "--method",
        "energy",
        "--output",
        s(&g),
        "--format",
        "json",
    ]);
    fails_with(
        &[
            "guard",
            "score",
            "--guard",
            s(&g),
            "--logits",
            s(&ood_feats),
        ],
        "classes",
    );
    // Not a guard file.
    fails_with(
        &["guard", "score", "--guard", s(&lid), "--logits", s(&lid)],
        "guard",
    );
}

fn runtime_fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures/runtime")
        .join(name)
}

fn quant_fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures/quant")
        .join(name)
}

/// The model route (`--model --spec --data`) must see exactly the logits that
/// `bridgeml predict` computes for the same files: calibrating from those
/// logits as `.npy` gives the same guard.
#[test]
fn model_route_equals_npy_route() {
    let tmp = tempfile::tempdir().unwrap();
    let (model, spec) = (
        runtime_fixture("tiny_cnn.onnx"),
        runtime_fixture("tiny_spec.toml"),
    );
    let calib = quant_fixture("calib");
    let pred = ok_json(&[
        "predict",
        "--model",
        s(&model),
        "--spec",
        s(&spec),
        "--input",
        s(&calib),
        "--with-logits",
        "--backend",
        "tract",
        "--format",
        "json",
    ]);
    let rows: Vec<Vec<f32>> = pred["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            r["logits"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_f64().unwrap() as f32)
                .collect()
        })
        .collect();
    let (n, c) = (rows.len(), rows[0].len());
    assert_eq!(n, 12);
    let flat: Vec<f32> = rows.into_iter().flatten().collect();
    let logits = tmp.path().join("logits.npy");
    bridgeml_core::Tensor::F32(ndarray::ArrayD::from_shape_vec(vec![n, c], flat).unwrap())
        .write_npy(&logits)
        .unwrap();

    let (g_npy, g_model) = (tmp.path().join("a.json"), tmp.path().join("b.json"));
    let from_npy = ok_json(&[
        "guard",
        "calibrate",
        "--logits",
        s(&logits),
        "--method",
        "energy",
        "--output",
        s(&g_npy),
        "--format",
        "json",
    ]);
    let from_model = ok_json(&[
        "guard",
        "calibrate",
        "--model",
        s(&model),
        "--spec",
        s(&spec),
        "--data",
        s(&calib),
        "--method",
        "energy",
        "--output",
        s(&g_model),
        "--format",
        "json",
    ]);
    let (a, b) = (
        from_npy["threshold"].as_f64().unwrap(),
        from_model["threshold"].as_f64().unwrap(),
    );
    // ONNX Runtime (picked by `auto` when installed) and tract agree to ~1e-5
    // on this model; the energy threshold inherits that tolerance.
    assert!((a - b).abs() <= 1e-4 * a.abs().max(1.0), "{a} vs {b}");

    // Scoring files through the model gives one verdict per file, bound to the
    // model's fingerprint.
    let images = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/images");
    let files: Vec<PathBuf> = ["chelsea.png", "china.jpg"]
        .iter()
        .map(|f| images.join(f))
        .collect();
    let scored = ok_json(&[
        "guard",
        "score",
        "--guard",
        s(&g_model),
        "--model",
        s(&model),
        "--spec",
        s(&spec),
        "--input",
        s(&files[0]),
        "--input",
        s(&files[1]),
        "--format",
        "json",
    ]);
    assert_eq!(scored["results"].as_array().unwrap().len(), 2);

    // A feature method names the model tensor; kNN on `features` calibrates
    // and evaluates against noise-like OOD (the photos).
    let g_knn = tmp.path().join("knn.json");
    let knn = ok_json(&[
        "guard",
        "calibrate",
        "--model",
        s(&model),
        "--spec",
        s(&spec),
        "--data",
        s(&calib),
        "--features",
        "features",
        "--method",
        "knn",
        "--k",
        "3",
        "--output",
        s(&g_knn),
        "--format",
        "json",
    ]);
    assert!(knn["threshold"].as_f64().unwrap().is_finite());
    let ev = ok_json(&[
        "guard",
        "eval",
        "--guard",
        s(&g_knn),
        "--model",
        s(&model),
        "--spec",
        s(&spec),
        "--id",
        s(&calib),
        "--ood",
        s(&images),
        "--format",
        "json",
    ]);
    assert_eq!(ev["n_id"].as_u64(), Some(12));
    assert_eq!(ev["n_ood"].as_u64(), Some(4));

    // An unknown tensor name is an error naming it.
    fails_with(
        &[
            "guard",
            "calibrate",
            "--model",
            s(&model),
            "--spec",
            s(&spec),
            "--data",
            s(&calib),
            "--features",
            "no_such_tensor",
            "--method",
            "knn",
            "--output",
            s(&tmp.path().join("x.json")),
        ],
        "no_such_tensor",
    );
}
