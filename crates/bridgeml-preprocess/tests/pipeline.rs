//! End-to-end exactness of the example ImageNet specs against the Pillow and
//! OpenCV pipelines of scripts/fixtures/make_pipeline_fixtures.py (fixtures in
//! tests/fixtures/pipeline/), spec fingerprints, and bad-spec handling.

use std::path::{Path, PathBuf};

use bridgeml_core::Tensor;
use bridgeml_preprocess::{ImageU8, Pipeline, PreprocessError, Source, Spec};
use serde_json::Value;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn expected() -> Value {
    let text = std::fs::read_to_string(root().join("tests/fixtures/pipeline/expected.json"))
        .expect("expected.json");
    serde_json::from_str(&text).unwrap()
}

fn pipeline(name: &str) -> Pipeline {
    Pipeline::from_path(&root().join("examples/specs").join(name)).unwrap()
}

fn photos() -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(root().join("tests/fixtures/images"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    v.sort();
    assert_eq!(v.len(), 4, "{v:?}");
    v
}

fn stem(p: &Path) -> String {
    p.file_stem().unwrap().to_string_lossy().into_owned()
}

fn assert_stage(t: &Tensor, exp: &Value, what: &str) {
    assert_eq!(t.dtype().name(), exp["dtype"].as_str().unwrap(), "{what}");
    let shape: Vec<usize> = exp["shape"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap() as usize)
        .collect();
    assert_eq!(t.shape(), shape.as_slice(), "{what}");
    assert_eq!(
        t.content_hash(),
        exp["hash"].as_str().unwrap(),
        "{what}: not byte-identical"
    );
}

/// Every stage of both example specs on every photo is byte-identical to the
/// Pillow (torchvision-style) and OpenCV pipelines.
#[test]
fn every_stage_matches_pillow_and_opencv_pipelines() {
    let exp = expected();
    let stages = exp["stages"].as_array().unwrap();
    for (spec, lib) in [
        ("imagenet_pil.toml", "pil"),
        ("imagenet_opencv.toml", "opencv"),
    ] {
        let p = pipeline(spec);
        for photo in photos() {
            let bytes = std::fs::read(&photo).unwrap();
            let label = photo.display().to_string();
            let trace = p
                .trace(Source::Bytes {
                    bytes: &bytes,
                    label: &label,
                })
                .unwrap();
            assert_eq!(trace.len(), stages.len());
            for (stage, name) in trace.iter().zip(stages) {
                assert_eq!(stage.name, name.as_str().unwrap());
                let e = &exp[lib][stem(&photo)][&stage.name];
                assert_stage(&stage.tensor, e, &format!("{spec} {label} {}", stage.name));
            }
            // the plain run is the last stage
            let out = p.run_path(&photo).unwrap();
            assert_eq!(&out, &trace.last().unwrap().tensor);
        }
    }
}

/// The committed float32 tensors written by numpy equal the engine's output bit for bit.
#[test]
fn committed_numpy_dumps_equal_engine_output_bit_for_bit() {
    for (spec, dir) in [
        ("imagenet_pil.toml", "pil"),
        ("imagenet_opencv.toml", "opencv"),
    ] {
        let photo = root().join("tests/fixtures/images/china.jpg");
        let ours = pipeline(spec).run_path(&photo).unwrap();
        let reference =
            Tensor::read_npy(&root().join(format!("tests/fixtures/pipeline/{dir}/china.npy")))
                .unwrap();
        assert_eq!(reference.shape(), &[3, 224, 224]);
        assert_eq!(ours.to_le_bytes(), reference.to_le_bytes(), "{spec}");
    }
    // Pillow and OpenCV really differ on this photo: the fixtures do not agree by accident.
    let a = Tensor::read_npy(&root().join("tests/fixtures/pipeline/pil/china.npy")).unwrap();
    let b = Tensor::read_npy(&root().join("tests/fixtures/pipeline/opencv/china.npy")).unwrap();
    assert_ne!(a.content_hash(), b.content_hash());
    let u8_ref =
        Tensor::read_npy(&root().join("tests/fixtures/pipeline/pil_u8/china.npy")).unwrap();
    let crop = pipeline("imagenet_pil.toml")
        .run_path_until(
            &root().join("tests/fixtures/images/china.jpg"),
            Some(Some(1)),
        )
        .unwrap();
    assert_eq!(crop, u8_ref);
}

/// `until` (index, op name, `decode`) stops at the right stage, uint8 HWC for pixel stages.
#[test]
fn until_resolves_and_stops_at_the_stage() {
    let exp = expected();
    let p = pipeline("imagenet_pil.toml");
    let photo = root().join("tests/fixtures/images/chelsea.png");
    for (until, stage) in [
        ("decode", "decode"),
        ("0", "resize_shorter"),
        ("resize_shorter", "resize_shorter"),
        ("1", "center_crop"),
        ("center_crop", "center_crop"),
        ("to_float", "to_float"),
        ("3", "normalize"),
        ("layout", "layout"),
    ] {
        let u = p.spec().resolve_until(until).unwrap();
        let t = p.run_path_until(&photo, Some(u)).unwrap();
        assert_stage(&t, &exp["pil"]["chelsea"][stage], until);
    }
    for bad in ["5", "crop", "", "-1"] {
        let e = p.spec().resolve_until(bad).unwrap_err().to_string();
        assert!(e.contains("--until"), "{bad}: {e}");
    }
}

/// Decoded pixels given as an array (the Python path) give the same output as the file.
#[test]
fn pixel_source_equals_file_source() {
    let p = pipeline("imagenet_pil.toml");
    let photo = root().join("tests/fixtures/images/coffee.png");
    let decoded = p.run_path_until(&photo, Some(None)).unwrap();
    let shape = decoded.shape().to_vec();
    let data = match &decoded {
        Tensor::U8(a) => a.iter().copied().collect::<Vec<u8>>(),
        Tensor::F32(_) => panic!("decode stage is uint8"),
    };
    let rgb = ImageU8::new(shape[1], shape[0], shape[2], data.clone());
    let from_file = p.run_path(&photo).unwrap();
    let from_rgb = p
        .run(Source::Pixels {
            image: &rgb,
            color: bridgeml_preprocess::spec::Color::Rgb,
            label: "<array>",
        })
        .unwrap();
    assert_eq!(from_file, from_rgb);
    let bgr_data: Vec<u8> = data
        .chunks_exact(3)
        .flat_map(|px| [px[2], px[1], px[0]])
        .collect();
    let bgr = ImageU8::new(shape[1], shape[0], 3, bgr_data);
    let from_bgr = p
        .run(Source::Pixels {
            image: &bgr,
            color: bridgeml_preprocess::spec::Color::Bgr,
            label: "<array>",
        })
        .unwrap();
    assert_eq!(from_file, from_bgr);
}

const PIL_TOML_MINIMAL: &str = r#"
[input]
kind = "image"
[[steps]]
op = "resize_shorter"
size = 256
[[steps]]
op = "center_crop"
height = 224
width = 224
[[steps]]
op = "to_float"
[[steps]]
op = "normalize"
mean = [0.485, 0.456, 0.406]
std = [0.229, 0.224, 0.225]
[[steps]]
op = "layout"
order = "chw"
"#;

const PIL_JSON: &str = r#"{
  "steps": [
    {"size": 256, "op": "resize_shorter", "compat": "pil", "filter": "bilinear"},
    {"width": 224, "height": 224, "op": "center_crop"},
    {"op": "to_float", "scale": 255, "precision": "float32"},
    {"std": [0.229, 0.224, 0.225], "mean": [0.485, 0.456, 0.406], "op": "normalize"},
    {"order": "chw", "op": "layout"}
  ],
  "input": {"color": "rgb", "kind": "image", "max_pixels": 89478485, "decoder": "libjpeg-turbo"}
}"#;

/// Same spec spelled differently (TOML with defaults omitted, JSON with other
/// key order and defaults written out): same fingerprint. Any change: another.
#[test]
fn fingerprint_is_stable_across_spellings_and_changes_with_the_spec() {
    let reference = pipeline("imagenet_pil.toml").fingerprint().to_string();
    assert!(reference.starts_with("sha256:") && reference.len() == 7 + 64);
    assert_eq!(
        Spec::from_toml_str(PIL_TOML_MINIMAL).unwrap().fingerprint(),
        reference
    );
    assert_eq!(
        Spec::from_json_str(PIL_JSON).unwrap().fingerprint(),
        reference
    );
    let changed = [
        PIL_TOML_MINIMAL.replace("size = 256", "size = 255"),
        PIL_TOML_MINIMAL.replace("0.229", "0.2291"),
        PIL_TOML_MINIMAL.replace("order = \"chw\"", "order = \"hwc\""),
        PIL_TOML_MINIMAL.replace("size = 256", "size = 256\ncompat = \"opencv\""),
        PIL_TOML_MINIMAL.replace("kind = \"image\"", "kind = \"image\"\ncolor = \"bgr\""),
        PIL_TOML_MINIMAL.replace("kind = \"image\"", "kind = \"image\"\nmax_pixels = 1000"),
    ];
    let mut seen = std::collections::HashSet::from([reference.clone()]);
    for text in changed {
        let fp = Spec::from_toml_str(&text).unwrap().fingerprint();
        assert!(seen.insert(fp), "fingerprint did not change for:\n{text}");
    }
    assert_ne!(
        pipeline("imagenet_opencv.toml").fingerprint(),
        reference.as_str()
    );
}

fn spec_error(text: &str) -> String {
    match Spec::from_toml_str(text) {
        Ok(_) => panic!("accepted:\n{text}"),
        Err(e) => {
            assert!(
                matches!(
                    e,
                    PreprocessError::SpecParse { .. } | PreprocessError::SpecInvalid { .. }
                ),
                "{e:?}"
            );
            e.to_string()
        }
    }
}

#[test]
fn invalid_specs_are_refused_with_the_reason() {
    let base = PIL_TOML_MINIMAL;
    let cases: Vec<(String, &str)> = vec![
        (
            base.replace("op = \"center_crop\"", "op = \"centre_crop\""),
            "centre_crop",
        ),
        (
            base.replace("size = 256", "size = 256\nsmooth = true"),
            "smooth",
        ),
        (
            base.replace("size = 256", "size = -256"),
            "size must be positive",
        ),
        (
            base.replace("height = 224", "height = 0"),
            "height must be positive",
        ),
        (
            base.replace("mean = [0.485, 0.456, 0.406]", "mean = [0.485, 0.456]"),
            "mean has 2 values and std has 3",
        ),
        (
            base.replace("0.224", "0.0"),
            "std must be finite and non-zero",
        ),
        (
            base.replace("size = 256", "size = 256\nfilter = \"area\""),
            "filter \"area\" is not available with compat = \"pil\"",
        ),
        (
            base.replace(
                "size = 256",
                "size = 256\nfilter = \"box\"\ncompat = \"opencv\"",
            ),
            "not available with compat = \"opencv\"",
        ),
        (
            base.replace("kind = \"image\"", "kind = \"video\""),
            "video",
        ),
        (base.replace("[input]\nkind = \"image\"\n", ""), "input"),
        (
            base.replace("op = \"to_float\"", "op = \"to_float\"\nscale = 0.0"),
            "scale must be finite and non-zero",
        ),
        (
            base.replace("[[steps]]\nop = \"to_float\"\n", ""),
            "needs float input",
        ),
        (
            "[input]\nkind = \"image\"\nmax_pixels = 0\n".into(),
            "max_pixels",
        ),
        ("not toml at all [[".into(), "invalid spec"),
    ];
    for (text, needle) in cases {
        let e = spec_error(&text);
        assert!(e.contains(needle), "expected {needle:?} in: {e}");
    }
    // validation names the step
    let e = spec_error(&base.replace("size = 256", "size = -1"));
    assert!(e.contains("step 0 (resize_shorter)"), "{e}");
}

/// Spec errors from files name the file.
#[test]
fn spec_file_errors_name_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("broken.toml");
    std::fs::write(&p, PIL_TOML_MINIMAL.replace("0.224", "0")).unwrap();
    let e = Pipeline::from_path(&p).unwrap_err().to_string();
    assert!(e.contains("broken.toml") && e.contains("std"), "{e}");
    let p = dir.path().join("broken.json");
    std::fs::write(&p, PIL_JSON.replace("\"resize_shorter\"", "\"rezise\"")).unwrap();
    let e = Pipeline::from_path(&p).unwrap_err().to_string();
    assert!(e.contains("broken.json") && e.contains("rezise"), "{e}");
    let e = Pipeline::from_path(&dir.path().join("absent.toml"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("absent.toml"), "{e}");
}

/// Bad images: an error naming the input, never a panic.
#[test]
fn bad_images_are_errors_naming_the_input() {
    let p = pipeline("imagenet_pil.toml");
    let jpg = std::fs::read(root().join("tests/fixtures/images/china.jpg")).unwrap();
    let png = std::fs::read(root().join("tests/fixtures/images/chelsea.png")).unwrap();
    let mut corrupt = jpg.clone();
    for b in corrupt[600..4000].iter_mut() {
        *b = 0x5A;
    }
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("empty.jpg", Vec::new()),
        ("truncated.jpg", jpg[..jpg.len() / 2].to_vec()),
        ("truncated.png", png[..png.len() / 3].to_vec()),
        ("corrupt.jpg", corrupt),
        ("notes.txt", b"hello, this is not an image\n".to_vec()),
        ("header-only.png", png[..8].to_vec()),
    ];
    for (label, bytes) in cases {
        let e = p.run_bytes(&bytes, label).unwrap_err().to_string();
        assert!(e.starts_with(label), "{label}: {e}");
    }
    // over the pixel limit
    let small = Spec::from_toml_str(
        &PIL_TOML_MINIMAL.replace("kind = \"image\"", "kind = \"image\"\nmax_pixels = 100000"),
    )
    .unwrap();
    let e = Pipeline::new(small)
        .unwrap()
        .run_bytes(&jpg, "china.jpg")
        .unwrap_err();
    assert!(
        matches!(
            e,
            PreprocessError::TooLarge {
                pixels: 273280,
                limit: 100000,
                ..
            }
        ),
        "{e}"
    );
    // zero-sized and odd arrays
    for (w, h, c) in [(0, 5, 3), (5, 0, 3), (4, 4, 2), (4, 4, 4)] {
        let img = ImageU8::new(w, h, c, vec![0; w * h * c]);
        let e = p
            .run(Source::Pixels {
                image: &img,
                color: bridgeml_preprocess::spec::Color::Rgb,
                label: "<array>",
            })
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("<array>"), "{w}x{h}x{c}: {e}");
    }
}

/// Gray arrays are replicated to RGB as Pillow's convert("RGB") does.
#[test]
fn gray_array_is_converted_like_pillow() {
    let p = pipeline("imagenet_pil.toml");
    let gray = ImageU8::new(
        300,
        260,
        1,
        (0..300 * 260).map(|i| (i % 251) as u8).collect(),
    );
    let rgb = ImageU8::new(
        300,
        260,
        3,
        gray.data.iter().flat_map(|&v| [v, v, v]).collect(),
    );
    let run = |image: &ImageU8| {
        p.run(Source::Pixels {
            image,
            color: bridgeml_preprocess::spec::Color::Rgb,
            label: "<array>",
        })
        .unwrap()
    };
    assert_eq!(run(&gray), run(&rgb));
}
