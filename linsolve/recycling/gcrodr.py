"""GCRO-DR: restarted GMRES with deflated restarting and a recycled subspace carried
from one solve to the next (Parks, de Sturler, Mackey, Johnson, Maiti, SIAM J. Sci.
Comput. 28(5), 2006), the solver of sorted Krylov recycling (SKR, ICLR 2024).

Notation (B is the preconditioned operator: A M^-1 for right, M^-1 A for left
preconditioning). The recycled space is a block U of k vectors with C = B U and C^T C = I.
Each cycle runs m - k Arnoldi steps of (I - C C^T) B, solves the small least-squares
problem over span[U, V] and replaces U by the k harmonic Ritz vectors of B over that
space (smallest magnitude by default), i.e. the generalized eigenproblem
G^T G g = theta G^T (V^T W) g of the paper's section 2.

Where the vectors live: U and the Arnoldi basis V live in B's space. With right
preconditioning the solution correction is M^-1 (U y1 + V y2), one preconditioner
application per cycle. When the matrix or the preconditioner changes, U is kept and C is
rebuilt from a QR of B_new U (C = Q, U = U R^-1; a Cholesky QR, repeated only when its
factor is not well conditioned, with a rank-revealing QR as fallback), which is what keeps
the recycled space valid across a preconditioner rebuild.

Deflated restarting (``update="cycle"``) replaces U after a cycle while the update still
moves the k smallest harmonic Ritz magnitudes by 10% or more (``SETTLE``); once it moves them
less, the interval doubles after each update up to ``update_every`` cycles, and a larger move
brings it back to every cycle; the last cycle of a solve always updates. An update costs GEMMs
of about 2km multiply-adds per unknown (more than the m - k Arnoldi steps of a cycle) and a
dense m x m eigenproblem. On the greedy-sorted 40-system darcy sequences (skr stencil, Jacobi,
tol 1e-8, ``benchmarks/skr_small.py``) the settled space is learnt in the first solves:
at 62^2 the same iterations as updating every cycle (4449 against 4451) with 60 updates
instead of 245; at 128^2 6% more iterations with 122 updates instead of 565. Fixed intervals
did about as well there, but on an indefinite Helmholtz problem (``test_gcrodr.py``) an
interval of 3 took up to 2.6x the iterations of updating every cycle, where this schedule
takes at most 1.3x. Complex systems (``linsolve.recycling.gcrodr_complex``) update every cycle.

Performance: bases are row-major (k, n) arrays and each new vector is built in place in its
basis row. For a local CSR matrix with no preconditioner or Jacobi, the whole cycle of Arnoldi
steps is one compiled call (``arnoldi_kernels.arnoldi_cycle``: the product, the Jacobi
scaling and the step below, with the bits of the Python loop); otherwise an iteration is one
product (SciPy CSR or PETSc MatMult/PCApply on Vecs placed on the NumPy rows) and one
compiled Arnoldi step (``linsolve.recycling.arnoldi_kernels``: classical
Gram-Schmidt against [C, V_j] in PETSc-style multi-vector loops, one pass by default like
PETSc GMRES, ``orthog`` adds a second pass when needed or always; Hessenberg column, Givens
update, normalisation). The per-cycle update is the harmonic Ritz problem in LAPACK plus
the GEMMs it needs: V^T U, C = [C V] Q, and [U; correction] = [T; y^T] [U~; V] in one.

Distributed (``backend="petsc"`` with a PETSc matrix over several MPI processes): the bases
hold this process's rows; the Arnoldi step's block of k + j inner products is one global sum
and its norm another (PETSc GMRES's VecMDot and VecNormalize); per cycle, V^T U, the
projection C^T r, the norms of U's columns, the residual norm and (for a new matrix) the
Gram matrix of B U are one sum each. The small problems (harmonic Ritz, QR of G P,
least squares) run on every process from the same reduced numbers.
"""
from __future__ import annotations

import numpy as np
import scipy.linalg as sla
from scipy.linalg.blas import dgemm, dnrm2, dsyrk
from scipy.linalg.lapack import dgeev, dgeqp3, dgeqrf, dgetrf, dgetrs, dorgqr, dpotrf, dtrcon, dtrtri, dtrtrs

from linsolve.core.base import Outcome, Solver
from linsolve.core.errors import OptionError
from linsolve.core.precond import Jacobi
from linsolve.core.registry import register
from linsolve.core.validation import check_choice, check_int
from linsolve.recycling.gcrodr_rules import (
    cycle_budget,
    end_of_cycle,
    is_last_cycle,
    needs_refit,
    qr_rank,
    solve_info,
)
from linsolve.recycling.recycle_ops import (
    MatOps,
    apply_block,
    build_pc,
    forget_pc_matrix,
    is_identity,
    pc_into,
    single_blas_thread,
)


def harmonic_ritz(G: np.ndarray, VW: np.ndarray, k: int, which: str = "smallest"):
    """Harmonic Ritz pairs of the cycle: solves G^T G g = theta G^T VW g and returns
    (values, P) with P's columns spanning the real span of the k selected vectors
    (a complex pair contributes its real and imaginary parts, so P may have k+1 columns)."""
    lhs, rhs = G.T @ G, G.T @ VW
    lu, piv, info = dgetrf(rhs)
    du = np.abs(np.diag(lu))
    if info == 0 and du.min() > 1e-10 * du.max():
        # well-conditioned right-hand matrix: the standard problem is equivalent and
        # several times cheaper than the QZ algorithm; LAPACK's real form of the
        # eigenvectors (a complex pair as its real and imaginary parts in two columns) is
        # exactly the real basis wanted
        S, info = dgetrs(lu, piv, lhs, overwrite_b=1)
        wr, wi, _, vr, info = dgeev(S, compute_vl=0, overwrite_a=1)
        if info == 0:
            return _select_real_form(wr, wi, vr, k, which)
    vals, vecs = sla.eig(lhs, rhs)
    idx = np.flatnonzero(np.isfinite(vals))
    mag = np.abs(vals[idx])
    idx = idx[np.argsort(mag if which == "smallest" else -mag, kind="stable")]
    cols, chosen, used = [], [], set()
    for i in idx:
        if len(cols) >= k:
            break
        if i in used:
            continue
        v = vals[i]
        used.add(i)
        if abs(v.imag) > 1e-10 * abs(v):
            rest = [j for j in idx if j not in used]
            if rest:
                used.add(rest[int(np.argmin(np.abs(vals[rest] - np.conj(v))))])
            cols += [vecs[:, i].real, vecs[:, i].imag]
            chosen += [v, np.conj(v)]
        else:
            cols.append(vecs[:, i].real)
            chosen.append(v)
    P = np.column_stack(cols) if cols else np.zeros((G.shape[1], 0))
    return np.asarray(chosen), P


def _select_real_form(wr, wi, vr, k, which):
    """The k eigenvalues of smallest (largest) magnitude from LAPACK's geev output, a
    conjugate pair (consecutive, wi > 0 first) taken whole; returns (values, P)."""
    units = np.flatnonzero(wi >= 0.0)  # real eigenvalues and the first of each pair
    mag = np.hypot(wr[units], wi[units])
    units = units[np.argsort(mag if which == "smallest" else -mag, kind="stable")]
    width = np.where(wi[units] > 0.0, 2, 1)
    start = np.cumsum(width) - width
    keep = start < k  # units are taken while fewer than k columns are chosen
    units, width, start = units[keep], width[keep], start[keep]
    cols = np.repeat(units, width) + (np.arange(int(width.sum())) - np.repeat(start, width))
    return wr[cols] + 1j * wi[cols], vr[:, cols]


# the relative change of the harmonic Ritz magnitudes below which the recycled space counts as
# settled and the interval between updates grows (GCRODR._reschedule)
SETTLE = 0.1


@register("gcrodr")
class GCRODR(Solver):
    """GCRO-DR(m, k) with recycling across solves: ``make_solver("gcrodr", restart=40,
    recycle=20, pc="ilu", pc_side="right")``. ``recycle=0`` is GMRES(m). With
    ``backend="petsc"`` any PETSc PC (``bjacobi``, ``asm``, ...) is applied through
    petsc4py. ``residual_norms`` holds the least-squares residual estimate per iteration:
    the true residual norm for right, the preconditioned one for left preconditioning.
    ``update_every`` (default 8): with ``update="cycle"`` the recycled space is replaced
    after every cycle while that still moves its harmonic Ritz values by 10% or more, then
    at intervals doubling up to ``update_every`` cycles, and after the last cycle of every
    solve (1: every cycle, as in Parks et al.; complex systems always update every cycle);
    ``update="solve"``: after the last cycle only.
    ``callback`` and ``maxiter`` follow SciPy's GMRES and its ``callback_type``: "legacy"
    (``make_solver``'s default): ``callback(estimate / ||b||)`` after every inner iteration,
    ``maxiter`` counts inner iterations; "pr_norm": the same calls, ``maxiter`` counts restart
    cycles; "x": ``callback(x)`` after every cycle, ``maxiter`` counts cycles. Complex systems
    run GCRO-DR in complex arithmetic (``linsolve.recycling.gcrodr_complex``, a NumPy path without the
    compiled kernels)."""

    supports = frozenset({"spd", "nonsymmetric", "indefinite"})
    backends = ("scipy", "petsc")
    preconditioners = ("none", "jacobi", "ilu", "amg")
    options = {"restart": 40, "recycle": 20, "pc_side": "right", "which": "smallest",
               "recycle_across": True, "update": "cycle", "update_every": 8, "orthog": "cgs", "callback_type": "legacy"}
    stateful = True
    # complex systems run GCRO-DR in complex arithmetic (linsolve.recycling.gcrodr_complex, NumPy): GMRES
    # on the real form minimises over half the Krylov dimension and stalled on indefinite
    # complex Helmholtz problems where complex GMRES converges
    complex_support = "native"
    scipy_equivalent = "gmres"

    def _validate_options(self):
        m = check_int("restart", self.opts["restart"], 2)
        k = check_int("recycle", self.opts["recycle"], 0)
        if k > m - 2:
            raise OptionError(f"recycle={k} must be at most restart - 2 = {m - 2} "
                              "(each cycle needs Arnoldi steps beyond the recycled space)")
        check_choice("pc_side", self.opts["pc_side"], ("right", "left"))
        check_choice("orthog", self.opts["orthog"], ("cgs", "ifneeded", "cgs2"))
        check_choice("update", self.opts["update"], ("cycle", "solve"))
        check_int("update_every", self.opts["update_every"], 1)
        check_choice("which", self.opts["which"], ("smallest", "largest"))
        from linsolve.krylov.baselines import check_callback_type

        check_callback_type(self.opts["callback_type"])
        self._reset()

    def _inner_budget(self, maxiter):
        # SciPy's GMRES convention: maxiter counts restart cycles unless callback_type="legacy"
        return maxiter if self.opts["callback_type"] == "legacy" else maxiter * int(self.opts["restart"])

    def _reset(self):
        self._U = None   # recycled space in B's space, (k, n)
        self._C = None   # B U, orthonormal rows
        self._C_buf = None  # the basis array whose first rows hold C, if any
        # bases and U kept across solves: fresh multi-megabyte arrays cost a page fault per 4 KiB
        # on first touch, which showed up as a few percent of every short (strongly preconditioned) solve
        self._bufs = None
        self._Ubufs = None
        self._key = None
        self.ritz_values = None
        self._gap = 1  # cycles between updates now (update="cycle"): 1, doubling up to update_every
        self._complex_state = {}  # U, C and their key for complex systems (linsolve.recycling.gcrodr_complex)

    # --- recycled space ------------------------------------------------------------
    def _adapt(self, A, M, right, ident, op):
        """Rebuild C = B U for a new operator or preconditioner (QR of B U)."""
        U = self._U
        if right:
            BZ = A.block(U if ident else apply_block(M, U))
        else:
            BZ = A.block(U)
            if not ident:
                BZ = apply_block(M, BZ)
        lay = A.layout
        if not lay.allfinite(BZ):
            # the operator or preconditioner gave NaN/Inf on U: a NaN C would poison every
            # projection of this and later solves, so the space is dropped (the solve then
            # runs, and reports, as GMRES would)
            self._U = self._C = self._C_buf = None
            self.ritz_values = None
            return U.shape[0]
        C, U = _orthonormalise(BZ, U, lay)
        self._C, self._U = C, U
        self._C_buf = None
        self._CtU = lay.sum(C @ U.T)
        self._norms()
        return U.shape[0]

    def _caches_matrix(self):
        return True

    def _matrix_changed(self):
        # preconditioners and C = B U are keyed on the matrix object: rebuild them
        self._pc_cache = None
        forget_pc_matrix(self)
        self._key = None

    def runs_distributed(self):
        return self.backend == "petsc" and isinstance(self.pc, str)

    def _distributed_what(self):
        return ("with a preconditioner object applied in Python" if self.backend == "petsc"
                else f"backend={self.backend!r}; backend='petsc' runs distributed")

    # --- the method -------------------------------------------------------------------
    @single_blas_thread  # small blocks from a serial loop: see recycle_ops.one_blas_thread
    def _solve(self, op, b, x0, tol, maxiter, ctx):
        if np.iscomplexobj(b):
            from linsolve.recycling.gcrodr_complex import solve_complex

            return solve_complex(self, op, b, x0, tol, maxiter, ctx)
        m, k = int(self.opts["restart"]), int(self.opts["recycle"])
        right = self.opts["pc_side"] == "right"
        A = MatOps(op)
        n = A.n  # this process's rows
        lay = self._layout = A.layout
        M = build_pc(self, op)
        ident = is_identity(M)
        # right preconditioning: corrections are formed in B's space, then mapped by M^-1
        to_x = M.apply if (right and not ident) else (lambda v: v)

        where = (lay.size, lay.nlocal, lay.n)
        if not self.opts["recycle_across"] or (self._U is not None and getattr(self, "_where", None) != where):
            self._reset()  # (also a space fitted to another size or distribution of the rows)
        self._where = where
        key = (op.source, M, self.opts["pc_side"])
        adapt_mv = 0
        if self._U is not None and needs_refit(self._key, op.source, M, self.opts["pc_side"]):
            adapt_mv = self._adapt(A, M, right, ident, op)
        self._key = key

        x = np.array(x0, dtype=np.float64)
        # no product for the zero start (distributed: the product is collective, every process
        # takes the same branch without a reduction to decide it)
        r = b - A(x) if (lay.distributed or np.any(x)) else b.copy()
        rp = r if (right or ident) else M.apply(r)
        # coefficients c of U still to be added to x (x += M^-1 U c): the projection of the
        # residual on C defers that update to the next correction, which reads U anyway
        pend = None
        if self._C is not None and self._C.shape[0]:
            pend, rp, r = self._project_out(A, M, right, ident, b, x, rp, to_x)

        # Two bases: the harmonic Ritz update writes the new C straight into the first rows
        # of the other one, which the next cycle then extends (no copy of C per cycle).
        if self._bufs is None or self._bufs[0].shape != (m + 1, n):
            self._bufs = [np.empty((m + 1, n)), np.empty((m + 1, n))]
        bufs = self._bufs
        # C from the last solve still sits in the first rows of one basis if the space was not refitted
        Vh = self._C_buf if any(self._C_buf is bb for bb in bufs) else bufs[0]
        norms: list[float] = []
        its = 0
        rnorm = lay.norm(r)
        converged = rnorm <= tol
        reason = "converged" if converged else "maxiter reached"
        stalls = 0
        true_rnorm = None
        every_cycle = self.opts["update"] == "cycle"
        every = int(self.opts["update_every"])
        since = 0  # cycles since the recycled space was last replaced
        ctype = self.opts["callback_type"]
        max_cycles = cycle_budget(ctype, maxiter, m)
        cycles = 0
        user_cb = ctx.callback
        step_ctx = ctx if ctype != "x" else None
        while not converged and its < maxiter and (max_cycles is None or cycles < max_cycles):
            cycles += 1
            kc = 0 if self._C is None else self._C.shape[0]
            steps = min(m - kc, maxiter - its)
            ratio = lay.norm(rp) / rnorm if not (right or ident) else 1.0
            # distributed: ||rp|| is the rnorm just summed when rp is r (one global sum fewer a cycle)
            known = rnorm if (lay.distributed and (right or ident)) else None
            p, y1, y2, G, breakdown = self._cycle(A, M, right, ident, rp, Vh, kc, steps,
                                                  tol * ratio, norms, step_ctx or ctx, known,
                                                  per_step=step_ctx is not None)
            its += p
            yu = y1 if pend is None else y1 + pend / self._d
            pend = None
            corr = None
            # update="cycle": deflated restarting once ``_gap`` cycles have passed since the last
            # update (and after the last cycle): see ``_reschedule``
            since += 1
            update_now = every_cycle and since >= self._gap
            if k > 0 and update_now:
                # the correction [U~ V_p] y is one more row of the GEMM that forms the new U
                other = bufs[1] if Vh is bufs[0] else bufs[0]
                old = self.ritz_values
                updated, corr = self._update(G, Vh, kc, p, k, other, np.concatenate([yu, y2]))
                if updated:
                    Vh = other
                    self._reschedule(old, every)
                since = 0
            if corr is None:
                corr = Vh[kc:kc + p].T @ y2
                if kc:
                    corr += self._U.T @ (yu * self._d)
            x += to_x(corr)
            if ctype == "x" and user_cb is not None:
                user_cb(x)  # SciPy's callback_type="x": the iterate after each restart cycle
            r = b - A(x)
            new_norm = lay.norm(r)
            stalls, stop = end_of_cycle(new_norm, rnorm, stalls, tol, breakdown)
            rnorm = new_norm
            if k > 0 and not update_now and (kc == 0 or is_last_cycle(rnorm, tol, its, maxiter, breakdown)):
                other = bufs[1] if Vh is bufs[0] else bufs[0]
                old = self.ritz_values
                if self._update(G, Vh, kc, p, k, other)[0]:
                    Vh = other
                    if every_cycle:
                        self._reschedule(old, every)
                since = 0
            if stop is not None:
                reason, converged = stop, stop == "converged"
                if converged:
                    true_rnorm = rnorm  # ||b - A x|| of the x returned: the base class need not recompute it
                break
            rp = r if (right or ident) else M.apply(r)
            if self._C is not None and self._C.shape[0]:
                # r is orthogonal to the new C in exact arithmetic; remove the rounding so the
                # next least-squares problem (right-hand side [0; beta e1]) is exact.
                pend, rp, r = self._project_out(A, M, right, ident, b, x, rp, to_x)
                rnorm = lay.norm(r)
        if pend is not None:
            x += to_x(self._U.T @ pend)
        info = solve_info(right, ident, 0 if self._U is None else self._U.shape[0], adapt_mv,
                          self.opts["pc_side"], true_rnorm)
        return Outcome(x, its, norms, converged, reason, info)

    def _reschedule(self, old, longest):
        """The interval between updates after one that moved the k smallest harmonic Ritz
        magnitudes from ``old`` by the relative amount c: doubled (up to ``longest``) if
        c < SETTLE, the space having settled, else back to every cycle. Settled spaces (a
        sorted sequence of similar matrices) are then replaced only every ``longest``-th cycle;
        spaces still being learnt, as on indefinite problems, every cycle."""
        new = self.ritz_values
        if longest == 1 or old is None or new is None:
            self._gap = 1
            return
        q = min(len(old), len(new))
        a, b = np.sort(np.abs(old))[:q], np.sort(np.abs(new))[:q]
        with np.errstate(divide="ignore", invalid="ignore"):
            change = float(np.max(np.abs(b - a) / b)) if q else np.inf
        self._gap = min(2 * self._gap, longest) if change < SETTLE else 1

    def _project_out(self, A, M, right, ident, b, x, rp, to_x):
        """rp -= C C^T rp (one compiled CGS pass against C). For right or no preconditioning
        the residual is rp itself and the matching change of x, M^-1 U C^T rp, is returned as
        pending coefficients; for left preconditioning x is updated and r recomputed.
        Returns (pending coefficients or None, rp, r)."""
        from linsolve.recycling.arnoldi_kernels import project, project_distributed

        c = np.empty(self._C.shape[0])
        if A.layout.distributed:
            project_distributed(self._C, rp, c, A.layout)
        else:
            project(self._C, rp, c)
        if right or ident:
            return c, rp, rp
        x += to_x(self._U.T @ c)
        return None, rp, b - A(x)

    def _tmp(self, n):
        """A work vector of length n kept across cycles and solves."""
        t = getattr(self, "_work", None)
        if t is None or t.shape[0] != n:
            t = self._work = np.empty(n)
        return t

    def _norms(self):
        """Column scaling D = diag(1/||u_i||) of the paper, kept with U."""
        self._d = 1.0 / np.sqrt(self._layout.sum(np.einsum("ij,ij->i", self._U, self._U)))

    def _cycle(self, A, M, right, ident, rp, Vh, kc, steps, tol, norms, ctx, beta=None, per_step=True):
        """One cycle: ``steps`` Arnoldi steps of (I - CC^T)B. Returns the step count, the
        least-squares solution split as (coefficients of U~, of V), the matrix G-bar and
        whether the Arnoldi process broke down. ``beta``: ||rp|| when already known."""
        from linsolve.recycling.arnoldi_kernels import (  # numba: imported on first use
            arnoldi_step,
            arnoldi_step_distributed,
        )

        m = Vh.shape[0] - 1
        G = np.zeros((m + 1, m))
        if kc:
            if self._C_buf is not Vh:
                Vh[:kc] = self._C
            G[np.arange(kc), np.arange(kc)] = self._d
        lay = A.layout
        if beta is None:
            beta = lay.norm(rp) if lay.distributed else dnrm2(rp)
        if not np.isfinite(beta):  # left preconditioning: M^-1 r itself is NaN/Inf
            return 0, np.zeros(kc), np.zeros(0), G, "non-finite"
        Vh[kc] = rp / beta
        Rt = np.zeros((steps, steps))
        g = np.zeros(steps + 1)
        g[0] = beta
        cs = np.empty(steps)
        sn = np.empty(steps)
        h, h2, tmp = np.empty(m + 1), np.empty(m + 1), self._tmp(Vh.shape[1])
        cb = ctx.callback if per_step else None
        bnorm = ctx.bnorm
        refine = {"cgs": 0.0, "ifneeded": 0.7071, "cgs2": np.inf}[self.opts["orthog"]]
        breakdown = False
        p = 0
        fast = None if (cb is not None or lay.distributed) else _compiled_operator(A, M, right, ident)
        if fast is not None:
            # the whole cycle in one compiled call: no Python per iteration
            from linsolve.recycling.arnoldi_kernels import arnoldi_cycle

            est = np.empty(steps)
            p, status = arnoldi_cycle(*fast, tmp, Vh, kc, steps, refine, h, h2, G, cs, sn, Rt, g, tol, est)
            norms.extend(est[:p].tolist())
            breakdown = {0: False, 1: True, 2: "non-finite"}[status]
            steps = 0  # (the Python loop below has nothing left to do)
        for jj in range(steps):
            j = kc + jj
            v = Vh[j]
            # the new vector is built in place in its basis row: no temporaries per step
            w = Vh[j + 1]
            if ident:
                A.into(v, w)
            elif right:
                A.into(pc_into(M, v, tmp), w)
            else:
                pc_into(M, A.into(v, tmp), w)
            if lay.distributed:
                est, breakdown = arnoldi_step_distributed(Vh, j, kc, refine, h, h2, G, cs, sn, Rt, g, lay)
            else:
                est, breakdown = arnoldi_step(Vh, j, kc, refine, h, h2, G, cs, sn, Rt, g)
            # (the norm of the new vector carries any NaN/Inf of it; the Givens estimate can hide it)
            if not (np.isfinite(est) and np.isfinite(G[j + 1, j])):
                # NaN/Inf from the operator or preconditioner (e.g. ILU of a singular matrix):
                # this step and every later one are unusable; keep the steps before it
                breakdown = "non-finite"
                break
            norms.append(est)
            p = jj + 1
            if cb is not None:
                cb(np.float64(est / bnorm))  # a NumPy scalar, as SciPy's GMRES passes
            if est <= tol or breakdown:
                break
        R = Rt[:p, :p]
        diag = np.abs(np.diag(R))
        if p == 0:
            y2 = np.zeros(0)
        elif diag.min() > 1e-14 * diag.max():
            y2 = dtrtrs(R, g[:p])[0]
        else:  # singular projected matrix: least-squares solution of the Hessenberg problem
            rhs = np.zeros(p + 1)
            rhs[0] = beta
            y2 = np.linalg.lstsq(G[kc:kc + p + 1, kc:kc + p], rhs, rcond=None)[0]
        y1 = -(G[:kc, kc:kc + p] @ y2) / G[np.arange(kc), np.arange(kc)] if kc else np.zeros(0)
        return p, y1, y2, G, breakdown

    def _update(self, G, Vh, kc, p, k, out, y=None):
        """Replace the recycled space by k harmonic Ritz vectors over span[U, V_p]; the new
        C is written into ``out``'s first rows. With ``y`` (coefficients over [U~, V_p]) the
        solution correction [U~ V_p] y is formed in the same GEMM as the new U. Returns
        (whether the space was replaced, the correction or None)."""
        dim = kc + p
        if dim == 0:
            # a cycle whose first step already met NaN/Inf and no recycled space: nothing to
            # fit, and LAPACK's xerbla would print "DGETRF parameter 4" for the empty matrix
            return False, None
        Gp = G[:dim + 1, :dim]
        VW = np.zeros((dim + 1, dim))
        VW[np.arange(kc, dim), np.arange(kc, dim)] = 1.0
        if kc:
            # U~ = U D. C^T U~ is known from the previous update; only the new Arnoldi
            # vectors need products with U.
            VW[:kc, :kc] = self._CtU * self._d[None, :]
            VW[kc:, :kc] = self._layout.sum(Vh[kc:dim + 1] @ self._U.T) * self._d[None, :]
        if not (np.all(np.isfinite(Gp)) and np.all(np.isfinite(VW))):
            return False, None  # NaN/Inf reached the cycle's small matrices: keep the old space
        vals, P = harmonic_ritz(Gp, VW, k, self.opts["which"])
        if P.shape[1] == 0:
            return False, None
        self.ritz_values = vals
        # LAPACK directly: the wrappers' checks cost as much as these 40 x 20 factorisations
        qr, tau = dgeqrf(P)[:2]
        P = dorgqr(qr, tau)[0]
        qr, jpvt, tau = dgeqp3(Gp @ P)[:3]  # rank-revealing QR of G P
        rank = qr_rank(qr)
        if rank == 0:
            return False, None
        Q = dorgqr(qr[:, :rank], tau[:rank])[0]
        R, P = np.triu(qr[:rank, :rank]), P[:, jpvt[:rank] - 1]
        T = dtrtrs(R, P.T, trans=1)[0]  # (P R^-1)^T
        C = np.dot(Q.T, Vh[:dim + 1], out=out[:rank])
        ub = self._Ubufs
        # rank <= k + 1 rows of U (a complex pair at the cut) and one for the correction
        if ub is None or ub[0].shape != (k + 2, Vh.shape[1]):
            ub = self._Ubufs = [np.empty((k + 2, Vh.shape[1])), np.empty((k + 2, Vh.shape[1]))]
        dst = ub[1] if (self._U is not None and self._U.base is ub[0]) else ub[0]
        Ty = T if y is None else np.vstack([T, y])
        rows = Ty.shape[0]
        UY = np.dot(Ty[:, kc:], Vh[kc:dim], out=dst[:rows])
        if kc and UY.size:
            # U += (T_U D) U_old accumulated by BLAS into U (row-major U is U^T in Fortran order)
            dgemm(1.0, self._U.T, (Ty[:, :kc] * self._d[None, :]).T, beta=1.0, c=UY.T, overwrite_c=1)
        self._C, self._U = C, dst[:rank]
        self._CtU = Q.T @ VW @ T.T
        self._norms()
        self._C_buf = out
        return True, (None if y is None else dst[rank])


def _compiled_operator(A, M, right, ident):
    """The arguments (indptr, indices, data, dinv, side) with which ``arnoldi_kernels.arnoldi_cycle``
    applies the preconditioned operator, or None when it cannot: A must be a local CSR matrix
    and M none or Jacobi (other preconditioners are applied through Python)."""
    if A._csr is None or A._data.dtype != np.float64:
        return None
    if ident:
        dinv, side = _EMPTY, 0
    elif type(M) is Jacobi and M.inv_diag.dtype == np.float64 and M.inv_diag.flags.c_contiguous:
        dinv, side = M.inv_diag, (1 if right else 2)
    else:
        return None
    return A._indptr, A._indices, A._data, dinv, side


_EMPTY = np.zeros(0)


def _lsolve(L, X):
    """L^-1 X for a lower-triangular, well-conditioned (checked by the caller) L and a row
    block X (k, n): the k x k inverse and one GEMM, which OpenBLAS runs about 1.7x faster than
    the triangular solve with n right-hand sides."""
    return np.dot(dtrtri(L, lower=1)[0], X)


def _orthonormalise(BZ, U, layout=None):
    """QR of the block B U (rows): returns C with orthonormal rows and U scaled by R^-1 so
    that B U = C still holds. Cholesky QR (Gram matrix by SYRK, k x k Cholesky, triangular
    solve, all BLAS-3), repeated once unless the first factor shows that one pass is already
    orthogonal to rounding (its loss of orthogonality is about eps * cond(R)^2, and cond(R) is
    close to 1 when the matrix changed little, as in a sorted sequence); if B U is too
    ill-conditioned for Cholesky, a rank-revealing QR drops the directions B cannot
    distinguish. With a distributed ``layout`` the Gram matrices are global sums and the
    fallback is ``_orthonormalise_distributed``."""
    dist = layout is not None and layout.distributed
    L = None
    Q = BZ
    for _ in range(2):
        R, info = dpotrf(_gram(Q, layout) if dist else dsyrk(1.0, Q.T, trans=1), lower=0, clean=1)
        d = np.abs(np.diag(R))
        if info != 0 or d.min() <= 1e-7 * d.max():
            L = None
            break
        Lp = R.T
        Q = _lsolve(Lp, Q)
        L = Lp if L is None else L @ Lp
        if dtrcon(R, norm="1", uplo="U")[0] > 0.1:  # 1-norm condition number below 10
            break
    if L is not None:
        return Q, _lsolve(L, U)
    if dist:
        return _orthonormalise_distributed(BZ, U, layout)
    Q, R, piv = sla.qr(BZ.T, mode="economic", pivoting=True)
    rank = qr_rank(R)
    Q, R = Q[:, :rank], R[:rank, :rank]
    return np.ascontiguousarray(Q.T), sla.solve_triangular(R, U[piv[:rank]], trans="T")


def _gram(Q, layout):
    """The global Gram matrix Q Q^T of a row block whose columns are split over processes
    (the upper triangle, as SYRK gives it), one global sum."""
    G = dsyrk(1.0, Q.T, trans=1) if Q.shape[1] else np.zeros((Q.shape[0], Q.shape[0]))
    return layout.sum(np.ascontiguousarray(G))


def _orthonormalise_distributed(BZ, U, layout):
    """The rank-revealing fallback of ``_orthonormalise`` for rows split over processes: the
    eigen-decomposition of the global Gram matrix drops the directions whose singular value
    is below 1e-7 of the largest (what a Gram matrix resolves in double precision, the
    threshold at which the Cholesky path gave up), then a Cholesky QR pass restores
    orthogonality to rounding."""
    w, V = np.linalg.eigh(_full(_gram(BZ, layout)))
    keep = w > 1e-14 * w[-1] if w.size and w[-1] > 0 else np.zeros(w.shape, bool)
    S = V[:, keep] / np.sqrt(w[keep])
    Q, U = S.T @ BZ, S.T @ U
    R, info = dpotrf(_gram(Q, layout), lower=0, clean=1)
    if info == 0:
        Q, U = _lsolve(R.T, Q), _lsolve(R.T, U)
    return np.ascontiguousarray(Q), np.ascontiguousarray(U)


def _full(G_upper):
    """The symmetric matrix whose upper triangle is given."""
    return np.triu(G_upper) + np.triu(G_upper, 1).T
