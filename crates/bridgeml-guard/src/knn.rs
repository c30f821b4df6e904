//! k-nearest-neighbour distance on L2-normalized features (Sun et al., 2022,
//! "Out-of-distribution detection with deep nearest neighbors").
//!
//! Score: the Euclidean distance from the normalized query to its `k`-th
//! nearest normalized reference row; higher = more OOD. (The reference code
//! and OpenOOD use the *squared* distance from faiss `IndexFlatL2` with the
//! opposite sign; squaring is monotone, so every ranking metric is the same.)
//!
//! The search is exact and brute force: queries and the bank are cut into
//! blocks, each query block times bank block is one `f32` matrix product
//! (`|q - b|^2 = 2 - 2 q.b` for unit vectors), a bounded heap keeps the `k`
//! best per query, and blocks run on the rayon pool (over query blocks, and
//! over bank shards when there are few queries). The `k` survivors'
//! distances are then recomputed exactly in `f64`.
//!
//! Zero feature vectors stay zero after normalization (as `torch.nn.functional.normalize`
//! with its `eps` does); their distance to any unit vector is 1.

use ndarray::linalg::general_mat_mul;
use ndarray::{s, Array2, ArrayView1, ArrayView2, Axis};
use rayon::prelude::*;

use crate::scores::validate_finite;
use crate::{GuardError, Result};

const QUERY_BLOCK: usize = 64;
const BANK_BLOCK: usize = 2048;
/// Query blocks smaller than this use plain dot products instead of a GEMM.
const SMALL_BLOCK: usize = 8;

/// f32 dot product with 8 independent accumulators (vectorizes without `-ffast-math`).
#[inline]
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0.0f32; 8];
    let (ac, ar) = (a.chunks_exact(8), a.chunks_exact(8).remainder());
    let bc = b.chunks_exact(8);
    let br = bc.remainder();
    for (x, y) in ac.zip(bc) {
        for ((s, x), y) in acc.iter_mut().zip(x).zip(y) {
            *s += x * y;
        }
    }
    let tail: f32 = ar.iter().zip(br).map(|(x, y)| x * y).sum();
    acc.iter().sum::<f32>() + tail
}

/// Divides each row by its L2 norm (rows of norm 0 stay 0).
pub fn l2_normalize(x: ArrayView2<'_, f32>) -> Array2<f32> {
    let mut out = x.as_standard_layout().into_owned();
    for mut row in out.outer_iter_mut() {
        let norm = row
            .iter()
            .map(|&v| f64::from(v) * f64::from(v))
            .sum::<f64>()
            .sqrt();
        if norm > 0.0 {
            let inv = 1.0 / norm;
            row.mapv_inplace(|v| (f64::from(v) * inv) as f32);
        }
    }
    out
}

/// A bounded min-heap of `(similarity, bank row)`: keeps the `k` largest similarities.
#[derive(Debug, Clone)]
struct TopK {
    k: usize,
    heap: Vec<(f32, u32)>,
}

impl TopK {
    fn new(k: usize) -> Self {
        TopK {
            k,
            heap: Vec::with_capacity(k),
        }
    }

    #[inline]
    fn push(&mut self, sim: f32, idx: u32) {
        if self.heap.len() < self.k {
            self.heap.push((sim, idx));
            let mut i = self.heap.len() - 1;
            while i > 0 {
                let p = (i - 1) / 2;
                if self.heap[i].0 < self.heap[p].0 {
                    self.heap.swap(i, p);
                    i = p;
                } else {
                    break;
                }
            }
        } else if sim > self.heap[0].0 {
            self.heap[0] = (sim, idx);
            let n = self.heap.len();
            let mut i = 0;
            loop {
                let (l, r) = (2 * i + 1, 2 * i + 2);
                let mut m = i;
                if l < n && self.heap[l].0 < self.heap[m].0 {
                    m = l;
                }
                if r < n && self.heap[r].0 < self.heap[m].0 {
                    m = r;
                }
                if m == i {
                    break;
                }
                self.heap.swap(i, m);
                i = m;
            }
        }
    }

    /// The smallest kept similarity, or `-inf` while fewer than `k` are kept.
    #[inline]
    fn floor(&self) -> f32 {
        if self.heap.len() < self.k {
            f32::NEG_INFINITY
        } else {
            self.heap[0].0
        }
    }
}

/// An exact kNN index over an L2-normalized reference bank.
#[derive(Debug, Clone)]
pub struct KnnIndex {
    bank: Array2<f32>,
    k: usize,
}

impl KnnIndex {
    /// Normalizes `bank` (rows = reference samples) and checks `1 <= k <= rows`.
    pub fn new(bank: ArrayView2<'_, f32>, k: usize) -> Result<Self> {
        let (n, d) = bank.dim();
        if n == 0 || d == 0 {
            return Err(GuardError::Empty {
                what: "kNN reference bank".into(),
            });
        }
        if n > u32::MAX as usize {
            return Err(GuardError::InvalidParameter {
                name: "bank rows",
                value: n.to_string(),
                reason: "at most 2^32 - 1 rows".into(),
            });
        }
        if k == 0 || k > n {
            return Err(GuardError::InvalidParameter {
                name: "k",
                value: k.to_string(),
                reason: format!("must lie in 1..={n} (the bank's rows)"),
            });
        }
        validate_finite(bank, "kNN reference bank")?;
        Ok(KnnIndex {
            bank: l2_normalize(bank),
            k,
        })
    }

    pub fn k(&self) -> usize {
        self.k
    }

    pub fn dim(&self) -> usize {
        self.bank.ncols()
    }

    pub fn rows(&self) -> usize {
        self.bank.nrows()
    }

    /// The normalized bank.
    pub fn bank(&self) -> ArrayView2<'_, f32> {
        self.bank.view()
    }

    /// Distance of each query row to its `k`-th nearest bank row (higher = more OOD).
    pub fn score(&self, queries: ArrayView2<'_, f32>) -> Result<Vec<f64>> {
        let (n, d) = queries.dim();
        if n == 0 {
            return Err(GuardError::Empty {
                what: "features".into(),
            });
        }
        if d != self.dim() {
            return Err(GuardError::ShapeMismatch {
                what: "feature columns".into(),
                expected: self.dim().to_string(),
                got: d.to_string(),
            });
        }
        validate_finite(queries, "features")?;
        Ok(self.search(l2_normalize(queries).view(), false))
    }

    /// Leave-one-out scores of the bank itself: row `i`'s `k`-th nearest
    /// neighbour among the other rows. Used to calibrate a threshold on the
    /// same set that forms the bank without the trivial self-match.
    pub fn score_bank_leave_one_out(&self) -> Result<Vec<f64>> {
        if self.k >= self.rows() {
            return Err(GuardError::InvalidParameter {
                name: "k",
                value: self.k.to_string(),
                reason: format!(
                    "leave-one-out calibration on {} rows needs k < rows",
                    self.rows()
                ),
            });
        }
        Ok(self.search(self.bank.view(), true))
    }

    fn search(&self, q: ArrayView2<'_, f32>, exclude_self: bool) -> Vec<f64> {
        let nq = q.nrows();
        let nb = self.bank.nrows();
        let q_blocks = nq.div_ceil(QUERY_BLOCK);
        let b_blocks = nb.div_ceil(BANK_BLOCK);
        let threads = rayon::current_num_threads().max(1);
        // Enough tasks to keep every thread busy when there are few queries.
        let shards = (2 * threads).div_ceil(q_blocks).clamp(1, b_blocks);
        let blocks_per_shard = b_blocks.div_ceil(shards);
        let tasks: Vec<(usize, usize)> = (0..q_blocks)
            .flat_map(|qb| (0..shards).map(move |sh| (qb, sh)))
            .collect();
        let results: Vec<Vec<TopK>> = tasks
            .par_iter()
            .map(|&(qb, sh)| {
                let q0 = qb * QUERY_BLOCK;
                let q1 = (q0 + QUERY_BLOCK).min(nq);
                let qv = q.slice(s![q0..q1, ..]);
                let mut tops: Vec<TopK> = (q0..q1).map(|_| TopK::new(self.k)).collect();
                let mut sims = Array2::<f32>::zeros((q1 - q0, BANK_BLOCK));
                let b_start = sh * blocks_per_shard;
                let b_end = (b_start + blocks_per_shard).min(b_blocks);
                for bb in b_start..b_end {
                    let r0 = bb * BANK_BLOCK;
                    let r1 = (r0 + BANK_BLOCK).min(nb);
                    let bv = self.bank.slice(s![r0..r1, ..]);
                    let mut out = sims.slice_mut(s![.., ..(r1 - r0)]);
                    if q1 - q0 < SMALL_BLOCK {
                        // A GEMM would spend more time packing the bank block
                        // than multiplying: plain dot products instead.
                        for (qrow, mut orow) in qv.outer_iter().zip(out.outer_iter_mut()) {
                            let qs = qrow.as_slice().expect("normalized queries are contiguous");
                            for (o, brow) in orow.iter_mut().zip(bv.outer_iter()) {
                                *o = dot(qs, brow.as_slice().expect("bank is contiguous"));
                            }
                        }
                    } else {
                        general_mat_mul(1.0, &qv, &bv.t(), 0.0, &mut out);
                    }
                    for (qi, (row, top)) in out.outer_iter().zip(tops.iter_mut()).enumerate() {
                        let self_idx = q0 + qi;
                        let mut floor = top.floor();
                        for (j, &sim) in row.iter().enumerate() {
                            if sim > floor {
                                let idx = r0 + j;
                                if exclude_self && idx == self_idx {
                                    continue;
                                }
                                top.push(sim, idx as u32);
                                floor = top.floor();
                            }
                        }
                    }
                }
                tops
            })
            .collect();
        // Merge shards per query block, then recompute exact distances.
        let mut out = Vec::with_capacity(nq);
        for (qb, group) in results.chunks(shards).enumerate() {
            let q0 = qb * QUERY_BLOCK;
            let len = group[0].len();
            for qi in 0..len {
                let mut top = TopK::new(self.k);
                for shard in group {
                    for &(sim, idx) in &shard[qi].heap {
                        top.push(sim, idx);
                    }
                }
                let qrow = q.row(q0 + qi);
                let kth = top
                    .heap
                    .iter()
                    .map(|&(_, idx)| exact_distance(qrow, self.bank.row(idx as usize)))
                    .fold(0.0f64, f64::max);
                out.push(kth);
            }
        }
        out
    }
}

fn exact_distance(a: ArrayView1<'_, f32>, b: ArrayView1<'_, f32>) -> f64 {
    a.iter()
        .zip(b.iter())
        .map(|(&x, &y)| {
            let d = f64::from(x) - f64::from(y);
            d * d
        })
        .sum::<f64>()
        .sqrt()
}

/// Brute-force reference (one query at a time, full sort): for tests.
#[doc(hidden)]
pub fn naive_kth_distance(
    bank: ArrayView2<'_, f32>,
    queries: ArrayView2<'_, f32>,
    k: usize,
) -> Vec<f64> {
    let b = l2_normalize(bank);
    let q = l2_normalize(queries);
    q.axis_iter(Axis(0))
        .map(|qr| {
            let mut d: Vec<f64> = b.outer_iter().map(|br| exact_distance(qr, br)).collect();
            d.sort_by(f64::total_cmp);
            d[k - 1]
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::calibrate::SplitMix64;

    fn random(n: usize, d: usize, seed: u64) -> Array2<f32> {
        let mut rng = SplitMix64::new(seed);
        Array2::from_shape_fn((n, d), |_| {
            (rng.next_u64() as f64 / u64::MAX as f64 - 0.5) as f32
        })
    }

    #[test]
    fn blocked_search_matches_naive() {
        // Sizes straddle block boundaries; few queries exercise bank sharding.
        let bank = random(5000, 16, 1);
        for (nq, k) in [(3usize, 1usize), (130, 7), (1, 50)] {
            let q = random(nq, 16, 2 + nq as u64);
            let idx = KnnIndex::new(bank.view(), k).unwrap();
            let fast = idx.score(q.view()).unwrap();
            let slow = naive_kth_distance(bank.view(), q.view(), k);
            for (a, b) in fast.iter().zip(&slow) {
                assert!((a - b).abs() < 1e-6, "{a} vs {b}");
            }
        }
    }

    #[test]
    fn leave_one_out_skips_self() {
        let bank = random(300, 8, 3);
        let idx = KnnIndex::new(bank.view(), 1).unwrap();
        let loo = idx.score_bank_leave_one_out().unwrap();
        assert!(loo.iter().all(|&d| d > 0.0));
        let with_self = idx.score(bank.view()).unwrap();
        assert!(with_self.iter().all(|&d| d < 1e-3));
        let slow = naive_kth_distance(bank.view(), bank.view(), 2);
        for (a, b) in loo.iter().zip(&slow) {
            assert!((a - b).abs() < 1e-6);
        }
    }

    #[test]
    fn bad_k_and_shapes() {
        let bank = random(10, 4, 4);
        assert!(KnnIndex::new(bank.view(), 0).is_err());
        assert!(KnnIndex::new(bank.view(), 11).is_err());
        let idx = KnnIndex::new(bank.view(), 10).unwrap();
        assert!(idx.score_bank_leave_one_out().is_err());
        assert!(idx.score(random(2, 5, 5).view()).is_err());
        let mut nan = random(2, 4, 6);
        nan[[1, 2]] = f32::NAN;
        assert!(matches!(
            idx.score(nan.view()),
            Err(GuardError::NonFinite { row: 1, col: 2, .. })
        ));
    }
}
