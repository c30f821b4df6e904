//! Pillow-exact pixel conversions (`Image.convert`) and EXIF transposition
//! (`ImageOps.exif_transpose`).
//!
//! The row functions (`*_row`) work on interleaved 8-bit slices and are what
//! the decoder calls per scanline; the [`ImageU8`] functions wrap them for the
//! pipeline's `convert` and `exif_transpose` steps.

use crate::image::ImageU8;

/// Pillow's fixed-point ITU-R 601-2 luma (`Convert.c`, `L24`):
/// `(r*19595 + g*38470 + b*7471 + 0x8000) >> 16`.
#[inline(always)]
pub fn luma(r: u8, g: u8, b: u8) -> u8 {
    ((r as u32 * 19595 + g as u32 * 38470 + b as u32 * 7471 + 0x8000) >> 16) as u8
}

/// Pillow `RGB` → `L` on one row: `src` holds `dst.len()` RGB pixels.
/// (`RGBA` → `L` is [`rgbx_to_gray_row`].)
pub fn rgb_to_gray_row(src: &[u8], dst: &mut [u8]) {
    debug_assert_eq!(src.len(), dst.len() * 3);
    for (d, s) in dst.iter_mut().zip(src.chunks_exact(3)) {
        *d = luma(s[0], s[1], s[2]);
    }
}

/// Pillow `RGBA` → `L` on one row (alpha ignored).
pub fn rgbx_to_gray_row(src: &[u8], dst: &mut [u8]) {
    debug_assert_eq!(src.len(), dst.len() * 4);
    for (d, s) in dst.iter_mut().zip(src.chunks_exact(4)) {
        *d = luma(s[0], s[1], s[2]);
    }
}

/// `L` computed from BGR pixels (equal to `rgb_to_gray` of the RGB image).
pub fn bgr_to_gray_row(src: &[u8], dst: &mut [u8]) {
    debug_assert_eq!(src.len(), dst.len() * 3);
    for (d, s) in dst.iter_mut().zip(src.chunks_exact(3)) {
        *d = luma(s[2], s[1], s[0]);
    }
}

/// Pillow `L` → `RGB`: replicate.
pub fn gray_to_rgb_row(src: &[u8], dst: &mut [u8]) {
    debug_assert_eq!(src.len() * 3, dst.len());
    for (d, &v) in dst.chunks_exact_mut(3).zip(src) {
        d[0] = v;
        d[1] = v;
        d[2] = v;
    }
}

/// RGB ↔ BGR on one row (its own inverse).
pub fn rgb_to_bgr_row(src: &[u8], dst: &mut [u8]) {
    debug_assert_eq!(src.len(), dst.len());
    for (d, s) in dst.chunks_exact_mut(3).zip(src.chunks_exact(3)) {
        d[0] = s[2];
        d[1] = s[1];
        d[2] = s[0];
    }
}

/// RGB ↔ BGR in place.
pub fn swap_rb_in_place(data: &mut [u8]) {
    for p in data.chunks_exact_mut(3) {
        p.swap(0, 2);
    }
}

/// Pillow `RGBA` → `RGB` on one row: alpha dropped, no compositing.
pub fn rgbx_to_rgb_row(src: &[u8], dst: &mut [u8]) {
    debug_assert_eq!(src.len() / 4, dst.len() / 3);
    for (d, s) in dst.chunks_exact_mut(3).zip(src.chunks_exact(4)) {
        d.copy_from_slice(&s[..3]);
    }
}

/// Pillow's `MULDIV255`: `a*b/255` rounded, in integers.
#[inline(always)]
fn muldiv255(a: u32, b: u32) -> u32 {
    let t = a * b + 128;
    ((t >> 8) + t) >> 8
}

/// Pillow `CMYK` → `RGB` (`Convert.c`, `cmyk2rgb`) on one row of CMYK pixels
/// as Pillow holds them: `out = 255 - k' - (c * (255 - k)) / 255`, i.e.
/// `nk - MULDIV255(c, nk)` with `nk = 255 - k`.
pub fn cmyk_to_rgb_row(src: &[u8], dst: &mut [u8]) {
    debug_assert_eq!(src.len() / 4, dst.len() / 3);
    for (d, s) in dst.chunks_exact_mut(3).zip(src.chunks_exact(4)) {
        let nk = 255 - s[3] as u32;
        for i in 0..3 {
            d[i] = (nk - muldiv255(s[i] as u32, nk)) as u8;
        }
    }
}

/// Pillow's JPEG `CMYK` path on one row of libjpeg `JCS_CMYK` output: Pillow
/// reads every 4-component JPEG with rawmode `CMYK;I` (Adobe polarity,
/// inverted: `c = 255 - raw`), then `convert("RGB")` applies `cmyk2rgb`.
/// With `nk = 255 - (255 - raw_k) = raw_k` this is
/// `raw_k - MULDIV255(255 - raw_c, raw_k)`.
pub fn inverted_cmyk_to_rgb_row(src: &[u8], dst: &mut [u8]) {
    debug_assert_eq!(src.len() / 4, dst.len() / 3);
    for (d, s) in dst.chunks_exact_mut(3).zip(src.chunks_exact(4)) {
        let nk = s[3] as u32;
        for i in 0..3 {
            d[i] = (nk - muldiv255(255 - s[i] as u32, nk)) as u8;
        }
    }
}

fn map_image(img: &ImageU8, channels: usize, f: impl Fn(&[u8], &mut [u8])) -> ImageU8 {
    let mut out = ImageU8::zeros(img.width, img.height, channels);
    if img.width > 0 {
        let (si, so) = (img.width * img.channels, img.width * channels);
        for (s, d) in img.data.chunks_exact(si).zip(out.data.chunks_exact_mut(so)) {
            f(s, d);
        }
    }
    out
}

/// Pillow `convert("L")` of an RGB image (`channels == 3`; `4` is taken as
/// RGBA and the alpha ignored, as Pillow does).
pub fn rgb_to_gray(img: &ImageU8) -> ImageU8 {
    match img.channels {
        3 => map_image(img, 1, rgb_to_gray_row),
        4 => map_image(img, 1, rgbx_to_gray_row),
        1 => img.clone(),
        c => panic!("rgb_to_gray: expected 3 or 4 channels, got {c}"),
    }
}

/// `L` of a BGR image: equal to `rgb_to_gray(rgb_to_bgr(img))`.
pub fn bgr_to_gray(img: &ImageU8) -> ImageU8 {
    match img.channels {
        3 => map_image(img, 1, bgr_to_gray_row),
        1 => img.clone(),
        c => panic!("bgr_to_gray: expected 3 channels, got {c}"),
    }
}

/// Pillow `convert("RGB")` of an `L` image: each value replicated.
pub fn gray_to_rgb(img: &ImageU8) -> ImageU8 {
    match img.channels {
        1 => map_image(img, 3, gray_to_rgb_row),
        3 => img.clone(),
        c => panic!("gray_to_rgb: expected 1 channel, got {c}"),
    }
}

/// RGB → BGR (and BGR → RGB): the channel order reversed.
pub fn rgb_to_bgr(img: &ImageU8) -> ImageU8 {
    match img.channels {
        3 => map_image(img, 3, rgb_to_bgr_row),
        1 => img.clone(),
        c => panic!("rgb_to_bgr: expected 3 channels, got {c}"),
    }
}

/// `PIL.ImageOps.exif_transpose` for an EXIF Orientation value:
/// 2 flip left-right, 3 rotate 180, 4 flip top-bottom, 5 transpose,
/// 6 rotate 90° clockwise (`ROTATE_270`), 7 transverse,
/// 8 rotate 90° counter-clockwise (`ROTATE_90`). Any other value (1, 0, 9, …)
/// leaves the image unchanged, as Pillow does.
pub fn apply_exif_orientation(img: &ImageU8, orientation: u16) -> ImageU8 {
    let (w, h, c) = (img.width, img.height, img.channels);
    // Source coordinates for output pixel (x, y), and whether width/height swap.
    let swap = matches!(orientation, 5..=8);
    if !(2..=8).contains(&orientation) {
        return img.clone();
    }
    let (ow, oh) = if swap { (h, w) } else { (w, h) };
    let mut data = Vec::with_capacity(img.data.len());
    for y in 0..oh {
        for x in 0..ow {
            let (sx, sy) = match orientation {
                2 => (w - 1 - x, y),
                3 => (w - 1 - x, h - 1 - y),
                4 => (x, h - 1 - y),
                5 => (y, x),
                6 => (y, h - 1 - x),
                7 => (w - 1 - y, h - 1 - x),
                _ => (w - 1 - y, x), // 8
            };
            let i = (sy * w + sx) * c;
            data.extend_from_slice(&img.data[i..i + c]);
        }
    }
    ImageU8::new(ow, oh, c, data)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn luma_matches_pillow_on_known_values() {
        // Image.new("RGB", (1, 1), c).convert("L").getpixel((0, 0))
        assert_eq!(luma(255, 0, 0), 76);
        assert_eq!(luma(0, 255, 0), 150);
        assert_eq!(luma(0, 0, 255), 29);
        assert_eq!(luma(255, 255, 255), 255);
        assert_eq!(luma(7, 7, 7), 7);
    }

    #[test]
    fn cmyk_known_values() {
        let mut out = [0u8; 3];
        cmyk_to_rgb_row(&[0, 0, 0, 0], &mut out);
        assert_eq!(out, [255, 255, 255]);
        cmyk_to_rgb_row(&[255, 0, 128, 0], &mut out);
        assert_eq!(out, [0, 255, 127]);
        inverted_cmyk_to_rgb_row(&[255, 255, 255, 255], &mut out);
        assert_eq!(out, [255, 255, 255]);
    }
}
