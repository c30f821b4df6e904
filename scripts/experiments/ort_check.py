#!/usr/bin/env python3
"""Cross-check bridgeml-train's exported models with ONNX Runtime.

Runs the Rust round-trip tests with BRIDGEML_TRAIN_DUMP set, which makes them
write the exported FP32 and QAT (QDQ) models of the fixture, the fixture
inputs and the candle outputs; then checks each model with onnx.checker and
ONNX Runtime on the same inputs.

    python3 scripts/experiments/ort_check.py [DUMP_DIR]

Pass an existing DUMP_DIR to skip running cargo.
"""
import os
import pathlib
import subprocess
import sys
import tempfile

import numpy as np
import onnx
import onnxruntime as ort

ROOT = pathlib.Path(__file__).resolve().parents[2]
# Max abs diff on the logits, vs candle's forward pass (fake-quant forward for QAT).
FP32_TOL = 1e-4
# QDQ model run by ONNX Runtime without graph optimizations: it executes the
# QuantizeLinear/DequantizeLinear nodes literally, as the fake-quant forward does.
QAT_TOL_LITERAL = 1e-4
# With the default optimizations ONNX Runtime fuses QDQ groups into integer
# kernels (QLinearConv, QGemm) that requantize differently; we allow 1% of the
# largest logit and require identical top-1.
QAT_TOL_FUSED_REL = 0.01


def main():
    if len(sys.argv) > 1:
        dump = pathlib.Path(sys.argv[1])
    else:
        dump = pathlib.Path(tempfile.mkdtemp(prefix="bridgeml-train-dump-"))
        env = dict(os.environ, BRIDGEML_TRAIN_DUMP=str(dump))
        subprocess.run(
            ["cargo", "test", "-q", "-p", "bridgeml-train", "--test", "roundtrip"],
            cwd=ROOT, env=env, check=True,
        )
    x = np.load(dump / "input.npy")
    ok = True
    literal = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    fused = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    for name, level, tol in [
        ("fp32", fused, FP32_TOL),
        ("qat", literal, QAT_TOL_LITERAL),
        ("qat", fused, None),
    ]:
        path = dump / f"{name}.onnx"
        onnx.checker.check_model(onnx.load(str(path)), full_check=True)
        opts = ort.SessionOptions()
        opts.graph_optimization_level = level
        sess = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        (out,) = sess.run(None, {sess.get_inputs()[0].name: x})
        ref = np.load(dump / f"{name}_candle.npy")
        if tol is None:
            tol = QAT_TOL_FUSED_REL * float(np.abs(ref).max())
        diff = float(np.abs(out - ref).max())
        same_top1 = bool((out.argmax(1) == ref.argmax(1)).all())
        status = "ok" if diff <= tol and same_top1 else "FAIL"
        ok &= status == "ok"
        print(f"{name} ({'optimized' if level == fused else 'unoptimized'}): onnxruntime vs candle "
              f"max abs diff {diff:.2e} (tol {tol:.1e}), top-1 identical: {same_top1} "
              f"on {len(x)} inputs -> {status}")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
