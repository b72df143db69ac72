"""The one result type every solver returns."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

#: the most residual norms one solve records. The compiled kernels and PETSc write the
#: history into a buffer allocated before the iteration, so its size cannot follow a
#: maxiter meant as "no cap" (10**9 float64 norms are 7.45 GiB). Iterations past
#: the cap still run; info["residual_norms_dropped"] says how many went unrecorded.
HISTORY_CAP = 1 << 20


def history_length(maxiter) -> int:
    """Length of the residual-history buffer of a solve capped at ``maxiter`` iterations."""
    return min(int(maxiter), HISTORY_CAP)


def note_dropped(info: dict, iterations: int, recorded: int) -> dict:
    """Say in ``info`` when residual_norms holds only the first ``recorded`` of ``iterations``."""
    if iterations > recorded:
        info["residual_norms_dropped"] = int(iterations - recorded)
    return info


def cap_history(norms: np.ndarray, iterations: int, info: dict) -> np.ndarray:
    """The first ``HISTORY_CAP`` entries of a solve's residual history; when entries are
    missing (cut here, or never recorded by the method), ``info["residual_norms_dropped"]``
    says how many of the ``iterations`` went unrecorded."""
    if norms.size > HISTORY_CAP or "residual_norms_dropped" in info:
        norms = norms[:HISTORY_CAP]
        info.pop("residual_norms_dropped", None)
        note_dropped(info, iterations, norms.size)
    return norms


# Built by the solvers, not by users: its fields are documented as Attributes, not Parameters.
@dataclass
class SolveResult:  # numpydoc ignore=PR01
    """Outcome of ``Solver.solve``.

    ``residual_norms`` holds one entry per iteration of the norm the stopping test uses
    (the unpreconditioned residual norm wherever the method allows it; ``info["norm"]``
    says which), and ``relative_residual`` is always recomputed at the end as
    ||b - A x|| / ||b|| with the true operator, so it cannot be flattered by a recurrence.

    Attributes
    ----------
    x : ndarray or petsc4py.PETSc.Vec
        The solution, in the kind of ``b`` (a ``Vec`` for a ``Vec``, an (n, 1) array for a column).
    converged : bool
        Whether ``||b - A x|| <= max(rtol ||b||, atol)`` holds for the returned x.
    iterations : int
        Iterations done (0 for a direct solve or an initial guess that already meets the rule).
    residual_norms : ndarray
        One residual norm per iteration (at most ``HISTORY_CAP`` entries).
    relative_residual : float
        ||b - A x|| / ||b||, recomputed with the true operator.
    reason : str
        Why the solver stopped, in words (``"converged"``, ``"maxiter reached"``, ``"breakdown: ..."``).
    wall_time : float
        Seconds spent in ``solve``.
    info : dict
        Method-specific details (solver, backend, norm, recycled-space size, chosen omega, ...).

    Examples
    --------
    >>> import numpy as np, linsolve
    >>> A = linsolve.gallery.poisson2d(8)
    >>> res = linsolve.make_solver("gmres", rtol=1e-10).solve(A, np.ones(64))
    >>> res.converged, res.iterations == len(res.residual_norms), res.scipy_info
    (True, True, 0)
    >>> res.relative_residual < 1e-10, res.info["solver"]
    (True, 'gmres')
    """

    x: Any
    converged: bool
    iterations: int
    residual_norms: np.ndarray
    relative_residual: float
    reason: str
    wall_time: float
    info: dict = field(default_factory=dict)

    @property
    def scipy_info(self) -> int:
        """SciPy's convention: 0 converged, >0 iterations done without converging, <0 breakdown."""
        if self.converged:
            return 0
        if self.reason.startswith("breakdown") or self.reason.startswith("diverged"):
            return -1
        return max(int(self.iterations), 1)

    def __repr__(self) -> str:  # arrays would drown the summary
        return (
            f"SolveResult(converged={self.converged}, iterations={self.iterations}, "
            f"relative_residual={self.relative_residual:.3e}, reason={self.reason!r}, "
            f"wall_time={self.wall_time:.3g}s)"
        )
