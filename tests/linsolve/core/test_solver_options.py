"""Solver keyword validation in the base class (wrong types are OptionErrors naming the
option, options nothing reads are refused) and the warm-start iterate across a zero rhs."""
from __future__ import annotations

import numpy as np
import pytest
from datagen_run import one_line, run_datagen

import linsolve
from linsolve import OptionError, available_solvers, gallery, make_solver, solver_class

WRONG = {bool: ["no", 2, 0, None], int: [2.5, "5", True], float: ["1.2", True, None]}


def _typed_options():
    for name in available_solvers():
        for opt, default in solver_class(name).options.items():
            kind = type(default) if isinstance(default, (bool, int, float)) else None
            if kind is not None:
                for bad in WRONG[kind]:
                    yield name, opt, bad


@pytest.mark.parametrize("value", ["no", "yes", 2, 1, None, [True]])
def test_warm_start_must_be_a_bool(value):
    # bool(value) would turn "no" into True
    with pytest.raises(OptionError, match="warm_start"):
        make_solver("cg", warm_start=value)


def test_warm_start_accepts_numpy_bool():
    assert make_solver("cg", warm_start=np.bool_(True)).warm_start is True


@pytest.mark.parametrize("name,opt,bad", list(_typed_options()))
def test_solver_option_of_wrong_type_is_an_option_error(name, opt, bad):
    with pytest.raises(OptionError, match=rf"\b{opt}\b"):
        make_solver(name, **{opt: bad})


def test_typed_option_values_are_normalised():
    s = make_solver("gmres", restart=np.int64(7), history=np.bool_(False))
    assert s.opts["restart"] == 7 and type(s.opts["restart"]) is int and s.opts["history"] is False
    assert make_solver("sor", omega=1).opts["omega"] == 1.0  # an int is a fine float


@pytest.mark.parametrize("kw", [{"rtol": "1e-8"}, {"atol": True}, {"callback": 3}])
def test_base_keywords_of_wrong_type(kw):
    with pytest.raises(OptionError, match=next(iter(kw))):
        make_solver("cg", **kw)


@pytest.mark.parametrize("pc", ["none", None, "jacobi", "ilu", np.eye(4)])
def test_pc_options_with_an_optionless_preconditioner_is_an_error(pc):
    with pytest.raises(OptionError, match="pc_options"):
        make_solver("gmres", pc=pc, pc_options={"fill_factor": 2})
    make_solver("gmres", pc=pc, pc_options={})  # empty options are no mistake


@pytest.mark.parametrize("name", [n for n in available_solvers() if solver_class(n).direct])
def test_direct_solvers_refuse_a_preconditioner(name):
    # a direct solver has no use for it: refused, not ignored
    with pytest.raises(OptionError, match="direct solver and takes no preconditioner"):
        make_solver(name, pc="ilu")
    assert make_solver(name, pc="none").pc in ("none", "lu")


def test_ilutp_accepts_pc_options():
    A = gallery.poisson2d(8)
    res = make_solver("gmres", pc="ilutp", pc_options={"fill_factor": 2}).solve(A, np.ones(A.shape[0]))
    assert res.converged


@pytest.mark.parametrize("same", [True, False])
def test_zero_rhs_resets_the_warm_start_iterate(same):
    """b1, 0, b2 with a warm start: the zero rhs's solution is x = 0, so the b2 solve must
    start from 0, i.e. match a cold solve of b2 exactly (not start from x(b1))."""
    A = gallery.poisson2d(10)
    rng = np.random.default_rng(3)
    b1 = rng.standard_normal(A.shape[0])
    b2 = b1 if same else b1 + 1e-3 * rng.standard_normal(A.shape[0])
    warm = make_solver("cg", rtol=1e-6, warm_start=True)
    warm.solve(A, b1)
    zero = warm.solve(A, np.zeros(A.shape[0]))
    assert zero.converged and not np.any(zero.x)
    got = warm.solve(A, b2)
    cold = make_solver("cg", rtol=1e-6).solve(A, b2)
    assert got.iterations == cold.iterations > 0
    np.testing.assert_array_equal(got.x, cold.x)


@pytest.mark.petsc
@pytest.mark.parametrize("key", ["ksp_rtol", "-ksp_atol", "ksp_max_it", "ksp_divtol"])
def test_petsc_tolerance_options_are_refused_not_silently_overridden(petsc, key, tmp_path):
    # KSPSetTolerances on every solve would override them while the file recorded them, so
    # the solver's own rtol/atol/maxiter are the only way to set them
    with pytest.raises(linsolve.OptionError, match=key.lstrip("-")):
        linsolve.make_solver("petsc", ksp_type="cg", petsc_options={key: 3})
    if key == "ksp_rtol":  # the datagen path (one subprocess is enough)
        p = run_datagen("generate", "darcy", "--n", "2", "--grid", "8", "--solver", "petsc", "--solver-opt",
                     f"{key}=3", "--out", "d.h5", cwd=tmp_path)
        assert p.returncode == 2 and "would be overridden" in one_line(p)
        assert list(tmp_path.iterdir()) == []
    # the solver's own tolerance still reaches PETSc
    A = gallery.poisson2d(12)
    b = np.ones(A.shape[0])
    r = linsolve.make_solver("petsc", ksp_type="cg", rtol=1e-2).solve(A, b)
    assert r.converged and 1e-3 * np.linalg.norm(b) < np.linalg.norm(b - A @ r.x) <= 1e-2 * np.linalg.norm(b)
