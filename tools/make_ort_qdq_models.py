#!/usr/bin/env python3
"""Quantize the real models with ONNX Runtime's own quantizer, for the INT8 interpreter's tests.

    python tools/make_ort_qdq_models.py            # writes testdata/external/qdq/ (git-ignored)
    python tools/make_ort_qdq_models.py --force    # rebuild everything

pip requirements: onnxruntime==1.32.0 onnx==1.22.0 numpy pillow

Until qopt's own `qdq` pass produces them, the INT8 plan is tested on models quantized by
`onnxruntime.quantization` (the peer the design names, DESIGN.md §10):
- `<model>.qdq_u8.onnx`, `<model>.qdq_i8.onnx`: `quantize_static(quant_format=QDQ, per_channel=True)`
  with u8 / i8 activations and i8 weights, after `quant_pre_process` (BatchNormalization folded),
  MinMax calibration;
- `<model>.qop_u8_rr.onnx`: the same in QOperator form (QLinearConv, QGemm, QLinearAdd, ...);
- `<model>.dyn_rr.onnx`: `quantize_dynamic` (DynamicQuantizeLinear + ConvInteger / MatMulInteger).
- `_rr`: with `reduce_range=True` (7-bit weights). ONNX Runtime's u8 x s8 kernels on AVX2 CPUs
  without VNNI use `vpmaddubsw`, whose 16-bit pair sums saturate for full-range weights (ORT
  documents this and recommends reduce_range there; it also runs i8-activation models through
  the same kernels after shifting them to u8). With 7-bit weights no pair sum can saturate, so
  ORT computes the exact integer result and the tests can demand agreement with it; the
  full-range models are compared with qopt's fp32 reference instead, and timed.

For every model, `<model>.<variant>.io/` holds a test input (`input_<name>.npy`) and ONNX Runtime's
outputs on it (`ort_<i>.npy`, 1 thread, default optimizations, i.e. ORT's fused int8 kernels).
Calibration uses a few samples to stay fast: MNIST calib_x.npy[:32], 8 photos of
photos/calib/*.png (ImageNet preprocessing), for PP-OCR the rendered-text input of
testdata/reference/ plus shifted and contrast-changed copies of it.

Idempotent: a model already present is kept (its inputs and outputs are rewritten only with
--force). Files are written under a temporary name and renamed into place.
"""
import argparse
import os
import pathlib
import shutil
import sys
import tempfile

import numpy as np
import onnx
import onnx.version_converter
import onnxruntime as ort
from onnxruntime.quantization import (CalibrationDataReader, QuantFormat, QuantType, quantize_dynamic,
                                      quantize_static)
from onnxruntime.quantization.shape_inference import quant_pre_process

ROOT = pathlib.Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared" / "models"
if not SHARED.exists():
    SHARED = pathlib.Path("/work/shared/models")
# testdata/models ships mnist_cnn_bn (and testdata/data/mnist its calibration images), so a
# fresh clone without ../shared still gets the MNIST variants.
SEARCH = [ROOT / "testdata/external/ppocr", pathlib.Path("/tmp/models/rapidocr_onnxruntime/models"), SHARED,
          ROOT / "testdata" / "models"]
OUT = ROOT / "testdata" / "external" / "qdq"

# name: (model file names, reference folder under testdata/reference, variants)
MODELS = {
    "mnist_cnn_bn": (["mnist_cnn_bn.onnx"], "mnist_cnn_bn",
                     ["qdq_u8", "qdq_i8", "qdq_u8_rr", "qdq_i8_rr", "qop_u8_rr", "dyn_rr"]),
    "efficientnet_lite0": (["efficientnet_lite0_keepbn.onnx"], "efficientnet_lite0",
                           ["qdq_u8", "qdq_i8", "qdq_u8_rr", "qdq_i8_rr", "qop_u8_rr"]),
    "ppocr_cls": (["cls.onnx", "ch_ppocr_mobile_v2.0_cls_infer.onnx"], "ppocr_cls",
                  ["qdq_u8", "qdq_i8", "qdq_u8_rr", "qdq_i8_rr", "qop_u8_rr"]),
    "ppocr_rec": (["rec.onnx", "ch_PP-OCRv4_rec_infer.onnx"], "ppocr_rec",
                  ["qdq_u8", "qdq_i8", "qdq_u8_rr", "qdq_i8_rr", "dyn_rr"]),
    "ppocr_det": (["det.onnx", "ch_PP-OCRv4_det_infer.onnx"], "ppocr_det",
                  ["qdq_u8", "qdq_i8", "qdq_u8_rr", "qdq_i8_rr"]),
}


def find(names):
    for d in SEARCH:
        for n in names:
            if (d / n).exists():
                return d / n
    return None


def reference_input(ref):
    files = sorted((ROOT / "testdata" / "reference" / ref).glob("input_*.npy"))
    return {f.stem[len("input_"):]: np.load(f) for f in files}


def calib_samples(name, ref):
    """A short list of {input name: array} feeds."""
    if name == "mnist_cnn_bn":
        f = SHARED / "mnist" / "calib_x.npy"
        if not f.exists():
            f = ROOT / "testdata" / "data" / "mnist" / "calib_x.npy"
        x = np.load(f)[:32].astype(np.float32)
        return [{"input": x[i:i + 1]} for i in range(len(x))]
    if name == "efficientnet_lite0":
        from PIL import Image
        mean = np.array([0.485, 0.456, 0.406], np.float32)[:, None, None]
        std = np.array([0.229, 0.224, 0.225], np.float32)[:, None, None]
        feeds = []
        for f in sorted((SHARED / "photos" / "calib").glob("*.png"))[:8]:
            img = np.asarray(Image.open(f).convert("RGB"), dtype=np.float32) / 255.0
            x = (img.transpose(2, 0, 1) - mean) / std
            feeds.append({"input": x[None].astype(np.float32)})
        return feeds
    # PP-OCR: the rendered text of testdata/reference, shifted and with other contrasts.
    (k, x), = reference_input(ref).items()
    feeds = [{k: x}]
    for shift, gain in [(7, 1.0), (-11, 0.8), (3, 1.2)]:
        y = np.roll(x, shift, axis=3) * gain
        feeds.append({k: y.astype(np.float32)})
    return feeds


class Reader(CalibrationDataReader):
    def __init__(self, feeds):
        self.it = iter(feeds)

    def get_next(self):
        return next(self.it, None)


def session(path):
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    return ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])


def quantize(src, variant, dst, feeds, tmp):
    pre = tmp / "pre.onnx"
    m = onnx.load(str(src))
    if max(o.version for o in m.opset_import if o.domain in ("", "ai.onnx")) < 13:
        # ORT's quantizer writes per-axis DequantizeLinear (opset 13) even into older models,
        # which then fail to load (PP-OCR is opset 11/12): convert first.
        m = onnx.version_converter.convert_version(m, 13)
        src = tmp / "opset13.onnx"
        onnx.save(m, str(src))
    # BatchNormalization folded and shapes inferred, as ORT's documentation prescribes.
    quant_pre_process(str(src), str(pre), skip_symbolic_shape=True)
    rr = variant.endswith("_rr")
    base = variant.removesuffix("_rr")
    if base == "dyn":
        quantize_dynamic(str(pre), str(dst), weight_type=QuantType.QInt8, per_channel=False,
                         reduce_range=rr)
        return
    fmt = QuantFormat.QDQ if base.startswith("qdq") else QuantFormat.QOperator
    act = QuantType.QUInt8 if base.endswith("u8") else QuantType.QInt8
    quantize_static(str(pre), str(dst), Reader(feeds), quant_format=fmt, per_channel=True,
                    activation_type=act, weight_type=QuantType.QInt8, reduce_range=rr)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--force", action="store_true", help="rebuild models that exist")
    ap.add_argument("--only", help="only models whose name contains this")
    args = ap.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    for name, (files, ref, variants) in MODELS.items():
        if args.only and args.only not in name:
            continue
        src = find(files)
        if src is None:
            print(f"make_ort_qdq_models: skip {name}: none of {files} found", file=sys.stderr)
            continue
        feeds = None
        for variant in variants:
            dst = OUT / f"{name}.{variant}.onnx"
            io = OUT / f"{name}.{variant}.io"
            if dst.exists() and io.exists() and not args.force:
                continue
            feeds = feeds or calib_samples(name, ref)
            with tempfile.TemporaryDirectory(dir=OUT) as t:
                tmp = pathlib.Path(t)
                part = tmp / "model.onnx"
                quantize(src, variant, part, feeds, tmp)
                # No onnx.checker: ORT writes per-axis DequantizeLinear into opset-11 models
                # (PP-OCR cls), which ORT runs but the checker refuses.
                x = reference_input(ref)
                outs = session(part).run(None, x)
                iodir = tmp / "io"
                iodir.mkdir()
                for k, v in x.items():
                    np.save(iodir / f"input_{k}.npy", v)
                for i, o in enumerate(outs):
                    np.save(iodir / f"ort_{i}.npy", o)
                (iodir / "ort.txt").write_text(
                    f"onnxruntime {ort.__version__}, CPUExecutionProvider, default graph optimizations, 1 thread\n")
                if io.exists():
                    shutil.rmtree(io)
                os.replace(part, dst)
                os.replace(iodir, io)
            print(f"make_ort_qdq_models: {dst.relative_to(ROOT)}", file=sys.stderr)


if __name__ == "__main__":
    main()
