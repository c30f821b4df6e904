//! The QDQ rewrite: `QuantizeLinear` / `DequantizeLinear` pairs on the
//! activations feeding and leaving Conv / Gemm / MatMul, int8 weights behind
//! a `DequantizeLinear`, int32 biases behind a `DequantizeLinear` (scale =
//! input scale x weight scale, zero point 0), as ONNX Runtime's QDQ format
//! does. Names follow ONNX Runtime: `{t}_scale`, `{t}_zero_point`,
//! `{w}_quantized`, `{t}_QuantizeLinear_Output`, `{t}_DequantizeLinear_Output`.

use std::collections::{HashMap, HashSet};

use bridgeml_runtime::OnnxModel;
use serde::{Deserialize, Serialize};
use tract_onnx::pb;

use crate::calibrate::Method;
use crate::{QuantError, Result};

/// Operators whose inputs (and outputs) are quantized.
pub const QUANTIZED_OPS: [&str; 3] = ["Conv", "Gemm", "MatMul"];

const FLOAT: i32 = 1;
const UINT8: i32 = 2;
const INT8: i32 = 3;
const INT32: i32 = 6;

/// Activation integer type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ActType {
    /// uint8, asymmetric (zero point anywhere in 0..=255): ONNX Runtime's default.
    U8,
    /// int8, symmetric (zero point 0, range -127..=127).
    I8,
}

impl std::str::FromStr for ActType {
    type Err = QuantError;
    fn from_str(s: &str) -> Result<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "u8" | "uint8" => Ok(ActType::U8),
            "i8" | "int8" => Ok(ActType::I8),
            _ => Err(QuantError::UnknownActivationType(s.to_string())),
        }
    }
}

impl std::fmt::Display for ActType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ActType::U8 => "u8",
            ActType::I8 => "i8",
        })
    }
}

/// Quantization settings.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct QuantSettings {
    pub method: Method,
    /// Weights quantized per output channel instead of per tensor.
    pub per_channel: bool,
    pub activations: ActType,
}

impl Default for QuantSettings {
    fn default() -> Self {
        QuantSettings {
            method: Method::MinMax,
            per_channel: false,
            activations: ActType::U8,
        }
    }
}

/// Scale and zero point of `[rmin, rmax]` on `[qmin, qmax]`, exactly as
/// ONNX Runtime's `compute_scale_zp` (float64 arithmetic, float32 scale,
/// round half to even).
pub fn scale_zero_point(rmin: f32, rmax: f32, qmin: i32, qmax: i32, symmetric: bool) -> (f32, i32) {
    let mut rmin = rmin.min(0.0);
    let mut rmax = rmax.max(0.0);
    if symmetric {
        let a = rmin.abs().max(rmax.abs());
        rmin = -a;
        rmax = a;
    }
    let dr = f64::from(rmax) - f64::from(rmin);
    let dq = f64::from(qmax) - f64::from(qmin);
    let scale = dr / dq;
    if scale < f64::from(f32::MIN_POSITIVE) {
        return (1.0, 0);
    }
    let zp = if symmetric {
        (f64::from(qmin + qmax) / 2.0).round_ties_even() as i32
    } else {
        (f64::from(qmin) - f64::from(rmin) / scale).round_ties_even() as i32
    };
    (scale as f32, zp.clamp(qmin, qmax))
}

/// One quantized tensor of the report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QuantizedTensor {
    pub name: String,
    /// `activation`, `weight` or `bias`.
    pub kind: String,
    /// ONNX element type of the integer tensor: `uint8`, `int8`, `int32`.
    pub dtype: String,
    /// One scale per tensor, or one per channel.
    pub scale: Vec<f32>,
    pub zero_point: Vec<i32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub axis: Option<i64>,
    /// Calibrated range (activations only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub range: Option<(f32, f32)>,
}

/// What the rewrite will touch, decided from the graph alone.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    /// Activation tensors needing a calibrated range, in graph order.
    pub activations: Vec<String>,
    /// Indices of the Conv / Gemm / MatMul nodes quantized.
    pub nodes: Vec<usize>,
    /// Nodes of a quantizable type left in float, with the reason.
    pub skipped: Vec<(String, String)>,
    /// Activations folded into the quantized node before them, as ONNX
    /// Runtime's quantizer does. The node's output is not quantized by
    /// itself (a Q/DQ pair there would sit between two integer kernels);
    /// the activation's output, which a quantized node consumes, is. The
    /// rewrite then drops the activation where the output's quantization
    /// clamps exactly as it does.
    pub folds: Vec<Fold>,
}

/// A Relu / Clip(0, x) right after a quantized node (`Plan::folds`).
#[derive(Debug, Clone, PartialEq)]
pub struct Fold {
    /// The quantized node.
    pub node: usize,
    /// The activation node.
    pub activation: usize,
    /// The activation's upper bound (`None`: a Relu, or a Clip without one).
    pub upper: Option<f32>,
}

fn attr_i(node: &pb::NodeProto, name: &str, default: i64) -> i64 {
    node.attribute
        .iter()
        .find(|a| a.name == name)
        .map_or(default, |a| a.i)
}

fn attr_f(node: &pb::NodeProto, name: &str, default: f32) -> f32 {
    node.attribute
        .iter()
        .find(|a| a.name == name)
        .map_or(default, |a| a.f)
}

fn node_label(node: &pb::NodeProto, i: usize) -> String {
    if node.name.is_empty() {
        format!("#{i}")
    } else {
        node.name.clone()
    }
}

/// The default-domain opset the model imports.
pub fn default_opset(model: &pb::ModelProto) -> i64 {
    model
        .opset_import
        .iter()
        .filter(|o| o.domain.is_empty() || o.domain == "ai.onnx")
        .map(|o| o.version)
        .max()
        .unwrap_or(0)
}

/// Reads a float32 initializer.
pub fn read_f32(t: &pb::TensorProto) -> Result<Vec<f32>> {
    let bad = |reason: &str| QuantError::BadInitializer {
        name: t.name.clone(),
        reason: reason.to_string(),
    };
    if t.data_type != FLOAT {
        return Err(bad("not float32"));
    }
    if !t.external_data.is_empty() || t.data_location == Some(1) {
        return Err(bad(
            "external data is not supported (save the model with its weights inside)",
        ));
    }
    let n: i64 = t.dims.iter().product();
    let v: Vec<f32> = if !t.raw_data.is_empty() {
        t.raw_data
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect()
    } else {
        t.float_data.clone()
    };
    if v.len() as i64 != n {
        return Err(bad(&format!("{} values for dims {:?}", v.len(), t.dims)));
    }
    Ok(v)
}

/// Checks the graph and decides what to quantize.
pub fn plan(model: &OnnxModel) -> Result<Plan> {
    let opset = default_opset(&model.proto);
    if opset < 13 {
        return Err(QuantError::OldOpset(opset));
    }
    let g = model.graph();
    let inits: HashMap<&str, &pb::TensorProto> =
        g.initializer.iter().map(|t| (t.name.as_str(), t)).collect();
    let outputs: HashSet<&str> = g.output.iter().map(|o| o.name.as_str()).collect();
    for (i, n) in g.node.iter().enumerate() {
        let op = n.op_type.as_str();
        if !(n.domain.is_empty() || n.domain == "ai.onnx") {
            return Err(QuantError::UnsupportedOp {
                op: op.into(),
                node: node_label(n, i),
                domain: n.domain.clone(),
                reason: "only standard ONNX operators are supported".into(),
            });
        }
        let reason = match op {
            "If" | "Loop" | "Scan" => {
                Some("graphs with subgraphs (control flow) are not supported")
            }
            "QuantizeLinear"
            | "DequantizeLinear"
            | "QLinearConv"
            | "QLinearMatMul"
            | "ConvInteger"
            | "MatMulInteger"
            | "DynamicQuantizeLinear" => Some("the model is already quantized"),
            _ => None,
        };
        if let Some(reason) = reason {
            return Err(QuantError::UnsupportedOp {
                op: op.into(),
                node: node_label(n, i),
                domain: String::new(),
                reason: reason.into(),
            });
        }
    }
    let mut activations: Vec<String> = Vec::new();
    let mut seen = HashSet::new();
    let mut add = |t: &str, acts: &mut Vec<String>| {
        if !t.is_empty() && !inits.contains_key(t) && seen.insert(t.to_string()) {
            acts.push(t.to_string());
        }
    };
    let mut nodes = Vec::new();
    let mut skipped = Vec::new();
    let mut consumers: HashMap<&str, Vec<usize>> = HashMap::new();
    for (i, n) in g.node.iter().enumerate() {
        for inp in &n.input {
            consumers.entry(inp.as_str()).or_default().push(i);
        }
    }
    let quantizable = |n: &pb::NodeProto| -> std::result::Result<(), &'static str> {
        let w = n.input.get(1).map(String::as_str).unwrap_or("");
        let Some(wt) = inits.get(w) else {
            return Err("weight is not a constant initializer");
        };
        if wt.data_type != FLOAT {
            return Err("weight is not float32");
        }
        if n.op_type == "MatMul" && wt.dims.len() != 2 {
            return Err("MatMul weight is not 2-D");
        }
        if inits.contains_key(n.input[0].as_str()) {
            return Err("data input is a constant");
        }
        Ok(())
    };
    // Tensors a quantized node reads: quantized in any case.
    let quantized_inputs: HashSet<&str> = g
        .node
        .iter()
        .filter(|n| QUANTIZED_OPS.contains(&n.op_type.as_str()) && quantizable(n).is_ok())
        .map(|n| n.input[0].as_str())
        .collect();
    let mut folds = Vec::new();
    for (i, n) in g.node.iter().enumerate() {
        if !QUANTIZED_OPS.contains(&n.op_type.as_str()) {
            continue;
        }
        if let Err(reason) = quantizable(n) {
            skipped.push((node_label(n, i), reason.into()));
            continue;
        }
        add(&n.input[0], &mut activations);
        if let Some(o) = n.output.first() {
            let fold = match consumers.get(o.as_str()).map(Vec::as_slice) {
                Some(&[a]) if !outputs.contains(o.as_str()) => {
                    let act = &g.node[a];
                    let out = act.output.first().map(String::as_str).unwrap_or("");
                    clip_bounds(act, &inits)
                        .filter(|_| quantized_inputs.contains(out) && !outputs.contains(out))
                        .map(|upper| Fold {
                            node: i,
                            activation: a,
                            upper,
                        })
                }
                _ => None,
            };
            match fold {
                Some(f) => folds.push(f),
                None if !outputs.contains(o.as_str()) => add(o, &mut activations),
                None => {}
            }
        }
        nodes.push(i);
    }
    if nodes.is_empty() {
        return Err(QuantError::NothingToQuantize);
    }
    Ok(Plan {
        activations,
        nodes,
        skipped,
        folds,
    })
}

/// For a Relu, or a Clip whose lower bound is a constant 0: its upper bound
/// (`None`: unbounded). Anything else: `None` outside.
fn clip_bounds(n: &pb::NodeProto, inits: &HashMap<&str, &pb::TensorProto>) -> Option<Option<f32>> {
    let constant = |k: usize| -> Option<Option<f32>> {
        match n.input.get(k).map(String::as_str) {
            None | Some("") => Some(None),
            Some(name) => {
                let v = read_f32(inits.get(name)?).ok()?;
                (v.len() == 1).then(|| Some(v[0]))
            }
        }
    };
    match n.op_type.as_str() {
        "Relu" => Some(None),
        // Opset 11+: bounds are inputs (the plan requires opset 13).
        "Clip" => (constant(1)? == Some(0.0)).then(|| constant(2)).flatten(),
        _ => None,
    }
}

fn scalar_tensor(name: String, data_type: i32, raw: Vec<u8>, dims: Vec<i64>) -> pb::TensorProto {
    pb::TensorProto {
        name,
        data_type,
        dims,
        raw_data: raw,
        ..Default::default()
    }
}

fn int_bytes(v: &[i32], data_type: i32) -> Vec<u8> {
    match data_type {
        UINT8 => v.iter().map(|&x| x as u8).collect(),
        INT8 => v.iter().map(|&x| x as i8 as u8).collect(),
        _ => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
    }
}

fn f32_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

fn node(
    op: &str,
    name: String,
    inputs: Vec<String>,
    output: String,
    axis: Option<i64>,
) -> pb::NodeProto {
    pb::NodeProto {
        op_type: op.into(),
        name,
        input: inputs,
        output: vec![output],
        attribute: axis
            .map(|a| {
                vec![pb::AttributeProto {
                    name: "axis".into(),
                    r#type: 2,
                    i: a,
                    ..Default::default()
                }]
            })
            .unwrap_or_default(),
        ..Default::default()
    }
}

/// Symmetric int8 weight quantization: per tensor, or per channel along `axis`.
fn quantize_weight(w: &[f32], dims: &[i64], axis: Option<usize>) -> (Vec<f32>, Vec<i8>) {
    let dims: Vec<usize> = dims.iter().map(|&d| d as usize).collect();
    let (channels, inner) = match axis {
        Some(a) => (dims[a], dims[a + 1..].iter().product::<usize>()),
        None => (1, w.len()),
    };
    let chan_of = |idx: usize| (idx / inner.max(1)) % channels.max(1);
    let mut lo = vec![f32::INFINITY; channels];
    let mut hi = vec![f32::NEG_INFINITY; channels];
    for (i, &v) in w.iter().enumerate() {
        let c = chan_of(i);
        lo[c] = lo[c].min(v);
        hi[c] = hi[c].max(v);
    }
    let scales: Vec<f32> = lo
        .iter()
        .zip(&hi)
        .map(|(&l, &h)| scale_zero_point(l, h, -127, 127, true).0)
        .collect();
    let q = w
        .iter()
        .enumerate()
        .map(|(i, &v)| {
            (v / scales[chan_of(i)])
                .round_ties_even()
                .clamp(-127.0, 127.0) as i8
        })
        .collect();
    (scales, q)
}

/// The QDQ model and what went into it.
#[derive(Debug, Clone)]
pub struct Rewritten {
    pub model: pb::ModelProto,
    /// The quantized tensors.
    pub tensors: Vec<QuantizedTensor>,
    /// Activations dropped into the node before them (`Plan::folds`).
    pub folded: Vec<String>,
}

/// Rewrites `model` into QDQ with the calibrated `ranges` (per activation
/// tensor).
pub fn rewrite(
    model: &OnnxModel,
    plan: &Plan,
    ranges: &HashMap<String, (f32, f32)>,
    settings: &QuantSettings,
    metadata: &[(String, String)],
) -> Result<Rewritten> {
    let mut proto = model.proto.clone();
    let g = proto.graph.as_mut().expect("checked at load");
    let (qmin, qmax, symmetric, adtype) = match settings.activations {
        ActType::U8 => (0, 255, false, UINT8),
        ActType::I8 => (-127, 127, true, INT8),
    };
    let mut report = Vec::new();
    let mut new_inits: Vec<pb::TensorProto> = Vec::new();
    // Activation tensor -> (scale, zero point, DQ output name).
    let mut act: HashMap<String, (f32, i32, String)> = HashMap::new();
    let mut act_nodes: HashMap<String, Vec<pb::NodeProto>> = HashMap::new();
    for t in &plan.activations {
        let Some(&(lo, hi)) = ranges.get(t) else {
            return Err(QuantError::Invalid(format!(
                "no calibrated range for tensor `{t}`"
            )));
        };
        let (s, zp) = scale_zero_point(lo, hi, qmin, qmax, symmetric);
        let (sn, zn) = (format!("{t}_scale"), format!("{t}_zero_point"));
        new_inits.push(scalar_tensor(sn.clone(), FLOAT, f32_bytes(&[s]), vec![]));
        new_inits.push(scalar_tensor(
            zn.clone(),
            adtype,
            int_bytes(&[zp], adtype),
            vec![],
        ));
        let qo = format!("{t}_QuantizeLinear_Output");
        let dqo = format!("{t}_DequantizeLinear_Output");
        act_nodes.insert(
            t.clone(),
            vec![
                node(
                    "QuantizeLinear",
                    format!("{t}_QuantizeLinear"),
                    vec![t.clone(), sn.clone(), zn.clone()],
                    qo.clone(),
                    None,
                ),
                node(
                    "DequantizeLinear",
                    format!("{t}_DequantizeLinear"),
                    vec![qo, sn, zn],
                    dqo.clone(),
                    None,
                ),
            ],
        );
        act.insert(t.clone(), (s, zp, dqo));
        report.push(QuantizedTensor {
            name: t.clone(),
            kind: "activation".into(),
            dtype: if adtype == UINT8 { "uint8" } else { "int8" }.into(),
            scale: vec![s],
            zero_point: vec![zp],
            axis: None,
            range: Some((lo, hi)),
        });
    }
    let inits: HashMap<String, pb::TensorProto> = g
        .initializer
        .iter()
        .map(|t| (t.name.clone(), t.clone()))
        .collect();
    let mut head: Vec<pb::NodeProto> = Vec::new();
    // Weight name -> (scales, DQ output).
    let mut weights: HashMap<String, (Vec<f32>, String)> = HashMap::new();
    let mut rewired: HashMap<usize, Vec<(usize, String)>> = HashMap::new();
    let mut biases_done: HashSet<String> = HashSet::new();
    for &ni in &plan.nodes {
        let n = &g.node[ni];
        let wname = n.input[1].clone();
        let wt = &inits[&wname];
        let axis: Option<usize> = if settings.per_channel && wt.dims.len() >= 2 {
            match n.op_type.as_str() {
                "Conv" => Some(0),
                "Gemm" => Some(if attr_i(n, "transB", 0) != 0 { 0 } else { 1 }),
                _ => Some(wt.dims.len() - 1),
            }
        } else {
            None
        };
        if !weights.contains_key(&wname) {
            let w = read_f32(wt)?;
            let (scales, q) = quantize_weight(&w, &wt.dims, axis);
            let qn = format!("{wname}_quantized");
            let (sn, zn) = (format!("{wname}_scale"), format!("{wname}_zero_point"));
            let sdims = if axis.is_some() {
                vec![scales.len() as i64]
            } else {
                vec![]
            };
            new_inits.push(scalar_tensor(
                qn.clone(),
                INT8,
                q.iter().map(|&v| v as u8).collect(),
                wt.dims.clone(),
            ));
            new_inits.push(scalar_tensor(
                sn.clone(),
                FLOAT,
                f32_bytes(&scales),
                sdims.clone(),
            ));
            new_inits.push(scalar_tensor(
                zn.clone(),
                INT8,
                vec![0; scales.len()],
                sdims,
            ));
            let dqo = format!("{wname}_DequantizeLinear_Output");
            head.push(node(
                "DequantizeLinear",
                format!("{wname}_DequantizeLinear"),
                vec![qn, sn, zn],
                dqo.clone(),
                axis.map(|a| a as i64),
            ));
            report.push(QuantizedTensor {
                name: wname.clone(),
                kind: "weight".into(),
                dtype: "int8".into(),
                zero_point: vec![0; scales.len()],
                scale: scales.clone(),
                axis: axis.map(|a| a as i64),
                range: None,
            });
            weights.insert(wname.clone(), (scales, dqo));
        }
        let (wscales, wdq) = weights[&wname].clone();
        let mut rw = vec![(1usize, wdq)];
        // Bias: int32, scale = input scale x weight scale, zero point 0.
        if let (Some(b), Some((in_scale, _, _))) = (n.input.get(2), act.get(&n.input[0])) {
            let gemm_ok = n.op_type != "Gemm"
                || (attr_f(n, "alpha", 1.0) == 1.0 && attr_f(n, "beta", 1.0) == 1.0);
            if let Some(bt) = inits.get(b) {
                if gemm_ok
                    && bt.dims.len() == 1
                    && bt.data_type == FLOAT
                    && biases_done.insert(b.clone())
                {
                    let bv = read_f32(bt)?;
                    let bscale: Vec<f32> = if wscales.len() == 1 {
                        vec![in_scale * wscales[0]]
                    } else {
                        wscales.iter().map(|&w| in_scale * w).collect()
                    };
                    if bscale.len() == 1 || bscale.len() == bv.len() {
                        let sc = |i: usize| {
                            let s = bscale[if bscale.len() == 1 { 0 } else { i }];
                            if s == 0.0 {
                                1.0
                            } else {
                                s
                            }
                        };
                        let q: Vec<i32> = bv
                            .iter()
                            .enumerate()
                            .map(|(i, &v)| {
                                (f64::from(v) / f64::from(sc(i)))
                                    .round_ties_even()
                                    .clamp(f64::from(i32::MIN), f64::from(i32::MAX))
                                    as i32
                            })
                            .collect();
                        let bscale: Vec<f32> = (0..bscale.len()).map(sc).collect();
                        let qn = format!("{b}_quantized");
                        let (sn, zn) = (format!("{qn}_scale"), format!("{qn}_zero_point"));
                        let sdims = if bscale.len() > 1 {
                            vec![bscale.len() as i64]
                        } else {
                            vec![]
                        };
                        new_inits.push(scalar_tensor(
                            qn.clone(),
                            INT32,
                            int_bytes(&q, INT32),
                            bt.dims.clone(),
                        ));
                        // As ONNX Runtime: the bias scale is always 1-D.
                        new_inits.push(scalar_tensor(
                            sn.clone(),
                            FLOAT,
                            f32_bytes(&bscale),
                            vec![bscale.len() as i64],
                        ));
                        new_inits.push(scalar_tensor(
                            zn.clone(),
                            INT32,
                            int_bytes(&vec![0; bscale.len()], INT32),
                            sdims,
                        ));
                        let dqo = format!("{b}_DequantizeLinear_Output");
                        let axis = (bscale.len() > 1).then_some(0);
                        head.push(node(
                            "DequantizeLinear",
                            format!("{b}_DequantizeLinear"),
                            vec![qn, sn, zn],
                            dqo.clone(),
                            axis,
                        ));
                        report.push(QuantizedTensor {
                            name: b.clone(),
                            kind: "bias".into(),
                            dtype: "int32".into(),
                            zero_point: vec![0; bscale.len()],
                            scale: bscale,
                            axis,
                            range: None,
                        });
                        rw.push((2, dqo));
                    }
                }
            }
        }
        if let Some(b) = n.input.get(2) {
            if biases_done.contains(b) && !rw.iter().any(|(k, _)| *k == 2) {
                rw.push((2, format!("{b}_DequantizeLinear_Output")));
            }
        }
        rewired.insert(ni, rw);
    }
    // Folded activations: the quantized node writes the activation's output
    // tensor itself, and the activation goes, where quantizing that tensor
    // already clamps as the activation does: its zero point is the lowest
    // integer (so everything below 0 becomes 0) and the upper bound, if
    // any, maps to the highest. Then Q(act(x)) == Q(x) for every x.
    let mut folded: HashSet<usize> = HashSet::new();
    let mut folded_labels = Vec::new();
    let mut writes: HashMap<usize, String> = HashMap::new();
    for f in &plan.folds {
        let a = &g.node[f.activation];
        let Some(t) = a.output.first() else { continue };
        let Some(&(s, zp, _)) = act.get(t) else {
            continue;
        };
        let clamps_above = f
            .upper
            .is_none_or(|m| (m / s).round_ties_even() + zp as f32 >= qmax as f32);
        if zp == qmin && clamps_above {
            folded_labels.push(node_label(a, f.activation));
            folded.insert(f.activation);
            writes.insert(f.node, t.clone());
        }
    }
    // Rebuild the node list in topological order.
    let old_nodes = std::mem::take(&mut g.node);
    let mut out_nodes = head;
    let graph_inputs: Vec<String> = g.input.iter().map(|i| i.name.clone()).collect();
    for gi in &graph_inputs {
        if let Some(ns) = act_nodes.remove(gi) {
            out_nodes.extend(ns);
        }
    }
    for (i, mut n) in old_nodes.into_iter().enumerate() {
        if folded.contains(&i) {
            continue;
        }
        if let Some(t) = writes.get(&i) {
            g.value_info.retain(|v| v.name != n.output[0]);
            n.output[0] = t.clone();
        }
        for inp in n.input.iter_mut() {
            if let Some((_, _, dq)) = act.get(inp.as_str()) {
                *inp = dq.clone();
            }
        }
        if let Some(rw) = rewired.get(&i) {
            for (k, name) in rw {
                n.input[*k] = name.clone();
            }
        }
        let outs = n.output.clone();
        out_nodes.push(n);
        for o in outs {
            if let Some(ns) = act_nodes.remove(&o) {
                out_nodes.extend(ns);
            }
        }
    }
    if let Some(t) = act_nodes.keys().next() {
        return Err(QuantError::Invalid(format!(
            "tensor `{t}` is produced by no node"
        )));
    }
    g.node = out_nodes;
    // Drop float initializers no node reads any more.
    let used: HashSet<String> = g
        .node
        .iter()
        .flat_map(|n| n.input.iter().cloned())
        .collect();
    let outs: HashSet<String> = g.output.iter().map(|o| o.name.clone()).collect();
    let dropped: HashSet<String> = g
        .initializer
        .iter()
        .filter(|t| !used.contains(&t.name) && !outs.contains(&t.name))
        .map(|t| t.name.clone())
        .collect();
    g.initializer.retain(|t| !dropped.contains(&t.name));
    g.input.retain(|i| !dropped.contains(&i.name));
    g.initializer.extend(new_inits);
    if proto.ir_version < 7 {
        proto.ir_version = 7;
    }
    proto
        .metadata_props
        .retain(|p| !p.key.starts_with("bridgeml.quant."));
    for (k, v) in metadata {
        proto.metadata_props.push(pb::StringStringEntryProto {
            key: k.clone(),
            value: v.clone(),
        });
    }
    Ok(Rewritten {
        model: proto,
        tensors: report,
        folded: folded_labels,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scale_zero_point_matches_onnx_runtime() {
        // uint8 asymmetric: [-1, 3] -> scale 4/255, zp round(255/4) = 64.
        let (s, z) = scale_zero_point(-1.0, 3.0, 0, 255, false);
        assert_eq!(s, (4.0f64 / 255.0) as f32);
        assert_eq!(z, 64);
        // The range always includes 0.
        let (s, z) = scale_zero_point(1.0, 2.0, 0, 255, false);
        assert_eq!((s, z), ((2.0f64 / 255.0) as f32, 0));
        // int8 symmetric.
        let (s, z) = scale_zero_point(-0.5, 2.0, -127, 127, true);
        assert_eq!((s, z), ((4.0f64 / 254.0) as f32, 0));
        // Degenerate range.
        assert_eq!(scale_zero_point(0.0, 0.0, 0, 255, false), (1.0, 0));
    }

    #[test]
    fn per_channel_weights() {
        let w = [1.0f32, -0.5, 0.25, -2.0];
        let (s, q) = quantize_weight(&w, &[2, 2], Some(0));
        assert_eq!(s.len(), 2);
        assert_eq!(q, vec![127, -64, 16, -127]);
        let (s, q) = quantize_weight(&w, &[2, 2], None);
        assert_eq!(s.len(), 1);
        assert_eq!(q[3], -127);
        assert_eq!(q[0], 64);
    }
}
