#!/usr/bin/env python3
"""Check that a model exported by qopt computes exactly what the original computes.

    python tools/check_roundtrip.py ORIG.onnx EXPORTED.onnx [--shape NAME=1,3,640,640 ...] [--seed 0]

1. `onnx.checker.check_model(EXPORTED, full_check=True)` must pass (full_check runs strict
   shape inference as well as the structural checks).
2. Both models run in ONNX Runtime (CPU, one thread, the same session options) on the same
   random inputs (numpy default_rng(seed); floats uniform in [-1, 1), integers in [0, 10),
   booleans random). Every output must be bitwise equal: same dtype, shape and bytes.

An input dim that is symbolic or unknown takes its size from --shape; when no --shape is given
for an input, a dynamic first dim (the batch) is 1 and any other dynamic dim is an error.
Prints one line per model output and `OK` at the end; exits 1 on any difference.

pip requirements: onnx==1.22.0 onnxruntime>=1.20 numpy
"""

from __future__ import annotations

import argparse
import sys

import numpy as np
import onnx
import onnxruntime as ort


def parse_shapes(items: list[str]) -> dict[str, list[int]]:
    shapes = {}
    for item in items:
        name, sep, dims = item.rpartition("=")
        if not sep or not name:
            raise SystemExit(f"check_roundtrip: bad --shape {item!r}; expected NAME=d0,d1,...")
        try:
            shapes[name] = [int(d) for d in dims.split(",")]
        except ValueError:
            raise SystemExit(f"check_roundtrip: bad --shape {item!r}; dims must be integers")
    return shapes


def input_shape(inp, given: dict[str, list[int]]) -> list[int]:
    if inp.name in given:
        return given[inp.name]
    dims = []
    for i, d in enumerate(inp.shape):
        if isinstance(d, int) and d >= 0:
            dims.append(d)
        elif i == 0:
            dims.append(1)
        else:
            raise SystemExit(
                f"check_roundtrip: input {inp.name!r} has dynamic dim {i} ({d!r}); pass --shape"
            )
    return dims


NUMPY_TYPES = {
    "tensor(float)": np.float32,
    "tensor(float16)": np.float16,
    "tensor(double)": np.float64,
    "tensor(int8)": np.int8,
    "tensor(uint8)": np.uint8,
    "tensor(int32)": np.int32,
    "tensor(int64)": np.int64,
    "tensor(bool)": np.bool_,
}


def make_inputs(sess: ort.InferenceSession, given, seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    feeds = {}
    for inp in sess.get_inputs():
        shape = input_shape(inp, given)
        dtype = NUMPY_TYPES.get(inp.type)
        if dtype is None:
            raise SystemExit(f"check_roundtrip: input {inp.name!r} has unsupported type {inp.type}")
        if np.issubdtype(dtype, np.floating):
            x = rng.uniform(-1.0, 1.0, size=shape).astype(dtype)
        elif dtype == np.bool_:
            x = rng.integers(0, 2, size=shape).astype(np.bool_)
        else:
            x = rng.integers(0, 10, size=shape).astype(dtype)
        feeds[inp.name] = x
    return feeds


def session(path: str) -> ort.InferenceSession:
    so = ort.SessionOptions()
    # One thread: the comparison must not depend on how work is split between threads.
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    return ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])


def same_bits(a: np.ndarray, b: np.ndarray) -> bool:
    return (
        a.dtype == b.dtype
        and a.shape == b.shape
        and np.ascontiguousarray(a).tobytes() == np.ascontiguousarray(b).tobytes()
    )


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("original")
    ap.add_argument("exported")
    ap.add_argument("--shape", action="append", default=[], metavar="NAME=D0,D1,...")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    onnx.checker.check_model(args.exported, full_check=True)
    print(f"checker: {args.exported}: full_check passed")

    given = parse_shapes(args.shape)
    orig = session(args.original)
    exp = session(args.exported)
    names_o = [o.name for o in orig.get_outputs()]
    names_e = [o.name for o in exp.get_outputs()]
    if names_o != names_e:
        print(f"FAIL: outputs differ: {names_o} vs {names_e}")
        return 1
    ins_o = sorted(i.name for i in orig.get_inputs())
    ins_e = sorted(i.name for i in exp.get_inputs())
    if ins_o != ins_e:
        print(f"FAIL: inputs differ: {ins_o} vs {ins_e}")
        return 1

    feeds = make_inputs(orig, given, args.seed)
    shapes = ", ".join(f"{k}={list(v.shape)}" for k, v in feeds.items())
    print(f"inputs: {shapes} (seed {args.seed})")
    out_o = orig.run(None, feeds)
    out_o2 = orig.run(None, feeds)
    out_e = exp.run(None, feeds)
    failed = False
    for name, a, a2, b in zip(names_o, out_o, out_o2, out_e):
        if not same_bits(a, a2):
            print(f"FAIL: {name}: the original model is not deterministic; no comparison possible")
            failed = True
        elif same_bits(a, b):
            print(f"output {name}: {a.dtype}{list(a.shape)} bitwise equal")
        else:
            diff = np.abs(a.astype(np.float64) - b.astype(np.float64)) if a.shape == b.shape else None
            detail = f"max abs diff {diff.max():.3g}" if diff is not None else f"{a.shape} vs {b.shape}"
            print(f"FAIL: output {name}: {a.dtype}{list(a.shape)} vs {b.dtype}{list(b.shape)}: {detail}")
            failed = True
    if failed:
        return 1
    print("OK")
    return 0


if __name__ == "__main__":
    sys.exit(main())
