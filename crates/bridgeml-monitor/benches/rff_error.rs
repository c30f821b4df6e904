//! Error of the random-Fourier-feature MMD^2 estimate against the exact
//! MMD^2_u, for docs/BENCHMARKS.md:
//! `cargo bench -p bridgeml-monitor --bench rff_error`.
//!
//! Gaussian data, x ~ N(0, I), y ~ N(shift, I) (shift per coordinate),
//! sigma^2 from the median heuristic on x. For each (n = m, d, shift) the
//! exact statistic (f64) is compared with `mmd2_rff` for D random features
//! over 5 feature seeds: mean |error|, max |error| and the mean |error|
//! relative to the exact value. Prints a markdown table.

use std::time::Instant;

use bridgeml_monitor::mmd::{median_heuristic, mmd2_rff, mmd2_unbiased, RandomFourierFeatures};
use bridgeml_monitor::rng::SplitMix64;
use ndarray::Array2;

fn normal(n: usize, d: usize, shift: f64, seed: u64) -> Array2<f64> {
    let mut r = SplitMix64::new(seed);
    Array2::from_shape_fn((n, d), |_| r.normal() + shift)
}

fn main() {
    println!("| n = m | d | shift | exact MMD²_u | D | mean abs err | max abs err | mean rel err | embed time (s) |");
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for &(n, d) in &[(1000usize, 16usize), (2000, 64), (2000, 512)] {
        for &shift in &[0.0, 0.5 / (d as f64).sqrt()] {
            let x = normal(n, d, 0.0, 100 + d as u64);
            let y = normal(n, d, shift, 200 + d as u64);
            let s2 = median_heuristic(x.view(), 0).unwrap().sigma2;
            let exact = mmd2_unbiased(x.view(), y.view(), s2).unwrap();
            for &features in &[256usize, 1024, 4096] {
                let mut errs = Vec::new();
                let t = Instant::now();
                for seed in 0..5u64 {
                    let f = RandomFourierFeatures::new(d, features, s2, seed).unwrap();
                    let a = f.embed(x.view()).unwrap();
                    let b = f.embed(y.view()).unwrap();
                    errs.push(mmd2_rff(&a, &b).unwrap() - exact);
                }
                let secs = t.elapsed().as_secs_f64() / 10.0;
                let mean_abs = errs.iter().map(|e| e.abs()).sum::<f64>() / errs.len() as f64;
                let max_abs = errs.iter().map(|e| e.abs()).fold(0.0, f64::max);
                let rel = if shift > 0.0 {
                    format!("{:.1}%", 100.0 * mean_abs / exact.abs())
                } else {
                    "— (null)".to_string()
                };
                println!(
                    "| {n} | {d} | {shift:.3} | {exact:.3e} | {features} | {mean_abs:.2e} | {max_abs:.2e} | {rel} | {secs:.3} |"
                );
            }
        }
    }
}
