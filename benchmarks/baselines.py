"""Baseline yardstick: each library-backed solver with each backend, side by side on the
same matrices and right-hand sides in one process.

    python -m benchmarks.baselines [--sizes 256,512] [--repeat 3] [--rtol 1e-8] [--threads 1]

Writes benchmarks/results/baselines.json and .md. Times are medians over repeats; each
repeat builds a fresh solver, so preconditioner set-up is included. SciPy (with PyAMG) and PETSc
run in this one process on ``--threads`` threads each (``benchmarks.common.set_threads``).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

from benchmarks.common import markdown_table, median_time, set_threads, thread_count, write_results  # noqa: E402
from linsolve import gallery, make_solver  # noqa: E402
from linsolve.petsc_support.utils import have_petsc  # noqa: E402

SPD_CONFIGS = [
    ("cg", {"pc": "none"}), ("cg", {"pc": "jacobi"}), ("cg", {"pc": "amg"}), ("cg", {"pc": "ic"}),
    ("minres", {"pc": "jacobi"}),
    ("gmres", {"pc": "ilu", "restart": 40}), ("gmres", {"pc": "ilutp", "restart": 40}),
    ("bicgstab", {"pc": "ilu"}),
    ("direct", {}),
]
NONSYM_CONFIGS = [
    ("gmres", {"pc": "none", "restart": 40}), ("gmres", {"pc": "ilu", "restart": 40}),
    ("gmres", {"pc": "ilutp", "restart": 40}),
    ("bicgstab", {"pc": "jacobi"}), ("bicgstab", {"pc": "ilu"}), ("direct", {}),
]


def run_matrix(label, A, configs, backends, repeat, rtol, maxiter):
    b = np.random.default_rng(0).standard_normal(A.shape[0])
    rows = []
    for name, opts in configs:
        for backend in backends:
            if opts.get("pc") == "ic" and backend == "scipy":
                continue  # no maintained SciPy IC: PETSc ICC only
            if opts.get("pc") == "ilutp" and backend == "petsc":
                continue  # SciPy's spilu only
            kw = {"rtol": rtol, "backend": backend, **opts}
            if name != "direct":
                kw["maxiter"] = maxiter
            if backend == "scipy" and name != "direct":
                kw["history"] = False  # no extra product per iteration: time the library alone

            def go(name=name, kw=kw):
                return make_solver(name, **kw).solve(A, b)

            t, res = median_time(go, repeat)
            rows.append({"matrix": label, "n": A.shape[0], "solver": name, "backend": backend,
                         "pc": opts.get("pc", "lu"), "iterations": res.iterations, "time_s": t,
                         "relative_residual": res.relative_residual, "converged": res.converged})
    # ratio to the PETSc run of the same solver and preconditioner (the yardstick)
    for r in rows:
        ref = [q for q in rows if q["solver"] == r["solver"] and q["pc"] == r["pc"] and q["backend"] == "petsc"]
        r["time_vs_petsc"] = r["time_s"] / ref[0]["time_s"] if ref else float("nan")
    return rows


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--sizes", default="256,512")
    p.add_argument("--convdiff", type=int, default=256)
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--rtol", type=float, default=1e-8)
    p.add_argument("--maxiter", type=int, default=5000)
    p.add_argument("--note", default="", help="free text recorded with the results (e.g. machine load)")
    p.add_argument("--threads", type=thread_count, default=1, help="threads of every solver (BLAS, numba, PETSc's BLAS)")
    a = p.parse_args(argv)
    set_threads(a.threads)
    backends = ["scipy", "petsc"] if have_petsc() else ["scipy"]
    rows = []
    for n in [int(s) for s in a.sizes.split(",") if s]:
        rows += run_matrix(f"poisson2d {n}^2", gallery.poisson2d(n), SPD_CONFIGS, backends, a.repeat, a.rtol, a.maxiter)
    if a.convdiff:
        rows += run_matrix(f"convdiff2d {a.convdiff}^2 Pe=50", gallery.convection_diffusion2d(a.convdiff, 50.0),
                           NONSYM_CONFIGS, backends, a.repeat, a.rtol, a.maxiter)
    cols = ["matrix", "solver", "pc", "backend", "iterations", "time_s", "time_vs_petsc", "relative_residual",
            "converged"]
    md = (f"# Baselines\n\nMedian of {a.repeat} runs, rtol={a.rtol:g}, random right-hand side (seed 0), every solver on {a.threads} thread(s) in one process. "
          "`time_vs_petsc` divides by the PETSc backend's time for the same solver and preconditioner "
          "(SciPy 'amg' is PyAMG smoothed aggregation; PETSc 'amg' is GAMG; 'ic' is PETSc ICC only).\n\n") + (f"Note: {a.note}\n\n" if a.note else "") + \
        "'ilu' is ILU(0) on both backends (compiled kernels / PETSc PCILU); 'ilutp' is SciPy's " \
        "`spilu(drop_tol=1e-4, fill_factor=10)` (SciPy only; see docs/preconditioners.md). Times include " \
        "conversion to PETSc AIJ and preconditioner set-up.\n\n" + markdown_table(rows, cols)
    j, m = write_results("baselines", {"rtol": a.rtol, "repeat": a.repeat, "note": a.note, "rows": rows}, md)
    print(md)
    print(f"wrote {j} and {m}")


if __name__ == "__main__":
    main()
