"""Orderings: greedy against a pure-Python gold implementation, the Hilbert curve's
adjacency property, the scalable method's path length against greedy, bad input."""
from __future__ import annotations

import warnings

import numpy as np
import pytest
from gold_ordering import gold_greedy

from linsolve import OptionError, ShapeError, SolverError, order_systems
from linsolve.recycling.ordering import _pow2_scaled, greedy_order, hilbert_index, path_length


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


@pytest.mark.parametrize("memory", [1 << 28, 0])  # distance-matrix path and GEMV path
@pytest.mark.parametrize("offset", [1e6, -3e7])
def test_greedy_is_the_nearest_neighbour_walk_for_features_far_from_the_origin(memory, offset):
    # Parameters like a Reynolds number near 10^6 varying by 10^-3: the expanded distance
    # |x|^2 - 2 x.y + |y|^2 would lose the gaps to rounding; the walk is still the gold one.
    rng = np.random.default_rng(0)
    X = offset + 1e-3 * rng.standard_normal((50, 3))
    got = order_systems(X, "greedy", memory=memory)
    gold = gold_greedy(X)
    assert np.array_equal(got, gold)
    assert path_length(X, got) == pytest.approx(path_length(X, gold), rel=1e-12)


@pytest.mark.parametrize("memory", [1 << 28, 0])
def test_greedy_with_duplicate_and_near_duplicate_rows_matches_gold(memory):
    rng = np.random.default_rng(1)
    base = 100.0 * rng.standard_normal((12, 4))
    X = np.concatenate([base, base, base + 1e-9 * rng.standard_normal(base.shape)])
    X = X[rng.permutation(len(X))]
    assert np.array_equal(order_systems(X, "greedy", start=7, memory=memory), gold_greedy(X, start=7))


@pytest.mark.parametrize("method", ["greedy", "fft"])
@pytest.mark.parametrize("start", [True, 1.5, "1", None])
def test_start_that_is_not_an_index_is_an_option_error(method, start):
    # start=True would give [1, 0, 0, 0, 0] (D[:, True] masks every column): not a permutation
    X = np.random.default_rng(2).standard_normal((5, 3))
    with pytest.raises(OptionError, match="start"):
        order_systems(X, method, start=start)


def test_numpy_integer_start_is_accepted():
    X = np.random.default_rng(2).standard_normal((5, 3))
    assert np.array_equal(order_systems(X, "greedy", start=np.int64(3)), gold_greedy(X, start=3))


@pytest.mark.parametrize("option", ["fft_modes", "n_components", "curve_dims", "cell_size"])
@pytest.mark.parametrize("value", [0, -1, 2.5, True])
def test_fft_options_must_be_positive_integers(option, value):
    # cell_size=-1 would walk no cell and return uninitialised memory as the "order"
    F = np.random.default_rng(3).standard_normal((20, 8, 8))
    with pytest.raises(OptionError, match=option):
        order_systems(F, "fft", **{option: value})


def test_fft_seed_that_is_not_an_integer_is_an_option_error():
    with pytest.raises(OptionError, match="seed"):
        order_systems(np.random.default_rng(3).standard_normal((20, 8, 8)), "fft", seed="a")


@pytest.mark.parametrize("shape", [(6, 4), (6, 4, 4)])
@pytest.mark.parametrize("method", ["greedy", "fft"])
def test_complex_features_are_refused_by_every_method(shape, method):
    # complex fields are refused, not cast to real with a ComplexWarning
    rng = np.random.default_rng(4)
    F = rng.standard_normal(shape) + 1j * rng.standard_normal(shape)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(ShapeError, match="complex"):
            order_systems(F, method)


@pytest.mark.parametrize("dtype", [np.float32, np.int16, np.uint8, np.bool_])
@pytest.mark.parametrize("method", ["greedy", "fft"])
def test_other_real_dtypes_give_a_permutation(dtype, method):
    F = (np.random.default_rng(5).standard_normal((30, 8, 8)) * 4).astype(dtype)
    o = order_systems(F, method, start=4)
    assert o[0] == 4 and np.array_equal(np.sort(o), np.arange(30))
    if method == "greedy":
        assert np.array_equal(o, gold_greedy(F.astype(np.float64), start=4))


@pytest.mark.parametrize("scale", [1e300, 1e-300])
@pytest.mark.parametrize("memory", [1 << 28, 0])
def test_greedy_and_path_length_at_the_ends_of_the_float_range(scale, memory):
    # 1e300: the squared distances must not overflow (greedy would return -1s, path_length
    # inf); 1e-300: nor underflow to 0 (every system would tie)
    X = np.random.default_rng(6).standard_normal((30, 4))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert np.array_equal(order_systems(X * scale, "greedy", memory=memory), gold_greedy(X))
        assert path_length(X * scale) == pytest.approx(scale * path_length(X), rel=1e-12)


@pytest.mark.parametrize("top", [1e308, 1e300, 3.0, 1.0, 0.75, 1e-300, 1e-310, 5e-324])
def test_power_of_two_scaling_equals_ldexp_bit_for_bit(top):
    """The scaling multiplies (in place if asked) where the power of two is normal, and the
    values are np.ldexp's, subnormal results (entries far below the largest) included."""
    rng = np.random.default_rng(11)
    X = rng.standard_normal((40, 9)) * np.logspace(0, -320, 9)  # each column ~1e-40 below the last
    X = X / np.max(np.abs(X)) * top
    X[0, 0] = -top  # the largest entry in magnitude is negative
    X[1, 1] = 0.0
    want = np.ldexp(X, -int(np.frexp(top)[1]))
    got = _pow2_scaled(X)
    assert got.view(np.int64).tolist() == want.view(np.int64).tolist()
    assert 0.5 <= np.max(np.abs(got)) < 1.0
    if top >= 1.0:  # the data reach results below the normal range
        assert np.any((got != 0) & (np.abs(got) < np.finfo(float).tiny))
    Y = X.copy()
    assert _pow2_scaled(Y, inplace=True) is Y and Y.view(np.int64).tolist() == want.view(np.int64).tolist()


def test_power_of_two_scaling_leaves_zero_and_nan_features_as_they_are():
    Z = np.zeros((3, 2))
    assert _pow2_scaled(Z) is Z and _pow2_scaled(Z, inplace=True) is Z
    N = np.array([[1.0, np.nan], [2.0, 3.0]])
    assert _pow2_scaled(N) is N


@pytest.mark.parametrize("scale, offset", [(1e300, 0.0), (1e-300, 0.0), (1e-3, 1e6)])
@pytest.mark.parametrize("fields", [True, False])
def test_fft_order_does_not_depend_on_the_units_of_the_features(scale, offset, fields):
    # the order does not depend on the features' units: in float32 1e300 would become inf,
    # 1e-300 zero, and an offset of 10^6 leave nothing of variations of 10^-3
    F = _fields(200, g=16) if fields else np.random.default_rng(7).standard_normal((200, 3))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        got = order_systems(F * scale + offset, "fft")
    assert np.array_equal(got, order_systems(F, "fft"))


def test_ragged_features_are_a_shape_error():
    with pytest.raises(ShapeError, match="ragged"):
        order_systems([np.zeros(3), np.zeros(4)], "greedy")
    with pytest.raises(ShapeError, match="ragged"):
        path_length([np.zeros(3), np.zeros(4)])


def test_curve_dims_beyond_the_hilbert_key_is_an_option_error():
    with pytest.raises(OptionError, match="curve_dims"):   # not a 'negative shift count'
        order_systems(_fields(40, g=16), "fft", n_components=64, curve_dims=64)
    assert np.array_equal(np.sort(order_systems(_fields(40, g=16), "fft", n_components=32, curve_dims=63)), np.arange(40))


def test_greedy_distance_matrix_stays_within_the_memory_budget():
    # the distance matrix stays within the budget: sq - 2 X X^T + sq as one expression would
    # hold three N x N temporaries, twice the budget
    import tracemalloc

    X = np.random.default_rng(8).standard_normal((1500, 4))
    budget = 1500 * 1500 * 8
    tracemalloc.start()
    try:
        order = order_systems(X, "greedy", memory=budget)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert np.array_equal(order, order_systems(X, "greedy", memory=0))   # the GEMV path, gold-checked above
    assert peak <= 1.1 * budget + (1 << 20)
