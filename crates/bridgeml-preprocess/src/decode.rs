//! Image decoding, bit-exact with Pillow's
//! `np.asarray(Image.open(f).convert("RGB"))` (and `.convert("L")`).
//!
//! * JPEG: libjpeg-turbo (the `mozjpeg` crate) configured as Pillow configures
//!   it: slow-integer DCT, fancy upsampling, YCbCr → RGB by libjpeg; gray
//!   output is Pillow's `L` of that RGB (not libjpeg's Y channel);
//!   4-component JPEGs are read as Pillow reads them (`CMYK;I`, Adobe
//!   polarity) and converted with Pillow's `cmyk2rgb`. A JPEG whose data ends
//!   before the last scanline is an error ("image file is truncated"), as in
//!   Pillow. [`Decoder::Zune`] uses the pure-Rust zune-jpeg instead, and the
//!   `Ifast`/`NoFancy` variants change the libjpeg settings (diagnostics).
//! * PNG: the `png` crate without transformations, then Pillow's unpackers
//!   and conversions (1/2/4-bit gray scaled to 0..255, 16-bit gray clipped to
//!   255, 16-bit color keeps the high byte, alpha dropped without compositing,
//!   palette looked up, `tRNS` ignored).
//! * BMP, GIF (first frame), TIFF, WebP: the `image` crate.
//!
//! The format is sniffed from the magic bytes; width × height is checked
//! against `max_pixels` from the header, before any pixel buffer is allocated.

use std::cell::Cell;
use std::io::{self, BufRead, Cursor, Read};
use std::panic::{catch_unwind, AssertUnwindSafe};

use crate::color;
use crate::error::{PreprocessError, Result};
use crate::image::ImageU8;
use crate::spec::{Color, Decoder};

/// A decoded image and the EXIF orientation found in the file (not applied).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decoded {
    pub image: ImageU8,
    /// The EXIF Orientation tag (1..=8 when valid), read as Pillow's
    /// `Image.getexif()` does: the EXIF block (JPEG APP1, PNG eXIf), else a
    /// `tiff:Orientation` in the XMP packet. `None` when absent.
    pub exif_orientation: Option<u16>,
}

/// The container formats recognised from magic bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImageFormat {
    Jpeg,
    Png,
    Gif,
    Bmp,
    Tiff,
    WebP,
}

impl ImageFormat {
    pub fn name(self) -> &'static str {
        match self {
            ImageFormat::Jpeg => "JPEG",
            ImageFormat::Png => "PNG",
            ImageFormat::Gif => "GIF",
            ImageFormat::Bmp => "BMP",
            ImageFormat::Tiff => "TIFF",
            ImageFormat::WebP => "WebP",
        }
    }
}

/// Sniffs the format from the first bytes. `Err` names what was recognised
/// (an unsupported format) or shows the first bytes.
pub fn sniff(bytes: &[u8]) -> std::result::Result<ImageFormat, String> {
    let starts = |m: &[u8]| bytes.starts_with(m);
    if bytes.is_empty() {
        return Err("empty input (0 bytes)".into());
    }
    if starts(&[0xFF, 0xD8, 0xFF]) {
        return Ok(ImageFormat::Jpeg);
    }
    if starts(b"\x89PNG\r\n\x1a\n") {
        return Ok(ImageFormat::Png);
    }
    if starts(b"GIF87a") || starts(b"GIF89a") {
        return Ok(ImageFormat::Gif);
    }
    if starts(b"BM") && bytes.len() >= 14 {
        return Ok(ImageFormat::Bmp);
    }
    if starts(b"II*\0") || starts(b"MM\0*") {
        return Ok(ImageFormat::Tiff);
    }
    if starts(b"RIFF") && bytes.len() >= 12 && &bytes[8..12] == b"WEBP" {
        return Ok(ImageFormat::WebP);
    }
    let unsupported = if bytes.len() >= 12 && &bytes[4..8] == b"ftyp" {
        match &bytes[8..12] {
            b"avif" | b"avis" => Some("AVIF"),
            b"heic" | b"heix" | b"hevc" | b"heim" | b"heis" | b"mif1" | b"msf1" => Some("HEIF"),
            _ => Some("an ISO-BMFF (MP4/HEIF family) file"),
        }
    } else if starts(b"\0\0\0\x0cjP  \r\n\x87\n") || starts(&[0xFF, 0x4F, 0xFF, 0x51]) {
        Some("JPEG 2000")
    } else if starts(&[0xFF, 0x0A]) || starts(b"\0\0\0\x0cJXL \r\n\x87\n") {
        Some("JPEG XL")
    } else if starts(b"II+\0") || starts(b"MM\0+") {
        Some("BigTIFF")
    } else if starts(b"qoif") {
        Some("QOI")
    } else if starts(b"8BPS") {
        Some("PSD")
    } else if starts(b"%PDF") {
        Some("PDF")
    } else if starts(b"\0\0\x01\0") {
        Some("ICO")
    } else if starts(b"DDS ") {
        Some("DDS")
    } else if starts(&[0x76, 0x2F, 0x31, 0x01]) {
        Some("OpenEXR")
    } else if starts(b"#?RADIANCE") || starts(b"#?RGBE") {
        Some("Radiance HDR")
    } else if bytes.len() >= 2 && bytes[0] == b'P' && (b'1'..=b'7').contains(&bytes[1]) {
        Some("PNM/PAM")
    } else if starts(b"RIFF") {
        Some("a RIFF file that is not WebP")
    } else if starts(&[0xFF, 0xD8]) {
        Some("a JPEG SOI marker not followed by a marker")
    } else if starts(b"<svg") || starts(b"<?xml") {
        Some("SVG/XML")
    } else {
        None
    };
    match unsupported {
        Some(what) => Err(format!("unsupported image format: {what}")),
        None => {
            let head: Vec<String> = bytes.iter().take(8).map(|b| format!("{b:02x}")).collect();
            Err(format!(
                "unrecognized image format ({} bytes, starting {})",
                bytes.len(),
                head.join(" ")
            ))
        }
    }
}

fn decode_err(label: &str, reason: impl Into<String>) -> PreprocessError {
    PreprocessError::Decode {
        input: label.to_string(),
        reason: reason.into(),
    }
}

/// Refuses empty and over-large images from header dimensions alone.
fn check_size(label: &str, width: u64, height: u64, max_pixels: u64) -> Result<()> {
    if width == 0 || height == 0 {
        return Err(decode_err(
            label,
            format!("image has zero size ({width}x{height})"),
        ));
    }
    let pixels = width.saturating_mul(height);
    if pixels > max_pixels {
        return Err(PreprocessError::TooLarge {
            input: label.to_string(),
            pixels,
            limit: max_pixels,
        });
    }
    Ok(())
}

/// Decodes `bytes` (format sniffed from magic bytes, not the file name) to
/// `color`: `Rgb` equals Pillow's `convert("RGB")`, `Gray` its
/// `convert("L")`, `Bgr` the RGB channels reversed. `label` (e.g. the file
/// path) names the input in errors. Images with more than `max_pixels`
/// pixels are refused with [`PreprocessError::TooLarge`] before decoding.
pub fn decode(
    bytes: &[u8],
    label: &str,
    decoder: Decoder,
    color: Color,
    max_pixels: u64,
) -> Result<Decoded> {
    let format = sniff(bytes).map_err(|r| decode_err(label, r))?;
    match format {
        ImageFormat::Jpeg => {
            let exif_orientation = jpeg_orientation(bytes);
            let image = match decoder {
                Decoder::Zune => decode_with_image_crate(
                    bytes,
                    label,
                    image::ImageFormat::Jpeg,
                    color,
                    max_pixels,
                )?,
                _ => decode_jpeg_turbo(bytes, label, decoder, color, max_pixels)?,
            };
            Ok(Decoded {
                image,
                exif_orientation,
            })
        }
        ImageFormat::Png => decode_png(bytes, label, color, max_pixels),
        other => {
            let fmt = match other {
                ImageFormat::Gif => image::ImageFormat::Gif,
                ImageFormat::Bmp => image::ImageFormat::Bmp,
                ImageFormat::Tiff => image::ImageFormat::Tiff,
                _ => image::ImageFormat::WebP,
            };
            let image = decode_with_image_crate(bytes, label, fmt, color, max_pixels)?;
            Ok(Decoded {
                image,
                exif_orientation: None,
            })
        }
    }
}

// ------------------------------------------------------------------ JPEG

/// A byte-slice reader for libjpeg that records whether libjpeg asked for
/// data past the end (the `mozjpeg` source manager then fakes an EOI marker
/// and libjpeg only warns; Pillow instead fails with "image file is
/// truncated").
struct EofTracking<'a> {
    data: &'a [u8],
    hit_eof: &'a Cell<bool>,
}

impl Read for EofTracking<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.data.read(buf)?;
        if n == 0 && !buf.is_empty() {
            self.hit_eof.set(true);
        }
        Ok(n)
    }
}

impl BufRead for EofTracking<'_> {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        if self.data.is_empty() {
            self.hit_eof.set(true);
        }
        Ok(self.data)
    }

    fn consume(&mut self, amt: usize) {
        self.data = &self.data[amt.min(self.data.len())..];
    }
}

fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else {
        "libjpeg fatal error".to_string()
    }
}

const TRUNCATED: &str = "image file is truncated";

fn decode_jpeg_turbo(
    bytes: &[u8],
    label: &str,
    decoder: Decoder,
    color: Color,
    max_pixels: u64,
) -> Result<ImageU8> {
    let hit_eof = Cell::new(false);
    // libjpeg reports fatal errors by unwinding (mozjpeg's error manager);
    // turn them into errors.
    let result = catch_unwind(AssertUnwindSafe(|| {
        jpeg_turbo_inner(bytes, label, decoder, color, max_pixels, &hit_eof)
    }));
    match result {
        Ok(r) => r,
        Err(payload) => {
            let msg = panic_message(payload.as_ref());
            let msg = msg.strip_prefix("libjpeg fatal error: ").unwrap_or(&msg);
            Err(decode_err(label, format!("invalid JPEG: {msg}")))
        }
    }
}

fn jpeg_turbo_inner(
    bytes: &[u8],
    label: &str,
    decoder: Decoder,
    color: Color,
    max_pixels: u64,
    hit_eof: &Cell<bool>,
) -> Result<ImageU8> {
    use mozjpeg::ColorSpace as Cs;
    let io_err = |e: io::Error| {
        if hit_eof.get() {
            decode_err(label, TRUNCATED)
        } else {
            decode_err(label, format!("invalid JPEG: {e}"))
        }
    };
    let reader = EofTracking {
        data: bytes,
        hit_eof,
    };
    let mut d = mozjpeg::Decompress::builder()
        .from_reader(reader)
        .map_err(io_err)?;
    if hit_eof.get() {
        return Err(decode_err(label, TRUNCATED));
    }
    let (w, h) = d.size();
    check_size(label, w as u64, h as u64, max_pixels)?;
    match decoder {
        Decoder::LibjpegTurboIfast => d.dct_method(mozjpeg::DctMethod::IntegerFast),
        _ => d.dct_method(mozjpeg::DctMethod::IntegerSlow),
    }
    d.do_fancy_upsampling(decoder != Decoder::LibjpegTurboNoFancy);

    // What libjpeg outputs, and how each output row is made from it.
    type RowFn = fn(&[u8], &mut [u8]);
    enum Plan {
        /// libjpeg writes the output rows directly.
        Direct(Cs, usize),
        /// libjpeg writes `usize`-channel rows into a scratch row, converted by the fn.
        PerRow(Cs, usize, usize, RowFn),
    }
    fn cmyk_to_bgr_row(src: &[u8], dst: &mut [u8]) {
        color::inverted_cmyk_to_rgb_row(src, dst);
        color::swap_rb_in_place(dst);
    }
    fn cmyk_to_gray_row(src: &[u8], dst: &mut [u8]) {
        // Pillow: CMYK -> RGB -> L (no direct CMYK -> L converter).
        for (d, s) in dst.iter_mut().zip(src.chunks_exact(4)) {
            let mut rgb = [0u8; 3];
            color::inverted_cmyk_to_rgb_row(s, &mut rgb);
            *d = color::luma(rgb[0], rgb[1], rgb[2]);
        }
    }
    let plan = match (d.color_space(), color) {
        (Cs::JCS_GRAYSCALE, Color::Gray) => Plan::Direct(Cs::JCS_GRAYSCALE, 1),
        // libjpeg-turbo's gray -> RGB replicates, as Pillow's L -> RGB does.
        (Cs::JCS_GRAYSCALE, Color::Rgb | Color::Bgr) => Plan::Direct(Cs::JCS_RGB, 3),
        (Cs::JCS_YCbCr | Cs::JCS_RGB, Color::Rgb) => Plan::Direct(Cs::JCS_RGB, 3),
        (Cs::JCS_YCbCr | Cs::JCS_RGB, Color::Bgr) => Plan::Direct(Cs::JCS_EXT_BGR, 3),
        (Cs::JCS_YCbCr | Cs::JCS_RGB, Color::Gray) => {
            Plan::PerRow(Cs::JCS_RGB, 3, 1, color::rgb_to_gray_row)
        }
        (Cs::JCS_CMYK | Cs::JCS_YCCK, Color::Rgb) => {
            Plan::PerRow(Cs::JCS_CMYK, 4, 3, color::inverted_cmyk_to_rgb_row)
        }
        (Cs::JCS_CMYK | Cs::JCS_YCCK, Color::Bgr) => {
            Plan::PerRow(Cs::JCS_CMYK, 4, 3, cmyk_to_bgr_row)
        }
        (Cs::JCS_CMYK | Cs::JCS_YCCK, Color::Gray) => {
            Plan::PerRow(Cs::JCS_CMYK, 4, 1, cmyk_to_gray_row)
        }
        (cs, _) => {
            return Err(decode_err(
                label,
                format!(
                    "unsupported JPEG color space {cs:?} ({} components)",
                    d.components().len()
                ),
            ))
        }
    };
    let image = match plan {
        Plan::Direct(cs, ch) => {
            let mut started = d.to_colorspace(cs).map_err(io_err)?;
            let (w, h) = (started.width(), started.height());
            let mut data = vec![0u8; w * h * ch];
            started.read_scanlines_into(&mut data).map_err(io_err)?;
            ImageU8::new(w, h, ch, data)
        }
        Plan::PerRow(cs, in_ch, ch, f) => {
            let mut started = d.to_colorspace(cs).map_err(io_err)?;
            let (w, h) = (started.width(), started.height());
            let mut row = vec![0u8; w * in_ch];
            let mut data = vec![0u8; w * h * ch];
            for out in data.chunks_exact_mut(w * ch) {
                started.read_scanlines_into(&mut row).map_err(io_err)?;
                f(&row, out);
            }
            ImageU8::new(w, h, ch, data)
        }
    };
    // The scanlines needed data past the end of the input (libjpeg went on
    // with a fake EOI, i.e. gray/garbage rows): Pillow refuses such files.
    // Data after the last scanline (the EOI marker) is not read, as Pillow
    // does not need it either.
    if hit_eof.get() {
        return Err(decode_err(label, TRUNCATED));
    }
    Ok(image)
}

/// Iterates over the APP1 segments before the first SOS of a JPEG.
fn jpeg_app1_segments(bytes: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut pos = 2usize; // after SOI
    std::iter::from_fn(move || loop {
        // find the next marker: 0xFF, fill 0xFFs, then the code
        if pos >= bytes.len() || bytes[pos] != 0xFF {
            return None;
        }
        while pos < bytes.len() && bytes[pos] == 0xFF {
            pos += 1;
        }
        let code = *bytes.get(pos)?;
        pos += 1;
        match code {
            0xD8 | 0x01 | 0xD0..=0xD7 => continue, // standalone markers
            0xD9 | 0xDA => return None,            // EOI, SOS
            _ => {}
        }
        let len = u16::from_be_bytes([*bytes.get(pos)?, *bytes.get(pos + 1)?]) as usize;
        if len < 2 || pos + len > bytes.len() {
            return None;
        }
        let seg = &bytes[pos + 2..pos + len];
        pos += len;
        if code == 0xE1 {
            return Some(seg);
        }
    })
}

/// The Orientation tag as Pillow's `getexif()` finds it in a JPEG: the first
/// `Exif\0\0` APP1 segment, else `tiff:Orientation` in the XMP APP1 segment.
fn jpeg_orientation(bytes: &[u8]) -> Option<u16> {
    let mut exif = None;
    let mut xmp = None;
    for seg in jpeg_app1_segments(bytes) {
        if exif.is_none() && seg.starts_with(b"Exif\0\0") {
            exif = Some(&seg[6..]);
        } else if xmp.is_none() && seg.starts_with(b"http://ns.adobe.com/xap/1.0/\0") {
            xmp = Some(&seg[29..]);
        }
    }
    exif.and_then(exif_orientation)
        .or_else(|| xmp.and_then(xmp_orientation))
}

/// The Orientation (0x0112) of IFD0 in a TIFF-structured EXIF block.
pub fn exif_orientation(tiff: &[u8]) -> Option<u16> {
    let exif = exif::Reader::new().read_raw(tiff.to_vec()).ok()?;
    let field = exif.get_field(exif::Tag::Orientation, exif::In::PRIMARY)?;
    field.value.get_uint(0).and_then(|v| u16::try_from(v).ok())
}

/// Pillow's XMP fallback: the regex `tiff:Orientation(="|>)([0-9])`.
fn xmp_orientation(xmp: &[u8]) -> Option<u16> {
    const KEY: &[u8] = b"tiff:Orientation";
    let mut i = 0;
    while let Some(off) = xmp[i..].windows(KEY.len()).position(|w| w == KEY) {
        let p = i + off + KEY.len();
        let rest = &xmp[p..];
        let digit = if rest.starts_with(b"=\"") {
            rest.get(2)
        } else if rest.starts_with(b">") {
            rest.get(1)
        } else {
            None
        };
        if let Some(&d) = digit.filter(|d| d.is_ascii_digit()) {
            return Some((d - b'0') as u16);
        }
        i = p;
    }
    None
}

// ------------------------------------------------------------------- PNG

fn decode_png(bytes: &[u8], label: &str, color: Color, max_pixels: u64) -> Result<Decoded> {
    use png::{BitDepth, ColorType};
    let png_err = |e: png::DecodingError| {
        let reason = match &e {
            png::DecodingError::IoError(io) if io.kind() == io::ErrorKind::UnexpectedEof => {
                format!("{TRUNCATED} (PNG: {e})")
            }
            _ => format!("invalid PNG: {e}"),
        };
        decode_err(label, reason)
    };
    // The png crate's default limit (64 MiB) bounds only its own buffers
    // (chunks, one row); the image buffer is ours, sized after the
    // max_pixels check. ICC profiles are not needed (Pillow does not apply
    // them either) and are not decompressed.
    let mut dec = png::Decoder::new(Cursor::new(bytes));
    dec.set_ignore_iccp_chunk(true);
    dec.set_transformations(png::Transformations::IDENTITY);
    let mut reader = dec.read_info().map_err(png_err)?;
    let info = reader.info();
    let (w, h) = (info.width as usize, info.height as usize);
    check_size(label, w as u64, h as u64, max_pixels)?;
    let (ct, bd) = (info.color_type, info.bit_depth);

    // png 0.17 does not parse eXIf; Pillow reads it before or after IDAT.
    let exif_orientation = png_chunk(bytes, b"eXIf")
        .and_then(exif_orientation)
        .or_else(|| {
            let key = "XML:com.adobe.xmp";
            info.utf8_text
                .iter()
                .filter(|t| t.keyword == key)
                .find_map(|t| {
                    // Pillow's text-chunk limit (ImageFile.MAX_TEXT_CHUNK, 1 MiB)
                    let mut t = t.clone();
                    t.decompress_text_with_limit(1 << 20).ok()?;
                    t.get_text().ok()
                })
                .or_else(|| {
                    info.uncompressed_latin1_text
                        .iter()
                        .find(|t| t.keyword == key)
                        .map(|t| t.text.clone())
                })
                .and_then(|s| xmp_orientation(s.as_bytes()))
        });

    // Palette as RGB triples, 256 entries (missing ones black) and their luma.
    let mut pal = [[0u8; 3]; 256];
    if let Some(p) = info.palette.as_deref() {
        for (e, c) in pal.iter_mut().zip(p.chunks_exact(3)) {
            e.copy_from_slice(c);
        }
    }
    let pal_l: Vec<u8> = pal.iter().map(|c| color::luma(c[0], c[1], c[2])).collect();
    let bits = bd as u8 as usize;
    let interlaced = info.interlaced;

    let out_ch = if color == Color::Gray { 1 } else { 3 };
    // Pixel values as Pillow holds them in "L"/"RGB" after unpacking.
    // `gray(v)` / `rgb(v)` callbacks write one output pixel.
    let convert_row = |src: &[u8], dst: &mut [u8]| {
        let put_gray = |dst: &mut [u8], x: usize, v: u8| match color {
            Color::Gray => dst[x] = v,
            _ => dst[3 * x..3 * x + 3].fill(v),
        };
        let put_rgb = |dst: &mut [u8], x: usize, r: u8, g: u8, b: u8| match color {
            Color::Gray => dst[x] = color::luma(r, g, b),
            Color::Rgb => dst[3 * x..3 * x + 3].copy_from_slice(&[r, g, b]),
            Color::Bgr => dst[3 * x..3 * x + 3].copy_from_slice(&[b, g, r]),
        };
        // sub-byte sample x of a packed row
        let sample = |x: usize| -> u8 {
            let per = 8 / bits;
            let byte = src[x / per];
            let shift = 8 - bits * (x % per + 1);
            (byte >> shift) & ((1u16 << bits) - 1) as u8
        };
        match (ct, bd) {
            (ColorType::Grayscale, BitDepth::Eight) => match color {
                Color::Gray => dst.copy_from_slice(&src[..w]),
                _ => color::gray_to_rgb_row(&src[..w], dst),
            },
            (ColorType::Grayscale, BitDepth::Sixteen) => {
                // Pillow "I;16": convert to L/RGB clips at 255.
                for x in 0..w {
                    let v = u16::from_be_bytes([src[2 * x], src[2 * x + 1]]);
                    put_gray(dst, x, v.min(255) as u8);
                }
            }
            (ColorType::Grayscale, _) => {
                // Pillow "1" (0/255), "L;2" (×85), "L;4" (×17).
                let scale = 255 / ((1u16 << bits) - 1) as u8;
                for x in 0..w {
                    put_gray(dst, x, sample(x) * scale);
                }
            }
            (ColorType::Indexed, _) => {
                for x in 0..w {
                    let i = if bits == 8 { src[x] } else { sample(x) } as usize;
                    match color {
                        Color::Gray => dst[x] = pal_l[i],
                        _ => {
                            let [r, g, b] = pal[i];
                            put_rgb(dst, x, r, g, b)
                        }
                    }
                }
            }
            (ColorType::GrayscaleAlpha, BitDepth::Eight) => {
                for x in 0..w {
                    put_gray(dst, x, src[2 * x]);
                }
            }
            (ColorType::GrayscaleAlpha, _) => {
                // Pillow "LA;16B" -> RGBA, high bytes.
                for x in 0..w {
                    put_gray(dst, x, src[4 * x]);
                }
            }
            (ColorType::Rgb, BitDepth::Eight) => match color {
                Color::Rgb => dst.copy_from_slice(&src[..3 * w]),
                Color::Bgr => color::rgb_to_bgr_row(&src[..3 * w], dst),
                Color::Gray => color::rgb_to_gray_row(&src[..3 * w], dst),
            },
            (ColorType::Rgb, _) => {
                // Pillow "RGB;16B": the high byte of each sample.
                for x in 0..w {
                    let s = &src[6 * x..6 * x + 6];
                    put_rgb(dst, x, s[0], s[2], s[4]);
                }
            }
            (ColorType::Rgba, BitDepth::Eight) => match color {
                Color::Gray => color::rgbx_to_gray_row(&src[..4 * w], dst),
                _ => {
                    for x in 0..w {
                        let s = &src[4 * x..4 * x + 4];
                        put_rgb(dst, x, s[0], s[1], s[2]);
                    }
                }
            },
            (ColorType::Rgba, _) => {
                for x in 0..w {
                    let s = &src[8 * x..8 * x + 8];
                    put_rgb(dst, x, s[0], s[2], s[4]);
                }
            }
        }
    };

    let raw_is_output = bd == BitDepth::Eight
        && matches!(
            (ct, color),
            (ColorType::Rgb, Color::Rgb) | (ColorType::Grayscale, Color::Gray)
        );
    let data = if raw_is_output {
        // The decoded rows are the output: decode straight into it.
        let mut data = vec![0u8; reader.output_buffer_size()];
        reader.next_frame(&mut data).map_err(png_err)?;
        data.truncate(w * h * out_ch);
        data
    } else if interlaced {
        let mut raw = vec![0u8; reader.output_buffer_size()];
        let frame = reader.next_frame(&mut raw).map_err(png_err)?;
        let mut data = vec![0u8; w * h * out_ch];
        for (src, dst) in raw
            .chunks_exact(frame.line_size)
            .zip(data.chunks_exact_mut(w * out_ch))
        {
            convert_row(src, dst);
        }
        data
    } else {
        let mut data = vec![0u8; w * h * out_ch];
        for dst in data.chunks_exact_mut(w * out_ch) {
            let row = reader
                .next_row()
                .map_err(png_err)?
                .ok_or_else(|| decode_err(label, format!("{TRUNCATED} (PNG: missing rows)")))?;
            convert_row(row.data(), dst);
        }
        data
    };
    Ok(Decoded {
        image: ImageU8::new(w, h, out_ch, data),
        exif_orientation,
    })
}

/// The data of the first chunk of type `tag` in a PNG, walking the chunk
/// headers (chunk data is skipped, not read).
fn png_chunk<'a>(bytes: &'a [u8], tag: &[u8; 4]) -> Option<&'a [u8]> {
    let mut pos = 8usize;
    while pos.checked_add(12)? <= bytes.len() {
        let len = u32::from_be_bytes(bytes[pos..pos + 4].try_into().ok()?) as usize;
        let kind = &bytes[pos + 4..pos + 8];
        let data = bytes.get(pos + 8..(pos + 8).checked_add(len)?)?;
        if kind == tag {
            return Some(data);
        }
        if kind == b"IEND" {
            return None;
        }
        pos = pos + 12 + len;
    }
    None
}

// ------------------------------------------------- BMP, GIF, TIFF, WebP

fn decode_with_image_crate(
    bytes: &[u8],
    label: &str,
    format: image::ImageFormat,
    color: Color,
    max_pixels: u64,
) -> Result<ImageU8> {
    use image::{DynamicImage, ImageDecoder};
    let name = format!("{format:?}").to_uppercase();
    let img_err = |e: image::ImageError| {
        let reason = match &e {
            image::ImageError::IoError(io) if io.kind() == io::ErrorKind::UnexpectedEof => {
                format!("{TRUNCATED} ({name}: {e})")
            }
            _ => format!("invalid {name}: {e}"),
        };
        decode_err(label, reason)
    };
    let mut reader = image::ImageReader::with_format(Cursor::new(bytes), format);
    // Our max_pixels check (below, from the header) bounds the image; the
    // allocation limit only needs room for it at up to 16 bytes a pixel
    // (RGBA, 32-bit float) plus the decoders' own buffers.
    let mut limits = image::Limits::default();
    limits.max_alloc = Some(max_pixels.saturating_mul(16).saturating_add(64 << 20));
    reader.limits(limits);
    let dec = reader.into_decoder().map_err(img_err)?;
    let (w, h) = dec.dimensions();
    check_size(label, w as u64, h as u64, max_pixels)?;
    let img = DynamicImage::from_decoder(dec).map_err(img_err)?;
    let (w, h) = (img.width() as usize, img.height() as usize);
    let out_ch = if color == Color::Gray { 1 } else { 3 };
    let from_rgb = |rgb: Vec<u8>| -> ImageU8 {
        match color {
            Color::Rgb => ImageU8::new(w, h, 3, rgb),
            Color::Bgr => {
                let mut rgb = rgb;
                color::swap_rb_in_place(&mut rgb);
                ImageU8::new(w, h, 3, rgb)
            }
            Color::Gray => {
                let mut g = vec![0u8; w * h];
                color::rgb_to_gray_row(&rgb, &mut g);
                ImageU8::new(w, h, 1, g)
            }
        }
    };
    let from_gray = |g: Vec<u8>| -> ImageU8 {
        match color {
            Color::Gray => ImageU8::new(w, h, 1, g),
            _ => {
                let mut rgb = vec![0u8; w * h * 3];
                color::gray_to_rgb_row(&g, &mut rgb);
                ImageU8::new(w, h, 3, rgb)
            }
        }
    };
    let out = match img {
        DynamicImage::ImageRgb8(b) => from_rgb(b.into_raw()),
        DynamicImage::ImageLuma8(b) => from_gray(b.into_raw()),
        DynamicImage::ImageLumaA8(b) => {
            from_gray(b.into_raw().chunks_exact(2).map(|p| p[0]).collect())
        }
        DynamicImage::ImageLuma16(b) => {
            from_gray(b.into_raw().iter().map(|&v| v.min(255) as u8).collect())
        }
        DynamicImage::ImageLumaA16(b) => from_gray(
            b.into_raw()
                .chunks_exact(2)
                .map(|p| (p[0] >> 8) as u8)
                .collect(),
        ),
        DynamicImage::ImageRgba8(b) => {
            let raw = b.into_raw();
            let mut data = vec![0u8; w * h * out_ch];
            match color {
                Color::Gray => color::rgbx_to_gray_row(&raw, &mut data),
                _ => {
                    color::rgbx_to_rgb_row(&raw, &mut data);
                    if color == Color::Bgr {
                        color::swap_rb_in_place(&mut data);
                    }
                }
            }
            ImageU8::new(w, h, out_ch, data)
        }
        DynamicImage::ImageRgb16(b) => {
            from_rgb(b.into_raw().iter().map(|&v| (v >> 8) as u8).collect())
        }
        DynamicImage::ImageRgba16(b) => from_rgb(
            b.into_raw()
                .chunks_exact(4)
                .flat_map(|p| [(p[0] >> 8) as u8, (p[1] >> 8) as u8, (p[2] >> 8) as u8])
                .collect(),
        ),
        other => from_rgb(other.to_rgb8().into_raw()),
    };
    Ok(out)
}
