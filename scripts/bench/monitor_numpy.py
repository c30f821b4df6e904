#!/usr/bin/env python3
"""numpy baselines for the issue-4 drift benchmarks (same shapes as
crates/bridgeml-monitor/benches/monitor.rs). Runs each computation with BLAS
pinned to one thread (threadpoolctl) and at numpy's default, and prints
the best-of-N wall time.

Usage: python3 scripts/bench/monitor_numpy.py (standalone best-of-N), or
imported by monitor_compare.py (interleaved with the Rust runs).
"""
import time

import numpy as np
from threadpoolctl import threadpool_limits


def best(f, reps):
    ts = []
    for _ in range(reps):
        t = time.perf_counter()
        f()
        ts.append(time.perf_counter() - t)
    return min(ts)


rng = np.random.default_rng(0)


def psi(ref, cur, n_bins=10, eps=1e-4):
    edges = np.unique(np.quantile(ref, np.arange(1, n_bins) / n_bins))
    p = np.bincount(np.searchsorted(edges, ref, side="right"), minlength=len(edges) + 1) / len(ref)
    q = np.bincount(np.searchsorted(edges, cur, side="right"), minlength=len(edges) + 1) / len(cur)
    p, q = np.maximum(p, eps), np.maximum(q, eps)
    return np.sum((q - p) * np.log(q / p))


def mmd2u(x, y, sigma2):
    """Exact MMD^2_u via three Gram matrices (float32, BLAS)."""
    g = np.float32(1 / (2 * sigma2))
    nx, ny = (x * x).sum(1), (y * y).sum(1)

    def ksum(a, na, b, nb):
        d = na[:, None] + nb[None, :] - 2 * (a @ b.T)
        np.maximum(d, 0, out=d)
        return np.exp(-g * d).sum(dtype=np.float64)

    n, m = len(x), len(y)
    kxx = ksum(x, nx, x, nx) - n
    kyy = ksum(y, ny, y, ny) - m
    kxy = ksum(x, nx, y, ny)
    return kxx / (n * (n - 1)) + kyy / (m * (m - 1)) - 2 * kxy / (n * m)


def perm_test(x, y, sigma2, P=100, seed=0):
    """The clever numpy permutation test: pooled kernel once, all permutations
    as one matrix product K @ V."""
    z = np.concatenate([x, y])
    nz = (z * z).sum(1)
    d = nz[:, None] + nz[None, :] - 2 * (z @ z.T)
    np.maximum(d, 0, out=d)
    K = np.exp(-d / np.float32(2 * sigma2))
    np.fill_diagonal(K, 1)
    n, m = len(x), len(y)
    r = np.random.default_rng(seed)
    lab = np.r_[np.ones(n, np.float32), np.zeros(m, np.float32)]
    V = np.stack([lab] + [r.permutation(lab) for _ in range(P)], 1)
    KV = K @ V
    q = (V * KV).sum(0, dtype=np.float64)
    s = KV.sum(0, dtype=np.float64)[None] if False else (V * K.sum(1, dtype=np.float64)[:, None]).sum(0)
    tot = K.sum(dtype=np.float64)
    stats = (q - n) / (n * (n - 1)) + (tot - 2 * s + q - m) / (m * (m - 1)) - 2 * (s - q) / (n * m)
    return stats[0], (1 + np.sum(stats[1:] >= stats[0])) / (1 + P)


def main():
    ref = rng.normal(size=1_000_000)
    cur = rng.normal(size=1_000_000) * 1.1 + 0.05
    x5 = rng.normal(size=(5000, 512)).astype(np.float32)
    y5 = (rng.normal(size=(5000, 512)) + 0.02).astype(np.float32)
    x1 = rng.normal(size=(1000, 128)).astype(np.float32)
    y1 = (rng.normal(size=(1000, 128)) + 0.05).astype(np.float32)

    for label, limit in [("one thread", 1), ("default threads", None)]:
        with threadpool_limits(limits=limit):
            print(f"[numpy {np.__version__}, {label}]")
            print(f"  psi_1M_vs_1M           {best(lambda: psi(ref, cur), 5) * 1e3:9.1f} ms")
            print(f"  exact_mmd2u_n5000_d512 {best(lambda: mmd2u(x5, y5, 512.0), 3) * 1e3:9.1f} ms")
            print(f"  perm100_n1000_d128     {best(lambda: perm_test(x1, y1, 128.0), 5) * 1e3:9.1f} ms")


if __name__ == "__main__":
    main()
