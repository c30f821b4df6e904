#!/usr/bin/env python3
"""Where ONNX Runtime spends its time in a model: per-op-type kernel time.

For each model: the node counts of the graph as given and as ORT optimizes it
(ORT_ENABLE_ALL), then ONNX Runtime's own profiler over RUNS runs of a seeded
random input (batch 1, 1 intra-op thread), summed per op type, in ms per run.
Used to see which QDQ pairs ORT fuses into integer kernels and which it has
to execute (docs/QUANTIZATION.md).

Usage: python3 scripts/bench/ort_op_profile.py MODEL.onnx [MODEL.onnx ...] [--runs 40]
"""
import argparse
import collections
import json
import os
import tempfile

import numpy as np
import onnx
import onnxruntime as ort


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("models", nargs="+")
    ap.add_argument("--runs", type=int, default=40)
    ap.add_argument("--threads", type=int, default=1)
    a = ap.parse_args()
    tmp = tempfile.mkdtemp()
    for path in a.models:
        m = onnx.load(path)
        given = collections.Counter(n.op_type for n in m.graph.node)
        o = ort.SessionOptions()
        o.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        o.intra_op_num_threads = a.threads
        o.optimized_model_filepath = os.path.join(tmp, "opt.onnx")
        ort.InferenceSession(path, o, providers=["CPUExecutionProvider"])
        optimized = collections.Counter(n.op_type for n in onnx.load(o.optimized_model_filepath).graph.node)
        o = ort.SessionOptions()
        o.intra_op_num_threads = a.threads
        o.enable_profiling = True
        o.profile_file_prefix = os.path.join(tmp, "prof")
        s = ort.InferenceSession(path, o, providers=["CPUExecutionProvider"])
        inp = s.get_inputs()[0]
        shape = [1 if not isinstance(d, int) else d for d in inp.shape]
        x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
        for _ in range(a.runs):
            s.run(None, {inp.name: x})
        prof = s.end_profiling()
        per = collections.Counter()
        for e in json.load(open(prof)):
            if e.get("cat") == "Node" and e["name"].endswith("_kernel_time"):
                per[e["args"]["op_name"]] += e["dur"]
        os.remove(prof)
        print(json.dumps({
            "model": path,
            "nodes_given": dict(given),
            "nodes_optimized": dict(optimized),
            "kernel_ms_per_run": round(sum(per.values()) / a.runs / 1000, 3),
            "per_op_ms_per_run": {k: round(v / a.runs / 1000, 3) for k, v in per.most_common()},
        }))


if __name__ == "__main__":
    main()
