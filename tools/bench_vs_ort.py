#!/usr/bin/env python3
"""Time qopt's fp32 interpreter against ONNX Runtime on the same model and input, one thread each.

    python tools/bench_vs_ort.py MODEL [--shape 1x3x224x224] [--rounds 5] [--repeat 20] [--threads 1]
                                  [--qopt CMD]

pip requirements: onnxruntime>=1.20 numpy

Both run as separate processes on the same seeded input (saved as .npy), interleaved: round i runs
qopt (`--repeat N` runs inside one process) then ONNX Runtime (N runs in one process, with
intra_op_num_threads = inter_op_num_threads = --threads and sequential execution). Each process
reports its median latency; the script prints the median over rounds of each, their ratio
(qopt / ORT), and the peak RSS of each process (max over rounds, from wait4's rusage).

The qopt command defaults to `target/release/qopt run` when it exists, else the interpreter's
example `target/release/examples/run_model` (build it with
`cargo build --release -p qopt-interp --example run_model`).
"""
import argparse
import json
import os
import pathlib
import re
import shlex
import statistics
import subprocess
import sys
import tempfile

import numpy as np

ORT_SCRIPT = r"""
import json, sys, time
import numpy as np, onnxruntime as ort
model, name, path, repeat, threads = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
so = ort.SessionOptions()
so.intra_op_num_threads = threads
so.inter_op_num_threads = threads
so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
s = ort.InferenceSession(model, so, providers=["CPUExecutionProvider"])
x = np.load(path)
s.run(None, {name: x})
ts = []
for _ in range(repeat):
    t = time.perf_counter()
    s.run(None, {name: x})
    ts.append((time.perf_counter() - t) * 1e3)
print(json.dumps({"median": sorted(ts)[len(ts) // 2], "min": min(ts)}))
"""


def peak_rss_mib(cmd):
    """Run cmd under wait4 to read its own peak RSS."""
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    out_chunks = p.stdout.read()
    err = p.stderr.read()
    _, status, usage = os.wait4(p.pid, 0)
    code = os.waitstatus_to_exitcode(status)
    if code != 0:
        sys.exit(f"command failed ({code}): {shlex.join(cmd)}\n{err}")
    return out_chunks, usage.ru_maxrss / 1024.0


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("model")
    ap.add_argument("--shape", help="input shape, e.g. 1x3x224x224 (default: the model's static shape)")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--repeat", type=int, default=20)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--qopt", help="qopt command prefix (default: target/release/qopt run, or the run_model example)")
    a = ap.parse_args()

    import onnx

    root = pathlib.Path(__file__).resolve().parent.parent
    m = onnx.load(a.model, load_external_data=False)
    inits = {i.name for i in m.graph.initializer}
    inp = [i for i in m.graph.input if i.name not in inits][0]
    if a.shape:
        shape = [int(d) for d in a.shape.split("x")]
    else:
        shape = [d.dim_value for d in inp.type.tensor_type.shape.dim]
        if not all(shape):
            sys.exit("the model's input shape is not static: pass --shape")
    x = np.random.default_rng(a.seed).standard_normal(shape).astype(np.float32)
    tmp = pathlib.Path(tempfile.mkdtemp(prefix="bench_vs_ort_"))
    xpath = tmp / "input.npy"
    np.save(xpath, x)

    if a.qopt:
        qcmd = shlex.split(a.qopt)
    elif (root / "target/release/qopt").exists() and subprocess.run([str(root / "target/release/qopt"), "run", "--help"], capture_output=True).returncode == 0:
        qcmd = [str(root / "target/release/qopt"), "run"]
    else:
        qcmd = [str(root / "target/release/examples/run_model")]
    qargs = qcmd + [a.model, "--input", f"{inp.name}={xpath}", "--repeat", str(a.repeat), "--threads", str(a.threads)]
    oargs = [sys.executable, "-c", ORT_SCRIPT, a.model, inp.name, str(xpath), str(a.repeat), str(a.threads)]

    q_med, o_med, q_rss, o_rss = [], [], [], []
    for r in range(a.rounds):
        out, rss = peak_rss_mib(qargs)
        mt = re.search(r"median ([0-9.]+) ms", out)
        if not mt:
            sys.exit(f"no latency in qopt output:\n{out}")
        q_med.append(float(mt.group(1)))
        q_rss.append(rss)
        out, rss = peak_rss_mib(oargs)
        o_med.append(json.loads(out)["median"])
        o_rss.append(rss)
        print(f"round {r}: qopt {q_med[-1]:.2f} ms, ORT {o_med[-1]:.2f} ms", file=sys.stderr)
    qm, om = statistics.median(q_med), statistics.median(o_med)
    print(f"model: {a.model} input {inp.name} {list(shape)}, {a.threads} thread(s), {a.rounds} rounds x {a.repeat} runs")
    print(f"qopt: median {qm:.2f} ms, peak RSS {max(q_rss):.1f} MiB   ({shlex.join(qcmd)})")
    print(f"ORT : median {om:.2f} ms, peak RSS {max(o_rss):.1f} MiB   (onnxruntime {__import__('onnxruntime').__version__})")
    print(f"latency ratio qopt/ORT: {qm / om:.2f}   peak RSS ratio: {max(q_rss) / max(o_rss):.2f}")


if __name__ == "__main__":
    main()
