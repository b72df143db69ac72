"""Recycled CG (``rcg``) against PETSc CG with the same preconditioner (issue #4 target:
>= 1.5x faster on symmetric ``darcy`` and on ``poisson``).

    python -m benchmarks.skr_rcg            # full run (100 systems at 80^2, 30 at 160^2)
    python -m benchmarks.skr_rcg --quick    # small run

Cases as in ``benchmarks/skr.py::part_rcg``: 100 systems of ``darcy`` (fv stencil, 80^2,
greedy order of the coefficient fields, tol 1e-8) and 100 right-hand sides of ``poisson``
(80^2, one matrix), plus the same at 160^2 with 30 systems. Preconditioners ``jacobi``
and ``icc`` (PETSc ICC(0); rcg runs its compiled IC(0), the same factor: see
``tests/linsolve/recycling/test_dcg_kernels.py``). Methods, side by side in one process on the same
systems, their order rotated every repeat: PETSc CG cold (x0 = 0) and warm (x0 = the
previous solution) through ``make_solver("cg", backend="petsc")``; ``rcg`` with its
defaults (init-CG with deflated restarts, ``deflation="restart"``), warm; ``rcg`` with
``deflation="every"`` (Saad et al.'s deflation in every iteration, that mode's defaults);
and ``rcg`` with ``recycle=0`` (the same compiled kernel without recycling: plain PCG),
which separates what the kernel gains from what recycling gains.
Times are per system; the table gives the median over the sequence (median over the
repeats of that), and the mean, which also carries rcg's periodic Ritz updates.

Part "sweep": rcg's options (mode, recycle k, store s, update_every u, restart_drop, and for
the restart mode update_max and ritz_keep) on the 80^2 cases, the measurement behind its
defaults; part "sweep160": a few of them at 160^2. An explicit update_every with no
update_max is a fixed interval.
"""
from __future__ import annotations

import argparse
import os
import statistics
import time

import numpy as np

import linsolve
from benchmarks.common import markdown_table, set_threads, thread_count, write_results
from benchmarks.skr import build
from linsolve.recycling.ordering import order_systems

TARGET = 1.5
TOL = 1e-8


def cases(grid: int, count: int, seed: int):
    systems, feats = build("darcy", count, seed=seed + 1, grid=grid, stencil="fv")
    out = [(f"darcy-fv-{grid}", systems, order_systems(feats, "greedy"))]
    A = linsolve.gallery.poisson2d(grid)
    rng = np.random.default_rng(seed + 2)
    pois = [linsolve.LinearSystem(A, rng.standard_normal(A.shape[0])) for _ in range(count)]
    out.append((f"poisson-{grid}", pois, np.arange(count)))
    return out


def run_sequence(make, systems, order):
    """Wall and CPU (this thread's) seconds per solve. Both methods run in the calling
    thread (PETSc and BLAS single-threaded), so CPU time is the same work minus the time
    other processes held the core: on a shared machine it is the steadier measure."""
    s = make()
    times, cpu, its, ok = [], [], [], True
    for i in order:
        c0, t0 = time.thread_time(), time.perf_counter()
        r = s.solve(systems[i])
        times.append(time.perf_counter() - t0)
        cpu.append(time.thread_time() - c0)
        its.append(r.iterations)
        ok &= bool(r.converged)
    return {"times": times, "cpu": cpu, "iterations": its, "converged": ok}


def methods(pc: str, **rcg_opts):
    def cg(warm):
        return lambda: linsolve.make_solver("cg", backend="petsc", pc=pc, rtol=TOL, warm_start=warm, history=False)

    return {"petsc_cg_cold": cg(False), "petsc_cg_warm": cg(True),
            # the strongest library solver for these SPD systems (its own preconditioner, for reference)
            "petsc_gamg_pcg_warm": lambda: linsolve.make_solver("petsc", ksp_type="cg", pc="gamg", rtol=TOL,
                                                                warm_start=True),
            "rcg": lambda: linsolve.make_solver("rcg", backend="petsc", pc=pc, rtol=TOL, warm_start=True,
                                                **rcg_opts),
            "rcg_every": lambda: linsolve.make_solver("rcg", backend="petsc", pc=pc, rtol=TOL, warm_start=True,
                                                      deflation="every"),
            "rcg_k0": lambda: linsolve.make_solver("rcg", backend="petsc", pc=pc, rtol=TOL, warm_start=True,
                                                   recycle=0)}


def compare(ms: dict, systems, order, repeats: int):
    """Every method over the whole sequence, ``repeats`` times, the order of the methods
    rotated each time. Per method: median (over repeats) of the per-system median and
    mean times, median iterations, all converged."""
    names = list(ms)
    for m in names:  # loads compiled kernels and PETSc objects outside the timings
        run_sequence(ms[m], systems, order[:2])
    runs = {m: [] for m in names}
    for rep in range(repeats):
        for m in names[rep % len(names):] + names[:rep % len(names)]:
            runs[m].append(run_sequence(ms[m], systems, order))
    out = {}
    for m, rs in runs.items():
        out[m] = {"med_s": statistics.median(statistics.median(r["times"]) for r in rs),
                  "mean_s": statistics.median(statistics.fmean(r["times"]) for r in rs),
                  "cpu_med_s": statistics.median(statistics.median(r["cpu"]) for r in rs),
                  "cpu_mean_s": statistics.median(statistics.fmean(r["cpu"]) for r in rs),
                  "its": float(statistics.median(rs[0]["iterations"])),
                  "converged": all(r["converged"] for r in rs)}
    return out


def part_main(args, payload, md):
    rows = []
    specs = [(80, args.systems, args.repeats)]
    if args.large:
        specs.append((160, args.large_systems, args.repeats))
    for grid, count, repeats in specs:
        for name, systems, order in cases(grid, count, args.seed):
            for pc in ("jacobi", "icc"):
                s = compare(methods(pc), systems, order, repeats)
                cold, warm, rcg, k0, ev = s["petsc_cg_cold"], s["petsc_cg_warm"], s["rcg"], s["rcg_k0"], s["rcg_every"]
                row = {"case": name, "pc": pc, "n": systems[0].A.shape[0], "systems": count, "repeats": repeats,
                       "cg_cold_med_s": cold["med_s"], "cg_cold_its": cold["its"],
                       "cg_warm_med_s": warm["med_s"], "cg_warm_its": warm["its"],
                       "gamg_pcg_med_s": s["petsc_gamg_pcg_warm"]["med_s"],
                       "gamg_pcg_mean_s": s["petsc_gamg_pcg_warm"]["mean_s"],
                       "gamg_pcg_its": s["petsc_gamg_pcg_warm"]["its"],
                       "speedup_mean_vs_gamg": s["petsc_gamg_pcg_warm"]["mean_s"] / rcg["mean_s"],
                       "rcg_med_s": rcg["med_s"], "rcg_mean_s": rcg["mean_s"], "rcg_its": rcg["its"],
                       "rcg_k0_med_s": k0["med_s"], "rcg_k0_its": k0["its"],
                       "rcg_every_med_s": ev["med_s"], "rcg_every_mean_s": ev["mean_s"], "rcg_every_its": ev["its"],
                       "speedup_vs_cold": cold["med_s"] / rcg["med_s"],
                       "speedup_vs_warm": warm["med_s"] / rcg["med_s"],
                       "speedup_mean_vs_warm": warm["mean_s"] / rcg["mean_s"],
                       "recycling_gain": k0["med_s"] / rcg["med_s"],
                       "every_speedup_vs_warm": warm["med_s"] / ev["med_s"],
                       "cpu_speedup_vs_warm": warm["cpu_med_s"] / rcg["cpu_med_s"],
                       "cpu_speedup_mean_vs_warm": warm["cpu_mean_s"] / rcg["cpu_mean_s"],
                       "all_converged": all(v["converged"] for v in s.values())}
                row[f"met_{TARGET}x_vs_warm"] = row["speedup_vs_warm"] >= TARGET and row["all_converged"]
                rows.append(row)
                print({k: (round(v, 5) if isinstance(v, float) else v) for k, v in row.items()}, flush=True)
    payload["rcg"] = rows
    cols = ["case", "pc", "cg_cold_med_s", "cg_cold_its", "cg_warm_med_s", "gamg_pcg_mean_s", "gamg_pcg_its",
            "rcg_med_s", "rcg_mean_s", "rcg_its",
            "rcg_k0_med_s", "rcg_k0_its", "rcg_every_med_s", "rcg_every_its", "speedup_vs_cold", "speedup_vs_warm",
            "speedup_mean_vs_warm", "recycling_gain", "every_speedup_vs_warm", "cpu_speedup_vs_warm", "cpu_speedup_mean_vs_warm", "speedup_mean_vs_gamg",
            "all_converged",
            f"met_{TARGET}x_vs_warm"]
    md.append("## rcg vs PETSc CG, same preconditioner (seconds per system)\n\n" + markdown_table(rows, cols))


# (deflation, recycle k, store s, update_every u, restart_drop[, further options])
OLD_DEFAULT = {"ritz_keep": 0}  # with u = 8 and no update_max: fixed interval, full Ritz pencil (the comparator)
SWEEP = [("every", 0, 1, 1, 0.05), ("every", 8, 60, 4, 0.05), ("every", 16, 60, 4, 0.05),
         ("restart", 8, 300, 8, 0.05), ("restart", 16, 300, 8, 0.05), ("restart", 24, 300, 8, 0.05),
         ("restart", 16, 60, 8, 0.05), ("restart", 16, 150, 8, 0.05), ("restart", 16, 300, 2, 0.05),
         ("restart", 16, 300, 4, 0.05), ("restart", 16, 300, 16, 0.05), ("restart", 16, 300, 8, 0.001),
         ("restart", 16, 300, 8, 0.01), ("restart", 16, 300, 8, 0.02), ("restart", 16, 300, 8, 0.1),
         ("restart", 16, 300, 8, 0.05, OLD_DEFAULT), ("restart", 16, 300, 8, 0.05, {"update_max": 32}),
         ("restart", 16, 300, 8, 0.05, {"update_max": 64}),
         ("restart", 16, 300, 8, 0.05, {"update_max": 64, "ritz_keep": 0}),
         ("restart", 16, 300, 8, 0.05, {"update_max": 64, "ritz_keep": 16}),
         ("restart", 16, 300, 8, 0.05, {"update_max": 64, "ritz_keep": 48})]
SWEEP160 = [("every", 0, 1, 1, 0.05), ("every", 8, 60, 4, 0.05), ("restart", 16, 150, 8, 0.05),
            ("restart", 16, 300, 4, 0.05), ("restart", 16, 300, 8, 0.05), ("restart", 16, 300, 8, 0.01),
            ("restart", 16, 300, 8, 0.05, OLD_DEFAULT), ("restart", 16, 300, 8, 0.05, {"update_max": 64}),
            ("restart", 16, 300, 8, 0.05, {"update_max": 64, "ritz_keep": 16})]


def _sweep(grid, configs, count, repeats, seed):
    rows = []
    for name, systems, order in cases(grid, count, seed):
        for pc in ("jacobi", "icc"):
            ms = {"petsc_cg_warm": methods(pc)["petsc_cg_warm"]}
            for i, (mode, k, st, u, drop, *more) in enumerate(configs):
                ms[str(i)] = (lambda mode=mode, k=k, st=st, u=u, drop=drop, more=more, pc=pc: linsolve.make_solver(
                    "rcg", backend="petsc", pc=pc, rtol=TOL, warm_start=True, deflation=mode, recycle=k, store=st,
                    update_every=u, restart_drop=drop, **(more[0] if more else {})))
            s = compare(ms, systems, order, repeats)
            warm = s.pop("petsc_cg_warm")
            for key, v in s.items():
                mode, k, st, u, drop, *more = configs[int(key)]
                opts = ms[key]().opts
                restart = mode == "restart" and k
                rows.append({"case": name, "pc": pc, "deflation": mode if k else "none", "recycle": k, "store": st,
                             "update_every": u, "update_max": opts["update_max"],
                             "ritz_keep": opts["ritz_keep"] if restart else None,
                             "restart_drop": drop if restart else None,
                             "med_s": v["med_s"], "mean_s": v["mean_s"], "its": v["its"],
                             "speedup_vs_warm": warm["med_s"] / v["med_s"],
                             "speedup_mean_vs_warm": warm["mean_s"] / v["mean_s"],
                             "cpu_speedup_vs_warm": warm["cpu_med_s"] / v["cpu_med_s"], "converged": v["converged"]})
            print(name, pc, "done", flush=True)
    return rows


def part_sweep(args, payload, md):
    payload["sweep"] = rows = _sweep(80, SWEEP, args.sweep_systems, args.sweep_repeats, args.seed)
    md.append("## Sweep of rcg's options (80^2, warm PETSc CG as the reference)\n\n" + markdown_table(rows))


def part_sweep160(args, payload, md):
    payload["sweep160"] = rows = _sweep(160, SWEEP160, args.large_systems, 1, args.seed)
    md.append("## Sweep of rcg's options at 160^2 (one repeat)\n\n" + markdown_table(rows))


def explain(payload) -> list[str]:
    notes = []
    rows = payload.get("rcg") or []
    if rows:
        cls = linsolve.solver_class("rcg")
        d, de = cls.mode_defaults["restart"], cls.mode_defaults["every"]
        drop = cls.options["restart_drop"]
        met = [r for r in rows if r[f"met_{TARGET}x_vs_warm"]]
        notes.append(f"Target {TARGET}x vs warm PETSc CG (wall time, median per system): met in {len(met)} of "
                     f"{len(rows)} rows; " + "; ".join(
                         f"{r['case']}/{r['pc']} {r['speedup_vs_warm']:.2f}x (mean {r['speedup_mean_vs_warm']:.2f}x; "
                         f"CPU time {r['cpu_speedup_vs_warm']:.2f}x, mean {r['cpu_speedup_mean_vs_warm']:.2f}x; "
                         f"iterations {r['cg_warm_its']:.0f} -> {r['rcg_its']:.0f})" for r in rows) + ".")
        notes.append("Same preconditioner: rcg with recycle=0 (our compiled PCG with our IC(0)) takes "
                     + ", ".join(f"{r['rcg_k0_its']:.0f} vs PETSc's {r['cg_warm_its']:.0f}"
                                 for r in rows if r["pc"] == "icc")
                     + " iterations (warm, ICC rows); the factor matches PCICC's to rounding.")
        notes.append("Where the speed comes from: the compiled kernel alone (recycle=0) is "
                     + ", ".join(f"{r['cg_warm_med_s'] / r['rcg_k0_med_s']:.2f}x" for r in rows)
                     + " PETSc CG per solve (one compiled loop, the product by diagonals for these stencil "
                     f"matrices, vector updates fused into the IC(0) substitutions); recycling (rcg's defaults: "
                     f"deflation='restart', k = {d['recycle']}, store = {d['store']}, update_every = "
                     f"{d['update_every']}, update_max = {d['update_max']}, ritz_keep = 2k, restart_drop = {drop:g}) "
                     "then gives "
                     + ", ".join(f"{r['recycling_gain']:.2f}x" for r in rows) + " on top.")
        notes.append("The restart mode (init-CG with deflated restarts) cuts iterations by "
                     + ", ".join(f"{r['rcg_k0_its'] / max(r['rcg_its'], 1):.2f}x" for r in rows)
                     + " against plain PCG and multiplies the time per iteration (median time / median "
                     "iterations, per-solve work included) by "
                     + ", ".join(f"{(r['rcg_med_s'] / max(r['rcg_its'], 1)) / (r['rcg_k0_med_s'] / max(r['rcg_k0_its'], 1)):.2f}x"
                                 for r in rows)
                     + ". The iteration itself is plain PCG; what a solve adds is A W and W^T A W for a new "
                     "matrix (k products: every darcy system, hence its larger factors), and per restart one "
                     "product, a preconditioner application and the Galerkin correction (GEMVs over the "
                     "k x n blocks W and A W). An updating solve "
                     "(every 2nd while an update still moves the Ritz values by 25% or more, then every "
                     f"{d['update_every']}th, the interval doubling up to {d['update_max']}) also restarts only once "
                     "it has stored "
                     f"{d['store']} directions (or not at all, when it converges first) and pays the Ritz step "
                     f"(over W and the run's 2k = {2 * d['recycle']} lowest Lanczos vectors); the median skips "
                     "those solves, the mean (given beside it) carries them.")
        notes.append(f"The deflating mode (deflation='every', k = {de['recycle']}, store = {de['store']}, "
                     f"update_every = {de['update_every']}) gives "
                     + ", ".join(f"{r['every_speedup_vs_warm']:.2f}x" for r in rows)
                     + " vs warm PETSc CG: it cuts iterations by "
                     + ", ".join(f"{r['rcg_k0_its'] / max(r['rcg_every_its'], 1):.2f}x" for r in rows)
                     + " but multiplies the time per iteration by "
                     + ", ".join(f"{(r['rcg_every_med_s'] / max(r['rcg_every_its'], 1)) / (r['rcg_k0_med_s'] / max(r['rcg_k0_its'], 1)):.2f}x"
                                 for r in rows)
                     + ", as it reads the k x n block A W twice per iteration (2k multiply-adds per unknown, "
                     "memory-bound GEMVs), which against a Jacobi iteration (one 5-point product and a few "
                     "vector updates) costs relatively twice as much as against an IC(0) one.")
        notes.append("Wall-time ratios moved by up to 0.4 between full runs of this benchmark on a machine shared "
                     "with other jobs; the CPU-time ratios (this thread's time, excluding time other processes "
                     "held the core) are steadier and are given beside them.")
    load = payload.get("loadavg")
    if load:
        # the load at the end includes this run's own process (about 1): other jobs show before it
        notes.append(f"Machine load (1-minute average) {load[0]:.1f} before the run and {load[-1]:.1f} at its end "
                     "(this run's own process adds about 1)" + (": other jobs were running, so the ratios are "
                     "indicative." if load[0] > 0.5 else ": a quiet machine."))
    return notes


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--parts", default="main,sweep,sweep160")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=thread_count, default=1, help="threads of every competitor (BLAS, numba); recorded")
    args = ap.parse_args(argv)
    threads = set_threads(args.threads)
    if args.quick:
        args.systems, args.repeats, args.large, args.large_systems = 20, 1, False, 0
        args.sweep_systems, args.sweep_repeats = 15, 1
    else:
        args.systems, args.repeats, args.large, args.large_systems = 100, 3, True, 30
        args.sweep_systems, args.sweep_repeats = 40, 2
    payload = {"config": {k: v for k, v in vars(args).items()}, "tol": TOL, "target": TARGET,
               "threads": threads, "loadavg": [os.getloadavg()[0]]}
    md: list[str] = []  # (the thread counts head the file: write_results reads them back)
    parts = args.parts.split(",")
    if "main" in parts:
        part_main(args, payload, md)
    if "sweep" in parts:
        part_sweep(args, payload, md)
    if "sweep160" in parts and args.large:
        part_sweep160(args, payload, md)
    payload["loadavg"].append(os.getloadavg()[0])
    payload["notes"] = explain(payload)
    md.append("## Notes\n\n" + "\n".join(f"- {n}" for n in payload["notes"]) + "\n")
    name = "skr_rcg_quick" if args.quick else "skr_rcg"
    write_results(name, payload, "\n".join(md))


if __name__ == "__main__":
    main()
