//! The files of a deployment bundle: the spec, the policy, the manifest.

/// The Fashion-MNIST spec the model is trained and served with: decode,
/// gray, resize to 28x28 as Pillow does, scale, normalize, CHW.
pub const SPEC: &str = r#"# Fashion-MNIST preprocessing, as the Python training loop ran it with Pillow:
#   Image.open(f).convert("L").resize((28, 28), Image.BILINEAR),
#   / 255, (x - 0.286) / 0.353, [1, 28, 28].
[input]
kind = "image"

[[steps]]
op = "convert"
color = "gray"

[[steps]]
op = "resize"
height = 28
width = 28
filter = "bilinear"
compat = "pil"

[[steps]]
op = "to_float"

[[steps]]
op = "normalize"
mean = [0.286]
std = [0.353]

[[steps]]
op = "layout"
order = "chw"
"#;

/// The same preprocessing re-written for the server with OpenCV's resize:
/// the mismatch of the preprocessing gap.
pub fn opencv_spec() -> String {
    SPEC.replace("compat = \"pil\"", "compat = \"opencv\"")
        .replace(
            "# Fashion-MNIST preprocessing, as the Python training loop ran it with Pillow:",
            "# The serving team's rewrite with cv2.resize(..., interpolation=cv2.INTER_LINEAR):",
        )
}

/// The retraining trigger policy written before launch.
pub const POLICY: &str = r#"# Retraining trigger policy of the demo deployment (evaluated at each window close).
[[rules]]
name = "confidence-psi"
when = "psi.confidence > threshold"
action = "shadow_eval"
why = "the confidence distribution moved beyond its calibrated PSI threshold"

[[rules]]
name = "embedding-mmd"
when = "mmd > threshold"
action = "investigate"
why = "embedding MMD^2 above its calibrated mean + 2 std threshold"

[[rules]]
name = "ood-rate"
when = "ood_rate > 8%"
action = "data_pipeline_audit"
why = "more than 8% of requests flagged out-of-distribution"

[[targets]]
name = "ood-rate"
when = "ood_rate < 3%"

[[targets]]
name = "latency"
when = "latency_ratio <= 1.10"
"#;

/// What the manifest names (paths relative to the bundle).
#[derive(Debug, Clone)]
pub struct ManifestFiles {
    pub spec_fingerprint: String,
    pub model_sha256: String,
    pub int8_sha256: String,
}

/// The bundle's `bridgeml.toml`.
pub fn manifest(f: &ManifestFiles) -> String {
    format!(
        r#"# Deployment manifest written by `bridgeml demo`. Re-run the checklist with
#   bridgeml gate --config bridgeml.toml --report-dir report
# and the 30-day view of the (simulated) prediction log with
#   bridgeml report --log bridgeml.db --config bridgeml.toml

[model]
path = "model.onnx"                       # FP32, from `bridgeml train`
sha256 = "{model_sha}"
int8_path = "model_int8.onnx"             # PTQ (INT8 QDQ), from `bridgeml quantize`
int8_sha256 = "{int8_sha}"
serve = "int8"
labels = "labels.txt"
backend = "tract"
embedding = "features"                    # penultimate tensor, for MMD
top_k = 3

[spec]
path = "spec.toml"
fingerprint = "{spec_fp}"

[guard]
path = "guard.json"                       # energy score, calibrated at 95% TPR

[monitor]
window = 200
confidence_baseline = "baseline_confidence.json"
confidence_column = "confidence"
embedding_baseline = "baseline_embedding.json"
embedding_reference = "embedding_reference.npy"
latency_profile = "profile.json"

[policy]
path = "policy.toml"

[segments]
header = "X-Segment"
field = "segment"
weights = {{ mobile = 2.0 }}

[sla]
p95_ms = 5.0                              # declared SLA at batch 1
p99_ms = 10.0
max_params = 100000
max_weight_bytes = 1000000
max_ood_rate = 0.03

[server]
log = "bridgeml.db"

[shadow]
model = "model_qat.onnx"                  # candidate: QAT INT8
sample_rate = 1.0

[gate]
validation = "data/validation"            # ImageFolder, 100 images per class
ood = "data/ood"                          # MNIST digits and noise
parity_inputs = "data/parity/inputs"
parity_reference = "data/parity/reference"  # the training side's tensors

# Every gate threshold can be set here; these are the defaults.
[gate.thresholds]
max_recall_drop_points = 2.0
max_segment_disagreement = 0.05
min_shadow_hours = 72.0
max_fpr_at_95_tpr = 0.5
"#,
        model_sha = f.model_sha256,
        int8_sha = f.int8_sha256,
        spec_fp = f.spec_fingerprint,
    )
}
