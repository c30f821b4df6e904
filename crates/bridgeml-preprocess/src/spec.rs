//! The preprocessing spec: a TOML (or JSON) file that fully determines the
//! engine's output, and its fingerprint.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::{PreprocessError, Result};

/// Version of the engine's numeric behaviour. It is part of every spec
/// fingerprint, so a change that alters any output byte must bump it.
pub const ENGINE_FORMAT_VERSION: &str = "bridgeml-preprocess/1";

/// Pillow's default `Image.MAX_IMAGE_PIXELS`.
pub const DEFAULT_MAX_PIXELS: u64 = 89_478_485;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Spec {
    pub input: InputSpec,
    #[serde(default)]
    pub steps: Vec<Step>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum InputKind {
    Image,
    Tabular,
}

/// How compressed images become pixels. All decoders decode PNG, BMP, GIF,
/// TIFF and WebP exactly; they differ on JPEG only.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum Decoder {
    /// libjpeg-turbo, slow-integer DCT, fancy upsampling: what Pillow and OpenCV do.
    #[default]
    #[serde(rename = "libjpeg-turbo")]
    LibjpegTurbo,
    /// libjpeg-turbo with the fast integer DCT (TensorFlow's `dct_method="INTEGER_FAST"`).
    #[serde(rename = "libjpeg-turbo-ifast")]
    LibjpegTurboIfast,
    /// libjpeg-turbo without fancy (smooth) chroma upsampling.
    #[serde(rename = "libjpeg-turbo-nofancy")]
    LibjpegTurboNoFancy,
    /// The pure-Rust zune-jpeg decoder used by the `image` crate.
    #[serde(rename = "zune")]
    Zune,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Color {
    #[default]
    Rgb,
    Bgr,
    Gray,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InputSpec {
    pub kind: InputKind,
    #[serde(default)]
    pub decoder: Decoder,
    #[serde(default)]
    pub color: Color,
    /// Images with more pixels are refused (decompression-bomb guard).
    #[serde(default = "default_max_pixels")]
    pub max_pixels: u64,
    /// Tabular only: the input columns, in output order.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub columns: Option<Vec<String>>,
}

fn default_max_pixels() -> u64 {
    DEFAULT_MAX_PIXELS
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Filter {
    Nearest,
    Box,
    Bilinear,
    Hamming,
    Bicubic,
    Lanczos,
    Area,
}

impl Filter {
    pub const ALL: [Filter; 7] = [
        Filter::Nearest,
        Filter::Box,
        Filter::Bilinear,
        Filter::Hamming,
        Filter::Bicubic,
        Filter::Lanczos,
        Filter::Area,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Filter::Nearest => "nearest",
            Filter::Box => "box",
            Filter::Bilinear => "bilinear",
            Filter::Hamming => "hamming",
            Filter::Bicubic => "bicubic",
            Filter::Lanczos => "lanczos",
            Filter::Area => "area",
        }
    }
}

/// Which library's resize to reproduce bit for bit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub enum Compat {
    /// Pillow's `Image.resize`.
    #[default]
    #[serde(rename = "pil")]
    Pil,
    /// `cv2.resize`.
    #[serde(rename = "opencv")]
    Opencv,
    /// Pillow's algorithm without antialiasing (filter support not widened
    /// when downscaling), as resizers that sample a fixed number of taps do.
    #[serde(rename = "pil-noantialias")]
    PilNoAntialias,
}

impl Compat {
    pub fn name(self) -> &'static str {
        match self {
            Compat::Pil => "pil",
            Compat::Opencv => "opencv",
            Compat::PilNoAntialias => "pil-noantialias",
        }
    }

    /// Whether this library offers `filter`.
    pub fn supports(self, filter: Filter) -> bool {
        match self {
            Compat::Pil | Compat::PilNoAntialias => filter != Filter::Area,
            Compat::Opencv => !matches!(filter, Filter::Box | Filter::Hamming),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Layout {
    Chw,
    Hwc,
}

/// Arithmetic of the float steps. The default is the contract (float32, op
/// by op, as numpy does); the others exist because real pipelines use them and
/// the parity diagnosis must be able to name them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Precision {
    /// float32, each operation rounded as numpy does.
    #[default]
    Float32,
    /// float64 throughout, cast to float32 at the end.
    Float64,
    /// Normalize only: `x * (1/std) + (-mean/std)` with constants folded in float64 then cast.
    Folded,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PadMode {
    #[default]
    Constant,
    Edge,
}

/// Policy for a category not seen when the one-hot step was fitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UnknownCategory {
    #[default]
    Error,
    AllZeros,
    #[serde(rename = "__unknown__")]
    UnknownBucket,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ImputeStrategy {
    #[default]
    Constant,
    Mean,
    Median,
}

/// One preprocessing step. The `op` key selects the variant.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case", deny_unknown_fields)]
pub enum Step {
    /// Resize to exactly `height` x `width`.
    Resize {
        height: i64,
        width: i64,
        #[serde(default = "default_filter")]
        filter: Filter,
        #[serde(default)]
        compat: Compat,
    },
    /// torchvision `Resize(int)`: shorter side to `size`, longer side `int(size * long / short)`.
    ResizeShorter {
        size: i64,
        #[serde(default = "default_filter")]
        filter: Filter,
        #[serde(default)]
        compat: Compat,
    },
    /// torchvision `CenterCrop`: `top = int(round((h - ch) / 2.0))`; zero-padded when the image is smaller.
    CenterCrop { height: i64, width: i64 },
    /// An explicit crop window; it must lie inside the image.
    Crop {
        top: i64,
        left: i64,
        height: i64,
        width: i64,
    },
    /// Pad each side by the given number of pixels.
    Pad {
        #[serde(default)]
        top: i64,
        #[serde(default)]
        bottom: i64,
        #[serde(default)]
        left: i64,
        #[serde(default)]
        right: i64,
        #[serde(default)]
        mode: PadMode,
        /// Constant fill, one value or one per channel.
        #[serde(default)]
        value: Vec<u8>,
    },
    /// Apply the EXIF orientation tag, as `PIL.ImageOps.exif_transpose` does.
    ExifTranspose {},
    /// Convert channels as Pillow's `Image.convert` does (gray to RGB replicates).
    Convert { color: Color },
    /// `f32 = u8 / scale`, in float32 (`numpy: x.astype(np.float32) / np.float32(scale)`).
    ToFloat {
        #[serde(default = "default_scale")]
        scale: f64,
        #[serde(default)]
        precision: Precision,
    },
    /// `(x - mean) / std`, in float32, per channel (`numpy: (x - mean32) / std32`).
    Normalize {
        mean: Vec<f64>,
        std: Vec<f64>,
        #[serde(default)]
        precision: Precision,
    },
    /// Output axis order.
    Layout { order: Layout },

    // ---- tabular ----
    /// `(x - mean) / std`; both fitted by `spec fit` when absent (population std, like scikit-learn).
    Standardize {
        columns: Vec<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        mean: Option<Vec<f64>>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        std: Option<Vec<f64>>,
    },
    /// `(x - min) / (max - min)`; fitted when absent.
    MinMax {
        columns: Vec<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        min: Option<Vec<f64>>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        max: Option<Vec<f64>>,
    },
    /// Clamp into `[min, max]`.
    Clip {
        columns: Vec<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        min: Option<f64>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        max: Option<f64>,
    },
    /// Replace missing values; `mean`/`median` are fitted into `values`.
    Impute {
        columns: Vec<String>,
        #[serde(default)]
        strategy: ImputeStrategy,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        value: Option<f64>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        values: Option<Vec<f64>>,
    },
    /// Expand a categorical column into one 0/1 feature per category.
    OneHot {
        column: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        categories: Option<Vec<String>>,
        #[serde(default)]
        unknown: UnknownCategory,
    },
    /// Replace a value by the index of its bucket: `i` such that `edges[i-1] <= x < edges[i]`.
    Bucketize { column: String, edges: Vec<f64> },
}

fn default_filter() -> Filter {
    Filter::Bilinear
}

fn default_scale() -> f64 {
    255.0
}

impl Step {
    /// The `op` name as written in specs.
    pub fn op(&self) -> &'static str {
        match self {
            Step::Resize { .. } => "resize",
            Step::ResizeShorter { .. } => "resize_shorter",
            Step::CenterCrop { .. } => "center_crop",
            Step::Crop { .. } => "crop",
            Step::Pad { .. } => "pad",
            Step::ExifTranspose {} => "exif_transpose",
            Step::Convert { .. } => "convert",
            Step::ToFloat { .. } => "to_float",
            Step::Normalize { .. } => "normalize",
            Step::Layout { .. } => "layout",
            Step::Standardize { .. } => "standardize",
            Step::MinMax { .. } => "min_max",
            Step::Clip { .. } => "clip",
            Step::Impute { .. } => "impute",
            Step::OneHot { .. } => "one_hot",
            Step::Bucketize { .. } => "bucketize",
        }
    }

    pub fn is_tabular(&self) -> bool {
        matches!(
            self,
            Step::Standardize { .. }
                | Step::MinMax { .. }
                | Step::Clip { .. }
                | Step::Impute { .. }
                | Step::OneHot { .. }
                | Step::Bucketize { .. }
        )
    }

    /// Whether the step works on 8-bit pixels (so must precede `to_float`).
    pub fn is_pixel_op(&self) -> bool {
        matches!(
            self,
            Step::Resize { .. }
                | Step::ResizeShorter { .. }
                | Step::CenterCrop { .. }
                | Step::Crop { .. }
                | Step::Pad { .. }
                | Step::ExifTranspose {}
                | Step::Convert { .. }
        )
    }
}

impl Spec {
    /// Reads a spec from `.toml` or `.json` (chosen by extension; TOML otherwise) and validates it.
    pub fn from_path(path: &Path) -> Result<Spec> {
        let text = std::fs::read_to_string(path).map_err(|e| PreprocessError::Io {
            path: path.to_path_buf(),
            source: e,
        })?;
        let is_json = path
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("json"));
        let spec = if is_json {
            Self::from_json_str(&text)
        } else {
            Self::from_toml_str(&text)
        };
        spec.map_err(|e| e.in_file(path))
    }

    pub fn from_toml_str(text: &str) -> Result<Spec> {
        let spec: Spec = toml::from_str(text).map_err(|e| PreprocessError::SpecParse {
            path: None,
            reason: e.to_string(),
        })?;
        spec.validate()?;
        Ok(spec)
    }

    pub fn from_json_str(text: &str) -> Result<Spec> {
        let spec: Spec = serde_json::from_str(text).map_err(|e| PreprocessError::SpecParse {
            path: None,
            reason: e.to_string(),
        })?;
        spec.validate()?;
        Ok(spec)
    }

    pub fn to_toml_string(&self) -> String {
        toml::to_string_pretty(self).expect("a spec always serializes to TOML")
    }

    /// The canonical form: JSON with sorted keys and every default filled in,
    /// so that two files that mean the same spec have the same fingerprint.
    pub fn canonical_json(&self) -> String {
        let value = serde_json::to_value(self).expect("a spec always serializes");
        // serde_json's Map is a BTreeMap (no `preserve_order`), so keys come out sorted.
        serde_json::to_string(&value).expect("a JSON value always serializes")
    }

    /// `sha256:<hex>` of the canonical form and [`ENGINE_FORMAT_VERSION`].
    pub fn fingerprint(&self) -> String {
        let mut text = String::from(ENGINE_FORMAT_VERSION);
        text.push('\n');
        text.push_str(&self.canonical_json());
        bridgeml_core::fingerprint::sha256_bytes(text.as_bytes())
    }

    /// Index of the step an `--until` argument names: a 0-based index or an
    /// op name (first match). `decode` means before any step (`None`).
    pub fn resolve_until(&self, until: &str) -> Result<Option<usize>> {
        if until == "decode" {
            return Ok(None);
        }
        if let Ok(i) = until.parse::<usize>() {
            if i < self.steps.len() {
                return Ok(Some(i));
            }
            return Err(PreprocessError::InvalidArgument(format!(
                "--until {i}: the spec has {} steps (0..{})",
                self.steps.len(),
                self.steps.len().saturating_sub(1)
            )));
        }
        self.steps
            .iter()
            .position(|s| s.op() == until)
            .map(Some)
            .ok_or_else(|| {
                let ops: Vec<&str> = self.steps.iter().map(Step::op).collect();
                PreprocessError::InvalidArgument(format!(
                    "--until {until}: no such step; the spec's steps are decode, {}",
                    ops.join(", ")
                ))
            })
    }

    /// Checks everything that can be checked without data.
    pub fn validate(&self) -> Result<()> {
        let bad = |index: usize, step: &Step, reason: String| PreprocessError::SpecInvalid {
            path: None,
            step: Some(index),
            op: Some(step.op().to_string()),
            reason,
        };
        let positive = |index: usize, step: &Step, name: &str, v: i64| {
            if v <= 0 {
                Err(bad(
                    index,
                    step,
                    format!("{name} must be positive, got {v}"),
                ))
            } else {
                Ok(())
            }
        };
        if self.input.max_pixels == 0 {
            return Err(PreprocessError::SpecInvalid {
                path: None,
                step: None,
                op: None,
                reason: "input.max_pixels must be positive".into(),
            });
        }
        let mut is_float = false;
        for (i, step) in self.steps.iter().enumerate() {
            match self.input.kind {
                InputKind::Image if step.is_tabular() => {
                    return Err(bad(
                        i,
                        step,
                        "is a tabular step but input.kind is \"image\"".into(),
                    ))
                }
                InputKind::Tabular if !step.is_tabular() => {
                    return Err(bad(
                        i,
                        step,
                        "is an image step but input.kind is \"tabular\"".into(),
                    ))
                }
                _ => {}
            }
            if step.is_pixel_op() && is_float {
                return Err(bad(
                    i,
                    step,
                    "works on 8-bit pixels and must come before to_float".into(),
                ));
            }
            match step {
                Step::Resize {
                    height,
                    width,
                    filter,
                    compat,
                } => {
                    positive(i, step, "height", *height)?;
                    positive(i, step, "width", *width)?;
                    check_filter(i, step, *filter, *compat)?;
                }
                Step::ResizeShorter {
                    size,
                    filter,
                    compat,
                } => {
                    positive(i, step, "size", *size)?;
                    check_filter(i, step, *filter, *compat)?;
                }
                Step::CenterCrop { height, width } => {
                    positive(i, step, "height", *height)?;
                    positive(i, step, "width", *width)?;
                }
                Step::Crop {
                    top,
                    left,
                    height,
                    width,
                } => {
                    positive(i, step, "height", *height)?;
                    positive(i, step, "width", *width)?;
                    if *top < 0 || *left < 0 {
                        return Err(bad(i, step, "top and left must not be negative".into()));
                    }
                }
                Step::Pad {
                    top,
                    bottom,
                    left,
                    right,
                    ..
                } => {
                    if [top, bottom, left, right].iter().any(|v| **v < 0) {
                        return Err(bad(i, step, "padding must not be negative".into()));
                    }
                }
                Step::ExifTranspose {} | Step::Convert { .. } => {}
                Step::ToFloat { scale, precision } => {
                    if is_float {
                        return Err(bad(i, step, "the tensor is already float".into()));
                    }
                    if *precision == Precision::Folded {
                        return Err(bad(
                            i,
                            step,
                            "precision \"folded\" applies to normalize only".into(),
                        ));
                    }
                    if !scale.is_finite() || *scale == 0.0 {
                        return Err(bad(
                            i,
                            step,
                            format!("scale must be finite and non-zero, got {scale}"),
                        ));
                    }
                    is_float = true;
                }
                Step::Normalize { mean, std, .. } => {
                    if !is_float {
                        return Err(bad(
                            i,
                            step,
                            "needs float input: add a to_float step before it".into(),
                        ));
                    }
                    if mean.len() != std.len() || mean.is_empty() {
                        return Err(bad(
                            i,
                            step,
                            format!(
                                "mean has {} values and std has {}; they must have one per channel",
                                mean.len(),
                                std.len()
                            ),
                        ));
                    }
                    if let Some(s) = std.iter().find(|s| **s == 0.0 || !s.is_finite()) {
                        return Err(bad(
                            i,
                            step,
                            format!("std must be finite and non-zero, got {s}"),
                        ));
                    }
                    if mean.iter().any(|m| !m.is_finite()) {
                        return Err(bad(i, step, "mean must be finite".into()));
                    }
                }
                Step::Layout { .. } => {}
                Step::Standardize { columns, mean, std } => {
                    check_columns(i, step, columns)?;
                    check_fitted_len(i, step, columns, "mean", mean)?;
                    check_fitted_len(i, step, columns, "std", std)?;
                    if let Some(s) = std
                        .as_ref()
                        .and_then(|s| s.iter().find(|v| **v == 0.0 || !v.is_finite()))
                    {
                        return Err(bad(
                            i,
                            step,
                            format!("std must be finite and non-zero, got {s}"),
                        ));
                    }
                }
                Step::MinMax { columns, min, max } => {
                    check_columns(i, step, columns)?;
                    check_fitted_len(i, step, columns, "min", min)?;
                    check_fitted_len(i, step, columns, "max", max)?;
                    if let (Some(lo), Some(hi)) = (min, max) {
                        if lo.iter().zip(hi).any(|(a, b)| !(b > a)) {
                            return Err(bad(
                                i,
                                step,
                                "max must be greater than min in every column".into(),
                            ));
                        }
                    }
                }
                Step::Clip { columns, min, max } => {
                    check_columns(i, step, columns)?;
                    if min.is_none() && max.is_none() {
                        return Err(bad(i, step, "give min, max or both".into()));
                    }
                    if let (Some(lo), Some(hi)) = (min, max) {
                        if lo > hi {
                            return Err(bad(i, step, format!("min {lo} is above max {hi}")));
                        }
                    }
                }
                Step::Impute {
                    columns,
                    strategy,
                    value,
                    values,
                } => {
                    check_columns(i, step, columns)?;
                    check_fitted_len(i, step, columns, "values", values)?;
                    if *strategy == ImputeStrategy::Constant && value.is_none() && values.is_none()
                    {
                        return Err(bad(i, step, "strategy \"constant\" needs a value".into()));
                    }
                }
                Step::OneHot {
                    column, categories, ..
                } => {
                    check_columns(i, step, std::slice::from_ref(column))?;
                    if let Some(c) = categories {
                        let mut seen = std::collections::HashSet::new();
                        if let Some(dup) = c.iter().find(|x| !seen.insert(*x)) {
                            return Err(bad(i, step, format!("category {dup:?} is listed twice")));
                        }
                    }
                }
                Step::Bucketize { column, edges } => {
                    check_columns(i, step, std::slice::from_ref(column))?;
                    if edges.is_empty() || edges.windows(2).any(|w| !(w[1] > w[0])) {
                        return Err(bad(
                            i,
                            step,
                            "edges must be non-empty and strictly increasing".into(),
                        ));
                    }
                }
            }
        }
        if self.input.kind == InputKind::Tabular {
            let declared = self.input.columns.as_deref().unwrap_or(&[]);
            if declared.is_empty() {
                return Err(PreprocessError::SpecInvalid {
                    path: None,
                    step: None,
                    op: None,
                    reason: "a tabular spec needs input.columns".into(),
                });
            }
            for (i, step) in self.steps.iter().enumerate() {
                for c in step_columns(step) {
                    if !declared.contains(c) {
                        return Err(bad(
                            i,
                            step,
                            format!("column {c:?} is not in input.columns"),
                        ));
                    }
                }
            }
        }
        Ok(())
    }

    /// Whether every fitted statistic is present (so the spec can transform data).
    pub fn is_fitted(&self) -> bool {
        self.steps.iter().all(|s| match s {
            Step::Standardize { mean, std, .. } => mean.is_some() && std.is_some(),
            Step::MinMax { min, max, .. } => min.is_some() && max.is_some(),
            Step::Impute {
                strategy,
                values,
                value,
                ..
            } => match strategy {
                ImputeStrategy::Constant => value.is_some() || values.is_some(),
                _ => values.is_some(),
            },
            Step::OneHot { categories, .. } => categories.is_some(),
            _ => true,
        })
    }
}

/// Columns a tabular step reads.
pub fn step_columns(step: &Step) -> Vec<&String> {
    match step {
        Step::Standardize { columns, .. }
        | Step::MinMax { columns, .. }
        | Step::Clip { columns, .. }
        | Step::Impute { columns, .. } => columns.iter().collect(),
        Step::OneHot { column, .. } | Step::Bucketize { column, .. } => vec![column],
        _ => Vec::new(),
    }
}

fn check_filter(index: usize, step: &Step, filter: Filter, compat: Compat) -> Result<()> {
    if compat.supports(filter) {
        Ok(())
    } else {
        let hint = match (compat, filter) {
            (Compat::Opencv, Filter::Box) => "; OpenCV's closest is \"area\"",
            (Compat::Pil | Compat::PilNoAntialias, Filter::Area) => "; Pillow's closest is \"box\"",
            _ => "",
        };
        Err(PreprocessError::SpecInvalid {
            path: None,
            step: Some(index),
            op: Some(step.op().into()),
            reason: format!(
                "filter \"{}\" is not available with compat = \"{}\"{hint}",
                filter.name(),
                compat.name()
            ),
        })
    }
}

fn check_columns(index: usize, step: &Step, columns: &[String]) -> Result<()> {
    if columns.is_empty() || columns.iter().any(|c| c.is_empty()) {
        return Err(PreprocessError::SpecInvalid {
            path: None,
            step: Some(index),
            op: Some(step.op().into()),
            reason: "needs at least one non-empty column name".into(),
        });
    }
    Ok(())
}

fn check_fitted_len(
    index: usize,
    step: &Step,
    columns: &[String],
    name: &str,
    values: &Option<Vec<f64>>,
) -> Result<()> {
    match values {
        Some(v) if v.len() != columns.len() => Err(PreprocessError::SpecInvalid {
            path: None,
            step: Some(index),
            op: Some(step.op().into()),
            reason: format!(
                "{name} has {} values for {} columns",
                v.len(),
                columns.len()
            ),
        }),
        _ => Ok(()),
    }
}
