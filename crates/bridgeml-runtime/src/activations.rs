//! Activation ranges over representative data: min, max, percentiles and a
//! histogram per tensor, written to a serde file the quantization
//! calibration consumes.

use ndarray::ArrayD;
use serde::{Deserialize, Serialize};

use crate::profile::percentile_sorted;

/// Default percentiles recorded per tensor.
pub const DEFAULT_PERCENTILES: [f64; 9] = [0.01, 0.1, 1.0, 5.0, 50.0, 95.0, 99.0, 99.9, 99.99];

/// Values kept per tensor for percentiles and the histogram; beyond it a
/// deterministic uniform reservoir sample is kept (`sampled: true`).
pub const DEFAULT_RESERVOIR: usize = 1 << 20;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Percentile {
    pub q: f64,
    pub value: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Histogram {
    /// Edges are `min + i x (max - min) / bins`, `i` in `0..=bins`.
    pub min: f64,
    pub max: f64,
    pub counts: Vec<u64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TensorRange {
    pub name: String,
    /// Shape of one item (batch axis removed).
    pub item_shape: Vec<usize>,
    /// Values seen.
    pub count: u64,
    pub min: f64,
    pub max: f64,
    pub mean: f64,
    pub percentiles: Vec<Percentile>,
    pub histogram: Histogram,
    /// True when percentiles and histogram come from a uniform sample of `reservoir` values.
    pub sampled: bool,
    pub reservoir: usize,
}

/// The activation-range file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ActivationRanges {
    pub format: String,
    pub model_sha256: String,
    pub backend: crate::BackendKind,
    /// Items (inputs) the ranges were collected over.
    pub samples: usize,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spec_fingerprint: Option<String>,
    pub tensors: Vec<TensorRange>,
}

pub const ACTIVATIONS_FORMAT: &str = "bridgeml-activations/1";

#[derive(Debug, Clone)]
struct Acc {
    name: String,
    item_shape: Vec<usize>,
    count: u64,
    min: f64,
    max: f64,
    sum: f64,
    reservoir: Vec<f32>,
    rng: u64,
}

/// Streams batches of tensors and accumulates their ranges.
#[derive(Debug, Clone)]
pub struct ActivationCollector {
    accs: Vec<Acc>,
    cap: usize,
    bins: usize,
    percentiles: Vec<f64>,
    samples: usize,
}

impl ActivationCollector {
    pub fn new(names: &[String], bins: usize, percentiles: &[f64], cap: usize) -> Self {
        ActivationCollector {
            accs: names
                .iter()
                .enumerate()
                .map(|(i, n)| Acc {
                    name: n.clone(),
                    item_shape: Vec::new(),
                    count: 0,
                    min: f64::INFINITY,
                    max: f64::NEG_INFINITY,
                    sum: 0.0,
                    reservoir: Vec::new(),
                    rng: 0x9E37_79B9_7F4A_7C15 ^ (i as u64 + 1),
                })
                .collect(),
            cap: cap.max(1),
            bins: bins.max(1),
            percentiles: percentiles.to_vec(),
            samples: 0,
        }
    }

    /// Adds one batch: `values[i]` is the tensor `names[i]`, batch axis first.
    pub fn add(&mut self, values: &[&ArrayD<f32>]) {
        if let Some(first) = values.first() {
            self.samples += first.shape().first().copied().unwrap_or(1);
        }
        let cap = self.cap;
        for (acc, v) in self.accs.iter_mut().zip(values) {
            if acc.item_shape.is_empty() {
                acc.item_shape = v.shape().iter().skip(1).copied().collect();
            }
            for &x in v.iter() {
                if !x.is_finite() {
                    continue;
                }
                let xf = f64::from(x);
                acc.count += 1;
                acc.min = acc.min.min(xf);
                acc.max = acc.max.max(xf);
                acc.sum += xf;
                if acc.reservoir.len() < cap {
                    acc.reservoir.push(x);
                } else {
                    // Algorithm R with a xorshift generator: deterministic.
                    acc.rng ^= acc.rng << 13;
                    acc.rng ^= acc.rng >> 7;
                    acc.rng ^= acc.rng << 17;
                    let j = acc.rng % acc.count;
                    if (j as usize) < cap {
                        acc.reservoir[j as usize] = x;
                    }
                }
            }
        }
    }

    pub fn samples(&self) -> usize {
        self.samples
    }

    pub fn finish(self) -> Vec<TensorRange> {
        let bins = self.bins;
        let qs = self.percentiles;
        self.accs
            .into_iter()
            .map(|acc| {
                let mut sorted: Vec<f64> = acc.reservoir.iter().map(|&v| f64::from(v)).collect();
                sorted.sort_by(f64::total_cmp);
                let (min, max) = if acc.count == 0 {
                    (0.0, 0.0)
                } else {
                    (acc.min, acc.max)
                };
                let mut counts = vec![0u64; bins];
                let width = (max - min) / bins as f64;
                for &v in &sorted {
                    let i = if width > 0.0 {
                        (((v - min) / width) as usize).min(bins - 1)
                    } else {
                        0
                    };
                    counts[i] += 1;
                }
                TensorRange {
                    name: acc.name,
                    item_shape: acc.item_shape,
                    count: acc.count,
                    min,
                    max,
                    mean: if acc.count > 0 {
                        acc.sum / acc.count as f64
                    } else {
                        0.0
                    },
                    percentiles: qs
                        .iter()
                        .map(|&q| Percentile {
                            q,
                            value: percentile_sorted(&sorted, q),
                        })
                        .collect(),
                    histogram: Histogram { min, max, counts },
                    sampled: acc.count > acc.reservoir.len() as u64,
                    reservoir: acc.reservoir.len(),
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_of_a_known_tensor() {
        let a = ArrayD::from_shape_vec(vec![2, 5], (0..10).map(|v| v as f32).collect()).unwrap();
        let mut c = ActivationCollector::new(&["t".into()], 10, &[50.0, 100.0], 100);
        c.add(&[&a]);
        let r = &c.finish()[0];
        assert_eq!((r.min, r.max, r.count), (0.0, 9.0, 10));
        assert_eq!(r.item_shape, vec![5]);
        assert_eq!(r.percentiles[0].value, 4.5);
        assert_eq!(r.histogram.counts.iter().sum::<u64>(), 10);
        assert!(!r.sampled);
    }

    #[test]
    fn reservoir_bounds_memory() {
        let a =
            ArrayD::from_shape_vec(vec![1, 1000], (0..1000).map(|v| v as f32).collect()).unwrap();
        let mut c = ActivationCollector::new(&["t".into()], 4, &[50.0], 100);
        c.add(&[&a]);
        let r = &c.finish()[0];
        assert!(r.sampled);
        assert_eq!(r.reservoir, 100);
        assert_eq!((r.min, r.max), (0.0, 999.0));
        assert!((r.percentiles[0].value - 500.0).abs() < 150.0);
    }
}
