//! Throughput of the preprocessing engine on the committed photos:
//! decode + resize to 224x224 (Pillow-exact bilinear) + to_float + normalize,
//! from encoded bytes in memory, single thread; per-stage timings; and batch
//! throughput on rayon pools of 1 and 2 threads.
//!
//!     cargo bench -p bridgeml-preprocess --bench preprocess
//!
//! scripts/bench/run_preprocess_bench.sh runs this and
//! scripts/bench/preprocess_reference.py (Pillow+numpy, OpenCV+numpy doing the
//! same work) and prints images/s side by side.

use std::hint::black_box;
use std::path::{Path, PathBuf};

use bridgeml_preprocess::decode::decode;
use bridgeml_preprocess::resize;
use bridgeml_preprocess::spec::{Color, Compat, Decoder, Filter, DEFAULT_MAX_PIXELS};
use bridgeml_preprocess::{Pipeline, Source, Spec};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use rayon::prelude::*;

const SPEC: &str = r#"
[input]
kind = "image"
decoder = "libjpeg-turbo"
color = "rgb"
[[steps]]
op = "resize"
height = 224
width = 224
filter = "bilinear"
compat = "pil"
[[steps]]
op = "to_float"
scale = 255.0
[[steps]]
op = "normalize"
mean = [0.485, 0.456, 0.406]
std = [0.229, 0.224, 0.225]
"#;

fn photos() -> Vec<(String, Vec<u8>)> {
    let dir: PathBuf = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/images");
    let mut v: Vec<(String, Vec<u8>)> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| matches!(p.extension().and_then(|e| e.to_str()), Some("jpg" | "png")))
        .map(|p| {
            (
                p.file_name().unwrap().to_string_lossy().into_owned(),
                std::fs::read(&p).unwrap(),
            )
        })
        .collect();
    v.sort();
    v
}

fn is_jpeg(name: &str) -> bool {
    name.ends_with(".jpg")
}

fn bench(c: &mut Criterion) {
    let pipeline = Pipeline::new(Spec::from_toml_str(SPEC).unwrap()).unwrap();
    let all = photos();
    let jpeg: Vec<_> = all.iter().filter(|(n, _)| is_jpeg(n)).cloned().collect();
    let png: Vec<_> = all.iter().filter(|(n, _)| !is_jpeg(n)).cloned().collect();

    // Whole pipeline, one thread (the calling thread, no rayon).
    let mut g = c.benchmark_group("pipeline");
    for (label, set) in [("jpeg", &jpeg), ("png", &png), ("all", &all)] {
        g.throughput(Throughput::Elements(set.len() as u64));
        g.bench_function(label, |b| {
            b.iter(|| {
                for (name, bytes) in set.iter() {
                    black_box(pipeline.run(Source::Bytes { bytes, label: name }).unwrap());
                }
            })
        });
    }
    g.finish();

    // Stages, to see where the time goes.
    let mut g = c.benchmark_group("stage");
    for (label, set) in [("decode_jpeg", &jpeg), ("decode_png", &png)] {
        g.throughput(Throughput::Elements(set.len() as u64));
        g.bench_function(label, |b| {
            b.iter(|| {
                for (name, bytes) in set.iter() {
                    black_box(
                        decode(
                            bytes,
                            name,
                            Decoder::LibjpegTurbo,
                            Color::Rgb,
                            DEFAULT_MAX_PIXELS,
                        )
                        .unwrap(),
                    );
                }
            })
        });
    }
    let decoded: Vec<_> = all
        .iter()
        .map(|(n, b)| {
            decode(b, n, Decoder::LibjpegTurbo, Color::Rgb, DEFAULT_MAX_PIXELS)
                .unwrap()
                .image
        })
        .collect();
    g.throughput(Throughput::Elements(decoded.len() as u64));
    for (label, compat) in [
        ("resize_pil", Compat::Pil),
        ("resize_opencv", Compat::Opencv),
    ] {
        g.bench_function(label, |b| {
            b.iter(|| {
                for img in &decoded {
                    black_box(resize::resize(img, 224, 224, Filter::Bilinear, compat).unwrap());
                }
            })
        });
    }
    // to_float + normalize on the 224x224 outputs: the pipeline run from
    // 224x224 pixels (its resize step is then a copy).
    let small: Vec<_> = decoded
        .iter()
        .map(|img| resize::resize(img, 224, 224, Filter::Bilinear, Compat::Pil).unwrap())
        .collect();
    g.bench_function("float_from_pixels", |b| {
        b.iter(|| {
            for img in &small {
                black_box(
                    pipeline
                        .run(Source::Pixels {
                            image: img,
                            color: Color::Rgb,
                            label: "<array>",
                        })
                        .unwrap(),
                );
            }
        })
    });
    g.finish();

    // Batch throughput against threads: 16 images (the 4 photos x 4).
    let batch: Vec<_> = (0..4).flat_map(|_| all.iter().cloned()).collect();
    let mut g = c.benchmark_group("batch");
    g.throughput(Throughput::Elements(batch.len() as u64));
    for threads in [1usize, 2] {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap();
        g.bench_function(format!("threads_{threads}"), |b| {
            b.iter(|| {
                pool.install(|| {
                    let out: Vec<_> = batch
                        .par_iter()
                        .map(|(name, bytes)| {
                            pipeline.run(Source::Bytes { bytes, label: name }).unwrap()
                        })
                        .collect();
                    black_box(out)
                })
            })
        });
    }
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(10);
    targets = bench
}
criterion_main!(benches);
