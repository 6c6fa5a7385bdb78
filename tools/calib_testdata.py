#!/usr/bin/env python3
# pip requirements: numpy  (see tools/requirements.txt)
"""Small .npy/.npz calibration sources written by NumPy itself, for qopt-calib's source tests
(crates/qopt-calib/tests/sources.rs). Writes testdata/calib/arrays/.

Run: /work/venv/bin/python tools/calib_testdata.py
"""

import os

import numpy as np

OUT = os.path.join(os.path.dirname(__file__), "..", "testdata", "calib", "arrays")


def main():
    os.makedirs(os.path.join(OUT, "npy_dir"), exist_ok=True)
    # Input [N, 3, 2, 2]: four samples of batch 1 along the first axis.
    np.save(os.path.join(OUT, "stacked.npy"), np.arange(48, dtype=np.float32).reshape(4, 3, 2, 2))
    # One more rank, float64: two samples [1, 3, 2, 2], cast to f32 on load.
    np.save(os.path.join(OUT, "stacked_rank5.npy"), np.arange(24, dtype=np.float64).reshape(2, 1, 3, 2, 2) / 8)
    # Wrong channel count for [N, 3, 2, 2].
    np.save(os.path.join(OUT, "wrong_shape.npy"), np.zeros((4, 5, 2, 2), np.float32))
    # Two inputs by name: a [N, 4] f32 (given as [3, 1, 4]) and b [N, 2] i64 (given as [3, 2]).
    np.savez(
        os.path.join(OUT, "multi.npz"),
        a=np.arange(12, dtype=np.float32).reshape(3, 1, 4),
        b=np.arange(6, dtype=np.int64).reshape(3, 2),
    )
    np.savez_compressed(os.path.join(OUT, "multi_compressed.npz"), a=np.ones((2, 1, 4), np.float32), b=np.ones((2, 2), np.int64))
    # A folder of per-sample files: without batch axis, with it, and one with a NaN.
    np.save(os.path.join(OUT, "npy_dir", "s0.npy"), np.full((3, 2, 2), 0.5, np.float32))
    np.save(os.path.join(OUT, "npy_dir", "s1.npy"), np.full((1, 3, 2, 2), -1.5, np.float32))
    nan = np.zeros((1, 3, 2, 2), np.float32)
    nan[0, 1, 0, 0] = np.nan
    nan[0, 2, 1, 1] = np.inf
    np.save(os.path.join(OUT, "npy_dir", "s2.npy"), nan)
    with open(os.path.join(OUT, "truncated.npy"), "wb") as f:
        f.write(open(os.path.join(OUT, "stacked.npy"), "rb").read()[:100])


if __name__ == "__main__":
    main()
