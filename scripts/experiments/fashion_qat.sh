#!/usr/bin/env bash
# Fashion-MNIST with class 6 ("Shirt") cut 20:1 in training (issue 6, item 4):
#   1. `bridgeml train` the small CNN in FP32 (examples/arch/fashion_cnn.toml);
#   2. `bridgeml quantize` it (PTQ) with minmax, percentile:99.99 and entropy
#      calibration, per-channel and per-tensor weights, u8 activations;
#   3. `bridgeml qat` fine-tunes the FP32 model with fake quantization;
#   4. `bridgeml audit quant` every INT8 model against FP32 on the test set;
#   5. `bridgeml profile` FP32 and INT8 latency on both backends.
# Writes $OUT/table.md (the table in docs/TRAINING.md) and $OUT/latency.md.
#
#   scripts/experiments/fashion_qat.sh                 # EPOCHS=2, full 54 300-sample training set
#   EPOCHS=1 LIMIT=20000 scripts/experiments/fashion_qat.sh
#   BRIDGEML_BIN=path/to/release/bridgeml EPOCHS=4 QAT_EPOCHS=1 scripts/experiments/fashion_qat.sh
#
# Knobs: ARCH (default examples/arch/fashion_cnn.toml), LR, QAT_LR, TRAIN_BIN, DATA (IDX dir), EPOCHS, QAT_EPOCHS, SEED, LIMIT (training samples after
# the cut), OUT, THREADS (profile threads), TEST_LIMIT (test images written as
# PNG for the audit, default all 10 000), CALIB (calibration images, default 512),
# CONTROL=1 also trains FP32 for EPOCHS+QAT_EPOCHS epochs (separates "QAT" from
# "more epochs"), SKIP_TRAIN=1 reuses the models in $OUT.
#
# Needs: the Debian package dataset-fashion-mnist (or DATA=dir with the IDX
# files), python3 with numpy + pillow.
set -euo pipefail
cd "$(dirname "$0")/../.."

DATA=${DATA:-/usr/share/datasets/fashion-mnist}
EPOCHS=${EPOCHS:-2}
QAT_EPOCHS=${QAT_EPOCHS:-$EPOCHS}
SEED=${SEED:-0}
LIMIT=${LIMIT:-}
OUT=${OUT:-target/experiments/fashion_qat}
THREADS=${THREADS:-2}
TEST_LIMIT=${TEST_LIMIT:-10000}
CALIB=${CALIB:-512}
CONTROL=${CONTROL:-0}
ARCH=${ARCH:-examples/arch/fashion_cnn.toml}
LR=${LR:-3e-3}
QAT_LR=${QAT_LR:-1e-4}
SPEC=tests/fixtures/train/fashion_spec.toml
mkdir -p "$OUT"

# BRIDGEML_BIN=path/to/bridgeml skips the release build (e.g. an existing binary).
if [ -z "${BRIDGEML_BIN:-}" ]; then
  cargo build --release -q -p bridgeml-cli
  BIN="${CARGO_TARGET_DIR:-target}/release/bridgeml"
else
  BIN=$BRIDGEML_BIN
fi
# TRAIN_BIN: a different binary for train/qat only (default: BIN).
TRAIN_BIN=${TRAIN_BIN:-$BIN}
limit=()
[ -n "$LIMIT" ] && limit=(--limit "$LIMIT")
common=(--data "$DATA" --spec "$SPEC" --val "$DATA" --minority 6:20 --seed "$SEED" --batch-size 64 --format json "${limit[@]}")

{ echo "date: $(date -u +%FT%TZ)"; echo "uptime:$(uptime)"; echo "bin: $BIN"; echo "train bin: ${TRAIN_BIN:-$BIN}"; echo "arch: $ARCH lr $LR qat lr $QAT_LR"; "$BIN" --version || true;
  echo "EPOCHS=$EPOCHS QAT_EPOCHS=$QAT_EPOCHS SEED=$SEED LIMIT=$LIMIT TEST_LIMIT=$TEST_LIMIT CALIB=$CALIB THREADS=$THREADS"; } > "$OUT/run.txt"

if [ "${SKIP_TRAIN:-0}" != 1 ]; then
  echo "== train FP32 ($EPOCHS epochs)" >&2
  "$TRAIN_BIN" train --arch "$ARCH" --epochs "$EPOCHS" --lr "$LR" \
    --output "$OUT/fashion_cnn.onnx" "${common[@]}" > "$OUT/train.json"
  echo "== qat ($QAT_EPOCHS epochs)" >&2
  "$TRAIN_BIN" qat --model "$OUT/fashion_cnn.onnx" --epochs "$QAT_EPOCHS" --lr "$QAT_LR" \
    --output "$OUT/fashion_cnn.qat.onnx" "${common[@]}" > "$OUT/qat.json"
  if [ "$CONTROL" = 1 ]; then
    echo "== control: train FP32 ($((EPOCHS + QAT_EPOCHS)) epochs)" >&2
    "$TRAIN_BIN" train --arch "$ARCH" --epochs "$((EPOCHS + QAT_EPOCHS))" --lr "$LR" \
      --output "$OUT/fashion_cnn.long.onnx" "${common[@]}" > "$OUT/train_long.json"
  fi
fi
echo "uptime after training:$(uptime)" >> "$OUT/run.txt"

# The audit and the calibration read image files: write the IDX images as
# grayscale PNG (lossless, so the spec sees the same pixels as from IDX).
# test/<label>/<index>.png (ImageFolder, first TEST_LIMIT t10k images);
# calib/<index>.png: the first CALIB training images after the same 20:1 cut
# of class 6 that `--minority 6:20` applies (first of every 20 in file order).
python3 - "$DATA" "$OUT" "$TEST_LIMIT" "$CALIB" <<'PY'
import gzip, pathlib, shutil, sys
import numpy as np
from PIL import Image

data, out = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
test_limit, calib = int(sys.argv[3]), int(sys.argv[4])
def idx(name):
    raw = gzip.open(data / name).read() if (data / name).exists() else open(data / name[:-3], "rb").read()
    rank = raw[3]
    dims = [int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(rank)]
    return np.frombuffer(raw, np.uint8, offset=4 + 4 * rank).reshape(dims)
for d in ["test", "calib"]:
    shutil.rmtree(out / d, ignore_errors=True)
x, y = idx("t10k-images-idx3-ubyte.gz"), idx("t10k-labels-idx1-ubyte.gz")
for i in range(min(test_limit, len(x))):
    p = out / "test" / str(y[i]) / f"{i:05d}.png"
    p.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(x[i], "L").save(p)
x, y = idx("train-images-idx3-ubyte.gz"), idx("train-labels-idx1-ubyte.gz")
(out / "calib").mkdir(parents=True)
seen6, n = 0, 0
for i in range(len(x)):
    if y[i] == 6:
        seen6 += 1
        if (seen6 - 1) % 20:
            continue
    Image.fromarray(x[i], "L").save(out / "calib" / f"{i:05d}.png")
    n += 1
    if n == calib:
        break
PY

# PTQ: time each quantize call (the calibration is its whole cost).
candidates=(qat)
for pc in pc pt; do
  for method in minmax percentile:99.99 entropy; do
    name="ptq_${method%%:*}_$pc"
    flag=(); [ "$pc" = pc ] && flag=(--per-channel)
    echo "== quantize $name" >&2
    t0=$EPOCHREALTIME
    "$BIN" quantize --model "$OUT/fashion_cnn.onnx" --spec "$SPEC" --calibration "$OUT/calib" \
      --method "$method" "${flag[@]}" --output "$OUT/fashion_cnn.$name.onnx" --format json > "$OUT/$name.quantize.json"
    awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN { printf "{\"seconds\": %.3f}\n", b - a }' > "$OUT/$name.time.json"
    candidates+=("$name")
  done
done
[ -f "$OUT/fashion_cnn.long.onnx" ] && candidates+=(long)

# Audit every candidate against FP32 (exit 1 = the recall-drop gate failed: expected, keep going).
for c in "${candidates[@]}"; do
  echo "== audit $c" >&2
  rc=0
  "$BIN" audit quant --reference "$OUT/fashion_cnn.onnx" --candidate "$OUT/fashion_cnn.$c.onnx" \
    --spec "$SPEC" --data "$OUT/test" --labels "$OUT/test" --batch 250 --format json \
    > "$OUT/$c.audit.json" || rc=$?
  [ "$rc" -le 1 ] || { echo "audit $c failed with exit $rc" >&2; exit "$rc"; }
done

# Latency: FP32, one PTQ model (all PTQ variants have the same graph) and QAT, both backends.
for m in fp32 ptq_minmax_pc qat; do
  f="$OUT/fashion_cnn.$m.onnx"; [ "$m" = fp32 ] && f="$OUT/fashion_cnn.onnx"
  for b in ort tract; do
    echo "== profile $m $b" >&2
    "$BIN" profile --model "$f" --backend "$b" --batch 1,32 --threads "$THREADS" \
      --format json > "$OUT/$m.profile.$b.json" || echo "profile $m $b failed" >&2
  done
done
echo "uptime at the end:$(uptime)" >> "$OUT/run.txt"

python3 - "$OUT" <<'PY' | tee "$OUT/table.md"
import json, pathlib, sys
out = pathlib.Path(sys.argv[1])
J = lambda f: json.load(open(out / f))
tr, qa = J("train.json"), J("qat.json")
MIN = 6
def cls(a, side):
    return {c["index"]: c[f"{side}_recall"] for c in a["classes"]}
rows = []
audits = {}
for c in ["ptq_minmax_pc", "ptq_percentile_pc", "ptq_entropy_pc", "ptq_minmax_pt", "ptq_percentile_pt", "ptq_entropy_pt", "qat", "long"]:
    if (out / f"{c}.audit.json").exists():
        audits[c] = J(f"{c}.audit.json")
ref = audits["qat"]
fp32_size = (out / "fashion_cnn.onnx").stat().st_size
print(f"training samples: {tr['train_samples']} (class counts {tr['class_counts']}); "
      f"test images: {ref['samples']}; FP32 {len(tr['epochs'])} epochs in {tr['train_seconds']:.0f} s "
      f"({tr['seconds_per_epoch']:.0f} s/epoch); QAT {len(qa['epochs'])} epochs in {qa['train_seconds']:.0f} s "
      f"({qa['seconds_per_epoch']:.0f} s/epoch)")
print()
print("| model | accuracy | macro recall | Shirt recall | flips vs FP32 | flip rate | band flips (0.45-0.55) | flips outside band | extra time over FP32 training | size |")
print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
r = ref["reference"]
print(f"| FP32 (`train`, {len(tr['epochs'])} ep) | {r['accuracy']:.4f} | {r['macro_recall']:.4f} | {cls(ref, 'reference')[MIN]:.4f} "
      f"| - | - | - | - | FP32 training: {tr['train_seconds']:.0f} s | {fp32_size:,} B |")
labels = {"minmax": "minmax", "percentile": "percentile:99.99", "entropy": "entropy"}
for c, a in audits.items():
    if c == "qat":
        label, extra = f"QAT (`qat`, +{len(qa['epochs'])} ep)", f"{qa['train_seconds']:.0f} s"
    elif c == "long":
        lt = J("train_long.json")
        label, extra = f"FP32 control (`train`, {len(lt['epochs'])} ep)", f"{lt['train_seconds'] - tr['train_seconds']:.0f} s"
    else:
        _, m, pc = c.split("_")
        label = f"PTQ {labels[m]}, {'per-channel' if pc == 'pc' else 'per-tensor'}"
        extra = f"{J(f'{c}.time.json')['seconds']:.1f} s"
    k = a["candidate"]
    f = a["flips"]
    size = (out / f"fashion_cnn.{c}.onnx").stat().st_size
    print(f"| {label} | {k['accuracy']:.4f} | {k['macro_recall']:.4f} | {cls(a, 'candidate')[MIN]:.4f} "
          f"| {f['total']} | {f['rate']:.4f} | {f['in_band']['flips']}/{f['in_band']['samples']} ({f['in_band']['rate']:.3f}) "
          f"| {f['outside_band']['flips']}/{f['outside_band']['samples']} ({f['outside_band']['rate']:.4f}) | {extra} | {size:,} B |")
print()
print(f"QAT seconds per epoch vs FP32 training: {qa['seconds_per_epoch']:.1f} vs {tr['seconds_per_epoch']:.1f} "
      f"({qa['seconds_per_epoch'] / tr['seconds_per_epoch'] - 1:+.0%})")
for c, a in audits.items():
    print(f"- {c}: flips into Shirt {a['classes'][MIN]['flips_into']}, out of Shirt {a['classes'][MIN]['flips_out_of']}; "
          f"correct->wrong {a['flips']['correct_to_wrong']}, wrong->correct {a['flips']['wrong_to_correct']}; "
          f"gate pass {a['gate']['pass']} (failed classes {a['gate']['failed_classes']})")
print()
print("Latency, `bridgeml profile`, p50 ms (throughput inf/s):")
print()
print("| model | backend | batch 1 p50 | batch 1 p99 | batch 32 p50 | batch 32 p99 | batch 32 inf/s |")
print("|---|---|---:|---:|---:|---:|---:|")
for m in ["fp32", "ptq_minmax_pc", "qat"]:
    for b in ["ort", "tract"]:
        p = out / f"{m}.profile.{b}.json"
        if not p.exists() or p.stat().st_size == 0:
            continue
        res = {r["batch"]: r for r in J(p.name)["results"]}
        print(f"| {m} | {b} | {res[1]['p50_ms']:.3f} | {res[1]['p99_ms']:.3f} | {res[32]['p50_ms']:.3f} "
              f"| {res[32]['p99_ms']:.3f} | {res[32]['throughput']:.0f} |")
PY
