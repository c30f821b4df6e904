//! The tract backend (pure Rust).

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use bridgeml_core::Tensor;
use ndarray::{ArrayD, IxDyn};
use tract_linalg::multithread::{multithread_tract_scope, Executor};
use tract_onnx::prelude::{
    tvec, Datum, Framework, InferenceFact, InferenceModel, InferenceModelExt, IntoRunnable,
    OutletId, TValue, Tensor as TTensor, TypedRunnableModel,
};

use crate::backend::{Backend, BackendKind};
use crate::onnx::OnnxModel;
use crate::{Result, RuntimeError};

/// tract's version, as pinned in `Cargo.toml`.
pub const TRACT_VERSION: &str = "0.23.9";

pub(crate) struct TractBackend {
    /// The plan for any input shape the model accepts (symbolic batch axis).
    plan: Arc<TypedRunnableModel>,
    /// The model before optimization, to specialize per input shape.
    model: InferenceModel,
    /// Plans optimized for one concrete input shape: with the batch axis
    /// symbolic tract keeps generic kernels (MobileNetV2 ran 4.2x slower at
    /// batch 1 than with the shape fixed). `None`: specializing failed, use `plan`.
    by_shape: HashMap<Vec<usize>, Option<Arc<TypedRunnableModel>>>,
    executor: Executor,
    threads: usize,
}

/// Most input shapes a backend keeps specialized plans for.
const MAX_SPECIALIZED_SHAPES: usize = 8;

impl std::fmt::Debug for TractBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TractBackend")
            .field("threads", &self.threads)
            .finish_non_exhaustive()
    }
}

fn err(e: impl std::fmt::Display) -> RuntimeError {
    RuntimeError::backend(BackendKind::Tract, e)
}

impl TractBackend {
    pub(crate) fn load(
        path: &Path,
        onnx: &OnnxModel,
        outputs: &[String],
        threads: usize,
    ) -> Result<Self> {
        let framework = tract_onnx::onnx();
        let mut model = framework.model_for_proto_model(&onnx.proto).map_err(|e| {
            RuntimeError::InvalidModel {
                path: path.to_path_buf(),
                reason: format!("tract cannot load it: {e:#}"),
            }
        })?;
        let mut outlets: Vec<OutletId> = Vec::with_capacity(outputs.len());
        for name in outputs {
            let outlet = model
                .find_outlet_label(name)
                .or_else(|| {
                    model
                        .node_by_name(name)
                        .ok()
                        .map(|n| OutletId::new(n.id, 0))
                })
                .ok_or_else(|| RuntimeError::UnknownTensor {
                    name: name.clone(),
                    available: onnx.node_outputs().join(", "),
                })?;
            outlets.push(outlet);
        }
        model.select_output_outlets(&outlets).map_err(err)?;
        let generic = model.clone();
        let plan = model
            .into_optimized()
            .and_then(|m| m.into_runnable())
            .map_err(|e| RuntimeError::InvalidModel {
                path: path.to_path_buf(),
                reason: format!("tract cannot prepare it: {e:#}"),
            })?;
        let executor = if threads > 1 {
            Executor::multithread(threads)
        } else {
            Executor::SingleThread
        };
        Ok(TractBackend {
            plan,
            model: generic,
            by_shape: HashMap::new(),
            executor,
            threads,
        })
    }

    /// The plan for `input`'s shape: specialized on first use (bounded
    /// cache), the generic plan when specializing fails or the cache is full.
    fn plan_for(&mut self, input: &Tensor) -> Arc<TypedRunnableModel> {
        let shape = input.shape().to_vec();
        if !self.by_shape.contains_key(&shape) {
            if self.by_shape.len() >= MAX_SPECIALIZED_SHAPES {
                return self.plan.clone();
            }
            let dt = match input {
                Tensor::F32(_) => f32::datum_type(),
                Tensor::U8(_) => u8::datum_type(),
            };
            let specialized = self
                .model
                .clone()
                .with_input_fact(0, InferenceFact::dt_shape(dt, shape.clone()))
                .and_then(|m| m.into_optimized())
                .and_then(|m| m.into_runnable())
                .ok();
            self.by_shape.insert(shape.clone(), specialized);
        }
        self.by_shape[&shape]
            .clone()
            .unwrap_or_else(|| self.plan.clone())
    }
}

fn to_tract(t: &Tensor) -> Result<TTensor> {
    match t {
        Tensor::F32(a) => {
            let a = a.as_standard_layout();
            TTensor::from_shape(a.shape(), a.as_slice().expect("standard layout")).map_err(err)
        }
        Tensor::U8(a) => {
            let a = a.as_standard_layout();
            TTensor::from_shape(a.shape(), a.as_slice().expect("standard layout")).map_err(err)
        }
    }
}

fn from_tract(v: &TValue) -> Result<ArrayD<f32>> {
    let t = v.cast_to::<f32>().map_err(err)?;
    let data = t
        .try_as_plain_ram()
        .and_then(|v| v.as_slice::<f32>().map(<[f32]>::to_vec))
        .map_err(err)?;
    ArrayD::from_shape_vec(IxDyn(t.shape()), data).map_err(err)
}

impl Backend for TractBackend {
    fn kind(&self) -> BackendKind {
        BackendKind::Tract
    }

    fn version(&self) -> String {
        TRACT_VERSION.to_string()
    }

    fn threads(&self) -> usize {
        self.threads
    }

    fn run(&mut self, input: &Tensor) -> Result<Vec<ArrayD<f32>>> {
        let plan = self.plan_for(input);
        let input: TValue = to_tract(input)?.into();
        let outs = multithread_tract_scope(self.executor.clone(), || plan.run(tvec!(input)))
            .map_err(err)?;
        outs.iter().map(from_tract).collect()
    }
}
