//! TEMPORARY stub, replaced by the decode branch.
use crate::image::ImageU8;

pub fn rgb_to_bgr(img: &ImageU8) -> ImageU8 {
    let mut out = img.clone();
    for p in out.data.chunks_exact_mut(3) {
        p.swap(0, 2);
    }
    out
}

pub fn gray_to_rgb(img: &ImageU8) -> ImageU8 {
    let data = img.data.iter().flat_map(|&v| [v, v, v]).collect();
    ImageU8::new(img.width, img.height, 3, data)
}

pub fn rgb_to_gray(img: &ImageU8) -> ImageU8 {
    let data = img
        .data
        .chunks_exact(3)
        .map(|p| {
            ((u32::from(p[0]) * 19595 + u32::from(p[1]) * 38470 + u32::from(p[2]) * 7471 + 0x8000)
                >> 16) as u8
        })
        .collect();
    ImageU8::new(img.width, img.height, 1, data)
}

pub fn apply_exif_orientation(img: &ImageU8, _orientation: u16) -> ImageU8 {
    img.clone()
}
