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

from linsolve.core.base import Outcome, Solver
from linsolve.core.errors import OptionError
from linsolve.core.registry import register
from linsolve.petsc_support.ksp import PetscDriver


def _complex_safe(M, b):
    """SciPy's ``M`` for a complex system: a real preconditioner (e.g. SuperLU's ILU of a real
    matrix, which refuses complex vectors) is applied to the real and imaginary parts."""
    if M is None or not np.iscomplexobj(b):
        return M
    from linsolve.recycling.gcrodr_complex import _pc

    class _Apply:
        apply = staticmethod(M.matvec)

    return spla.LinearOperator(M.shape, matvec=_pc(_Apply, False), dtype=np.complex128)


class _KrylovBaseline(Solver):
    backends = ("scipy", "petsc")
    preconditioners = ("none", "jacobi", "ilu", "amg")
    petsc_type = ""
    options = {"history": True}
    complex_support = "native"  # SciPy's complex code paths (PETSc here has real scalars)

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
        M = _complex_safe(self.preconditioner(op).linear_operator(), b)
        norms: list[float] = []
        history = self.opts["history"]
        count = [0]
        seen = [None]  # a copy of the last iterate the history measured

        def cb(xk, user=True):
            count[0] += 1
            if history:
                norms.append(float(np.linalg.norm(b - op.matvec(xk))))
                seen[0] = np.array(xk)
            if user and ctx.callback is not None:
                ctx.callback(xk)

        x, info = self._call(op.scipy_operand(), b, x0, tol, maxiter, M, cb, count, norms)
        if not history:
            norms = [float(np.linalg.norm(b - op.matvec(x)))]
            meta = {"norm": "true residual", "true_rnorm": norms[0]}
        else:
            meta = {"norm": "true residual"}
            if norms and seen[0] is not None and np.array_equal(seen[0], x):
                meta["true_rnorm"] = norms[-1]  # the base class need not apply A again
        if info == 0:
            return Outcome(x, count[0], norms, True, "converged", meta)
        if info > 0:
            return Outcome(x, count[0], norms, False, "maxiter reached", meta)
        return Outcome(x, count[0], norms, False, f"breakdown (scipy info={info})", {})

    def _call(self, A, b, x0, tol, maxiter, M, cb, count, norms):
        raise NotImplementedError


@register("cg")
class CG(_KrylovBaseline):
    """Conjugate gradients (SPD matrices, SPD preconditioner)."""

    supports = frozenset({"spd"})
    petsc_type = "cg"
    symmetric_pc = True
    scipy_equivalent = "cg"

    def _call(self, A, b, x0, tol, maxiter, M, cb, count, norms):
        if tol > 0:
            return spla.cg(A, b, x0=x0, rtol=0.0, atol=tol, maxiter=maxiter, M=M, callback=cb)
        # tol = 0 (rtol=0, atol=0: run to maxiter). SciPy's test ||r|| < atol never stops it, and
        # once r.z underflows it divides 0 by 0: a solve that has reached 1e-15 would end as a NaN
        # iterate (discarded for x0) with a RuntimeWarning. Stop there with the last finite x,
        # as the recurrence's own convergence (the base class then checks the true residual).
        class _NonFinite(Exception):
            pass

        last = [np.array(x0)]

        def cb_finite(xk):
            if not np.all(np.isfinite(xk)):
                raise _NonFinite
            last[0] = np.array(xk)
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
    scipy_equivalent = "bicgstab"

    def _call(self, A, b, x0, tol, maxiter, M, cb, count, norms):
        # SciPy returns from the half step (||s|| <= atol) without calling the callback, so
        # that last iteration would be missing from the count and the history (a 1 x 1
        # system reported 0 iterations with x changed). The callback's x is SciPy's own
        # array, updated in place: keep a copy to tell whether x moved after the last call.
        # SciPy does not call the user's callback for that half step, so neither do we.
        seen = [np.array(x0)]

        def cb_seen(xk):
            seen[0] = np.array(xk)
            cb(xk)

        x, info = spla.bicgstab(A, b, x0=x0, rtol=0.0, atol=tol, maxiter=maxiter, M=M, callback=cb_seen)
        if info == 0 and not np.array_equal(x, seen[0]):
            cb(x, user=False)
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
    scipy_equivalent = "minres"
    # SciPy's MINRES is real only; the real form of a Hermitian matrix is symmetric with the
    # same (real) eigenvalues, and MINRES on it gives complex MINRES's iterates
    complex_support = "real-form"

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
                state["x"] = np.array(xk)
                raise _Done

        try:
            # (x0=None when it is zero: SciPy's MINRES would apply A to it)
            x, info = spla.minres(A, b, x0=x0 if np.any(x0) else None, rtol=1e-15, maxiter=maxiter, M=M,
                                  callback=stop_cb)
        except _Done:
            return state["x"], 0
        # info == 0 here: SciPy stopped on its own test (at machine precision) without meeting
        # ours. Report it as converged so the base class checks the true residual and continues
        # from x while budget remains; reporting info > 0 said "maxiter reached" after a few
        # iterations of a large budget and stopped there.
        return x, info


CALLBACK_TYPES = ("legacy", "pr_norm", "x")


def check_callback_type(value) -> str:
    """SciPy's ``callback_type`` of GMRES-type methods, or an OptionError."""
    if not isinstance(value, str) or value not in CALLBACK_TYPES:
        raise OptionError(f"callback_type must be one of {', '.join(CALLBACK_TYPES)} (as SciPy's gmres), "
                          f"got {value!r}")
    return value


class CycleBudget:
    """``maxiter`` as SciPy's GMRES reads it: inner iterations with ``callback_type="legacy"``,
    restart cycles with "pr_norm" and "x". The base class and ``_solve`` count inner
    iterations, so a budget of c cycles is handed over as c * restart of them (the methods
    then stop after c cycles)."""

    def _inner_budget(self, maxiter: int) -> int:
        if self.opts["callback_type"] == "legacy":
            return maxiter
        return maxiter * int(self.opts["restart"])


@register("gmres")
class GMRES(CycleBudget, _KrylovBaseline):
    """Restarted GMRES(m); ``restart`` is m. ``callback_type`` as SciPy's: ``"legacy"`` (the
    default of ``make_solver``): ``callback(pr_norm)`` after every inner iteration, ``maxiter``
    counts inner iterations; ``"pr_norm"``: the same calls, ``maxiter`` counts restart cycles;
    ``"x"``: ``callback(x)`` after every restart cycle, ``maxiter`` counts cycles. pr_norm is
    SciPy's (left-)preconditioned residual estimate divided by ||b||."""

    options = {"history": True, "restart": 40, "callback_type": "legacy"}
    petsc_type = "gmres"
    scipy_equivalent = "gmres"

    def _validate_options(self):
        m = self.opts["restart"]
        if isinstance(m, bool) or not isinstance(m, (int, np.integer)) or m < 1:
            raise OptionError(f"restart must be a positive integer, got {m!r}")
        check_callback_type(self.opts["callback_type"])
        if self.backend == "petsc" and self.opts["callback_type"] == "x":
            raise OptionError("callback_type='x' needs backend='scipy' (a PETSc KSP reports residual norms)")
        super()._validate_options()

    def _petsc_extra(self):
        return {"ksp_gmres_restart": int(self.opts["restart"])}

    def _solve(self, op, b, x0, tol, maxiter, ctx):
        if self._driver is not None:
            return self._driver.solve(op, b, x0, tol, maxiter, ctx)
        M = _complex_safe(self.preconditioner(op).linear_operator(), b)
        m = int(self.opts["restart"])
        bnorm = float(np.linalg.norm(b))
        norms: list[float] = []
        A = op.scipy_operand()
        if self.opts["callback_type"] == "x":
            return self._solve_x(op, A, M, b, x0, tol, maxiter, m, ctx)

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
        return self._outcome(x, info, its, norms, meta)

    def _solve_x(self, op, A, M, b, x0, tol, maxiter, m, ctx):
        """callback_type="x": SciPy calls back once per cycle with x; the inner iterations
        are counted from the products with A (one per inner iteration, one per cycle for
        its true residual, one for a nonzero x0) and the history holds the true residual
        after each cycle."""
        count = [0]

        def mv(v):
            count[0] += 1
            return A @ v

        Ac = spla.LinearOperator(op.shape, matvec=mv, dtype=op.dtype)
        norms: list[float] = []
        cycles = [0]

        def cb(xk):
            cycles[0] += 1
            norms.append(float(np.linalg.norm(b - op.matvec(xk))))
            if ctx.callback is not None:
                ctx.callback(xk)

        start = 1 if np.any(x0) else 0
        x, info = spla.gmres(Ac, b, x0=x0, rtol=0.0, atol=tol, restart=m, maxiter=max(maxiter // m, 1), M=M,
                             callback=cb, callback_type="x")
        its = count[0] - cycles[0] - start
        meta = {"norm": "true residual after each restart cycle"}
        if norms:
            meta["true_rnorm"] = norms[-1]
        return self._outcome(x, info, its, norms, meta)

    @staticmethod
    def _outcome(x, info, its, norms, meta):
        if info == 0:
            return Outcome(x, its, norms, True, "converged", meta)
        if info > 0:
            return Outcome(x, its, norms, False, "maxiter reached", meta)
        return Outcome(x, its, norms, False, f"breakdown (scipy info={info})", meta)
