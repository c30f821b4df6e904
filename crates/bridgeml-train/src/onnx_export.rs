//! Building and writing ONNX models with the prost types of
//! [`tract_onnx::pb`]: small, reusable helpers (tensors, nodes, attributes,
//! value infos, QDQ pairs, atomic writes) shared by `train`, `qat` and
//! post-training quantization.
//!
//! ```
//! use bridgeml_train::onnx_export as ox;
//!
//! let graph = ox::graph(
//!     "g",
//!     vec![ox::node("Relu", "relu0", &["input"], &["logits"], vec![])],
//!     vec![],
//!     vec![ox::value_info_f32("input", &[ox::Dim::param("N"), ox::Dim::Fixed(4)])],
//!     vec![ox::value_info_f32("logits", &[ox::Dim::param("N"), ox::Dim::Fixed(4)])],
//! );
//! let model = ox::model(graph, 13, &[("bridgeml.note", "example")]);
//! let bytes = ox::encode(&model);
//! assert!(!bytes.is_empty());
//! ```

use std::io::Write;
use std::path::Path;

use prost::Message;
use tract_onnx::pb;
use tract_onnx::pb::attribute_proto::AttributeType;
use tract_onnx::pb::tensor_proto::DataType;

use crate::error::{io_err, Result};

pub use tract_onnx::pb::{
    AttributeProto, GraphProto, ModelProto, NodeProto, TensorProto, ValueInfoProto,
};

/// ONNX IR version written (IR 7 is what opset 13 shipped with; ONNX Runtime and tract load it).
pub const IR_VERSION: i64 = 7;
/// Default opset of the models bridgeml writes (per-channel `DequantizeLinear` needs 13).
pub const OPSET: i64 = 13;

/// One dimension of a value info: fixed or symbolic (e.g. the batch axis `N`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Dim {
    Fixed(i64),
    Param(String),
}

impl Dim {
    pub fn param(name: &str) -> Dim {
        Dim::Param(name.to_string())
    }
}

fn raw_tensor(name: &str, dims: &[i64], data_type: DataType, raw: Vec<u8>) -> TensorProto {
    TensorProto {
        name: name.to_string(),
        dims: dims.to_vec(),
        data_type: data_type as i32,
        raw_data: raw,
        ..Default::default()
    }
}

/// A float32 initializer (little-endian `raw_data`).
pub fn tensor_f32(name: &str, dims: &[i64], values: &[f32]) -> TensorProto {
    raw_tensor(
        name,
        dims,
        DataType::Float,
        values.iter().flat_map(|v| v.to_le_bytes()).collect(),
    )
}

/// An int8 initializer.
pub fn tensor_i8(name: &str, dims: &[i64], values: &[i8]) -> TensorProto {
    raw_tensor(
        name,
        dims,
        DataType::Int8,
        values.iter().map(|&v| v as u8).collect(),
    )
}

/// A uint8 initializer.
pub fn tensor_u8(name: &str, dims: &[i64], values: &[u8]) -> TensorProto {
    raw_tensor(name, dims, DataType::Uint8, values.to_vec())
}

/// An int32 initializer (e.g. quantized biases).
pub fn tensor_i32(name: &str, dims: &[i64], values: &[i32]) -> TensorProto {
    raw_tensor(
        name,
        dims,
        DataType::Int32,
        values.iter().flat_map(|v| v.to_le_bytes()).collect(),
    )
}

/// An int64 initializer (e.g. `Reshape` shapes).
pub fn tensor_i64(name: &str, dims: &[i64], values: &[i64]) -> TensorProto {
    raw_tensor(
        name,
        dims,
        DataType::Int64,
        values.iter().flat_map(|v| v.to_le_bytes()).collect(),
    )
}

/// An integer attribute.
pub fn attr_int(name: &str, value: i64) -> AttributeProto {
    AttributeProto {
        name: name.to_string(),
        r#type: AttributeType::Int as i32,
        i: value,
        ..Default::default()
    }
}

/// A list-of-integers attribute.
pub fn attr_ints(name: &str, values: &[i64]) -> AttributeProto {
    AttributeProto {
        name: name.to_string(),
        r#type: AttributeType::Ints as i32,
        ints: values.to_vec(),
        ..Default::default()
    }
}

/// A float attribute.
pub fn attr_float(name: &str, value: f32) -> AttributeProto {
    AttributeProto {
        name: name.to_string(),
        r#type: AttributeType::Float as i32,
        f: value,
        ..Default::default()
    }
}

/// A node of the default (`ai.onnx`) domain.
pub fn node(
    op_type: &str,
    name: &str,
    inputs: &[&str],
    outputs: &[&str],
    attributes: Vec<AttributeProto>,
) -> NodeProto {
    NodeProto {
        op_type: op_type.to_string(),
        name: name.to_string(),
        input: inputs.iter().map(|s| s.to_string()).collect(),
        output: outputs.iter().map(|s| s.to_string()).collect(),
        attribute: attributes,
        ..Default::default()
    }
}

/// A float32 tensor value info with the given shape.
pub fn value_info_f32(name: &str, dims: &[Dim]) -> ValueInfoProto {
    let dim = dims
        .iter()
        .map(|d| pb::tensor_shape_proto::Dimension {
            value: Some(match d {
                Dim::Fixed(v) => pb::tensor_shape_proto::dimension::Value::DimValue(*v),
                Dim::Param(p) => pb::tensor_shape_proto::dimension::Value::DimParam(p.clone()),
            }),
            ..Default::default()
        })
        .collect();
    ValueInfoProto {
        name: name.to_string(),
        r#type: Some(pb::TypeProto {
            value: Some(pb::type_proto::Value::TensorType(pb::type_proto::Tensor {
                elem_type: DataType::Float as i32,
                shape: Some(pb::TensorShapeProto { dim }),
            })),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// A graph from its parts.
pub fn graph(
    name: &str,
    nodes: Vec<NodeProto>,
    initializers: Vec<TensorProto>,
    inputs: Vec<ValueInfoProto>,
    outputs: Vec<ValueInfoProto>,
) -> GraphProto {
    GraphProto {
        name: name.to_string(),
        node: nodes,
        initializer: initializers,
        input: inputs,
        output: outputs,
        ..Default::default()
    }
}

/// A model of the default domain at `opset`, with `metadata_props` in the given order.
/// No timestamps or host data are recorded, so equal inputs give equal bytes.
pub fn model(graph: GraphProto, opset: i64, metadata: &[(&str, &str)]) -> ModelProto {
    ModelProto {
        ir_version: IR_VERSION,
        opset_import: vec![pb::OperatorSetIdProto {
            domain: String::new(),
            version: opset,
        }],
        producer_name: "bridgeml".to_string(),
        producer_version: env!("CARGO_PKG_VERSION").to_string(),
        graph: Some(graph),
        metadata_props: metadata
            .iter()
            .map(|(k, v)| pb::StringStringEntryProto {
                key: k.to_string(),
                value: v.to_string(),
            })
            .collect(),
        ..Default::default()
    }
}

/// Serialized protobuf bytes of a model.
pub fn encode(model: &ModelProto) -> Vec<u8> {
    model.encode_to_vec()
}

/// Decodes a model from protobuf bytes.
pub fn decode(bytes: &[u8]) -> std::result::Result<ModelProto, prost::DecodeError> {
    ModelProto::decode(bytes)
}

/// Appends `QuantizeLinear` + `DequantizeLinear` nodes (and their scale and
/// zero-point initializers) that fake-quantize the float tensor `input`
/// per tensor; returns the name of the dequantized output.
///
/// `zero_point` is written as uint8 when `unsigned`, else int8.
pub fn push_qdq_activation(
    nodes: &mut Vec<NodeProto>,
    initializers: &mut Vec<TensorProto>,
    input: &str,
    prefix: &str,
    scale: f32,
    zero_point: i32,
    unsigned: bool,
) -> String {
    let s = format!("{prefix}_scale");
    let z = format!("{prefix}_zero_point");
    let q = format!("{prefix}_quantized");
    let dq = format!("{prefix}_dequantized");
    initializers.push(tensor_f32(&s, &[], &[scale]));
    if unsigned {
        initializers.push(tensor_u8(&z, &[], &[zero_point.clamp(0, 255) as u8]));
    } else {
        initializers.push(tensor_i8(&z, &[], &[zero_point.clamp(-128, 127) as i8]));
    }
    nodes.push(node(
        "QuantizeLinear",
        &format!("{prefix}_QuantizeLinear"),
        &[input, &s, &z],
        &[&q],
        vec![],
    ));
    nodes.push(node(
        "DequantizeLinear",
        &format!("{prefix}_DequantizeLinear"),
        &[&q, &s, &z],
        &[&dq],
        vec![],
    ));
    dq
}

/// Appends an int8 weight initializer `name_quantized` with per-channel
/// (`axis`) scales and zero zero-points, and the `DequantizeLinear` node that
/// restores it as float; returns the name of the dequantized weight.
pub fn push_dq_weight(
    nodes: &mut Vec<NodeProto>,
    initializers: &mut Vec<TensorProto>,
    name: &str,
    dims: &[i64],
    values: &[i8],
    scales: &[f32],
    axis: i64,
) -> String {
    let q = format!("{name}_quantized");
    let s = format!("{name}_scale");
    let z = format!("{name}_zero_point");
    let out = format!("{name}_dequantized");
    let c = scales.len() as i64;
    initializers.push(tensor_i8(&q, dims, values));
    initializers.push(tensor_f32(&s, &[c], scales));
    initializers.push(tensor_i8(&z, &[c], &vec![0; scales.len()]));
    nodes.push(node(
        "DequantizeLinear",
        &format!("{name}_DequantizeLinear"),
        &[&q, &s, &z],
        &[&out],
        vec![attr_int("axis", axis)],
    ));
    out
}

/// Writes `model` to `path` atomically: the bytes go to a temporary file in
/// the same directory which is renamed over `path` only once complete, so an
/// interrupted run never leaves a half-written model.
pub fn write_model_atomic(model: &ModelProto, path: &Path) -> Result<()> {
    write_bytes_atomic(&encode(model), path)
}

/// Atomically writes bytes (see [`write_model_atomic`]).
pub fn write_bytes_atomic(bytes: &[u8], path: &Path) -> Result<()> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => std::path::PathBuf::from("."),
    };
    let file_name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "model.onnx".into());
    let tmp = dir.join(format!(".{file_name}.{}.partial", std::process::id()));
    let result = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if let Err(e) = result {
        let _ = std::fs::remove_file(&tmp);
        return Err(io_err(path)(e));
    }
    Ok(())
}
