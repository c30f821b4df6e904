#!/usr/bin/env python3
"""Guard-rails benchmark (issue 5, item 5), ImageNet part: MobileNetV2 on real
photos vs synthetic noise and textures, through the CLI's model route.

Writes image folders (PNG) under --work, then for every method:

  bridgeml guard calibrate --model M --spec S --data WORK/calib [--features flat --k K] \
      --method METHOD --tpr 0.95 --output WORK/guard_METHOD.json
  bridgeml guard eval --guard WORK/guard_METHOD.json --model M --spec S \
      --id WORK/id --ood WORK/ood_SET --format json

Sets (seeded, deterministic):
  * in-distribution: natural photos, 12 variants each (full, mirror, centre
    crops, corner crops, small rotations, brightness changes). Split by photo,
    never by variant: calibration = chelsea, china (tests/fixtures/images),
    astronaut, rocket, motorcycle_left, motorcycle_right (scikit-image data);
    ID evaluation = coffee, flower (tests/fixtures/images), camera
    (scikit-image), grace_hopper (matplotlib's sample data). The variants of
    one photo are strongly correlated: the effective sample size is the
    number of photos (6 and 4), not the number of files.
  * OOD noise: uniform RGB, uniform grey, Gaussian (sigma 30 and 70),
    blocky (8x8 noise blown up), smooth (blurred) noise, salt-and-pepper and
    per-pixel colour noise at 50% contrast, at 6 image sizes (96x96 to
    640x480).
  * OOD textures: scikit-image brick, grass, gravel (crops and rotations)
    and procedural stripes (horizontal, vertical, diagonal; 3 periods) and
    checkerboards (4 cell sizes), in random colour pairs.
  * OOD "other images": 12 scikit-image data images that are not ImageNet
    photos (Hubble deep field, retina, IHC and cell microscopy, coins, moon,
    scanned page, text, horse silhouette, Shepp-Logan phantom, logo), 4 views
    each: the nearest-to-ID of the three sets.

Feature methods use the MobileNetV2 tensor `flat` (the flattened
GlobalAveragePool output, 1280-d, the input of the classifier Gemm); the
calibration features are the reference set (kNN scores them leave-one-out).
kNN uses k = 12 = the number of views per photo: scored leave-one-out, a
calibration image has 11 sibling views of its own photo, so with k <= 11 the
threshold would measure the distance between views of one photo instead of
between photos (with k = 10 no new ID photo passed it).

Usage: python3 scripts/bench/guard_mobilenet.py --bridgeml PATH [--work DIR] [--k 12] [--markdown OUT.md]
Dev/benchmark only: needs /work/shared/assets/mobilenet_v2_imagenet.onnx,
numpy, Pillow, scikit-image, matplotlib.
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import time

import numpy as np
from PIL import Image, ImageFilter, ImageOps

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
FIX = os.path.join(ROOT, "tests", "fixtures", "images")
SIZES = [(224, 224), (256, 256), (320, 240), (500, 375), (640, 480), (96, 96)]
METHODS = ["energy", "msp", "maxlogit", "mahalanobis", "knn"]
OOD_SETS = ["ood_noise", "ood_textures", "ood_other"]


def skimage_path(name):
    import skimage

    return os.path.join(os.path.dirname(skimage.__file__), "data", name)


def matplotlib_path(name):
    import matplotlib

    return os.path.join(matplotlib.get_data_path(), "sample_data", name)


CALIB_PHOTOS = [os.path.join(FIX, "chelsea.png"), os.path.join(FIX, "china.jpg")] + [
    skimage_path(f) for f in ["astronaut.png", "rocket.jpg", "motorcycle_left.png", "motorcycle_right.png"]
]
ID_PHOTOS = [os.path.join(FIX, "coffee.png"), os.path.join(FIX, "flower.jpg"), skimage_path("camera.png"),
             matplotlib_path("grace_hopper.jpg")]


def variants(im):
    """12 deterministic views of one photo."""
    w, h = im.size

    def crop(fx0, fy0, fx1, fy1):
        return im.crop((int(w * fx0), int(h * fy0), int(w * fx1), int(h * fy1)))

    def rot(deg):
        r = im.rotate(deg, resample=Image.BILINEAR)
        return r.crop((w // 8, h // 8, w - w // 8, h - h // 8))

    return [
        im,
        ImageOps.mirror(im),
        crop(0.075, 0.075, 0.925, 0.925),
        crop(0.15, 0.15, 0.85, 0.85),
        crop(0.0, 0.0, 0.75, 0.75),
        crop(0.25, 0.0, 1.0, 0.75),
        crop(0.0, 0.25, 0.75, 1.0),
        crop(0.25, 0.25, 1.0, 1.0),
        rot(8),
        rot(-8),
        im.point(lambda v: int(min(255, v * 1.2))),
        ImageOps.mirror(im).point(lambda v: int(v * 0.8)),
    ]


def write_photos(photos, d):
    os.makedirs(d)
    for p in photos:
        im = Image.open(p).convert("RGB")
        stem = os.path.splitext(os.path.basename(p))[0]
        for k, v in enumerate(variants(im)):
            v.save(os.path.join(d, f"{stem}_{k:02d}.png"))


def write_noise(d, rng):
    os.makedirs(d)
    kinds = {
        "uniform_rgb": lambda h, w: rng.integers(0, 256, (h, w, 3)),
        "uniform_grey": lambda h, w: np.repeat(rng.integers(0, 256, (h, w, 1)), 3, axis=2),
        "gauss30": lambda h, w: rng.normal(128, 30, (h, w, 3)),
        "gauss70": lambda h, w: rng.normal(128, 70, (h, w, 3)),
        "blocky": lambda h, w: np.kron(rng.integers(0, 256, ((h + 7) // 8, (w + 7) // 8, 3)),
                                       np.ones((8, 8, 1)))[:h, :w],
        "smooth": None,
        "salt_pepper": lambda h, w: np.repeat(
            np.where(rng.random((h, w, 1)) < 0.5, 0, 255) * (rng.random((h, w, 1)) < 0.2)
            + 128 * (rng.random((h, w, 1)) >= 0.2), 3, axis=2),
        "low_contrast": lambda h, w: rng.integers(64, 192, (h, w, 3)),
    }
    for kind, f in kinds.items():
        for (w, h) in SIZES:
            if kind == "smooth":
                im = Image.fromarray(rng.integers(0, 256, (h, w, 3)).astype(np.uint8)).filter(
                    ImageFilter.GaussianBlur(radius=4))
            else:
                im = Image.fromarray(np.clip(f(h, w), 0, 255).astype(np.uint8))
            im.save(os.path.join(d, f"{kind}_{w}x{h}.png"))


def write_textures(d, rng):
    os.makedirs(d)
    for name in ["brick.png", "grass.png", "gravel.png"]:
        im = Image.open(skimage_path(name)).convert("RGB")
        w, h = im.size
        views = [im, im.crop((0, 0, w // 2, h // 2)), im.crop((w // 2, 0, w, h // 2)),
                 im.crop((0, h // 2, w // 2, h)), im.crop((w // 2, h // 2, w, h)),
                 im.crop((w // 8, h // 8, w - w // 8, h - h // 8)),
                 im.rotate(90), im.crop((w // 4, h // 4, 3 * w // 4, 3 * h // 4)).rotate(45)]
        for k, v in enumerate(views):
            v.save(os.path.join(d, f"{os.path.splitext(name)[0]}_{k}.png"))

    def pair():
        return rng.integers(0, 256, 3), rng.integers(0, 256, 3)

    yy, xx = np.mgrid[0:300, 0:400]
    for orient in ["h", "v", "d"]:
        for period in [6, 16, 40]:
            a, b = pair()
            coord = {"h": yy, "v": xx, "d": xx + yy}[orient]
            m = ((coord // (period // 2)) % 2).astype(bool)[..., None]
            Image.fromarray(np.where(m, a, b).astype(np.uint8)).save(
                os.path.join(d, f"stripes_{orient}{period}.png"))
    for cell in [4, 12, 32, 75]:
        for rep in range(3):
            a, b = pair()
            m = (((yy // cell) + (xx // cell)) % 2).astype(bool)[..., None]
            Image.fromarray(np.where(m, a, b).astype(np.uint8)).save(
                os.path.join(d, f"checker{cell}_{rep}.png"))
    # scikit-image's own board and 3 anti-diagonal stripe patterns.
    Image.open(skimage_path("chessboard_RGB.png")).convert("RGB").save(os.path.join(d, "sk_chessboard.png"))
    for period in [10, 24, 60]:
        a, b = pair()
        m = (((xx - yy) // (period // 2)) % 2).astype(bool)[..., None]
        Image.fromarray(np.where(m, a, b).astype(np.uint8)).save(os.path.join(d, f"stripes_a{period}.png"))


OTHER = ["hubble_deep_field.jpg", "retina.jpg", "ihc.png", "coins.png", "moon.png", "page.png", "text.png",
         "horse.png", "cell.png", "microaneurysms.png", "phantom.png", "logo.png"]


def write_other(d):
    """Non-photographic or out-of-ImageNet scikit-image images, 4 views each."""
    os.makedirs(d)
    for name in OTHER:
        im = Image.open(skimage_path(name))
        if im.mode in ("RGBA", "LA", "P"):
            bg = Image.new("RGBA", im.size, (255, 255, 255, 255))
            im = Image.alpha_composite(bg, im.convert("RGBA"))
        im = im.convert("RGB")
        if min(im.size) < 64:  # too small to crop meaningfully
            im = im.resize((im.size[0] * 4, im.size[1] * 4), Image.NEAREST)
        w, h = im.size
        views = [im, ImageOps.mirror(im), im.crop((w * 3 // 20, h * 3 // 20, w * 17 // 20, h * 17 // 20)),
                 im.rotate(90, expand=True)]
        for k, v in enumerate(views):
            v.save(os.path.join(d, f"{os.path.splitext(name)[0]}_{k}.png"))


def make_sets(work, seed):
    if os.path.isdir(work):
        shutil.rmtree(work)
    os.makedirs(work)
    rng = np.random.default_rng(seed)
    write_photos(CALIB_PHOTOS, os.path.join(work, "calib"))
    write_photos(ID_PHOTOS, os.path.join(work, "id"))
    write_noise(os.path.join(work, "ood_noise"), rng)
    write_textures(os.path.join(work, "ood_textures"), rng)
    write_other(os.path.join(work, "ood_other"))
    return {k: len(os.listdir(os.path.join(work, k))) for k in ["calib", "id"] + OOD_SETS}


def run(cmd):
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit(f"failed ({r.returncode}): {' '.join(cmd)}\n{r.stderr}")
    return r.stdout


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bridgeml", required=True)
    ap.add_argument("--model", default="/work/shared/assets/mobilenet_v2_imagenet.onnx")
    ap.add_argument("--spec", default=os.path.join(ROOT, "examples/specs/imagenet_pil.toml"))
    ap.add_argument("--work", default="/tmp/bridgeml_guard_mobilenet")
    ap.add_argument("--features", default="flat")
    ap.add_argument("--k", type=int, default=12)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--methods", default=",".join(METHODS))
    ap.add_argument("--markdown")
    a = ap.parse_args()
    counts = make_sets(a.work, a.seed)
    print(json.dumps({"images": counts}), flush=True)
    mc = ["--model", a.model, "--spec", a.spec]
    rows = []
    for method in a.methods.split(","):
        guard = os.path.join(a.work, f"guard_{method}.json")
        extra = ["--features", a.features, "--k", str(a.k)] if method in ("mahalanobis", "knn") else []
        t0 = time.time()
        cal = json.loads(run([a.bridgeml, "guard", "calibrate", *mc, "--data", os.path.join(a.work, "calib"),
                              "--method", method, "--tpr", "0.95", *extra, "--output", guard, "--format", "json"]))
        print(json.dumps({"method": method, "calibrate_seconds": round(time.time() - t0, 1), **cal}), flush=True)
        for ood in OOD_SETS:
            ev = json.loads(run([a.bridgeml, "guard", "eval", "--guard", guard, *mc, "--id",
                                 os.path.join(a.work, "id"), "--ood", os.path.join(a.work, ood), "--format", "json"]))
            row = {"ood": ood, "method": method, **{k: ev.get(k) for k in
                   ["auroc", "aupr_in", "aupr_out", "fpr_at_95_tpr", "id_pass_rate", "ood_pass_rate", "n_id",
                    "n_ood", "threshold"]}}
            rows.append(row)
            print(json.dumps(row), flush=True)
    names = {"ood_noise": "noise", "ood_textures": "textures", "ood_other": "other images"}
    lines = ["| OOD set | method | AUROC | AUPR-In | AUPR-Out | FPR@95TPR | ID pass rate | OOD pass rate |",
             "|---|---|---:|---:|---:|---:|---:|---:|"]
    for ood in names:
        for r in [r for r in rows if r["ood"] == ood]:
            pct = [f"{100 * r[k]:.2f}" for k in
                   ["auroc", "aupr_in", "aupr_out", "fpr_at_95_tpr", "id_pass_rate", "ood_pass_rate"]]
            lines.append(f"| {names[ood]} ({r['n_ood']}) | {r['method']} | " + " | ".join(pct) + " |")
    table = "\n".join(lines)
    print(table)
    if a.markdown:
        with open(a.markdown, "w") as f:
            f.write(table + "\n")


if __name__ == "__main__":
    main()
