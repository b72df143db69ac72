"""maxiter=10**9 (a user's "no cap") does not size the residual history that the compiled
kernels (rcg, sor, ssor-pcg, bandit-sor) and the PETSc KSP driver allocate up front (10**9
doubles are 7.45 GiB). The history is bounded by
``linsolve.core.result.HISTORY_CAP``; past it the iteration goes on unrecorded and
``info["residual_norms_dropped"]`` says how many norms are missing."""
from __future__ import annotations

import tracemalloc

import numpy as np
import pytest

import linsolve
import linsolve.core.result
from linsolve import gallery

CASES = [("rcg", {"pc": "jacobi"}), ("sor", {"omega": 1.5}), ("ssor-pcg", {}), ("bandit-sor", {}),
         pytest.param("petsc", {}, marks=pytest.mark.petsc), pytest.param("petsc", {"ksp_type": "gmres"},
                                                                        marks=pytest.mark.petsc),
         pytest.param("cg", {"backend": "petsc"}, marks=pytest.mark.petsc)]


def _system():
    A = gallery.poisson2d(12)
    return A, np.random.default_rng(3).standard_normal(A.shape[0])


def _needs_petsc(name, opts, request):
    if name == "petsc" or opts.get("backend") == "petsc":
        request.getfixturevalue("petsc")


@pytest.mark.parametrize("name,opts", CASES)
def test_huge_maxiter_allocates_what_the_iterations_need(name, opts, request):
    _needs_petsc(name, opts, request)
    A, b = _system()
    ref = linsolve.make_solver(name, rtol=1e-8, maxiter=5000, **opts).solve(A, b)
    linsolve.make_solver(name, rtol=1e-8, maxiter=10**9, **opts).solve(A, b)  # compiles outside the measurement
    solver = linsolve.make_solver(name, rtol=1e-8, maxiter=10**9, **opts)  # fresh: rcg and bandit-sor learn
    tracemalloc.start()
    try:
        res = solver.solve(A, b)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 64 * 2**20, f"{name}: {peak / 2**20:.0f} MiB for a {A.shape[0]}-unknown system"
    assert ref.converged and res.converged and res.iterations == ref.iterations
    np.testing.assert_allclose(res.residual_norms, ref.residual_norms, rtol=1e-12)
    assert len(res.residual_norms) == len(ref.residual_norms) and "residual_norms_dropped" not in res.info


@pytest.mark.parametrize("name,opts", CASES)
def test_history_past_the_cap_is_cut_and_said(name, opts, request, monkeypatch):
    _needs_petsc(name, opts, request)
    A, b = _system()
    ref = linsolve.make_solver(name, rtol=1e-8, maxiter=5000, **opts).solve(A, b)
    monkeypatch.setattr(linsolve.core.result, "HISTORY_CAP", 5)
    res = linsolve.make_solver(name, rtol=1e-8, maxiter=5000, **opts).solve(A, b)
    kept = len(res.residual_norms)
    assert ref.iterations > 10 and "residual_norms_dropped" not in ref.info
    assert res.converged and res.iterations == ref.iterations  # the iteration is not cut short
    np.testing.assert_allclose(res.x, ref.x, rtol=1e-12, atol=1e-14)
    assert 5 <= kept <= 6 < res.iterations  # PETSc's buffer holds the initial residual and one more
    np.testing.assert_allclose(res.residual_norms, ref.residual_norms[:kept], rtol=1e-12)
    assert res.info["residual_norms_dropped"] == res.iterations - kept
