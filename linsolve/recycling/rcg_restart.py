"""The Ritz update of recycled CG's restart mode (``deflation="restart"``).

In init-CG with deflated restarts the search directions are not kept A-orthogonal to the
recycled block W, so the harmonic Ritz step over S = [W, P] (P the first run's directions)
has a full S^T A S: W^T A P = (A W) P^T is one GEMM. The rest still comes from scalars of
the iteration, as in the deflated mode: the first run is plain PCG from a residual, so
A p_j = (r_j - r_j+1)/alpha_j and the M^-1-orthogonal residuals make (AP)^T M^-1 (AP)
tridiagonal and P^T A P = diag(rho/alpha). The block (AW)^T M^-1 A P = (A M^-1 A W) P^T
(A and M symmetric) costs k products after the solve instead of the k multiply-adds per
unknown per stored iteration that t_j = (A W) z_j would cost inside it.

With ``keep`` = q > 0 (fewer than the L stored directions) the P block is first reduced to
its q lowest eigenvectors Z (the harmonic Ritz vectors of the run alone, from the
tridiagonal: MRRR, no dense L x L problem) and the pencil is solved over [W, Q], Q = Z^T P
in the A-normalised basis: a (k + q) problem instead of a (k + L) one, and P is read once
(Q = Z^T P) instead of twice (W^T A P, then the new W from P).
"""
from __future__ import annotations

import numpy as np
import scipy.linalg

from linsolve.recycling.recycle_ops import apply_block


def _tridiagonal(alpha, rho):
    """(diag, off, dP): the tridiagonal P block of G in the basis P diag(dP), dP =
    sqrt(alpha/rho) (A-normalised columns: F's P block is I); None if some rho_j/alpha_j
    is not positive and finite."""
    L = alpha.shape[0]
    with np.errstate(over="ignore", divide="ignore", invalid="ignore"):
        dP = np.sqrt(alpha / rho[:L])  # rho_j at the floating-point floor overflows: no update
    if not np.all(np.isfinite(dP) & (dP > 0)):
        return None
    diag = (rho[:L] + rho[1:L + 1]) / alpha**2 * dP**2
    off = -rho[1:L] / (alpha[:-1] * alpha[1:]) * dP[:-1] * dP[1:]
    return diag, off, dP


def _w_blocks(A, AW, Rinv, M, basis):
    """G's W block and the W-basis couplings (F_WB, G_WB) for the basis rows ``basis``
    (m, n), W in the A-orthonormal basis R^-T W. With rows split over MPI processes
    (``A.layout``) both products are one global sum."""
    MAW = M.apply_rows(AW) if hasattr(M, "apply_rows") else apply_block(M, AW)
    kw = AW.shape[0]
    AMA = AW @ MAW.T
    X = np.concatenate([AW, A.block(MAW)]) @ basis.T  # one pass over the basis for both blocks
    layout = getattr(A, "layout", None)
    if layout is not None and layout.distributed:  # rows split over processes: both blocks in one sum
        both = layout.sum(np.concatenate([AMA.ravel(), X.ravel()]))
        AMA, X = both[:AMA.size].reshape(AMA.shape), both[AMA.size:].reshape(X.shape)
    GW = Rinv.T @ AMA @ Rinv
    return (GW + GW.T) / 2, Rinv.T @ X[:kw], Rinv.T @ X[kw:]


def ritz_pencil(A, W, AW, Rinv, P, alpha, rho, M, keep=0):
    """(G, F, lift): the harmonic pencil G y = theta F y of M^-1 A over [R^-T W, B] with
    G = (AS)^T M^-1 (AS) and F = S^T A S in that basis (W^T A W = R^T R), B the rows
    P diag(dP) (A-normalised directions, ``keep`` = 0 or >= L) or Q = Z^T diag(dP) P with Z
    the ``keep`` lowest eigenvectors of the tridiagonal P block. ``lift(Y_B)`` gives the
    rows Y_B^T B. None if some rho_j/alpha_j is not positive and finite or the tridiagonal
    eigensolver fails."""
    L = P.shape[0]
    kw = 0 if W is None else W.shape[0]
    tri = _tridiagonal(alpha, rho[:L + 1])
    if tri is None:
        return None
    diag, off, dP = tri
    if 0 < keep < L:
        try:  # MRRR: a third faster than bisection with inverse iteration (stebz/stein) here
            theta, Z = scipy.linalg.eigh_tridiagonal(diag, off, select="i", select_range=(0, keep - 1),
                                                     lapack_driver="stemr")
        except (np.linalg.LinAlgError, ValueError):
            return ritz_pencil(A, W, AW, Rinv, P, alpha, rho, M)
        Q = (Z * dP[:, None]).T @ P
        m, GP = keep, np.diag(theta)

        def lift(YB):
            return YB.T @ Q
    else:
        Q = None
        m, GP = L, np.diag(diag) + np.diag(off, 1) + np.diag(off, -1)

        def lift(YB):
            return (YB * dP[:, None]).T @ P
    G = np.zeros((kw + m, kw + m))
    F = np.eye(kw + m)
    G[kw:, kw:] = GP
    if kw:
        if Q is None:
            # the scaling commutes with the product: X diag(dP) = (A W) (P diag(dP))^T
            GW, FWB, GWB = _w_blocks(A, AW, Rinv, M, P)
            FWB, GWB = FWB * dP, GWB * dP
        else:
            GW, FWB, GWB = _w_blocks(A, AW, Rinv, M, Q)
        G[:kw, :kw] = GW
        F[:kw, kw:], F[kw:, :kw] = FWB, FWB.T
        G[:kw, kw:], G[kw:, :kw] = GWB, GWB.T
    return G, F, lift


def update_restart(solver, A, W, P, alpha, rho, k, M, keep=0):
    """Replace ``solver._W`` by the k harmonic Ritz vectors of smallest value over [W, P]
    (over [W, Q] with ``keep`` = q: see the module docstring); keep the old space if S^T A S
    is not numerically SPD (S nearly dependent) or the pencil gives non-finite values.
    ``solver._AW`` and ``_proj`` must be those of W for the matrix just solved."""
    kw = 0 if W is None else W.shape[0]
    got = ritz_pencil(A, W, solver._AW if kw else None, solver._proj[1] if kw else None, P, alpha, rho, M, keep)
    if got is None:
        return
    G, F, lift = got
    m = min(k, G.shape[0])
    try:
        vals, Y = scipy.linalg.eigh(G, F, subset_by_index=[0, m - 1])
    except (np.linalg.LinAlgError, ValueError):
        return
    if not np.all(np.isfinite(vals)):
        return
    Wn = lift(Y[kw:])
    if kw:
        Wn += (solver._proj[1] @ Y[:kw]).T @ W
    solver._W = np.ascontiguousarray(Wn)
    solver._AW = None
    solver.ritz_values = vals
