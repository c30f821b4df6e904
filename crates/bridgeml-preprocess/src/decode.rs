//! TEMPORARY stub, replaced by the decode branch.
use crate::error::{PreprocessError, Result};
use crate::image::ImageU8;
use crate::spec::{Color, Decoder};

#[derive(Debug)]
pub struct Decoded {
    pub image: ImageU8,
    pub exif_orientation: Option<u16>,
}

pub fn decode(
    bytes: &[u8],
    label: &str,
    _decoder: Decoder,
    color: Color,
    _max_pixels: u64,
) -> Result<Decoded> {
    let img = image::load_from_memory(bytes).map_err(|e| PreprocessError::Decode {
        input: label.into(),
        reason: e.to_string(),
    })?;
    let image = match color {
        Color::Gray => {
            let g = img.to_luma8();
            ImageU8::new(g.width() as usize, g.height() as usize, 1, g.into_raw())
        }
        _ => {
            let g = img.to_rgb8();
            let mut im = ImageU8::new(g.width() as usize, g.height() as usize, 3, g.into_raw());
            if color == Color::Bgr {
                im = crate::color::rgb_to_bgr(&im);
            }
            im
        }
    };
    Ok(Decoded {
        image,
        exif_orientation: None,
    })
}
