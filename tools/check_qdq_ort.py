#!/usr/bin/env python3
"""Cross-check qopt's `qdq` against ONNX Runtime's quantize_static given the same ranges.

Requirements (tools/requirements.txt): onnx==1.22.0, onnxruntime==1.32.0, numpy.

    check_qdq_ort.py gen DIR
        Writes DIR/model.onnx (a small fp32 CNN: Conv+bias, Relu, depthwise Conv, Relu6,
        residual Add, MaxPool, Concat, GlobalAveragePool, Flatten, Gemm), DIR/ranges.json
        (min/max of every float tensor over random calibration inputs, from ONNX Runtime),
        DIR/ort.onnx (ORT quantize_static, QDQ, per_channel=True, int8 activations and
        weights, every activation's rmin/rmax forced to ranges.json through
        TensorQuantOverrides) and DIR/ort_qparams.json (scale and zero point of every
        QuantizeLinear output of ort.onnx, read with onnx).

    check_qdq_ort.py check MODEL...
        Every MODEL passes onnx.checker (full_check) and runs in ONNX Runtime on seeded
        random inputs; prints one line per model.

    check_qdq_ort.py same A B
        A and B give the same outputs (within 1e-6 relative) in ONNX Runtime on seeded
        random inputs (an opset upgrade must not change what a model computes).

    check_qdq_ort.py compare DIR QOPT_MODEL
        Checks QOPT_MODEL with onnx.checker (full_check), runs both models in ONNX Runtime
        and compares: the activation parameters tensor by tensor, the int8 weights and int32
        biases, and the outputs. Prints a JSON report; exits 1 on any mismatch.
"""
import json
import os
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper
import onnxruntime as ort
from onnxruntime.quantization import (
    CalibrationDataReader,
    QuantFormat,
    QuantType,
    quantize_static,
)

RNG = np.random.default_rng(0)
INPUT = "x"
SHAPE = [1, 3, 8, 8]


def const(name, arr):
    return numpy_helper.from_array(np.asarray(arr, dtype=np.float32), name)


def build_model():
    r = np.random.default_rng(1)
    inits = [
        const("w1", r.normal(0, 0.5, (8, 3, 3, 3))),
        const("b1", r.normal(0, 0.1, (8,))),
        const("w2", r.normal(0, 0.5, (8, 1, 3, 3))),
        const("b2", r.normal(0, 0.1, (8,))),
        const("w3", r.normal(0, 0.3, (8, 8, 1, 1))),
        const("b3", r.normal(0, 0.1, (8,))),
        const("w4", r.normal(0, 0.3, (4, 3, 1, 1))),
        const("wf", r.normal(0, 0.3, (10, 12))),
        const("bf", r.normal(0, 0.1, (10,))),
        const("zero", 0.0),
        const("six", 6.0),
    ]
    nodes = [
        helper.make_node("Conv", ["x", "w1", "b1"], ["c1"], "conv1", pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c1"], ["r1"], "relu1"),
        helper.make_node("Conv", ["r1", "w2", "b2"], ["c2"], "dwconv", pads=[1, 1, 1, 1], group=8),
        helper.make_node("Clip", ["c2", "zero", "six"], ["r2"], "relu6"),
        helper.make_node("Conv", ["r2", "w3", "b3"], ["c3"], "conv3"),
        helper.make_node("Add", ["c3", "r1"], ["a"], "residual"),
        helper.make_node("MaxPool", ["a"], ["p"], "pool", kernel_shape=[2, 2], strides=[2, 2]),
        helper.make_node("Conv", ["x", "w4"], ["c4"], "conv4", strides=[2, 2]),
        helper.make_node("Concat", ["p", "c4"], ["cat"], "concat", axis=1),
        helper.make_node("GlobalAveragePool", ["cat"], ["gap"], "gap"),
        helper.make_node("Flatten", ["gap"], ["flat"], "flatten"),
        helper.make_node("Gemm", ["flat", "wf", "bf"], ["logits"], "fc", transB=1),
    ]
    g = helper.make_graph(
        nodes,
        "qdq_check",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, SHAPE)],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, 10])],
        inits,
    )
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])
    m.ir_version = 7
    onnx.checker.check_model(m, full_check=True)
    return m


def samples(n, seed):
    r = np.random.default_rng(seed)
    return [r.normal(0, 1, SHAPE).astype(np.float32) for _ in range(n)]


def tensor_ranges(model_path, data):
    """min/max of every float tensor over `data`, by exposing each as a graph output."""
    m = onnx.load(model_path)
    m = onnx.shape_inference.infer_shapes(m)
    outs = {o.name for o in m.graph.output}
    for vi in m.graph.value_info:
        if vi.type.tensor_type.elem_type == TensorProto.FLOAT and vi.name not in outs:
            m.graph.output.append(vi)
    sess = ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"])
    names = [o.name for o in sess.get_outputs()]
    lo, hi = {}, {}
    for x in data:
        for n, v in zip(names, sess.run(None, {INPUT: x})):
            lo[n] = min(lo.get(n, np.inf), float(v.min()))
            hi[n] = max(hi.get(n, -np.inf), float(v.max()))
        lo[INPUT] = min(lo.get(INPUT, np.inf), float(x.min()))
        hi[INPUT] = max(hi.get(INPUT, -np.inf), float(x.max()))
    return {n: [lo[n], hi[n]] for n in sorted(lo)}


class Reader(CalibrationDataReader):
    def __init__(self, data):
        self.it = iter([{INPUT: x} for x in data])

    def get_next(self):
        return next(self.it, None)


def qparams_of(model):
    """{quantized tensor: (scale list, zero point list)} from every QuantizeLinear, keyed by
    the float tensor it reads (ORT's `_QuantizeLinear_Input` and qopt's `_float` suffixes
    for graph outputs removed)."""
    inits = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    out = {}
    for n in model.graph.node:
        if n.op_type != "QuantizeLinear" or n.input[0] in inits:
            continue
        name = n.input[0]
        for suffix in ("_QuantizeLinear_Input", "_float"):
            if name.endswith(suffix):
                name = name[: -len(suffix)]
        s = inits[n.input[1]].reshape(-1).tolist()
        z = inits[n.input[2]].reshape(-1).tolist() if len(n.input) > 2 else [0]
        out[name] = [s, [int(v) for v in z]]
    return out


def integer_inits(model):
    """{float initializer name: int array} for int8/int32 initializers feeding a
    DequantizeLinear, by ORT's `_quantized` and qopt's `_q` names."""
    inits = {t.name: t for t in model.graph.initializer}
    out = {}
    for n in model.graph.node:
        if n.op_type == "DequantizeLinear" and n.input[0] in inits:
            name = n.input[0]
            for suffix in ("_quantized", "_q"):
                if name.endswith(suffix):
                    name = name[: -len(suffix)]
            out[name] = numpy_helper.to_array(inits[n.input[0]])
    return out


def gen(d):
    os.makedirs(d, exist_ok=True)
    model_path = os.path.join(d, "model.onnx")
    onnx.save(build_model(), model_path)
    calib = samples(16, 2)
    ranges = tensor_ranges(model_path, calib)
    with open(os.path.join(d, "ranges.json"), "w") as f:
        json.dump(ranges, f, indent=1, sort_keys=True)
    overrides = {n: [{"rmin": np.float32(lo), "rmax": np.float32(hi)}] for n, (lo, hi) in ranges.items()}
    ort_path = os.path.join(d, "ort.onnx")
    quantize_static(
        model_path,
        ort_path,
        Reader(calib),
        quant_format=QuantFormat.QDQ,
        per_channel=True,
        activation_type=QuantType.QInt8,
        weight_type=QuantType.QInt8,
        extra_options={"TensorQuantOverrides": overrides},
    )
    with open(os.path.join(d, "ort_qparams.json"), "w") as f:
        json.dump(qparams_of(onnx.load(ort_path)), f, indent=1, sort_keys=True)


def run(path, data):
    sess = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    return np.stack([sess.run(None, {INPUT: x})[0] for x in data])


def compare(d, qopt_path):
    report = {"problems": []}
    problems = report["problems"]
    onnx.checker.check_model(onnx.load(qopt_path), full_check=True)
    report["checker"] = "ok"
    ref = onnx.load(os.path.join(d, "ort.onnx"))
    mine = onnx.load(qopt_path)
    rq, mq = qparams_of(ref), qparams_of(mine)
    if sorted(rq) != sorted(mq):
        problems.append({"quantized tensors": {"ort": sorted(rq), "qopt": sorted(mq)}})
    for name in sorted(set(rq) & set(mq)):
        (rs, rz), (ms, mz) = rq[name], mq[name]
        if rz != mz or not np.array_equal(np.float32(rs), np.float32(ms)):
            problems.append({name: {"ort": rq[name], "qopt": mq[name]}})
    report["activations"] = len(rq)
    ri, mi = integer_inits(ref), integer_inits(mine)
    if sorted(ri) != sorted(mi):
        problems.append({"integer initializers": {"ort": sorted(ri), "qopt": sorted(mi)}})
    for name in sorted(set(ri) & set(mi)):
        if ri[name].dtype != mi[name].dtype or not np.array_equal(ri[name], mi[name]):
            problems.append({name: "integer values differ"})
    report["integer_initializers"] = len(ri)
    data = samples(8, 3)
    a, b = run(os.path.join(d, "ort.onnx"), data), run(qopt_path, data)
    report["max_abs_output_diff"] = float(np.abs(a - b).max())
    if report["max_abs_output_diff"] > 0:
        problems.append({"outputs differ": report["max_abs_output_diff"]})
    print(json.dumps(report, indent=1))
    return 1 if problems else 0


def random_feeds(path, seed):
    sess = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    r = np.random.default_rng(seed)
    types = {"tensor(float)": np.float32, "tensor(int64)": np.int64, "tensor(int8)": np.int8,
             "tensor(uint8)": np.uint8, "tensor(int32)": np.int32}
    feeds = {}
    for i in sess.get_inputs():
        shape = [d if isinstance(d, int) else 1 for d in i.shape]
        feeds[i.name] = (r.normal(0, 1, shape) * 2).astype(types[i.type])
    return sess, feeds


def check(paths):
    for p in paths:
        onnx.checker.check_model(onnx.load(p), full_check=True)
        sess, feeds = random_feeds(p, 0)
        outs = sess.run(None, feeds)
        print(f"{p}: ok, {len(outs)} outputs")
    return 0


def same(a, b):
    sa, feeds = random_feeds(a, 0)
    sb = ort.InferenceSession(b, providers=["CPUExecutionProvider"])
    for x, y in zip(sa.run(None, feeds), sb.run(None, feeds)):
        err = float(np.abs(x - y).max() / max(np.abs(x).max(), 1e-30))
        print(f"max relative difference {err}")
        if err > 1e-6:
            return 1
    return 0


if __name__ == "__main__":
    if len(sys.argv) >= 3 and sys.argv[1] == "check":
        sys.exit(check(sys.argv[2:]))
    if len(sys.argv) == 4 and sys.argv[1] == "same":
        sys.exit(same(sys.argv[2], sys.argv[3]))
    if len(sys.argv) == 3 and sys.argv[1] == "gen":
        gen(sys.argv[2])
    elif len(sys.argv) == 4 and sys.argv[1] == "compare":
        sys.exit(compare(sys.argv[2], sys.argv[3]))
    else:
        sys.exit(__doc__)
