#!/usr/bin/env python3
"""MobileNetV2 INT8: ONNX Runtime `quantize_static` vs `bridgeml quantize`.

Calibration set: the committed photos (tests/fixtures/images) plus colour
scikit-image data images, each as is, flipped, and two crops (~40 images).
Both tools see the same tensors (bridgeml's spec output; ORT is fed
`bridgeml preprocess` of the same files). For minmax, percentile (99.999, ORT's
default) and entropy, per-channel off/on: how many of 9 real photos keep the
FP32 top-1 (ONNX Runtime Python runs every model), and optionally INT8 vs FP32
latency with `bridgeml profile` on both backends.

Run: python3 scripts/bench/quant_mobilenet.py --bridgeml $CARGO_TARGET_DIR/release/bridgeml \
        [--latency] [--ort-ops all|conv]
Dev/benchmark only: needs /work/shared/assets/mobilenet_v2_imagenet.onnx,
scikit-image, numpy, onnx, onnxruntime, Pillow.
"""

import argparse
import json
import os
import subprocess
import time

import numpy as np
import onnxruntime as ort
import skimage
from onnxruntime.quantization import (
    CalibrationDataReader,
    CalibrationMethod,
    QuantFormat,
    QuantType,
    quantize_static,
)
from PIL import Image, ImageOps

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
SK = os.path.join(os.path.dirname(skimage.__file__), "data")
PHOTOS = [os.path.join(ROOT, "tests/fixtures/images", f) for f in ["chelsea.png", "china.jpg", "coffee.png", "flower.jpg"]]
SK_PHOTOS = ["astronaut.png", "rocket.jpg", "motorcycle_left.png", "camera.png", "hubble_deep_field.jpg",
             "retina.jpg", "ihc.png", "brick.png", "grass.png", "gravel.png", "coins.png"]
EVAL = PHOTOS + [os.path.join(SK, f) for f in ["astronaut.png", "rocket.jpg", "motorcycle_left.png",
                                               "camera.png", "hubble_deep_field.jpg"]]
METHODS = [("minmax", CalibrationMethod.MinMax, None), ("percentile", CalibrationMethod.Percentile, 99.999),
           ("entropy", CalibrationMethod.Entropy, None)]


def sh(cmd):
    return subprocess.run(cmd, check=True, capture_output=True, text=True).stdout


def make_calibration(work):
    d = os.path.join(work, "calib")
    os.makedirs(d, exist_ok=True)
    srcs = PHOTOS + [os.path.join(SK, f) for f in SK_PHOTOS]
    for i, p in enumerate(srcs):
        im = Image.open(p).convert("RGB")
        w, h = im.size
        variants = [im, ImageOps.mirror(im),
                    im.crop((w // 6, h // 6, w - w // 6, h - h // 6)),
                    im.crop((0, 0, int(w * 0.8), int(h * 0.8)))]
        for k, v in enumerate(variants):
            v.save(os.path.join(d, f"c{i:02d}_{k}.png"))
    return d


class Reader(CalibrationDataReader):
    # ORT's histogram collectors fail on a ragged last batch: use a divisor.
    def __init__(self, x, batch=10):
        while len(x) % batch:
            batch -= 1
        self.it = iter([{"input": x[i : i + batch]} for i in range(0, len(x), batch)])

    def get_next(self):
        return next(self.it, None)


def session(path):
    o = ort.SessionOptions()
    o.intra_op_num_threads = 2
    return ort.InferenceSession(path, o, providers=["CPUExecutionProvider"])


def p50(bridgeml, model, backend):
    out = sh([bridgeml, "profile", "--model", model, "--backend", backend, "--batch", "1", "--threads", "2",
              "--warmup", "3", "--window-ms", "500", "--min-runs", "3", "--max-windows", "5", "--format", "json"])
    def find(v):
        if isinstance(v, dict):
            if "p50_ms" in v:
                return v["p50_ms"]
            v = list(v.values())
        if isinstance(v, list):
            for x in v:
                r = find(x)
                if r is not None:
                    return r
        return None

    return find(json.loads(out)["results"][0])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bridgeml", required=True)
    ap.add_argument("--model", default="/work/shared/assets/mobilenet_v2_imagenet.onnx")
    ap.add_argument("--spec", default=os.path.join(ROOT, "examples/specs/imagenet_pil.toml"))
    ap.add_argument("--work", default="/tmp/bridgeml_quant_bench")
    ap.add_argument("--latency", action="store_true")
    ap.add_argument("--methods", default="minmax,percentile,entropy")
    ap.add_argument("--ort-ops", choices=["all", "conv"], default="all",
                    help="ORT op types: its default (all) or Conv/Gemm/MatMul like bridgeml")
    a = ap.parse_args()
    os.makedirs(a.work, exist_ok=True)
    calib = make_calibration(a.work)
    files = sorted(os.path.join(calib, f) for f in os.listdir(calib))
    sh([a.bridgeml, "preprocess", "--spec", a.spec, "--input", *files, "--output", os.path.join(a.work, "calib.npy")])
    sh([a.bridgeml, "preprocess", "--spec", a.spec, "--input", *EVAL, "--output", os.path.join(a.work, "eval.npy")])
    xc = np.load(os.path.join(a.work, "calib.npy"))
    xe = np.load(os.path.join(a.work, "eval.npy"))
    ref = session(a.model).run(None, {"input": xe})[0]
    top1 = ref.argmax(1)
    rows = []
    for name, cm, pct in [m for m in METHODS if m[0] in a.methods.split(",")]:
        for pc in (False, True):
            tag = f"{name}{'_pc' if pc else ''}"
            ort_path = os.path.join(a.work, f"ort_{tag}.onnx")
            br_path = os.path.join(a.work, f"bridgeml_{tag}.onnx")
            extra = {"CalibPercentile": pct} if pct else {}
            t0 = time.time()
            quantize_static(a.model, ort_path, Reader(xc), quant_format=QuantFormat.QDQ, per_channel=pc,
                            activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8, calibrate_method=cm,
                            op_types_to_quantize=None if a.ort_ops == "all" else ["Conv", "Gemm", "MatMul"],
                            extra_options=extra)
            t_ort = time.time() - t0
            method = name if pct is None else f"{name}:{pct}"
            cmd = [a.bridgeml, "quantize", "--model", a.model, "--spec", a.spec, "--calibration", calib,
                   "--method", method, "--output", br_path, "--backend", "ort"] + (["--per-channel"] if pc else [])
            t0 = time.time()
            sh(cmd)
            t_br = time.time() - t0
            row = {"method": method, "per_channel": pc, "calibration_images": len(files),
                   "ort_seconds": round(t_ort, 1), "bridgeml_seconds": round(t_br, 1)}
            for who, p in (("ort", ort_path), ("bridgeml", br_path)):
                y = session(p).run(None, {"input": xe})[0]
                row[f"{who}_kept"] = int((y.argmax(1) == top1).sum())
            if a.latency:
                for who, p in (("fp32", a.model), ("ort", ort_path), ("bridgeml", br_path)):
                    if who == "fp32" and rows:
                        row["fp32_ort_ms"], row["fp32_tract_ms"] = rows[0]["fp32_ort_ms"], rows[0]["fp32_tract_ms"]
                        continue
                    for be in ("ort", "tract"):
                        try:
                            row[f"{who}_{be}_ms"] = round(p50(a.bridgeml, p, be), 3)
                        except subprocess.CalledProcessError as e:
                            row[f"{who}_{be}_ms"] = None
                            print(f"{who} {be}: {e.stderr.strip()[-200:]}")
            rows.append(row)
            print(json.dumps(row), flush=True)
    fp32_conf = [float(np.exp(r - r.max()).max() / np.exp(r - r.max()).sum()) for r in ref]
    print(json.dumps({"eval": [os.path.basename(p) for p in EVAL], "fp32_top1": top1.tolist(),
                      "fp32_top1_prob": [round(c, 3) for c in fp32_conf]}))


if __name__ == "__main__":
    main()
