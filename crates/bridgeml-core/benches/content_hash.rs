//! `Tensor::content_hash` (the input hash the server logs and returns) on a
//! 3x224x224 float tensor: contiguous (one `update` over the tensor's
//! little-endian bytes) and a strided view (one `update` per float, in
//! logical order).
//!
//!     cargo bench -p bridgeml-core --bench content_hash
//!     python3 scripts/bench/content_hash_reference.py   # hashlib, same bytes

use std::hint::black_box;

use bridgeml_core::Tensor;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};

fn image_sized() -> ndarray::ArrayD<f32> {
    ndarray::Array::from_shape_vec(
        (3, 224, 224),
        (0..3 * 224 * 224)
            .map(|i| (i % 1000) as f32 * 0.25 - 7.0)
            .collect(),
    )
    .expect("3x224x224 values")
    .into_dyn()
}

fn content_hash(c: &mut Criterion) {
    let a = image_sized();
    let mut g = c.benchmark_group("content_hash_3x224x224");
    g.throughput(Throughput::Bytes((a.len() * 4) as u64));
    let contiguous = Tensor::F32(a.clone());
    g.bench_function("contiguous", |b| {
        b.iter(|| black_box(&contiguous).content_hash())
    });
    let strided = Tensor::F32(a.permuted_axes(vec![0, 2, 1]));
    g.bench_function("strided", |b| b.iter(|| black_box(&strided).content_hash()));
    g.finish();
}

criterion_group!(benches, content_hash);
criterion_main!(benches);
