"""Sparse direct solve: SciPy SuperLU (``splu``) or PETSc LU. The factorisation is kept
while the same matrix object is solved again, so many right-hand sides cost one factorisation.

A PETSc matrix distributed over several MPI processes needs a parallel LU, which PETSc
takes from an external package (MUMPS, SuperLU_dist, STRUMPACK, PaStiX); the first one this
PETSc was built with is used, and without any the solve raises ``UnsupportedInputError``."""
from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spla

from linsolve.core.base import Outcome, Solver
from linsolve.core.errors import UnsupportedInputError
from linsolve.core.registry import register
from linsolve.petsc_support.ksp import PetscDriver

#: PETSc's parallel LU packages, in order of preference
PARALLEL_LU = ("mumps", "superlu_dist", "strumpack", "pastix")


def parallel_lu_package() -> str | None:
    """The first of ``PARALLEL_LU`` this PETSc was built with, or None."""
    from linsolve.petsc_support.utils import petsc

    PETSc = petsc()
    return next((p for p in PARALLEL_LU if PETSc.Sys.hasExternalPackage(p)), None)


@register("direct")
class Direct(Solver):
    """LU factorisation (SuperLU with SciPy, PETSc's LU with ``backend="petsc"``)."""

    backends = ("scipy", "petsc")
    needs_assembled = True
    direct = True
    preconditioners = ("none",)
    complex_support = "native"  # SuperLU factors complex matrices

    def _validate_options(self):
        self._factor = None
        self._driver = None
        self._mpi_driver = None
        if self.backend == "petsc":
            self.pc = "lu"
            self._driver = PetscDriver(self, "preonly")

    def _reset(self):
        self._validate_options()

    def _caches_matrix(self):
        return True

    def _matrix_changed(self):
        self._factor = None
        for d in (self._driver, self._mpi_driver):
            if d is not None:
                d.forget_matrix()

    def runs_distributed(self):
        return self.backend == "petsc"

    def _distributed_driver(self, op):
        if self._mpi_driver is None:
            pkg = parallel_lu_package()
            if pkg is None:
                raise UnsupportedInputError(
                    f"direct with backend='petsc' on a matrix distributed over {op.layout.size} MPI processes "
                    f"needs a parallel LU, and this PETSc has none of {', '.join(PARALLEL_LU)} (build PETSc with "
                    "e.g. --download-mumps --download-scalapack); an iterative solver runs distributed "
                    "(e.g. gmres or gcrodr with backend='petsc', pc='bjacobi'), and "
                    "make_solver('petsc', ksp_type='preonly', pc='redundant') factors the whole matrix on every process")
            self._mpi_driver = PetscDriver(self, "preonly", {"pc_factor_mat_solver_type": pkg})
        return self._mpi_driver

    def _solve(self, op, b, x0, tol, maxiter, ctx):
        if self._driver is not None:
            driver = self._distributed_driver(op) if op.distributed else self._driver
            out = driver.solve(op, b, np.zeros_like(b), tol, 1, ctx)
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
        lu = self._factor[1]
        if b.dtype.kind == "c" and lu.U.dtype.kind != "c":  # a real factor and a complex b: two real solves
            x = lu.solve(np.ascontiguousarray(b.real)) + 1j * lu.solve(np.ascontiguousarray(b.imag))
        else:
            x = lu.solve(b)
        return Outcome(x, 1, [float(np.linalg.norm(b - op.matvec(x)))], True, "direct solve", {})
