"""Solving a sequence of related systems with one (recycling) solver, in a chosen order:
the second half of sorted Krylov recycling."""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from linsolve.core.errors import OptionError, ShapeError, SolverError
from linsolve.core.result import SolveResult
from linsolve.core.system import LinearSystem
from linsolve.recycling.ordering import _check_perm, order_systems, path_length


@dataclass
class SequenceResult:
    """Per-system results in the ORIGINAL order of ``systems``; ``order`` is the order in
    which they were solved (``results[order[0]]`` was solved first)."""

    results: list[SolveResult]
    order: np.ndarray
    sort_time: float
    solve_time: float
    path_length: float | None = None
    info: dict = field(default_factory=dict)

    def __len__(self):
        return len(self.results)

    def __getitem__(self, i):
        return self.results[i]

    def __iter__(self):
        return iter(self.results)

    @property
    def iterations(self) -> np.ndarray:
        return np.array([r.iterations for r in self.results])

    @property
    def total_iterations(self) -> int:
        return int(self.iterations.sum())

    @property
    def all_converged(self) -> bool:
        return all(r.converged for r in self.results)


def _system(s, i) -> LinearSystem:
    if isinstance(s, LinearSystem):
        return s
    if isinstance(s, (tuple, list)) and len(s) == 2:
        return LinearSystem(s[0], s[1])
    raise ShapeError(f"systems[{i}] must be a LinearSystem or an (A, b) pair, got {type(s).__name__}")


def default_features(systems: list[LinearSystem]) -> np.ndarray:
    """``meta["features"]`` when every system has it, else the matrix entries (all
    matrices must share one sparsity pattern) followed by the right-hand side."""
    if all(s.meta and "features" in s.meta for s in systems):
        rows = [np.asarray(s.meta["features"], dtype=np.float64).ravel() for s in systems]
        if len({r.size for r in rows}) > 1:
            raise ShapeError("meta['features'] must have the same size for every system, got sizes "
                             f"{sorted({r.size for r in rows})}")
        return np.stack(rows)
    import scipy.sparse as sp

    rows = []
    pattern = None
    for s in systems:
        A = sp.csr_matrix(s.A)
        A.sort_indices()
        if pattern is None:
            pattern = (A.shape, A.indptr, A.indices)
        elif A.shape != pattern[0] or not (np.array_equal(A.indptr, pattern[1])
                                           and np.array_equal(A.indices, pattern[2])):
            raise ShapeError("ordering needs features: matrices differ in sparsity pattern; pass "
                             "features= or put meta['features'] on each LinearSystem")
        rows.append(np.concatenate([A.data, np.asarray(s.b, dtype=np.float64).ravel()]))
    return np.stack(rows)


def solve_sequence(solver, systems, order=None, *, features=None, reset: bool = True,
                   progress: bool = False, **order_options) -> SequenceResult:
    """Solve every system with one solver instance, in ``order``, so a stateful solver
    (``gcrodr``, ``rcg``, or any solver with ``warm_start=True``) carries what it learned
    from one system to the next.

    ``solver``: a ``Solver`` or a registered name. ``systems``: ``LinearSystem``s or
    ``(A, b)`` pairs. ``order``: None (as given), a permutation, or an ordering method
    name of ``order_systems`` (``"greedy"``, ``"fft"``, ...), applied to ``features``
    (default: see ``default_features``). ``reset`` forgets state from earlier calls first.
    Results come back in the original order, with the order used and the sorting time.

    Parameters
    ----------
    solver : Solver or str
        The solver instance (or a registered name, built with default options).
    systems : sequence of LinearSystem or (A, b) pairs
        The systems to solve.
    order : None, str or array_like of int, optional
        The solve order: as given, an ordering method of :func:`order_systems`, or a permutation.
    features : array_like, optional
        Features for an ordering method (default: ``default_features(systems)``).
    reset : bool, optional
        Call ``solver.reset()`` first.
    progress : bool, optional
        Show a progress bar.
    **order_options
        Options of the ordering method (``start``, ``seed``, ...).

    Returns
    -------
    SequenceResult
        ``results`` in the original order of ``systems``, ``order``, ``sort_time``,
        ``solve_time``, ``total_iterations``, ``all_converged``.

    Raises
    ------
    SolverError
        ``solver`` is neither a Solver nor a name.
    ShapeError
        No systems.
    OptionError
        Ordering options with no ordering method, or a bad order.

    Examples
    --------
    >>> import numpy as np, linsolve
    >>> A = linsolve.gallery.poisson2d(12)
    >>> rhs = [np.full(144, 1.0 + 0.01 * k) for k in range(4)]
    >>> out = linsolve.solve_sequence(linsolve.make_solver("rcg", rtol=1e-8), [(A, b) for b in rhs])
    >>> out.all_converged, len(out), out.order.tolist()
    (True, 4, [0, 1, 2, 3])
    """
    from linsolve.core.base import Solver
    from linsolve.core.registry import make_solver

    if isinstance(solver, str):
        solver = make_solver(solver)
    if not isinstance(solver, Solver):
        raise SolverError(f"solver must be a linsolve Solver or a registered name, got {type(solver).__name__}")
    systems = [_system(s, i) for i, s in enumerate(systems)]
    N = len(systems)
    if N == 0:
        raise ShapeError("systems is empty")
    if order_options and not isinstance(order, str):
        # options such as start= only steer an ordering method; with a given order they
        # would go unread, so they are refused
        raise OptionError(f"{', '.join(sorted(order_options))} only apply with an ordering method name "
                          f"as order (got order={'None' if order is None else 'a permutation'})")
    t0 = time.perf_counter()
    feats = None
    if isinstance(order, str) or features is not None:
        # features= with a given order give its path_length, to compare with an ordering
        # method's
        feats = default_features(systems) if features is None else np.asarray(features)
        if feats.ndim == 0 or feats.shape[0] != N:
            raise ShapeError(f"features describe {feats.shape[0] if feats.ndim else 0} systems but there are {N}")
    if order is None:
        perm = np.arange(N)
    elif isinstance(order, str):
        perm = order_systems(feats, order, **order_options)
    else:
        perm = _check_perm(order, N)
    length = None if feats is None else path_length(feats, perm)
    sort_time = time.perf_counter() - t0
    if reset:
        solver.reset()
    results: list[SolveResult | None] = [None] * N
    it = perm
    if progress:
        from tqdm import tqdm

        it = tqdm(perm, desc=f"{solver.name} sequence")
    t1 = time.perf_counter()
    for i in it:
        results[int(i)] = solver.solve(systems[int(i)])
    solve_time = time.perf_counter() - t1
    return SequenceResult(results, perm, sort_time, solve_time, length,
                          {"solver": solver.name, "method": order if isinstance(order, str) else None})
