"""The ``linsolve`` command: bench output, JSON, and one-line exit-2 errors."""
from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import scipy.io
import scipy.sparse as sp
from solver_problems import missing_diagonal

from linsolve import gallery, parse_option_value
from linsolve.cli import parse_solver_spec, split_specs


def _run(*args):
    return subprocess.run([sys.executable, "-m", "linsolve.cli", *args], capture_output=True, text=True,
                          timeout=120)


@pytest.fixture(scope="module")
def matrix_files(tmp_path_factory):
    d = tmp_path_factory.mktemp("mats")
    A = gallery.poisson2d(12)
    scipy.io.mmwrite(str(d / "a.mtx"), A)
    sp.save_npz(str(d / "a.npz"), A)
    np.save(str(d / "b.npy"), np.arange(A.shape[0], dtype=float))
    return d, A


def test_parse_spec():
    assert parse_solver_spec("cg:pc=amg:rtol=1e-8") == ("cg", {"pc": "amg", "rtol": 1e-8})
    assert parse_option_value("40") == 40 and parse_option_value("true") is True
    assert parse_option_value('{"a": 1}') == {"a": 1}


def test_spec_values_may_hold_json_with_colons_and_commas():
    spec = 'gmres:pc=ilu:pc_options={"fill_factor": 2, "drop_tol": 1e-4}:rtol=1e-9'
    assert parse_solver_spec(spec) == ("gmres", {"pc": "ilu", "pc_options": {"fill_factor": 2, "drop_tol": 1e-4},
                                                 "rtol": 1e-9})
    assert split_specs(f"{spec},cg:pc=jacobi, bicgstab") == [spec, "cg:pc=jacobi", "bicgstab"]
    assert split_specs('a:x=[1, 2],b:s="p,q"') == ["a:x=[1, 2]", 'b:s="p,q"']


def test_bench_json_matches_direct_solve(matrix_files, tmp_path):
    d, A = matrix_files
    out = tmp_path / "r.json"
    p = _run("bench", str(d / "a.npz"), "--rhs", str(d / "b.npy"), "--solvers", "cg,gmres:restart=10,direct",
             "--repeat", "1", "--rtol", "1e-9", "--json", str(out))
    assert p.returncode == 0, p.stderr
    data = json.loads(out.read_text())
    assert [r["solver"] for r in data["rows"]] == ["cg", "gmres:restart=10", "direct"]
    assert all(r["converged"] and r["relative_residual"] <= 1e-9 * 1.000001 for r in data["rows"])
    assert data["rows"][2]["iterations"] == 1
    assert "cg" in p.stdout


def test_bench_mtx(matrix_files):
    d, _ = matrix_files
    p = _run("bench", str(d / "a.mtx"), "--solvers", "bicgstab", "--repeat", "1")
    assert p.returncode == 0, p.stderr


@pytest.mark.parametrize("args,needle", [
    (["bench", "/nonexistent/x.mtx"], "does not exist"),
    (["bench", "{npz}", "--solvers", "nosuch"], "unknown solver"),
    (["bench", "{npz}", "--solvers", "cg:pc=magic"], "unknown preconditioner"),
    (["bench", "{npz}", "--solvers", "cg:pc"], "not key=value"),
    (["bench", "{npz}", "--repeat", "0"], "--repeat"),
    (["bench", "{npz}", "--rhs", "{bad}"], "length"),
    (["bench", "{npz}", "--solvers", ","], "names no solver"),
    (["bench", "{npz}", "--solvers", "cg", "--json", "/nonexistent/dir/x.json"], "--json"),
    (["bench", "{npz}", "--solvers", "cg", "--json", "{tmp}"], "is a directory"),
    (["bench", "{npz}", "--solvers", "cg", "--json", "{bad}/x.json"], "is not a directory"),
    (["bench", "{npz}", "--solvers", "cg:pc_options=3"], "pc_options"),
    (["bench", "{npz}", "--rhs", "{strs}"], "could not read right-hand side"),
    (["bench", "{tmp}"], "is a directory"),
    (["bench", "{npz}", "--solvers", "cg:warm_start=2"], "warm_start"),
    (["bench", "{npz}", "--solvers", 'cg:pc=none:pc_options={"fill_factor": 2}'], "takes no options"),
    (["bench", "{npz}", "--solvers", "petsc:ksp_type=nosuch"], "unknown KSP or PC type"),
])
def test_bad_input_exit_2_one_line(matrix_files, tmp_path, args, needle):
    d, _ = matrix_files
    bad = tmp_path / "bad.npy"
    np.save(str(bad), np.ones(3))
    strs = tmp_path / "strs.npy"
    np.save(str(strs), np.array(["a"] * 144))
    args = [a if a.startswith("cg:pc=none") else a.format(npz=d / "a.npz", bad=bad, tmp=tmp_path, strs=strs)
            for a in args]
    p = _run(*args)
    assert p.returncode == 2
    lines = [ln for ln in p.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and needle in lines[0], p.stderr
    assert "Traceback" not in p.stderr


def test_solvers_lists_registry():
    p = _run("solvers")
    assert p.returncode == 0
    for name in ("cg", "gmres", "bicgstab", "minres", "direct", "petsc"):
        assert name in p.stdout


def _cli(*args):
    import subprocess
    import sys

    return subprocess.run([sys.executable, "-m", "linsolve.cli", *args], capture_output=True, text=True,
                          timeout=120)


def test_cli_complex_right_hand_side_exits_2_in_one_line(tmp_path):
    # a complex rhs is refused, not cast to real with a ComplexWarning
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
    # a solver failure inside the bench is one line on stderr and exit 2, not a traceback
    sp_ = pytest.importorskip("scipy.sparse")
    sp_.save_npz(str(tmp_path / "z.npz"), sp_.csr_matrix(missing_diagonal()))
    p = _cli("bench", str(tmp_path / "z.npz"), "--solvers", spec)
    lines = [ln for ln in p.stderr.splitlines() if ln.strip()]
    assert p.returncode == 2 and len(lines) == 1 and needle in lines[0], p.stderr
