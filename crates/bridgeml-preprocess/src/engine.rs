//! The engine that runs a [`Spec`] on images: the one code path the CLI,
//! the server and the Python bindings share.

use std::path::Path;

use bridgeml_core::Tensor;
use ndarray::{ArrayD, IxDyn};

use crate::color;
use crate::decode;
use crate::error::{PreprocessError, Result};
use crate::image::ImageU8;
use crate::resize;
use crate::spec::{Color, InputKind, Layout, PadMode, Precision, Spec, Step};
use crate::tabular;

/// Where an input comes from; the label names it in error messages.
#[derive(Debug, Clone, Copy)]
pub enum Source<'a> {
    /// Encoded image bytes (any supported format).
    Bytes { bytes: &'a [u8], label: &'a str },
    /// Already decoded pixels, e.g. a numpy array from Python; `color` says
    /// what the channels are (1 channel is always gray).
    Pixels {
        image: &'a ImageU8,
        color: Color,
        label: &'a str,
    },
}

impl Source<'_> {
    fn label(&self) -> &str {
        match self {
            Source::Bytes { label, .. } | Source::Pixels { label, .. } => label,
        }
    }
}

/// One named intermediate result of a pipeline run.
#[derive(Debug, Clone, PartialEq)]
pub struct Stage {
    /// `None` for the decoded image, else the step index.
    pub step: Option<usize>,
    /// `decode` or the step's op.
    pub name: String,
    pub tensor: Tensor,
}

#[derive(Debug, Clone)]
enum FloatData {
    F32(Vec<f32>),
    F64(Vec<f64>),
}

/// The value flowing through the steps.
#[derive(Debug, Clone)]
enum State {
    Pixels {
        image: ImageU8,
        color: Color,
        orientation: Option<u16>,
    },
    Float {
        data: FloatData,
        /// (height, width, channels)
        dims: (usize, usize, usize),
        layout: Layout,
    },
}

impl State {
    fn to_tensor(&self) -> Tensor {
        match self {
            State::Pixels { image, .. } => Tensor::U8(
                ArrayD::from_shape_vec(
                    IxDyn(&[image.height, image.width, image.channels]),
                    image.data.clone(),
                )
                .expect("image buffer matches its dims"),
            ),
            State::Float { data, dims, layout } => {
                let (h, w, c) = *dims;
                let shape = match layout {
                    Layout::Hwc => [h, w, c],
                    Layout::Chw => [c, h, w],
                };
                let values = match data {
                    FloatData::F32(v) => v.clone(),
                    FloatData::F64(v) => v.iter().map(|&x| x as f32).collect(),
                };
                Tensor::F32(ArrayD::from_shape_vec(IxDyn(&shape), values).expect("dims match"))
            }
        }
    }

    fn into_tensor(self) -> Tensor {
        match self {
            State::Pixels { image, .. } => Tensor::U8(
                ArrayD::from_shape_vec(
                    IxDyn(&[image.height, image.width, image.channels]),
                    image.data,
                )
                .expect("image buffer matches its dims"),
            ),
            other => other.to_tensor(),
        }
    }
}

/// A validated spec ready to run.
#[derive(Debug, Clone)]
pub struct Pipeline {
    spec: Spec,
    fingerprint: String,
}

impl Pipeline {
    pub fn new(spec: Spec) -> Result<Pipeline> {
        spec.validate()?;
        let fingerprint = spec.fingerprint();
        Ok(Pipeline { spec, fingerprint })
    }

    pub fn from_path(path: &Path) -> Result<Pipeline> {
        Self::new(Spec::from_path(path)?).map_err(|e| e.in_file(path))
    }

    pub fn spec(&self) -> &Spec {
        &self.spec
    }

    /// The spec's fingerprint, computed once.
    pub fn fingerprint(&self) -> &str {
        &self.fingerprint
    }

    /// Runs every step on an image file.
    pub fn run_path(&self, path: &Path) -> Result<Tensor> {
        self.run_path_until(path, None)
    }

    /// Runs on an image file up to and including `until` (`Some(None)` = decode only).
    pub fn run_path_until(&self, path: &Path, until: Option<Option<usize>>) -> Result<Tensor> {
        if self.spec.input.kind == InputKind::Tabular {
            let table = bridgeml_core::Table::read(path)?;
            return tabular::transform(&self.spec, &table, &path.display().to_string(), until);
        }
        let bytes = read_file(path)?;
        let label = path.display().to_string();
        self.run_until(
            Source::Bytes {
                bytes: &bytes,
                label: &label,
            },
            until,
        )
    }

    pub fn run_bytes(&self, bytes: &[u8], label: &str) -> Result<Tensor> {
        self.run(Source::Bytes { bytes, label })
    }

    pub fn run(&self, source: Source<'_>) -> Result<Tensor> {
        self.run_until(source, None)
    }

    /// Runs up to and including step `until` (`None` = all steps, `Some(None)` = decode only).
    pub fn run_until(&self, source: Source<'_>, until: Option<Option<usize>>) -> Result<Tensor> {
        let last = match until {
            None => self.spec.steps.len().checked_sub(1),
            Some(u) => u,
        };
        let mut state = self.decode(source)?;
        if let Some(last) = last {
            for (i, step) in self.spec.steps[..=last].iter().enumerate() {
                state = self.apply(state, i, step, source.label())?;
            }
        }
        Ok(state.into_tensor())
    }

    /// Every intermediate result: the decoded image, then one per step.
    pub fn trace(&self, source: Source<'_>) -> Result<Vec<Stage>> {
        let mut state = self.decode(source)?;
        let mut stages = vec![Stage {
            step: None,
            name: "decode".into(),
            tensor: state.to_tensor(),
        }];
        for (i, step) in self.spec.steps.iter().enumerate() {
            state = self.apply(state, i, step, source.label())?;
            stages.push(Stage {
                step: Some(i),
                name: step.op().into(),
                tensor: state.to_tensor(),
            });
        }
        Ok(stages)
    }

    fn decode(&self, source: Source<'_>) -> Result<State> {
        if self.spec.input.kind != InputKind::Image {
            return Err(PreprocessError::InvalidArgument(format!(
                "{}: the spec is for tabular input; give a .csv or .parquet file",
                source.label()
            )));
        }
        let input = &self.spec.input;
        match source {
            Source::Bytes { bytes, label } => {
                let decoded =
                    decode::decode(bytes, label, input.decoder, input.color, input.max_pixels)?;
                Ok(State::Pixels {
                    image: decoded.image,
                    color: input.color,
                    orientation: decoded.exif_orientation,
                })
            }
            Source::Pixels {
                image,
                color,
                label,
            } => {
                if image.width == 0 || image.height == 0 {
                    return Err(PreprocessError::Decode {
                        input: label.into(),
                        reason: format!("image is {}x{}", image.width, image.height),
                    });
                }
                let pixels = (image.width as u64) * (image.height as u64);
                if pixels > input.max_pixels {
                    return Err(PreprocessError::TooLarge {
                        input: label.into(),
                        pixels,
                        limit: input.max_pixels,
                    });
                }
                let have = if image.channels == 1 {
                    Color::Gray
                } else {
                    color
                };
                if !matches!(image.channels, 1 | 3) {
                    return Err(PreprocessError::Decode {
                        input: label.into(),
                        reason: format!("arrays must have 1 or 3 channels, got {}", image.channels),
                    });
                }
                Ok(State::Pixels {
                    image: convert_color(image, have, input.color),
                    color: input.color,
                    orientation: None,
                })
            }
        }
    }

    fn apply(&self, state: State, index: usize, step: &Step, label: &str) -> Result<State> {
        let fail = |reason: String| PreprocessError::Step {
            input: label.into(),
            step: index,
            op: step.op().into(),
            reason,
        };
        match state {
            State::Pixels {
                image,
                color,
                orientation,
            } => {
                let pixels = |image: ImageU8| State::Pixels {
                    image,
                    color,
                    orientation,
                };
                match step {
                    Step::Resize {
                        height,
                        width,
                        filter,
                        compat,
                    } => {
                        resize::resize(&image, *width as usize, *height as usize, *filter, *compat)
                            .map(pixels)
                            .map_err(fail)
                    }
                    Step::ResizeShorter {
                        size,
                        filter,
                        compat,
                    } => {
                        let (w, h) = shorter_side_size(image.width, image.height, *size as usize);
                        if (w, h) == (image.width, image.height) {
                            return Ok(pixels(image));
                        }
                        resize::resize(&image, w, h, *filter, *compat)
                            .map(pixels)
                            .map_err(fail)
                    }
                    Step::CenterCrop { height, width } => Ok(pixels(center_crop(
                        &image,
                        *height as usize,
                        *width as usize,
                    ))),
                    Step::Crop {
                        top,
                        left,
                        height,
                        width,
                    } => {
                        let (t, l, h, w) = (
                            *top as usize,
                            *left as usize,
                            *height as usize,
                            *width as usize,
                        );
                        if t + h > image.height || l + w > image.width {
                            return Err(fail(format!(
                                "crop window {w}x{h} at ({l}, {t}) does not fit in the {}x{} image",
                                image.width, image.height
                            )));
                        }
                        Ok(pixels(crop(&image, t, l, h, w)))
                    }
                    Step::Pad {
                        top,
                        bottom,
                        left,
                        right,
                        mode,
                        value,
                    } => {
                        let fill = match value.len() {
                            0 => vec![0; image.channels],
                            1 => vec![value[0]; image.channels],
                            n if n == image.channels => value.clone(),
                            n => {
                                return Err(fail(format!(
                                    "value has {n} entries for a {}-channel image",
                                    image.channels
                                )))
                            }
                        };
                        Ok(pixels(pad(
                            &image,
                            [*top, *bottom, *left, *right].map(|v| v as usize),
                            *mode,
                            &fill,
                        )))
                    }
                    Step::ExifTranspose {} => Ok(State::Pixels {
                        image: match orientation {
                            Some(o) if o > 1 => color::apply_exif_orientation(&image, o),
                            _ => image,
                        },
                        color,
                        orientation: None,
                    }),
                    Step::Convert { color: to } => Ok(State::Pixels {
                        image: convert_color(&image, color, *to),
                        color: *to,
                        orientation,
                    }),
                    Step::ToFloat { scale, precision } => {
                        let dims = (image.height, image.width, image.channels);
                        let data = match precision {
                            Precision::Float64 => FloatData::F64(
                                image.data.iter().map(|&v| f64::from(v) / scale).collect(),
                            ),
                            _ => {
                                let s = *scale as f32;
                                FloatData::F32(
                                    image.data.iter().map(|&v| f32::from(v) / s).collect(),
                                )
                            }
                        };
                        Ok(State::Float {
                            data,
                            dims,
                            layout: Layout::Hwc,
                        })
                    }
                    Step::Normalize { .. } | Step::Layout { .. } => Err(fail(
                        "needs float input: add a to_float step before it".into(),
                    )),
                    _ => Err(fail("is not an image step".into())),
                }
            }
            State::Float {
                mut data,
                dims,
                layout,
            } => match step {
                Step::Normalize {
                    mean,
                    std,
                    precision,
                } => {
                    let c = dims.2;
                    if mean.len() != c && mean.len() != 1 {
                        return Err(fail(format!(
                            "mean/std have {} values for a {c}-channel image",
                            mean.len()
                        )));
                    }
                    let per_channel = |v: &[f64]| -> Vec<f64> {
                        if v.len() == 1 {
                            vec![v[0]; c]
                        } else {
                            v.to_vec()
                        }
                    };
                    let (mean, std) = (per_channel(mean), per_channel(std));
                    let plane = dims.0 * dims.1;
                    // Channel of flat index i: fastest axis for HWC, slowest for CHW.
                    let channel_of = |i: usize| match layout {
                        Layout::Hwc => i % c,
                        Layout::Chw => i / plane,
                    };
                    data = normalize(data, &mean, &std, *precision, channel_of);
                    Ok(State::Float { data, dims, layout })
                }
                Step::Layout { order } => {
                    if *order != layout {
                        data = transpose(data, dims, layout);
                    }
                    Ok(State::Float {
                        data,
                        dims,
                        layout: *order,
                    })
                }
                _ => Err(fail(
                    "works on 8-bit pixels and must come before to_float".into(),
                )),
            },
        }
    }
}

pub(crate) fn read_file(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|e| PreprocessError::Io {
        path: path.to_path_buf(),
        source: e,
    })
}

/// torchvision's `Resize(int)` output size for an image of `width` x `height`.
pub fn shorter_side_size(width: usize, height: usize, size: usize) -> (usize, usize) {
    let (short, long) = if width <= height {
        (width, height)
    } else {
        (height, width)
    };
    // Python's `int(size * long / short)`: float64 division, then truncation.
    let new_long = (size as f64 * long as f64 / short as f64) as usize;
    if width <= height {
        (size, new_long)
    } else {
        (new_long, size)
    }
}

fn convert_color(image: &ImageU8, from: Color, to: Color) -> ImageU8 {
    match (from, to) {
        (a, b) if a == b => image.clone(),
        (Color::Rgb, Color::Bgr) | (Color::Bgr, Color::Rgb) => color::rgb_to_bgr(image),
        (Color::Rgb, Color::Gray) => color::rgb_to_gray(image),
        (Color::Bgr, Color::Gray) => color::rgb_to_gray(&color::rgb_to_bgr(image)),
        (Color::Gray, Color::Rgb) | (Color::Gray, Color::Bgr) => color::gray_to_rgb(image),
        _ => unreachable!("all pairs covered"),
    }
}

/// torchvision `CenterCrop`: pads with zeros when the crop is larger, then
/// crops at `int(round((h - ch) / 2.0))` (Python rounds half to even).
fn center_crop(image: &ImageU8, height: usize, width: usize) -> ImageU8 {
    let mut img = std::borrow::Cow::Borrowed(image);
    if height > image.height || width > image.width {
        let dh = height.saturating_sub(image.height);
        let dw = width.saturating_sub(image.width);
        let padded = pad(
            image,
            [dh / 2, dh.div_ceil(2), dw / 2, dw.div_ceil(2)],
            PadMode::Constant,
            &vec![0; image.channels],
        );
        img = std::borrow::Cow::Owned(padded);
        if img.height == height && img.width == width {
            return img.into_owned();
        }
    }
    let top = ((img.height - height) as f64 / 2.0).round_ties_even() as usize;
    let left = ((img.width - width) as f64 / 2.0).round_ties_even() as usize;
    crop(&img, top, left, height, width)
}

fn crop(image: &ImageU8, top: usize, left: usize, height: usize, width: usize) -> ImageU8 {
    let c = image.channels;
    let mut data = Vec::with_capacity(height * width * c);
    for y in top..top + height {
        let row = image.row(y);
        data.extend_from_slice(&row[left * c..(left + width) * c]);
    }
    ImageU8::new(width, height, c, data)
}

/// `sides` = [top, bottom, left, right].
fn pad(image: &ImageU8, sides: [usize; 4], mode: PadMode, fill: &[u8]) -> ImageU8 {
    let [top, bottom, left, right] = sides;
    let c = image.channels;
    let (w, h) = (image.width + left + right, image.height + top + bottom);
    let mut data = Vec::with_capacity(w * h * c);
    for y in 0..h {
        let sy = y.saturating_sub(top).min(image.height - 1);
        let inside_y = y >= top && y < top + image.height;
        for x in 0..w {
            let inside = inside_y && x >= left && x < left + image.width;
            if inside || mode == PadMode::Edge {
                let sx = x.saturating_sub(left).min(image.width - 1);
                data.extend_from_slice(image.pixel(sx, sy));
            } else {
                data.extend_from_slice(fill);
            }
        }
    }
    ImageU8::new(w, h, c, data)
}

fn normalize(
    data: FloatData,
    mean: &[f64],
    std: &[f64],
    precision: Precision,
    channel_of: impl Fn(usize) -> usize,
) -> FloatData {
    match (data, precision) {
        (FloatData::F32(mut v), Precision::Float32) => {
            let m: Vec<f32> = mean.iter().map(|&x| x as f32).collect();
            let s: Vec<f32> = std.iter().map(|&x| x as f32).collect();
            for (i, x) in v.iter_mut().enumerate() {
                let ch = channel_of(i);
                *x = (*x - m[ch]) / s[ch];
            }
            FloatData::F32(v)
        }
        (FloatData::F32(mut v), Precision::Folded) => {
            let a: Vec<f32> = std.iter().map(|&s| (1.0 / s) as f32).collect();
            let b: Vec<f32> = mean
                .iter()
                .zip(std)
                .map(|(&m, &s)| (-m / s) as f32)
                .collect();
            for (i, x) in v.iter_mut().enumerate() {
                let ch = channel_of(i);
                *x = *x * a[ch] + b[ch];
            }
            FloatData::F32(v)
        }
        (data, _) => {
            let mut v = match data {
                FloatData::F64(v) => v,
                FloatData::F32(v) => v.into_iter().map(f64::from).collect(),
            };
            for (i, x) in v.iter_mut().enumerate() {
                let ch = channel_of(i);
                *x = (*x - mean[ch]) / std[ch];
            }
            FloatData::F64(v)
        }
    }
}

fn transpose(data: FloatData, dims: (usize, usize, usize), from: Layout) -> FloatData {
    fn go<T: Copy + Default>(v: &[T], (h, w, c): (usize, usize, usize), from: Layout) -> Vec<T> {
        let mut out = vec![T::default(); v.len()];
        let plane = h * w;
        match from {
            Layout::Hwc => {
                for (p, px) in v.chunks_exact(c).enumerate() {
                    for (ch, &val) in px.iter().enumerate() {
                        out[ch * plane + p] = val;
                    }
                }
            }
            Layout::Chw => {
                for (ch, chan) in v.chunks_exact(plane).enumerate() {
                    for (p, &val) in chan.iter().enumerate() {
                        out[p * c + ch] = val;
                    }
                }
            }
        }
        out
    }
    match data {
        FloatData::F32(v) => FloatData::F32(go(&v, dims, from)),
        FloatData::F64(v) => FloatData::F64(go(&v, dims, from)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shorter_side_matches_torchvision_truncation() {
        // 640x427 -> shorter 256: int(256 * 640 / 427) = 383
        assert_eq!(shorter_side_size(640, 427, 256), (383, 256));
        assert_eq!(shorter_side_size(300, 451, 256), (256, 384));
        assert_eq!(shorter_side_size(10, 10, 4), (4, 4));
    }

    #[test]
    fn center_crop_rounds_half_to_even_like_python() {
        // h - ch = 3 -> round(1.5) = 2; w - cw = 1 -> round(0.5) = 0
        let img = ImageU8::new(5, 7, 1, (0..35).collect());
        let out = center_crop(&img, 4, 4);
        assert_eq!(out.data[0], img.pixel(0, 2)[0]);
        // h - ch = 5 -> round(2.5) = 2
        let img = ImageU8::new(1, 9, 1, (0..9).collect());
        assert_eq!(center_crop(&img, 4, 1).data, vec![2, 3, 4, 5]);
    }

    #[test]
    fn center_crop_pads_small_images_like_torchvision() {
        let img = ImageU8::new(1, 1, 1, vec![9]);
        let out = center_crop(&img, 3, 4);
        // pad left (4-1)//2 = 1, right 2; top (3-1)//2 = 1, bottom 1
        assert_eq!(out.height, 3);
        assert_eq!(out.width, 4);
        assert_eq!(out.pixel(1, 1), &[9]);
        assert_eq!(out.data.iter().map(|&v| u32::from(v)).sum::<u32>(), 9);
    }

    #[test]
    fn transpose_round_trips() {
        let v: Vec<f32> = (0..24).map(|x| x as f32).collect();
        let d = (2, 3, 4);
        let chw = transpose(FloatData::F32(v.clone()), d, Layout::Hwc);
        let back = transpose(chw, d, Layout::Chw);
        match back {
            FloatData::F32(b) => assert_eq!(b, v),
            FloatData::F64(_) => panic!("dtype changed"),
        }
    }

    #[test]
    fn edge_pad_replicates_border() {
        let img = ImageU8::new(2, 1, 1, vec![1, 2]);
        let out = pad(&img, [1, 0, 1, 1], PadMode::Edge, &[0]);
        assert_eq!(out.data, vec![1, 1, 2, 2, 1, 1, 2, 2]);
    }
}
