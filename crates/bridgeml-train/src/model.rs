//! The trainable model: a chain of layers from the ONNX op subset, held as
//! candle variables, with optional fake quantization for QAT.

use candle_core::{DType, Device, Tensor, Var, D};

use crate::arch::{Arch, LayerSpec};
use crate::error::{Result, TrainError};
use crate::quant::{ActObserver, ActScheme};
use crate::rng::Rng;

/// 2-D convolution: weight `[O, I, kh, kw]`, symmetric zero padding.
#[derive(Debug)]
pub struct Conv2d {
    pub weight: Var,
    pub bias: Option<Var>,
    pub stride: usize,
    pub padding: usize,
}

/// Fully connected layer: weight `[out, in]` (ONNX `Gemm` with `transB = 1`).
#[derive(Debug)]
pub struct Linear {
    pub weight: Var,
    pub bias: Var,
}

/// Batch normalization with running statistics.
#[derive(Debug)]
pub struct BatchNorm {
    pub gamma: Var,
    pub beta: Var,
    pub running_mean: Tensor,
    pub running_var: Tensor,
    pub eps: f64,
    pub momentum: f64,
}

/// One layer of a [`Model`].
#[derive(Debug)]
pub enum Layer {
    Conv(Conv2d),
    BatchNorm(BatchNorm),
    Relu,
    MaxPool {
        kernel: (usize, usize),
        stride: (usize, usize),
    },
    AvgPool {
        kernel: (usize, usize),
        stride: (usize, usize),
    },
    GlobalAvgPool,
    Flatten,
    Linear(Linear),
    Softmax,
}

impl Layer {
    /// The ONNX operator this layer exports to.
    pub fn onnx_op(&self) -> &'static str {
        match self {
            Layer::Conv(_) => "Conv",
            Layer::BatchNorm(_) => "BatchNormalization",
            Layer::Relu => "Relu",
            Layer::MaxPool { .. } => "MaxPool",
            Layer::AvgPool { .. } => "AveragePool",
            Layer::GlobalAvgPool => "GlobalAveragePool",
            Layer::Flatten => "Flatten",
            Layer::Linear(_) => "Gemm",
            Layer::Softmax => "Softmax",
        }
    }

    fn is_weighted(&self) -> bool {
        matches!(self, Layer::Conv(_) | Layer::Linear(_))
    }
}

/// Fake-quantization state of a model in QAT mode.
#[derive(Debug, Clone)]
pub struct QatState {
    /// Per layer: the observer quantizing that layer's *input* activation
    /// (present on every Conv and Gemm).
    pub act: Vec<Option<ActObserver>>,
}

/// What a forward pass returns.
#[derive(Debug)]
pub struct ForwardOut {
    /// The model output (after a final Softmax if the model has one).
    pub output: Tensor,
    /// The values training uses for the loss: the output before a final Softmax.
    pub logits: Tensor,
    /// The input of the last Gemm (the `features` tensor of exported models).
    pub features: Option<Tensor>,
}

/// A trainable chain of layers.
#[derive(Debug)]
pub struct Model {
    pub layers: Vec<Layer>,
    /// Per-sample input shape (without the batch axis).
    pub input_shape: Vec<usize>,
    /// Number of outputs (classes).
    pub outputs: usize,
    /// Name of the graph input and output in exported ONNX.
    pub input_name: String,
    pub output_name: String,
    /// Key/value pairs copied into the exported model's `metadata_props`.
    pub metadata: Vec<(String, String)>,
    /// Present in QAT mode.
    pub qat: Option<QatState>,
}

/// Shape of a tensor flowing through the model, per sample.
fn shape_err(index: usize, op: &str, message: String) -> TrainError {
    TrainError::Layer {
        index,
        op: op.to_string(),
        message,
    }
}

fn pool_out(size: usize, kernel: usize, stride: usize, pad: usize) -> Option<usize> {
    let padded = size + 2 * pad;
    if padded < kernel || stride == 0 {
        None
    } else {
        Some((padded - kernel) / stride + 1)
    }
}

impl Model {
    /// Builds a freshly initialized model from an architecture, with `classes`
    /// outputs, initialized from `seed` (He-uniform weights, zero biases).
    pub fn from_arch(arch: &Arch, classes: usize, seed: u64) -> Result<Model> {
        let mut rng = Rng::new(seed);
        let mut shape = arch.input.clone();
        let mut layers = Vec::with_capacity(arch.layers.len());
        let last_linear = arch
            .layers
            .iter()
            .rposition(|l| matches!(l, LayerSpec::Linear { .. }));
        for (i, spec) in arch.layers.iter().enumerate() {
            let op = spec.op();
            let layer = match *spec {
                LayerSpec::Conv {
                    out_channels,
                    kernel,
                    stride,
                    padding,
                    bias,
                } => {
                    let [c, h, w] = shape[..] else {
                        return Err(shape_err(
                            i,
                            op,
                            format!("needs a [C, H, W] input, got {shape:?}"),
                        ));
                    };
                    if out_channels == 0 || kernel == 0 || stride == 0 {
                        return Err(shape_err(
                            i,
                            op,
                            "out_channels, kernel and stride must be positive".into(),
                        ));
                    }
                    let (Some(oh), Some(ow)) = (
                        pool_out(h, kernel, stride, padding),
                        pool_out(w, kernel, stride, padding),
                    ) else {
                        return Err(shape_err(
                            i,
                            op,
                            format!("kernel {kernel} does not fit input {shape:?}"),
                        ));
                    };
                    let fan_in = c * kernel * kernel;
                    let bound = (6.0 / fan_in as f32).sqrt();
                    let weight = random_var(&mut rng, &[out_channels, c, kernel, kernel], bound)?;
                    let bias = if bias {
                        Some(Var::zeros(out_channels, DType::F32, &Device::Cpu)?)
                    } else {
                        None
                    };
                    shape = vec![out_channels, oh, ow];
                    Layer::Conv(Conv2d {
                        weight,
                        bias,
                        stride,
                        padding,
                    })
                }
                LayerSpec::BatchNorm { eps, momentum } => {
                    if shape.len() != 3 && shape.len() != 1 {
                        return Err(shape_err(
                            i,
                            op,
                            format!("needs a [C, H, W] or [C] input, got {shape:?}"),
                        ));
                    }
                    BatchNorm::new(shape[0], eps, momentum).map(Layer::BatchNorm)?
                }
                LayerSpec::Relu => Layer::Relu,
                LayerSpec::MaxPool { kernel, stride } | LayerSpec::AvgPool { kernel, stride } => {
                    let stride = stride.unwrap_or(kernel);
                    let [c, h, w] = shape[..] else {
                        return Err(shape_err(
                            i,
                            op,
                            format!("needs a [C, H, W] input, got {shape:?}"),
                        ));
                    };
                    if stride != kernel {
                        return Err(shape_err(
                            i,
                            op,
                            "training supports stride == kernel only".into(),
                        ));
                    }
                    let (Some(oh), Some(ow)) = (
                        pool_out(h, kernel, stride, 0),
                        pool_out(w, kernel, stride, 0),
                    ) else {
                        return Err(shape_err(
                            i,
                            op,
                            format!("kernel {kernel} does not fit input {shape:?}"),
                        ));
                    };
                    shape = vec![c, oh, ow];
                    if matches!(spec, LayerSpec::MaxPool { .. }) {
                        Layer::MaxPool {
                            kernel: (kernel, kernel),
                            stride: (stride, stride),
                        }
                    } else {
                        Layer::AvgPool {
                            kernel: (kernel, kernel),
                            stride: (stride, stride),
                        }
                    }
                }
                LayerSpec::GlobalAvgPool => {
                    if shape.len() != 3 {
                        return Err(shape_err(
                            i,
                            op,
                            format!("needs a [C, H, W] input, got {shape:?}"),
                        ));
                    }
                    shape = vec![shape[0], 1, 1];
                    Layer::GlobalAvgPool
                }
                LayerSpec::Flatten => {
                    shape = vec![shape.iter().product()];
                    Layer::Flatten
                }
                LayerSpec::Linear { out_features } => {
                    let [fan_in] = shape[..] else {
                        return Err(shape_err(
                            i,
                            op,
                            format!("needs a flat [features] input, got {shape:?}: add a `flatten` layer before it"),
                        ));
                    };
                    let out = match (out_features, Some(i) == last_linear) {
                        (Some(n), true) if n != classes => {
                            return Err(TrainError::ClassCount {
                                data: classes,
                                model: n,
                            })
                        }
                        (Some(n), _) => n,
                        (None, true) => classes,
                        (None, false) => {
                            return Err(shape_err(
                                i,
                                op,
                                "out_features is required except on the last linear layer".into(),
                            ))
                        }
                    };
                    let bound = if Some(i) == last_linear {
                        1.0 / (fan_in as f32).sqrt()
                    } else {
                        (6.0 / fan_in as f32).sqrt()
                    };
                    let weight = random_var(&mut rng, &[out, fan_in], bound)?;
                    let bias = Var::zeros(out, DType::F32, &Device::Cpu)?;
                    shape = vec![out];
                    Layer::Linear(Linear { weight, bias })
                }
                LayerSpec::Softmax => {
                    if i + 1 != arch.layers.len() {
                        return Err(shape_err(
                            i,
                            op,
                            "softmax is only allowed as the last layer".into(),
                        ));
                    }
                    Layer::Softmax
                }
            };
            layers.push(layer);
        }
        if shape != [classes] {
            return Err(shape_err(
                arch.layers.len() - 1,
                arch.layers[arch.layers.len() - 1].op(),
                format!(
                    "the model must end with [{classes}] outputs (one per class), got {shape:?}"
                ),
            ));
        }
        Ok(Model {
            layers,
            input_shape: arch.input.clone(),
            outputs: classes,
            input_name: "input".into(),
            output_name: "logits".into(),
            metadata: vec![("bridgeml.arch".into(), arch.name.clone())],
            qat: None,
        })
    }

    /// All trainable variables, in layer order.
    pub fn vars(&self) -> Vec<Var> {
        let mut vars = Vec::new();
        for layer in &self.layers {
            match layer {
                Layer::Conv(c) => {
                    vars.push(c.weight.clone());
                    if let Some(b) = &c.bias {
                        vars.push(b.clone());
                    }
                }
                Layer::Linear(l) => {
                    vars.push(l.weight.clone());
                    vars.push(l.bias.clone());
                }
                Layer::BatchNorm(bn) => {
                    vars.push(bn.gamma.clone());
                    vars.push(bn.beta.clone());
                }
                _ => {}
            }
        }
        vars
    }

    /// Number of trainable scalars.
    pub fn parameter_count(&self) -> usize {
        self.vars().iter().map(|v| v.elem_count()).sum()
    }

    /// Index of the last Gemm layer (whose input is the `features` tensor).
    pub fn last_linear(&self) -> Option<usize> {
        self.layers
            .iter()
            .rposition(|l| matches!(l, Layer::Linear(_)))
    }

    /// Runs the model on a batch `[N, ...input_shape]`. In training mode batch
    /// norm uses batch statistics and updates its running statistics, and QAT
    /// observers update their ranges; fake quantization uses the
    /// straight-through estimator `x + (q - x).detach()`.
    pub fn forward(&mut self, x: &Tensor, train: bool) -> Result<ForwardOut> {
        let last_linear = self.last_linear();
        let mut h = x.clone();
        let mut features = None;
        let mut logits = None;
        for (i, layer) in self.layers.iter_mut().enumerate() {
            if let Some(obs) = self.qat.as_mut().and_then(|q| q.act[i].as_mut()) {
                if train {
                    obs.observe(&h)?;
                }
                h = obs.fake_quant(&h, train)?;
            }
            if Some(i) == last_linear {
                features = Some(h.clone());
            }
            let quant_weights = self.qat.is_some();
            h = match layer {
                Layer::Conv(c) => {
                    let w = weight_for(&c.weight, quant_weights, train)?;
                    let y = h.conv2d(&w, c.padding, c.stride, 1, 1)?;
                    match &c.bias {
                        Some(b) => y.broadcast_add(&b.as_tensor().reshape((1, (), 1, 1))?)?,
                        None => y,
                    }
                }
                Layer::BatchNorm(bn) => bn.forward(&h, train)?,
                Layer::Relu => h.relu()?,
                Layer::MaxPool { kernel, stride } => h.max_pool2d_with_stride(*kernel, *stride)?,
                Layer::AvgPool { kernel, stride } => h.avg_pool2d_with_stride(*kernel, *stride)?,
                Layer::GlobalAvgPool => h.mean_keepdim(D::Minus1)?.mean_keepdim(D::Minus2)?,
                Layer::Flatten => h.flatten_from(1)?,
                Layer::Linear(l) => {
                    let w = weight_for(&l.weight, quant_weights, train)?;
                    h.matmul(&w.t()?)?.broadcast_add(l.bias.as_tensor())?
                }
                Layer::Softmax => {
                    logits = Some(h.clone());
                    candle_nn::ops::softmax_last_dim(&h)?
                }
            };
        }
        let logits = logits.unwrap_or_else(|| h.clone());
        Ok(ForwardOut {
            output: h,
            logits,
            features,
        })
    }

    /// Switches the model to QAT mode: folds every BatchNormalization into the
    /// preceding Conv/Gemm, and attaches an activation observer to the input
    /// of every Conv and Gemm. Weights are then fake-quantized symmetric int8
    /// per output channel.
    pub fn prepare_qat(&mut self, scheme: ActScheme, momentum: f32) -> Result<()> {
        if self.qat.is_some() {
            return Ok(());
        }
        self.fold_batch_norms()?;
        let act = self
            .layers
            .iter()
            .map(|l| l.is_weighted().then(|| ActObserver::new(scheme, momentum)))
            .collect();
        self.qat = Some(QatState { act });
        Ok(())
    }

    /// Folds every BatchNormalization into the Conv or Gemm before it.
    pub fn fold_batch_norms(&mut self) -> Result<()> {
        let mut out: Vec<Layer> = Vec::with_capacity(self.layers.len());
        for (i, layer) in std::mem::take(&mut self.layers).into_iter().enumerate() {
            let Layer::BatchNorm(bn) = layer else {
                out.push(layer);
                continue;
            };
            let inv_std =
                (bn.running_var.affine(1.0, bn.eps)?.sqrt()?.recip()? * bn.gamma.as_tensor())?;
            let shift = (bn.beta.as_tensor() - (&bn.running_mean * &inv_std)?)?;
            match out.last_mut() {
                Some(Layer::Conv(c)) => {
                    let w =
                        c.weight
                            .as_tensor()
                            .broadcast_mul(&inv_std.reshape(((), 1, 1, 1))?)?;
                    let b = match &c.bias {
                        Some(b) => ((b.as_tensor() * &inv_std)? + &shift)?,
                        None => shift,
                    };
                    c.weight = Var::from_tensor(&w)?;
                    c.bias = Some(Var::from_tensor(&b)?);
                }
                Some(Layer::Linear(l)) => {
                    let w = l
                        .weight
                        .as_tensor()
                        .broadcast_mul(&inv_std.reshape(((), 1))?)?;
                    let b = ((l.bias.as_tensor() * &inv_std)? + &shift)?;
                    l.weight = Var::from_tensor(&w)?;
                    l.bias = Var::from_tensor(&b)?;
                }
                _ => {
                    return Err(shape_err(
                        i,
                        "BatchNormalization",
                        "only a batch norm directly after a Conv or Gemm can be folded for QAT"
                            .into(),
                    ))
                }
            }
        }
        self.layers = out;
        Ok(())
    }
}

fn weight_for(w: &Var, quantize: bool, train: bool) -> Result<Tensor> {
    if !quantize {
        return Ok(w.as_tensor().clone());
    }
    let q = crate::quant::fake_quant_weight_values(w.as_tensor())?;
    if train {
        let delta = (q - w.as_tensor().detach())?;
        Ok(w.as_tensor().add(&delta)?)
    } else {
        Ok(q)
    }
}

fn random_var(rng: &mut Rng, dims: &[usize], bound: f32) -> Result<Var> {
    let n: usize = dims.iter().product();
    let values: Vec<f32> = (0..n).map(|_| rng.uniform(bound)).collect();
    Ok(Var::from_tensor(&Tensor::from_vec(
        values,
        dims,
        &Device::Cpu,
    )?)?)
}

impl BatchNorm {
    pub fn new(channels: usize, eps: f64, momentum: f64) -> Result<BatchNorm> {
        let dev = Device::Cpu;
        Ok(BatchNorm {
            gamma: Var::ones(channels, DType::F32, &dev)?,
            beta: Var::zeros(channels, DType::F32, &dev)?,
            running_mean: Tensor::zeros(channels, DType::F32, &dev)?,
            running_var: Tensor::ones(channels, DType::F32, &dev)?,
            eps,
            momentum,
        })
    }

    fn forward(&mut self, x: &Tensor, train: bool) -> Result<Tensor> {
        let rank = x.rank();
        let bshape: Vec<usize> = (0..rank)
            .map(|d| if d == 1 { x.dim(1).unwrap_or(1) } else { 1 })
            .collect();
        let reduce: Vec<usize> = (0..rank).filter(|&d| d != 1).collect();
        let (mean, var) = if train {
            let mean = x.mean_keepdim(reduce.as_slice())?;
            let centered = x.broadcast_sub(&mean)?;
            let var = centered.sqr()?.mean_keepdim(reduce.as_slice())?;
            let count: usize = reduce.iter().map(|&d| x.dim(d).unwrap_or(1)).product();
            let m = self.momentum;
            let batch_mean = mean.detach().flatten_all()?;
            let unbiased =
                (var.detach().flatten_all()? * (count as f64 / (count.max(2) - 1) as f64))?;
            self.running_mean = ((&self.running_mean * (1.0 - m))? + (batch_mean * m)?)?;
            self.running_var = ((&self.running_var * (1.0 - m))? + (unbiased * m)?)?;
            (mean, var)
        } else {
            (
                self.running_mean.reshape(bshape.as_slice())?,
                self.running_var.reshape(bshape.as_slice())?,
            )
        };
        let inv = var.affine(1.0, self.eps)?.sqrt()?.recip()?;
        let y = x.broadcast_sub(&mean)?.broadcast_mul(&inv)?;
        let y = y
            .broadcast_mul(&self.gamma.as_tensor().reshape(bshape.as_slice())?)?
            .broadcast_add(&self.beta.as_tensor().reshape(bshape.as_slice())?)?;
        Ok(y)
    }
}
