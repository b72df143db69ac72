"""The contract every registered solver must honour (in the spirit of SciPy's
test_iterative.py). Parametrised over the registry: a solver joins by registering, and is
exercised on the matrix kinds it declares in ``Solver.supports``."""
from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
import scipy.sparse.linalg as spla

import linsolve
from linsolve import Grid, LinearSystem, gallery
from linsolve.errors import NonFiniteError, OptionError, ShapeError, SolverError

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
    from linsolve.petsc_utils import csr_to_aij

    kind = sorted(_cls(name).supports)[0]
    A = CASES[kind]
    n = A.shape[0]
    b = _rhs(n, 8)
    x_ref = np.linalg.solve(A.toarray(), b)
    M = csr_to_aij(A)
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
