"""Bandit policies: distributions stay distributions, learning concentrates on the best
arm of a fixed cost table, contextual policies follow the context, seeds reproduce."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import linsolve
from linsolve.core.errors import OptionError
from linsolve.relaxation.bandits import (
    ChebCB,
    FixedOmega,
    TsallisINF,
    TsallisINFCB,
    chebyshev_features,
    make_policy,
    replay,
    tsallis_inf_probabilities,
)

GRID = np.linspace(1.0, 1.95, 20)


@settings(max_examples=60, deadline=None)
@given(L=st.lists(st.floats(-1e4, 1e4, allow_nan=False), min_size=1, max_size=30),
       t=st.integers(1, 10**6))
def test_tsallis_probabilities_are_a_distribution_and_order_reversing(L, t):
    L = np.array(L)
    eta = 2 / np.sqrt(t)
    p = tsallis_inf_probabilities(L, eta)
    assert np.all(p >= 0) and p.sum() == pytest.approx(1.0, abs=1e-9)
    # the Tsallis-INF solution: p_i = 4 / (eta (L_i - x))^2 for one normaliser x
    x = L - 2 / (eta * np.sqrt(p))
    assert np.allclose(x, x[0], rtol=1e-6, atol=1e-6 * (1 + np.abs(L).max()))
    order = np.argsort(L, kind="stable")
    assert np.all(np.diff(p[order]) <= 1e-12)


def _policies():
    return {
        "tsallis-inf": lambda s: TsallisINF(GRID, seed=s),
        "tsallis-inf-plain": lambda s: TsallisINF(GRID, seed=s, baseline=0.0),
        "tsallis-inf-cb": lambda s: TsallisINFCB(GRID, seed=s, bins=3, context_range=(0, 1)),
        "chebcb": lambda s: ChebCB(GRID, seed=s, context_range=(0, 1)),
    }


@settings(max_examples=25, deadline=None)
@given(name=st.sampled_from(sorted(_policies())), seed=st.integers(0, 2**31),
       costs=st.lists(st.integers(1, 10_000), min_size=30, max_size=30),
       contexts=st.lists(st.floats(-0.5, 1.5), min_size=30, max_size=30))
def test_probabilities_stay_a_distribution(name, seed, costs, contexts):
    """Whatever the costs (adversarial, heavy-tailed) and contexts (even outside the
    declared range), every policy's probabilities remain a distribution over the arms."""
    pol = _policies()[name](seed)
    for c, k in zip(contexts, costs, strict=True):
        p = pol.probabilities(c)
        assert p.shape == (GRID.size,)
        assert np.all(np.isfinite(p)) and np.all(p >= 0) and p.sum() == pytest.approx(1.0, abs=1e-9)
        w = pol.select(c)
        assert w == GRID[pol.arm]
        pol.update(k)


def _table(T, seed):
    """A fixed stochastic cost table with a unique best arm (index 12), neighbours 25%
    dearer, a common per-system difficulty factor and independent noise."""
    rng = np.random.default_rng(seed)
    base = 40 + 10.0 * np.abs(np.arange(GRID.size) - 12)
    return np.maximum(1, np.round(base[None, :] * rng.uniform(0.8, 1.2, (T, 1)) + rng.normal(0, 2, (T, GRID.size))))


@pytest.mark.parametrize("name", ["tsallis-inf", "tsallis-inf-plain", "tsallis-inf-cb", "chebcb"])
def test_concentrates_on_best_arm_of_fixed_table(name):
    T = 3000
    costs = _table(T, 0)
    contexts = np.random.default_rng(1).uniform(0, 1, T)
    pol = _policies()[name](0)
    arms, paid = replay(pol, costs, contexts)
    assert np.mean(arms[-300:] == 12) > 0.6
    p = pol.probabilities(0.5)
    assert np.argmax(p) == 12 and p[12] > 0.5
    best_fixed = costs.sum(axis=0).min()
    uniform = costs.mean(axis=1).sum()
    assert paid.sum() < 1.4 * best_fixed < uniform


def test_contextual_policies_follow_the_context():
    """Best arm is 3 for contexts below 0.5 and 16 above: ChebCB and Tsallis-INF-CB learn
    both, Tsallis-INF cannot and pays more."""
    T = 2000
    rng = np.random.default_rng(2)
    contexts = rng.uniform(0, 1, T)
    best = np.where(contexts < 0.5, 3, 16)
    costs = 30 + 4.0 * np.abs(np.arange(GRID.size)[None, :] - best[:, None]) + rng.integers(0, 3, (T, GRID.size))
    totals = {}
    for name in ("tsallis-inf", "tsallis-inf-cb", "chebcb"):
        pol = _policies()[name](0)
        if name == "tsallis-inf-cb":
            pol = TsallisINFCB(GRID, seed=0, bins=2, context_range=(0, 1))
        arms, paid = replay(pol, costs, contexts)
        totals[name] = paid.sum()
        if name != "tsallis-inf":
            last = slice(T - 400, T)
            assert np.mean(arms[last] == best[last]) > 0.6, name
    oracle = costs[np.arange(T), best].sum()
    assert totals["chebcb"] < 1.15 * oracle
    assert totals["tsallis-inf-cb"] < totals["tsallis-inf"]
    assert totals["chebcb"] < totals["tsallis-inf"]


def test_seeded_and_reset_reproduce():
    costs = _table(200, 3)
    ctx = np.linspace(0, 1, 200)
    for name, make in _policies().items():
        a1, _ = replay(make(7), costs, ctx)
        a2, _ = replay(make(7), costs, ctx)
        assert np.array_equal(a1, a2), name
        pol = make(7)
        replay(pol, costs, ctx)
        pol.reset()
        a3, _ = replay(pol, costs, ctx)
        assert np.array_equal(a1, a3), name


def test_fixed_and_factory():
    pol = make_policy("fixed", omega=1.3)
    assert isinstance(pol, FixedOmega) and pol.select() == 1.3
    pol.update(10)
    assert make_policy("ChebCB", context_range=(0, 2)).m == 6
    assert make_policy(pol) is pol
    with pytest.raises(OptionError, match="unknown policy"):
        make_policy("ucb")
    with pytest.raises(OptionError, match="bins"):
        make_policy("tsallis-inf-cb", bins=0)
    with pytest.raises(OptionError, match="unknown option"):
        make_policy("tsallis-inf", degree=3)
    with pytest.raises(OptionError, match=r"\(0, 2\)"):
        TsallisINF([1.0, 2.5])
    with pytest.raises(OptionError, match="context_range"):
        ChebCB(context_range=(1, 0))


def test_protocol_misuse_is_reported():
    pol = TsallisINF(seed=0)
    with pytest.raises(OptionError, match="without a preceding select"):
        pol.update(5)
    pol.select()
    with pytest.raises(OptionError, match="twice"):
        pol.select()
    with pytest.raises(OptionError, match=r"iterations must be a finite number >= 0, got -3"):
        pol.update(-3)
    with pytest.raises(OptionError, match="context"):
        ChebCB(context_range=(0, 1)).select()
    with pytest.raises(OptionError, match="context"):
        TsallisINFCB(context_range=(0, 1)).select(float("nan"))


def test_chebyshev_features_match_numpy():
    for x in (-1.0, -0.3, 0.0, 0.77, 1.0):
        f = chebyshev_features(x, 7)
        ref = [np.polynomial.chebyshev.Chebyshev.basis(j)(x) for j in range(7)]
        np.testing.assert_allclose(f, ref, rtol=1e-12, atol=1e-12)


def test_chebcb_regression_matches_batch_least_squares():
    """The incremental QR keeps exactly the per-arm least-squares fit (checked for an arm
    whose fit stays inside the coefficient box)."""
    pol = ChebCB(np.array([1.0, 1.5]), seed=0, degree=2, context_range=(0, 1))
    rng = np.random.default_rng(4)
    X, Y = {0: [], 1: []}, {0: [], 1: []}
    for _ in range(200):
        c = rng.uniform(0, 1)
        pol.select(c)
        y = 50 + 5 * c + rng.normal(0, 0.5)
        X[pol.arm].append(chebyshev_features(2 * c - 1, 3))
        Y[pol.arm].append(y - 1)
        pol.update(y)
    for a in (0, 1):
        F, y = np.array(X[a]), np.array(Y[a]) / pol.scale
        ref = np.linalg.lstsq(F, y, rcond=None)[0]
        lb_ub_ok = np.abs(ref[0]) <= 1 / (pol.scale / pol.kmax)
        if lb_ub_ok:
            np.testing.assert_allclose(pol.theta[a], ref, rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("policy", ["fixed", "tsallis-inf", "tsallis-inf-cb", "chebcb"])
@pytest.mark.parametrize("seed", [-1, 1.5, "0", True, np.random.default_rng(0)])
def test_bad_policy_seed_is_an_option_error(policy, seed):
    # a seed must be a non-negative integer or a SeedSequence: anything else, True and a
    # Generator included (a Generator cannot be replayed by reset()), is an OptionError
    with pytest.raises(linsolve.OptionError, match="seed"):
        linsolve.make_solver("bandit-sor", policy=policy, policy_options={"seed": seed})


@pytest.mark.parametrize("policy", ["tsallis-inf", "tsallis-inf-cb"])
def test_policy_seeded_by_a_seed_sequence_replays_after_reset(policy):
    from linsolve.relaxation.bandits import make_policy

    pol = make_policy(policy, seed=np.random.SeedSequence(7))
    ctx = np.linspace(0.05, 0.95, 12)
    first = []
    for c in ctx:
        first.append(pol.select(c))
        pol.update(10 + 3 * pol.arm)
    pol.reset()
    again = []
    for c in ctx:
        again.append(pol.select(c))
        pol.update(10 + 3 * pol.arm)
    assert first == again and len(set(first)) > 1
