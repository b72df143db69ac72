"""Input normalisation and PETSc conversions."""
from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
import scipy.sparse.linalg as spla
from solver_problems import poisson_problem

import linsolve
from linsolve import Grid, LinearSystem, Operator, OptionError, ShapeError, SolverError, gallery, make_solver
from linsolve.petsc_support.utils import aij_to_csr, csr_to_aij, shell_mat


def test_operator_kinds_same_matvec(rng):
    A = gallery.convection_diffusion2d(6)
    x = rng.standard_normal(A.shape[0])
    ref = A @ x
    for Ak in (A, A.tocsc(), A.toarray(), sp.csr_array(A), spla.aslinearoperator(A)):
        np.testing.assert_allclose(Operator(Ak).matvec(x), ref, rtol=1e-14)


def test_operator_rejects_bad():
    with pytest.raises(ShapeError):
        Operator(np.ones((3, 4)))
    with pytest.raises(ShapeError):
        Operator(np.ones(3))
    with pytest.raises(SolverError):
        Operator(np.array([["a"]], dtype=object))
    with pytest.raises(SolverError):
        Operator(np.array([["a"]]))  # text


def test_operator_keeps_complex_matrices_complex():
    op = Operator(sp.csr_matrix(np.eye(3) * 1j))
    assert op.is_complex and op.csr().dtype == np.complex128
    np.testing.assert_allclose(op.matvec(np.ones(3)), 1j * np.ones(3))
    assert not Operator(np.eye(3, dtype=np.float32)).is_complex


def test_grid_scatter_gather():
    g = Grid((3, 4), unknowns=np.array([0, 5, 11]))
    v = np.array([1.0, 2.0, 3.0])
    full = g.to_grid(v)
    assert full.shape == (3, 4) and full.reshape(-1)[5] == 2.0 and full.sum() == 6.0
    np.testing.assert_array_equal(g.from_grid(full), v)
    with pytest.raises(ShapeError):
        LinearSystem(np.eye(4), np.ones(4), grid=Grid((3, 3)))


@pytest.mark.petsc
def test_csr_aij_roundtrip(petsc):
    A = gallery.convection_diffusion2d(7)
    M = csr_to_aij(A)
    assert M.getSize() == A.shape
    B = aij_to_csr(M)
    assert abs(B - A).max() == 0
    x = np.random.default_rng(0).standard_normal(A.shape[0])
    xv, yv = M.createVecs()
    xv.setArray(x)
    M.mult(xv, yv)
    np.testing.assert_allclose(yv.getArray(), A @ x, rtol=1e-14)


@pytest.mark.petsc
def test_python_solver_on_shell_and_aij_mat(petsc):
    A = gallery.poisson2d(8)
    b = np.ones(A.shape[0])
    x_ref = spla.spsolve(A.tocsc(), b)
    for M in (csr_to_aij(A), shell_mat(lambda v: A @ v, A.shape[0])):
        res = make_solver("cg", rtol=1e-10).solve(M, b)  # SciPy CG through MatMult
        assert res.converged
        np.testing.assert_allclose(res.x, x_ref, rtol=1e-7)


@pytest.mark.petsc
def test_petsc_solver_forwards_options(petsc):
    A = gallery.convection_diffusion2d(10)
    b = np.ones(A.shape[0])
    s = make_solver("petsc", ksp_type="bcgs", pc="asm", rtol=1e-9,
                    petsc_options={"sub_pc_type": "ilu", "sub_pc_factor_levels": 1})
    res = s.solve(A, b)
    assert res.converged and res.info["ksp_type"] == "bcgs" and res.info["pc_type"] == "asm"
    sub = s._driver.ksp.getPC().getASMSubKSP()[0].getPC()
    assert sub.getType() == "ilu"
    # the private prefix keeps the global options database clean
    assert not petsc.Options().hasName("sub_pc_type")


@pytest.mark.petsc
@pytest.mark.parametrize("name,opts", [
    ("petsc", {"ksp_type": "nosuch"}),
    ("petsc", {"petsc_options": {"pc_type": "nosuch"}}),
    ("cg", {"backend": "petsc", "pc": "nosuch"}),
])
def test_petsc_unknown_type_is_an_option_error(petsc, name, opts):
    # PETSc's own error (a petsc4py.PETSc.Error with PETSc's stack) must not escape
    A = gallery.poisson2d(6)
    with pytest.raises(OptionError, match="unknown KSP or PC type"):
        make_solver(name, **opts).solve(A, np.ones(A.shape[0]))


@pytest.mark.petsc
def test_petsc_ic_and_gamg(petsc):
    A = gallery.poisson2d(16)
    b = np.ones(A.shape[0])
    for pc in ("ic", "amg", "bjacobi", "ssor"):
        res = make_solver("cg", backend="petsc", pc=pc, rtol=1e-10).solve(A, b)
        assert res.converged, (pc, res)
        assert res.relative_residual <= 1e-10 * 1.000001


def test_scipy_ic_is_a_clear_error():
    with pytest.raises(SolverError, match="backend='petsc'"):
        make_solver("cg", pc="ic")


@pytest.mark.parametrize("pc,opts", [("ilutp", {"no_such_key": 1}), ("ilutp", {"drop_tol": "x"}),
                                     ("ilu", {"drop_tol": 1e-4}),
                                     ("amg", {"no_such_key": 1}), ("ssor", {"omega": "x"})])
def test_bad_scipy_pc_options_are_option_errors(pc, opts):
    # an OptionError naming pc_options, not the preconditioner constructor's TypeError
    A = gallery.poisson2d(6)
    with pytest.raises(OptionError, match="pc_options"):
        make_solver("gmres", pc=pc, pc_options=opts).solve(A, np.ones(A.shape[0]))


@pytest.mark.petsc
def test_petsc_backend_calls_callback_each_iteration(petsc):
    A = gallery.poisson2d(10)
    b = np.ones(A.shape[0])
    seen = []
    res = make_solver("cg", backend="petsc", rtol=1e-8, callback=lambda xk: seen.append(xk.copy())).solve(A, b)
    assert res.converged and len(seen) == res.iterations
    np.testing.assert_allclose(seen[-1], res.x, rtol=1e-12)
    # a second solve with the same solver object still works (monitor was cancelled, then set again)
    res2 = make_solver("cg", backend="petsc", rtol=1e-8).solve(A, b)
    assert res2.iterations == res.iterations


def _bad_operator(kind):
    A, _, _ = poisson_problem(4)
    out = {"short": lambda x: (A @ x)[:-1], "complex": lambda x: (A @ x) * (1 + 0j)}[kind]
    return spla.LinearOperator(A.shape, matvec=out, dtype=np.float64)


@pytest.mark.parametrize("name", ["cg", "gmres", "bicgstab", "minres", "rcg", "gcrodr"])
def test_linear_operator_returning_the_wrong_length_or_complex_values(name):
    # a matvec of the wrong length is a ShapeError and complex values a SolverError, for
    # every solver, not NumPy or SciPy errors or a silent cast to real
    with pytest.raises(linsolve.ShapeError, match="A's matvec"):
        linsolve.make_solver(name).solve(_bad_operator("short"), np.ones(16))
    with pytest.raises(linsolve.SolverError, match="A's matvec returned complex128"):
        linsolve.make_solver(name).solve(_bad_operator("complex"), np.ones(16))


@pytest.mark.petsc
@pytest.mark.parametrize("name,opts", [("cg", {"backend": "petsc"}), ("petsc", {})])
def test_petsc_solve_of_a_linear_operator_raises_its_own_error(petsc, name, opts):
    # the error raised in the shell matrix's Python matvec reaches the caller as itself, not
    # as PETSc's "error code 101"
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
    A, b, xref = poisson_problem(4)
    res = solver.solve(spla.aslinearoperator(A), b)  # and the solver goes on
    assert res.converged and np.linalg.norm(res.x - xref) <= 1e-4 * np.linalg.norm(xref)
