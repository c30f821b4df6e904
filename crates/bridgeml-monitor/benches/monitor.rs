//! Issue 4 performance targets. Run with
//! `cargo bench -p bridgeml-monitor --bench monitor`; compare with
//! `python3 scripts/bench/monitor_numpy.py` run right after (same inputs'
//! shapes; generated data). `BRIDGEML_BENCH_LARGE=1` adds the n=m=50,000,
//! d=128 exact MMD (one run; memory is O((n+m) d + threads x 256^2)).

use std::hint::black_box;
use std::time::{Duration, Instant};

use bridgeml_monitor::mmd::{mmd2_unbiased, mmd_permutation_test, MmdReference};
use bridgeml_monitor::psi::{psi, PsiConfig};
use bridgeml_monitor::rng::SplitMix64;
use criterion::{criterion_group, criterion_main, Criterion};
use ndarray::Array2;

fn normal_f32(n: usize, d: usize, shift: f32, seed: u64) -> Array2<f32> {
    let mut r = SplitMix64::new(seed);
    Array2::from_shape_fn((n, d), |_| r.normal() as f32 + shift)
}

fn benches(c: &mut Criterion) {
    let mut r = SplitMix64::new(1);
    let reference: Vec<f64> = (0..1_000_000).map(|_| r.normal()).collect();
    let current: Vec<f64> = (0..1_000_000).map(|_| r.normal() * 1.1 + 0.05).collect();
    c.bench_function("psi_1M_vs_1M_one_thread", |b| {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(1)
            .build()
            .unwrap();
        b.iter(|| {
            pool.install(|| {
                psi(
                    black_box(&reference),
                    black_box(&current),
                    PsiConfig::default(),
                )
                .unwrap()
            })
        })
    });

    let x = normal_f32(5000, 512, 0.0, 2);
    let y = normal_f32(5000, 512, 0.02, 3);
    let sigma2 = 512.0;
    let mut g = c.benchmark_group("mmd");
    g.sample_size(10).measurement_time(Duration::from_secs(8));
    g.bench_function("exact_mmd2u_n5000_d512_f32", |b| {
        b.iter(|| mmd2_unbiased(black_box(x.view()), black_box(y.view()), sigma2).unwrap())
    });
    let x = normal_f32(1000, 128, 0.0, 4);
    let y = normal_f32(1000, 128, 0.05, 5);
    g.bench_function("perm100_n1000_d128_f32", |b| {
        b.iter(|| {
            mmd_permutation_test(black_box(x.view()), black_box(y.view()), 128.0, 100, 7).unwrap()
        })
    });
    // A serving window (100 rows) against a fixed reference of MobileNetV2
    // embeddings' size: the full statistic recomputes the reference's own
    // O(n^2 d) kernel sum every window, the cached reference does not. Both
    // in f64 (the server's monitors) and on one thread (serving runs them
    // on one background thread).
    let one = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .unwrap();
    let x = normal_f32(1000, 1280, 0.0, 10).mapv(f64::from);
    let y = normal_f32(100, 1280, 0.05, 11).mapv(f64::from);
    let cached = MmdReference::new(x.clone(), 1280.0, 0.0).unwrap();
    g.bench_function("window100_vs_ref1000_d1280_full", |b| {
        b.iter(|| {
            one.install(|| mmd2_unbiased(black_box(x.view()), black_box(y.view()), 1280.0))
                .unwrap()
        })
    });
    g.bench_function("window100_vs_ref1000_d1280_cached_reference", |b| {
        b.iter(|| cached.statistic(black_box(y.view())).unwrap())
    });
    g.finish();

    if std::env::var_os("BRIDGEML_BENCH_LARGE").is_some() {
        let x = normal_f32(50_000, 128, 0.0, 8);
        let y = normal_f32(50_000, 128, 0.0, 9);
        let t = Instant::now();
        let v = mmd2_unbiased(x.view(), y.view(), 128.0).unwrap();
        eprintln!(
            "exact_mmd2u_n50000_d128_f32: {:.2} s (MMD^2_u = {v:.3e})",
            t.elapsed().as_secs_f64()
        );
    }
}

criterion_group!(monitor, benches);
criterion_main!(monitor);
