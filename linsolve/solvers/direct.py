"""Sparse direct solve: SciPy SuperLU (``splu``) or PETSc LU. The factorisation is kept
while the same matrix object is solved again, so many right-hand sides cost one factorisation."""
from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spla

from ..base import Outcome, Solver
from ..registry import register
from .petsc_ksp import PetscDriver


@register("direct")
class Direct(Solver):
    """LU factorisation (SuperLU with SciPy, PETSc's LU with ``backend="petsc"``)."""

    backends = ("scipy", "petsc")
    needs_assembled = True
    direct = True
    preconditioners = ("none",)

    def _validate_options(self):
        self._factor = None
        self._driver = None
        if self.backend == "petsc":
            self.pc = "lu"
            self._driver = PetscDriver(self, "preonly")

    def _reset(self):
        self._validate_options()

    def _caches_matrix(self):
        return True

    def _matrix_changed(self):
        self._factor = None
        if self._driver is not None:
            self._driver.forget_matrix()

    def _solve(self, op, b, x0, tol, maxiter, ctx):
        if self._driver is not None:
            out = self._driver.solve(op, b, np.zeros_like(b), tol, 1, ctx)
            out.iterations = 1
            out.converged = True
            out.reason = "direct solve"
            return out
        if self._factor is None or self._factor[0] is not op.source:
            try:
                lu = spla.splu(sp.csc_matrix(op.csr("direct")))
            except RuntimeError as exc:  # SuperLU: "Factor is exactly singular"
                return Outcome(np.zeros_like(b), 1, [np.linalg.norm(b)], False, f"breakdown ({exc})", {})
            self._factor = (op.source, lu)
        x = self._factor[1].solve(b)
        return Outcome(x, 1, [float(np.linalg.norm(b - op.matvec(x)))], True, "direct solve", {})
