#!/usr/bin/env python3
# Requirements: onnx==1.22.0 onnxruntime==1.32.0 numpy (tools/requirements.txt)
"""Generate the numeric fixtures of the `fuse` / `fold-bias` unit tests.

Each case is a small unfused ONNX graph (the layer and the ops `fuse` folds into it) with
seeded random weights. ONNX Runtime runs it with every graph optimisation disabled, so the
expected outputs come from ORT's unfused kernels, independently of qopt. The fixture file
holds every tensor (inputs, weights, ORT outputs) as text; the Rust tests build the same graph
(passes/src/fuse/tests.rs, one builder per case, keep them in sync with CASES below), check
their f64 reference evaluator against these outputs, then fuse and check the fused graph
against them within 1e-5 relative L2.

Run: python tools/gen_fuse_fixtures.py   (writes testdata/passes/fuse/fixtures/*.txt)
"""

import os

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

OUT = os.path.join(os.path.dirname(__file__), "..", "testdata", "passes", "fuse", "fixtures")


def f32(rng, *shape, lo=-1.0, hi=1.0):
    return rng.uniform(lo, hi, size=shape).astype(np.float32)


def bn_params(rng, c, prefix):
    return {
        f"{prefix}.scale": f32(rng, c, lo=0.5, hi=1.5),
        f"{prefix}.bias": f32(rng, c),
        f"{prefix}.mean": f32(rng, c),
        f"{prefix}.var": f32(rng, c, lo=0.1, hi=2.0),
    }


def conv_bn_nobias(rng):
    # Conv (no bias, stride 2, pads 1) -> BatchNormalization -> Relu
    inits = {"w": f32(rng, 4, 3, 3, 3)} | bn_params(rng, 4, "bn")
    nodes = [
        helper.make_node("Conv", ["x", "w"], ["c"], name="conv", pads=[1, 1, 1, 1], strides=[2, 2]),
        helper.make_node("BatchNormalization", ["c", "bn.scale", "bn.bias", "bn.mean", "bn.var"], ["b"],
                         name="bn", epsilon=1e-5),
        helper.make_node("Relu", ["b"], ["y"], name="relu"),
    ]
    return nodes, inits, {"x": f32(rng, 1, 3, 6, 6)}


def convt_add_bn(rng):
    # PaddlePaddle style: ConvTranspose (group 2, no bias) -> Add([1,6,1,1]) -> BN -> Relu
    inits = {"w": f32(rng, 4, 3, 2, 2), "cb": f32(rng, 1, 6, 1, 1)} | bn_params(rng, 6, "bn")
    nodes = [
        helper.make_node("ConvTranspose", ["x", "w"], ["t"], name="convt", group=2, strides=[2, 2],
                         pads=[0, 1, 1, 0], output_padding=[1, 0]),
        helper.make_node("Add", ["t", "cb"], ["a"], name="add"),
        helper.make_node("BatchNormalization", ["a", "bn.scale", "bn.bias", "bn.mean", "bn.var"], ["b"],
                         name="bn", epsilon=1e-3),
        helper.make_node("Relu", ["b"], ["y"], name="relu"),
    ]
    return nodes, inits, {"x": f32(rng, 1, 4, 3, 3)}


def gemm_bn(rng):
    # Gemm (transB=1, alpha 0.7, beta 0.5, C [4]) -> BatchNormalization
    inits = {"w": f32(rng, 4, 5), "c": f32(rng, 4)} | bn_params(rng, 4, "bn")
    nodes = [
        helper.make_node("Gemm", ["a", "w", "c"], ["g"], name="gemm", transB=1, alpha=0.7, beta=0.5),
        helper.make_node("BatchNormalization", ["g", "bn.scale", "bn.bias", "bn.mean", "bn.var"], ["y"],
                         name="bn", epsilon=1e-5),
    ]
    return nodes, inits, {"a": f32(rng, 3, 5)}


def dwconv_affine(rng):
    # Depthwise Conv (group 3, bias) -> Mul(k, .) -> Add(., [1,3,1,1]) -> Sub(., scalar) -> Div(., [3,1,1])
    inits = {
        "w": f32(rng, 3, 1, 3, 3), "b": f32(rng, 3),
        "k_mul": f32(rng, 3, 1, 1, lo=0.5, hi=2.0), "k_add": f32(rng, 1, 3, 1, 1),
        "k_sub": np.array(0.25, dtype=np.float32), "k_div": f32(rng, 3, 1, 1, lo=0.5, hi=2.0),
    }
    nodes = [
        helper.make_node("Conv", ["x", "w", "b"], ["c"], name="conv", group=3, pads=[1, 1, 1, 1]),
        helper.make_node("Mul", ["k_mul", "c"], ["m"], name="mul"),
        helper.make_node("Add", ["m", "k_add"], ["a"], name="add"),
        helper.make_node("Sub", ["a", "k_sub"], ["s"], name="sub"),
        helper.make_node("Div", ["s", "k_div"], ["y"], name="div"),
    ]
    return nodes, inits, {"x": f32(rng, 2, 3, 5, 5)}


def matmul_add(rng):
    # MatMul(A [3,5], B [5,4]) -> Add(c [4])
    inits = {"w": f32(rng, 5, 4), "c": f32(rng, 4)}
    nodes = [
        helper.make_node("MatMul", ["a", "w"], ["m"], name="matmul"),
        helper.make_node("Add", ["m", "c"], ["y"], name="add"),
    ]
    return nodes, inits, {"a": f32(rng, 3, 5)}


CASES = {
    "conv_bn_nobias": conv_bn_nobias,
    "convt_add_bn": convt_add_bn,
    "gemm_bn": gemm_bn,
    "dwconv_affine": dwconv_affine,
    "matmul_add": matmul_add,
}


def fmt(name, a):
    dims = ",".join(str(d) for d in a.shape) if a.ndim else "scalar"
    vals = " ".join(f"{float(v):.9g}" for v in a.reshape(-1))
    return f"tensor {name} {dims} {vals}\n"


def main():
    os.makedirs(OUT, exist_ok=True)
    for i, (case, build) in enumerate(CASES.items()):
        rng = np.random.default_rng(1000 + i)
        nodes, inits, feeds = build(rng)
        graph = helper.make_graph(
            nodes, case,
            [helper.make_tensor_value_info(k, TensorProto.FLOAT, v.shape) for k, v in feeds.items()],
            [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
            [numpy_helper.from_array(v, k) for k, v in inits.items()],
        )
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
        model.ir_version = 8
        so = ort.SessionOptions()
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
        sess = ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])
        (y,) = sess.run(["y"], feeds)
        # Record the output shape ORT computed, so the model passes the full checker too.
        model.graph.output[0].CopyFrom(helper.make_tensor_value_info("y", TensorProto.FLOAT, y.shape))
        onnx.checker.check_model(model, full_check=True)
        path = os.path.join(OUT, f"{case}.txt")
        with open(path, "w") as f:
            f.write(f"# {case}: generated by tools/gen_fuse_fixtures.py with onnxruntime {ort.__version__}; do not edit\n")
            for k, v in list(feeds.items()) + list(inits.items()):
                f.write(fmt(k, v))
            f.write(fmt("expected.y", y))
        print("wrote", path)


if __name__ == "__main__":
    main()
