"""One compiled Arnoldi step of restarted Krylov methods with a row-major basis (numba,
``cache=True``, no fastmath): classical Gram-Schmidt of the new vector against the contiguous
block of basis rows before it (GCRO-DR's [C, V_j]), the optional second pass, the
Hessenberg column, the Givens update of the least-squares problem and the normalisation.

The inner products are one BLAS GEMV, the update a PETSc-style multi-vector loop (eight
basis rows per pass over the new vector), and the kernel removes the ten or so Python-level
calls and temporaries of every step. No kernel here is compiled with reassociation: with it
the rounding of the vectorised loops, and so the same solve in two processes, can differ in
the last bits.
"""
from __future__ import annotations

import math

import numpy as np
from numba import njit

from linsolve.recycling.givens_kernels import givens_column

# Contraction to FMA only: deterministic for a given build, and NaN and Inf still propagate.
_FM = {"contract"}


@njit(cache=True, boundscheck=False)
def _mdot(V, nr, w, h):
    """h[:nr] = V[:nr] w by BLAS GEMV, whose summation order is fixed (a compiled loop is
    1.3-1.9x slower here without reassociation)."""
    if nr > 0:
        h[:nr] = np.dot(V[:nr], w)


@njit(cache=True, fastmath=_FM, boundscheck=False)
def _maxpy(V, nr, w, h):
    """w -= V[:nr]^T h[:nr], eight rows per pass over w (PETSc's VecMAXPY)."""
    n = w.shape[0]
    i = 0
    while i + 8 <= nr:
        v0, v1, v2, v3 = V[i], V[i + 1], V[i + 2], V[i + 3]
        v4, v5, v6, v7 = V[i + 4], V[i + 5], V[i + 6], V[i + 7]
        c0, c1, c2, c3 = h[i], h[i + 1], h[i + 2], h[i + 3]
        c4, c5, c6, c7 = h[i + 4], h[i + 5], h[i + 6], h[i + 7]
        for t in range(n):
            w[t] -= (c0 * v0[t] + c1 * v1[t] + c2 * v2[t] + c3 * v3[t]) + (
                c4 * v4[t] + c5 * v5[t] + c6 * v6[t] + c7 * v7[t])
        i += 8
    while i + 4 <= nr:
        v0, v1, v2, v3 = V[i], V[i + 1], V[i + 2], V[i + 3]
        c0, c1, c2, c3 = h[i], h[i + 1], h[i + 2], h[i + 3]
        for t in range(n):
            w[t] -= c0 * v0[t] + c1 * v1[t] + c2 * v2[t] + c3 * v3[t]
        i += 4
    while i < nr:
        v0, c0 = V[i], h[i]
        for t in range(n):
            w[t] -= c0 * v0[t]
        i += 1


@njit(cache=True, boundscheck=False)
def _norm(w):
    return math.sqrt(np.dot(w, w))


@njit(cache=True, fastmath=False)
def project(Vj, w, h):
    """One classical Gram-Schmidt pass: h = Vj w; w -= Vj^T h; returns ||w|| after the
    projection."""
    _mdot(Vj, Vj.shape[0], w, h)
    _maxpy(Vj, Vj.shape[0], w, h)
    return _norm(w)


@njit(cache=True, fastmath=False)
def arnoldi_step(Vh, j, kc, refine, h, h2, G, cs, sn, Rt, g):
    """Orthogonalise w = Vh[j + 1] (holding B v_j on entry) against the rows Vh[:j + 1].

    One classical Gram-Schmidt pass, and a second one when ``||w_after|| < refine *
    ||w_before||`` (refine = 0: never, like PETSc's default; 1/sqrt(2): PETSc's "ifneeded";
    inf: always, CGS2). Writes the coefficients to G[:j + 2, j], rotates that column by the
    stored Givens rotations of the columns kc.. (``givens_kernels.givens_column``), and
    normalises w in place (zeroes it on breakdown). ``h``, ``h2`` (length >= j + 1) are
    work space.

    Returns (least-squares residual estimate, breakdown)."""
    nr = j + 1
    Vj = Vh[:nr]
    w = Vh[j + 1]
    hh = h[:nr]
    always = refine == np.inf
    wn = _norm(w) if (refine > 0.0 and not always) else 0.0
    hn = project(Vj, w, hh)
    if always or hn < refine * wn:
        # cancellation: one more classical Gram-Schmidt pass
        h2v = h2[:nr]
        hn = project(Vj, w, h2v)
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


@njit(cache=True, fastmath=False, boundscheck=False)
def _csr_matvec(indptr, indices, data, v, w):
    """w = A v, each row sum over the row's entries in storage order from 0.0 (the order of
    SciPy's ``csr_matvec``, so the same bits). Indices go through unsigned integers: CSR
    indices are never negative, and a signed index costs a wraparound test per entry (2x)."""
    one = np.uint64(1)
    for i in range(w.shape[0]):
        s = 0.0
        jj = np.uint64(indptr[i])
        end = np.uint64(indptr[i + 1])
        while jj < end:
            s += data[jj] * v[np.uint64(indices[jj])]
            jj += one
        w[i] = s


@njit(cache=True, fastmath=False, boundscheck=False)
def csr_pc_matvec(indptr, indices, data, dinv, side, v, w, tmp):
    """w = B v for B = A (side 0), A diag(dinv) (side 1, right Jacobi; ``tmp`` holds dinv v)
    or diag(dinv) A (side 2, left Jacobi), A in CSR: the products of the NumPy path
    (``A @ (dinv * v)``, ``dinv * (A @ v)``) in the same order, so the same bits."""
    if side == 1:
        for i in range(v.shape[0]):
            tmp[i] = dinv[i] * v[i]
        _csr_matvec(indptr, indices, data, tmp, w)
    else:
        _csr_matvec(indptr, indices, data, v, w)
        if side == 2:
            for i in range(w.shape[0]):
                w[i] = dinv[i] * w[i]


@njit(cache=True, fastmath=False)
def arnoldi_cycle(indptr, indices, data, dinv, side, tmp, Vh, kc, steps, refine, h, h2, G, cs, sn, Rt, g, tol, est):
    """The Arnoldi steps of one restart cycle in compiled code, for B = A, A M^-1 or M^-1 A with
    A in CSR and M the Jacobi diagonal (``csr_pc_matvec``, ``tmp`` its work vector): step jj builds B v_j in basis row
    j + 1 = kc + jj + 1 and runs ``arnoldi_step`` on it, stopping after ``steps`` steps, when
    the least-squares residual estimate is <= ``tol``, on breakdown, or when the new column is
    NaN/Inf (that step is then not counted). ``est[jj]`` receives step jj's estimate.

    Returns (steps taken, status): status 0 none of the stops below, 1 breakdown (Krylov
    space exhausted), 2 non-finite numbers from the operator."""
    p = 0
    status = 0
    for jj in range(steps):
        j = kc + jj
        csr_pc_matvec(indptr, indices, data, dinv, side, Vh[j], Vh[j + 1], tmp)
        e, bd = arnoldi_step(Vh, j, kc, refine, h, h2, G, cs, sn, Rt, g)
        if not (np.isfinite(e) and np.isfinite(G[j + 1, j])):
            status = 2
            break
        est[jj] = e
        p = jj + 1
        if bd:
            status = 1
            break
        if e <= tol:
            break
    return p, status


def arnoldi_step_distributed(Vh, j, kc, refine, h, h2, G, cs, sn, Rt, g, layout):
    """``arnoldi_step`` for a basis whose rows are split over MPI processes (``Vh`` holds this
    process's entries of every basis vector). The compiled multi-vector loops work on the local
    entries; each block of inner products is one global sum (``layout.sum``), like PETSc's
    VecMDot, and so is each norm: two reductions per step with one Gram-Schmidt pass (PETSc
    GMRES's VecMDot and VecNormalize), four with the second pass (its norm before the
    projection rides with the first block). The small Givens update runs on every process
    from the same reduced numbers."""
    nr = j + 1
    Vj = Vh[:nr]
    w = Vh[j + 1]
    hh = h[:nr]
    always = refine == np.inf
    buf = np.empty(nr + 1)
    _mdot(Vj, nr, w, buf)
    buf[nr] = _norm(w) ** 2 if (refine > 0.0 and not always) else 0.0
    layout.sum(buf)
    hh[:] = buf[:nr]
    wn = math.sqrt(buf[nr])
    _maxpy(Vj, nr, w, hh)
    hn = layout.norm(w)
    if always or hn < refine * wn:
        h2v = h2[:nr]
        _mdot(Vj, nr, w, h2v)
        layout.sum(h2v)
        _maxpy(Vj, nr, w, h2v)
        hn = layout.norm(w)
        hh += h2v
    G[:nr, j] = hh
    G[nr, j] = hn
    est, hnorm = givens_column(hh, kc, hn, j - kc, cs, sn, Rt, g)
    breakdown = not (hn > 1e-14 * hnorm)
    if breakdown:
        w[:] = 0.0
    else:
        w *= 1.0 / hn
    return est, breakdown


def project_distributed(Vj, w, h, layout):
    """``project`` (one classical Gram-Schmidt pass, h = Vj w; w -= Vj^T h) for rows split
    over MPI processes: the block of inner products is one global sum."""
    _mdot(Vj, Vj.shape[0], w, h)
    layout.sum(h)
    _maxpy(Vj, Vj.shape[0], w, h)
