"""Complex systems: which solvers take them, and the equivalent real form.

A solver declares ``complex_support`` (``linsolve.Solver``):

``"native"``
    the method runs in complex arithmetic (the SciPy-backed ``cg``, ``gmres``,
    ``bicgstab``, ``minres`` and SuperLU ``direct``: SciPy's own complex code paths, with
    conjugated inner products).
``"real-form"``
    the method runs, unchanged and with its compiled kernels, on the equivalent real system
    of twice the size

        [[Re A, -Im A], [Im A, Re A]] [Re x; Im x] = [Re b; Im b],

    (``gcrodr``, ``rcg``). Its Euclidean inner product is Re(u^H v) and its norms are the
    complex norms, so the stopping rule and the residual history are those of the complex
    system. For a Hermitian positive definite A the real form is symmetric positive
    definite with the same eigenvalues (each twice), and CG on it produces exactly the
    iterates of complex CG (the optimal CG polynomial has real coefficients when the
    eigenvalues are real), so ``rcg`` is complex PCG with conjugate-transposed inner
    products. For a non-Hermitian A, GMRES on the real form minimises over a real Krylov
    space of dimension k instead of a complex one of real dimension 2k, and may need up to
    twice the iterations of complex GMRES; it converges to the same solution.
``None``
    complex input is refused with an ``UnsupportedInputError`` naming the solvers that
    take it.

PETSc here is built with real scalars (``PetscScalar`` is a real double), so complex input
with ``backend="petsc"`` or a PETSc ``Mat`` is refused with an error that says so.
"""
from __future__ import annotations

import time

import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spla

from linsolve.core.errors import OptionError, UnsupportedInputError
from linsolve.core.operator import Operator, entries_record, same_entries


def realify(v: np.ndarray) -> np.ndarray:
    """[Re v; Im v] for a complex vector of length n (a real vector of length 2n)."""
    v = np.asarray(v)
    return np.concatenate([v.real, v.imag]).astype(np.float64, copy=False)


def complexify(w: np.ndarray) -> np.ndarray:
    """The complex vector of length n whose real form is ``w`` (length 2n)."""
    w = np.asarray(w).reshape(-1)
    n = w.shape[0] // 2
    return w[:n] + 1j * w[n:]


def real_form_matrix(A):
    """[[Re A, -Im A], [Im A, Re A]] of a SciPy sparse or dense matrix (sparse in, CSR out)."""
    if sp.issparse(A):
        A = sp.csr_matrix(A)
        Ar, Ai = sp.csr_matrix(A.real), sp.csr_matrix(A.imag) if A.dtype.kind == "c" else None
        if Ai is None or Ai.nnz == 0:
            return sp.block_diag([Ar, Ar], format="csr")
        return sp.bmat([[Ar, -Ai], [Ai, Ar]], format="csr")
    A = np.asarray(A)
    Ar, Ai = A.real.astype(np.float64), A.imag.astype(np.float64) if A.dtype.kind == "c" else np.zeros(A.shape)
    return np.block([[Ar, -Ai], [Ai, Ar]])


def real_form_operator(op: Operator) -> Operator:
    """The real form of an operator: an assembled one stays assembled (CSR), so the
    compiled kernels and the named preconditioners apply to it; a matrix-free one becomes a
    LinearOperator applying A to the complex vector."""
    if op._csr is not None:
        return Operator(real_form_matrix(op._csr), check_finite=False)
    if op._dense is not None:
        return Operator(real_form_matrix(op._dense), check_finite=False)
    n = op.n

    def mv(w):
        return realify(op.matvec(complexify(w)))

    return Operator(spla.LinearOperator((2 * n, 2 * n), matvec=mv, dtype=np.float64), check_finite=False)


def real_form_preconditioner(M, n: int):
    """A user's preconditioner (matrix, LinearOperator or callable applying M^-1 to complex
    vectors) as the operator of the real form."""
    if isinstance(M, spla.LinearOperator) or (callable(M) and not hasattr(M, "shape")):
        shape = getattr(M, "shape", None)
        if shape is not None and tuple(shape) != (n, n):
            raise OptionError(f"preconditioner M has shape {shape}, expected {(n, n)}")
        f = M.matvec if isinstance(M, spla.LinearOperator) else M

        def apply(w):
            out = np.asarray(f(complexify(w)))
            if out.size != n:
                raise OptionError(f"preconditioner M returned {out.size} values for a vector of length {n}")
            return realify(out.reshape(-1))

        return spla.LinearOperator((2 * n, 2 * n), matvec=apply, dtype=np.float64)
    shape = getattr(M, "shape", None)
    if shape is None or tuple(shape) != (n, n):
        raise OptionError(f"preconditioner M has shape {shape}, expected {(n, n)}")
    return real_form_matrix(M)


def check_complex(solver, op: Operator) -> None:
    """Raise the error for complex input this solver configuration cannot take."""
    if solver.backend == "petsc" or op.kind.startswith("petsc"):
        what = "backend='petsc'" if solver.backend == "petsc" else "a PETSc Mat"
        raise UnsupportedInputError(
            f"complex system given to solver {solver.name!r} with {what}: this PETSc is built with real "
            "scalars (PetscScalar is a real double) and cannot hold complex values; use backend='scipy' "
            f"with a SciPy or NumPy matrix (solvers taking complex systems: {complex_solvers()})")
    if solver.complex_support is None:
        raise UnsupportedInputError(
            f"solver {solver.name!r} takes real systems only; complex A, b or x0 run with: {complex_solvers()}")


def complex_solvers() -> str:
    from linsolve.core.registry import available_solvers, solver_class

    return ", ".join(n for n in available_solvers() if solver_class(n).complex_support is not None)


def solve_real_form(solver, op: Operator, bkind, x0, mb: bool, context: dict, t0: float):
    """Solve the complex system through its real form with ``solver`` (whose
    ``complex_support`` is "real-form"); returns the SolveResult of the complex system."""
    n = op.n
    opR = _cached_real_form(solver, op)
    bR = realify(bkind.array)
    x0R = "Mb" if mb else (None if x0 is None else realify(x0))
    user_pc, user_cb = solver.pc, solver.callback
    if not isinstance(user_pc, str):
        solver.pc = real_form_preconditioner(user_pc, n)
    if user_cb is not None:
        def cb(arg):
            if isinstance(arg, np.ndarray) and arg.ndim == 1 and arg.shape[0] == 2 * n:
                return user_cb(complexify(arg))
            return user_cb(arg)

        solver.callback = cb
    try:
        res = solver.solve(opR, bR, x0R, **context)
    finally:
        solver.pc, solver.callback = user_pc, user_cb
    res.x = bkind.restore(complexify(res.x))
    res.info["complex"] = "real form (2n x 2n real system)"
    res.wall_time = time.perf_counter() - t0
    return res


def _cached_real_form(solver, op: Operator) -> Operator:
    """The real form of ``op``, kept while the same matrix object with the same entries is
    solved again (so a recycling solver sees the same operator object across a sequence)."""
    record = entries_record(op)
    cache = getattr(solver, "_real_form_cache", None)
    if cache is not None and cache[0] is op.source and same_entries(cache[1], record):
        return cache[2]
    opR = real_form_operator(op)
    solver._real_form_cache = (op.source, record, opR)
    return opR
