"""Recycled (deflated) preconditioned CG for sequences of SPD systems.

The deflated CG of Saad, Yeung, Erhel and Guyomarc'h (SIAM J. Sci. Comput. 21(5), 2000):
with a block W of k approximate eigenvectors of M^-1 A (the ones of smallest eigenvalue),
the initial guess is corrected by the Galerkin projection onto span W and every search
direction is kept A-orthogonal to W, p = z + beta p - W (W^T A W)^-1 (A W)^T z, so the
Krylov process only sees the rest of the spectrum.

W is refreshed after every ``update_every``-th solve (and after every solve until it has k
vectors) by a harmonic Ritz step of M^-1 A over S = [W, P], P the first ``store`` search
directions of that solve (as in Saad et al.; ``store`` bounds the memory), (AS)^T M^-1 (AS) y = theta (S^T A S) y, keeping the k smallest. Both small
matrices come from scalars CG computes anyway (the Lanczos connection, as in eigCG):
A p_j = (r_j - r_j+1)/alpha_j and M^-1 A p_j = (z_j - z_j+1)/alpha_j with M^-1-orthogonal
residuals make (AP)^T M^-1 (AP) tridiagonal and P^T A P diagonal, W^T A P = 0 by
construction, and (AW)^T M^-1 A P follows from t_j = (A W) z_j, which the deflation
computes every iteration. The O(n) work of the update is W_new = Y^T S and k
preconditioner applications for (AW)^T M^-1 (AW). A W and W^T A W are computed (k
products) when the next solve starts, for that solve's matrix, so W stays valid across
matrix and preconditioner changes and no product is spent on a matrix that is not
solved again. They must be current: the residual recurrence uses A W, so a stale A W
would make it drift from b - A x (W itself may be old: any W gives a correct solver).

Assembled matrices with no preconditioner, ``jacobi``, or ``icc``/``ic`` (IC(0), the
factor of PETSc's PCICC with its defaults, with ``backend="petsc"``) run the whole solve
in one compiled kernel (``linsolve.dcg_kernels``); other inputs and preconditioners (and
``compiled=False``, or a per-iteration callback) run the NumPy iteration below.
"""
from __future__ import annotations

import numpy as np
from scipy.linalg.blas import daxpy, ddot, dnrm2

from ..base import Outcome, Solver
from ..errors import OptionError
from ..precond import Identity, Jacobi
from ..recycle_ops import MatOps, apply_block, build_pc, changed_in_place, is_identity
from ..registry import register

_REASONS = {0: "converged", 1: "maxiter reached",
            2: "breakdown: p^T A p <= 0 (matrix or preconditioner not SPD, singular, or the search direction "
               "vanished at rounding level, e.g. when the recycled space already holds the solution)",
            3: "breakdown: r^T M^-1 r = 0 before the tolerance was met (it is below what floating point resolves)"}


@register("rcg")
class RecycledCG(Solver):
    """Deflated PCG recycling k approximate eigenvectors across solves:
    ``make_solver("rcg", recycle=8, store=60, update_every=4, pc="jacobi")``. SPD matrices and an SPD
    preconditioner (jacobi, ssor, amg; PETSc PCs with ``backend="petsc"``, where ``icc``
    on an assembled matrix runs the compiled IC(0))."""

    supports = frozenset({"spd"})
    backends = ("scipy", "petsc")
    preconditioners = ("none", "jacobi", "ssor", "amg")
    # Defaults measured fastest on the 80^2 darcy/poisson sequences with ICC(0)
    # (benchmarks/skr_rcg.py, "sweep"): more vectors cut iterations further but each costs
    # two more multiply-adds per unknown per iteration.
    options = {"recycle": 8, "store": 60, "recycle_across": True, "compiled": True, "update_every": 4}
    stateful = True

    def _validate_options(self):
        for name, low in (("recycle", 0), ("store", 1), ("update_every", 1)):
            v = self.opts[name]
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < low:
                raise OptionError(f"{name} must be an integer >= {low}, got {v!r}")
        if not isinstance(self.opts["compiled"], bool):
            raise OptionError(f"compiled must be True or False, got {self.opts['compiled']!r}")
        self._reset()

    def _reset(self):
        self._forget_space()
        self._fast_pc = None  # (matrix, pc name, compiled preconditioner, diagonals of A)
        self._pbuf = None     # storage of the directions the Ritz update reads

    def _forget_space(self):
        self._W = None     # (k, n) recycled directions
        self._AW = None    # A W for the matrix of self._key; None: to be computed
        self._proj = None  # (E^-1, R^-1, E^-1 W or None) with E = W^T A W = R^T R
        self._key = None
        self._since_update = 0  # solves since W was last updated
        self.ritz_values = None

    def _refresh(self, A, W, M):
        """A W, and E^-1 and R^-1 for E = W^T A W = R^T R, for the current operator; None
        if E is not SPD."""
        if A._csr is not None:
            from ..dcg_kernels import block_product

            AW = np.empty_like(W)
            E = block_product(A._indptr, A._indices, A._data, W, AW)
        else:
            AW = A.block(W)
            E = W @ AW.T
        try:
            Rinv = np.linalg.inv(np.linalg.cholesky((E + E.T) / 2).T)  # k x k
        except np.linalg.LinAlgError:
            return None
        return AW, (Rinv @ Rinv.T, Rinv, None)

    def _compiled_pc(self, op, A):
        """The preconditioner as the compiled kernel takes it, or None if this one has no
        compiled form (then the NumPy iteration runs)."""
        if not self.opts["compiled"] or A._csr is None:
            return None
        pc = self.pc
        if not isinstance(pc, str):
            return None
        from ..dcg_kernels import IC0

        cache = self._fast_pc
        if cache is not None and cache[0] is op.source and cache[1] == pc:
            return cache[2]
        if pc == "none":
            M = Identity(op.n)
        elif pc == "jacobi":
            M = Jacobi(op)
        elif pc in ("icc", "ic") and self.backend == "petsc" and not self.pc_options:
            M = IC0.build(A._indptr, A._indices, A._data)
            if M is None:  # a non-positive pivot: PETSc's shifted ICC decides, not us
                return None
        else:
            return None
        from ..dcg_kernels import csr_to_dia

        self._fast_pc = (op.source, pc, M, csr_to_dia(A._indptr, A._indices, A._data, 16))
        return M

    def _prepare(self, A, M, n, source):
        """The recycled space for this solve: (W, AW, projection data) or Nones; k products
        when the matrix, the preconditioner or W changed since A W was computed."""
        if not self.opts["recycle_across"] or (self._W is not None and self._W.shape[1] != n):
            self._forget_space()
        W = self._W
        refreshed = 0
        if W is not None and (self._AW is None or self._key is None or self._key[0] is not source
                              or self._key[1] is not M):
            got = self._refresh(A, W, M)
            refreshed = W.shape[0]
            if got is None:
                self._forget_space()
                W = None
            else:
                self._AW, self._proj = got
        self._key = (source, M)
        if W is None:
            return None, None, None, refreshed
        return W, self._AW, self._proj, refreshed

    def _solve(self, op, b, x0, tol, maxiter, ctx):
        A = MatOps(op)
        if changed_in_place(self, op, A):
            # the caches below are keyed on the matrix object; the compiled one even holds
            # a copy of A's entries, so a stale one would make the products wrong
            self._fast_pc = self._pc_cache = self._petsc_pc_cache = None
            self._AW = None
        M = self._compiled_pc(op, A) if ctx.callback is None else None
        if M is not None:
            return self._solve_compiled(op, A, M, b, x0, tol, maxiter)
        return self._solve_numpy(op, A, b, x0, tol, maxiter, ctx)

    def _solve_compiled(self, op, A, M, b, x0, tol, maxiter):
        from .. import dcg_kernels as K

        n = op.n
        k, store = int(self.opts["recycle"]), int(self.opts["store"])
        W, AW, proj, refreshed = self._prepare(A, M, n, op.source)
        kw = 0 if W is None else W.shape[0]
        if kw:
            Wk, AWk, Einv = W, AW, proj[0]
        else:
            Wk = AWk = np.empty((0, n))
            Einv = np.empty((0, 0))
        s = min(store, maxiter) if self._updating(k) else 0
        # the stored directions' buffer is kept between solves: a fresh one would pay a
        # page fault per 4 KiB on first touch, inside the iteration
        if self._pbuf is None or self._pbuf.shape[0] < s or self._pbuf.shape[1] != n:
            self._pbuf = np.empty((s, n))
        P, C = self._pbuf[:s], np.empty((s, kw))
        alphas, rhos, T = np.empty(s), np.empty(s + 1), np.empty((s + 1, kw))
        norms = np.empty(maxiter)
        if isinstance(M, K.IC0):
            pctype, pats = K.PC_IC0, M.unit
        else:
            ei, ef = np.empty(1, np.int64), np.empty(1)
            pctype = K.PC_JACOBI if isinstance(M, Jacobi) else K.PC_NONE
            pats = (ei, ei.astype(np.int32), ef, ei, ei.astype(np.int32), ef,
                    M.inv_diag if isinstance(M, Jacobi) else ef)
        x = np.array(x0, dtype=np.float64)
        its, status = K.dpcg(A._indptr, A._indices, A._data, *self._fast_pc[3], pctype, *pats, b, x, Wk, AWk, Einv,
                             float(tol), int(maxiter), norms, P, C, alphas, rhos, T)
        L = min(its, s)
        if L:
            self._update(W, P[:L], alphas[:L], rhos[:L + 1], T[:L + 1], k, M, C[:L])
        info = {"norm": "true residual (recurrence)", "kernel": "compiled", "pc_impl": M.name,
                "recycled_dim": 0 if self._W is None else int(self._W.shape[0]),
                "recycle_matvecs": refreshed}
        return Outcome(x, its, norms[:its].copy(), status == K.CONVERGED, _REASONS[status], info)

    def _solve_numpy(self, op, A, b, x0, tol, maxiter, ctx):
        n = op.n
        M = build_pc(self, op)
        ident = is_identity(M)
        k, store = int(self.opts["recycle"]), int(self.opts["store"])
        W, AW, proj, refreshed = self._prepare(A, M, n, op.source)
        if W is not None and proj[2] is None:
            # (W^T A W)^-1 W as one block: the projection is then a single GEMV
            proj = self._proj = (proj[0], proj[1], proj[0] @ W)

        x = np.array(x0, dtype=np.float64)
        r = b - A(x)
        if W is not None:
            mu = proj[0] @ (W @ r)
            x += W.T @ mu
            r -= AW.T @ mu
        z = r if ident else M.apply(r)
        p = z.copy()
        t = None
        if W is not None:
            t = AW @ z
            p -= proj[2].T @ t
        rz = ddot(r, z)
        norms: list[float] = []
        rnorm = dnrm2(r)
        # What the Ritz update needs, all by-products of the iteration: the directions,
        # alpha_j, rho_j = r_j^T z_j and t_j = (A W) z_j.
        keep = store if self._updating(k) else 0
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
                reason = _REASONS[2]
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
            if rz_new == 0.0:  # r^T M^-1 r underflowed (a tolerance below the floating-point floor)
                reason = _REASONS[3]
                break
            beta = rz_new / rz
            rz = rz_new
            # p = z + beta p - W (W^T A W)^-1 (A W)^T z
            p *= beta
            p += z
            if W is not None:
                p -= proj[2].T @ t
        if alphas:
            T = np.array(ts[:len(alphas) + 1]) if W is not None else None
            self._update(W, P[:len(alphas)], np.array(alphas), np.array(rhos), T, k, M)
        info = {"norm": "true residual (recurrence)", "kernel": "numpy",
                "recycled_dim": 0 if self._W is None else int(self._W.shape[0]),
                "recycle_matvecs": refreshed}
        return Outcome(x, its, norms, converged, reason, info)

    def _updating(self, k: int) -> bool:
        """Whether this solve updates W: always while it has fewer than k vectors, else on
        every ``update_every``-th solve (an update costs a Ritz step, and k products at
        the next solve even when the matrix is unchanged)."""
        if k == 0:
            return False
        self._since_update += 1
        if self._W is None or self._W.shape[0] < k or self._since_update >= int(self.opts["update_every"]):
            self._since_update = 0
            return True
        return False

    def _update(self, W, P, alpha, rho, T, k, M, C=None):
        """Harmonic Ritz step over S = [W, P] from scalars the iteration produced:
        with A P_j = (r_j - r_j+1)/alpha_j, M^-1 A P_j = (z_j - z_j+1)/alpha_j and the
        M^-1-orthogonality of the residuals, (AP)^T M^-1 AP is tridiagonal, P^T A P is
        diag(rho/alpha), W^T A P = 0, and (AW)^T M^-1 AP comes from the rows
        T_j = (AW) z_j (shape (L+1, k)). In the basis [R^-T W, P diag(rho/alpha)^-1/2],
        A-orthonormal, the pencil becomes a standard symmetric eigenproblem. With C, the
        rows of P are the compiled kernel's pt_j and the directions are pt_j - W^T c_j.
        The new W gets its A W at the next solve, for that solve's matrix."""
        L = P.shape[0]
        kw = 0 if W is None else W.shape[0]
        if np.any(~(rho[:L] / alpha > 0)):
            return
        dP = np.sqrt(alpha / rho[:L])
        G = np.zeros((kw + L, kw + L))
        jj = np.arange(kw, kw + L)
        G[jj, jj] = (rho[:L] + rho[1:L + 1]) / alpha**2 * dP**2
        off = -rho[1:L] / (alpha[:-1] * alpha[1:]) * dP[:-1] * dP[1:]
        G[jj[:-1], jj[1:]] = off
        G[jj[1:], jj[:-1]] = off
        if kw:
            AW, Rinv = self._AW, self._proj[1]
            MAW = M.apply_rows(AW) if hasattr(M, "apply_rows") else apply_block(M, AW)
            GW = Rinv.T @ (AW @ MAW.T) @ Rinv
            G[:kw, :kw] = (GW + GW.T) / 2
            GWP = Rinv.T @ ((T[:-1] - T[1:]) / alpha[:, None]).T * dP
            G[:kw, kw:] = GWP
            G[kw:, :kw] = GWP.T
        try:
            vals, Y = np.linalg.eigh(G)  # the full small problem: cheaper than LAPACK's subset drivers here
        except np.linalg.LinAlgError:
            return
        vals, Y = vals[:k], Y[:, :k]
        if not np.all(np.isfinite(vals)):
            return
        YP = Y[kw:] * dP[:, None]
        Wn = YP.T @ P
        if kw:
            YW = Rinv @ Y[:kw]
            Wn += (YW.T - YP.T @ C) @ W if C is not None else YW.T @ W
        self._W = np.ascontiguousarray(Wn)
        self._AW = None
        self.ritz_values = vals
