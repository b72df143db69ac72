"""Thomas factors against SciPy's banded solver."""
from __future__ import annotations

import numpy as np
from scipy.linalg import solve_banded

from linsolve.structured.tridiag import thomas_factor


def _thomas_solve(lower, inv, cp, d):
    x = np.empty_like(d)
    x[0] = d[0] * inv[0]
    for j in range(1, d.shape[0]):
        x[j] = (d[j] - lower[j] * x[j - 1]) * inv[j]
    for j in range(d.shape[0] - 2, -1, -1):
        x[j] -= cp[j] * x[j + 1]
    return x


def test_thomas_matches_banded_solve_for_batched_systems():
    rng = np.random.default_rng(0)
    n, m = 9, 4
    lower = np.r_[0.0, -rng.uniform(0.5, 1.0, n - 1)]
    upper = np.r_[-rng.uniform(0.5, 1.0, n - 1), 0.0]
    shift = rng.uniform(0.0, 3.0, m)                    # one system per trailing index
    diag = 2.5 + shift[None, :] + np.zeros((n, m))
    inv, cp = thomas_factor(lower[:, None], diag, np.broadcast_to(upper[:, None], (n, m)))
    d = rng.standard_normal((n, m))
    x = _thomas_solve(lower[:, None], inv, cp, d)
    for k in range(m):
        ab = np.vstack([np.r_[0.0, upper[:-1]], diag[:, k], np.r_[lower[1:], 0.0]])
        np.testing.assert_allclose(x[:, k], solve_banded((1, 1), ab, d[:, k]), rtol=1e-12)
