//! Two-sample statistics for one column: Kolmogorov-Smirnov (as
//! `scipy.stats.ks_2samp`), chi-square homogeneity over categories (unseen
//! categories counted), Jensen-Shannon distance and Wasserstein-1.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::error::{MonitorError, Result};
use crate::special::{chi2_sf, kstwo_sf};

/// A statistic with its p-value.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct TestResult {
    pub statistic: f64,
    pub p_value: f64,
}

/// Which p-value `ks_2samp` computed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KsMethod {
    Exact,
    Asymptotic,
}

/// KS result: statistic D, two-sided p-value and the method used.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct KsResult {
    pub statistic: f64,
    pub p_value: f64,
    pub method: KsMethod,
}

fn finite_sample(x: &[f64], what: &str) -> Result<Vec<f64>> {
    if x.is_empty() {
        return Err(MonitorError::Empty { what: what.into() });
    }
    if let Some((row, &value)) = x.iter().enumerate().find(|(_, v)| !v.is_finite()) {
        return Err(MonitorError::NonFinite {
            what: what.into(),
            row,
            value,
        });
    }
    Ok(x.to_vec())
}

/// Largest sample size for which the exact p-value is attempted (scipy's `MAX_AUTO_N`).
pub const KS_MAX_EXACT_N: usize = 10_000;

/// Two-sided two-sample KS test with scipy's `method='auto'`: exact when
/// both samples have at most 10,000 values (falling back to asymptotic if the
/// exact computation is out of range), otherwise `kstwo.sf(D, round(nm/(n+m)))`.
/// Non-finite values are rejected (drop `NaN` before calling).
pub fn ks_2samp(reference: &[f64], current: &[f64]) -> Result<KsResult> {
    let mut a = finite_sample(reference, "reference")?;
    let mut b = finite_sample(current, "current")?;
    a.sort_unstable_by(f64::total_cmp);
    b.sort_unstable_by(f64::total_cmp);
    let (n1, n2) = (a.len(), b.len());
    // max over the pooled values of |F1 - F2|, ECDFs right-continuous.
    let (mut i, mut j) = (0usize, 0usize);
    let (mut dmax, mut dmin) = (0.0f64, 0.0f64);
    while i < n1 || j < n2 {
        let v = match (a.get(i), b.get(j)) {
            (Some(&x), Some(&y)) => x.min(y),
            (Some(&x), None) => x,
            (None, Some(&y)) => y,
            (None, None) => unreachable!(),
        };
        while i < n1 && a[i] <= v {
            i += 1;
        }
        while j < n2 && b[j] <= v {
            j += 1;
        }
        let diff = i as f64 / n1 as f64 - j as f64 / n2 as f64;
        dmax = dmax.max(diff);
        dmin = dmin.min(diff);
    }
    let minus = (-dmin).clamp(0.0, 1.0);
    let mut d = if minus > dmax { minus } else { dmax };
    let g = gcd(n1, n2);
    if n1.max(n2) <= KS_MAX_EXACT_N {
        let lcm = (n1 / g) as f64 * n2 as f64;
        let h = (d * lcm).round();
        d = h / lcm;
        let h = h as u64;
        if h == 0 {
            return Ok(KsResult {
                statistic: d,
                p_value: 1.0,
                method: KsMethod::Exact,
            });
        }
        let p = if n1 == n2 {
            prob_outside_square(n1 as u64, h)
        } else {
            outer_prob_inside_method(n1 as u64, n2 as u64, g as u64, h)
        };
        if p.is_finite() && (0.0..=1.0).contains(&p) {
            return Ok(KsResult {
                statistic: d,
                p_value: p,
                method: KsMethod::Exact,
            });
        }
    }
    let (m, n) = if n1 >= n2 {
        (n1 as f64, n2 as f64)
    } else {
        (n2 as f64, n1 as f64)
    };
    let en = (m * n / (m + n)).round() as u64;
    Ok(KsResult {
        statistic: d,
        p_value: kstwo_sf(en, d).clamp(0.0, 1.0),
        method: KsMethod::Asymptotic,
    })
}

fn gcd(mut a: usize, mut b: usize) -> usize {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

/// scipy's `_compute_prob_outside_square(n, h)`.
fn prob_outside_square(n: u64, h: u64) -> f64 {
    let mut p = 0.0;
    let mut k = (n / h) as i64;
    let (nf, hf) = (n as f64, h as f64);
    while k >= 0 {
        let kf = k as f64;
        let mut p1 = 1.0;
        for j in 0..h {
            let jf = j as f64;
            p1 = (nf - kf * hf - jf) * p1 / (nf + kf * hf + jf + 1.0);
        }
        p = p1 * (1.0 - p);
        k -= 1;
    }
    2.0 * p
}

/// scipy's `_compute_outer_prob_inside_method(m, n, g, h)`: the proportion
/// of lattice paths leaving the band |x/m - y/n| < h/lcm.
fn outer_prob_inside_method(m: u64, n: u64, g: u64, h: u64) -> f64 {
    let (m, n) = if m < n { (n, m) } else { (m, n) };
    let (mg, ng) = ((m / g) as i64, (n / g) as i64);
    let (m, n, h) = (m as i64, n as i64, h as i64);
    let ceil_div = |a: i64, b: i64| -> i64 { (a as f64 / b as f64).ceil() as i64 };
    let floor_div = |a: i64, b: i64| -> i64 { (a as f64 / b as f64).floor() as i64 };
    let mut minj: i64 = 0;
    let mut maxj: i64 = ceil_div(h, mg).min(n + 1);
    let mut curlen = maxj - minj;
    let len_a = (2 * maxj + 2).min(n + 1) as usize;
    let mut a = vec![1.0f64; len_a];
    for v in a.iter_mut().take(maxj as usize).skip(minj as usize) {
        *v = 0.0;
    }
    for i in 1..=m {
        let (lastminj, lastlen) = (minj, curlen);
        minj = (floor_div(ng * i - h, mg) + 1).max(0).min(n);
        maxj = ceil_div(ng * i + h, mg).min(n + 1);
        if maxj <= minj {
            return 1.0;
        }
        let mut val = if minj == 0 { 0.0 } else { 1.0 };
        for jj in 0..(maxj - minj) {
            let j = jj + minj;
            val = (a[(jj + minj - lastminj) as usize] * i as f64 + val * j as f64) / (i + j) as f64;
            a[jj as usize] = val;
        }
        curlen = maxj - minj;
        if lastlen > curlen {
            let start = (maxj - minj) as usize;
            let end = (start + (lastlen - curlen) as usize).min(a.len());
            for v in &mut a[start..end] {
                *v = 1.0;
            }
        }
    }
    a[(maxj - minj - 1) as usize]
}

/// Category counts of a sample; `None` (missing) is its own category.
pub fn category_counts<'a, I>(values: I) -> BTreeMap<Option<String>, u64>
where
    I: IntoIterator<Item = Option<&'a str>>,
{
    let mut m = BTreeMap::new();
    for v in values {
        *m.entry(v.map(str::to_owned)).or_insert(0) += 1;
    }
    m
}

/// Chi-square test of homogeneity on the 2 x K table of reference and current
/// counts over the union of categories (a category seen only in the current
/// sample is a column, not dropped), as
/// `scipy.stats.chi2_contingency(table, correction=False)`. With a single
/// category the statistic is 0 and p = 1.
pub fn chi2_from_counts(reference: &[u64], current: &[u64]) -> Result<TestResult> {
    if reference.len() != current.len() {
        return Err(MonitorError::DimensionMismatch {
            reference: reference.len(),
            current: current.len(),
        });
    }
    let nr: u64 = reference.iter().sum();
    let nc: u64 = current.iter().sum();
    if nr == 0 {
        return Err(MonitorError::Empty {
            what: "reference".into(),
        });
    }
    if nc == 0 {
        return Err(MonitorError::Empty {
            what: "current".into(),
        });
    }
    let total = (nr + nc) as f64;
    let mut stat = 0.0;
    let mut k = 0usize;
    for (&r, &c) in reference.iter().zip(current) {
        let col = (r + c) as f64;
        if col == 0.0 {
            continue;
        }
        k += 1;
        for (o, row) in [(r, nr), (c, nc)] {
            let e = row as f64 * col / total;
            let d = o as f64 - e;
            stat += d * d / e;
        }
    }
    if k <= 1 {
        return Ok(TestResult {
            statistic: 0.0,
            p_value: 1.0,
        });
    }
    Ok(TestResult {
        statistic: stat,
        p_value: chi2_sf(stat, (k - 1) as f64),
    })
}

/// Aligns two category count maps over the union of their keys.
pub fn align_counts(
    reference: &BTreeMap<Option<String>, u64>,
    current: &BTreeMap<Option<String>, u64>,
) -> (Vec<Option<String>>, Vec<u64>, Vec<u64>) {
    let keys: Vec<Option<String>> = reference
        .keys()
        .chain(current.keys())
        .cloned()
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    let r = keys
        .iter()
        .map(|k| *reference.get(k).unwrap_or(&0))
        .collect();
    let c = keys.iter().map(|k| *current.get(k).unwrap_or(&0)).collect();
    (keys, r, c)
}

/// Chi-square homogeneity test on two categorical samples.
pub fn chi2_categorical(
    reference: &[Option<&str>],
    current: &[Option<&str>],
) -> Result<TestResult> {
    let (_, r, c) = align_counts(
        &category_counts(reference.iter().copied()),
        &category_counts(current.iter().copied()),
    );
    chi2_from_counts(&r, &c)
}

/// Jensen-Shannon distance between two count vectors, base 2 (in [0, 1]), as
/// `scipy.spatial.distance.jensenshannon(p, q, base=2)`.
pub fn js_distance_from_counts(reference: &[u64], current: &[u64]) -> Result<f64> {
    if reference.len() != current.len() {
        return Err(MonitorError::DimensionMismatch {
            reference: reference.len(),
            current: current.len(),
        });
    }
    let nr: u64 = reference.iter().sum();
    let nc: u64 = current.iter().sum();
    if nr == 0 || nc == 0 {
        return Err(MonitorError::Empty {
            what: if nr == 0 { "reference" } else { "current" }.into(),
        });
    }
    let rel_entr = |x: f64, y: f64| if x > 0.0 { x * (x / y).ln() } else { 0.0 };
    let (mut left, mut right) = (0.0, 0.0);
    for (&r, &c) in reference.iter().zip(current) {
        let p = r as f64 / nr as f64;
        let q = c as f64 / nc as f64;
        let m = (p + q) / 2.0;
        left += rel_entr(p, m);
        right += rel_entr(q, m);
    }
    let js = (left + right) / 2f64.ln();
    Ok((js / 2.0).max(0.0).sqrt())
}

/// Wasserstein-1 distance between two empirical distributions, as
/// `scipy.stats.wasserstein_distance(u, v)`: the integral of |F_u - F_v|.
pub fn wasserstein_1(reference: &[f64], current: &[f64]) -> Result<f64> {
    let mut a = finite_sample(reference, "reference")?;
    let mut b = finite_sample(current, "current")?;
    a.sort_unstable_by(f64::total_cmp);
    b.sort_unstable_by(f64::total_cmp);
    let mut all: Vec<f64> = a.iter().chain(&b).copied().collect();
    all.sort_unstable_by(f64::total_cmp);
    let (na, nb) = (a.len() as f64, b.len() as f64);
    let (mut i, mut j) = (0usize, 0usize);
    let mut s = 0.0;
    for w in all.windows(2) {
        let v = w[0];
        while i < a.len() && a[i] <= v {
            i += 1;
        }
        while j < b.len() && b[j] <= v {
            j += 1;
        }
        s += (i as f64 / na - j as f64 / nb).abs() * (w[1] - w[0]);
    }
    Ok(s)
}

/// Multiple-testing correction across columns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Correction {
    None,
    Bonferroni,
    /// Benjamini-Hochberg step-up adjusted p-values (as statsmodels' `fdr_bh`).
    #[default]
    BenjaminiHochberg,
}

/// Adjusted p-values, in the input order, clipped to 1.
pub fn adjust_p_values(p: &[f64], correction: Correction) -> Vec<f64> {
    let m = p.len() as f64;
    match correction {
        Correction::None => p.to_vec(),
        Correction::Bonferroni => p.iter().map(|&v| (v * m).min(1.0)).collect(),
        Correction::BenjaminiHochberg => {
            let mut order: Vec<usize> = (0..p.len()).collect();
            order.sort_by(|&a, &b| p[a].total_cmp(&p[b]));
            let mut out = vec![0.0; p.len()];
            let mut running = f64::INFINITY;
            for (rank, &i) in order.iter().enumerate().rev() {
                let v = p[i] * m / (rank + 1) as f64;
                running = running.min(v);
                out[i] = running.min(1.0);
            }
            out
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ks_small_exact_values() {
        // scipy.stats.ks_2samp([1,2,3],[4,5,6]) -> D=1, p=0.1
        let r = ks_2samp(&[1.0, 2.0, 3.0], &[4.0, 5.0, 6.0]).unwrap();
        assert_eq!(r.statistic, 1.0);
        assert!((r.p_value - 0.1).abs() < 1e-15);
        assert!(matches!(
            ks_2samp(&[], &[1.0]),
            Err(MonitorError::Empty { .. })
        ));
        assert!(matches!(
            ks_2samp(&[1.0, f64::NAN], &[1.0]),
            Err(MonitorError::NonFinite { row: 1, .. })
        ));
    }

    #[test]
    fn bh_and_bonferroni() {
        let p = [0.01, 0.04, 0.03, 0.2];
        assert_eq!(
            adjust_p_values(&p, Correction::Bonferroni),
            vec![0.04, 0.16, 0.12, 0.8]
        );
        let bh = adjust_p_values(&p, Correction::BenjaminiHochberg);
        // statsmodels fdr_bh: [0.04, 0.05333, 0.05333, 0.2]
        assert!((bh[0] - 0.04).abs() < 1e-15);
        assert!((bh[1] - 0.16 / 3.0).abs() < 1e-15);
        assert!((bh[2] - 0.16 / 3.0).abs() < 1e-15);
        assert!((bh[3] - 0.2).abs() < 1e-15);
    }

    #[test]
    fn chi2_counts_unseen_categories() {
        let r = [Some("a"), Some("a"), Some("b")];
        let c = [Some("a"), Some("c"), None];
        let t = chi2_categorical(&r, &c).unwrap();
        assert!(t.statistic > 0.0 && t.p_value < 1.0);
        let same = chi2_categorical(&r, &r).unwrap();
        assert_eq!(same.statistic, 0.0);
    }
}
