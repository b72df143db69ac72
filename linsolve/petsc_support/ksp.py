"""Native PETSc KSP solvers: the ``petsc`` solver (any ``ksp_type``, every PETSc option
through a private options prefix) and the shared driver used by ``backend="petsc"`` of
the Krylov baselines.

Stopping rule: PETSc's default test is ||r|| <= max(rtol ||r0||, atol) with r0 = b by
default; we pass rtol=0 and atol=max(rtol ||b||, atol) so the package's rule holds exactly,
and ask for the unpreconditioned norm (right preconditioning for GMRES/BiCGStab). Where a
KSP type cannot monitor the unpreconditioned norm, PETSc's own norm is used and
``info["norm"]`` says so; the base class then checks the true residual.

A Mat distributed over several MPI processes is solved by a KSP on the Mat's communicator
with Vecs of its row distribution (each process hands over and gets back its own rows).
"""
from __future__ import annotations

import re

import numpy as np

from linsolve.core.base import Outcome, Solver
from linsolve.core.errors import OptionError, SolverError
from linsolve.core.precond import build_preconditioner, petsc_pc_type
from linsolve.core.registry import register
from linsolve.core.result import history_length, note_dropped
from linsolve.petsc_support.utils import petsc, unique_prefix, vec_on

RIGHT_PC = {"gmres", "fgmres", "bcgs", "bcgsl", "lgmres", "dgmres", "pipefgmres", "gcr", "tfqmr"}


def petsc_error_cause(exc) -> str:
    """PETSc's own cause lines of a petsc4py error ("Matrix is missing diagonal entries"),
    without the call stack; the error code when there are none."""
    lines = [re.sub(r"^\[\d+\]", "", ln.strip()).strip() for ln in str(exc).splitlines()
             if re.match(r"^\[\d+\]", ln.strip())]
    cause = [ln for ln in lines if ln and "() at " not in ln]
    return "; ".join(cause) if cause else f"PETSc error code {getattr(exc, 'ierr', '?')}"


def _reason_name(PETSc, code: int) -> str:
    for k, v in vars(PETSc.KSP.ConvergedReason).items():
        if not k.startswith("_") and v == code:
            return k
    return str(code)


class PetscDriver:
    """A KSP kept across solves: the operator is swapped when the matrix changes so the
    preconditioner is rebuilt only then (PETSc's usual reuse semantics)."""

    def __init__(self, solver: Solver, ksp_type: str, extra_options: dict | None = None):
        self.solver = solver
        self.ksp_type = ksp_type
        self.extra = dict(extra_options or {})
        self.ksp = None
        self._mat_source = None
        self.prefix = unique_prefix()

    def forget_matrix(self) -> None:
        """The same matrix object has new entries: hand its current values to the KSP (and
        so rebuild the PC) at the next solve."""
        self._mat_source = None

    def _setup(self, op):
        PETSc = petsc()
        mat = op.petsc_mat()
        s = self.solver
        layout = (mat.getSize(), mat.getLocalSize(), mat.getComm().getSize())
        if self.ksp is not None and self._size != layout:
            # PETSc refuses new operators of another size or distribution on a set-up KSP
            # (error 60); a solver object solves systems of any size, so start a fresh KSP
            self.ksp.destroy()
            self.ksp, self._mat_source = None, None
        if self.ksp is None:
            ksp = PETSc.KSP().create(comm=mat.getComm())
            ksp.setOptionsPrefix(self.prefix)
            try:
                ksp.setType(self.ksp_type)
                pc = ksp.getPC()
                if isinstance(s.pc, str):
                    # PCSOR's default sweep is the local symmetric one, which is what 'ssor' means.
                    pc.setType(petsc_pc_type(s.pc))
                else:
                    # the type first: a context set on a shell PC is dropped when the type
                    # changes, and PCApply_Python would then run without one (SIGSEGV, MPI_Abort 59)
                    pc.setType("python")
                    pc.setPythonContext(_PyPC(build_preconditioner(s.pc, op)))
                if self.ksp_type in RIGHT_PC:
                    ksp.setPCSide(PETSc.PC.Side.RIGHT)
                opts = PETSc.Options(self.prefix)
                for k, v in {**{f"pc_{k}" if not k.startswith(("pc_", "sub_")) else k: v
                                for k, v in s.pc_options.items()}, **self.extra}.items():
                    opts[k] = "" if v is True else str(v)
                self._opt_keys = list(opts.getAll().keys()) if hasattr(opts, "getAll") else []
                ksp.setFromOptions()
            except PETSc.Error as exc:
                ksp.destroy()
                raise OptionError(
                    f"PETSc rejected the set-up of solver {s.name!r} (ksp_type={self.ksp_type!r}, "
                    f"pc={s.pc if isinstance(s.pc, str) else type(s.pc).__name__!r}, "
                    f"options {self.extra or {}}): "
                    + ("unknown KSP or PC type" if exc.ierr == 86 else f"PETSc error code {exc.ierr}")
                ) from None
            self.norm = "unpreconditioned"
            try:
                ksp.setNormType(PETSc.KSP.NormType.UNPRECONDITIONED)
                ksp.setOperators(mat)
                ksp.setUp()
            except PETSc.Error:
                ksp.setNormType(PETSc.KSP.NormType.DEFAULT)
                self.norm = "petsc-default (preconditioned)"
            self.ksp = ksp
            self._size = layout
        if self._mat_source is not op.source:
            self.ksp.setOperators(mat)
            self._mat_source = op.source
        return self.ksp, mat

    def solve(self, op, b, x0, tol, maxiter, ctx) -> Outcome:
        PETSc = petsc()
        ksp, mat = self._setup(op)
        ksp.setTolerances(rtol=0.0, atol=tol, divtol=1e50, max_it=int(maxiter))
        bv = vec_on(mat, b)
        xv = vec_on(mat, np.array(x0, dtype=np.float64))
        ksp.setInitialGuessNonzero(op.layout.any(np.any(x0)))
        # PETSc stops recording once the buffer is full, so a bounded one is safe
        length = history_length(maxiter) + 2
        ksp.setConvergenceHistory(length=length, reset=True)
        if ctx.callback is not None:
            cb = ctx.callback
            ksp.setMonitor(lambda k, its, rnorm: its > 0 and cb(k.buildSolution().getArray().copy()))
        try:
            ksp.solve(bv, xv)
        except PETSc.Error as exc:
            # the PC is set up inside KSPSolve: a factorisation or SOR that cannot handle this
            # matrix raises a bare petsc4py "error code 73", so the error names solver and PC
            s = self.solver
            pc = s.pc if isinstance(s.pc, str) else type(s.pc).__name__
            # a KSP whose solve failed can refuse the next matrix too: the next solve starts afresh
            ksp.destroy()
            self.ksp, self._mat_source = None, None
            if exc.__cause__ is not None and not isinstance(exc.__cause__, PETSc.Error):
                # raised by Python code PETSc called (a shell matrix's matvec, a python PC):
                # that error, not PETSc's "error code 101" that wraps it
                raise exc.__cause__ from None
            who = getattr(s, "name", self.ksp_type)  # sor's drivers hold a shim, not a Solver
            hint = ("; on a matrix distributed over several MPI processes PETSc's ilu/icc/lu need pc='bjacobi' "
                    "or 'asm' around them (pc_options={'sub_pc_type': 'ilu'})"
                    if op.distributed and pc in ("ilu", "icc", "lu", "cholesky") else "")
            raise SolverError(f"PETSc failed to solve with solver {who!r} (ksp_type={self.ksp_type!r}, "
                              f"pc={pc!r}) on this matrix: {petsc_error_cause(exc)}{hint}") from None
        if ctx.callback is not None:
            ksp.monitorCancel()
        code = int(ksp.getConvergedReason())
        its = int(ksp.getIterationNumber())
        hist = np.asarray(ksp.getConvergenceHistory(), dtype=np.float64)
        name = _reason_name(PETSc, code)
        if code > 0:
            converged, reason = True, f"converged ({name})"
        elif name in ("DIVERGED_ITS", "DIVERGED_MAX_IT", "ITERATING") or code == 0:
            converged, reason = False, f"maxiter reached ({name})"
        else:
            converged, reason = False, f"breakdown ({name})"
        # entry 0 is the residual before the first iteration; a full buffer was cut short
        norms = hist[1:] if hist.size > its or hist.size == length else hist
        info = {"norm": self.norm, "ksp_type": ksp.getType(), "pc_type": ksp.getPC().getType(),
                "petsc_reason": name}
        if hist.size == length:
            note_dropped(info, its, norms.size)
        return Outcome(xv.getArray().copy(), its, norms, converged, reason, info)


class _PyPC:
    """PCPYTHON context applying one of our NumPy preconditioners."""

    def __init__(self, M):
        self.M = M

    def apply(self, pc, x, y):
        y.setArray(self.M.apply(x.getArray(readonly=True)))


@register("petsc")
class PetscKSP(Solver):
    """Any PETSc KSP: ``make_solver("petsc", ksp_type="bcgs", pc="asm",
    petsc_options={"sub_pc_type": "ilu", "ksp_gmres_restart": 60})``. Every key of
    ``petsc_options`` goes to PETSc's options database under a private prefix (no leading
    dash), so every PETSc option works without touching global state."""

    backends = ("petsc",)
    preconditioners = ("none", "jacobi", "ilu", "bjacobi", "asm")
    options = {"ksp_type": "gmres", "petsc_options": None}
    needs_assembled = False

    def _validate_options(self):
        if not isinstance(self.opts["ksp_type"], str):
            raise OptionError(f"ksp_type must be a string, got {self.opts['ksp_type']!r}")
        po = self.opts["petsc_options"] or {}
        if not isinstance(po, dict):
            raise OptionError("petsc_options must be a dict of PETSc option names to values")
        # each solve sets these through KSPSetTolerances, so PETSc's options would be
        # silently overridden (and recorded as if they had applied)
        owned = {"ksp_rtol": "rtol", "ksp_atol": "atol", "ksp_max_it": "maxiter", "ksp_divtol": None}
        for k in po:
            key = k.lstrip("-")
            if key in owned:
                fix = (f"give the solver's {owned[key]}=... instead" if owned[key] else
                       "the solver turns PETSc's divergence test off; remove it")
                raise OptionError(f"PETSc option {key} would be overridden on every solve; {fix}")
        self._driver = PetscDriver(self, self.opts["ksp_type"], {k.lstrip("-"): v for k, v in po.items()})

    def _solve(self, op, b, x0, tol, maxiter, ctx):
        return self._driver.solve(op, b, x0, tol, maxiter, ctx)

    def runs_distributed(self):
        return isinstance(self.pc, str)

    def _distributed_what(self):
        return "with a preconditioner object applied in Python"

    def _caches_matrix(self):
        return True

    def _matrix_changed(self):
        self._driver.forget_matrix()

    def _reset(self):
        self._validate_options()
