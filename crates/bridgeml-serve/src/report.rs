//! `bridgeml shadow report`: coverage, per-segment disagreement between the
//! live model and the shadow candidate with Wilson intervals, accuracy of
//! both where labels exist, and a verdict with reasons.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Serialize;

use crate::log::{read_pairs, LoggedPair};
use crate::Result;

/// Wilson score interval of `k` successes in `n` trials at normal quantile `z`.
pub fn wilson(k: u64, n: u64, z: f64) -> (f64, f64) {
    if n == 0 {
        return (0.0, 1.0);
    }
    let (k, n) = (k as f64, n as f64);
    let p = k / n;
    let z2 = z * z;
    let denom = 1.0 + z2 / n;
    let centre = (p + z2 / (2.0 * n)) / denom;
    let half = z * ((p * (1.0 - p) / n + z2 / (4.0 * n * n)).sqrt()) / denom;
    ((centre - half).max(0.0), (centre + half).min(1.0))
}

/// The verdict rule.
#[derive(Debug, Clone, Serialize)]
pub struct ReportRule {
    /// Hours of traffic required (default 72).
    pub min_hours: f64,
    /// Largest acceptable per-segment disagreement rate (default 0.05).
    pub max_disagreement: f64,
    /// Segments whose value weight is at least this are "high value" (default 2.0).
    pub high_value_weight: f64,
    /// Value weight per segment (default 1.0).
    pub weights: BTreeMap<String, f64>,
    /// Fewest compared samples for a segment to count (default 30).
    pub min_samples: u64,
}

impl Default for ReportRule {
    fn default() -> Self {
        ReportRule {
            min_hours: 72.0,
            max_disagreement: 0.05,
            high_value_weight: 2.0,
            weights: BTreeMap::new(),
            min_samples: 30,
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct SegmentReport {
    pub segment: String,
    pub weight: f64,
    pub compared: u64,
    pub disagreements: u64,
    pub disagreement_rate: f64,
    pub ci95_low: f64,
    pub ci95_high: f64,
    pub labelled: u64,
    pub live_accuracy: Option<f64>,
    pub candidate_accuracy: Option<f64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ShadowReport {
    pub log: String,
    pub since_ms: Option<i64>,
    pub until_ms: Option<i64>,
    pub rows: u64,
    pub compared: u64,
    pub shadow_errors: u64,
    pub not_shadowed: u64,
    pub first_ms: Option<i64>,
    pub last_ms: Option<i64>,
    pub hours_covered: f64,
    pub min_hours: f64,
    pub overall: SegmentReport,
    /// Sorted by disagreement rate, highest first (the most divergent first).
    pub segments: Vec<SegmentReport>,
    pub verdict: String,
    pub reasons: Vec<String>,
    pub rule: ReportRule,
}

fn summarize(segment: &str, weight: f64, rows: &[&LoggedPair]) -> SegmentReport {
    let mut compared = 0;
    let mut dis = 0;
    let (mut lab, mut live_ok, mut cand_ok) = (0u64, 0u64, 0u64);
    for r in rows {
        if let Some(s) = r.shadow_class {
            compared += 1;
            if s != r.class {
                dis += 1;
            }
            if let Some(l) = r.label {
                lab += 1;
                live_ok += u64::from(l == r.class);
                cand_ok += u64::from(l == s);
            }
        }
    }
    let (lo, hi) = wilson(dis, compared, 1.96);
    SegmentReport {
        segment: segment.to_string(),
        weight,
        compared,
        disagreements: dis,
        disagreement_rate: if compared > 0 {
            dis as f64 / compared as f64
        } else {
            0.0
        },
        ci95_low: lo,
        ci95_high: hi,
        labelled: lab,
        live_accuracy: (lab > 0).then(|| live_ok as f64 / lab as f64),
        candidate_accuracy: (lab > 0).then(|| cand_ok as f64 / lab as f64),
    }
}

/// Builds the report from the log's rows in `[since, until)`.
pub fn shadow_report(
    log: &Path,
    since_ms: Option<i64>,
    until_ms: Option<i64>,
    rule: ReportRule,
) -> Result<ShadowReport> {
    let rows = read_pairs(log, since_ms, until_ms)?;
    let first = rows.iter().map(|r| r.ts_ms).min();
    let last = rows.iter().map(|r| r.ts_ms).max();
    let hours = match (first, last) {
        (Some(a), Some(b)) => (b - a) as f64 / 3_600_000.0,
        _ => 0.0,
    };
    let all: Vec<&LoggedPair> = rows.iter().collect();
    let overall = summarize("(all)", 1.0, &all);
    let mut by: BTreeMap<&str, Vec<&LoggedPair>> = BTreeMap::new();
    for r in &rows {
        by.entry(r.segment.as_str()).or_default().push(r);
    }
    let mut segments: Vec<SegmentReport> = by
        .iter()
        .map(|(s, v)| summarize(s, rule.weights.get(*s).copied().unwrap_or(1.0), v))
        .collect();
    segments.sort_by(|a, b| b.disagreement_rate.total_cmp(&a.disagreement_rate));
    let shadow_errors = rows.iter().filter(|r| r.shadow_error.is_some()).count() as u64;
    let not_shadowed = rows
        .iter()
        .filter(|r| r.shadow_class.is_none() && r.shadow_error.is_none())
        .count() as u64;
    let mut reasons = Vec::new();
    if hours < rule.min_hours {
        reasons.push(format!(
            "coverage {hours:.1} h is short of the required {} h",
            rule.min_hours
        ));
    }
    if overall.compared == 0 {
        reasons.push("no request was answered by both models".into());
    }
    for s in &segments {
        if s.weight >= rule.high_value_weight
            && s.compared >= rule.min_samples
            && s.disagreement_rate > rule.max_disagreement
        {
            reasons.push(format!(
                "segment {:?} (value weight {}) disagrees on {:.1}% of {} samples (95% CI {:.1}%..{:.1}%), above {:.1}%",
                s.segment,
                s.weight,
                100.0 * s.disagreement_rate,
                s.compared,
                100.0 * s.ci95_low,
                100.0 * s.ci95_high,
                100.0 * rule.max_disagreement
            ));
        }
        if let (Some(l), Some(c)) = (s.live_accuracy, s.candidate_accuracy) {
            if c < l && s.weight >= rule.high_value_weight {
                reasons.push(format!(
                    "segment {:?}: candidate accuracy {:.1}% below live {:.1}% on {} labelled samples",
                    s.segment,
                    100.0 * c,
                    100.0 * l,
                    s.labelled
                ));
            }
        }
    }
    let verdict = if reasons.is_empty() {
        reasons.push(format!(
            "{:.1} h covered; no high-value segment disagrees above {:.1}%",
            hours,
            100.0 * rule.max_disagreement
        ));
        "accept"
    } else {
        "reject"
    };
    Ok(ShadowReport {
        log: log.display().to_string(),
        since_ms,
        until_ms,
        rows: rows.len() as u64,
        compared: overall.compared,
        shadow_errors,
        not_shadowed,
        first_ms: first,
        last_ms: last,
        hours_covered: hours,
        min_hours: rule.min_hours,
        overall,
        segments,
        verdict: verdict.into(),
        reasons,
        rule,
    })
}

/// Parses a time bound: Unix seconds, or RFC 3339 UTC (`2026-01-02T03:04:05Z`).
pub fn parse_time_ms(s: &str) -> Option<i64> {
    if let Ok(v) = s.parse::<i64>() {
        return Some(v * 1000);
    }
    let s = s.strip_suffix('Z')?;
    let (d, t) = s.split_once('T')?;
    let dp: Vec<i64> = d
        .split('-')
        .map(|x| x.parse().ok())
        .collect::<Option<_>>()?;
    let tp: Vec<f64> = t
        .split(':')
        .map(|x| x.parse().ok())
        .collect::<Option<_>>()?;
    if dp.len() != 3 || tp.len() != 3 {
        return None;
    }
    // Days from civil (Howard Hinnant's algorithm).
    let (y, m, dd) = (dp[0] - i64::from(dp[1] <= 2), dp[1], dp[2]);
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + dd - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let secs = days as f64 * 86_400.0 + tp[0] * 3600.0 + tp[1] * 60.0 + tp[2];
    Some((secs * 1000.0).round() as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wilson_matches_reference_values() {
        // statsmodels proportion_confint(10, 100, method="wilson")
        let (lo, hi) = wilson(10, 100, 1.959_963_984_540_054);
        assert!((lo - 0.055_229_4).abs() < 1e-5, "{lo}");
        assert!((hi - 0.174_366_1).abs() < 1e-5, "{hi}");
        assert_eq!(wilson(0, 0, 1.96), (0.0, 1.0));
    }

    #[test]
    fn rfc3339_and_unix_seconds() {
        assert_eq!(parse_time_ms("0"), Some(0));
        assert_eq!(parse_time_ms("1970-01-02T00:00:00Z"), Some(86_400_000));
        assert_eq!(
            parse_time_ms("2024-03-01T12:00:00Z"),
            Some(1_709_294_400_000)
        );
        assert_eq!(parse_time_ms("yesterday"), None);
    }
}
