"""datagen's helmholtz variant=absorbing: complex symmetric indefinite systems with a
first-order absorbing boundary, solved through linsolve with complex input."""
from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

import linsolve
from datagen.family import FamilyError, get_family


def _fam(**kw):
    return get_family("helmholtz")(variant="absorbing", **kw)


def _system(grid=16, k=8.0, seed=0, **kw):
    fam = _fam(grid=grid, k=k, **kw)
    (p,) = fam.sample(1, np.random.default_rng(seed))
    return fam, p, fam.assemble(p)


def test_absorbing_matrix_is_complex_symmetric_indefinite_with_damping_on_the_boundary():
    fam, p, s = _system()
    A = s.A.toarray()
    assert A.dtype == np.complex128 and np.iscomplexobj(s.b)
    np.testing.assert_array_equal(A, A.T)  # complex symmetric
    assert not np.allclose(A, A.conj().T)  # not Hermitian
    ev = np.linalg.eigvalsh(A.real)
    assert ev.min() < 0 < ev.max()  # the real part is indefinite
    im = np.diag(A.imag).reshape(16, 16)
    assert np.all(A.imag - np.diag(np.diag(A.imag)) == 0)  # damping only on the diagonal
    assert np.all(im[1:-1, 1:-1] == 0) and np.all(im[0, :] < 0) and np.all(im[:, -1] < 0)  # boundary cells only
    # the real part is the Neumann finite-volume operator minus k^2 (the Dirichlet one differs at the boundary)
    dirichlet = get_family("helmholtz")(grid=16, k=8.0).assemble(p).A.toarray()
    interior = np.zeros((16, 16), bool)
    interior[1:-1, 1:-1] = True
    rows = interior.reshape(-1)
    np.testing.assert_allclose(A.real[rows], dirichlet[rows], rtol=1e-13, atol=1e-9)
    assert fam.complex_valued and fam.matrix_symmetric and not fam.symmetric


def test_robin_term_is_the_eliminated_face_value():
    # a = 1: each boundary face puts -i k / (h (1 - i k h / 2)) on its cell's diagonal
    fam, _, s = _system(grid=8, k=4.0, sigma=0.0)
    h, k = 1 / 8, 4.0
    per_face = -1j * k / (h * (1 - 0.5j * k * h))
    d = np.diag(s.A.toarray()).reshape(8, 8)
    neumann_interior = 4 / h**2 - k**2
    assert d[3, 3] == pytest.approx(neumann_interior)
    assert d[0, 3] == pytest.approx(3 / h**2 - k**2 + per_face)  # one boundary face
    assert d[0, 0] == pytest.approx(2 / h**2 - k**2 + 2 * per_face)  # a corner: two faces


@pytest.mark.parametrize("name,opts", [("gmres", {}), ("bicgstab", {}), ("gcrodr", {}), ("direct", {}),
                                       ("gmres", {"pc": "ilu"}), ("gcrodr", {"pc": "ilu"})])
def test_absorbing_systems_solve_through_linsolve_as_a_dense_solve(name, opts):
    _, _, s = _system(grid=16, k=8.0, seed=1)
    x_ref = np.linalg.solve(s.A.toarray(), s.b)
    res = linsolve.make_solver(name, rtol=1e-10, maxiter=20000, **opts).solve(s)
    assert res.converged, res
    assert np.iscomplexobj(res.x)
    assert np.linalg.norm(res.x - x_ref) <= 1e-7 * np.linalg.norm(x_ref)


def test_gcrodr_recycles_over_an_absorbing_sequence():
    fam = _fam(grid=16, k=8.0)
    systems = [fam.assemble(p) for p in fam.sample(4, np.random.default_rng(2))]
    s = linsolve.make_solver("gcrodr", rtol=1e-8, restart=30, recycle=10)
    its = [s.solve(sys_).iterations for sys_ in systems]
    plain = [linsolve.make_solver("gmres", rtol=1e-8, restart=30).solve(sys_).iterations for sys_ in systems]
    assert all(s_ < p_ for s_, p_ in zip(its[1:], plain[1:], strict=True)), (its, plain)


def test_absorbing_discretisation_converges_at_second_order():
    # self-convergence with a = 1: the difference to the next finer solution (averaged onto
    # the coarse cells) falls by 4 per halving of h
    sols = {}
    for n in (16, 32, 64):
        _, _, s = _system(grid=n, k=6.0, sigma=0.0)
        sols[n] = linsolve.make_solver("direct").solve(s).x.reshape(n, n)

    def coarsen(u):
        return 0.25 * (u[0::2, 0::2] + u[1::2, 0::2] + u[0::2, 1::2] + u[1::2, 1::2])

    e = [np.sqrt(np.mean(np.abs(coarsen(sols[2 * n]) - sols[n]) ** 2)) for n in (16, 32)]
    assert 3.5 < e[0] / e[1] < 4.5, e


@pytest.mark.parametrize("kw,word", [({"grid": 16, "k": 0.0}, "k="), ({"grid": 16, "k": 16.0}, "k="),
                                     ({"grid": 16, "k": 8.0, "stencil": "skr"}, "fv")])
def test_absorbing_bad_parameters(kw, word):
    with pytest.raises(FamilyError, match=word):
        _fam(**kw)


def test_generate_refuses_the_complex_variant_in_one_line(tmp_path):
    from datagen.pipeline import GenerateConfig, PipelineError, generate

    cfg = GenerateConfig(problem="helmholtz", n=2, grid=(16,), solver="gmres", param={"variant": "absorbing", "k": 8.0})
    with pytest.raises(PipelineError, match="complex"):
        generate(cfg, tmp_path / "out.h5")
    assert not (tmp_path / "out.h5").exists()


def test_sparse_structure_matches_the_real_variant():
    _, p, s = _system()
    real = get_family("helmholtz")(grid=16, k=8.0).assemble(p).A
    assert (s.A != 0).nnz == (sp.csr_matrix(real) != 0).nnz
