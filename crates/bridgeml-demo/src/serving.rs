//! The served model as the sidecar runs it: encoded bytes through the spec,
//! the runtime, softmax, and the guard. Batched for speed; the numbers are
//! those of `POST /v1/predict` on the same bytes.

use std::path::Path;
use std::time::Instant;

use bridgeml_core::Tensor;
use bridgeml_guard::{Guard, Inputs};
use bridgeml_preprocess::Pipeline;
use bridgeml_runtime::diverge::{argmax, probabilities};
use bridgeml_runtime::{BackendChoice, LoadOptions, Model};
use ndarray::Array2;
use rayon::prelude::*;

use crate::{DemoError, Result};

/// One answer of the served model.
#[derive(Debug, Clone)]
pub struct Answer {
    pub class: usize,
    pub confidence: f64,
    pub ood_score: Option<f64>,
    pub is_ood: Option<bool>,
    /// The `embedding` tensor, flattened (empty when the model has none).
    pub embedding: Vec<f64>,
    /// Content hash of the preprocessed tensor (what the server logs).
    pub input_hash: String,
}

/// A model loaded with its spec and (optionally) its guard.
#[derive(Debug)]
pub struct Served {
    pub model: Model,
    pub pipeline: Pipeline,
    pub guard: Option<Guard>,
    pub embedding: Option<String>,
}

/// `[N, ...]` as `[N, prod(...)]`.
pub fn rows(t: &ndarray::ArrayD<f32>) -> Array2<f32> {
    let n = t.shape().first().copied().unwrap_or(0);
    let d = t.len().checked_div(n).unwrap_or(0);
    Array2::from_shape_vec((n, d), t.iter().copied().collect()).expect("n * d elements")
}

impl Served {
    pub fn load(
        model: &Path,
        pipeline: Pipeline,
        guard: Option<Guard>,
        embedding: Option<&str>,
    ) -> Result<Served> {
        let extra: Vec<String> = embedding.map(str::to_string).into_iter().collect();
        let opts = LoadOptions::new(BackendChoice::Tract).extra_outputs(extra);
        Ok(Served {
            model: Model::load(model, &opts)?,
            pipeline,
            guard,
            embedding: embedding.map(str::to_string),
        })
    }

    /// Preprocesses encoded inputs in parallel (file order kept).
    pub fn preprocess(&self, inputs: &[Vec<u8>]) -> Result<Vec<Tensor>> {
        // The model is not `Sync`; only the pipeline crosses threads.
        let pipeline = &self.pipeline;
        inputs
            .par_iter()
            .enumerate()
            .map(|(i, b)| {
                pipeline
                    .run_bytes(b, &format!("request {i}"))
                    .map_err(DemoError::from)
            })
            .collect()
    }

    /// Logits and embeddings of preprocessed items.
    pub fn run(&mut self, items: &[Tensor]) -> Result<(Array2<f32>, Option<Array2<f32>>)> {
        let out = self.model.run_items(items, 64)?;
        let logits = rows(out.first());
        let emb = match &self.embedding {
            Some(name) => Some(rows(out.get(name).ok_or_else(|| DemoError::Data {
                path: self.model.path().to_path_buf(),
                reason: format!("the model has no tensor named `{name}`"),
            })?)),
            None => None,
        };
        Ok((logits, emb))
    }

    /// Answers for encoded inputs.
    pub fn answer(&mut self, inputs: &[Vec<u8>]) -> Result<Vec<Answer>> {
        let items = self.preprocess(inputs)?;
        self.answer_items(&items)
    }

    /// Answers for preprocessed items.
    pub fn answer_items(&mut self, items: &[Tensor]) -> Result<Vec<Answer>> {
        let (logits, emb) = self.run(items)?;
        self.answers(items, &logits, emb.as_ref())
    }

    /// Answers from outputs [`Served::run`] already computed for `items`.
    pub fn answers(
        &self,
        items: &[Tensor],
        logits: &Array2<f32>,
        emb: Option<&Array2<f32>>,
    ) -> Result<Vec<Answer>> {
        let scores = match &self.guard {
            Some(g) => Some(g.scores(Inputs {
                logits: Some(logits.view()),
                features: emb.map(|e| e.view()),
            })?),
            None => None,
        };
        let threshold = self.guard.as_ref().map(|g| g.file.threshold);
        Ok(logits
            .rows()
            .into_iter()
            .enumerate()
            .map(|(i, r)| {
                let row: Vec<f64> = r.iter().map(|&v| f64::from(v)).collect();
                let p = probabilities(&row);
                let class = argmax(&p).unwrap_or(0);
                let ood_score = scores.as_ref().map(|s| s[i]);
                Answer {
                    class,
                    confidence: p[class],
                    ood_score,
                    is_ood: ood_score.zip(threshold).map(|(s, t)| s > t),
                    embedding: emb
                        .map(|e| e.row(i).iter().map(|&v| f64::from(v)).collect())
                        .unwrap_or_default(),
                    input_hash: items[i].content_hash(),
                }
            })
            .collect())
    }

    /// One request at batch 1, timed (preprocessing + inference + guard).
    pub fn answer_one(&mut self, input: &[u8]) -> Result<(Answer, f64)> {
        let start = Instant::now();
        let item = self.pipeline.run_bytes(input, "request")?;
        let mut a = self.answer_items(std::slice::from_ref(&item))?;
        let ms = start.elapsed().as_secs_f64() * 1000.0;
        Ok((a.remove(0), ms))
    }
}
