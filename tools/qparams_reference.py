#!/usr/bin/env python3
# pip requirements: numpy, onnx==1.22.0, onnxruntime==1.32.0  (see tools/requirements.txt)
"""Reference quantization numerics for qopt-calib's qparams module, written to
testdata/calib/qparams.json:

- scale/zero point from a range: ONNX Runtime's `quant_utils.compute_scale_zp` with the
  integer range of each scheme (int8 asymmetric [-128, 127], uint8 asymmetric [0, 255],
  int8 symmetric narrow [-127, 127] for weights, uint8 symmetric);
- QuantizeLinear / DequantizeLinear outputs from ONNX's reference implementation
  (`onnx.reference.ReferenceEvaluator`, opset 21), per tensor and per axis, on inputs that
  include exact rounding ties and saturating values.

Run: /work/venv/bin/python tools/qparams_reference.py
"""

import json
import os

import numpy as np
from onnx import TensorProto, helper
from onnx.reference import ReferenceEvaluator
from onnxruntime.quantization.quant_utils import compute_scale_zp

OUT = os.path.join(os.path.dirname(__file__), "..", "testdata", "calib", "qparams.json")
SCHEMES = {
    "i8": (np.int8, -128, 127, False),
    "u8": (np.uint8, 0, 255, False),
    "i8_sym_narrow": (np.int8, -127, 127, True),
    "u8_sym": (np.uint8, 0, 255, True),
}


def qdq(x, scale, zp, axis=None):
    dt = TensorProto.INT8 if zp.dtype == np.int8 else TensorProto.UINT8
    attrs = {} if axis is None else {"axis": axis}
    g = helper.make_graph(
        [
            helper.make_node("QuantizeLinear", ["x", "s", "z"], ["q"], **attrs),
            helper.make_node("DequantizeLinear", ["q", "s", "z"], ["y"], **attrs),
        ],
        "g",
        [
            helper.make_tensor_value_info("x", TensorProto.FLOAT, list(x.shape)),
            helper.make_tensor_value_info("s", TensorProto.FLOAT, list(scale.shape)),
            helper.make_tensor_value_info("z", dt, list(zp.shape)),
        ],
        [helper.make_tensor_value_info("q", dt, None), helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
    )
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 21)])
    q, y = ReferenceEvaluator(m).run(None, {"x": x, "s": scale, "z": zp})
    return q, y


def main():
    rng = np.random.default_rng(7)
    ranges = [(-1.0, 2.0), (0.5, 2.55), (-2.55, -1.0), (-0.37, 5.21), (0.0, 0.0), (-1e-3, 1e-3), (-123.4, 0.01)]
    ranges += [tuple(sorted(rng.normal(0, 3, 2).tolist())) for _ in range(20)]
    scale_zp = []
    for name, (dt, qmin, qmax, sym) in SCHEMES.items():
        for lo, hi in ranges:
            lo32, hi32 = np.float32(lo), np.float32(hi)
            zp, s = compute_scale_zp(np.array(lo32), np.array(hi32), np.array(qmin, dt), np.array(qmax, dt), symmetric=sym)
            scale_zp.append({"scheme": name, "min": float(lo32), "max": float(hi32), "scale": float(np.float32(s)), "zp": int(zp)})

    quant = []
    ties = (np.arange(-20, 20, dtype=np.float32) + 0.5) * np.float32(0.25)
    x = np.concatenate([ties, rng.normal(0, 2, 60).astype(np.float32), np.float32([1e6, -1e6, 0.0, -0.0])])
    for dt, scale, zp in [(np.int8, 0.25, 0), (np.int8, 0.03, -7), (np.uint8, 0.25, 128), (np.uint8, 0.011, 3)]:
        q, y = qdq(x, np.array(scale, np.float32), np.array(zp, dt))
        quant.append({"x": x.tolist(), "scale": [scale], "zp": [zp], "dtype": "i8" if dt == np.int8 else "u8", "axis": None, "q": q.astype(int).tolist(), "dq": y.tolist()})
    xc = rng.normal(0, 1, (3, 8)).astype(np.float32)
    sc = np.float32([0.01, 0.02, 0.5])
    zc = np.int8([0, 0, 0])
    q, y = qdq(xc, sc, zc, axis=0)
    quant.append({"x": xc.ravel().tolist(), "shape": [3, 8], "scale": sc.tolist(), "zp": zc.astype(int).tolist(), "dtype": "i8", "axis": 0, "q": q.ravel().astype(int).tolist(), "dq": y.ravel().tolist()})

    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    with open(OUT, "w") as f:
        json.dump({"generator": "tools/qparams_reference.py", "scale_zp": scale_zp, "quantize": quant}, f)
        f.write("\n")
    print("wrote", os.path.normpath(OUT))


if __name__ == "__main__":
    main()
