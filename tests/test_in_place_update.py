"""A matrix whose values change in place between solves (same object, same pattern) is solved
with its new entries: nothing a solver caches for the old values is reused."""
from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

import linsolve
from linsolve import gallery


def _scale_in_place(A: sp.csr_matrix):
    """New values, same object and pattern (a time step updating A.data): 2 A + I."""
    A.data *= 2.0
    A.data[A.indices == np.repeat(np.arange(A.shape[0]), np.diff(A.indptr))] += 1.0


@pytest.mark.parametrize("name,opts", [
    ("rcg", {}), ("rcg", {"pc": "jacobi"}), ("rcg", {"compiled": False}),
    ("gcrodr", {"restart": 20, "recycle": 8}), ("gcrodr", {"restart": 20, "recycle": 8, "pc_side": "left", "pc": "jacobi"}),
])
def test_recycling_solver_solves_a_matrix_changed_in_place(name, opts):
    # caches keyed on the matrix object (rcg's compiled copy of A, A W; gcrodr's C = A U,
    # preconditioners) must not outlive an in-place update, else rcg reports a false
    # breakdown and gcrodr stagnates
    A = gallery.poisson2d(8).tocsr()
    b = np.random.default_rng(3).standard_normal(64)
    s = linsolve.make_solver(name, rtol=1e-9, **opts)
    for _ in range(3):
        res = s.solve(A, b)
        assert res.converged, res.reason
        np.testing.assert_allclose(res.x, np.linalg.solve(A.toarray(), b), rtol=1e-6, atol=1e-9)
        _scale_in_place(A)


@pytest.mark.petsc
@pytest.mark.parametrize("name,opts", [("rcg", {"pc": "icc", "backend": "petsc"}),
                                       ("gcrodr", {"pc": "ilu", "backend": "petsc", "restart": 20, "recycle": 8})])
def test_recycling_solver_solves_a_matrix_changed_in_place_petsc(petsc, name, opts):
    from linsolve.petsc_support.utils import csr_to_aij

    A = gallery.poisson2d(8).tocsr()
    b = np.random.default_rng(4).standard_normal(64)
    s = linsolve.make_solver(name, rtol=1e-9, **opts)
    mat = None
    for step in range(4):
        if step >= 2:  # then a PETSc Mat, its new values assembled into the same object
            if mat is None:
                mat = csr_to_aij(A)
            else:
                for i in range(64):
                    for a in range(A.indptr[i], A.indptr[i + 1]):
                        mat.setValue(i, A.indices[a], A.data[a])
                mat.assemble()
        res = s.solve(A if mat is None else mat, b)
        assert res.converged, res.reason
        np.testing.assert_allclose(res.x, np.linalg.solve(A.toarray(), b), rtol=1e-6, atol=1e-9)
        _scale_in_place(A)


def _rescale_in_place(A, seed):
    """New values, same object and pattern (a time step updating A.data): D A D, D > 0 varying."""
    d = np.random.default_rng(seed).uniform(0.5, 2.0, A.shape[0])
    A.data *= d[np.repeat(np.arange(A.shape[0]), np.diff(A.indptr))] * d[A.indices]


_IN_PLACE = [("direct", {}), ("cg", {"pc": "ilu"}), ("cg", {"pc": "amg"}), ("cg", {"pc": "jacobi"}),
             ("cg", {"pc": "ssor"}), ("sor", {}), ("ssor-pcg", {}), ("bandit-sor", {})]


_IN_PLACE_PETSC = [("direct", {"backend": "petsc"}), ("gmres", {"pc": "ilu", "backend": "petsc"}),
                   ("cg", {"pc": "icc", "backend": "petsc"}), ("sor", {"backend": "petsc"}),
                   ("petsc", {"pc": "lu", "ksp_type": "preonly"})]


def _solve_updated_in_place(name, opts):
    A = gallery.poisson2d(8).tocsr()
    b = np.random.default_rng(3).standard_normal(64)
    solver = linsolve.make_solver(name, rtol=1e-9, **opts)
    for step in range(3):
        res = solver.solve(A, b)
        xref = np.linalg.solve(A.toarray(), b)
        assert res.converged, (step, res)
        assert np.linalg.norm(res.x - xref) <= 1e-7 * np.linalg.norm(xref)
        if name != "bandit-sor":  # (its policy learns across solves)
            # exactly what a fresh solver does on the new matrix: nothing of the old one kept
            fresh = linsolve.make_solver(name, rtol=1e-9, **opts).solve(A.copy(), b)
            assert res.iterations == fresh.iterations, (step, res.iterations, fresh.iterations)
        _rescale_in_place(A, step)


@pytest.mark.parametrize("name,opts", _IN_PLACE)
def test_matrix_updated_in_place_is_solved_with_its_new_entries(name, opts):
    # caches keyed on the matrix object (the direct solver's factors, SOR's 1/a_ii, the SciPy
    # preconditioners ILU, AMG, Jacobi, SSOR) are rebuilt when the values change
    _solve_updated_in_place(name, opts)


@pytest.mark.petsc
@pytest.mark.parametrize("name,opts", _IN_PLACE_PETSC)
def test_matrix_updated_in_place_is_solved_with_its_new_entries_petsc(petsc, name, opts):
    # the KSP's PETSc copy of the matrix is refreshed with the new values
    _solve_updated_in_place(name, opts)
