//! Resizing, bit-exact with the library named by [`Compat`].

pub mod opencv;
pub mod pil;

use crate::image::ImageU8;
use crate::spec::{Compat, Filter};

/// Resizes `src` to exactly `width` x `height` as `compat`'s library does.
///
/// The (compat, filter) pair is checked when the spec is validated, so an
/// unsupported pair here is a programming error reported as `Err`.
pub fn resize(
    src: &ImageU8,
    width: usize,
    height: usize,
    filter: Filter,
    compat: Compat,
) -> Result<ImageU8, String> {
    match compat {
        Compat::Pil => pil::resize(src, width, height, filter, true),
        Compat::PilNoAntialias => pil::resize(src, width, height, filter, false),
        Compat::Opencv => opencv::resize(src, width, height, filter),
    }
}
