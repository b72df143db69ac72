"""The solvers on PETSc matrices distributed over 2 MPI processes.

Each test reads what a worker script (tests/linsolve/petsc_support/mpi/*.py) printed when run as
``mpiexec -n 2 python tests/linsolve/petsc_support/mpi/WORKER.py``: ``mpiexec`` is MPICH's Hydra launcher (Debian's
``mpiexec.mpich``, the MPI that PETSc is built with; ``LINSOLVE_MPIEXEC``
overrides it). Hydra needs no extra flags as root. Without it, the tests skip, except under
`make test` and in CI (LINSOLVE_REQUIRE_PETSC=1 or CI=true), where a missing mpiexec fails.

Tolerances: a distributed solve differs from the serial one only in the order of the
floating-point sums, so x agrees with the serial x to within a few times the tolerance
times the condition number (checked at 1e-6 relative for rtol 1e-9 on matrices of condition
~1e2) and the iteration counts to within ITS_TOL.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[3]
WORKERS = Path(__file__).resolve().parent / "mpi"
ITS_TOL = 2  # iterations: |distributed - serial| <= ITS_TOL per solve
X_TOL = 1e-6  # ||x_distributed - x_serial|| / ||x_serial||
RTOL = 1e-9  # the workers' solver tolerance


def _required() -> bool:
    return os.environ.get("CI", "").lower() == "true" or os.environ.get("LINSOLVE_REQUIRE_PETSC") == "1"


def mpiexec() -> str:
    """MPICH's mpiexec (what PETSc was built with), or LINSOLVE_MPIEXEC."""
    override = os.environ.get("LINSOLVE_MPIEXEC")
    exe = shutil.which(override) if override else (shutil.which("mpiexec.mpich") or shutil.which("mpiexec"))
    if not exe:
        msg = (f"LINSOLVE_MPIEXEC={override!r} is not an executable" if override else
               "mpiexec (MPICH) is not installed; `make setup` installs Debian's mpich")
        if _required():
            pytest.fail(msg + " (required under make test and CI)")
        pytest.skip(msg)
    return exe


def run_mpi(args: list[str], nproc: int = 2, timeout: float = 600, cwd: Path | None = None):
    """Run ``python ARGS`` under ``mpiexec -n nproc``; returns the CompletedProcess."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
           "OMP_NUM_THREADS": "1"}
    cmd = [mpiexec(), "-n", str(nproc), sys.executable, *args]
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env, cwd=cwd or ROOT)
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"{' '.join(cmd)} did not finish in {timeout} s (a process waiting in a global sum "
                    f"the others skipped?); stderr: {exc.stderr}")


def worker_results(script: str, *cases: str) -> dict:
    proc = run_mpi([str(WORKERS / script), *cases])
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
    assert proc.returncode == 0 and len(lines) == 1, (
        f"mpiexec exit {proc.returncode}\nstdout:\n{proc.stdout[-4000:]}\nstderr:\n{proc.stderr[-4000:]}")
    out = json.loads(lines[0][len("RESULT "):])
    assert out["size"] == 2
    for name, res in out["results"].items():
        assert not (isinstance(res, dict) and "exception" in res), f"case {name} raised:\n{res['exception']}"
    return out["results"]


@pytest.fixture(scope="module")
def solver_cases(petsc):
    return worker_results("solvers.py")


def _check_equal_serial(cases):
    for case in cases:
        for i, row in enumerate(case["rows"]):
            where = f"{case['case']} ({case['how']} rows) solve {i}: {row}"
            assert row["converged"], where
            assert row["same_layout"], where  # x comes back with b's row distribution
            assert row["residual"] <= RTOL * (1 + 1e-6), where
            assert abs(row["reported_residual"] - row["residual"]) <= 1e-3 * row["residual"] + 1e-15, where
            assert row["x_diff"] <= X_TOL, where
            assert abs(row["its_par"] - row["its_ser"]) <= ITS_TOL, where


def test_distributed_solves_equal_the_serial_solves(solver_cases):
    cases = solver_cases["equal_serial"]
    assert {c["case"] for c in cases} >= {"gmres/none", "bicgstab/jacobi", "cg/jacobi", "minres/none", "petsc/bcgs",
                                          "gcrodr/none", "gcrodr/jacobi-left", "rcg/jacobi", "rcg/every"}
    _check_equal_serial(cases)


def test_recycling_solvers_recycle_when_distributed(solver_cases):
    by_name = {c["case"]: c for c in solver_cases["equal_serial"]}
    for name in ("gcrodr/none", "rcg/jacobi"):
        rows = by_name[name]["rows"]
        assert rows[-1]["its_par"] < rows[0]["its_par"], (name, rows)


def test_distributed_gcrodr_does_one_reduction_per_block(solver_cases):
    """The Arnoldi step's k + j inner products are one global sum and its norm another, so
    a solve makes about two sums per iteration plus a few per cycle and per solve."""
    row = next(c for c in solver_cases["equal_serial"] if c["case"] == "gcrodr/none")["rows"][1]
    its = row["its_par"]
    cycles = -(-its // (20 - 6))
    assert 2 * its <= row["reductions"] <= 2 * its + 6 * cycles + 16, row


def test_uneven_row_distribution(solver_cases):
    _check_equal_serial(solver_cases["uneven"])


def test_a_process_owning_no_rows(solver_cases):
    _check_equal_serial(solver_cases["empty"])


def test_block_preconditioners_one_block_per_process(solver_cases):
    rows = solver_cases["block_pcs"]
    assert {(r["solver"], r["pc"]) for r in rows} == {(s, p) for s in ("gcrodr", "gmres") for p in ("bjacobi", "asm")}
    for r in rows:
        assert r["converged"] and r["x_err"] <= 1e-7, r


def test_python_ksp_recycles_under_two_processes(solver_cases):
    res = solver_cases["python_ksp"]
    rec, plain = res["recycle6"], res["recycle0"]
    assert max(rec["residual"] + plain["residual"]) <= RTOL * (1 + 1e-6)
    # the recycled sequence needs fewer iterations than GMRES(20) (recycle 0) on the same systems
    assert sum(rec["its_par"][1:]) < 0.8 * sum(plain["its_par"][1:]), res
    for key in ("recycle6", "recycle0", "recycle6_uneven", "recycle6_empty"):
        r = res[key]
        assert max(r["residual"]) <= RTOL * (1 + 1e-6), (key, r)
        assert np.all(np.abs(np.subtract(r["its_par"], r["its_ser"])) <= ITS_TOL), (key, r)


def test_python_ksp_sees_a_pc_option_change_on_every_process(solver_cases):
    """The PC's description, hashed on process 0 and summed to all, is unchanged between
    solves with the same PC (no refit) and changes with -pc_jacobi_type (one refit of the
    k = 6 recycled vectors); every process takes the same branch, or the solve would hang."""
    res = solver_cases["python_ksp_pc_options"]
    assert max(res["residual"]) <= RTOL * (1 + 1e-6), res
    refits = res["recycle_matvecs"]
    assert refits[1] == 0 and refits[2] >= 6 and refits[3] == 0, res


def _program(*options):
    proc = run_mpi([str(WORKERS / "petsc_program.py"), "32", "-ksp_rtol", "1e-9", "-pc_type", "bjacobi",
                    "-ksp_pc_side", "right", *options])
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
    assert proc.returncode == 0 and len(lines) == 1, proc.stderr[-4000:]
    return json.loads(lines[0][len("RESULT "):])


def test_plain_petsc_program_runs_gcrodr_chosen_by_options(petsc):
    """A parallel petsc4py program that knows nothing of linsolve picks the Python KSP by
    options (its work vectors follow the matrix's parallel layout: sequential ones are PETSc error 60)."""
    ours = _program("-ksp_type", "python", "-ksp_python_type", "linsolve.petsc_support.python_ksp.GCRODR",
                    "-ksp_gcrodr_restart", "30", "-ksp_gcrodr_recycle", "8")
    gmres = _program("-ksp_type", "gmres", "-ksp_gmres_restart", "30")
    assert ours["ksp_type"] == "python" and ours["processes"] == 2
    for run in (ours, gmres):
        for s in run["solves"]:
            assert s["reason"] > 0 and s["residual"] <= RTOL * (1 + 1e-6), run
    its = [s["its"] for s in ours["solves"]]
    assert its[1] < its[0] and its[2] < its[0], its  # the context recycles across KSPSolve calls
    assert sum(its[1:]) < sum(s["its"] for s in gmres["solves"][1:]), (ours, gmres)


def test_solvers_that_cannot_run_distributed_say_what_can(solver_cases):
    res = solver_cases["unsupported"]
    for key in ("sor", "ssor-pcg", "sor/petsc", "gmres", "gcrodr", "rcg", "direct", "fft-poisson", "dcdm"):
        assert res[key]["error"] == "UnsupportedInputError", (key, res[key])
        msg = res[key]["message"]
        assert "distributed over 2 MPI processes" in msg and "gcrodr and rcg with backend='petsc'" in msg, msg
    direct = res["direct/petsc"]
    from linsolve.krylov.direct import parallel_lu_package

    if parallel_lu_package() is None:
        assert direct["error"] == "UnsupportedInputError" and "parallel LU" in direct["message"], direct
    else:
        assert direct["error"] is None and direct["converged"], direct


def test_bench_cli_under_mpiexec_loads_in_parallel_and_reports_once(petsc, tmp_path):
    from linsolve import gallery
    from linsolve.petsc_support.utils import csr_to_aij

    A = gallery.convection_diffusion2d(20, peclet=20.0)
    path = tmp_path / "cd20.petsc"
    viewer = petsc.Viewer().createBinary(str(path), "w", comm=petsc.COMM_SELF)
    csr_to_aij(A).view(viewer)
    viewer.destroy()
    out = tmp_path / "bench.json"
    proc = run_mpi(["-m", "linsolve.cli", "bench", str(path), "--solvers",
                    "gmres:backend=petsc:pc=bjacobi,gcrodr:backend=petsc:restart=30:recycle=8", "--repeat", "1",
                    "--json", str(out)])
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.count("cd20.petsc: n=400") == 1  # one table, from process 0
    assert "2 MPI processes" in proc.stdout
    rep = json.loads(out.read_text())
    assert rep["mpi_processes"] == 2 and rep["n"] == 400 and rep["nnz"] == A.nnz
    assert [r["converged"] for r in rep["rows"]] == [True, True]
    assert all(r["relative_residual"] <= 1e-8 * (1 + 1e-6) for r in rep["rows"])
    # a solver that cannot run distributed: exit 2 and its one line, once
    proc = run_mpi(["-m", "linsolve.cli", "bench", str(path), "--solvers", "sor", "--repeat", "1"])
    assert proc.returncode == 2
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and "cannot run on a PETSc matrix distributed over 2" in lines[0], proc.stderr
