//! Decode exactness against Pillow (hashes in tests/fixtures/decode/expected.json,
//! written by scripts/fixtures/make_decode_fixtures.py) and bad-input handling.

use std::path::{Path, PathBuf};

use bridgeml_preprocess::color::{self, apply_exif_orientation};
use bridgeml_preprocess::decode::{decode, Decoded};
use bridgeml_preprocess::spec::{Color, Decoder, DEFAULT_MAX_PIXELS};
use bridgeml_preprocess::{ImageU8, PreprocessError};
use serde_json::Value;
use sha2::{Digest, Sha256};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn expected() -> Value {
    let text = std::fs::read_to_string(root().join("tests/fixtures/decode/expected.json"))
        .expect("expected.json");
    serde_json::from_str(&text).unwrap()
}

fn read(rel: &str) -> Vec<u8> {
    std::fs::read(root().join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

fn sha(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

fn shape(img: &ImageU8) -> Vec<u64> {
    if img.channels == 1 {
        vec![img.height as u64, img.width as u64]
    } else {
        vec![img.height as u64, img.width as u64, img.channels as u64]
    }
}

fn dec(bytes: &[u8], label: &str, decoder: Decoder, color: Color) -> Decoded {
    decode(bytes, label, decoder, color, DEFAULT_MAX_PIXELS)
        .unwrap_or_else(|e| panic!("{label}: {e}"))
}

fn color_name(c: Color) -> &'static str {
    match c {
        Color::Rgb => "rgb",
        Color::Bgr => "bgr",
        Color::Gray => "gray",
    }
}

/// Every fixture, every color mode, default decoder: byte-exact with Pillow.
#[test]
fn all_fixtures_match_pillow_exactly() {
    let exp = expected();
    let files = exp["files"].as_object().unwrap();
    assert!(
        files.len() >= 40,
        "expected.json lists {} files",
        files.len()
    );
    let mut failures = Vec::new();
    for (rel, entry) in files {
        let bytes = read(rel);
        for c in [Color::Rgb, Color::Bgr, Color::Gray] {
            let want = &entry[color_name(c)];
            let got = match decode(&bytes, rel, Decoder::default(), c, DEFAULT_MAX_PIXELS) {
                Ok(d) => d,
                Err(e) => {
                    failures.push(format!("{rel} {}: error {e}", color_name(c)));
                    continue;
                }
            };
            let want_shape: Vec<u64> = want["shape"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_u64().unwrap())
                .collect();
            if shape(&got.image) != want_shape {
                failures.push(format!(
                    "{rel} {}: shape {:?} != {:?}",
                    color_name(c),
                    shape(&got.image),
                    want_shape
                ));
            } else if sha(&got.image.data) != want["sha256"].as_str().unwrap() {
                failures.push(format!("{rel} {}: pixels differ", color_name(c)));
            }
            let want_orientation = entry["exif_orientation"].as_u64().map(|v| v as u16);
            if got.exif_orientation != want_orientation {
                failures.push(format!(
                    "{rel}: exif orientation {:?} != {:?}",
                    got.exif_orientation, want_orientation
                ));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} mismatches:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// The fixture set covers every case the module claims.
#[test]
fn fixture_set_covers_claimed_cases() {
    let exp = expected();
    let files = exp["files"].as_object().unwrap();
    for name in [
        "jpeg_420.jpg",
        "jpeg_422.jpg",
        "jpeg_444.jpg",
        "jpeg_progressive.jpg",
        "jpeg_restart.jpg",
        "jpeg_420_odd.jpg",
        "jpeg_gray.jpg",
        "jpeg_cmyk.jpg",
        "jpeg_exif6.jpg",
        "png_gray1.png",
        "png_gray2.png",
        "png_gray4.png",
        "png_gray8.png",
        "png_gray8_trns.png",
        "png_gray16.png",
        "png_gray_alpha8.png",
        "png_gray_alpha16.png",
        "png_rgb8.png",
        "png_rgb8_trns.png",
        "png_rgb16.png",
        "png_rgba8.png",
        "png_rgba8_transparent.png",
        "png_rgba16.png",
        "png_palette1.png",
        "png_palette2.png",
        "png_palette4.png",
        "png_palette8.png",
        "png_palette8_trns.png",
        "png_exif6.png",
        "bmp_rgb.bmp",
        "bmp_gray.bmp",
        "bmp_palette.bmp",
        "gif_palette.gif",
        "gif_animated.gif",
        "tiff_rgb.tif",
        "tiff_rgb_lzw.tif",
        "tiff_gray.tif",
        "webp_lossless.webp",
        "webp_lossless_rgba.webp",
        "webp_lossy.webp",
        "webp_lossy_rgba.webp",
        "gif_transparency.gif",
        "tiff_gray16.tif",
        "png_interlaced_rgb8.png",
        "png_interlaced_gray16.png",
        "png_interlaced_palette2.png",
        "png_palette8_short.png",
        "jpeg_420_1x1.jpg",
        "jpeg_420_17x9.jpg",
        "jpeg_422_1x1.jpg",
        "jpeg_422_17x9.jpg",
        "jpeg_cmyk_photo.jpg",
        "jpeg_420_photo.jpg",
    ] {
        assert!(
            files.contains_key(&format!("tests/fixtures/decode/{name}")),
            "{name} missing from expected.json"
        );
    }
    for photo in ["china.jpg", "flower.jpg", "chelsea.png", "coffee.png"] {
        assert!(files.contains_key(&format!("tests/fixtures/images/{photo}")));
    }
}

#[test]
fn exif_orientation_is_read_not_applied() {
    for rel in [
        "tests/fixtures/decode/jpeg_exif6.jpg",
        "tests/fixtures/decode/png_exif6.png",
    ] {
        let d = dec(&read(rel), rel, Decoder::default(), Color::Rgb);
        assert_eq!(d.exif_orientation, Some(6), "{rel}");
        assert_eq!((d.image.width, d.image.height), (64, 48), "{rel}");
    }
    let d = dec(
        &read("tests/fixtures/decode/jpeg_420.jpg"),
        "x",
        Decoder::default(),
        Color::Rgb,
    );
    assert_eq!(d.exif_orientation, None);
}

/// `apply_exif_orientation` equals `PIL.ImageOps.exif_transpose` for all 8 values.
#[test]
fn exif_transpose_matches_pillow_for_all_orientations() {
    let exp = expected();
    let cases = exp["exif_transpose"].as_object().expect("exif_transpose");
    let src_rel = cases["source"].as_str().unwrap();
    let src = dec(&read(src_rel), src_rel, Decoder::default(), Color::Rgb).image;
    for o in 1..=8u16 {
        let want = &cases[&o.to_string()];
        let got = apply_exif_orientation(&src, o);
        let want_shape: Vec<u64> = want["shape"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap())
            .collect();
        assert_eq!(shape(&got), want_shape, "orientation {o}");
        assert_eq!(
            sha(&got.data),
            want["sha256"].as_str().unwrap(),
            "orientation {o}"
        );
    }
    // gray images too, and out-of-range values are the identity
    let g = color::rgb_to_gray(&src);
    assert_eq!(apply_exif_orientation(&g, 0), g);
    assert_eq!(apply_exif_orientation(&g, 9), g);
    let r6 = apply_exif_orientation(&g, 6);
    assert_eq!((r6.width, r6.height, r6.channels), (g.height, g.width, 1));
    assert_eq!(apply_exif_orientation(&apply_exif_orientation(&g, 8), 6), g);
}

#[test]
fn color_helpers_agree_with_decode() {
    let bytes = read("tests/fixtures/images/china.jpg");
    let rgb = dec(&bytes, "china", Decoder::default(), Color::Rgb).image;
    let bgr = dec(&bytes, "china", Decoder::default(), Color::Bgr).image;
    let gray = dec(&bytes, "china", Decoder::default(), Color::Gray).image;
    assert_eq!(color::rgb_to_bgr(&rgb), bgr);
    assert_eq!(color::rgb_to_bgr(&bgr), rgb);
    assert_eq!(color::rgb_to_gray(&rgb), gray);
    assert_eq!(color::bgr_to_gray(&bgr), gray);
    let g3 = color::gray_to_rgb(&gray);
    assert_eq!(g3.channels, 3);
    assert!(g3
        .data
        .chunks_exact(3)
        .zip(&gray.data)
        .all(|(p, &v)| p == [v, v, v]));
}

/// The diagnostic JPEG decoders run; on a 4:2:0 photo they differ slightly
/// from the default (Pillow) decode, and agree on the file's shape.
/// (flower.jpg is 4:4:4, where no-fancy upsampling changes nothing.)
#[test]
fn jpeg_decoder_variants_run_and_differ_slightly() {
    let bytes = read("tests/fixtures/images/flower.jpg");
    let reference = dec(&bytes, "flower", Decoder::LibjpegTurbo, Color::Rgb).image;
    let small = read("tests/fixtures/decode/jpeg_420_photo.jpg");
    let small_ref = dec(&small, "china_420", Decoder::LibjpegTurbo, Color::Rgb).image;
    for variant in [
        Decoder::LibjpegTurboIfast,
        Decoder::LibjpegTurboNoFancy,
        Decoder::Zune,
    ] {
        for (bytes, reference, name) in [
            (&bytes, &reference, "flower"),
            (&small, &small_ref, "china_420"),
        ] {
            let got = dec(bytes, name, variant, Color::Rgb).image;
            assert_eq!(shape(&got), shape(reference), "{variant:?} {name}");
            let (n, max) = diff(&got, reference);
            let frac = n as f64 / got.data.len() as f64;
            eprintln!(
                "{variant:?} {name}: {n} values differ ({:.2}%), max |diff| {max}",
                100.0 * frac
            );
            if name == "china_420" {
                // 4:2:0 photo: must differ from the default
                assert!(n > 0, "{variant:?} identical to the default on {name}");
                // IDCT rounding only; nearest-neighbour chroma differs a lot
                // more on its saturated edges
                if variant != Decoder::LibjpegTurboNoFancy {
                    assert!(max <= 16, "{variant:?} {name}: max diff {max}");
                }
            }
        }
        for c in [Color::Bgr, Color::Gray] {
            let got = dec(&small, "china_420", variant, c).image;
            assert_eq!(got.channels, if c == Color::Gray { 1 } else { 3 });
        }
    }
}

fn diff(a: &ImageU8, b: &ImageU8) -> (usize, u8) {
    let mut n = 0;
    let mut max = 0;
    for (&x, &y) in a.data.iter().zip(&b.data) {
        if x != y {
            n += 1;
            max = max.max(x.abs_diff(y));
        }
    }
    (n, max)
}

/// Non-JPEG inputs decode identically whatever the JPEG decoder setting.
#[test]
fn non_jpeg_formats_ignore_decoder_choice() {
    for rel in [
        "tests/fixtures/decode/png_rgb8.png",
        "tests/fixtures/decode/webp_lossless.webp",
    ] {
        let bytes = read(rel);
        let a = dec(&bytes, rel, Decoder::LibjpegTurbo, Color::Rgb);
        let b = dec(&bytes, rel, Decoder::Zune, Color::Rgb);
        assert_eq!(a, b, "{rel}");
    }
}

// ------------------------------------------------------------ bad input

fn decode_error(bytes: &[u8], label: &str, decoder: Decoder, max_pixels: u64) -> PreprocessError {
    let r = std::panic::catch_unwind(|| decode(bytes, label, decoder, Color::Rgb, max_pixels));
    match r {
        Ok(Ok(d)) => panic!(
            "{label}: decoded {}x{} instead of failing",
            d.image.width, d.image.height
        ),
        Ok(Err(e)) => e,
        Err(_) => panic!("{label}: decode panicked"),
    }
}

fn assert_decode_error(bytes: &[u8], label: &str, decoder: Decoder, reason_contains: &str) {
    let e = decode_error(bytes, label, decoder, DEFAULT_MAX_PIXELS);
    let msg = e.to_string();
    assert!(
        matches!(e, PreprocessError::Decode { .. }),
        "{label}: {msg}"
    );
    assert!(
        msg.starts_with(&format!("{label}: cannot decode image: ")),
        "{msg}"
    );
    assert!(
        msg.to_lowercase().contains(&reason_contains.to_lowercase()),
        "{label}: {msg:?} lacks {reason_contains:?}"
    );
}

#[test]
fn empty_input_is_an_error() {
    for d in [Decoder::LibjpegTurbo, Decoder::Zune] {
        assert_decode_error(b"", "empty.jpg", d, "empty input");
    }
}

#[test]
fn random_bytes_are_an_error() {
    // deterministic pseudo-random bytes (xorshift)
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut bytes = Vec::new();
    for _ in 0..4096 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        bytes.push(x as u8);
    }
    bytes[0] = 0x13; // not a magic number
    assert_decode_error(
        &bytes,
        "noise.bin",
        Decoder::default(),
        "unrecognized image format",
    );
    // random bytes behind each supported magic number: error, no panic
    let magics: [&[u8]; 7] = [
        b"\xff\xd8\xff",
        b"\x89PNG\r\n\x1a\n",
        b"GIF89a",
        b"BM",
        b"II*\0",
        b"MM\0*",
        b"RIFF\0\0\0\0WEBP",
    ];
    for m in magics {
        for len in [m.len() + 1, 16, 100, 4096] {
            let mut b = m.to_vec();
            b.extend_from_slice(&bytes[..len.saturating_sub(m.len())]);
            for d in [Decoder::LibjpegTurbo, Decoder::Zune] {
                let e = decode_error(&b, "noise", d, DEFAULT_MAX_PIXELS);
                assert!(
                    matches!(
                        e,
                        PreprocessError::Decode { .. } | PreprocessError::TooLarge { .. }
                    ),
                    "{e}"
                );
            }
        }
    }
}

#[test]
fn unsupported_formats_are_named() {
    assert_decode_error(
        b"\0\0\0\x1cftypavif\0\0\0\0avifmif1",
        "a.avif",
        Decoder::default(),
        "AVIF",
    );
    assert_decode_error(
        b"qoif\0\0\0\x01\0\0\0\x01\x03\x00",
        "a.qoi",
        Decoder::default(),
        "QOI",
    );
    assert_decode_error(b"P6\n1 1\n255\n\0\0\0", "a.ppm", Decoder::default(), "PNM");
    assert_decode_error(
        b"hello world",
        "a.txt",
        Decoder::default(),
        "68 65 6c 6c 6f",
    );
    // the name of the file does not matter: a PNG called .jpg decodes
    let png = read("tests/fixtures/decode/png_rgb8.png");
    dec(&png, "really_a_png.jpg", Decoder::default(), Color::Rgb);
}

#[test]
fn truncated_jpeg_is_an_error_like_pillow() {
    for rel in [
        "tests/fixtures/decode/jpeg_420.jpg",
        "tests/fixtures/decode/jpeg_progressive.jpg",
        "tests/fixtures/decode/jpeg_cmyk.jpg",
        "tests/fixtures/images/china.jpg",
    ] {
        let bytes = read(rel);
        // Pillow: "image file is truncated"
        for cut in [bytes.len() / 2, bytes.len() * 9 / 10, bytes.len() - 200] {
            assert_decode_error(&bytes[..cut], rel, Decoder::LibjpegTurbo, "truncated");
            // every libjpeg variant detects it
            let e = decode_error(
                &bytes[..cut],
                rel,
                Decoder::LibjpegTurboNoFancy,
                DEFAULT_MAX_PIXELS,
            );
            assert!(e.to_string().contains("truncated"), "{e}");
            // zune: an error or a (garbage-filled) image, but no panic
            let _ = std::panic::catch_unwind(|| {
                decode(
                    &bytes[..cut],
                    rel,
                    Decoder::Zune,
                    Color::Rgb,
                    DEFAULT_MAX_PIXELS,
                )
            })
            .expect("zune panicked");
        }
        // cut inside the headers
        for cut in [3, 20, 100] {
            let e = decode_error(
                &bytes[..cut],
                rel,
                Decoder::LibjpegTurbo,
                DEFAULT_MAX_PIXELS,
            );
            assert!(matches!(e, PreprocessError::Decode { .. }), "{e}");
        }
    }
}

#[test]
fn truncated_and_corrupt_png_are_errors() {
    let bytes = read("tests/fixtures/decode/png_rgb8.png");
    for cut in [10, 30, 100, bytes.len() / 2, bytes.len() - 20] {
        assert_decode_error(&bytes[..cut], "cut.png", Decoder::default(), "");
    }
    assert_decode_error(
        &bytes[..bytes.len() / 2],
        "cut.png",
        Decoder::default(),
        "truncated",
    );
    // a flipped bit in the IHDR data: CRC mismatch
    let mut bad = bytes.clone();
    bad[20] ^= 0x01;
    assert_decode_error(&bad, "crc.png", Decoder::default(), "crc");
    // a flipped byte in the compressed data
    let mut bad = bytes.clone();
    let mid = bytes.len() / 2;
    bad[mid] ^= 0xFF;
    assert_decode_error(&bad, "idat.png", Decoder::default(), "invalid PNG");
}

#[test]
fn truncated_other_formats_are_errors() {
    for rel in [
        "tests/fixtures/decode/bmp_rgb.bmp",
        "tests/fixtures/decode/gif_palette.gif",
        "tests/fixtures/decode/tiff_rgb.tif",
        "tests/fixtures/decode/webp_lossless.webp",
    ] {
        let bytes = read(rel);
        for cut in [bytes.len() / 2, 20] {
            let e = decode_error(&bytes[..cut], rel, Decoder::default(), DEFAULT_MAX_PIXELS);
            assert!(matches!(e, PreprocessError::Decode { .. }), "{rel}: {e}");
            assert!(e.to_string().starts_with(rel), "{e}");
        }
    }
}

/// Sets the dimensions in a JPEG's SOF0/SOF2 segment.
fn patch_jpeg_size(bytes: &[u8], w: u16, h: u16) -> Vec<u8> {
    let mut b = bytes.to_vec();
    let mut i = 2;
    while i + 4 < b.len() {
        assert_eq!(b[i], 0xFF);
        let m = b[i + 1];
        let len = u16::from_be_bytes([b[i + 2], b[i + 3]]) as usize;
        if matches!(m, 0xC0..=0xC2) {
            b[i + 5..i + 7].copy_from_slice(&h.to_be_bytes());
            b[i + 7..i + 9].copy_from_slice(&w.to_be_bytes());
            return b;
        }
        i += 2 + len;
    }
    panic!("no SOF");
}

/// A PNG with the given IHDR size and a tiny (wrong-sized) IDAT.
fn png_with_size(w: u32, h: u32) -> Vec<u8> {
    let bytes = read("tests/fixtures/decode/png_rgb8.png");
    let mut b = bytes.clone();
    b[16..20].copy_from_slice(&w.to_be_bytes());
    b[20..24].copy_from_slice(&h.to_be_bytes());
    // fix the IHDR CRC
    let crc = crc32(&b[12..29]);
    b[29..33].copy_from_slice(&crc.to_be_bytes());
    b
}

fn crc32(data: &[u8]) -> u32 {
    let mut c = !0u32;
    for &byte in data {
        c ^= byte as u32;
        for _ in 0..8 {
            c = if c & 1 != 0 {
                0xEDB8_8320 ^ (c >> 1)
            } else {
                c >> 1
            };
        }
    }
    !c
}

#[test]
fn too_large_is_refused_from_the_header() {
    // Headers claiming 60000 x 60000 (3.6 G pixels, ~10 GB of RGB): refused
    // before any allocation or decoding.
    let jpeg = patch_jpeg_size(&read("tests/fixtures/decode/jpeg_420.jpg"), 60000, 60000);
    let png = png_with_size(60000, 60000);
    let mut bmp = read("tests/fixtures/decode/bmp_rgb.bmp");
    bmp[18..22].copy_from_slice(&60000i32.to_le_bytes());
    bmp[22..26].copy_from_slice(&60000i32.to_le_bytes());
    for (bytes, label, decoder) in [
        (&jpeg, "big.jpg", Decoder::LibjpegTurbo),
        (&jpeg, "big.jpg", Decoder::Zune),
        (&png, "big.png", Decoder::default()),
        (&bmp, "big.bmp", Decoder::default()),
    ] {
        match decode_error(bytes, label, decoder, DEFAULT_MAX_PIXELS) {
            PreprocessError::TooLarge {
                input,
                pixels,
                limit,
            } => {
                assert_eq!(input, label);
                assert_eq!(pixels, 3_600_000_000);
                assert_eq!(limit, DEFAULT_MAX_PIXELS);
            }
            e => panic!("{label}: {e}"),
        }
    }
    // and a real image against a small limit (64 x 48 = 3072 pixels)
    let e = decode_error(
        &read("tests/fixtures/decode/jpeg_420.jpg"),
        "small.jpg",
        Decoder::default(),
        3071,
    );
    assert_eq!(
        e.to_string(),
        "small.jpg: image has 3072 pixels, more than the limit of 3071 (input.max_pixels)"
    );
    let ok = decode(
        &read("tests/fixtures/decode/png_gray8.png"),
        "x",
        Decoder::default(),
        Color::Gray,
        3072,
    );
    assert!(ok.is_ok());
}

#[test]
fn zero_size_images_are_errors() {
    let jpeg = patch_jpeg_size(&read("tests/fixtures/decode/jpeg_420.jpg"), 0, 48);
    assert_decode_error(&jpeg, "zero.jpg", Decoder::LibjpegTurbo, "");
    assert_decode_error(&jpeg, "zero.jpg", Decoder::Zune, "");
    let jpeg = patch_jpeg_size(&read("tests/fixtures/decode/jpeg_420.jpg"), 64, 0);
    assert_decode_error(&jpeg, "zero.jpg", Decoder::LibjpegTurbo, "");
    for (w, h) in [(0, 0), (0, 10), (10, 0)] {
        assert_decode_error(&png_with_size(w, h), "zero.png", Decoder::default(), "");
    }
    let mut bmp = read("tests/fixtures/decode/bmp_rgb.bmp");
    bmp[18..22].copy_from_slice(&0i32.to_le_bytes());
    assert_decode_error(&bmp, "zero.bmp", Decoder::default(), "");
}

/// For each cut point of a JPEG recorded by the fixture script, the decoder
/// succeeds exactly where Pillow's `Image.open(prefix).load()` does (only the
/// whole file: even a JPEG missing just its EOI marker is "truncated").
#[test]
fn jpeg_truncation_points_agree_with_pillow() {
    let exp = expected();
    for (rel, cases) in exp["truncation"].as_object().unwrap() {
        let bytes = read(rel);
        for (key, want_ok) in [("ok", true), ("error", false)] {
            for cut in cases[key].as_array().unwrap() {
                let cut = cut.as_u64().unwrap() as usize;
                let got = decode(
                    &bytes[..cut],
                    rel,
                    Decoder::default(),
                    Color::Rgb,
                    DEFAULT_MAX_PIXELS,
                );
                assert_eq!(
                    got.is_ok(),
                    want_ok,
                    "{rel} cut at {cut}/{}: {:?}",
                    bytes.len(),
                    got.err().map(|e| e.to_string())
                );
            }
        }
    }
}
