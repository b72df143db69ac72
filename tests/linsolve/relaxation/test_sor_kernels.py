"""Compiled SOR/SSOR kernels against plain pure-Python gold versions (loops over rows)."""
from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
import scipy.sparse.linalg as spla

from linsolve import gallery
from linsolve.core.errors import OptionError, SolverError
from linsolve.relaxation.sor_kernels import (
    CONVERGED,
    MAXITER,
    CSRKernelData,
    SSORApply,
    sor_iteration_counts,
    sor_solve_array,
    sor_sweep,
    sor_sweep_backward,
    ssor_pcg_array,
)


def _rows(A):
    A = sp.csr_matrix(A)
    return [(A.indices[A.indptr[i]:A.indptr[i + 1]], A.data[A.indptr[i]:A.indptr[i + 1]])
            for i in range(A.shape[0])]


def gold_sweep(A, b, x, omega, order):
    """x_i <- (1 - w) x_i + w (b_i - sum_{j != i} a_ij x_j) / a_ii, rows in ``order``."""
    x = x.copy()
    rows = _rows(A)
    for i in order:
        cols, vals = rows[i]
        sigma, aii = 0.0, 0.0
        for j, v in zip(cols, vals, strict=True):
            if j == i:
                aii += v
            else:
                sigma += v * x[j]
        x[i] = (1 - omega) * x[i] + omega * (b[i] - sigma) / aii
    return x


def gold_sor_solve(A, b, x0, omega, tol, maxiter):
    """The paper's loop: x <- x + (D/w + L)^-1 r with r = b - A x recomputed directly."""
    n = A.shape[0]
    x = x0.copy()
    for k in range(1, maxiter + 1):
        x = gold_sweep(A, b, x, omega, range(n))
        if np.linalg.norm(b - A @ x) <= tol:
            return x, k
    return x, maxiter


def _nonsym_dd(n, seed):
    rng = np.random.default_rng(seed)
    A = sp.random(n, n, density=0.15, random_state=seed, format="csr")
    A.data = rng.uniform(-1, 1, A.nnz)
    rowsum = np.asarray(abs(A).sum(axis=1)).ravel()
    return (A + sp.diags(rowsum + 1.0)).tocsr()


MATRICES = {
    "poisson": gallery.poisson2d(6),
    "variable": gallery.variable_diffusion2d(6, contrast=50.0, seed=1),
    "nonsym_dd": _nonsym_dd(30, 2),
}


@pytest.mark.parametrize("name", sorted(MATRICES))
@pytest.mark.parametrize("omega", [0.7, 1.0, 1.6])
def test_sweeps_match_gold(name, omega):
    A = MATRICES[name]
    n = A.shape[0]
    rng = np.random.default_rng(0)
    b, x0 = rng.standard_normal(n), rng.standard_normal(n)
    kd = CSRKernelData(A)
    x = x0.copy()
    sor_sweep(*kd.arrays, b, x, omega)
    np.testing.assert_allclose(x, gold_sweep(A, b, x0, omega, range(n)), rtol=1e-13, atol=1e-13)
    x = x0.copy()
    sor_sweep_backward(*kd.arrays, b, x, omega)
    np.testing.assert_allclose(x, gold_sweep(A, b, x0, omega, range(n - 1, -1, -1)), rtol=1e-13, atol=1e-13)


def test_sweep_equals_correction_form():
    A = MATRICES["variable"]
    n = A.shape[0]
    rng = np.random.default_rng(1)
    b, x0 = rng.standard_normal(n), rng.standard_normal(n)
    w = 1.3
    W = sp.tril(A, -1) + sp.diags(A.diagonal() / w)
    expected = x0 + spla.spsolve_triangular(W.tocsr(), b - A @ x0, lower=True)
    kd = CSRKernelData(A)
    x = x0.copy()
    sor_sweep(*kd.arrays, b, x, w)
    np.testing.assert_allclose(x, expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("name", sorted(MATRICES))
@pytest.mark.parametrize("omega", [1.0, 1.5])
def test_sor_solve_matches_gold_loop(name, omega):
    A = MATRICES[name]
    n = A.shape[0]
    rng = np.random.default_rng(2)
    b = rng.standard_normal(n)
    x0 = rng.standard_normal(n)
    tol = 1e-8 * np.linalg.norm(b)
    x_gold, k_gold = gold_sor_solve(A, b, x0, omega, tol, 2000)
    x, k, norms, status, r0 = sor_solve_array(CSRKernelData(A), b, x0, omega, tol, 2000)
    assert status == CONVERGED
    # the recurrence residual equals the direct one up to rounding, so the stopping
    # iteration agrees (allow one step where the norm sits on the threshold)
    assert abs(k - k_gold) <= 1
    assert np.linalg.norm(b - A @ x) <= tol * (1 + 1e-6)
    # recurrence and direct residual agree to rounding relative to ||b||
    assert abs(norms[-1] - np.linalg.norm(b - A @ x)) <= 1e-11 * np.linalg.norm(b)
    assert r0 == pytest.approx(np.linalg.norm(b - A @ x0))
    if k == k_gold:
        np.testing.assert_allclose(x, x_gold, rtol=1e-9, atol=1e-12)


def test_sor_solve_reports_cap():
    A = MATRICES["poisson"]
    b = np.ones(A.shape[0])
    x, k, norms, status, _ = sor_solve_array(CSRKernelData(A), b, np.zeros_like(b), 1.0, 1e-14, 3)
    assert status == MAXITER and k == 3 and norms.size == 3
    np.testing.assert_allclose(x, gold_sor_solve(A, b, np.zeros_like(b), 1.0, 0.0, 3)[0], rtol=1e-12)


def test_sor_diverging_reports_breakdown():
    # Jacobi-divergent, SOR-divergent: strongly indefinite symmetric matrix
    A = sp.csr_matrix(np.array([[1.0, 3.0], [3.0, 1.0]]))
    b = np.ones(2)
    _, k, _, status, _ = sor_solve_array(CSRKernelData(A), b, np.zeros(2), 1.0, 1e-10, 5000)
    assert status == 2  # non-finite residual detected, not a silent cap


@pytest.mark.parametrize("omega", [0.5, 1.0, 1.4, 1.9])
def test_ssor_apply_matches_formula_and_symmetric_sweep(omega):
    A = MATRICES["variable"]
    n = A.shape[0]
    r = np.random.default_rng(3).standard_normal(n)
    Ad = A.toarray()
    D, L, U = np.diag(np.diag(Ad)), np.tril(Ad, -1), np.triu(Ad, 1)
    M = (D + omega * L) @ np.linalg.inv(D) @ (D + omega * U) / (omega * (2 - omega))
    z = SSORApply(A, omega)(r)
    np.testing.assert_allclose(z, np.linalg.solve(M, r), rtol=1e-11, atol=1e-13)
    # one symmetric SOR sweep from zero on A z = r applies the same M^-1
    half = gold_sweep(A, r, np.zeros(n), omega, range(n))
    np.testing.assert_allclose(z, gold_sweep(A, r, half, omega, range(n - 1, -1, -1)), rtol=1e-11, atol=1e-13)
    # symmetric for symmetric A: <M^-1 u, v> = <u, M^-1 v>
    v = np.random.default_rng(4).standard_normal(n)
    assert SSORApply(A, omega)(v) @ r == pytest.approx(z @ v, rel=1e-12)


def test_ssor_pcg_matches_scipy_cg_with_same_preconditioner():
    A = gallery.poisson2d(12)
    n = A.shape[0]
    b = np.random.default_rng(5).standard_normal(n)
    tol = 1e-10 * np.linalg.norm(b)
    kd = CSRKernelData(A)
    x, k, norms, status = ssor_pcg_array(kd, b, np.zeros(n), 1.5, tol, 500)
    M = spla.LinearOperator((n, n), matvec=SSORApply(kd, 1.5), dtype=float)
    count = [0]
    xs, info = spla.cg(A, b, rtol=0.0, atol=tol, maxiter=500, M=M, callback=lambda _: count.__setitem__(0, count[0] + 1))
    assert status == CONVERGED and info == 0
    assert abs(k - count[0]) <= 1
    np.testing.assert_allclose(x, xs, rtol=1e-7, atol=1e-10)
    assert np.linalg.norm(b - A @ x) <= tol * 1.01
    # and the preconditioner helps: plain CG in the same kernel needs more iterations
    _, k_plain, _, _ = ssor_pcg_array(kd, b, np.zeros(n), 1.5, tol, 500, precondition=False)
    assert k_plain > k


def test_iteration_counts_row_matches_single_solves():
    A = gallery.poisson2d(8)
    kd = CSRKernelData(A)
    b = np.random.default_rng(6).standard_normal(A.shape[0])
    omegas = np.array([1.0, 1.3, 1.6, 1.9])
    counts = sor_iteration_counts(*kd.arrays, b, omegas, 1e-8, 10000)
    for w, c in zip(omegas, counts, strict=True):
        _, k = gold_sor_solve(A, b, np.zeros_like(b), w, 1e-8 * np.linalg.norm(b), 10000)
        assert abs(int(c) - k) <= 1


def test_bad_inputs_are_named():
    A = gallery.poisson2d(4).tolil()
    A[2, 2] = 0.0
    with pytest.raises(SolverError, match=r"A\[2, 2\]"):
        CSRKernelData(A.tocsr())
    with pytest.raises(OptionError, match="omega"):
        SSORApply(gallery.poisson2d(4), 2.0)
    with pytest.raises(OptionError, match="omega"):
        SSORApply(gallery.poisson2d(4), "fast")


def test_duplicates_and_unsorted_indices_are_handled():
    A = gallery.poisson2d(5).tocoo()
    # duplicate every entry (halved) and shuffle: same matrix
    rng = np.random.default_rng(7)
    perm = rng.permutation(2 * A.nnz)
    rows = np.concatenate([A.row, A.row])[perm]
    cols = np.concatenate([A.col, A.col])[perm]
    vals = np.concatenate([A.data, A.data])[perm] / 2
    B = sp.csr_matrix((vals, (rows, cols)), shape=A.shape)
    B.has_canonical_format = False
    r = rng.standard_normal(A.shape[0])
    np.testing.assert_allclose(SSORApply(B, 1.2)(r), SSORApply(A.tocsr(), 1.2)(r), rtol=1e-13)


@pytest.mark.petsc
@pytest.mark.parametrize("omega", [1.0, 1.5])
def test_forward_sweep_matches_petsc_matsor(petsc, omega):
    from linsolve.petsc_support.utils import csr_to_aij

    A = MATRICES["variable"]
    n = A.shape[0]
    rng = np.random.default_rng(8)
    b, x0 = rng.standard_normal(n), rng.standard_normal(n)
    M = csr_to_aij(A)
    bv, xv = petsc.Vec().createWithArray(b.copy()), petsc.Vec().createWithArray(x0.copy())
    M.SOR(bv, xv, omega=omega, sortype=petsc.Mat.SORType.FORWARD_SWEEP, its=1, lits=1)
    kd = CSRKernelData(A)
    x = x0.copy()
    sor_sweep(*kd.arrays, b, x, omega)
    np.testing.assert_allclose(x, xv.getArray(), rtol=1e-12, atol=1e-12)
