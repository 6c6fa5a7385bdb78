#!/usr/bin/env python3
"""Calibration cost: qopt against ONNX Runtime's Entropy calibration, same model, same images.

Requirements (tools/requirements.txt): onnx==1.22.0, onnxruntime==1.32.0, numpy, pillow.

    tools/bench_calib_vs_ort.py [--qopt target/release/qopt] [--counts 32,128] [--method kl]

For each image count N (the first N of `../shared/models/photos/calib/*.png`):
- qopt: `qopt --passes=calib{method=kl} efficientnet_lite0_keepbn.onnx --calib DIR --calib-limit N
  -o out.qir` (streaming histograms: memory independent of N);
- ONNX Runtime: `quantize_static(QDQ, per_channel=True, calibrate_method=Entropy)` with a reader
  over the same N images (ImageNet preprocessing), after `quant_pre_process` (not timed).
Both times include reading and preprocessing the images.
Each runs in its own process under `/usr/bin/time`-style accounting (wait4 rusage): wall time and
peak RSS. The table gives both and their ratios; the point of the comparison is ORT's memory,
which grows with N because its calibrator keeps every activation of every sample.
"""
import argparse
import os
import pathlib
import subprocess
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parent.parent

ORT_CHILD = r"""
import sys, numpy as np, pathlib
from PIL import Image
from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static, CalibrationDataReader
model, out, folder, n = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
MEAN = np.array([0.485, 0.456, 0.406], np.float32)[:, None, None]
STD = np.array([0.229, 0.224, 0.225], np.float32)[:, None, None]
files = sorted(pathlib.Path(folder).glob("*.png"))[:n]
xs = [(((np.asarray(Image.open(f).convert("RGB").resize((224, 224)), np.float32) / 255.0).transpose(2, 0, 1) - MEAN) / STD)[None].astype(np.float32) for f in files]
class R(CalibrationDataReader):
    def __init__(self): self.it = iter(xs)
    def get_next(self):
        x = next(self.it, None)
        return None if x is None else {"input": x}
quantize_static(model, out, R(), quant_format=QuantFormat.QDQ, per_channel=True,
                activation_type=QuantType.QInt8, weight_type=QuantType.QInt8,
                calibrate_method=CalibrationMethod.Entropy)
"""


def shared_dir():
    if os.environ.get("QOPT_SHARED_MODELS"):
        return pathlib.Path(os.environ["QOPT_SHARED_MODELS"])
    for a in [ROOT, *ROOT.parents]:
        if (a / "shared" / "models").is_dir():
            return a / "shared" / "models"
    return None


def timed(cmd):
    """Runs cmd; returns (wall seconds, peak RSS in MiB) from wait4's rusage."""
    t = time.perf_counter()
    p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, ru = os.wait4(p.pid, 0)
    wall = time.perf_counter() - t
    err = p.stderr.read().decode(errors="replace")
    if status != 0:
        sys.exit(f"failed: {' '.join(map(str, cmd))}\n{err[-2000:]}")
    return wall, ru.ru_maxrss / 1024.0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--qopt", default=str(ROOT / "target" / "release" / "qopt"))
    ap.add_argument("--counts", default="32,128")
    ap.add_argument("--method", default="kl")
    args = ap.parse_args()
    shared = shared_dir()
    if shared is None:
        sys.exit("no shared/models folder (set QOPT_SHARED_MODELS)")
    model = shared / "efficientnet_lite0_keepbn.onnx"
    photos = shared / "photos" / "calib"
    from onnxruntime.quantization.shape_inference import quant_pre_process

    with tempfile.TemporaryDirectory() as work:
        work = pathlib.Path(work)
        pre = work / "pre.onnx"
        quant_pre_process(str(model), str(pre))
        rows = []
        for n in [int(c) for c in args.counts.split(",")]:
            q = timed([args.qopt, f"--passes=calib{{method={args.method}}}", str(model), "--calib",
                       str(photos), "--calib-limit", str(n), "-q", "-o", str(work / "q.qir")])
            o = timed([sys.executable, "-c", ORT_CHILD, str(pre), str(work / "o.onnx"), str(photos), str(n)])
            rows.append((n, q, o))
            print(f"N={n}: qopt {q[0]:.1f} s {q[1]:.0f} MiB | ORT {o[0]:.1f} s {o[1]:.0f} MiB", flush=True)
    print()
    print(f"| images | qopt calib{{method={args.method}}} | ORT Entropy | ORT / qopt wall | qopt peak RSS | ORT peak RSS |")
    print("| --- | --- | --- | --- | --- | --- |")
    for n, q, o in rows:
        print(f"| {n} | {q[0]:.1f} s | {o[0]:.1f} s | {o[0] / q[0]:.1f}x | {q[1]:.0f} MiB | {o[1]:.0f} MiB |")


if __name__ == "__main__":
    main()
