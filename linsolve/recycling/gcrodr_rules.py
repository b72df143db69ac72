"""The rules GCRO-DR's two paths share: the compiled real one (``linsolve.recycling.gcrodr``)
and the complex NumPy one (``linsolve.recycling.gcrodr_complex``).

Both count the restart cycles the same way (SciPy's GMRES convention), end a solve after a
cycle for the same reasons, refit the recycled space on the same events, cut a QR's rank at the
same threshold and report the same ``info`` keys; only the arithmetic differs.
"""
from __future__ import annotations

import numpy as np

# why a solve ends after a cycle (SolveResult.reason)
NON_FINITE = ("breakdown: the (preconditioned) operator produced NaN or Inf "
              "(singular matrix or unstable preconditioner)")
EXHAUSTED = "breakdown: Krylov space exhausted without reaching the tolerance"
STAGNATION = "stagnation: residual did not decrease over 3 cycles"

# cycles in a row without a decrease of the true residual after which the solve stops
STALL_LIMIT = 3


def cycle_budget(callback_type: str, maxiter: int, restart: int) -> int | None:
    """The number of restart cycles a solve may run, or None where ``maxiter`` (inner
    iterations) alone bounds it: SciPy's GMRES counts cycles for ``callback_type`` "pr_norm"
    and "x" (the base class hands those over as cycles * restart iterations) and inner
    iterations for "legacy"."""
    return None if callback_type == "legacy" else max(maxiter // restart, 1)


def end_of_cycle(rnorm: float, previous: float, stalls: int, tol: float, breakdown) -> tuple[int, str | None]:
    """The stop rule after a cycle from the new true residual norm ``rnorm``.

    Parameters
    ----------
    rnorm, previous : float
        ||b - A x|| after this cycle and before it.
    stalls : int
        Cycles in a row, before this one, that did not decrease the residual.
    tol : float
        The absolute tolerance on ||b - A x||.
    breakdown : bool or str
        The Arnoldi process of the cycle: False, True (the Krylov space is exhausted) or
        "non-finite" (the operator or preconditioner produced NaN or Inf).

    Returns
    -------
    stalls : int
        The updated count (a decrease by less than a relative 1e-12 is a stall).
    reason : str or None
        "converged", why the solve stops (``NON_FINITE``, ``EXHAUSTED``: a breakdown that
        did not decrease the residual, ``STAGNATION``: ``STALL_LIMIT`` stalls), or None to
        run another cycle.
    """
    stalls = stalls + 1 if rnorm >= previous * (1 - 1e-12) else 0
    if rnorm <= tol:
        return stalls, "converged"
    if breakdown == "non-finite":
        return stalls, NON_FINITE
    if breakdown and stalls:
        return stalls, EXHAUSTED
    if stalls >= STALL_LIMIT:
        return stalls, STAGNATION
    return stalls, None


def is_last_cycle(rnorm: float, tol: float, its: int, maxiter: int, breakdown) -> bool:
    """Whether the solve ends after this cycle for certain (converged, inner budget spent or
    broken down): ``update="solve"`` replaces the recycled space after such a cycle."""
    return rnorm <= tol or its >= maxiter or bool(breakdown)


def needs_refit(key, source, M, pc_side: str) -> bool:
    """Whether the recycled space, last fitted for ``key`` = (matrix object, preconditioner
    object, side), must be refitted (C = B U by QR) for this solve's matrix ``source``,
    preconditioner ``M`` and ``pc_side``: any of the three changed or no key is recorded."""
    return key is None or key[0] is not source or key[1] is not M or key[2] != pc_side


def qr_rank(R) -> int:
    """The numerical rank of a (column-pivoted) QR's triangular factor ``R``: the diagonal
    entries above 1e-12 of the first one."""
    d = np.abs(np.diag(R))
    return int(np.sum(d > 1e-12 * d[0])) if d.size and d[0] > 0 else 0


def solve_info(right: bool, ident: bool, recycled_dim: int, recycle_matvecs: int, pc_side: str,
               true_rnorm: float | None, **extra) -> dict:
    """The ``info`` of a GCRO-DR solve: which norm ``residual_norms`` holds (the true one for
    right or no preconditioning, the preconditioned one for left), the recycled space's
    dimension, the products spent refitting it and, when the cycle computed it,
    ``true_rnorm`` (||b - A x|| of the returned x, so the base class need not recompute it)."""
    info = {"norm": "true residual (estimate)" if (right or ident) else "preconditioned residual (estimate)",
            "recycled_dim": int(recycled_dim), "recycle_matvecs": recycle_matvecs, "pc_side": pc_side, **extra}
    if true_rnorm is not None:
        info["true_rnorm"] = true_rnorm
    return info
