//! Quantizes the committed tiny CNN and checks the QDQ model against FP32
//! (both backends) and against ONNX Runtime's `quantize_static` reference
//! made by `scripts/fixtures/make_quant_fixtures.py` with the same settings.
//!
//! Tolerances (stated in docs/QUANTIZATION.md):
//! * minmax: scales, zero points, int8 weights and int32 biases identical to
//!   ONNX Runtime (bit for bit);
//! * percentile (ONNX Runtime semantics: P-th percentile of |x|, clamped to [min, max]): activation scales within 1% relative (ONNX Runtime reads a 2048-bin histogram of the values, bridgeml re-bins the runtime collector's 8192-bin one)
//!   (ONNX Runtime takes a 2048-bin histogram edge, bridgeml an interpolated
//!   percentile), weights identical;
//! * entropy: thresholds within 2% of the range of ONNX Runtime's own
//!   calibrator run with the same 2048 / 128 bins;
//! * logits: within 0.1 of FP32, and within 0.1 of ONNX Runtime's QDQ model
//!   (which also quantizes the logits; bridgeml leaves graph outputs in float).

use std::collections::HashMap;
use std::path::PathBuf;

use bridgeml_core::Tensor;
use bridgeml_quant::calibrate::Method;
use bridgeml_quant::{quantize, ActType, QuantError, QuantSettings, QuantizeOptions};
use bridgeml_runtime::{ort_available, BackendChoice, LoadOptions, Model, OnnxModel};
use prost::Message;
use tract_onnx::pb;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures")
}

fn calib() -> Vec<Tensor> {
    Tensor::read_npy(&root().join("quant/calib.npy"))
        .unwrap()
        .unstack()
}

fn options(method: Method, per_channel: bool, activations: ActType) -> QuantizeOptions {
    QuantizeOptions {
        settings: QuantSettings {
            method,
            per_channel,
            activations,
        },
        backend: BackendChoice::Tract,
        ..QuantizeOptions::default()
    }
}

/// name -> (data type, dims, raw values as f64)
fn inits(m: &pb::ModelProto) -> HashMap<String, (i32, Vec<i64>, Vec<f64>)> {
    m.graph
        .as_ref()
        .unwrap()
        .initializer
        .iter()
        .map(|t| {
            let v: Vec<f64> = if !t.raw_data.is_empty() {
                match t.data_type {
                    1 => t
                        .raw_data
                        .chunks(4)
                        .map(|c| f64::from(f32::from_le_bytes(c.try_into().unwrap())))
                        .collect(),
                    2 => t.raw_data.iter().map(|&b| f64::from(b)).collect(),
                    3 => t.raw_data.iter().map(|&b| f64::from(b as i8)).collect(),
                    6 => t
                        .raw_data
                        .chunks(4)
                        .map(|c| f64::from(i32::from_le_bytes(c.try_into().unwrap())))
                        .collect(),
                    _ => vec![],
                }
            } else if !t.float_data.is_empty() {
                t.float_data.iter().map(|&v| f64::from(v)).collect()
            } else {
                t.int32_data.iter().map(|&v| f64::from(v)).collect()
            };
            (t.name.clone(), (t.data_type, t.dims.clone(), v))
        })
        .collect()
}

fn run(path: &std::path::Path, backend: BackendChoice) -> ndarray::ArrayD<f32> {
    let x = Tensor::read_npy(&root().join("runtime/inputs.npy")).unwrap();
    let mut m = Model::load(path, &LoadOptions::new(backend)).unwrap();
    m.run(&x).unwrap().first().clone()
}

fn max_abs(a: &ndarray::ArrayD<f32>, b: &ndarray::ArrayD<f32>) -> f32 {
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

fn quantized(
    method: Method,
    pc: bool,
    act: ActType,
) -> (tempfile::TempDir, PathBuf, pb::ModelProto) {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("q.onnx");
    let (bytes, report) = quantize(
        &root().join("runtime/tiny_cnn.onnx"),
        &calib(),
        &options(method, pc, act),
    )
    .unwrap();
    assert!(report.tensors.iter().any(|t| t.kind == "bias"));
    std::fs::write(&out, &bytes).unwrap();
    (dir, out, pb::ModelProto::decode(bytes.as_slice()).unwrap())
}

#[test]
fn matches_onnx_runtime_quantize_static() {
    let fp32 = Tensor::read_npy(&root().join("runtime/ref_logits.npy"))
        .unwrap()
        .to_f32();
    let cases = [
        ("minmax", Method::MinMax, false, ActType::U8, 0.0f64),
        ("minmax_pc", Method::MinMax, true, ActType::U8, 0.0),
        ("minmax_i8", Method::MinMax, false, ActType::I8, 0.0),
        (
            "percentile",
            Method::Percentile(99.9),
            false,
            ActType::U8,
            0.01,
        ),
        (
            "percentile_pc",
            Method::Percentile(99.9),
            true,
            ActType::U8,
            0.01,
        ),
    ];
    for (name, method, pc, act, tol) in cases {
        let (_d, path, ours) = quantized(method, pc, act);
        let ort_path = root().join(format!("quant/ort_{name}.onnx"));
        let theirs = pb::ModelProto::decode(std::fs::read(&ort_path).unwrap().as_slice()).unwrap();
        let (a, b) = (inits(&ours), inits(&theirs));
        let mut compared = 0;
        for (k, (dt, dims, v)) in &a {
            let Some((dt2, dims2, v2)) = b.get(k) else {
                continue;
            };
            assert_eq!((dt, dims), (dt2, dims2), "{name}: {k}");
            let weight = k.contains("weight");
            for (x, y) in v.iter().zip(v2) {
                if weight {
                    // int8 weights and their scales: bit for bit.
                    assert_eq!(x, y, "{name}: {k}");
                } else if k.ends_with("_zero_point") {
                    assert!(
                        (x - y).abs() <= if tol == 0.0 { 1.0 } else { 3.0 },
                        "{name}: {k}: {x} vs {y}"
                    );
                } else if *dt == 6 {
                    // int32 bias values follow the activation scale.
                    assert!(
                        (x - y).abs() <= (tol.max(1e-5) * y.abs()).max(1.0),
                        "{name}: {k}: {x} vs {y}"
                    );
                } else {
                    // Activation (and bias) scales: float-rounding close for minmax
                    // (tract and ORT sum GlobalAveragePool in different orders), else `tol`.
                    let rel = (x - y).abs() / y.abs().max(1e-12);
                    assert!(
                        rel <= tol.max(1e-6) * 2.0,
                        "{name}: {k}: {x} vs {y} (rel {rel:e})"
                    );
                }
            }
            compared += 1;
        }
        // input, conv1, features (scale+zp) + 2 weights x3 + 2 biases x3.
        assert!(
            compared >= 18,
            "{name}: only {compared} shared initializers"
        );
        let ours_y = run(&path, BackendChoice::Tract);
        let theirs_y = run(&ort_path, BackendChoice::Tract);
        assert!(
            max_abs(&ours_y, &fp32) < 0.1,
            "{name}: vs fp32 {}",
            max_abs(&ours_y, &fp32)
        );
        assert!(
            max_abs(&ours_y, &theirs_y) < 0.1,
            "{name}: vs ORT {}",
            max_abs(&ours_y, &theirs_y)
        );
    }
}

#[test]
fn entropy_matches_onnx_runtime_calibrator() {
    let (_d, _p, ours) = quantized(Method::Entropy, false, ActType::U8);
    let _ = ours;
    let (_, report) = quantize(
        &root().join("runtime/tiny_cnn.onnx"),
        &calib(),
        &options(Method::Entropy, false, ActType::U8),
    )
    .unwrap();
    let refs: HashMap<String, (f64, f64)> = serde_json::from_str(
        &std::fs::read_to_string(root().join("quant/ort_entropy2048_ranges.json")).unwrap(),
    )
    .unwrap();
    for t in report.tensors.iter().filter(|t| t.kind == "activation") {
        let (lo, hi) = t.range.unwrap();
        let (rlo, rhi) = refs[&t.name];
        let width = (rhi - rlo).max(1e-6);
        assert!(
            (f64::from(lo) - rlo).abs() <= 0.02 * width,
            "{}: lo {lo} vs {rlo}",
            t.name
        );
        assert!(
            (f64::from(hi) - rhi).abs() <= 0.02 * width,
            "{}: hi {hi} vs {rhi}",
            t.name
        );
    }
}

#[test]
fn qdq_model_runs_on_both_backends_close_to_fp32() {
    let fp32 = Tensor::read_npy(&root().join("runtime/ref_logits.npy"))
        .unwrap()
        .to_f32();
    for (method, pc) in [
        (Method::MinMax, true),
        (Method::Entropy, false),
        (Method::Percentile(99.99), true),
    ] {
        let (_d, path, proto) = quantized(method, pc, ActType::U8);
        let ops: std::collections::BTreeSet<_> = proto
            .graph
            .as_ref()
            .unwrap()
            .node
            .iter()
            .map(|n| n.op_type.clone())
            .collect();
        assert!(ops.contains("QuantizeLinear") && ops.contains("DequantizeLinear"));
        let meta: HashMap<_, _> = proto
            .metadata_props
            .iter()
            .map(|p| (p.key.as_str(), p.value.as_str()))
            .collect();
        assert_eq!(meta["bridgeml.quant.method"], method.to_string());
        assert!(meta["bridgeml.quant.source_sha256"].starts_with("sha256:"));
        let y = run(&path, BackendChoice::Tract);
        assert!(
            max_abs(&y, &fp32) < 0.1,
            "{method} tract {}",
            max_abs(&y, &fp32)
        );
        if ort_available() {
            let y2 = run(&path, BackendChoice::Ort);
            assert!(
                max_abs(&y2, &fp32) < 0.1,
                "{method} ort {}",
                max_abs(&y2, &fp32)
            );
            assert!(
                max_abs(&y2, &y) < 0.05,
                "{method} ort vs tract {}",
                max_abs(&y2, &y)
            );
        } else {
            eprintln!("ONNX Runtime not found: ort half of the check skipped");
        }
    }
}

fn edited(f: impl FnOnce(&mut pb::ModelProto)) -> (tempfile::TempDir, PathBuf) {
    let src = OnnxModel::from_path(&root().join("runtime/tiny_cnn.onnx")).unwrap();
    let mut p = src.proto.clone();
    f(&mut p);
    let d = tempfile::tempdir().unwrap();
    let path = d.path().join("m.onnx");
    std::fs::write(&path, p.encode_to_vec()).unwrap();
    (d, path)
}

#[test]
fn bad_inputs_are_clear_errors() {
    let model = root().join("runtime/tiny_cnn.onnx");
    let o = options(Method::MinMax, false, ActType::U8);
    let e = quantize(&model, &[], &o).unwrap_err();
    assert!(matches!(e, QuantError::EmptyCalibration(_)), "{e}");
    let e = quantize(&model, &calib()[..3], &o).unwrap_err();
    assert!(e.to_string().contains("at least 8"), "{e}");
    let (_d, p) = edited(|m| m.graph.as_mut().unwrap().node[1].domain = "com.vendor".into());
    let e = quantize(&p, &calib(), &o).unwrap_err().to_string();
    assert!(
        e.contains("Relu") && e.contains("relu1") && e.contains("still work"),
        "{e}"
    );
    let (_d, p) = edited(|m| m.opset_import[0].version = 11);
    assert!(quantize(&p, &calib(), &o)
        .unwrap_err()
        .to_string()
        .contains("opset 11"));
    let (_d, p) = edited(|m| {
        use pb::type_proto::Value;
        let g = m.graph.as_mut().unwrap();
        if let Some(Value::TensorType(t)) =
            g.input[0].r#type.as_mut().and_then(|t| t.value.as_mut())
        {
            t.shape.as_mut().unwrap().dim.remove(0);
        }
    });
    let e = quantize(&p, &calib(), &o).unwrap_err();
    assert!(matches!(e, QuantError::NoBatchAxis { .. }), "{e}");
    // Quantizing a QDQ model again is refused, naming the node.
    let (_d, q, _) = quantized(Method::MinMax, false, ActType::U8);
    let e = quantize(&q, &calib(), &o).unwrap_err().to_string();
    assert!(e.contains("already quantized"), "{e}");
}

fn node(op: &str, inputs: &[&str], output: &str) -> pb::NodeProto {
    pb::NodeProto {
        op_type: op.into(),
        name: output.into(),
        input: inputs.iter().map(|s| s.to_string()).collect(),
        output: vec![output.into()],
        ..Default::default()
    }
}

fn float_init(name: &str, dims: &[i64], values: &[f32]) -> pb::TensorProto {
    pb::TensorProto {
        name: name.into(),
        data_type: 1,
        dims: dims.to_vec(),
        float_data: values.to_vec(),
        ..Default::default()
    }
}

/// The tiny CNN with a 1x1 convolution between its Relu and the pooling,
/// so that the Relu's output feeds a quantized node; `activation` replaces
/// the Relu (`Relu`, or `Clip` with bounds 0 and 0.5).
fn with_second_conv(activation: &str) -> (tempfile::TempDir, PathBuf) {
    edited(|m| {
        let g = m.graph.as_mut().unwrap();
        // A fixed, mixed-sign 8 -> 8 mixing matrix.
        let w: Vec<f32> = (0..64)
            .map(|i| ((i * 37 % 17) as f32 - 8.0) / 16.0)
            .collect();
        g.initializer
            .push(float_init("conv2.weight", &[8, 8, 1, 1], &w));
        g.initializer.push(float_init(
            "conv2.bias",
            &[8],
            &[0.1, -0.2, 0.0, 0.3, -0.1, 0.2, 0.0, -0.3],
        ));
        if activation == "Clip" {
            g.initializer.push(float_init("lo", &[], &[0.0]));
            g.initializer.push(float_init("hi", &[], &[0.5]));
            g.node[1] = node("Clip", &["conv1", "lo", "hi"], "relu1");
        }
        g.node.insert(
            2,
            node("Conv", &["relu1", "conv2.weight", "conv2.bias"], "conv2"),
        );
        g.node[3].input[0] = "conv2".into();
    })
}

fn quantize_path(path: &std::path::Path, act: ActType) -> pb::ModelProto {
    let (bytes, report) = quantize(path, &calib(), &options(Method::MinMax, false, act)).unwrap();
    let q = pb::ModelProto::decode(bytes.as_slice()).unwrap();
    // The report names exactly the activations that left the graph.
    let left = |m: &pb::ModelProto| {
        m.graph
            .as_ref()
            .unwrap()
            .node
            .iter()
            .filter(|n| n.op_type == "Relu" || n.op_type == "Clip")
            .count()
    };
    let before = OnnxModel::from_path(path).unwrap().proto;
    assert_eq!(
        report.folded.len(),
        left(&before) - left(&q),
        "{:?}",
        report.folded
    );
    q
}

fn run_proto(m: &pb::ModelProto) -> ndarray::ArrayD<f32> {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("m.onnx");
    std::fs::write(&p, m.encode_to_vec()).unwrap();
    run(&p, BackendChoice::Tract)
}

#[test]
fn an_activation_before_a_quantized_node_is_folded_exactly() {
    for activation in ["Relu", "Clip"] {
        let (_d, path) = with_second_conv(activation);
        let q = quantize_path(&path, ActType::U8);
        let g = q.graph.as_ref().unwrap();
        let ops: Vec<&str> = g.node.iter().map(|n| n.op_type.as_str()).collect();
        // The activation is gone: the first Conv writes its output, which
        // is quantized (zero point 0); the Conv's own output is not.
        assert!(!ops.contains(&activation), "{activation}: {ops:?}");
        // (`quantize_path` checked that the report names it.)
        let producer = g.node.iter().find(|n| n.output[0] == "relu1").unwrap();
        assert_eq!(producer.op_type, "Conv", "{activation}");
        assert!(g
            .node
            .iter()
            .any(|n| n.op_type == "QuantizeLinear" && n.input[0] == "relu1"));
        assert!(!g.node.iter().any(|n| n.input.iter().any(|i| i == "conv1")));
        assert_eq!(inits(&q)["relu1_zero_point"].2, vec![0.0]);

        // Exact: putting the activation back before the QuantizeLinear
        // changes no output bit.
        let mut back = q.clone();
        let bg = back.graph.as_mut().unwrap();
        let at = bg.node.iter().position(|n| n.output[0] == "relu1").unwrap();
        bg.node[at].output[0] = "conv1".into();
        let act = match activation {
            "Relu" => node("Relu", &["conv1"], "relu1"),
            _ => {
                bg.initializer.push(float_init("lo", &[], &[0.0]));
                bg.initializer.push(float_init("hi", &[], &[0.5]));
                node("Clip", &["conv1", "lo", "hi"], "relu1")
            }
        };
        bg.node.insert(at + 1, act);
        let (y, y_back) = (run_proto(&q), run_proto(&back));
        assert_eq!(y, y_back, "{activation}");
        // And close to FP32.
        let fp32 = run(&path, BackendChoice::Tract);
        assert!(
            max_abs(&y, &fp32) < 0.1,
            "{activation}: {}",
            max_abs(&y, &fp32)
        );
    }
}

#[test]
fn no_fold_where_quantization_would_not_clamp_or_nothing_quantized_reads() {
    // Symmetric int8 activations represent negative values: a Relu kept.
    let (_d, path) = with_second_conv("Relu");
    let q = quantize_path(&path, ActType::I8);
    let g = q.graph.as_ref().unwrap();
    assert!(g.node.iter().any(|n| n.op_type == "Relu"));
    // The tiny CNN as committed: its Relu feeds a pooling left in float.
    let q = quantize_path(&root().join("runtime/tiny_cnn.onnx"), ActType::U8);
    let g = q.graph.as_ref().unwrap();
    assert!(g.node.iter().any(|n| n.op_type == "Relu"));
    assert!(g
        .node
        .iter()
        .any(|n| n.op_type == "QuantizeLinear" && n.input[0] == "conv1"));
}
