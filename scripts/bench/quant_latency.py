#!/usr/bin/env python3
"""MobileNetV2 INT8 vs FP32 latency (issue 6, item 6), both backends, interleaved.

1. Calibration set: as scripts/bench/quant_mobilenet.py (the 4 committed photos
   and 11 scikit-image data images, each as is, mirrored and two crops: 60 PNGs).
2. `bridgeml quantize --method minmax --per-channel --backend ort` (u8
   activations, s8 weights) -> bridgeml.int8.onnx; and, for reference, ONNX
   Runtime's `quantize_static` at the same settings (QDQ, all its default op
   types) on the same preprocessed tensors -> ort.int8.onnx.
3. ROUNDS rounds; in each round every (model, backend) pair is profiled once
   with `bridgeml profile --batch B --threads T --format json` (synthetic
   input of the model's shape, no preprocessing), so a change in machine
   load hits all pairs alike. The 1-minute load average is read before each
   measurement. Per pair: the median over rounds of p50 and p99, and the
   median over rounds of the per-round ratio p50(INT8) / p50(FP32) on the
   same backend.
4. With --fixed-batch, tract also runs at batch 1 a copy of every model whose
   batch axis is fixed to 1 (input/output dim 0 set, value_info dropped):
   tract plans a symbolic batch axis far less well (the runtime keeps the
   model's symbolic `N`). Batch 1 only: `profile` probes every model with a
   batch of 1 first.

Usage: python3 scripts/bench/quant_latency.py --bridgeml PATH [--batch 1,8] [--threads 1]
           [--rounds 3] [--backends ort,tract] [--skip-ort-quant] [--fixed-batch] [--work DIR]
Dev/benchmark only: needs /work/shared/assets/mobilenet_v2_imagenet.onnx,
scikit-image, numpy, onnx, onnxruntime, Pillow.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import quant_mobilenet as qm  # noqa: E402  (calibration set, ORT reader)


def sh(cmd):
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit(f"failed ({r.returncode}): {' '.join(cmd)}\n{r.stderr}")
    return r.stdout


def load1():
    with open("/proc/loadavg") as f:
        return float(f.read().split()[0])


def profile(bridgeml, model, backend, batch, threads, a):
    out = sh([bridgeml, "profile", "--model", model, "--backend", backend, "--batch", str(batch),
              "--threads", str(threads), "--warmup", str(a.warmup), "--window-ms", str(a.window_ms),
              "--min-runs", str(a.min_runs), "--max-windows", str(a.max_windows), "--format", "json"])
    rep = json.loads(out)
    res = rep["results"][0]

    def find(v, key):
        if isinstance(v, dict):
            if key in v:
                return v[key]
            v = list(v.values())
        if isinstance(v, list):
            for x in v:
                r = find(x, key)
                if r is not None:
                    return r
        return None

    return {"p50_ms": find(res, "p50_ms"), "p99_ms": find(res, "p99_ms")}


def fix_batch(src, dst, batch):
    import onnx

    m = onnx.load(src)
    del m.graph.value_info[:]
    for v in list(m.graph.input) + list(m.graph.output):
        d = v.type.tensor_type.shape.dim[0]
        d.ClearField("dim_param")
        d.dim_value = batch
    onnx.save(m, dst)
    return dst


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bridgeml", required=True)
    ap.add_argument("--model", default="/work/shared/assets/mobilenet_v2_imagenet.onnx")
    ap.add_argument("--spec", default=os.path.join(qm.ROOT, "examples/specs/imagenet_pil.toml"))
    ap.add_argument("--work", default="/tmp/bridgeml_quant_latency")
    ap.add_argument("--batch", default="1")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--backends", default="ort,tract")
    ap.add_argument("--skip-ort-quant", action="store_true")
    ap.add_argument("--fixed-batch", action="store_true")
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--window-ms", type=int, default=500)
    ap.add_argument("--min-runs", type=int, default=3)
    ap.add_argument("--max-windows", type=int, default=4)
    a = ap.parse_args()
    os.makedirs(a.work, exist_ok=True)
    calib = qm.make_calibration(a.work)
    files = sorted(os.path.join(calib, f) for f in os.listdir(calib))
    models = {"FP32": a.model}
    br = os.path.join(a.work, "bridgeml.int8.onnx")
    t0 = time.time()
    sh([a.bridgeml, "quantize", "--model", a.model, "--spec", a.spec, "--calibration", calib, "--method", "minmax",
        "--per-channel", "--backend", "ort", "--output", br])
    print(json.dumps({"bridgeml_quantize_seconds": round(time.time() - t0, 1), "calibration_images": len(files)}),
          flush=True)
    models["bridgeml INT8"] = br
    if not a.skip_ort_quant:
        from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

        npy = os.path.join(a.work, "calib.npy")
        sh([a.bridgeml, "preprocess", "--spec", a.spec, "--input", *files, "--output", npy])
        op = os.path.join(a.work, "ort.int8.onnx")
        quantize_static(a.model, op, qm.Reader(np.load(npy)), quant_format=QuantFormat.QDQ, per_channel=True,
                        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                        calibrate_method=CalibrationMethod.MinMax)
        models["ORT INT8"] = op
    for name, p in models.items():
        print(json.dumps({"model": name, "path": p, "bytes": os.path.getsize(p)}), flush=True)
    backends = a.backends.split(",")
    batches = [int(b) for b in a.batch.split(",")]
    fixed = {}  # (name, batch) -> path of the fixed-batch copy
    if a.fixed_batch and "tract" in backends:
        for name, p in list(models.items()):
            for batch in [b for b in batches if b == 1]:  # profile probes with batch 1 first
                fixed[(name, batch)] = fix_batch(p, os.path.join(a.work, f"{name.replace(' ', '_')}_b{batch}.onnx"),
                                                 batch)
    meas = {}  # (model, backend, batch) -> list of per-round dicts
    for rnd in range(a.rounds):
        for batch in batches:
            for be in backends:
                pairs = list(models.items())
                if be == "tract":
                    pairs += [(f"{n} (batch fixed)", fixed[(n, batch)]) for n in models if (n, batch) in fixed]
                for name, p in pairs:
                    l0 = load1()
                    r = profile(a.bridgeml, p, be, batch, a.threads, a)
                    r["load1"] = l0
                    r["round"] = rnd
                    meas.setdefault((name, be, batch), []).append(r)
                    print(json.dumps({"model": name, "backend": be, "batch": batch, **r}), flush=True)
    lines = ["| batch | backend | model | p50 ms (median) | p99 ms (median) | p50 vs FP32, median (per round) | load (1 min) |",
             "|---:|---|---|---:|---:|---:|---|"]
    for batch in batches:
        for be in backends:
            for name in [n for (n, b2, bt) in meas if b2 == be and bt == batch]:
                m = meas[(name, be, batch)]
                fp = meas[("FP32 (batch fixed)" if name.endswith("(batch fixed)") else "FP32", be, batch)]
                ratios = [x["p50_ms"] / f["p50_ms"] for x, f in zip(m, fp)]
                loads = [x["load1"] for x in m]
                lines.append(
                    f"| {batch} | {be} | {name} | {statistics.median(x['p50_ms'] for x in m):.2f} | "
                    f"{statistics.median(x['p99_ms'] for x in m):.2f} | {statistics.median(ratios):.2f}x ("
                    + "/".join(f"{r:.2f}" for r in ratios) + f") | {min(loads):.1f}-{max(loads):.1f} |")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
