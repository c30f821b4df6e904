//! The verdict rule and the status of a gate from its checks.

mod common;

use bridgeml_gate::{Check, Comparison, GateName, GateReport, GateResult, Status, Verdict};

fn gate(status: Status) -> GateResult {
    GateResult::new(GateName::Parity, "").with_status(status)
}

#[test]
fn verdict_fail_beats_warn_beats_pass() {
    use Status::*;
    let cases: &[(&[Status], Verdict, i32)] = &[
        (&[], Verdict::Pass, 0),
        (&[Pass, Pass], Verdict::Pass, 0),
        (&[Pass, Skip], Verdict::Pass, 0),
        (&[Skip], Verdict::Pass, 0),
        (&[Pass, Warn, Skip], Verdict::Warn, 0),
        (&[Warn, Fail, Pass], Verdict::Fail, 1),
        (&[Fail], Verdict::Fail, 1),
    ];
    for (statuses, verdict, code) in cases {
        let r = GateReport::new("t", "m", statuses.iter().map(|s| gate(*s)).collect());
        assert_eq!(r.verdict, *verdict, "{statuses:?}");
        assert_eq!(r.exit_code, *code, "{statuses:?}");
        assert_eq!(Verdict::from_statuses(statuses.iter().copied()), *verdict);
    }
}

#[test]
fn push_gate_updates_the_verdict() {
    let mut r = GateReport::new("t", "m", vec![gate(Status::Pass)]);
    assert_eq!(r.verdict, Verdict::Pass);
    r.push_gate(gate(Status::Warn));
    assert_eq!((r.verdict, r.exit_code), (Verdict::Warn, 0));
    r.push_gate(gate(Status::Fail));
    assert_eq!((r.verdict, r.exit_code), (Verdict::Fail, 1));
    r.gates.truncate(1);
    r.refresh_verdict();
    assert_eq!(r.verdict, Verdict::Pass);
}

#[test]
fn gate_status_follows_its_checks() {
    let g = GateResult::new(GateName::Latency, "");
    assert_eq!(g.status, Status::Skip);
    let g = g.with_check(Check::compare("p95_ms", 8.0, Comparison::Le, 10.0));
    assert_eq!(g.status, Status::Pass);
    let g = g.with_check(Check::compare_warn("p99_ms", 16.0, Comparison::Le, 15.0));
    assert_eq!(g.status, Status::Warn);
    let g = g.with_check(Check::compare("budget", 3.0, Comparison::Ge, 4.0));
    assert_eq!(g.status, Status::Fail);
    assert_eq!(
        GateResult::skipped(GateName::Shadow, "no log").status,
        Status::Skip
    );
}

#[test]
fn comparisons() {
    assert_eq!(
        Check::compare("a", 10.0, Comparison::Le, 10.0).status,
        Status::Pass
    );
    assert_eq!(
        Check::compare("a", 10.0, Comparison::Lt, 10.0).status,
        Status::Fail
    );
    assert_eq!(
        Check::compare("a", 0.95, Comparison::Ge, 0.95).status,
        Status::Pass
    );
    assert_eq!(
        Check::compare("a", 0.95, Comparison::Gt, 0.95).status,
        Status::Fail
    );
    assert_eq!(
        Check::compare("a", 0.0, Comparison::Eq, 0.0).status,
        Status::Pass
    );
    assert_eq!(
        Check::compare_warn("a", 2.0, Comparison::Eq, 0.0).status,
        Status::Warn
    );
}

#[test]
fn sample_report_fails_on_quantization() {
    let r = common::sample_report();
    assert_eq!(r.verdict, Verdict::Fail);
    assert_eq!(r.exit_code, 1);
    let failed: Vec<&str> = r
        .gates
        .iter()
        .filter(|g| g.status == Status::Fail)
        .map(|g| g.name.as_str())
        .collect();
    assert_eq!(failed, ["quantization"]);
}
