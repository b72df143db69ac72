"""Compiled least-squares bookkeeping of restarted Krylov methods (numba, ``cache=True``, no
fastmath): one new Hessenberg column through the stored Givens rotations. In Python this
per-step loop over the previous rotations cost about as much as the Arnoldi step's own
vector work at n ~ 10^4 with m = 40."""
from __future__ import annotations

import math

import numpy as np
from numba import njit


@njit(cache=True, fastmath=False)
def givens_column(h, off, hn, jj, cs, sn, Rt, g):
    """Rotate column ``jj`` of the Hessenberg matrix, (h[off:off+jj+1], hn), by the ``jj``
    stored rotations (cs, sn), make rotation ``jj`` that annihilates ``hn``, write the
    triangular column to Rt[:jj+1, jj] and rotate the right-hand side g.

    Returns (|g[jj+1]|, the least-squares residual norm, and the 2-norm of the column)."""
    col = np.empty(jj + 2)
    s2 = hn * hn
    for i in range(jj + 1):
        col[i] = h[off + i]
        s2 += col[i] * col[i]
    col[jj + 1] = hn
    for i in range(jj):
        a = col[i]
        b = col[i + 1]
        col[i] = cs[i] * a + sn[i] * b
        col[i + 1] = -sn[i] * a + cs[i] * b
    a = col[jj]
    b = col[jj + 1]
    rr = math.hypot(a, b)
    if rr > 0.0:
        c = a / rr
        s = b / rr
    else:
        c = 1.0
        s = 0.0
    cs[jj] = c
    sn[jj] = s
    col[jj] = rr
    for i in range(jj + 1):
        Rt[i, jj] = col[i]
    g[jj + 1] = -s * g[jj]
    g[jj] = c * g[jj]
    return abs(g[jj + 1]), math.sqrt(s2)
