#!/usr/bin/env python3
"""Check that a model fused by qopt (`--passes=fuse`) computes what the original computes.

    python tools/check_fused.py ORIG.onnx FUSED.onnx [--shape NAME=1,3,640,640 ...] [--seed 0] [--tol 1e-5]

1. `onnx.checker.check_model(FUSED, full_check=True)` must pass.
2. Both models run in ONNX Runtime (CPU, one thread, graph optimisations off so ORT's own
   fusions do not hide anything) on the same random inputs (numpy default_rng(seed), floats
   uniform in [-1, 1)). Every output must be within --tol relative L2 (|a - b| / |a|).

An output computed by a Sigmoid is compared on the Sigmoid's input (its logits): on random
inputs PP-OCR det's logits are -5..-48, where the sigmoid multiplies a relative error by
|logit| and ORT's approximate Sigmoid alone differs from the exact one by 4e-4, so the
probabilities would measure ORT's Sigmoid rather than the fusion. The logits keep their
name through `fuse` (a folded node takes the name of the value it replaces).

Prints one line per compared value and `OK` at the end; exits 1 on any failure.

pip requirements: onnx==1.22.0 onnxruntime>=1.20 numpy
"""

from __future__ import annotations

import argparse
import sys

import numpy as np
import onnx
import onnxruntime as ort
from onnx import helper


def parse_shapes(items):
    shapes = {}
    for item in items:
        name, sep, dims = item.rpartition("=")
        if not sep or not name:
            raise SystemExit(f"check_fused: bad --shape {item!r}; expected NAME=d0,d1,...")
        shapes[name] = [int(d) for d in dims.split(",")]
    return shapes


def compared_names(model: onnx.ModelProto) -> list[str]:
    """Graph outputs, with a Sigmoid-produced output replaced by the Sigmoid's input."""
    producer = {o: n for n in model.graph.node for o in n.output}
    names = []
    for out in model.graph.output:
        n = producer.get(out.name)
        names.append(n.input[0] if n is not None and n.op_type == "Sigmoid" else out.name)
    return names


def session(model: onnx.ModelProto, names: list[str]) -> ort.InferenceSession:
    m = onnx.ModelProto()
    m.CopyFrom(model)
    have = {o.name for o in m.graph.output}
    for name in names:
        if name not in have:
            m.graph.output.append(helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, None))
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    return ort.InferenceSession(m.SerializeToString(), so, providers=["CPUExecutionProvider"])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("original")
    ap.add_argument("fused")
    ap.add_argument("--shape", action="append", default=[], metavar="NAME=D0,D1,...")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--tol", type=float, default=1e-5)
    args = ap.parse_args()

    onnx.checker.check_model(args.fused, full_check=True)
    print(f"checker: {args.fused}: full_check passed")

    orig_m, fused_m = onnx.load(args.original), onnx.load(args.fused)
    if [o.name for o in orig_m.graph.output] != [o.name for o in fused_m.graph.output]:
        print("FAIL: graph outputs differ")
        return 1
    names = compared_names(orig_m)
    if compared_names(fused_m) != names:
        print(f"FAIL: compared values differ: {names} vs {compared_names(fused_m)}")
        return 1
    so, sf = session(orig_m, names), session(fused_m, names)

    given = parse_shapes(args.shape)
    rng = np.random.default_rng(args.seed)
    feeds = {}
    for inp in so.get_inputs():
        shape = given.get(inp.name) or [d if isinstance(d, int) and d > 0 else 1 for d in inp.shape]
        feeds[inp.name] = rng.uniform(-1.0, 1.0, size=shape).astype(np.float32)

    ro = dict(zip([o.name for o in so.get_outputs()], so.run(None, feeds)))
    rf = dict(zip([o.name for o in sf.get_outputs()], sf.run(None, feeds)))
    failed = False
    for name in names:
        a, b = ro[name].astype(np.float64), rf[name].astype(np.float64)
        if a.shape != b.shape:
            print(f"FAIL: {name}: shape {a.shape} vs {b.shape}")
            failed = True
            continue
        err = float(np.linalg.norm(a - b) / max(np.linalg.norm(a), 1e-300))
        verdict = "ok" if err <= args.tol else "FAIL"
        print(f"{verdict}: {name}: {list(a.shape)} relative L2 {err:.2e}")
        failed |= err > args.tol
    if failed:
        return 1
    print("OK")
    return 0


if __name__ == "__main__":
    sys.exit(main())
