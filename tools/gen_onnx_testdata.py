#!/usr/bin/env python3
"""Generate the small ONNX models under testdata/onnx/ that qopt-onnx's tests read.

    python tools/gen_onnx_testdata.py          # rewrites testdata/onnx/*

The models are built with the `onnx` package (its helpers and TensorProto fields, not qopt's
writer), so the Rust tests check qopt's reader against an independent encoder. For every model
ONNX Runtime can run, `<model>.expected.json` holds ORT's outputs (dtype, shape, little-endian
bytes as hex): the reference values the importer's decoded tensors must equal. The generated
files are committed so `cargo test` needs no Python; rerun this script after changing it.

pip requirements: onnx==1.22.0 onnxruntime>=1.20 numpy
"""

from __future__ import annotations

import json
import os
import sys

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "testdata", "onnx")

F = TensorProto.FLOAT


def opset(v: int):
    return [helper.make_opsetid("", v)]


def save(model: onnx.ModelProto, name: str, check: bool = True, run: bool = True) -> None:
    path = os.path.join(OUT, name)
    onnx.save(model, path)
    if check:
        onnx.checker.check_model(path, full_check=True)
    if run:
        sess = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
        feeds = {}
        rng = np.random.default_rng(0)
        for i in sess.get_inputs():
            shape = [d if isinstance(d, int) and d > 0 else 2 for d in i.shape]
            feeds[i.name] = rng.uniform(-1, 1, size=shape).astype(np.float32)
        outs = sess.run(None, feeds)
        expected = {
            "inputs": {k: encode(v) for k, v in feeds.items()},
            "outputs": {o.name: encode(v) for o, v in zip(sess.get_outputs(), outs)},
        }
        with open(path[: -len(".onnx")] + ".expected.json", "w") as f:
            json.dump(expected, f, indent=1, sort_keys=True)
            f.write("\n")
    print("wrote", path)


def encode(a: np.ndarray) -> dict:
    a = np.asarray(a)
    # tobytes() is C order whatever the layout (np.ascontiguousarray would turn scalars to 1-D).
    return {"dtype": str(a.dtype), "shape": list(a.shape), "hex": a.tobytes(order="C").hex()}


# ---- every element type in every storage field ---------------------------------------------

SPECIAL_F = [1.5, -0.0, float("inf"), float("-inf"), float("nan"), 1e-40, -3.25, 65504.0]


def typed(name: str, dtype: int, arr: np.ndarray, field: str | None) -> TensorProto:
    """A tensor stored in raw_data (field None) or in the given typed field."""
    if field is None:
        t = numpy_helper.from_array(arr, name)
        assert t.raw_data, name
        return t
    t = TensorProto()
    t.name = name
    t.data_type = dtype
    t.dims.extend(arr.shape)
    flat = arr.reshape(-1)
    if field == "int32_data" and arr.dtype == np.float16:
        values = flat.view(np.uint16).astype(np.int32).tolist()
    elif field == "int32_data":
        values = flat.astype(np.int32).tolist()
    else:
        values = flat.tolist()
    getattr(t, field).extend(values)
    return t


def tensors_model() -> onnx.ModelProto:
    cases = [
        ("f32", F, np.array(SPECIAL_F, np.float32).reshape(2, 4), "float_data"),
        ("f16", TensorProto.FLOAT16, np.array(SPECIAL_F[:7] + [6.1e-5], np.float16).reshape(4, 2), "int32_data"),
        ("f64", TensorProto.DOUBLE, np.array(SPECIAL_F + [1e300], np.float64).reshape(3, 3), "double_data"),
        ("i8", TensorProto.INT8, np.array([-128, -1, 0, 1, 127], np.int8), "int32_data"),
        ("u8", TensorProto.UINT8, np.array([0, 1, 128, 255], np.uint8).reshape(2, 2), "int32_data"),
        ("i32", TensorProto.INT32, np.array([-(2**31), -1, 0, 2**31 - 1], np.int32), "int32_data"),
        ("i64", TensorProto.INT64, np.array([-(2**63), -1, 0, 2**63 - 1], np.int64), "int64_data"),
        ("bool", TensorProto.BOOL, np.array([[True, False, True]]), "int32_data"),
    ]
    inits, nodes, outputs = [], [], []
    for tag, dt, arr, field in cases:
        for storage in ("raw", field):
            name = f"t_{tag}_{storage}"
            inits.append(typed(name, dt, arr, None if storage == "raw" else field))
            nodes.append(helper.make_node("Identity", [name], [name + "_out"], name=f"id_{name}"))
            outputs.append(helper.make_tensor_value_info(name + "_out", dt, list(arr.shape)))
    # A scalar and an empty tensor (no data at all).
    inits.append(numpy_helper.from_array(np.array(2.5, np.float32), "t_scalar"))
    empty = TensorProto()
    empty.name, empty.data_type = "t_empty", F
    empty.dims.extend([0, 3])
    inits.append(empty)
    for name, shape in (("t_scalar", []), ("t_empty", [0, 3])):
        nodes.append(helper.make_node("Identity", [name], [name + "_out"], name=f"id_{name}"))
        outputs.append(helper.make_tensor_value_info(name + "_out", F, shape))
    g = helper.make_graph(nodes, "tensors", [], outputs, inits)
    return helper.make_model(g, opset_imports=opset(13), ir_version=8)


# ---- external data ---------------------------------------------------------------------------


def external_models() -> None:
    a = np.arange(12, dtype=np.float32).reshape(3, 4) * 0.5
    b = np.array([7, -8, 9], np.int64)
    data = bytearray(b"\0" * 16) + a.tobytes()  # `a` at offset 16
    off_b = len(data)
    data += b.tobytes()
    with open(os.path.join(OUT, "external.onnx.data"), "wb") as f:
        f.write(bytes(data))

    def ext(name, arr, entries):
        t = TensorProto()
        t.name = name
        t.data_type = helper.np_dtype_to_tensor_dtype(arr.dtype)
        t.dims.extend(arr.shape)
        t.data_location = TensorProto.EXTERNAL
        for k, v in entries:
            e = t.external_data.add()
            e.key, e.value = k, v
        return t

    def model(entries_a, entries_b=None):
        ta = ext("a", a, entries_a)
        tb = ext("b", b, entries_b or [("location", "external.onnx.data"), ("offset", str(off_b))])
        nodes = [
            helper.make_node("Identity", ["a"], ["a_out"], name="id_a"),
            helper.make_node("Identity", ["b"], ["b_out"], name="id_b"),
        ]
        outs = [
            helper.make_tensor_value_info("a_out", F, [3, 4]),
            helper.make_tensor_value_info("b_out", TensorProto.INT64, [3]),
        ]
        g = helper.make_graph(nodes, "external", [], outs, [ta, tb])
        return helper.make_model(g, opset_imports=opset(13), ir_version=8)

    good = [("location", "external.onnx.data"), ("offset", "16"), ("length", str(a.nbytes))]
    save(model(good), "external.onnx")
    # Refused locations and sizes (not checked, not run: they are meant to be rejected).
    bad = {
        "external_absolute.onnx": [("location", "/etc/hostname")],
        "external_escape.onnx": [("location", "../onnx/external.onnx.data"), ("offset", "16")],
        "external_past_end.onnx": [("location", "external.onnx.data"), ("offset", str(len(data) - 8))],
        "external_bad_length.onnx": [("location", "external.onnx.data"), ("offset", "16"), ("length", "12")],
        "external_missing.onnx": [("location", "no_such_file.data")],
    }
    for name, entries in bad.items():
        save(model(entries), name, check=False, run=False)


# ---- Constant node forms -----------------------------------------------------------------------


def constants_model() -> onnx.ModelProto:
    raw = numpy_helper.from_array(np.array([[1.0, -2.0], [3.5, 4.0]], np.float32), "v")
    fd = typed("v", F, np.array([0.25, -0.5, 8.0], np.float32), "float_data")
    i32 = typed("v", TensorProto.INT32, np.array([3, -4], np.int32), "int32_data")
    sparse_linear = helper.make_sparse_tensor(
        numpy_helper.from_array(np.array([5.0, 6.0], np.float32), "sv"),
        numpy_helper.from_array(np.array([1, 6], np.int64), "si"),
        [2, 4],
    )
    sparse_coords = helper.make_sparse_tensor(
        numpy_helper.from_array(np.array([9, 8, 7], np.int64), "sv2"),
        numpy_helper.from_array(np.array([[0, 0], [1, 2], [2, 1]], np.int64), "si2"),
        [3, 3],
    )
    consts = [
        ("c_value_raw", dict(value=raw)),
        ("c_value_float_data", dict(value=fd)),
        ("c_value_int32", dict(value=i32)),
        ("c_value_float", dict(value_float=0.75)),
        ("c_value_floats", dict(value_floats=[1.0, 2.0, -3.0])),
        ("c_value_int", dict(value_int=-42)),
        ("c_value_ints", dict(value_ints=[1, 2, 3, 2**40])),
        ("c_sparse_linear", dict(sparse_value=sparse_linear)),
        ("c_sparse_coords", dict(sparse_value=sparse_coords)),
    ]
    nodes, outputs = [], []
    for name, kw in consts:
        nodes.append(helper.make_node("Constant", [], [name], doc_string=f"doc of {name}", **kw))
        nodes.append(helper.make_node("Identity", [name], [name + "_out"], name=f"id_{name}"))
        outputs.append(helper.make_empty_tensor_value_info(name + "_out"))
    g = helper.make_graph(nodes, "constants", [], outputs)
    m = helper.make_model(g, opset_imports=opset(13), ir_version=8)
    return onnx.shape_inference.infer_shapes(m)


def opaque_constant_model() -> onnx.ModelProto:
    """Weights qopt has no tensor type for: kept as opaque Constant nodes."""
    i16 = numpy_helper.from_array(np.array([1, -2, 300], np.int16), "w_i16")
    nodes = [
        helper.make_node("Cast", ["w_i16"], ["w_f"], to=F, name="cast_i16"),
        helper.make_node("Constant", [], ["s"], value_strings=["1.5", "-2"]),
        helper.make_node("Cast", ["s"], ["s_f"], to=F, name="cast_str"),
    ]
    outs = [helper.make_tensor_value_info("w_f", F, [3]), helper.make_tensor_value_info("s_f", F, [2])]
    g = helper.make_graph(nodes, "opaque", [], outs, [i16])
    return helper.make_model(g, opset_imports=opset(13), ir_version=8)


# ---- names, doc strings, symbolic dims, metadata ------------------------------------------------


def metadata_model() -> onnx.ModelProto:
    x = helper.make_tensor_value_info("x", F, ["batch", 3, None, "p2o.DynamicDimension.0"], doc_string="the image")
    # A dim_value of -1, as older paddle2onnx writes for dynamic sizes.
    x.type.tensor_type.shape.dim[2].dim_value = -1
    y = helper.make_tensor_value_info("y", F, ["batch", 3, None, "p2o.DynamicDimension.0"], doc_string="the result")
    nodes = [
        helper.make_node("Relu", ["x"], ["r"], name="relu_1", doc_string="first relu"),
        helper.make_node("Neg", ["r"], ["y"], name="neg_1"),
    ]
    vi = helper.make_tensor_value_info("r", F, ["batch", 3, None, None], doc_string="after relu")
    g = helper.make_graph(nodes, "meta_graph", [x], [y], value_info=[vi], doc_string="graph doc")
    m = helper.make_model(
        g,
        opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("com.example", 2)],
        ir_version=8,
        producer_name="gen_onnx_testdata",
        producer_version="1.0",
        domain="org.qopt.test",
        model_version=7,
        doc_string="model doc",
    )
    helper.set_model_props(m, {"author": "qopt", "note": "ünïcode ✓"})
    return m


# ---- custom ops and unknown attributes -------------------------------------------------------------


def custom_model() -> onnx.ModelProto:
    x = helper.make_tensor_value_info("x", F, [2, 3])
    body = helper.make_graph(
        [helper.make_node("Identity", ["x"], ["b_out"])],  # reads x from the enclosing graph
        "body",
        [],
        [helper.make_tensor_value_info("b_out", F, [2, 3])],
    )
    nodes = [
        helper.make_node(
            "Frobnicate",
            ["x", "", "x"],
            ["", "f1", "f2"],
            domain="com.example",
            name="frob",
            i=3,
            f=0.5,
            ints=[1, 2],
            floats=[0.5, 1.5],
            s="text",
            strings=["a", "b"],
            t=numpy_helper.from_array(np.array([1.0, 2.0], np.float32)),
            g=body,
        ),
        helper.make_node("NoSuchOp", ["f1"], ["n"], name="nosuch", mode="x"),
        # Relu has no `alpha`: a known op with an attribute the op table does not know.
        helper.make_node("Relu", ["n"], ["r"], name="relu_alpha", alpha=0.1),
        helper.make_node("If", ["cond"], ["y_if"], name="if_1", then_branch=body, else_branch=body),
    ]
    cond = numpy_helper.from_array(np.array(True), "cond")
    outs = [
        helper.make_tensor_value_info("r", F, [2, 3]),
        helper.make_tensor_value_info("f2", F, None),
        helper.make_tensor_value_info("y_if", F, [2, 3]),
    ]
    g = helper.make_graph(nodes, "custom", [x], outs, [cond])
    return helper.make_model(
        g, opset_imports=[helper.make_opsetid("", 13), helper.make_opsetid("com.example", 1)], ir_version=8
    )


# ---- opset-dependent forms ----------------------------------------------------------------------


def axes_model(v: int) -> onnx.ModelProto:
    """Squeeze/Unsqueeze/ReduceSum/ReduceMean/Split in the form of opset v."""
    x = helper.make_tensor_value_info("x", F, [2, 1, 6])
    nodes, inits = [], []

    def axes_arg(op: str, name: str, values: list[int], since: int):
        if v >= since:
            inits.append(numpy_helper.from_array(np.array(values, np.int64), name))
            return [name], {}
        return [], {"axes" if op != "Split" else "split": values}

    extra, kw = axes_arg("Squeeze", "sq_axes", [1], 13)
    nodes.append(helper.make_node("Squeeze", ["x", *extra], ["sq"], name="squeeze", **kw))
    extra, kw = axes_arg("Unsqueeze", "unsq_axes", [0], 13)
    nodes.append(helper.make_node("Unsqueeze", ["sq", *extra], ["unsq"], name="unsqueeze", **kw))
    extra, kw = axes_arg("ReduceSum", "rs_axes", [2], 13)
    nodes.append(helper.make_node("ReduceSum", ["unsq", *extra], ["rsum"], name="reducesum", keepdims=0, **kw))
    extra, kw = axes_arg("ReduceMean", "rm_axes", [-1], 18)
    nodes.append(helper.make_node("ReduceMean", ["unsq", *extra], ["rmean"], name="reducemean", **kw))
    extra, kw = axes_arg("Split", "split_sizes", [2, 4], 13)
    nodes.append(helper.make_node("Split", ["sq", *extra], ["s0", "s1"], name="split_sizes", axis=1, **kw))
    split_kw = {"num_outputs": 3} if v >= 18 else {}
    nodes.append(helper.make_node("Split", ["sq"], ["e0", "e1", "e2"], name="split_even", axis=1, **split_kw))
    # ReduceMax with no axes at all: reduces everything in every opset.
    nodes.append(helper.make_node("ReduceMax", ["x"], ["rmax"], name="reducemax", keepdims=0))
    outs = [helper.make_empty_tensor_value_info(n) for n in ("rsum", "rmean", "s0", "s1", "e0", "e1", "e2", "rmax")]
    g = helper.make_graph(nodes, f"axes_opset{v}", [x], outs, inits)
    m = helper.make_model(g, opset_imports=opset(v), ir_version=8)
    return onnx.shape_inference.infer_shapes(m)


def axes_dynamic_model() -> onnx.ModelProto:
    """Opset 13 with `axes` computed at run time: it must stay an input."""
    x = helper.make_tensor_value_info("x", F, [2, 1, 3])
    ax = helper.make_tensor_value_info("ax", TensorProto.INT64, [1])
    nodes = [
        helper.make_node("Squeeze", ["x", "ax"], ["y"], name="squeeze_dyn"),
        helper.make_node("ReduceSum", ["x", "ax"], ["z"], name="reducesum_dyn"),
    ]
    outs = [helper.make_tensor_value_info("y", F, ["d0", "d1"]), helper.make_tensor_value_info("z", F, ["a", "b", "c"])]
    g = helper.make_graph(nodes, "axes_dynamic", [x, ax], outs)
    return helper.make_model(g, opset_imports=opset(13), ir_version=8)


def split18_uneven_model() -> onnx.ModelProto:
    x = helper.make_tensor_value_info("x", F, [7, 2])
    node = helper.make_node("Split", ["x"], ["a", "b", "c"], name="split3", axis=0, num_outputs=3)
    outs = [helper.make_empty_tensor_value_info(n) for n in "abc"]
    g = helper.make_graph([node], "split18", [x], outs)
    return onnx.shape_inference.infer_shapes(helper.make_model(g, opset_imports=opset(18), ir_version=8))


def softmax_model(v: int) -> onnx.ModelProto:
    x = helper.make_tensor_value_info("x", F, [2, 3, 4])
    y = helper.make_tensor_value_info("y", F, [2, 3, 4])
    node = helper.make_node("Softmax", ["x"], ["y"], name="softmax")  # no axis: the opset's default
    g = helper.make_graph([node], f"softmax_opset{v}", [x], [y])
    return helper.make_model(g, opset_imports=opset(v), ir_version=8 if v >= 13 else 6)


def clip6_model() -> onnx.ModelProto:
    x = helper.make_tensor_value_info("x", F, [2, 5])
    y = helper.make_tensor_value_info("y", F, [2, 5])
    z = helper.make_tensor_value_info("z", F, [2, 5])
    nodes = [
        helper.make_node("Clip", ["x"], ["y"], name="clip_both", min=-0.25, max=0.5),
        helper.make_node("Clip", ["y"], ["z"], name="clip_max", max=0.3),
    ]
    g = helper.make_graph(nodes, "clip_opset10", [x], [y, z])
    return helper.make_model(g, opset_imports=opset(10), ir_version=5)


def resize10_model() -> onnx.ModelProto:
    """Resize-10 computes with asymmetric coordinates: qopt keeps it as a custom op."""
    x = helper.make_tensor_value_info("x", F, [1, 1, 2, 3])
    y = helper.make_tensor_value_info("y", F, [1, 1, 4, 6])
    scales = numpy_helper.from_array(np.array([1, 1, 2, 2], np.float32), "scales")
    node = helper.make_node("Resize", ["x", "scales"], ["y"], name="resize10", mode="linear")
    g = helper.make_graph([node], "resize_opset10", [x], [y], [scales])
    return helper.make_model(g, opset_imports=opset(10), ir_version=5)


def ir3_model() -> onnx.ModelProto:
    """IR version 3: initializers are listed as graph inputs too."""
    x = helper.make_tensor_value_info("x", F, [3])
    w = helper.make_tensor_value_info("w", F, [3])
    y = helper.make_tensor_value_info("y", F, [3])
    wi = numpy_helper.from_array(np.array([1.0, 2.0, 3.0], np.float32), "w")
    node = helper.make_node("Add", ["x", "w"], ["y"], name="add")
    g = helper.make_graph([node], "ir3", [x, w], [y], [wi])
    return helper.make_model(g, opset_imports=opset(8), ir_version=3)


def unsorted_model() -> onnx.ModelProto:
    """Nodes out of topological order (ONNX requires sorted nodes; ORT and qopt accept it)."""
    x = helper.make_tensor_value_info("x", F, [4])
    y = helper.make_tensor_value_info("y", F, [4])
    nodes = [
        helper.make_node("Neg", ["a"], ["y"], name="second"),
        helper.make_node("Relu", ["x"], ["a"], name="first"),
    ]
    g = helper.make_graph(nodes, "unsorted", [x], [y])
    return helper.make_model(g, opset_imports=opset(13), ir_version=8)


def main() -> int:
    os.makedirs(OUT, exist_ok=True)
    save(tensors_model(), "tensors.onnx")
    external_models()
    save(constants_model(), "constants.onnx")
    save(opaque_constant_model(), "opaque_constant.onnx")
    save(metadata_model(), "metadata.onnx")
    save(custom_model(), "custom_ops.onnx", check=False, run=False)
    for v in (11, 13, 18, 21):
        save(axes_model(v), f"axes_opset{v}.onnx")
    save(axes_dynamic_model(), "axes_dynamic_opset13.onnx", run=False)
    save(split18_uneven_model(), "split18_uneven.onnx")
    save(softmax_model(11), "softmax_opset11.onnx")
    save(softmax_model(13), "softmax_opset13.onnx")
    save(clip6_model(), "clip_opset10.onnx")
    save(resize10_model(), "resize_opset10.onnx")
    save(ir3_model(), "ir3_initializer_inputs.onnx")
    save(unsorted_model(), "unsorted.onnx", check=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
