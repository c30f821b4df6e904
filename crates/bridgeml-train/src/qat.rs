//! Quantization-aware training: BN folding, range calibration, fake-quant
//! fine-tuning (see [`crate::quant`]).

use std::sync::atomic::AtomicBool;

use crate::data::Dataset;
use crate::error::Result;
use crate::model::Model;
use crate::quant::ActScheme;
use crate::train::{check_compat, fit, EpochStats, Progress, TrainConfig};

/// Options of a QAT run.
#[derive(Debug, Clone)]
pub struct QatConfig {
    pub train: TrainConfig,
    pub activations: ActScheme,
    /// Weight of each new batch in the moving-average activation ranges.
    pub observer_momentum: f32,
    /// Batches run (without weight updates) to initialize the ranges before fine-tuning.
    pub calibration_batches: usize,
}

impl Default for QatConfig {
    fn default() -> Self {
        QatConfig {
            train: TrainConfig {
                lr: 1e-4,
                ..TrainConfig::default()
            },
            activations: ActScheme::U8,
            observer_momentum: 0.1,
            calibration_batches: 8,
        }
    }
}

/// Prepares `model` for QAT (fold BN, attach observers), calibrates the
/// activation ranges on the first batches of `data`, then fine-tunes with fake
/// quantization. Afterwards `model.to_onnx()` writes a QDQ model.
pub fn run_qat(
    model: &mut Model,
    data: &Dataset,
    cfg: &QatConfig,
    progress: &mut dyn Progress,
    cancel: &AtomicBool,
) -> Result<Vec<EpochStats>> {
    check_compat(model, data)?;
    model.prepare_qat(cfg.activations, cfg.observer_momentum)?;
    calibrate(model, data, cfg.train.batch_size, cfg.calibration_batches)?;
    fit(model, data, &cfg.train, progress, cancel)
}

/// Observes activation ranges on up to `batches` batches (in data order, no weight update).
pub fn calibrate(
    model: &mut Model,
    data: &Dataset,
    batch_size: usize,
    batches: usize,
) -> Result<()> {
    let idx: Vec<usize> = (0..data.len()).collect();
    // Spread the calibration samples over the classes: take every k-th sample.
    let want = (batch_size * batches).min(data.len()).max(1);
    let step = (data.len() / want).max(1);
    let picked: Vec<usize> = idx.iter().copied().step_by(step).take(want).collect();
    for chunk in picked.chunks(batch_size.max(1)) {
        let (x, _) = data.batch(chunk)?;
        model.forward(&x, true)?;
    }
    Ok(())
}
