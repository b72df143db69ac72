"""The compiled kernels of recycled CG against independent references: SpMV against SciPy,
IC(0) against a dense-loop gold factorisation and SciPy's triangular solves (and PETSc's
PCICC), the whole deflated PCG kernel against a plain NumPy gold of Saad et al.'s
algorithm, and the solver's compiled path against its NumPy path and against PETSc CG
with the same preconditioner."""
from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
import scipy.sparse.linalg as spla
from gold_cg import deflated_pcg

import linsolve
from linsolve import gallery
from linsolve.recycling import dcg_kernels as K


def _gold_ic0(A):
    """IC(0) by the textbook dense loop: L_ik = (a_ik - sum_j<k L_ij L_kj) / L_kk on the
    lower pattern of A, L_ii = sqrt(a_ii - sum_j<i L_ij^2)."""
    D = A.toarray()
    n = D.shape[0]
    pattern = np.tril(D != 0)
    L = np.zeros_like(D)
    for i in range(n):
        for k in range(i):
            if pattern[i, k]:
                L[i, k] = (D[i, k] - L[i, :k] @ L[k, :k]) / L[k, k]
        L[i, i] = np.sqrt(D[i, i] - L[i, :i] @ L[i, :i])
    return L


def _spd_cases():
    yield gallery.poisson2d(7)
    yield gallery.variable_diffusion2d(8, contrast=50.0, seed=3)
    B = sp.random(30, 30, density=0.1, random_state=4, format="csr")
    yield (B @ B.T + 30 * sp.eye(30)).tocsr()  # irregular pattern with fill-in ignored


def _canonical(A):
    A = sp.csr_matrix(A, dtype=np.float64)
    A.sum_duplicates()
    A.sort_indices()
    return A


@pytest.mark.parametrize("A", list(_spd_cases()), ids=["poisson", "diffusion", "random"])
def test_ic0_factor_and_apply_match_gold(A):
    A = _canonical(A)
    M = K.IC0.build(A.indptr, A.indices, A.data)
    L = M.lower().toarray()
    np.testing.assert_allclose(L, _gold_ic0(A), rtol=1e-12, atol=1e-12)
    r = np.random.default_rng(0).standard_normal(A.shape[0])
    Ls = sp.csr_matrix(L)
    y = spla.spsolve_triangular(Ls, r, lower=True)
    z_ref = spla.spsolve_triangular(sp.csr_matrix(L.T), y, lower=False)
    np.testing.assert_allclose(M.apply(r), z_ref, rtol=1e-11, atol=1e-12 * np.abs(z_ref).max())
    R = np.random.default_rng(1).standard_normal((3, A.shape[0]))
    np.testing.assert_allclose(M.apply_rows(R), np.stack([M.apply(v) for v in R]), rtol=1e-13, atol=1e-14)


def test_ic0_reports_a_nonpositive_pivot():
    # Kershaw's SPD matrix: IC(0) meets a negative pivot in its last row
    A = _canonical(np.array([[3.0, -2, 0, 2], [-2, 3, -2, 0], [0, -2, 3, -2], [2, 0, -2, 3]]))
    assert np.linalg.eigvalsh(A.toarray()).min() > 0
    assert K.ic0_factor(A.indptr, A.indices, A.data)[3] == 3
    assert K.IC0.build(A.indptr, A.indices, A.data) is None


def test_matvec_and_block_product_match_scipy():
    A = _canonical(gallery.variable_diffusion2d(9, seed=2))
    rng = np.random.default_rng(5)
    x = rng.standard_normal(A.shape[0])
    y = np.empty_like(x)
    K.csr_matvec(A.indptr, A.indices, A.data, x, y)
    np.testing.assert_allclose(y, A @ x, rtol=1e-13, atol=1e-13)
    X = rng.standard_normal((4, A.shape[0]))
    Y = np.empty_like(X)
    E = K.block_product(A.indptr, A.indices, A.data, X, Y)
    np.testing.assert_allclose(Y, (A @ X.T).T, rtol=1e-13, atol=1e-13)
    np.testing.assert_allclose(E, X @ (A @ X.T), rtol=1e-12)
    offs, D = K.csr_to_dia(A.indptr, A.indices, A.data, 16)
    np.testing.assert_array_equal(offs, [-9, -1, 0, 1, 9])
    ref = A.todia()
    for o, row in zip(offs, D, strict=True):
        np.testing.assert_array_equal(row, np.pad(A.diagonal(o), (max(0, -o), max(0, o))))
    K.dia_matvec(offs, D, x, y)
    np.testing.assert_allclose(y, ref @ x, rtol=1e-13, atol=1e-13)
    assert K.csr_to_dia(A.indptr, A.indices, A.data, 4)[0].size == 0  # too many diagonals: CSR stays


def _kernel(A, b, pc, W, iters, tol=0.0, dia=16):
    n = A.shape[0]
    if pc == "ic0":
        M = K.IC0.build(A.indptr, A.indices, A.data)
        pctype, pats = K.PC_IC0, M.unit
    else:
        ei, ef = np.empty(1, np.int64), np.empty(1)
        pctype = K.PC_JACOBI
        pats = (ei, ei.astype(np.int32), ef, ei, ei.astype(np.int32), ef, 1.0 / A.diagonal())
    AW = (A @ W.T).T.copy()
    Einv = np.linalg.inv(W @ AW.T) if W.shape[0] else np.empty((0, 0))
    k, s = W.shape[0], 5
    x = np.zeros(n)
    norms = np.empty(iters)
    P, C = np.empty((s, n)), np.empty((s, k))
    alphas, rhos, T = np.empty(s), np.empty(s + 1), np.empty((s + 1, k))
    diagonals = K.csr_to_dia(A.indptr, A.indices, A.data, dia)
    its, status, _, _ = K.dpcg(A.indptr, A.indices, A.data, *diagonals, pctype, *pats, b, x, np.ascontiguousarray(W),
                               AW, Einv, 0.0, tol, iters, norms, P, C, alphas, rhos, T)
    return x, norms[:its], its, status, (P, C, alphas, rhos, T, AW)


@pytest.mark.parametrize("pc", ["jacobi", "ic0"])
@pytest.mark.parametrize("k", [0, 3])
@pytest.mark.parametrize("dia", [0, 16], ids=["csr", "diagonals"])
def test_dpcg_kernel_matches_gold_deflated_cg(pc, k, dia):
    A = _canonical(gallery.variable_diffusion2d(10, contrast=30.0, seed=1))
    n = A.shape[0]
    rng = np.random.default_rng(6)
    b = rng.standard_normal(n)
    W = rng.standard_normal((k, n))
    if pc == "ic0":
        M = K.IC0.build(A.indptr, A.indices, A.data)
        Minv = M.apply
    else:
        Minv = lambda r: r / A.diagonal()  # noqa: E731
    iters = 14
    x_ref, norms_ref = deflated_pcg(A, b, Minv, W, iters)
    x, norms, its, status, (P, C, alphas, rhos, T, AW) = _kernel(A, b, pc, W, iters, dia=dia)
    assert its == iters and status == K.MAXITER
    np.testing.assert_allclose(norms, norms_ref, rtol=1e-6, atol=1e-12 * np.linalg.norm(b))
    np.testing.assert_allclose(x, x_ref, rtol=1e-8, atol=1e-10 * np.abs(x_ref).max())
    # what the Ritz step reads: true directions P - C W are A-orthogonal to W and to each other
    D = P - C @ W
    if k:
        np.testing.assert_allclose(AW @ D.T, 0, atol=1e-9 * np.abs(AW).max() * np.abs(D).max() * n)
    G = D @ (A @ D.T)
    off = G - np.diag(np.diag(G))
    assert np.abs(off).max() <= 1e-8 * np.abs(np.diag(G)).max()
    np.testing.assert_allclose(np.diag(G), rhos[:5] / alphas, rtol=1e-8)


def test_dpcg_kernel_stops_and_reports():
    A = _canonical(gallery.poisson2d(10))
    b = np.random.default_rng(7).standard_normal(A.shape[0])
    tol = 1e-8 * np.linalg.norm(b)
    x, norms, its, status, _ = _kernel(A, b, "ic0", np.empty((0, A.shape[0])), 500, tol=tol)
    assert status == K.CONVERGED and norms[-1] <= tol < norms[-2]
    assert np.linalg.norm(b - A @ x) <= 1.01 * tol
    # an indefinite matrix breaks CG down: reported, not hidden
    B = _canonical(sp.diags([1.0, -1.0, 2.0]))
    e = np.empty(1, np.int64)
    _, st, _, _ = K.dpcg(B.indptr, B.indices, B.data, np.empty(0, np.int64), np.empty((0, 3)), K.PC_NONE, e,
                         e.astype(np.int32), np.empty(1), e, e.astype(np.int32), np.empty(1), np.empty(1), np.ones(3),
                         np.zeros(3), np.empty((0, 3)), np.empty((0, 3)), np.empty((0, 0)), 0.0, 0.0, 10, np.empty(10),
                         np.empty((0, 3)), np.empty((0, 0)), np.empty(0), np.empty(1), np.empty((1, 0)))
    assert st == K.BREAKDOWN


def _sequence(n=16, count=5, seed=8):
    base = gallery.variable_diffusion2d(n, contrast=30.0, seed=seed)
    rng = np.random.default_rng(seed)
    out = []
    for i in range(count):
        A = (base + 0.02 * i * sp.eye(base.shape[0])).tocsr()
        out.append(linsolve.LinearSystem(A, rng.standard_normal(A.shape[0])))
    return out


@pytest.mark.parametrize("mode", ["every", "restart"])
@pytest.mark.parametrize("pc", ["none", "jacobi"])
def test_compiled_path_agrees_with_numpy_path(pc, mode):
    seq = _sequence()
    runs = {}
    for compiled in (True, False):
        # restarts need the store to cover the low modes (W from 30 directions makes them
        # cost iterations here): the restart mode runs with its default store
        store = 30 if mode == "every" else None
        s = linsolve.make_solver("rcg", recycle=6, store=store, pc=pc, rtol=1e-10, compiled=compiled, deflation=mode)
        res = [s.solve(sysm) for sysm in seq]
        assert all(r.converged for r in res)
        assert {r.info["kernel"] for r in res} == {"compiled" if compiled else "numpy"}
        runs[compiled] = res
    for a, b in zip(runs[True], runs[False], strict=True):
        assert abs(a.iterations - b.iterations) <= 1
        np.testing.assert_allclose(a.x, b.x, rtol=1e-7, atol=1e-8 * np.abs(b.x).max())


def test_update_every_skips_ritz_steps_and_products():
    A = gallery.poisson2d(14)
    rng = np.random.default_rng(9)
    s = linsolve.make_solver("rcg", recycle=5, store=30, pc="jacobi", rtol=1e-9, update_every=3)
    spaces, refreshes = [], []
    for _ in range(7):
        r = s.solve(A, rng.standard_normal(A.shape[0]))
        assert r.converged
        spaces.append(s._W)
        refreshes.append(r.info["recycle_matvecs"])
    # W is replaced after solves 1, 4 and 7 only; A W costs products only after a change
    changed = [spaces[i] is not spaces[i - 1] for i in range(1, 7)]
    assert changed == [False, False, True, False, False, True]
    assert refreshes == [0, 5, 0, 0, 5, 0, 0]
    with pytest.raises(linsolve.OptionError, match="update_every"):
        linsolve.make_solver("rcg", update_every=0)
    with pytest.raises(linsolve.OptionError, match="compiled"):
        linsolve.make_solver("rcg", compiled="yes")


@pytest.mark.petsc
def test_compiled_ic0_is_petsc_icc(petsc):
    """Same preconditioner: PCICC's M^-1 r to rounding, and CG + our IC(0) (nothing
    recycled) takes PETSc CG + PCICC's iteration count on the benchmark matrices."""
    from datagen.family import get_family
    from linsolve.core.operator import Operator
    from linsolve.recycling.recycle_ops import PetscPC

    fam = get_family("darcy")(grid=80, stencil="fv")
    darcy = fam.assemble(fam.sample(1, np.random.default_rng(10))[0])
    rng = np.random.default_rng(11)
    pois = linsolve.LinearSystem(gallery.poisson2d(80), rng.standard_normal(6400))
    for sysm in (darcy, pois):
        A = _canonical(sysm.A)
        M = K.IC0.build(A.indptr, A.indices, A.data)
        ref = PetscPC(Operator(A), "icc")
        r = rng.standard_normal(A.shape[0])
        zr = ref.apply(r)
        np.testing.assert_allclose(M.apply(r), zr, rtol=1e-10, atol=1e-12 * np.abs(zr).max())
        ref.destroy()
        ours = linsolve.make_solver("rcg", backend="petsc", pc="icc", recycle=0, rtol=1e-8).solve(sysm)
        cg = linsolve.make_solver("cg", backend="petsc", pc="icc", rtol=1e-8).solve(sysm)
        assert ours.info["kernel"] == "compiled" and ours.info["pc_impl"] == "ic0"
        assert ours.converged and cg.converged
        assert abs(ours.iterations - cg.iterations) <= 1, (ours.iterations, cg.iterations)


@pytest.mark.petsc
def test_ic0_breakdown_falls_back_to_petsc_icc(petsc):
    A = sp.csr_matrix(np.array([[3.0, -2, 0, 2], [-2, 3, -2, 0], [0, -2, 3, -2], [2, 0, -2, 3]]))
    b = np.arange(1.0, 5.0)
    r = linsolve.make_solver("rcg", backend="petsc", pc="icc", rtol=1e-10).solve(A, b)
    assert r.converged and r.info["kernel"] == "numpy"
    np.testing.assert_allclose(r.x, np.linalg.solve(A.toarray(), b), rtol=1e-8)
