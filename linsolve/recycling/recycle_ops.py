"""Operator and preconditioner application shared by the recycling solvers (GCRO-DR,
recycled CG): single vectors and blocks of row vectors, with SciPy CSR or PETSc
products, and PETSc preconditioners (``bjacobi``, ``asm``, ``ilu``, ...) applied to NumPy
arrays through petsc4py so a recycling solver can use exactly the PC of a native KSP.

Blocks are stored row-major, shape (k, n): each vector is contiguous, and products with
the block are single GEMM/GEMV calls. For a PETSc matrix distributed over several MPI
processes, n is this process's rows and ``MatOps.layout`` does the global sums.
"""
from __future__ import annotations

import contextlib
import ctypes
import functools

import numpy as np
from scipy.sparse._sparsetools import csr_matvec

from linsolve.core.errors import SolverError, UnsupportedInputError
from linsolve.core.precond import Identity, Jacobi, Preconditioner, petsc_pc_type


class MatOps:
    """y = A x for vectors and (k, n) row blocks, reusing PETSc Vecs for PETSc matrices."""

    def __init__(self, op):
        self.op = op
        self.layout = op.layout
        self.n = op.layout.nlocal  # the local rows (all of them unless A is distributed)
        self._csr = op.csr() if (op._csr is not None or op._dense is not None) else None
        if self._csr is not None:
            A = self._csr
            if not A.has_canonical_format:
                A = A.copy()  # never reorder the caller's arrays
                A.sum_duplicates()
            self._indptr, self._indices, self._data = A.indptr, A.indices, A.data
        self._mat = None
        if self._csr is None and op.kind == "petsc":
            from linsolve.petsc_support.utils import vec_on

            self._mat = op.petsc_mat()
            self._xb = np.zeros(self.n)
            self._yb = np.zeros(self.n)
            self._xv = vec_on(self._mat, self._xb)
            self._yv = vec_on(self._mat, self._yb)

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
        elif self._mat is not None:
            _mult_placed(self._mat, self._xv, self._yv, self._xb, x, out)
        else:
            out[:] = self(x)
        return out

    def block(self, X: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """A applied to every row of X (k, n); returns (k, n), written to ``out`` if given.
        Row by row through the single-vector kernel: the SciPy product with the block's
        transpose and the transposition back cost several times more at k ~ 20."""
        X = np.ascontiguousarray(X, dtype=np.float64)
        if out is None:
            out = np.empty(X.shape)
        if X.shape[0] == 0:
            return out
        if self._csr is not None:
            out.fill(0.0)
            for x, y in zip(X, out, strict=True):
                csr_matvec(self.n, self.n, self._indptr, self._indices, self._data, x, y)
            return out
        for x, y in zip(X, out, strict=True):
            self.into(x, y)
        return out


class PetscPC:
    """A PETSc PC built on the system's matrix, applied to NumPy arrays (PCApply on Vecs
    that wrap persistent buffers). ``pc_options`` go to a private options prefix, so e.g.
    ``{"sub_pc_type": "ilu", "pc_asm_overlap": 1}`` configure it like a native KSP's PC."""

    symmetric = False

    def __init__(self, op, pc: str, pc_options: dict | None = None):
        from linsolve.petsc_support.utils import petsc, unique_prefix, vec_on

        PETSc = petsc(f"preconditioner {pc!r} through PETSc")
        self.name = pc
        self.n = op.layout.nlocal
        mat = op.petsc_mat()
        self.pc = PETSc.PC().create(comm=mat.getComm())
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
        self.options = dict(pc_options or {})
        self.pc.setOperators(mat, mat)
        self.pc.setFromOptions()
        self._set_up(op, PETSc)
        self._xb = np.zeros(self.n)
        self._yb = np.zeros(self.n)
        self._xv = vec_on(mat, self._xb)
        self._yv = vec_on(mat, self._yb)

    def fits(self, op, pc: str, pc_options: dict | None) -> bool:
        """Whether this PC can be set up again for ``op``'s matrix: the same PC name and options,
        rows per process and communicator."""
        mat = op.petsc_mat()
        return (pc == self.name and dict(pc_options or {}) == self.options
                and mat.getSizes() == self.pc.getOperators()[1].getSizes() and mat.getComm() == self.pc.getComm())

    def set_operator(self, op) -> None:
        """Set this PC up again for ``op``'s matrix (another matrix, or new entries in the same
        one), as ``KSPSetOperators`` does for a KSP's PC: PETSc keeps what does not depend on the
        entries (ASM's subdomains and their overlap; for new entries in the same matrix a
        factorisation's symbolic phase too) instead of building the PC from nothing."""
        from linsolve.petsc_support.utils import petsc

        mat = op.petsc_mat()
        self.pc.setOperators(mat, mat)
        self._set_up(op, petsc())

    def _set_up(self, op, PETSc) -> None:
        pc = self.name
        try:
            self.pc.setUp()
        except PETSc.Error as exc:
            # PETSc's own error (a bare "error code 92" in Python) would not say which input
            # was wrong: most often a factorization PC on a matrix-free (shell) operator
            self.pc.destroy()
            if not op.assembled:
                raise UnsupportedInputError(
                    f"PETSc preconditioner {pc!r} needs an assembled matrix; got a matrix-free {op.kind} "
                    "operator (use pc='none', or a PC that only applies the operator)") from exc
            hint = ("; on a matrix distributed over several MPI processes PETSc's ilu/icc/lu need "
                    "pc='bjacobi' or 'asm' around them (sub_pc_type)" if op.distributed else "")
            raise SolverError(f"PETSc could not set up preconditioner {pc!r} on this matrix ({exc}; PETSc "
                              "printed the cause on stderr, e.g. a missing diagonal entry or a zero pivot)"
                              + hint) from exc

    def apply(self, r: np.ndarray) -> np.ndarray:
        return self.apply_into(r, np.empty(self.n))

    def apply_into(self, r: np.ndarray, out: np.ndarray) -> np.ndarray:
        """out = M^-1 r on Vecs placed on the caller's arrays (no copies in or out)."""
        return pc_apply_placed(self.pc, self._xv, self._yv, self._xb, r, out)

    def destroy(self):
        self.pc.destroy()


def is_identity(M) -> bool:
    return isinstance(M, Identity)


def pc_apply_placed(pc, xv, yv, xb, r, out):
    """PCApply with the Vecs xv, yv placed on r and out; r goes through the buffer xb of xv
    when it cannot be placed (not a contiguous writable float64 array)."""
    return _placed(pc.apply, xv, yv, xb, r, out)


def _mult_placed(mat, xv, yv, xb, x, out):
    """MatMult on Vecs placed on x and out (see ``pc_apply_placed``)."""
    return _placed(mat.mult, xv, yv, xb, x, out)


def _placed(fn, xv, yv, xb, r, out):
    direct = r.dtype == np.float64 and r.flags.c_contiguous and r.flags.writeable
    if direct:
        xv.placeArray(r)
    else:
        xb[:] = r
    yv.placeArray(out)
    try:
        fn(xv, yv)
    finally:
        yv.resetArray()
        if direct:
            xv.resetArray()
    return out


def pc_into(M, r: np.ndarray, out: np.ndarray) -> np.ndarray:
    """out = M^-1 r (out a contiguous float64 vector), without temporaries where M allows."""
    if isinstance(M, Jacobi):
        return np.multiply(M.inv_diag, r, out=out)
    into = getattr(M, "apply_into", None)
    if into is not None:
        return into(r, out)
    out[:] = M.apply(r)
    return out


def apply_block(M, X: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """M^-1 applied to every row of X (k, n), written to ``out`` if given."""
    if isinstance(M, Identity):
        if out is None:
            return X.copy()
        out[:] = X
        return out
    if isinstance(M, Jacobi):
        return np.multiply(X, M.inv_diag, out=out)
    X = np.ascontiguousarray(X, dtype=np.float64)
    if out is None:
        out = np.empty(X.shape)
    for x, y in zip(X, out, strict=True):
        pc_into(M, x, y)
    return out


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
    prev = cache[2] if cache is not None else None
    if solver.pc == "jacobi":
        M = Jacobi(op)  # identical to PCJACOBI and vectorises over blocks
    elif isinstance(prev, PetscPC) and prev.fits(op, solver.pc, solver.pc_options):
        solver._petsc_pc_cache = None  # a set-up that fails leaves no PC behind to reuse
        prev.set_operator(op)  # a sequence of matrices: one PC object, set up for each
        M = prev
    else:
        M = PetscPC(op, solver.pc, solver.pc_options)
    solver._petsc_pc_cache = (op.source, solver.pc, M)
    return M


def forget_pc_matrix(solver) -> None:
    """The matrix behind ``solver``'s PETSc PC changed in place: the next ``build_pc`` sets the
    PC up again (on the same PC object) instead of returning it as it is."""
    cache = getattr(solver, "_petsc_pc_cache", None)
    if cache is not None:
        solver._petsc_pc_cache = (None, *cache[1:])


_LOCAL_SETTERS = None


def _openblas_local_setters() -> list:
    """``openblas_set_num_threads_local`` of every OpenBLAS loaded in this process (NumPy's and
    SciPy's, whose BLAS numba's kernels call too), found through /proc/self/maps; empty where
    there is none, the BLAS is another library, or the OpenBLAS is older than 0.3.27."""
    global _LOCAL_SETTERS
    if _LOCAL_SETTERS is not None:
        return _LOCAL_SETTERS
    import scipy.linalg.blas  # noqa: F401  (loads SciPy's BLAS before the search)

    setters = []
    try:
        with open("/proc/self/maps") as f:
            libs = sorted({ln.split()[-1] for ln in f
                           if "openblas" in ln.lower() and ln.split()[-1].startswith("/")})
    except OSError:
        libs = []
    for lib in libs:
        try:
            fn = ctypes.CDLL(lib).openblas_set_num_threads_local
        except (OSError, AttributeError):
            continue
        fn.restype, fn.argtypes = ctypes.c_int, [ctypes.c_int]
        setters.append(fn)
    _LOCAL_SETTERS = setters
    return setters


@contextlib.contextmanager
def one_blas_thread():
    """BLAS on one thread, in the calling thread only, for the duration of the block.

    The recycling solvers' BLAS calls are GEMVs and GEMMs on blocks of at most m rows, issued
    many times per iteration from a serial loop: OpenBLAS's threads bring nothing there, and
    where other processes load the cores their wake-ups cost more than the work (a 128^2
    darcy solve of GCRO-DR or recycled CG took 10-40x longer with two BLAS threads on a
    loaded 2-core machine than with one). OpenBLAS's per-thread setting
    (``openblas_set_num_threads_local``) leaves other threads' BLAS as it was."""
    setters = _openblas_local_setters()
    old = [fn(1) for fn in setters]
    try:
        yield
    finally:
        for fn, n in zip(setters, old, strict=True):
            fn(n)


def single_blas_thread(method):
    """Run ``method`` under ``one_blas_thread``."""
    @functools.wraps(method)
    def run(*args, **kwargs):
        with one_blas_thread():
            return method(*args, **kwargs)
    return run
