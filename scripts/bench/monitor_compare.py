#!/usr/bin/env python3
"""Interleaved Rust-vs-numpy comparison for the issue-4 drift benchmarks.

The machine is shared and noisy, so each repeat runs, back to back, the Rust
case (its own process: one warm-up, one timed run; see
crates/bridgeml-monitor/benches/compare.rs), numpy pinned to one thread and
numpy at its default thread count, on the same shapes. Reported: the median
over repeats of each, the ratio of medians, and the median of the per-repeat
ratios, plus the load average before and after.

Usage:
  cargo bench -p bridgeml-monitor --bench compare --no-run   # prints the binary path
  python3 scripts/bench/monitor_compare.py --rust-bin <that path> [--repeats 7] [--cases psi,mmd5000,perm1000]
"""
import argparse
import os
import statistics
import subprocess
import time

import numpy as np
from threadpoolctl import threadpool_limits

from monitor_numpy import mmd2u, perm_test, psi

SHAPES = {
    "psi": "PSI, 1M vs 1M scores (Rust one thread)",
    "mmd5000": "exact MMD^2_u, n=m=5,000, d=512, f32",
    "perm1000": "100-permutation MMD test, n=m=1,000, d=128, f32",
}


def numpy_case(case, data):
    if case == "psi":
        return lambda: psi(data["ref"], data["cur"])
    if case == "mmd5000":
        return lambda: mmd2u(data["x5"], data["y5"], 512.0)
    if case == "perm1000":
        return lambda: perm_test(data["x1"], data["y1"], 128.0)
    raise ValueError(case)


def timed(f):
    t = time.perf_counter()
    f()
    return time.perf_counter() - t


def rust_once(binary, case):
    out = subprocess.run([binary, case, "1"], check=True, capture_output=True, text=True).stdout
    return float(out.split()[1])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rust-bin", required=True)
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--cases", default="psi,mmd5000,perm1000")
    a = ap.parse_args()
    rng = np.random.default_rng(0)
    data = {
        "ref": rng.normal(size=1_000_000),
        "cur": rng.normal(size=1_000_000) * 1.1 + 0.05,
        "x5": rng.normal(size=(5000, 512)).astype(np.float32),
        "y5": (rng.normal(size=(5000, 512)) + 0.02).astype(np.float32),
        "x1": rng.normal(size=(1000, 128)).astype(np.float32),
        "y1": (rng.normal(size=(1000, 128)) + 0.05).astype(np.float32),
    }
    cases = a.cases.split(",")
    load0 = os.getloadavg()
    res = {c: {"rust": [], "np1": [], "npdef": []} for c in cases}
    for c in cases:  # numpy warm-up
        with threadpool_limits(limits=1):
            numpy_case(c, data)()
    for rep in range(a.repeats):
        for c in cases:
            f = numpy_case(c, data)
            res[c]["rust"].append(rust_once(a.rust_bin, c))
            with threadpool_limits(limits=1):
                res[c]["np1"].append(timed(f))
            res[c]["npdef"].append(timed(f))
    load1 = os.getloadavg()
    print(f"numpy {np.__version__}; {a.repeats} interleaved repeats; "
          f"load average before {load0[0]:.1f}, after {load1[0]:.1f}")
    print("| case | Rust median | numpy 1 thr median | numpy default median | "
          "ratio np1/Rust (of medians) | median per-repeat ratio np1/Rust | npdef/Rust |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for c in cases:
        r, n1, nd = (res[c][k] for k in ("rust", "np1", "npdef"))
        mr, m1, md = statistics.median(r), statistics.median(n1), statistics.median(nd)
        per = statistics.median([b / x for x, b in zip(r, n1)])
        print(f"| {SHAPES[c]} | {mr * 1e3:.1f} ms | {m1 * 1e3:.1f} ms | {md * 1e3:.1f} ms | "
              f"{m1 / mr:.2f}x | {per:.2f}x | {md / mr:.2f}x |")
    print("raw (ms):")
    for c in cases:
        for k in ("rust", "np1", "npdef"):
            print(f"  {c:9s} {k:6s} " + " ".join(f"{v * 1e3:.1f}" for v in res[c][k]))


if __name__ == "__main__":
    main()
