//! The report JSON: stable key names, round-trip, schema-version check.

mod common;

use bridgeml_gate::{
    render_json, write_reports, Check, GateError, GateName, GateReport, GateResult, Plot, Status,
    SCHEMA_VERSION,
};
use serde_json::Value;

fn keys(v: &Value) -> Vec<String> {
    let mut k: Vec<String> = v.as_object().expect("object").keys().cloned().collect();
    k.sort();
    k
}

#[test]
fn round_trip_is_lossless() {
    let report = common::sample_report();
    let json = render_json(&report);
    let back: GateReport = GateReport::from_json(&json, "report.json".as_ref()).unwrap();
    assert_eq!(back, report);
    assert_eq!(render_json(&back), json);
}

#[test]
fn key_names_are_stable() {
    let v: Value = serde_json::from_str(&render_json(&common::sample_report())).unwrap();
    assert_eq!(
        keys(&v),
        [
            "bridgeml_version",
            "created",
            "exit_code",
            "gates",
            "hardware",
            "manifest",
            "model",
            "schema_version",
            "spec",
            "title",
            "verdict"
        ]
    );
    assert_eq!(v["schema_version"], SCHEMA_VERSION);
    assert_eq!(v["verdict"], "fail");
    assert_eq!(v["exit_code"], 1);
    assert_eq!(keys(&v["model"]), ["fingerprint", "path"]);

    let gates = v["gates"].as_array().unwrap();
    let names: Vec<&str> = gates.iter().map(|g| g["name"].as_str().unwrap()).collect();
    assert_eq!(
        names,
        [
            "parity",
            "quantization",
            "guard",
            "drift",
            "latency",
            "budget",
            "shadow",
            "policy"
        ]
    );
    for g in gates {
        assert_eq!(
            keys(g),
            [
                "checks",
                "evidence",
                "name",
                "plots",
                "status",
                "summary",
                "thresholds"
            ]
        );
        for c in g["checks"].as_array().unwrap() {
            assert_eq!(
                keys(c),
                ["limit", "message", "name", "status", "unit", "value"]
            );
        }
    }
    let statuses: Vec<&str> = gates
        .iter()
        .map(|g| g["status"].as_str().unwrap())
        .collect();
    assert_eq!(
        statuses,
        ["pass", "fail", "pass", "warn", "pass", "skip", "pass", "pass"]
    );

    // A check with a limit; absent fields are null, never missing.
    let p95 = &gates[4]["checks"][0];
    assert_eq!(p95["name"], "p95_ms");
    assert_eq!(p95["limit"]["op"], "le");
    assert_eq!(p95["limit"]["value"], 10.0);
    assert_eq!(p95["unit"], "ms");
    let policy = &gates[7]["checks"][0];
    assert!(policy["limit"].is_null() && policy["unit"].is_null());

    // Plots carry their kind as a tag.
    let kinds: Vec<&str> = gates
        .iter()
        .flat_map(|g| g["plots"].as_array().unwrap())
        .map(|p| p["kind"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        [
            "grouped_bars",
            "histogram",
            "histogram",
            "line",
            "histogram",
            "grouped_bars"
        ]
    );
    let hist = &gates[4]["plots"][0];
    assert_eq!(
        keys(hist),
        ["bins", "kind", "series", "title", "vlines", "x_label", "y_label"]
    );
    assert_eq!(keys(&hist["series"][0]), ["counts", "name"]);
    assert_eq!(keys(&hist["vlines"][0]), ["label", "style", "x"]);
    assert_eq!(hist["vlines"][3]["style"], "limit");
    assert_eq!(hist["bins"].as_array().unwrap().len(), 51);
    let bars = &gates[1]["plots"][0];
    assert_eq!(
        keys(bars),
        ["categories", "hlines", "kind", "series", "title", "y_label"]
    );
    assert_eq!(keys(&bars["series"][0]), ["name", "values"]);
    let line = &gates[3]["plots"][1];
    assert_eq!(
        keys(line),
        ["hlines", "kind", "series", "title", "x_label", "x_labels", "y_label"]
    );
    assert!(line["series"][0]["values"][4].is_null());
}

#[test]
fn other_gate_names_round_trip() {
    let g = GateResult::new(GateName::Other("accuracy_gap".into()), "x")
        .with_check(Check::new("c", Status::Warn));
    let json = serde_json::to_string(&g).unwrap();
    assert!(json.contains(r#""name":"accuracy_gap""#), "{json}");
    let back: GateResult = serde_json::from_str(&json).unwrap();
    assert_eq!(back.name, GateName::Other("accuracy_gap".into()));
    assert_eq!(back.name.title(), "Accuracy gap");
    let known: GateName = serde_json::from_str(r#""latency""#).unwrap();
    assert_eq!(known, GateName::Latency);
}

#[test]
fn plot_deserializes_from_documented_json() {
    // The example from docs/REPORTS.md; optional keys may be omitted on input.
    let p: Plot = serde_json::from_str(
        r#"{"kind":"histogram","title":"Latency","x_label":"ms","bins":[0,1,2],
            "series":[{"name":"run","counts":[3,5]}],"vlines":[{"label":"SLA","x":1.5,"style":"limit"}]}"#,
    )
    .unwrap();
    match p {
        Plot::Histogram(h) => {
            assert_eq!(h.y_label, "count");
            assert_eq!(h.series[0].counts, [3.0, 5.0]);
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn other_schema_version_is_refused() {
    let mut v: Value = serde_json::from_str(&render_json(&common::sample_report())).unwrap();
    v["schema_version"] = 2.into();
    let err = GateReport::from_json(&v.to_string(), "old/report.json".as_ref()).unwrap_err();
    assert!(matches!(err, GateError::SchemaVersion { found: 2, .. }));
    assert!(err.to_string().contains("old/report.json"), "{err}");

    let err = GateReport::from_json("{\"verdict\": 3}", "x.json".as_ref()).unwrap_err();
    assert!(
        err.to_string()
            .starts_with("x.json: not a bridgeml gate report"),
        "{err}"
    );
}

#[test]
fn write_reports_writes_three_files_that_read_back() {
    let dir = tempfile::tempdir().unwrap();
    let report = common::sample_report();
    let files = write_reports(&report, &dir.path().join("nested/reports")).unwrap();
    assert!(files.json.ends_with("report.json"));
    assert!(files.markdown.is_file() && files.html.is_file());
    assert_eq!(GateReport::read(&files.json).unwrap(), report);

    let missing = GateReport::read(&dir.path().join("none.json")).unwrap_err();
    assert!(matches!(missing, GateError::Io { .. }));
}

#[test]
fn non_finite_values_become_null() {
    let c = Check::compare("x", f64::NAN, bridgeml_gate::Comparison::Le, 1.0);
    assert_eq!(c.status, Status::Fail);
    let v = serde_json::to_value(&c).unwrap();
    assert!(v["value"].is_null());
}
