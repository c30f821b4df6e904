//! `cv2.resize` parity of `resize::opencv`, against fixtures written by
//! `scripts/fixtures/make_resize_opencv_fixtures.py` (no Python at test time).
//!
//! Every case asserts the exact sha256 of the output, except `bicubic`,
//! which cv2 computes with Intel IPP on x86-64: there `resize_without_ipp`
//! must equal OpenCV's own implementation (`sha256_noipp`) exactly, and
//! `resize` must equal cv2's default output or, where that output is stored
//! (`reference`), stay within the documented tolerance of it.

use std::path::{Path, PathBuf};

use bridgeml_core::fingerprint::sha256_bytes;
use bridgeml_core::Tensor;
use bridgeml_preprocess::resize::opencv;
use bridgeml_preprocess::{Filter, ImageU8};
use serde_json::Value;

/// Tolerance of `bicubic` against the default (IPP-backed) `cv2.resize`
/// (documented in `resize::opencv`): largest absolute difference, and largest
/// fraction of differing values in one output, for photos and random images
/// and for synthetic images full of exact rounding ties (checkerboards).
const BICUBIC_MAX_ABS: i32 = 1;
const BICUBIC_MAX_FRAC: f64 = 0.005;
const BICUBIC_MAX_FRAC_TIES: f64 = 0.10;
/// This many differing values are accepted in any output (tiny outputs).
const BICUBIC_ALWAYS_OK_VALUES: usize = 2;

fn fixture_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/resize_opencv")
}

fn filter_of(name: &str) -> Filter {
    match name {
        "nearest" => Filter::Nearest,
        "bilinear" => Filter::Bilinear,
        "bicubic" => Filter::Bicubic,
        "area" => Filter::Area,
        "lanczos" => Filter::Lanczos,
        other => panic!("unknown filter {other}"),
    }
}

fn decode_png(path: &Path) -> ImageU8 {
    let file = std::fs::File::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut reader = png::Decoder::new(std::io::BufReader::new(file))
        .read_info()
        .unwrap();
    let mut buf = vec![0; reader.output_buffer_size()];
    let info = reader.next_frame(&mut buf).unwrap();
    assert_eq!(info.bit_depth, png::BitDepth::Eight, "{}", path.display());
    let channels = match info.color_type {
        png::ColorType::Grayscale => 1,
        png::ColorType::Rgb => 3,
        png::ColorType::Rgba => 4,
        other => panic!("{}: unexpected color type {other:?}", path.display()),
    };
    buf.truncate(info.buffer_size());
    ImageU8::new(info.width as usize, info.height as usize, channels, buf)
}

fn load_npy_u8(path: &Path) -> (Vec<usize>, Vec<u8>) {
    match Tensor::read_npy(path).unwrap_or_else(|e| panic!("{}: {e}", path.display())) {
        Tensor::U8(a) => (
            a.shape().to_vec(),
            a.as_standard_layout().iter().copied().collect(),
        ),
        other => panic!(
            "{}: expected uint8, got {:?}",
            path.display(),
            other.dtype()
        ),
    }
}

fn load_npy_image(path: &Path) -> ImageU8 {
    let (shape, data) = load_npy_u8(path);
    let channels = match shape.len() {
        2 => 1,
        3 => shape[2],
        _ => panic!("{}: bad image shape {shape:?}", path.display()),
    };
    ImageU8::new(shape[1], shape[0], channels, data)
}

fn crop(img: &ImageU8, x: usize, y: usize, w: usize, h: usize) -> ImageU8 {
    let cn = img.channels;
    let mut data = Vec::with_capacity(w * h * cn);
    for row in y..y + h {
        data.extend_from_slice(&img.row(row)[x * cn..(x + w) * cn]);
    }
    ImageU8::new(w, h, cn, data)
}

fn load_input(dir: &Path, case: &Value) -> ImageU8 {
    let input = case["input"].as_str().unwrap();
    let path = dir.join(input);
    let img = if input.ends_with(".png") {
        decode_png(&path)
    } else {
        load_npy_image(&path)
    };
    match case.get("crop") {
        Some(c) => {
            let v: Vec<usize> = c
                .as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_u64().unwrap() as usize)
                .collect();
            crop(&img, v[0], v[1], v[2], v[3])
        }
        None => img,
    }
}

fn out_shape(img: &ImageU8, gray_2d: bool) -> Vec<usize> {
    if img.channels == 1 && gray_2d {
        vec![img.height, img.width]
    } else {
        vec![img.height, img.width, img.channels]
    }
}

fn hex(s: &str) -> &str {
    s.strip_prefix("sha256:").unwrap_or(s)
}

/// Differences against a reference: (max abs, fraction of differing values).
fn diff(a: &[u8], b: &[u8]) -> (i32, f64) {
    assert_eq!(a.len(), b.len());
    let mut max = 0;
    let mut n = 0usize;
    for (&x, &y) in a.iter().zip(b) {
        let d = (i32::from(x) - i32::from(y)).abs();
        max = max.max(d);
        n += usize::from(d > 0);
    }
    (max, n as f64 / a.len().max(1) as f64)
}

#[derive(Default, Debug)]
struct Tally {
    exact: std::collections::BTreeMap<String, usize>,
    failures: Vec<String>,
    bicubic_ipp_worst: (i32, f64),
    bicubic_ipp_values: usize,
    bicubic_ipp_differing: usize,
    bicubic_unchecked: usize,
}

fn check_case(dir: &Path, case: &Value, cache: &mut Option<(String, ImageU8)>, t: &mut Tally) {
    let name = case["name"].as_str().unwrap();
    let key = format!("{}{:?}", case["input"], case.get("crop"));
    if cache.as_ref().map(|(k, _)| k != &key).unwrap_or(true) {
        *cache = Some((key.clone(), load_input(dir, case)));
    }
    let src = &cache.as_ref().unwrap().1;
    let flt = case["filter"].as_str().unwrap();
    let (w, h) = (
        case["width"].as_u64().unwrap() as usize,
        case["height"].as_u64().unwrap() as usize,
    );
    let out = match opencv::resize(src, w, h, filter_of(flt)) {
        Ok(o) => o,
        Err(e) => {
            t.failures.push(format!("{name}: error {e}"));
            return;
        }
    };
    let want_shape: Vec<usize> = case["out_shape"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap() as usize)
        .collect();
    let got_shape = out_shape(&out, want_shape.len() == 2);
    if got_shape != want_shape {
        t.failures
            .push(format!("{name}: shape {got_shape:?}, want {want_shape:?}"));
        return;
    }
    let got = sha256_bytes(&out.data);
    let reference = case.get("reference").map(|r| {
        let (_, data) = load_npy_u8(&dir.join(r.as_str().unwrap()));
        data
    });
    let describe = |reference: &Option<Vec<u8>>| match reference {
        Some(r) => {
            let (m, f) = diff(&out.data, r);
            format!(
                " (vs reference: max abs diff {m}, {:.3}% values differ)",
                f * 100.0
            )
        }
        None => String::new(),
    };
    if let Some(noipp) = case.get("sha256_noipp") {
        // bicubic: OpenCV's own code exactly, IPP (the default) within tolerance.
        let own = opencv::resize_without_ipp(src, w, h, filter_of(flt)).unwrap();
        if hex(&sha256_bytes(&own.data)) != noipp.as_str().unwrap() {
            t.failures.push(format!(
                "{name}: resize_without_ipp differs from cv2 without IPP"
            ));
            return;
        }
        *t.exact.entry(format!("{flt} without IPP")).or_default() += 1;
        if hex(&got) == case["sha256"].as_str().unwrap() {
            *t.exact.entry(flt.to_string()).or_default() += 1;
        } else if let Some(r) = &reference {
            let (m, f) = diff(&out.data, r);
            t.bicubic_ipp_worst.0 = t.bicubic_ipp_worst.0.max(m);
            t.bicubic_ipp_worst.1 = t.bicubic_ipp_worst.1.max(f);
            t.bicubic_ipp_differing += (f * r.len() as f64).round() as usize;
            let max_frac = if name.starts_with("checker") {
                BICUBIC_MAX_FRAC_TIES
            } else {
                BICUBIC_MAX_FRAC
            };
            let n_diff = (f * r.len() as f64).round() as usize;
            if m > BICUBIC_MAX_ABS || (n_diff > BICUBIC_ALWAYS_OK_VALUES && f > max_frac) {
                t.failures.push(format!(
                    "{name}: outside the bicubic tolerance vs cv2 (max abs {m}, {:.4}% differ)",
                    f * 100.0
                ));
            }
        } else {
            t.bicubic_unchecked += 1;
            eprintln!("note: {name}: not equal to cv2's IPP output (no reference stored)");
        }
        if reference.is_some() {
            t.bicubic_ipp_values += out.data.len();
        }
        return;
    }
    if hex(&got) != case["sha256"].as_str().unwrap() {
        t.failures
            .push(format!("{name}: sha256 mismatch{}", describe(&reference)));
        return;
    }
    *t.exact.entry(flt.to_string()).or_default() += 1;
}

fn run_cases(dir: &Path) -> Tally {
    let text = std::fs::read_to_string(dir.join("cases.json"))
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    let cases: Vec<Value> = serde_json::from_str(&text).unwrap();
    assert!(!cases.is_empty());
    let mut tally = Tally::default();
    let mut cache = None;
    for case in &cases {
        check_case(dir, case, &mut cache, &mut tally);
    }
    eprintln!("exact cases per filter: {:?}", tally.exact);
    eprintln!(
        "bicubic vs cv2 (IPP) where a reference is stored: {} of {} values differ, max abs {}, worst case {:.4}% values; {} inexact cases without reference",
        tally.bicubic_ipp_differing,
        tally.bicubic_ipp_values,
        tally.bicubic_ipp_worst.0,
        tally.bicubic_ipp_worst.1 * 100.0,
        tally.bicubic_unchecked
    );
    tally
}

#[test]
fn opencv_fixtures() {
    let tally = run_cases(&fixture_dir());
    assert!(
        tally.failures.is_empty(),
        "{} failing case(s):\n{}",
        tally.failures.len(),
        tally.failures.join("\n")
    );
}

/// A larger random sweep, generated on demand:
/// `python3 scripts/fixtures/make_resize_opencv_fixtures.py --sweep /tmp/sweep`
/// then `BRIDGEML_RESIZE_OPENCV_SWEEP=/tmp/sweep cargo test -p bridgeml-preprocess
/// --test resize_opencv -- --ignored`.
#[test]
#[ignore = "needs a sweep directory from the fixture script"]
fn opencv_sweep() {
    let dir = std::env::var("BRIDGEML_RESIZE_OPENCV_SWEEP")
        .expect("set BRIDGEML_RESIZE_OPENCV_SWEEP to a sweep directory");
    let tally = run_cases(Path::new(&dir));
    assert!(
        tally.failures.is_empty(),
        "{} failing case(s):\n{}",
        tally.failures.len(),
        tally.failures.join("\n")
    );
}

#[test]
fn box_and_hamming_are_refused() {
    let img = ImageU8::new(4, 4, 1, vec![7; 16]);
    for f in [Filter::Box, Filter::Hamming] {
        assert!(opencv::resize(&img, 2, 2, f).is_err(), "{f:?}");
    }
}

/// Single-threaded timing of the server-side case (640x427 RGB -> 224x224):
/// `cargo test --release -p bridgeml-preprocess --test resize_opencv --
/// --ignored opencv_timing --nocapture`. Prints, asserts nothing.
#[test]
#[ignore = "timing; run in release"]
fn opencv_timing() {
    let (w, h) = (640, 427);
    let mut state = 0x2545_f491_u32;
    let data = (0..w * h * 3)
        .map(|i| {
            state = state.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            // Smooth ramp plus noise, roughly photo-like.
            ((i % (w * 3)) as u32 / 8 + (state >> 28)) as u8
        })
        .collect();
    let img = ImageU8::new(w, h, 3, data);
    for filter in [
        Filter::Bilinear,
        Filter::Area,
        Filter::Nearest,
        Filter::Bicubic,
        Filter::Lanczos,
    ] {
        let mut best = f64::MAX;
        for _ in 0..200 {
            let t = std::time::Instant::now();
            let out = opencv::resize(&img, 224, 224, filter).unwrap();
            best = best.min(t.elapsed().as_secs_f64());
            std::hint::black_box(out);
        }
        eprintln!(
            "{filter:?}: 640x427 RGB -> 224x224 best of 200: {:.1} us",
            best * 1e6
        );
    }
}
