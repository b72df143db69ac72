"""solve_sequence: results in the original order, the order recorded, ordering methods
applied to features, warm start and recycling carried along the sequence."""
from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

import linsolve
from linsolve import (
    LinearSystem,
    OptionError,
    ShapeError,
    SolverError,
    gallery,
    solve_sequence,
)


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


def _sequence(N=4, seed=0):
    import scipy.sparse as sp

    from linsolve import gallery
    rng = np.random.default_rng(seed)
    A = gallery.poisson2d(6)
    return [(A + 0.1 * i * sp.identity(A.shape[0]), rng.standard_normal(A.shape[0])) for i in range(N)]


@pytest.mark.parametrize("order", [None, [3, 2, 1, 0]])
def test_ordering_options_with_no_ordering_method_are_refused(order):
    # start=2 is refused, not dropped, when order is None or a permutation
    with pytest.raises(OptionError, match="start"):
        solve_sequence("cg", _sequence(), order=order, start=2)


def test_ordering_options_with_a_method_are_used():
    seq = solve_sequence("cg", _sequence(), order="greedy", features=[[0.0], [1.0], [2.0], [3.0]], start=2)
    assert seq.order.tolist() == [2, 1, 0, 3]


def test_scalar_features_are_a_shape_error():
    with pytest.raises(ShapeError, match="features describe 0 systems"):
        solve_sequence("cg", _sequence(), order="greedy", features=3.0)


def test_meta_features_of_different_sizes_are_a_shape_error():
    systems = [LinearSystem(A, b, meta={"features": np.zeros(1 + (i == 2))}) for i, (A, b) in enumerate(_sequence())]
    with pytest.raises(ShapeError, match="same size"):
        solve_sequence("cg", systems, order="greedy")


def test_results_come_back_in_the_original_order_with_warm_start_along_the_order():
    # each result is the solution of its own system (dense reference); a repeated system
    # solved right after its twin starts from that solution and needs no iteration
    systems = _sequence(5)
    systems.append((systems[1][0].copy(), systems[1][1].copy()))
    order = [5, 1, 0, 4, 2, 3]
    seq = solve_sequence(linsolve.make_solver("cg", warm_start=True, rtol=1e-10), systems, order=order)
    assert seq.order.tolist() == order
    for (A, b), r in zip(systems, seq.results, strict=True):
        assert np.allclose(r.x, np.linalg.solve(A.toarray(), b), rtol=1e-8, atol=1e-10)
    assert seq.results[1].iterations == 0 and seq.results[5].iterations > 0


@pytest.mark.parametrize("order", [None, [3, 1, 0, 2]])
def test_features_with_a_given_order_give_its_path_length(order):
    # features= give the path length of the order used, also when order is not a method
    feats = np.array([[0.0], [1.0], [3.0], [6.0]])
    seq = solve_sequence("cg", _sequence(), order=order, features=feats)
    perm = np.arange(4) if order is None else np.array(order)
    assert seq.path_length == pytest.approx(sum(abs(feats[perm[i + 1], 0] - feats[perm[i], 0]) for i in range(3)))
    with pytest.raises(ShapeError, match="features describe 3"):
        solve_sequence("cg", _sequence(), order=order, features=feats[:3])
    assert solve_sequence("cg", _sequence(), order=order).path_length is None
