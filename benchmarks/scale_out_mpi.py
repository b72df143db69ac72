"""The SKR sequence under MPI: GCRO-DR(40, 20) against PETSc GMRES(40) at 1 and 2 processes,
and a model projecting both to the 72 processes of the SKR paper's runs.

    python -m benchmarks.scale_out_mpi                    # 100 systems, bjacobi and asm, 1 and 2 processes
    python -m benchmarks.scale_out_mpi --systems 8 --pcs bjacobi    # a short check

The driver starts ``mpiexec -n P python -m benchmarks.scale_out_mpi --worker ...`` for each P
(MPICH's Hydra, as tests/linsolve/petsc_support/test_mpi.py) and writes ``benchmarks/results/scale_out_mpi.{json,md}``.
Every process runs ``--threads`` threads (default 1; ``benchmarks.common.set_threads``): one
thread per MPI process, for both methods; the results record rank 0's counts.

Systems: the darcy sequence of ``benchmarks/skr.py``'s Table 1 (80^2 grid, n = 6400, tol 1e-8;
``--stencil published``: the paper's published generator, as ``benchmarks/skr_paper.py``),
greedy order, built identically on every process
and distributed with PETSc's row split. Methods, one system at a time in turn: PETSc GMRES(40)
from zero (the paper's baseline) and our GCRO-DR(40, 20) warm-started (SKR), both with
``backend="petsc"`` and the same PETSc PC. PCs as the paper's ``mpirun -n 72`` runs: bjacobi
and asm (overlap 1) with 72 blocks / subdomains and ILU(0) on each, at every process count,
so the preconditioner, and with it the iteration counts, do not depend on P. A solve's time
is the slowest process's.

Global reductions are counted, not assumed, from PETSc's event log for both methods: the
calls of the Vec operations that reduce (VecMDot, VecNorm, VecDot, ...; ours go through
VecMDot/VecDot as well, and ``linsolve.petsc_support.parallel.Layout`` counts them too, recorded as a
check). Both are counted at P = 2.

Model (stated in the Markdown): a solve at P processes takes
T(P) = F + (T1 - F)/P + R * ceil(log2 P) * a + H * h, with T1 the measured one-process time,
F = its * f the per-iteration work that does not shrink with P (interpreter and library call
overhead, f measured on a 16^2 system where the arithmetic is negligible), R the measured
reductions per solve, a the latency of one stage of a tree Allreduce, H the halo exchanges
(one per MatMult, two per ASM application: restriction and prolongation) and h the latency of
one neighbour exchange. Constants: ``LATENCY``.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

from benchmarks.common import thread_count

#: assumed interconnect (an InfiniBand cluster like the paper's): one stage of a tree
#: Allreduce of a few doubles, one neighbour (halo) message of a grid row
LATENCY = {"allreduce_stage_s": 2.0e-6, "halo_s": 2.5e-6}
PAPER_RANKS = 72
PCS = {
    "bjacobi": ("bjacobi", {"bjacobi_blocks": 72, "sub_pc_type": "ilu"}),
    "asm": ("asm", {"asm_blocks": 72, "asm_overlap": 1, "sub_pc_type": "ilu"}),
}
TOL = 1e-8
#: darcy's stencil: the intended one of skr.py's Table 1 ("skr"), or the published generator's of
#: skr_paper.py, which the paper's runs used (harder: GMRES(40) reaches MAXITER on some systems)
STENCILS = {"intended": "skr", "published": "skr_published"}
RESTART, RECYCLE = 40, 20
MAXITER = 10_000


# --- worker (one per mpiexec) ------------------------------------------------------------
def _distribute(PETSc, comm, A):
    n = A.shape[0]
    size, rank = comm.getSize(), comm.getRank()
    nl = n // size + (1 if rank < n % size else 0)
    start = sum(n // size + (1 if r < n % size else 0) for r in range(rank))
    loc = A[start:start + nl].tocsr()
    loc.sort_indices()
    it = PETSc.IntType
    M = PETSc.Mat().createAIJ(size=((nl, n), (nl, n)), csr=(loc.indptr.astype(it), loc.indices.astype(it),
                                                           loc.data), comm=comm)
    M.assemble()
    return M, (start, start + nl)


#: PETSc's Vec operations that make one global reduction each on a distributed Vec
#: (VecNormalize logs the VecNorm it calls, so it is not listed)
REDUCTION_EVENTS = ("VecMDot", "VecNorm", "VecDot", "VecTDot", "VecMTDot", "VecDotNorm2", "VecReduceComm",
                    "VecMax", "VecMin")


def _reductions(PETSc) -> int:
    """Calls so far of the PETSc events in REDUCTION_EVENTS on this process (PETSc's log)."""
    total = 0
    for name in REDUCTION_EVENTS:
        try:
            total += int(PETSc.Log.Event(name).getPerfInfo()["count"])
        except Exception:  # noqa: BLE001 - an event this PETSc does not log
            pass
    return total


def worker(args):
    import linsolve
    from benchmarks.common import set_threads, thread_counts
    from benchmarks.skr import build
    from linsolve.petsc_support.utils import petsc
    from linsolve.recycling.ordering import order_systems

    set_threads(args.threads)
    PETSc = petsc()
    PETSc.Log.begin()
    from linsolve.petsc_support.parallel import Layout

    comm = PETSc.COMM_WORLD
    world = Layout(0, 0, comm)  # the slowest process's time
    size, rank = comm.getSize(), comm.getRank()
    params = {"stencil": STENCILS[args.stencil]}
    systems, feats = build("darcy", args.systems, seed=args.seed, **params)
    order = order_systems(feats, "greedy")
    dist = []
    for i in order:
        A, b = systems[i].A, systems[i].b
        M, (s, e) = _distribute(PETSc, comm, A)
        bv = M.createVecLeft()
        bv.getArray()[:] = b[s:e]
        dist.append((M, bv))
    out = {"processes": size, "n": int(systems[0].A.shape[0]), "systems": len(dist), "rows": [],
           "thread_counts": thread_counts()}
    for label in args.pcs:
        pc, opts = PCS[label]
        common = dict(backend="petsc", pc=pc, pc_options=opts, rtol=TOL, maxiter=MAXITER)
        gm = linsolve.make_solver("gmres", restart=RESTART, history=False, **common)
        gc = linsolve.make_solver("gcrodr", restart=RESTART, recycle=RECYCLE, warm_start=True, **common)
        rec = {k: {"times": [], "iterations": [], "reductions": [], "converged": []} for k in ("gmres", "gcrodr")}
        for M, bv in dist:
            for key, solver in (("gmres", gm), ("gcrodr", gc)):
                before = _reductions(PETSc)
                comm.barrier()
                t0 = time.perf_counter()
                r = solver.solve(M, bv)
                dt = time.perf_counter() - t0
                red = _reductions(PETSc) - before  # (ours go through VecMDot/VecDot too)
                if key == "gcrodr" and size > 1:
                    rec[key].setdefault("own_count", []).append(r.info.get("global_reductions"))
                rec[key]["times"].append(world.max(dt))
                rec[key]["iterations"].append(int(r.iterations))
                rec[key]["reductions"].append(float(red))
                rec[key]["converged"].append(bool(r.converged))
        # per-iteration overhead that does not shrink with P: the same solvers on a 16^2 system
        small = build("darcy", 1, seed=args.seed + 1, grid=16, **params)[0][0]
        Ms, (s, e) = _distribute(PETSc, PETSc.COMM_SELF, small.A)
        bs = Ms.createVecLeft()
        bs.getArray()[:] = small.b
        fixed = {}
        small_opts = {"gmres": dict(restart=RESTART, history=False),
                      "gcrodr": dict(restart=RESTART, recycle=RECYCLE)}
        for key, extra in small_opts.items():
            ts = []
            for _ in range(5):
                s_ = linsolve.make_solver(key, backend="petsc", pc=pc, rtol=1e-30, maxiter=400, **extra)
                t0 = time.perf_counter()
                r = s_.solve(Ms, bs)
                ts.append((time.perf_counter() - t0) / max(r.iterations, 1))
            fixed[key] = statistics.median(ts)
        row = {"pc": label}
        for key in ("gmres", "gcrodr"):
            v = rec[key]
            row[key] = {"median_s": statistics.median(v["times"]), "total_s": float(sum(v["times"])),
                        "median_its": statistics.median(v["iterations"]), "total_its": int(sum(v["iterations"])),
                        "reductions_per_solve": statistics.median(v["reductions"]),
                        "reductions_per_iteration": float(sum(v["reductions"]) / max(sum(v["iterations"]), 1)),
                        "all_converged": all(v["converged"]), "fixed_s_per_iteration": fixed[key],
                        "own_count_per_solve": (statistics.median(v["own_count"]) if v.get("own_count") else None),
                        "times": [round(t, 6) for t in v["times"]], "iterations": v["iterations"]}
        out["rows"].append(row)
    if rank == 0:
        with open(args.out, "w") as f:
            json.dump(out, f)


# --- driver --------------------------------------------------------------------------------
def mpiexec() -> str:
    exe = os.environ.get("LINSOLVE_MPIEXEC") or shutil.which("mpiexec.mpich") or shutil.which("mpiexec")
    if not exe:
        raise SystemExit("scale_out_mpi: mpiexec (MPICH) not found; `make setup` installs it")
    return exe


def run_worker(P, args) -> dict:
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "out.json")
        cmd = [mpiexec(), "-n", str(P), sys.executable, "-m", "benchmarks.scale_out_mpi", "--worker",
               "--systems", str(args.systems), "--seed", str(args.seed), "--stencil", args.stencil, "--out", path,
               "--threads", str(args.threads), "--pcs", *args.pcs]
        print(" ".join(cmd), flush=True)
        env = {**os.environ, **{v: str(args.threads) for v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS",
                                                               "MKL_NUM_THREADS")}}
        proc = subprocess.run(cmd, env=env, text=True, capture_output=True)
        if proc.returncode != 0:
            raise SystemExit(f"worker at {P} processes failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
        with open(path) as f:
            return json.load(f)


def project(T1, its, fixed_per_it, reductions, halos, P):
    """The model of the module docstring: seconds per solve at P processes."""
    F = min(its * fixed_per_it, T1)
    stages = math.ceil(math.log2(P)) if P > 1 else 0
    return F + (T1 - F) / P + reductions * stages * LATENCY["allreduce_stage_s"] + halos * LATENCY["halo_s"]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--systems", type=int, default=100)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--pcs", nargs="+", default=list(PCS), choices=list(PCS))
    ap.add_argument("--ranks", nargs="+", type=int, default=[1, 2])
    ap.add_argument("--stencil", choices=list(STENCILS), default="intended")
    ap.add_argument("--note", default="", help="a line on the conditions of the run, put in the Markdown")
    ap.add_argument("--threads", type=thread_count, default=1, help="threads per MPI process (BLAS, numba; PETSc serial)")
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--out", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:
        return worker(args)
    from benchmarks.common import markdown_table, write_results

    runs = {P: run_worker(P, args) for P in args.ranks}
    Pmax = max(args.ranks)
    rows, model_rows = [], []
    for label in args.pcs:
        per = {P: next(r for r in runs[P]["rows"] if r["pc"] == label) for P in args.ranks}
        for P in args.ranks:
            g, c = per[P]["gmres"], per[P]["gcrodr"]
            rows.append({"pc": label, "processes": P, "gmres40_median_s": g["median_s"], "gmres40_its": g["median_its"],
                         "gcrodr_median_s": c["median_s"], "gcrodr_its": c["median_its"],
                         "speedup": g["median_s"] / c["median_s"],
                         "gmres40_reductions_per_it": g["reductions_per_iteration"] if P > 1 else None,
                         "gcrodr_reductions_per_it": c["reductions_per_iteration"] if P > 1 else None,
                         "all_converged": g["all_converged"] and c["all_converged"]})
        if 1 in per and Pmax > 1:
            proj = {}
            for key in ("gmres", "gcrodr"):
                one, many = per[1][key], per[Pmax][key]
                proj[key + "_allreduce"] = {}
                its = one["median_its"]
                red = many["reductions_per_iteration"] * its
                halos = its * (3 if label == "asm" else 1)  # MatMult, plus the ASM scatter pair
                proj[key] = {P: project(one["median_s"], its, one["fixed_s_per_iteration"], red, halos, P)
                             for P in (1, Pmax, PAPER_RANKS)}
                proj[key]["reductions_per_solve"] = red
                proj[key + "_allreduce"] = {P: red * math.ceil(math.log2(P)) * LATENCY["allreduce_stage_s"]
                                            for P in (Pmax, PAPER_RANKS)}
            for P in (Pmax, PAPER_RANKS):
                model_rows.append({"pc": label, "processes": P,
                                   "gmres40_s": proj["gmres"][P], "gcrodr_s": proj["gcrodr"][P],
                                   "speedup": proj["gmres"][P] / proj["gcrodr"][P],
                                   "gmres40_reductions_per_solve": proj["gmres"]["reductions_per_solve"],
                                   "gcrodr_reductions_per_solve": proj["gcrodr"]["reductions_per_solve"],
                                   "gmres40_allreduce_s": proj["gmres_allreduce"][P],
                                   "gcrodr_allreduce_s": proj["gcrodr_allreduce"][P],
                                   "gcrodr_fixed_s": min(per[1]["gcrodr"]["median_its"]
                                                         * per[1]["gcrodr"]["fixed_s_per_iteration"],
                                                         per[1]["gcrodr"]["median_s"]),
                                   "measured_speedup": next((r["speedup"] for r in rows if r["pc"] == label
                                                             and r["processes"] == P), None)})
    command = (f"python -m benchmarks.scale_out_mpi --systems {args.systems} --pcs {' '.join(args.pcs)} "
               f"--ranks {' '.join(map(str, args.ranks))} --stencil {args.stencil} --seed {args.seed} "
               f"--threads {args.threads}")
    payload = {"systems": args.systems, "ranks": args.ranks, "latency_model": LATENCY, "paper_ranks": PAPER_RANKS,
               "pcs": {k: {"type": v[0], "options": v[1]} for k, v in PCS.items() if k in args.pcs},
               "table": rows, "model": model_rows, "runs": {str(P): v for P, v in runs.items()},
               "command": command, "note": args.note}
    md = [f"# SKR sequence under MPI: GCRO-DR(40, 20) vs PETSc GMRES(40)\n\n"
          f"darcy ({args.stencil} stencil, 80^2, n = {runs[args.ranks[0]]['n']}), {args.systems} systems in the "
          f"greedy order, tol {TOL:g}; GMRES from zero, GCRO-DR warm-started (the paper's protocol). bjacobi/asm "
          "with 72 blocks and ILU(0) as the paper's `mpirun -n 72` runs, at every process count (PETSc places "
          "the block boundaries by process, so they move slightly between P = 1 and 2). Median seconds per "
          "system (slowest process). Global reductions per iteration counted at 2 processes from PETSc's event "
          "log (calls of VecMDot, VecNorm, VecDot, ...; ours go through VecMDot/VecDot too).\n\n"
          f"Command: `{command}`"
          f" (MPICH's mpiexec, {args.threads} thread(s) per process)." + (f" {args.note}" if args.note else "") + "\n",
          markdown_table(rows),
          "\n## Projection to the paper's 72 processes\n\n"
          "T(P) = F + (T1 - F)/P + R ceil(log2 P) a + H h per solve: T1 the measured one-process median, "
          "F = its x f the per-iteration work that does not shrink with P (f measured on a 16^2 system), "
          f"R the measured global reductions per solve, a = {LATENCY['allreduce_stage_s'] * 1e6:g} us per "
          f"Allreduce stage (log2 P stages), H the halo exchanges per solve (one per MatMult, two more per ASM "
          f"apply), h = {LATENCY['halo_s'] * 1e6:g} us. Iteration counts do not depend on P here (72 blocks at "
          "every P). The 2-process row is the model at 2 processes next to the measured ratio. "
          "*_allreduce_s: the Allreduce part R ceil(log2 P) a; gcrodr_fixed_s: GCRO-DR's F (its interpreter "
          "overhead and the small dense problems every process solves), which the model does not divide by P.\n",
          markdown_table(model_rows)]
    counts = runs[args.ranks[0]].get("thread_counts")  # rank 0 of the workers, where the solves ran
    jpath, mpath = write_results("scale_out_mpi", payload, "\n".join(md), threads=counts)
    print(f"wrote {jpath} and {mpath}")


if __name__ == "__main__":
    main()
