"""Plain gold references shared by the recycled-CG tests (not a test module)."""
from __future__ import annotations

import numpy as np


def _galerkin_start(A, b, W):
    """A W, (W^T A W)^-1, and x, r after the Galerkin correction of x0 = 0 on span W."""
    AW = (A @ W.T).T
    Einv = np.linalg.inv(W @ AW.T)
    x = W.T @ (Einv @ (W @ b))
    return AW, Einv, x, b - A @ x


def deflated_pcg(A, b, Minv, W, iters):
    """Algorithm 3.6 of Saad, Yeung, Erhel and Guyomarc'h (2000), written plainly; with W of
    no rows (shape (0, n)) it is textbook PCG."""
    AW, Einv, x, r = _galerkin_start(A, b, W)
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


def restarted_init_cg(A, b, Minv, W, drop, tol, maxiter, first_run=0):
    """Init-CG with deflated restarts (Stathopoulos and Orginos 2010), written plainly: the
    Galerkin correction x += W E^-1 W^T r (E = W^T A W), then textbook PCG; once its
    recurrence residual has fallen by ``drop`` since the (re)start (and the first run has
    taken at least ``first_run`` iterations), the true residual b - A x, the correction
    again, and PCG from scratch. Returns (x, recurrence residual norms, restarts)."""
    AW, Einv, x, r = _galerkin_start(A, b, W)
    z = Minv(r)
    p = z
    start = np.linalg.norm(r)
    norms, restarts, run = [], 0, 0
    while len(norms) < maxiter:
        Ap = A @ p
        alpha = (r @ z) / (p @ Ap)
        x = x + alpha * p
        r_new = r - alpha * Ap
        norms.append(np.linalg.norm(r_new))
        run += 1
        z_new = Minv(r_new)
        if norms[-1] <= tol:
            break
        if norms[-1] <= drop * start and (restarts or run >= first_run):
            restarts += 1
            r = b - A @ x
            c = Einv @ (W @ r)
            x = x + W.T @ c
            r = r - AW.T @ c
            z = Minv(r)
            p = z
            start = np.linalg.norm(r)
            if start <= tol:
                break
            continue
        p = z_new + (r_new @ z_new) / (r @ z) * p
        r, z = r_new, z_new
    return x, np.array(norms), restarts
