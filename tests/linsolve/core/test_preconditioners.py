"""Preconditioners: a user preconditioner's output is checked, a SciPy ILU that cannot be built is
a SolverError, and SciPy's ILU serves CG and MINRES on the Laplacian."""
from __future__ import annotations

import numpy as np
import pytest
from solver_problems import poisson_problem

import linsolve
from linsolve import gallery


@pytest.mark.parametrize("name", ["cg", "gmres", "bicgstab", "minres", "rcg", "gcrodr"])
def test_user_preconditioner_returning_the_wrong_length_or_complex_values(name):
    # a wrong length is an OptionError naming the lengths, not NumPy's reshape/broadcast
    # ValueError or BLAS's _fblas.error
    A, b, xref = poisson_problem(4)
    with pytest.raises(linsolve.OptionError, match="returned 15 values for a vector of length 16"):
        linsolve.make_solver(name, pc=lambda r: r[:-1]).solve(A, b)
    # complex values are refused, not cast to real
    with pytest.raises(linsolve.OptionError, match="complex"):
        linsolve.make_solver(name, pc=lambda r: (r / 4).astype(complex)).solve(A, b)
    import scipy.sparse as sp

    with pytest.raises(linsolve.OptionError, match="complex"):
        linsolve.make_solver(name, pc=sp.diags(np.full(16, 0.25 + 0j))).solve(A, b)
    # a right one still works
    res = linsolve.make_solver(name, pc=lambda r: r / 4, rtol=1e-10).solve(A, b)
    assert res.converged and np.linalg.norm(res.x - xref) <= 1e-8 * np.linalg.norm(xref)


@pytest.mark.parametrize("name", ["gmres", "bicgstab", "gcrodr"])
def test_scipy_ilu_that_cannot_be_built_is_a_solver_error(name):
    # SuperLU's RuntimeError("Factor is exactly singular") from spilu becomes a SolverError
    import scipy.sparse as sp

    S = sp.csr_matrix(np.array([[1.0, 1.0], [1.0, 1.0]]))
    with pytest.raises(linsolve.SolverError, match="ILU preconditioner could not be built.*singular"):
        linsolve.make_solver(name, pc="ilu").solve(S, np.ones(2))


@pytest.mark.parametrize("name", ["cg", "minres"])
@pytest.mark.parametrize("pc,most", [("ilutp", 10), ("ilu", 80)])
def test_cg_with_scipy_ilu_converges_on_the_laplacian(name, pc, most):
    # SuperLU's ILU (COLAMD order, partial pivoting) is not symmetric for a symmetric A and
    # stalls CG, so pc="ilutp" is built symmetric for CG/MINRES; ILU(0), pc="ilu", is
    # symmetric anyway
    import scipy.sparse as sp
    import scipy.sparse.linalg as spla

    A = gallery.poisson2d(50)
    b = np.random.default_rng(0).standard_normal(A.shape[0])
    xref = spla.spsolve(sp.csc_matrix(A), b)
    res = linsolve.make_solver(name, pc=pc, rtol=1e-8, maxiter=500).solve(A, b)
    assert res.converged and res.iterations <= most, res
    assert np.linalg.norm(res.x - xref) <= 1e-6 * np.linalg.norm(xref)


@pytest.mark.parametrize("pc", ["jacobi", "ilu", "ilutp", "ssor", "amg"])
def test_every_scipy_preconditioner_is_rebuilt_for_a_matrix_changed_in_place(pc):
    # (the registry-wide contract runs each solver's declared preconditioners; this runs every
    # one the SciPy backend builds) a preconditioner of the old entries would still converge,
    # but not in the iterations a fresh solver takes
    A = gallery.poisson2d(8).tocsr()
    b = np.random.default_rng(3).standard_normal(64)
    solver = linsolve.make_solver("cg", rtol=1e-9, pc=pc)
    rows = np.repeat(np.arange(64), np.diff(A.indptr))
    for step in range(3):
        res = solver.solve(A, b)
        fresh = linsolve.make_solver("cg", rtol=1e-9, pc=pc).solve(A.copy(), b)
        assert res.converged and res.iterations == fresh.iterations, (step, res.iterations, fresh.iterations)
        np.testing.assert_allclose(res.x, np.linalg.solve(A.toarray(), b), rtol=1e-7)
        d = np.random.default_rng(step).uniform(0.5, 2.0, 64)  # D A D: same object and pattern
        A.data *= d[rows] * d[A.indices]
