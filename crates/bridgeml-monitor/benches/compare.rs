//! One timed case per process, for `scripts/bench/monitor_compare.py`, which
//! interleaves these runs with numpy on the same shapes and reports medians.
//!
//! `cargo bench -p bridgeml-monitor --bench compare -- <case> [runs]` where
//! case is `psi` (1M vs 1M scores, one thread), `mmd5000` (exact MMD^2_u,
//! n=m=5,000, d=512, f32), `perm1000` (100-permutation test, n=m=1,000,
//! d=128, f32) or `mmd50000` (n=m=50,000, d=128). Prints one line per timed
//! run: `<case> <seconds>`, after one untimed warm-up run (none for
//! mmd50000).

use std::hint::black_box;
use std::time::Instant;

use bridgeml_monitor::mmd::{mmd2_unbiased, mmd_permutation_test};
use bridgeml_monitor::psi::{psi, PsiConfig};
use bridgeml_monitor::rng::SplitMix64;
use ndarray::Array2;

fn normal_f32(n: usize, d: usize, shift: f32, seed: u64) -> Array2<f32> {
    let mut r = SplitMix64::new(seed);
    Array2::from_shape_fn((n, d), |_| r.normal() as f32 + shift)
}

fn time(case: &str, runs: usize, warm: bool, mut f: impl FnMut() -> f64) {
    if warm {
        black_box(f());
    }
    for _ in 0..runs {
        let t = Instant::now();
        let v = black_box(f());
        println!("{case} {:.6} {v:.6e}", t.elapsed().as_secs_f64());
    }
}

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let case = args.first().map(String::as_str).unwrap_or("all");
    let runs: usize = args.get(1).and_then(|r| r.parse().ok()).unwrap_or(1);
    let run = |c: &str| case == c || case == "all";
    if run("psi") {
        let mut r = SplitMix64::new(1);
        let reference: Vec<f64> = (0..1_000_000).map(|_| r.normal()).collect();
        let current: Vec<f64> = (0..1_000_000).map(|_| r.normal() * 1.1 + 0.05).collect();
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(1)
            .build()
            .unwrap();
        pool.install(|| {
            time("psi", runs, true, || {
                psi(&reference, &current, PsiConfig::default()).unwrap()
            })
        });
    }
    if run("mmd5000") {
        let x = normal_f32(5000, 512, 0.0, 2);
        let y = normal_f32(5000, 512, 0.02, 3);
        time("mmd5000", runs, true, || {
            mmd2_unbiased(x.view(), y.view(), 512.0).unwrap()
        });
    }
    if run("perm1000") {
        let x = normal_f32(1000, 128, 0.0, 4);
        let y = normal_f32(1000, 128, 0.05, 5);
        time("perm1000", runs, true, || {
            mmd_permutation_test(x.view(), y.view(), 128.0, 100, 7)
                .unwrap()
                .p_value
        });
    }
    if case == "mmd50000" {
        let x = normal_f32(50_000, 128, 0.0, 8);
        let y = normal_f32(50_000, 128, 0.0, 9);
        time("mmd50000", runs, false, || {
            mmd2_unbiased(x.view(), y.view(), 128.0).unwrap()
        });
    }
}
