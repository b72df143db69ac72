"""Young's SOR theory as utilities, plus the instance-optimal w found by search.

For a consistently ordered matrix with real Jacobi eigenvalues and Jacobi spectral
radius rho_J < 1 (e.g. the 5-point Laplacian in natural ordering), Young's theorem gives
the asymptotically optimal relaxation parameter w* = 2 / (1 + sqrt(1 - rho_J^2)) and
rho(SOR_{w*}) = w* - 1. For the model problem on an n x n grid, rho_J = cos(pi h) with
h = 1/(n+1), so w* = 2 / (1 + sin(pi h)).

Asymptotic optimality is not optimality for a finite tolerance and a given right-hand
side; ``instance_optimal_omega`` searches for the w that minimises the actual iteration
count (a coarse grid, then golden-section refinement around the best grid point, as in
the paper's experiments).
"""
from __future__ import annotations

import math

import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spla

from linsolve.core.errors import OptionError, SolverError
from linsolve.relaxation.sor_kernels import CONVERGED, as_kernel_data, sor_solve_array, ssor_pcg_array


def jacobi_iteration_matrix(A) -> sp.csr_matrix:
    """I - D^-1 A as a sparse matrix."""
    A = sp.csr_matrix(A, dtype=np.float64)
    d = A.diagonal()
    if np.any(d == 0):
        raise SolverError("the Jacobi iteration needs a nonzero diagonal")
    return (sp.identity(A.shape[0], format="csr") - sp.diags(1.0 / d) @ A).tocsr()


def jacobi_spectral_radius(A, symmetric: bool | None = None, dense_below: int = 400) -> float:
    """rho(I - D^-1 A). Dense eigenvalues for small matrices; otherwise ARPACK on the
    symmetric similarity D^-1/2 A D^-1/2 when A is symmetric with a positive diagonal
    (real spectrum, so only the two extreme eigenvalues are needed), else on I - D^-1 A."""
    A = sp.csr_matrix(A, dtype=np.float64)
    n = A.shape[0]
    d = A.diagonal()
    if np.any(d == 0):
        raise SolverError("the Jacobi iteration needs a nonzero diagonal")
    if symmetric is None:
        symmetric = abs(A - A.T).max() <= 1e-14 * abs(A).max() if n > 0 else True
    if n <= dense_below:
        J = jacobi_iteration_matrix(A).toarray()
        return float(np.max(np.abs(np.linalg.eigvals(J))))
    if symmetric and np.all(d > 0):
        s = 1.0 / np.sqrt(d)
        S = (sp.diags(s) @ A @ sp.diags(s)).tocsr()
        # Eigenvalues of J are 1 - mu for mu in spec(S); the radius comes from an extreme mu.
        hi = spla.eigsh(S, k=1, which="LA", return_eigenvectors=False, tol=1e-10)[0]
        lo = spla.eigsh(S, k=1, which="SA", return_eigenvectors=False, tol=1e-10)[0]
        return float(max(abs(1.0 - hi), abs(1.0 - lo)))
    ev = spla.eigs(jacobi_iteration_matrix(A), k=1, which="LM", return_eigenvectors=False, tol=1e-10)
    return float(np.abs(ev[0]))


def young_omega(rho_jacobi: float) -> float:
    """Young's optimal w = 2 / (1 + sqrt(1 - rho_J^2)) (consistently ordered matrices)."""
    rho = float(rho_jacobi)
    if not 0.0 <= rho < 1.0:
        raise OptionError(f"Young's formula needs a Jacobi spectral radius in [0, 1), got {rho}")
    return 2.0 / (1.0 + math.sqrt(1.0 - rho * rho))


def optimal_omega(A) -> float:
    """Young's w* for matrix A (computes rho_J)."""
    return young_omega(jacobi_spectral_radius(A))


def model_problem_omega(n: int) -> float:
    """w* = 2 / (1 + sin(pi h)), h = 1/(n+1): the 5-point Laplacian on an n x n grid."""
    return 2.0 / (1.0 + math.sin(math.pi / (n + 1)))


def iteration_count(A, b, omega, *, method: str = "sor", rtol: float = 1e-8, x0=None,
                    maxiter: int = 10000, relative_to: str = "r0") -> int:
    """Iterations ``method`` ("sor" or "ssor-pcg") needs with relaxation ``omega``.
    ``relative_to="r0"`` stops at ||r_k|| <= rtol ||r_0|| (the paper's SOR rule);
    ``"b"`` stops at ||r_k|| <= rtol ||b|| (the package rule). A capped run returns maxiter."""
    kd = as_kernel_data(A)
    b = np.asarray(b, dtype=np.float64)
    x0 = np.zeros(kd.n) if x0 is None else np.asarray(x0, dtype=np.float64)
    if relative_to == "r0":
        ref = float(np.linalg.norm(b - kd.matrix @ x0))
    elif relative_to == "b":
        ref = float(np.linalg.norm(b))
    else:
        raise OptionError(f"relative_to must be 'r0' or 'b', got {relative_to!r}")
    tol = rtol * ref
    if method == "sor":
        _, its, _, status, _ = sor_solve_array(kd, b, x0, omega, tol, maxiter)
    elif method == "ssor-pcg":
        _, its, _, status = ssor_pcg_array(kd, b, x0, omega, tol, maxiter)
    else:
        raise OptionError(f"method must be 'sor' or 'ssor-pcg', got {method!r}")
    return its if status == CONVERGED else maxiter


def instance_optimal_omega(A, b, *, method: str = "sor", rtol: float = 1e-8, x0=None,
                           maxiter: int = 10000, grid=None, refine: int = 12,
                           relative_to: str = "r0", grid_counts=None) -> tuple[float, int]:
    """The w minimising the iteration count for this very system, by search: evaluate
    ``grid`` (default 20 points on [1, 1.95]), then golden-section search on the bracket
    around the best grid point with ``refine`` further evaluations (the count is piecewise
    constant and close to unimodal in w). ``grid_counts`` (the counts on ``grid``, e.g. a
    row of ``linsolve.relaxation.khodak_sequence.iteration_table``) skips the grid pass. Returns (w, iterations)."""
    kd = as_kernel_data(A)
    grid = np.linspace(1.0, 1.95, 20) if grid is None else np.asarray(grid, dtype=np.float64)

    def f(w):
        return iteration_count(kd, b, w, method=method, rtol=rtol, x0=x0, maxiter=maxiter,
                               relative_to=relative_to)

    evals = [f(w) for w in grid] if grid_counts is None else [int(c) for c in grid_counts]
    best_i = int(np.argmin(evals))
    best = (evals[best_i], float(grid[best_i]))
    lo = float(grid[max(best_i - 1, 0)])
    hi = float(grid[min(best_i + 1, len(grid) - 1)])
    hi = min(hi, 1.999)
    tau = (math.sqrt(5.0) - 1.0) / 2.0
    a, c = lo + (1 - tau) * (hi - lo), lo + tau * (hi - lo)
    fa, fc = f(a), f(c)
    best = min(best, (fa, a), (fc, c))
    for k in range(max(refine - 2, 0)):
        # ties move alternately left and right: the count is flat on plateaus
        if fa > fc or (fa == fc and k % 2):
            lo, a, fa = a, c, fc
            c = lo + tau * (hi - lo)
            fc = f(c)
            best = min(best, (fc, c))
        else:
            hi, c, fc = c, a, fa
            a = lo + (1 - tau) * (hi - lo)
            fa = f(a)
            best = min(best, (fa, a))
    return best[1], int(best[0])
