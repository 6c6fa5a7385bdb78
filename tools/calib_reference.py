#!/usr/bin/env python3
# pip requirements: numpy, onnx==1.22.0, onnxruntime==1.32.0  (see tools/requirements.txt)
"""Reference thresholds for qopt's calibration methods, written to testdata/calib/methods.json.

Independent references, run on the same histograms the Rust tests read from the fixture:

- `trt_kl`: TensorRT EntropyCalibration2 re-implemented here from the published description
  (S. Migacz, "8-bit Inference with TensorRT", GTC 2017), with the choices the slides leave open
  taken from NVIDIA's pytorch-quantization `_compute_amax_entropy` (bin j of i goes to level
  floor(j * 128 / i)) and MXNet (Q is spread over the bins where P is non-zero); exact zeros
  are removed from bin 0 before the search (DESIGN.md §6).
- `ort_entropy`, `ort_percentile_*`: ONNX Runtime's own code,
  `onnxruntime.quantization.calibrate.HistogramCollector`, configured with num_bins=2048 and
  num_quantized_bins=128; instead of letting ORT build its histograms from raw arrays (its
  bin edges depend on the first batch), the fixture's histogram is put into
  `collector.histogram_dict` in ORT's tuple format, so both sides read identical counts.
  The signed histogram is first cropped symmetrically to the smallest half-width that holds
  every value (what qopt's kl-signed does to its power-of-two histogram, and what ORT's own
  histogram, spanning [-max|x|, max|x|], is by construction).
- `mse_sym`: brute-force expected squared error by numerical integration (64 points per bin)
  of symmetric 8-bit quantization, over the candidate thresholds j * bin_width.
- `admm`: MNN's `QuantizeWeightADMM` loop (tools/quantization/quantizeWeight.cpp), 1000
  iterations, on the |x| histogram as weighted points (bin centres), with np.rint rounding.
- `minmax_ema`: ORT's `MinMaxCalibrater(moving_average=True)` run end to end on a one-node
  model over the fixture's batches.
- `binning`: qopt's power-of-two histogram layout, re-implemented here (bin = floor(x / 2^k)
  with the smallest k whose range holds the data), on small batches of growing range; the
  Rust side must stream the batches to the same counts.

Run: /work/venv/bin/python tools/calib_reference.py  (writes testdata/calib/methods.json)
"""

import json
import os
import sys
import tempfile

import numpy as np
import onnx
import onnxruntime
from onnx import TensorProto, helper
from onnxruntime.quantization.calibrate import HistogramCollector, MinMaxCalibrater

BINS = 2048
LEVELS = 128
OUT = os.path.join(os.path.dirname(__file__), "..", "testdata", "calib", "methods.json")


# ---------------------------------------------------------------- qopt's histogram layout
def exponent(span, need_hi, need_lo=None):
    """Smallest k with span * 2^k > need_hi (and >= -need_lo for signed), k >= -126."""
    k = -126
    while True:
        r = span * 2.0**k
        if need_hi < r and (need_lo is None or need_lo >= -r):
            return k
        k += 1


def pow2_hists(x, bins=BINS):
    x = x.astype(np.float64)
    amax = np.abs(x).max()
    ka = exponent(bins, amax)
    abs_idx = np.minimum(np.floor(np.abs(x) / 2.0**ka), bins - 1).astype(np.int64)
    abs_counts = np.bincount(abs_idx, minlength=bins)
    half = bins // 2
    ks = exponent(half, x.max(), x.min())
    s_idx = np.floor(x / 2.0**ks).astype(np.int64) + half
    s_counts = np.bincount(s_idx, minlength=bins)
    return (
        {"lo": 0.0, "hi": bins * 2.0**ka, "counts": abs_counts.tolist()},
        {"lo": -half * 2.0**ks, "hi": half * 2.0**ks, "counts": s_counts.tolist()},
    )


def crop_signed(h):
    c = np.array(h["counts"])
    n = len(c)
    half = n // 2
    nz = np.nonzero(c)[0]
    hw = max(half - nz[0], nz[-1] + 1 - half, 1)
    w = (h["hi"] - h["lo"]) / n
    return c[half - hw : half + hw], -hw * w, hw * w


# ---------------------------------------------------------------- TensorRT entropy (GTC 2017)
def trt_kl(bins, levels=LEVELS):
    """Returns m, the number of bins kept (threshold (m + 0.5) * width), or None."""
    bins = np.asarray(bins, dtype=np.float64)
    n = int(np.nonzero(bins)[0][-1]) + 1
    bins = bins[:n]
    if n <= levels:
        return None
    best = (np.inf, None)
    for i in range(levels, n + 1):
        p = bins[:i].copy()
        p[i - 1] += bins[i:].sum()
        level = (np.arange(i) * levels) // i
        level_sum = np.bincount(level, weights=bins[:i], minlength=levels)
        level_nz = np.bincount(level, weights=(p > 0).astype(np.float64), minlength=levels)
        q = np.where(p > 0, level_sum[level] / np.maximum(level_nz[level], 1), 0.0)
        if q.sum() == 0 or np.any((p > 0) & (q == 0)):
            continue
        pn = p / p.sum()
        qn = q / q.sum()
        m = pn > 0
        d = float(np.sum(pn[m] * np.log(pn[m] / qn[m])))
        if d < best[0]:
            best = (d, i)
    return best[1]


# ---------------------------------------------------------------- ONNX Runtime
def ort_collector(method, symmetric, percentile=99.99):
    return HistogramCollector(
        method=method,
        symmetric=symmetric,
        num_bins=BINS,
        num_quantized_bins=LEVELS,
        percentile=percentile,
        scenario="same",
    )


def edges(lo, hi, n):
    return np.linspace(lo, hi, n + 1).astype(np.float32)


def ort_entropy(signed, mn, mx):
    counts, lo, hi = crop_signed(signed)
    col = ort_collector("entropy", False)
    thr = np.float32(max(abs(lo), abs(hi)))
    col.histogram_dict["t"] = (counts, edges(lo, hi, len(counts)), np.float32(mn), np.float32(mx), thr)
    r = col.compute_collection_result()["t"]
    return float(r[0]), float(r[1])


def ort_percentile(hist, mn, mx, symmetric, p):
    col = ort_collector("percentile", symmetric, p)
    c = np.array(hist["counts"])
    col.histogram_dict["t"] = (c, edges(hist["lo"], hist["hi"], len(c)), np.float32(mn), np.float32(mx))
    r = col.compute_collection_result()["t"]
    return float(r[0]), float(r[1])


# ---------------------------------------------------------------- brute-force MSE, MNN ADMM
def mse_sym(abs_hist, zeros, qmax=127, sub=64):
    c = np.array(abs_hist["counts"], dtype=np.float64)
    c[0] -= zeros
    n = int(np.nonzero(c)[0][-1]) + 1
    c = c[:n]
    w = (abs_hist["hi"] - abs_hist["lo"]) / len(abs_hist["counts"])
    # Sub-sample midpoints of every bin, each carrying count / sub.
    x = ((np.arange(n)[:, None] + (np.arange(sub)[None, :] + 0.5) / sub) * w).ravel()
    wt = np.repeat(c / sub, sub)
    keep = wt > 0
    x, wt = x[keep], wt[keep]
    best = (np.inf, None)
    for j in range(1, n + 1):
        s = j * w / qmax
        q = np.clip(np.rint(x / s), 0, qmax) * s
        e = float(np.sum(wt * (x - q) ** 2))
        if e < best[0]:
            best = (e, j * w)
    return best[1]


def admm(abs_hist, zeros, qmax=127, iters=1000):
    c = np.array(abs_hist["counts"], dtype=np.float64)
    c[0] -= zeros
    w = (abs_hist["hi"] - abs_hist["lo"]) / len(c)
    x = (np.arange(len(c)) + 0.5) * w
    keep = c > 0
    x, c = x[keep], c[keep]
    alpha = x.max() / (qmax * 1.25)
    for _ in range(iters):
        q = np.clip(np.rint(x / alpha), -qmax, qmax)
        alpha = np.sum(c * x * q) / np.sum(c * q * q)
    return float(alpha * qmax)


def ort_minmax_ema(batches, moving_average):
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, batches.shape[1]])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, batches.shape[1]])
    g = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "g", [x], [y])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "m.onnx")
        onnx.save(m, path)
        cal = MinMaxCalibrater(
            path,
            op_types_to_calibrate=["Relu"],
            augmented_model_path=os.path.join(d, "aug.onnx"),
            moving_average=moving_average,
            averaging_constant=0.01,
        )
        cal.augment_graph()
        cal.create_inference_session()

        class Reader:
            def __init__(self):
                self.it = iter([{"x": b[None, :]} for b in batches])

            def get_next(self):
                return next(self.it, None)

        cal.collect_data(Reader())
        r = cal.compute_data()["x"]
        lo, hi = r.range_value if hasattr(r, "range_value") else r
        lo, hi = np.asarray(lo).reshape(-1), np.asarray(hi).reshape(-1)
        assert lo.size == 1 and hi.size == 1, (lo, hi)
        return float(lo[0]), float(hi[0])


# ---------------------------------------------------------------- cases
def cases(rng):
    n = 200_000
    g = rng.standard_normal(n).astype(np.float32)
    yield "gauss_outliers", np.concatenate([g, np.float32([25.0, -30.0, 40.0, 18.0])])
    relu = np.maximum(rng.standard_normal(n), 0).astype(np.float32)
    yield "relu_outliers", np.concatenate([relu, np.float32([12.0, 15.0])])
    yield "laplace", rng.laplace(0.0, 1.0, n).astype(np.float32)
    yield "uniform", rng.uniform(-1.0, 1.0, n).astype(np.float32)
    skew = np.concatenate([rng.normal(1.0, 0.5, int(n * 0.8)), rng.normal(-2.0, 0.3, int(n * 0.2))])
    yield "skewed", skew.astype(np.float32)


def main():
    rng = np.random.default_rng(20240601)
    out = {
        "generator": "tools/calib_reference.py",
        "numpy": np.__version__,
        "onnxruntime": onnxruntime.__version__,
        "bins": BINS,
        "levels": LEVELS,
        "cases": [],
    }
    for name, x in cases(rng):
        mn, mx = float(x.min()), float(x.max())
        zeros = int(np.sum(x == 0))
        abs_h, signed_h = pow2_hists(x)
        amax = float(np.abs(x).max())
        nz = np.abs(x[x != 0]).astype(np.float64)
        tight_counts, _ = np.histogram(nz, BINS, range=(0.0, amax))
        tight = {"lo": 0.0, "hi": amax, "counts": tight_counts.tolist()}
        b_abs = np.array(abs_h["counts"])
        b_abs[0] -= zeros
        w_abs = abs_h["hi"] / BINS
        m_q = trt_kl(b_abs)
        m_t = trt_kl(tight_counts)
        case = {
            "name": name,
            "n": int(x.size),
            "min": mn,
            "max": mx,
            "zeros": zeros,
            "abs_hist": abs_h,
            "signed_hist": signed_h,
            "tight_abs_hist": tight,
            "trt_kl": {
                "qopt_layout": None if m_q is None else {"bins_kept": m_q, "threshold": (m_q + 0.5) * w_abs},
                "tight_layout": None if m_t is None else {"bins_kept": m_t, "threshold": (m_t + 0.5) * amax / BINS},
            },
            "ort_entropy": dict(zip(("lo", "hi"), ort_entropy(signed_h, mn, mx))),
            "ort_percentile_sym": dict(zip(("lo", "hi"), ort_percentile(abs_h, mn, mx, True, 99.99)), p=99.99),
            "ort_percentile_asym": dict(zip(("lo", "hi"), ort_percentile(signed_h, mn, mx, False, 99.9)), p=99.9),
            "mse_sym": {"threshold": mse_sym(abs_h, zeros)},
            "admm": {"threshold": admm(abs_h, zeros)},
        }
        out["cases"].append(case)
        print(name, {k: case[k] for k in ("trt_kl", "ort_entropy", "ort_percentile_sym", "mse_sym", "admm")}, file=sys.stderr)

    # Streaming layout check: three batches of growing range, 64 bins.
    batches = [(rng.standard_normal(300) * s).astype(np.float32) for s in (0.01, 1.0, 7.0)]
    allx = np.concatenate(batches)
    a, s = pow2_hists(allx, bins=64)
    out["binning"] = {"bins": 64, "batches": [b.tolist() for b in batches], "abs_hist": a, "signed_hist": s}

    ema_batches = (rng.standard_normal((8, 16)) * np.linspace(0.5, 4.0, 8)[:, None]).astype(np.float32)
    out["minmax_ema"] = {
        "batches": ema_batches.tolist(),
        "ort_moving_average": ort_minmax_ema(ema_batches, True),
        "ort_plain": ort_minmax_ema(ema_batches, False),
    }

    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    with open(OUT, "w") as f:
        json.dump(out, f, separators=(",", ":"))
        f.write("\n")
    print("wrote", os.path.normpath(OUT), file=sys.stderr)


if __name__ == "__main__":
    main()
