//! Guard scoring throughput.
//!
//! `cargo bench -p bridgeml-guard --bench guard`
//!
//! - energy: per-sample cost of `-logsumexp` over 10 and 1000 logits
//!   (a batch of 4096 rows; criterion reports time per batch and elements/s).
//! - knn: exact k=50 search of 256 queries against a 60,000 x 128 bank.

use std::hint::black_box;

use bridgeml_guard::calibrate::SplitMix64;
use bridgeml_guard::{scores, KnnIndex};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use ndarray::Array2;

fn random(n: usize, d: usize, seed: u64) -> Array2<f32> {
    let mut rng = SplitMix64::new(seed);
    Array2::from_shape_fn((n, d), |_| {
        (rng.next_u64() as f64 / u64::MAX as f64 * 8.0 - 4.0) as f32
    })
}

fn energy(c: &mut Criterion) {
    let mut g = c.benchmark_group("energy");
    for classes in [10usize, 1000] {
        let logits = random(4096, classes, classes as u64);
        g.throughput(Throughput::Elements(4096));
        g.bench_function(format!("4096x{classes}"), |b| {
            b.iter(|| {
                let rows = logits.outer_iter();
                let mut acc = 0.0;
                for r in rows {
                    acc += scores::energy_row(black_box(r.as_slice().unwrap()), 1.0);
                }
                acc
            })
        });
        g.bench_function(format!("4096x{classes}_validated_batch"), |b| {
            b.iter(|| scores::energy(black_box(logits.view()), 1.0).unwrap())
        });
    }
    g.finish();
}

fn knn(c: &mut Criterion) {
    let bank = random(60_000, 128, 1);
    let queries = random(256, 128, 2);
    let index = KnnIndex::new(bank.view(), 50).unwrap();
    let mut g = c.benchmark_group("knn_60000x128_k50");
    g.sample_size(10);
    g.throughput(Throughput::Elements(256));
    g.bench_function("256_queries", |b| {
        b.iter(|| index.score(black_box(queries.view())).unwrap())
    });
    let one = random(1, 128, 3);
    g.throughput(Throughput::Elements(1));
    g.bench_function("1_query", |b| {
        b.iter(|| index.score(black_box(one.view())).unwrap())
    });
    g.finish();
}

criterion_group!(benches, energy, knn);
criterion_main!(benches);
