//! Reading and editing the ONNX protobuf: input/output descriptions, the
//! names of intermediate tensors, and extra graph outputs.

use std::path::Path;

use prost::Message;
use tract_onnx::pb;

use crate::{Result, RuntimeError};

/// Element types bridgeml feeds to models.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ElemType {
    Float32,
    Uint8,
    /// Any other ONNX type (by its ONNX name); such inputs are refused.
    Other,
}

/// One model input or output as declared in the graph.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct IoInfo {
    pub name: String,
    pub elem_type: ElemType,
    /// ONNX element type code (1 = float, 2 = uint8, ...).
    pub onnx_type: i32,
    /// `None` for a symbolic (dynamic) dimension.
    pub dims: Option<Vec<Option<i64>>>,
}

impl IoInfo {
    /// The shape as text, `?` for dynamic dimensions: `[?, 3, 224, 224]`.
    pub fn shape_text(&self) -> String {
        match &self.dims {
            None => "[unknown rank]".into(),
            Some(d) => format!(
                "[{}]",
                d.iter()
                    .map(|v| v.map_or("?".to_string(), |v| v.to_string()))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        }
    }
}

pub(crate) fn elem_type_name(code: i32) -> &'static str {
    match code {
        1 => "float32",
        2 => "uint8",
        3 => "int8",
        4 => "uint16",
        5 => "int16",
        6 => "int32",
        7 => "int64",
        8 => "string",
        9 => "bool",
        10 => "float16",
        11 => "float64",
        12 => "uint32",
        13 => "uint64",
        16 => "bfloat16",
        _ => "unknown",
    }
}

/// Size in bytes of one element of an ONNX element type (0 when variable).
pub(crate) fn elem_size(code: i32) -> u64 {
    match code {
        2 | 3 | 9 => 1,
        4 | 5 | 10 | 16 => 2,
        1 | 6 | 12 => 4,
        7 | 11 | 13 => 8,
        _ => 0,
    }
}

/// A parsed ONNX model.
#[derive(Debug, Clone)]
pub struct OnnxModel {
    pub proto: pb::ModelProto,
}

impl OnnxModel {
    pub fn from_path(path: &Path) -> Result<Self> {
        let bytes = std::fs::read(path).map_err(|e| RuntimeError::io(path, e))?;
        Self::from_bytes(&bytes).map_err(|reason| RuntimeError::InvalidModel {
            path: path.to_path_buf(),
            reason,
        })
    }

    pub fn from_bytes(bytes: &[u8]) -> std::result::Result<Self, String> {
        let proto = pb::ModelProto::decode(bytes).map_err(|e| format!("protobuf: {e}"))?;
        match &proto.graph {
            None => Err("the file has no graph".into()),
            Some(g) if g.node.is_empty() && g.output.is_empty() => Err("the graph is empty".into()),
            Some(_) => Ok(OnnxModel { proto }),
        }
    }

    pub fn graph(&self) -> &pb::GraphProto {
        self.proto.graph.as_ref().expect("checked at load")
    }

    fn initializer_names(&self) -> std::collections::HashSet<&str> {
        self.graph()
            .initializer
            .iter()
            .map(|t| t.name.as_str())
            .collect()
    }

    /// Graph inputs that are not initializers.
    pub fn inputs(&self) -> Vec<IoInfo> {
        let inits = self.initializer_names();
        self.graph()
            .input
            .iter()
            .filter(|v| !inits.contains(v.name.as_str()))
            .map(io_info)
            .collect()
    }

    pub fn outputs(&self) -> Vec<IoInfo> {
        self.graph().output.iter().map(io_info).collect()
    }

    /// Every tensor produced by a node, in graph order (graph outputs included).
    pub fn node_outputs(&self) -> Vec<String> {
        self.graph()
            .node
            .iter()
            .flat_map(|n| n.output.iter().filter(|o| !o.is_empty()).cloned())
            .collect()
    }

    /// Tensors produced by nodes that are not graph outputs.
    pub fn intermediate_names(&self) -> Vec<String> {
        let outs: std::collections::HashSet<String> =
            self.graph().output.iter().map(|o| o.name.clone()).collect();
        self.node_outputs()
            .into_iter()
            .filter(|n| !outs.contains(n))
            .collect()
    }

    /// Checks that every name is a tensor some node produces.
    pub fn check_tensor_names(&self, names: &[String]) -> Result<()> {
        let known = self.node_outputs();
        for n in names {
            if !known.iter().any(|k| k == n) {
                let sample: Vec<&str> = known.iter().take(12).map(String::as_str).collect();
                return Err(RuntimeError::UnknownTensor {
                    name: n.clone(),
                    available: sample.join(", "),
                });
            }
        }
        Ok(())
    }

    /// A copy of the model whose graph also outputs `extra` (names of
    /// intermediate tensors), serialized; the value infos carry only names,
    /// which ONNX Runtime accepts for outputs.
    pub fn with_extra_outputs(&self, extra: &[String]) -> Vec<u8> {
        let mut proto = self.proto.clone();
        let graph = proto.graph.as_mut().expect("checked at load");
        for name in extra {
            if !graph.output.iter().any(|o| &o.name == name) {
                graph.output.push(pb::ValueInfoProto {
                    name: name.clone(),
                    ..Default::default()
                });
            }
        }
        proto.encode_to_vec()
    }
}

fn io_info(v: &pb::ValueInfoProto) -> IoInfo {
    use pb::tensor_shape_proto::dimension::Value as D;
    use pb::type_proto::Value as T;
    let (code, dims) = match v.r#type.as_ref().and_then(|t| t.value.as_ref()) {
        Some(T::TensorType(t)) => (
            t.elem_type,
            t.shape.as_ref().map(|s| {
                s.dim
                    .iter()
                    .map(|d| match &d.value {
                        Some(D::DimValue(v)) if *v > 0 => Some(*v),
                        _ => None,
                    })
                    .collect()
            }),
        ),
        _ => (0, None),
    };
    IoInfo {
        name: v.name.clone(),
        elem_type: match code {
            1 => ElemType::Float32,
            2 => ElemType::Uint8,
            _ => ElemType::Other,
        },
        onnx_type: code,
        dims,
    }
}
