//! Calibration: activation ranges collected with the runtime's
//! [`ActivationCollector`] over the calibration set, then reduced to one
//! `[rmin, rmax]` per tensor by the chosen [`Method`].

use std::collections::HashMap;
use std::path::Path;
use std::str::FromStr;

use bridgeml_core::Tensor;
use bridgeml_runtime::activations::{ActivationCollector, TensorRange, DEFAULT_RESERVOIR};
use bridgeml_runtime::{BackendChoice, LoadOptions, Model};
use serde::{Deserialize, Serialize};

use crate::{QuantError, Result};

/// Default percentile of `percentile` without a value (ONNX Runtime's default).
pub const DEFAULT_PERCENTILE: f64 = 99.999;
/// Histogram bins of the entropy method (TensorRT / ONNX Runtime `num_bins`).
pub const ENTROPY_BINS: usize = 2048;
/// Quantized bins of the entropy method (`num_quantized_bins`).
pub const ENTROPY_QUANTIZED_BINS: usize = 128;
/// Bins of the runtime's `[min, max]` histogram that the entropy method
/// re-bins into its symmetric `[-t, t]` histogram (4x finer than it).
pub const SOURCE_BINS: usize = 8192;

/// How an activation range is chosen from the calibration data.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Method {
    /// Observed minimum and maximum.
    MinMax,
    /// The P-th percentile `t` of `|x|`, range `[max(-t, min), min(t, max)]` (as ONNX Runtime).
    Percentile(f64),
    /// KL-divergence minimisation over a 2048-bin histogram (TensorRT / ONNX Runtime entropy).
    Entropy,
}

impl std::fmt::Display for Method {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Method::MinMax => f.write_str("minmax"),
            Method::Percentile(p) => write!(f, "percentile:{p}"),
            Method::Entropy => f.write_str("entropy"),
        }
    }
}

impl FromStr for Method {
    type Err = QuantError;
    fn from_str(s: &str) -> Result<Self> {
        let t = s.trim().to_ascii_lowercase();
        match t.as_str() {
            "minmax" | "min-max" | "min_max" => return Ok(Method::MinMax),
            "entropy" | "kl" => return Ok(Method::Entropy),
            "percentile" => return Ok(Method::Percentile(DEFAULT_PERCENTILE)),
            _ => {}
        }
        if let Some(p) = t.strip_prefix("percentile:") {
            if let Ok(v) = p.parse::<f64>() {
                if v > 0.0 && v <= 100.0 {
                    return Ok(Method::Percentile(v));
                }
            }
        }
        Err(QuantError::UnknownMethod(s.to_string()))
    }
}

impl Method {
    /// Percentiles the collector must record for this method (recorded for
    /// the report; the ranges come from the histogram).
    pub fn percentiles(self) -> Vec<f64> {
        match self {
            Method::Percentile(p) => vec![100.0 - p, p],
            _ => Vec::new(),
        }
    }

    /// Histogram bins the collector must record for this method.
    pub fn bins(self) -> usize {
        match self {
            Method::Entropy | Method::Percentile(_) => SOURCE_BINS,
            Method::MinMax => 16,
        }
    }

    /// `[rmin, rmax]` of one tensor (float32, as ONNX Runtime stores them).
    pub fn range(self, r: &TensorRange) -> (f32, f32) {
        let (min, max) = (r.min as f32, r.max as f32);
        match self {
            Method::MinMax => (min, max),
            Method::Percentile(p) => {
                // ONNX Runtime's percentile: the P-th percentile of |x| on a
                // 2048-bin histogram over [0, t] (the edge of the first bin
                // whose CDF reaches P), then clamped to [min, max].
                let t = min.abs().max(max.abs());
                if t <= 0.0 || r.histogram.counts.is_empty() {
                    return (min, max);
                }
                let th = abs_percentile(&r.histogram, f64::from(t), ENTROPY_BINS, p) as f32;
                ((-th).max(min), th.min(max))
            }
            Method::Entropy => {
                let t = min.abs().max(max.abs());
                if t <= 0.0 || r.histogram.counts.is_empty() {
                    return (min, max);
                }
                let hist = rebin_symmetric(&r.histogram, f64::from(t), ENTROPY_BINS);
                let (lo, hi) = entropy_threshold(&hist, f64::from(t), ENTROPY_QUANTIZED_BINS);
                ((lo as f32).max(min), (hi as f32).min(max))
            }
        }
    }
}

/// The `p`-th percentile of `|x|` from a `[min, max]` histogram, re-binned
/// into `bins` bins over `[0, t]`: the lower edge of the first bin whose
/// cumulative share reaches `p / 100` (ONNX Runtime's `searchsorted`).
pub fn abs_percentile(
    h: &bridgeml_runtime::activations::Histogram,
    t: f64,
    bins: usize,
    p: f64,
) -> f64 {
    let mut out = vec![0.0; bins];
    let n = h.counts.len();
    let w = (h.max - h.min) / n as f64;
    for (i, &c) in h.counts.iter().enumerate() {
        let centre = (h.min + (i as f64 + 0.5) * w).abs();
        let j = ((centre / t * bins as f64).floor() as usize).min(bins - 1);
        out[j] += c as f64;
    }
    let total: f64 = out.iter().sum();
    if total <= 0.0 {
        return t;
    }
    let mut acc = 0.0;
    for (j, &c) in out.iter().enumerate() {
        acc += c;
        if acc / total >= p / 100.0 {
            return t * j as f64 / bins as f64;
        }
    }
    t
}

/// Re-bins a `[min, max]` histogram into `bins` bins over `[-t, t]`, each
/// source bin going whole to the target bin holding its centre.
pub fn rebin_symmetric(
    h: &bridgeml_runtime::activations::Histogram,
    t: f64,
    bins: usize,
) -> Vec<f64> {
    let mut out = vec![0.0; bins];
    let n = h.counts.len();
    let w = (h.max - h.min) / n as f64;
    let tw = 2.0 * t / bins as f64;
    for (i, &c) in h.counts.iter().enumerate() {
        if c == 0 {
            continue;
        }
        let centre = h.min + (i as f64 + 0.5) * w;
        let j = (((centre + t) / tw).floor().max(0.0) as usize).min(bins - 1);
        out[j] += c as f64;
    }
    out
}

fn smooth(p: &[f64], eps: f64) -> Option<Vec<f64>> {
    let zeros = p.iter().filter(|&&v| v == 0.0).count();
    let nonzeros = p.len() - zeros;
    if nonzeros == 0 {
        return None;
    }
    let eps1 = eps * zeros as f64 / nonzeros as f64;
    let out: Vec<f64> = p
        .iter()
        .map(|&v| if v == 0.0 { eps } else { v - eps1 })
        .collect();
    if out.iter().any(|&v| v <= 0.0) {
        return None;
    }
    Some(out)
}

fn kl(p: &[f64], q: &[f64]) -> f64 {
    let sp: f64 = p.iter().sum();
    let sq: f64 = q.iter().sum();
    p.iter()
        .zip(q)
        .map(|(&a, &b)| {
            let (a, b) = (a / sp, b / sq);
            if a > 0.0 {
                a * (a / b).ln()
            } else {
                0.0
            }
        })
        .sum()
}

/// ONNX Runtime's `get_entropy_threshold` on a histogram over `[-t, t]`:
/// the symmetric window around zero whose quantization to
/// `quantized_bins` levels has the smallest KL divergence from the
/// (outlier-clipped) distribution. Returns the window's edges.
pub fn entropy_threshold(hist: &[f64], t: f64, quantized_bins: usize) -> (f64, f64) {
    let num_bins = hist.len();
    let edge = |i: usize| -t + 2.0 * t * i as f64 / num_bins as f64;
    let zero = num_bins / 2;
    let half_q = quantized_bins / 2;
    if half_q == 0 || half_q > zero {
        return (-t, t);
    }
    let mut best = (f64::INFINITY, (edge(0), edge(num_bins)));
    for i in half_q..=zero {
        let start = zero - i;
        let end = (zero + i + 1).min(num_bins);
        let threshold = (edge(start), edge(end));
        let sliced = &hist[start..end];
        let mut p = sliced.to_vec();
        p[0] += hist[..start].iter().sum::<f64>();
        let last = p.len() - 1;
        p[last] += hist[end..].iter().sum::<f64>();
        let nonzero: Vec<bool> = p.iter().map(|&v| v != 0.0).collect();
        let merged = sliced.len() / quantized_bins;
        let mut qb = vec![0.0; quantized_bins];
        for (k, q) in qb.iter_mut().enumerate() {
            *q = sliced[k * merged..(k + 1) * merged].iter().sum();
        }
        qb[quantized_bins - 1] += sliced[quantized_bins * merged..].iter().sum::<f64>();
        let mut q = vec![0.0; p.len()];
        for (k, &v) in qb.iter().enumerate() {
            let (s, e) = (k * merged, (k + 1) * merged);
            let norm = nonzero[s..e].iter().filter(|&&b| b).count();
            if norm != 0 {
                for x in &mut q[s..e] {
                    *x = v / norm as f64;
                }
            }
        }
        let div = match (smooth(&p, 1e-4), smooth(&q, 1e-4)) {
            (Some(p), Some(q)) => kl(&p, &q),
            _ => f64::INFINITY,
        };
        if div < best.0 {
            best = (div, threshold);
        }
    }
    best.1
}

/// Runs the calibration items through `model_path` (in batches of `batch`)
/// and collects the ranges of `tensors` (node outputs or the graph input).
pub fn collect_ranges(
    model_path: &Path,
    items: &[Tensor],
    tensors: &[String],
    method: Method,
    backend: BackendChoice,
    batch: usize,
) -> Result<Vec<TensorRange>> {
    let probe = bridgeml_runtime::OnnxModel::from_path(model_path)?;
    let input_name = probe.inputs().first().map(|i| i.name.clone());
    let extra: Vec<String> = tensors
        .iter()
        .filter(|t| Some(*t) != input_name.as_ref())
        .cloned()
        .collect();
    let mut model = Model::load(model_path, &LoadOptions::new(backend).extra_outputs(extra))?;
    let mut collector = ActivationCollector::new(
        tensors,
        method.bins(),
        &method.percentiles(),
        DEFAULT_RESERVOIR,
    );
    for chunk in items.chunks(batch.max(1)) {
        let x = Tensor::stack(chunk)?;
        let out = model.run(&x)?;
        let xf = x.to_f32();
        let mut values = Vec::with_capacity(tensors.len());
        for t in tensors {
            if Some(t) == input_name.as_ref() {
                values.push(&xf);
            } else {
                values.push(out.get(t).ok_or_else(|| {
                    QuantError::Invalid(format!("the runtime returned no tensor `{t}`"))
                })?);
            }
        }
        collector.add(&values);
    }
    Ok(collector.finish())
}

/// `[rmin, rmax]` per tensor name.
pub fn ranges_by_name(ranges: &[TensorRange], method: Method) -> HashMap<String, (f32, f32)> {
    ranges
        .iter()
        .map(|r| (r.name.clone(), method.range(r)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn methods_parse() {
        assert_eq!("minmax".parse::<Method>().unwrap(), Method::MinMax);
        assert_eq!(
            "percentile:99.9".parse::<Method>().unwrap(),
            Method::Percentile(99.9)
        );
        assert_eq!(
            "percentile".parse::<Method>().unwrap(),
            Method::Percentile(DEFAULT_PERCENTILE)
        );
        assert_eq!("entropy".parse::<Method>().unwrap(), Method::Entropy);
        for bad in ["mse", "percentile:0", "percentile:101", "percentile:x"] {
            assert!(matches!(
                bad.parse::<Method>(),
                Err(QuantError::UnknownMethod(_))
            ));
        }
    }

    #[test]
    fn entropy_clips_a_long_tail() {
        // A narrow bulk in [-1, 1] and a few outliers at 50: KL picks a
        // window far inside the full range.
        let t = 50.0;
        let bins = ENTROPY_BINS;
        let mut h = vec![0.0; bins];
        for (i, v) in h.iter_mut().enumerate() {
            let c = -t + 2.0 * t * (i as f64 + 0.5) / bins as f64;
            if c.abs() < 1.0 {
                *v = 1000.0 * (1.0 - c.abs());
            }
        }
        h[bins - 1] = 1.0;
        let (lo, hi) = entropy_threshold(&h, t, ENTROPY_QUANTIZED_BINS);
        assert!(hi < 10.0 && lo > -10.0, "{lo} {hi}");
        assert!(hi >= 1.0);
    }
}
