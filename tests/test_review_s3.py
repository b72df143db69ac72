"""Regression tests from the adversarial user-path review of the solver interface, bandit
SOR and DCDM (session 3): inputs a SciPy/PETSc user hands the public API that once gave a
wrong result field, a traceback from deep inside a library, or silent garbage."""
from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse.linalg as spla

import linsolve
from linsolve import gallery


def _poisson(n=8):
    A = gallery.poisson2d(n)
    b = np.arange(1.0, A.shape[0] + 1)
    return A, b, np.linalg.solve(A.toarray(), b)


# --- SciPy bicgstab's half-step exit -------------------------------------------------------
def test_bicgstab_counts_the_half_step_that_converged():
    # SciPy returns from the half step without calling the callback: a 1 x 1 system was
    # solved with "0 iterations" and an empty history
    res = linsolve.make_solver("bicgstab").solve(np.array([[2.0]]), np.array([4.0]))
    assert res.converged and res.x[0] == pytest.approx(2.0)
    assert res.iterations == 1 and len(res.residual_norms) == 1

    A, b, xref = _poisson()
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
