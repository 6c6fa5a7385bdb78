#!/usr/bin/env python3
"""Generate testdata/models/transformer_tiny.onnx: a small transformer encoder for the
`dynamic` pass test (crates/qopt/tests/dynamic_ort.rs).

Requirements (tools/requirements.txt): onnx==1.22.0, numpy.

Two pre-norm encoder layers (d_model 64, 4 heads, FFN 128, sequence 16) on an input of
token embeddings [1, 16, 64], built with onnx.helper from seeded random weights:
LayerNormalization, Q/K/V projections (MatMul + Add), scaled dot-product attention
(activation x activation MatMuls and Softmax), the output projection, an erf-Gelu FFN (MatMul
+ Add), residual Adds, and a final Gemm classifier on the first token. Opset 17.

    gen_transformer.py OUT.onnx
"""
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

D, H, F, S = 64, 4, 128, 16


def main(out):
    r = np.random.default_rng(2024)
    inits, nodes = [], []

    def w(name, shape, std):
        inits.append(numpy_helper.from_array(r.normal(0, std, shape).astype(np.float32), name))
        return name

    def c(name, arr, dtype=np.float32):
        inits.append(numpy_helper.from_array(np.asarray(arr, dtype=dtype), name))
        return name

    def node(op, ins, out, **kw):
        nodes.append(helper.make_node(op, ins, [out], out, **kw))
        return out

    c("head_shape", [1, S, H, D // H], np.int64)
    c("merge_shape", [1, S, D], np.int64)
    c("scale", 1.0 / np.sqrt(D // H))
    c("sqrt2", np.sqrt(2.0))
    c("one", 1.0)
    c("half", 0.5)
    x = "x"
    for l in range(2):
        p = f"l{l}"
        ln = node("LayerNormalization", [x, c(f"{p}_g1", np.ones(D)), c(f"{p}_b1", np.zeros(D))], f"{p}_ln1", axis=-1)
        heads = {}
        for t in "qkv":
            m = node("MatMul", [ln, w(f"{p}_w{t}", (D, D), D ** -0.5)], f"{p}_{t}_mm")
            a = node("Add", [m, w(f"{p}_b{t}", (D,), 0.02)], f"{p}_{t}")
            rs = node("Reshape", [a, "head_shape"], f"{p}_{t}_heads")
            perm = [0, 2, 3, 1] if t == "k" else [0, 2, 1, 3]
            heads[t] = node("Transpose", [rs], f"{p}_{t}_t", perm=perm)
        s = node("MatMul", [heads["q"], heads["k"]], f"{p}_scores")
        s = node("Mul", [s, "scale"], f"{p}_scaled")
        s = node("Softmax", [s], f"{p}_attn", axis=-1)
        o = node("MatMul", [s, heads["v"]], f"{p}_ctx")
        o = node("Transpose", [o], f"{p}_ctx_t", perm=[0, 2, 1, 3])
        o = node("Reshape", [o, "merge_shape"], f"{p}_ctx_merged")
        o = node("MatMul", [o, w(f"{p}_wo", (D, D), D ** -0.5)], f"{p}_o_mm")
        o = node("Add", [o, w(f"{p}_bo", (D,), 0.02)], f"{p}_o")
        x = node("Add", [x, o], f"{p}_res1")
        ln = node("LayerNormalization", [x, c(f"{p}_g2", np.ones(D)), c(f"{p}_b2", np.zeros(D))], f"{p}_ln2", axis=-1)
        f = node("MatMul", [ln, w(f"{p}_w1", (D, F), D ** -0.5)], f"{p}_ff1_mm")
        f = node("Add", [f, w(f"{p}_bf1", (F,), 0.02)], f"{p}_ff1")
        # Gelu as PyTorch exports it before opset 20: x * 0.5 * (1 + erf(x / sqrt(2))).
        e = node("Div", [f, "sqrt2"], f"{p}_gelu_div")
        e = node("Erf", [e], f"{p}_gelu_erf")
        e = node("Add", [e, "one"], f"{p}_gelu_add")
        e = node("Mul", [f, e], f"{p}_gelu_mul")
        f = node("Mul", [e, "half"], f"{p}_gelu")
        f = node("MatMul", [f, w(f"{p}_w2", (F, D), F ** -0.5)], f"{p}_ff2_mm")
        f = node("Add", [f, w(f"{p}_bf2", (D,), 0.02)], f"{p}_ff2")
        x = node("Add", [x, f], f"{p}_res2")
    c("first_starts", [0], np.int64)
    c("first_ends", [1], np.int64)
    c("first_axes", [1], np.int64)
    c("flat_shape", [1, D], np.int64)
    cls = node("Slice", [x, "first_starts", "first_ends", "first_axes"], "cls_token")
    cls = node("Reshape", [cls, "flat_shape"], "cls_flat")
    node("Gemm", [cls, w("w_cls", (10, D), D ** -0.5), w("b_cls", (10,), 0.02)], "logits", transB=1)
    g = helper.make_graph(
        nodes,
        "transformer_tiny",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, S, D])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, 10])],
        inits,
    )
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)], producer_name="qopt tools/gen_transformer.py")
    m.ir_version = 8
    onnx.checker.check_model(m, full_check=True)
    onnx.save(m, out)


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    main(sys.argv[1])
