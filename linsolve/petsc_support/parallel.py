"""Vectors split across MPI processes by a PETSc Mat's row distribution.

A solver given a petsc4py Mat whose communicator has more than one process works on the
locally owned rows only; every global quantity (a norm, a block of inner products, whether
any entry is non-finite) is a sum over processes. ``Layout.sum`` does each such sum with one
``MPI_Allreduce``, through PETSc itself (``VecMDot`` of a Vec of ones against one Vec per
value, each with one entry per process, so it needs nothing beyond petsc4py and works with
whatever MPI PETSc was built with), and counts them (``reductions``), so a method's global
reductions per iteration can be measured. The small dense problems the methods solve are
then computed redundantly on every process from the same reduced numbers (an Allreduce
gives every process the same bits): every process takes the same branches.

``serial(n)`` is the layout of everything else (NumPy, SciPy and sequential PETSc input): its
sums are the local values themselves.

Examples
--------
Run as ``mpiexec -n 4 python solve.py``; ``A`` is any AIJ Mat on ``COMM_WORLD`` (or another
communicator), assembled by the application with PETSc's row distribution::

    import linsolve
    from petsc4py import PETSc

    b = A.createVecLeft()            # this process's rows of b
    solver = linsolve.make_solver("gcrodr", backend="petsc", pc="bjacobi", rtol=1e-8)
    for step in range(nsteps):       # a sequence: the recycled space carries over
        ...                          # new values in A, new b
        res = solver.solve(A, b)     # res.x: a Vec with b's row distribution

Every process calls ``solve`` with its part; ``res.iterations``, ``res.converged`` and the
residual norms are the same on every process.
"""
from __future__ import annotations

import math

import numpy as np

from linsolve.core.errors import UnsupportedInputError

#: what runs on a matrix distributed over several processes (named in the errors of the rest)
DISTRIBUTED_SOLVERS = ("cg, gmres, bicgstab, minres, gcrodr and rcg with backend='petsc', "
                       "petsc (any ksp_type), and direct with backend='petsc' where PETSc has a parallel LU")


class Reducer:
    """Sums and maxima over the processes of a PETSc communicator, one Allreduce each.

    Value i of a block goes into the single local entry of the i-th of a set of Vecs (one
    entry per process, all sharing one NumPy buffer), and ``VecMDot`` of a Vec of ones with
    them sums every value over the processes in one reduction. The Vecs are created
    collectively and grow (doubling) with the largest block seen; every process asks for the
    same block sizes in the same order, so they grow together."""

    def __init__(self, comm):
        from linsolve.petsc_support.utils import petsc

        self.PETSc = petsc()
        self.comm = comm
        self.size = comm.getSize()
        self.rank = comm.getRank()
        self._one = self.PETSc.Vec().createWithArray(np.ones(1), size=(1, self.size), comm=comm)
        self._buf = np.zeros(0)
        self._vecs: list = []

    def _grow(self, k: int):
        cap = max(k, 2 * len(self._vecs), 8)
        for v in self._vecs:
            v.destroy()
        self._buf = np.zeros(cap)
        self._vecs = [self.PETSc.Vec().createWithArray(self._buf[i:i + 1], size=(1, self.size), comm=self.comm)
                      for i in range(cap)]

    def sum(self, values: np.ndarray) -> np.ndarray:
        """The elementwise sum over processes of the 1-D float64 array ``values``."""
        k = values.shape[0]
        if k == 0:
            return np.zeros(0)
        if k > len(self._vecs):
            self._grow(k)
        self._buf[:k] = values
        if k == 1:
            return np.array([self._one.dot(self._vecs[0])])
        return np.asarray(self._one.mDot(self._vecs[:k]), dtype=np.float64)

    def max(self, value: float) -> float:
        """The largest ``value`` over processes."""
        if not self._vecs:
            self._grow(1)
        self._buf[0] = value
        return float(self._vecs[0].max()[1])


class Layout:
    """The local rows of a distributed operator and the global sums over its processes.

    Parameters
    ----------
    nlocal : int
        Rows owned by this process.
    n : int
        Global number of rows.
    comm : petsc4py Comm or None
        The communicator of the rows; None (or one process) for a serial layout, whose
        sums are the local values.
    """

    def __init__(self, nlocal: int, n: int, comm=None):
        self.nlocal, self.n = int(nlocal), int(n)
        self.comm = comm if comm is not None and comm.getSize() > 1 else None
        self.size = 1 if self.comm is None else self.comm.getSize()
        self.rank = 0 if self.comm is None else self.comm.getRank()
        self.reductions = 0  # global sums made through this layout
        self._reducer = None

    @property
    def distributed(self) -> bool:
        return self.comm is not None

    def reducer(self) -> Reducer:
        if self._reducer is None:
            self._reducer = _reducer_for(self.comm)
        return self._reducer

    def sum(self, a):
        """The sum over processes of ``a`` (a float, or a float64 array summed in place and
        returned), one Allreduce; ``a`` itself in a serial layout."""
        if self.comm is None:
            return a
        self.reductions += 1
        if isinstance(a, np.ndarray):
            a[...] = self.reducer().sum(a.reshape(-1)).reshape(a.shape)
            return a
        return float(self.reducer().sum(np.array([float(a)]))[0])

    def norm(self, x: np.ndarray) -> float:
        """The global 2-norm of the distributed vector ``x`` (NaN or Inf if any entry is)."""
        if self.comm is None:
            return float(np.linalg.norm(x))
        return math.sqrt(self.sum(float(np.dot(x, x))))

    def dot(self, x: np.ndarray, y: np.ndarray) -> float:
        return float(np.dot(x, y)) if self.comm is None else self.sum(float(np.dot(x, y)))

    def all(self, flag: bool) -> bool:
        """Whether ``flag`` holds on every process."""
        if self.comm is None:
            return bool(flag)
        return self.sum(0.0 if flag else 1.0) == 0.0

    def any(self, flag: bool) -> bool:
        """Whether ``flag`` holds on some process."""
        if self.comm is None:
            return bool(flag)
        return self.sum(1.0 if flag else 0.0) > 0.0

    def allfinite(self, x: np.ndarray) -> bool:
        return self.all(bool(np.all(np.isfinite(x))))

    def max(self, value: float) -> float:
        """The largest ``value`` over processes (e.g. the slowest process's time)."""
        if self.comm is None:
            return float(value)
        self.reductions += 1
        return self.reducer().max(value)


_REDUCERS: dict = {}


def _reducer_for(comm) -> Reducer:
    """One reducer per communicator (by its MPI handle), kept while the program runs: a
    sequence of solves on one communicator creates its Vecs once (all processes create them
    together: the first global sum on a communicator is on every process's path)."""
    key = comm.toint() if hasattr(comm, "toint") else id(comm)
    red = _REDUCERS.get(key)
    if red is None or red.size != comm.getSize():
        red = _REDUCERS[key] = Reducer(comm)
    return red


def serial(n: int) -> Layout:
    """The layout of an operator on one process."""
    return Layout(n, n, None)


def mat_layout(mat) -> Layout:
    """The layout of a petsc4py Mat's rows: serial for a one-process communicator, else the
    local rows and the Mat's communicator."""
    comm = mat.getComm()
    n = int(mat.getSize()[0])
    if comm.getSize() == 1:
        return serial(n)
    return Layout(int(mat.getLocalSize()[0]), n, comm)


def not_distributed(solver_name: str, what: str, layout: Layout) -> UnsupportedInputError:
    """The error for a solver that cannot use a matrix distributed over processes."""
    return UnsupportedInputError(
        f"solver {solver_name!r} ({what}) cannot run on a PETSc matrix distributed over {layout.size} "
        f"MPI processes; these can: {DISTRIBUTED_SOLVERS}")
