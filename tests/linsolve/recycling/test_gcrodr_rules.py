"""The rules GCRO-DR's real and complex paths share (``linsolve.recycling.gcrodr_rules``): the
stop rule after a cycle, the cycle budget, the refit trigger and the QR rank cut, and that
both paths apply them alike."""
from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

import linsolve
from linsolve.recycling import gcrodr_rules as rules


def test_a_cycle_reaching_the_tolerance_converges_even_at_a_breakdown():
    assert rules.end_of_cycle(1e-9, 1.0, 0, 1e-8, "non-finite") == (0, "converged")
    assert rules.end_of_cycle(1e-9, 1.0, 2, 1e-8, True) == (0, "converged")


@pytest.mark.parametrize("new,old,stalls,expected", [
    (0.5, 1.0, 2, 0),            # a decrease resets the count
    (1.0, 1.0, 0, 1),            # no change is a stall
    (1.0 - 1e-14, 1.0, 1, 2),    # a decrease below a relative 1e-12 is a stall
    (1.0 - 1e-10, 1.0, 1, 0),
])
def test_stall_count_follows_the_relative_decrease(new, old, stalls, expected):
    assert rules.end_of_cycle(new, old, stalls, 1e-8, False)[0] == expected


def test_stop_reasons_after_a_cycle():
    assert rules.end_of_cycle(0.5, 1.0, 0, 1e-8, "non-finite")[1] == rules.NON_FINITE
    # an exhausted Krylov space ends the solve only where the cycle did not help
    assert rules.end_of_cycle(0.5, 1.0, 0, 1e-8, True)[1] is None
    assert rules.end_of_cycle(1.0, 1.0, 0, 1e-8, True)[1] == rules.EXHAUSTED
    assert rules.end_of_cycle(1.0, 1.0, rules.STALL_LIMIT - 2, 1e-8, False)[1] is None
    assert rules.end_of_cycle(1.0, 1.0, rules.STALL_LIMIT - 1, 1e-8, False) == (rules.STALL_LIMIT,
                                                                                rules.STAGNATION)


def test_cycle_budget_counts_cycles_except_for_legacy_callbacks():
    assert rules.cycle_budget("legacy", 100, 30) is None
    assert rules.cycle_budget("pr_norm", 100, 30) == 3
    assert rules.cycle_budget("x", 10, 30) == 1  # at least one cycle


def test_refit_when_matrix_preconditioner_or_side_changes():
    A, M = object(), object()
    key = (A, M, "right")
    assert not rules.needs_refit(key, A, M, "right")
    assert rules.needs_refit(None, A, M, "right")
    assert rules.needs_refit(key, object(), M, "right")
    assert rules.needs_refit(key, A, object(), "right")
    assert rules.needs_refit(key, A, M, "left")


def test_qr_rank_matches_numpy_matrix_rank():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((20, 3)) @ rng.standard_normal((3, 6))  # rank 3
    R = np.linalg.qr(X[:, np.argsort(-np.linalg.norm(X, axis=0))], mode="r")
    assert rules.qr_rank(R) == np.linalg.matrix_rank(X) == 3
    assert rules.qr_rank(np.zeros((4, 4))) == 0 and rules.qr_rank(np.zeros((0, 0))) == 0


def test_real_and_complex_paths_stop_alike_on_a_singular_system():
    # b outside the range of a singular A: neither path can converge; both report the same
    # shared reason, with the same info keys
    A = sp.diags([1.0, 2.0, 3.0, 0.0, 5.0, 6.0]).tocsr()
    b = np.ones(6)
    results = []
    for rhs in (b, b + 0j):
        res = linsolve.make_solver("gcrodr", restart=4, recycle=1, rtol=1e-10, maxiter=200).solve(A, rhs)
        assert not res.converged
        results.append(res)
    real, cplx = results
    assert real.reason == cplx.reason
    assert real.reason in (rules.EXHAUSTED, rules.STAGNATION)
    assert {"norm", "recycled_dim", "recycle_matvecs", "pc_side"} <= set(real.info) & set(cplx.info)
    # the least-squares solution's residual: the unreachable component of b, exactly
    assert real.relative_residual == pytest.approx(1 / np.sqrt(6), rel=1e-8)
    assert cplx.relative_residual == pytest.approx(1 / np.sqrt(6), rel=1e-8)
