"""Recycled (deflated) preconditioned CG for sequences of SPD systems.

Both modes keep a block W of k approximate eigenvectors of M^-1 A (those of smallest
eigenvalue) across solves and start from the Galerkin projection of the initial guess onto
span W, x += W E^-1 W^T r with E = W^T A W.

``deflation="every"``: the deflated CG of Saad, Yeung, Erhel and Guyomarc'h (SIAM J. Sci.
Comput. 21(5), 2000): every search direction is kept A-orthogonal to W,
p = z + beta p - W E^-1 (A W)^T z, so the Krylov process only sees the rest of the
spectrum. It saves the most iterations, but reading A W twice per iteration (2k
multiply-adds per unknown) makes an iteration 1.5-3x dearer.

``deflation="restart"`` (the default): init-CG with deflated restarts (Stathopoulos and
Orginos, SIAM J. Sci. Comput. 32(1), 2010): plain PCG, so an iteration costs what it costs
without recycling; once the residual has fallen by ``restart_drop`` since the (re)start, the
true residual is recomputed, the Galerkin correction applied again and PCG restarted. The
restarts are what make it work: one projection of the initial guess removes the error's
components along (an approximate) W only at the start; what W misses of the low modes,
and what rounding brings back, CG must resolve again with its slow small-eigenvalue
convergence. Measured with the space rcg learns over 30 systems of benchmarks/skr_rcg.py
(the next 10 solved from x0 = 0, Jacobi): darcy-fv-80 takes 282 iterations with plain PCG,
274 with init-CG without restarts and 139 with restarts at drops of 0.05; poisson-80 246,
142 and 136. A restart also drops the Krylov space built so far, so with a strong
preconditioner (AMG: a handful of iterations) it gains nothing.

W is refreshed after every ``update_every``-th solve (and after every solve until it has k
vectors) by a harmonic Ritz step of M^-1 A over S = [W, P], P the first ``store`` search
directions of that solve (a buffer of ``store`` x n doubles kept between solves),
(AS)^T M^-1 (AS) y = theta (S^T A S) y, keeping the k smallest. With ``update_max`` >
``update_every`` (the restart mode's default) the interval grows: every 2nd solve updates
while an update still moves the Ritz values by 25% or more, then the interval is
``update_every`` and doubles after each update up to ``update_max``; a solve that takes
1.25x the iterations of the first one after the latest update brings the next update
forward and the schedule back to its start. The restart mode first reduces P to its
``ritz_keep`` (default 2k) lowest Lanczos Ritz vectors (``linsolve.recycling.rcg_restart``).
The small matrices come from scalars CG computes anyway (the Lanczos connection, as in
eigCG): A p_j = (r_j - r_j+1)/alpha_j and M^-1 A p_j = (z_j - z_j+1)/alpha_j with
M^-1-orthogonal residuals make (AP)^T M^-1 (AP) tridiagonal and P^T A P diagonal. With
deflation in every iteration W^T A P = 0 and (AW)^T M^-1 A P follows from t_j = (A W) z_j,
which the deflation computes anyway. In the restart mode only the first run's directions
are kept (they are mutually A-conjugate; the run is not cut short before ``store`` of them,
so an updating solve restarts later) and W^T A P and (AW)^T M^-1 A P come from two GEMMs
after the solve (``linsolve.recycling.rcg_restart``). A W and W^T A W are computed (k products) when
the next solve starts, for that solve's matrix, so W stays valid across matrix and
preconditioner changes and no product is spent on a matrix that is not solved again. They
must be current: the residual recurrence uses A W, so a stale A W would make it drift from
b - A x (W itself may be old: any W gives a correct solver).

Assembled matrices with no preconditioner, ``jacobi``, or ``icc``/``ic`` (IC(0), the
factor of PETSc's PCICC with its defaults, with ``backend="petsc"``) run the whole solve
in one compiled kernel (``linsolve.recycling.dcg_kernels``); other inputs and preconditioners (and
``compiled=False``, or a per-iteration callback) run the NumPy iteration below.

Distributed (``backend="petsc"`` with a PETSc matrix over several MPI processes): the NumPy
iteration on this process's rows, with p^T A p as one global sum and ||r||, r^T z (and, when
every direction is deflated, the k products (A W) z) as a second one per iteration; the
Galerkin projection W^T r, W^T A W and each block of the Ritz step are one sum each. The
small eigenproblems run on every process from the same reduced numbers.
"""
from __future__ import annotations

import numpy as np
from scipy.linalg.blas import daxpy, ddot, dnrm2

from linsolve.core.base import Outcome, Solver
from linsolve.core.errors import OptionError
from linsolve.core.precond import Identity, Jacobi
from linsolve.core.registry import register
from linsolve.core.result import history_length, note_dropped
from linsolve.core.validation import check_bool, check_int, check_real
from linsolve.recycling.rcg_restart import update_restart
from linsolve.recycling.recycle_ops import (
    MatOps,
    apply_block,
    build_pc,
    forget_pc_matrix,
    is_identity,
    single_blas_thread,
)

_REASONS = {0: "converged", 1: "maxiter reached",
            2: "breakdown: p^T A p <= 0 (matrix or preconditioner not SPD, singular, or the search direction "
               "vanished at rounding level, e.g. when the recycled space already holds the solution)",
            3: "breakdown: r^T M^-1 r = 0 before the tolerance was met (it is below what floating point resolves)"}


# The growing update interval (``update_max`` > ``update_every``, RecycledCG._updating):
# while an update moves the Ritz values by SETTLE (relative) or more, W is still being learnt
# and every 2nd solve (RecycledCG._unsettled) updates; after one that moved them less, the
# interval is update_every, then doubles after each such update. A solve taking DRIFT times the
# iterations of the first one after the latest update (W fits the current matrices worse)
# brings the next update forward.
DRIFT = 1.25
SETTLE = 0.25


@register("rcg")
class RecycledCG(Solver):
    """PCG recycling k approximate eigenvectors across solves, by deflated restarts or by
    deflation in every iteration: ``make_solver("rcg", deflation="restart", recycle=16,
    restart_drop=0.05, pc="jacobi")``. SPD matrices and an SPD
    preconditioner (jacobi, ssor, amg; PETSc PCs with ``backend="petsc"``, where ``icc``
    on an assembled matrix runs the compiled IC(0))."""

    supports = frozenset({"spd"})
    # Hermitian positive definite: the real form is SPD and CG on it is complex CG
    complex_support = "real-form"
    scipy_equivalent = "cg"
    symmetric_pc = True  # SciPy's ILU with SuperLU's defaults is not symmetric: CG stalls with it
    backends = ("scipy", "petsc")
    preconditioners = ("none", "jacobi", "ssor", "amg")
    # None: the mode's default below, measured in benchmarks/skr_rcg.py (docs/skr.md, "How rcg's defaults were chosen")
    options = {"recycle": None, "store": None, "recycle_across": True, "compiled": True, "update_every": None,
               "deflation": "restart", "restart_drop": 0.05, "ritz_keep": None, "update_max": None}
    mode_defaults = {"every": {"recycle": 8, "store": 60, "update_every": 4, "update_max": 4},
                     "restart": {"recycle": 16, "store": 300, "update_every": 8, "update_max": 64}}
    stateful = True
    _unsettled = 2  # the interval while W is being learnt (growing interval only)

    def _validate_options(self):
        mode = self.opts["deflation"]
        if not isinstance(mode, str) or mode not in self.mode_defaults:
            raise OptionError(f"deflation must be 'every' or 'restart', got {mode!r}")
        if self.opts["update_max"] is None and self.opts["update_every"] is not None:
            self.opts["update_max"] = self.opts["update_every"]  # an interval asked for stays fixed
        for name, low in (("recycle", 0), ("store", 1), ("update_every", 1), ("update_max", 1), ("ritz_keep", 0)):
            v = self.opts[name]
            if v is None and name == "ritz_keep":
                self.opts[name] = v = 2 * self.opts["recycle"] if mode == "restart" else 0
            elif v is None:
                self.opts[name] = v = self.mode_defaults[mode][name]
            self.opts[name] = check_int(name, v, low)
        check_bool("compiled", self.opts["compiled"])
        if self.opts["update_max"] < self.opts["update_every"]:
            raise OptionError(f"update_max must be >= update_every ({self.opts['update_every']}), "
                              f"got {self.opts['update_max']!r}")
        check_real("restart_drop", self.opts["restart_drop"], 0.0, 1.0, low_open=True, high_open=True)
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
        self._interval = None   # solves between updates now: update_every, doubling to update_max
        self._ref_its = None    # iterations of the first solve after the latest update
        self._drifted = False   # a solve since then took DRIFT times as many: update at the next
        self.ritz_values = None

    def _refresh(self, A, W, M, source):
        """A W, and E^-1 and R^-1 for E = W^T A W = R^T R, for the current operator; None
        if E is not SPD."""
        if A._csr is not None:
            from linsolve.recycling.dcg_kernels import block_product, block_product_dia

            AW = np.empty_like(W)
            dia = self._fast_pc[3] if self._fast_pc is not None and self._fast_pc[0] is source else ()
            if len(dia) and dia[0].shape[0]:
                E = block_product_dia(*dia, W, AW)
            else:
                E = block_product(A._indptr, A._indices, A._data, W, AW)
        else:
            AW = A.block(W)
            E = A.layout.sum(W @ AW.T)
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
        from linsolve.recycling.dcg_kernels import IC0

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
        from linsolve.recycling.dcg_kernels import csr_to_dia

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
            got = self._refresh(A, W, M, source)
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

    def _caches_matrix(self):
        return True

    def runs_distributed(self):
        return self.backend == "petsc" and isinstance(self.pc, str)

    def _distributed_what(self):
        return ("with a preconditioner object applied in Python" if self.backend == "petsc"
                else f"backend={self.backend!r}; backend='petsc' runs distributed")

    def _matrix_changed(self):
        # the caches below are keyed on the matrix object; the compiled one even holds a
        # copy of A's entries, so a stale one would make the products wrong
        self._fast_pc = self._pc_cache = None
        forget_pc_matrix(self)
        self._AW = None

    @single_blas_thread  # small blocks from a serial loop: see recycle_ops.one_blas_thread
    def _solve(self, op, b, x0, tol, maxiter, ctx):
        A = MatOps(op)
        M = self._compiled_pc(op, A) if ctx.callback is None else None
        if M is not None:
            return self._solve_compiled(op, A, M, b, x0, tol, maxiter)
        return self._solve_numpy(op, A, b, x0, tol, maxiter, ctx)

    def _solve_compiled(self, op, A, M, b, x0, tol, maxiter):
        from linsolve.recycling import dcg_kernels as K

        n = op.n
        k, store = int(self.opts["recycle"]), int(self.opts["store"])
        W, AW, proj, refreshed = self._prepare(A, M, n, op.source)
        kw = 0 if W is None else W.shape[0]
        if kw:
            Wk, AWk, Einv = W, AW, proj[0]
        else:
            Wk = AWk = np.empty((0, n))
            Einv = np.empty((0, 0))
        updating = self._updating(k)
        s = min(store, maxiter) if updating else 0
        # the stored directions' buffer is kept between solves: a fresh one would pay a
        # page fault per 4 KiB on first touch, inside the iteration
        if self._pbuf is None or self._pbuf.shape[0] < s or self._pbuf.shape[1] != n:
            self._pbuf = np.empty((s, n))
        restart = self.opts["deflation"] == "restart"
        kt = 0 if restart else kw  # restarts record no C and T rows
        P, C = self._pbuf[:s], np.empty((s, kt))
        alphas, rhos, T = np.empty(s), np.empty(s + 1), np.empty((s + 1, kt))
        norms = np.empty(history_length(maxiter))
        if isinstance(M, K.IC0):
            pctype, pats = K.PC_IC0, M.unit
        else:
            ei, ef = np.empty(1, np.int64), np.empty(1)
            pctype = K.PC_JACOBI if isinstance(M, Jacobi) else K.PC_NONE
            pats = (ei, ei.astype(np.int32), ef, ei, ei.astype(np.int32), ef,
                    M.inv_diag if isinstance(M, Jacobi) else ef)
        x = np.array(x0, dtype=np.float64)
        drop = float(self.opts["restart_drop"]) if restart else 0.0
        its, status, restarts, L = K.dpcg(A._indptr, A._indices, A._data, *self._fast_pc[3], pctype, *pats, b, x,
                                          Wk, AWk, Einv, drop, float(tol), int(maxiter), norms, P, C, alphas, rhos, T)
        self._track(its, updating)
        old = self.ritz_values
        if L and restart:
            update_restart(self, A, W, P[:L], alphas[:L], rhos[:L + 1], k, M, int(self.opts["ritz_keep"]))
        elif L:
            self._update(W, P[:L], alphas[:L], rhos[:L + 1], T[:L + 1], k, M, C[:L])
        if updating:
            self._reschedule(old)
        info = {"norm": "true residual (recurrence)", "kernel": "compiled", "pc_impl": M.name,
                "recycled_dim": 0 if self._W is None else int(self._W.shape[0]),
                "recycle_matvecs": refreshed, "restarts": int(restarts)}
        note_dropped(info, its, min(its, norms.shape[0]))
        return Outcome(x, its, norms[:its].copy(), status == K.CONVERGED, _REASONS[status], info)

    def _solve_numpy(self, op, A, b, x0, tol, maxiter, ctx):
        n = A.n  # this process's rows
        lay = A.layout
        dist = lay.distributed
        M = build_pc(self, op)
        ident = is_identity(M)
        k, store = int(self.opts["recycle"]), int(self.opts["store"])
        W, AW, proj, refreshed = self._prepare(A, M, n, op.source)
        restart = W is not None and self.opts["deflation"] == "restart"
        defl = W is not None and not restart  # deflate every direction
        drop = float(self.opts["restart_drop"])
        if defl and proj[2] is None:
            # (W^T A W)^-1 W as one block: the projection is then a single GEMV
            proj = self._proj = (proj[0], proj[1], proj[0] @ W)

        def galerkin(x, r):
            if W is not None:
                mu = proj[0] @ lay.sum(W @ r)
                x += W.T @ mu
                r -= AW.T @ mu

        x = np.array(x0, dtype=np.float64)
        # no product for the zero start, as SciPy's CG (distributed: the product is collective,
        # and every process must take the same branch)
        r = b - A(x) if (dist or x.any()) else b.copy()
        galerkin(x, r)
        z = r if ident else M.apply(r)
        p = z.copy()
        t = None
        if dist:
            rnorm, rz, t = _reduced(lay, r, z, AW if defl else None)
            start = rnorm
            if defl:
                p -= proj[2].T @ t
        else:
            if defl:
                t = AW @ z
                p -= proj[2].T @ t
            rz = ddot(r, z)
            rnorm = start = dnrm2(r)
        norms: list[float] = []
        # What the Ritz update needs, all by-products of the iteration: the directions,
        # alpha_j, rho_j = r_j^T z_j and t_j = (A W) z_j (deflating every direction);
        # with restarts, those of the first run only, which is not cut short before
        # ``store`` of them are kept.
        updating = self._updating(k)
        keep = min(store, maxiter) if updating else 0
        P = np.empty((keep, n)) if keep else None
        alphas, rhos, ts = [], [rz], [t]
        its = restarts = 0
        frozen = False
        converged = rnorm <= tol
        reason = "converged" if converged else "maxiter reached"
        cb = ctx.callback
        while not converged and its < maxiter:
            Ap = A(p)
            pAp = lay.dot(p, Ap) if dist else ddot(p, Ap)
            if not pAp > 0 or not np.isfinite(pAp):
                reason = _REASONS[2]
                break
            alpha = rz / pAp
            stored = not frozen and its < keep
            if stored:
                P[its] = p
            if n:
                daxpy(p, x, a=alpha)
                daxpy(Ap, r, a=-alpha)  # (BLAS wrappers refuse the empty rows of a process owning none)
            its += 1
            if dist:
                # ||r||, r^T z and (A W) z in one global sum
                z = r if ident else M.apply(r)
                rnorm, rz_new, t = _reduced(lay, r, z, AW if defl else None)
            else:
                rnorm = dnrm2(r)
            norms.append(rnorm)
            if cb is not None:
                cb(x)
            if not dist:
                z = r if ident else M.apply(r)  # z is read before r changes again
                rz_new = ddot(r, z)
                if defl:
                    t = AW @ z
            if stored:
                alphas.append(alpha)
                rhos.append(rz_new)
                ts.append(t)
            if rnorm <= tol:
                converged, reason = True, "converged"
                break
            if restart and rnorm <= drop * start and (frozen or len(alphas) >= keep):
                # init-CG's restart: the true residual, the Galerkin correction, beta = 0
                frozen = True
                restarts += 1
                r = b - A(x)
                galerkin(x, r)
                z = r if ident else M.apply(r)
                p = z.copy()
                if dist:
                    rnorm, rz, _ = _reduced(lay, r, z, None)
                    start = rnorm
                else:
                    rz = ddot(r, z)
                    rnorm = start = dnrm2(r)
                if rnorm <= tol:
                    converged, reason = True, "converged"
                continue
            if rz_new == 0.0:  # r^T M^-1 r underflowed (a tolerance below the floating-point floor)
                reason = _REASONS[3]
                break
            beta = rz_new / rz
            rz = rz_new
            # p = z + beta p - W (W^T A W)^-1 (A W)^T z
            p *= beta
            p += z
            if defl:
                p -= proj[2].T @ t
        self._track(its, updating)
        old = self.ritz_values
        if alphas and self.opts["deflation"] == "restart":
            update_restart(self, A, W, P[:len(alphas)], np.array(alphas), np.array(rhos), k, M,
                           int(self.opts["ritz_keep"]))
        elif alphas:
            T = np.array(ts[:len(alphas) + 1]) if W is not None else None
            self._update(W, P[:len(alphas)], np.array(alphas), np.array(rhos), T, k, M, layout=lay)
        if updating:
            self._reschedule(old)
        info = {"norm": "true residual (recurrence)", "kernel": "numpy",
                "recycled_dim": 0 if self._W is None else int(self._W.shape[0]),
                "recycle_matvecs": refreshed, "restarts": restarts}
        return Outcome(x, its, norms, converged, reason, info)

    def _updating(self, k: int) -> bool:
        """Whether this solve updates W: always while it has fewer than k vectors, else
        once the interval has passed (an update costs a Ritz step, a first run without
        restarts, and k products at the next solve even when the matrix is unchanged). A
        fixed ``update_every`` unless ``update_max`` is larger; then ``_reschedule`` sets
        it after each update, and a solve that needed ``DRIFT`` times the iterations of the
        first one after the latest update (W fits the current matrices worse) brings the
        next update forward and the schedule back to its start."""
        if k == 0:
            return False
        u = int(self.opts["update_every"])
        if self._interval is None:
            self._interval = self._unsettled if self._growing() else u
        self._since_update += 1
        full = self._W is not None and self._W.shape[0] >= k
        if not full or self._since_update >= self._interval or self._drifted:
            if self._drifted:
                self._interval = self._unsettled
            self._since_update = 0
            self._drifted = False
            self._ref_its = None
            return True
        return False

    def _growing(self) -> bool:
        return self.opts["update_max"] > self.opts["update_every"]

    def _reschedule(self, old):
        """After an update, with a growing interval: if it moved the k Ritz values (``old``
        before it) by less than SETTLE relative, the interval doubles (from at least
        ``update_every``, up to ``update_max``), else every ``_unsettled``-th solve updates."""
        new = self.ritz_values
        if not self._growing() or new is old or old is None or new is None or len(new) != len(old):
            return
        change = float(np.max(np.abs(new - old) / np.maximum(np.abs(new), np.finfo(float).tiny)))
        u, top = int(self.opts["update_every"]), int(self.opts["update_max"])
        self._interval = max(u, min(2 * self._interval, top)) if change < SETTLE else self._unsettled

    def _track(self, its: int, updating: bool):
        """Note a solve's iterations for the drift test of ``_updating`` (updating solves
        run longer by design and are not compared)."""
        if updating:
            return
        if self._ref_its is None:
            self._ref_its = its
        elif its > DRIFT * self._ref_its and self._growing():
            self._drifted = True

    def _update(self, W, P, alpha, rho, T, k, M, C=None, layout=None):
        """Harmonic Ritz step over S = [W, P] from scalars the iteration produced:
        with A P_j = (r_j - r_j+1)/alpha_j, M^-1 A P_j = (z_j - z_j+1)/alpha_j and the
        M^-1-orthogonality of the residuals, (AP)^T M^-1 AP is tridiagonal, P^T A P is
        diag(rho/alpha), W^T A P = 0, and (AW)^T M^-1 AP comes from the rows
        T_j = (AW) z_j (shape (L+1, k)). In the basis [R^-T W, P diag(rho/alpha)^-1/2],
        A-orthonormal, the pencil becomes a standard symmetric eigenproblem. With C, the
        rows of P are the compiled kernel's pt_j and the directions are pt_j - W^T c_j.
        The new W gets its A W at the next solve, for that solve's matrix. ``layout``: the
        global sum of the one block product (rows split over processes)."""
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
            AMA = AW @ MAW.T
            GW = Rinv.T @ (layout.sum(AMA) if layout is not None else AMA) @ Rinv
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


def _reduced(layout, r, z, AW):
    """(||r||, r^T z, (A W) z or None) over all processes in one global sum."""
    kw = 0 if AW is None else AW.shape[0]
    buf = np.empty(kw + 2)
    buf[0] = np.dot(r, r)
    buf[1] = np.dot(r, z)
    if kw:
        np.dot(AW, z, out=buf[2:])
    layout.sum(buf)
    return float(np.sqrt(buf[0])), float(buf[1]), (buf[2:].copy() if kw else None)
