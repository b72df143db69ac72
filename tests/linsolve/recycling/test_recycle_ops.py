"""BLAS thread pinning of the recycling solvers (``linsolve.recycling.recycle_ops.one_blas_thread``):
one OpenBLAS thread in the calling thread while a solve runs, the previous setting after it."""
import numpy as np
import pytest

import linsolve
from linsolve import gallery
from linsolve.recycling.recycle_ops import _openblas_local_setters, one_blas_thread


@pytest.fixture
def setters():
    fns = _openblas_local_setters()
    if not fns:
        pytest.skip("no OpenBLAS with a per-thread setting in this process")
    return fns


def _local(fn):
    """The calling thread's OpenBLAS thread count (0: the global one), left unchanged."""
    n = fn(1)
    fn(n)
    return n


def test_block_runs_on_one_thread_and_restores_the_setting(setters):
    for fn in setters:
        fn(2)
    try:
        with one_blas_thread():
            assert [_local(fn) for fn in setters] == [1] * len(setters)
        assert [_local(fn) for fn in setters] == [2] * len(setters)
        with pytest.raises(RuntimeError), one_blas_thread():
            raise RuntimeError("the setting is restored on errors too")
        assert [_local(fn) for fn in setters] == [2] * len(setters)
    finally:
        for fn in setters:
            fn(0)


@pytest.mark.parametrize("name", ["gcrodr", "rcg"])
def test_recycling_solvers_solve_with_one_blas_thread(name, setters, monkeypatch):
    """Inside a solve the BLAS runs on one thread; after it, as the caller had set it."""
    from linsolve.recycling import gcrodr, rcg

    seen = []
    if name == "gcrodr":
        inner, owner, attr = gcrodr.GCRODR._cycle, gcrodr.GCRODR, "_cycle"
    else:
        inner, owner, attr = rcg.RecycledCG._prepare, rcg.RecycledCG, "_prepare"

    def spy(self, *a, **kw):
        seen.append([_local(fn) for fn in setters])
        return inner(self, *a, **kw)

    monkeypatch.setattr(owner, attr, spy)
    A = gallery.poisson2d(12)
    b = np.random.default_rng(0).standard_normal(A.shape[0])
    for fn in setters:
        fn(2)
    try:
        res = linsolve.make_solver(name, pc="jacobi", rtol=1e-10).solve(A, b)
        after = [_local(fn) for fn in setters]
    finally:
        for fn in setters:
            fn(0)
    assert res.converged and seen and all(s == [1] * len(setters) for s in seen)
    assert after == [2] * len(setters)
    np.testing.assert_allclose(A @ res.x, b, rtol=1e-8, atol=1e-8 * np.linalg.norm(b))
