"""Recycled CG against references: a gold PCG when nothing is recycled, exact eigenvalues
when the whole Krylov space is stored, deflation invariants, and iteration savings on
SPD sequences, also across matrix (and hence preconditioner) changes."""
from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
from gold_cg import deflated_pcg

import linsolve
from linsolve import OptionError, gallery


def test_without_recycling_it_is_pcg():
    A = gallery.variable_diffusion2d(12, contrast=20.0)
    b = np.random.default_rng(0).standard_normal(A.shape[0])
    s = linsolve.make_solver("rcg", recycle=0, pc="jacobi", rtol=1e-15, maxiter=25)
    res = s.solve(A, b)
    d = 1.0 / A.diagonal()
    x_ref, norms = deflated_pcg(A, b, lambda r: d * r, np.zeros((0, A.shape[0])), 25)
    assert not res.converged and res.iterations == 25
    np.testing.assert_allclose(res.x, x_ref, rtol=1e-9)
    np.testing.assert_allclose(res.residual_norms, norms, rtol=1e-7)


@pytest.mark.parametrize("mode", ["every", "restart"])
@pytest.mark.parametrize("pc", ["none", "jacobi"])
def test_ritz_values_are_eigenvalues_when_the_space_is_complete(pc, mode):
    rng = np.random.default_rng(1)
    n = 30
    Q = np.linalg.qr(rng.standard_normal((n, n)))[0]
    lam = np.geomspace(1.0, 50.0, n)
    A = (Q * lam) @ Q.T
    A = (A + A.T) / 2
    s = linsolve.make_solver("rcg", recycle=4, store=200, pc=pc, rtol=1e-13, deflation=mode)
    assert s.solve(A, rng.standard_normal(n)).converged
    d = np.diag(A) if pc == "jacobi" else np.ones(n)
    ref = np.sort(np.linalg.eigvals(A / d[:, None]).real)[:4]  # eigenvalues of M^-1 A
    np.testing.assert_allclose(np.sort(s.ritz_values), ref, rtol=1e-5)


def test_deflation_invariants_and_savings():
    A = gallery.poisson2d(24)
    rng = np.random.default_rng(2)
    s = linsolve.make_solver("rcg", recycle=10, store=150, update_every=1, pc="jacobi", rtol=1e-8)
    its = []
    for _ in range(4):
        b = rng.standard_normal(A.shape[0])
        res = s.solve(A, b)
        assert res.converged
        assert np.linalg.norm(b - A @ res.x) <= 1e-8 * np.linalg.norm(b) * (1 + 1e-6)
        its.append(res.iterations)
    W = s._W
    assert s._AW is None  # A W of the new space is computed by the next solve, for its matrix
    res = s.solve(A, b)
    assert res.info["recycle_matvecs"] == W.shape[0]
    AW = (A @ W.T).T
    # the recycled vectors approximate the smallest eigenvectors: Rayleigh quotients near them
    rq = np.sort(np.einsum("ij,ij->i", W, AW) / np.einsum("ij,ij->i", W, W * A.diagonal()))
    lmin = np.sort(np.linalg.eigvalsh((A / A.diagonal()[:, None]).toarray()))[0]
    assert rq[0] <= 1.05 * lmin
    cg = linsolve.make_solver("cg", pc="jacobi", rtol=1e-8).solve(A, b).iterations
    assert its[-1] <= 0.7 * cg


@pytest.mark.parametrize("mode", ["every", "restart"])
@pytest.mark.parametrize("pc", ["jacobi", "amg", "ssor"])
def test_sequence_of_changing_matrices(pc, mode):
    base = gallery.variable_diffusion2d(20, contrast=30.0, seed=1)
    rng = np.random.default_rng(3)
    n = base.shape[0]
    s = linsolve.make_solver("rcg", recycle=8, pc=pc, rtol=1e-9, deflation=mode)
    its, cold = [], []
    for i in range(4):
        A = (base @ sp.diags(1 + 0.05 * i * np.ones(n))).tocsr()  # new matrix, new preconditioner
        A = ((A + A.T) / 2).tocsr()
        b = rng.standard_normal(n)
        res = s.solve(A, b)
        assert res.converged
        assert np.linalg.norm(b - A @ res.x) <= 1e-9 * np.linalg.norm(b) * (1 + 1e-6)
        its.append(res.iterations)
        cold.append(linsolve.make_solver("cg", pc=pc, rtol=1e-9).solve(A, b).iterations)
        if i:
            assert res.info["recycle_matvecs"] > 0
    # AMG takes 8 iterations: too few for restarts to pay (each one drops the Krylov
    # space), so the restart mode may spend one more per solve there
    slack = 3 if (pc, mode) == ("amg", "restart") else 0
    assert sum(its[1:]) <= sum(cold[1:]) + slack


def test_options_validated():
    with pytest.raises(OptionError, match="recycle"):
        linsolve.make_solver("rcg", recycle=-1)
    with pytest.raises(OptionError, match="store"):
        linsolve.make_solver("rcg", store=0)


@pytest.mark.petsc
def test_petsc_pc_and_matrix(petsc):
    from linsolve.petsc_support.utils import csr_to_aij

    A = gallery.poisson2d(16)
    b = np.random.default_rng(4).standard_normal(A.shape[0])
    s = linsolve.make_solver("rcg", backend="petsc", pc="icc", rtol=1e-9)
    for M in (csr_to_aij(A), A):
        r = s.solve(M, b)
        assert r.converged
        assert np.linalg.norm(b - A @ r.x) <= 1e-9 * np.linalg.norm(b) * (1 + 1e-6)


@pytest.mark.parametrize("mode", ["every", "restart"])
@pytest.mark.parametrize("pc,most", [("ilutp", 30), ("ilu", 80)])
def test_scipy_ilu_is_built_symmetric(mode, pc, most):
    # SuperLU's default ILU (column reordering, row pivoting) is not symmetric for a
    # symmetric matrix; CG with it stalled (rel. residual 0.17 after 500 iterations at 50^2).
    # ILU(0) (pc="ilu") is symmetric for a symmetric A by construction.
    A = gallery.poisson2d(50).tocsr()
    b = np.random.default_rng(0).standard_normal(A.shape[0])
    res = linsolve.make_solver("rcg", pc=pc, rtol=1e-8, maxiter=200, deflation=mode).solve(A, b)
    assert res.converged and res.iterations <= most
    ref = sp.linalg.spsolve(A.tocsc(), b)
    assert np.linalg.norm(res.x - ref) <= 1e-6 * np.linalg.norm(ref)


@pytest.mark.parametrize("compiled", [True, False])
def test_rcg_with_zero_tolerance_stops_honestly_at_the_floating_point_floor(compiled):
    # rtol = atol = 0 drives r^T M^-1 r to exactly 0 (underflow): beta = 0 / 0 ends the
    # iteration with an honest not-converged result, not an exception
    A, b = gallery.poisson2d(8), np.ones(64)
    res = linsolve.make_solver("rcg", rtol=0.0, atol=0.0, maxiter=300, compiled=compiled).solve(A, b)
    assert not res.converged
    assert np.all(np.isfinite(res.x))
    ref = np.linalg.solve(A.toarray(), b)
    assert np.linalg.norm(res.x - ref) <= 1e-12 * np.linalg.norm(ref)
    assert res.relative_residual == pytest.approx(np.linalg.norm(b - A @ res.x) / 8.0, rel=1e-6)


def _scale_in_place(A):
    """2 A + I: new values, same object and pattern (a time step updating A.data)."""
    A.data *= 2.0
    A.data[A.indices == np.repeat(np.arange(A.shape[0]), np.diff(A.indptr))] += 1.0


def test_python_path_rebuilds_its_recycled_products_for_a_matrix_changed_in_place():
    # the NumPy path (compiled=False), which the registry-wide in-place contract (compiled
    # default) does not run, solves each new matrix with the recycled space carried along
    A = gallery.poisson2d(8).tocsr()
    b = np.random.default_rng(3).standard_normal(64)
    s = linsolve.make_solver("rcg", rtol=1e-9, compiled=False)
    for _ in range(3):
        res = s.solve(A, b)
        assert res.converged, res.reason
        np.testing.assert_allclose(res.x, np.linalg.solve(A.toarray(), b), rtol=1e-6, atol=1e-9)
        _scale_in_place(A)
