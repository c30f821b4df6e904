#!/usr/bin/env python3
"""Development check (needs ../shared/assets): `bridgeml predict` on the real
ImageNet MobileNetV2 equals Pillow + ONNX Runtime in Python.

    python3 scripts/dev/check_mobilenet_predict.py --bridgeml target/debug/bridgeml

Preprocessing on the Python side is written independently of bridgeml
(torchvision's Resize(256) + CenterCrop(224) semantics with Pillow, numpy
normalize), so agreement checks both the engine and the runtime.
Result 2026-11-28: ort backend logits bit-identical (max abs diff 0.0),
tract within 1.5e-5; top-1 identical on all photos.
"""
import argparse
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnxruntime as ort
from PIL import Image

ROOT = Path(__file__).resolve().parents[2]
ASSETS = ROOT.parent / "shared" / "assets"


def reference_input(path):
    im = Image.open(path).convert("RGB")
    w, h = im.size
    size = 256
    nw, nh = (size, int(size * h / w)) if w <= h else (int(size * w / h), size)
    im = im.resize((nw, nh), Image.BILINEAR)
    left, top = int(round((nw - 224) / 2.0)), int(round((nh - 224) / 2.0))
    a = np.asarray(im.crop((left, top, left + 224, top + 224)))
    mean = np.array([0.485, 0.456, 0.406], np.float32)
    std = np.array([0.229, 0.224, 0.225], np.float32)
    return ((a.astype(np.float32) / np.float32(255) - mean) / std).transpose(2, 0, 1)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bridgeml", required=True)
    ap.add_argument("--assets", default=str(ASSETS))
    ap.add_argument("--tolerance", type=float, default=1e-4, help="max |logit diff| allowed for tract (ort must be exact)")
    args = ap.parse_args()
    model = Path(args.assets) / "mobilenet_v2_imagenet.onnx"
    labels = Path(args.assets) / "imagenet_classes.txt"
    photos = sorted(str(p) for p in (ROOT / "tests/fixtures/images").iterdir())
    sess = ort.InferenceSession(str(model))
    ok = True
    for backend, tol in [("ort", 0.0), ("tract", args.tolerance)]:
        out = subprocess.run(
            [args.bridgeml, "predict", "--model", str(model), "--spec",
             str(ROOT / "examples/specs/imagenet_pil.toml"), "--labels", str(labels),
             "--input", *photos, "--with-logits", "--format", "json", "--backend", backend],
            check=True, capture_output=True, text=True).stdout
        for res in json.loads(out)["results"]:
            ref = sess.run(None, {"input": reference_input(res["input"])[None]})[0][0]
            diff = float(np.abs(np.array(res["logits"], np.float32) - ref).max())
            same_top1 = int(ref.argmax()) == res["top_k"][0]["index"]
            good = same_top1 and diff <= tol
            ok &= good
            print(f"{backend:5} {Path(res['input']).name:12} {res['top_k'][0]['label']:14} "
                  f"top1 {'same' if same_top1 else 'DIFFERENT'}  max|dlogit| {diff:.3g}  {'ok' if good else 'FAIL'}")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
