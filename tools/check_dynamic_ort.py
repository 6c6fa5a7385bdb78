#!/usr/bin/env python3
"""Compare qopt's `dynamic` pass with ONNX Runtime's quantize_dynamic on the same model.

Requirements (tools/requirements.txt): onnx==1.22.0, onnxruntime==1.32.0, numpy.

    check_dynamic_ort.py MODEL QOPT_MODEL [--const-b-only]

Checks QOPT_MODEL with onnx.checker (full_check), quantizes MODEL with
onnxruntime.quantization.quantize_dynamic (int8 weights, per tensor, its defaults; with
--const-b-only, MatMulConstBOnly so that activation x activation MatMuls stay float, as
qopt leaves them), runs the fp32 model and both quantized models in ONNX Runtime on 32
seeded N(0, 1) inputs, and prints JSON: for each quantized model the mean relative L2
error of the outputs against fp32, the SQNR (dB) and the max abs error, plus the count of
MatMulInteger/ConvInteger/DynamicQuantizeLinear nodes in each.
"""
import json
import os
import shutil
import sys
import tempfile

import numpy as np
import onnx
import onnxruntime as ort
from onnxruntime.quantization import QuantType, quantize_dynamic


def run(path, feeds):
    s = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    return np.stack([s.run(None, f)[0] for f in feeds])


def errors(ref, out):
    diff = out - ref
    rel = [float(np.linalg.norm(d) / max(np.linalg.norm(r), 1e-12)) for d, r in zip(diff, ref)]
    sqnr = 10 * np.log10(float((ref**2).sum()) / max(float((diff**2).sum()), 1e-30))
    return {"rel_l2": float(np.mean(rel)), "sqnr_db": sqnr, "max_abs": float(np.abs(diff).max())}


def counts(path):
    m = onnx.load(path)
    ops = [n.op_type for n in m.graph.node]
    return {k: ops.count(k) for k in ("MatMulInteger", "ConvInteger", "DynamicQuantizeLinear")}


def main(model, mine, const_b_only):
    onnx.checker.check_model(onnx.load(mine), full_check=True)
    sess = ort.InferenceSession(model, providers=["CPUExecutionProvider"])
    inp = sess.get_inputs()[0]
    shape = [d if isinstance(d, int) else 1 for d in inp.shape]
    r = np.random.default_rng(0)
    feeds = [{inp.name: r.normal(0, 1, shape).astype(np.float32)} for _ in range(32)]
    with tempfile.TemporaryDirectory() as d:
        theirs = os.path.join(d, "ort_dynamic.onnx")
        # quantize_dynamic writes "<input>-inferred.onnx" next to its input and deletes it
        # afterwards: on the repository's copy two concurrent checks raced on that file (one
        # deleted it under the other: FileNotFoundError), and testdata/ is no place for scratch
        # files. Quantize a private copy.
        src = os.path.join(d, "input.onnx")
        shutil.copyfile(model, src)
        quantize_dynamic(
            src,
            theirs,
            weight_type=QuantType.QInt8,
            extra_options={"MatMulConstBOnly": const_b_only},
        )
        ref = run(model, feeds)
        a, b = run(theirs, feeds), run(mine, feeds)
        report = {
            "checker": "ok",
            "ort": {**errors(ref, a), **counts(theirs)},
            "qopt": {**errors(ref, b), **counts(mine)},
        }
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    args = [a for a in sys.argv[1:] if a != "--const-b-only"]
    if len(args) != 2:
        sys.exit(__doc__)
    main(args[0], args[1], "--const-b-only" in sys.argv)
