//! `shadow_report` on a real SQLite log written through `LogWriter`: the
//! verdict rule (coverage, high-value segment disagreement) and the
//! per-segment numbers.

use std::collections::BTreeMap;

use bridgeml_serve::log::{LogWriter, PredictionRow, ShadowRow};
use bridgeml_serve::report::{shadow_report, ReportRule};

const HOUR_MS: i64 = 3_600_000;

/// 100 "premium" and 100 "free" instances over 80 hours; the candidate
/// disagrees on `premium_disagree` premium and 2 free instances.
fn write_log(path: &std::path::Path, premium_disagree: usize) {
    let log = LogWriter::start(path).unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let t0 = 1_800_000_000_000i64;
    for i in 0..200usize {
        let (seg, k) = if i < 100 {
            ("premium", i)
        } else {
            ("free", i - 100)
        };
        let id = format!("r{i}");
        rt.block_on(log.log_predictions(vec![PredictionRow {
            ts_ms: t0 + (i as i64) * 80 * HOUR_MS / 199,
            request_id: id.clone(),
            instance: 0,
            segment: seg.into(),
            input_hash: format!("sha256:{i:064x}"),
            spec_fingerprint: "sha256:spec".into(),
            model_sha256: "sha256:live".into(),
            class: 1,
            label_name: None,
            confidence: 0.9,
            ood_score: None,
            is_ood: None,
            latency_ms: 1.0,
        }]))
        .unwrap();
        let disagree = if seg == "premium" {
            k < premium_disagree
        } else {
            k < 2
        };
        log.log_shadow(vec![ShadowRow {
            request_id: id,
            instance: 0,
            model_sha256: "sha256:cand".into(),
            class: Some(if disagree { 2 } else { 1 }),
            confidence: Some(0.8),
            ood_score: None,
            latency_ms: 2.0,
            error: None,
        }]);
    }
    log.shutdown();
}

fn rule() -> ReportRule {
    ReportRule {
        weights: BTreeMap::from([("premium".to_string(), 3.0)]),
        ..ReportRule::default()
    }
}

#[test]
fn high_value_segment_disagreement_rejects() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("log.db");
    write_log(&p, 15);
    let r = shadow_report(&p, None, None, rule()).unwrap();
    assert_eq!(r.rows, 200);
    assert_eq!(r.compared, 200);
    assert!(r.hours_covered > 79.9 && r.hours_covered < 80.1, "{r:?}");
    assert_eq!(r.verdict, "reject", "{r:?}");
    assert!(r.reasons.iter().any(|x| x.contains("premium")), "{r:?}");
    // Most divergent segment first, with its Wilson interval around 15%.
    let s = &r.segments[0];
    assert_eq!(s.segment, "premium");
    assert_eq!(s.disagreements, 15);
    assert!((s.disagreement_rate - 0.15).abs() < 1e-12);
    assert!(s.ci95_low < 0.15 && s.ci95_high > 0.15);
    assert!((r.overall.disagreement_rate - 17.0 / 200.0).abs() < 1e-12);

    // The same disagreement in a low-value segment only would be accepted.
    let r = shadow_report(&p, None, None, ReportRule::default()).unwrap();
    assert_eq!(r.verdict, "accept", "{r:?}");

    // A window of the last 10 hours is short of the 72-hour minimum.
    let since = 1_800_000_000_000i64 + 70 * HOUR_MS;
    let r = shadow_report(&p, Some(since), None, ReportRule::default()).unwrap();
    assert_eq!(r.verdict, "reject");
    assert!(r.reasons[0].contains("coverage"), "{r:?}");
}

#[test]
fn agreeing_candidate_with_full_coverage_is_accepted() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("log.db");
    write_log(&p, 1);
    let r = shadow_report(&p, None, None, rule()).unwrap();
    assert_eq!(r.verdict, "accept", "{r:?}");
}
