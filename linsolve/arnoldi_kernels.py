"""One compiled Arnoldi step of restarted Krylov methods with a row-major basis (numba,
``cache=True``, no fastmath): classical Gram-Schmidt of the new vector against the contiguous
block of basis rows before it (GCRO-DR's [C, V_j]), the optional second pass, the
Hessenberg column, the Givens update of the least-squares problem and the normalisation.

The projections are BLAS GEMVs (numba's ``np.dot``), so the vector work runs at the speed
of the Python version; what the kernel removes is the ten or so Python-level calls and
temporaries of every step, which at n ~ 10^4 cost as much as a fifth of the step.
"""
from __future__ import annotations

import math

import numpy as np
from numba import njit

from .givens_kernels import givens_column


@njit(cache=True, fastmath=False)
def project(Vj, w, h, tmp):
    """One classical Gram-Schmidt pass: h = Vj w; w -= Vj^T h (tmp: work vector of w's
    length); returns ||w|| after the projection."""
    np.dot(Vj, w, h)
    np.dot(h, Vj, tmp)
    for t in range(w.shape[0]):
        w[t] -= tmp[t]
    return math.sqrt(np.dot(w, w))


@njit(cache=True, fastmath=False)
def arnoldi_step(Vh, j, kc, refine, h, h2, tmp, G, cs, sn, Rt, g):
    """Orthogonalise w = Vh[j + 1] (holding B v_j on entry) against the rows Vh[:j + 1].

    One classical Gram-Schmidt pass, and a second one when ``||w_after|| < refine *
    ||w_before||`` (refine = 0: never, like PETSc's default; 1/sqrt(2): PETSc's "ifneeded";
    inf: always, CGS2). Writes the coefficients to G[:j + 2, j], rotates that column by the
    stored Givens rotations of the columns kc.. (``givens_kernels.givens_column``), and
    normalises w in place (zeroes it on breakdown). ``h``, ``h2`` (length >= j + 1) and
    ``tmp`` (length n) are work space.

    Returns (least-squares residual estimate, breakdown)."""
    nr = j + 1
    Vj = Vh[:nr]
    w = Vh[j + 1]
    hh = h[:nr]
    always = refine == np.inf
    wn = math.sqrt(np.dot(w, w)) if (refine > 0.0 and not always) else 0.0
    hn = project(Vj, w, hh, tmp)
    if always or hn < refine * wn:
        # cancellation: one more classical Gram-Schmidt pass
        h2v = h2[:nr]
        hn = project(Vj, w, h2v, tmp)
        for i in range(nr):
            hh[i] += h2v[i]
    for i in range(nr):
        G[i, j] = hh[i]
    G[nr, j] = hn
    est, hnorm = givens_column(hh, kc, hn, j - kc, cs, sn, Rt, g)
    breakdown = not (hn > 1e-14 * hnorm)
    if breakdown:
        w[:] = 0.0
    else:
        s = 1.0 / hn
        for t in range(w.shape[0]):
            w[t] *= s
    return est, breakdown
