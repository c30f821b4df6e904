//! Arbitrary bytes through decode + a full image pipeline (PIL and OpenCV
//! resizes, crop, pad, normalize): every input must end in Ok or a
//! PreprocessError, never a panic, an abort or an out-of-memory.
#![no_main]

use std::sync::OnceLock;

use bridgeml_preprocess::{Pipeline, Source, Spec};
use libfuzzer_sys::fuzz_target;

fn pipelines() -> &'static [Pipeline] {
    static P: OnceLock<Vec<Pipeline>> = OnceLock::new();
    P.get_or_init(|| {
        let specs = [
            r#"
[input]
kind = "image"
max_pixels = 4000000
[[steps]]
op = "exif_transpose"
[[steps]]
op = "resize_shorter"
size = 37
filter = "lanczos"
compat = "pil"
[[steps]]
op = "center_crop"
height = 32
width = 40
[[steps]]
op = "to_float"
[[steps]]
op = "normalize"
mean = [0.5, 0.4, 0.3]
std = [0.2, 0.2, 0.2]
[[steps]]
op = "layout"
order = "chw"
"#,
            r#"
[input]
kind = "image"
color = "bgr"
max_pixels = 4000000
[[steps]]
op = "pad"
top = 3
left = 1
mode = "edge"
[[steps]]
op = "resize"
height = 17
width = 9
filter = "area"
compat = "opencv"
[[steps]]
op = "convert"
color = "gray"
"#,
        ];
        specs
            .iter()
            .map(|s| Pipeline::new(Spec::from_toml_str(s).expect("valid spec")).expect("valid"))
            .collect()
    })
}

fuzz_target!(|data: &[u8]| {
    for p in pipelines() {
        let _ = p.run(Source::Bytes {
            bytes: data,
            label: "fuzz",
        });
    }
});
