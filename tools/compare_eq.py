#!/usr/bin/env python3
"""EasyQuant (`eq`) against KL calibration alone, at 8 and 7 bits, on the models of
tools/compare_ort_quant.py (same data handling, same metrics, ONNX Runtime runs every model).

Requirements (tools/requirements.txt): onnx==1.22.0, onnxruntime==1.32.0, numpy, pillow.

    tools/compare_eq.py [--qopt target/release/qopt] [--models mnist,effnet,cls,rec,det]
                        [--bits 8,7] [--eq-options ''] [--work DIR] [--table OUT.md]

Per model and bit width b (KL searched over 2^(b-1) levels, the grid of b bits):
- kl:    qopt --passes=fuse,calib{method=kl levels=L},qdq{bits=b}
- kl+eq: qopt --passes=fuse,calib{method=kl levels=L},eq{bits=b},qdq{bits=b}
Both on the same calibration samples (eq searches on the first 50 of them), evaluated on the
held-out set against the fp32 model: top-1 accuracy / agreement, mean cosine, SQNR (dB), and
eq's wall time from `--time-passes`. Each quantized model runs twice in ONNX Runtime: with its
default optimizations (QDQ fused into int8 kernels; on AVX2 without VNNI these use u8s8
VPMADDUBSW, whose 16-bit intermediate sums can saturate, which ONNX Runtime documents and
which costs 8-bit models accuracy), and with graph optimizations disabled, which runs
QuantizeLinear/DequantizeLinear as written: the exact numerics `eq` optimises for. The EasyQuant paper (Wu et al. 2020, Tables 1-3) reports
EQ >= KL on every model, with the gap widening at 7 bits.
"""
import argparse
import pathlib
import re
import subprocess
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
import compare_ort_quant as C  # noqa: E402


def run_exact(path, xs):
    """ONNX Runtime without graph optimizations: Q/DQ as written, float ops in between."""
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    s = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
    name = s.get_inputs()[0].name
    return np.concatenate([s.run(None, {name: xs[i : i + 1]})[0] for i in range(len(xs))])


def qopt(binary, spec, out, passes, calib_path):
    cmd = [str(binary), f"--passes={passes}", str(spec["path"]), "--calib", str(calib_path),
           "-o", str(out), "--time-passes", "-v"]
    if spec["shape"]:
        cmd += ["--input-shape", f"x={spec['shape']}"]
    t = time.time()
    p = subprocess.run(cmd, capture_output=True, text=True)
    if p.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)}\n{p.stderr}")
    wall = time.time() - t
    eq = re.search(r"^\s*([0-9.]+)\s+[0-9.]+\s+\S+\s+eq\{", p.stderr, re.M)
    notes = [l for l in p.stderr.splitlines() if "[eq]" in l]
    return wall, (float(eq.group(1)) if eq else None), notes


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--qopt", default=str(C.ROOT / "target" / "release" / "qopt"))
    ap.add_argument("--models", default="mnist,effnet,cls,rec,det")
    ap.add_argument("--bits", default="8,7")
    ap.add_argument("--eq-options", default="", help="extra eq options, e.g. 'samples=20'")
    ap.add_argument("--work", default=None)
    ap.add_argument("--table", default=None, help="write the markdown table here")
    args = ap.parse_args()
    work_root = pathlib.Path(args.work or tempfile.mkdtemp(prefix="qopt-eq-"))
    lines = ["| model | bits | kl (ORT int8 kernels) | kl + eq (ORT int8 kernels) | kl (exact Q/DQ) "
             "| kl + eq (exact Q/DQ) | eq wall (s) |", "| --- | --- | --- | --- | --- | --- | --- |"]
    for spec in C.model_specs(args.models.split(",")):
        work = work_root / spec["name"].replace(" ", "_")
        work.mkdir(parents=True, exist_ok=True)
        calib, evx = spec["calib"](), spec["eval"]()
        labels = spec["labels"]() if spec["labels"] else None
        calib_path = work / "calib.npy"
        np.save(calib_path, calib)
        ref = C.run(spec["path"], evx)
        lines.append(f"| {spec['name']} | fp32 | {C.fmt(C.metrics(spec, ref, ref, labels))} | | | | |")
        for b in [int(x) for x in args.bits.split(",")]:
            base = f"fuse,calib{{method=kl levels={1 << (b - 1)}}}"
            row = {}
            eq_secs = None
            for key, passes in [("kl", f"{base},qdq{{bits={b}}}"),
                                ("eq", f"{base},eq{{bits={b} {args.eq_options}}},qdq{{bits={b}}}")]:
                out = work / f"{key}{b}.onnx"
                try:
                    _, secs, notes = qopt(args.qopt, spec, out, passes, calib_path)
                    row[key] = C.metrics(spec, ref, C.run(out, evx), labels)
                    row[key + " exact"] = C.metrics(spec, ref, run_exact(out, evx), labels)
                    if key == "eq":
                        eq_secs = secs
                        for n in notes:
                            print(f"{spec['name']} int{b}: {n}", file=sys.stderr)
                except Exception as e:  # report, do not stop the table
                    print(f"{key} int{b} on {spec['name']} failed: {e}", file=sys.stderr)
                    row[key] = row[key + " exact"] = None
            print(f"{spec['name']:20} int{b} kl: {C.fmt(row['kl'])} | kl+eq: {C.fmt(row['eq'])} | eq {eq_secs} s",
                  file=sys.stderr)
            wall = f"{eq_secs:.1f}" if eq_secs is not None else "—"
            lines.append(f"| | int{b} | {C.fmt(row['kl'])} | {C.fmt(row['eq'])} | {C.fmt(row['kl exact'])} "
                         f"| {C.fmt(row['eq exact'])} | {wall} |")
    table = "\n".join(lines)
    print(table)
    if args.table:
        pathlib.Path(args.table).write_text(table + "\n")


if __name__ == "__main__":
    main()
