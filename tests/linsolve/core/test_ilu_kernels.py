"""ILU(0) in compiled code (``linsolve.core.ilu_kernels``, ``pc="ilu"`` on the SciPy backend):
its factors equal a plain dense ILU(0) restricted to the pattern, its substitutions solve
with those factors, GMRES with it takes PETSc ILU(0)'s iterations, and SciPy's ILUTP
stays available as ``pc="ilutp"``."""
from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
import scipy.sparse.linalg as spla

import linsolve
from linsolve import gallery
from linsolve.core.errors import OptionError, SolverError, UnknownPreconditionerError
from linsolve.core.ilu_kernels import ILU0, ZeroPivotError
from linsolve.core.operator import Operator
from linsolve.core.precond import build_preconditioner


def gold_ilu0(A):
    """Dense ILU(0) restricted to the stored pattern of A (KIJ Gaussian elimination that
    only updates entries in the pattern; stored zeros belong to it, as in PETSc's AIJ):
    returns L (unit lower) and U as dense arrays."""
    A = sp.csr_matrix(A)
    pattern = _pattern(A)
    pattern |= np.eye(A.shape[0], dtype=bool)
    a = A.toarray().astype(np.float64)
    n = a.shape[0]
    for k in range(n):
        for i in range(k + 1, n):
            if not pattern[i, k]:
                continue
            a[i, k] /= a[k, k]
            for j in range(k + 1, n):
                if pattern[i, j] and pattern[k, j]:
                    a[i, j] -= a[i, k] * a[k, j]
    return np.tril(a, -1) + np.eye(n), np.triu(a)


def _pattern(A):
    P = sp.csr_matrix(A, copy=True)
    P.data[:] = 1.0
    return P.toarray() != 0


def _random_nonsymmetric(n, density, seed):
    """A random sparse pattern (not symmetric) with a dominant diagonal."""
    rng = np.random.default_rng(seed)
    R = sp.random(n, n, density=density, random_state=rng, data_rvs=lambda k: rng.uniform(-1, 1, k))
    d = np.abs(R).sum(axis=1).A1 + rng.uniform(0.5, 1.5, n)
    return (R + sp.diags(d)).tocsr()


MATRICES = {
    "poisson2d": lambda: gallery.poisson2d(9),
    "convection_diffusion": lambda: gallery.convection_diffusion2d(8, peclet=30.0),
    "variable_diffusion": lambda: gallery.variable_diffusion2d(8, contrast=100.0, seed=1),
    "random_nonsymmetric": lambda: _random_nonsymmetric(60, 0.08, 2),
    "poisson3d": lambda: gallery.poisson3d(4),
}


@pytest.mark.parametrize("name", sorted(MATRICES))
def test_ilu0_factors_equal_dense_gold(name):
    A = MATRICES[name]()
    L, U = ILU0(A).factors()
    Lg, Ug = gold_ilu0(A)
    scale = np.abs(A.toarray()).max()
    assert np.abs(L.toarray() - Lg).max() <= 1e-12
    assert np.abs(U.toarray() - Ug).max() <= 1e-12 * scale
    # zero fill: the factors live on the pattern of A
    pattern = _pattern(A) | np.eye(A.shape[0], dtype=bool)
    assert not np.any((L.toarray() != 0) & ~pattern) and not np.any((U.toarray() != 0) & ~pattern)


@pytest.mark.parametrize("name", sorted(MATRICES))
def test_ilu0_apply_is_the_two_substitutions(name):
    A = MATRICES[name]()
    M = ILU0(A)
    L, U = M.factors()
    r = np.random.default_rng(0).standard_normal(A.shape[0])
    ref = spla.spsolve_triangular(U, spla.spsolve_triangular(L, r, lower=True), lower=False)
    np.testing.assert_allclose(M.apply(r), ref, rtol=1e-12, atol=1e-14 * np.abs(ref).max())


def test_ilu0_of_a_symmetric_matrix_is_symmetric():
    A = gallery.variable_diffusion2d(12, contrast=100.0, seed=3)
    M = build_preconditioner("ilu", Operator(A), symmetric=True)
    rng = np.random.default_rng(1)
    u, v = rng.standard_normal((2, A.shape[0]))
    assert abs(u @ M.apply(v) - v @ M.apply(u)) <= 1e-12 * abs(u @ M.apply(v))


def test_ilu0_of_unsorted_csr_with_duplicates():
    A = gallery.convection_diffusion2d(6).tocoo()
    # the same matrix as an unsorted CSR with every entry split in two duplicates
    rows, cols, vals = np.r_[A.row, A.row], np.r_[A.col, A.col], np.r_[A.data / 2, A.data / 2]
    perm = np.random.default_rng(0).permutation(rows.size)
    B = sp.csr_matrix((vals[perm], (rows[perm], cols[perm])), shape=A.shape)
    B.has_sorted_indices = False
    r = np.ones(A.shape[0])
    np.testing.assert_allclose(ILU0(B).apply(r), ILU0(A.tocsr()).apply(r), rtol=1e-13)


def test_zero_pivot_and_missing_diagonal_are_solver_errors():
    S = sp.csr_matrix(np.array([[1.0, 1.0], [1.0, 1.0]]))
    with pytest.raises(ZeroPivotError, match="row 1"):
        ILU0(S)
    with pytest.raises(SolverError, match="ILU preconditioner could not be built.*row 1.*ilutp"):
        linsolve.make_solver("gmres", pc="ilu").solve(S, np.ones(2))
    D = sp.csr_matrix(np.array([[0.0, 1.0], [1.0, 0.0]]))
    D.eliminate_zeros()
    with pytest.raises(SolverError, match="no diagonal entry"):
        linsolve.make_solver("gmres", pc="ilu").solve(D, np.ones(2))


@pytest.mark.petsc
@pytest.mark.parametrize("name,ksp", [("convection_diffusion", "gmres"), ("random_nonsymmetric", "gmres"),
                                      ("variable_diffusion", "cg")])
def test_petsc_ilu0_iterations_equal_ours(petsc, name, ksp):
    """The same PETSc KSP once with PETSc's PCILU and once with our ILU(0) as a PCPYTHON:
    identical iteration counts (the preconditioners agree to round-off)."""
    A = {"convection_diffusion": lambda: gallery.convection_diffusion2d(40, peclet=50.0),
         "random_nonsymmetric": lambda: _random_nonsymmetric(2000, 0.002, 5),
         "variable_diffusion": lambda: gallery.variable_diffusion2d(40, contrast=1000.0, seed=2)}[name]()
    b = np.random.default_rng(3).standard_normal(A.shape[0])
    theirs = linsolve.make_solver("petsc", ksp_type=ksp, pc="ilu", rtol=1e-10, maxiter=2000).solve(A, b)
    mine = ILU0(A)
    ours = linsolve.make_solver("petsc", ksp_type=ksp, pc=mine.apply, rtol=1e-10, maxiter=2000).solve(A, b)
    assert theirs.converged and ours.converged
    assert ours.iterations == theirs.iterations
    # the histories agree until CG's round-off (contrast 1000) makes them drift apart late
    k = len(theirs.residual_norms) // 2
    np.testing.assert_allclose(ours.residual_norms[:k], theirs.residual_norms[:k], rtol=1e-6)


@pytest.mark.petsc
def test_gcrodr_with_scipy_ilu_takes_petsc_ilu_iterations(petsc):
    """gcrodr's default backend applies ILU(0), as its PETSc backend does: the same
    iterations on a sequence of nonsymmetric systems."""
    mats = [gallery.convection_diffusion2d(30, peclet=p) for p in (20.0, 25.0, 30.0)]
    b = np.ones(mats[0].shape[0])
    its = {}
    for backend in ("scipy", "petsc"):
        s = linsolve.make_solver("gcrodr", backend=backend, pc="ilu", restart=20, recycle=5, rtol=1e-8)
        its[backend] = [s.solve(A, b).iterations for A in mats]
    assert its["scipy"] == its["petsc"]


def test_ilutp_is_scipy_spilu_with_its_options():
    A = gallery.convection_diffusion2d(20)
    b = np.ones(A.shape[0])
    s = linsolve.make_solver("gmres", pc="ilutp", pc_options={"drop_tol": 1e-6, "fill_factor": 20}, rtol=1e-10)
    res = s.solve(A, b)
    ref = spla.spilu(A.tocsc(), drop_tol=1e-6, fill_factor=20)
    M = s.preconditioner(Operator(A))
    r = np.random.default_rng(0).standard_normal(A.shape[0])
    np.testing.assert_allclose(M.apply(r), ref.solve(r), rtol=1e-12)
    assert res.converged and res.iterations <= 3


def test_ilu_takes_no_options_and_ilutp_is_scipy_only():
    with pytest.raises(OptionError, match="ilutp"):
        linsolve.make_solver("gmres", pc="ilu", pc_options={"fill_factor": 2})
    with pytest.raises(UnknownPreconditionerError, match="spilu"):
        linsolve.make_solver("gmres", pc="ilutp", backend="petsc")


@pytest.mark.parametrize("name,opts", [("gmres", {"restart": 30}), ("bicgstab", {}), ("cg", {}),
                                       ("gcrodr", {"restart": 20, "recycle": 5})])
def test_solvers_with_pc_ilu_converge(name, opts):
    A = gallery.variable_diffusion2d(30, contrast=100.0, seed=0) if name == "cg" else gallery.convection_diffusion2d(30)
    b = np.random.default_rng(0).standard_normal(A.shape[0])
    plain = linsolve.make_solver(name, rtol=1e-8, maxiter=5000, **opts).solve(A, b)
    res = linsolve.make_solver(name, pc="ilu", rtol=1e-8, maxiter=5000, **opts).solve(A, b)
    assert res.converged and res.relative_residual <= 1e-8 * 1.000001
    assert res.iterations < plain.iterations / 2
