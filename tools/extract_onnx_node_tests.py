#!/usr/bin/env python3
"""Copy the ONNX backend node tests for the ops the interpreters support into testdata/onnx-node/.

    /work/venv/bin/python tools/extract_onnx_node_tests.py   # or any python with the requirements

pip requirements: onnx==1.22.0 numpy

Source: the `onnx` 1.22.0 wheel ships `onnx/backend/test/data/node/test_*/` folders, each with a
`model.onnx` and `test_data_set_*/input_*.pb, output_*.pb` (TensorProto). For every folder whose
nodes all use ops in SUPPORTED (default domain only) and whose inputs and outputs have element types
qopt's Tensor holds, this copies model.onnx and converts each .pb to .npy (numpy's format, which the
Rust test reads with ndarray-npy). Folders skipped, with the reason, are listed in
testdata/onnx-node/SKIPPED.txt. The Rust test is crates/qopt-interp/tests/onnx_node.rs.
"""
import pathlib
import shutil
import sys

import numpy as np
import onnx
from onnx import numpy_helper

# Keep in sync with qopt_interp::ops::supported (the test reports any op that fails).
SUPPORTED = set("""
Abs Neg Sqrt Exp Log Reciprocal Floor Ceil Round Sign Sin Cos Tan Atan Erf Sigmoid Tanh Relu Softplus
Softsign Not IsNaN IsInf Identity HardSwish Mish LeakyRelu Elu Celu Selu ThresholdedRelu HardSigmoid Gelu
PRelu Clip Add Sub Mul Div Pow Mod Equal Less LessOrEqual Greater GreaterOrEqual And Or Xor Where Min Max
Sum Mean Softmax LogSoftmax Hardmax BatchNormalization InstanceNormalization LayerNormalization
GroupNormalization MatMul Gemm Conv ConvTranspose MaxPool AveragePool GlobalAveragePool GlobalMaxPool
ReduceMean ReduceSum ReduceMax ReduceMin ReduceProd ReduceL1 ReduceL2 ReduceSumSquare ReduceLogSumExp
ArgMax ArgMin Resize Upsample DepthToSpace SpaceToDepth Pad Reshape Flatten Transpose Squeeze Unsqueeze
Concat Split Slice Gather GatherElements Shape Size Cast CastLike Range Expand Tile ConstantOfShape Dropout
QuantizeLinear DequantizeLinear Constant
""".split())

# Ops only the INT8 interpreter runs (crates/qopt-interp/tests/int8_onnx_node.rs runs every folder
# with a quantization op through it; tests/onnx_node.rs leaves these to it).
SUPPORTED |= set("""
QLinearConv QLinearMatMul ConvInteger MatMulInteger DynamicQuantizeLinear
""".split())

# Element types qopt's Tensor holds: float, uint8, int8, int32, int64, bool, float16, double.
TYPES = {1, 2, 3, 6, 7, 9, 10, 11}
# float16 data cannot be written with ndarray-npy; those tests are skipped too.
NPY_TYPES = TYPES - {10}


def value_types(model):
    g = model.graph
    for v in list(g.input) + list(g.output):
        t = v.type
        if t.HasField("tensor_type"):
            yield t.tensor_type.elem_type
        else:
            yield -1  # sequences, optionals, maps


def main():
    root = pathlib.Path(__file__).resolve().parent.parent
    src = pathlib.Path(onnx.__file__).parent / "backend" / "test" / "data" / "node"
    dst = root / "testdata" / "onnx-node"
    if dst.exists():
        shutil.rmtree(dst)
    dst.mkdir(parents=True)
    skipped = []
    kept = 0
    for case in sorted(src.iterdir()):
        if not (case / "model.onnx").exists():
            continue
        model = onnx.load(case / "model.onnx")
        ops = {(n.domain or "", n.op_type) for n in model.graph.node}
        # Ops used inside function bodies of expanded tests are listed as nodes already.
        unsupported = sorted(f"{d}::{o}" if d else o for d, o in ops if d not in ("", "ai.onnx") or o not in SUPPORTED)
        if unsupported:
            continue  # not an op we claim: not listed
        types = set(value_types(model))
        if not types <= NPY_TYPES:
            skipped.append((case.name, "element types " + ", ".join(sorted(onnx.TensorProto.DataType.Name(t) if t >= 0 else "non-tensor" for t in types - NPY_TYPES))))
            continue
        out = dst / case.name
        out.mkdir()
        shutil.copy(case / "model.onnx", out / "model.onnx")
        for ds in sorted(case.glob("test_data_set_*")):
            (out / ds.name).mkdir()
            for pb in sorted(ds.glob("*.pb")):
                t = onnx.TensorProto()
                t.ParseFromString(pb.read_bytes())
                np.save(out / ds.name / (pb.stem + ".npy"), numpy_helper.to_array(t), allow_pickle=False)
        kept += 1
    with open(dst / "SKIPPED.txt", "w") as f:
        f.write("# Node tests of supported ops not copied (tools/extract_onnx_node_tests.py), with the reason.\n")
        for name, why in skipped:
            f.write(f"{name}: {why}\n")
    print(f"copied {kept} test folders to {dst}, skipped {len(skipped)} (see SKIPPED.txt)", file=sys.stderr)


if __name__ == "__main__":
    main()
