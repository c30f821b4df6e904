//! Small grayscale images: encoding, the corruptions production applies to
//! them (brightness, blur, JPEG recompression, sensor noise, a larger
//! camera resolution) and synthetic out-of-distribution noise.

use std::path::Path;

use bridgeml_monitor::rng::SplitMix64;
use bridgeml_preprocess::ImageU8;
use image::{codecs::jpeg::JpegEncoder, GrayImage, ImageEncoder};

use crate::{DemoError, Result};

fn gray(img: &ImageU8) -> GrayImage {
    GrayImage::from_raw(img.width as u32, img.height as u32, img.data.clone())
        .expect("a one-channel image has width * height pixels")
}

fn from_gray(g: GrayImage) -> ImageU8 {
    ImageU8 {
        width: g.width() as usize,
        height: g.height() as usize,
        channels: 1,
        data: g.into_raw(),
    }
}

/// PNG bytes of a one-channel image.
pub fn png_bytes(img: &ImageU8) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    image::codecs::png::PngEncoder::new(&mut out)
        .write_image(
            &img.data,
            img.width as u32,
            img.height as u32,
            image::ExtendedColorType::L8,
        )
        .map_err(|e| DemoError::Image(format!("PNG encoding: {e}")))?;
    Ok(out)
}

/// JPEG bytes at `quality` (1-100): what a client that recompresses uploads sends.
pub fn jpeg_bytes(img: &ImageU8, quality: u8) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    JpegEncoder::new_with_quality(&mut out, quality)
        .write_image(
            &img.data,
            img.width as u32,
            img.height as u32,
            image::ExtendedColorType::L8,
        )
        .map_err(|e| DemoError::Image(format!("JPEG encoding: {e}")))?;
    Ok(out)
}

/// Writes `img` as PNG.
pub fn write_png(img: &ImageU8, path: &Path) -> Result<()> {
    let bytes = png_bytes(img)?;
    std::fs::write(path, bytes).map_err(|e| DemoError::io(path, e))
}

/// Adds `delta` to every pixel (saturating): an over-exposed camera.
pub fn brighten(img: &ImageU8, delta: i32) -> ImageU8 {
    ImageU8 {
        data: img
            .data
            .iter()
            .map(|&v| (i32::from(v) + delta).clamp(0, 255) as u8)
            .collect(),
        ..img.clone()
    }
}

/// Gaussian blur: an out-of-focus lens.
pub fn blur(img: &ImageU8, sigma: f32) -> ImageU8 {
    from_gray(image::imageops::blur(&gray(img), sigma))
}

/// Additive Gaussian noise of standard deviation `sigma` (pixel units).
pub fn add_noise(img: &ImageU8, sigma: f64, rng: &mut SplitMix64) -> ImageU8 {
    ImageU8 {
        data: img
            .data
            .iter()
            .map(|&v| {
                (f64::from(v) + sigma * rng.normal())
                    .round()
                    .clamp(0.0, 255.0) as u8
            })
            .collect(),
        ..img.clone()
    }
}

/// The image at `size` x `size` (Catmull-Rom): a camera with a higher
/// resolution than the training data, so the server has to resize.
pub fn upscale(img: &ImageU8, size: u32) -> ImageU8 {
    from_gray(image::imageops::resize(
        &gray(img),
        size,
        size,
        image::imageops::FilterType::CatmullRom,
    ))
}

/// Synthetic OOD inputs: uniform noise (even `i`) or smooth blobs (odd `i`).
pub fn noise_image(width: usize, height: usize, i: usize, rng: &mut SplitMix64) -> ImageU8 {
    let data = if i.is_multiple_of(2) {
        (0..width * height)
            .map(|_| (rng.next_u64() >> 56) as u8)
            .collect()
    } else {
        let coarse: Vec<f64> = (0..49).map(|_| rng.next_f64() * 255.0).collect();
        let mut v = Vec::with_capacity(width * height);
        for y in 0..height {
            for x in 0..width {
                // Bilinear interpolation of a 7x7 random grid.
                let fx = x as f64 / (width - 1).max(1) as f64 * 6.0;
                let fy = y as f64 / (height - 1).max(1) as f64 * 6.0;
                let (x0, y0) = (fx.floor().min(5.0) as usize, fy.floor().min(5.0) as usize);
                let (tx, ty) = (fx - x0 as f64, fy - y0 as f64);
                let at = |xx: usize, yy: usize| coarse[yy * 7 + xx];
                let top = at(x0, y0) * (1.0 - tx) + at(x0 + 1, y0) * tx;
                let bottom = at(x0, y0 + 1) * (1.0 - tx) + at(x0 + 1, y0 + 1) * tx;
                v.push((top * (1.0 - ty) + bottom * ty).round().clamp(0.0, 255.0) as u8);
            }
        }
        v
    };
    ImageU8 {
        width,
        height,
        channels: 1,
        data,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ramp() -> ImageU8 {
        ImageU8 {
            width: 4,
            height: 2,
            channels: 1,
            data: vec![0, 50, 100, 250, 10, 20, 30, 40],
        }
    }

    #[test]
    fn brighten_saturates() {
        assert_eq!(
            brighten(&ramp(), 10).data,
            vec![10, 60, 110, 255, 20, 30, 40, 50]
        );
        assert_eq!(
            brighten(&ramp(), -20).data,
            vec![0, 30, 80, 230, 0, 0, 10, 20]
        );
    }

    #[test]
    fn encodings_decode_back() {
        let img = upscale(&ramp(), 16);
        assert_eq!((img.width, img.height), (16, 16));
        let png = png_bytes(&img).unwrap();
        let back = image::load_from_memory(&png).unwrap().to_luma8();
        assert_eq!(back.into_raw(), img.data);
        let jpg = jpeg_bytes(&img, 50).unwrap();
        assert_eq!(&jpg[..2], &[0xff, 0xd8]);
    }

    #[test]
    fn noise_is_seeded() {
        let a = noise_image(8, 8, 1, &mut SplitMix64::new(3));
        let b = noise_image(8, 8, 1, &mut SplitMix64::new(3));
        assert_eq!(a, b);
        let c = add_noise(&a, 20.0, &mut SplitMix64::new(4));
        assert_ne!(a, c);
    }
}
