#!/usr/bin/env python3
"""Quantization quality: qopt against ONNX Runtime's own quantizer, same models, same data.

Requirements (tools/requirements.txt): onnx==1.22.0, onnxruntime==1.32.0, numpy, pillow.

    tools/compare_ort_quant.py [--qopt target/release/qopt] [--models mnist,effnet,cls,rec,det]
                               [--methods minmax,kl,kl-signed,percentile,mse,auto,auto-net,percentile+eq,mse+eq] [--work DIR] [--table OUT.md]

For each model the same calibration samples go to both quantizers, and both quantized
models run in ONNX Runtime (graph optimizations off: the QDQ semantics ONNX defines, see run())
on held-out evaluation samples:

- qopt: `qopt --passes=fuse,calib{method=M},qdq MODEL --calib calib.npy -o OUT.onnx`
  (target onnxruntime: int8 asymmetric activations, int8 symmetric per-channel weights).
- ONNX Runtime at its best: `quant_pre_process` first (BN folded, constants made
  initializers; PP-OCR models converted to opset 13 and `skip_symbolic_shape=True`), then
  `quantize_static(QuantFormat.QDQ, per_channel=True, QInt8/QInt8)` with MinMax, Entropy
  (num_bins 2048, set through `create_calibrator` and the calibration cache, since
  `quantize_static` does not forward it) and Percentile (99.99, the percentile qopt uses,
  asymmetric; ORT's default symmetric percentile is also run and the better of the two
  reported). qopt's percentile is likewise the better of its two forms: each tail (its
  default for this target) and `abs=true` (one cut on |x|, ORT's symmetric form).

Models and data (`../shared/models`, `testdata/external/ppocr`):
- mnist_cnn_bn: calibration `mnist/calib_x.npy` (128), evaluation `mnist/test_x.npy`,
  `test_y.npy` (1000): top-1 accuracy.
- efficientnet_lite0: `photos/calib` (128), `photos/eval` (128), ImageNet preprocessing.
- PP-OCRv4 cls (48x192), rec (48x320), det (320x320): rendered text images (seeded,
  different seeds for calibration and evaluation; 64 calibration images each, 2048/256/24
  evaluation images for cls/rec/det: a 2-class softmax needs many images for a stable SQNR);
  cls half of them upside down.
Metrics against the fp32 model on the evaluation set: top-1 agreement (classifiers; for
rec, per time step), mean cosine similarity and SQNR (dB) of the outputs.
"""
import argparse
import json
import os
import pathlib
import subprocess
import sys
import tempfile
import time

import numpy as np
import onnx
import onnxruntime as ort

ROOT = pathlib.Path(__file__).resolve().parent.parent


def shared_dir():
    if os.environ.get("QOPT_SHARED_MODELS"):
        return pathlib.Path(os.environ["QOPT_SHARED_MODELS"])
    for a in [ROOT, *ROOT.parents]:
        if (a / "shared" / "models").is_dir():
            return a / "shared" / "models"
    return None


SHARED = shared_dir()
PPOCR = ROOT / "testdata" / "external" / "ppocr"
MEAN = np.array([0.485, 0.456, 0.406], np.float32)[:, None, None]
STD = np.array([0.229, 0.224, 0.225], np.float32)[:, None, None]
WORDS = (
    "qopt quantize ONNX model INT8 calibration scale zero point tensor channel weight "
    "activation runtime graph pass kernel 2026 0123456789 PaddleOCR text detection "
    "recognition direction classifier invoice total amount date name address phone"
).split()


# ---- data ---------------------------------------------------------------------------


def photos(folder, limit=None):
    from PIL import Image

    files = sorted(folder.glob("*.png"))[:limit]
    xs = []
    for f in files:
        img = np.asarray(Image.open(f).convert("RGB").resize((224, 224)), np.float32) / 255.0
        xs.append(((img.transpose(2, 0, 1) - MEAN) / STD)[None])
    return np.concatenate(xs).astype(np.float32)


def text_image(h, w, rng, lines):
    """Dark text on a light, noisy background, HxW RGB in [0, 1]."""
    from PIL import Image, ImageDraw, ImageFont

    bg = tuple(int(v) for v in rng.integers(190, 256, 3))
    img = Image.new("RGB", (w, h), bg)
    d = ImageDraw.Draw(img)
    for i in range(lines):
        size = int(rng.integers(max(10, h // 3), max(12, h // 2 + 4))) if lines == 1 else int(rng.integers(14, 30))
        try:
            font = ImageFont.load_default(size=size)
        except TypeError:
            font = ImageFont.load_default()
        text = " ".join(rng.choice(WORDS, int(rng.integers(1, 4))))
        x = int(rng.integers(0, max(1, w // 6)))
        y = int((h - size) / 2 + rng.integers(-3, 4)) if lines == 1 else int(rng.integers(0, h - size))
        fill = tuple(int(v) for v in rng.integers(0, 90, 3))
        d.text((x, y), text, fill=fill, font=font)
    a = np.asarray(img, np.float32) / 255.0
    a = a + rng.normal(0, 0.02, a.shape).astype(np.float32)
    return np.clip(a, 0, 1)


def ppocr_data(kind, n, seed):
    rng = np.random.default_rng(seed)
    xs = []
    for i in range(n):
        if kind == "det":
            a = text_image(320, 320, rng, lines=6)
            x = (a.transpose(2, 0, 1) - MEAN) / STD
        else:
            w = 192 if kind == "cls" else 320
            a = text_image(48, w, rng, lines=1)
            if kind == "cls" and i % 2 == 1:
                a = a[::-1, ::-1]
            x = (a.transpose(2, 0, 1) - 0.5) / 0.5
        xs.append(x[None].astype(np.float32))
    return np.concatenate(xs)


def ppocr_model(stem):
    p = PPOCR / f"{stem}.onnx"
    if p.is_file():
        return p
    names = {"det": "ch_PP-OCRv4_det_infer", "rec": "ch_PP-OCRv4_rec_infer", "cls": "ch_ppocr_mobile_v2.0_cls_infer"}
    alt = pathlib.Path("/tmp/models/rapidocr_onnxruntime/models") / f"{names[stem]}.onnx"
    return alt if alt.is_file() else None


def model_specs(names):
    specs = []
    for name in names:
        if name == "mnist" and SHARED and (SHARED / "mnist_cnn_bn.onnx").is_file():
            m = SHARED / "mnist"
            specs.append(dict(name="mnist_cnn_bn", path=SHARED / "mnist_cnn_bn.onnx", ppocr=False,
                              calib=lambda: np.load(m / "calib_x.npy").astype(np.float32),
                              eval=lambda: np.load(m / "test_x.npy").astype(np.float32),
                              labels=lambda: np.load(m / "test_y.npy"), kind="class", shape=None))
        elif name == "effnet" and SHARED and (SHARED / "efficientnet_lite0_keepbn.onnx").is_file():
            specs.append(dict(name="efficientnet_lite0", path=SHARED / "efficientnet_lite0_keepbn.onnx", ppocr=False,
                              calib=lambda: photos(SHARED / "photos" / "calib"),
                              eval=lambda: photos(SHARED / "photos" / "eval"),
                              labels=None, kind="class", shape=None))
        elif name in ("cls", "rec", "det") and ppocr_model(name):
            shape = {"cls": "1,3,48,192", "rec": "1,3,48,320", "det": "1,3,320,320"}[name]
            n_cal, n_eval = {"cls": (64, 2048), "rec": (64, 256), "det": (24, 24)}[name]
            specs.append(dict(name=f"PP-OCRv4 {name}", path=ppocr_model(name), ppocr=True,
                              calib=(lambda k=name, n=n_cal: ppocr_data(k, n, 1)),
                              eval=(lambda k=name, n=n_eval: ppocr_data(k, n, 2)),
                              labels=None, kind={"cls": "class", "rec": "seq", "det": "map"}[name], shape=shape))
        else:
            print(f"SKIP: model '{name}' not found", file=sys.stderr)
    return specs


# ---- running and metrics ----------------------------------------------------------


def run(path, xs):
    # Graph optimizations off: ORT then executes the QDQ graph as ONNX defines it (DQ, float op,
    # Q), which measures the quantization itself. With them on, ORT's fused int8 kernels on an
    # AVX2 CPU without VNNI saturate `vpmaddubsw` pair sums for full-range int8 weights, an error
    # of that runtime (ORT recommends reduce_range there) that would blur both columns alike.
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    s = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
    name = s.get_inputs()[0].name
    return np.concatenate([s.run(None, {name: xs[i : i + 1]})[0] for i in range(len(xs))])


def sample_sums(ref, out):
    """Per sample: sum of the reference's squares and of the error's squares (SQNR's terms)."""
    r = ref.reshape(len(ref), -1).astype(np.float64)
    o = out.reshape(len(out), -1).astype(np.float64)
    return np.sum(r**2, 1), np.sum((r - o) ** 2, 1)


def delta_sqnr_ci(ref, out_a, out_b, rounds=2000, seed=0):
    """Paired bootstrap over evaluation samples of SQNR(a) - SQNR(b), in dB: the point value
    and the 2.5% / 97.5% quantiles. Both models are scored on the same resampled samples, so
    the interval shows whether a difference is larger than what the choice of images explains."""
    sig, ea = sample_sums(ref, out_a)
    _, eb = sample_sums(ref, out_b)
    point = 10 * np.log10(eb.sum() / max(ea.sum(), 1e-30))
    idx = np.random.default_rng(seed).integers(0, len(sig), size=(rounds, len(sig)))
    d = 10 * np.log10(np.maximum(eb[idx].sum(1), 1e-30) / np.maximum(ea[idx].sum(1), 1e-30))
    lo, hi = np.quantile(d, [0.025, 0.975])
    return float(point), float(lo), float(hi)


def metrics(spec, ref, out, labels):
    r = ref.reshape(len(ref), -1).astype(np.float64)
    o = out.reshape(len(out), -1).astype(np.float64)
    cos = np.sum(r * o, 1) / np.maximum(np.linalg.norm(r, axis=1) * np.linalg.norm(o, axis=1), 1e-30)
    sqnr = 10 * np.log10(np.sum(r**2) / max(np.sum((r - o) ** 2), 1e-30))
    m = {"cosine": float(np.mean(cos)), "sqnr_db": float(sqnr)}
    if spec["kind"] == "class":
        m["top1_agree"] = float(np.mean(ref.argmax(-1) == out.argmax(-1)))
        if labels is not None:
            m["top1_acc"] = float(np.mean(out.argmax(-1) == labels))
    elif spec["kind"] == "seq":
        m["top1_agree"] = float(np.mean(ref.argmax(-1) == out.argmax(-1)))
    return m


class Reader:
    def __init__(self, name, xs):
        self.items = iter([{name: xs[i : i + 1]} for i in range(len(xs))])

    def get_next(self):
        return next(self.items, None)

    def __len__(self):
        return 0


def ort_prepare(spec, work):
    from onnxruntime.quantization.shape_inference import quant_pre_process

    src = spec["path"]
    if spec["ppocr"]:
        m = onnx.version_converter.convert_version(onnx.load(src), 13)
        src = work / "opset13.onnx"
        onnx.save(m, src)
    pre = work / "ort_pre.onnx"
    quant_pre_process(str(src), str(pre), skip_symbolic_shape=spec["ppocr"])
    return pre


# The methods ONNX Runtime has (kl: its Entropy calibrator, the signed-histogram KL that qopt
# calls kl-signed); qopt's others (kl-signed, mse, admm, auto) get a qopt column only.
ORT_METHODS = ("minmax", "kl", "percentile")


def ort_quantize(pre, out, method, calib, work):
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.calibrate import create_calibrator, save_tensors_data

    name = ort.InferenceSession(str(pre), providers=["CPUExecutionProvider"]).get_inputs()[0].name
    kw = dict(quant_format=QuantFormat.QDQ, per_channel=True, activation_type=QuantType.QInt8,
              weight_type=QuantType.QInt8)
    if method == "minmax":
        quantize_static(str(pre), str(out), Reader(name, calib), calibrate_method=CalibrationMethod.MinMax, **kw)
    elif method.startswith("percentile"):
        sym = method.endswith("sym")
        quantize_static(str(pre), str(out), Reader(name, calib), calibrate_method=CalibrationMethod.Percentile,
                        extra_options={"CalibPercentile": 99.99, "CalibTensorRangeSymmetric": sym}, **kw)
    elif method == "kl":
        cache = work / "entropy2048.json"
        with tempfile.TemporaryDirectory() as d:
            c = create_calibrator(pre, None, augmented_model_path=os.path.join(d, "aug.onnx"),
                                  calibrate_method=CalibrationMethod.Entropy,
                                  extra_options={"num_bins": 2048, "num_quantized_bins": 128})
            c.collect_data(Reader(name, calib))
            save_tensors_data(c.compute_data(), cache)
        quantize_static(str(pre), str(out), None, calibrate_method=CalibrationMethod.Entropy,
                        calibration_cache_path=str(cache), **kw)
    else:
        raise ValueError(method)


# qopt's forms of a method, reported like ORT's: the better one (named in the JSON).
# percentile: each tail of the signed histogram (the default for an asymmetric target) and one
# cut on |x| clipped to the observed range (`abs=true`, ORT's symmetric form).
# auto-net is a row of its own: `auto` whose start is chosen by the whole network's output error
# on the last 16 calibration samples (`refine=0`: the best of the local choice and each method
# everywhere; see passes/src/thresholds_refine.rs).
# M+eq rows run EasyQuant (`eq`, passes/src/eq) after calibrating with M.
QOPT_VARIANTS = {
    "percentile": [("percentile", "method=percentile"), ("percentile-abs", "method=percentile abs=true")],
    "auto-net": [("auto-net", "method=auto refine=0 refine-samples=16")],
    "kl+eq": [("kl+eq", "method=kl},eq{")],
    "minmax+eq": [("minmax+eq", "method=minmax},eq{")],
    "percentile+eq": [("percentile+eq", "method=percentile},eq{")],
    "mse+eq": [("mse+eq", "method=mse},eq{")],
}


def qopt_quantize(qopt, spec, out, calib_opts, calib_path):
    cmd = [str(qopt), f"--passes=fuse,calib{{{calib_opts}}},qdq", str(spec["path"]),
           "--calib", str(calib_path), "-o", str(out)]
    if spec["shape"]:
        cmd += ["--input-shape", f"x={spec['shape']}"]
    t = time.time()
    p = subprocess.run(cmd, capture_output=True, text=True)
    if p.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)}\n{p.stderr}")
    return time.time() - t


def fmt(m):
    if m is None:
        return "—"
    parts = []
    if "top1_acc" in m:
        parts.append(f"acc {100 * m['top1_acc']:.1f}%")
    if "top1_agree" in m:
        parts.append(f"agree {100 * m['top1_agree']:.1f}%")
    parts.append(f"cos {m['cosine']:.4f}")
    parts.append(f"{m['sqnr_db']:.1f} dB")
    if m.get("variant", "").endswith(("-sym", "-abs")):
        parts[-1] += f" ({m['variant']})"
    return ", ".join(parts)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--qopt", default=str(ROOT / "target" / "release" / "qopt"))
    ap.add_argument("--models", default="mnist,effnet,cls,rec,det")
    ap.add_argument("--methods", default="minmax,kl,kl-signed,percentile,mse,auto,auto-net,percentile+eq,mse+eq")
    ap.add_argument("--work", default=None)
    ap.add_argument("--reuse", action="store_true",
                    help="keep ORT-quantized models already in --work (from an earlier run) instead of re-quantizing")
    ap.add_argument("--table", default=None, help="write the markdown table here")
    ap.add_argument("--json", default=None, help="write all figures here")
    args = ap.parse_args()
    work_root = pathlib.Path(args.work or tempfile.mkdtemp(prefix="qopt-vs-ort-"))
    methods = args.methods.split(",")
    results = {}
    for spec in model_specs(args.models.split(",")):
        work = work_root / spec["name"].replace(" ", "_")
        work.mkdir(parents=True, exist_ok=True)
        calib, evx = spec["calib"](), spec["eval"]()
        labels = spec["labels"]() if spec["labels"] else None
        calib_path = work / "calib.npy"
        np.save(calib_path, calib)
        ref = run(spec["path"], evx)
        row = {"fp32": metrics(spec, ref, ref, labels)}
        outputs = {}
        pre = ort_prepare(spec, work)
        for m in methods:
            if m in ORT_METHODS:
                variants = ["percentile", "percentile-sym"] if m == "percentile" else [m]
                best = None
                for v in variants:
                    out = work / f"ort_{v}.onnx"
                    try:
                        if not (args.reuse and out.exists()):
                            ort_quantize(pre, out, v, calib, work)
                        y = run(out, evx)
                        r = metrics(spec, ref, y, labels)
                    except Exception as e:  # report, do not stop the table
                        print(f"ORT {v} on {spec['name']} failed: {e}", file=sys.stderr)
                        continue
                    if best is None or r["sqnr_db"] > best["sqnr_db"]:
                        best, outputs[f"ort {m}"] = dict(r, variant=v), y
                row[f"ort {m}"] = best
            best = None
            for v, calib_opts in QOPT_VARIANTS.get(m, [(m, f"method={m}")]):
                out = work / f"qopt_{v}.onnx"
                try:
                    secs = qopt_quantize(args.qopt, spec, out, calib_opts, calib_path)
                    y = run(out, evx)
                    r = dict(metrics(spec, ref, y, labels), seconds=secs, variant=v)
                except Exception as e:
                    print(f"qopt {v} on {spec['name']} failed: {e}", file=sys.stderr)
                    continue
                if best is None or r["sqnr_db"] > best["sqnr_db"]:
                    best, outputs[f"qopt {m}"] = r, y
            row[f"qopt {m}"] = best
            if f"ort {m}" in outputs and f"qopt {m}" in outputs:
                row[f"delta {m}"] = delta_sqnr_ci(ref, outputs[f"qopt {m}"], outputs[f"ort {m}"])
            print(f"{spec['name']:20} {m:11} ORT: {fmt(row.get('ort ' + m))} | qopt: {fmt(row[f'qopt {m}'])}",
                  file=sys.stderr)
        # Best against best (by SQNR, each side over its own methods), with the same interval.
        best = {side: max(((k, r) for k, r in row.items() if k.startswith(side + " ") and r),
                          key=lambda kr: kr[1]["sqnr_db"], default=None) for side in ("ort", "qopt")}
        if best["ort"] and best["qopt"]:
            (kq, _), (ko, _) = best["qopt"], best["ort"]
            row["best"] = {"qopt": kq[5:], "ort": ko[4:],
                           "delta": delta_sqnr_ci(ref, outputs[kq], outputs[ko])}
        results[spec["name"]] = row
    lines = ["| model | method | ONNX Runtime | qopt | qopt - ORT SQNR, dB [95% CI] |",
             "| --- | --- | --- | --- | --- |"]
    for name, row in results.items():
        lines.append(f"| {name} | fp32 | {fmt(row['fp32'])} | | |")
        for m in methods:
            ort_cell = fmt(row.get("ort " + m)) if m in ORT_METHODS else "(no such method)"
            d = row.get("delta " + m)
            d_cell = f"{d[0]:+.1f} [{d[1]:+.1f}, {d[2]:+.1f}]" if d else ""
            lines.append(f"| | {m} | {ort_cell} | {fmt(row.get('qopt ' + m))} | {d_cell} |")
        if "best" in row:
            b = row["best"]
            d = b["delta"]
            lines.append(f"| | best vs best | {b['ort']} | {b['qopt']} | {d[0]:+.1f} [{d[1]:+.1f}, {d[2]:+.1f}] |")
    table = "\n".join(lines)
    print(table)
    if args.table:
        pathlib.Path(args.table).write_text(table + "\n")
    if args.json:
        pathlib.Path(args.json).write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
