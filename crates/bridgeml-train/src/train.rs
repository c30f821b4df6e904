//! The training loop (AdamW, cross-entropy, seeded shuffling) and evaluation.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use candle_nn::{AdamW, Optimizer, ParamsAdamW};
use serde::Serialize;

use crate::data::Dataset;
use crate::error::{Result, TrainError};
use crate::model::Model;
use crate::rng::Rng;

/// Hyper-parameters of a training run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TrainConfig {
    pub epochs: usize,
    pub batch_size: usize,
    pub lr: f64,
    pub weight_decay: f64,
    /// Seeds initialization (in [`Model::from_arch`]) and shuffling.
    pub seed: u64,
}

impl Default for TrainConfig {
    fn default() -> Self {
        TrainConfig {
            epochs: 5,
            batch_size: 64,
            lr: 1e-3,
            weight_decay: 1e-4,
            seed: 0,
        }
    }
}

/// Progress after one batch.
#[derive(Debug, Clone, Serialize)]
pub struct BatchProgress {
    /// 1-based.
    pub epoch: usize,
    pub epochs: usize,
    /// 1-based within the epoch.
    pub batch: usize,
    pub batches: usize,
    /// Running mean loss and accuracy of the epoch so far.
    pub loss: f32,
    pub accuracy: f64,
}

/// Statistics of one finished epoch.
#[derive(Debug, Clone, Serialize)]
pub struct EpochStats {
    pub epoch: usize,
    pub loss: f32,
    pub accuracy: f64,
    pub seconds: f64,
}

/// Receives training progress (the library never prints).
pub trait Progress {
    fn batch(&mut self, _p: &BatchProgress) {}
    fn epoch(&mut self, _s: &EpochStats) {}
}

/// A [`Progress`] that ignores everything.
#[derive(Debug, Default)]
pub struct NoProgress;
impl Progress for NoProgress {}

/// Trains `model` on `data`; checks `cancel` between batches and returns
/// [`TrainError::Interrupted`] when it is set.
pub fn fit(
    model: &mut Model,
    data: &Dataset,
    cfg: &TrainConfig,
    progress: &mut dyn Progress,
    cancel: &AtomicBool,
) -> Result<Vec<EpochStats>> {
    check_compat(model, data)?;
    if cfg.batch_size == 0 || cfg.epochs == 0 {
        return Err(TrainError::Config(
            "epochs and batch size must be positive".into(),
        ));
    }
    if data.is_empty() {
        return Err(TrainError::Data {
            path: data.source.clone(),
            message: "no samples".into(),
        });
    }
    let mut opt = AdamW::new(
        model.vars(),
        ParamsAdamW {
            lr: cfg.lr,
            weight_decay: cfg.weight_decay,
            ..Default::default()
        },
    )?;
    let mut rng = Rng::new(cfg.seed.wrapping_add(0x5eed));
    let mut order: Vec<usize> = (0..data.len()).collect();
    let batches = data.len().div_ceil(cfg.batch_size);
    let mut stats = Vec::with_capacity(cfg.epochs);
    for epoch in 1..=cfg.epochs {
        let start = Instant::now();
        rng.shuffle(&mut order);
        let (mut loss_sum, mut correct, mut seen) = (0f64, 0usize, 0usize);
        for (b, chunk) in order.chunks(cfg.batch_size).enumerate() {
            if cancel.load(Ordering::SeqCst) {
                return Err(TrainError::Interrupted);
            }
            let (x, y) = data.batch(chunk)?;
            let out = model.forward(&x, true)?;
            let loss = candle_nn::loss::cross_entropy(&out.logits, &y)?;
            opt.backward_step(&loss)?;
            let l = loss.to_scalar::<f32>()?;
            if !l.is_finite() {
                return Err(TrainError::Diverged { epoch, loss: l });
            }
            let pred: Vec<u32> = out.logits.argmax(1)?.to_vec1()?;
            let truth: Vec<u32> = y.to_vec1()?;
            correct += pred.iter().zip(&truth).filter(|(p, t)| p == t).count();
            loss_sum += f64::from(l) * chunk.len() as f64;
            seen += chunk.len();
            progress.batch(&BatchProgress {
                epoch,
                epochs: cfg.epochs,
                batch: b + 1,
                batches,
                loss: (loss_sum / seen as f64) as f32,
                accuracy: correct as f64 / seen as f64,
            });
        }
        let s = EpochStats {
            epoch,
            loss: (loss_sum / seen as f64) as f32,
            accuracy: correct as f64 / seen as f64,
            seconds: start.elapsed().as_secs_f64(),
        };
        progress.epoch(&s);
        stats.push(s);
    }
    Ok(stats)
}

/// Checks that the data fits the model (sample shape and class count).
pub fn check_compat(model: &Model, data: &Dataset) -> Result<()> {
    if data.sample_shape != model.input_shape {
        return Err(TrainError::InputShape {
            data: data.sample_shape.clone(),
            model: model.input_shape.clone(),
        });
    }
    if data.classes.len() > model.outputs {
        return Err(TrainError::ClassCount {
            data: data.classes.len(),
            model: model.outputs,
        });
    }
    Ok(())
}

/// Classification quality on a labelled dataset.
#[derive(Debug, Clone, Serialize)]
pub struct Evaluation {
    pub samples: usize,
    pub accuracy: f64,
    /// Mean of the per-class recalls over classes present in the data.
    pub macro_recall: f64,
    /// Per class (label order); `None` when the class has no samples.
    pub recall: Vec<Option<f64>>,
    /// `confusion[truth][prediction]`.
    pub confusion: Vec<Vec<usize>>,
    /// Predicted class of every sample, in data order.
    pub predictions: Vec<u32>,
}

/// Runs `model` in inference mode over `data` and scores it.
pub fn evaluate(model: &mut Model, data: &Dataset, batch_size: usize) -> Result<Evaluation> {
    check_compat(model, data)?;
    let k = model.outputs;
    let mut confusion = vec![vec![0usize; k]; k];
    let mut predictions = Vec::with_capacity(data.len());
    let idx: Vec<usize> = (0..data.len()).collect();
    for chunk in idx.chunks(batch_size.max(1)) {
        let (x, y) = data.batch(chunk)?;
        let out = model.forward(&x, false)?;
        let pred: Vec<u32> = out.logits.argmax(1)?.to_vec1()?;
        let truth: Vec<u32> = y.to_vec1()?;
        for (p, t) in pred.iter().zip(&truth) {
            confusion[*t as usize][*p as usize] += 1;
        }
        predictions.extend(pred);
    }
    let correct: usize = (0..k).map(|c| confusion[c][c]).sum();
    let recall: Vec<Option<f64>> = (0..k)
        .map(|c| {
            let n: usize = confusion[c].iter().sum();
            (n > 0).then(|| confusion[c][c] as f64 / n as f64)
        })
        .collect();
    let present: Vec<f64> = recall.iter().flatten().copied().collect();
    Ok(Evaluation {
        samples: data.len(),
        accuracy: if data.is_empty() {
            0.0
        } else {
            correct as f64 / data.len() as f64
        },
        macro_recall: if present.is_empty() {
            0.0
        } else {
            present.iter().sum::<f64>() / present.len() as f64
        },
        recall,
        confusion,
        predictions,
    })
}
