"""Normalisation of every accepted input kind into one internal ``Operator``.

Accepted: NumPy arrays, every SciPy sparse format (matrix and array API), SciPy
``LinearOperator`` and petsc4py ``Mat``. Solvers implemented in Python only need
``matvec``; solvers that need entries ask for ``csr()``; PETSc-backed ones ask for
``petsc_mat()``. Conversions are cached on the operator so one solve converts once.

A petsc4py Mat on a communicator of several processes is distributed: ``layout``
(``linsolve.petsc_support.parallel.Layout``) holds this process's rows and the global sums, vectors
(``matvec``, ``diagonal``, ``VectorKind``) are the locally owned rows, and ``csr()`` refuses
(no process holds the whole matrix).
"""
from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spla

from linsolve.core.errors import NonFiniteError, ShapeError, SolverError, UnsupportedInputError
from linsolve.petsc_support import utils as petsc_utils
from linsolve.petsc_support.parallel import Layout, mat_layout, serial


class Operator:
    """Any accepted matrix kind behind one interface: what every solver works on.

    ``Solver.solve`` wraps its ``A`` in one; solvers implemented in Python only need
    :meth:`matvec`, those that need entries ask for :meth:`csr`, PETSc-backed ones for
    :meth:`petsc_mat`. Conversions are cached, so one solve converts once.

    Parameters
    ----------
    A : ndarray, scipy.sparse matrix or array, scipy.sparse.linalg.LinearOperator or petsc4py.PETSc.Mat
        The n x n matrix or operator (an ``Operator`` is shared, not copied).
    check_finite : bool, optional
        Check the stored entries for NaN and Inf.

    Raises
    ------
    ShapeError
        A is not square and 2-D, or empty.
    NonFiniteError
        NaN or Inf among the entries (``check_finite``).
    SolverError
        A is not a matrix or operator; complex entries of an unsupported dtype.

    Examples
    --------
    >>> import numpy as np, linsolve
    >>> op = linsolve.Operator(np.array([[2.0, 1.0], [1.0, 3.0]]))
    >>> op.n, op.kind, op.assembled, op.matvec(np.ones(2)).tolist()
    (2, 'dense', True, [3.0, 4.0])
    >>> op.csr().nnz
    4
    """

    def __init__(self, A, *, check_finite: bool = True):
        self.source = A
        self._csr = None
        self._petsc = None
        self._dense = None
        self._linop = None
        self.layout: Layout | None = None
        #: float64, or complex128 for a complex matrix or operator
        self.dtype = np.dtype(np.float64)
        if isinstance(A, Operator):
            self.__dict__.update(A.__dict__)
            return
        if petsc_utils.is_petsc_mat(A):
            self.kind = "petsc"
            self._petsc = A
            m, n = A.getSize()
            self.shape = (int(m), int(n))
            if A.getType() in ("python", "shell"):
                self.kind = "petsc-shell"
            self.layout = mat_layout(A)
        elif sp.issparse(A):
            self.kind = "sparse"
            self.shape = tuple(int(s) for s in A.shape)
            self.dtype = _work_dtype(A.dtype, "A")
            self._csr = sp.csr_matrix(A, dtype=self.dtype)
        elif isinstance(A, spla.LinearOperator):
            self.kind = "linop"
            self.shape = tuple(int(s) for s in A.shape)
            if A.dtype is not None:
                self.dtype = _work_dtype(A.dtype, "A")
            self._linop = A
        else:
            try:
                arr = np.asarray(A)
            except Exception as exc:  # noqa: BLE001 - anything unconvertible is bad input
                raise SolverError(f"A of type {type(A).__name__} is not a matrix or operator") from exc
            self.dtype = _work_dtype(arr.dtype, "A")
            if arr.ndim != 2:
                raise ShapeError(f"A must be 2-D, got an array with {arr.ndim} dimension(s)")
            self.kind = "dense"
            self.shape = arr.shape
            self._dense = np.asarray(arr, dtype=self.dtype)
        if len(self.shape) != 2 or self.shape[0] != self.shape[1]:
            raise ShapeError(f"A must be square, got shape {self.shape}")
        if self.shape[0] == 0:
            raise ShapeError("A is empty (0 x 0)")
        if self.layout is None:
            self.layout = serial(self.shape[0])
        if check_finite:
            self._check_finite()

    @property
    def n(self) -> int:
        """Global number of rows."""
        return self.shape[0]

    @property
    def distributed(self) -> bool:
        """Whether the rows are split over several MPI processes."""
        return self.layout.distributed

    def _check_finite(self):
        data = None
        if self._csr is not None:
            data = self._csr.data
        elif self._dense is not None:
            data = self._dense
        elif self.kind == "petsc":
            try:
                data = self._petsc.getValuesCSR()[2]
            except Exception:  # noqa: BLE001 - dense or exotic PETSc types: skip the check
                data = None
        # a distributed Mat: each process checks its rows, and all raise together
        if not self.layout.allfinite(data if data is not None else np.zeros(0)):
            raise NonFiniteError("A contains NaN or Inf entries")

    # --- views -------------------------------------------------------------------
    @property
    def assembled(self) -> bool:
        """Whether the entries are available (NumPy, SciPy sparse, PETSc AIJ), not matrix-free."""
        return self.kind in ("sparse", "dense", "petsc")

    def csr(self, who: str = "this solver") -> sp.csr_matrix:
        """The matrix as SciPy CSR (converted once and cached).

        Parameters
        ----------
        who : str, optional
            What needs it, for the error message.

        Returns
        -------
        scipy.sparse.csr_matrix
            The whole matrix.

        Raises
        ------
        UnsupportedInputError
            A matrix-free operator, or a PETSc matrix distributed over several processes.
        """
        if self._csr is None and self.distributed:
            from linsolve.petsc_support.parallel import DISTRIBUTED_SOLVERS

            raise UnsupportedInputError(
                f"{who} needs the whole matrix in one process; this PETSc matrix is distributed over "
                f"{self.layout.size} MPI processes (these solvers run distributed: {DISTRIBUTED_SOLVERS})")
        if self._csr is None:
            if self._dense is not None:
                self._csr = sp.csr_matrix(self._dense)
            elif self.kind == "petsc":
                self._csr = petsc_utils.aij_to_csr(self._petsc)
            else:
                raise UnsupportedInputError(
                    f"{who} needs an assembled matrix (NumPy, SciPy sparse or PETSc AIJ); "
                    f"got a matrix-free {self.kind} operator"
                )
        return self._csr

    def petsc_mat(self):
        """The matrix as a petsc4py ``Mat`` (AIJ for assembled input, a shell otherwise).

        Returns
        -------
        petsc4py.PETSc.Mat
            Converted once and cached.
        """
        if self._petsc is None:
            if self.assembled:
                self._petsc = petsc_utils.csr_to_aij(self.csr())
            else:
                self._petsc = petsc_utils.shell_mat(self.matvec, self.n)
        return self._petsc

    def linear_operator(self) -> spla.LinearOperator:
        """The operator as a SciPy ``LinearOperator``.

        Returns
        -------
        scipy.sparse.linalg.LinearOperator
            Applies :meth:`matvec`.
        """
        if self._linop is None:
            if self._csr is not None:
                self._linop = spla.aslinearoperator(self._csr)
            elif self._dense is not None:
                self._linop = spla.aslinearoperator(self._dense)
            else:
                self._linop = spla.LinearOperator(self.shape, matvec=self.matvec, dtype=self.dtype)
        return self._linop

    def scipy_operand(self):
        """What to hand SciPy's iterative solvers: the matrix itself when we have one; a
        user's LinearOperator goes through ``matvec``, which checks its output.

        Returns
        -------
        scipy.sparse matrix, ndarray or scipy.sparse.linalg.LinearOperator
            The operand.
        """
        if self._csr is not None:
            return self._csr
        if self._dense is not None:
            return self._dense
        if self.kind == "linop":
            return spla.LinearOperator(self.shape, matvec=self._linop_matvec, dtype=self.dtype)
        return self.linear_operator()

    def diagonal(self) -> np.ndarray:
        """The diagonal of the matrix (this process's rows for a distributed Mat).

        Returns
        -------
        ndarray
            A copy.

        Raises
        ------
        UnsupportedInputError
            For a matrix-free operator.
        """
        if self._csr is not None:
            return self._csr.diagonal()
        if self._dense is not None:
            return np.diag(self._dense).copy()
        if self.kind == "petsc":
            return self._petsc.getDiagonal().getArray().copy()
        raise UnsupportedInputError("the diagonal of a matrix-free operator is not available")

    def matvec(self, x: np.ndarray) -> np.ndarray:
        """The product A x.

        Parameters
        ----------
        x : ndarray
            A vector of n entries (this process's rows for a distributed Mat).

        Returns
        -------
        ndarray
            A x.
        """
        if self._csr is not None:
            return self._csr @ x
        if self._dense is not None:
            return self._dense @ x
        if self.kind.startswith("petsc"):
            # PETSc Mat given to a Python-implemented solver: go through MatMult (x holds
            # this process's rows of a distributed Mat)
            xv = petsc_utils.vec_on(self._petsc, x)
            yv = self._petsc.createVecLeft()
            self._petsc.mult(xv, yv)
            return yv.getArray(readonly=True).copy()
        return self._linop_matvec(x)

    def _linop_matvec(self, x: np.ndarray) -> np.ndarray:
        # A user operator's output is checked here: a wrong length would surface as NumPy's
        # "cannot reshape" from inside SciPy; complex values from an operator declared real
        # are kept (the system is then complex, as SciPy treats it), never cast to real
        try:
            y = np.asarray(self._linop.matvec(x))
        except ValueError as exc:
            if isinstance(exc, SolverError):
                raise
            raise ShapeError(f"A's matvec failed on a vector of length {self.n}: {exc}") from exc
        if y.dtype.kind not in "fiubc":
            raise SolverError(f"A's matvec returned {y.dtype} values; expected numbers")
        if y.size != self.n:
            raise ShapeError(f"A's matvec returned {y.size} values for a vector of length {self.n}")
        if y.dtype.kind == "c" and np.asarray(x).dtype.kind != "c":
            raise SolverError(f"A's matvec returned {y.dtype} values for a real vector while A declares dtype "
                              f"{self._linop.dtype}: give the LinearOperator dtype=complex")
        return np.asarray(y, dtype=np.complex128 if y.dtype.kind == "c" else np.float64).reshape(-1)

    __matmul__ = lambda self, x: self.matvec(x)  # noqa: E731

    @property
    def is_complex(self) -> bool:
        """Whether the operator is complex (dtype complex128)."""
        return self.dtype.kind == "c"


def entries_record(op: Operator):
    """A copy of the matrix's entries (or a PETSc Mat's object state) to compare later with
    :func:`same_entries`: a matrix updated in place keeps its identity, so caches keyed on the
    object compare entries too. None for a matrix-free operator (nothing to compare)."""
    if op._csr is not None:
        A = op._csr
        return ("csr", A.indptr.copy(), A.indices.copy(), A.data.copy())
    if op._dense is not None:
        return ("dense", op._dense.copy())
    if op.kind.startswith("petsc"):
        return ("petsc", op.petsc_mat().stateGet())
    return None


def same_entries(a, b) -> bool:
    """Whether two :func:`entries_record` results hold the same entries (two matrix-free
    records are the same only when both are None)."""
    if a is None or b is None:
        return a is b
    return a[0] == b[0] and len(a) == len(b) and all(
        (x == y) if not isinstance(x, np.ndarray) else (x.shape == y.shape and np.array_equal(x, y))
        for x, y in zip(a[1:], b[1:], strict=True))


def _work_dtype(dtype, name: str) -> np.dtype:
    """The precision the solvers work in for data of ``dtype``: float64 for real numbers
    (integers and single precision are promoted, as SciPy's solvers do for their work
    arrays), complex128 for complex ones; anything else is refused."""
    dtype = np.dtype(dtype)
    if dtype.kind not in "fiubc":  # (object, text, dates, ...)
        what = "matrix" if name == "A" else "vector"
        raise SolverError(f"{name} has dtype {dtype}; expected a real or complex numeric {what}")
    return np.dtype(np.complex128 if dtype.kind == "c" else np.float64)


class VectorKind:
    """Remembers how ``b`` was given so ``x`` comes back in the same kind.

    With a distributed ``layout`` (the operator's), ``b`` is a PETSc Vec with the matrix's
    row distribution or a NumPy array of this process's rows; ``array`` holds those rows and
    ``restore`` returns x distributed the same way."""

    def __init__(self, b, n: int, name: str = "b", layout: Layout | None = None):
        layout = layout or serial(n)
        if layout.distributed:
            self._init_distributed(b, n, name, layout)
            return
        self.petsc = petsc_utils.is_petsc_vec(b)
        self.column = False
        if self.petsc:
            self.template = b
            arr = b.getArray(readonly=True).copy()
        else:
            try:
                arr = np.asarray(b)
            except Exception as exc:  # noqa: BLE001
                raise SolverError(f"{name} of type {type(b).__name__} is not a vector") from exc
            _work_dtype(arr.dtype, name)
            if arr.ndim == 2 and arr.shape[1] == 1:
                self.column = True
                arr = arr[:, 0]
            elif arr.ndim != 1:
                raise ShapeError(f"{name} must be a vector of length {n}, got shape {arr.shape}")
        if arr.shape[0] != n:
            raise ShapeError(f"{name} has length {arr.shape[0]} but A is {n} x {n}")
        arr = np.array(arr, dtype=_work_dtype(arr.dtype, name))
        if not np.all(np.isfinite(arr)):
            raise NonFiniteError(f"{name} contains NaN or Inf")
        self.array = arr

    def _init_distributed(self, b, n, name, layout):
        self.petsc = petsc_utils.is_petsc_vec(b)
        self.column = False
        nl = layout.nlocal
        if self.petsc:
            self.template = b
            arr = b.getArray(readonly=True).copy()
            sizes = (int(b.getLocalSize()), int(b.getSize()))
            problem = None if sizes == (nl, n) else (
                f"{name} has {sizes[0]} of {sizes[1]} entries on MPI process {layout.rank}, where A has rows "
                f"{nl} of {n}: give a Vec with A's row distribution (A.createVecLeft())")
        else:
            try:
                arr = np.asarray(b, dtype=np.float64).reshape(-1) if np.ndim(b) <= 2 else None
            except (TypeError, ValueError):
                arr = None
            problem = None if arr is not None and arr.shape[0] == nl else (
                f"{name} must be a PETSc Vec with A's row distribution or an array of this process's {nl} "
                f"rows (MPI process {layout.rank}); got {type(b).__name__} "
                f"of shape {np.shape(b) if arr is not None else '?'}")
        # every process raises, or none does: a process that raised alone left the others
        # waiting in the next global sum
        if not layout.all(problem is None):
            raise ShapeError(problem or f"{name} does not match A's row distribution on another MPI process")
        arr = np.array(arr, dtype=np.float64)
        if not layout.allfinite(arr):
            raise NonFiniteError(f"{name} contains NaN or Inf")
        self.array = arr

    def restore(self, x: np.ndarray):
        if self.petsc:
            out = self.template.duplicate()
            out.setArray(x)
            return out
        return x.reshape(-1, 1) if self.column else x


def as_vector(v, n: int, name: str, layout: Layout | None = None) -> np.ndarray:
    return VectorKind(v, n, name, layout).array
