"""Constant-coefficient tridiagonal solves along axis 0 for every (x, z) column at once
(the implicit wall-normal diffusion of the velocity). The Thomas factors depend only on
y, so they are computed once per time step size and reused by every substep."""
from __future__ import annotations

import numpy as np

from linsolve.structured.tridiag import thomas_factor


class TriFactor:
    """Factors of the system lower[j] x[j-1] + diag[j] x[j] + upper[j] x[j+1] = d[j]."""

    def __init__(self, lower, diag, upper, backend):
        lower, diag, upper = (np.asarray(a, dtype=np.float64) for a in (lower, diag, upper))
        n = diag.size
        inv, cp = thomas_factor(lower, diag, upper)
        self.n = n
        self.np_factors = (lower.copy(), inv, cp)
        self.backend = backend
        self._numba = None
        if backend.name == "numpy":
            self._numba = _numba_kernel()

    def solve(self, d):
        """Solve in place for d of shape (n, ...) and return it."""
        lower, inv, cp = self.np_factors
        if self._numba is not None and d.flags.c_contiguous:
            self._numba(lower, inv, cp, d.reshape(self.n, -1))
            return d
        d[0] *= inv[0]
        for j in range(1, self.n):
            d[j] = (d[j] - float(lower[j]) * d[j - 1]) * float(inv[j])
        for j in range(self.n - 2, -1, -1):
            d[j] -= float(cp[j]) * d[j + 1]
        return d


_KERNEL = None


def _numba_kernel():
    global _KERNEL
    if _KERNEL is None:
        try:
            import numba
        except ImportError:  # pragma: no cover - numba is a dependency; pure NumPy still works
            _KERNEL = False
            return None

        @numba.njit(cache=True, fastmath=False)
        def thomas(lower, inv, cp, d):
            n, m = d.shape
            for c in range(m):
                d[0, c] *= inv[0]
            for j in range(1, n):
                lj, ij = lower[j], inv[j]
                for c in range(m):
                    d[j, c] = (d[j, c] - lj * d[j - 1, c]) * ij
            for j in range(n - 2, -1, -1):
                cj = cp[j]
                for c in range(m):
                    d[j, c] -= cj * d[j + 1, c]

        _KERNEL = thomas
    return _KERNEL or None
