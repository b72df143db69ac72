"""The compiled Arnoldi step against a straightforward NumPy Gram-Schmidt of the same vector,
with the least-squares residual from NumPy's lstsq of the Hessenberg matrix built so far."""
import numpy as np
import pytest

from linsolve.recycling.arnoldi_kernels import arnoldi_step

REFINE = {"cgs": 0.0, "ifneeded": 0.7071, "cgs2": np.inf}


def _gold_cgs(V, w, refine):
    """Classical Gram-Schmidt with PETSc's refinement rule, in plain NumPy."""
    wn = np.linalg.norm(w)
    h = V @ w
    w = w - V.T @ h
    if refine == np.inf or np.linalg.norm(w) < refine * wn:
        h2 = V @ w
        w = w - V.T @ h2
        h = h + h2
    return h, np.linalg.norm(w), w


def _setup(n, m, kc, rng):
    Vh = np.zeros((m + 1, n))
    Vh[:kc + 1] = np.linalg.qr(rng.standard_normal((n, kc + 1)))[0].T
    steps = m - kc
    return Vh, np.zeros((m + 1, m)), np.empty(steps), np.empty(steps), np.zeros((steps, steps)), np.zeros(steps + 1)


@pytest.mark.parametrize("orthog", ["cgs", "ifneeded", "cgs2"])
@pytest.mark.parametrize("kc", [0, 4])
def test_arnoldi_step_matches_numpy_gram_schmidt(orthog, kc):
    rng = np.random.default_rng(3)
    n, m, beta = 300, 12, 1.7
    B = rng.standard_normal((n, n)) / np.sqrt(n) + np.eye(n)
    Vh, G, cs, sn, Rt, g = _setup(n, m, kc, rng)
    g[0] = beta
    h, h2 = np.empty(m + 1), np.empty(m + 1)
    for jj in range(m - kc):
        j = kc + jj
        w = B @ Vh[j]
        if jj == 3:  # nearly in the span: cancellation, so "ifneeded" takes its second pass
            w = Vh[:j + 1].T @ rng.standard_normal(j + 1) + 1e-9 * w
        h_ref, hn_ref, w_ref = _gold_cgs(Vh[:j + 1], w, REFINE[orthog])
        Vh[j + 1] = w
        est, breakdown = arnoldi_step(Vh, j, kc, REFINE[orthog], h, h2, G, cs, sn, Rt, g)
        assert not breakdown
        scale = np.abs(h_ref).max()
        np.testing.assert_allclose(G[:j + 1, j], h_ref, rtol=1e-10, atol=1e-12 * scale)
        assert G[j + 1, j] == pytest.approx(hn_ref, rel=1e-6 if jj == 3 else 1e-10)
        np.testing.assert_allclose(Vh[j + 1], w_ref / hn_ref, atol=1e-6 if jj == 3 else 1e-10)
        H = G[kc:j + 2, kc:j + 1]
        rhs = np.zeros(jj + 2)
        rhs[0] = beta
        y = np.linalg.lstsq(H, rhs, rcond=None)[0]
        assert est == pytest.approx(np.linalg.norm(rhs - H @ y), rel=1e-8, abs=1e-12)
    # the second pass is what keeps the cancelled vector orthogonal to the basis
    loss = np.abs(Vh[:kc + 4] @ Vh[kc + 4]).max()
    assert loss < (1e-2 if orthog == "cgs" else 1e-12)
    if orthog == "cgs":
        assert loss > 1e-9  # one pass cannot fix a 1e-9 remainder: the test sees the difference


def test_arnoldi_step_breakdown_zeroes_the_vector():
    rng = np.random.default_rng(4)
    n, m = 50, 6
    Vh, G, cs, sn, Rt, g = _setup(n, m, 2, rng)
    g[0] = 1.0
    Vh[3] = Vh[:3].T @ np.array([1.0, -2.0, 0.5])  # exactly in the span of the rows before it
    est, breakdown = arnoldi_step(Vh, 2, 2, 0.0, np.empty(m + 1), np.empty(m + 1), G, cs, sn, Rt, g)
    assert breakdown and not Vh[3].any()
    np.testing.assert_allclose(G[:3, 2], [1.0, -2.0, 0.5], atol=1e-12)


@pytest.mark.parametrize("nr", [1, 3, 4, 7, 8, 12, 13, 21])
def test_project_matches_numpy_for_every_row_blocking(nr):
    """The eight/four/one-row loops of the projection against V w and w - V^T h in NumPy."""
    from linsolve.recycling.arnoldi_kernels import project

    rng = np.random.default_rng(nr)
    V = rng.standard_normal((nr, 257))
    w = rng.standard_normal(257)
    h = np.empty(nr)
    ref_h = V @ w
    ref_w = w - V.T @ ref_h
    out = w.copy()
    norm = project(V, out, h)
    np.testing.assert_allclose(h, ref_h, rtol=1e-12, atol=1e-12 * np.abs(ref_h).max())
    np.testing.assert_allclose(out, ref_w, rtol=1e-11, atol=1e-11 * np.abs(ref_w).max())
    assert norm == pytest.approx(np.linalg.norm(ref_w), rel=1e-12)


def test_gcrodr_solve_is_bitwise_identical_in_fresh_and_cached_processes(tmp_path):
    """The same GCRO-DR solve in a process that compiles the kernels and in one that loads
    them from numba's cache (arrays at other addresses) gives the same bits."""
    import os
    import subprocess
    import sys

    script = (
        "import hashlib, numpy as np, scipy.sparse as sp, linsolve\n"
        "from linsolve import gallery\n"
        "A = (gallery.poisson2d(40) + 0.3 * sp.random(1600, 1600, density=2e-3, random_state=0)).tocsr()\n"
        "b = np.random.default_rng(0).standard_normal(1600)\n"
        "s = linsolve.make_solver('gcrodr', restart=30, recycle=10, rtol=1e-10)\n"
        "r1 = s.solve(A, b); r2 = s.solve(A, 1.1 * b + 0.01)\n"
        "print(hashlib.sha256(r1.x.tobytes() + r2.x.tobytes()).hexdigest())\n"
    )
    env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path / "numba-cache"), OMP_NUM_THREADS="1")
    runs = [subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True,
                           check=True).stdout.strip() for _ in range(2)]
    assert len(runs[0]) == 64 and runs[0] == runs[1]


def _sparse_case(n, rng):
    import scipy.sparse as sp

    A = (sp.random(n, n, density=0.02, random_state=rng) + sp.diags(2.0 + rng.random(n))).tocsr()
    return A, 1.0 / A.diagonal()


@pytest.mark.parametrize("side", [0, 1, 2])
def test_csr_pc_matvec_matches_scipy_products(side):
    """The compiled product B v against SciPy: A v, A (D v) and D (A v) for the Jacobi D."""
    from linsolve.recycling.arnoldi_kernels import csr_pc_matvec

    rng = np.random.default_rng(side)
    A, dinv = _sparse_case(200, rng)
    v = rng.standard_normal(200)
    ref = {0: A @ v, 1: A @ (dinv * v), 2: dinv * (A @ v)}[side]
    w = np.empty(200)
    csr_pc_matvec(A.indptr, A.indices, A.data, dinv, side, v, w, np.empty(200))
    np.testing.assert_allclose(w, ref, rtol=1e-14, atol=1e-14 * np.abs(ref).max())


@pytest.mark.parametrize("side", [0, 1, 2])
@pytest.mark.parametrize("kc", [0, 5])
def test_arnoldi_cycle_matches_numpy_arnoldi(side, kc):
    """A whole compiled cycle against a NumPy Arnoldi of (I - C C^T) B: the basis, the
    Hessenberg columns and every step's least-squares residual from lstsq."""
    from linsolve.recycling.arnoldi_kernels import arnoldi_cycle

    rng = np.random.default_rng(10 + side + kc)
    n, m, beta = 300, 16, 2.3
    A, dinv = _sparse_case(n, rng)
    B = {0: A.toarray(), 1: A.toarray() * dinv[None, :], 2: dinv[:, None] * A.toarray()}[side]
    Vh, G, cs, sn, Rt, g = _setup(n, m, kc, rng)
    g[0] = beta
    Vref = Vh.copy()
    steps = m - kc
    est = np.empty(steps)
    p, status = arnoldi_cycle(A.indptr, A.indices, A.data, dinv, side, np.empty(n), Vh, kc, steps, 0.0,
                              np.empty(m + 1), np.empty(m + 1), G, cs, sn, Rt, g, 0.0, est)
    assert (p, status) == (steps, 0)
    Gref = np.zeros((m + 1, m))
    for jj in range(steps):
        j = kc + jj
        h, hn, w = _gold_cgs(Vref[:j + 1], B @ Vref[j], 0.0)
        Gref[:j + 1, j], Gref[j + 1, j] = h, hn
        Vref[j + 1] = w / hn
        H = Gref[kc:j + 2, kc:j + 1]
        rhs = np.zeros(jj + 2)
        rhs[0] = beta
        y = np.linalg.lstsq(H, rhs, rcond=None)[0]
        assert est[jj] == pytest.approx(np.linalg.norm(rhs - H @ y), rel=1e-8, abs=1e-12)
    np.testing.assert_allclose(G, Gref, rtol=1e-9, atol=1e-11 * np.abs(Gref).max())
    np.testing.assert_allclose(Vh, Vref, atol=1e-9)


def test_arnoldi_cycle_stops_at_tolerance_breakdown_and_nonfinite():
    import scipy.sparse as sp

    from linsolve.recycling.arnoldi_kernels import arnoldi_cycle

    rng = np.random.default_rng(7)
    n, m = 120, 10
    A, dinv = _sparse_case(n, rng)

    def run(A, tol):
        Vh, G, cs, sn, Rt, g = _setup(n, m, 0, np.random.default_rng(8))
        g[0] = 1.0
        est = np.full(m, -1.0)
        p, status = arnoldi_cycle(A.indptr, A.indices, A.data, dinv, 1, np.empty(n), Vh, 0, m, 0.0,
                                  np.empty(m + 1), np.empty(m + 1), G, cs, sn, Rt, g, tol, est)
        return p, status, est, Vh

    _, _, est, _ = run(A, 0.0)
    p, status, est2, _ = run(A, est[3])  # the estimate of step 3 meets the tolerance: 4 steps
    assert (p, status) == (4, 0) and np.array_equal(est2[:4], est[:4]) and est2[4] == -1.0
    # B v in the span of v (a scaled identity): the Krylov space ends after one step
    D = sp.diags(1.0 / dinv).tocsr()
    p, status, _, Vh = run(D, 0.0)
    assert (p, status) == (1, 1) and not Vh[1].any()
    bad = A.copy()
    bad.data[0] = np.nan
    p, status, est, _ = run(bad, 0.0)
    assert (p, status) == (0, 2) and est[0] == -1.0
