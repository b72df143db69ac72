"""Shared pieces of the recycling solvers (``linsolve.recycling.recycle_ops``): BLAS thread pinning
(one OpenBLAS thread in the calling thread while a solve runs, the previous setting after it) and the
PETSc preconditioner set up again for each matrix of a sequence."""
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


def _count_pc_builds(m) -> list:
    """Patch (through monkeypatch ``m``) PetscPC's constructor to record every PC built afresh."""
    from linsolve.recycling.recycle_ops import PetscPC

    built = []
    init = PetscPC.__init__
    m.setattr(PetscPC, "__init__", lambda self, *a, **k: built.append(1) or init(self, *a, **k))
    return built


def _gcrodr(pc, pc_options=None):
    return linsolve.make_solver("gcrodr", backend="petsc", pc=pc, pc_options=pc_options, rtol=1e-10,
                                restart=30, recycle=8)


def _sequence_runs(pc, pc_options, mats, b, reuse, monkeypatch):
    """Solve ``mats`` in turn with one solver; returns (iterations, solutions, PCs built)."""
    from linsolve.recycling.recycle_ops import PetscPC

    with monkeypatch.context() as m:
        built = _count_pc_builds(m)
        if not reuse:
            m.setattr(PetscPC, "fits", lambda self, *a: False)
        s = _gcrodr(pc, pc_options)
        its, xs = [], []
        for A in mats:
            r = s.solve(A, b)
            assert r.converged, r.reason
            its.append(r.iterations)
            xs.append(r.x)
    return its, xs, len(built)


@pytest.mark.petsc
@pytest.mark.parametrize("pc, pc_options", [("ilu", None), ("asm", {"sub_pc_type": "ilu", "asm_overlap": 1})])
def test_petsc_pc_is_set_up_again_for_each_matrix_of_a_sequence(petsc, pc, pc_options, monkeypatch):
    # matrices with one sparsity pattern: one PC object set up for each (PCSetOperators, as
    # KSPSetOperators does for a KSP's PC) solves exactly as a PC built afresh for each
    mats = [gallery.convection_diffusion2d(20, peclet=p) for p in (10.0, 25.0, 40.0, 60.0)]
    b = np.random.default_rng(0).standard_normal(mats[0].shape[0])
    its, xs, built = _sequence_runs(pc, pc_options, mats, b, True, monkeypatch)
    its0, xs0, built0 = _sequence_runs(pc, pc_options, mats, b, False, monkeypatch)
    assert (built, built0) == (1, len(mats))
    assert its == its0
    for x, x0, A in zip(xs, xs0, mats, strict=True):
        np.testing.assert_allclose(x, x0, rtol=1e-12, atol=1e-14)
        assert np.linalg.norm(b - A @ x) <= 1e-10 * np.linalg.norm(b) * (1 + 1e-6)


@pytest.mark.petsc
def test_petsc_pc_follows_entries_changed_in_place(petsc, monkeypatch):
    # a time step that rescales A.data in place: the same PC object, set up for the new entries
    A = gallery.convection_diffusion2d(20, peclet=10.0).tocsr()
    b = np.ones(A.shape[0])
    built = _count_pc_builds(monkeypatch)
    s = _gcrodr("ilu")
    s.solve(A, b)
    A.data *= 3.0
    A.setdiag(A.diagonal() + 1.0)
    r = s.solve(A, b)
    ref = _gcrodr("ilu").solve(A, b)
    assert built == [1, 1]  # (the reference solver's own)
    assert r.converged and np.linalg.norm(b - A @ r.x) <= 1e-10 * np.linalg.norm(b) * (1 + 1e-6)
    np.testing.assert_allclose(r.x, ref.x, rtol=1e-7)
