//! Resource budget of a model: parameters, weight bytes, MACs per inference
//! and an estimate of peak activation memory, from the ONNX graph and
//! tract's shape inference.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;

use serde::{Deserialize, Serialize};
use tract_onnx::pb;
use tract_onnx::prelude::{DatumType, Framework, InferenceFact, InferenceModelExt};
use tract_onnx::tract_hir::infer::Factoid;

use crate::onnx::{elem_size, ElemType, OnnxModel};
use crate::{Result, RuntimeError};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Budget {
    pub model_sha256: String,
    pub batch: usize,
    pub nodes: usize,
    /// Elements of all initializers.
    pub params: u64,
    pub weight_bytes: u64,
    /// Multiply-accumulates of one batch of `batch` items (Conv, ConvTranspose, Gemm, MatMul).
    pub macs: u64,
    /// `macs / batch`.
    pub macs_per_inference: u64,
    pub macs_by_op: BTreeMap<String, u64>,
    /// Largest sum of live intermediate tensors (inputs included, weights
    /// excluded) when nodes run in graph order and each tensor is freed after
    /// its last consumer.
    pub peak_activation_bytes: u64,
    /// Nodes whose output shapes could not be inferred (not counted).
    pub unknown_shapes: Vec<String>,
}

fn tensor_elems(t: &pb::TensorProto) -> u64 {
    t.dims.iter().map(|&d| d.max(0) as u64).product()
}

fn tensor_bytes(t: &pb::TensorProto) -> u64 {
    if !t.raw_data.is_empty() {
        return t.raw_data.len() as u64;
    }
    if let Some(len) = t
        .external_data
        .iter()
        .find(|e| e.key == "length")
        .and_then(|e| e.value.parse::<u64>().ok())
    {
        return len;
    }
    tensor_elems(t) * elem_size(t.data_type)
}

/// Computes the budget of `path` for batches of `batch` items.
pub fn budget(path: &Path, batch: usize) -> Result<Budget> {
    let onnx = OnnxModel::from_path(path)?;
    let sha = bridgeml_core::fingerprint::sha256_file(path)?;
    let invalid = |reason: String| RuntimeError::InvalidModel {
        path: path.to_path_buf(),
        reason,
    };
    let graph = onnx.graph();
    let batch = batch.max(1);

    // Shapes from tract's inference with the batch axis fixed.
    let mut model = tract_onnx::onnx()
        .model_for_proto_model(&onnx.proto)
        .map_err(|e| invalid(format!("tract cannot load it: {e:#}")))?;
    let inputs = onnx.inputs();
    for (ix, info) in inputs.iter().enumerate() {
        let dt = match info.elem_type {
            ElemType::Uint8 => DatumType::U8,
            _ => DatumType::F32,
        };
        if let Some(dims) = &info.dims {
            let mut shape = Vec::with_capacity(dims.len());
            for (i, d) in dims.iter().enumerate() {
                match (i, d) {
                    (0, _) => shape.push(batch),
                    (_, Some(v)) => shape.push(*v as usize),
                    (_, None) => {
                        return Err(RuntimeError::InvalidArgument(format!(
                            "input `{}` has a dynamic non-batch dimension {}; budget needs fixed shapes",
                            info.name,
                            info.shape_text()
                        )))
                    }
                }
            }
            model
                .set_input_fact(ix, InferenceFact::dt_shape(dt, &*shape))
                .map_err(|e| invalid(format!("{e:#}")))?;
        }
    }
    let _ = model.analyse(false);
    let mut shapes: HashMap<String, (Vec<usize>, u64)> = HashMap::new();
    for node in graph.node.iter() {
        for name in node.output.iter().filter(|o| !o.is_empty()) {
            if let Some(outlet) = model.find_outlet_label(name) {
                if let Ok(fact) = model.outlet_fact(outlet) {
                    if let Ok(Some(s)) = fact.shape.as_concrete_finite() {
                        let size = fact
                            .datum_type
                            .concretize()
                            .map_or(4, |dt| dt.size_of() as u64);
                        shapes.insert(name.clone(), (s.to_vec(), size));
                    }
                }
            }
        }
    }
    for info in &inputs {
        if let Some(dims) = &info.dims {
            let mut s: Vec<usize> = dims.iter().map(|d| d.unwrap_or(1) as usize).collect();
            if let Some(first) = s.first_mut() {
                *first = batch;
            }
            let size = if info.elem_type == ElemType::Uint8 {
                1
            } else {
                4
            };
            shapes.insert(info.name.clone(), (s, size));
        }
    }
    let inits: HashMap<&str, &pb::TensorProto> = graph
        .initializer
        .iter()
        .map(|t| (t.name.as_str(), t))
        .collect();
    let shape_of = |name: &str| -> Option<Vec<usize>> {
        if let Some(t) = inits.get(name) {
            return Some(t.dims.iter().map(|&d| d.max(0) as usize).collect());
        }
        shapes.get(name).map(|(s, _)| s.clone())
    };
    let int_attr = |node: &pb::NodeProto, key: &str| {
        node.attribute
            .iter()
            .find(|a| a.name == key)
            .map(|a| a.i)
            .unwrap_or(0)
    };

    let params: u64 = graph.initializer.iter().map(tensor_elems).sum();
    let weight_bytes: u64 = graph.initializer.iter().map(tensor_bytes).sum();
    let mut macs_by_op: BTreeMap<String, u64> = BTreeMap::new();
    let mut unknown = Vec::new();
    for node in &graph.node {
        let out = node.output.first().and_then(|o| shape_of(o));
        let in0 = node.input.first().and_then(|i| shape_of(i));
        let in1 = node.input.get(1).and_then(|i| shape_of(i));
        let macs: Option<u64> = match node.op_type.as_str() {
            "Conv" => match (&out, &in1) {
                (Some(o), Some(w)) => Some(
                    o.iter().map(|&d| d as u64).product::<u64>()
                        * w.iter().skip(1).map(|&d| d as u64).product::<u64>(),
                ),
                _ => None,
            },
            "ConvTranspose" => match (&in0, &in1) {
                (Some(x), Some(w)) => Some(
                    x.iter().map(|&d| d as u64).product::<u64>()
                        * w.iter().skip(1).map(|&d| d as u64).product::<u64>(),
                ),
                _ => None,
            },
            "Gemm" => match (&out, &in0) {
                (Some(o), Some(a)) if a.len() == 2 => {
                    let k = if int_attr(node, "transA") != 0 {
                        a[0]
                    } else {
                        a[1]
                    };
                    Some(o.iter().map(|&d| d as u64).product::<u64>() * k as u64)
                }
                _ => None,
            },
            "MatMul" => match (&out, &in0) {
                (Some(o), Some(a)) if !a.is_empty() => {
                    let k = *a.last().expect("non-empty");
                    Some(o.iter().map(|&d| d as u64).product::<u64>().max(1) * k as u64)
                }
                _ => None,
            },
            _ => Some(0),
        };
        match macs {
            Some(0) => {}
            Some(m) => *macs_by_op.entry(node.op_type.clone()).or_default() += m,
            None => unknown.push(if node.name.is_empty() {
                node.op_type.clone()
            } else {
                node.name.clone()
            }),
        }
        for o in node.output.iter().filter(|o| !o.is_empty()) {
            if !shapes.contains_key(o) && !unknown.iter().any(|u| u == &node.name) {
                unknown.push(if node.name.is_empty() {
                    o.clone()
                } else {
                    node.name.clone()
                });
            }
        }
    }
    unknown.dedup();

    // Peak live activation memory in graph order.
    let bytes_of = |name: &str| -> u64 {
        shapes.get(name).map_or(0, |(s, size)| {
            s.iter().map(|&d| d as u64).product::<u64>() * size
        })
    };
    let outputs: HashSet<&str> = graph.output.iter().map(|o| o.name.as_str()).collect();
    let mut last_use: HashMap<&str, usize> = HashMap::new();
    for (i, node) in graph.node.iter().enumerate() {
        for inp in &node.input {
            last_use.insert(inp.as_str(), i);
        }
    }
    let mut live: HashMap<&str, u64> = inputs
        .iter()
        .map(|i| (i.name.as_str(), bytes_of(&i.name)))
        .collect();
    let mut peak: u64 = live.values().sum();
    for (i, node) in graph.node.iter().enumerate() {
        for o in node.output.iter().filter(|o| !o.is_empty()) {
            live.insert(o.as_str(), bytes_of(o));
        }
        peak = peak.max(live.values().sum());
        live.retain(|name, _| {
            outputs.contains(name) || last_use.get(name).is_some_and(|&last| last > i)
        });
    }
    let macs: u64 = macs_by_op.values().sum();
    Ok(Budget {
        model_sha256: sha,
        batch,
        nodes: graph.node.len(),
        params,
        weight_bytes,
        macs,
        macs_per_inference: macs / batch as u64,
        macs_by_op,
        peak_activation_bytes: peak,
        unknown_shapes: unknown,
    })
}
