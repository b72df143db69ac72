"""Krylov baselines backed by the libraries: SciPy's ``cg``, ``gmres``, ``bicgstab``,
``minres`` (``backend="scipy"``) or PETSc's native KSP (``backend="petsc"``).

With SciPy, ``residual_norms`` records the true residual norm ||b - A x_k|| through the
callback (one extra product per iteration; ``history=False`` turns it off and records
only the final norm). For GMRES, SciPy only reports its preconditioned residual estimate
per inner iteration; that estimate times ||b|| is recorded.
"""
from __future__ import annotations

import numpy as np
import scipy.sparse.linalg as spla

from ..base import Outcome, Solver
from ..errors import OptionError
from ..registry import register
from .petsc_ksp import PetscDriver


class _KrylovBaseline(Solver):
    backends = ("scipy", "petsc")
    preconditioners = ("none", "jacobi", "ilu", "amg")
    petsc_type = ""
    options = {"history": True}

    def _validate_options(self):
        self._driver = PetscDriver(self, self.petsc_type, self._petsc_extra()) if self.backend == "petsc" else None

    def _petsc_extra(self) -> dict:
        return {}

    def _reset(self):
        self._validate_options()

    def _caches_matrix(self):
        return self._driver is not None or not (isinstance(self.pc, str) and self.pc == "none")

    def runs_distributed(self):
        # a preconditioner object is applied in Python to whole vectors
        return self._driver is not None and isinstance(self.pc, str)

    def _distributed_what(self):
        return ("with a preconditioner object applied in Python" if self._driver is not None
                else f"backend={self.backend!r}")

    def _matrix_changed(self):
        if self._driver is not None:
            self._driver.forget_matrix()

    def _solve(self, op, b, x0, tol, maxiter, ctx):
        if self._driver is not None:
            return self._driver.solve(op, b, x0, tol, maxiter, ctx)
        M = self.preconditioner(op).linear_operator()
        norms: list[float] = []
        history = self.opts["history"]
        count = [0]

        def cb(xk):
            count[0] += 1
            if history:
                norms.append(float(np.linalg.norm(b - op.matvec(xk))))
            if ctx.callback is not None:
                ctx.callback(xk)

        x, info = self._call(op.scipy_operand(), b, x0, tol, maxiter, M, cb, count, norms)
        if not history:
            norms = [float(np.linalg.norm(b - op.matvec(x)))]
        if info == 0:
            return Outcome(x, count[0], norms, True, "converged", {"norm": "true residual"})
        if info > 0:
            return Outcome(x, count[0], norms, False, "maxiter reached", {"norm": "true residual"})
        return Outcome(x, count[0], norms, False, f"breakdown (scipy info={info})", {})

    def _call(self, A, b, x0, tol, maxiter, M, cb, count, norms):
        raise NotImplementedError


@register("cg")
class CG(_KrylovBaseline):
    """Conjugate gradients (SPD matrices, SPD preconditioner)."""

    supports = frozenset({"spd"})
    petsc_type = "cg"
    symmetric_pc = True

    def _call(self, A, b, x0, tol, maxiter, M, cb, count, norms):
        if tol > 0:
            return spla.cg(A, b, x0=x0, rtol=0.0, atol=tol, maxiter=maxiter, M=M, callback=cb)
        # tol = 0 (rtol=0, atol=0: run to maxiter). SciPy's test ||r|| < atol never stops it, and
        # once r.z underflows it divides 0 by 0: a solve that had reached 1e-15 ended as a NaN
        # iterate (discarded for x0) with a RuntimeWarning. Stop there with the last finite x,
        # as the recurrence's own convergence (the base class then checks the true residual).
        class _NonFinite(Exception):
            pass

        last = [np.array(x0, dtype=np.float64)]

        def cb_finite(xk):
            if not np.all(np.isfinite(xk)):
                raise _NonFinite
            last[0] = np.array(xk, dtype=np.float64)
            cb(xk)

        try:
            with np.errstate(invalid="ignore", divide="ignore"):
                return spla.cg(A, b, x0=x0, rtol=0.0, atol=np.finfo(np.float64).smallest_subnormal,
                               maxiter=maxiter, M=M, callback=cb_finite)
        except _NonFinite:
            return last[0], 0


@register("bicgstab")
class BiCGStab(_KrylovBaseline):
    """BiCGStab for non-symmetric matrices."""

    petsc_type = "bcgs"

    def _call(self, A, b, x0, tol, maxiter, M, cb, count, norms):
        # SciPy returns from the half step (||s|| <= atol) without calling the callback, so
        # that last iteration would be missing from the count and the history (a 1 x 1
        # system reported 0 iterations with x changed). The callback's x is SciPy's own
        # array, updated in place: keep a copy to tell whether x moved after the last call.
        seen = [np.array(x0, dtype=np.float64)]

        def cb_seen(xk):
            seen[0] = np.array(xk, dtype=np.float64)
            cb(xk)

        x, info = spla.bicgstab(A, b, x0=x0, rtol=0.0, atol=tol, maxiter=maxiter, M=M, callback=cb_seen)
        if info == 0 and not np.array_equal(x, seen[0]):
            cb(x)
        return x, info


@register("minres")
class MINRES(_KrylovBaseline):
    """MINRES for symmetric (possibly indefinite) matrices with an SPD preconditioner.
    SciPy's MINRES stops on its own estimate; the base class checks the true residual
    and continues if the estimate was optimistic."""

    supports = frozenset({"spd", "indefinite"})
    preconditioners = ("none", "jacobi", "amg")
    petsc_type = "minres"
    symmetric_pc = True

    def _call(self, A, b, x0, tol, maxiter, M, cb, count, norms):
        # SciPy's MINRES tests rnorm against rtol (||A|| ||x|| + ||b||), looser than our
        # rule, so it runs with a tiny rtol and we stop it from the callback once the true
        # residual meets the rule.
        class _Done(Exception):
            pass

        state = {"x": None}

        def stop_cb(xk):
            cb(xk)
            rn = norms[-1] if self.opts["history"] else float(np.linalg.norm(b - A @ xk))
            if rn <= tol:
                state["x"] = np.array(xk, dtype=np.float64)
                raise _Done

        try:
            x, info = spla.minres(A, b, x0=x0, rtol=1e-15, maxiter=maxiter, M=M, callback=stop_cb)
        except _Done:
            return state["x"], 0
        # info == 0 here: SciPy stopped on its own test (at machine precision) without meeting
        # ours. Report it as converged so the base class checks the true residual and continues
        # from x while budget remains; reporting info > 0 said "maxiter reached" after a few
        # iterations of a large budget and stopped there.
        return x, info


@register("gmres")
class GMRES(_KrylovBaseline):
    """Restarted GMRES(m); ``restart`` is m, ``maxiter`` counts inner iterations."""

    options = {"history": True, "restart": 40}
    petsc_type = "gmres"

    def _validate_options(self):
        m = self.opts["restart"]
        if isinstance(m, bool) or not isinstance(m, (int, np.integer)) or m < 1:
            raise OptionError(f"restart must be a positive integer, got {m!r}")
        super()._validate_options()

    def _petsc_extra(self):
        return {"ksp_gmres_restart": int(self.opts["restart"])}

    def _solve(self, op, b, x0, tol, maxiter, ctx):
        if self._driver is not None:
            return self._driver.solve(op, b, x0, tol, maxiter, ctx)
        M = self.preconditioner(op).linear_operator()
        m = int(self.opts["restart"])
        bnorm = float(np.linalg.norm(b))
        norms: list[float] = []
        A = op.scipy_operand()

        def cb(pr):
            norms.append(float(pr) * bnorm)
            if ctx.callback is not None:
                ctx.callback(pr)

        # SciPy's maxiter counts restart cycles; split ours (inner iterations) into full
        # cycles plus one shorter cycle so the budget is honoured exactly.
        full, rest = divmod(maxiter, m)
        x, info = x0, 1
        if full:
            x, info = spla.gmres(A, b, x0=x, rtol=0.0, atol=tol, restart=m, maxiter=full, M=M,
                                 callback=cb, callback_type="pr_norm")
        if info > 0 and rest:
            x, info = spla.gmres(A, b, x0=x, rtol=0.0, atol=tol, restart=rest, maxiter=1, M=M,
                                 callback=cb, callback_type="pr_norm")
        its = len(norms)
        meta = {"norm": "scipy preconditioned residual estimate x ||b||"}
        if info == 0:
            return Outcome(x, its, norms, True, "converged", meta)
        if info > 0:
            return Outcome(x, its, norms, False, "maxiter reached", meta)
        return Outcome(x, its, norms, False, f"breakdown (scipy info={info})", meta)


