"""SOR as a stationary solver, SSOR-preconditioned CG, and their bandit-tuned wrapper.

``sor``: x <- x + W^-1 (b - A x), W = D/w + L, with the compiled kernel of
``linsolve.relaxation.sor_kernels``. Stopping rule: the package's ||r_k|| <= max(rtol ||b||, atol);
``paper_stop=True`` switches to the rule of Khodak et al. (and of their MATLAB code),
||r_k|| <= rtol ||r_0|| (with atol as a floor). With x0 = 0 both are the same test; with
a nonzero x0 the paper's rule is relative to the initial residual, and the result's
``converged``/``reason`` then refer to it (``info["stop_tol"]`` records the threshold).

``ssor-pcg``: conjugate gradients preconditioned by one symmetric SOR sweep, the whole
loop compiled. ``impl="scipy"`` runs SciPy's ``cg`` with the compiled SSOR apply as a
``LinearOperator`` instead (same iterates up to rounding, more Python overhead).

``backend="petsc"``: SOR is KSP richardson + PCSOR (forward sweep, ``-pc_sor_omega``),
SSOR-PCG is KSP cg + PCSOR (symmetric sweep), both through ``PetscDriver``.

``bandit-sor``: one of the above whose w is chosen per solve by an online policy of
``linsolve.relaxation.bandits`` that learns from the iteration counts across calls.
"""
from __future__ import annotations

import types

import numpy as np
import scipy.sparse.linalg as spla

from linsolve.core.base import Outcome, Solver
from linsolve.core.errors import OptionError, SolverError
from linsolve.core.registry import register
from linsolve.core.result import note_dropped
from linsolve.relaxation.bandits import Policy, make_policy
from linsolve.relaxation.sor_kernels import (
    BREAKDOWN,
    CONVERGED,
    SSORApply,
    as_kernel_data,
    check_omega,
    sor_solve_array,
    ssor_pcg_array,
)

_REASONS = {CONVERGED: "converged", 1: "maxiter reached", BREAKDOWN: "breakdown"}


class _KernelCache:
    """Kernel data of the last matrix, so a sequence of solves with one matrix prepares it
    once; a new matrix object (or PETSc Mat) is prepared again."""

    def __init__(self):
        self._key = None
        self._kd = None

    def get(self, op, who):
        if self._key is None or self._key[0] is not op.source:
            self._kd = as_kernel_data(op.csr(who), who)
            self._key = (op.source,)
        return self._kd


def _petsc_driver(ksp_type: str, omega: float, sweep: str):
    from linsolve.petsc_support.ksp import PetscDriver

    shim = types.SimpleNamespace(pc="sor", pc_options={})
    return PetscDriver(shim, ksp_type, {"pc_sor_omega": omega, f"pc_sor_{sweep}": True})


class _SORFamily(Solver):
    supports = frozenset({"spd"})
    needs_assembled = True
    backends = ("scipy", "petsc")
    preconditioners = ("none",)

    def default_maxiter(self, n: int) -> int:
        # the paper caps SOR at 10000 iterations; large grids may need more
        return max(10 * n, 10000)

    def _validate_options(self):
        if self.pc != "none":
            raise OptionError(f"solver {self.name!r} is its own preconditioner; pc must be 'none'")
        self._cache = _KernelCache()
        self._drivers = {}

    def _reset(self):
        self._validate_options()

    def _distributed_what(self):
        # (runs_distributed stays False) the kernels sweep the whole matrix in one process, and
        # PETSc's PCSOR on a distributed matrix sweeps only within each process: another method
        if self.backend == "petsc":
            return ("PETSc's SOR sweeps only within each process on a distributed matrix, which is not "
                    "the global SOR iteration; make_solver('petsc', ksp_type='cg', pc='sor') runs that "
                    "processor-local variant")
        return "the compiled SOR kernels need the whole matrix in one process"

    def _caches_matrix(self):
        return True

    def _matrix_changed(self):
        self._cache = _KernelCache()
        for driver in self._drivers.values():
            driver.forget_matrix()

    def _run(self, method, op, b, x0, tol, maxiter, ctx, omega, paper_stop=False, impl="numba"):
        paper = paper_stop and method == "sor"
        if paper:  # before the backend branch, so that backend="petsc" stops on ||r_0|| too, not ||b||
            tol = max(self.rtol * float(np.linalg.norm(b - op.matvec(x0))), self.atol)
        if self.backend == "petsc":
            out = self._run_petsc(method, op, b, x0, tol, maxiter, ctx, omega)
            if paper:
                out.info["stop_tol"] = tol
            return out
        kd = self._cache.get(op, self.name)
        info = {"omega": omega, "method": method}
        if method == "sor":
            if paper:
                info["stop_tol"] = tol
            x, its, norms, status, _ = sor_solve_array(kd, b, x0, omega, tol, maxiter)
            info["norm"] = "true residual (exact recurrence)"
            note_dropped(info, its, len(norms))
        elif impl == "scipy":
            M = spla.LinearOperator((kd.n, kd.n), matvec=SSORApply(kd, omega), dtype=np.float64)
            count, norms = [0], []

            def cb(xk):
                count[0] += 1

            x, flag = spla.cg(kd.matrix, b, x0=x0, rtol=0.0, atol=tol, maxiter=maxiter, M=M, callback=cb)
            its, status = count[0], (CONVERGED if flag == 0 else (1 if flag > 0 else BREAKDOWN))
            norms = [float(np.linalg.norm(b - kd.matrix @ x))]
            info["norm"] = "final true residual only (impl='scipy')"
        else:
            x, its, norms, status = ssor_pcg_array(kd, b, x0, omega, tol, maxiter)
            info["norm"] = "CG recurrence residual"
            note_dropped(info, its, len(norms))
        if ctx.callback is not None:
            ctx.callback(x)
        return Outcome(x, its, norms, status == CONVERGED, _REASONS[status], info)

    def _run_petsc(self, method, op, b, x0, tol, maxiter, ctx, omega):
        # the SciPy path's check (CSRKernelData), so both backends refuse the same matrices
        # with the same message: PCSOR fails on a missing diagonal entry deep in KSPSolve and
        # divides by a stored zero one
        zero = np.flatnonzero(op.diagonal() == 0)
        if zero.size:
            i = int(zero[0])
            raise SolverError(f"{self.name} needs a nonzero diagonal; A[{i}, {i}] is zero")
        key = (method, omega)
        if key not in self._drivers:
            self._drivers[key] = (_petsc_driver("richardson", omega, "forward") if method == "sor"
                                  else _petsc_driver("cg", omega, "symmetric"))
        driver = self._drivers[key]
        if method == "sor" and ctx.callback is None:
            # KSPRichardson hands the whole solve to PCApplyRichardson_SOR, which runs
            # maxiter sweeps without any convergence test unless a monitor is attached.
            ksp, _ = driver._setup(op)
            ksp.monitorCancel()
            ksp.setMonitor(_noop_monitor)
        out = driver.solve(op, b, x0, tol, maxiter, ctx)
        out.info.update({"omega": omega, "method": method})
        return out


def _noop_monitor(ksp, its, rnorm):
    return None


@register("sor")
class SOR(_SORFamily):
    """Successive over-relaxation as a stationary solver (SPD matrices; any matrix with a
    nonzero diagonal for which SOR converges works, e.g. strictly diagonally dominant)."""

    options = {"omega": 1.0, "paper_stop": False}

    def _validate_options(self):
        self.opts["omega"] = check_omega(self.opts["omega"])
        if not isinstance(self.opts["paper_stop"], (bool, np.bool_)):
            raise OptionError(f"paper_stop must be True or False, got {self.opts['paper_stop']!r}")
        super()._validate_options()

    def _solve(self, op, b, x0, tol, maxiter, ctx):
        return self._run("sor", op, b, x0, tol, maxiter, ctx, self.opts["omega"], self.opts["paper_stop"])


@register("ssor-pcg")
class SSORPCG(_SORFamily):
    """Conjugate gradients preconditioned by symmetric SOR with relaxation ``omega``."""

    options = {"omega": 1.0, "impl": "numba"}

    def _validate_options(self):
        self.opts["omega"] = check_omega(self.opts["omega"], "SSOR")
        if self.opts["impl"] not in ("numba", "scipy"):
            raise OptionError(f"impl must be 'numba' or 'scipy', got {self.opts['impl']!r}")
        super()._validate_options()

    def _solve(self, op, b, x0, tol, maxiter, ctx):
        return self._run("ssor-pcg", op, b, x0, tol, maxiter, ctx, self.opts["omega"],
                         impl=self.opts["impl"])


@register("bandit-sor")
class BanditSOR(_SORFamily):
    """SOR or SSOR-PCG whose w is chosen online by a bandit policy.

    ``make_solver("bandit-sor", policy="chebcb", policy_options={"context_range": (0, 1)},
    method="ssor-pcg")``; then ``solve(A_t, b_t, context=c_t)`` for each system of the
    sequence. ``policy`` is a name of ``linsolve.relaxation.bandits.POLICIES`` (options in
    ``policy_options``) or a ``linsolve.relaxation.bandits.Policy`` object. The policy learns across
    calls; ``reset()`` forgets. ``result.info`` records ``omega`` and ``arm``.
    """

    stateful = True
    options = {"policy": "tsallis-inf", "policy_options": None, "method": "sor", "paper_stop": False}

    def _validate_options(self):
        if self.opts["method"] not in ("sor", "ssor-pcg"):
            raise OptionError(f"method must be 'sor' or 'ssor-pcg', got {self.opts['method']!r}")
        if self.opts["paper_stop"] and self.opts["method"] != "sor":
            # SSOR-PCG stops on the package's rule: accepting the option would ignore it silently
            raise OptionError("paper_stop (the rule ||r_k|| <= rtol ||r_0|| of Khodak et al.'s SOR) applies "
                              "to method='sor' only")
        po = self.opts["policy_options"] or {}
        if not isinstance(po, dict):
            raise OptionError("policy_options must be a dict of policy keyword options")
        pol = self.opts["policy"]
        if isinstance(pol, Policy):
            if po:
                raise OptionError("policy_options cannot be combined with a policy object")
            pol.reset()
            self.policy = pol
        else:
            self.policy = make_policy(pol, **po)
        super()._validate_options()

    def _reset(self):
        self.policy.reset()
        self._cache = _KernelCache()
        self._drivers = {}

    def _solve(self, op, b, x0, tol, maxiter, ctx):
        if ctx.restart:
            # the base class continuing this solve() from x after the recurrence drifted:
            # same w, and no second bandit round (select/update) for one system
            out = self._run(self.opts["method"], op, b, x0, tol, maxiter, ctx, self._omega,
                            self.opts["paper_stop"])
            out.info.update({"arm": self.policy.arm, "policy": self.policy.name})
            return out
        context = ctx.extra.get("context")
        omega = self._omega = self.policy.select(context)
        try:
            out = self._run(self.opts["method"], op, b, x0, tol, maxiter, ctx, omega, self.opts["paper_stop"])
        except BaseException:
            # a system that raised (zero diagonal, Ctrl-C) was never solved: no round to
            # learn from, and the policy must accept the next select()
            self.policy.cancel()
            raise
        self.policy.update(out.iterations if out.converged else maxiter)
        out.info.update({"arm": self.policy.arm, "policy": self.policy.name})
        return out
