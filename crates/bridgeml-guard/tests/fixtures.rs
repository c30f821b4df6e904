//! Every score, threshold and metric against the numpy / scipy / scikit-learn
//! reference in `tests/fixtures/guard/expected.json`
//! (`scripts/fixtures/make_guard_fixtures.py`).
//!
//! Tolerances: metrics are exact up to float summation order (1e-12);
//! logit scores are computed in f64 from the same f32 logits (1e-9 relative);
//! Mahalanobis uses a Cholesky-based precision instead of `numpy.linalg.inv`
//! (1e-7 relative); kNN normalizes in f32 (numpy in f64), so distances agree
//! to 1e-5.

use std::path::{Path, PathBuf};

use bridgeml_core::Tensor;
use bridgeml_guard::mahalanobis::labels_from_f32;
use bridgeml_guard::{
    calibrate_guard, metrics, scores, threshold_at_tpr, CalibrateConfig, CalibrationData,
    CalibrationOptions, Expected, Guard, Inputs, KnnIndex, MahalanobisScorer, Method, Shrinkage,
};
use ndarray::{Array2, Ix2};
use serde_json::Value;

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/guard")
}

fn load(name: &str) -> Array2<f32> {
    Tensor::read_npy(&dir().join(name))
        .unwrap()
        .to_f32()
        .into_dimensionality::<Ix2>()
        .unwrap()
}

fn labels(name: &str) -> Vec<usize> {
    let t = Tensor::read_npy(&dir().join(name)).unwrap().to_f32();
    labels_from_f32(t.as_slice().unwrap()).unwrap()
}

fn expected() -> Value {
    let text = std::fs::read_to_string(dir().join("expected.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

fn vec(v: &Value) -> Vec<f64> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect()
}

fn assert_close(got: &[f64], want: &[f64], rel: f64, what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        let tol = rel * w.abs().max(1.0);
        assert!((g - w).abs() <= tol, "{what}[{i}]: {g} vs {w}");
    }
}

fn check_metrics(s_id: &[f64], s_ood: &[f64], e: &Value, what: &str, own_threshold: bool) {
    // Our scores differ from numpy's in the last bits (summation order), so
    // a sample sitting exactly on numpy's threshold may fall 1 ulp above it:
    // with our own scores, use the threshold calibrated on them.
    let t = if own_threshold {
        threshold_at_tpr(s_id, 0.95).unwrap()
    } else {
        e["threshold"].as_f64().unwrap()
    };
    let m = metrics::evaluate(s_id, s_ood, t).unwrap();
    let em = &e["metrics"];
    for (name, got) in [
        ("auroc", m.auroc),
        ("aupr_in", m.aupr_in),
        ("aupr_out", m.aupr_out),
        ("fpr_at_95_tpr", m.fpr_at_95_tpr),
        ("id_pass_rate", m.id_pass_rate),
        ("ood_pass_rate", m.ood_pass_rate),
    ] {
        let want = em[name].as_f64().unwrap();
        assert!(
            (got - want).abs() <= 1e-12,
            "{what} {name}: {got} vs {want}"
        );
    }
}

/// Scores match, the threshold recomputed from our scores matches, and metrics
/// computed on the *reference* scores match exactly.
fn check_entry(s_id: &[f64], s_ood: &[f64], e: &Value, rel: f64, what: &str) {
    assert_close(s_id, &vec(&e["id"]), rel, &format!("{what} id"));
    assert_close(s_ood, &vec(&e["ood"]), rel, &format!("{what} ood"));
    let t = threshold_at_tpr(&vec(&e["calibration"]), 0.95).unwrap();
    assert_eq!(t, e["threshold"].as_f64().unwrap(), "{what} threshold");
    check_metrics(&vec(&e["id"]), &vec(&e["ood"]), e, what, false);
    // And on our own scores, which agree to `rel`: metrics equal unless a
    // near-tie flips, which the fixtures avoid.
    check_metrics(s_id, s_ood, e, &format!("{what} (own scores)"), true);
}

type LogitScore = fn(ndarray::ArrayView2<'_, f32>) -> Vec<f64>;

#[test]
fn logit_scores_match_scipy_and_sklearn() {
    let e = expected();
    let (id, ood) = (load("logits_id.npy"), load("logits_ood.npy"));
    let cases: [(&str, LogitScore); 4] = [
        ("energy_t1", |z| scores::energy(z, 1.0).unwrap()),
        ("energy_t2_5", |z| scores::energy(z, 2.5).unwrap()),
        ("msp", |z| scores::msp(z).unwrap()),
        ("maxlogit", |z| scores::max_logit(z).unwrap()),
    ];
    for (name, f) in cases {
        check_entry(&f(id.view()), &f(ood.view()), &e[name], 1e-9, name);
    }
}

#[test]
fn tie_heavy_metrics_match_sklearn() {
    let e = expected();
    let t = &e["ties"];
    check_entry(&vec(&t["id"]), &vec(&t["ood"]), t, 0.0, "ties");
    // Ours is the correctly rounded U / (n_id * n_ood); sklearn integrates
    // trapezoids and may be 1 ulp away.
    let auroc = metrics::auroc(&vec(&t["id"]), &vec(&t["ood"])).unwrap();
    assert!((auroc - t["metrics"]["auroc"].as_f64().unwrap()).abs() < 1e-15);
}

#[test]
fn mahalanobis_matches_ledoit_wolf_reference() {
    let e = expected();
    let stats = bridgeml_guard::mahalanobis::fit(
        load("features_ref.npy").view(),
        &labels("labels_ref.npy"),
        Shrinkage::LedoitWolf,
    )
    .unwrap();
    let want = e["mahalanobis_shrinkage"].as_f64().unwrap();
    assert!(
        (stats.shrinkage - want).abs() < 1e-10,
        "{} vs {want}",
        stats.shrinkage
    );
    let sc = MahalanobisScorer::new(&stats).unwrap();
    let s_id = sc.score(load("features_id.npy").view()).unwrap();
    let s_ood = sc.score(load("features_ood.npy").view()).unwrap();
    check_entry(&s_id, &s_ood, &e["mahalanobis"], 1e-7, "mahalanobis");
}

#[test]
fn knn_matches_numpy_reference() {
    let e = expected();
    let k = e["knn_k"].as_u64().unwrap() as usize;
    let index = KnnIndex::new(load("features_ref.npy").view(), k).unwrap();
    let s_id = index.score(load("features_id.npy").view()).unwrap();
    let s_ood = index.score(load("features_ood.npy").view()).unwrap();
    check_entry(&s_id, &s_ood, &e["knn"], 1e-5, "knn");
    let loo = KnnIndex::new(load("features_id.npy").view(), k)
        .unwrap()
        .score_bank_leave_one_out()
        .unwrap();
    assert_close(&loo, &vec(&e["knn_loo_calibration"]), 1e-5, "knn loo");
}

fn cfg(method: Method) -> CalibrateConfig {
    CalibrateConfig {
        method,
        k: 5,
        bootstrap: CalibrationOptions {
            n_bootstrap: 200,
            ci_level: 0.95,
            seed: 7,
        },
        ..Default::default()
    }
}

#[test]
fn guard_file_round_trip_for_every_method() {
    let e = expected();
    let tmp = tempfile::tempdir().unwrap();
    let (lid, lood) = (load("logits_id.npy"), load("logits_ood.npy"));
    let (fref, fid, food) = (
        load("features_ref.npy"),
        load("features_id.npy"),
        load("features_ood.npy"),
    );
    let yref = labels("labels_ref.npy");
    for (method, key) in [
        (Method::Energy, "energy_t1"),
        (Method::Msp, "msp"),
        (Method::Maxlogit, "maxlogit"),
        (Method::Mahalanobis, "mahalanobis"),
        (Method::Knn, "knn"),
    ] {
        let data = if method.uses_features() {
            CalibrationData {
                inputs: Inputs {
                    logits: None,
                    features: Some(fid.view()),
                },
                reference_features: Some(fref.view()),
                reference_labels: Some(&yref),
                ..Default::default()
            }
        } else {
            CalibrationData {
                inputs: Inputs {
                    logits: Some(lid.view()),
                    features: None,
                },
                ..Default::default()
            }
        };
        let mut c = calibrate_guard(&cfg(method), data).unwrap();
        let want_t = e[key]["threshold"].as_f64().unwrap();
        let tol = if method == Method::Knn { 1e-5 } else { 1e-7 };
        assert!((c.file.threshold - want_t).abs() <= tol * want_t.abs().max(1.0));
        assert!(c.file.threshold_ci.low <= c.file.threshold);
        assert!(c.file.threshold <= c.file.threshold_ci.high);
        let path = tmp.path().join(format!("{method}.json"));
        c.file
            .save(&path, c.bank.as_ref().map(|b| b.view()))
            .unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        let v: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["threshold"].as_f64(), Some(c.file.threshold));
        let g = Guard::load(&path, Expected::default()).unwrap();
        assert_eq!(g.file, c.file);
        let (id_in, ood_in) = if method.uses_features() {
            (
                Inputs {
                    logits: None,
                    features: Some(fid.view()),
                },
                Inputs {
                    logits: None,
                    features: Some(food.view()),
                },
            )
        } else {
            (
                Inputs {
                    logits: Some(lid.view()),
                    features: None,
                },
                Inputs {
                    logits: Some(lood.view()),
                    features: None,
                },
            )
        };
        let m = g.evaluate(id_in, ood_in).unwrap();
        let em = &e[key]["metrics"];
        assert!((m.auroc - em["auroc"].as_f64().unwrap()).abs() < 1e-12);
        assert!((m.fpr_at_95_tpr - em["fpr_at_95_tpr"].as_f64().unwrap()).abs() < 1e-12);
        let verdicts = g.verdicts(ood_in).unwrap();
        assert_eq!(
            verdicts.len(),
            ood_in.features.map_or(lood.nrows(), |f| f.nrows())
        );
        for v in &verdicts {
            assert_eq!(v.is_ood, v.score > c.file.threshold);
            assert_eq!(v.reliable, !v.is_ood);
        }
    }
}

#[test]
fn knn_leave_one_out_calibration_matches_reference() {
    let e = expected();
    let fid = load("features_id.npy");
    let c = calibrate_guard(
        &cfg(Method::Knn),
        CalibrationData {
            inputs: Inputs {
                logits: None,
                features: Some(fid.view()),
            },
            ..Default::default()
        },
    )
    .unwrap();
    let want = e["knn_loo_threshold"].as_f64().unwrap();
    assert!((c.file.threshold - want).abs() < 1e-5);
}

#[test]
fn fingerprints_and_tampered_bank_are_checked() {
    let tmp = tempfile::tempdir().unwrap();
    let lid = load("logits_id.npy");
    let mut config = cfg(Method::Energy);
    config.model_sha256 = Some("sha256:aaaa".into());
    config.spec_fingerprint = Some("sha256:bbbb".into());
    let mut c = calibrate_guard(
        &config,
        CalibrationData {
            inputs: Inputs {
                logits: Some(lid.view()),
                features: None,
            },
            ..Default::default()
        },
    )
    .unwrap();
    let path = tmp.path().join("g.json");
    c.file.save(&path, None).unwrap();
    assert!(Guard::load(
        &path,
        Expected {
            model_sha256: Some("sha256:aaaa"),
            spec_fingerprint: Some("sha256:bbbb"),
        }
    )
    .is_ok());
    let err = Guard::load(
        &path,
        Expected {
            model_sha256: Some("sha256:cccc"),
            spec_fingerprint: None,
        },
    )
    .unwrap_err();
    assert!(err.to_string().contains("model"), "{err}");
    assert!(Guard::load(
        &path,
        Expected {
            model_sha256: None,
            spec_fingerprint: Some("sha256:dddd"),
        }
    )
    .is_err());

    // kNN: changing the bank file after calibration is detected.
    let fid = load("features_id.npy");
    let mut c = calibrate_guard(
        &cfg(Method::Knn),
        CalibrationData {
            inputs: Inputs {
                logits: None,
                features: Some(fid.view()),
            },
            ..Default::default()
        },
    )
    .unwrap();
    let path = tmp.path().join("k.json");
    c.file
        .save(&path, c.bank.as_ref().map(|b| b.view()))
        .unwrap();
    let bank = tmp.path().join("k.knn-bank.npy");
    assert!(bank.exists());
    Tensor::F32(load("features_ood.npy").into_dyn())
        .write_npy(&bank)
        .unwrap();
    assert!(Guard::load(&path, Expected::default()).is_err());
}

fn logits_only(l: ndarray::ArrayView2<'_, f32>) -> CalibrationData<'_> {
    CalibrationData {
        inputs: Inputs {
            logits: Some(l),
            features: None,
        },
        ..Default::default()
    }
}

#[test]
fn bad_input_gives_errors_not_panics() {
    let lid = load("logits_id.npy");
    let mut bad = lid.clone();
    bad[[3, 4]] = f32::NAN;
    let err = calibrate_guard(&cfg(Method::Energy), logits_only(bad.view())).unwrap_err();
    assert!(err.to_string().contains("row 3, column 4"), "{err}");
    let one = lid.slice(ndarray::s![.., 0..1]).to_owned();
    assert!(calibrate_guard(&cfg(Method::Msp), logits_only(one.view())).is_err());
    let empty = Array2::<f32>::zeros((0, 10));
    assert!(calibrate_guard(&cfg(Method::Energy), logits_only(empty.view())).is_err());
    for tpr in [0.0, 1.0, 1.5, -0.1, f64::NAN] {
        let mut c = cfg(Method::Energy);
        c.tpr = tpr;
        let err = calibrate_guard(&c, logits_only(lid.view())).unwrap_err();
        assert!(err.to_string().contains("TPR"), "{err}");
    }
    // Mahalanobis with neither labels nor logits.
    let fid = load("features_id.npy");
    let err = calibrate_guard(
        &cfg(Method::Mahalanobis),
        CalibrationData {
            inputs: Inputs {
                logits: None,
                features: Some(fid.view()),
            },
            ..Default::default()
        },
    )
    .unwrap_err();
    assert!(err.to_string().contains("labels"), "{err}");
    // Feature method with only logits.
    assert!(calibrate_guard(&cfg(Method::Knn), logits_only(lid.view())).is_err());
}
