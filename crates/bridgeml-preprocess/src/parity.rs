//! Parity between the engine and someone else's preprocessing: compare
//! tensors, and when they differ, find which neighbouring variant of the spec
//! (other resize library or filter, other decoder, channel order, float
//! arithmetic, layout) reproduces the reference.

use bridgeml_core::{DType, Tensor};
use serde::Serialize;

use crate::engine::{Pipeline, Source, Stage};
use crate::error::Result;
use crate::spec::{Color, Compat, Decoder, Filter, InputKind, Layout, Precision, Spec, Step};

/// How two tensors differ.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Comparison {
    /// Shapes equal after dropping size-1 axes (a gray `HxW` array matches `HxWx1`).
    pub shape_match: bool,
    pub ours_shape: Vec<usize>,
    pub reference_shape: Vec<usize>,
    pub ours_dtype: String,
    pub reference_dtype: String,
    /// Content hashes equal: same dtype, shape and bits.
    pub hash_match: bool,
    /// Values equal (after the shape squeeze), whatever the dtype.
    pub exact: bool,
    /// `None` when the shapes differ.
    pub max_abs_diff: Option<f64>,
    pub mean_abs_diff: Option<f64>,
    /// Percentage of values that differ, in [0, 100].
    pub pct_differing: Option<f64>,
}

fn squeezed(shape: &[usize]) -> Vec<usize> {
    shape.iter().copied().filter(|&d| d != 1).collect()
}

/// Compares `ours` with `reference` value by value.
pub fn compare(ours: &Tensor, reference: &Tensor) -> Comparison {
    let shape_match = squeezed(ours.shape()) == squeezed(reference.shape());
    let hash_match = ours.content_hash() == reference.content_hash();
    let (mut max_abs, mut mean_abs, mut pct, mut exact) = (None, None, None, false);
    if shape_match {
        let a = ours.to_f64_vec();
        let b = reference.to_f64_vec();
        let mut max = 0f64;
        let mut sum = 0f64;
        let mut differing = 0usize;
        for (x, y) in a.iter().zip(&b) {
            let d = if x == y || (x.is_nan() && y.is_nan()) {
                0.0
            } else {
                (x - y).abs()
            };
            if d != 0.0 {
                differing += 1;
            }
            max = max.max(d);
            sum += d;
        }
        let n = a.len().max(1) as f64;
        max_abs = Some(max);
        mean_abs = Some(sum / n);
        pct = Some(100.0 * differing as f64 / n);
        exact = differing == 0;
    }
    Comparison {
        shape_match,
        ours_shape: ours.shape().to_vec(),
        reference_shape: reference.shape().to_vec(),
        ours_dtype: ours.dtype().name().into(),
        reference_dtype: reference.dtype().name().into(),
        hash_match,
        exact,
        max_abs_diff: max_abs,
        mean_abs_diff: mean_abs,
        pct_differing: pct,
    }
}

/// The stage of `trace` a reference should be compared with: for a uint8
/// reference, the last uint8 stage of the same (squeezed) shape; otherwise,
/// and when no such stage exists, the final output. (A float reference is
/// always compared with the output: matching it by shape would compare an
/// HWC dump with the HWC stage before a `layout` step and call it exact.)
pub fn matching_stage(trace: &[Stage], reference: &Tensor) -> usize {
    let last = trace.len() - 1;
    if reference.dtype() != DType::U8 {
        return last;
    }
    trace
        .iter()
        .rposition(|s| {
            s.tensor.dtype() == DType::U8
                && squeezed(s.tensor.shape()) == squeezed(reference.shape())
        })
        .unwrap_or(last)
}

/// A spec that differs from the original in one named way.
#[derive(Debug, Clone)]
pub struct Variant {
    /// e.g. `resize compat=opencv filter=bilinear`.
    pub description: String,
    /// What the original spec says instead, e.g. `compat=pil filter=bilinear`.
    pub original: String,
    pub spec: Spec,
}

/// The neighbouring variants tried by the diagnosis.
pub fn variants(spec: &Spec) -> Vec<Variant> {
    let mut out = Vec::new();
    if spec.input.kind != InputKind::Image {
        return out;
    }
    let mut push = |description: String, original: String, spec: Spec| {
        if spec.validate().is_ok() {
            out.push(Variant {
                description,
                original,
                spec,
            });
        }
    };
    for decoder in [
        Decoder::LibjpegTurbo,
        Decoder::LibjpegTurboIfast,
        Decoder::LibjpegTurboNoFancy,
        Decoder::Zune,
    ] {
        if decoder != spec.input.decoder {
            let mut s = spec.clone();
            s.input.decoder = decoder;
            push(
                format!("decoder={}", decoder_name(decoder)),
                format!("decoder={}", decoder_name(spec.input.decoder)),
                s,
            );
        }
    }
    for color in [Color::Rgb, Color::Bgr] {
        if color != spec.input.color && spec.input.color != Color::Gray {
            let mut s = spec.clone();
            s.input.color = color;
            push(
                format!("color={}", color_name(color)),
                format!("color={}", color_name(spec.input.color)),
                s,
            );
        }
    }
    for (i, step) in spec.steps.iter().enumerate() {
        match step {
            Step::Resize { filter, compat, .. } | Step::ResizeShorter { filter, compat, .. } => {
                for c in [Compat::Pil, Compat::Opencv, Compat::PilNoAntialias] {
                    for f in Filter::ALL {
                        if (c, f) == (*compat, *filter) || !c.supports(f) {
                            continue;
                        }
                        let mut s = spec.clone();
                        match &mut s.steps[i] {
                            Step::Resize { filter, compat, .. }
                            | Step::ResizeShorter { filter, compat, .. } => {
                                *filter = f;
                                *compat = c;
                            }
                            _ => unreachable!(),
                        }
                        push(
                            format!("{} compat={} filter={}", step.op(), c.name(), f.name()),
                            format!("compat={} filter={}", compat.name(), filter.name()),
                            s,
                        );
                    }
                }
            }
            Step::ToFloat { scale, precision } if *scale != 1.0 => {
                let mut s = spec.clone();
                s.steps[i] = Step::ToFloat {
                    scale: 1.0,
                    precision: *precision,
                };
                push(
                    "to_float scale=1 (no division)".into(),
                    format!("scale={scale}"),
                    s,
                );
            }
            Step::Normalize { precision, .. } => {
                for p in [Precision::Float32, Precision::Float64, Precision::Folded] {
                    if p == *precision {
                        continue;
                    }
                    let mut s = spec.clone();
                    if let Step::Normalize { precision, .. } = &mut s.steps[i] {
                        *precision = p;
                    }
                    if p == Precision::Float64 {
                        // A float64 pipeline divides in float64 too.
                        for st in s.steps.iter_mut() {
                            if let Step::ToFloat { precision, .. } = st {
                                *precision = Precision::Float64;
                            }
                        }
                    }
                    push(
                        format!("normalize precision={}", precision_name(p)),
                        format!("precision={}", precision_name(*precision)),
                        s,
                    );
                }
            }
            Step::Layout { order } => {
                let other = match order {
                    Layout::Chw => Layout::Hwc,
                    Layout::Hwc => Layout::Chw,
                };
                let mut s = spec.clone();
                s.steps[i] = Step::Layout { order: other };
                push(
                    format!("layout order={}", layout_name(other)),
                    format!("order={}", layout_name(*order)),
                    s,
                );
            }
            _ => {}
        }
    }
    out
}

fn decoder_name(d: Decoder) -> &'static str {
    match d {
        Decoder::LibjpegTurbo => "libjpeg-turbo",
        Decoder::LibjpegTurboIfast => "libjpeg-turbo-ifast",
        Decoder::LibjpegTurboNoFancy => "libjpeg-turbo-nofancy",
        Decoder::Zune => "zune",
    }
}

fn color_name(c: Color) -> &'static str {
    match c {
        Color::Rgb => "rgb",
        Color::Bgr => "bgr",
        Color::Gray => "gray",
    }
}

fn precision_name(p: Precision) -> &'static str {
    match p {
        Precision::Float32 => "float32",
        Precision::Float64 => "float64",
        Precision::Folded => "folded",
    }
}

fn layout_name(l: Layout) -> &'static str {
    match l {
        Layout::Chw => "chw",
        Layout::Hwc => "hwc",
    }
}

/// One variant's result against the reference.
#[derive(Debug, Clone, Serialize)]
pub struct Candidate {
    pub variant: String,
    /// What the spec says instead.
    pub spec_says: String,
    pub exact: bool,
    pub max_abs_diff: Option<f64>,
    pub mean_abs_diff: Option<f64>,
    pub pct_differing: Option<f64>,
}

/// Which variant explains a mismatch.
#[derive(Debug, Clone, Serialize)]
pub struct Diagnosis {
    /// The best candidate, if any variant is closer than the spec itself.
    pub best: Option<Candidate>,
    /// Up to five closest candidates, best first.
    pub candidates: Vec<Candidate>,
    /// One sentence for humans.
    pub summary: String,
}

fn rank_key(c: &Candidate) -> (bool, f64, f64) {
    (
        !c.exact,
        c.mean_abs_diff.unwrap_or(f64::INFINITY),
        c.max_abs_diff.unwrap_or(f64::INFINITY),
    )
}

/// Re-runs `source` under every variant of `pipeline`'s spec and ranks them
/// by closeness to `reference` at the stage the reference corresponds to.
pub fn diagnose(
    pipeline: &Pipeline,
    source: Source<'_>,
    reference: &Tensor,
    baseline: &Comparison,
) -> Result<Diagnosis> {
    let mut candidates: Vec<Candidate> = Vec::new();
    let own = pipeline.trace(source)?;
    for v in variants(pipeline.spec()) {
        let p = Pipeline::new(v.spec)?;
        let trace = match p.trace(source) {
            Ok(t) => t,
            Err(_) => continue,
        };
        let stage = matching_stage(&trace, reference);
        // A variant that changes nothing on this input (e.g. another chroma
        // upsampling on a 4:4:4 JPEG) cannot explain a difference.
        if own.get(stage).is_some_and(|s| {
            s.name == trace[stage].name
                && s.tensor.content_hash() == trace[stage].tensor.content_hash()
        }) {
            continue;
        }
        let c = compare(&trace[stage].tensor, reference);
        candidates.push(Candidate {
            variant: v.description,
            spec_says: v.original,
            exact: c.exact,
            max_abs_diff: c.max_abs_diff,
            mean_abs_diff: c.mean_abs_diff,
            pct_differing: c.pct_differing,
        });
    }
    candidates.sort_by(|a, b| rank_key(a).partial_cmp(&rank_key(b)).expect("no NaN keys"));
    candidates.truncate(5);
    let baseline_mean = baseline.mean_abs_diff.unwrap_or(f64::INFINITY);
    let best = candidates
        .first()
        .filter(|c| c.exact || c.mean_abs_diff.unwrap_or(f64::INFINITY) < baseline_mean)
        .cloned();
    let summary = match &best {
        Some(c) if c.exact => format!(
            "reference matches {} exactly; spec says {}",
            c.variant, c.spec_says
        ),
        Some(c) => format!(
            "closest: {} (mean abs diff {:.4}, max {}); spec says {}; no variant matches exactly",
            c.variant,
            c.mean_abs_diff.unwrap_or(f64::NAN),
            c.max_abs_diff.unwrap_or(f64::NAN),
            c.spec_says
        ),
        None => "no neighbouring variant comes closer than the spec itself".into(),
    };
    Ok(Diagnosis {
        best,
        candidates,
        summary,
    })
}

/// Where two specs first produce different tensors on one input.
#[derive(Debug, Clone, Serialize)]
pub struct StageDivergence {
    /// `None` when every compared stage is identical.
    pub first_diverging_step: Option<usize>,
    /// `decode` or the op of the first diverging stage.
    pub first_diverging_op: Option<String>,
    pub comparison: Option<Comparison>,
    /// Stages compared (decode plus common steps).
    pub stages_compared: usize,
    pub final_comparison: Comparison,
}

/// Compares two specs stage by stage on one input.
pub fn first_divergence(a: &Pipeline, b: &Pipeline, source: Source<'_>) -> Result<StageDivergence> {
    let ta = a.trace(source)?;
    let tb = b.trace(source)?;
    let n = ta.len().min(tb.len());
    let mut first = None;
    for i in 0..n {
        let c = compare(&ta[i].tensor, &tb[i].tensor);
        if !c.hash_match || ta[i].name != tb[i].name {
            first = Some((i, c));
            break;
        }
    }
    let final_comparison = compare(
        &ta.last().expect("decode stage").tensor,
        &tb.last().expect("decode stage").tensor,
    );
    if first.is_none() && ta.len() != tb.len() && !final_comparison.hash_match {
        first = Some((n.min(ta.len().max(tb.len()) - 1), final_comparison.clone()));
    }
    Ok(match first {
        Some((i, c)) => StageDivergence {
            first_diverging_step: ta.get(i).or(tb.get(i)).and_then(|s| s.step),
            first_diverging_op: Some(
                ta.get(i)
                    .or(tb.get(i))
                    .map(|s| s.name.clone())
                    .unwrap_or_default(),
            ),
            comparison: Some(c),
            stages_compared: n,
            final_comparison,
        },
        None => StageDivergence {
            first_diverging_step: None,
            first_diverging_op: None,
            comparison: None,
            stages_compared: n,
            final_comparison,
        },
    })
}
