//! Exports a [`Model`] to ONNX: FP32 (batch norm kept as
//! `BatchNormalization`) or, in QAT mode, QDQ (int8 per-channel weights
//! behind `DequantizeLinear`, activations through `QuantizeLinear` /
//! `DequantizeLinear` with the learned ranges).

use crate::error::Result;
use crate::model::{Layer, Model};
use crate::onnx_export::{self as ox, Dim, ModelProto};
use crate::quant::{quantize_weight, ActScheme};

/// Name of the tensor feeding the last Gemm in exported models.
pub const FEATURES: &str = "features";
/// Metadata key holding the preprocessing spec fingerprint.
pub const META_SPEC: &str = "bridgeml.spec_fingerprint";
/// Metadata key holding the class names (JSON list, in output order).
pub const META_CLASSES: &str = "bridgeml.classes";
/// Metadata key saying how the model was produced (`train`, `qat`).
pub const META_PRODUCED_BY: &str = "bridgeml.produced_by";

fn values(t: &candle_core::Tensor) -> Result<Vec<f32>> {
    Ok(t.flatten_all()?.to_vec1::<f32>()?)
}

fn dims_i64(t: &candle_core::Tensor) -> Vec<i64> {
    t.dims().iter().map(|&d| d as i64).collect()
}

impl Model {
    /// The ONNX model (opset 13) of this model: input `input_name`
    /// `[N, ...input_shape]` with a symbolic batch axis `N`, output
    /// `output_name` `[N, outputs]`, the last Gemm's input named `features`,
    /// and `metadata` as `metadata_props`.
    pub fn to_onnx(&self) -> Result<ModelProto> {
        let mut nodes = Vec::new();
        let mut inits = Vec::new();
        let last_linear = self.last_linear();
        let n = self.layers.len();
        let mut current = self.input_name.clone();
        for (i, layer) in self.layers.iter().enumerate() {
            if let Some(obs) = self.qat.as_ref().and_then(|q| q.act[i].as_ref()) {
                let p = obs.qparams();
                current = ox::push_qdq_activation(
                    &mut nodes,
                    &mut inits,
                    &current,
                    &format!("act{i}"),
                    p.scale,
                    p.zero_point,
                    obs.scheme == ActScheme::U8,
                );
            }
            let out = if i + 1 == n {
                self.output_name.clone()
            } else if Some(i + 1) == last_linear {
                FEATURES.to_string()
            } else {
                format!("layer{i}_{}", layer.onnx_op().to_lowercase())
            };
            let name = format!("layer{i}_{}", layer.onnx_op());
            let weight_name = |w: &candle_core::Tensor,
                               base: &str,
                               nodes: &mut Vec<ox::NodeProto>,
                               inits: &mut Vec<ox::TensorProto>|
             -> Result<String> {
                let vals = values(w)?;
                let dims = dims_i64(w);
                if self.qat.is_some() {
                    let (q, scales) = quantize_weight(&vals, w.dim(0)?);
                    Ok(ox::push_dq_weight(
                        nodes, inits, base, &dims, &q, &scales, 0,
                    ))
                } else {
                    inits.push(ox::tensor_f32(base, &dims, &vals));
                    Ok(base.to_string())
                }
            };
            match layer {
                Layer::Conv(c) => {
                    let w = c.weight.as_tensor();
                    let wname =
                        weight_name(w, &format!("layer{i}.weight"), &mut nodes, &mut inits)?;
                    let mut inputs = vec![current.clone(), wname];
                    if let Some(b) = &c.bias {
                        let bname = format!("layer{i}.bias");
                        inits.push(ox::tensor_f32(
                            &bname,
                            &dims_i64(b.as_tensor()),
                            &values(b.as_tensor())?,
                        ));
                        inputs.push(bname);
                    }
                    let (_, _, kh, kw) = w.dims4()?;
                    let p = c.padding as i64;
                    let s = c.stride as i64;
                    let inputs: Vec<&str> = inputs.iter().map(String::as_str).collect();
                    nodes.push(ox::node(
                        "Conv",
                        &name,
                        &inputs,
                        &[&out],
                        vec![
                            ox::attr_ints("dilations", &[1, 1]),
                            ox::attr_int("group", 1),
                            ox::attr_ints("kernel_shape", &[kh as i64, kw as i64]),
                            ox::attr_ints("pads", &[p, p, p, p]),
                            ox::attr_ints("strides", &[s, s]),
                        ],
                    ));
                }
                Layer::BatchNorm(bn) => {
                    let base = format!("layer{i}");
                    let parts = [
                        ("scale", bn.gamma.as_tensor().clone()),
                        ("bias", bn.beta.as_tensor().clone()),
                        ("mean", bn.running_mean.clone()),
                        ("var", bn.running_var.clone()),
                    ];
                    let mut inputs = vec![current.clone()];
                    for (suffix, t) in parts {
                        let nm = format!("{base}.{suffix}");
                        inits.push(ox::tensor_f32(&nm, &dims_i64(&t), &values(&t)?));
                        inputs.push(nm);
                    }
                    let inputs: Vec<&str> = inputs.iter().map(String::as_str).collect();
                    nodes.push(ox::node(
                        "BatchNormalization",
                        &name,
                        &inputs,
                        &[&out],
                        vec![ox::attr_float("epsilon", bn.eps as f32)],
                    ));
                }
                Layer::Relu => nodes.push(ox::node("Relu", &name, &[&current], &[&out], vec![])),
                Layer::MaxPool { kernel, stride } | Layer::AvgPool { kernel, stride } => nodes
                    .push(ox::node(
                        layer.onnx_op(),
                        &name,
                        &[&current],
                        &[&out],
                        vec![
                            ox::attr_ints("kernel_shape", &[kernel.0 as i64, kernel.1 as i64]),
                            ox::attr_ints("strides", &[stride.0 as i64, stride.1 as i64]),
                        ],
                    )),
                Layer::GlobalAvgPool => nodes.push(ox::node(
                    "GlobalAveragePool",
                    &name,
                    &[&current],
                    &[&out],
                    vec![],
                )),
                Layer::Flatten => nodes.push(ox::node(
                    "Flatten",
                    &name,
                    &[&current],
                    &[&out],
                    vec![ox::attr_int("axis", 1)],
                )),
                Layer::Linear(l) => {
                    let wname = weight_name(
                        l.weight.as_tensor(),
                        &format!("layer{i}.weight"),
                        &mut nodes,
                        &mut inits,
                    )?;
                    let bname = format!("layer{i}.bias");
                    inits.push(ox::tensor_f32(
                        &bname,
                        &dims_i64(l.bias.as_tensor()),
                        &values(l.bias.as_tensor())?,
                    ));
                    nodes.push(ox::node(
                        "Gemm",
                        &name,
                        &[&current, &wname, &bname],
                        &[&out],
                        vec![ox::attr_int("transB", 1)],
                    ));
                }
                Layer::Softmax => nodes.push(ox::node(
                    "Softmax",
                    &name,
                    &[&current],
                    &[&out],
                    vec![ox::attr_int("axis", -1)],
                )),
            }
            current = out;
        }
        let mut in_dims = vec![Dim::param("N")];
        in_dims.extend(self.input_shape.iter().map(|&d| Dim::Fixed(d as i64)));
        let graph = ox::graph(
            "bridgeml",
            nodes,
            inits,
            vec![ox::value_info_f32(&self.input_name, &in_dims)],
            vec![ox::value_info_f32(
                &self.output_name,
                &[Dim::param("N"), Dim::Fixed(self.outputs as i64)],
            )],
        );
        let meta: Vec<(&str, &str)> = self
            .metadata
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        Ok(ox::model(graph, ox::OPSET, &meta))
    }

    /// Sets (or replaces) a metadata entry.
    pub fn set_metadata(&mut self, key: &str, value: &str) {
        match self.metadata.iter_mut().find(|(k, _)| k == key) {
            Some(entry) => entry.1 = value.to_string(),
            None => self.metadata.push((key.to_string(), value.to_string())),
        }
    }

    /// Reads a metadata entry.
    pub fn metadata_value(&self, key: &str) -> Option<&str> {
        self.metadata
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}
