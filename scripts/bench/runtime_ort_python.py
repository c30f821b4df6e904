#!/usr/bin/env python3
"""Runtime benchmark (issue 3): ONNX Runtime driven from Python vs bridgeml's
`ort` backend vs its `tract` backend, same model, batch sizes and threads, in
one run.

The Python side follows the same protocol as `bridgeml profile`: warm-up runs,
then measurement windows (each >= window_ms and >= min_runs runs) until the p50
of the last 3 windows are within 10 % of their mean (or max_windows), and
statistics over the runs of those last 3 windows. Inputs are prepared once,
outside the timed region, in both.

Usage:
  python3 scripts/bench/runtime_ort_python.py --model MODEL.onnx \
      --bridgeml target/release/bridgeml --batch 1,32 --threads 2 [--window-ms 1000]

Prints a Markdown table and, with --json, writes all figures to a file.
"""

import argparse
import json
import subprocess
import sys
import time

import numpy as np
import onnxruntime as ort


def measure_python(sess, feed, warmup, window_ms, min_runs, stable_windows, pct, max_windows):
    for _ in range(warmup):
        sess.run(None, feed)
    windows = []
    p50s = []
    stable = False
    while len(windows) < max_windows:
        start = time.perf_counter()
        samples = []
        while len(samples) < min_runs or (time.perf_counter() - start) * 1000 < window_ms:
            t0 = time.perf_counter()
            sess.run(None, feed)
            samples.append((time.perf_counter() - t0) * 1000)
        windows.append(samples)
        p50s.append(float(np.percentile(samples, 50)))
        if len(p50s) >= stable_windows:
            last = p50s[-stable_windows:]
            mean = sum(last) / len(last)
            if all(abs(p - mean) <= mean * pct / 100 for p in last):
                stable = True
                break
    pooled = np.array([s for w in windows[-stable_windows:] for s in w])
    return {
        "count": int(pooled.size),
        "mean_ms": float(pooled.mean()),
        "p50_ms": float(np.percentile(pooled, 50)),
        "p90_ms": float(np.percentile(pooled, 90)),
        "p95_ms": float(np.percentile(pooled, 95)),
        "p99_ms": float(np.percentile(pooled, 99)),
        "max_ms": float(pooled.max()),
        "stable": stable,
    }


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--bridgeml", default="target/release/bridgeml")
    ap.add_argument("--batch", default="1,32")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--window-ms", type=int, default=1000)
    ap.add_argument("--min-runs", type=int, default=10)
    ap.add_argument("--max-windows", type=int, default=10)
    ap.add_argument("--skip-tract", action="store_true")
    ap.add_argument("--json")
    args = ap.parse_args()
    batches = [int(b) for b in args.batch.split(",")]

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = args.threads
    sess = ort.InferenceSession(args.model, opts, providers=["CPUExecutionProvider"])
    inp = sess.get_inputs()[0]
    item_shape = [int(d) for d in inp.shape[1:]]
    rng = np.random.default_rng(0)

    results = {"python_ort": {}, "ort": {}, "tract": {}}
    results["meta"] = {
        "onnxruntime": ort.__version__,
        "threads": args.threads,
        "model": args.model,
    }
    for b in batches:
        x = rng.uniform(-1, 1, size=[b] + item_shape).astype(np.float32)
        results["python_ort"][b] = measure_python(
            sess, {inp.name: x}, args.warmup, args.window_ms, args.min_runs, 3, 10.0,
            args.max_windows,
        )
        print(f"python ort batch {b}: p50 {results['python_ort'][b]['p50_ms']:.3f} ms",
              file=sys.stderr)
    del sess

    backends = ["ort"] + ([] if args.skip_tract else ["tract"])
    for backend in backends:
        cmd = [
            args.bridgeml, "profile", "--model", args.model, "--backend", backend,
            "--batch", args.batch, "--threads", str(args.threads),
            "--warmup", str(args.warmup), "--window-ms", str(args.window_ms),
            "--min-runs", str(args.min_runs), "--max-windows", str(args.max_windows),
            "--format", "json",
        ]
        print("+ " + " ".join(cmd), file=sys.stderr)
        rep = json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout)
        for r in rep["results"]:
            results[backend][r["batch"]] = r
        results["meta"][f"{backend}_fingerprint"] = rep["fingerprint"]

    print(f"| batch | runtime | p50 ms | mean ms | p95 ms | p99 ms | inf/s | vs ORT-Python (p50) |")
    print("|---:|---|---:|---:|---:|---:|---:|---:|")
    for b in batches:
        base = results["python_ort"][b]["p50_ms"]
        for name, key in [("ORT (Python)", "python_ort"), ("bridgeml ort", "ort"),
                          ("bridgeml tract", "tract")]:
            r = results[key].get(b)
            if r is None:
                continue
            tput = r.get("throughput", b * 1000.0 / r["mean_ms"])
            print(f"| {b} | {name} | {r['p50_ms']:.3f} | {r['mean_ms']:.3f} | {r['p95_ms']:.3f} "
                  f"| {r['p99_ms']:.3f} | {tput:.1f} | {r['p50_ms'] / base:.3f}x |")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)


if __name__ == "__main__":
    main()
