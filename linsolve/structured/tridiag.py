"""Thomas-algorithm factors shared by the tensor-product Poisson solver and the channel
DNS's implicit wall-normal diffusion."""
from __future__ import annotations

import numpy as np


def thomas_factor(lower, diag, upper) -> tuple[np.ndarray, np.ndarray]:
    """Forward-elimination factors of lower[j] x[j-1] + diag[j] x[j] + upper[j] x[j+1] = d[j]
    along axis 0, for many systems at once (trailing axes broadcast): returns (inv, cp) with
    inv[j] = 1 / (diag[j] - lower[j] cp[j-1]) and cp[j] = upper[j] inv[j]. No pivoting:
    meant for the diagonally dominant or SPD systems of diffusion and Poisson operators."""
    diag = np.asarray(diag, dtype=np.float64)
    upper = np.asarray(upper, dtype=np.float64)
    lower = np.asarray(lower, dtype=np.float64)
    inv = np.empty(np.broadcast_shapes(diag.shape, upper.shape))
    cp = np.empty_like(inv)
    inv[0] = 1.0 / diag[0]
    cp[0] = upper[0] * inv[0]
    for j in range(1, diag.shape[0]):
        inv[j] = 1.0 / (diag[j] - lower[j] * cp[j - 1])
        cp[j] = upper[j] * inv[j]
    return inv, cp
