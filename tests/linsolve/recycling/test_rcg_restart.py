"""Recycled CG's restart mode (``deflation="restart"``, init-CG with deflated restarts)
against independent references: a plain gold of restarted init-CG matched by the compiled
kernel and by the NumPy path, the generalized harmonic Ritz update against the dense
pencil built from S = [W, P] explicitly, savings on a repeated system, and option checks."""
from __future__ import annotations

import types

import numpy as np
import pytest
import scipy.linalg
import scipy.sparse as sp
from gold_cg import restarted_init_cg

import linsolve
from linsolve import OptionError, gallery
from linsolve.core.operator import Operator
from linsolve.core.precond import Jacobi
from linsolve.recycling import dcg_kernels as K
from linsolve.recycling.rcg_restart import update_restart
from linsolve.recycling.recycle_ops import MatOps


def _canonical(A):
    A = sp.csr_matrix(A, dtype=np.float64)
    A.sum_duplicates()
    A.sort_indices()
    return A


def _problem(n=14, seed=1):
    A = _canonical(gallery.variable_diffusion2d(n, contrast=30.0, seed=seed))
    rng = np.random.default_rng(seed)
    return A, rng.standard_normal(A.shape[0])


def _low_modes(A, k, noise, seed=2):
    """k perturbed eigenvectors of D^-1 A of smallest eigenvalue (D = diag A): a recycled
    space of the kind the solver learns, rough enough that restarts still have work."""
    d = A.diagonal()
    lam, V = scipy.linalg.eigh(A.toarray(), np.diag(d))
    W = V[:, :k].T
    return W + noise * np.random.default_rng(seed).standard_normal(W.shape) * np.abs(W).max()


def _kernel(A, b, W, drop, tol, maxiter, store=0):
    """dpcg with Jacobi in restart mode; returns (x, norms, its, status, restarts, stored, P, alphas, rhos)."""
    n, k = A.shape[0], W.shape[0]
    AW = (A @ W.T).T.copy()
    Einv = np.linalg.inv(W @ AW.T) if k else np.empty((0, 0))
    ei, ef = np.empty(1, np.int64), np.empty(1)
    pats = (ei, ei.astype(np.int32), ef, ei, ei.astype(np.int32), ef, 1.0 / A.diagonal())
    x, norms = np.zeros(n), np.empty(maxiter)
    P, C = np.empty((store, n)), np.empty((store, 0))
    alphas, rhos, T = np.empty(store), np.empty(store + 1), np.empty((store + 1, 0))
    diagonals = K.csr_to_dia(A.indptr, A.indices, A.data, 16)
    its, status, restarts, stored = K.dpcg(A.indptr, A.indices, A.data, *diagonals, K.PC_JACOBI, *pats, b, x,
                                           np.ascontiguousarray(W), AW, Einv, drop, tol, maxiter, norms, P, C,
                                           alphas, rhos, T)
    return x, norms[:its], its, status, restarts, stored, P[:stored], alphas[:stored], rhos[:stored + 1]


@pytest.mark.parametrize("store", [0, 40], ids=["no-store", "first-run-deferred"])
@pytest.mark.parametrize("drop", [0.1, 1e-2])
def test_kernel_matches_gold_restarted_init_cg(drop, store):
    A, b = _problem()
    W = _low_modes(A, 6, 0.05)
    tol = 1e-10 * np.linalg.norm(b)
    x_ref, norms_ref, restarts_ref = restarted_init_cg(A, b, lambda r: r / A.diagonal(), W, drop, tol, 500,
                                                       first_run=store)
    x, norms, its, status, restarts, stored, *_ = _kernel(A, b, W, drop, tol, 500, store=store)
    assert status == K.CONVERGED and restarts_ref >= 2
    assert its == len(norms_ref) and restarts == restarts_ref
    np.testing.assert_allclose(norms, norms_ref, rtol=1e-6, atol=1e-3 * tol)
    np.testing.assert_allclose(x, x_ref, rtol=1e-8, atol=1e-9 * np.abs(x_ref).max())
    assert np.linalg.norm(b - A @ x) <= 1.01 * tol
    # the first run is kept whole up to the store, and nothing after the first restart
    assert stored == min(store, its)


def _solver_with_space(W, compiled, **kw):
    s = linsolve.make_solver("rcg", deflation="restart", recycle=W.shape[0], update_every=10**6, pc="jacobi",
                             compiled=compiled, **kw)
    s._W = np.ascontiguousarray(W)  # a given space, not updated by the solve: the gold's setting
    return s


@pytest.mark.parametrize("compiled", [True, False], ids=["compiled", "numpy"])
def test_solver_paths_match_gold(compiled):
    A, b = _problem(16, seed=3)
    W = _low_modes(A, 8, 0.05, seed=4)
    rtol = 1e-9
    tol = rtol * np.linalg.norm(b)
    x_ref, norms_ref, restarts_ref = restarted_init_cg(A, b, lambda r: r / A.diagonal(), W, 1e-2, tol, 1000)
    res = _solver_with_space(W, compiled, rtol=rtol, restart_drop=1e-2).solve(A, b)
    assert res.info["kernel"] == ("compiled" if compiled else "numpy")
    assert res.converged and restarts_ref >= 2
    assert res.iterations == len(norms_ref) and res.info["restarts"] == restarts_ref
    np.testing.assert_allclose(res.residual_norms, norms_ref, rtol=1e-6, atol=1e-3 * tol)
    np.testing.assert_allclose(res.x, x_ref, rtol=1e-7, atol=1e-8 * np.abs(x_ref).max())


def test_numpy_path_with_a_linear_operator_and_callback():
    """The NumPy path serves inputs the kernel does not: a LinearOperator and a callback."""
    import scipy.sparse.linalg as spla

    A, b = _problem(12, seed=5)
    seen = []
    s = linsolve.make_solver("rcg", deflation="restart", recycle=6, store=30, update_every=1, rtol=1e-9,
                             callback=lambda x: seen.append(1))
    its, restarts = [], []
    for _ in range(3):
        res = s.solve(spla.aslinearoperator(A), b)
        assert res.converged and res.info["kernel"] == "numpy"
        assert np.linalg.norm(b - A @ res.x) <= 1e-9 * np.linalg.norm(b) * (1 + 1e-6)
        its.append(res.iterations)
        restarts.append(res.info["restarts"])
    assert len(seen) == sum(its)
    assert restarts[0] == 0 and min(restarts[1:]) > 0
    assert its[2] < its[0]


def _dense_harmonic_ritz(A, Minv, S, k):
    """The k smallest harmonic Ritz pairs of M^-1 A over the rows of S, from dense
    products: (AS)^T M^-1 (AS) y = theta (S^T A S) y."""
    AS = (A @ S.T).T
    G = AS @ Minv @ AS.T
    F = S @ AS.T
    vals, Y = scipy.linalg.eigh((G + G.T) / 2, (F + F.T) / 2)
    return vals[:k], Y[:, :k].T @ S


@pytest.mark.parametrize("with_space", [False, True], ids=["first-solve", "with-W"])
def test_ritz_update_matches_dense_pencil(with_space):
    A, b = _problem(12, seed=6)
    n, k = A.shape[0], 5
    W = _low_modes(A, 6, 0.2, seed=7) if with_space else np.empty((0, n))
    store = 25
    # with W: directions of the first run (not A-orthogonal to W); without: plain PCG
    *_, P, alphas, rhos = _kernel(A, b, W, 1e-2, 1e-10 * np.linalg.norm(b), 500, store=store)
    assert P.shape[0] == store
    Minv = np.diag(1.0 / A.diagonal())
    AW = (A @ W.T).T
    Rinv = np.linalg.inv(np.linalg.cholesky(W @ AW.T).T) if with_space else None
    fake = types.SimpleNamespace(_W=None, _AW=AW, _proj=(None, Rinv), ritz_values=None)
    op = Operator(A)
    update_restart(fake, MatOps(op), W if with_space else None, P, alphas, rhos, k, Jacobi(op))
    vals, V = _dense_harmonic_ritz(A, Minv, np.vstack([W, P]), k)
    np.testing.assert_allclose(fake.ritz_values, vals, rtol=1e-6)
    # the same space: every new vector lies in the span of the reference vectors
    angles = scipy.linalg.subspace_angles(fake._W.T, V.T)
    assert angles.max() < 1e-4
    assert fake._AW is None  # A W of the new space is computed by the next solve


def _update(A, W, P, alphas, rhos, k, keep):
    n = A.shape[0]
    AW = (A @ W.T).T
    Rinv = np.linalg.inv(np.linalg.cholesky(W @ AW.T).T) if W.shape[0] else None
    fake = types.SimpleNamespace(_W=None, _AW=AW, _proj=(None, Rinv), ritz_values=None)
    op = Operator(A)
    update_restart(fake, MatOps(op), W if W.shape[0] else None, P, alphas, rhos, k, Jacobi(op), keep)
    assert fake._W.shape == (k, n)
    return fake


def test_truncated_ritz_update_matches_full_pencil():
    """keep = q: the pencil over [W, the q lowest Lanczos Ritz vectors of the stored run].
    Over a run long enough that the run's low Lanczos values have converged (60 stored
    directions, n = 144) its k values and space agree with the full pencil's to 1e-5 and
    1e-3 rad (they differ only through W's coupling to the discarded Lanczos vectors: 2e-3
    relative after 25 directions); without W it is the full pencil's exact answer; with q
    >= L it is the full pencil itself."""
    A, b = _problem(12, seed=6)
    n, k = A.shape[0], 5
    Minv = np.diag(1.0 / A.diagonal())
    W = _low_modes(A, 6, 0.2, seed=7)
    *_, P, alphas, rhos = _kernel(A, b, W, 1e-2, 1e-10 * np.linalg.norm(b), 500, store=60)
    assert P.shape[0] == 60
    vals, V = _dense_harmonic_ritz(A, Minv, np.vstack([W, P]), k)
    for q in (k, 3 * k):
        got = _update(A, W, P, alphas, rhos, k, q)
        np.testing.assert_allclose(got.ritz_values, vals, rtol=1e-5)
        assert scipy.linalg.subspace_angles(got._W.T, V.T).max() < 1e-3
    full = _update(A, W, P, alphas, rhos, k, 0)
    np.testing.assert_allclose(_update(A, W, P, alphas, rhos, k, 60).ritz_values, full.ritz_values, rtol=1e-12)
    np.testing.assert_allclose(full.ritz_values, vals, rtol=1e-6)
    # no W: the pencil is the run's tridiagonal alone, and its q lowest pairs are exact
    none = np.empty((0, n))
    *_, P0, alphas0, rhos0 = _kernel(A, b, none, 1e-2, 1e-10 * np.linalg.norm(b), 500, store=30)
    vals0, V0 = _dense_harmonic_ritz(A, Minv, P0, k)
    got = _update(A, none, P0, alphas0, rhos0, k, 2 * k)
    np.testing.assert_allclose(got.ritz_values, vals0, rtol=1e-8)
    assert scipy.linalg.subspace_angles(got._W.T, V0.T).max() < 1e-6


def test_update_interval_grows_then_drift_brings_an_update_forward():
    """update_max > update_every: on one matrix, every 2nd solve updates while an update
    moves the Ritz values by 25% or more, then the gaps are update_every, doubling up to
    update_max; a much harder matrix (its solves take far more iterations than the first
    solve after the latest update) makes the next solve update and the gaps start again."""
    A = gallery.poisson2d(16)
    rng = np.random.default_rng(11)
    u, top = 4, 16
    s = linsolve.make_solver("rcg", recycle=4, store=40, update_every=u, update_max=top, pc="jacobi", rtol=1e-8)
    assert s.opts["ritz_keep"] == 8  # 2k by default
    values = []

    def run(A, count):
        at = []
        for _ in range(count):
            prev = s.ritz_values
            r = s.solve(A, rng.standard_normal(A.shape[0]))
            assert r.converged
            at.append(s.ritz_values is not prev)
            if at[-1]:
                values.append(s.ritz_values)
        return at

    easy = run(A, 30)
    while not (easy[-1] and np.flatnonzero(easy)[-2] == len(easy) - 1 - top):  # up to a gap of update_max
        easy += run(A, 1)
        assert len(easy) < 120
    at = np.flatnonzero(easy)
    gaps = np.diff(at)
    assert at[0] == 0 and gaps[0] == 2 and gaps[-1] == top
    # each gap from the change the update before it made (relative, largest over the k values)
    expect, gap = [], 2
    for old, new in zip(values[:-1], values[1:], strict=True):
        change = np.max(np.abs(new - old) / np.abs(new))
        gap = max(u, min(2 * gap, top)) if change < 0.25 else 2
        expect.append(gap)
    assert list(gaps[1:]) == expect[:len(gaps) - 1], (gaps, expect)
    assert run(A, 1) == [False]  # the reference count for the drift test
    hard = gallery.variable_diffusion2d(16, contrast=1e4, seed=3)
    assert run(hard, 2) == [False, True]  # the first hard solve drifted, the second updates
    assert s._interval <= u


def test_a_repeated_system_converges_faster_the_second_time():
    A = gallery.poisson2d(32)
    b = np.random.default_rng(8).standard_normal(A.shape[0])
    s = linsolve.make_solver("rcg", deflation="restart", recycle=12, store=300, pc="jacobi", rtol=1e-8)
    first = s.solve(A, b)
    second = s.solve(A, b)
    assert first.converged and second.converged
    assert first.info["restarts"] == 0 and second.info["restarts"] > 0
    assert second.iterations <= 0.75 * first.iterations, (first.iterations, second.iterations)
    assert np.linalg.norm(b - A @ second.x) <= 1e-8 * np.linalg.norm(b) * (1 + 1e-6)


def test_modes_and_their_defaults():
    keys = ("recycle", "store", "update_every", "update_max")
    s = linsolve.make_solver("rcg")
    assert s.opts["deflation"] == "restart"
    assert {k: s.opts[k] for k in keys} == s.mode_defaults["restart"]
    assert s.opts["update_max"] > s.opts["update_every"] and s.opts["ritz_keep"] == 2 * s.opts["recycle"]
    e = linsolve.make_solver("rcg", deflation="every")
    assert {k: e.opts[k] for k in keys} == e.mode_defaults["every"]
    assert linsolve.make_solver("rcg", deflation="every", recycle=3).opts["recycle"] == 3
    assert linsolve.make_solver("rcg", recycle=5).opts["ritz_keep"] == 10
    # an interval asked for stays fixed unless update_max says otherwise
    assert linsolve.make_solver("rcg", update_every=3).opts["update_max"] == 3
    assert linsolve.make_solver("rcg", update_every=3, update_max=12).opts["update_max"] == 12


@pytest.mark.parametrize("opts,match", [
    ({"deflation": "always"}, "deflation"), ({"deflation": None}, "deflation"), ({"deflation": 1}, "deflation"),
    ({"restart_drop": 0.0}, "restart_drop"), ({"restart_drop": 1.0}, "restart_drop"),
    ({"restart_drop": -0.5}, "restart_drop"), ({"restart_drop": float("nan")}, "restart_drop"),
    ({"restart_drop": "0.1"}, "restart_drop"), ({"restart_drop": True}, "restart_drop"),
    ({"ritz_keep": -1}, "ritz_keep"), ({"ritz_keep": 2.5}, "ritz_keep"), ({"ritz_keep": True}, "ritz_keep"),
    ({"update_max": 0}, "update_max"), ({"update_max": 4.0}, "update_max"), ({"update_max": 4}, "update_max"),
    ({"update_every": 8, "update_max": 7}, "update_max"),
])
def test_mode_options_validated(opts, match):
    with pytest.raises(OptionError, match=match):
        linsolve.make_solver("rcg", **opts)
