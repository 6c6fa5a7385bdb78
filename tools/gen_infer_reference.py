#!/usr/bin/env python3
"""Reference value shapes of the real models, for qopt's shape-inference test.

    python tools/gen_infer_reference.py [--ppocr DIR] [--shared DIR] [-o testdata/infer/real_models.json]

For each real model (PP-OCRv4 det/rec/cls from testdata/external/ppocr, fetched by
tools/fetch_models.sh, and ../shared/models/*.onnx) this records the type of every value that
ONNX's own shape inference knows, in two settings:

- `pinned`: the dynamic input dims are pinned to the shapes the models are run with
  (det 1x3x640x640, rec 1x3x48x320, cls 1x3x48x192, mnist 1x1x28x28, efficientnet 1x3x224x224;
  the same shapes as qopt_onnx::testing::real_models), then
  `onnx.shape_inference.infer_shapes(model, strict_mode=True, data_prop=True)`.
  Every shape is then checked against what ONNX Runtime actually produces for that input (all
  values are made graph outputs and the model runs on random data); a disagreement stops the
  script, so the fixture never records a shape that ONNX Runtime contradicts.
- `symbolic`: the model as shipped (symbolic batch/height/width), same inference. Dims are
  ints, symbol names, or null (no information). ONNX names the dims it derives `unk__N`.

Dtypes are written with qopt's names (f32, i64, ...). The model file's size is recorded so the
Rust test can tell that it is reading the same model.

pip requirements: onnx==1.22.0 onnxruntime>=1.20 numpy
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort

ROOT = Path(__file__).resolve().parent.parent

# (name, file, input name, pinned shape); names match qopt_onnx::testing::real_models.
PPOCR = [
    ("ppocr/det", "det.onnx", "x", [1, 3, 640, 640]),
    ("ppocr/rec", "rec.onnx", "x", [1, 3, 48, 320]),
    ("ppocr/cls", "cls.onnx", "x", [1, 3, 48, 192]),
]
SHARED = [
    ("shared/mnist_cnn_bn", "mnist_cnn_bn.onnx", "input", [1, 1, 28, 28]),
    ("shared/efficientnet_lite0_keepbn", "efficientnet_lite0_keepbn.onnx", "input", [1, 3, 224, 224]),
]

DTYPES = {
    onnx.TensorProto.FLOAT: "f32",
    onnx.TensorProto.FLOAT16: "f16",
    onnx.TensorProto.DOUBLE: "f64",
    onnx.TensorProto.INT8: "i8",
    onnx.TensorProto.UINT8: "u8",
    onnx.TensorProto.INT32: "i32",
    onnx.TensorProto.INT64: "i64",
    onnx.TensorProto.BOOL: "bool",
}

NP_DTYPES = {"float32": "f32", "float16": "f16", "float64": "f64", "int8": "i8", "uint8": "u8",
             "int32": "i32", "int64": "i64", "bool": "bool"}


def dims_of(t: onnx.TypeProto):
    tt = t.tensor_type
    if not tt.HasField("shape"):
        return None
    out = []
    for d in tt.shape.dim:
        if d.HasField("dim_value") and d.dim_value >= 0:
            out.append(int(d.dim_value))
        elif d.HasField("dim_param"):
            out.append(d.dim_param)
        else:
            out.append(None)
    return out


def constants(m: onnx.ModelProto) -> set:
    """Initializers and Constant-node outputs: their type is their tensor's, nothing to infer."""
    return {i.name for i in m.graph.initializer} | {
        o for n in m.graph.node if n.op_type == "Constant" for o in n.output
    }


def value_types(m: onnx.ModelProto) -> dict:
    """Every value with a tensor type, constants aside: name -> {dtype, shape}."""
    inits = constants(m)
    vals = {}
    for vi in list(m.graph.input) + list(m.graph.value_info) + list(m.graph.output):
        if vi.name in inits or not vi.type.HasField("tensor_type"):
            continue
        vals[vi.name] = {
            "dtype": DTYPES.get(vi.type.tensor_type.elem_type, "?"),
            "shape": dims_of(vi.type),
        }
    return dict(sorted(vals.items()))


def pin(m: onnx.ModelProto, input_name: str, shape: list[int]) -> onnx.ModelProto:
    m = onnx.ModelProto.FromString(m.SerializeToString())
    for i in m.graph.input:
        if i.name == input_name:
            dims = i.type.tensor_type.shape.dim
            assert len(dims) == len(shape), (input_name, len(dims), shape)
            for d, v in zip(dims, shape):
                d.Clear()
                d.dim_value = v
    # Drop recorded intermediate types so the result is inference's alone.
    del m.graph.value_info[:]
    return m


def infer(m: onnx.ModelProto) -> onnx.ModelProto:
    return onnx.shape_inference.infer_shapes(m, strict_mode=True, data_prop=True)


def ort_shapes(m: onnx.ModelProto, input_name: str, shape: list[int]) -> dict:
    """Actual shapes of every node output when ONNX Runtime runs the pinned model."""
    m = onnx.ModelProto.FromString(m.SerializeToString())
    outs = {o.name for o in m.graph.output}
    for n in m.graph.node:
        for o in n.output:
            if o and o not in outs and n.op_type != "Constant":
                m.graph.output.append(onnx.ValueInfoProto(name=o))
                outs.add(o)
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    sess = ort.InferenceSession(m.SerializeToString(), so, providers=["CPUExecutionProvider"])
    x = np.random.default_rng(0).uniform(-1, 1, size=shape).astype(np.float32)
    names = [o.name for o in sess.get_outputs()]
    res = sess.run(names, {input_name: x})
    return {
        n: {"dtype": NP_DTYPES.get(r.dtype.name, "?"), "shape": [int(d) for d in r.shape]}
        for n, r in sorted(zip(names, res))
    }


def dump(fixture: dict) -> str:
    """JSON with one line per value, so a regenerated fixture diffs line by line."""
    lines = ["{"]
    for k in ("generator", "onnx_version", "onnxruntime_version"):
        lines.append(f" {json.dumps(k)}: {json.dumps(fixture[k])},")
    lines.append(' "models": {')
    models = list(fixture["models"].items())
    for mi, (name, m) in enumerate(models):
        lines.append(f"  {json.dumps(name)}: {{")
        lines.append(f'   "file_size": {m["file_size"]},')
        lines.append(f'   "input_shapes": {json.dumps(m["input_shapes"])},')
        sections = ["pinned", "symbolic", "runtime"]
        for si, sec in enumerate(sections):
            lines.append(f"   {json.dumps(sec)}: {{")
            items = list(m[sec].items())
            for vi, (v, t) in enumerate(items):
                comma = "," if vi + 1 < len(items) else ""
                lines.append(f"    {json.dumps(v)}: {json.dumps(t)}{comma}")
            lines.append("   }" + ("," if si + 1 < len(sections) else ""))
        lines.append("  }" + ("," if mi + 1 < len(models) else ""))
    lines.append(" }")
    lines.append("}")
    out = "\n".join(lines) + "\n"
    assert json.loads(out) == fixture
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ppocr", default=str(ROOT / "testdata/external/ppocr"))
    # Like qopt_onnx::testing::shared_models_dir: $QOPT_SHARED_MODELS, else the nearest
    # shared/models at or above the repository root.
    shared = os.environ.get("QOPT_SHARED_MODELS") or next(
        (str(a / "shared/models") for a in [ROOT, *ROOT.parents] if (a / "shared/models").is_dir()),
        str(ROOT.parent / "shared/models"),
    )
    ap.add_argument("--shared", default=shared)
    ap.add_argument("-o", "--output", default=str(ROOT / "testdata/infer/real_models.json"))
    args = ap.parse_args()

    models = [(n, Path(args.ppocr) / f, i, s) for n, f, i, s in PPOCR]
    models += [(n, Path(args.shared) / f, i, s) for n, f, i, s in SHARED]
    fixture = {
        "generator": "tools/gen_infer_reference.py",
        "onnx_version": onnx.__version__,
        "onnxruntime_version": ort.__version__,
        "models": {},
    }
    for name, path, input_name, shape in models:
        if not path.is_file():
            print(f"missing {path}; not recorded", file=sys.stderr)
            continue
        m = onnx.load(str(path))
        pinned = value_types(infer(pin(m, input_name, shape)))
        actual = ort_shapes(m, input_name, shape)
        checked = 0
        for v, t in pinned.items():
            if v not in actual or t["shape"] is None:
                continue
            # Every known dim must be what ONNX Runtime produces (symbols and nulls are holes).
            got = actual[v]["shape"]
            if len(t["shape"]) != len(got) or any(
                isinstance(d, int) and d != a for d, a in zip(t["shape"], got)
            ):
                print(f"{name}: {v}: onnx infers {t['shape']}, ONNX Runtime gives {got}", file=sys.stderr)
                return 1
            checked += 1
        no_shape = sorted(v for v, t in pinned.items() if t["shape"] is None)
        partial = sorted(
            v for v, t in pinned.items() if t["shape"] is not None and not all(isinstance(d, int) for d in t["shape"])
        )
        symbolic = m
        del symbolic.graph.value_info[:]
        fixture["models"][name] = {
            "file_size": path.stat().st_size,
            "input_shapes": {input_name: shape},
            "pinned": pinned,
            "symbolic": value_types(infer(symbolic)),
            "runtime": actual,
        }
        print(
            f"{name}: {len(pinned)} values, {checked} shapes confirmed by ONNX Runtime, "
            f"{len(no_shape)} without a shape, {len(partial)} with symbolic or unknown dims"
        )
    out = Path(args.output)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".tmp")
    tmp.write_text(dump(fixture))
    tmp.replace(out)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
