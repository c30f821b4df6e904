//! Pillow's `Image.resize` (Pillow >= 10), bit-exact. Placeholder until implemented.

use crate::image::ImageU8;
use crate::spec::Filter;

/// Resizes like `Image.resize((width, height), filter)` with `reducing_gap=None`.
///
/// `antialias = false` keeps the filter's support at its upscaling width when
/// downscaling (what libraries without antialiasing do); Pillow itself always
/// antialiases.
pub fn resize(
    _src: &ImageU8,
    _width: usize,
    _height: usize,
    filter: Filter,
    _antialias: bool,
) -> Result<ImageU8, String> {
    Err(format!("PIL resize with {filter:?} is not implemented yet"))
}
