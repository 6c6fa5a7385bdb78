# Writes x3.npy, the calibration data of ../minmax_npy.qir: 3 samples of the input x: f32[1,4].
# Requirements: numpy.   Run: python gen.py (from this folder).
import numpy as np

x = np.array(
    [[[-1.0, 0.5, 2.0, 3.0]], [[0.25, -4.0, 1.0, 1.0]], [[5.0, 0.0, -0.5, 1.0]]],
    dtype=np.float32,
)
np.save("x3.npy", x)
