"""Lazy petsc4py access and conversions between SciPy/NumPy and PETSc objects.

petsc4py is optional: nothing here imports it until a PETSc object or backend is used.
"""
from __future__ import annotations

import itertools
import sys

import numpy as np
import scipy.sparse as sp

from linsolve.core.errors import PetscUnavailableError

_PETSc = None
_prefix_counter = itertools.count()


def petsc(what: str = "the PETSc backend"):
    """Return the ``PETSc`` module, initialising petsc4py once; clear error if missing."""
    global _PETSc
    if _PETSc is None:
        try:
            import petsc4py

            # PETSc's own signal handler would take SIGTERM (and SIGSEGV, ...) from Python: a
            # terminated run would print 7 "PETSC ERROR" lines and die with status 15 instead of
            # unwinding (temp files removed, one line, 143) like any other Python program
            # argv[0] only as the program name: under `python -c` it is "-c", which petsc4py would take
            # for an option that PETSc then reports as unused at exit (4 lines of WARNING)
            prog = sys.argv[0] if sys.argv and sys.argv[0] and not sys.argv[0].startswith("-") else None
            petsc4py.init([prog or sys.executable or "python", "-no_signal_handler"])
            from petsc4py import PETSc
        except ImportError as exc:  # pragma: no cover - exercised only without PETSc
            raise PetscUnavailableError(what) from exc
        _PETSc = PETSc
    return _PETSc


def have_petsc() -> bool:
    try:
        petsc()
        return True
    except PetscUnavailableError:
        return False


def is_petsc_mat(obj) -> bool:
    mod = type(obj).__module__
    return mod.startswith("petsc4py") and type(obj).__name__ == "Mat"


def is_petsc_vec(obj) -> bool:
    mod = type(obj).__module__
    return mod.startswith("petsc4py") and type(obj).__name__ == "Vec"


def unique_prefix(stem: str = "linsolve") -> str:
    """A private options-database prefix so forwarded options never leak between solvers."""
    return f"{stem}{next(_prefix_counter)}_"


def csr_to_aij(A: sp.spmatrix | sp.sparray, comm=None):
    """SciPy CSR -> sequential PETSc AIJ. PETSc copies the CSR arrays into its own
    storage once (``createAIJ`` with csr= hands the arrays to MatSeqAIJSetPreallocationCSR),
    which is the only copy; indices are converted to PETSc's int type only if they differ."""
    PETSc = petsc()
    A = sp.csr_matrix(A)
    if not A.has_canonical_format:
        # PETSc inserts a duplicated (i, j) entry instead of adding it (or refuses a row with more
        # entries than columns), so duplicates are summed first, on a copy: the caller's arrays stay as given
        A = A.copy()
        A.sum_duplicates()
    itype = PETSc.IntType
    indptr = A.indptr if A.indptr.dtype == itype else A.indptr.astype(itype)
    indices = A.indices if A.indices.dtype == itype else A.indices.astype(itype)
    data = A.data if A.data.dtype == PETSc.ScalarType else A.data.astype(PETSc.ScalarType)
    M = PETSc.Mat().createAIJ(size=A.shape, csr=(indptr, indices, data), comm=comm or PETSc.COMM_SELF)
    M.assemble()
    return M


def aij_to_csr(M) -> sp.csr_matrix:
    """PETSc AIJ -> SciPy CSR. ``getValuesCSR`` returns copies of PETSc's arrays."""
    indptr, indices, data = M.getValuesCSR()
    return sp.csr_matrix((data, indices, indptr), shape=M.getSize())


def vec_from_array(x: np.ndarray, comm=None):
    """A PETSc Vec that shares memory with a contiguous float64 array (no copy)."""
    PETSc = petsc()
    x = np.ascontiguousarray(x, dtype=PETSc.ScalarType)
    return PETSc.Vec().createWithArray(x, comm=comm or PETSc.COMM_SELF)


def vec_on(mat, x: np.ndarray):
    """A PETSc Vec with the row distribution of ``mat`` that shares memory with ``x``, this
    process's rows (a contiguous float64 array, no copy); for a sequential ``mat`` the same
    as ``vec_from_array``."""
    PETSc = petsc()
    x = np.ascontiguousarray(x, dtype=PETSc.ScalarType)
    comm = mat.getComm()
    if comm.getSize() == 1:
        return PETSc.Vec().createWithArray(x, comm=PETSc.COMM_SELF)
    return PETSc.Vec().createWithArray(x, size=(x.shape[0], mat.getSize()[0]), comm=comm)


class _ShellContext:
    """Python context for a MATSHELL that applies any ``matvec`` callable."""

    def __init__(self, matvec):
        self._matvec = matvec

    def mult(self, mat, x, y):
        y.setArray(self._matvec(x.getArray(readonly=True)))


def shell_mat(matvec, n: int, comm=None):
    """A PETSc shell matrix around a Python ``matvec`` (for matrix-free operators)."""
    PETSc = petsc()
    M = PETSc.Mat().createPython(((n, n), (n, n)), context=_ShellContext(matvec), comm=comm or PETSc.COMM_SELF)
    M.setUp()
    return M
