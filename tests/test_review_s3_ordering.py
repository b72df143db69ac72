"""Review (session 3): orderings, solve_sequence and the channel-flow API from Python."""
from __future__ import annotations

import numpy as np
import pytest

from linsolve import order_systems
from linsolve.ordering import path_length


def _gold_greedy(X, start=0):
    """Plain nearest-unvisited-neighbour walk, exact distances, ties to the lowest index."""
    X = np.asarray(X, dtype=np.float64).reshape(len(X), -1)
    order, left = [start], set(range(len(X))) - {start}
    while left:
        cur = X[order[-1]]
        nxt = min(sorted(left), key=lambda j: float(np.sum((X[j] - cur) ** 2)))
        order.append(nxt)
        left.remove(nxt)
    return np.array(order)


@pytest.mark.parametrize("memory", [1 << 28, 0])  # distance-matrix path and GEMV path
@pytest.mark.parametrize("offset", [1e6, -3e7])
def test_greedy_is_the_nearest_neighbour_walk_for_features_far_from_the_origin(memory, offset):
    # Parameters like a Reynolds number near 10^6 varying by 10^-3: the expanded distance
    # |x|^2 - 2 x.y + |y|^2 lost the gaps to rounding and the walk went astray.
    rng = np.random.default_rng(0)
    X = offset + 1e-3 * rng.standard_normal((50, 3))
    got = order_systems(X, "greedy", memory=memory)
    gold = _gold_greedy(X)
    assert np.array_equal(got, gold)
    assert path_length(X, got) == pytest.approx(path_length(X, gold), rel=1e-12)


@pytest.mark.parametrize("memory", [1 << 28, 0])
def test_greedy_with_duplicate_and_near_duplicate_rows_matches_gold(memory):
    rng = np.random.default_rng(1)
    base = 100.0 * rng.standard_normal((12, 4))
    X = np.concatenate([base, base, base + 1e-9 * rng.standard_normal(base.shape)])
    X = X[rng.permutation(len(X))]
    assert np.array_equal(order_systems(X, "greedy", start=7, memory=memory), _gold_greedy(X, start=7))
