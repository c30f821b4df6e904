//! Loads an FP32 ONNX model within the trainable subset into a [`Model`].
//!
//! The graph must be a chain: every node consumes the previous node's output
//! (plus initializers). Unsupported operators or attributes are reported with
//! the operator and node name.

use std::collections::HashMap;
use std::path::Path;

use candle_core::{Device, Tensor, Var};
use tract_onnx::pb;
use tract_onnx::pb::tensor_proto::DataType;

use crate::error::{io_err, Result, TrainError};
use crate::model::{BatchNorm, Conv2d, Layer, Linear, Model};

#[derive(Debug, Clone)]
struct Const {
    dims: Vec<usize>,
    f32: Option<Vec<f32>>,
    i64: Option<Vec<i64>>,
}

fn const_of(t: &pb::TensorProto) -> Const {
    let dims: Vec<usize> = t.dims.iter().map(|&d| d.max(0) as usize).collect();
    let mut c = Const {
        dims,
        f32: None,
        i64: None,
    };
    if t.data_type == DataType::Float as i32 {
        c.f32 = Some(if !t.raw_data.is_empty() {
            t.raw_data
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect()
        } else {
            t.float_data.clone()
        });
    } else if t.data_type == DataType::Int64 as i32 {
        c.i64 = Some(if !t.raw_data.is_empty() {
            t.raw_data
                .chunks_exact(8)
                .map(|b| i64::from_le_bytes(b.try_into().expect("8 bytes")))
                .collect()
        } else {
            t.int64_data.clone()
        });
    }
    c
}

fn attr<'a>(node: &'a pb::NodeProto, name: &str) -> Option<&'a pb::AttributeProto> {
    node.attribute.iter().find(|a| a.name == name)
}

fn attr_i(node: &pb::NodeProto, name: &str, default: i64) -> i64 {
    attr(node, name).map(|a| a.i).unwrap_or(default)
}

fn attr_is(node: &pb::NodeProto, name: &str) -> Option<Vec<i64>> {
    attr(node, name).map(|a| a.ints.clone())
}

struct Ctx<'a> {
    consts: HashMap<String, Const>,
    node: &'a pb::NodeProto,
}

impl Ctx<'_> {
    fn unsupported(&self, message: impl Into<String>) -> TrainError {
        TrainError::UnsupportedAttribute {
            op: self.node.op_type.clone(),
            node: self.node.name.clone(),
            message: message.into(),
        }
    }

    /// The float constant at input `k` (required).
    fn float_input(&self, k: usize) -> Result<(Vec<usize>, Vec<f32>)> {
        let name = self
            .node
            .input
            .get(k)
            .filter(|s| !s.is_empty())
            .ok_or_else(|| self.unsupported(format!("input {k} is missing")))?;
        let c = self.consts.get(name).ok_or_else(|| {
            self.unsupported(format!("input `{name}` must be a constant initializer"))
        })?;
        let v = c.f32.clone().ok_or_else(|| {
            self.unsupported(format!(
                "initializer `{name}` is not float32 (is the model already quantized?)"
            ))
        })?;
        Ok((c.dims.clone(), v))
    }

    fn has_input(&self, k: usize) -> bool {
        self.node.input.get(k).is_some_and(|s| !s.is_empty())
    }
}

fn var(dims: &[usize], values: Vec<f32>) -> Result<Var> {
    Ok(Var::from_tensor(&Tensor::from_vec(
        values,
        dims,
        &Device::Cpu,
    )?)?)
}

fn pool_params(ctx: &Ctx<'_>) -> Result<((usize, usize), (usize, usize))> {
    let node = ctx.node;
    let k =
        attr_is(node, "kernel_shape").ok_or_else(|| ctx.unsupported("kernel_shape is missing"))?;
    if k.len() != 2 {
        return Err(ctx.unsupported(format!("only 2-D pooling is supported, kernel_shape {k:?}")));
    }
    let s = attr_is(node, "strides").unwrap_or_else(|| vec![1, 1]);
    if attr_is(node, "pads").is_some_and(|p| p.iter().any(|&v| v != 0)) {
        return Err(ctx.unsupported("padded pooling is not supported"));
    }
    if attr_i(node, "ceil_mode", 0) != 0 {
        return Err(ctx.unsupported("ceil_mode = 1 is not supported"));
    }
    if attr_is(node, "dilations").is_some_and(|d| d.iter().any(|&v| v != 1)) {
        return Err(ctx.unsupported("dilated pooling is not supported"));
    }
    if let Some(a) = attr(node, "auto_pad") {
        if !a.s.is_empty() && a.s != b"NOTSET" && a.s != b"VALID" {
            return Err(ctx.unsupported("auto_pad SAME_* is not supported"));
        }
    }
    let kernel = (k[0] as usize, k[1] as usize);
    let stride = (s[0] as usize, s[1] as usize);
    if kernel != stride {
        return Err(ctx.unsupported(format!(
            "pooling with kernel {kernel:?} != stride {stride:?} cannot be trained (candle has no gradient for it)"
        )));
    }
    Ok((kernel, stride))
}

/// Reads an ONNX model file into a trainable [`Model`].
pub fn load_onnx(path: &Path) -> Result<Model> {
    let bytes = std::fs::read(path).map_err(io_err(path))?;
    let proto = crate::onnx_export::decode(&bytes).map_err(|e| TrainError::Model {
        path: path.to_path_buf(),
        message: format!("not a valid ONNX protobuf: {e}"),
    })?;
    from_proto(&proto, path)
}

/// Converts a decoded ONNX model into a trainable [`Model`]; `path` names it in errors.
pub fn from_proto(proto: &pb::ModelProto, path: &Path) -> Result<Model> {
    let model_err = |message: String| TrainError::Model {
        path: path.to_path_buf(),
        message,
    };
    let graph = proto
        .graph
        .as_ref()
        .ok_or_else(|| model_err("no graph".into()))?;
    let mut consts: HashMap<String, Const> = graph
        .initializer
        .iter()
        .map(|t| (t.name.clone(), const_of(t)))
        .collect();
    let data_inputs: Vec<&pb::ValueInfoProto> = graph
        .input
        .iter()
        .filter(|i| !consts.contains_key(&i.name))
        .collect();
    let [input] = data_inputs[..] else {
        return Err(model_err(format!(
            "expected exactly one data input, found {}",
            data_inputs.len()
        )));
    };
    let dims: Vec<Option<i64>> = match input.r#type.as_ref().and_then(|t| t.value.as_ref()) {
        Some(pb::type_proto::Value::TensorType(t)) => {
            if t.elem_type != DataType::Float as i32 {
                return Err(model_err(format!("input `{}` is not float32", input.name)));
            }
            t.shape
                .as_ref()
                .map(|s| {
                    s.dim
                        .iter()
                        .map(|d| match d.value {
                            Some(pb::tensor_shape_proto::dimension::Value::DimValue(v))
                                if v > 0 =>
                            {
                                Some(v)
                            }
                            _ => None,
                        })
                        .collect()
                })
                .unwrap_or_default()
        }
        _ => {
            return Err(model_err(format!(
                "input `{}` has no tensor type",
                input.name
            )))
        }
    };
    if dims.len() < 2 {
        return Err(model_err(format!(
            "input `{}` has rank {}: a batch axis followed by the sample shape is required",
            input.name,
            dims.len()
        )));
    }
    let input_shape: Vec<usize> = dims[1..]
        .iter()
        .map(|d| d.map(|v| v as usize))
        .collect::<Option<Vec<_>>>()
        .ok_or_else(|| {
            model_err(format!(
                "input `{}` must have fixed non-batch dimensions, got {dims:?}",
                input.name
            ))
        })?;
    let [output] = graph.output.as_slice() else {
        return Err(model_err(format!(
            "expected exactly one output, found {}",
            graph.output.len()
        )));
    };

    let mut layers: Vec<Layer> = Vec::new();
    let mut current = input.name.clone();
    let mut shape = input_shape.clone();
    for node in &graph.node {
        if node.op_type == "Constant" {
            if let (Some(out), Some(t)) = (
                node.output.first(),
                attr(node, "value").and_then(|a| a.t.as_ref()),
            ) {
                consts.insert(out.clone(), const_of(t));
                continue;
            }
        }
        if !node.domain.is_empty() && node.domain != "ai.onnx" {
            return Err(TrainError::UnsupportedOp {
                op: format!("{}:{}", node.domain, node.op_type),
                node: node.name.clone(),
            });
        }
        let ctx = Ctx {
            consts: consts.clone(),
            node,
        };
        if node.input.first() != Some(&current) {
            return Err(ctx.unsupported(format!(
                "the graph is not a chain: expected input `{current}` (branches and residual connections are not supported)"
            )));
        }
        if node.output.len() != 1
            && !(node.op_type == "Dropout" || node.op_type == "BatchNormalization")
        {
            return Err(ctx.unsupported("nodes must have exactly one output"));
        }
        let op = node.op_type.as_str();
        let layer = match op {
            "Conv" => {
                let (wd, w) = ctx.float_input(1)?;
                if wd.len() != 4 {
                    return Err(ctx.unsupported("only 2-D convolution is supported"));
                }
                if attr_i(node, "group", 1) != 1 {
                    return Err(ctx.unsupported(
                        "grouped/depthwise convolution (group != 1) is not supported",
                    ));
                }
                if attr_is(node, "dilations").is_some_and(|d| d.iter().any(|&v| v != 1)) {
                    return Err(ctx.unsupported("dilated convolution is not supported"));
                }
                let strides = attr_is(node, "strides").unwrap_or_else(|| vec![1, 1]);
                if strides.len() != 2 || strides[0] != strides[1] {
                    return Err(
                        ctx.unsupported(format!("strides {strides:?} must be equal in both axes"))
                    );
                }
                let pads = attr_is(node, "pads").unwrap_or_else(|| vec![0; 4]);
                if pads.iter().any(|&p| p != pads[0]) {
                    return Err(
                        ctx.unsupported(format!("pads {pads:?} must be symmetric and equal"))
                    );
                }
                if let Some(a) = attr(node, "auto_pad") {
                    if !a.s.is_empty() && a.s != b"NOTSET" && a.s != b"VALID" {
                        return Err(ctx.unsupported(
                            "auto_pad SAME_* is not supported; export with explicit pads",
                        ));
                    }
                }
                let [c, h, w_in] = shape[..] else {
                    return Err(ctx.unsupported(format!(
                        "needs a [N, C, H, W] input, got per-sample {shape:?}"
                    )));
                };
                if wd[1] != c {
                    return Err(
                        ctx.unsupported(format!("weight {wd:?} does not match {c} input channels"))
                    );
                }
                let (stride, padding) = (strides[0] as usize, pads[0] as usize);
                let oh = (h + 2 * padding - wd[2]) / stride + 1;
                let ow = (w_in + 2 * padding - wd[3]) / stride + 1;
                let bias = if ctx.has_input(2) {
                    let (_, b) = ctx.float_input(2)?;
                    Some(var(&[wd[0]], b)?)
                } else {
                    None
                };
                shape = vec![wd[0], oh, ow];
                Layer::Conv(Conv2d {
                    weight: var(&wd, w)?,
                    bias,
                    stride,
                    padding,
                })
            }
            "Gemm" | "MatMul" => {
                let [fan_in] = shape[..] else {
                    return Err(ctx.unsupported(format!(
                        "needs a [N, features] input, got per-sample {shape:?}"
                    )));
                };
                let (wd, w) = ctx.float_input(1)?;
                if wd.len() != 2 {
                    return Err(ctx.unsupported(format!("weight must be 2-D, got {wd:?}")));
                }
                let trans_b = op == "Gemm" && attr_i(node, "transB", 0) != 0;
                if op == "Gemm" {
                    if attr_i(node, "transA", 0) != 0 {
                        return Err(ctx.unsupported("transA = 1 is not supported"));
                    }
                    let alpha = attr(node, "alpha").map(|a| a.f).unwrap_or(1.0);
                    let beta = attr(node, "beta").map(|a| a.f).unwrap_or(1.0);
                    if alpha != 1.0 || (beta != 1.0 && ctx.has_input(2)) {
                        return Err(ctx.unsupported("alpha/beta other than 1 are not supported"));
                    }
                }
                // Store as [out, in].
                let (out, inn, wt) = if trans_b {
                    (wd[0], wd[1], w)
                } else {
                    let (inn, out) = (wd[0], wd[1]);
                    let mut t = vec![0f32; w.len()];
                    for r in 0..inn {
                        for c in 0..out {
                            t[c * inn + r] = w[r * out + c];
                        }
                    }
                    (out, inn, t)
                };
                if inn != fan_in {
                    return Err(
                        ctx.unsupported(format!("weight expects {inn} inputs but gets {fan_in}"))
                    );
                }
                let bias = if op == "Gemm" && ctx.has_input(2) {
                    let (_, b) = ctx.float_input(2)?;
                    if b.len() != out {
                        return Err(
                            ctx.unsupported(format!("bias has {} values, expected {out}", b.len()))
                        );
                    }
                    b
                } else {
                    vec![0.0; out]
                };
                shape = vec![out];
                Layer::Linear(Linear {
                    weight: var(&[out, inn], wt)?,
                    bias: var(&[out], bias)?,
                })
            }
            "Add" => {
                // A constant added to a Conv/Gemm output is its bias.
                let (bd, b) = ctx.float_input(1).map_err(|_| {
                    ctx.unsupported("only adding a constant bias is supported (not a residual Add of two activations)")
                })?;
                let channels = shape.first().copied().unwrap_or(0);
                if b.len() != channels || bd.iter().filter(|&&d| d != 1).count() > 1 {
                    return Err(
                        ctx.unsupported(format!("bias shape {bd:?} is not one value per channel"))
                    );
                }
                match layers.last_mut() {
                    Some(Layer::Linear(l)) if shape.len() == 1 => {
                        let nb =
                            (l.bias.as_tensor() + Tensor::from_vec(b, channels, &Device::Cpu)?)?;
                        l.bias = Var::from_tensor(&nb)?;
                    }
                    Some(Layer::Conv(c)) if shape.len() == 3 => {
                        let add = Tensor::from_vec(b, channels, &Device::Cpu)?;
                        let nb = match &c.bias {
                            Some(old) => (old.as_tensor() + add)?,
                            None => add,
                        };
                        c.bias = Some(Var::from_tensor(&nb)?);
                    }
                    _ => {
                        return Err(ctx.unsupported(
                            "a constant Add must directly follow a Conv, Gemm or MatMul",
                        ))
                    }
                }
                current = node.output[0].clone();
                continue;
            }
            "BatchNormalization" => {
                let channels = shape.first().copied().unwrap_or(0);
                let mut parts = Vec::new();
                for k in 1..5 {
                    let (_, v) = ctx.float_input(k)?;
                    if v.len() != channels {
                        return Err(ctx.unsupported(format!(
                            "parameter {k} has {} values, expected {channels}",
                            v.len()
                        )));
                    }
                    parts.push(v);
                }
                let eps = attr(node, "epsilon")
                    .map(|a| f64::from(a.f))
                    .unwrap_or(1e-5);
                let mut bn = BatchNorm::new(channels, eps, 0.1)?;
                let var_ = parts.pop().expect("4 parts");
                let mean = parts.pop().expect("3 parts");
                let beta = parts.pop().expect("2 parts");
                let gamma = parts.pop().expect("1 part");
                bn.gamma = var(&[channels], gamma)?;
                bn.beta = var(&[channels], beta)?;
                bn.running_mean = Tensor::from_vec(mean, channels, &Device::Cpu)?;
                bn.running_var = Tensor::from_vec(var_, channels, &Device::Cpu)?;
                Layer::BatchNorm(bn)
            }
            "Relu" => Layer::Relu,
            "Dropout" | "Identity" => {
                current = node.output[0].clone();
                continue;
            }
            "MaxPool" | "AveragePool" => {
                let (kernel, stride) = pool_params(&ctx)?;
                let [c, h, w] = shape[..] else {
                    return Err(ctx.unsupported(format!(
                        "needs a [N, C, H, W] input, got per-sample {shape:?}"
                    )));
                };
                shape = vec![
                    c,
                    (h - kernel.0) / stride.0 + 1,
                    (w - kernel.1) / stride.1 + 1,
                ];
                if op == "MaxPool" {
                    Layer::MaxPool { kernel, stride }
                } else {
                    Layer::AvgPool { kernel, stride }
                }
            }
            "GlobalAveragePool" => {
                if shape.len() != 3 {
                    return Err(ctx.unsupported(format!(
                        "needs a [N, C, H, W] input, got per-sample {shape:?}"
                    )));
                }
                shape = vec![shape[0], 1, 1];
                Layer::GlobalAvgPool
            }
            "Flatten" => {
                if attr_i(node, "axis", 1) != 1 {
                    return Err(ctx.unsupported("only axis = 1 is supported"));
                }
                shape = vec![shape.iter().product()];
                Layer::Flatten
            }
            "Reshape" => {
                let flat: usize = shape.iter().product();
                let target = node
                    .input
                    .get(1)
                    .and_then(|n| consts.get(n))
                    .and_then(|c| c.i64.clone())
                    .ok_or_else(|| ctx.unsupported("the target shape must be a constant"))?;
                let ok = target.len() == 2
                    && matches!(target[0], -1..=1)
                    && (target[1] == -1 || target[1] == flat as i64)
                    && !(target[0] == -1 && target[1] == -1);
                if !ok {
                    return Err(ctx.unsupported(format!(
                        "only a reshape to [N, -1] (a flatten) is supported, got {target:?}"
                    )));
                }
                shape = vec![flat];
                Layer::Flatten
            }
            "Softmax" => {
                let axis = attr_i(node, "axis", -1);
                if shape.len() != 1 || !(axis == -1 || axis == 1) {
                    return Err(ctx.unsupported(
                        "only a softmax over the class axis of [N, classes] is supported",
                    ));
                }
                Layer::Softmax
            }
            _ => {
                return Err(TrainError::UnsupportedOp {
                    op: op.to_string(),
                    node: node.name.clone(),
                })
            }
        };
        if matches!(layers.last(), Some(Layer::Softmax)) {
            return Err(ctx.unsupported("nodes after a Softmax are not supported"));
        }
        layers.push(layer);
        current = node.output[0].clone();
    }
    if current != output.name {
        return Err(model_err(format!(
            "the chain ends in `{current}` but the graph output is `{}`",
            output.name
        )));
    }
    if shape.len() != 1 {
        return Err(model_err(format!(
            "the output must be [N, classes], got per-sample {shape:?}"
        )));
    }
    if layers.is_empty() {
        return Err(model_err("the graph has no nodes".into()));
    }
    Ok(Model {
        layers,
        input_shape,
        outputs: shape[0],
        input_name: input.name.clone(),
        output_name: output.name.clone(),
        metadata: proto
            .metadata_props
            .iter()
            .map(|e| (e.key.clone(), e.value.clone()))
            .collect(),
        qat: None,
    })
}
