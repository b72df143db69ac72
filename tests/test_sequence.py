"""solve_sequence: results in the original order, the order recorded, ordering methods
applied to features, warm start and recycling carried along the sequence."""
from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

import linsolve
from linsolve import LinearSystem, SolverError, gallery, solve_sequence


def _family(N=8, n1d=12, seed=0):
    """Diffusion systems whose coefficient is a scalar shift t: neighbours in t are similar."""
    rng = np.random.default_rng(seed)
    base = gallery.variable_diffusion2d(n1d, contrast=20.0, seed=seed)
    n = base.shape[0]
    b = rng.standard_normal(n)
    ts = rng.uniform(0.0, 1.0, N)  # distinct gaps: no ties for the greedy walk
    systems = [LinearSystem((base + t * 50.0 * sp.identity(n)).tocsr(), b, meta={"features": np.array([t])})
               for t in ts]
    return systems, ts


def test_results_in_original_order_and_order_recorded():
    systems, ts = _family()
    order = np.argsort(ts)[::-1]
    seq = solve_sequence(linsolve.make_solver("gcrodr", restart=20, recycle=5, rtol=1e-9), systems, order=order)
    assert np.array_equal(seq.order, order)
    assert len(seq) == len(systems) and seq.all_converged
    for s, r in zip(systems, seq, strict=True):
        x_ref = np.linalg.solve(s.A.toarray(), s.b)
        assert np.linalg.norm(r.x - x_ref) <= 1e-7 * np.linalg.norm(x_ref)
    assert seq.total_iterations == sum(r.iterations for r in seq.results)


def test_greedy_order_from_meta_features_sorts_by_parameter():
    systems, ts = _family(N=10, seed=1)
    seq = solve_sequence("gcrodr", systems, order="greedy")
    walk = ts[seq.order]
    assert seq.order[0] == 0
    # nearest unvisited neighbour in t, step by step (a direct loop, not the library)
    left, cur, ref = set(range(1, 10)), 0, [0]
    while left:
        cur = min(left, key=lambda j: abs(ts[j] - ts[cur]))
        ref.append(cur)
        left.remove(cur)
    assert seq.order.tolist() == ref
    assert seq.path_length == pytest.approx(np.abs(np.diff(walk)).sum())
    assert seq.sort_time >= 0 and seq.info["method"] == "greedy"


def test_features_from_matrix_entries_when_no_meta():
    systems, ts = _family(N=6, seed=2)
    pairs = [(s.A, s.b) for s in systems]
    seq = solve_sequence(linsolve.make_solver("gcrodr", rtol=1e-8), pairs, order="greedy")
    ref = solve_sequence(linsolve.make_solver("gcrodr", rtol=1e-8), pairs, order="greedy",
                         features=ts[:, None])
    assert np.array_equal(seq.order, ref.order)


def test_sorting_and_recycling_save_iterations_and_warm_start_works():
    systems, ts = _family(N=12, n1d=16, seed=3)
    rec = solve_sequence(linsolve.make_solver("gcrodr", restart=30, recycle=10, rtol=1e-8,
                                              warm_start=True), systems, order="greedy")
    cold = solve_sequence(linsolve.make_solver("gmres", restart=30, rtol=1e-8), systems)
    assert rec.all_converged and cold.all_converged
    assert rec.total_iterations < 0.6 * cold.total_iterations
    # warm start alone: identical systems in a row need no iterations the second time
    same = [systems[0], systems[0]]
    seq = solve_sequence(linsolve.make_solver("rcg", warm_start=True, rtol=1e-8), same)
    assert seq.iterations.tolist()[1] == 0


def test_bad_input():
    systems, _ = _family(N=3)
    with pytest.raises(SolverError, match="permutation"):
        solve_sequence("gcrodr", systems, order=[0, 0, 1])
    with pytest.raises(SolverError, match="known"):
        solve_sequence("gcrodr", systems, order="magic")
    with pytest.raises(SolverError, match="systems\\[1\\]"):
        solve_sequence("gcrodr", [systems[0], "nope"])
    with pytest.raises(SolverError, match="empty"):
        solve_sequence("gcrodr", [])
    with pytest.raises(SolverError):
        solve_sequence(object(), systems)
