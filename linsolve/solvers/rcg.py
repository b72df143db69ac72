"""Recycled (deflated) preconditioned CG for sequences of SPD systems.

The deflated CG of Saad, Yeung, Erhel and Guyomarc'h (SIAM J. Sci. Comput. 21(5), 2000):
with a block W of k approximate eigenvectors of M^-1 A (the ones of smallest eigenvalue),
the initial guess is corrected by the Galerkin projection onto span W and every search
direction is kept A-orthogonal to W, p = z + beta p - W (W^T A W)^-1 (A W)^T z, so the
Krylov process only sees the rest of the spectrum.

W is refreshed after every solve by a harmonic Ritz step of M^-1 A over S = [W, P], P the
first ``store`` search directions of the solve (as in Saad et al.; ``store`` bounds the
memory), (AS)^T M^-1 (AS) y = theta (S^T A S) y, keeping the k smallest. Both small
matrices come from scalars CG computes anyway (the Lanczos connection, as in eigCG):
A p_j = (r_j - r_j+1)/alpha_j and M^-1 A p_j = (z_j - z_j+1)/alpha_j with M^-1-orthogonal
residuals make (AP)^T M^-1 (AP) tridiagonal and P^T A P diagonal, W^T A P = 0 by
construction, and (AW)^T M^-1 A P follows from t_j = (A W) z_j, which the deflation
computes every iteration. The only O(n) work of the update is W_new = Y^T S and k products
for A W_new. When the matrix or the preconditioner changes, A W and W^T A W are recomputed
(k products), so W stays valid across a preconditioner rebuild.
"""
from __future__ import annotations

import numpy as np
import scipy.linalg as sla
from scipy.linalg.blas import daxpy, ddot, dnrm2

from ..base import Outcome, Solver
from ..errors import OptionError
from ..recycle_ops import MatOps, apply_block, build_pc, is_identity
from ..registry import register


@register("rcg")
class RecycledCG(Solver):
    """Deflated PCG recycling k approximate eigenvectors across solves:
    ``make_solver("rcg", recycle=10, store=100, pc="jacobi")``. SPD matrices and an SPD
    preconditioner (jacobi, ssor, amg; PETSc PCs with ``backend="petsc"``)."""

    supports = frozenset({"spd"})
    backends = ("scipy", "petsc")
    preconditioners = ("none", "jacobi", "ssor", "amg")
    options = {"recycle": 10, "store": 100, "recycle_across": True}
    stateful = True

    def _validate_options(self):
        for name, low in (("recycle", 0), ("store", 1)):
            v = self.opts[name]
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < low:
                raise OptionError(f"{name} must be an integer >= {low}, got {v!r}")
        self._reset()

    def _reset(self):
        self._W = None     # (k, n) recycled directions
        self._AW = None    # A W
        self._chol = None  # ((W^T A W)^-1, (W^T A W)^-1 W)
        self._key = None
        self.ritz_values = None

    def _refresh(self, A, W):
        """A W and the Cholesky factor of W^T A W for the current operator."""
        AW = A.block(W)
        WAW = W @ AW.T
        try:
            chol = sla.cho_factor((WAW + WAW.T) / 2)
        except np.linalg.LinAlgError:
            return None
        # The projection W (W^T A W)^-1 (A W)^T z runs every iteration: keep
        # (W^T A W)^-1 W as one block so it is a single GEMV, not a triangular solve.
        inv = sla.cho_solve(chol, np.eye(W.shape[0]))
        return AW, (inv, inv @ W)

    def _solve(self, op, b, x0, tol, maxiter, ctx):
        n = op.n
        A = MatOps(op)
        M = build_pc(self, op)
        ident = is_identity(M)
        k, store = int(self.opts["recycle"]), int(self.opts["store"])
        if not self.opts["recycle_across"] or (self._W is not None and self._W.shape[1] != n):
            self._reset()
        W = self._W
        refreshed = 0
        if W is not None and (self._key is None or self._key[0] is not op.source or self._key[1] is not M):
            got = self._refresh(A, W)
            refreshed = W.shape[0]
            if got is None:
                self._reset()
                W = None
            else:
                self._AW, self._chol = got
        self._key = (op.source, M)
        AW = self._AW if W is not None else None
        chol = self._chol if W is not None else None

        x = np.array(x0, dtype=np.float64)
        r = b - A(x)
        if W is not None:
            mu = chol[0] @ (W @ r)
            x += W.T @ mu
            r -= AW.T @ mu
        z = r if ident else M.apply(r)
        p = z.copy()
        t = None
        if W is not None:
            t = AW @ z
            p -= chol[1].T @ t
        rz = ddot(r, z)
        norms: list[float] = []
        rnorm = dnrm2(r)
        # What the Ritz update needs, all by-products of the iteration: the directions,
        # alpha_j, rho_j = r_j^T z_j and t_j = (A W) z_j.
        keep = store if k > 0 else 0
        P = np.empty((min(keep, maxiter), n)) if keep else None
        alphas, rhos, ts = [], [rz], [t]
        its = 0
        converged = rnorm <= tol
        reason = "converged" if converged else "maxiter reached"
        cb = ctx.callback
        while not converged and its < maxiter:
            Ap = A(p)
            pAp = ddot(p, Ap)
            if not pAp > 0 or not np.isfinite(pAp):
                reason = "breakdown: p^T A p <= 0 (matrix or preconditioner not SPD, or singular)"
                break
            alpha = rz / pAp
            if its < keep:
                P[its] = p
            daxpy(p, x, a=alpha)
            daxpy(Ap, r, a=-alpha)
            its += 1
            rnorm = dnrm2(r)
            norms.append(rnorm)
            if cb is not None:
                cb(x)
            z = r if ident else M.apply(r)  # z is read before r changes again
            rz_new = ddot(r, z)
            if W is not None:
                t = AW @ z
            if len(alphas) < keep:
                alphas.append(alpha)
                rhos.append(rz_new)
                ts.append(t)
            if rnorm <= tol:
                converged, reason = True, "converged"
                break
            beta = rz_new / rz
            rz = rz_new
            # p = z + beta p - W (W^T A W)^-1 (A W)^T z
            p *= beta
            p += z
            if W is not None:
                p -= chol[1].T @ t
        if alphas:
            self._update(W, P[:len(alphas)], np.array(alphas), np.array(rhos), ts, k, A, M)
        info = {"norm": "true residual (recurrence)",
                "recycled_dim": 0 if self._W is None else int(self._W.shape[0]),
                "recycle_matvecs": refreshed}
        return Outcome(x, its, norms, converged, reason, info)

    def _update(self, W, P, alpha, rho, ts, k, A, M):
        """Harmonic Ritz step over S = [W, P] from scalars the iteration produced:
        with A P_j = (r_j - r_j+1)/alpha_j, M^-1 A P_j = (z_j - z_j+1)/alpha_j and the
        M^-1-orthogonality of the residuals, (AP)^T M^-1 AP is tridiagonal, P^T A P is
        diag(rho/alpha), W^T A P = 0, and (AW)^T M^-1 AP comes from t_j = (AW) z_j."""
        L = P.shape[0]
        kw = 0 if W is None else W.shape[0]
        dim = kw + L
        F = np.zeros((dim, dim))
        G = np.zeros((dim, dim))
        jj = np.arange(L)
        F[kw + jj, kw + jj] = rho[:L] / alpha
        G[kw + jj, kw + jj] = (rho[:L] + rho[1:L + 1]) / alpha**2
        off = -rho[1:L] / (alpha[:-1] * alpha[1:])
        G[kw + jj[:-1], kw + jj[1:]] = off
        G[kw + jj[1:], kw + jj[:-1]] = off
        if kw:
            AW = self._AW
            WAW = W @ AW.T
            F[:kw, :kw] = (WAW + WAW.T) / 2
            GW = AW @ apply_block(M, AW).T
            G[:kw, :kw] = (GW + GW.T) / 2
            T = np.column_stack(ts[:L + 1])
            GWP = (T[:, :-1] - T[:, 1:]) / alpha
            G[:kw, kw:] = GWP
            G[kw:, :kw] = GWP.T
        d = np.diag(F)
        if np.any(~(d > 0)):
            return
        d = 1.0 / np.sqrt(d)
        try:
            vals, Y = sla.eigh(G * d[:, None] * d[None, :], F * d[:, None] * d[None, :],
                               subset_by_index=[0, min(k, dim) - 1])
        except (np.linalg.LinAlgError, ValueError):
            return
        Y = Y * d[:, None]
        Wn = Y[kw:].T @ P
        if kw:
            Wn += Y[:kw].T @ W
        got = self._refresh(A, Wn)
        if got is None:
            return
        self._W = Wn
        self._AW, self._chol = got
        self.ritz_values = vals
