"""Compiled SOR / SSOR kernels on CSR matrices (numba, ``cache=True``, no fastmath).

Notation: A = L + D + U (strictly lower, diagonal, strictly upper) and W = D/w + L.

* ``sor_sweep`` / ``sor_sweep_backward``: one in-place Gauss-Seidel-type sweep with
  relaxation w, i.e. x <- x + W^-1 (b - A x) (forward) or with W' = D/w + U (backward).
  This is the kernel compared against PETSc's ``MatSOR``.
* ``sor_solve``: SOR as a stationary solver. It iterates on the correction
  d_k = W^-1 r_k instead of on x, because then the next residual is available for free:
  r_{k+1} = r_k - A d_k = -((1 - 1/w) D + U) d_k. Row i of one pass computes r_{k+1,i}
  from the upper part of row i (old d) and then d_{k+1,i} from the lower part (new d),
  so one pass over the nonzeros gives both the exact residual norm used by the stopping
  test and the next sweep: the same cost as a bare sweep, half the cost of a sweep plus
  a separate residual product.
* ``ssor_apply``: M^-1 r for the SSOR preconditioner
  M = 1/(w(2-w)) (D + wL) D^-1 (D + wU) = 1/(2-w) (D/w + L) (D/w)^-1 (D/w + U),
  which is what one symmetric SOR sweep started from zero applies (Saad, *Iterative
  Methods*, sec. 4.1; PETSc PCSOR with a symmetric sweep; the paper's MATLAB code).
  Forward substitution with the lower half, backward substitution with the upper half:
  one pass over the nonzeros.
* ``ssor_pcg``: preconditioned conjugate gradients with ``ssor_apply``, the whole loop
  compiled (SciPy's ``cg`` with a ``LinearOperator`` pays Python overhead per iteration;
  ``benchmarks/bandit_sor.py`` measures both).

Status codes returned by the solvers: 0 converged, 1 iteration cap reached,
2 breakdown (non-finite residual, or p^T A p <= 0 in CG).
"""
from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from numba import njit

from linsolve.core.errors import OptionError, SolverError
from linsolve.core.result import history_length

CONVERGED, MAXITER, BREAKDOWN = 0, 1, 2


# --- kernels -------------------------------------------------------------------------
@njit(cache=True, fastmath=False)
def sor_sweep(indptr, indices, data, dptr, dinv, b, x, omega):
    # Unsigned positions spare numba's negative-index wraparound test on every access.
    n = x.shape[0]
    one = np.uint64(1)
    for i in range(n):
        s = b[i]
        k, end = np.uint64(indptr[i]), np.uint64(indptr[i + 1])
        while k < end:
            s -= data[k] * x[np.uint64(indices[k])]
            k += one
        x[i] += omega * s * dinv[i]


@njit(cache=True, fastmath=False)
def sor_sweep_backward(indptr, indices, data, dptr, dinv, b, x, omega):
    n = x.shape[0]
    for i in range(n - 1, -1, -1):
        s = b[i]
        for k in range(indptr[i], indptr[i + 1]):
            s -= data[k] * x[indices[k]]
        x[i] += omega * s * dinv[i]


@njit(cache=True, fastmath=False)
def csr_residual(indptr, indices, data, b, x, r):
    n = x.shape[0]
    for i in range(n):
        s = b[i]
        for k in range(indptr[i], indptr[i + 1]):
            s -= data[k] * x[indices[k]]
        r[i] = s


@njit(cache=True, fastmath=False)
def sor_solve(indptr, indices, data, dptr, dinv, r, x, omega, tol, maxiter, norms):
    """SOR from x with initial residual r (overwritten); x is updated in place.
    Stops at the first k with ||r_k|| <= tol; norms[k-1] = ||r_k|| while norms has room
    (``history_length``: its length need not follow maxiter). Returns (k, status)."""
    n = x.shape[0]
    d = r  # the correction overwrites the residual: row i's residual is dead once used
    for i in range(n):
        s = r[i]
        for k in range(indptr[i], dptr[i]):
            s -= data[k] * d[indices[k]]
        d[i] = omega * s * dinv[i]
    c = 1.0 / omega - 1.0
    for it in range(1, maxiter + 1):
        rr = 0.0
        for i in range(n):
            di = d[i]
            p = dptr[i]
            s = c * data[p] * di
            for k in range(p + 1, indptr[i + 1]):
                s -= data[k] * d[indices[k]]
            rr += s * s
            x[i] += di
            for k in range(indptr[i], p):
                s -= data[k] * d[indices[k]]
            d[i] = omega * s * dinv[i]
        rn = np.sqrt(rr)
        if it <= norms.shape[0]:
            norms[it - 1] = rn
        if not np.isfinite(rn):
            return it, BREAKDOWN
        if rn <= tol:
            return it, CONVERGED
    return maxiter, MAXITER


@njit(cache=True, fastmath=False)
def ssor_apply(indptr, indices, data, dptr, dinv, omega, r, out):
    n = r.shape[0]
    for i in range(n):
        s = r[i]
        for k in range(indptr[i], dptr[i]):
            s -= data[k] * out[indices[k]]
        out[i] = omega * s * dinv[i]
    # (D/w + U) u = (D/w) t, i.e. u_i = t_i - w/a_ii sum_{j>i} a_ij u_j
    for i in range(n - 1, -1, -1):
        s = 0.0
        for k in range(dptr[i] + 1, indptr[i + 1]):
            s += data[k] * out[indices[k]]
        out[i] -= omega * s * dinv[i]
    scale = 2.0 - omega
    for i in range(n):
        out[i] *= scale


@njit(cache=True, fastmath=False)
def _dot(a, b):
    s = 0.0
    for i in range(a.shape[0]):
        s += a[i] * b[i]
    return s


@njit(cache=True, fastmath=False)
def _matvec(indptr, indices, data, x, y):
    for i in range(x.shape[0]):
        s = 0.0
        for k in range(indptr[i], indptr[i + 1]):
            s += data[k] * x[indices[k]]
        y[i] = s


@njit(cache=True, fastmath=False)
def ssor_pcg(indptr, indices, data, dptr, dinv, omega, b, x, tol, maxiter, norms, precondition):
    """PCG from x (updated in place) with the SSOR preconditioner (or none when
    ``precondition`` is False); norms[k-1] = ||r_k|| while norms has room. Returns
    (iterations, status)."""
    n = x.shape[0]
    r = np.empty(n)
    z = np.empty(n)
    q = np.empty(n)
    csr_residual(indptr, indices, data, b, x, r)
    if np.sqrt(_dot(r, r)) <= tol:
        return 0, CONVERGED
    if precondition:
        ssor_apply(indptr, indices, data, dptr, dinv, omega, r, z)
    else:
        z[:] = r
    p = z.copy()
    rz = _dot(r, z)
    for it in range(1, maxiter + 1):
        _matvec(indptr, indices, data, p, q)
        pq = _dot(p, q)
        if not (pq > 0.0) or not np.isfinite(pq):
            if it <= norms.shape[0]:
                norms[it - 1] = np.sqrt(_dot(r, r))
            return it - 1, BREAKDOWN
        alpha = rz / pq
        rr = 0.0
        for i in range(n):
            x[i] += alpha * p[i]
            r[i] -= alpha * q[i]
            rr += r[i] * r[i]
        rn = np.sqrt(rr)
        if it <= norms.shape[0]:
            norms[it - 1] = rn
        if rn <= tol:
            return it, CONVERGED
        if precondition:
            ssor_apply(indptr, indices, data, dptr, dinv, omega, r, z)
        else:
            z[:] = r
        rz_new = _dot(r, z)
        beta = rz_new / rz
        rz = rz_new
        for i in range(n):
            p[i] = z[i] + beta * p[i]
    return maxiter, MAXITER


@njit(cache=True, fastmath=False)
def sor_iteration_counts(indptr, indices, data, dptr, dinv, b, omegas, tol_rel, maxiter):
    """Iterations SOR from x = 0 needs for each w in ``omegas`` (stop at
    ||r_k|| <= tol_rel ||b||, capped at maxiter): one row of a system x arm table."""
    n = b.shape[0]
    out = np.empty(omegas.shape[0], dtype=np.int64)
    norms = np.empty(0)  # counts only: no history
    bn = np.sqrt(_dot(b, b))
    for a in range(omegas.shape[0]):
        x = np.zeros(n)
        r = b.copy()
        its, status = sor_solve(indptr, indices, data, dptr, dinv, r, x, omegas[a], tol_rel * bn, maxiter, norms)
        # a diverged run stops at its first non-finite residual: that count is no success
        # (young.iteration_count, the ssor-pcg table and the solver say maxiter too)
        out[a] = its if status == CONVERGED else maxiter
    return out


# --- Python-side preparation --------------------------------------------------------
@njit(cache=True)
def _diagonal_positions(indptr, indices):
    n = indptr.shape[0] - 1
    dptr = np.full(n, -1, dtype=np.int64)
    for i in range(n):
        for k in range(indptr[i], indptr[i + 1]):
            if indices[k] == i:
                dptr[i] = k
                break
    return dptr


class CSRKernelData:
    """A CSR matrix prepared for the kernels: float64 data, sorted indices without
    duplicates, and the position of each row's diagonal entry (which must be nonzero).
    A canonical float64 CSR matrix is used as is (no copy): a sequence of solves with
    changing matrices pays one O(nnz) scan per matrix."""

    def __init__(self, A, who: str = "SOR"):
        A = A if sp.isspmatrix_csr(A) else sp.csr_matrix(A)
        if A.dtype != np.float64:
            A = A.astype(np.float64)
        if A.shape[0] != A.shape[1]:
            raise SolverError(f"{who} needs a square matrix, got shape {A.shape}")
        if not A.has_canonical_format:
            A = A.copy()
            A.sum_duplicates()  # also sorts the indices
        n = A.shape[0]
        dptr = _diagonal_positions(A.indptr, A.indices)
        bad = np.flatnonzero(dptr < 0)
        if bad.size == 0:
            zero = A.data[dptr] == 0
            bad = np.flatnonzero(zero)
        if bad.size:
            i = int(bad[0])
            raise SolverError(f"{who} needs a nonzero diagonal; A[{i}, {i}] is zero")
        self.n = n
        self.nnz = int(A.nnz)
        # 64-bit indices and a precomputed 1/a_ii: both measurably faster in the loops
        self.indptr, self.indices = A.indptr.astype(np.int64), A.indices.astype(np.int64)
        self.data, self.dptr = A.data, dptr
        self.dinv = 1.0 / A.data[dptr]
        self.matrix = A

    @property
    def arrays(self):
        return self.indptr, self.indices, self.data, self.dptr, self.dinv


def check_omega(omega, who: str = "SOR") -> float:
    try:
        w = float(omega)
    except (TypeError, ValueError) as exc:
        raise OptionError(f"{who} omega must be a number in (0, 2), got {omega!r}") from exc
    if not 0.0 < w < 2.0:
        raise OptionError(f"{who} omega must lie in the open interval (0, 2), got {omega!r}")
    return w


def as_kernel_data(A, who: str = "SOR") -> CSRKernelData:
    return A if isinstance(A, CSRKernelData) else CSRKernelData(A, who)


class SSORApply:
    """Callable applying the SSOR preconditioner M^-1 r (see the module docstring) with
    the compiled kernel: ``SSORApply(A_csr, omega)(r)``."""

    def __init__(self, A, omega: float = 1.0):
        self.omega = check_omega(omega, "SSOR")
        self.kd = as_kernel_data(A, "SSOR")

    def __call__(self, r: np.ndarray) -> np.ndarray:
        r = np.ascontiguousarray(r, dtype=np.float64).reshape(-1)
        out = np.empty_like(r)
        ssor_apply(*self.kd.arrays, self.omega, r, out)
        return out


def sor_solve_array(kd: CSRKernelData, b, x0, omega, tol, maxiter):
    """Run ``sor_solve``; returns (x, iterations, residual norms, status)."""
    x = np.array(x0, dtype=np.float64)
    r = np.empty(kd.n)
    csr_residual(kd.indptr, kd.indices, kd.data, np.ascontiguousarray(b, dtype=np.float64), x, r)
    r0 = float(np.linalg.norm(r))
    if r0 <= tol:
        return x, 0, np.zeros(0), CONVERGED, r0
    norms = np.empty(history_length(maxiter))
    its, status = sor_solve(*kd.arrays, r, x, float(omega), float(tol), int(maxiter), norms)
    return x, int(its), norms[:its].copy(), int(status), r0


def ssor_pcg_array(kd: CSRKernelData, b, x0, omega, tol, maxiter, precondition=True):
    x = np.array(x0, dtype=np.float64)
    norms = np.empty(history_length(maxiter))
    its, status = ssor_pcg(*kd.arrays, float(omega), np.ascontiguousarray(b, dtype=np.float64), x,
                           float(tol), int(maxiter), norms, bool(precondition))
    return x, int(its), norms[:its].copy(), int(status)
