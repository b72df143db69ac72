"""The sor / ssor-pcg / bandit-sor solvers and the paper's synthetic sequence."""
from __future__ import annotations

import numpy as np
import pytest
from solver_problems import poisson_problem

import linsolve
from linsolve import gallery, make_solver
from linsolve.core.errors import OptionError
from linsolve.relaxation.bandits import ChebCB, TsallisINF, replay
from linsolve.relaxation.khodak_sequence import (
    SHIFT_RANGE,
    iteration_table,
    shifted_laplacian_sequence,
    truncated_normal,
)
from linsolve.relaxation.young import iteration_count


def _system(n=10, seed=0):
    A = gallery.poisson2d(n)
    b = np.random.default_rng(seed).standard_normal(A.shape[0])
    return A, b


def test_sor_solver_matches_dense_and_counts():
    A, b = _system()
    res = make_solver("sor", omega=1.6, rtol=1e-10).solve(A, b)
    assert res.converged
    x_ref = np.linalg.solve(A.toarray(), b)
    assert np.linalg.norm(res.x - x_ref) <= 1e-8 * np.linalg.norm(x_ref)
    assert res.info["omega"] == 1.6
    assert res.iterations == iteration_count(A, b, 1.6, rtol=1e-10)
    assert res.residual_norms.size == res.iterations


def test_paper_stop_is_relative_to_initial_residual():
    A, b = _system()
    x_ref = np.linalg.solve(A.toarray(), b)
    x0 = x_ref + 1e-3 * np.random.default_rng(1).standard_normal(b.size)  # ||r0|| << ||b||
    r0 = np.linalg.norm(b - A @ x0)
    pkg = make_solver("sor", omega=1.5, rtol=1e-6).solve(A, b, x0=x0)
    paper = make_solver("sor", omega=1.5, rtol=1e-6, paper_stop=True).solve(A, b, x0=x0)
    assert pkg.converged and paper.converged
    assert np.linalg.norm(b - A @ paper.x) <= 1e-6 * r0 * (1 + 1e-8)
    assert paper.info["stop_tol"] == pytest.approx(1e-6 * r0)
    assert paper.iterations > pkg.iterations
    # x0 = 0: both rules are the same test
    a = make_solver("sor", omega=1.5, rtol=1e-8).solve(A, b)
    p = make_solver("sor", omega=1.5, rtol=1e-8, paper_stop=True).solve(A, b)
    assert a.iterations == p.iterations


def test_paper_stop_looser_rule_is_reported_as_converged():
    A, b = _system()
    x0 = 50 * np.ones_like(b)  # ||r0|| >> ||b||: the paper rule is looser than the package's
    r0 = np.linalg.norm(b - A @ x0)
    res = make_solver("sor", omega=1.5, rtol=1e-3, paper_stop=True).solve(A, b, x0=x0)
    assert res.converged
    rn = np.linalg.norm(b - A @ res.x)
    assert rn <= 1e-3 * r0 * (1 + 1e-8)
    assert rn > 1e-3 * np.linalg.norm(b)  # stopped by the paper's rule, not the package's


@pytest.mark.parametrize("impl", ["numba", "scipy"])
def test_ssor_pcg_implementations_agree(impl):
    A, b = _system(12, 2)
    res = make_solver("ssor-pcg", omega=1.4, rtol=1e-10, impl=impl).solve(A, b)
    assert res.converged
    np.testing.assert_allclose(res.x, np.linalg.solve(A.toarray(), b), rtol=1e-7)
    ref = make_solver("ssor-pcg", omega=1.4, rtol=1e-10).solve(A, b)
    assert abs(res.iterations - ref.iterations) <= 1
    cg = make_solver("cg", rtol=1e-10).solve(A, b)
    assert ref.iterations < cg.iterations


def test_options_validated():
    with pytest.raises(OptionError, match="omega"):
        make_solver("sor", omega=2.0)
    with pytest.raises(OptionError, match="pc must be 'none'"):
        make_solver("sor", pc="jacobi")
    with pytest.raises(OptionError, match="method"):
        make_solver("bandit-sor", method="gmres")
    with pytest.raises(OptionError, match="unknown policy"):
        make_solver("bandit-sor", policy="epsilon-greedy")
    with pytest.raises(OptionError, match="impl"):
        make_solver("ssor-pcg", impl="cuda")


def test_bandit_sor_learns_records_and_resets():
    seq = shifted_laplacian_sequence(60, "low", seed=3)
    s = make_solver("bandit-sor", policy="tsallis-inf", policy_options={"seed": 5}, rtol=1e-8)
    omegas = []
    for A, b, c in seq:
        res = s.solve(A, b, context=c)
        assert res.converged
        w = res.info["omega"]
        assert res.info["arm"] == int(np.argmin(np.abs(s.policy.omegas - w)))
        # the count the policy was fed is the count of a plain SOR solve with that w
        assert res.iterations == make_solver("sor", omega=w, rtol=1e-8).solve(A, b).iterations
        omegas.append(w)
    assert s.policy.t == 61
    s.reset()
    assert s.policy.t == 1 and np.all(s.policy.cum == 0)
    again = [s.solve(A, b, context=c).info["omega"] for A, b, c in seq]
    assert again == omegas  # same seed, same feedback: same choices


def test_online_solver_equals_replay_on_the_table():
    """The table replay used by the benchmark is exactly what the online solver does."""
    seq = shifted_laplacian_sequence(80, "high", seed=4)
    grid = np.linspace(1.0, 1.95, 20)
    table = iteration_table(seq, grid)
    arms, paid = replay(ChebCB(grid, seed=2, context_range=SHIFT_RANGE), table, seq.contexts)
    s = make_solver("bandit-sor", policy=ChebCB(grid, seed=2, context_range=SHIFT_RANGE), rtol=1e-8,
                    maxiter=10000)
    online = [s.solve(A, b, context=c) for A, b, c in seq]
    assert [r.info["arm"] for r in online] == arms.tolist()
    assert sum(r.iterations for r in online) == paid.sum()


def test_contextual_policy_needs_context():
    A, b = _system(5)
    s = make_solver("bandit-sor", policy="chebcb", policy_options={"context_range": (0, 1)})
    with pytest.raises(OptionError, match="context"):
        s.solve(A, b)
    assert s.solve(A, b, context=0.3).converged


def test_bandit_ssor_pcg_and_scipy_style_function():
    A, b = _system(8, 5)
    s = make_solver("bandit-sor", method="ssor-pcg", policy=TsallisINF(seed=1), rtol=1e-9)
    for _ in range(5):
        res = s.solve(A, b)
        assert res.converged and res.info["method"] == "ssor-pcg"
    x, info = linsolve.bandit_sor(A, b, rtol=1e-9)
    assert info == 0 and np.linalg.norm(b - A @ x) <= 1e-9 * np.linalg.norm(b) * (1 + 1e-6)


def test_contextual_bandit_beats_gauss_seidel_on_sequence():
    seq = shifted_laplacian_sequence(300, "low", seed=6)
    grid = np.linspace(1.0, 1.95, 20)
    table = iteration_table(seq, grid)
    _, paid = replay(ChebCB(grid, seed=0, context_range=SHIFT_RANGE), table, seq.contexts)
    assert paid.sum() < 0.5 * table[:, 0].sum()  # far cheaper than w = 1
    # 300 systems are a short horizon; it is already close to the best fixed w in hindsight
    assert paid.sum() < 1.25 * table.sum(axis=0).min()


def test_sequence_is_the_papers():
    seq = shifted_laplacian_sequence(2000, "low", seed=0)
    assert seq.base.shape == (100, 100) and seq.base.diagonal().max() == 4.0
    assert np.all((seq.shifts >= -0.15) & (seq.shifts <= 0.45))
    # E[0.6 Beta(2, 6) - 0.15] = 0.6 * 0.25 - 0.15 = 0
    assert abs(seq.shifts.mean()) < 0.01
    high = shifted_laplacian_sequence(2000, "high", seed=0)
    assert high.shifts.mean() == pytest.approx(0.6 * 0.25 - 0.15, abs=0.01)
    assert high.shifts.std() > 1.5 * seq.shifts.std()
    assert np.all(np.linalg.norm(seq.rhs, axis=1) <= 10.0)
    A, b, c = seq.system(7)
    np.testing.assert_allclose(A.diagonal(), 4.0 + c)
    again = shifted_laplacian_sequence(2000, "low", seed=0)
    assert np.array_equal(again.rhs, seq.rhs) and np.array_equal(again.shifts, seq.shifts)
    with pytest.raises(OptionError, match="variance"):
        shifted_laplacian_sequence(10, "medium")


def test_truncated_normal_is_radially_truncated():
    rng = np.random.default_rng(0)
    draws = np.array([truncated_normal(50, rng) for _ in range(300)])
    norms = np.linalg.norm(draws, axis=1)
    assert norms.max() <= np.sqrt(50)
    assert abs(draws.mean()) < 0.05


@pytest.mark.petsc
@pytest.mark.parametrize("method", ["sor", "ssor-pcg"])
def test_petsc_backend_matches_numba(petsc, method):
    A, b = _system(10, 7)
    for w in (1.0, 1.5):
        ours = make_solver(method, omega=w, rtol=1e-8).solve(A, b)
        theirs = make_solver(method, omega=w, rtol=1e-8, backend="petsc").solve(A, b)
        assert ours.converged and theirs.converged
        assert theirs.info["pc_type"] == "sor"
        assert abs(ours.iterations - theirs.iterations) <= 1, (w, ours.iterations, theirs.iterations)
        np.testing.assert_allclose(ours.x, theirs.x, rtol=1e-6, atol=1e-8)


def test_true_residual_restart_is_not_a_second_bandit_round():
    # At rtol=1e-13 SOR's recurrence stops just short of the true-residual rule and the base
    # class continues from x; that continuation must keep w and not feed the policy a
    # second (cheap, flattering) round for the same system.
    A = gallery.poisson2d(40)
    rng = np.random.default_rng(0)
    s = make_solver("bandit-sor", rtol=1e-13, maxiter=20000)
    restarted = 0
    for k in range(3):
        res = s.solve(A, rng.standard_normal(A.shape[0]))
        assert res.converged, res
        restarted += res.info.get("true_residual_restarts", 0)
        assert s.policy.t == k + 2  # t counts rounds from 1
        assert res.info["omega"] == s.policy.omegas[res.info["arm"]]
    assert restarted > 0  # the case this test is about happened


def _zero_diagonal(stored: bool):
    import scipy.sparse as sp

    A = gallery.poisson2d(3).tocsr()
    A.data[A.indptr[4] + list(A.indices[A.indptr[4]:A.indptr[5]]).index(4)] = 0.0  # a stored zero
    if not stored:
        A.eliminate_zeros()
    assert (A[4, 4] == 0) and ((4 in A.indices[A.indptr[4]:A.indptr[5]]) == stored)
    return sp.csr_matrix(A)


@pytest.mark.petsc
@pytest.mark.parametrize("stored", [True, False])
@pytest.mark.parametrize("name", ["sor", "ssor-pcg", "bandit-sor"])
def test_sor_family_refuses_a_zero_diagonal_alike_on_both_backends(petsc, name, stored):
    # both backends refuse a zero diagonal, stored or missing, with the same SolverError
    # naming the zero entry (not petsc4py's "error code 73" or a division by zero)
    A = _zero_diagonal(stored)
    for backend in ("scipy", "petsc"):
        with pytest.raises(linsolve.SolverError, match=r"needs a nonzero diagonal; A\[4, 4\] is zero"):
            linsolve.make_solver(name, backend=backend).solve(A, np.ones(9))


@pytest.mark.parametrize("policy", ["tsallis-inf", "tsallis-inf-cb", "chebcb"])
def test_bandit_sor_after_a_system_that_raised_goes_on_as_if_it_had_not_been_given(policy):
    # the policy has selected w before the solve raises: that selection is withdrawn, so
    # the later solves run as if the failing system had never been given
    from linsolve.relaxation.khodak_sequence import shifted_laplacian_sequence

    seq = shifted_laplacian_sequence(T=6, variance="high", seed=1)
    opts = {"seed": 4}
    if policy != "tsallis-inf":
        opts["context_range"] = seq.context_range

    def run(with_failure):
        solver = linsolve.make_solver("bandit-sor", policy=policy, policy_options=opts, rtol=1e-8)
        out = []
        for t, (A, b, c) in enumerate(seq):
            if with_failure and t == 2:
                with pytest.raises(linsolve.SolverError, match="nonzero diagonal"):
                    solver.solve(_zero_diagonal(True), np.ones(9), context=c)
            res = solver.solve(A, b, context=c)
            assert res.converged
            assert np.linalg.norm(b - A @ res.x) <= 1e-8 * np.linalg.norm(b) * (1 + 1e-8)
            out.append((res.info["omega"], res.iterations))
        return out

    assert run(True) == run(False)


@pytest.mark.parametrize("policy", ["tsallis-inf-cb", "chebcb"])
@pytest.mark.parametrize("context", [np.array([0.2, 0.9]), [0.1, 0.5, 0.7], [], "0.3", True])
def test_contextual_policy_refuses_a_context_that_is_not_one_number(policy, context):
    # a vector is not cut to its first entry (the policy would learn on 0.2 for [0.2, 0.9])
    A, b, xref = poisson_problem(4)
    solver = linsolve.make_solver("bandit-sor", policy=policy, rtol=1e-8)
    with pytest.raises(linsolve.OptionError, match="scalar context"):
        solver.solve(A, b, context=context)
    res = solver.solve(A, b, context=np.array([0.2]))  # a one-element array is one number
    assert res.converged and np.linalg.norm(res.x - xref) <= 1e-6 * np.linalg.norm(xref)


@pytest.mark.petsc
@pytest.mark.parametrize("name", ["sor", "bandit-sor"])
def test_paper_stop_is_honoured_by_the_petsc_backend(petsc, name):
    # backend="petsc" stops at rtol ||r0|| with paper_stop, as the SciPy backend does
    A, b, _ = poisson_problem(8)
    x0 = np.full(A.shape[0], 50.0)
    r0 = np.linalg.norm(b - A @ x0)
    opts = {"policy": "fixed", "policy_options": {"omega": 1.0}} if name == "bandit-sor" else {}
    got = {}
    for backend in ("scipy", "petsc"):
        res = linsolve.make_solver(name, paper_stop=True, rtol=1e-6, backend=backend, **opts).solve(A, b, x0=x0)
        assert res.converged and res.info["stop_tol"] == pytest.approx(1e-6 * r0)
        assert np.linalg.norm(b - A @ res.x) <= 1e-6 * r0
        got[backend] = res.iterations
    # SOR from the same x0 with the same w: the same iterations on both backends, and the
    # rule relative to r0 (not ||b||) is what stopped them
    assert got["scipy"] == got["petsc"]
    plain = linsolve.make_solver(name, rtol=1e-6, backend="petsc", **opts).solve(A, b, x0=x0)
    assert plain.iterations != got["petsc"]


def test_bandit_ssor_pcg_refuses_paper_stop_instead_of_ignoring_it():
    # paper_stop applies to method="sor" only; with "ssor-pcg" it is refused
    with pytest.raises(linsolve.OptionError, match="paper_stop.*method='sor' only"):
        linsolve.make_solver("bandit-sor", method="ssor-pcg", paper_stop=True)
    assert linsolve.make_solver("bandit-sor", method="sor", paper_stop=True).opts["paper_stop"] is True


def test_scipy_style_bandit_sor_takes_the_context():
    # linsolve.bandit_sor(A, b, policy="chebcb", context=c) passes context= to the solve
    A, b, xref = poisson_problem(8)
    x, info = linsolve.bandit_sor(A, b, rtol=1e-9, policy="chebcb", context=0.3)
    assert info == 0 and np.linalg.norm(x - xref) <= 1e-7 * np.linalg.norm(xref)
    with pytest.raises(linsolve.OptionError, match="contextual"):
        linsolve.bandit_sor(A, b, policy="chebcb")


def test_iteration_table_counts_a_diverged_sor_run_as_maxiter():
    # Gauss-Seidel on [[1, 3], [3, 1]] grows ~9x per sweep until the residual overflows; the
    # table counts the run as maxiter, not the sweeps to the overflow (about 330)
    import scipy.sparse as sp

    from linsolve.relaxation.khodak_sequence import iteration_table
    from linsolve.relaxation.sor_kernels import as_kernel_data
    from linsolve.relaxation.young import iteration_count

    A = sp.csr_matrix(np.array([[1.0, 3.0], [3.0, 1.0]]))
    b = np.array([1.0, -2.0])
    table = iteration_table([(A, b, 0.0)], [1.0, 1.5], maxiter=5000)
    assert table.tolist() == [[5000, 5000]]
    assert [iteration_count(as_kernel_data(A), b, w, maxiter=5000) for w in (1.0, 1.5)] == [5000, 5000]


@pytest.mark.parametrize("omegas", [[0.0], [np.nan], [2.5], [[1.0, 1.2]], ["a"]])
def test_iteration_table_refuses_omegas_outside_zero_two(omegas):
    # 0, nan, > 2 and nested lists are OptionErrors before the kernel runs
    from linsolve.relaxation.khodak_sequence import iteration_table, shifted_laplacian_sequence

    with pytest.raises(OptionError, match="omegas"):
        iteration_table(shifted_laplacian_sequence(T=2), omegas)


@pytest.mark.parametrize("kw", [dict(grid=0), dict(grid=2.5), dict(seed=-1), dict(seed=1.5)])
def test_shifted_laplacian_sequence_refuses_bad_grid_and_seed(kw):
    from linsolve.relaxation.khodak_sequence import shifted_laplacian_sequence

    with pytest.raises(OptionError, match=next(iter(kw))):
        shifted_laplacian_sequence(T=2, **kw)
