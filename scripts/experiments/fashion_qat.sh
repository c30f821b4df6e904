#!/usr/bin/env bash
# Fashion-MNIST with class 6 ("Shirt") cut 20:1 in training: train the small
# CNN in FP32, then QAT-fine-tune it for the same number of epochs, and
# evaluate both on the full t10k test set (candle, then ONNX Runtime on the
# exported files). Prints a Markdown table (docs/TRAINING.md records one run).
#
#   scripts/experiments/fashion_qat.sh            # EPOCHS=2, full 54k training set
#   EPOCHS=1 LIMIT=20000 scripts/experiments/fashion_qat.sh
#
# Needs: the Debian package dataset-fashion-mnist (or DATA=dir with the IDX
# files), python3 with numpy + onnxruntime for the cross-check.
set -euo pipefail
cd "$(dirname "$0")/../.."

DATA=${DATA:-/usr/share/datasets/fashion-mnist}
EPOCHS=${EPOCHS:-2}
QAT_EPOCHS=${QAT_EPOCHS:-$EPOCHS}
SEED=${SEED:-0}
LIMIT=${LIMIT:-}
OUT=${OUT:-target/experiments/fashion_qat}
SPEC=tests/fixtures/train/fashion_spec.toml
mkdir -p "$OUT"

# BRIDGEML_BIN=path/to/bridgeml skips the release build (e.g. an existing binary).
if [ -z "${BRIDGEML_BIN:-}" ]; then
  cargo build --release -q -p bridgeml-cli
  BIN="${CARGO_TARGET_DIR:-target}/release/bridgeml"
else
  BIN=$BRIDGEML_BIN
fi
limit=()
[ -n "$LIMIT" ] && limit=(--limit "$LIMIT")
common=(--data "$DATA" --spec "$SPEC" --val "$DATA" --minority 6:20 --seed "$SEED" --batch-size 64 --format json "${limit[@]}")

"$BIN" train --arch examples/arch/fashion_cnn.toml --epochs "$EPOCHS" --lr 3e-3 \
  --output "$OUT/fashion_cnn.onnx" "${common[@]}" > "$OUT/train.json"
"$BIN" qat --model "$OUT/fashion_cnn.onnx" --epochs "$QAT_EPOCHS" --lr 1e-4 \
  --output "$OUT/fashion_cnn.qat.onnx" "${common[@]}" > "$OUT/qat.json"

python3 - "$OUT" "$DATA" <<'PY'
import gzip, json, pathlib, sys
import numpy as np
import onnxruntime as ort

out, data = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
def idx(name):
    raw = gzip.open(data / name).read() if (data / name).exists() else open(data / name[:-3], "rb").read()
    rank = raw[3]
    dims = [int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(rank)]
    return np.frombuffer(raw, np.uint8, offset=4 + 4 * rank).reshape(dims)
# Same arithmetic as the spec (to_float then normalize, float32).
x = ((idx("t10k-images-idx3-ubyte.gz").astype(np.float32) / np.float32(255)) - np.float32(0.286)) / np.float32(0.353)
x = x[:, None, :, :]
y = idx("t10k-labels-idx1-ubyte.gz")
preds = {}
for name in ["fashion_cnn", "fashion_cnn.qat"]:
    s = ort.InferenceSession(str(out / f"{name}.onnx"), providers=["CPUExecutionProvider"])
    preds[name] = np.concatenate([s.run(None, {"input": x[i:i + 1000]})[0].argmax(1) for i in range(0, len(x), 1000)])
def metrics(p):
    rec = [float((p[y == c] == c).mean()) for c in range(10)]
    return float((p == y).mean()), float(np.mean(rec)), rec[6]
tr, qa = (json.load(open(out / f)) for f in ["train.json", "qat.json"])
print(f"training samples: {tr['train_samples']} (class counts {tr['class_counts']}), epochs: FP32 {len(tr['epochs'])}, QAT {len(qa['epochs'])}")
print()
print("| model | accuracy | macro recall | minority (Shirt) recall | train s/epoch | ORT accuracy | ORT minority recall | size |")
print("|---|---|---|---|---|---|---|---|")
for label, r, name in [("FP32 (train)", tr, "fashion_cnn"), ("QAT int8 QDQ", qa, "fashion_cnn.qat")]:
    v = r["val"]
    acc, mr, minr = metrics(preds[name])
    size = (out / f"{name}.onnx").stat().st_size
    print(f"| {label} | {v['accuracy']:.4f} | {v['macro_recall']:.4f} | {v['minority_recall']:.4f} | {r['seconds_per_epoch']:.1f} | {acc:.4f} | {minr:.4f} | {size} B |")
flips = int((preds["fashion_cnn"] != preds["fashion_cnn.qat"]).sum())
print()
print(f"QAT training-time overhead per epoch vs FP32: {qa['seconds_per_epoch'] / tr['seconds_per_epoch'] - 1:+.0%}")
print(f"predictions that differ FP32 vs QAT (ORT, t10k): {flips} of {len(y)}")
PY
