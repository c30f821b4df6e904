//! Divergence between two sets of outputs of the same inputs (two runtimes,
//! or two models): error magnitudes and top-1 agreement. Reused by the
//! quantization audit.

use ndarray::{ArrayD, Axis};
use serde::{Deserialize, Serialize};

use crate::{Result, RuntimeError};

/// Denominator floor of the relative error: `|a - b| / max(|a|, REL_FLOOR)`.
pub const REL_FLOOR: f64 = 1e-6;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Top1 {
    pub rows: usize,
    pub agree: usize,
    pub agreement: f64,
    pub disagreements: usize,
    /// Disagreements where the reference's top-1 probability exceeds its
    /// top-2 probability by at most `margin` (the decision is a near-tie).
    pub near_boundary: usize,
    pub margin: f64,
    /// Row indices of the disagreements (at most 100).
    pub disagreeing_rows: Vec<usize>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OutputDivergence {
    pub name: String,
    pub shape: Vec<usize>,
    pub max_abs_error: f64,
    pub mean_abs_error: f64,
    /// max over elements of `|a - b| / max(|a|, 1e-6)`, `a` the reference.
    pub max_rel_error: f64,
    /// Present for rank-2 outputs `[N, C]` with `C > 1` (class scores).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub top1: Option<Top1>,
}

/// Whether a row looks like probabilities already (non-negative, sums to 1).
fn is_probability_row(row: &[f64]) -> bool {
    row.iter().all(|&v| (0.0..=1.0).contains(&v)) && (row.iter().sum::<f64>() - 1.0).abs() < 1e-3
}

fn softmax(row: &[f64]) -> Vec<f64> {
    let m = row.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let e: Vec<f64> = row.iter().map(|v| (v - m).exp()).collect();
    let s: f64 = e.iter().sum();
    e.into_iter().map(|v| v / s).collect()
}

/// Probabilities of a row of scores: as-is when already probabilities, else softmax.
pub fn probabilities(row: &[f64]) -> Vec<f64> {
    if is_probability_row(row) {
        row.to_vec()
    } else {
        softmax(row)
    }
}

/// Index of the largest value (first on ties); `None` when empty.
pub fn argmax(row: &[f64]) -> Option<usize> {
    let mut best: Option<(usize, f64)> = None;
    for (i, &v) in row.iter().enumerate() {
        if best.is_none_or(|(_, b)| v > b) {
            best = Some((i, v));
        }
    }
    best.map(|(i, _)| i)
}

/// Compares `candidate` with `reference` (same shape).
pub fn compare_outputs(
    name: &str,
    reference: &ArrayD<f32>,
    candidate: &ArrayD<f32>,
    margin: f64,
) -> Result<OutputDivergence> {
    if reference.shape() != candidate.shape() {
        return Err(RuntimeError::InvalidArgument(format!(
            "output `{name}`: shapes differ: {:?} vs {:?}",
            reference.shape(),
            candidate.shape()
        )));
    }
    let mut max_abs = 0.0f64;
    let mut sum_abs = 0.0f64;
    let mut max_rel = 0.0f64;
    let mut n = 0usize;
    for (&a, &b) in reference.iter().zip(candidate.iter()) {
        let (a, b) = (f64::from(a), f64::from(b));
        let d = (a - b).abs();
        let d = if d.is_nan() { f64::INFINITY } else { d };
        max_abs = max_abs.max(d);
        sum_abs += d;
        max_rel = max_rel.max(d / a.abs().max(REL_FLOOR));
        n += 1;
    }
    let top1 = (reference.ndim() == 2 && reference.shape()[1] > 1).then(|| {
        let mut agree = 0;
        let mut near = 0;
        let mut rows_out = Vec::new();
        let rows = reference.shape()[0];
        for (i, (ra, rb)) in reference
            .axis_iter(Axis(0))
            .zip(candidate.axis_iter(Axis(0)))
            .enumerate()
        {
            let ra: Vec<f64> = ra.iter().map(|&v| f64::from(v)).collect();
            let rb: Vec<f64> = rb.iter().map(|&v| f64::from(v)).collect();
            if argmax(&ra) == argmax(&rb) {
                agree += 1;
            } else {
                let mut p = probabilities(&ra);
                p.sort_by(|x, y| y.total_cmp(x));
                if p[0] - p[1] <= margin {
                    near += 1;
                }
                if rows_out.len() < 100 {
                    rows_out.push(i);
                }
            }
        }
        Top1 {
            rows,
            agree,
            agreement: if rows > 0 {
                agree as f64 / rows as f64
            } else {
                1.0
            },
            disagreements: rows - agree,
            near_boundary: near,
            margin,
            disagreeing_rows: rows_out,
        }
    });
    Ok(OutputDivergence {
        name: name.to_string(),
        shape: reference.shape().to_vec(),
        max_abs_error: max_abs,
        mean_abs_error: if n > 0 { sum_abs / n as f64 } else { 0.0 },
        max_rel_error: max_rel,
        top1,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identical_outputs_agree() {
        let a = ArrayD::from_shape_vec(vec![2, 3], vec![1.0, 2.0, 3.0, 3.0, 2.0, 1.0]).unwrap();
        let d = compare_outputs("x", &a, &a, 0.05).unwrap();
        assert_eq!(d.max_abs_error, 0.0);
        assert_eq!(d.top1.unwrap().agreement, 1.0);
    }

    #[test]
    fn near_tie_flips_are_counted_near_boundary() {
        let a = ArrayD::from_shape_vec(vec![2, 2], vec![1.0, 1.01, 0.0, 5.0]).unwrap();
        let b = ArrayD::from_shape_vec(vec![2, 2], vec![1.02, 1.0, 5.0, 0.0]).unwrap();
        let t = compare_outputs("x", &a, &b, 0.05).unwrap().top1.unwrap();
        assert_eq!((t.agree, t.disagreements, t.near_boundary), (0, 2, 1));
        assert_eq!(t.disagreeing_rows, vec![0, 1]);
    }

    #[test]
    fn shape_mismatch_is_an_error() {
        let a = ArrayD::<f32>::zeros(vec![2, 2]);
        let b = ArrayD::<f32>::zeros(vec![2, 3]);
        assert!(compare_outputs("x", &a, &b, 0.05).is_err());
    }
}
