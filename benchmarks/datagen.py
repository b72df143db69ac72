"""Dataset generation throughput, I/O included: ``darcy`` samples/s through the full
pipeline (sampling, ordering, assembly, solves, shard commits, final join) for

* PETSc GMRES solving every system independently (the baseline),
* PETSc GMRES in greedy order with warm starts,
* GCRO-DR (``gcrodr``) without ordering, recycling within each chunk,
* GCRO-DR in greedy order: the sorted-Krylov-recycling pipeline,

all with the same PETSc preconditioner, tolerance, chunking, seed and therefore the same
200 systems, run side by side in one process and interleaved across repeats (medians).

    python -m benchmarks.datagen                 # 64^2 and 128^2, 200 samples, 3 repeats
    python -m benchmarks.datagen --quick         # a smoke run (not written as the result)

Every pipeline runs in this process on ``--threads`` threads (default 1: BLAS, numba, PETSc's
BLAS; ``benchmarks.common.set_threads``). The darcy FV matrix is SPD, so the references
include the strongest library solvers for it: PETSc CG with GAMG and SciPy CG with PyAMG,
every system solved independently (AMG set-up per system included).
"""
from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import h5py
import numpy as np

from benchmarks.common import markdown_table, set_threads, thread_count, write_results
from datagen.pipeline import GenerateConfig, generate
from linsolve import available_solvers


def configs(pc: str, spd_pc: str, rtol: float, restart: int, recycle: int, backend: str = "petsc"):
    """(label, solver, options, order, role): role 'baseline', 'pipeline' (candidates for the
    best pipeline) or 'reference' (an independent-solve method that is not the baseline)."""
    base = {"backend": backend, "pc": pc, "rtol": rtol, "restart": restart}
    spd = {"backend": backend, "pc": spd_pc, "rtol": rtol}
    have = set(available_solvers())
    rows = [(f"{backend}-gmres pc={pc}, independent (baseline)", "gmres", dict(base), "none", "baseline"),
            (f"{backend}-gmres pc={pc}, greedy + warm start", "gmres", {**base, "warm_start": True}, "greedy",
             "pipeline")]
    if "gcrodr" in have:
        rec = {**base, "recycle": recycle}
        rows += [(f"gcrodr pc={pc}, no ordering", "gcrodr", rec, "none", "pipeline"),
                 (f"gcrodr pc={pc}, greedy (SKR)", "gcrodr", rec, "greedy", "pipeline")]
    if "rcg" in have:
        rows += [(f"rcg pc={spd_pc}, no ordering", "rcg", {**spd, "recycle": recycle}, "none", "pipeline"),
                 (f"rcg pc={spd_pc}, greedy", "rcg", {**spd, "recycle": recycle}, "greedy", "pipeline")]
    rows.append((f"{backend}-cg pc={spd_pc}, independent", "cg", dict(spd), "none", "reference"))
    amg = {"pc": "amg", "rtol": rtol}  # GAMG on PETSc, PyAMG smoothed aggregation on SciPy
    if backend == "petsc":
        rows.append(("petsc-cg pc=gamg, independent", "cg", {**amg, "backend": "petsc"}, "none", "reference"))
    rows.append(("scipy-cg pc=pyamg, independent", "cg", {**amg, "backend": "scipy", "history": False}, "none",
                 "reference"))
    return rows


def run_size(grid: int, n: int, repeat: int, chunk: int, rows, workdir: Path, seed: int) -> list[dict]:
    times = {name: [] for name, *_ in rows}
    solve = {name: [] for name, *_ in rows}
    info: dict = {}
    for _name, solver, opts, order, _ in rows:  # warm-up: imports and one-time setup stay out of the timings
        cfg = GenerateConfig(problem="darcy", n=2, grid=grid, solver=solver, solver_opt=opts, order=order,
                             chunk=chunk, seed=seed + 1)
        generate(cfg, workdir / "warmup.h5", overwrite=True)
    for r in range(repeat):
        for name, solver, opts, order, _ in rows:
            out = workdir / f"g{grid}-{solver}-{order}-{r}.h5"
            cfg = GenerateConfig(problem="darcy", n=n, grid=grid, solver=solver, solver_opt=opts, order=order,
                                 chunk=chunk, seed=seed)
            t0 = time.perf_counter()
            s = generate(cfg, out, overwrite=True)
            times[name].append(time.perf_counter() - t0)
            solve[name].append(s.solve_time)
            with h5py.File(out, "r") as f:
                u = f["t0_fields"]["u"][()].reshape(n, -1).astype(np.float64)
            info[name] = {"iterations_mean": float(np.mean(s.iterations)), "non_converged": s.non_converged,
                          "u": u}
            if r < repeat - 1 or name != rows[0][0]:
                out.unlink()
            print(f"  grid {grid} repeat {r}: {name}: {times[name][-1]:.2f} s, "
                  f"mean its {info[name]['iterations_mean']:.1f}", flush=True)
    base_name = rows[0][0]
    base_t = statistics.median(times[base_name])
    ub = info[base_name]["u"]
    out_rows = []
    for name, _solver, _opts, _order, role in rows:
        t = statistics.median(times[name])
        d = info[name]
        diff = np.linalg.norm(d["u"] - ub, axis=1) / np.linalg.norm(ub, axis=1)
        out_rows.append({"grid": f"{grid}x{grid}", "pipeline": name, "role": role, "samples": n, "time_s": t,
                         "samples_per_s": n / t, "speedup_vs_baseline": base_t / t,
                         "iterations_mean": d["iterations_mean"], "solve_time_s": statistics.median(solve[name]),
                         "io_and_assembly_s": statistics.median(np.subtract(times[name], solve[name])),
                         "non_converged": d["non_converged"],
                         "max_rel_diff_u_vs_baseline": float(diff.max()), "times_s": times[name],
                         "solve_times_s": solve[name]})
    return out_rows


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", default="64,128")
    ap.add_argument("--n", type=int, default=200)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--chunk", type=int, default=50)
    ap.add_argument("--pc", default="ilu", help="preconditioner of the GMRES-type solvers")
    ap.add_argument("--spd-pc", default="icc", help="preconditioner of the CG-type solvers (darcy fv is SPD)")
    ap.add_argument("--rtol", type=float, default=1e-8)
    ap.add_argument("--restart", type=int, default=40)
    ap.add_argument("--recycle", type=int, default=20)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--backend", default="petsc", help="petsc (the benchmark) or scipy (smoke runs without PETSc)")
    ap.add_argument("--quick", action="store_true", help="16^2, 24 samples, 1 repeat; results not written")
    ap.add_argument("--threads", type=thread_count, default=1, help="threads of every pipeline (BLAS, numba, PETSc's BLAS)")
    a = ap.parse_args(argv)
    set_threads(a.threads)
    if a.quick:
        a.sizes, a.n, a.repeat, a.chunk = "16", 24, 1, 8
    if a.backend != "petsc" and a.spd_pc == "icc":
        a.spd_pc = "jacobi"
    rows = configs(a.pc, a.spd_pc, a.rtol, a.restart, a.recycle, a.backend)
    workdir = Path(tempfile.mkdtemp(prefix="datagen-bench-"))
    results = []
    try:
        for g in (int(s) for s in a.sizes.split(",")):
            results += run_size(g, a.n, a.repeat, a.chunk, rows, workdir, a.seed)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    cols = ["grid", "pipeline", "samples", "time_s", "samples_per_s", "speedup_vs_baseline", "iterations_mean",
            "solve_time_s", "io_and_assembly_s", "non_converged", "max_rel_diff_u_vs_baseline"]
    table = markdown_table(results, cols)
    lines = []
    for grid in dict.fromkeys(r["grid"] for r in results):
        rs = [r for r in results if r["grid"] == grid]
        best = max((r for r in rs if r["role"] == "pipeline"), key=lambda r: r["samples_per_s"])
        ref = max((r for r in rs if r["role"] == "reference"), key=lambda r: r["samples_per_s"])
        lines.append(f"- {grid}: best pipeline {best['pipeline']}: {best['samples_per_s']:.1f} samples/s, "
                     f"{best['speedup_vs_baseline']:.2f}x the baseline's throughput; the independent "
                     f"{ref['pipeline']} (the fastest independent reference) reaches {ref['samples_per_s']:.1f} samples/s "
                     f"({ref['speedup_vs_baseline']:.2f}x).")
    table += "\n" + "\n".join(lines) + "\n"
    print(table)
    if a.quick or a.backend != "petsc":
        return
    settings = {k: getattr(a, k) for k in ("sizes", "n", "repeat", "chunk", "pc", "spd_pc", "rtol", "restart",
                                           "recycle", "seed", "backend", "threads")}
    md = (f"# datagen throughput: darcy, {a.n} samples, I/O included\n\n"
          f"Every pipeline solves the same {a.n} systems (seed {a.seed}) to rtol {a.rtol:g} with PETSc "
          f"pc={a.pc} (GMRES, GCRO-DR; restart {a.restart}) or pc={a.spd_pc} (CG, RCG), and the references PETSc CG + GAMG and SciPy CG + PyAMG "
          f"(independent solves), recycle {a.recycle}, "
          f"chunks of {a.chunk} "
          f"(solver state reset per chunk); time is the whole `generate` call (sampling, ordering, "
          f"assembly, solves, shard commits, final join), median of {a.repeat} interleaved repeats; "
          f"solve_time_s is the median summed solver wall time, io_and_assembly_s the median of the rest. "
          f"speedup = baseline time / time. One process, {a.threads} thread(s) for every pipeline. The machine is shared (2 cores, several jobs), so "
          f"timings carry noise of 10-30%; iteration counts are exact.\n\n" + table)
    jpath, mpath = write_results("datagen", {"settings": settings, "rows": results}, md)
    print(f"wrote {jpath} and {mpath}")


if __name__ == "__main__":
    main()
