//! Labelled image datasets: an ImageFolder directory (one sub-folder per
//! class) run through a preprocessing spec, or a directory of IDX files
//! (MNIST / Fashion-MNIST format) whose pixels go through the same spec.

use std::io::Read;
use std::path::{Path, PathBuf};

use bridgeml_preprocess::{ImageU8, Pipeline, Source};
use candle_core::{Device, Tensor};

use crate::error::{io_err, Result, TrainError};

/// Which IDX files to read from a directory holding both splits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Split {
    /// `train-images-idx3-ubyte[.gz]` and `train-labels-idx1-ubyte[.gz]`.
    Train,
    /// `t10k-*` (falls back to `test-*`).
    Test,
}

/// Extensions of the image files an ImageFolder may hold.
pub const IMAGE_EXTENSIONS: &[&str] = &["png", "jpg", "jpeg", "bmp", "gif", "tif", "tiff", "webp"];

/// Preprocessed samples with integer labels, in memory.
#[derive(Debug, Clone)]
pub struct Dataset {
    /// All samples, C-ordered, `len() * sample_len()` values.
    pub x: Vec<f32>,
    pub y: Vec<u32>,
    /// Per-sample shape as produced by the spec.
    pub sample_shape: Vec<usize>,
    /// Class names in label order.
    pub classes: Vec<String>,
    /// Where the data came from.
    pub source: PathBuf,
}

impl Dataset {
    pub fn len(&self) -> usize {
        self.y.len()
    }

    pub fn is_empty(&self) -> bool {
        self.y.is_empty()
    }

    pub fn sample_len(&self) -> usize {
        self.sample_shape.iter().product()
    }

    /// Number of samples per class.
    pub fn class_counts(&self) -> Vec<usize> {
        let mut counts = vec![0; self.classes.len()];
        for &y in &self.y {
            counts[y as usize] += 1;
        }
        counts
    }

    /// Loads `dir`: IDX files when it holds them for `split`, else an
    /// ImageFolder tree (sorted sub-folders are the classes, sorted files the samples).
    pub fn load(dir: &Path, pipeline: &Pipeline, split: Split) -> Result<Dataset> {
        if !dir.is_dir() {
            return Err(TrainError::Data {
                path: dir.to_path_buf(),
                message: "not a directory".into(),
            });
        }
        match find_idx(dir, split) {
            Some((images, labels)) => load_idx(dir, &images, &labels, pipeline),
            None => load_image_folder(dir, pipeline),
        }
    }

    /// Keeps only one in `ratio` samples of `class` (the first of every `ratio`,
    /// in file order), to make that class a minority; deterministic.
    pub fn subsample_class(&mut self, class: usize, ratio: usize) -> Result<()> {
        if class >= self.classes.len() || ratio == 0 {
            return Err(TrainError::Config(format!(
                "cannot subsample class {class} by {ratio}: the data has {} classes",
                self.classes.len()
            )));
        }
        let per = self.sample_len();
        let mut seen = 0usize;
        let mut keep = Vec::with_capacity(self.len());
        for (i, &y) in self.y.iter().enumerate() {
            if y as usize == class {
                if seen.is_multiple_of(ratio) {
                    keep.push(i);
                }
                seen += 1;
            } else {
                keep.push(i);
            }
        }
        let mut x = Vec::with_capacity(keep.len() * per);
        for &i in &keep {
            x.extend_from_slice(&self.x[i * per..(i + 1) * per]);
        }
        self.y = keep.iter().map(|&i| self.y[i]).collect();
        self.x = x;
        Ok(())
    }

    /// Keeps the first `n` samples.
    pub fn truncate(&mut self, n: usize) {
        if n < self.len() {
            self.y.truncate(n);
            self.x.truncate(n * self.sample_len());
        }
    }

    /// The batch of the given sample indices as (`[B, ...sample_shape]`, labels `[B]`).
    pub fn batch(&self, indices: &[usize]) -> Result<(Tensor, Tensor)> {
        let per = self.sample_len();
        let mut x = Vec::with_capacity(indices.len() * per);
        let mut y = Vec::with_capacity(indices.len());
        for &i in indices {
            x.extend_from_slice(&self.x[i * per..(i + 1) * per]);
            y.push(self.y[i]);
        }
        let mut dims = vec![indices.len()];
        dims.extend_from_slice(&self.sample_shape);
        Ok((
            Tensor::from_vec(x, dims, &Device::Cpu)?,
            Tensor::from_vec(y, indices.len(), &Device::Cpu)?,
        ))
    }
}

fn find_idx(dir: &Path, split: Split) -> Option<(PathBuf, PathBuf)> {
    let prefixes: &[&str] = match split {
        Split::Train => &["train"],
        Split::Test => &["t10k", "test"],
    };
    for p in prefixes {
        for ext in ["", ".gz"] {
            let images = dir.join(format!("{p}-images-idx3-ubyte{ext}"));
            let labels = dir.join(format!("{p}-labels-idx1-ubyte{ext}"));
            if images.is_file() && labels.is_file() {
                return Some((images, labels));
            }
        }
    }
    None
}

fn read_maybe_gz(path: &Path) -> Result<Vec<u8>> {
    let raw = std::fs::read(path).map_err(io_err(path))?;
    if raw.starts_with(&[0x1f, 0x8b]) {
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(&raw[..])
            .read_to_end(&mut out)
            .map_err(io_err(path))?;
        Ok(out)
    } else {
        Ok(raw)
    }
}

fn idx_header(bytes: &[u8], path: &Path, kind: u8, rank: usize) -> Result<Vec<usize>> {
    let bad = |m: &str| TrainError::Data {
        path: path.to_path_buf(),
        message: format!("not an IDX file: {m}"),
    };
    if bytes.len() < 4 + 4 * rank
        || bytes[0] != 0
        || bytes[1] != 0
        || bytes[2] != kind
        || bytes[3] as usize != rank
    {
        return Err(bad("unexpected magic number"));
    }
    let dims: Vec<usize> = (0..rank)
        .map(|i| {
            u32::from_be_bytes(bytes[4 + 4 * i..8 + 4 * i].try_into().expect("4 bytes")) as usize
        })
        .collect();
    let need = 4 + 4 * rank + dims.iter().product::<usize>();
    if bytes.len() < need {
        return Err(bad("truncated"));
    }
    Ok(dims)
}

/// Raw IDX images and labels (uint8 pixels, row-major, one channel), as
/// stored in MNIST / Fashion-MNIST files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdxImages {
    pub width: usize,
    pub height: usize,
    /// `len() * width * height` pixels.
    pub pixels: Vec<u8>,
    pub labels: Vec<u8>,
}

impl IdxImages {
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// Image `i` as a one-channel image.
    pub fn image(&self, i: usize) -> ImageU8 {
        let n = self.width * self.height;
        ImageU8 {
            width: self.width,
            height: self.height,
            channels: 1,
            data: self.pixels[i * n..(i + 1) * n].to_vec(),
        }
    }
}

/// Reads the IDX pair of `split` from `dir` (gzipped or not) without preprocessing.
pub fn read_idx(dir: &Path, split: Split) -> Result<IdxImages> {
    let (images, labels) = find_idx(dir, split).ok_or_else(|| TrainError::Data {
        path: dir.to_path_buf(),
        message: format!("no {split:?} IDX files (e.g. train-images-idx3-ubyte.gz)"),
    })?;
    read_idx_files(&images, &labels)
}

fn read_idx_files(images: &Path, labels: &Path) -> Result<IdxImages> {
    let ib = read_maybe_gz(images)?;
    let lb = read_maybe_gz(labels)?;
    let idims = idx_header(&ib, images, 0x08, 3)?;
    let ldims = idx_header(&lb, labels, 0x08, 1)?;
    let (n, h, w) = (idims[0], idims[1], idims[2]);
    if ldims[0] != n {
        return Err(TrainError::Data {
            path: labels.to_path_buf(),
            message: format!("{} labels for {n} images", ldims[0]),
        });
    }
    Ok(IdxImages {
        width: w,
        height: h,
        pixels: ib[16..16 + n * h * w].to_vec(),
        labels: lb[8..8 + n].to_vec(),
    })
}

fn load_idx(dir: &Path, images: &Path, labels: &Path, pipeline: &Pipeline) -> Result<Dataset> {
    let raw = read_idx_files(images, labels)?;
    let n_classes = raw
        .labels
        .iter()
        .copied()
        .max()
        .map_or(0, |m| m as usize + 1);
    let mut x = Vec::new();
    let mut sample_shape = Vec::new();
    for i in 0..raw.len() {
        let image = raw.image(i);
        let label = format!("{}[{i}]", images.display());
        let t = pipeline.run(Source::Pixels {
            image: &image,
            color: bridgeml_preprocess::spec::Color::Gray,
            label: &label,
        })?;
        if i == 0 {
            sample_shape = t.shape().to_vec();
            x.reserve(raw.len() * t.len());
        }
        push_sample(&mut x, &t, &sample_shape, &label)?;
    }
    Ok(Dataset {
        x,
        y: raw.labels.iter().map(|&v| u32::from(v)).collect(),
        sample_shape,
        classes: (0..n_classes).map(|c| c.to_string()).collect(),
        source: dir.to_path_buf(),
    })
}

fn push_sample(
    x: &mut Vec<f32>,
    t: &bridgeml_core::Tensor,
    shape: &[usize],
    label: &str,
) -> Result<()> {
    match t {
        bridgeml_core::Tensor::F32(a) if a.shape() == shape => {
            x.extend(a.iter().copied());
            Ok(())
        }
        bridgeml_core::Tensor::F32(a) => Err(TrainError::Data {
            path: PathBuf::from(label),
            message: format!(
                "preprocessed shape {:?} differs from the first sample's {shape:?}",
                a.shape()
            ),
        }),
        bridgeml_core::Tensor::U8(_) => Err(TrainError::Data {
            path: PathBuf::from(label),
            message: "the spec must produce float32 (add a `to_float` step)".into(),
        }),
    }
}

fn load_image_folder(dir: &Path, pipeline: &Pipeline) -> Result<Dataset> {
    let mut classes: Vec<(String, PathBuf)> = std::fs::read_dir(dir)
        .map_err(io_err(dir))?
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| p.is_dir())
        .filter_map(|p| {
            let name = p.file_name()?.to_string_lossy().into_owned();
            (!name.starts_with('.')).then_some((name, p))
        })
        .collect();
    classes.sort();
    if classes.is_empty() {
        return Err(TrainError::Data {
            path: dir.to_path_buf(),
            message: "neither IDX files (train-images-idx3-ubyte[.gz] + train-labels-idx1-ubyte[.gz]) nor class sub-folders (ImageFolder layout) found".into(),
        });
    }
    let mut x = Vec::new();
    let mut y = Vec::new();
    let mut sample_shape: Option<Vec<usize>> = None;
    for (label, (_, class_dir)) in classes.iter().enumerate() {
        let mut files: Vec<PathBuf> = std::fs::read_dir(class_dir)
            .map_err(io_err(class_dir))?
            .filter_map(|e| e.ok())
            .map(|e| e.path())
            .filter(|p| {
                p.is_file()
                    && p.extension()
                        .map(|e| {
                            IMAGE_EXTENSIONS.contains(&e.to_string_lossy().to_lowercase().as_str())
                        })
                        .unwrap_or(false)
            })
            .collect();
        files.sort();
        for f in files {
            let t = pipeline.run_path(&f)?;
            let shape = sample_shape
                .get_or_insert_with(|| t.shape().to_vec())
                .clone();
            push_sample(&mut x, &t, &shape, &f.display().to_string())?;
            y.push(label as u32);
        }
    }
    if y.is_empty() {
        return Err(TrainError::Data {
            path: dir.to_path_buf(),
            message: format!(
                "the {} class folders hold no image files ({})",
                classes.len(),
                IMAGE_EXTENSIONS.join(", ")
            ),
        });
    }
    Ok(Dataset {
        x,
        y,
        sample_shape: sample_shape.unwrap_or_default(),
        classes: classes.into_iter().map(|(n, _)| n).collect(),
        source: dir.to_path_buf(),
    })
}
