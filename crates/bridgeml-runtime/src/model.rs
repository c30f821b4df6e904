//! [`Model`]: a loaded ONNX model on one backend, with input checks, batching
//! and named intermediate outputs.

use std::path::{Path, PathBuf};

use bridgeml_core::Tensor;
use ndarray::{ArrayD, Axis};

use crate::backend::{Backend, BackendChoice, BackendKind};
use crate::onnx::{ElemType, IoInfo, OnnxModel};
use crate::ort_backend::OrtBackend;
use crate::tract_backend::TractBackend;
use crate::{Result, RuntimeError};

/// How to load a model.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LoadOptions {
    pub backend: BackendChoice,
    /// Intra-op threads; `None` means every available core.
    pub threads: Option<usize>,
    /// Intermediate tensors to expose beside the graph outputs.
    pub extra_outputs: Vec<String>,
}

impl LoadOptions {
    pub fn new(backend: BackendChoice) -> Self {
        LoadOptions {
            backend,
            ..Default::default()
        }
    }

    pub fn threads(mut self, threads: Option<usize>) -> Self {
        self.threads = threads;
        self
    }

    pub fn extra_outputs(mut self, names: Vec<String>) -> Self {
        self.extra_outputs = names;
        self
    }
}

/// Cores available to this process.
pub fn available_cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// The outputs of one run: graph outputs first, then the requested
/// intermediate tensors, each as `float32` with the batch axis first.
#[derive(Debug, Clone, PartialEq)]
pub struct Outputs {
    pub names: Vec<String>,
    pub values: Vec<ArrayD<f32>>,
}

impl Outputs {
    pub fn get(&self, name: &str) -> Option<&ArrayD<f32>> {
        self.names
            .iter()
            .position(|n| n == name)
            .map(|i| &self.values[i])
    }

    /// The first graph output (the logits of a classifier).
    pub fn first(&self) -> &ArrayD<f32> {
        &self.values[0]
    }

    /// Item `i` of output number `output`, flattened, as `f64`.
    pub fn row(&self, output: usize, i: usize) -> Vec<f64> {
        self.values[output]
            .index_axis(Axis(0), i)
            .iter()
            .map(|&v| f64::from(v))
            .collect()
    }

    /// Concatenates runs along the batch axis.
    pub fn concat(parts: Vec<Outputs>) -> Result<Outputs> {
        let mut it = parts.into_iter();
        let Some(first) = it.next() else {
            return Err(RuntimeError::InvalidArgument(
                "no outputs to concatenate".into(),
            ));
        };
        let names = first.names.clone();
        let mut columns: Vec<Vec<ArrayD<f32>>> =
            first.values.into_iter().map(|v| vec![v]).collect();
        for part in it {
            for (col, v) in columns.iter_mut().zip(part.values) {
                col.push(v);
            }
        }
        let values = columns
            .into_iter()
            .map(|col| {
                let views: Vec<_> = col.iter().map(|a| a.view()).collect();
                ndarray::concatenate(Axis(0), &views).map_err(|e| {
                    RuntimeError::InvalidArgument(format!("cannot concatenate outputs: {e}"))
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Outputs { names, values })
    }
}

/// An ONNX model loaded on a backend.
#[derive(Debug)]
pub struct Model {
    path: PathBuf,
    sha256: String,
    onnx: OnnxModel,
    input: IoInfo,
    outputs: Vec<String>,
    extra: Vec<String>,
    backend: Box<dyn Backend>,
}

impl Model {
    /// Loads `path` on the backend `options` selects.
    pub fn load(path: &Path, options: &LoadOptions) -> Result<Model> {
        let onnx = OnnxModel::from_path(path)?;
        let sha256 = bridgeml_core::fingerprint::sha256_file(path)?;
        let inputs = onnx.inputs();
        let input = match inputs.as_slice() {
            [one] => one.clone(),
            [] => {
                return Err(RuntimeError::InvalidModel {
                    path: path.to_path_buf(),
                    reason: "the graph has no input".into(),
                })
            }
            many => {
                return Err(RuntimeError::MultipleInputs {
                    count: many.len(),
                    names: many
                        .iter()
                        .map(|i| i.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", "),
                })
            }
        };
        let graph_outputs: Vec<String> = onnx.outputs().into_iter().map(|o| o.name).collect();
        onnx.check_tensor_names(&options.extra_outputs)?;
        let extra: Vec<String> = options
            .extra_outputs
            .iter()
            .filter(|n| !graph_outputs.contains(n))
            .cloned()
            .collect();
        let mut all = graph_outputs.clone();
        all.extend(extra.iter().cloned());
        let threads = options.threads.unwrap_or_else(available_cores).max(1);
        let backend: Box<dyn Backend> = match options.backend.resolve() {
            BackendKind::Tract => Box::new(TractBackend::load(path, &onnx, &all, threads)?),
            BackendKind::Ort => Box::new(OrtBackend::load(
                path,
                &onnx,
                &input.name,
                &all,
                &extra,
                threads,
            )?),
        };
        Ok(Model {
            path: path.to_path_buf(),
            sha256,
            onnx,
            input,
            outputs: graph_outputs,
            extra,
            backend,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// `sha256:<hex>` of the model file.
    pub fn sha256(&self) -> &str {
        &self.sha256
    }

    pub fn onnx(&self) -> &OnnxModel {
        &self.onnx
    }

    pub fn input(&self) -> &IoInfo {
        &self.input
    }

    /// Names of the graph outputs.
    pub fn output_names(&self) -> &[String] {
        &self.outputs
    }

    pub fn extra_output_names(&self) -> &[String] {
        &self.extra
    }

    pub fn backend(&self) -> BackendKind {
        self.backend.kind()
    }

    pub fn backend_version(&self) -> String {
        self.backend.version()
    }

    pub fn threads(&self) -> usize {
        self.backend.threads()
    }

    /// The shape of one item (the input shape without its batch axis);
    /// `None` entries are dynamic.
    pub fn item_dims(&self) -> Option<Vec<Option<i64>>> {
        self.input
            .dims
            .as_ref()
            .map(|d| d.iter().skip(1).copied().collect())
    }

    fn expected_text(&self) -> String {
        format!(
            "{} {}",
            crate::onnx::elem_type_name(self.input.onnx_type),
            self.input.shape_text()
        )
    }

    /// Checks a batched input against the model's declared input.
    pub fn check_input(&self, input: &Tensor) -> Result<()> {
        let mismatch = || RuntimeError::InputMismatch {
            name: self.input.name.clone(),
            expected: self.expected_text(),
            got: format!("{} {:?}", input.dtype().name(), input.shape()),
        };
        let dtype_ok = match (self.input.elem_type, input) {
            (ElemType::Float32, Tensor::F32(_)) | (ElemType::Uint8, Tensor::U8(_)) => true,
            (ElemType::Other, _) => {
                return Err(RuntimeError::InputMismatch {
                    name: self.input.name.clone(),
                    expected: self.expected_text(),
                    got: format!(
                        "{} (bridgeml feeds float32 or uint8 only)",
                        input.dtype().name()
                    ),
                })
            }
            _ => false,
        };
        if !dtype_ok {
            return Err(mismatch());
        }
        if let Some(dims) = &self.input.dims {
            if dims.len() != input.shape().len() {
                return Err(mismatch());
            }
            for (want, &got) in dims.iter().zip(input.shape()) {
                if let Some(w) = want {
                    if *w as usize != got {
                        return Err(mismatch());
                    }
                }
            }
        }
        if input.shape().first() == Some(&0) {
            return Err(RuntimeError::InvalidArgument("empty batch".into()));
        }
        Ok(())
    }

    /// Runs one batch (the leading axis of `input`).
    pub fn run(&mut self, input: &Tensor) -> Result<Outputs> {
        self.check_input(input)?;
        let values = self.backend.run(input)?;
        let mut names = self.outputs.clone();
        names.extend(self.extra.iter().cloned());
        Ok(Outputs { names, values })
    }

    /// Runs unbatched items (each without the batch axis) in batches of at
    /// most `batch_size`, and concatenates the outputs.
    pub fn run_items(&mut self, items: &[Tensor], batch_size: usize) -> Result<Outputs> {
        if items.is_empty() {
            return Err(RuntimeError::InvalidArgument("no inputs".into()));
        }
        let mut parts = Vec::new();
        for chunk in items.chunks(batch_size.max(1)) {
            let batch = Tensor::stack(chunk)?;
            parts.push(self.run(&batch)?);
        }
        Outputs::concat(parts)
    }
}
