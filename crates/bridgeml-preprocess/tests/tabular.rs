//! Tabular fit and transform against the numpy reference written by
//! scripts/fixtures/make_pipeline_fixtures.py (tests/fixtures/tabular/).
//!
//! Fitted statistics equal numpy's `np.mean`/`np.std`/`np.median`/`np.min`/
//! `np.max`/`np.unique` bit for bit; transformed matrices equal numpy's
//! float64 arithmetic cast to float32, bit for bit.

use std::path::{Path, PathBuf};

use bridgeml_core::{Table, Tensor};
use bridgeml_preprocess::spec::{ImputeStrategy, Step, UnknownCategory};
use bridgeml_preprocess::{tabular, Pipeline, PreprocessError, Spec};
use serde_json::Value;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn fixture(name: &str) -> PathBuf {
    root().join("tests/fixtures/tabular").join(name)
}

fn expected() -> Value {
    serde_json::from_str(&std::fs::read_to_string(fixture("expected.json")).unwrap()).unwrap()
}

fn spec() -> Spec {
    Spec::from_path(&root().join("examples/specs/tabular.toml")).unwrap()
}

fn floats(v: &Value) -> Vec<f64> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect()
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_str().unwrap().to_string())
        .collect()
}

fn fitted(data: &str) -> Spec {
    let table = Table::read(&fixture(data)).unwrap();
    tabular::fit(&spec(), &table, data).unwrap()
}

fn check_fitted(f: &Spec) {
    let e = &expected()["fitted"];
    assert!(f.is_fitted());
    let s = &f.steps;
    match (&s[0], &s[1], &s[2]) {
        (
            Step::Impute {
                strategy: ImputeStrategy::Mean,
                values: Some(a),
                ..
            },
            Step::Impute {
                strategy: ImputeStrategy::Median,
                values: Some(b),
                ..
            },
            Step::Impute {
                strategy: ImputeStrategy::Constant,
                value: Some(c),
                ..
            },
        ) => {
            assert_eq!(a, &vec![e["age_mean_impute"].as_f64().unwrap()]);
            assert_eq!(b, &vec![e["income_median_impute"].as_f64().unwrap()]);
            assert_eq!(*c, 170.0);
        }
        other => panic!("{other:?}"),
    }
    match &s[4] {
        Step::Standardize {
            mean: Some(m),
            std: Some(sd),
            ..
        } => {
            assert_eq!(m, &floats(&e["standardize_mean"]));
            assert_eq!(sd, &floats(&e["standardize_std"]));
        }
        other => panic!("{other:?}"),
    }
    match &s[5] {
        Step::MinMax {
            min: Some(lo),
            max: Some(hi),
            ..
        } => {
            assert_eq!(lo, &floats(&e["min_max_min"]));
            assert_eq!(hi, &floats(&e["min_max_max"]));
        }
        other => panic!("{other:?}"),
    }
    for (i, col, policy) in [
        (6, "city", UnknownCategory::Error),
        (7, "plan", UnknownCategory::AllZeros),
        (8, "tier", UnknownCategory::UnknownBucket),
    ] {
        match &s[i] {
            Step::OneHot {
                categories: Some(c),
                unknown,
                ..
            } => {
                assert_eq!(c, &strings(&e[format!("{col}_categories")]));
                assert_eq!(*unknown, policy);
            }
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(
        tabular::feature_names(f),
        strings(&expected()["feature_names"])
    );
}

#[test]
fn fit_on_csv_equals_numpy() {
    check_fitted(&fitted("train.csv"));
}

#[test]
fn fit_on_parquet_equals_numpy_and_csv() {
    let p = fitted("train.parquet");
    check_fitted(&p);
    assert_eq!(p.fingerprint(), fitted("train.csv").fingerprint());
}

fn transform(spec: &Spec, data: &str) -> Tensor {
    Pipeline::new(spec.clone())
        .unwrap()
        .run_path(&fixture(data))
        .unwrap()
}

#[test]
fn transform_equals_numpy_after_float32_cast() {
    let f = fitted("train.csv");
    for (data, reference) in [
        ("train.csv", "expected_train.npy"),
        ("train.parquet", "expected_train.npy"),
        ("test.csv", "expected_test.npy"),
    ] {
        let ours = transform(&f, data);
        let theirs = Tensor::read_npy(&fixture(reference)).unwrap();
        assert_eq!(ours.shape(), theirs.shape(), "{data}");
        assert_eq!(ours.to_le_bytes(), theirs.to_le_bytes(), "{data}");
    }
}

/// The fitted spec survives a TOML round trip (what `spec fit` writes) unchanged.
#[test]
fn fitted_spec_round_trips_through_toml() {
    let f = fitted("train.csv");
    let back = Spec::from_toml_str(&f.to_toml_string()).unwrap();
    assert_eq!(back, f);
    assert_eq!(back.fingerprint(), f.fingerprint());
}

#[test]
fn unknown_policies_behave_as_documented() {
    let f = fitted("train.csv");
    let out = transform(&f, "test.csv");
    let names = tabular::feature_names(&f);
    let col = |n: &str| names.iter().position(|x| x == n).unwrap();
    let a = match &out {
        Tensor::F32(a) => a.clone(),
        Tensor::U8(_) => unreachable!(),
    };
    // row 0 has plan "enterprise": all plan features zero
    for n in ["plan=basic", "plan=pro", "plan=team"] {
        assert_eq!(a[[0, col(n)]], 0.0, "{n}");
    }
    // row 1 has tier "platinum": the __unknown__ bucket is set, the others not
    assert_eq!(a[[1, col("tier=__unknown__")]], 1.0);
    for n in ["tier=bronze", "tier=gold", "tier=silver"] {
        assert_eq!(a[[1, col(n)]], 0.0, "{n}");
    }
    // unseen city with unknown = "error": the file, row, column and category are named
    let e = Pipeline::new(f)
        .unwrap()
        .run_path(&fixture("test_unseen_city.csv"))
        .unwrap_err();
    assert!(matches!(e, PreprocessError::Step { .. }), "{e:?}");
    let msg = e.to_string();
    for needle in [
        "test_unseen_city.csv",
        "one_hot",
        "row 3",
        "\"Marseille\"",
        "city",
    ] {
        assert!(msg.contains(needle), "{needle:?} not in {msg}");
    }
}

#[test]
fn missing_columns_and_unfitted_specs_are_errors() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("no_income.csv");
    let text = std::fs::read_to_string(fixture("train.csv")).unwrap();
    let dropped: String = text
        .lines()
        .map(|l| {
            let mut cells: Vec<&str> = l.split(',').collect();
            cells.remove(1);
            cells.join(",") + "\n"
        })
        .collect();
    std::fs::write(&p, dropped).unwrap();
    let e = tabular::fit(&spec(), &Table::read(&p).unwrap(), "no_income.csv")
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("no_income.csv") && e.contains("\"income\" is missing"),
        "{e}"
    );
    let e = Pipeline::new(fitted("train.csv"))
        .unwrap()
        .run_path(&p)
        .unwrap_err()
        .to_string();
    assert!(e.contains("no_income.csv") && e.contains("income"), "{e}");
    // an unfitted spec cannot transform
    let e = Pipeline::new(spec())
        .unwrap()
        .run_path(&fixture("test.csv"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("spec fit"), "{e}");
}

#[test]
fn invalid_tabular_specs_are_refused() {
    let base = std::fs::read_to_string(root().join("examples/specs/tabular.toml")).unwrap();
    for (text, needle) in [
        (
            base.replace("edges = [1.0, 2.0, 4.0]", "edges = [1.0, 4.0, 2.0]"),
            "strictly increasing",
        ),
        (
            base.replace("columns = [\"age\"]", "columns = [\"agee\"]"),
            "agee",
        ),
        (
            base.replace("unknown = \"error\"", "unknown = \"ignore\""),
            "ignore",
        ),
        (
            base.replace("value = 170.0\n", ""),
            "strategy \"constant\" needs a value",
        ),
        (
            base.replace("min = 0.0\nmax = 150000.0", "min = 5.0\nmax = 1.0"),
            "above max",
        ),
        (
            format!("{base}\n[[steps]]\nop = \"layout\"\norder = \"chw\"\n"),
            "is an image step but input.kind is \"tabular\"",
        ),
    ] {
        let e = Spec::from_toml_str(&text)
            .map(|_| ())
            .unwrap_err()
            .to_string();
        assert!(e.contains(needle), "{needle:?} not in {e}");
    }
}
