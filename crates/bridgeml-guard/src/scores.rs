//! Scores computed from logits alone: energy, MSP and max-logit.
//!
//! All scores follow the "higher = more out-of-distribution" convention of
//! pytorch-ood. OpenOOD's postprocessors return the opposite sign (a
//! confidence where higher = more in-distribution, e.g. its energy-based `EBO`
//! returns `T * logsumexp(z / T)`): negate OpenOOD's numbers to compare.

use ndarray::ArrayView2;
use rayon::prelude::*;

use crate::{GuardError, Result};

/// Rows per rayon task when scoring batches; small batches run inline.
const PAR_ROWS: usize = 4096;

/// Checks that a logits matrix is non-empty, has at least two classes and is finite.
pub fn validate_logits(logits: ArrayView2<'_, f32>, what: &str) -> Result<()> {
    let (n, c) = logits.dim();
    if n == 0 {
        return Err(GuardError::Empty {
            what: what.to_string(),
        });
    }
    if c < 2 {
        return Err(GuardError::TooFewClasses {
            what: what.to_string(),
            n_classes: c,
        });
    }
    validate_finite(logits, what)
}

/// Checks that every value of a matrix is finite, naming the first offending cell.
pub fn validate_finite(a: ArrayView2<'_, f32>, what: &str) -> Result<()> {
    for (row, r) in a.outer_iter().enumerate() {
        for (col, &v) in r.iter().enumerate() {
            if !v.is_finite() {
                return Err(GuardError::NonFinite {
                    what: what.to_string(),
                    row,
                    col,
                    value: f64::from(v),
                });
            }
        }
    }
    Ok(())
}

pub(crate) fn validate_temperature(t: f64) -> Result<()> {
    if t.is_finite() && t > 0.0 {
        Ok(())
    } else {
        Err(GuardError::InvalidParameter {
            name: "temperature",
            value: t.to_string(),
            reason: "must be a finite number > 0".into(),
        })
    }
}

/// `max_i x_i + ln sum_i exp(x_i - max)`: the numerically stable log-sum-exp,
/// computed in `f64`. Finite for any finite input (no overflow for large logits).
///
/// ```
/// let v = bridgeml_guard::scores::logsumexp(&[1000.0, 1000.0]);
/// assert!((v - (1000.0 + 2f64.ln())).abs() < 1e-12);
/// ```
#[inline]
pub fn logsumexp(x: &[f32]) -> f64 {
    let m = x
        .iter()
        .fold(f64::NEG_INFINITY, |m, &v| m.max(f64::from(v)));
    let s: f64 = x.iter().map(|&v| (f64::from(v) - m).exp()).sum();
    m + s.ln()
}

/// Energy score of one row: `E(x) = -T * logsumexp(z / T)` (Liu et al., 2020).
/// Higher = more OOD.
#[inline]
pub fn energy_row(z: &[f32], temperature: f64) -> f64 {
    if temperature == 1.0 {
        return -logsumexp(z);
    }
    let inv_t = 1.0 / temperature;
    let m = z
        .iter()
        .fold(f64::NEG_INFINITY, |m, &v| m.max(f64::from(v)))
        * inv_t;
    let s: f64 = z.iter().map(|&v| (f64::from(v) * inv_t - m).exp()).sum();
    -temperature * (m + s.ln())
}

/// Negative maximum softmax probability of one row (Hendrycks & Gimpel, 2017).
/// In `[-1, -1/C]`; higher = more OOD.
#[inline]
pub fn msp_row(z: &[f32]) -> f64 {
    let m = z
        .iter()
        .fold(f64::NEG_INFINITY, |m, &v| m.max(f64::from(v)));
    let s: f64 = z.iter().map(|&v| (f64::from(v) - m).exp()).sum();
    -1.0 / s
}

/// Negative maximum logit of one row (Hendrycks et al., 2022). Higher = more OOD.
#[inline]
pub fn max_logit_row(z: &[f32]) -> f64 {
    -z.iter()
        .fold(f64::NEG_INFINITY, |m, &v| m.max(f64::from(v)))
}

/// Arg-max class and its softmax probability (temperature 1) of one row.
/// Ties go to the lowest index, as `numpy.argmax` does.
#[inline]
pub fn predict_row(z: &[f32]) -> (usize, f64) {
    let mut best = 0;
    for (i, &v) in z.iter().enumerate() {
        if v > z[best] {
            best = i;
        }
    }
    (best, -msp_row(z))
}

fn map_rows(logits: ArrayView2<'_, f32>, f: impl Fn(&[f32]) -> f64 + Sync) -> Vec<f64> {
    let n = logits.nrows();
    let row_score = |i: usize| -> f64 {
        let row = logits.row(i);
        match row.as_slice() {
            Some(s) => f(s),
            None => f(&row.to_vec()),
        }
    };
    if n < PAR_ROWS {
        (0..n).map(row_score).collect()
    } else {
        (0..n).into_par_iter().map(row_score).collect()
    }
}

/// Energy scores of a `[n, classes]` logits matrix. Validates the input.
pub fn energy(logits: ArrayView2<'_, f32>, temperature: f64) -> Result<Vec<f64>> {
    validate_temperature(temperature)?;
    validate_logits(logits, "logits")?;
    Ok(map_rows(logits, |z| energy_row(z, temperature)))
}

/// Negative-MSP scores of a `[n, classes]` logits matrix. Validates the input.
pub fn msp(logits: ArrayView2<'_, f32>) -> Result<Vec<f64>> {
    validate_logits(logits, "logits")?;
    Ok(map_rows(logits, msp_row))
}

/// Negative max-logit scores of a `[n, classes]` logits matrix. Validates the input.
pub fn max_logit(logits: ArrayView2<'_, f32>) -> Result<Vec<f64>> {
    validate_logits(logits, "logits")?;
    Ok(map_rows(logits, max_logit_row))
}

/// Arg-max predictions and softmax confidences of a logits matrix. Validates the input.
pub fn predictions(logits: ArrayView2<'_, f32>) -> Result<Vec<(usize, f64)>> {
    validate_logits(logits, "logits")?;
    let n = logits.nrows();
    Ok((0..n)
        .map(|i| {
            let row = logits.row(i).to_vec();
            predict_row(&row)
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    #[test]
    fn energy_is_stable_for_huge_logits() {
        let z = [1e30f32, 1e30, -1e30];
        let e = energy_row(&z, 1.0);
        assert!(e.is_finite());
        assert!((e + 1e30_f64 as f32 as f64).abs() / 1e30 < 1e-6);
        let small = [-1e30f32, -1e30];
        assert!(energy_row(&small, 1.0).is_finite());
    }

    #[test]
    fn temperature_scales() {
        let z = [1.0f32, 2.0, 3.0];
        let t = 2.0;
        let expect = -t * logsumexp(&[0.5, 1.0, 1.5]);
        assert!((energy_row(&z, t) - expect).abs() < 1e-12);
    }

    #[test]
    fn rejects_bad_logits() {
        let nan = array![[1.0f32, f32::NAN]];
        assert!(matches!(
            energy(nan.view(), 1.0),
            Err(GuardError::NonFinite { row: 0, col: 1, .. })
        ));
        let inf = array![[1.0f32, 2.0], [f32::INFINITY, 0.0]];
        assert!(matches!(
            msp(inf.view()),
            Err(GuardError::NonFinite { row: 1, col: 0, .. })
        ));
        let one = array![[1.0f32], [2.0]];
        assert!(matches!(
            max_logit(one.view()),
            Err(GuardError::TooFewClasses { n_classes: 1, .. })
        ));
        let empty = ndarray::Array2::<f32>::zeros((0, 3));
        assert!(matches!(
            energy(empty.view(), 1.0),
            Err(GuardError::Empty { .. })
        ));
        let ok = array![[1.0f32, 2.0]];
        assert!(energy(ok.view(), 0.0).is_err());
        assert!(energy(ok.view(), f64::NAN).is_err());
    }

    #[test]
    fn msp_and_prediction() {
        let z = [0.0f32, 0.0, 0.0, 0.0];
        assert!((msp_row(&z) + 0.25).abs() < 1e-15);
        assert_eq!(predict_row(&[1.0, 3.0, 3.0]).0, 1);
    }
}
