# Writes x8.npy, the calibration data of ../small_conv.qir: 8 samples of the input x: f32[1,2,6,6],
# normal with a few large outliers so that min/max ranges are loose and eq has room to act.
# Requirements: numpy.   Run: python gen.py (from this folder).
import numpy as np

rng = np.random.default_rng(7)
x = rng.normal(0.0, 1.0, (8, 1, 2, 6, 6)).astype(np.float32)
x[0, 0, 0, 0, 0] = 9.0
x[3, 0, 1, 2, 3] = -8.0
np.save("x8.npy", x)
