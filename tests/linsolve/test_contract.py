"""The contract every registered solver must honour (in the spirit of SciPy's
test_iterative.py). Parametrised over the registry: a solver joins by registering, and is
exercised on the matrix kinds it declares in ``Solver.supports``: against dense solves, on bad
input, on a matrix changed in place, with solver options refused by ``solve()``, with its residual
history capped, and on SciPy's own cases."""
from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
import scipy.sparse.linalg as spla

import linsolve
from linsolve import (
    Grid,
    LinearSystem,
    NonFiniteError,
    OptionError,
    ShapeError,
    SolverError,
    UnsupportedInputError,
    gallery,
)

N1D = 8  # 64 unknowns: small enough for dense references, large enough to need iterations


def _cases():
    A_spd = gallery.poisson2d(N1D)
    A_ns = gallery.convection_diffusion2d(N1D, peclet=10.0)
    A_ind = gallery.helmholtz2d(N1D, k=10.0)
    ev = np.linalg.eigvalsh(A_ind.toarray())
    assert ev.min() < 0 < ev.max() and np.min(np.abs(ev)) > 5.0  # truly indefinite, not near-singular
    return {"spd": A_spd, "nonsymmetric": A_ns, "indefinite": A_ind}


CASES = _cases()
GRID = Grid((N1D, N1D))
SOLVERS = linsolve.available_solvers()


def _cls(name):
    return linsolve.solver_class(name)


def _make(name, **kw):
    cls = _cls(name)
    opts = {**cls.contract_options, **kw}
    return linsolve.make_solver(name, **opts)


def _rhs(n, seed=0):
    return np.random.default_rng(seed).standard_normal(n)


def _pairs():
    for name in SOLVERS:
        for kind in sorted(_cls(name).supports):
            yield pytest.param(name, kind, id=f"{name}-{kind}")


def _scipy_capable(name):
    return "scipy" in _cls(name).backends or _cls(name).backends[0] != "petsc"


def _petsc_only(name):
    return _cls(name).backends == ("petsc",)


def _maybe_petsc(name, request):
    if _petsc_only(name):
        request.getfixturevalue("petsc")


def _first_case(name, request, seed):
    """The first matrix kind the solver supports, and a seeded right-hand side."""
    _maybe_petsc(name, request)
    A = CASES[sorted(_cls(name).supports)[0]]
    return A, _rhs(A.shape[0], seed)


def _petsc_mat(A):
    """A (CSR) as a serial PETSc AIJ Mat."""
    from petsc4py import PETSc

    return PETSc.Mat().createAIJ(size=A.shape, csr=(A.indptr, A.indices, A.data), comm=PETSc.COMM_SELF)


@pytest.mark.parametrize("name,kind", list(_pairs()))
def test_matches_dense_solve(name, kind, request):
    _maybe_petsc(name, request)
    A = CASES[kind]
    b = _rhs(A.shape[0])
    res = _make(name, rtol=1e-10).solve(A, b, grid=GRID)
    x_ref = np.linalg.solve(A.toarray(), b)
    assert res.converged, res
    assert res.relative_residual <= 1e-10 * (1 + 1e-6)
    assert np.linalg.norm(res.x - x_ref) <= 1e-6 * np.linalg.norm(x_ref)
    assert res.iterations >= 1
    assert isinstance(res.residual_norms, np.ndarray)
    assert res.wall_time > 0
    true = np.linalg.norm(b - A @ res.x) / np.linalg.norm(b)
    assert res.relative_residual == pytest.approx(true, rel=1e-6, abs=1e-300)


@pytest.mark.parametrize("name", SOLVERS)
def test_zero_rhs(name, request):
    _maybe_petsc(name, request)
    kind = sorted(_cls(name).supports)[0]
    A = CASES[kind]
    res = _make(name).solve(A, np.zeros(A.shape[0]), grid=GRID)
    assert res.converged and res.iterations == 0
    assert np.all(res.x == 0)


@pytest.mark.parametrize("name", SOLVERS)
def test_x0_exact_and_random(name, request):
    A, b = _first_case(name, request, 1)
    x_ref = spla.spsolve(A.tocsc(), b)
    s = _make(name, rtol=1e-8)
    res = s.solve(A, b, x0=x_ref, grid=GRID)
    assert res.converged and res.iterations <= 1
    x0 = _rhs(A.shape[0], 2)
    res = s.solve(A, b, x0=x0, grid=GRID)
    assert res.converged
    assert np.linalg.norm(b - A @ res.x) <= 1e-8 * np.linalg.norm(b) * (1 + 1e-6)


@pytest.mark.parametrize("name", [n for n in SOLVERS if not _cls(n).direct])
def test_maxiter_honoured_and_reported(name, request):
    A, b = _first_case(name, request, 3)
    res = _make(name, rtol=1e-14, maxiter=2).solve(A, b, grid=GRID)
    assert res.iterations <= 2
    assert not res.converged
    assert res.reason
    assert np.all(np.isfinite(np.asarray(res.x)))
    assert res.scipy_info != 0


@pytest.mark.parametrize("name", [n for n in SOLVERS if not _cls(n).direct])
def test_atol_honoured(name, request):
    A, b = _first_case(name, request, 4)
    atol = 1e-3 * np.linalg.norm(b)
    loose = _make(name, rtol=0.0, atol=atol).solve(A, b, grid=GRID)
    tight = _make(name, rtol=1e-12).solve(A, b, grid=GRID)
    assert loose.converged and tight.converged
    assert np.linalg.norm(b - A @ loose.x) <= atol * (1 + 1e-8)
    assert loose.iterations <= tight.iterations


def _pc_params():
    for name in SOLVERS:
        for pc in _cls(name).preconditioners:
            yield pytest.param(name, pc, id=f"{name}-{pc}")


@pytest.mark.parametrize("name,pc", list(_pc_params()))
def test_preconditioners(name, pc, request):
    _maybe_petsc(name, request)
    kind = "spd" if "spd" in _cls(name).supports else sorted(_cls(name).supports)[0]
    A = CASES[kind]
    b = _rhs(A.shape[0], 5)
    res = _make(name, rtol=1e-9, pc=pc).solve(A, b, grid=GRID)
    assert res.converged, res
    assert np.linalg.norm(b - A @ res.x) <= 1e-9 * np.linalg.norm(b) * (1 + 1e-6)


@pytest.mark.parametrize("name", SOLVERS)
def test_inconsistent_singular_system_is_not_a_success(name, request):
    """Honest non-convergence: a singular, inconsistent system has no solution."""
    _maybe_petsc(name, request)
    kind = sorted(_cls(name).supports)[0]
    A = CASES[kind].tolil(copy=True)
    A[0, :] = 0.0
    A[:, 0] = 0.0
    A = A.tocsr()
    A.eliminate_zeros()
    if _cls(name).needs_assembled or name in ("direct",):
        A = A + sp.csr_matrix(([1e-300], ([0], [0])), shape=A.shape) * 0  # keep structure explicit
    b = _rhs(A.shape[0], 6)
    try:
        res = _make(name, rtol=1e-10, maxiter=200).solve(A, b, grid=GRID)
    except SolverError:
        return  # a clear refusal (e.g. zero pivot / zero diagonal) is acceptable
    assert not res.converged
    assert res.reason
    assert np.all(np.isfinite(np.asarray(res.x)))


@pytest.mark.parametrize("name", SOLVERS)
def test_bad_inputs(name, request):
    _maybe_petsc(name, request)
    kind = sorted(_cls(name).supports)[0]
    A = CASES[kind]
    n = A.shape[0]
    s = _make(name)
    with pytest.raises(ShapeError):
        s.solve(sp.random(n, n + 1, density=0.1, format="csr"), np.ones(n))
    with pytest.raises(ShapeError):
        s.solve(A, np.ones(n + 1), grid=GRID)
    with pytest.raises(ShapeError):
        s.solve(A, np.ones(n), x0=np.ones(n - 1), grid=GRID)
    bad = np.ones(n)
    bad[3] = np.nan
    with pytest.raises(NonFiniteError):
        s.solve(A, bad, grid=GRID)
    Abad = A.copy()
    Abad.data[0] = np.inf
    with pytest.raises(NonFiniteError):
        s.solve(Abad, np.ones(n), grid=GRID)
    with pytest.raises(OptionError):
        _make(name, rtol=-1.0)
    with pytest.raises(OptionError):
        _make(name, maxiter=0)
    with pytest.raises(OptionError):
        _make(name, no_such_option_xyz=1)
    with pytest.raises(OptionError, match="pc_options"):  # not a TypeError from dict(3)
        _make(name, pc_options=3)
    for exc in (ShapeError, NonFiniteError, OptionError):
        assert issubclass(exc, ValueError)


@pytest.mark.parametrize("name", [n for n in SOLVERS if not _petsc_only(n)])
def test_input_kinds_agree(name):
    kind = sorted(_cls(name).supports)[0]
    A = CASES[kind]
    n = A.shape[0]
    b = _rhs(n, 7)
    x_ref = np.linalg.solve(A.toarray(), b)
    kinds = {"csr": A.tocsr(), "csc": A.tocsc(), "coo": A.tocoo(), "dense": A.toarray(),
             "csr_array": sp.csr_array(A), "bsr": A.tobsr()}
    if not _cls(name).needs_assembled:
        kinds["linop"] = spla.aslinearoperator(A)
    for label, Ak in kinds.items():
        res = _make(name, rtol=1e-10).solve(Ak, b, grid=GRID)
        assert res.converged, (label, res)
        assert np.linalg.norm(res.x - x_ref) <= 1e-6 * np.linalg.norm(x_ref), label
    col = _make(name, rtol=1e-10).solve(A, b.reshape(-1, 1), grid=GRID)
    assert col.x.shape == (n, 1)
    system = LinearSystem(A, b, grid=GRID)
    res = _make(name, rtol=1e-10).solve(system)
    assert np.linalg.norm(res.x - x_ref) <= 1e-6 * np.linalg.norm(x_ref)


@pytest.mark.petsc
@pytest.mark.parametrize("name", SOLVERS)
def test_petsc_inputs_give_same_answer(name, petsc):
    kind = sorted(_cls(name).supports)[0]
    A = CASES[kind]
    n = A.shape[0]
    b = _rhs(n, 8)
    x_ref = np.linalg.solve(A.toarray(), b)
    M = _petsc_mat(A.tocsr())
    bv = petsc.Vec().createWithArray(b.copy())
    res = _make(name, rtol=1e-10).solve(M, bv, grid=GRID)
    assert isinstance(res.x, petsc.Vec)
    assert res.converged
    assert np.linalg.norm(res.x.getArray() - x_ref) <= 1e-6 * np.linalg.norm(x_ref)
    res2 = _make(name, rtol=1e-10).solve(M, b, grid=GRID)  # Mat with array rhs
    assert isinstance(res2.x, np.ndarray)
    assert np.linalg.norm(res2.x - x_ref) <= 1e-6 * np.linalg.norm(x_ref)


def _petsc_backend_pairs():
    for name in SOLVERS:
        cls = _cls(name)
        if "petsc" in cls.backends and not _petsc_only(name):
            for kind in sorted(cls.supports):
                yield pytest.param(name, kind, id=f"{name}-{kind}")


@pytest.mark.petsc
@pytest.mark.parametrize("name,kind", list(_petsc_backend_pairs()))
def test_petsc_backend_matches_dense(name, kind, petsc):
    A = CASES[kind]
    b = _rhs(A.shape[0], 9)
    res = _make(name, rtol=1e-10, backend="petsc").solve(A, b, grid=GRID)
    x_ref = np.linalg.solve(A.toarray(), b)
    assert res.converged, res
    assert np.linalg.norm(res.x - x_ref) <= 1e-6 * np.linalg.norm(x_ref)
    assert res.info.get("backend") == "petsc"


@pytest.mark.parametrize("name", SOLVERS)
def test_scipy_style_function(name, request):
    A, b = _first_case(name, request, 10)
    f = getattr(linsolve, name.replace("-", "_"))
    opts = dict(_cls(name).contract_options)
    x, info = f(A, b, rtol=1e-9, grid=GRID, **opts) if _cls(name).needs_grid else f(A, b, rtol=1e-9, **opts)
    assert info == 0
    assert np.linalg.norm(b - A @ x) <= 1e-9 * np.linalg.norm(b) * (1 + 1e-6)
    if not _cls(name).direct:
        # (GMRES-type: SciPy's maxiter counts restart cycles unless callback_type="legacy")
        if "callback_type" in _cls(name).options:
            opts["callback_type"] = "legacy"
        x, info = f(A, b, rtol=1e-14, maxiter=1, **opts, **({"grid": GRID} if _cls(name).needs_grid else {}))
        assert info > 0


@pytest.mark.parametrize("name", SOLVERS)
def test_reset_then_solve(name, request):
    A, b = _first_case(name, request, 11)
    s = _make(name, rtol=1e-9)
    r1 = s.solve(A, b, grid=GRID)
    s.reset()
    r2 = s.solve(A, b, grid=GRID)
    assert r1.converged and r2.converged


# --- a matrix changed in place ------------------------------------------------------------------
# A time step that updates A.data hands the solver the same object with new entries. Whatever a
# solver keeps from the old entries (factors, preconditioners, 1/a_ii, A times a recycled space,
# the PETSc copy of the matrix) is rebuilt: every solve matches a dense solve of the matrix as it
# is now, and a solver that carries nothing between solves (not ``stateful``) takes exactly the
# iterations a fresh solver takes.

#: solvers that solve only matrices of one structure, and the error a matrix changed out of it
#: gets: fft-poisson solves a scaled Dirichlet Laplacian on the grid, not D A D
STRUCTURE_ONLY = {"fft-poisson": UnsupportedInputError}


def _rescale_in_place(A, seed):
    """D A D with D > 0 varying: new values, same object and pattern, still SPD."""
    d = np.random.default_rng(seed).uniform(0.5, 2.0, A.shape[0])
    A.data *= d[np.repeat(np.arange(A.shape[0]), np.diff(A.indptr))] * d[A.indices]


def _set_petsc_entries(M, A):
    """The new values of A written into the same assembled PETSc Mat."""
    M.setValuesCSR(A.indptr, A.indices, A.data)
    M.assemble()


def _solve_through_in_place_changes(name, opts, petsc_matrix=False):
    """Solve A, then 2 A, then D A D twice, all one object changed in place (a PETSc Mat after
    one solve of the SciPy matrix with the same entries: a new object is a new matrix too)."""
    A = CASES["spd"].tocsr(copy=True)
    b = _rhs(A.shape[0], 12)
    given = _petsc_mat(A) if petsc_matrix else A
    solver = _make(name, rtol=1e-9, **opts)
    if petsc_matrix:
        res = solver.solve(A, b, grid=GRID)
        assert res.converged and np.linalg.norm(b - A @ res.x) <= 1e-9 * np.linalg.norm(b) * (1 + 1e-6), res
    for step in range(4):
        if step == 1:
            A.data *= 2.0  # still a (scaled) Laplacian
        elif step > 1:
            _rescale_in_place(A, step)
        if petsc_matrix and step:
            _set_petsc_entries(given, A)
        if step > 1 and name in STRUCTURE_ONLY:
            with pytest.raises(STRUCTURE_ONLY[name]):
                solver.solve(given, b, grid=GRID)
            continue
        res = solver.solve(given, b, grid=GRID)
        x_ref = np.linalg.solve(A.toarray(), b)
        assert res.converged, (step, res)
        assert np.linalg.norm(res.x - x_ref) <= 1e-7 * np.linalg.norm(x_ref), step
        if not _cls(name).stateful:
            fresh = _make(name, rtol=1e-9, **opts).solve(_petsc_mat(A) if petsc_matrix else A.copy(), b, grid=GRID)
            assert res.iterations == fresh.iterations, (step, res.iterations, fresh.iterations)


@pytest.mark.parametrize("name,pc", list(_pc_params()))
def test_matrix_changed_in_place_is_solved_with_its_new_entries(name, pc, request):
    _maybe_petsc(name, request)
    _solve_through_in_place_changes(name, {"pc": pc})


def _petsc_in_place_params():
    """Every solver and backend on a PETSc Mat; the PETSc backend also on a SciPy matrix (its
    KSP's copy), with the PETSc preconditioners that keep data built from the entries."""
    for name in SOLVERS:
        cls = _cls(name)
        for backend in cls.backends:
            takes_pc = backend == "petsc" and cls.preconditioners != ("none",)
            for pc in ("jacobi", "ilu", "icc") if takes_pc else ("none",):
                for matrix in ("petsc", "scipy") if backend == "petsc" and not _petsc_only(name) else ("petsc",):
                    yield pytest.param(name, backend, pc, matrix, id=f"{name}-{backend}-{pc}-{matrix}-matrix")


@pytest.mark.petsc
@pytest.mark.parametrize("name,backend,pc,matrix", list(_petsc_in_place_params()))
def test_matrix_changed_in_place_is_solved_with_its_new_entries_petsc(name, backend, pc, matrix, petsc):
    _solve_through_in_place_changes(name, {"backend": backend, "pc": pc}, petsc_matrix=matrix == "petsc")


# --- options belong to make_solver, not to solve() ------------------------------------------------
# solve(A, b, rtol=1e-12) would otherwise run at the constructor's rtol: every keyword that
# configures a solver (the base keywords and the solver's own options) is refused by solve(),
# naming it and pointing to make_solver, and leaves the solver unchanged.

BASE_KEYWORDS = {"rtol": 1e-12, "atol": 0.0, "tol": 1e-12, "maxiter": 1, "pc": "none", "M": None,
                 "pc_options": {}, "backend": "scipy", "warm_start": True, "callback": print}


@pytest.mark.parametrize("name", SOLVERS)
def test_solver_options_given_to_solve_are_refused_not_ignored(name, request):
    A, b = _first_case(name, request, 13)
    solver = _make(name, rtol=1e-2)
    own = {opt: default for opt, default in _cls(name).options.items()}
    for key, value in {**BASE_KEYWORDS, **own}.items():
        with pytest.raises(OptionError, match=rf"^{key} configures the solver.*make_solver\('{name}'"):
            solver.solve(A, b, grid=GRID, **{key: value})
    with pytest.raises(OptionError, match=r"^maxiter, rtol configure the solver"):
        solver.solve(A, b, grid=GRID, rtol=1e-12, maxiter=1)
    # per-solve context is still free-form, and the solver still runs at its own rtol
    res = solver.solve(A, b, grid=GRID, context=0.3)
    assert res.converged and res.relative_residual <= 1e-2


# --- the residual history is capped --------------------------------------------------------------
# A solve records at most ``HISTORY_CAP`` residual norms (module of ``SolveResult``): a user's
# maxiter=10**9 ("no cap") allocates what the iterations need, not maxiter doubles, and past
# the cap the iteration goes on unrecorded, info["residual_norms_dropped"] saying how many.

def _backend_params(iterative_only=False):
    for name in SOLVERS:
        if iterative_only and _cls(name).direct:  # a direct solve records no iteration history
            continue
        for backend in _cls(name).backends:
            marks = [pytest.mark.petsc] if backend == "petsc" else []
            yield pytest.param(name, backend, marks=marks, id=f"{name}-{backend}")


def _history_case(name, backend, request):
    if backend == "petsc":
        request.getfixturevalue("petsc")
    n = 12
    A = gallery.poisson2d(n)
    return A, _rhs(A.shape[0], 14), Grid((n, n))


@pytest.mark.parametrize("name,backend", list(_backend_params()))
def test_huge_maxiter_allocates_what_the_iterations_need(name, backend, request):
    import tracemalloc

    A, b, grid = _history_case(name, backend, request)
    ref = _make(name, rtol=1e-8, maxiter=5000, backend=backend).solve(A, b, grid=grid)
    _make(name, rtol=1e-8, maxiter=10**9, backend=backend).solve(A, b, grid=grid)  # compiles outside the measurement
    solver = _make(name, rtol=1e-8, maxiter=10**9, backend=backend)  # fresh: stateful solvers learn
    tracemalloc.start()
    try:
        res = solver.solve(A, b, grid=grid)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 64 * 2**20, f"{name}: {peak / 2**20:.0f} MiB for a {A.shape[0]}-unknown system"
    assert ref.converged and res.converged and res.iterations == ref.iterations
    np.testing.assert_allclose(res.residual_norms, ref.residual_norms, rtol=1e-12)
    assert len(res.residual_norms) == len(ref.residual_norms) and "residual_norms_dropped" not in res.info


@pytest.mark.parametrize("name,backend", list(_backend_params(iterative_only=True)))
def test_history_past_the_cap_is_cut_and_said(name, backend, request, monkeypatch):
    import importlib

    cap = 4
    A, b, grid = _history_case(name, backend, request)
    ref = _make(name, rtol=1e-8, maxiter=5000, backend=backend).solve(A, b, grid=grid)
    monkeypatch.setattr(importlib.import_module(linsolve.SolveResult.__module__), "HISTORY_CAP", cap)
    res = _make(name, rtol=1e-8, maxiter=5000, backend=backend).solve(A, b, grid=grid)
    kept = len(res.residual_norms)
    assert ref.iterations >= 2 * cap and "residual_norms_dropped" not in ref.info
    assert res.converged and res.iterations == ref.iterations  # the iteration is not cut short
    np.testing.assert_allclose(res.x, ref.x, rtol=1e-12, atol=1e-14)
    assert kept == cap
    np.testing.assert_allclose(res.residual_norms, ref.residual_norms[:kept], rtol=1e-12)
    assert res.info["residual_norms_dropped"] == res.iterations - kept


def test_unknown_solver_lists_known():
    with pytest.raises(linsolve.UnknownSolverError) as e:
        linsolve.make_solver("no-such-solver")
    assert "cg" in str(e.value) and "gmres" in str(e.value)


def test_unknown_preconditioner_lists_known():
    with pytest.raises(linsolve.UnknownPreconditionerError) as e:
        linsolve.make_solver("cg", pc="magic")
    assert "jacobi" in str(e.value)


def test_minres_stopping_at_machine_precision_continues_not_maxiter():
    # SciPy's MINRES may stop on its own estimate just short of a tight rule; the base class
    # must continue from x (true-residual restart), not report "maxiter reached" after
    # ~160 of 20000 iterations.
    A = gallery.poisson2d(40)
    b = np.random.default_rng(0).standard_normal(A.shape[0])
    res = linsolve.make_solver("minres", rtol=1e-13, maxiter=20000).solve(A, b)
    assert res.converged, res
    assert res.relative_residual <= 1e-13 * (1 + 1e-8)
    assert res.iterations < 1000


# --- SciPy's own generic cases ----------------------------------------------------------------
# The case set and checks of scipy/sparse/linalg/_isolve/tests/test_iterative.py (SciPy 1.17),
# run against every registered solver that names a ``scipy_equivalent``, with that SciPy
# function run through the same case as the reference: where SciPy succeeds, ours must
# succeed, with SciPy's info convention (0 converged, maxiter when not, < 0 breakdown).

SCIPY_SOLVERS = [n for n in SOLVERS if _cls(n).scipy_equivalent is not None]


def _ref(name):
    return getattr(spla, _cls(name).scipy_equivalent)


def _ours(name):
    return getattr(linsolve, name.replace("-", "_"))


class _Case:
    def __init__(self, name, A, b=None, skip=(), nonconvergence=()):
        self.name, self.A = name, A
        self.b = np.arange(A.shape[0], dtype=float) if b is None else b
        self.skip, self.nonconvergence = set(skip), set(nonconvergence)


def _scipy_cases():
    """SciPy's IterativeParams, with its skips named by SciPy function."""
    sym, posdef, real = {"minres", "cg"}, {"cg"}, {"minres"}
    out = []
    N = 40
    data = np.ones((3, N))
    data[0, :], data[1, :], data[2, :] = 2, -1, -1
    P1 = sp.dia_array((data, [0, -1, 1]), shape=(N, N)).tocsr()
    out += [_Case("poisson1d", P1), _Case("poisson1d-F", P1.astype("f"), skip={"minres"}),
            _Case("neg-poisson1d", -P1, skip=posdef),
            _Case("neg-poisson1d-F", (-P1).astype("f"), skip=posdef | {"minres"})]
    P2 = sp.kronsum(P1, P1)
    out += [_Case("poisson2d", P2, skip={"minres"}), _Case("poisson2d-F", P2.astype("f"), skip={"minres"})]
    RD = sp.dia_array((np.array([[6, -5, 2, 7, -1, 10, 4, -3, -8, 9]], dtype="d"), [0]), shape=(10, 10)).tocsr()
    out += [_Case("rand-diag", RD, skip=posdef), _Case("rand-diag-F", RD.astype("f"), skip=posdef)]
    d = np.random.RandomState(1234).rand(4, 4)
    out += [_Case("rand", d, skip=posdef | sym), _Case("rand-F", d.astype("f"), skip=posdef | sym)]
    d = np.random.RandomState(1234).rand(4, 4)
    d = d + d.T
    out += [_Case("rand-sym", d, skip=posdef), _Case("rand-sym-F", d.astype("f"), skip=posdef)]
    d = np.random.RandomState(1234).rand(9, 9)
    d = d.conj() @ d.T
    out += [_Case("rand-sym-pd", d), _Case("rand-sym-pd-F", d.astype("f"), skip={"minres"})]
    rs = np.random.RandomState(1234)
    d = rs.rand(4, 4) + 1j * rs.rand(4, 4)
    out += [_Case("rand-cmplx", d, skip=posdef | sym | real),
            _Case("rand-cmplx-F", d.astype("F"), skip=posdef | sym | real)]
    rs = np.random.RandomState(1234)
    d = rs.rand(4, 4) + 1j * rs.rand(4, 4)
    d = d + d.T.conj()
    out += [_Case("rand-cmplx-herm", d, skip=posdef | real), _Case("rand-cmplx-herm-F", d.astype("F"), skip=posdef | real)]
    rs = np.random.RandomState(1234)
    d = rs.rand(9, 9) + 1j * rs.rand(9, 9)
    d = d.conj() @ d.T
    out += [_Case("rand-cmplx-sym-pd", d, skip=real), _Case("rand-cmplx-sym-pd-F", d.astype("F"), skip=real)]
    data = np.ones((2, 10))
    data[0, :], data[1, :] = 2, -1
    A = sp.dia_array((data, [0, -1]), shape=(10, 10)).tocsr()
    out += [_Case("nonsymposdef", A, skip=sym), _Case("nonsymposdef-F", A.astype("F"), skip=sym)]
    A = np.zeros((11, 11))
    A[:5, 5] = [1, 2, 2, 2, 1]
    A[5, :5] = [1, 2, 2, 2, 1]
    A[np.arange(5), np.arange(6, 11)] = -1
    A[np.arange(6, 11), np.arange(5)] = -1
    A[np.arange(6, 11), np.arange(6, 11)] = -1
    b = np.zeros(11)
    b[5] = 1
    assert (A == A.T).all()
    out.append(_Case("sym-nonpd", A, b, skip=posdef, nonconvergence={"bicgstab"}))
    return out


SCIPY_CASES = _scipy_cases()


def _case_params():
    for c in SCIPY_CASES:
        for name in SCIPY_SOLVERS:
            if _cls(name).scipy_equivalent not in c.skip:
                yield pytest.param(c, name, id=f"{c.name}-{name}")


def _gmres_like():
    return [n for n in SCIPY_SOLVERS if _cls(n).scipy_equivalent == "gmres"]


def _quiet(f, *args, **kw):
    """SciPy's reference call, without its warnings (gmres's callback_type deprecation, the
    divisions by zero of a breakdown case)."""
    import warnings

    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        return f(*args, **kw)


def _norm(v):
    return np.linalg.norm(v)


@pytest.mark.parametrize("case,name", list(_case_params()))
def test_scipy_case_maxiter(case, name):
    if _cls(name).scipy_equivalent in case.nonconvergence:
        pytest.skip("SciPy's breakdown case (gh-8829)")
    b = case.b
    residuals = []

    def callback(x):  # gmres's (legacy) callback gets the residual estimate, a NumPy scalar
        residuals.append(_norm(b - case.A * x) if x.ndim == 0 else _norm(b - case.A @ x))

    x, info = _ours(name)(case.A, b, x0=0 * b, rtol=1e-12, maxiter=1, callback=callback)
    assert len(residuals) == 1
    assert info == 1


@pytest.mark.parametrize("case,name", list(_case_params()))
def test_scipy_case_convergence(case, name):
    A, b = case.A, case.b
    rtol = 1e-8 if A.dtype.char in "dD" else 1e-2
    x0 = 0 * b
    x, info = _ours(name)(A, b, x0=x0, rtol=rtol)
    np.testing.assert_array_equal(x0, 0 * b)  # x0 not overwritten
    _, ref_info = _quiet(_ref(name), A, b, x0=0 * b, rtol=rtol)
    if _cls(name).scipy_equivalent in case.nonconvergence:
        assert info != 0 and _norm(A @ x - b) <= _norm(b)
        return
    assert ref_info == 0  # SciPy succeeds on every other case: so must we
    assert info == 0
    assert _norm(A @ x - b) <= _norm(b) * rtol


@pytest.mark.parametrize("case,name", list(_case_params()))
def test_scipy_case_precond_dummy(case, name):
    if _cls(name).scipy_equivalent in case.nonconvergence:
        pytest.skip("SciPy's breakdown case (gh-8829)")
    rtol = 1e-8

    def identity(b, which=None):
        return b

    A, b = case.A, case.b
    precond = spla.LinearOperator(A.shape, identity, rmatvec=identity)
    x, info = _ours(name)(A, b, M=precond, x0=0 * b, rtol=rtol)
    assert info == 0
    assert _norm(A @ x - b) <= _norm(b) * rtol
    Aop = spla.aslinearoperator(A)
    Aop.psolve = identity
    Aop.rpsolve = identity
    x, info = _ours(name)(Aop, b, x0=0 * b, rtol=rtol)
    assert info == 0
    assert _norm(A @ x - b) <= _norm(b) * rtol


@pytest.mark.parametrize("case,name", list(_case_params()))
def test_scipy_case_x0_equals_Mb(case, name):
    if _cls(name).scipy_equivalent == "bicgstab" and case.name == "nonsymposdef":
        pytest.skip("fails from numerical noise on some architectures in SciPy too (gh-15533)")
    x, info = _ours(name)(case.A, case.b, x0="Mb", rtol=1e-8)
    assert info == 0
    assert _norm(case.A @ x - case.b) <= 1e-8 * _norm(case.b)


@pytest.mark.parametrize("case", [c for c in SCIPY_CASES if c.name in ("poisson1d", "poisson2d")], ids=lambda c: c.name)
@pytest.mark.parametrize("name", SCIPY_SOLVERS)
def test_scipy_case_precond_inverse_needs_at_most_3_products(case, name):
    if _cls(name).scipy_equivalent in case.skip:
        pytest.skip("SciPy skips this case for the reference")
    dense = case.A.toarray()
    count = [0]

    def matvec(v):
        count[0] += 1
        return case.A @ v

    A = spla.LinearOperator(case.A.shape, matvec, rmatvec=matvec)
    M = spla.LinearOperator(case.A.shape, lambda v: np.linalg.solve(dense, v))
    count[0] = 0  # (the constructor applied A once to find its dtype)
    b = case.b
    x, info = _ours(name)(A, b, M=M, x0=0 * b, rtol=1e-8)
    assert info == 0
    assert _norm(case.A @ x - b) <= _norm(b) * 1e-8
    assert count[0] <= 3


@pytest.mark.parametrize("name", SCIPY_SOLVERS)
def test_scipy_atol_rtol_grid_with_badly_scaled_preconditioners(name):
    if _cls(name).scipy_equivalent == "minres":
        pytest.skip("SciPy's minres has no atol")
    rng = np.random.default_rng(168441431005389)
    A = rng.uniform(size=[10, 10])
    A = A @ A.T + 10 * np.eye(10)
    b = 1e3 * rng.uniform(size=10)
    tols = np.r_[0, np.logspace(-9, 2, 7), np.inf]
    M0 = rng.standard_normal(size=(10, 10))
    M0 = M0 @ M0.T
    for M, rtol, atol in [(M, r, a) for M in (None, 1e-6 * M0, 1e6 * M0) for r in tols for a in tols]:
        if rtol == 0 and atol == 0:
            continue
        x, info = _ours(name)(A, b, M=M, rtol=rtol, atol=atol)
        assert info == 0, (rtol, atol)
        assert _norm(A @ x - b) <= 1.00025 * max(atol, rtol * _norm(b))


@pytest.mark.parametrize("name", SCIPY_SOLVERS)
def test_scipy_zero_rhs(name):
    rng = np.random.default_rng(1684414984100503)
    A = rng.random(size=[10, 10])
    A = A @ A.T + 10 * np.eye(10)
    b = np.zeros(10)
    f = _ours(name)
    for tol in np.logspace(-10, 2, 7):
        x, info = f(A, b, rtol=tol)
        assert info == 0 and np.allclose(x, 0.0, atol=1e-15)
        x, info = f(A, b, rtol=tol, x0=np.ones(10))
        assert info == 0 and np.allclose(x, 0.0, atol=tol)
        x, info = f(A, b, rtol=tol, atol=0, x0=np.ones(10))
        if info == 0:
            assert np.allclose(x, 0)
        x, info = f(A, b, rtol=tol, atol=tol)
        assert info == 0 and np.allclose(x, 0, atol=1e-300)


@pytest.mark.parametrize("name", SCIPY_SOLVERS)
def test_scipy_x0_working(name):
    rng = np.random.default_rng(1685363802304750)
    n = 10
    A = rng.random(size=[n, n])
    A = A @ A.T
    b, x0 = rng.random(n), rng.random(n)
    kw = dict(rtol=1e-6) if _cls(name).scipy_equivalent == "minres" else dict(atol=0, rtol=1e-6)
    x, info = _ours(name)(A, b, **kw)
    assert info == 0 and _norm(A @ x - b) <= 1e-6 * _norm(b)
    x, info = _ours(name)(A, b, x0=x0, **kw)
    assert info == 0 and _norm(A @ x - b) <= 1e-5 * _norm(b)


@pytest.mark.parametrize("name", SCIPY_SOLVERS)
def test_scipy_x0_solves_problem_exactly(name):
    rhs = np.array([-1.0, -1.0])
    sol, info = _ours(name)(np.eye(2), rhs, x0=rhs)
    np.testing.assert_allclose(sol, rhs)
    assert info == 0


@pytest.mark.parametrize("name", SCIPY_SOLVERS)
def test_scipy_positional_tolerance_is_a_type_error(name):
    A = np.eye(3)
    with pytest.raises(TypeError):
        _ours(name)(A, np.ones(3), None, 1e-5)


@pytest.mark.parametrize("atol", ["legacy", None, -1])
@pytest.mark.parametrize("name", SCIPY_SOLVERS)
def test_scipy_invalid_atol_is_a_value_error(name, atol):
    with pytest.raises(ValueError):
        _ours(name)(np.eye(3), np.ones(3), atol=atol)


# GMRES's own cases (TestGMRES), for gmres and gcrodr (which follows gmres's conventions)
@pytest.mark.parametrize("name", _gmres_like())
def test_scipy_gmres_one_cycle_of_restart_5(name):
    A = np.vander(np.arange(10) + 1)[:, ::-1]
    b = np.zeros(10)
    b[0] = 1
    x, _ = _ours(name)(A, b, restart=5, maxiter=1)
    np.testing.assert_allclose(x[0], 0.359, rtol=1e-2)


@pytest.mark.parametrize("name", _gmres_like())
def test_scipy_gmres_legacy_callback_gets_the_preconditioned_residual(name):
    A = sp.csr_array(np.diag(np.full(6, -2.0)) + np.diag(np.ones(5), 1) + np.diag(np.ones(5), -1))
    b = np.ones(6)
    got = []
    _ours(name)(A, b, x0=np.zeros(6), rtol=1e-16, maxiter=1, callback=got.append)
    np.testing.assert_allclose(got, [0.81649658092772603], rtol=1e-10)
    got = []
    # SciPy's GMRES preconditions from the left; gcrodr's estimate is that norm with pc_side="left"
    side = {"pc_side": "left"} if name == "gcrodr" else {}
    _ours(name)(A, b, M=1e-3 * np.eye(6), rtol=1e-16, maxiter=1, callback=got.append, **side)
    np.testing.assert_allclose(got, [1e-3 * 0.81649658092772603], rtol=1e-10)


@pytest.mark.parametrize("name", _gmres_like())
def test_scipy_gmres_complex_identity_matches_real(name):
    rx, rinfo = _ours(name)(np.eye(2), np.ones(2))
    x, info = _ours(name)(np.eye(2).astype(complex), np.ones(2).astype(complex))
    assert np.iscomplexobj(x)
    np.testing.assert_allclose(rx.astype(complex), x)
    assert rinfo == info


@pytest.mark.parametrize("name", _gmres_like())
def test_scipy_gmres_tiny_rhs_is_relative(name):
    x, info = _ours(name)(np.eye(2), np.ones(2), rtol=1e-5)
    assert _norm(x - 1) <= 1e-5 * _norm(np.ones(2))
    b = 1e-10 * np.ones(2)
    x, info = _ours(name)(np.eye(2), b, rtol=1e-8, atol=0)
    assert _norm(x - b) <= 1e-8 * _norm(b)


@pytest.mark.parametrize("name", _gmres_like())
def test_scipy_gmres_defective_preconditioner_gives_no_nan_nor_false_success(name):
    M = np.eye(3)
    M[2, 2] = 0
    A, b = np.diag([2.0, 3.0, 4.0]), np.array([0.0, 1.0, 1.0])
    x, info = _ours(name)(A, b, x0=np.array([1.0, 0.0, 0.0]), M=M, rtol=1e-15, atol=0)
    assert not np.isnan(x).any()
    if info == 0:
        assert _norm(A @ x - b) <= 1e-15 * _norm(b)
    np.testing.assert_allclose(M @ (A @ x), M @ b, atol=1e-12)  # (SciPy's test: exact zeros, atol=0)


@pytest.mark.parametrize("name", _gmres_like())
def test_scipy_gmres_defective_matrix_gives_no_nan_nor_false_success(name):
    A = np.array([[0.0, 1, 0], [1, 0, 0], [0, 0, 0]])
    b = np.array([1.0, 0, 1])
    x, info = _ours(name)(A, b, rtol=1e-8, atol=0)
    assert not np.isnan(x).any()
    if info == 0:
        assert _norm(A @ x - b) <= 1e-8 * _norm(b)
    np.testing.assert_allclose(A @ (A @ x), A @ b, atol=1e-12)  # (SciPy's test: exact zeros, atol=0)


@pytest.mark.parametrize("name", _gmres_like())
def test_scipy_gmres_callback_type_sets_calls_and_maxiter(name):
    np.random.seed(1)
    A = np.random.rand(20, 20)
    b = np.random.rand(20)
    f = _ours(name)
    calls = []

    def pr(r):
        assert isinstance(r, float)
        calls.append(r)

    for ctype in (None, "legacy"):  # maxiter counts inner iterations
        calls.clear()
        x, info = f(A, b, rtol=1e-6, atol=0, callback=pr, maxiter=2, restart=50, callback_type=ctype)
        assert info == 2 and len(calls) == 2
    calls.clear()  # maxiter counts restart cycles: 2 are enough
    x, info = f(A, b, rtol=1e-6, atol=0, callback=pr, maxiter=2, restart=50, callback_type="pr_norm")
    assert info == 0 and len(calls) > 2
    xs = []
    x, info = f(A, b, rtol=1e-6, atol=0, callback=lambda x: xs.append(np.array(x)), maxiter=2, restart=50,
                callback_type="x")
    assert info == 0 and len(xs) == 1 and isinstance(xs[0], np.ndarray)
    with pytest.raises(ValueError, match="callback_type"):
        f(A, b, callback=pr, callback_type="bogus")


@pytest.mark.parametrize("name", _gmres_like())
def test_scipy_gmres_x_callback_once_per_cycle_with_monotone_residual(name):
    rng = np.random.RandomState(1)
    A = rng.rand(20, 20) + np.eye(20)
    b = rng.rand(20)
    seen = []
    x, info = _ours(name)(A, b, rtol=1e-6, atol=0, callback=lambda x: seen.append(_norm(A @ x - b)), maxiter=20,
                          restart=10, callback_type="x")
    assert all(r1 <= r0 * (1 + 1e-12) for r0, r1 in zip(seen, seen[1:], strict=False))
    _, ref_info = _quiet(spla.gmres, A, b, rtol=1e-6, atol=0, maxiter=20, restart=10)
    if name == "gmres":  # SciPy: 20 cycles do not reach 1e-6
        assert info == ref_info == 20 and len(seen) == 20
    else:  # recycling may converge within the cycles; otherwise SciPy's convention
        assert (info == 0 and len(seen) <= 20) or (info == 20 and len(seen) == 20)


# rcg stands in for cg on Hermitian positive definite systems; on a symmetric (Hermitian)
# matrix that is not positive definite it must say so: SciPy's breakdown info < 0
@pytest.mark.parametrize("case", [c for c in SCIPY_CASES if "cg" in c.skip and "minres" not in c.skip
                                  or c.name in ("rand-cmplx-herm", "rand-cmplx-herm-F")], ids=lambda c: c.name)
def test_rcg_on_symmetric_not_positive_definite_reports_breakdown(case):
    x, info = linsolve.rcg(case.A, case.b, rtol=1e-8)
    assert info < 0
    res = linsolve.make_solver("rcg", rtol=1e-8).solve(case.A, case.b)
    assert not res.converged and res.reason.startswith("breakdown")
    assert res.iterations < 10 * case.A.shape[0]
