"""Operator and preconditioner application shared by the recycling solvers (GCRO-DR,
recycled CG): single vectors and blocks of row vectors, with SciPy CSR or PETSc
products, and PETSc preconditioners (``bjacobi``, ``asm``, ``ilu``, ...) applied to NumPy
arrays through petsc4py so a recycling solver can use exactly the PC of a native KSP.

Blocks are stored row-major, shape (k, n): each vector is contiguous, and products with
the block are single GEMM/GEMV calls.
"""
from __future__ import annotations

import numpy as np
from scipy.sparse._sparsetools import csr_matvec

from .precond import Identity, Jacobi, Preconditioner, petsc_pc_type


class MatOps:
    """y = A x for vectors and (k, n) row blocks, reusing PETSc Vecs for PETSc matrices."""

    def __init__(self, op):
        self.op = op
        self.n = op.n
        self._csr = op.csr() if (op._csr is not None or op._dense is not None) else None
        if self._csr is not None:
            A = self._csr
            if not A.has_canonical_format:
                A = A.copy()  # never reorder the caller's arrays
                A.sum_duplicates()
            self._indptr, self._indices, self._data = A.indptr, A.indices, A.data
        self._mat = None
        if self._csr is None and op.kind == "petsc":
            from .petsc_utils import vec_from_array

            self._mat = op.petsc_mat()
            self._xb = np.zeros(self.n)
            self._yb = np.zeros(self.n)
            self._xv = vec_from_array(self._xb)
            self._yv = vec_from_array(self._yb)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        if self._csr is not None:
            # SciPy's own kernel without the operator-dispatch layer (tens of microseconds
            # per call, as much as the product itself at n ~ 10^4)
            y = np.zeros(self.n)
            csr_matvec(self.n, self.n, self._indptr, self._indices, self._data, x, y)
            return y
        if self._mat is not None:
            self._xb[:] = x
            self._mat.mult(self._xv, self._yv)
            return self._yb.copy()
        return self.op.matvec(x)

    def into(self, x: np.ndarray, out: np.ndarray) -> np.ndarray:
        """out = A x without allocating (out must be a contiguous float64 vector)."""
        if self._csr is not None:
            out.fill(0.0)  # the kernel accumulates
            csr_matvec(self.n, self.n, self._indptr, self._indices, self._data, x, out)
        else:
            out[:] = self(x)
        return out

    def block(self, X: np.ndarray) -> np.ndarray:
        """A applied to every row of X (k, n); returns (k, n)."""
        if X.shape[0] == 0:
            return np.empty_like(X)
        if self._csr is not None:
            return np.ascontiguousarray((self._csr @ X.T).T)
        return np.stack([self(x) for x in X])


class PetscPC:
    """A PETSc PC built on the system's matrix, applied to NumPy arrays (PCApply on Vecs
    that wrap persistent buffers). ``pc_options`` go to a private options prefix, so e.g.
    ``{"sub_pc_type": "ilu", "pc_asm_overlap": 1}`` configure it like a native KSP's PC."""

    symmetric = False

    def __init__(self, op, pc: str, pc_options: dict | None = None):
        from .petsc_utils import petsc, unique_prefix, vec_from_array

        PETSc = petsc(f"preconditioner {pc!r} through PETSc")
        self.name = pc
        self.n = op.n
        self.pc = PETSc.PC().create(comm=PETSc.COMM_SELF)
        prefix = unique_prefix("linsolve_pc")
        self.pc.setOptionsPrefix(prefix)
        self.pc.setType(petsc_pc_type(pc))
        if pc == "ssor":
            self.pc.setSORType(PETSc.PC.SORType.SYMMETRIC_SWEEP)
        opts = PETSc.Options(prefix)
        for k, v in (pc_options or {}).items():
            key = k.lstrip("-")
            key = key if key.startswith(("pc_", "sub_")) else f"pc_{key}"
            opts[key] = "" if v is True else str(v)
        mat = op.petsc_mat()
        self.pc.setOperators(mat, mat)
        self.pc.setFromOptions()
        self.pc.setUp()
        self._xb = np.zeros(self.n)
        self._yb = np.zeros(self.n)
        self._xv = vec_from_array(self._xb)
        self._yv = vec_from_array(self._yb)

    def apply(self, r: np.ndarray) -> np.ndarray:
        self._xb[:] = r
        self.pc.apply(self._xv, self._yv)
        return self._yb.copy()

    def destroy(self):
        self.pc.destroy()


def is_identity(M) -> bool:
    return isinstance(M, Identity)


def apply_block(M, X: np.ndarray) -> np.ndarray:
    """M^-1 applied to every row of X (k, n)."""
    if isinstance(M, Identity):
        return X.copy()
    if isinstance(M, Jacobi):
        return X * M.inv_diag
    if X.shape[0] == 0:
        return np.empty_like(X)
    return np.stack([M.apply(x) for x in X])


def build_pc(solver, op):
    """The solver's preconditioner for ``op``: the package's NumPy ones for the SciPy
    backend, a PETSc PC for ``backend="petsc"`` (any PETSc PC type name). Cached per
    matrix object like ``Solver.preconditioner``."""
    if isinstance(solver.pc, Preconditioner):
        return solver.pc  # already built (e.g. the PC of an enclosing PETSc KSP)
    if solver.backend != "petsc" or not isinstance(solver.pc, str) or solver.pc == "none":
        return solver.preconditioner(op)
    cache = getattr(solver, "_petsc_pc_cache", None)
    if cache is not None and cache[0] is op.source and cache[1] == solver.pc:
        return cache[2]
    if solver.pc == "jacobi":
        M = Jacobi(op)  # identical to PCJACOBI and vectorises over blocks
    else:
        M = PetscPC(op, solver.pc, solver.pc_options)
    solver._petsc_pc_cache = (op.source, solver.pc, M)
    return M
