"""Regression tests from the adversarial review of the recycling solvers (rcg, gcrodr) and
their PETSc plumbing: inputs and sequences a user can hand them that once broke them."""
from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

import linsolve
from linsolve import gallery


def _with_duplicates(A: sp.csr_matrix, seed: int = 0) -> sp.csr_matrix:
    """A as a non-canonical CSR: every row gets an extra explicit zero on its diagonal
    (a duplicate entry) and its column order shuffled."""
    rng = np.random.default_rng(seed)
    n = A.shape[0]
    indptr, cols, vals = [0], [], []
    for i in range(n):
        c = np.r_[A.indices[A.indptr[i]:A.indptr[i + 1]], i]
        v = np.r_[A.data[A.indptr[i]:A.indptr[i + 1]], 0.0]
        p = rng.permutation(c.size)
        cols.append(c[p])
        vals.append(v[p])
        indptr.append(indptr[-1] + c.size)
    D = sp.csr_matrix((np.concatenate(vals), np.concatenate(cols), np.array(indptr)), shape=A.shape)
    assert not D.has_canonical_format
    return D


@pytest.mark.petsc
def test_csr_with_duplicate_entries_reaches_petsc_summed(petsc):
    # PETSc's CSR preallocation inserted a duplicate instead of adding it: the zero
    # duplicate on the diagonal replaced the real diagonal, and ILU(0) then broke down
    from linsolve.petsc_utils import aij_to_csr, csr_to_aij

    A = gallery.poisson2d(6)
    D = _with_duplicates(A)
    before = (D.indices.copy(), D.data.copy())
    np.testing.assert_array_equal(aij_to_csr(csr_to_aij(D)).toarray(), A.toarray())
    np.testing.assert_array_equal(D.indices, before[0])  # the caller's arrays are left as given
    np.testing.assert_array_equal(D.data, before[1])
    b = np.random.default_rng(1).standard_normal(36)
    res = linsolve.make_solver("gcrodr", backend="petsc", pc="ilu", restart=10, recycle=4, rtol=1e-10).solve(D, b)
    assert res.converged
    np.testing.assert_allclose(res.x, np.linalg.solve(A.toarray(), b), rtol=1e-8)


@pytest.mark.parametrize("compiled", [True, False])
def test_rcg_with_zero_tolerance_stops_honestly_at_the_floating_point_floor(compiled):
    # rtol = atol = 0 drives r^T M^-1 r to exactly 0 (underflow); beta = 0 / 0 then raised
    # ZeroDivisionError out of solve() instead of ending the iteration
    A, b = gallery.poisson2d(8), np.ones(64)
    res = linsolve.make_solver("rcg", rtol=0.0, atol=0.0, maxiter=300, compiled=compiled).solve(A, b)
    assert not res.converged
    assert np.all(np.isfinite(res.x))
    ref = np.linalg.solve(A.toarray(), b)
    assert np.linalg.norm(res.x - ref) <= 1e-12 * np.linalg.norm(ref)
    assert res.relative_residual == pytest.approx(np.linalg.norm(b - A @ res.x) / 8.0, rel=1e-6)


def _singular_neumann(n=50):
    """1-D Neumann Laplacian: singular (constant null space); ILU(0)'s last pivot is 0."""
    L = sp.diags([-np.ones(n - 1), 2 * np.ones(n), -np.ones(n - 1)], [-1, 0, 1]).tolil()
    L[0, 0] = L[n - 1, n - 1] = 1.0
    return L.tocsr()


@pytest.mark.petsc
@pytest.mark.parametrize("side,update", [("right", "cycle"), ("left", "cycle"), ("right", "solve")])
def test_gcrodr_nan_from_the_preconditioner_is_reported_not_raised(petsc, side, update):
    # PETSc's ILU of a singular matrix applies as Inf/NaN; the Givens estimate hid the NaN
    # (it came out 0.0) and the least-squares fallback then raised numpy's LinAlgError
    L = _singular_neumann()
    b = 1.0 + np.arange(50.0)  # not in the range of L: no solution exists
    s = linsolve.make_solver("gcrodr", backend="petsc", pc="ilu", pc_side=side, update=update,
                             restart=20, recycle=8, rtol=1e-8, maxiter=500)
    for _ in range(2):  # and again with whatever the first solve left recycled
        res = s.solve(L, b)
        assert not res.converged and res.reason.startswith("breakdown")
        assert np.all(np.isfinite(res.x))
        assert res.relative_residual == pytest.approx(np.linalg.norm(b - L @ res.x) / np.linalg.norm(b))


def _scale_in_place(A: sp.csr_matrix):
    """New values, same object and pattern (a time step updating A.data): 2 A + I."""
    A.data *= 2.0
    A.data[A.indices == np.repeat(np.arange(A.shape[0]), np.diff(A.indptr))] += 1.0


@pytest.mark.parametrize("name,opts", [
    ("rcg", {}), ("rcg", {"pc": "jacobi"}), ("rcg", {"compiled": False}),
    ("gcrodr", {"restart": 20, "recycle": 8}), ("gcrodr", {"restart": 20, "recycle": 8, "pc_side": "left", "pc": "jacobi"}),
])
def test_matrix_changed_in_place_between_solves(name, opts):
    # caches keyed on the matrix object (rcg's compiled copy of A, A W; gcrodr's C = A U,
    # preconditioners) outlived an in-place update: rcg reported a false breakdown and
    # gcrodr stagnated at residuals up to 1e38
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
def test_matrix_changed_in_place_between_solves_petsc(petsc, name, opts):
    from linsolve.petsc_utils import csr_to_aij

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


@pytest.mark.petsc
@pytest.mark.parametrize("name", ["rcg", "gcrodr"])
def test_petsc_factorization_pc_on_a_matrix_free_operator_is_a_clear_error(petsc, name):
    # PCSetUp's "error code 92" (no ICC/ILU for a shell matrix) reached the user as a
    # petsc4py.PETSc.Error, not a SolverError naming the problem
    import scipy.sparse.linalg as spla

    op = spla.aslinearoperator(gallery.poisson2d(6))
    s = linsolve.make_solver(name, backend="petsc", pc="icc" if name == "rcg" else "ilu")
    with pytest.raises(linsolve.UnsupportedInputError, match="matrix-free"):
        s.solve(op, np.ones(36))


@pytest.mark.petsc
def test_petsc_pc_setup_failure_on_an_assembled_matrix_is_a_solver_error(petsc):
    # a diagonal matrix with an exact zero on it: CSR drops the entry, PETSc's ICC refuses
    # the matrix ("missing diagonal entries") with error code 73
    A = sp.diags(np.linspace(-1.0, 2.0, 64)).tocsr()
    assert A.nnz == 63
    with pytest.raises(linsolve.SolverError, match="'icc'"):
        linsolve.make_solver("rcg", backend="petsc", pc="icc").solve(A, np.ones(64))


@pytest.mark.parametrize("update", ["cycle", "solve"])
def test_gcrodr_nan_on_the_recycled_space_drops_it(update):
    # an operator returning NaN on the recycled vectors (here once, on the first product)
    # made C = B U NaN and scipy's eig raised "array must not contain infs or NaNs"
    import scipy.sparse.linalg as spla

    A = gallery.poisson2d(8)
    b = np.random.default_rng(5).standard_normal(64)
    calls = [0]

    def matvec(v):
        calls[0] += 1
        return A @ v + (np.nan if calls[0] == 1 else 0.0)

    s = linsolve.make_solver("gcrodr", restart=20, recycle=8, update=update, rtol=1e-9, maxiter=300)
    assert s.solve(A, b).converged
    res = s.solve(spla.LinearOperator((64, 64), matvec=matvec, dtype=float), b)
    assert np.all(np.isfinite(res.x)) and res.relative_residual == pytest.approx(
        np.linalg.norm(b - A @ res.x) / np.linalg.norm(b), rel=1e-6)
    assert s._U is None or np.all(np.isfinite(s._U))
    res = s.solve(A, b)
    assert res.converged
    np.testing.assert_allclose(res.x, np.linalg.solve(A.toarray(), b), rtol=1e-6)


@pytest.mark.parametrize("grid,match", [
    (linsolve.Grid((6, 7), unknowns=np.arange(36) + 7), "in \\[0, 42\\)"),
    (linsolve.Grid((6, 7), unknowns=np.r_[np.arange(35), -1]), "in \\[0, 42\\)"),
    (linsolve.Grid((6, 7), unknowns=np.r_[np.arange(35), 0]), "more than once"),
    (linsolve.Grid((6, 6), cell_type=np.full((6, 6), 7)), "cell types are"),
])
def test_dcdm_bad_grid_geometry_is_a_shape_error(grid, match):
    # an out-of-range unknown raised IndexError, a negative one NumPy's ValueError, a repeated
    # one ran 10 n iterations without converging, and an unknown cell type was taken for a
    # wall (641 iterations on a 12 x 12 Dirichlet problem instead of 8)
    pytest.importorskip("torch")
    with pytest.raises(linsolve.ShapeError, match=match):
        linsolve.make_solver("dcdm").solve(gallery.poisson2d(6), np.ones(36), grid=grid)


@pytest.mark.petsc
@pytest.mark.parametrize("side", ["right", "left"])
def test_petsc_python_ksp_reports_nan_as_divergence(petsc, side):
    # with -ksp_type python and ILU of a singular matrix the solution was NaN and
    # KSPSetResidualNorm(NaN) raised out of KSPSolve ("residual norm must be nonnegative")
    from linsolve.petsc_ksp_python import GCRODR
    from linsolve.petsc_utils import csr_to_aij

    ksp = petsc.KSP().create()
    ksp.setType("python")
    ksp.setPythonContext(GCRODR(restart=20, recycle=6))
    ksp.setTolerances(rtol=1e-9, max_it=500)
    ksp.getPC().setType("ilu")
    ksp.setPCSide(getattr(petsc.PC.Side, side.upper()))
    for A, diverges in ((_singular_neumann(64), True), (gallery.poisson2d(8), False)):
        M = csr_to_aij(A)
        ksp.setOperators(M)
        b, x = M.createVecLeft(), M.createVecRight()
        b.setArray(np.arange(1.0, 65.0))
        ksp.solve(b, x)
        assert np.all(np.isfinite(x.getArray()))
        if diverges:
            assert ksp.getConvergedReason() < 0
        else:  # and the context still solves the next system
            assert ksp.getConvergedReason() > 0
            np.testing.assert_allclose(x.getArray(), np.linalg.solve(A.toarray(), b.getArray()), rtol=1e-7)
