"""Regression tests from the session-3 user-path review of datagen and gcrodr: each one
failed before its fix."""
from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
import scipy.sparse.linalg as spla

import linsolve


def _tridiag(n):
    return sp.diags([-1.0, 2.2, -1.1], [-1, 0, 1], shape=(n, n)).tocsr()


@pytest.mark.parametrize("side", ["right", "left"])
@pytest.mark.parametrize("case", ["nan_operator", "overflow"])
def test_gcrodr_non_finite_first_step_prints_nothing(capfd, case, side):
    # NaN/Inf at the first Arnoldi step with no recycled space left an empty cycle that was
    # handed to LAPACK, whose xerbla printed "DGETRF parameter number 4" to the terminal
    n = 20
    A = _tridiag(n)
    if case == "nan_operator":
        A = spla.LinearOperator((n, n), matvec=lambda v: np.full(n, np.nan), dtype=np.float64)
    else:
        A = A * 1e300  # finite entries, A v overflows
    s = linsolve.make_solver("gcrodr", restart=10, recycle=4, pc_side=side)
    r = s.solve(A, np.ones(n))
    out, err = capfd.readouterr()
    assert "DGETRF" not in out + err and out + err == ""
    assert not r.converged and r.iterations == 0
    assert "non-finite" in r.reason or "NaN" in r.reason
    # the solver is still usable and right afterwards
    A2 = _tridiag(n)
    b = np.arange(1.0, n + 1)
    r2 = s.solve(A2, b)
    assert r2.converged
    assert np.allclose(r2.x, np.linalg.solve(A2.toarray(), b), rtol=1e-4)
