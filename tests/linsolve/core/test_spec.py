"""Solvers named as text (``linsolve.parse_solver_spec``, ``parse_option_value``,
``split_solver_options``): typed values, the options reaching the solver, one OptionError
naming the problem for a bad specification, and the same parser behind both commands."""
from __future__ import annotations

import json

import datagen_toy  # noqa: F401  (registers the 'toy' family)
import h5py
import numpy as np
import pytest
from typer.testing import CliRunner

import linsolve
from linsolve import (
    OptionError,
    UnknownSolverError,
    parse_option_value,
    parse_solver_spec,
    split_solver_options,
)


@pytest.mark.parametrize("text,value", [
    ("40", 40), ("-3", -3), ("1e-8", 1e-8), ("2.5", 2.5), ("1e3", 1000.0),
    ("true", True), ("Yes", True), ("ON", True), ("false", False), ("no", False), ("off", False),
    ("none", None), ("null", None),
    ('{"fill_factor": 2, "drop_tol": 1e-4}', {"fill_factor": 2, "drop_tol": 1e-4}), ("[1, 2]", [1, 2]),
    ("amg", "amg"), ("ilu0", "ilu0"), ("", ""),
])
def test_option_values_are_typed(text, value):
    got = parse_option_value(text)
    assert got == value and type(got) is type(value)


@pytest.mark.parametrize("spec,expected", [
    ("cg", ("cg", {})),
    ("  gmres  ", ("gmres", {})),
    ("cg:pc=amg:rtol=1e-8", ("cg", {"pc": "amg", "rtol": 1e-8})),
    ("cg: rtol = 1e-8 :maxiter=200", ("cg", {"rtol": 1e-8, "maxiter": 200})),
    ("bandit-sor:history=false", ("bandit-sor", {"history": False})),
    ('gmres:pc=ilu:pc_options={"fill_factor": 2, "note": "a:b,c"}:rtol=1e-9',
     ("gmres", {"pc": "ilu", "pc_options": {"fill_factor": 2, "note": "a:b,c"}, "rtol": 1e-9})),
    ("petsc:ksp_type=bcgs:pc=asm:sub_pc_type=ilu",
     ("petsc", {"ksp_type": "bcgs", "pc": "asm", "sub_pc_type": "ilu"})),
])
def test_valid_specs_give_name_and_typed_options(spec, expected):
    assert parse_solver_spec(spec) == expected


@pytest.mark.parametrize("spec,needle", [
    ("", "empty solver specification"),
    (":rtol=1e-8", "must start with a solver name"),
    ("cg:pc", "'pc' in 'cg:pc' is not key=value"),
    ("cg:=3", "has an empty key"),
    ("cg:pc=:rtol=1e-8", "'pc=' in 'cg:pc=:rtol=1e-8' has no value"),
    ("cg:rtol=1e-8:rtol=1e-9", "'rtol' is given twice"),
    ("cg:", "ends with ':'"),
    ("cg::rtol=1e-8", "two colons in a row"),
    ("gmres:pc_options={fill: 2", "malformed JSON option value"),
    (None, "must be a string"),
])
def test_bad_specs_raise_option_error_naming_the_problem(spec, needle):
    with pytest.raises(OptionError, match=None) as err:
        parse_solver_spec(spec)
    assert needle in str(err.value)
    assert isinstance(err.value, ValueError)


def test_parsed_options_build_the_same_solver_as_keywords():
    name, opts = parse_solver_spec("gcrodr:restart=30:recycle=10:rtol=1e-9:pc=jacobi:pc_side=left")
    parsed, direct = linsolve.make_solver(name, **opts), linsolve.make_solver(
        "gcrodr", restart=30, recycle=10, rtol=1e-9, pc="jacobi", pc_side="left")
    assert parsed.describe() == direct.describe()
    A = linsolve.gallery.poisson2d(10)
    b = np.ones(100)
    x_ref = np.linalg.solve(A.toarray(), b)
    res = parsed.solve(A, b)
    assert res.converged and np.linalg.norm(res.x - x_ref) <= 1e-7 * np.linalg.norm(x_ref)


def test_unknown_solver_or_option_in_a_spec_is_make_solvers_error():
    name, opts = parse_solver_spec("nosuch:rtol=1")
    with pytest.raises(UnknownSolverError, match="nosuch"):
        linsolve.make_solver(name, **opts)
    name, opts = parse_solver_spec("cg:restart=20")
    with pytest.raises(OptionError, match="restart"):
        linsolve.make_solver(name, **opts)


def test_petsc_keys_are_routed_into_petsc_options():
    opts = {"ksp_type": "bcgs", "rtol": 1e-8, "sub_pc_type": "ilu", "petsc_options": {"ksp_gmres_restart": 50}}
    routed = split_solver_options("petsc", opts)
    assert routed == {"ksp_type": "bcgs", "rtol": 1e-8,
                      "petsc_options": {"ksp_gmres_restart": 50, "sub_pc_type": "ilu"}}
    assert opts["petsc_options"] == {"ksp_gmres_restart": 50}  # the input is not modified
    # a solver without petsc_options keeps every key: make_solver names the unknown one
    assert split_solver_options("cg", {"pc": "amg", "bogus": 1}) == {"pc": "amg", "bogus": 1}
    with pytest.raises(UnknownSolverError, match="available"):
        split_solver_options("nosuch", {})


# --- the commands -----------------------------------------------------------------------

def _datagen(*args):
    from datagen.cli import app

    return CliRunner().invoke(app, [str(a) for a in args])


def _stored_config(path):
    with h5py.File(path, "r") as f:
        return json.loads(f.attrs["config"])


def test_datagen_solver_spec_equals_solver_opt(tmp_path):
    base = ["generate", "toy", "--n", "2", "--grid", "6", "--chunk", "2", "--seed", "1", "--quiet"]
    spec = _datagen(*base, "--solver", "gmres:restart=5:rtol=1e-9", "--out", tmp_path / "spec.h5")
    assert spec.exit_code == 0, spec.output
    pairs = _datagen(*base, "--solver", "gmres", "--solver-opt", "restart=5", "--solver-opt", "rtol=1e-9",
                     "--out", tmp_path / "pairs.h5")
    assert pairs.exit_code == 0, pairs.output
    a, b = _stored_config(tmp_path / "spec.h5"), _stored_config(tmp_path / "pairs.h5")
    assert a["solver"] == b["solver"] == "gmres"
    assert a["solver_opt"] == b["solver_opt"] == {"restart": 5, "rtol": 1e-9}
    # --solver-opt wins over the spec's value of the same key
    both = _datagen(*base, "--solver", "gmres:restart=5:rtol=1e-9", "--solver-opt", "rtol=1e-7",
                    "--out", tmp_path / "both.h5")
    assert both.exit_code == 0, both.output
    assert _stored_config(tmp_path / "both.h5")["solver_opt"] == {"restart": 5, "rtol": 1e-7}


@pytest.mark.parametrize("spec,needle", [("cg:pc", "not key=value"), ("cg:rtol=1:rtol=2", "given twice"),
                                         ("nosuch:rtol=1", "unknown solver 'nosuch'")])
def test_bad_spec_in_either_command_is_one_line_exit_2(tmp_path, spec, needle):
    out = tmp_path / "bad.h5"
    res = _datagen("generate", "toy", "--n", "2", "--grid", "6", "--solver", spec, "--out", out)
    assert res.exit_code == 2, res.output
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("datagen: error:") and needle in lines[0], res.stderr
    assert not out.exists()

    import scipy.sparse as sp

    from linsolve.cli import app as linsolve_app

    mat = tmp_path / "a.npz"
    sp.save_npz(mat, linsolve.gallery.poisson2d(4))
    res = CliRunner().invoke(linsolve_app, ["bench", str(mat), "--solvers", spec, "--repeat", "1"])
    assert res.exit_code != 0 and isinstance(res.exception, OptionError if "nosuch" not in spec
                                             else UnknownSolverError)
    assert needle in str(res.exception)


def test_option_pairs_are_typed_like_solver_spec_values():
    from linsolve.core.spec import parse_option_pairs

    assert parse_option_pairs(["rtol=1e-8", "restart=30", "warm_start=true", "pc=ilu", 'pc_options={"fill": 2}'],
                              "x") == {"rtol": 1e-8, "restart": 30, "warm_start": True, "pc": "ilu",
                                       "pc_options": {"fill": 2}}
    assert parse_option_pairs(None, "x") == {}


@pytest.mark.parametrize("item, message", [("rtol", "is not key=value"), ("=3", "empty key")])
def test_option_pair_without_key_is_refused_naming_the_option(item, message):
    from linsolve.core.spec import parse_option_pairs

    with pytest.raises(OptionError, match=f"--solver-opt '{item}' .*{message}"):
        parse_option_pairs([item], "--solver-opt")
