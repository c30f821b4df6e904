#!/usr/bin/env python3
"""Runtime benchmark (issue 3): ONNX Runtime driven from Python vs bridgeml's
`ort` backend vs its `tract` backend, same model, batch sizes and threads, in
one run.

The Python side follows the same protocol as `bridgeml profile`: warm-up runs,
then measurement windows (each >= window_ms and >= min_runs runs) until the p50
of the last 3 windows are within 10 % of their mean (or max_windows), and
statistics over the runs of those last 3 windows. Inputs are prepared once,
outside the timed region, in both.

With --repeats R (default 1) the three runtimes are interleaved: each repeat
runs Python, then `bridgeml profile --backend ort`, then `--backend tract`, and
the table reports, per runtime and batch size, the median over repeats of each
statistic, and the median of the per-repeat ratios to ORT-Python's p50 (each
ratio pairs measurements taken a few seconds apart, so slow load changes on a
shared machine cancel).

Usage:
  python3 scripts/bench/runtime_ort_python.py --model MODEL.onnx \
      --bridgeml target/release/bridgeml --batch 1,32 --threads 2 [--window-ms 1000] \
      [--repeats 3]

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
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--json")
    args = ap.parse_args()
    batches = [int(b) for b in args.batch.split(",")]

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = args.threads
    sess = ort.InferenceSession(args.model, opts, providers=["CPUExecutionProvider"])
    inp = sess.get_inputs()[0]
    item_shape = [int(d) for d in inp.shape[1:]]
    rng = np.random.default_rng(0)

    runs = []  # one dict per repeat: runtime -> batch -> stats
    meta = {"onnxruntime": ort.__version__, "threads": args.threads, "model": args.model,
            "repeats": args.repeats}
    backends = ["ort"] + ([] if args.skip_tract else ["tract"])
    for rep in range(args.repeats):
        res = {"python_ort": {}, "ort": {}, "tract": {}}
        for b in batches:
            x = rng.uniform(-1, 1, size=[b] + item_shape).astype(np.float32)
            res["python_ort"][b] = measure_python(
                sess, {inp.name: x}, args.warmup, args.window_ms, args.min_runs, 3, 10.0,
                args.max_windows,
            )
            print(f"[{rep + 1}/{args.repeats}] python ort batch {b}: "
                  f"p50 {res['python_ort'][b]['p50_ms']:.3f} ms", file=sys.stderr)
        for backend in backends:
            cmd = [
                args.bridgeml, "profile", "--model", args.model, "--backend", backend,
                "--batch", args.batch, "--threads", str(args.threads),
                "--warmup", str(args.warmup), "--window-ms", str(args.window_ms),
                "--min-runs", str(args.min_runs), "--max-windows", str(args.max_windows),
                "--format", "json",
            ]
            print(f"[{rep + 1}/{args.repeats}] + " + " ".join(cmd), file=sys.stderr)
            out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
            rep_json = json.loads(out)
            for r in rep_json["results"]:
                res[backend][r["batch"]] = r
                print(f"[{rep + 1}/{args.repeats}] bridgeml {backend} batch {r['batch']}: "
                      f"p50 {r['p50_ms']:.3f} ms", file=sys.stderr)
            meta[f"{backend}_fingerprint"] = rep_json["fingerprint"]
        runs.append(res)
    del sess

    def med(key, b, stat):
        vals = [r[key][b][stat] for r in runs if b in r[key]]
        return float(np.median(vals)) if vals else None

    print(f"| batch | runtime | p50 ms | mean ms | p95 ms | p99 ms | inf/s | vs ORT-Python (p50) |")
    print("|---:|---|---:|---:|---:|---:|---:|---:|")
    summary = {}
    for b in batches:
        for name, key in [("ORT (Python)", "python_ort"), ("bridgeml ort", "ort"),
                          ("bridgeml tract", "tract")]:
            if med(key, b, "p50_ms") is None:
                continue
            ratios = [r[key][b]["p50_ms"] / r["python_ort"][b]["p50_ms"] for r in runs]
            st = {s: med(key, b, s) for s in ["p50_ms", "mean_ms", "p95_ms", "p99_ms"]}
            st["throughput"] = float(np.median(
                [r[key][b].get("throughput", b * 1000.0 / r[key][b]["mean_ms"]) for r in runs]))
            st["ratio_p50_median"] = float(np.median(ratios))
            st["ratios_p50"] = ratios
            summary.setdefault(key, {})[b] = st
            rs = "/".join(f"{v:.2f}" for v in ratios)
            print(f"| {b} | {name} | {st['p50_ms']:.3f} | {st['mean_ms']:.3f} | {st['p95_ms']:.3f} "
                  f"| {st['p99_ms']:.3f} | {st['throughput']:.1f} | {st['ratio_p50_median']:.3f}x"
                  + (f" ({rs})" if args.repeats > 1 else "") + " |")
    results = {"meta": meta, "runs": runs, "summary": summary}
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)


if __name__ == "__main__":
    main()
