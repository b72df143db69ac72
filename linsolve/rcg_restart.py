"""The Ritz update of recycled CG's restart mode (``deflation="restart"``).

In init-CG with deflated restarts the search directions are not kept A-orthogonal to the
recycled block W, so the harmonic Ritz step over S = [W, P] (P the first run's directions)
has a full S^T A S: W^T A P = (A W) P^T is one GEMM. The rest still comes from scalars of
the iteration, as in the deflated mode: the first run is plain PCG from a residual, so
A p_j = (r_j - r_j+1)/alpha_j and the M^-1-orthogonal residuals make (AP)^T M^-1 (AP)
tridiagonal and P^T A P = diag(rho/alpha). The block (AW)^T M^-1 A P = (A M^-1 A W) P^T
(A and M symmetric) costs k products after the solve instead of the k multiply-adds per
unknown per stored iteration that t_j = (A W) z_j would cost inside it.
"""
from __future__ import annotations

import numpy as np
import scipy.linalg

from .recycle_ops import apply_block


def ritz_pencil(A, W, AW, Rinv, P, alpha, rho, M):
    """(G, F, dP): the harmonic pencil G y = theta F y of M^-1 A over the basis
    [R^-T W, P diag(dP)], dP = sqrt(alpha/rho) (A-normalised columns, so F has a unit
    diagonal), with G = (AS)^T M^-1 (AS) and F = S^T A S in that basis; W^T A W = R^T R.
    None if some rho_j/alpha_j is not positive and finite."""
    L = P.shape[0]
    kw = 0 if W is None else W.shape[0]
    with np.errstate(over="ignore", divide="ignore", invalid="ignore"):
        dP = np.sqrt(alpha / rho[:L])  # rho_j at the floating-point floor overflows: no update
    if not np.all(np.isfinite(dP) & (dP > 0)):
        return None
    G = np.zeros((kw + L, kw + L))
    F = np.eye(kw + L)
    jj = np.arange(kw, kw + L)
    G[jj, jj] = (rho[:L] + rho[1:L + 1]) / alpha**2 * dP**2
    off = -rho[1:L] / (alpha[:-1] * alpha[1:]) * dP[:-1] * dP[1:]
    G[jj[:-1], jj[1:]] = off
    G[jj[1:], jj[:-1]] = off
    if kw:
        MAW = M.apply_rows(AW) if hasattr(M, "apply_rows") else apply_block(M, AW)
        GW = Rinv.T @ (AW @ MAW.T) @ Rinv
        G[:kw, :kw] = (GW + GW.T) / 2
        X = np.concatenate([AW, A.block(MAW)]) @ P.T  # one pass over P for both blocks
        FWP = (Rinv.T @ X[:kw]) * dP
        GWP = (Rinv.T @ X[kw:]) * dP
        F[:kw, kw:], F[kw:, :kw] = FWP, FWP.T
        G[:kw, kw:], G[kw:, :kw] = GWP, GWP.T
    return G, F, dP


def update_restart(solver, A, W, P, alpha, rho, k, M):
    """Replace ``solver._W`` by the k harmonic Ritz vectors of smallest value over [W, P];
    keep the old space if S^T A S is not numerically SPD (S nearly dependent) or the
    pencil gives non-finite values. ``solver._AW`` and ``_proj`` must be those of W for
    the matrix just solved."""
    kw = 0 if W is None else W.shape[0]
    got = ritz_pencil(A, W, solver._AW if kw else None, solver._proj[1] if kw else None, P, alpha, rho, M)
    if got is None:
        return
    G, F, dP = got
    m = min(k, G.shape[0])
    try:
        vals, Y = scipy.linalg.eigh(G, F, subset_by_index=[0, m - 1])
    except (np.linalg.LinAlgError, ValueError):
        return
    if not np.all(np.isfinite(vals)):
        return
    Wn = (Y[kw:] * dP[:, None]).T @ P
    if kw:
        Wn += (solver._proj[1] @ Y[:kw]).T @ W
    solver._W = np.ascontiguousarray(Wn)
    solver._AW = None
    solver.ritz_values = vals
