#!/usr/bin/env python3
"""Run ONNX Runtime on fixed inputs of the real models and commit inputs and outputs as .npy files.

    python tools/gen_reference_outputs.py          # writes testdata/reference/<model>/

pip requirements: onnxruntime>=1.20 numpy pillow onnx

The Rust test crates/qopt-interp/tests/reference_models.rs runs the same models on the fp32
interpreter and checks every output within relative L2 error 1e-5 of these, so `cargo test` needs
no Python. Inputs: rendered black-on-white text for the PP-OCR models, a photo from
../shared/models/photos/eval for EfficientNet (preprocessed as each model expects; seeded
standard-normal data when Pillow or the photos are missing), MNIST's first four held-out digits. Models are looked up where the tests look: testdata/external/ppocr/ (fetched by
tools/fetch_models.sh), /tmp/models/rapidocr_onnxruntime/models/, ../shared/models/.

Each folder gets `model.txt` (the model file name the test searches for), `input_<name>.npy` and
`output_<i>.npy` (ORT's outputs in graph order), and `ort.txt` with the ORT version and settings.
"""
import pathlib
import sys

import numpy as np
import onnxruntime as ort

ROOT = pathlib.Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared" / "models"
if not SHARED.exists():
    SHARED = pathlib.Path("/work/shared/models")
SEARCH = [ROOT / "testdata/external/ppocr", pathlib.Path("/tmp/models/rapidocr_onnxruntime/models"), SHARED]

# name: (model file names to search for, input shape, preprocessing)
MODELS = {
    "ppocr_det": (["det.onnx", "ch_PP-OCRv4_det_infer.onnx"], (1, 3, 320, 320), "ppocr_det"),
    "ppocr_rec": (["rec.onnx", "ch_PP-OCRv4_rec_infer.onnx"], (1, 3, 48, 320), "ppocr_rec"),
    "ppocr_cls": (["cls.onnx", "ch_ppocr_mobile_v2.0_cls_infer.onnx"], (1, 3, 48, 192), "ppocr_rec"),
    "mnist_cnn_bn": (["mnist_cnn_bn.onnx"], (4, 1, 28, 28), "mnist"),
    "efficientnet_lite0": (["efficientnet_lite0_keepbn.onnx"], (1, 3, 224, 224), "imagenet"),
}


def find(names):
    for d in SEARCH:
        for n in names:
            if (d / n).exists():
                return d / n
    return None


def photo(shape, seed):
    """An RGB photo crop resized to HxW, float32 in [0, 1], NHWC->NCHW, or None."""
    try:
        from PIL import Image
    except ImportError:
        return None
    files = sorted((SHARED / "photos" / "eval").glob("*.png"))
    if not files:
        return None
    _, _, h, w = shape
    img = Image.open(files[seed % len(files)]).convert("RGB").resize((w, h), Image.BILINEAR)
    return (np.asarray(img, dtype=np.float32) / 255.0).transpose(2, 0, 1)[None]


def text_image(shape):
    """Black text on white, HxW, float32 in [0, 1], NCHW: text gives the OCR models' outputs large
    values (on a photo without text the detector's probabilities are all ~1e-6, where ONNX
    Runtime's approximate Sigmoid has only ~1e-7 absolute accuracy)."""
    try:
        from PIL import Image, ImageDraw, ImageFont
    except ImportError:
        return None
    _, _, h, w = shape
    img = Image.new("RGB", (w, h), "white")
    d = ImageDraw.Draw(img)
    size = max(8, h // 2) if h <= 64 else max(12, h // 10)
    try:
        font = ImageFont.load_default(size=size)
    except TypeError:
        font = ImageFont.load_default()
    lines = ["qopt INT8 2026"] if h <= 64 else ["qopt quantizes", "ONNX models", "to INT8 2026", "PP-OCRv4 det"]
    y = max(2, (h - size * len(lines) * 1.3) / 2) if h <= 64 else h // 10
    for line in lines:
        d.text((w // 20, y), line, fill="black", font=font)
        y += int(size * 1.4)
    return (np.asarray(img, dtype=np.float32) / 255.0).transpose(2, 0, 1)[None]


def make_input(kind, shape, seed):
    rng = np.random.default_rng(seed)
    if kind == "mnist":
        p = SHARED / "mnist" / "test_x.npy"
        if p.exists():
            return np.load(p)[: shape[0]].astype(np.float32)
        return rng.random(shape, dtype=np.float32)
    x = text_image(shape) if kind.startswith("ppocr") else photo(shape, seed)
    if x is None:
        return rng.standard_normal(shape).astype(np.float32)
    if kind in ("imagenet", "ppocr_det"):
        mean = np.array([0.485, 0.456, 0.406], np.float32)[None, :, None, None]
        std = np.array([0.229, 0.224, 0.225], np.float32)[None, :, None, None]
        return ((x - mean) / std).astype(np.float32)
    # PP-OCR rec/cls: (x - 0.5) / 0.5
    return ((x - 0.5) / 0.5).astype(np.float32)


def main():
    out_root = ROOT / "testdata" / "reference"
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    for seed, (name, (files, shape, kind)) in enumerate(MODELS.items()):
        path = find(files)
        if path is None:
            print(f"skip {name}: none of {files} found in {[str(s) for s in SEARCH]}", file=sys.stderr)
            continue
        s = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
        inp = s.get_inputs()[0]
        x = make_input(kind, shape, seed)
        outs = s.run(None, {inp.name: x})
        d = out_root / name
        d.mkdir(parents=True, exist_ok=True)
        for old in d.glob("*.npy"):
            old.unlink()
        (d / "model.txt").write_text("\n".join(files) + "\n")
        (d / "ort.txt").write_text(f"onnxruntime {ort.__version__}, CPUExecutionProvider, default graph optimizations, 1 thread\n")
        np.save(d / f"input_{inp.name}.npy", x)
        for i, o in enumerate(outs):
            np.save(d / f"output_{i}.npy", o)
        print(f"{name}: {path.name} input {inp.name}{list(x.shape)} -> {[list(o.shape) for o in outs]}", file=sys.stderr)


if __name__ == "__main__":
    main()
