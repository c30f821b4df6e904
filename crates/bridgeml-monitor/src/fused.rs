//! AVX-512 fused Gaussian-kernel evaluation for the f32 MMD paths.
//!
//! A general GEMM writes the Gram tile to memory, then a second pass reads it
//! back, adds the norms and exponentiates. Here a 12 x 32 register-blocked
//! micro-kernel computes 12 x 32 dot products in 24 zmm accumulators over the
//! full feature dimension and the exponential and the sums are applied to the
//! registers directly, so the Gram matrix is never stored, not even per tile.
//! Both operands are packed once (O((n + m) d)): "A" panels of 12 rows laid out
//! `[k][12]` (broadcast operand) and "B" panels of 32 rows laid out `[k][32]`
//! (vector operand).
//!
//! The permutation test reuses the same micro-kernel twice per tile pair
//! (I, J): first for K_IJ (stored once per tile, in B layout), then for
//! W = V_J^T K_JI over the label matrix V, whose epilogue folds W into the
//! quadratic forms v^T K v directly.
//!
//! Everything is only entered after `is_x86_feature_detected!("avx512f")`.

#![allow(unsafe_code)]

#[cfg(target_arch = "x86_64")]
use std::arch::x86_64::*;

use ndarray::ArrayView2;
use rayon::prelude::*;

/// Rows of the broadcast operand per micro-tile.
const MR: usize = 12;
/// Rows of the vector operand per micro-tile (two zmm registers).
const NR: usize = 32;
/// Tile side: a multiple of lcm(MR, NR) = 96.
const TILE_MAX: usize = 288;

/// True when the fused kernels can run on this CPU.
pub(crate) fn available() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx512f")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// A 64-byte aligned, zero-initialized f32 buffer.
struct Aligned {
    v: Vec<f32>,
    off: usize,
}

impl Aligned {
    fn zeros(len: usize) -> Self {
        let v = vec![0.0f32; len + 16];
        let off = v.as_ptr().align_offset(64).min(15);
        Self { v, off }
    }
    fn as_slice(&self) -> &[f32] {
        &self.v[self.off..]
    }
    fn as_mut_slice(&mut self) -> &mut [f32] {
        &mut self.v[self.off..]
    }
}

fn tile_side(total: usize) -> usize {
    total.div_ceil(96).clamp(1, TILE_MAX / 96) * 96
}

/// The pooled rows [x; y] packed in panels of `width` rows, `[panel][k][width]`,
/// zero rows past the end (up to `padded` rows).
fn pack(x: &ArrayView2<f32>, y: &ArrayView2<f32>, padded: usize, width: usize) -> Aligned {
    let d = x.ncols();
    let n = x.nrows();
    let total = n + y.nrows();
    let mut buf = Aligned::zeros(padded * d);
    buf.as_mut_slice()[..padded * d]
        .par_chunks_mut(width * d)
        .enumerate()
        .for_each(|(p, panel)| {
            for r in 0..width {
                let i = p * width + r;
                if i >= total {
                    break;
                }
                let row = if i < n { x.row(i) } else { y.row(i - n) };
                for (k, &v) in row.iter().enumerate() {
                    panel[k * width + r] = v;
                }
            }
        });
    buf
}

/// Squared row norms of [x; y] (accumulated in f64), zero-padded.
fn norms(x: &ArrayView2<f32>, y: &ArrayView2<f32>, padded: usize) -> Vec<f32> {
    let mut out: Vec<f32> = x
        .outer_iter()
        .chain(y.outer_iter())
        .map(|r| r.iter().map(|&v| f64::from(v) * f64::from(v)).sum::<f64>() as f32)
        .collect();
    out.resize(padded + NR, 0.0);
    out
}

/// exp(x) for x <= 0, 16 lanes: the vector form of `mmd::exp_neg_f32`
/// (Cody-Waite reduction, degree-7 polynomial, `vscalefps` for 2^n).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
#[inline]
fn exp_neg_zmm(x: __m512) -> __m512 {
    let x = _mm512_max_ps(x, _mm512_set1_ps(-87.0));
    let n = _mm512_roundscale_ps::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(
        _mm512_mul_ps(x, _mm512_set1_ps(std::f32::consts::LOG2_E)),
    );
    let u = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693_359_4), x);
    let u = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.121_944_4e-4), u);
    let mut p = _mm512_set1_ps(1.0 / 5040.0);
    for c in [
        1.0 / 720.0,
        1.0 / 120.0,
        1.0 / 24.0,
        1.0 / 6.0,
        0.5,
        1.0,
        1.0,
    ] {
        p = _mm512_fmadd_ps(p, u, _mm512_set1_ps(c));
    }
    _mm512_scalef_ps(p, n)
}

/// The 12 x 32 micro-kernel: `acc[2r + h] = sum_k a[k][r] * b[k][16h..16h+16]`.
#[cfg(target_arch = "x86_64")]
macro_rules! micro_12x32 {
    ($k:expr, $a:expr, $b:expr) => {{
        let (a, b): (*const f32, *const f32) = ($a, $b);
        let mut acc = [_mm512_setzero_ps(); 2 * MR];
        for k in 0..$k {
            // SAFETY (caller): a has k * MR and b has k * NR readable floats.
            let b0 = unsafe { _mm512_loadu_ps(b.add(k * NR)) };
            let b1 = unsafe { _mm512_loadu_ps(b.add(k * NR + 16)) };
            for r in 0..MR {
                let av = _mm512_set1_ps(unsafe { *a.add(k * MR + r) });
                acc[2 * r] = _mm512_fmadd_ps(av, b0, acc[2 * r]);
                acc[2 * r + 1] = _mm512_fmadd_ps(av, b1, acc[2 * r + 1]);
            }
        }
        acc
    }};
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
#[inline]
fn load16(s: &[f32]) -> __m512 {
    assert!(s.len() >= 16);
    // SAFETY: 16 floats are readable (asserted).
    unsafe { _mm512_loadu_ps(s.as_ptr()) }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
#[inline]
fn store16(s: &mut [f32], v: __m512) {
    assert!(s.len() >= 16);
    // SAFETY: 16 floats are writable (asserted).
    unsafe { _mm512_storeu_ps(s.as_mut_ptr(), v) }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
#[inline]
fn lane_index(base: usize) -> __m512i {
    _mm512_add_epi32(
        _mm512_set1_epi32(base as i32),
        _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
    )
}

/// [S_XX (i < j), S_YY (i < j), S_XY] of one upper tile pair.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
#[allow(clippy::too_many_arguments)]
fn mmd_tile(
    ap: &[f32],
    bp: &[f32],
    norms: &[f32],
    d: usize,
    (i0, i1): (usize, usize),
    (j0, j1): (usize, usize),
    n: usize,
    total: usize,
    gamma: f32,
) -> [f64; 3] {
    assert!(ap.len() >= i1 * d && bp.len() >= j1 * d && norms.len() >= j1.max(i1));
    let mut out = [0.0f64; 3];
    let neg_gamma = _mm512_set1_ps(-gamma);
    let minus_two = _mm512_set1_ps(-2.0);
    let zero = _mm512_setzero_ps();
    let total_v = _mm512_set1_epi32(total as i32);
    let n_v = _mm512_set1_epi32(n as i32);
    for ia in (i0..i1.min(total)).step_by(MR) {
        let a = ap[ia * d..].as_ptr();
        // Lane blocks entirely at or below the diagonal contribute nothing.
        let jstart = if i0 == j0 { (ia / NR) * NR } else { j0 };
        for jb in (jstart..j1.min(total)).step_by(NR) {
            let b = bp[jb * d..].as_ptr();
            let acc = micro_12x32!(d, a, b);
            let nj = [load16(&norms[jb..]), load16(&norms[jb + 16..])];
            let jidx = [lane_index(jb), lane_index(jb + 16)];
            let (mut sxx, mut syy, mut sxy) = (zero, zero, zero);
            for r in 0..MR {
                let i = ia + r;
                if i >= total {
                    break;
                }
                let ni = _mm512_set1_ps(norms[i]);
                let iv = _mm512_set1_epi32(i as i32);
                for h in 0..2 {
                    let d2 = _mm512_fmadd_ps(acc[2 * r + h], minus_two, _mm512_add_ps(ni, nj[h]));
                    let e = exp_neg_zmm(_mm512_mul_ps(neg_gamma, _mm512_max_ps(d2, zero)));
                    let valid = _mm512_cmpgt_epi32_mask(jidx[h], iv)
                        & _mm512_cmplt_epi32_mask(jidx[h], total_v);
                    if i < n {
                        let xm = _mm512_cmplt_epi32_mask(jidx[h], n_v);
                        sxx = _mm512_mask_add_ps(sxx, valid & xm, sxx, e);
                        sxy = _mm512_mask_add_ps(sxy, valid & !xm, sxy, e);
                    } else {
                        syy = _mm512_mask_add_ps(syy, valid, syy, e);
                    }
                }
            }
            out[0] += f64::from(_mm512_reduce_add_ps(sxx));
            out[1] += f64::from(_mm512_reduce_add_ps(syy));
            out[2] += f64::from(_mm512_reduce_add_ps(sxy));
        }
    }
    out
}

fn upper_pairs(nt: usize) -> Vec<(usize, usize)> {
    (0..nt)
        .flat_map(|bi| (bi..nt).map(move |bj| (bi, bj)))
        .collect()
}

/// [S_XX, S_YY, S_XY] (each unordered within-sample pair once) of the
/// Gaussian kernel exp(-gamma ||a - b||^2) over the pooled rows.
pub(crate) fn mmd_sums(x: &ArrayView2<f32>, y: &ArrayView2<f32>, gamma: f32) -> [f64; 3] {
    assert!(available());
    let (n, d) = (x.nrows(), x.ncols());
    let total = n + y.nrows();
    let t = tile_side(total);
    let padded = total.div_ceil(t) * t;
    let ap = pack(x, y, padded, MR);
    let bp = pack(x, y, padded, NR);
    let nrm = norms(x, y, padded);
    let partials: Vec<[f64; 3]> = upper_pairs(padded / t)
        .into_par_iter()
        .map(|(bi, bj)| {
            // SAFETY: `available()` checked AVX-512F above.
            #[cfg(target_arch = "x86_64")]
            unsafe {
                mmd_tile(
                    ap.as_slice(),
                    bp.as_slice(),
                    &nrm,
                    d,
                    (bi * t, (bi + 1) * t),
                    (bj * t, (bj + 1) * t),
                    n,
                    total,
                    gamma,
                )
            }
            #[cfg(not(target_arch = "x86_64"))]
            unreachable!()
        })
        .collect();
    let mut s = [0.0f64; 3];
    for p in &partials {
        for k in 0..3 {
            s[k] += p[k];
        }
    }
    s
}

/// Per-tile-pair contributions of the permutation test.
struct PermPartial {
    q: Vec<f64>,
    s: Vec<f64>,
    all: f64,
}

/// Kernel tile K[i][j] for i in I (lanes), j in J, in B layout
/// `[(i - i0) / 32][j - j0][32]`, diagonal exactly 1, padding 0; also the row
/// sums over J for each i.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
#[allow(clippy::too_many_arguments)]
fn perm_kernel_tile(
    ap: &[f32],
    bp: &[f32],
    norms: &[f32],
    d: usize,
    (i0, t): (usize, usize),
    j0: usize,
    total: usize,
    gamma: f32,
    kt: &mut [f32],
    rsum: &mut [f32],
) {
    assert!(ap.len() >= (j0 + t) * d && bp.len() >= (i0 + t) * d);
    assert!(kt.len() >= t * t && rsum.len() >= t && norms.len() >= (i0 + t).max(j0 + t));
    let neg_gamma = _mm512_set1_ps(-gamma);
    let minus_two = _mm512_set1_ps(-2.0);
    let zero = _mm512_setzero_ps();
    let one = _mm512_set1_ps(1.0);
    let total_v = _mm512_set1_epi32(total as i32);
    for ib in (i0..i0 + t).step_by(NR) {
        let b = bp[ib * d..].as_ptr();
        let ni = [load16(&norms[ib..]), load16(&norms[ib + 16..])];
        let iidx = [lane_index(ib), lane_index(ib + 16)];
        let ivalid = [
            _mm512_cmplt_epi32_mask(iidx[0], total_v),
            _mm512_cmplt_epi32_mask(iidx[1], total_v),
        ];
        let mut rs = [zero, zero];
        let panel = &mut kt[(ib - i0) * t..(ib - i0 + NR) * t];
        for ja in (j0..j0 + t).step_by(MR) {
            let a = ap[ja * d..].as_ptr();
            let acc = micro_12x32!(d, a, b);
            for r in 0..MR {
                let j = ja + r;
                let jv = _mm512_set1_epi32(j as i32);
                let nj = _mm512_set1_ps(norms[j]);
                for h in 0..2 {
                    let d2 = _mm512_fmadd_ps(acc[2 * r + h], minus_two, _mm512_add_ps(ni[h], nj));
                    let e = exp_neg_zmm(_mm512_mul_ps(neg_gamma, _mm512_max_ps(d2, zero)));
                    let e = _mm512_mask_blend_ps(_mm512_cmpeq_epi32_mask(iidx[h], jv), e, one);
                    let keep = if j < total { ivalid[h] } else { 0 };
                    let e = _mm512_maskz_mov_ps(keep, e);
                    rs[h] = _mm512_add_ps(rs[h], e);
                    let off = (j - j0) * NR + 16 * h;
                    store16(&mut panel[off..], e);
                }
            }
        }
        store16(&mut rsum[ib - i0..], rs[0]);
        store16(&mut rsum[ib - i0 + 16..], rs[1]);
    }
}

/// Folds W = V_J^T K_JI into `qacc[c][lane] += v_ic W[c][i]` and
/// `cacc[c][lane] += W[c][i]`: the label matrix packed in A layout
/// `vp[cpanel][j][12]`, its transpose `vt[c][i]` (row stride `padded`).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
#[allow(clippy::too_many_arguments)]
fn perm_fold_tile(
    vp: &[f32],
    vt: &[f32],
    padded: usize,
    cpad: usize,
    (i0, t): (usize, usize),
    j0: usize,
    kt: &[f32],
    qacc: &mut [f32],
    cacc: &mut [f32],
) {
    assert!(vp.len() >= cpad * padded && vt.len() >= cpad * padded && kt.len() >= t * t);
    assert!(qacc.len() >= cpad * 16 && cacc.len() >= cpad * 16 && i0 + t <= padded);
    for cp in 0..cpad / MR {
        let a = vp[(cp * padded + j0) * MR..(cp * padded + j0 + t) * MR].as_ptr();
        let mut q = [_mm512_setzero_ps(); MR];
        let mut c = [_mm512_setzero_ps(); MR];
        for ib in (0..t).step_by(NR) {
            let b = kt[ib * t..(ib + NR) * t].as_ptr();
            let acc = micro_12x32!(t, a, b);
            for r in 0..MR {
                let row = &vt[(cp * MR + r) * padded + i0 + ib..];
                let v0 = load16(row);
                let v1 = load16(&row[16..]);
                q[r] = _mm512_fmadd_ps(v0, acc[2 * r], q[r]);
                q[r] = _mm512_fmadd_ps(v1, acc[2 * r + 1], q[r]);
                c[r] = _mm512_add_ps(c[r], _mm512_add_ps(acc[2 * r], acc[2 * r + 1]));
            }
        }
        for r in 0..MR {
            let o = (cp * MR + r) * 16;
            store16(&mut qacc[o..], q[r]);
            store16(&mut cacc[o..], c[r]);
        }
    }
}

/// For label columns `labels[c]` (true = X) of length n + m: the quadratic
/// forms q_c = v_c^T K v_c, s_c = v_c^T K 1 and 1^T K 1 (diagonal K_ii = 1
/// included), from one pass over the upper tile pairs of the pooled kernel.
pub(crate) fn perm_forms(
    x: &ArrayView2<f32>,
    y: &ArrayView2<f32>,
    gamma: f32,
    labels: &[Vec<bool>],
) -> (Vec<f64>, Vec<f64>, f64) {
    assert!(available());
    let d = x.ncols();
    let total = x.nrows() + y.nrows();
    let t = tile_side(total);
    let padded = total.div_ceil(t) * t;
    let ncols = labels.len();
    let cpad = ncols.div_ceil(MR) * MR;
    let ap = pack(x, y, padded, MR);
    let bp = pack(x, y, padded, NR);
    let nrm = norms(x, y, padded);
    let mut vp = Aligned::zeros(cpad * padded);
    let mut vt = Aligned::zeros(cpad * padded + NR);
    {
        let (vps, vts) = (vp.as_mut_slice(), vt.as_mut_slice());
        for (c, col) in labels.iter().enumerate() {
            for (i, &l) in col.iter().enumerate() {
                if l {
                    vps[((c / MR) * padded + i) * MR + c % MR] = 1.0;
                    vts[c * padded + i] = 1.0;
                }
            }
        }
    }
    let partials: Vec<PermPartial> = upper_pairs(padded / t)
        .into_par_iter()
        .map(|(bi, bj)| {
            let (i0, j0) = (bi * t, bj * t);
            let mut kt = Aligned::zeros(t * t);
            let mut rsum = vec![0.0f32; t];
            let mut qacc = vec![0.0f32; cpad * 16];
            let mut cacc = vec![0.0f32; cpad * 16];
            // SAFETY: `available()` checked AVX-512F above.
            #[cfg(target_arch = "x86_64")]
            unsafe {
                perm_kernel_tile(
                    ap.as_slice(),
                    bp.as_slice(),
                    &nrm,
                    d,
                    (i0, t),
                    j0,
                    total,
                    gamma,
                    kt.as_mut_slice(),
                    &mut rsum,
                );
                perm_fold_tile(
                    vp.as_slice(),
                    vt.as_slice(),
                    padded,
                    cpad,
                    (i0, t),
                    j0,
                    kt.as_slice(),
                    &mut qacc,
                    &mut cacc,
                );
            }
            let vts = vt.as_slice();
            let off_diag = bi != bj;
            let q = (0..ncols)
                .map(|c| {
                    let v: f64 = qacc[c * 16..c * 16 + 16]
                        .iter()
                        .map(|&v| f64::from(v))
                        .sum();
                    if off_diag {
                        2.0 * v
                    } else {
                        v
                    }
                })
                .collect();
            let s = (0..ncols)
                .map(|c| {
                    let row = &vts[c * padded + i0..c * padded + i0 + t];
                    let mut v: f64 = row
                        .iter()
                        .zip(&rsum)
                        .map(|(&a, &b)| f64::from(a) * f64::from(b))
                        .sum();
                    if off_diag {
                        v += cacc[c * 16..c * 16 + 16]
                            .iter()
                            .map(|&v| f64::from(v))
                            .sum::<f64>();
                    }
                    v
                })
                .collect();
            let all: f64 = rsum.iter().map(|&v| f64::from(v)).sum();
            PermPartial {
                q,
                s,
                all: if off_diag { 2.0 * all } else { all },
            }
        })
        .collect();
    let mut q = vec![0.0f64; ncols];
    let mut s = vec![0.0f64; ncols];
    let mut all = 0.0;
    for p in &partials {
        for c in 0..ncols {
            q[c] += p.q[c];
            s[c] += p.s[c];
        }
        all += p.all;
    }
    (q, s, all)
}
