"""The synthetic sequence of Khodak et al. ("Learning to Relax", ICLR 2024, sec. 6 and
the authors' ``contextual.m``/``learning.m``) and the iteration-count tables used to
evaluate policies on it.

A = the 5-point Laplacian on a 10 x 10 interior grid with the integer stencil (4, -1)
(MATLAB's ``delsq(numgrid('S', 12))``); system t is A_t = A + s_t I with the diagonal
shift s_t = 0.6 c_t - 0.15, c_t ~ Beta(2, 6) ("low" variance) or Beta(1/2, 3/2) ("high"),
so s_t lies in [-0.15, 0.45]; b_t is a standard Gaussian conditioned on ||b_t|| <= sqrt(n)
(rejection sampling); SOR starts at x = 0 and stops at ||r_k|| <= 1e-8 ||r_0||, capped at
10000 iterations. The context given to contextual policies is the shift s_t, as in the
authors' code (so ``context_range`` is [-0.15, 0.45]).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from linsolve.core.errors import OptionError
from linsolve.gallery import poisson2d
from linsolve.relaxation.sor_kernels import as_kernel_data, sor_iteration_counts, ssor_pcg_array

BETA = {"low": (2.0, 6.0), "high": (0.5, 1.5)}
SHIFT_RANGE = (-0.15, 0.45)
PAPER_RTOL = 1e-8
PAPER_MAXITER = 10000


def truncated_normal(n: int, rng: np.random.Generator) -> np.ndarray:
    """Standard Gaussian in R^n conditioned on ||b|| <= sqrt(n) (rejection sampling;
    accepted about half the time)."""
    while True:
        b = rng.standard_normal(n)
        if b @ b <= n:
            return b


@dataclass
class ShiftedLaplacianSequence:
    """T systems A + s_t I, b_t with contexts s_t; ``system(t)`` gives (A_t, b_t, s_t)."""

    base: sp.csr_matrix
    shifts: np.ndarray
    rhs: np.ndarray  # (T, n)
    variance: str
    seed: int

    @property
    def T(self) -> int:
        return self.shifts.size

    @property
    def contexts(self) -> np.ndarray:
        return self.shifts

    context_range = SHIFT_RANGE

    def matrix(self, t: int) -> sp.csr_matrix:
        return (self.base + self.shifts[t] * sp.identity(self.base.shape[0], format="csr")).tocsr()

    def system(self, t: int):
        return self.matrix(t), self.rhs[t], float(self.shifts[t])

    def __iter__(self):
        for t in range(self.T):
            yield self.system(t)

    def __len__(self):
        return self.T


def shifted_laplacian_sequence(T: int = 5000, variance: str = "low", seed: int = 0,
                               grid: int = 10) -> ShiftedLaplacianSequence:
    """The paper's synthetic sequence (see the module docstring); fully determined by
    ``seed``."""
    if variance not in BETA:
        raise OptionError(f"variance must be 'low' or 'high', got {variance!r}")
    if isinstance(T, bool) or not isinstance(T, (int, np.integer)) or T < 1:
        raise OptionError(f"T must be a positive integer, got {T!r}")
    if isinstance(grid, bool) or not isinstance(grid, (int, np.integer)) or grid < 1:
        raise OptionError(f"grid must be a positive integer, got {grid!r}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise OptionError(f"seed must be a non-negative integer, got {seed!r}")
    rng = np.random.default_rng(seed)
    A = poisson2d(grid, scaled=False)
    n = A.shape[0]
    a, b = BETA[variance]
    shifts = np.empty(T)
    rhs = np.empty((T, n))
    for t in range(T):  # interleaved draws, as in the authors' loop
        shifts[t] = SHIFT_RANGE[0] + 0.6 * rng.beta(a, b)
        rhs[t] = truncated_normal(n, rng)
    return ShiftedLaplacianSequence(A, shifts, rhs, variance, seed)


def iteration_table(seq, omegas, *, method: str = "sor", rtol: float = PAPER_RTOL,
                    maxiter: int = PAPER_MAXITER) -> np.ndarray:
    """costs[t, a]: iterations system t needs from x = 0 with w = omegas[a] (SOR stops at
    ||r|| <= rtol ||b||; SSOR-PCG likewise). This is exactly the feedback a policy gets,
    so policies can be replayed on it (``linsolve.relaxation.bandits.replay``)."""
    try:
        omegas = np.asarray(omegas, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise OptionError(f"omegas must be a 1-D array of numbers in (0, 2), got {omegas!r}") from exc
    # w = 0 divided by zero in the kernel, w = nan counted 1 iteration, a 2-D array failed in numba
    if omegas.ndim != 1 or not np.all((omegas > 0) & (omegas < 2)):
        raise OptionError(f"omegas must be a 1-D array of numbers in (0, 2), got {omegas!r}")
    if method not in ("sor", "ssor-pcg"):
        raise OptionError(f"method must be 'sor' or 'ssor-pcg', got {method!r}")
    out = np.empty((len(seq), omegas.size), dtype=np.int64)
    for t, (A, b, _) in enumerate(seq):
        kd = as_kernel_data(A)
        if method == "sor":
            out[t] = sor_iteration_counts(*kd.arrays, b, omegas, rtol, maxiter)
        elif method == "ssor-pcg":
            tol = rtol * float(np.linalg.norm(b))
            for a, w in enumerate(omegas):
                _, its, _, status = ssor_pcg_array(kd, b, np.zeros(kd.n), w, tol, maxiter)
                out[t, a] = its if status == 0 else maxiter
        else:
            raise OptionError(f"method must be 'sor' or 'ssor-pcg', got {method!r}")
    return out
