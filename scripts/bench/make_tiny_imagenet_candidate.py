#!/usr/bin/env python3
"""A trivial ImageNet-shaped ONNX classifier for the serving load test.

input float32 [N, 3, 224, 224] -> GlobalAveragePool -> Flatten -> Gemm (3 -> 1000)
-> logits [N, 1000] (seeded random weights, opset 13). Used as the shadow
candidate of scripts/bench/serve_load.sh (`-- --candidate PATH`) to measure
what the shadow machinery costs (sampling, enqueue, the worker, logging both
answers) without the candidate's compute competing for the 2 cores.

Usage: python3 scripts/bench/make_tiny_imagenet_candidate.py OUT.onnx
"""
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

rng = np.random.default_rng(0)
w = numpy_helper.from_array(rng.standard_normal((3, 1000)).astype(np.float32), "w")
b = numpy_helper.from_array(np.zeros(1000, np.float32), "b")
g = helper.make_graph(
    [helper.make_node("GlobalAveragePool", ["input"], ["gap"]),
     helper.make_node("Flatten", ["gap"], ["flat"]),
     helper.make_node("Gemm", ["flat", "w", "b"], ["logits"])],
    "tiny_imagenet_candidate",
    [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 3, 224, 224])],
    [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 1000])],
    [w, b],
)
m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])
onnx.checker.check_model(m, full_check=True)
onnx.save(m, sys.argv[1])
