"""What a solve reports at the limits: iteration counts and histories that match the work done,
zero tolerances, and diverged iterates reported without NumPy warnings."""
from __future__ import annotations

import warnings

import h5py
import numpy as np
import pytest
import scipy.sparse as sp
import scipy.sparse.linalg as spla
from datagen_run import run_datagen
from solver_problems import poisson_problem

import linsolve
from linsolve import gallery


def test_bicgstab_counts_the_half_step_that_converged():
    # SciPy returns from the half step without calling the callback: that step still counts
    # (a 1 x 1 system takes one iteration and has a one-entry history)
    res = linsolve.make_solver("bicgstab").solve(np.array([[2.0]]), np.array([4.0]))
    assert res.converged and res.x[0] == pytest.approx(2.0)
    assert res.iterations == 1 and len(res.residual_norms) == 1

    A, b, xref = poisson_problem()
    tol = 1e-10 * np.linalg.norm(b)
    res = linsolve.make_solver("bicgstab", rtol=1e-10).solve(A, b)
    assert res.converged
    assert np.linalg.norm(res.x - xref) <= 1e-8 * np.linalg.norm(xref)
    # the history is the true residual per iteration and ends with the one that met the rule
    assert len(res.residual_norms) == res.iterations
    assert res.residual_norms[-1] <= tol
    assert res.residual_norms[-1] == pytest.approx(np.linalg.norm(b - A @ res.x), rel=1e-12)
    # SciPy's own count of work: one x update per callback, plus the half step
    calls = []
    spla.bicgstab(A, b, rtol=0.0, atol=tol, callback=lambda xk: calls.append(1))
    assert res.iterations == len(calls) + 1


@pytest.mark.parametrize("opts", [{}, pytest.param({"backend": "petsc"}, marks=pytest.mark.petsc)])
def test_direct_solve_above_a_zero_tolerance_does_not_blame_a_recurrence(opts, request):
    # rtol=0: the LU solution's rounding residual is above the rule, reported honestly, and
    # the reason does not speak of a "recurrence" a direct solver does not have
    if opts:
        request.getfixturevalue("petsc")
    A, b, xref = poisson_problem(8)
    res = linsolve.make_solver("direct", rtol=0.0, **opts).solve(A, b)
    assert not res.converged and res.relative_residual == pytest.approx(
        np.linalg.norm(b - A @ res.x) / np.linalg.norm(b))
    assert res.reason.startswith("direct solve done but true residual") and "recurrence" not in res.reason
    assert np.linalg.norm(res.x - xref) <= 1e-12 * np.linalg.norm(xref)


def test_diverged_iterate_is_reported_without_a_numpy_warning(tmp_path):
    # SOR on an indefinite matrix overflows to ~1e300 before NaN; the base class's residual
    # check reports it without a NumPy overflow warning (also under datagen generate --quiet)
    n = 20
    A = sp.diags([-2.0, 1.0, -2.0], [-1, 0, 1], shape=(n, n)).tocsr()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        r = linsolve.make_solver("sor", maxiter=100000).solve(A, np.ones(n))
    assert not r.converged and r.reason == "breakdown: non-finite iterate"
    assert np.all(r.x == 0.0) and r.relative_residual == 1.0
    p = run_datagen("generate", "helmholtz", "--n", "1", "--grid", "32", "--solver", "sor", "--solver-opt",
                 "maxiter=100000", "--quiet", "--out", "h.h5", cwd=tmp_path)
    assert p.returncode == 0 and p.stderr == "" and p.stdout == ""
    with h5py.File(tmp_path / "h.h5", "r") as f:
        assert not f["solver_stats/converged"][0]


@pytest.mark.parametrize("pc", ["none", "jacobi"])
def test_cg_with_zero_tolerance_keeps_its_solution(pc, tmp_path):
    # rtol=0 (run to maxiter): once r.z underflows SciPy's CG divides 0 by 0; the solve keeps
    # the iterate it reached (relative residual ~1e-15), without a RuntimeWarning, and
    # datagen --solver-opt rtol=0 stores it
    A = gallery.poisson2d(8)
    b = np.ones(A.shape[0])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        r = linsolve.make_solver("cg", rtol=0.0, pc=pc).solve(A, b)
    assert not r.converged  # ||r|| <= 0 is out of reach in floating point
    assert r.relative_residual < 1e-12
    np.testing.assert_allclose(r.x, np.linalg.solve(A.toarray(), b), rtol=1e-12)
    p = run_datagen("generate", "darcy", "--n", "1", "--grid", "8", "--solver-opt", "rtol=0", "--solver-opt",
                 f"pc={pc}", "--quiet", "--out", "d.h5", cwd=tmp_path)
    assert p.returncode == 0 and p.stderr == ""
    with h5py.File(tmp_path / "d.h5", "r") as f:
        assert f["solver_stats/relative_residual"][0] < 1e-12 and np.any(f["solution_vectors/x"][0] != 0)
