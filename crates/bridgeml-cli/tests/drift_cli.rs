//! `bridgeml drift` and `bridgeml policy check` run as a user would, on the
//! fixtures in tests/fixtures/monitor (see scripts/fixtures/make_monitor_fixtures.py).

use std::path::PathBuf;
use std::process::Command;

use serde_json::Value;

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures/monitor")
        .join(name)
}

fn bridgeml(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_bridgeml"))
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().unwrap(),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

fn drift_json(args: &[&str]) -> (i32, Value) {
    let mut a = vec!["drift", "--format", "json"];
    a.extend_from_slice(args);
    let (code, out, err) = bridgeml(&a);
    assert!(code == 0 || code == 1, "{err}");
    (code, serde_json::from_str(&out).unwrap())
}

fn path(p: &std::path::Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn csv_drift_reports_every_column_with_the_contract_keys() {
    let (r, c) = (fixture("reference.csv"), fixture("current_drift.csv"));
    let (code, v) = drift_json(&["--reference", path(&r), "--current", path(&c)]);
    assert_eq!(
        code, 0,
        "alerts do not change the exit code without --fail-on-alert"
    );
    let results = v["results"].as_array().unwrap();
    for row in results {
        for key in [
            "column",
            "chunk",
            "method",
            "statistic",
            "p_value",
            "threshold",
            "alert",
        ] {
            assert!(row.get(key).is_some(), "missing {key} in {row}");
        }
        assert!(row["chunk"].is_null());
    }
    let find = |col: &str, m: &str| {
        results
            .iter()
            .find(|r| r["column"] == col && r["method"] == m)
            .unwrap_or_else(|| panic!("no {m} for {col}"))
    };
    assert_eq!(find("age", "psi")["alert"], true);
    assert_eq!(find("age", "ks")["alert"], true);
    assert_eq!(
        find("city", "chi2")["alert"],
        true,
        "the unseen category 'Brest' counts"
    );
    assert_eq!(find("income", "ks")["alert"], false);
    assert!(find("age", "psi")["p_value"].is_null());
    let (code, _, _) = bridgeml(&[
        "drift",
        "--reference",
        path(&r),
        "--current",
        path(&c),
        "--fail-on-alert",
    ]);
    assert_eq!(code, 1);
}

#[test]
fn undrifted_csv_is_quiet_and_chunks_are_numbered() {
    let (r, c) = (fixture("reference.csv"), fixture("current_same.csv"));
    let (code, v) = drift_json(&[
        "--reference",
        path(&r),
        "--current",
        path(&c),
        "--chunk",
        "200",
        "--fail-on-alert",
    ]);
    assert_eq!(code, 0);
    assert_eq!(v["any_alert"], false);
    let chunks: Vec<u64> = v["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["chunk"].as_u64().unwrap())
        .collect();
    assert!(chunks.contains(&0) && chunks.contains(&1) && !chunks.contains(&2));
}

#[test]
fn embeddings_use_mmd_with_a_null_column() {
    let (r, c) = (fixture("emb_reference.npy"), fixture("emb_current.npy"));
    let (_, v) = drift_json(&[
        "--reference",
        path(&r),
        "--current",
        path(&c),
        "--permutations",
        "50",
    ]);
    let res = v["results"].as_array().unwrap();
    assert_eq!(res.len(), 1);
    assert!(res[0]["column"].is_null());
    assert_eq!(res[0]["method"], "mmd");
    assert_eq!(res[0]["alert"], true);
    assert!((res[0]["p_value"].as_f64().unwrap() - 1.0 / 51.0).abs() < 1e-12);
    // 1-D scores: auto = PSI + KS.
    let (r, c) = (
        fixture("scores_reference.npy"),
        fixture("scores_current.npy"),
    );
    let (_, v) = drift_json(&["--reference", path(&r), "--current", path(&c)]);
    let methods: Vec<&str> = v["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["method"].as_str().unwrap())
        .collect();
    assert_eq!(methods, vec!["psi", "ks"]);
}

#[test]
fn calibrate_then_drift_with_baseline() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("baseline.json");
    let r = fixture("emb_reference.npy");
    let (code, _, err) = bridgeml(&[
        "drift",
        "calibrate",
        "--reference",
        path(&r),
        "--window",
        "100",
        "--output",
        path(&out),
    ]);
    assert_eq!(code, 0, "{err}");
    let b: Value = serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
    let col = &b["columns"][0];
    assert_eq!(col["method"], "mmd");
    let nulls: Vec<f64> = col["calibration"]["null_statistics"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect();
    assert_eq!(nulls.len(), 50);
    let mean = nulls.iter().sum::<f64>() / 50.0;
    let std = (nulls.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / 50.0).sqrt();
    let th = col["calibration"]["threshold"].as_f64().unwrap();
    assert!((th - (mean + 2.0 * std)).abs() < 1e-12);
    let c = fixture("emb_current.npy");
    let (_, v) = drift_json(&[
        "--reference",
        path(&r),
        "--current",
        path(&c),
        "--baseline",
        path(&out),
    ]);
    let row = &v["results"][0];
    assert_eq!(row["threshold"].as_f64().unwrap(), th);
    assert!(row["p_value"].is_null());
    assert_eq!(row["alert"], true);
}

#[test]
fn bad_input_is_a_clear_error_with_exit_2() {
    let r = fixture("reference.csv");
    let (code, _, err) = bridgeml(&[
        "drift",
        "--reference",
        path(&r),
        "--current",
        path(&r),
        "--columns",
        "age,nope",
    ]);
    assert_eq!(code, 2);
    assert!(err.contains("nope"), "{err}");
    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("empty.csv");
    std::fs::write(&empty, "age,income,city,score\n").unwrap();
    let (code, _, err) = bridgeml(&["drift", "--reference", path(&r), "--current", path(&empty)]);
    assert_eq!(code, 2);
    assert!(err.contains("no rows"), "{err}");
    // A single-row current embedding: MMD^2_u needs two rows.
    let e = fixture("emb_reference.npy");
    let one = dir.path().join("one.npy");
    let t = bridgeml_core::Tensor::read_npy(&e).unwrap();
    bridgeml_core::Tensor::stack(&[t.unstack()[0].clone()])
        .unwrap()
        .write_npy(&one)
        .unwrap();
    let (code, _, err) = bridgeml(&["drift", "--reference", path(&e), "--current", path(&one)]);
    assert_eq!(code, 2);
    assert!(err.contains("at least 2 rows"), "{err}");
    // 2-D reference against 1-D current.
    let (code, _, err) = bridgeml(&[
        "drift",
        "--reference",
        path(&e),
        "--current",
        path(&fixture("scores_current.npy")),
    ]);
    assert_eq!(code, 2, "{err}");
}

#[test]
fn real_drift_brent_crisis_is_found_and_calm_years_are_quiet() {
    // Daily Brent log returns (river/TCPD, see tests/fixtures/monitor/README.md):
    // reference 2002-2005; current 2006-01 .. 2009-06 in windows of 125 trading
    // days. The 2008 crisis volatility break starts in window 5 (from 2008-06-24).
    let (r, c) = (fixture("brent_reference.csv"), fixture("brent_current.csv"));
    let (_, v) = drift_json(&[
        "--reference",
        path(&r),
        "--current",
        path(&c),
        "--columns",
        "log_return",
        "--chunk",
        "125",
    ]);
    let res = v["results"].as_array().unwrap();
    let alert = |chunk: u64, m: &str| {
        res.iter()
            .find(|x| x["chunk"] == chunk && x["method"] == m)
            .unwrap()["alert"]
            .as_bool()
            .unwrap()
    };
    for chunk in 0..5 {
        assert!(
            !alert(chunk, "ks") && !alert(chunk, "psi"),
            "false alarm in calm window {chunk}"
        );
    }
    assert!(
        alert(5, "ks") && alert(5, "psi"),
        "the 2008 break is missed"
    );
    assert!(alert(6, "ks"));
}

#[test]
fn label_shift_estimates_the_moved_priors() {
    let (code, out, err) = bridgeml(&[
        "drift",
        "label-shift",
        "--validation-predictions",
        path(&fixture("validation_predictions.csv")),
        "--current-predictions",
        path(&fixture("current_predictions.csv")),
        "--format",
        "json",
    ]);
    assert_eq!(code, 0, "{err}");
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["classes"], serde_json::json!(["cat", "dog", "fox"]));
    for (j, t) in [0.2, 0.3, 0.5].iter().enumerate() {
        let lo = v["priors_lower"][j].as_f64().unwrap();
        let hi = v["priors_upper"][j].as_f64().unwrap();
        assert!(
            lo - 0.03 <= *t && *t <= hi + 0.03,
            "class {j}: [{lo}, {hi}] vs {t}"
        );
    }
    assert_eq!(v["alert"], true);
}

#[test]
fn policy_check_prints_actions_and_rejects_bad_lines() {
    let dir = tempfile::tempdir().unwrap();
    let obs = dir.path().join("obs.json");
    std::fs::write(
        &obs,
        r#"{"metrics": {"psi.confidence": 0.31, "mmd.embedding": {"value": 0.004, "threshold": 0.006},
            "per_class_accuracy_drop.fraud": 6.5, "ood_rate": 0.02, "latency_ratio": 1.2}}"#,
    )
    .unwrap();
    let policy = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../examples/policy.toml");
    let args = [
        "policy",
        "check",
        "--policy",
        path(&policy),
        "--observations",
        path(&obs),
    ];
    let mut json_args = args.to_vec();
    json_args.extend(["--format", "json"]);
    let (code, out, err) = bridgeml(&json_args);
    assert_eq!(code, 0, "{err}");
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        v["actions"],
        serde_json::json!(["shadow_eval", "urgent_review"])
    );
    let targets = v["targets"].as_array().unwrap();
    assert_eq!(targets[0]["status"], "met");
    assert_eq!(targets[1]["status"], "missed");
    let mut fail_args = args.to_vec();
    fail_args.push("--fail-on-action");
    assert_eq!(bridgeml(&fail_args).0, 1);
    let bad = dir.path().join("bad.toml");
    std::fs::write(
        &bad,
        "[[rules]]\nname = \"x\"\nwhen = \"psi.confidence >> 0.2\"\naction = \"shadow_eval\"\n",
    )
    .unwrap();
    let (code, _, err) = bridgeml(&[
        "policy",
        "check",
        "--policy",
        path(&bad),
        "--observations",
        path(&obs),
    ]);
    assert_eq!(code, 2);
    assert!(err.contains("line 3"), "{err}");
}
