"""Plain gold reference shared by the ordering tests (not a test module)."""
from __future__ import annotations

import numpy as np


def gold_greedy(X, start=0):
    """Plain nearest-unvisited-neighbour walk, exact distances, ties to the lowest index."""
    X = np.asarray(X, dtype=np.float64).reshape(len(X), -1)
    order, left = [start], set(range(len(X))) - {start}
    while left:
        cur = X[order[-1]]
        nxt = min(sorted(left), key=lambda j: float(np.sum((X[j] - cur) ** 2)))
        order.append(nxt)
        left.remove(nxt)
    return np.array(order)
