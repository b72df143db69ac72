"""Regression tests from the adversarial user-path review of the solver interface, bandit
SOR and DCDM (session 3): inputs a SciPy/PETSc user hands the public API that once gave a
wrong result field, a traceback from deep inside a library, or silent garbage."""
from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse.linalg as spla

import linsolve
from linsolve import gallery


def _poisson(n=8):
    A = gallery.poisson2d(n)
    b = np.arange(1.0, A.shape[0] + 1)
    return A, b, np.linalg.solve(A.toarray(), b)


# --- SciPy bicgstab's half-step exit -------------------------------------------------------
def test_bicgstab_counts_the_half_step_that_converged():
    # SciPy returns from the half step without calling the callback: a 1 x 1 system was
    # solved with "0 iterations" and an empty history
    res = linsolve.make_solver("bicgstab").solve(np.array([[2.0]]), np.array([4.0]))
    assert res.converged and res.x[0] == pytest.approx(2.0)
    assert res.iterations == 1 and len(res.residual_norms) == 1

    A, b, xref = _poisson()
    tol = 1e-10 * np.linalg.norm(b)
    res = linsolve.make_solver("bicgstab", rtol=1e-10).solve(A, b)
    assert res.converged
    assert np.linalg.norm(res.x - xref) <= 1e-8 * np.linalg.norm(xref)
    # the history is the true residual per iteration and ends with the one that met the rule
    assert len(res.residual_norms) == res.iterations
    assert res.residual_norms[-1] <= tol
    assert res.residual_norms[-1] == pytest.approx(np.linalg.norm(b - A @ res.x), rel=1e-12)
    # SciPy's own count of work: one x update per callback, plus the half step
    calls = []
    spla.bicgstab(A, b, rtol=0.0, atol=tol, callback=lambda xk: calls.append(1))
    assert res.iterations == len(calls) + 1


# --- DCDM: exact line search whatever the network returns -------------------------------
def test_dcdm_error_never_grows_with_a_geometry_blind_to_the_dirichlet_boundary():
    # cell_type without AIR tells the network the box is closed (pure Neumann) while the
    # matrix is Dirichlet: the network's directions carry a huge near-constant part. The
    # product with A was updated through the orthogonalisation instead of taken after it,
    # so the line search stopped being exact: the A-norm error grew to 1e11 and the
    # result said "A is not SPD" for the SPD Laplacian.
    from linsolve import FLUID, Grid

    A, _, _ = _poisson(8)
    b = np.random.default_rng(0).standard_normal(A.shape[0])
    xref = np.linalg.solve(A.toarray(), b)
    grid = Grid((8, 8), cell_type=np.full((8, 8), FLUID))
    xs = []
    res = linsolve.make_solver("dcdm", rtol=1e-8, callback=xs.append).solve(A, b, grid=grid)
    assert res.converged, res
    assert np.linalg.norm(res.x - xref) <= 1e-6 * np.linalg.norm(xref)
    errs = [np.sqrt((x - xref) @ (A @ (x - xref))) for x in [np.zeros_like(b), *xs]]
    # an exact line search along any direction cannot raise the A-norm of the error
    assert all(e1 <= e0 * (1 + 1e-9) for e0, e1 in zip(errs, errs[1:], strict=False))
    # the recurrence residual is the true one
    for x, r in zip(xs, res.residual_norms, strict=True):
        assert r == pytest.approx(np.linalg.norm(b - A @ x), rel=1e-6, abs=1e-12)


# --- PETSc KSP driver ------------------------------------------------------------------------
_USER_PC_SCRIPT = """
import numpy as np, scipy.sparse as sp, scipy.sparse.linalg as spla, linsolve
from linsolve import gallery
A = gallery.variable_diffusion2d(12)
b = np.random.default_rng(0).standard_normal(A.shape[0])
xref = np.linalg.solve(A.toarray(), b)
ilu = spla.spilu(A.tocsc(), drop_tol=1e-2)
for name, M in [("gmres", spla.LinearOperator(A.shape, matvec=ilu.solve)), ("bicgstab", ilu.solve),
                ("cg", sp.diags(1.0 / A.diagonal())), ("petsc", spla.LinearOperator(A.shape, matvec=ilu.solve))]:
    opts = dict(rtol=1e-10, pc=M) if name == "petsc" else dict(rtol=1e-10, pc=M, backend="petsc")
    res = linsolve.make_solver(name, **opts).solve(A, b)
    ref = linsolve.make_solver(name if name != "petsc" else "gmres", rtol=1e-10, pc=M).solve(A, b)
    err = np.linalg.norm(res.x - xref) / np.linalg.norm(xref)
    print(name, int(res.converged), res.iterations, ref.iterations, err)
"""


@pytest.mark.petsc
def test_petsc_backend_applies_a_user_preconditioner(petsc):
    # a matrix, LinearOperator or callable as pc= with backend="petsc" killed the process
    # (SIGSEGV in PCApply_Python, MPI_Abort 59): run it in a child so a regression fails
    # this test instead of the whole session
    import subprocess
    import sys

    p = subprocess.run([sys.executable, "-c", _USER_PC_SCRIPT], capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr[-2000:]
    names = ("gmres", "bicgstab", "cg", "petsc")
    rows = [ln.split() for ln in p.stdout.splitlines() if ln.split()[:1] and ln.split()[0] in names]
    assert tuple(r[0] for r in rows) == names
    for name, conv, its, ref_its, err in rows:
        assert conv == "1" and float(err) < 1e-8, (name, its, err)
        # the preconditioner is applied: PETSc needs what SciPy needs with the same M
        assert abs(int(its) - int(ref_its)) <= 2, (name, its, ref_its)


@pytest.mark.petsc
@pytest.mark.parametrize("name,opts", [("gmres", {"backend": "petsc", "pc": "ilu"}), ("cg", {"backend": "petsc"}),
                                       ("direct", {"backend": "petsc"}), ("petsc", {"ksp_type": "bcgs"}),
                                       ("sor", {"backend": "petsc", "omega": 1.5}),
                                       ("bandit-sor", {"backend": "petsc", "method": "ssor-pcg"})])
def test_petsc_solver_object_solves_systems_of_different_sizes(petsc, name, opts):
    # KSPSetOperators refused the second size (bare petsc4py "error code 60")
    solver = linsolve.make_solver(name, rtol=1e-10, **opts)
    for k in (4, 5, 4):
        A = gallery.poisson2d(k)
        b = np.arange(1.0, k * k + 1)
        res = solver.solve(A, b)
        assert res.converged, (k, res)
        xref = np.linalg.solve(A.toarray(), b)
        assert np.linalg.norm(res.x - xref) <= 1e-7 * np.linalg.norm(xref)


def _missing_diagonal():
    """Non-singular, but its diagonal entries are not stored: ILU/ICC/LU/SOR in PETSc refuse it."""
    import scipy.sparse as sp

    P = sp.csr_matrix(np.fliplr(np.eye(4)) + np.diag(np.ones(3), 1) * 0.1 - np.diag(np.ones(3), 1) * 0.1)
    P.eliminate_zeros()
    assert P.diagonal().tolist() == [0.0] * 4 and P.nnz == 4
    return P


@pytest.mark.petsc
@pytest.mark.parametrize("name,opts", [("gmres", {"backend": "petsc", "pc": "ilu"}),
                                       ("bicgstab", {"backend": "petsc", "pc": "sor"}),
                                       ("direct", {"backend": "petsc"}),
                                       ("petsc", {"ksp_type": "preonly", "pc": "lu"})])
def test_petsc_failure_inside_kspsolve_is_a_solver_error(petsc, name, opts):
    # the PC is set up inside KSPSolve; its failure escaped as petsc4py.PETSc.Error
    # ("error code 73"), which is not a ValueError
    solver = linsolve.make_solver(name, **opts)
    with pytest.raises(linsolve.SolverError, match="diagonal"):
        solver.solve(_missing_diagonal(), np.ones(4))
    # the solver object is still usable
    A = gallery.poisson2d(2)
    res = solver.solve(A, np.array([1.0, 2.0, 3.0, 4.0]))
    assert res.converged
    np.testing.assert_allclose(res.x, np.linalg.solve(A.toarray(), [1.0, 2.0, 3.0, 4.0]), rtol=1e-4)


# --- SOR family ------------------------------------------------------------------------------
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
    # backend="petsc" raised petsc4py's "error code 73" (missing entry) or divided by the
    # stored zero; the SciPy backend says which diagonal entry is zero
    A = _zero_diagonal(stored)
    for backend in ("scipy", "petsc"):
        with pytest.raises(linsolve.SolverError, match=r"needs a nonzero diagonal; A\[4, 4\] is zero"):
            linsolve.make_solver(name, backend=backend).solve(A, np.ones(9))


@pytest.mark.parametrize("policy", ["tsallis-inf", "tsallis-inf-cb", "chebcb"])
def test_bandit_sor_after_a_system_that_raised_goes_on_as_if_it_had_not_been_given(policy):
    # the policy had selected w before the solve raised, so every later solve raised
    # "select() called twice without update(iterations)"
    from linsolve.sequences import shifted_laplacian_sequence

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


# --- bandit policies -------------------------------------------------------------------------
@pytest.mark.parametrize("policy", ["fixed", "tsallis-inf", "tsallis-inf-cb", "chebcb"])
@pytest.mark.parametrize("seed", [-1, 1.5, "0", True, np.random.default_rng(0)])
def test_bad_policy_seed_is_an_option_error(policy, seed):
    # NumPy's TypeError (1.5, "0") or bare ValueError (-1) came out of make_solver, and the
    # CLI printed a traceback with exit 1; True and a Generator were taken (a Generator
    # cannot be replayed by reset())
    with pytest.raises(linsolve.OptionError, match="seed"):
        linsolve.make_solver("bandit-sor", policy=policy, policy_options={"seed": seed})


@pytest.mark.parametrize("policy", ["tsallis-inf", "tsallis-inf-cb"])
def test_policy_seeded_by_a_seed_sequence_replays_after_reset(policy):
    from linsolve.bandits import make_policy

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


@pytest.mark.parametrize("policy", ["tsallis-inf-cb", "chebcb"])
@pytest.mark.parametrize("context", [np.array([0.2, 0.9]), [0.1, 0.5, 0.7], [], "0.3", True])
def test_contextual_policy_refuses_a_context_that_is_not_one_number(policy, context):
    # a vector was silently cut to its first entry (the policy learnt on 0.2 for [0.2, 0.9])
    A, b, xref = _poisson(4)
    solver = linsolve.make_solver("bandit-sor", policy=policy, rtol=1e-8)
    with pytest.raises(linsolve.OptionError, match="scalar context"):
        solver.solve(A, b, context=context)
    res = solver.solve(A, b, context=np.array([0.2]))  # a one-element array is one number
    assert res.converged and np.linalg.norm(res.x - xref) <= 1e-6 * np.linalg.norm(xref)


# --- preconditioners -------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["cg", "gmres", "bicgstab", "minres", "rcg", "gcrodr"])
def test_user_preconditioner_returning_the_wrong_length_or_complex_values(name):
    # NumPy's reshape/broadcast ValueError, or BLAS's _fblas.error (not a ValueError) in rcg
    A, b, xref = _poisson(4)
    with pytest.raises(linsolve.OptionError, match="returned 15 values for a vector of length 16"):
        linsolve.make_solver(name, pc=lambda r: r[:-1]).solve(A, b)
    # complex values were cast to real with only a ComplexWarning
    with pytest.raises(linsolve.OptionError, match="complex"):
        linsolve.make_solver(name, pc=lambda r: (r / 4).astype(complex)).solve(A, b)
    import scipy.sparse as sp

    with pytest.raises(linsolve.OptionError, match="complex"):
        linsolve.make_solver(name, pc=sp.diags(np.full(16, 0.25 + 0j))).solve(A, b)
    # a right one still works
    res = linsolve.make_solver(name, pc=lambda r: r / 4, rtol=1e-10).solve(A, b)
    assert res.converged and np.linalg.norm(res.x - xref) <= 1e-8 * np.linalg.norm(xref)


@pytest.mark.parametrize("name", ["gmres", "bicgstab", "gcrodr"])
def test_scipy_ilu_that_cannot_be_built_is_a_solver_error(name):
    # SuperLU's RuntimeError("Factor is exactly singular") escaped from spilu
    import scipy.sparse as sp

    S = sp.csr_matrix(np.array([[1.0, 1.0], [1.0, 1.0]]))
    with pytest.raises(linsolve.SolverError, match="ILU preconditioner could not be built.*singular"):
        linsolve.make_solver(name, pc="ilu").solve(S, np.ones(2))


# --- DCDM options ----------------------------------------------------------------------------
def test_dcdm_device_torch_cannot_use_is_an_option_error_at_construction():
    # the first solve raised torch's RuntimeError (unknown name) or AssertionError ("Torch
    # not compiled with CUDA enabled") from inside the network call
    torch = pytest.importorskip("torch")
    with pytest.raises(linsolve.OptionError, match="not a torch device"):
        linsolve.make_solver("dcdm", device="banana")
    with pytest.raises(linsolve.OptionError, match="CUDA"):
        linsolve.make_solver("dcdm", device="cuda:99")
    if not torch.cuda.is_available():
        with pytest.raises(linsolve.OptionError, match="CUDA is not available"):
            linsolve.make_solver("dcdm", device="cuda")
    from linsolve import Grid

    A, b, xref = _poisson(8)
    res = linsolve.make_solver("dcdm", device="cpu:0", rtol=1e-10).solve(A, b, grid=Grid((8, 8)))
    assert res.converged and np.linalg.norm(res.x - xref) <= 1e-8 * np.linalg.norm(xref)


@pytest.mark.parametrize("shape", [(8.5, 8), (8, 7.9), ("8", 8), (True, 8), (None, 8), 8])
def test_grid_shape_that_is_not_integers_is_a_shape_error(shape):
    # int() truncated 8.5 to 8: a DCDM solve then ran on a grid the caller never described
    from linsolve import Grid

    with pytest.raises(linsolve.ShapeError, match="grid shape"):
        Grid(shape)
    assert Grid((8.0, np.int64(8))).shape == (8, 8)


# --- linsolve CLI ----------------------------------------------------------------------------
def _cli(*args):
    import subprocess
    import sys

    return subprocess.run([sys.executable, "-m", "linsolve.cli", *args], capture_output=True, text=True,
                          timeout=120)


def test_cli_complex_right_hand_side_exits_2_in_one_line(tmp_path):
    # the imaginary part was dropped with a ComplexWarning and the bench ran on garbage
    import scipy.sparse as sp

    A = gallery.poisson2d(4)
    sp.save_npz(str(tmp_path / "a.npz"), A)
    np.save(str(tmp_path / "b.npy"), np.ones(16) * (1 + 2j))
    p = _cli("bench", str(tmp_path / "a.npz"), "--rhs", str(tmp_path / "b.npy"), "--solvers", "cg")
    lines = [ln for ln in p.stderr.splitlines() if ln.strip()]
    assert p.returncode == 2 and len(lines) == 1 and "complex" in lines[0], p.stderr
    assert "Traceback" not in p.stderr and p.stdout.strip() == ""


@pytest.mark.petsc
@pytest.mark.parametrize("spec,needle", [("sor:backend=petsc", "nonzero diagonal"),
                                         ("gmres:backend=petsc:pc=ilu", "missing diagonal"),
                                         ('bandit-sor:policy_options={"seed": -1}', "seed")])
def test_cli_bench_solver_failures_exit_2_in_one_line(petsc, tmp_path, spec, needle):
    # these printed a rich traceback with exit 1
    sp_ = pytest.importorskip("scipy.sparse")
    sp_.save_npz(str(tmp_path / "z.npz"), sp_.csr_matrix(_missing_diagonal()))
    p = _cli("bench", str(tmp_path / "z.npz"), "--solvers", spec)
    lines = [ln for ln in p.stderr.splitlines() if ln.strip()]
    assert p.returncode == 2 and len(lines) == 1 and needle in lines[0], p.stderr


# --- Solver.solve keywords -------------------------------------------------------------------
@pytest.mark.parametrize("name,kw", [("cg", {"rtol": 1e-12}), ("gmres", {"maxiter": 1}), ("gmres", {"restart": 5}),
                                     ("cg", {"tol": 1e-12}), ("cg", {"M": None}), ("sor", {"omega": 1.5}),
                                     ("bandit-sor", {"policy": "chebcb"}), ("cg", {"callback": print})])
def test_solver_options_given_to_solve_are_refused_not_ignored(name, kw):
    # solve(A, b, rtol=1e-12) ran at the constructor's rtol (here 1e-2) and said converged
    A, b, _ = _poisson(8)
    solver = linsolve.make_solver(name, rtol=1e-2)
    with pytest.raises(linsolve.OptionError, match=f"{next(iter(kw))} configures the solver.*make_solver"):
        solver.solve(A, b, **kw)
    # per-solve context is still free-form, and the solver is unchanged by the refusal
    res = solver.solve(A, b, context=0.3) if name != "bandit-sor" else solver.solve(A, b)
    assert res.converged and res.relative_residual <= 1e-2


# --- a matrix updated in place between solves ------------------------------------------------
def _rescale_in_place(A, seed):
    """New values, same object and pattern (a time step updating A.data): D A D, D > 0 varying."""
    d = np.random.default_rng(seed).uniform(0.5, 2.0, A.shape[0])
    A.data *= d[np.repeat(np.arange(A.shape[0]), np.diff(A.indptr))] * d[A.indices]


_IN_PLACE = [("direct", {}), ("cg", {"pc": "ilu"}), ("cg", {"pc": "amg"}), ("cg", {"pc": "jacobi"}),
             ("cg", {"pc": "ssor"}), ("sor", {}), ("ssor-pcg", {}), ("bandit-sor", {})]
_IN_PLACE_PETSC = [("direct", {"backend": "petsc"}), ("gmres", {"pc": "ilu", "backend": "petsc"}),
                   ("cg", {"pc": "icc", "backend": "petsc"}), ("sor", {"backend": "petsc"}),
                   ("petsc", {"pc": "lu", "ksp_type": "preonly"})]


def _solve_updated_in_place(name, opts):
    A = gallery.poisson2d(8).tocsr()
    b = np.random.default_rng(3).standard_normal(64)
    solver = linsolve.make_solver(name, rtol=1e-9, **opts)
    for step in range(3):
        res = solver.solve(A, b)
        xref = np.linalg.solve(A.toarray(), b)
        assert res.converged, (step, res)
        assert np.linalg.norm(res.x - xref) <= 1e-7 * np.linalg.norm(xref)
        if name != "bandit-sor":  # (its policy learns across solves)
            # exactly what a fresh solver does on the new matrix: nothing of the old one kept
            fresh = linsolve.make_solver(name, rtol=1e-9, **opts).solve(A.copy(), b)
            assert res.iterations == fresh.iterations, (step, res.iterations, fresh.iterations)
        _rescale_in_place(A, step)


@pytest.mark.parametrize("name,opts", _IN_PLACE)
def test_matrix_updated_in_place_is_solved_with_its_new_entries(name, opts):
    # caches keyed on the matrix object outlived the update: the direct solver applied the
    # old factors (converged=False), SOR diverged on stale 1/a_ii, and the SciPy
    # preconditioners (ILU, AMG, Jacobi, SSOR) stayed those of the old matrix
    _solve_updated_in_place(name, opts)


@pytest.mark.petsc
@pytest.mark.parametrize("name,opts", _IN_PLACE_PETSC)
def test_matrix_updated_in_place_is_solved_with_its_new_entries_petsc(petsc, name, opts):
    # the KSP kept the PETSc copy of the old matrix and solved the old system
    _solve_updated_in_place(name, opts)


@pytest.mark.parametrize("name", ["cg", "minres"])
@pytest.mark.parametrize("pc,most", [("ilutp", 10), ("ilu", 80)])
def test_cg_with_scipy_ilu_converges_on_the_laplacian(name, pc, most):
    # SuperLU's ILU (COLAMD order, partial pivoting) is not symmetric for a symmetric A:
    # CG with it stalled at a relative residual of 0.15 after 25000 iterations at 50^2
    # (pc="ilutp" is built symmetric for CG/MINRES; ILU(0), pc="ilu", is symmetric anyway)
    import scipy.sparse as sp
    import scipy.sparse.linalg as spla

    A = gallery.poisson2d(50)
    b = np.random.default_rng(0).standard_normal(A.shape[0])
    xref = spla.spsolve(sp.csc_matrix(A), b)
    res = linsolve.make_solver(name, pc=pc, rtol=1e-8, maxiter=500).solve(A, b)
    assert res.converged and res.iterations <= most, res
    assert np.linalg.norm(res.x - xref) <= 1e-6 * np.linalg.norm(xref)


@pytest.mark.parametrize("opts", [{}, pytest.param({"backend": "petsc"}, marks=pytest.mark.petsc)])
def test_direct_solve_above_a_zero_tolerance_does_not_blame_a_recurrence(opts, request):
    # rtol=0: the LU solution's rounding residual is above the rule, reported honestly, but
    # the reason spoke of a "recurrence" a direct solver does not have
    if opts:
        request.getfixturevalue("petsc")
    A, b, xref = _poisson(8)
    res = linsolve.make_solver("direct", rtol=0.0, **opts).solve(A, b)
    assert not res.converged and res.relative_residual == pytest.approx(
        np.linalg.norm(b - A @ res.x) / np.linalg.norm(b))
    assert res.reason.startswith("direct solve done but true residual") and "recurrence" not in res.reason
    assert np.linalg.norm(res.x - xref) <= 1e-12 * np.linalg.norm(xref)


# --- a user LinearOperator as A --------------------------------------------------------------
def _bad_operator(kind):
    A, _, _ = _poisson(4)
    out = {"short": lambda x: (A @ x)[:-1], "complex": lambda x: (A @ x) * (1 + 0j)}[kind]
    return spla.LinearOperator(A.shape, matvec=out, dtype=np.float64)


@pytest.mark.parametrize("name", ["cg", "gmres", "bicgstab", "minres", "rcg", "gcrodr"])
def test_linear_operator_returning_the_wrong_length_or_complex_values(name):
    # NumPy's "cannot reshape" from inside SciPy; complex values raised a UFuncTypeError
    # (cg, bicgstab) or were cast to real with only a ComplexWarning (gmres, minres, ...)
    with pytest.raises(linsolve.ShapeError, match="A's matvec"):
        linsolve.make_solver(name).solve(_bad_operator("short"), np.ones(16))
    with pytest.raises(linsolve.SolverError, match="A's matvec returned complex128"):
        linsolve.make_solver(name).solve(_bad_operator("complex"), np.ones(16))


@pytest.mark.petsc
@pytest.mark.parametrize("name,opts", [("cg", {"backend": "petsc"}), ("petsc", {})])
def test_petsc_solve_of_a_linear_operator_raises_its_own_error(petsc, name, opts):
    # the error raised in the shell matrix's Python matvec came out as PETSc's "error code 101"
    with pytest.raises(linsolve.ShapeError, match="A's matvec"):
        linsolve.make_solver(name, **opts).solve(_bad_operator("short"), np.ones(16))

    class Boom(Exception):
        pass

    def matvec(x):
        raise Boom("user operator failed")

    L = spla.LinearOperator((16, 16), matvec=matvec, dtype=np.float64)
    solver = linsolve.make_solver(name, **opts)
    with pytest.raises(Boom, match="user operator failed"):
        solver.solve(L, np.ones(16))
    A, b, xref = _poisson(4)
    res = solver.solve(spla.aslinearoperator(A), b)  # and the solver goes on
    assert res.converged and np.linalg.norm(res.x - xref) <= 1e-4 * np.linalg.norm(xref)


@pytest.mark.petsc
@pytest.mark.parametrize("name", ["sor", "bandit-sor"])
def test_paper_stop_is_honoured_by_the_petsc_backend(petsc, name):
    # backend="petsc" ignored paper_stop and stopped at rtol ||b|| instead of rtol ||r0||
    A, b, _ = _poisson(8)
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
    # method="ssor-pcg" with paper_stop=True stopped on the package's rule without a word
    with pytest.raises(linsolve.OptionError, match="paper_stop.*method='sor' only"):
        linsolve.make_solver("bandit-sor", method="ssor-pcg", paper_stop=True)
    assert linsolve.make_solver("bandit-sor", method="sor", paper_stop=True).opts["paper_stop"] is True


def test_scipy_style_bandit_sor_takes_the_context():
    # linsolve.bandit_sor(A, b, policy="chebcb", context=c) refused context= as an unknown option
    A, b, xref = _poisson(8)
    x, info = linsolve.bandit_sor(A, b, rtol=1e-9, policy="chebcb", context=0.3)
    assert info == 0 and np.linalg.norm(x - xref) <= 1e-7 * np.linalg.norm(xref)
    with pytest.raises(linsolve.OptionError, match="contextual"):
        linsolve.bandit_sor(A, b, policy="chebcb")
