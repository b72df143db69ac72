"""Plain gold references shared by the recycled-CG tests (not a test module)."""
from __future__ import annotations

import numpy as np


def deflated_pcg(A, b, Minv, W, iters):
    """Algorithm 3.6 of Saad, Yeung, Erhel and Guyomarc'h (2000), written plainly; with W of
    no rows (shape (0, n)) it is textbook PCG."""
    AW = (A @ W.T).T
    Einv = np.linalg.inv(W @ AW.T)
    x = np.zeros_like(b)
    r = b - A @ x
    c = Einv @ (W @ r)
    x = x + W.T @ c
    r = r - AW.T @ c
    z = Minv(r)
    p = z - W.T @ (Einv @ (AW @ z))
    norms = []
    for _ in range(iters):
        Ap = A @ p
        alpha = (r @ z) / (p @ Ap)
        x = x + alpha * p
        r_new = r - alpha * Ap
        norms.append(np.linalg.norm(r_new))
        z_new = Minv(r_new)
        beta = (r_new @ z_new) / (r @ z)
        p = z_new + beta * p - W.T @ (Einv @ (AW @ z_new))
        r, z = r_new, z_new
    return x, np.array(norms)
