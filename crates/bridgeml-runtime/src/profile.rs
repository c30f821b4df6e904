//! Latency measurement in the vocabulary of Triton's perf_analyzer: warm-up,
//! measurement windows repeated until p50 is stable, percentile statistics,
//! a hardware/runtime fingerprint, and regression comparison.

use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::{BackendKind, Result, RuntimeError};

/// The stability criterion, stated in every report.
pub const STABILITY_CRITERION: &str = "after warm-up, measurement windows (each at least \
    `window_ms` long and `min_runs_per_window` runs) repeat until the p50 of each of the last \
    `stable_windows` windows lies within `stability_pct` % of their mean p50, or \
    `max_windows` is reached (then `stable` is false); statistics pool the runs of those last \
    windows";

/// How long and how hard to measure.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MeasureOptions {
    pub warmup_runs: usize,
    pub window_ms: u64,
    pub min_runs_per_window: usize,
    pub stable_windows: usize,
    pub stability_pct: f64,
    pub max_windows: usize,
}

impl Default for MeasureOptions {
    fn default() -> Self {
        MeasureOptions {
            warmup_runs: 5,
            window_ms: 1000,
            min_runs_per_window: 10,
            stable_windows: 3,
            stability_pct: 10.0,
            max_windows: 10,
        }
    }
}

impl MeasureOptions {
    /// A quick setting for tests and smoke runs.
    pub fn quick() -> Self {
        MeasureOptions {
            warmup_runs: 2,
            window_ms: 50,
            min_runs_per_window: 3,
            stable_windows: 3,
            stability_pct: 10.0,
            max_windows: 5,
        }
    }
}

/// Time of one measured run, in milliseconds, split into preprocessing and
/// compute (preprocessing is 0 when inputs are prepared in advance).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Timing {
    pub preprocess_ms: f64,
    pub compute_ms: f64,
}

impl Timing {
    pub fn total_ms(&self) -> f64 {
        self.preprocess_ms + self.compute_ms
    }
}

/// Progress events for a caller's progress bar.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Progress {
    Warmup {
        done: usize,
        total: usize,
    },
    Window {
        index: usize,
        max: usize,
        p50_ms: f64,
    },
}

/// Result of [`measure`]: pooled samples of the final windows.
#[derive(Debug, Clone, PartialEq)]
pub struct Measurement {
    pub samples: Vec<Timing>,
    pub window_p50_ms: Vec<f64>,
    pub stable: bool,
}

impl Measurement {
    /// Relative spread of the final windows' p50: 100 x stddev / mean.
    pub fn noise_pct(&self, last: usize) -> f64 {
        let w = &self.window_p50_ms[self.window_p50_ms.len().saturating_sub(last)..];
        if w.len() < 2 {
            return 0.0;
        }
        let mean = w.iter().sum::<f64>() / w.len() as f64;
        let var = w.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (w.len() - 1) as f64;
        if mean > 0.0 {
            100.0 * var.sqrt() / mean
        } else {
            0.0
        }
    }
}

/// Measures `run` following [`STABILITY_CRITERION`].
pub fn measure(
    opts: &MeasureOptions,
    mut run: impl FnMut() -> Result<Timing>,
    mut progress: impl FnMut(Progress),
) -> Result<Measurement> {
    if opts.stable_windows == 0 || opts.max_windows < opts.stable_windows {
        return Err(RuntimeError::InvalidArgument(
            "max_windows must be at least stable_windows (> 0)".into(),
        ));
    }
    for i in 0..opts.warmup_runs {
        run()?;
        progress(Progress::Warmup {
            done: i + 1,
            total: opts.warmup_runs,
        });
    }
    let window = Duration::from_millis(opts.window_ms);
    let mut windows: Vec<Vec<Timing>> = Vec::new();
    let mut p50s: Vec<f64> = Vec::new();
    let mut stable = false;
    while windows.len() < opts.max_windows {
        let start = Instant::now();
        let mut samples = Vec::new();
        while samples.len() < opts.min_runs_per_window.max(1) || start.elapsed() < window {
            samples.push(run()?);
        }
        let mut totals: Vec<f64> = samples.iter().map(Timing::total_ms).collect();
        totals.sort_by(f64::total_cmp);
        let p50 = percentile_sorted(&totals, 50.0);
        p50s.push(p50);
        windows.push(samples);
        progress(Progress::Window {
            index: windows.len(),
            max: opts.max_windows,
            p50_ms: p50,
        });
        if p50s.len() >= opts.stable_windows {
            let last = &p50s[p50s.len() - opts.stable_windows..];
            let mean = last.iter().sum::<f64>() / last.len() as f64;
            if last
                .iter()
                .all(|p| (p - mean).abs() <= mean * opts.stability_pct / 100.0)
            {
                stable = true;
                break;
            }
        }
    }
    let keep = opts.stable_windows.min(windows.len());
    let samples = windows[windows.len() - keep..].concat();
    Ok(Measurement {
        samples,
        window_p50_ms: p50s,
        stable,
    })
}

/// Percentile with linear interpolation between closest ranks (numpy's default).
pub fn percentile_sorted(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let pos = (q / 100.0).clamp(0.0, 1.0) * (sorted.len() - 1) as f64;
    let lo = pos.floor() as usize;
    let hi = pos.ceil() as usize;
    sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo as f64)
}

/// Latency distribution of one batch size.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LatencyStats {
    pub count: usize,
    pub mean_ms: f64,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p95_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    pub min_ms: f64,
}

impl LatencyStats {
    pub fn from_ms(samples: &[f64]) -> LatencyStats {
        let mut s = samples.to_vec();
        s.sort_by(f64::total_cmp);
        LatencyStats {
            count: s.len(),
            mean_ms: if s.is_empty() {
                f64::NAN
            } else {
                s.iter().sum::<f64>() / s.len() as f64
            },
            p50_ms: percentile_sorted(&s, 50.0),
            p90_ms: percentile_sorted(&s, 90.0),
            p95_ms: percentile_sorted(&s, 95.0),
            p99_ms: percentile_sorted(&s, 99.0),
            max_ms: s.last().copied().unwrap_or(f64::NAN),
            min_ms: s.first().copied().unwrap_or(f64::NAN),
        }
    }
}

/// One row of a profile: a batch size and its latency distribution.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BatchResult {
    pub batch: usize,
    pub count: usize,
    /// Inferences (items) per second: `batch x count / total time`.
    pub throughput: f64,
    pub mean_ms: f64,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p95_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    pub min_ms: f64,
    pub windows: usize,
    pub stable: bool,
    /// 100 x stddev / mean of the p50 of the final windows.
    pub noise_pct: f64,
    /// When a spec is given: preprocessing of the batch, and the model alone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preprocess: Option<LatencyStats>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compute: Option<LatencyStats>,
}

impl BatchResult {
    pub fn from_measurement(batch: usize, m: &Measurement, split: bool, last: usize) -> Self {
        let totals: Vec<f64> = m.samples.iter().map(Timing::total_ms).collect();
        let s = LatencyStats::from_ms(&totals);
        let total_s: f64 = totals.iter().sum::<f64>() / 1000.0;
        let split_stats = |f: fn(&Timing) -> f64| {
            split.then(|| LatencyStats::from_ms(&m.samples.iter().map(f).collect::<Vec<_>>()))
        };
        BatchResult {
            batch,
            count: s.count,
            throughput: if total_s > 0.0 {
                (batch * s.count) as f64 / total_s
            } else {
                0.0
            },
            mean_ms: s.mean_ms,
            p50_ms: s.p50_ms,
            p90_ms: s.p90_ms,
            p95_ms: s.p95_ms,
            p99_ms: s.p99_ms,
            max_ms: s.max_ms,
            min_ms: s.min_ms,
            windows: m.window_p50_ms.len(),
            stable: m.stable,
            noise_pct: m.noise_pct(last),
            preprocess: split_stats(|t| t.preprocess_ms),
            compute: split_stats(|t| t.compute_ms),
        }
    }
}

/// The machine and software that produced a profile.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Fingerprint {
    pub cpu_model: String,
    /// Logical cores available to the process.
    pub cores_available: usize,
    /// Threads the backend was configured with (cores used).
    pub threads: usize,
    pub simd: Vec<String>,
    pub os: String,
    pub arch: String,
    pub backend: BackendKind,
    pub backend_version: String,
    pub model_sha256: String,
    pub bridgeml_version: String,
}

/// CPU model, OS and SIMD features of this machine.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Hardware {
    pub cpu_model: String,
    pub cores_available: usize,
    pub simd: Vec<String>,
    pub os: String,
    pub arch: String,
}

pub fn hardware() -> Hardware {
    let cpu_model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name") || l.starts_with("Model"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_string())
        })
        .unwrap_or_else(|| "unknown".into());
    let pretty = std::fs::read_to_string("/etc/os-release")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("PRETTY_NAME="))
                .map(|v| v.trim_matches('"').to_string())
        });
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .ok()
        .map(|s| s.trim().to_string());
    let os = match (pretty, kernel) {
        (Some(p), Some(k)) => format!("{p} (kernel {k})"),
        (Some(p), None) => p,
        (None, Some(k)) => format!("{} (kernel {k})", std::env::consts::OS),
        (None, None) => std::env::consts::OS.to_string(),
    };
    Hardware {
        cpu_model,
        cores_available: crate::model::available_cores(),
        simd: simd_features(),
        os,
        arch: std::env::consts::ARCH.to_string(),
    }
}

/// SIMD extensions detected at run time.
pub fn simd_features() -> Vec<String> {
    #[allow(unused_mut)]
    let mut out: Vec<String> = Vec::new();
    #[cfg(target_arch = "x86_64")]
    {
        macro_rules! probe {
            ($($f:tt),*) => {
                $( if std::is_x86_feature_detected!($f) { out.push($f.to_string()); } )*
            };
        }
        probe!(
            "sse2",
            "sse4.1",
            "sse4.2",
            "avx",
            "avx2",
            "fma",
            "f16c",
            "avx512f",
            "avx512bw",
            "avx512vl",
            "avx512vnni",
            "avxvnni"
        );
    }
    #[cfg(target_arch = "aarch64")]
    {
        macro_rules! probe {
            ($($f:tt),*) => {
                $( if std::arch::is_aarch64_feature_detected!($f) { out.push($f.to_string()); } )*
            };
        }
        probe!("neon", "fp16", "dotprod", "i8mm", "sve", "sve2");
    }
    out
}

impl Fingerprint {
    pub fn new(
        backend: BackendKind,
        backend_version: String,
        threads: usize,
        model_sha256: String,
    ) -> Self {
        let hw = hardware();
        Fingerprint {
            cpu_model: hw.cpu_model,
            cores_available: hw.cores_available,
            threads,
            simd: hw.simd,
            os: hw.os,
            arch: hw.arch,
            backend,
            backend_version,
            model_sha256,
            bridgeml_version: env!("CARGO_PKG_VERSION").to_string(),
        }
    }
}

/// A complete profile, as written by `bridgeml profile --format json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProfileReport {
    pub model: String,
    pub backend: BackendKind,
    pub backend_version: String,
    pub threads: usize,
    pub fingerprint: Fingerprint,
    pub criterion: String,
    pub options: MeasureOptions,
    pub results: Vec<BatchResult>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comparison: Option<Comparison>,
}

/// `--compare`: a change is a regression only when it exceeds
/// `max(floor_pct, k x noise_pct)`, noise being the larger of the two runs'.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct CompareRule {
    pub floor_pct: f64,
    pub k: f64,
}

impl Default for CompareRule {
    fn default() -> Self {
        CompareRule {
            floor_pct: 5.0,
            k: 3.0,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CompareRow {
    pub batch: usize,
    pub baseline_p50_ms: f64,
    pub current_p50_ms: f64,
    /// Positive: slower than the baseline.
    pub change_pct: f64,
    pub noise_pct: f64,
    pub threshold_pct: f64,
    pub regression: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Comparison {
    pub rule: CompareRule,
    pub baseline_backend: BackendKind,
    pub same_hardware: bool,
    pub same_model: bool,
    pub rows: Vec<CompareRow>,
    /// Batch sizes present in only one of the two profiles.
    pub unmatched_batches: Vec<usize>,
    pub regression: bool,
}

/// Compares p50 per batch size with the rule.
pub fn compare(baseline: &ProfileReport, current: &ProfileReport, rule: CompareRule) -> Comparison {
    let mut rows = Vec::new();
    let mut unmatched = Vec::new();
    for cur in &current.results {
        match baseline.results.iter().find(|b| b.batch == cur.batch) {
            None => unmatched.push(cur.batch),
            Some(base) => {
                let change_pct = 100.0 * (cur.p50_ms - base.p50_ms) / base.p50_ms;
                let noise_pct = base.noise_pct.max(cur.noise_pct);
                let threshold_pct = rule.floor_pct.max(rule.k * noise_pct);
                rows.push(CompareRow {
                    batch: cur.batch,
                    baseline_p50_ms: base.p50_ms,
                    current_p50_ms: cur.p50_ms,
                    change_pct,
                    noise_pct,
                    threshold_pct,
                    regression: change_pct > threshold_pct,
                });
            }
        }
    }
    for b in &baseline.results {
        if !current.results.iter().any(|c| c.batch == b.batch) {
            unmatched.push(b.batch);
        }
    }
    let fb = &baseline.fingerprint;
    let fc = &current.fingerprint;
    Comparison {
        rule,
        baseline_backend: baseline.backend,
        same_hardware: fb.cpu_model == fc.cpu_model && fb.threads == fc.threads,
        same_model: fb.model_sha256 == fc.model_sha256,
        regression: rows.iter().any(|r| r.regression),
        rows,
        unmatched_batches: unmatched,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_match_numpy_linear() {
        let s: Vec<f64> = (1..=10).map(f64::from).collect();
        assert_eq!(percentile_sorted(&s, 50.0), 5.5);
        assert!((percentile_sorted(&s, 90.0) - 9.1).abs() < 1e-12);
        assert_eq!(percentile_sorted(&s, 100.0), 10.0);
        assert_eq!(percentile_sorted(&s, 0.0), 1.0);
    }

    #[test]
    fn measure_stops_when_stable() {
        let opts = MeasureOptions::quick();
        let m = measure(
            &opts,
            || {
                Ok(Timing {
                    preprocess_ms: 0.0,
                    compute_ms: 1.0,
                })
            },
            |_| {},
        )
        .unwrap();
        assert!(m.stable);
        assert_eq!(m.window_p50_ms.len(), 3);
    }

    fn report(p50: f64, noise: f64) -> ProfileReport {
        let fp = Fingerprint::new(BackendKind::Tract, "x".into(), 1, "sha256:0".into());
        ProfileReport {
            model: "m".into(),
            backend: BackendKind::Tract,
            backend_version: "x".into(),
            threads: 1,
            fingerprint: fp,
            criterion: STABILITY_CRITERION.into(),
            options: MeasureOptions::quick(),
            results: vec![BatchResult {
                batch: 1,
                count: 10,
                throughput: 1000.0 / p50,
                mean_ms: p50,
                p50_ms: p50,
                p90_ms: p50,
                p95_ms: p50,
                p99_ms: p50,
                max_ms: p50,
                min_ms: p50,
                windows: 3,
                stable: true,
                noise_pct: noise,
                preprocess: None,
                compute: None,
            }],
            comparison: None,
        }
    }

    #[test]
    fn compare_uses_floor_and_noise() {
        let rule = CompareRule::default();
        // 8% slower, quiet machine: above the 5% floor.
        assert!(compare(&report(10.0, 1.0), &report(10.8, 1.0), rule).regression);
        // 8% slower, noisy machine (4% noise -> 12% threshold): not a regression.
        assert!(!compare(&report(10.0, 4.0), &report(10.8, 1.0), rule).regression);
        // Faster is never a regression.
        assert!(!compare(&report(10.0, 0.0), &report(5.0, 0.0), rule).regression);
    }
}
