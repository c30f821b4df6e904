//! The parity diagnosis: given a reference tensor made by another pipeline,
//! name the variant of the spec that reproduces it; and the first diverging
//! stage between two specs.

use std::path::{Path, PathBuf};

use bridgeml_core::Tensor;
use bridgeml_preprocess::parity::{compare, diagnose, first_divergence, matching_stage};
use bridgeml_preprocess::{Pipeline, Source, Spec};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn spec_text(name: &str) -> String {
    std::fs::read_to_string(root().join("examples/specs").join(name)).unwrap()
}

fn pipe(text: &str) -> Pipeline {
    Pipeline::new(Spec::from_toml_str(text).unwrap()).unwrap()
}

fn china() -> Vec<u8> {
    std::fs::read(root().join("tests/fixtures/images/china.jpg")).unwrap()
}

fn source(bytes: &[u8]) -> Source<'_> {
    Source::Bytes {
        bytes,
        label: "china.jpg",
    }
}

fn reference(dir: &str) -> Tensor {
    Tensor::read_npy(&root().join(format!("tests/fixtures/pipeline/{dir}/china.npy"))).unwrap()
}

/// The PIL spec against the OpenCV dump (and vice versa): not exact, and the
/// diagnosis names the other library's resize as an exact match.
#[test]
fn diagnosis_names_the_resize_library_of_the_reference() {
    let bytes = china();
    for (spec, dir, variant, says) in [
        (
            "imagenet_pil.toml",
            "opencv",
            "resize_shorter compat=opencv filter=bilinear",
            "compat=pil filter=bilinear",
        ),
        (
            "imagenet_opencv.toml",
            "pil",
            "resize_shorter compat=pil filter=bilinear",
            "compat=opencv filter=bilinear",
        ),
    ] {
        let p = pipe(&spec_text(spec));
        let r = reference(dir);
        let out = p.run(source(&bytes)).unwrap();
        let c = compare(&out, &r);
        assert!(c.shape_match && !c.exact && !c.hash_match, "{spec}: {c:?}");
        assert!(c.max_abs_diff.unwrap() > 0.5, "{c:?}");
        assert!(c.pct_differing.unwrap() > 10.0, "{c:?}");
        let d = diagnose(&p, source(&bytes), &r, &c).unwrap();
        let best = d.best.as_ref().expect("a variant explains it");
        assert!(best.exact, "{d:?}");
        assert_eq!(best.variant, variant);
        assert_eq!(best.spec_says, says);
        assert_eq!(
            d.summary,
            format!("reference matches {variant} exactly; spec says {says}")
        );
        assert!(d.candidates.len() <= 5);
        // the matching spec itself is exact
        let own = if dir == "pil" {
            "imagenet_pil.toml"
        } else {
            "imagenet_opencv.toml"
        };
        let c = compare(&pipe(&spec_text(own)).run(source(&bytes)).unwrap(), &r);
        assert!(c.exact && c.hash_match, "{c:?}");
    }
}

/// References made by other neighbouring variants are named too (the
/// references here are made by the engine under that variant, which the
/// pipeline tests prove exact for the PIL and OpenCV cases).
#[test]
fn diagnosis_names_other_variants() {
    let bytes = china();
    let base = spec_text("imagenet_pil.toml");
    let p = pipe(&base);
    for (variant_text, expect) in [
        (
            base.replace("color = \"rgb\"", "color = \"bgr\""),
            "color=bgr",
        ),
        (
            base.replace("order = \"chw\"", "order = \"hwc\""),
            "layout order=hwc",
        ),
        (
            base.replace(
                "std = [0.229, 0.224, 0.225]",
                "std = [0.229, 0.224, 0.225]\nprecision = \"float64\"",
            )
            .replace("scale = 255.0", "scale = 255.0\nprecision = \"float64\""),
            "normalize precision=float64",
        ),
        (
            base.replace(
                "decoder = \"libjpeg-turbo\"",
                "decoder = \"libjpeg-turbo-ifast\"",
            ),
            "decoder=libjpeg-turbo-ifast",
        ),
    ] {
        let r = pipe(&variant_text).run(source(&bytes)).unwrap();
        let c = compare(&p.run(source(&bytes)).unwrap(), &r);
        assert!(!c.exact, "{expect}: the variant should change the output");
        let d = diagnose(&p, source(&bytes), &r, &c).unwrap();
        let best = d.best.expect(expect);
        assert!(best.exact, "{expect}: {best:?}");
        assert_eq!(best.variant, expect);
    }
}

/// A uint8 HWC dump is compared with the last 8-bit stage of the same shape.
#[test]
fn uint8_references_are_compared_with_the_matching_stage() {
    let bytes = china();
    let p = pipe(&spec_text("imagenet_pil.toml"));
    let trace = p.trace(source(&bytes)).unwrap();
    let r = Tensor::read_npy(&root().join("tests/fixtures/pipeline/pil_u8/china.npy")).unwrap();
    let i = matching_stage(&trace, &r);
    assert_eq!(trace[i].name, "center_crop");
    assert!(compare(&trace[i].tensor, &r).exact);
    // float reference -> final stage, even when an earlier float stage has its shape
    assert_eq!(matching_stage(&trace, &reference("pil")), trace.len() - 1);
    let hwc = spec_text("imagenet_pil.toml").replace("order = \"chw\"", "order = \"hwc\"");
    let hwc_ref = pipe(&hwc).run(source(&bytes)).unwrap();
    assert_eq!(matching_stage(&trace, &hwc_ref), trace.len() - 1);
    assert!(!compare(&trace[trace.len() - 1].tensor, &hwc_ref).exact);
}

#[test]
fn compare_reports_shape_mismatch_and_statistics() {
    let a = Tensor::read_npy(&root().join("tests/fixtures/pipeline/pil_u8/china.npy")).unwrap();
    let b = reference("pil");
    let c = compare(&a, &b);
    assert!(!c.shape_match && !c.exact && c.max_abs_diff.is_none());
    let c = compare(&b, &b);
    assert!(c.exact && c.hash_match);
    assert_eq!(c.max_abs_diff, Some(0.0));
    assert_eq!(c.pct_differing, Some(0.0));
    // exact values but another dtype: exact, hash differs
    let f = Tensor::F32(match &a {
        Tensor::U8(x) => x.mapv(f32::from),
        Tensor::F32(_) => unreachable!(),
    });
    let c = compare(&a, &f);
    assert!(c.exact && !c.hash_match);
}

/// Two specs: the first stage that differs is named.
#[test]
fn first_divergence_names_the_step() {
    let bytes = china();
    let pil = pipe(&spec_text("imagenet_pil.toml"));
    let cv = pipe(&spec_text("imagenet_opencv.toml"));
    let d = first_divergence(&pil, &cv, source(&bytes)).unwrap();
    assert_eq!(d.first_diverging_step, Some(0));
    assert_eq!(d.first_diverging_op.as_deref(), Some("resize_shorter"));
    assert!(!d.final_comparison.exact);

    let other_std = spec_text("imagenet_pil.toml").replace("0.224", "0.2245");
    let d = first_divergence(&pil, &pipe(&other_std), source(&bytes)).unwrap();
    assert_eq!(d.first_diverging_step, Some(3));
    assert_eq!(d.first_diverging_op.as_deref(), Some("normalize"));

    let bgr = spec_text("imagenet_pil.toml").replace("color = \"rgb\"", "color = \"bgr\"");
    let d = first_divergence(&pil, &pipe(&bgr), source(&bytes)).unwrap();
    assert_eq!(d.first_diverging_step, None);
    assert_eq!(d.first_diverging_op.as_deref(), Some("decode"));

    let d = first_divergence(&pil, &pil, source(&bytes)).unwrap();
    assert_eq!(d.first_diverging_op, None);
    assert!(d.final_comparison.exact);
    assert_eq!(d.stages_compared, 6);
}
