/// An 8-bit image, rows top to bottom, pixels interleaved (HWC).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageU8 {
    pub width: usize,
    pub height: usize,
    /// 1 (gray), 3 (RGB or BGR) or 4 (with alpha).
    pub channels: usize,
    pub data: Vec<u8>,
}

impl ImageU8 {
    pub fn new(width: usize, height: usize, channels: usize, data: Vec<u8>) -> Self {
        assert_eq!(
            data.len(),
            width * height * channels,
            "image buffer length does not match {width}x{height}x{channels}"
        );
        ImageU8 {
            width,
            height,
            channels,
            data,
        }
    }

    pub fn zeros(width: usize, height: usize, channels: usize) -> Self {
        ImageU8 {
            width,
            height,
            channels,
            data: vec![0; width * height * channels],
        }
    }

    pub fn row(&self, y: usize) -> &[u8] {
        let stride = self.width * self.channels;
        &self.data[y * stride..(y + 1) * stride]
    }

    pub fn pixel(&self, x: usize, y: usize) -> &[u8] {
        let i = (y * self.width + x) * self.channels;
        &self.data[i..i + self.channels]
    }
}
