//! Fake quantization with ONNX `QuantizeLinear`/`DequantizeLinear` semantics
//! (`q = saturate(round_half_even(x / scale) + zero_point)`,
//! `y = (q - zero_point) * scale`, in float32), so that the QAT forward pass
//! and the exported QDQ model compute the same values.

use candle_core::{Device, Tensor};
use serde::{Deserialize, Serialize};

use crate::error::Result;

/// How activations are quantized.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ActScheme {
    /// Asymmetric uint8: `scale = (max - min) / 255`, zero point in `[0, 255]` (the default,
    /// as ONNX Runtime's `quantize_static`).
    #[default]
    U8,
    /// Symmetric int8: `scale = max(|min|, |max|) / 127`, zero point 0.
    I8,
}

/// Per-tensor quantization parameters of an activation.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct QParams {
    pub scale: f32,
    pub zero_point: i32,
    pub qmin: i32,
    pub qmax: i32,
}

impl QParams {
    /// Quantize-dequantize one value exactly as `QuantizeLinear` then `DequantizeLinear`.
    #[inline]
    pub fn fake(&self, x: f32) -> f32 {
        let q = ((x / self.scale).round_ties_even() + self.zero_point as f32)
            .clamp(self.qmin as f32, self.qmax as f32);
        (q as i32 - self.zero_point) as f32 * self.scale
    }
}

/// Observes an activation's range by exponential moving average of the
/// batch min/max (the first batch initializes it) and fake-quantizes it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ActObserver {
    pub scheme: ActScheme,
    /// Weight of the newest batch in the moving average.
    pub momentum: f32,
    pub min: f32,
    pub max: f32,
    pub initialized: bool,
}

impl ActObserver {
    pub fn new(scheme: ActScheme, momentum: f32) -> ActObserver {
        ActObserver {
            scheme,
            momentum,
            min: 0.0,
            max: 0.0,
            initialized: false,
        }
    }

    /// Updates the moving-average range with a batch.
    pub fn observe(&mut self, x: &Tensor) -> Result<()> {
        let flat = x.detach().flatten_all()?;
        let lo = flat.min(0)?.to_scalar::<f32>()?;
        let hi = flat.max(0)?.to_scalar::<f32>()?;
        if self.initialized {
            let m = self.momentum;
            self.min += m * (lo - self.min);
            self.max += m * (hi - self.max);
        } else {
            self.min = lo;
            self.max = hi;
            self.initialized = true;
        }
        Ok(())
    }

    /// The quantization parameters of the current range (which always contains 0).
    pub fn qparams(&self) -> QParams {
        let lo = self.min.min(0.0);
        let hi = self.max.max(0.0);
        match self.scheme {
            ActScheme::U8 => {
                let range = hi - lo;
                let scale = if range > 0.0 { range / 255.0 } else { 1.0 };
                let zero_point = ((-lo / scale).round_ties_even() as i32).clamp(0, 255);
                QParams {
                    scale,
                    zero_point,
                    qmin: 0,
                    qmax: 255,
                }
            }
            ActScheme::I8 => {
                let amax = hi.max(-lo);
                let scale = if amax > 0.0 { amax / 127.0 } else { 1.0 };
                QParams {
                    scale,
                    zero_point: 0,
                    qmin: -128,
                    qmax: 127,
                }
            }
        }
    }

    /// Fake-quantizes `x`; with `ste` the result carries the straight-through
    /// gradient `x + (q - x).detach()`, else it is the plain quantized value.
    pub fn fake_quant(&self, x: &Tensor, ste: bool) -> Result<Tensor> {
        let p = self.qparams();
        let values: Vec<f32> = x.detach().flatten_all()?.to_vec1()?;
        let q: Vec<f32> = values.iter().map(|&v| p.fake(v)).collect();
        let q = Tensor::from_vec(q, x.shape(), &Device::Cpu)?;
        if ste {
            let delta = (q - x.detach())?;
            Ok(x.add(&delta)?)
        } else {
            Ok(q)
        }
    }
}

/// Symmetric int8 per-output-channel (axis 0) weight quantization:
/// `scale[c] = max|w[c]| / 127`, values in `[-127, 127]`.
pub fn quantize_weight(values: &[f32], channels: usize) -> (Vec<i8>, Vec<f32>) {
    let per = values.len() / channels.max(1);
    let mut q = Vec::with_capacity(values.len());
    let mut scales = Vec::with_capacity(channels);
    for c in 0..channels {
        let row = &values[c * per..(c + 1) * per];
        let amax = row.iter().fold(0f32, |m, v| m.max(v.abs()));
        let scale = if amax > 0.0 { amax / 127.0 } else { 1.0 };
        scales.push(scale);
        q.extend(
            row.iter()
                .map(|&v| (v / scale).round_ties_even().clamp(-127.0, 127.0) as i8),
        );
    }
    (q, scales)
}

/// The fake-quantized (quantized then dequantized) weight tensor, no gradient.
pub fn fake_quant_weight_values(w: &Tensor) -> Result<Tensor> {
    let channels = w.dim(0)?;
    let values: Vec<f32> = w.detach().flatten_all()?.to_vec1()?;
    let (q, scales) = quantize_weight(&values, channels);
    let per = values.len() / channels.max(1);
    let deq: Vec<f32> = q
        .iter()
        .enumerate()
        .map(|(i, &v)| f32::from(v) * scales[i / per])
        .collect();
    Ok(Tensor::from_vec(deq, w.shape(), &Device::Cpu)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn u8_params_contain_zero_and_round_trip_grid_values() {
        let mut obs = ActObserver::new(ActScheme::U8, 0.1);
        let x = Tensor::new(&[-1.0f32, 0.0, 3.0], &Device::Cpu).unwrap();
        obs.observe(&x).unwrap();
        let p = obs.qparams();
        assert_eq!(p.qmin, 0);
        assert!((p.scale - 4.0 / 255.0).abs() < 1e-7);
        assert_eq!(p.fake(0.0), 0.0);
        let g = 17.0 * p.scale - p.zero_point as f32 * p.scale;
        assert!((p.fake(g) - g).abs() < 1e-6);
        assert_eq!(p.fake(100.0), (255 - p.zero_point) as f32 * p.scale);
    }

    #[test]
    fn ties_round_to_even_like_onnx() {
        let p = QParams {
            scale: 1.0,
            zero_point: 0,
            qmin: -128,
            qmax: 127,
        };
        assert_eq!(p.fake(2.5), 2.0);
        assert_eq!(p.fake(3.5), 4.0);
        assert_eq!(p.fake(-2.5), -2.0);
    }

    #[test]
    fn weights_are_symmetric_per_channel() {
        let (q, s) = quantize_weight(&[1.0, -0.25, 0.0, 0.02], 2);
        assert_eq!(q, vec![127, -32, 0, 127]);
        assert!((s[0] - 1.0 / 127.0).abs() < 1e-9);
        assert!((s[1] - 0.02 / 127.0).abs() < 1e-9);
    }
}
