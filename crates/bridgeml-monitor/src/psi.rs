//! Population Stability Index over stored reference bins.
//!
//! Edges are the reference quantiles at k/n_bins (k = 1..n_bins-1, numpy's
//! default linear interpolation), duplicates merged; bins are right-open
//! `[e_k, e_{k+1})` with -inf/+inf at the ends; `NaN` is counted in a separate
//! missing bin. p_i = max(count_i / n, eps) for the reference, q_i likewise
//! for the current sample, and PSI = sum_i (q_i - p_i) ln(q_i / p_i).
//! Because the reference is reduced to [`ReferenceBins`] (edges and counts),
//! a server can keep the bins and update PSI from current counts alone.

use serde::{Deserialize, Serialize};

use crate::error::{invalid, MonitorError, Result};

/// How the reference is cut into bins.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Binning {
    /// Reference quantiles at k/n_bins (the definition of issue 4).
    #[default]
    Quantile,
    /// `n_bins` equal-width bins between the reference minimum and maximum
    /// (edges `min + k (max - min) / n_bins`).
    EqualWidth,
}

/// PSI settings: `n_bins` (default 10), `eps` floor (default 1e-4), binning.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct PsiConfig {
    pub n_bins: usize,
    pub eps: f64,
    pub binning: Binning,
}

impl Default for PsiConfig {
    fn default() -> Self {
        Self {
            n_bins: 10,
            eps: 1e-4,
            binning: Binning::Quantile,
        }
    }
}

impl PsiConfig {
    fn validate(&self) -> Result<()> {
        if self.n_bins < 1 {
            return Err(invalid("n_bins", "must be at least 1"));
        }
        if !(self.eps > 0.0 && self.eps < 1.0) {
            return Err(invalid(
                "eps",
                format!("must be in (0, 1), got {}", self.eps),
            ));
        }
        Ok(())
    }
}

/// The PSI bands of issue 4: < 0.1 none, 0.1-0.2 moderate, > 0.2 significant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PsiBand {
    None,
    Moderate,
    Significant,
}

impl PsiBand {
    /// Band of a PSI value (0.1 itself is moderate; 0.2 itself is moderate).
    pub fn of(psi: f64) -> Self {
        if psi < 0.1 {
            PsiBand::None
        } else if psi <= 0.2 {
            PsiBand::Moderate
        } else {
            PsiBand::Significant
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            PsiBand::None => "none",
            PsiBand::Moderate => "moderate",
            PsiBand::Significant => "significant",
        }
    }
}

/// The default PSI alert threshold (start of the "significant" band).
pub const PSI_ALERT: f64 = 0.2;

/// Interior edges plus reference counts: everything needed to score a
/// current sample without the reference data.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReferenceBins {
    /// Sorted, distinct interior edges; bin i is `[edges[i-1], edges[i])`.
    pub edges: Vec<f64>,
    /// `edges.len() + 1` counts of non-missing reference values.
    pub counts: Vec<u64>,
    /// Reference values that were `NaN`.
    pub missing: u64,
    pub config: PsiConfig,
}

/// Counts of a sample over some [`ReferenceBins`]' edges.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct BinCounts {
    pub counts: Vec<u64>,
    pub missing: u64,
}

impl BinCounts {
    pub fn total(&self) -> u64 {
        self.counts.iter().sum::<u64>() + self.missing
    }

    /// Adds another window's counts (same edges).
    pub fn merge(&mut self, other: &BinCounts) {
        for (a, b) in self.counts.iter_mut().zip(&other.counts) {
            *a += b;
        }
        self.missing += other.missing;
    }
}

/// Runs a counting kernel compiled for AVX-512 when the CPU has it (the
/// branch-free loops then vectorize 8 lanes wide instead of SSE2's 2).
macro_rules! dispatch {
    ($body:ident($($arg:expr),*)) => {{
        #[cfg(target_arch = "x86_64")]
        {
            #[target_feature(enable = "avx512f,avx512bw,avx512vl")]
            #[allow(unsafe_code)]
            unsafe fn wide<A, R>(f: impl FnOnce(A) -> R, a: A) -> R {
                f(a)
            }
            if std::arch::is_x86_feature_detected!("avx512bw")
                && std::arch::is_x86_feature_detected!("avx512vl")
            {
                // SAFETY: the CPU supports the enabled features.
                #[allow(unsafe_code)]
                unsafe {
                    wide(|()| $body($($arg),*), ())
                }
            } else {
                $body($($arg),*)
            }
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            $body($($arg),*)
        }
    }};
}

#[inline(always)]
fn any_infinite(x: &[f64]) -> bool {
    x.chunks(CHUNK)
        .any(|c| c.iter().fold(false, |a, v| a | v.is_infinite()))
}

#[inline(always)]
fn any_nan(x: &[f64]) -> bool {
    x.chunks(CHUNK)
        .any(|c| c.iter().fold(false, |a, v| a | v.is_nan()))
}

fn check_no_inf(x: &[f64], what: &str) -> Result<()> {
    if !dispatch!(any_infinite(x)) {
        return Ok(());
    }
    if let Some((row, &value)) = x.iter().enumerate().find(|(_, v)| v.is_infinite()) {
        return Err(MonitorError::NonFinite {
            what: what.into(),
            row,
            value,
        });
    }
    Ok(())
}

/// numpy's `quantile(x, qs)` with the default 'linear' method for sorted
/// requests, computed by selection (no full sort). `x` must be finite and
/// non-empty; it is reordered (or, for large inputs, left as is).
pub fn quantiles_linear(x: &mut [f64], qs: &[f64]) -> Vec<f64> {
    let n = x.len();
    debug_assert!(n > 0);
    // Virtual index (n-1) q, previous = floor, gamma = frac, as numpy does.
    let plan: Vec<(usize, f64)> = qs
        .iter()
        .map(|&q| {
            let v = (n as f64 - 1.0) * q;
            let lo = v.floor();
            ((lo as usize).min(n - 1), v - lo)
        })
        .collect();
    let mut wanted: Vec<usize> = plan
        .iter()
        .flat_map(|&(lo, _)| [lo, (lo + 1).min(n - 1)])
        .collect();
    wanted.sort_unstable();
    wanted.dedup();
    let order = match order_statistics_bracketed(x, &wanted) {
        Some(v) => v,
        None => {
            multi_select(x, 0, &wanted);
            wanted.iter().map(|&w| x[w]).collect()
        }
    };
    let at = |r: usize| order[wanted.binary_search(&r).expect("requested rank")];
    plan.iter()
        .map(|&(lo, g)| lerp(at(lo), at((lo + 1).min(n - 1)), g))
        .collect()
}

/// One pass: `hist[t]` counts the values with exactly t interval lower bounds
/// `<= v`; the values inside interval t-1 (`v <= highs[t-1]`) are copied out.
#[inline(always)]
fn bracket_pass(lows: &[f64], highs: &[f64], x: &[f64], hist: &mut [u64], inside: &mut [Vec<f64>]) {
    let mut idx = [0u8; CHUNK];
    let mut hits: Vec<(u8, f64)> = vec![(0, 0.0); CHUNK];
    for chunk in x.chunks(CHUNK) {
        let idx = &mut idx[..chunk.len()];
        ge_counts_per_value(lows, chunk, idx);
        let mut len = 0usize;
        for (&t, &v) in idx.iter().zip(chunk) {
            hist[t as usize] += 1;
            // Branch-free append of the (rare) values inside interval t-1.
            let b = (t as usize).saturating_sub(1);
            hits[len] = (t, v);
            len += usize::from(t > 0 && v <= highs[b]);
        }
        for &(t, v) in &hits[..len] {
            inside[t as usize - 1].push(v);
        }
    }
}

/// [`quantiles_linear`] of a finite slice, copying it only when the exact
/// fallback (selection on all values) is needed.
fn quantiles_unmodified(x: &[f64], qs: &[f64]) -> Vec<f64> {
    let n = x.len();
    let plan: Vec<(usize, f64)> = qs
        .iter()
        .map(|&q| {
            let v = (n as f64 - 1.0) * q;
            let lo = v.floor();
            ((lo as usize).min(n - 1), v - lo)
        })
        .collect();
    let mut wanted: Vec<usize> = plan
        .iter()
        .flat_map(|&(lo, _)| [lo, (lo + 1).min(n - 1)])
        .collect();
    wanted.sort_unstable();
    wanted.dedup();
    match order_statistics_bracketed(x, &wanted) {
        Some(order) => {
            let at = |r: usize| order[wanted.binary_search(&r).expect("requested rank")];
            plan.iter()
                .map(|&(lo, g)| lerp(at(lo), at((lo + 1).min(n - 1)), g))
                .collect()
        }
        None => quantiles_linear(&mut x.to_vec(), qs),
    }
}

/// Values per sample used to bracket the wanted order statistics.
const BRACKET_SAMPLE: usize = 16_384;

/// The order statistics `wanted` (sorted ranks) of a large finite `x` without
/// reordering it: a strided sample gives, for each rank, a value interval
/// [lo, hi] that should contain it; one pass counts the values below each
/// interval and copies out the few inside, and the ranks are selected inside
/// those small buffers. Exact whenever each rank falls in its interval (checked
/// with the counts); None otherwise (the caller then selects on all of `x`).
fn order_statistics_bracketed(x: &[f64], wanted: &[usize]) -> Option<Vec<f64>> {
    let n = x.len();
    if n < 8 * BRACKET_SAMPLE || wanted.len() > 2 * MAX_SMALL_EDGES {
        return None;
    }
    let step = n / BRACKET_SAMPLE;
    let mut sample: Vec<f64> = (0..BRACKET_SAMPLE).map(|i| x[i * step]).collect();
    sample.sort_unstable_by(f64::total_cmp);
    let s = BRACKET_SAMPLE as f64;
    // Intervals in sample ranks, +-3.5 binomial sd of a random sample's rank.
    let mut ranges: Vec<(usize, usize)> = wanted
        .iter()
        .map(|&r| {
            let p = r as f64 / (n as f64 - 1.0).max(1.0);
            let c = p * (s - 1.0);
            let half = 3.5 * (s * p * (1.0 - p)).sqrt() + 8.0;
            let lo = (c - half).floor().max(0.0) as usize;
            let hi = ((c + half).ceil() as usize).min(BRACKET_SAMPLE - 1);
            (lo, hi)
        })
        .collect();
    // Merge overlapping intervals (in value space they must be disjoint).
    ranges.sort_unstable();
    let mut merged: Vec<(f64, f64)> = Vec::new();
    let mut cur = ranges[0];
    for &(lo, hi) in &ranges[1..] {
        if sample[lo] <= sample[cur.1] {
            cur.1 = cur.1.max(hi);
        } else {
            merged.push((sample[cur.0], sample[cur.1]));
            cur = (lo, hi);
        }
    }
    merged.push((sample[cur.0], sample[cur.1]));
    let lows: Vec<f64> = merged.iter().map(|b| b.0).collect();
    let highs: Vec<f64> = merged.iter().map(|b| b.1).collect();
    // hist[t]: values with exactly t interval lower bounds <= v.
    let mut hist = vec![0u64; lows.len() + 1];
    let mut inside: Vec<Vec<f64>> = vec![Vec::new(); lows.len()];
    dispatch!(bracket_pass(&lows, &highs, x, &mut hist, &mut inside));
    let mut below = 0u64;
    let mut out = vec![f64::NAN; wanted.len()];
    for (b, buf) in inside.iter_mut().enumerate() {
        // Values < lows[b]: those with t <= b.
        below += hist[b];
        let lo = below as usize;
        let in_range: Vec<(usize, usize)> = wanted
            .iter()
            .enumerate()
            .filter(|(_, &r)| r >= lo && r < lo + buf.len())
            .map(|(k, &r)| (k, r - lo))
            .collect();
        let ranks: Vec<usize> = in_range.iter().map(|&(_, r)| r).collect();
        multi_select(buf, 0, &ranks);
        for &(k, r) in &in_range {
            out[k] = buf[r];
        }
    }
    out.iter().all(|v| !v.is_nan()).then_some(out)
}

/// numpy's `_lerp`: a + (b-a) t, or b - (b-a)(1-t) when t >= 0.5.
fn lerp(a: f64, b: f64, t: f64) -> f64 {
    let d = b - a;
    if t >= 0.5 {
        b - d * (1.0 - t)
    } else {
        a + d * t
    }
}

/// Places the order statistics `wanted` (sorted, absolute indices) of
/// `x` (whose first element has absolute index `offset`) in position.
fn multi_select(x: &mut [f64], offset: usize, wanted: &[usize]) {
    if wanted.is_empty() || x.len() <= 1 {
        return;
    }
    let mid = wanted.len() / 2;
    let k = wanted[mid] - offset;
    x.select_nth_unstable_by(k, f64::total_cmp);
    let (left, rest) = x.split_at_mut(k);
    multi_select(left, offset, &wanted[..mid]);
    multi_select(&mut rest[1..], offset + k + 1, &wanted[mid + 1..]);
}

/// Edge sets up to this size are counted with the branch-free vector path.
const MAX_SMALL_EDGES: usize = 16;
/// Values per block of the counting passes (stays in L1).
const CHUNK: usize = 4096;

/// Bin index of a finite value: the number of edges `<= v` (right-open bins).
#[inline]
fn bin_of(edges: &[f64], v: f64) -> usize {
    if edges.len() <= MAX_SMALL_EDGES {
        edges.iter().map(|&e| usize::from(v >= e)).sum()
    } else {
        edges.partition_point(|&e| e <= v)
    }
}

/// `out[i] = #{e in edges : chunk[i] >= e}` (0 for NaN), edge by edge over
/// the block so that the compiler vectorizes the inner loop.
#[inline(always)]
fn ge_counts_per_value(edges: &[f64], chunk: &[f64], out: &mut [u8]) {
    out.iter_mut().for_each(|o| *o = 0);
    for &e in edges {
        for (o, &v) in out.iter_mut().zip(chunk) {
            *o += u8::from(v >= e);
        }
    }
}

/// `ge[k] += #{v in x : v >= edges[k]}`; returns the number of NaN.
#[inline(always)]
fn count_ge(edges: &[f64], x: &[f64], ge: &mut [u64]) -> u64 {
    let mut missing = 0u64;
    for chunk in x.chunks(CHUNK) {
        for (g, &e) in ge.iter_mut().zip(edges) {
            let c: u32 = chunk.iter().map(|&v| u32::from(v >= e)).sum();
            *g += u64::from(c);
        }
        let nan: u32 = chunk.iter().map(|&v| u32::from(v.is_nan())).sum();
        missing += u64::from(nan);
    }
    missing
}

/// Counts `x` over `edges`; `NaN` goes to the missing bin.
pub fn count_bins(edges: &[f64], x: &[f64]) -> BinCounts {
    let mut counts = vec![0u64; edges.len() + 1];
    let mut missing = 0u64;
    if edges.len() <= MAX_SMALL_EDGES {
        // Per edge, #{v >= e} over L1-sized blocks (vectorized compares and
        // adds); bin counts are differences of these cumulative counts.
        let mut ge = vec![0u64; edges.len()];
        missing = dispatch!(count_ge(edges, x, &mut ge));
        let finite = x.len() as u64 - missing;
        let mut prev = finite;
        for (k, &g) in ge.iter().enumerate() {
            counts[k] = prev - g;
            prev = g;
        }
        counts[edges.len()] = prev;
    } else {
        for &v in x {
            if v.is_nan() {
                missing += 1;
            } else {
                counts[bin_of(edges, v)] += 1;
            }
        }
    }
    BinCounts { counts, missing }
}

impl ReferenceBins {
    /// Builds the bins from reference values. `NaN` is missing; infinite
    /// values are rejected; a reference with no finite value is an error.
    pub fn fit(reference: &[f64], config: PsiConfig) -> Result<Self> {
        config.validate()?;
        if reference.is_empty() {
            return Err(MonitorError::Empty {
                what: "reference".into(),
            });
        }
        check_no_inf(reference, "reference")?;
        let has_nan = dispatch!(any_nan(reference));
        let mut finite: Vec<f64> = if has_nan {
            reference.iter().copied().filter(|v| !v.is_nan()).collect()
        } else {
            Vec::new()
        };
        if has_nan && finite.is_empty() {
            return Err(MonitorError::Degenerate(
                "every reference value is missing (NaN): no bin edges can be computed".into(),
            ));
        }
        let k = config.n_bins;
        let mut edges = match config.binning {
            Binning::Quantile => {
                let qs: Vec<f64> = (1..k).map(|i| i as f64 / k as f64).collect();
                if has_nan {
                    quantiles_linear(&mut finite, &qs)
                } else {
                    quantiles_unmodified(reference, &qs)
                }
            }
            Binning::EqualWidth => {
                let vals = || reference.iter().copied().filter(|v| !v.is_nan());
                let lo = vals().fold(f64::INFINITY, f64::min);
                let hi = vals().fold(f64::NEG_INFINITY, f64::max);
                let step = (hi - lo) / k as f64;
                (1..k).map(|i| lo + i as f64 * step).collect()
            }
        };
        edges.dedup();
        let c = count_bins(&edges, reference);
        Ok(Self {
            edges,
            counts: c.counts,
            missing: c.missing,
            config,
        })
    }

    /// Number of reference values, missing included.
    pub fn n(&self) -> u64 {
        self.counts.iter().sum::<u64>() + self.missing
    }

    pub fn reference_counts(&self) -> BinCounts {
        BinCounts {
            counts: self.counts.clone(),
            missing: self.missing,
        }
    }

    /// Counts a current sample over these bins (infinite values rejected).
    pub fn count(&self, current: &[f64]) -> Result<BinCounts> {
        check_no_inf(current, "current")?;
        Ok(count_bins(&self.edges, current))
    }

    /// PSI of current counts against the reference counts.
    pub fn psi_from_counts(&self, current: &BinCounts) -> Result<f64> {
        psi_from_counts(&self.reference_counts(), current, self.config.eps)
    }

    /// PSI of a current sample.
    pub fn psi(&self, current: &[f64]) -> Result<f64> {
        if current.is_empty() {
            return Err(MonitorError::Empty {
                what: "current".into(),
            });
        }
        self.psi_from_counts(&self.count(current)?)
    }
}

/// PSI from two count vectors over the same bins (missing bin included):
/// sum_i (q_i - p_i) ln(q_i / p_i), p_i = max(ref_i / n_ref, eps).
pub fn psi_from_counts(reference: &BinCounts, current: &BinCounts, eps: f64) -> Result<f64> {
    if reference.counts.len() != current.counts.len() {
        return Err(MonitorError::DimensionMismatch {
            reference: reference.counts.len(),
            current: current.counts.len(),
        });
    }
    let (nr, nc) = (reference.total(), current.total());
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
    let (nr, nc) = (nr as f64, nc as f64);
    let term = |r: u64, c: u64| {
        let p = (r as f64 / nr).max(eps);
        let q = (c as f64 / nc).max(eps);
        (q - p) * (q / p).ln()
    };
    let mut s = 0.0;
    for (&r, &c) in reference.counts.iter().zip(&current.counts) {
        s += term(r, c);
    }
    s += term(reference.missing, current.missing);
    Ok(s)
}

/// One-shot PSI with the given configuration.
pub fn psi(reference: &[f64], current: &[f64], config: PsiConfig) -> Result<f64> {
    ReferenceBins::fit(reference, config)?.psi(current)
}

/// A tumbling-window PSI monitor holding O(bins) state: push values as they
/// arrive; every `window` values it yields the window's PSI and starts over.
#[derive(Debug, Clone)]
pub struct PsiWindowMonitor {
    bins: ReferenceBins,
    window: usize,
    current: BinCounts,
}

impl PsiWindowMonitor {
    pub fn new(bins: ReferenceBins, window: usize) -> Result<Self> {
        if window == 0 {
            return Err(invalid("window", "must be at least 1"));
        }
        let current = BinCounts {
            counts: vec![0; bins.counts.len()],
            missing: 0,
        };
        Ok(Self {
            bins,
            window,
            current,
        })
    }

    /// Adds one value; returns the PSI of the window it completed, if any.
    pub fn push(&mut self, v: f64) -> Result<Option<f64>> {
        if v.is_infinite() {
            return Err(MonitorError::NonFinite {
                what: "current".into(),
                row: self.current.total() as usize,
                value: v,
            });
        }
        if v.is_nan() {
            self.current.missing += 1;
        } else {
            self.current.counts[bin_of(&self.bins.edges, v)] += 1;
        }
        if self.current.total() as usize == self.window {
            let psi = self.bins.psi_from_counts(&self.current)?;
            self.current.counts.iter_mut().for_each(|c| *c = 0);
            self.current.missing = 0;
            return Ok(Some(psi));
        }
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_match_numpy_linear() {
        // np.quantile([3,1,2,10], [0.25,0.5,0.9]) = [1.75, 2.5, 7.9]
        let mut x = vec![3.0, 1.0, 2.0, 10.0];
        let q = quantiles_linear(&mut x, &[0.25, 0.5, 0.9]);
        assert_eq!(q[0], 1.75);
        assert_eq!(q[1], 2.5);
        assert!((q[2] - 7.9).abs() < 1e-12);
    }

    fn sorted_quantiles(x: &[f64], qs: &[f64]) -> Vec<f64> {
        let mut v = x.to_vec();
        v.sort_by(f64::total_cmp);
        let n = v.len();
        qs.iter()
            .map(|&q| {
                let p = (n as f64 - 1.0) * q;
                let lo = p.floor();
                let i = lo as usize;
                lerp(v[i], v[(i + 1).min(n - 1)], p - lo)
            })
            .collect()
    }

    #[test]
    fn bracketed_quantiles_and_counts_are_exact() {
        let mut r = crate::rng::SplitMix64::new(3);
        let qs: Vec<f64> = (1..10).map(|k| k as f64 / 10.0).collect();
        let normal: Vec<f64> = (0..300_001).map(|_| r.normal()).collect();
        let mut sorted = normal.clone();
        sorted.sort_by(f64::total_cmp);
        let rounded: Vec<f64> = normal.iter().map(|v| (v * 3.0).round()).collect();
        let mut reversed = sorted.clone();
        reversed.reverse();
        // Heavy ties, sorted and reversed input, a periodic pattern the
        // strided sample aliases with (exercises the exact fallback).
        let periodic: Vec<f64> = (0..262_144)
            .map(|i| ((i % 16) * 1000 + i / 16) as f64)
            .collect();
        for x in [&normal, &sorted, &rounded, &reversed, &periodic] {
            let want = sorted_quantiles(x, &qs);
            let got = quantiles_linear(&mut x.clone(), &qs);
            assert_eq!(got, want);
            let mut edges = want.clone();
            edges.dedup();
            let c = count_bins(&edges, x);
            for (k, &cnt) in c.counts.iter().enumerate() {
                let lo = if k == 0 {
                    f64::NEG_INFINITY
                } else {
                    edges[k - 1]
                };
                let hi = edges.get(k).copied().unwrap_or(f64::INFINITY);
                let n = x.iter().filter(|&&v| v >= lo && v < hi).count() as u64;
                assert_eq!(cnt, n, "bin {k}");
            }
        }
        let with_nan = [1.0, f64::NAN, 2.0, 3.0, f64::NAN];
        let c = count_bins(&[2.0], &with_nan);
        assert_eq!((c.counts, c.missing), (vec![1, 2], 2));
    }

    #[test]
    fn identical_samples_have_zero_psi_and_constant_reference_is_defined() {
        let x: Vec<f64> = (0..1000).map(|i| (i as f64).sin()).collect();
        assert_eq!(psi(&x, &x, PsiConfig::default()).unwrap(), 0.0);
        let c = vec![1.0; 50];
        let bins = ReferenceBins::fit(&c, PsiConfig::default()).unwrap();
        assert_eq!(bins.edges, vec![1.0]);
        assert_eq!(bins.counts, vec![0, 50]);
        let p = bins.psi(&[0.0; 50]).unwrap();
        assert!(p > 1.0 && p.is_finite());
    }

    #[test]
    fn bad_input_is_an_error() {
        let cfg = PsiConfig::default();
        assert!(matches!(
            psi(&[], &[1.0], cfg),
            Err(MonitorError::Empty { .. })
        ));
        assert!(matches!(
            psi(&[1.0], &[], cfg),
            Err(MonitorError::Empty { .. })
        ));
        assert!(matches!(
            psi(&[f64::NAN, f64::NAN], &[1.0], cfg),
            Err(MonitorError::Degenerate(_))
        ));
        assert!(matches!(
            psi(&[1.0, f64::INFINITY], &[1.0], cfg),
            Err(MonitorError::NonFinite { row: 1, .. })
        ));
    }

    #[test]
    fn window_monitor_equals_batch() {
        let r: Vec<f64> = (0..500).map(|i| (i as f64 * 0.37).cos()).collect();
        let c: Vec<f64> = (0..200).map(|i| (i as f64 * 0.11).cos() + 0.3).collect();
        let bins = ReferenceBins::fit(&r, PsiConfig::default()).unwrap();
        let mut m = PsiWindowMonitor::new(bins.clone(), 100).unwrap();
        let got: Vec<f64> = c.iter().filter_map(|&v| m.push(v).unwrap()).collect();
        assert_eq!(got.len(), 2);
        assert_eq!(got[0], bins.psi(&c[..100]).unwrap());
        assert_eq!(got[1], bins.psi(&c[100..]).unwrap());
    }
}
