//! OpenCV's `cv2.resize` for 8-bit images, bit-exact. Placeholder until implemented.

use crate::image::ImageU8;
use crate::spec::Filter;

/// Resizes like `cv2.resize(src, (width, height), interpolation=...)`.
pub fn resize(
    _src: &ImageU8,
    _width: usize,
    _height: usize,
    filter: Filter,
) -> Result<ImageU8, String> {
    Err(format!(
        "OpenCV resize with {filter:?} is not implemented yet"
    ))
}
