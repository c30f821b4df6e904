//! Maximum mean discrepancy with a Gaussian kernel, exact and at scale.
//!
//! k(x, y) = exp(-||x - y||^2 / (2 sigma^2)). The statistic is the unbiased
//! MMD^2_u = S_XX / (n(n-1)) + S_YY / (m(m-1)) - 2 S_XY / (nm), diagonals
//! excluded. The pooled kernel is evaluated in square tiles
//! (`||x||^2 + ||y||^2 - 2 x.y` from one matrix product per tile, the
//! exponential fused into the same pass), only tiles on or above the
//! diagonal (symmetric blocks once), in parallel with rayon, so memory is
//! O((n + m) d + threads x tile^2) and no n x n matrix ever exists. Partial
//! sums are combined in a fixed order, so results do not depend on the
//! thread count's scheduling.
//!
//! The permutation test makes one pass over the same tiles: with the label
//! vectors of all P permutations (and the observed labelling) as the columns
//! of V, each tile contributes K_IJ V_J to the quadratic forms v^T K v and
//! v^T K 1, from which every permuted MMD^2_u follows exactly.

use ndarray::{s, Array2, ArrayView2};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::error::{invalid, MonitorError, Result};
use crate::fused;
use crate::rng::SplitMix64;

/// Rows per kernel tile.
pub const TILE: usize = 256;

/// Largest number of reference rows whose pairwise distances enter the median
/// heuristic; above it a seeded subsample of this many rows is used.
pub const MEDIAN_MAX_ROWS: usize = 2000;

/// Element types the MMD kernels run in: `f32` (fast path, fused polynomial
/// exponential) and `f64` (exact path, libm exponential).
pub trait Real:
    ndarray::LinalgScalar + PartialOrd + Send + Sync + Default + std::fmt::Debug + 'static
{
    fn to_f64(self) -> f64;
    fn from_f64(v: f64) -> Self;
    /// `row[j] = exp(-gamma * max(ni + cols[j] + row[j], 0))` where `row`
    /// holds `-2 x_i . y_j` on entry.
    fn fused_kernel_row(row: &mut [Self], ni: Self, cols: &[Self], gamma: Self);
    /// [S_XX, S_YY, S_XY] (unordered pairs) from a CPU-specific fused kernel,
    /// or None to use the portable tiled GEMM path.
    fn fused_mmd_sums(
        _x: &ArrayView2<Self>,
        _y: &ArrayView2<Self>,
        _gamma: f64,
    ) -> Option<[f64; 3]> {
        None
    }
    /// (v^T K v, v^T K 1, 1^T K 1) per label column from a CPU-specific
    /// fused kernel, or None.
    #[allow(clippy::type_complexity)]
    fn fused_perm_forms(
        _x: &ArrayView2<Self>,
        _y: &ArrayView2<Self>,
        _gamma: f64,
        _labels: &[Vec<bool>],
    ) -> Option<(Vec<f64>, Vec<f64>, f64)> {
        None
    }
}

impl Real for f64 {
    fn to_f64(self) -> f64 {
        self
    }
    fn from_f64(v: f64) -> Self {
        v
    }
    fn fused_kernel_row(row: &mut [f64], ni: f64, cols: &[f64], gamma: f64) {
        for (g, &nj) in row.iter_mut().zip(cols) {
            *g = (-gamma * (ni + nj + *g).max(0.0)).exp();
        }
    }
}

impl Real for f32 {
    fn to_f64(self) -> f64 {
        f64::from(self)
    }
    fn from_f64(v: f64) -> Self {
        v as f32
    }
    fn fused_kernel_row(row: &mut [f32], ni: f32, cols: &[f32], gamma: f32) {
        #[cfg(target_arch = "x86_64")]
        {
            if std::arch::is_x86_feature_detected!("avx2")
                && std::arch::is_x86_feature_detected!("fma")
            {
                // SAFETY: the CPU supports the features the function is compiled for.
                unsafe { fused_row_f32_avx2(row, ni, cols, gamma) };
                return;
            }
        }
        fused_row_f32_body(row, ni, cols, gamma);
    }
    fn fused_mmd_sums(x: &ArrayView2<f32>, y: &ArrayView2<f32>, gamma: f64) -> Option<[f64; 3]> {
        (fused::available() && !portable_forced()).then(|| fused::mmd_sums(x, y, gamma as f32))
    }
    fn fused_perm_forms(
        x: &ArrayView2<f32>,
        y: &ArrayView2<f32>,
        gamma: f64,
        labels: &[Vec<bool>],
    ) -> Option<(Vec<f64>, Vec<f64>, f64)> {
        (fused::available() && !portable_forced())
            .then(|| fused::perm_forms(x, y, gamma as f32, labels))
    }
}

thread_local! {
    static FORCE_PORTABLE: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

fn portable_forced() -> bool {
    FORCE_PORTABLE.with(|c| c.get())
}

/// Runs `f` with the CPU-specific f32 kernels disabled on this thread (the
/// portable tiled-GEMM path is used instead); for cross-checking the two.
pub fn with_portable_kernels<R>(f: impl FnOnce() -> R) -> R {
    FORCE_PORTABLE.with(|c| c.set(true));
    let r = f();
    FORCE_PORTABLE.with(|c| c.set(false));
    r
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn fused_row_f32_avx2(row: &mut [f32], ni: f32, cols: &[f32], gamma: f32) {
    fused_row_f32_body(row, ni, cols, gamma)
}

#[inline(always)]
fn fused_row_f32_body(row: &mut [f32], ni: f32, cols: &[f32], gamma: f32) {
    for (g, &nj) in row.iter_mut().zip(cols) {
        *g = exp_neg_f32(-gamma * (ni + nj + *g).max(0.0));
    }
}

/// exp(x) for x <= 0 in f32, branch-free so that it vectorizes: 2^round(t)
/// from the exponent bits and a degree-7 Taylor polynomial of e^u on
/// |u| <= ln2/2 (relative error below 2e-7, the f32 rounding level).
#[inline(always)]
pub fn exp_neg_f32(x: f32) -> f32 {
    const MAGIC: f32 = 12_582_912.0; // 1.5 * 2^23: adding it rounds to an integer
    let x = x.max(-87.0);
    let t = x * std::f32::consts::LOG2_E;
    let y = t + MAGIC;
    let n = y - MAGIC;
    let ni = (y.to_bits() as i32).wrapping_sub(0x4B40_0000);
    // Cody-Waite: u = x - n ln2 with ln2 split in two so that u is accurate.
    let u = (x - n * 0.693_359_4) - n * -2.121_944_4e-4;
    let p = 1.0
        + u * (1.0
            + u * (0.5
                + u * (1.0 / 6.0
                    + u * (1.0 / 24.0
                        + u * (1.0 / 120.0 + u * (1.0 / 720.0 + u * (1.0 / 5040.0)))))));
    let scale = f32::from_bits(((ni + 127) << 23) as u32);
    p * scale
}

/// The Gaussian bandwidth and how it was chosen.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Bandwidth {
    /// sigma^2 in k(x,y) = exp(-||x-y||^2 / (2 sigma^2)).
    pub sigma2: f64,
    /// The median of squared pairwise reference distances (None if sigma2 was given).
    pub median_sq_distance: Option<f64>,
    /// Rows the median was taken over.
    pub rows_used: usize,
    /// True when the median used a seeded subsample of `MEDIAN_MAX_ROWS` rows.
    pub subsampled: bool,
}

fn validate<T: Real>(x: &ArrayView2<T>, what: &str, min_rows: usize) -> Result<()> {
    if x.nrows() == 0 || x.ncols() == 0 {
        return Err(MonitorError::Empty { what: what.into() });
    }
    if x.nrows() < min_rows {
        return Err(MonitorError::TooFew {
            what: what.into(),
            needed: min_rows,
            got: x.nrows(),
        });
    }
    for (row, r) in x.outer_iter().enumerate() {
        if let Some(v) = r.iter().find(|v| !v.to_f64().is_finite()) {
            return Err(MonitorError::NonFinite {
                what: what.into(),
                row,
                value: v.to_f64(),
            });
        }
    }
    Ok(())
}

fn validate_pair<T: Real>(x: &ArrayView2<T>, y: &ArrayView2<T>) -> Result<()> {
    validate(x, "reference", 2)?;
    validate(y, "current", 2)?;
    if x.ncols() != y.ncols() {
        return Err(MonitorError::DimensionMismatch {
            reference: x.ncols(),
            current: y.ncols(),
        });
    }
    Ok(())
}

/// sigma^2 = 0.5 x median of the squared distances between distinct
/// reference pairs (i < j), numpy's median (mean of the two middle values
/// for an even count). Above `MEDIAN_MAX_ROWS` rows a seeded subsample of
/// that many rows is used (`subsampled` says so). Distances are computed in
/// f64 from differences. All-identical rows are an error (sigma would be 0).
pub fn median_heuristic<T: Real>(reference: ArrayView2<T>, seed: u64) -> Result<Bandwidth> {
    validate(&reference, "reference", 2)?;
    let n = reference.nrows();
    let (rows, subsampled): (Vec<usize>, bool) = if n > MEDIAN_MAX_ROWS {
        let mut idx = SplitMix64::new(seed).sample_indices(n, MEDIAN_MAX_ROWS);
        idx.sort_unstable();
        (idx, true)
    } else {
        ((0..n).collect(), false)
    };
    let data: Vec<Vec<f64>> = rows
        .iter()
        .map(|&i| reference.row(i).iter().map(|v| v.to_f64()).collect())
        .collect();
    let k = data.len();
    let mut d2: Vec<f64> = (0..k)
        .into_par_iter()
        .flat_map_iter(|i| {
            let a = &data[i];
            data[i + 1..]
                .iter()
                .map(move |b| a.iter().zip(b).map(|(x, y)| (x - y) * (x - y)).sum::<f64>())
        })
        .collect();
    let m = d2.len();
    let median = if m % 2 == 1 {
        *d2.select_nth_unstable_by(m / 2, f64::total_cmp).1
    } else {
        let (lo, hi, _) = d2.select_nth_unstable_by(m / 2, f64::total_cmp);
        let hi = *hi;
        let lo = lo.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        (lo + hi) / 2.0
    };
    if median <= 0.0 {
        return Err(MonitorError::Degenerate(
            "the median squared distance between reference rows is 0 (more than half the pairs \
             are identical rows); give sigma explicitly"
                .into(),
        ));
    }
    Ok(Bandwidth {
        sigma2: 0.5 * median,
        median_sq_distance: Some(median),
        rows_used: k,
        subsampled,
    })
}

/// Rows of x then y in one contiguous matrix, and their squared norms.
fn pooled<T: Real>(x: &ArrayView2<T>, y: &ArrayView2<T>) -> (Array2<T>, Vec<T>) {
    let d = x.ncols();
    let mut z = Array2::<T>::zeros((x.nrows() + y.nrows(), d));
    z.slice_mut(s![..x.nrows(), ..]).assign(x);
    z.slice_mut(s![x.nrows().., ..]).assign(y);
    let norms = z
        .outer_iter()
        .map(|r| r.iter().fold(T::zero(), |acc, &v| acc + v * v))
        .collect();
    (z, norms)
}

fn tile_pairs(n_total: usize) -> Vec<(usize, usize)> {
    let nt = n_total.div_ceil(TILE);
    let mut pairs = Vec::with_capacity(nt * (nt + 1) / 2);
    for bi in 0..nt {
        for bj in bi..nt {
            pairs.push((bi, bj));
        }
    }
    pairs
}

/// `dst (m x n) = scale * lhs (m x k) . rhs`, all row-major slices; `rhs` is
/// read as k x n with strides (`rhs_rs` along k, `rhs_cs` along n).
/// Single-threaded `gemm` call (AVX2/AVX-512 kernels chosen at run time);
/// the parallelism is across tiles.
#[allow(clippy::too_many_arguments)]
fn gemm_into<T: Real>(
    dst: &mut [T],
    (m, n, k): (usize, usize, usize),
    lhs: &[T],
    rhs: &[T],
    rhs_rs: usize,
    rhs_cs: usize,
    scale: T,
) {
    assert!(dst.len() >= m * n && lhs.len() >= m * k);
    assert!(n == 0 || k == 0 || rhs.len() > (k - 1) * rhs_rs + (n - 1) * rhs_cs);
    // SAFETY: the asserts above bound every index the call reads or writes;
    // `dst` is exclusively borrowed and does not alias `lhs` or `rhs`.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.as_mut_ptr(),
            1,
            n as isize,
            false,
            lhs.as_ptr(),
            1,
            k as isize,
            rhs.as_ptr(),
            rhs_cs as isize,
            rhs_rs as isize,
            T::zero(),
            scale,
            false,
            false,
            false,
            gemm::Parallelism::None,
        )
    }
}

/// Computes the kernel tile rows [i0,i1) x cols [j0,j1) into `buf`.
fn kernel_tile<T: Real>(
    z: &Array2<T>,
    norms: &[T],
    (i0, i1): (usize, usize),
    (j0, j1): (usize, usize),
    gamma: T,
    buf: &mut Array2<T>,
) {
    let d = z.ncols();
    let zs = z.as_slice().expect("pooled matrix is standard layout");
    let minus_two = T::zero() - T::one() - T::one();
    gemm_into(
        buf.as_slice_mut()
            .expect("tile buffers are standard layout"),
        (i1 - i0, j1 - j0, d),
        &zs[i0 * d..i1 * d],
        &zs[j0 * d..j1 * d],
        1,
        d,
        minus_two,
    );
    let cols = &norms[j0..j1];
    for (r, mut row) in buf.outer_iter_mut().enumerate() {
        let slice = row
            .as_slice_mut()
            .expect("tile buffers are standard layout");
        T::fused_kernel_row(slice, norms[i0 + r], cols, gamma);
    }
}

/// Sum of a slice in 8 lanes of T, returned as f64.
#[inline]
fn lane_sum<T: Real>(x: &[T]) -> f64 {
    let mut acc = [T::zero(); 8];
    let chunks = x.chunks_exact(8);
    let rem = chunks.remainder();
    for c in chunks {
        for k in 0..8 {
            acc[k] = acc[k] + c[k];
        }
    }
    let mut s: f64 = acc.iter().map(|v| v.to_f64()).sum();
    for v in rem {
        s += v.to_f64();
    }
    s
}

fn gamma_of(sigma2: f64) -> Result<f64> {
    if !(sigma2.is_finite() && sigma2 > 0.0) {
        return Err(invalid(
            "sigma2",
            format!("must be finite and > 0, got {sigma2}"),
        ));
    }
    Ok(1.0 / (2.0 * sigma2))
}

/// Exact unbiased MMD^2_u between `x` (n x d) and `y` (m x d), n, m >= 2.
pub fn mmd2_unbiased<T: Real>(x: ArrayView2<T>, y: ArrayView2<T>, sigma2: f64) -> Result<f64> {
    validate_pair(&x, &y)?;
    let gamma64 = gamma_of(sigma2)?;
    let (n, m) = (x.nrows(), y.nrows());
    let (nf, mf) = (n as f64, m as f64);
    let finish = |s: [f64; 3]| {
        2.0 * s[0] / (nf * (nf - 1.0)) + 2.0 * s[1] / (mf * (mf - 1.0)) - 2.0 * s[2] / (nf * mf)
    };
    if let Some(s) = T::fused_mmd_sums(&x, &y, gamma64) {
        return Ok(finish(s));
    }
    Ok(finish(tiled_sums(&x, &y, gamma64, true, true)))
}

/// [S_XX, S_YY, S_XY] (unordered pairs, diagonals excluded) on the portable
/// tiled path. With `with_xx` false the tiles lying wholly inside the X block
/// are skipped and the returned S_XX is 0: for callers that keep S_XX of a
/// fixed reference. `y` may have no rows (then only S_XX is computed).
fn tiled_sums<T: Real>(
    x: &ArrayView2<T>,
    y: &ArrayView2<T>,
    gamma64: f64,
    with_xx: bool,
    parallel: bool,
) -> [f64; 3] {
    let n = x.nrows();
    let gamma = T::from_f64(gamma64);
    let (z, norms) = pooled(x, y);
    let total = n + y.nrows();
    let mut pairs = tile_pairs(total);
    if !with_xx {
        pairs.retain(|&(_, bj)| ((bj + 1) * TILE).min(total) > n);
    }
    let tile = |(bi, bj): (usize, usize)| {
        let (i0, i1) = (bi * TILE, ((bi + 1) * TILE).min(total));
        let (j0, j1) = (bj * TILE, ((bj + 1) * TILE).min(total));
        let mut buf = Array2::<T>::zeros((i1 - i0, j1 - j0));
        kernel_tile(&z, &norms, (i0, i1), (j0, j1), gamma, &mut buf);
        // [S_XX (i<j), S_YY (i<j), S_XY]
        let mut acc = [0.0f64; 3];
        for (r, row) in buf.outer_iter().enumerate() {
            let gi = i0 + r;
            let row = row.as_slice().expect("standard layout");
            let start = if bi == bj { gi + 1 } else { j0 };
            if start >= j1 {
                continue;
            }
            let split = n.clamp(start, j1);
            let first = lane_sum(&row[start - j0..split - j0]);
            let second = lane_sum(&row[split - j0..]);
            if gi < n {
                acc[0] += first;
                acc[2] += second;
            } else {
                // gi >= n implies every column >= n.
                acc[1] += second;
            }
        }
        acc
    };
    // Either way the partials are combined in tile order: same result.
    let partials: Vec<[f64; 3]> = if parallel {
        pairs.into_par_iter().map(tile).collect()
    } else {
        pairs.into_iter().map(tile).collect()
    };
    let mut s = [0.0f64; 3];
    for p in &partials {
        for k in 0..3 {
            s[k] += p[k];
        }
    }
    if !with_xx {
        s[0] = 0.0;
    }
    s
}

/// The result of an MMD permutation test.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MmdTest {
    /// Observed MMD^2_u.
    pub statistic: f64,
    /// (1 + #{permuted >= observed}) / (1 + P).
    pub p_value: f64,
    pub permutations: usize,
    pub seed: u64,
    /// The P permuted statistics, in permutation order.
    pub null_statistics: Vec<f64>,
}

/// (v^T K v, v^T K 1, 1^T K 1) for every label column, from the tiled GEMM
/// path: each upper tile K_IJ and W = K_IJ V_J (a second GEMM).
fn perm_forms_portable<T: Real>(
    x: &ArrayView2<T>,
    y: &ArrayView2<T>,
    gamma: T,
    labels: &[Vec<bool>],
) -> (Vec<f64>, Vec<f64>, f64) {
    let total = x.nrows() + y.nrows();
    let (z, norms) = pooled(x, y);
    // Columns: the label columns, then a column of ones.
    let cols = labels.len() + 1;
    let mut v = Array2::<T>::zeros((total, cols));
    for (c, col) in labels.iter().enumerate() {
        for (i, &l) in col.iter().enumerate() {
            if l {
                v[[i, c]] = T::one();
            }
        }
    }
    for i in 0..total {
        v[[i, cols - 1]] = T::one();
    }
    let partials: Vec<(Vec<f64>, Vec<f64>, f64)> = tile_pairs(total)
        .into_par_iter()
        .map(|(bi, bj)| {
            let (i0, i1) = (bi * TILE, ((bi + 1) * TILE).min(total));
            let (j0, j1) = (bj * TILE, ((bj + 1) * TILE).min(total));
            let mut k = Array2::<T>::zeros((i1 - i0, j1 - j0));
            kernel_tile(&z, &norms, (i0, i1), (j0, j1), gamma, &mut k);
            if bi == bj {
                for d in 0..(i1 - i0) {
                    k[[d, d]] = T::one();
                }
            }
            let mut w = Array2::<T>::zeros((i1 - i0, cols));
            let vs = v.as_slice().expect("standard layout");
            gemm_into(
                w.as_slice_mut().expect("standard layout"),
                (i1 - i0, cols, j1 - j0),
                k.as_slice().expect("standard layout"),
                &vs[j0 * cols..j1 * cols],
                cols,
                1,
                T::one(),
            );
            let vi = v.slice(s![i0..i1, ..]);
            let mut q = vec![0.0f64; cols - 1];
            let mut sv = vec![0.0f64; cols - 1];
            let ones = cols - 1;
            // Column sums of W and V_I-weighted sums, row by row in f64.
            let mut wsum = vec![0.0f64; cols];
            for (wr, vr) in w.outer_iter().zip(vi.outer_iter()) {
                let w1 = wr[ones].to_f64();
                for c in 0..ones {
                    let vic = vr[c].to_f64();
                    let wc = wr[c].to_f64();
                    q[c] += vic * wc;
                    sv[c] += vic * w1;
                    wsum[c] += wc;
                }
                wsum[ones] += w1;
            }
            if bi == bj {
                (q, sv, wsum[ones])
            } else {
                for c in 0..ones {
                    q[c] *= 2.0;
                    sv[c] += wsum[c];
                }
                (q, sv, 2.0 * wsum[ones])
            }
        })
        .collect();
    let ones = cols - 1;
    let mut q = vec![0.0f64; ones];
    let mut sv = vec![0.0f64; ones];
    let mut all = 0.0;
    for (pq, ps, pt) in &partials {
        for c in 0..ones {
            q[c] += pq[c];
            sv[c] += ps[c];
        }
        all += pt;
    }
    (q, sv, all)
}

/// MMD^2_u permutation test from one pass over the pooled kernel.
///
/// Permutation p relabels the pooled rows by a seeded shuffle; all P
/// relabellings and the observed one are the columns of a 0/1 matrix V and
/// each kernel tile contributes `K_IJ V_J` to the quadratic forms.
pub fn mmd_permutation_test<T: Real>(
    x: ArrayView2<T>,
    y: ArrayView2<T>,
    sigma2: f64,
    permutations: usize,
    seed: u64,
) -> Result<MmdTest> {
    validate_pair(&x, &y)?;
    if permutations == 0 {
        return Err(invalid("permutations", "must be at least 1"));
    }
    let gamma = gamma_of(sigma2)?;
    let (n, m) = (x.nrows(), y.nrows());
    let total = n + m;
    // Column 0: observed labels; 1..=P: successive seeded shuffles.
    let mut labels: Vec<Vec<bool>> = Vec::with_capacity(permutations + 1);
    let mut current: Vec<bool> = (0..total).map(|i| i < n).collect();
    let mut rng = SplitMix64::new(seed);
    for c in 0..=permutations {
        if c > 0 {
            rng.shuffle(&mut current);
        }
        labels.push(current.clone());
    }
    let (q, sv, all) = match T::fused_perm_forms(&x, &y, gamma, &labels) {
        Some(forms) => forms,
        None => perm_forms_portable(&x, &y, T::from_f64(gamma), &labels),
    };
    let (nf, mf) = (n as f64, m as f64);
    let stat = |c: usize| {
        let sxx = q[c] - nf;
        let sxy = sv[c] - q[c];
        let syy = all - 2.0 * sv[c] + q[c] - mf;
        sxx / (nf * (nf - 1.0)) + syy / (mf * (mf - 1.0)) - 2.0 * sxy / (nf * mf)
    };
    let observed = stat(0);
    let null: Vec<f64> = (1..=permutations).map(stat).collect();
    let exceed = null.iter().filter(|&&v| v >= observed).count();
    Ok(MmdTest {
        statistic: observed,
        p_value: (1 + exceed) as f64 / (1 + permutations) as f64,
        permutations,
        seed,
        null_statistics: null,
    })
}

/// Random Fourier features approximating the Gaussian kernel:
/// z(x) = sqrt(2/D) cos(W^T x + b), W ~ N(0, I / sigma^2), b ~ U(0, 2 pi).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RandomFourierFeatures {
    pub dim: usize,
    pub n_features: usize,
    pub sigma2: f64,
    pub seed: u64,
    w: Vec<f64>,
    b: Vec<f64>,
}

/// A mergeable per-window summary: sum of feature vectors, sum of their
/// squared norms and the row count. Two windows' summaries add up to the
/// summary of their union.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MeanEmbedding {
    pub sum: Vec<f64>,
    pub sum_sq_norms: f64,
    pub count: u64,
}

impl MeanEmbedding {
    pub fn merge(&mut self, other: &MeanEmbedding) -> Result<()> {
        if self.sum.len() != other.sum.len() {
            return Err(MonitorError::DimensionMismatch {
                reference: self.sum.len(),
                current: other.sum.len(),
            });
        }
        for (a, b) in self.sum.iter_mut().zip(&other.sum) {
            *a += b;
        }
        self.sum_sq_norms += other.sum_sq_norms;
        self.count += other.count;
        Ok(())
    }
}

impl RandomFourierFeatures {
    pub fn new(dim: usize, n_features: usize, sigma2: f64, seed: u64) -> Result<Self> {
        gamma_of(sigma2)?;
        if dim == 0 || n_features == 0 {
            return Err(invalid(
                "dimensions",
                "dim and n_features must be at least 1",
            ));
        }
        let mut rng = SplitMix64::new(seed);
        let sd = 1.0 / sigma2.sqrt();
        let w = (0..dim * n_features).map(|_| rng.normal() * sd).collect();
        let b = (0..n_features)
            .map(|_| rng.next_f64() * 2.0 * std::f64::consts::PI)
            .collect();
        Ok(Self {
            dim,
            n_features,
            sigma2,
            seed,
            w,
            b,
        })
    }

    /// Feature-space summary of the rows of `x`.
    pub fn embed<T: Real>(&self, x: ArrayView2<T>) -> Result<MeanEmbedding> {
        validate(&x, "sample", 1)?;
        if x.ncols() != self.dim {
            return Err(MonitorError::DimensionMismatch {
                reference: self.dim,
                current: x.ncols(),
            });
        }
        let w = ArrayView2::from_shape((self.dim, self.n_features), &self.w).expect("shape");
        let scale = (2.0 / self.n_features as f64).sqrt();
        let starts: Vec<usize> = (0..x.nrows()).step_by(512).collect();
        let parts: Vec<MeanEmbedding> = starts
            .into_par_iter()
            .map(|start| {
                let chunk = x.slice(s![start..(start + 512).min(x.nrows()), ..]);
                let xf = chunk.mapv(|v| v.to_f64());
                let mut zz = xf.dot(&w);
                let mut e = MeanEmbedding {
                    sum: vec![0.0; self.n_features],
                    sum_sq_norms: 0.0,
                    count: chunk.nrows() as u64,
                };
                for mut row in zz.outer_iter_mut() {
                    for ((v, b), s) in row.iter_mut().zip(&self.b).zip(e.sum.iter_mut()) {
                        *v = scale * (*v + b).cos();
                        *s += *v;
                        e.sum_sq_norms += *v * *v;
                    }
                }
                e
            })
            .collect();
        let mut out = MeanEmbedding {
            sum: vec![0.0; self.n_features],
            sum_sq_norms: 0.0,
            count: 0,
        };
        for p in &parts {
            out.merge(p)?;
        }
        Ok(out)
    }
}

/// Unbiased MMD^2 in random-feature space (diagonal terms removed, as MMD^2_u).
pub fn mmd2_rff(a: &MeanEmbedding, b: &MeanEmbedding) -> Result<f64> {
    if a.count < 2 || b.count < 2 {
        return Err(MonitorError::TooFew {
            what: if a.count < 2 { "reference" } else { "current" }.into(),
            needed: 2,
            got: a.count.min(b.count) as usize,
        });
    }
    if a.sum.len() != b.sum.len() {
        return Err(MonitorError::DimensionMismatch {
            reference: a.sum.len(),
            current: b.sum.len(),
        });
    }
    let dot = |u: &[f64], v: &[f64]| u.iter().zip(v).map(|(p, q)| p * q).sum::<f64>();
    let (n, m) = (a.count as f64, b.count as f64);
    Ok((dot(&a.sum, &a.sum) - a.sum_sq_norms) / (n * (n - 1.0))
        + (dot(&b.sum, &b.sum) - b.sum_sq_norms) / (m * (m - 1.0))
        - 2.0 * dot(&a.sum, &b.sum) / (n * m))
}

/// A fixed reference sample for repeated MMD^2_u against many windows: the
/// reference's own kernel sum S_XX, the O(n^2 d) part, is computed once here,
/// so each window costs O((n + m) m d) instead of O((n + m)^2 d). The result
/// equals [`mmd2_unbiased`] of the same pair (same tiles, same summation
/// order; tested to 1e-12).
#[derive(Debug, Clone)]
pub struct MmdReference {
    reference: Array2<f64>,
    sigma2: f64,
    threshold: f64,
    reference_sum: f64,
}

impl MmdReference {
    pub fn new(reference: Array2<f64>, sigma2: f64, threshold: f64) -> Result<Self> {
        validate(&reference.view(), "reference", 2)?;
        let gamma = gamma_of(sigma2)?;
        let empty = Array2::<f64>::zeros((0, reference.ncols()));
        let reference_sum = tiled_sums(&reference.view(), &empty.view(), gamma, true, true)[0];
        Ok(Self {
            reference,
            sigma2,
            threshold,
            reference_sum,
        })
    }

    /// Width of the rows.
    pub fn dim(&self) -> usize {
        self.reference.ncols()
    }

    /// The alert threshold on MMD^2_u.
    pub fn threshold(&self) -> f64 {
        self.threshold
    }

    /// MMD^2_u of `window` (m x d, m >= 2) against the reference, on the
    /// calling thread only: a monitor evaluating windows in the background
    /// must not take the process's rayon pool from request work.
    pub fn statistic(&self, window: ArrayView2<f64>) -> Result<f64> {
        let x = self.reference.view();
        validate_pair(&x, &window)?;
        let s = tiled_sums(&x, &window, gamma_of(self.sigma2)?, false, false);
        let (nf, mf) = (x.nrows() as f64, window.nrows() as f64);
        Ok(
            2.0 * self.reference_sum / (nf * (nf - 1.0)) + 2.0 * s[1] / (mf * (mf - 1.0))
                - 2.0 * s[2] / (nf * mf),
        )
    }
}

/// A tumbling-window MMD monitor holding the window's rows (O(window x d)):
/// push rows; when `window` rows have arrived it returns MMD^2_u against the
/// reference and whether it exceeds the threshold, then starts over.
#[derive(Debug, Clone)]
pub struct MmdWindowMonitor {
    reference: std::sync::Arc<MmdReference>,
    window: usize,
    buffer: Vec<f64>,
    /// A finished window's storage handed back by [`Self::recycle`], for
    /// the next window: a server then allocates (and frees) no window-sized
    /// buffer per window.
    spare: Option<Vec<f64>>,
}

impl MmdWindowMonitor {
    pub fn new(reference: Array2<f64>, sigma2: f64, threshold: f64, window: usize) -> Result<Self> {
        if window < 2 {
            return Err(invalid(
                "window",
                "MMD^2_u needs windows of at least 2 rows",
            ));
        }
        let reference = MmdReference::new(reference, sigma2, threshold)?;
        Ok(Self {
            buffer: Vec::with_capacity(window * reference.dim()),
            spare: None,
            reference: std::sync::Arc::new(reference),
            window,
        })
    }

    /// The shared reference, for evaluating windows elsewhere (another thread).
    pub fn reference(&self) -> std::sync::Arc<MmdReference> {
        std::sync::Arc::clone(&self.reference)
    }

    /// Rows per window.
    pub fn window(&self) -> usize {
        self.window
    }

    /// Adds one row; returns `(statistic, alert)` when it completes a window.
    pub fn push(&mut self, row: &[f64]) -> Result<Option<(f64, bool)>> {
        match self.push_deferred(row)? {
            Some(w) => {
                let stat = self.reference.statistic(w.view())?;
                self.recycle(w);
                Ok(Some((stat, stat > self.reference.threshold)))
            }
            None => Ok(None),
        }
    }

    /// Hands back a window returned by [`Self::push_deferred`] once it has
    /// been evaluated; its storage holds the window after next. (Anything
    /// not window-shaped is dropped.)
    pub fn recycle(&mut self, rows: Array2<f64>) {
        let d = self.reference.dim();
        if self.spare.is_none() && rows.dim() == (self.window, d) {
            // A window-shaped array holds at least window x d values.
            let (mut storage, _) = rows.into_raw_vec_and_offset();
            storage.clear();
            self.spare = Some(storage);
        }
    }

    /// Adds one row; returns the completed window's rows (for
    /// [`MmdReference::statistic`] later) instead of evaluating it here.
    pub fn push_deferred(&mut self, row: &[f64]) -> Result<Option<Array2<f64>>> {
        let d = self.reference.dim();
        if row.len() != d {
            return Err(MonitorError::DimensionMismatch {
                reference: d,
                current: row.len(),
            });
        }
        self.buffer.extend_from_slice(row);
        if self.buffer.len() == self.window * d {
            let next = self
                .spare
                .take()
                .unwrap_or_else(|| Vec::with_capacity(self.window * d));
            let rows = std::mem::replace(&mut self.buffer, next);
            return Ok(Some(
                Array2::from_shape_vec((self.window, d), rows).expect("window x d rows"),
            ));
        }
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::Array2;

    #[test]
    fn recycled_window_storage_holds_the_window_after_next() {
        let reference = data(20, 3, 0.0, 1);
        let mut m = MmdWindowMonitor::new(reference, 1.0, 0.1, 4).unwrap();
        let rows = data(12, 3, 0.5, 2);
        let mut windows = Vec::new();
        for r in rows.rows() {
            if let Some(w) = m.push_deferred(r.as_slice().unwrap()).unwrap() {
                windows.push(w);
            }
        }
        assert_eq!(windows.len(), 3);
        for (k, w) in windows.iter().enumerate() {
            assert_eq!(w, &rows.slice(ndarray::s![4 * k..4 * k + 4, ..]));
        }
        // Hand the first window back: the third window (the buffer opened
        // when the second closed is in use) lands in its storage.
        let mut m = MmdWindowMonitor::new(data(20, 3, 0.0, 1), 1.0, 0.1, 4).unwrap();
        let mut first = None;
        let mut got = Vec::new();
        for (i, r) in rows.rows().into_iter().enumerate() {
            if let Some(w) = m.push_deferred(r.as_slice().unwrap()).unwrap() {
                if i == 3 {
                    first = Some(w.as_ptr());
                    m.recycle(w);
                } else {
                    got.push(w);
                }
            }
        }
        assert_eq!(got[1].as_ptr(), first.unwrap());
        assert_eq!(got[1], rows.slice(ndarray::s![8..12, ..]));
        assert_eq!(got[0], rows.slice(ndarray::s![4..8, ..]));
        // A foreign shape is not kept.
        m.recycle(Array2::zeros((2, 3)));
        assert!(m.spare.is_none());
    }

    fn data(n: usize, d: usize, shift: f64, seed: u64) -> Array2<f64> {
        let mut r = SplitMix64::new(seed);
        Array2::from_shape_fn((n, d), |_| r.normal() + shift)
    }

    fn naive(x: &Array2<f64>, y: &Array2<f64>, s2: f64) -> f64 {
        let k = |a: ndarray::ArrayView1<f64>, b: ndarray::ArrayView1<f64>| {
            (-(&a - &b).mapv(|v| v * v).sum() / (2.0 * s2)).exp()
        };
        let (n, m) = (x.nrows(), y.nrows());
        let (mut sxx, mut syy, mut sxy) = (0.0, 0.0, 0.0);
        for i in 0..n {
            for j in 0..n {
                if i != j {
                    sxx += k(x.row(i), x.row(j));
                }
            }
        }
        for i in 0..m {
            for j in 0..m {
                if i != j {
                    syy += k(y.row(i), y.row(j));
                }
            }
        }
        for i in 0..n {
            for j in 0..m {
                sxy += k(x.row(i), y.row(j));
            }
        }
        let (nf, mf) = (n as f64, m as f64);
        sxx / (nf * (nf - 1.0)) + syy / (mf * (mf - 1.0)) - 2.0 * sxy / (nf * mf)
    }

    #[test]
    fn cached_reference_equals_the_full_statistic() {
        // Reference sizes below, at and across the 256-row tiles; windows
        // smaller and larger than a tile.
        for (n, m, d) in [(40, 7, 3), (256, 100, 4), (600, 100, 5), (530, 300, 2)] {
            let x = data(n, d, 0.0, 21);
            let y = data(m, d, 0.4, 22);
            let s2 = median_heuristic(x.view(), 0).unwrap().sigma2;
            let full = mmd2_unbiased(x.view(), y.view(), s2).unwrap();
            let r = MmdReference::new(x.clone(), s2, 0.01).unwrap();
            let cached = r.statistic(y.view()).unwrap();
            assert!(
                (cached - full).abs() <= 1e-12 * full.abs().max(1e-9),
                "n={n} m={m}: {cached} vs {full}"
            );
            let mut w = MmdWindowMonitor::new(x.clone(), s2, full / 2.0, m).unwrap();
            let mut out = None;
            for row in y.outer_iter() {
                out = w.push(row.as_slice().unwrap()).unwrap().or(out);
            }
            let (stat, alert) = out.expect("the window closed");
            assert_eq!(stat, cached);
            assert!(alert);
            assert!(w.push(&vec![0.0; d + 1]).is_err());
        }
    }

    #[test]
    fn tiled_equals_naive_across_tile_boundaries() {
        let x = data(300, 5, 0.0, 1);
        let y = data(290, 5, 0.3, 2);
        let a = mmd2_unbiased(x.view(), y.view(), 2.5).unwrap();
        let b = naive(&x, &y, 2.5);
        assert!((a - b).abs() < 1e-12 * b.abs().max(1e-3), "{a} {b}");
        let t = mmd_permutation_test(x.view(), y.view(), 2.5, 20, 3).unwrap();
        assert!((t.statistic - b).abs() < 1e-10, "{} {b}", t.statistic);
        assert!(t.p_value < 0.1);
        let xf = x.mapv(|v| v as f32);
        let yf = y.mapv(|v| v as f32);
        let c = mmd2_unbiased(xf.view(), yf.view(), 2.5).unwrap();
        assert!((c - b).abs() < 1e-5, "{c} {b}");
    }

    #[test]
    fn f32_kernels_match_f64_across_tiles_and_padding() {
        // Sizes around the 12/32/96/288 blocking of the fused kernel and the
        // 256 tiles of the portable one; odd d.
        for (n, m, d, shift) in [(2, 3, 1, 0.5), (300, 290, 5, 0.3), (150, 700, 33, 0.1)] {
            let x = data(n, d, 0.0, 11);
            let y = data(m, d, shift, 12);
            let s2 = median_heuristic(x.view(), 0).unwrap().sigma2;
            let exact = naive(&x, &y, s2);
            let (xf, yf) = (x.mapv(|v| v as f32), y.mapv(|v| v as f32));
            let fast = mmd2_unbiased(xf.view(), yf.view(), s2).unwrap();
            let portable =
                with_portable_kernels(|| mmd2_unbiased(xf.view(), yf.view(), s2)).unwrap();
            assert!(
                (fast - exact).abs() < 1e-5,
                "n={n} m={m}: {fast} vs {exact}"
            );
            assert!(
                (portable - exact).abs() < 1e-5,
                "n={n} m={m}: {portable} vs {exact}"
            );
            let t64 = mmd_permutation_test(x.view(), y.view(), s2, 30, 5).unwrap();
            let t32 = mmd_permutation_test(xf.view(), yf.view(), s2, 30, 5).unwrap();
            let tp =
                with_portable_kernels(|| mmd_permutation_test(xf.view(), yf.view(), s2, 30, 5))
                    .unwrap();
            assert!(
                (t64.statistic - exact).abs() < 1e-12,
                "{} {exact}",
                t64.statistic
            );
            for t in [&t32, &tp] {
                assert!(
                    (t.statistic - exact).abs() < 1e-5,
                    "{} {exact}",
                    t.statistic
                );
                for (a, b) in t.null_statistics.iter().zip(&t64.null_statistics) {
                    assert!((a - b).abs() < 1e-5, "n={n} m={m}: {a} vs {b}");
                }
            }
        }
    }

    #[test]
    fn fast_exp_is_accurate() {
        let mut worst = 0.0f64;
        for i in 0..100_000 {
            let x = -(i as f32) * 0.0008;
            let e = f64::from(exp_neg_f32(x));
            let t = f64::from(x).exp();
            worst = worst.max(((e - t) / t).abs());
        }
        assert!(worst < 3e-7, "{worst}");
    }

    #[test]
    fn bad_input() {
        let x = data(10, 3, 0.0, 1);
        let y = data(1, 3, 0.0, 1);
        assert!(matches!(
            mmd2_unbiased(x.view(), y.view(), 1.0),
            Err(MonitorError::TooFew {
                needed: 2,
                got: 1,
                ..
            })
        ));
        let y = data(10, 4, 0.0, 1);
        assert!(matches!(
            mmd2_unbiased(x.view(), y.view(), 1.0),
            Err(MonitorError::DimensionMismatch { .. })
        ));
        let mut y = data(10, 3, 0.0, 1);
        y[[4, 1]] = f64::NAN;
        assert!(matches!(
            mmd2_unbiased(x.view(), y.view(), 1.0),
            Err(MonitorError::NonFinite { row: 4, .. })
        ));
        let c = Array2::<f64>::ones((10, 3));
        assert!(matches!(
            median_heuristic(c.view(), 0),
            Err(MonitorError::Degenerate(_))
        ));
    }

    #[test]
    fn rff_approximates_exact_and_merges() {
        let x = data(400, 4, 0.0, 5);
        let y = data(400, 4, 0.5, 6);
        let exact = mmd2_unbiased(x.view(), y.view(), 4.0).unwrap();
        let f = RandomFourierFeatures::new(4, 4096, 4.0, 9).unwrap();
        let ex = f.embed(x.view()).unwrap();
        let ey = f.embed(y.view()).unwrap();
        let approx = mmd2_rff(&ex, &ey).unwrap();
        assert!((approx - exact).abs() < 0.25 * exact, "{approx} {exact}");
        let mut a = f.embed(x.slice(s![..200, ..])).unwrap();
        a.merge(&f.embed(x.slice(s![200.., ..])).unwrap()).unwrap();
        assert_eq!(a.count, ex.count);
        assert!((a.sum_sq_norms - ex.sum_sq_norms).abs() < 1e-9);
    }
}
