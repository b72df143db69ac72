"""SKR at small sizes and recycled CG with Jacobi, against the strongest PETSc baselines
(issue #17), every competitor on one thread (``--threads``, ``benchmarks.common.set_threads``).

    python -m benchmarks.skr_small                  # 40 systems, 5 repeats
    python -m benchmarks.skr_small --repeats 1      # a check that it runs (minutes)
    python -m benchmarks.skr_small --parts gcrodr   # one part (gcrodr, periter, rcg)

Part "gcrodr": the greedy-sorted sequence of 40 SKR-paper darcy systems (``stencil="skr"``)
on 62^2 and 128^2 interior grids, Jacobi, tol 1e-8. PETSc GMRES(40) from zero and from
the previous solution (``make_solver("gmres", backend="petsc")``) against ``gcrodr`` with its
defaults (GCRO-DR(40, 20); deflated restarting every cycle until the harmonic Ritz values
settle, then at intervals growing to 8 cycles, and after the last cycle of each solve; the
whole Arnoldi cycle compiled) and with ``update_every=1`` (every cycle, Parks et al.'s
schedule). Targets: >= 1.5x the faster PETSc run at 62^2, >= 3x at 128^2, in total time.

Part "periter": seconds per iteration of GCRO-DR(40, 20) against PETSc GMRES(40) at n =
64^2, 128^2 and 256^2 (4k, 16k, 64k unknowns), Jacobi: GCRO-DR solves the first ``LEARN``
systems of a sorted darcy sequence (untimed: its recycled space and update schedule as in a
sequence), then every solver the next system (tol 1e-8), timed: CPU seconds over iterations,
every per-solve cost included; plus GMRES(40) in our code (``recycle=0``).

Part "rcg": the greedy-sorted sequence of 40 symmetric darcy systems (``stencil="fv"``,
128^2, tol 1e-8), Jacobi: PETSc CG cold and warm against ``rcg`` (defaults: init-CG with
deflated restarts; the total includes the solves that refresh the recycled space) and
``rcg`` with ``recycle=0`` (its compiled PCG alone); PETSc GAMG-PCG (``ksp_type=cg``,
``pc_type=gamg``, warm) as the strongest library baseline for SPD systems. Target: rcg
>= 1.5x warm PETSc CG with the same preconditioner, in total time.

Every sequence part runs the methods side by side in one process, each through the whole
sequence in turn (``--interleave system``: one system at a time in turn), the order of the
methods rotated each repeat; the totals are medians over the repeats of the sum over the
sequence of wall seconds, and of this thread's CPU seconds (the steadier measure when other
processes share the cores).
"""
from __future__ import annotations

import argparse
import os
import statistics
import time

import linsolve
from benchmarks.common import markdown_table, set_threads, thread_count, write_results
from benchmarks.skr import build
from linsolve.recycling.ordering import order_systems

TOL = 1e-8
GCRODR_TARGET = {62: 1.5, 128: 3.0}
RCG_TARGET = 1.5
LEARN = 4  # systems GCRO-DR solves (untimed) before the per-iteration measurement


def _seq(make, systems, order):
    """One method's pass through the ordered systems, one system per ``next()``; returns the
    per-system wall and CPU seconds and iterations."""
    s = make()
    rec = {"wall": [], "cpu": [], "iterations": [], "converged": True}
    for i in order:
        c0, t0 = time.thread_time(), time.perf_counter()
        r = s.solve(systems[i])
        rec["wall"].append(time.perf_counter() - t0)
        rec["cpu"].append(time.thread_time() - c0)
        rec["iterations"].append(int(r.iterations))
        rec["converged"] &= bool(r.converged)
        yield
    return rec


def interleaved(makers: dict, systems, order, repeats: int, by: str = "pass") -> dict:
    """Every method through the sequence ``repeats`` times, the order of the methods rotated
    each repeat, after a warm-up of two systems each (compiled kernels and PETSc objects load
    outside the timings). ``by="pass"``: each method solves the whole sequence in its turn, as
    a user's data generation runs one solver; ``by="system"``: the methods advance one system
    at a time in turn (load changes hit all alike, but every solve then starts with the other
    methods' data in the caches: 2 MB of bases and recycled space for GCRO-DR at 62^2). Per
    method: median over repeats of the total wall and CPU seconds, the iterations, all
    converged."""
    names = list(makers)
    for name in names:
        for _ in _seq(makers[name], systems, order[:2]):
            pass
    runs = {name: [] for name in names}
    for rep in range(repeats):
        turn = names[rep % len(names):] + names[:rep % len(names)]
        groups = [turn] if by == "system" else [[name] for name in turn]
        for group in groups:
            active = {name: _seq(makers[name], systems, order) for name in group}
            while active:
                for name in list(active):
                    try:
                        next(active[name])
                    except StopIteration as stop:
                        runs[name].append(stop.value)
                        del active[name]
    out = {}
    for name, rs in runs.items():
        out[name] = {"total_wall_s": statistics.median(sum(r["wall"]) for r in rs),
                     "total_cpu_s": statistics.median(sum(r["cpu"]) for r in rs),
                     "iterations": int(sum(rs[0]["iterations"])),
                     "per_system_iterations": rs[0]["iterations"],
                     "per_system_cpu_s": [statistics.median(v) for v in zip(*(r["cpu"] for r in rs), strict=True)],
                     "converged": all(r["converged"] for r in rs)}
        out[name]["us_per_iteration"] = 1e6 * out[name]["total_cpu_s"] / max(out[name]["iterations"], 1)
    return out


def part_gcrodr(args, payload, md):
    rows = []
    for grid in args.grids:
        systems, feats = build("darcy", args.systems, seed=args.seed, grid=grid, stencil="skr")
        order = order_systems(feats, "greedy")

        def gmres(warm):
            return lambda: linsolve.make_solver("gmres", backend="petsc", pc="jacobi", restart=40, rtol=TOL,
                                                warm_start=warm, history=False)

        def ours(**o):
            return lambda: linsolve.make_solver("gcrodr", pc="jacobi", rtol=TOL, warm_start=True, **o)

        makers = {"petsc_gmres40_cold": gmres(False), "petsc_gmres40_warm": gmres(True),
                  "gcrodr": ours(), "gcrodr_update_every1": ours(update_every=1)}
        res = interleaved(makers, systems, order, args.repeats, args.interleave)
        payload.setdefault("gcrodr_detail", {})[str(grid)] = res
        best = min(("petsc_gmres40_cold", "petsc_gmres40_warm"), key=lambda m: res[m]["total_cpu_s"])
        for name in ("gcrodr", "gcrodr_update_every1"):
            r = res[name]
            row = {"grid": f"{grid}^2", "n": grid * grid, "method": name, "iterations": r["iterations"],
                   "total_cpu_s": r["total_cpu_s"], "total_wall_s": r["total_wall_s"],
                   "petsc_cold_cpu_s": res["petsc_gmres40_cold"]["total_cpu_s"],
                   "petsc_warm_cpu_s": res["petsc_gmres40_warm"]["total_cpu_s"],
                   "petsc_best": best.replace("petsc_gmres40_", ""),
                   "petsc_best_iterations": res[best]["iterations"],
                   "speedup_cpu": res[best]["total_cpu_s"] / r["total_cpu_s"],
                   "speedup_wall": res[best]["total_wall_s"] / r["total_wall_s"],
                   "iteration_ratio": res[best]["iterations"] / max(r["iterations"], 1),
                   "per_iteration_vs_petsc": r["us_per_iteration"] / res[best]["us_per_iteration"],
                   "target": GCRODR_TARGET.get(grid), "converged": r["converged"] and res[best]["converged"]}
            row["met"] = row["target"] is not None and row["speedup_cpu"] >= row["target"] and row["converged"]
            rows.append(row)
            print({k: (round(v, 4) if isinstance(v, float) else v) for k, v in row.items()}, flush=True)
    payload["gcrodr"] = rows
    md.append("## GCRO-DR vs PETSc GMRES(40), 40 greedy-sorted darcy (skr) systems, Jacobi, tol 1e-8\n\n"
              "Totals over the sequence (median over repeats); speed-ups against the faster of PETSc's cold "
              "and warm runs (`petsc_best`); `per_iteration_vs_petsc`: CPU seconds per iteration, every "
              "per-solve cost included, over PETSc's.\n\n" + markdown_table(rows))


def part_periter(args, payload, md):
    rows = []
    for grid in args.periter_grids:
        systems, feats = build("darcy", LEARN + 1, seed=args.seed, grid=grid, stencil="skr")
        seq = [systems[i] for i in order_systems(feats, "greedy")]
        makers = {
            "petsc_gmres40": lambda: linsolve.make_solver("gmres", backend="petsc", pc="jacobi", restart=40,
                                                          rtol=TOL, history=False),
            "gcrodr": lambda: linsolve.make_solver("gcrodr", pc="jacobi", rtol=TOL),
            "gcrodr_update_every1": lambda: linsolve.make_solver("gcrodr", pc="jacobi", rtol=TOL, update_every=1),
            "gmres40_ours": lambda: linsolve.make_solver("gcrodr", pc="jacobi", recycle=0, rtol=TOL),
        }
        learners = {"gcrodr", "gcrodr_update_every1"}
        times = {k: [] for k in makers}
        iters = {}
        for rep in range(args.periter_rounds + 1):  # (round 0: warm-up, untimed)
            for name in list(makers)[rep % len(makers):] + list(makers)[:rep % len(makers)]:
                s = makers[name]()
                for sysm in seq[:LEARN] if name in learners else ():
                    s.solve(sysm)  # untimed: the recycled space learnt over the sequence so far
                c0 = time.thread_time()
                r = s.solve(seq[LEARN])
                if rep == 0:
                    continue
                times[name].append(time.thread_time() - c0)
                iters[name] = int(r.iterations)
        base = statistics.median(times["petsc_gmres40"]) / iters["petsc_gmres40"]
        for name in makers:
            per = statistics.median(times[name]) / iters[name]
            rows.append({"n": grid * grid, "grid": f"{grid}^2", "method": name, "iterations": iters[name],
                         "us_per_iteration": 1e6 * per, "vs_petsc": per / base})
        print(rows[-4:], flush=True)
    payload["periter"] = rows
    md.append(f"## Cost per iteration against PETSc GMRES(40): system {LEARN + 1} of a sorted darcy (skr) sequence, "
              "Jacobi, tol 1e-8 (GCRO-DR's recycled space learnt over the systems before it; its refit "
              "and the solve's updates included; CPU seconds over iterations, median of "
              f"{args.periter_rounds} interleaved rounds)\n\n"
              + markdown_table(rows))


def part_rcg(args, payload, md):
    grid = args.rcg_grid
    systems, feats = build("darcy", args.systems, seed=args.seed + 1, grid=grid, stencil="fv")
    order = order_systems(feats, "greedy")

    def cg(warm):
        return lambda: linsolve.make_solver("cg", backend="petsc", pc="jacobi", rtol=TOL, warm_start=warm,
                                            history=False)

    makers = {"petsc_cg_cold": cg(False), "petsc_cg_warm": cg(True),
              "petsc_gamg_pcg_warm": lambda: linsolve.make_solver("petsc", ksp_type="cg", pc="gamg", rtol=TOL,
                                                                  warm_start=True),
              "rcg": lambda: linsolve.make_solver("rcg", pc="jacobi", rtol=TOL, warm_start=True),
              "rcg_recycle0": lambda: linsolve.make_solver("rcg", pc="jacobi", rtol=TOL, warm_start=True,
                                                           recycle=0)}
    res = interleaved(makers, systems, order, args.repeats, args.interleave)
    payload["rcg_detail"] = res
    warm = res["petsc_cg_warm"]
    rows = []
    for name, r in res.items():
        rows.append({"method": name, "iterations": r["iterations"], "total_cpu_s": r["total_cpu_s"],
                     "total_wall_s": r["total_wall_s"], "us_per_iteration": r["us_per_iteration"],
                     "speedup_vs_warm_cg_cpu": warm["total_cpu_s"] / r["total_cpu_s"],
                     "speedup_vs_warm_cg_wall": warm["total_wall_s"] / r["total_wall_s"],
                     "converged": r["converged"]})
    rc = next(r for r in rows if r["method"] == "rcg")
    payload["rcg"] = {"grid": grid, "systems": args.systems, "rows": rows, "target": RCG_TARGET,
                      "met": rc["speedup_vs_warm_cg_cpu"] >= RCG_TARGET and rc["converged"]}
    ups = [i for i, its in enumerate(res["rcg"]["per_system_iterations"])
           if its > 1.3 * statistics.median(res["rcg"]["per_system_iterations"])]
    payload["rcg"]["long_solves"] = ups
    print(rows, flush=True)
    md.append(f"## rcg vs PETSc CG, 40 greedy-sorted darcy (fv) systems at {grid}^2, Jacobi, tol 1e-8\n\n"
              "Totals over the sequence (median over repeats), the solves that refresh the recycled space "
              "included; speed-ups over warm PETSc CG with the same preconditioner. PETSc GAMG-PCG is the "
              "strongest library solver for these systems (another preconditioner: for reference).\n\n"
              + markdown_table(rows)
              + f"\nrcg's solves that took over 1.3x its median iterations (those that refresh the recycled "
              f"space): {ups}.\n")


def explain(payload) -> list[str]:
    notes = []
    for r in payload.get("gcrodr", []):
        if r["method"] != "gcrodr":
            continue
        notes.append(f"GCRO-DR at {r['grid']} (n = {r['n']}): {r['speedup_cpu']:.2f}x the faster PETSc GMRES(40) "
                     f"run ({r['petsc_best']}) in CPU time, {r['speedup_wall']:.2f}x in wall time"
                     + (f" (target {r['target']}x: {'met' if r['met'] else 'missed'})" if r["target"] else "")
                     + f"; {r['iteration_ratio']:.1f}x fewer "
                     f"iterations at {r['per_iteration_vs_petsc']:.2f}x PETSc's cost per iteration.")
    per = payload.get("periter", [])
    if per:
        notes.append(f"Per iteration against PETSc GMRES(40) (system {LEARN + 1} of a sorted sequence): " + "; ".join(
            f"n = {r['n']}: {r['method']} {r['vs_petsc']:.2f}x" for r in per if r["method"] != "petsc_gmres40")
            + ".")
    rc = payload.get("rcg")
    if rc:
        r = {x["method"]: x for x in rc["rows"]}
        notes.append(f"rcg at {rc['grid']}^2: {r['rcg']['speedup_vs_warm_cg_cpu']:.2f}x warm PETSc CG in total CPU "
                     f"time, {r['rcg']['speedup_vs_warm_cg_wall']:.2f}x in wall time (target {rc['target']}x: "
                     f"{'met' if rc['met'] else 'missed'}); its compiled PCG alone (recycle=0) "
                     f"{r['rcg_recycle0']['speedup_vs_warm_cg_cpu']:.2f}x; PETSc GAMG-PCG "
                     f"{r['petsc_gamg_pcg_warm']['speedup_vs_warm_cg_cpu']:.2f}x.")
    load = payload.get("loadavg")
    if load:
        # the load at the end includes this run's own process (about 1 on its own core): other jobs
        # show in the load before it started
        notes.append(f"Machine load (1-minute average) {load[0]:.1f} before the run and {load[-1]:.1f} at its end "
                     "(this run's own process adds about 1)"
                     + (": the machine was loaded by other jobs, so the ratios are indicative; rerun on a quiet "
                        "machine for the record." if load[0] > 0.5 else ": a quiet machine."))
    return notes


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--parts", default="gcrodr,periter,rcg")
    ap.add_argument("--systems", type=int, default=40)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--grids", default="62,128")
    ap.add_argument("--periter-grids", default="64,128,256")
    ap.add_argument("--periter-rounds", type=int, default=5)
    ap.add_argument("--rcg-grid", type=int, default=128)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--interleave", choices=["pass", "system"], default="pass",
                    help="methods take turns by whole passes through the sequence (default) or by system")
    ap.add_argument("--name", default="skr_small")
    ap.add_argument("--threads", type=thread_count, default=1, help="threads of every competitor (BLAS, numba); recorded")
    args = ap.parse_args(argv)
    threads = set_threads(args.threads)
    args.grids = [int(g) for g in args.grids.split(",")]
    args.periter_grids = [int(g) for g in args.periter_grids.split(",")]
    parts = args.parts.split(",")
    info = threads
    payload = {"parts": parts, "systems": args.systems, "repeats": args.repeats, "seed": args.seed,
               "interleave": args.interleave,
               "threads": info, "loadavg": [os.getloadavg()[0]]}
    md = [f"# SKR at small sizes, recycled CG with Jacobi ({args.systems} systems, {args.repeats} repeats, "
          f"methods interleaved by {args.interleave})\n"]
    if "gcrodr" in parts:
        part_gcrodr(args, payload, md)
    if "periter" in parts:
        part_periter(args, payload, md)
    if "rcg" in parts:
        part_rcg(args, payload, md)
    payload["loadavg"].append(os.getloadavg()[0])
    payload["notes"] = explain(payload)
    md.append("## Notes\n\n" + "\n\n".join(f"- {n}" for n in payload["notes"]) + "\n")
    jpath, mpath = write_results(args.name, payload, "\n".join(md))
    print(f"wrote {jpath} and {mpath}")


if __name__ == "__main__":
    main()
