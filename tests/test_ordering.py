"""Orderings: greedy against a pure-Python gold implementation, the Hilbert curve's
adjacency property, the scalable method's path length against greedy, bad input."""
from __future__ import annotations

import numpy as np
import pytest
from gold_ordering import gold_greedy

from linsolve import OptionError, SolverError, order_systems
from linsolve.ordering import greedy_order, hilbert_index, path_length


def _fields(n, g=32, seed=0):
    rng = np.random.default_rng(seed)
    k = np.fft.fftfreq(g) * g
    amp = (1 + k[:, None] ** 2 + k[None, :] ** 2) ** -2.0
    noise = rng.standard_normal((n, g, g)) + 1j * rng.standard_normal((n, g, g))
    return np.fft.ifft2(amp * noise).real


@pytest.mark.parametrize("memory", [1 << 28, 0])  # distance-matrix path and GEMV path
def test_greedy_matches_gold(memory):
    X = np.random.default_rng(3).standard_normal((60, 7))
    assert np.array_equal(greedy_order(X, start=5, memory=memory), gold_greedy(X, start=5))


def test_methods_return_permutations_and_greedy_shortens_path():
    F = _fields(300)
    lengths = {}
    for m in ("none", "greedy", "fft", "scalable"):
        o = order_systems(F, m)
        assert np.array_equal(np.sort(o), np.arange(300)), m
        lengths[m] = path_length(F, o)
    assert np.array_equal(order_systems(F, "none"), np.arange(300))
    assert lengths["greedy"] < 0.6 * lengths["none"]
    assert lengths["fft"] < 0.75 * lengths["none"]
    assert lengths["fft"] <= 1.25 * lengths["greedy"]


def test_fft_order_starts_at_start():
    F = _fields(100, seed=2)
    assert order_systems(F, "fft", start=17)[0] == 17
    assert order_systems(F, "greedy", start=17)[0] == 17


def test_path_length_matches_loop():
    X = np.random.default_rng(1).standard_normal((20, 3))
    o = np.random.default_rng(2).permutation(20)
    ref = sum(np.linalg.norm(X[o[i + 1]] - X[o[i]]) for i in range(19))
    assert path_length(X, o) == pytest.approx(ref, rel=1e-12)


@pytest.mark.parametrize("d,bits", [(2, 4), (3, 3), (4, 2)])
def test_hilbert_curve_visits_every_cell_with_unit_steps(d, bits):
    side = 1 << bits
    pts = np.stack(np.meshgrid(*[np.arange(side)] * d, indexing="ij"), -1).reshape(-1, d)
    h = hilbert_index(pts, bits)
    assert np.array_equal(np.sort(h), np.arange(side ** d, dtype=np.uint64))
    walk = pts[np.argsort(h)]
    assert np.all(np.abs(np.diff(walk, axis=0)).sum(axis=1) == 1)


def test_bad_input():
    F = _fields(10)
    with pytest.raises(OptionError, match="greedy"):
        order_systems(F, "magic")
    assert issubclass(OptionError, SolverError)
    with pytest.raises(SolverError):
        order_systems(F, "greedy", start=10)
    bad = F.copy()
    bad[0, 0, 0] = np.nan
    with pytest.raises(SolverError, match="NaN"):
        order_systems(bad, "greedy")
    with pytest.raises(SolverError, match="permutation"):
        path_length(F, [0, 0, 1, 2, 3, 4, 5, 6, 7, 8])
