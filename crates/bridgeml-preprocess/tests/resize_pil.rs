//! Bit-exactness of `resize::pil` against Pillow's `Image.resize`.
//!
//! Fixtures come from `scripts/fixtures/make_resize_pil_fixtures.py`; set
//! `RESIZE_PIL_CASES=/path/to/cases.json` to run another set (e.g. the
//! script's `--fuzz` output) instead of the committed one.

use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};

use bridgeml_core::fingerprint::sha256_bytes;
use bridgeml_core::Tensor;
use bridgeml_preprocess::image::ImageU8;
use bridgeml_preprocess::resize::pil;
use bridgeml_preprocess::spec::Filter;
use serde_json::Value;

fn cases_path() -> PathBuf {
    match std::env::var_os("RESIZE_PIL_CASES") {
        Some(p) => PathBuf::from(p),
        None => {
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/resize_pil/cases.json")
        }
    }
}

struct Case {
    input: String,
    width: usize,
    height: usize,
    filter: Filter,
    out_shape: Vec<usize>,
    sha256: String,
}

impl Case {
    fn name(&self) -> String {
        format!(
            "{} -> {}x{} {}",
            self.input,
            self.width,
            self.height,
            self.filter.name()
        )
    }
}

fn load_cases() -> (PathBuf, Vec<Case>) {
    let path = cases_path();
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    let list: Vec<Value> = serde_json::from_str(&text).expect("cases.json is a JSON list");
    let cases = list
        .iter()
        .map(|v| {
            let filter_name = v["filter"].as_str().expect("filter");
            let usize_of = |v: &Value| v.as_u64().expect("unsigned integer") as usize;
            Case {
                input: v["input"].as_str().expect("input").to_string(),
                width: usize_of(&v["width"]),
                height: usize_of(&v["height"]),
                filter: *Filter::ALL
                    .iter()
                    .find(|f| f.name() == filter_name)
                    .unwrap_or_else(|| panic!("unknown filter {filter_name}")),
                out_shape: v["out_shape"]
                    .as_array()
                    .expect("out_shape")
                    .iter()
                    .map(usize_of)
                    .collect(),
                sha256: v["sha256"].as_str().expect("sha256").to_string(),
            }
        })
        .collect();
    (path.parent().unwrap().to_path_buf(), cases)
}

fn load_png(path: &Path) -> ImageU8 {
    let decoder = png::Decoder::new(File::open(path).expect("open png"));
    let mut reader = decoder.read_info().expect("png header");
    let mut buf = vec![0; reader.output_buffer_size()];
    let info = reader.next_frame(&mut buf).expect("png frame");
    assert_eq!(info.bit_depth, png::BitDepth::Eight, "{}", path.display());
    let channels = match info.color_type {
        png::ColorType::Grayscale => 1,
        png::ColorType::Rgb => 3,
        png::ColorType::Rgba => 4,
        other => panic!("{}: unsupported PNG color type {other:?}", path.display()),
    };
    buf.truncate(info.buffer_size());
    ImageU8::new(info.width as usize, info.height as usize, channels, buf)
}

fn load_npy(path: &Path) -> ImageU8 {
    let tensor = Tensor::read_npy(path).expect("read npy");
    let Tensor::U8(arr) = tensor else {
        panic!("{}: expected uint8", path.display())
    };
    let shape = arr.shape().to_vec();
    let (h, w, c) = match shape[..] {
        [h, w] => (h, w, 1),
        [h, w, c] => (h, w, c),
        _ => panic!("{}: expected HW or HWC, got {shape:?}", path.display()),
    };
    ImageU8::new(w, h, c, arr.iter().copied().collect())
}

fn load_inputs(dir: &Path, cases: &[Case]) -> HashMap<String, ImageU8> {
    let mut inputs = HashMap::new();
    for case in cases {
        inputs.entry(case.input.clone()).or_insert_with(|| {
            let path = dir.join(&case.input);
            if case.input.ends_with(".png") {
                load_png(&path)
            } else {
                load_npy(&path)
            }
        });
    }
    inputs
}

fn shape_of(img: &ImageU8, gray_as_hw: bool) -> Vec<usize> {
    if img.channels == 1 && gray_as_hw {
        vec![img.height, img.width]
    } else {
        vec![img.height, img.width, img.channels]
    }
}

#[test]
fn matches_pillow_bit_for_bit() {
    let (dir, cases) = load_cases();
    assert!(!cases.is_empty(), "no cases");
    let inputs = load_inputs(&dir, &cases);
    let mut failures = Vec::new();
    for case in &cases {
        let src = &inputs[&case.input];
        let out = match pil::resize(src, case.width, case.height, case.filter, true) {
            Ok(out) => out,
            Err(e) => {
                failures.push(format!("{}: error {e}", case.name()));
                continue;
            }
        };
        let shape = shape_of(&out, case.out_shape.len() == 2);
        let sha = sha256_bytes(&out.data);
        if shape != case.out_shape || sha != case.sha256 {
            failures.push(format!(
                "{}: shape {shape:?} (want {:?}), {sha} (want {})",
                case.name(),
                case.out_shape,
                case.sha256
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases differ from Pillow:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}

/// Without antialiasing only downscaling changes: upscaling (and same-size)
/// cases must still match Pillow.
#[test]
fn no_antialias_matches_pillow_when_not_downscaling() {
    let (dir, cases) = load_cases();
    let inputs = load_inputs(&dir, &cases);
    let mut checked = 0;
    for case in &cases {
        let src = &inputs[&case.input];
        if case.width < src.width || case.height < src.height {
            continue;
        }
        let out = pil::resize(src, case.width, case.height, case.filter, false).unwrap();
        assert_eq!(sha256_bytes(&out.data), case.sha256, "{}", case.name());
        checked += 1;
    }
    assert!(checked > 0);
}

#[test]
fn no_antialias_keeps_constant_images_and_shapes() {
    let (dir, cases) = load_cases();
    let inputs = load_inputs(&dir, &cases);
    for case in &cases {
        let src = &inputs[&case.input];
        let flat = ImageU8::new(
            src.width,
            src.height,
            src.channels,
            vec![97; src.data.len()],
        );
        let out = pil::resize(&flat, case.width, case.height, case.filter, false).unwrap();
        assert_eq!(
            (out.width, out.height, out.channels),
            (case.width, case.height, src.channels)
        );
        assert!(out.data.iter().all(|&v| v == 97), "{}", case.name());
    }
}

#[test]
fn area_is_not_a_pillow_filter() {
    let src = ImageU8::new(4, 4, 3, vec![0; 48]);
    assert!(pil::resize(&src, 2, 2, Filter::Area, true).is_err());
}
