"""Complex systems: every solver that declares ``complex_support`` against a dense solve
and SciPy's own complex solvers, on Hermitian positive definite, Hermitian indefinite,
complex symmetric (non-Hermitian) and general complex matrices."""
from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
import scipy.sparse.linalg as spla

import linsolve
from linsolve import gallery
from linsolve.core.complexform import complexify, real_form_matrix, realify
from linsolve.core.errors import UnsupportedInputError

N1D = 8
_L = gallery.poisson2d(N1D).tocsr()
_n = _L.shape[0]
_rng = np.random.default_rng(7)
# real antisymmetric coupling: L + i S is Hermitian (L + i S)^H = L - i S^T = L + i S
_T = sp.random(_n, _n, density=0.05, random_state=3, format="csr")
_S = (_T - _T.T) * 0.15
_C = gallery.convection_diffusion2d(N1D, peclet=10.0).tocsr()

MATRICES = {
    # Hermitian positive definite
    "hpd": (_L + 1j * _S).tocsr(),
    # Hermitian indefinite: shifted into a gap in the middle of the spectrum
    "herm-indefinite": (_L + 1j * _S - 5.047 * sp.identity(_n)).tocsr(),
    # complex symmetric, not Hermitian: a damped Helmholtz-type shift
    "complex-symmetric": (_L - 2.0 * sp.identity(_n) + 0.5j * sp.identity(_n)).tocsr(),
    # general complex: convection-diffusion with a complex diagonal
    "general": (_C + 1j * sp.diags(_rng.uniform(0.1, 0.5, _n))).tocsr(),
}
# which matrices each method is for (the method's own requirements)
KINDS = {
    "cg": ("hpd",), "rcg": ("hpd",), "minres": ("hpd", "herm-indefinite"),
    "gmres": tuple(MATRICES), "bicgstab": tuple(MATRICES), "gcrodr": tuple(MATRICES), "direct": tuple(MATRICES),
}
COMPLEX_SOLVERS = [n for n in linsolve.available_solvers() if linsolve.solver_class(n).complex_support is not None]


def _b(seed=0):
    r = np.random.default_rng(seed)
    return r.standard_normal(_n) + 1j * r.standard_normal(_n)


def test_matrices_have_the_stated_structure():
    H = MATRICES["hpd"].toarray()
    assert np.allclose(H, H.conj().T) and np.linalg.eigvalsh(H).min() > 0
    ev = np.linalg.eigvalsh(MATRICES["herm-indefinite"].toarray())
    assert ev.min() < 0 < ev.max() and np.abs(ev).min() > 0.1
    S = MATRICES["complex-symmetric"].toarray()
    assert np.allclose(S, S.T) and not np.allclose(S, S.conj().T)
    G = MATRICES["general"].toarray()
    assert not np.allclose(G, G.T) and not np.allclose(G, G.conj().T)


def test_every_solver_in_the_table_declares_complex_support():
    assert sorted(KINDS) == sorted(COMPLEX_SOLVERS)


def _params():
    for name in COMPLEX_SOLVERS:
        for kind in KINDS[name]:
            yield pytest.param(name, kind, id=f"{name}-{kind}")


@pytest.mark.parametrize("name,kind", list(_params()))
def test_complex_system_matches_dense_solve(name, kind):
    A, b = MATRICES[kind], _b()
    x_ref = np.linalg.solve(A.toarray(), b)
    res = linsolve.make_solver(name, rtol=1e-10, maxiter=5000).solve(A, b)
    assert res.converged, res
    assert np.iscomplexobj(res.x) and res.x.shape == b.shape
    assert np.linalg.norm(res.x - x_ref) <= 1e-7 * np.linalg.norm(x_ref)
    true = np.linalg.norm(b - A @ res.x) / np.linalg.norm(b)
    assert true <= 1e-10 * (1 + 1e-6)
    # (the real form's residual is the same number up to rounding at the 1e-11 level)
    assert res.relative_residual == pytest.approx(true, rel=1e-3, abs=1e-300)


@pytest.mark.parametrize("name,kind", list(_params()))
def test_complex_scipy_style_function_matches_scipy(name, kind):
    A, b = MATRICES[kind], _b(1)
    x, info = getattr(linsolve, name)(A, b, rtol=1e-9)
    assert info == 0 and np.iscomplexobj(x)
    assert np.linalg.norm(b - A @ x) <= 1e-9 * np.linalg.norm(b) * (1 + 1e-6)
    ref = linsolve.solver_class(name).scipy_equivalent
    if ref is not None and ref != "minres":  # SciPy's minres is real only
        x_sp, info_sp = getattr(spla, ref)(A, b, rtol=1e-9)
        assert info_sp == 0
        assert np.linalg.norm(x - x_sp) <= 1e-6 * np.linalg.norm(x_sp)


def test_rcg_on_hermitian_pd_is_complex_cg():
    # CG on the real form of an HPD matrix has complex CG's iterates: same iteration
    # count and residual history as SciPy's complex CG (conjugated inner products)
    A, b = MATRICES["hpd"], _b(2)
    ref = []
    spla.cg(A, b, rtol=1e-10, callback=lambda xk: ref.append(np.linalg.norm(b - A @ xk)))
    res = linsolve.make_solver("rcg", rtol=1e-10, recycle=0).solve(A, b)
    assert res.converged and res.iterations == len(ref)
    np.testing.assert_allclose(res.residual_norms[:10], ref[:10], rtol=1e-6)
    assert res.info["kernel"] == "compiled" and "real form" in res.info["complex"]


def test_minres_on_hermitian_indefinite_is_complex_minres_monotone():
    A, b = MATRICES["herm-indefinite"], _b(3)
    res = linsolve.make_solver("minres", rtol=1e-10).solve(A, b)
    assert res.converged
    assert np.all(np.diff(res.residual_norms) <= 1e-12 * np.linalg.norm(b))  # MINRES: monotone


@pytest.mark.parametrize("name", ["gmres", "bicgstab", "gcrodr"])
@pytest.mark.parametrize("pc", ["jacobi", "ilu"])
def test_complex_named_preconditioners(name, pc):
    A, b = MATRICES["general"], _b(4)
    res = linsolve.make_solver(name, rtol=1e-10, pc=pc).solve(A, b)
    plain = linsolve.make_solver(name, rtol=1e-10).solve(A, b)
    assert res.converged and np.linalg.norm(b - A @ res.x) <= 1e-10 * np.linalg.norm(b) * (1 + 1e-6)
    if pc == "ilu":
        assert res.iterations < plain.iterations


@pytest.mark.parametrize("name", ["cg", "rcg", "gmres", "gcrodr", "minres"])
def test_complex_user_preconditioner_operator(name):
    A = MATRICES["hpd"]
    b = _b(5)
    d = A.diagonal()
    M = spla.LinearOperator(A.shape, matvec=lambda v: v / d, dtype=complex)
    res = linsolve.make_solver(name, rtol=1e-10, pc=M).solve(A, b)
    assert res.converged and np.linalg.norm(b - A @ res.x) <= 1e-10 * np.linalg.norm(b) * (1 + 1e-6)


@pytest.mark.parametrize("name,pc", [(n, "none") for n in COMPLEX_SOLVERS]
                         + [("gmres", "ilu"), ("bicgstab", "ilu"), ("gcrodr", "ilu"), ("cg", "jacobi")])
def test_complex_rhs_with_real_matrix(name, pc):
    # a real preconditioner (SuperLU's real ILU factor) is applied to both parts of a complex vector
    A = _L
    b = _b(6)
    res = linsolve.make_solver(name, rtol=1e-10, pc=pc).solve(A, b)
    x_ref = spla.spsolve(A.tocsc(), b)
    assert res.converged and np.linalg.norm(res.x - x_ref) <= 1e-7 * np.linalg.norm(x_ref)


@pytest.mark.parametrize("name", ["gmres", "gcrodr", "bicgstab"])
def test_complex_matrix_free_operator_and_x0(name):
    A = MATRICES["complex-symmetric"]
    op = spla.LinearOperator(A.shape, matvec=lambda v: A @ v, dtype=complex)
    b = _b(7)
    x0 = _b(8)
    res = linsolve.make_solver(name, rtol=1e-10).solve(op, b, x0=x0)
    assert res.converged and np.linalg.norm(b - A @ res.x) <= 1e-10 * np.linalg.norm(b) * (1 + 1e-6)
    x, info = getattr(linsolve, name)(A, b, x0="Mb", M=sp.diags(1 / A.diagonal()), rtol=1e-10)
    assert info == 0 and np.linalg.norm(b - A @ x) <= 1e-10 * np.linalg.norm(b) * (1 + 1e-6)


@pytest.mark.parametrize("name", ["rcg", "gcrodr", "minres"])
def test_callbacks_receive_complex_iterates(name):
    A, b = MATRICES["hpd"], _b(9)
    seen = []
    kw = {"callback_type": "x"} if name == "gcrodr" else {}
    res = linsolve.make_solver(name, rtol=1e-8, callback=seen.append, **kw).solve(A, b)
    assert res.converged and seen
    assert all(np.iscomplexobj(x) and x.shape == b.shape for x in seen)
    assert np.linalg.norm(b - A @ seen[-1]) <= 1e-8 * np.linalg.norm(b) * (1 + 1e-6)


def test_gcrodr_without_recycling_is_complex_gmres():
    # recycle=0 is GMRES(m): the same residual estimates as SciPy's complex GMRES
    A, b = MATRICES["general"], _b(12)
    ref = []
    spla.gmres(A, b, rtol=1e-10, restart=10, callback=ref.append, callback_type="pr_norm")
    res = linsolve.make_solver("gcrodr", rtol=1e-10, restart=10, recycle=0).solve(A, b)
    assert res.converged and res.iterations == len(ref)
    np.testing.assert_allclose(res.residual_norms / np.linalg.norm(b), ref, rtol=1e-6, atol=1e-14)
    assert res.info["kernel"] == "numpy (complex)"


def test_gcrodr_recycles_across_a_complex_sequence():
    A = MATRICES["general"]
    s = linsolve.make_solver("gcrodr", rtol=1e-10, restart=20, recycle=6)
    its = [s.solve(A, _b(10 + i)).iterations for i in range(4)]
    assert s.solve(A, _b(20)).converged
    assert min(its[1:]) < its[0]  # the recycled space helps the later solves


def test_real_form_round_trip():
    A = MATRICES["general"]
    v = _b(11)
    np.testing.assert_allclose(complexify(real_form_matrix(A) @ realify(v)), A @ v, rtol=1e-13)


@pytest.mark.parametrize("name", [n for n in linsolve.available_solvers()
                                  if linsolve.solver_class(n).complex_support is None
                                  and linsolve.solver_class(n).backends[0] != "petsc"
                                  and not linsolve.solver_class(n).needs_grid and n != "dcdm"])
def test_solvers_without_complex_support_refuse_clearly(name):
    with pytest.raises(UnsupportedInputError, match="real systems only.*gmres"):
        linsolve.make_solver(name).solve(MATRICES["hpd"], _b())


@pytest.mark.petsc
@pytest.mark.parametrize("name", ["cg", "gmres", "gcrodr", "rcg", "direct"])
def test_petsc_backend_refuses_complex_saying_it_has_real_scalars(name, petsc):
    with pytest.raises(UnsupportedInputError, match="real scalars"):
        linsolve.make_solver(name, backend="petsc").solve(MATRICES["hpd"], _b())
    from linsolve.petsc_support.utils import csr_to_aij

    with pytest.raises(UnsupportedInputError, match="real scalars"):
        linsolve.make_solver(name).solve(csr_to_aij(_L), _b())
