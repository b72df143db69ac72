"""Scale-out throughput: datagen on Dask workers (part ``datagen``) and the solvers under MPI
(part ``mpi``, filled by the MPI half of issue 14).

datagen: samples/s through the whole ``generate`` call (sampling, ordering, assembly,
solves, shard commits by the workers, the final join: I/O included) for

* darcy 128^2 with the sorted-Krylov-recycling pipeline (RCG, PETSc ICC, greedy order,
  chunks reset the recycled space), and
* channel-flow trajectories (the small preset's grids and snapshot spacing, fewer
  snapshots; the spin-up is done once beforehand and every run restarts from it, so only
  the trajectories, the parallel part, are timed),

run in-process, on 1 and on 2 single-threaded Dask worker processes. Two timings per worker
count: ``steady`` on an already started and warmed LocalCluster (the throughput of a long run),
and ``end_to_end`` through ``generate(..., workers=N)`` including the cluster's start-up and
the workers' imports. Every run of one problem must give the same data (checked: iterations
for darcy, velocity fields for the channel). Medians of interleaved repeats. Each worker runs
one thread (``datagen.cluster`` sets OMP/BLAS/MKL and PyTorch to 1; the results record the
counts the workers report); the in-process run uses ``--threads`` (default 1, the same).

    python -m benchmarks.scale_out                        # both parts, the full datagen sizes
    python -m benchmarks.scale_out --parts datagen --quick   # a smoke run (not written as the result)
    python -m benchmarks.scale_out --parts datagen --problems darcy --repeat 5   # darcy only; channel rows kept

The ``mpi`` part does not run here: ``python -m benchmarks.scale_out_mpi`` (under MPICH's
mpiexec) writes ``benchmarks/results/scale_out_mpi.{json,md}``, and ``--parts mpi`` (or the
default) folds those into ``scale_out.md``/``scale_out.json``. A part not run keeps its previous
result in the files.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import h5py
import numpy as np

from benchmarks.common import RESULTS, markdown_table, set_threads, thread_count, thread_counts, write_results

NAME = "scale_out"
MPI_RESULT = RESULTS / "scale_out_mpi.json"
TARGET = 1.7
MODES = ("in-process", "1 worker", "2 workers")


def _start(n_workers: int):
    from distributed import Client

    from datagen.cluster import local_cluster

    t0 = time.perf_counter()
    cluster = local_cluster(n_workers)  # the cluster of --workers N
    client = Client(cluster, set_as_default=False)
    client.wait_for_workers(n_workers)
    return cluster, client, time.perf_counter() - t0


# --- darcy ----------------------------------------------------------------------------------
def darcy_cfg(n: int, chunk: int, grid: int = 128, seed: int = 0):
    from datagen.pipeline import GenerateConfig

    return GenerateConfig(problem="darcy", n=n, grid=grid, solver="rcg",
                          solver_opt={"backend": "petsc", "pc": "icc", "rtol": 1e-8, "recycle": 20},
                          order="greedy", chunk=chunk, seed=seed)


def run_darcy(cfg, workdir: Path, repeat: int) -> tuple[list[dict], dict]:
    """Each worker mode's cluster is started for its own timed run (after an untimed warm-up
    run that imports the package on the workers) and closed after it, so no idle cluster's
    processes take CPU from the one being timed: on 2 cores their polling is not free."""
    from datagen.pipeline import generate

    times = {m: [] for m in MODES}
    e2e = {m: [] for m in MODES[1:]}
    cpu = {m: {"client": [], "workers": []} for m in MODES}
    starts = {m: [] for m in MODES[1:]}
    iterations, worker_threads = {}, {}
    warm = darcy_cfg(n=2, chunk=1, grid=cfg.grid[0], seed=cfg.seed + 1)
    generate(warm, workdir / "warm.h5", overwrite=True)  # imports, PETSc start-up out of the timings
    for _ in range(repeat):
        for mode in MODES:
            out = workdir / "darcy.h5"
            cluster = client = scheduler = None
            if mode != "in-process":
                cluster, client, t_start = _start(int(mode.split()[0]))
                starts[mode].append(t_start)
                scheduler = cluster.scheduler_address
                generate(warm, workdir / "warm.h5", overwrite=True, scheduler=scheduler)
                worker_threads.setdefault(mode, _worker_threads(client))
            try:
                w0, c0 = _workers_cpu(client), time.process_time()
                s = generate(cfg, out, overwrite=True, scheduler=scheduler)
                cpu[mode]["client"].append(time.process_time() - c0)
                cpu[mode]["workers"].append(_workers_cpu(client) - w0)
            finally:
                if cluster is not None:
                    client.close()
                    cluster.close()
            times[mode].append(s.wall_time)
            with h5py.File(out, "r") as f:
                iterations.setdefault(mode, f["solver_stats"]["iterations"][()])
            assert np.array_equal(iterations[mode], iterations["in-process"]), f"{mode}: iterations differ"
        for mode in MODES[1:]:
            s = generate(cfg, workdir / "darcy.h5", overwrite=True, workers=int(mode.split()[0]))
            e2e[mode].append(s.wall_time)
    rows = _rows(f"darcy {cfg.grid[0]}^2", cfg.n, times, e2e)
    for row in rows:
        row["client_cpu_s"] = statistics.median(cpu[row["run on"]]["client"])
        if row["run on"] != "in-process":
            row["workers_cpu_s"] = statistics.median(cpu[row["run on"]]["workers"])
    return rows, {"iterations_mean": float(np.mean(iterations["in-process"])),
                  "cluster_start_s": {m: statistics.median(v) for m, v in starts.items()},
                  "worker_thread_counts": worker_threads}


def _worker_threads(client) -> dict:
    """Each worker's ``thread_counts()`` (after a warm-up run loaded its libraries)."""
    try:
        return {addr: c for addr, c in client.run(thread_counts).items()}
    except Exception as exc:  # noqa: BLE001 - a record, not a result: say why it is missing
        return {"unknown": f"{type(exc).__name__}: {exc}"}


def _workers_cpu(client) -> float:
    """CPU seconds the cluster's worker processes have used so far (0 without a cluster)."""
    if client is None:
        return 0.0
    return float(sum(client.run(time.process_time).values()))


# --- channel --------------------------------------------------------------------------------
def channel_kw(trajectories: int, snapshots: int, preset: dict) -> dict:
    """The surrogate preset's grids and step, from the shipped developed state, shortened."""
    return dict(re_tau=preset["re_tau"], grid=preset["grid"], box=preset["box"], coarse_grid=preset["coarse_grid"],
                every=preset["every"], dt=preset["dt"], restart=preset["restart"], spinup=0,
                decorrelate=preset["every"], trajectories=trajectories, snapshots=snapshots)


def run_channel(kw: dict, workdir: Path, repeat: int, clusters: dict) -> list[dict]:
    from datagen import cluster as dgcluster
    from datagen.channel import trajectories as dataset

    run_kw = kw
    times = {m: [] for m in MODES}
    e2e = {m: [] for m in MODES[1:]}
    ref = None

    def once(mode, session):
        out = workdir / "channel.h5"
        shutil.rmtree(workdir / "channel.h5.parts", ignore_errors=True)
        out.unlink(missing_ok=True)
        t0 = time.perf_counter()
        with session:
            dataset.generate(out, **run_kw, tasks=session.run if session.client is not None else None)
        wall = time.perf_counter() - t0
        with h5py.File(out, "r") as f:
            vel = f["t1_fields/velocity"][()]
        return wall, vel

    for cluster, _, _ in clusters.values():  # the workers' imports (and any JIT compilation) out of the timings
        with dgcluster.connect(scheduler=cluster.scheduler_address) as session:
            dataset.generate(workdir / "warm.h5", **{**run_kw, "trajectories": 2, "snapshots": 1},
                             tasks=session.run)
        (workdir / "warm.h5").unlink()
        shutil.rmtree(workdir / "warm.h5.parts")
    for _ in range(repeat):
        for mode in MODES:
            session = dgcluster.Session() if mode == "in-process" else dgcluster.connect(
                scheduler=clusters[mode][0].scheduler_address)
            wall, vel = once(mode, session)
            times[mode].append(wall)
            ref = vel if ref is None else ref
            assert np.array_equal(vel, ref), f"{mode}: velocity fields differ"
        for mode in MODES[1:]:
            wall, vel = once(mode, dgcluster.connect(workers=int(mode.split()[0])))
            e2e[mode].append(wall)
            assert np.array_equal(vel, ref), f"{mode} (own cluster): velocity fields differ"
    k, s = kw["trajectories"], kw["snapshots"]
    return _rows(f"channel {'x'.join(map(str, kw['grid']))}, {k} trajectories x {s} snapshots", k * s, times, e2e)


def _rows(problem: str, count: int, times: dict, e2e: dict) -> list[dict]:
    base = statistics.median(times["in-process"])
    rows = []
    for mode in MODES:
        t = statistics.median(times[mode])
        row = {"problem": problem, "run on": mode, "samples": count,
               "time_s": t, "samples_per_s": count / t, "speedup_vs_in_process": base / t,
               "speedup_vs_1_worker": statistics.median(times["1 worker"]) / t}
        if mode in e2e:
            te = statistics.median(e2e[mode])
            row.update(end_to_end_s=te, end_to_end_samples_per_s=count / te)
        rows.append(row)
    return rows


def part_datagen(args, previous: dict | None = None) -> dict:
    from benchmarks.common import machine
    from datagen.channel.trajectories import PRESETS

    if args.quick:
        n, chunk, grid, traj, snaps, repeat = 16, 4, 64, 2, 2, 1
    else:
        n, chunk, grid, traj, snaps, repeat = 384, 24, 128, 4, 4, args.repeat
    problems = args.problems
    m = machine()
    stamp = f"commit {m.get('git_commit', '?')}, {m['date']}"
    load = os.getloadavg()
    clusters = {}
    rows, extra = [], {}
    try:
        with tempfile.TemporaryDirectory(prefix="scale_out_") as d:
            if "darcy" in problems:
                got, extra = run_darcy(darcy_cfg(n, chunk, grid), Path(d), repeat)
                rows += got
            starts = extra.pop("cluster_start_s", {})
            if "channel" in problems:
                for mode in MODES[1:]:
                    clusters[mode] = _start(int(mode.split()[0]))
                starts = {m: c[2] for m, c in clusters.items()}
                rows += run_channel(channel_kw(traj, snaps, PRESETS["surrogate"]), Path(d), repeat, clusters)
    finally:
        for cluster, client, _ in clusters.values():
            client.close()
            cluster.close()
    measured = {r["problem"]: stamp for r in rows}
    settings = {"darcy": {"n": n, "chunk": chunk, "grid": grid, **extra},
                "channel": {"trajectories": traj, "snapshots": snaps, "preset": "surrogate"},
                "repeat": repeat, "quick": args.quick, "note": args.note}
    kept = []
    if previous and not args.quick:  # the problems not run this time keep their last result
        old_measured = previous.get("measured", {})
        for r in previous.get("rows", []):
            if r["problem"].split()[0] not in problems:
                rows.append(r)
                measured[r["problem"]] = old_measured.get(r["problem"], "an earlier run")
                if r["problem"] not in kept:
                    kept.append(r["problem"])
        if "darcy" not in problems:
            settings["darcy"] = previous.get("settings", {}).get("darcy", settings["darcy"])
    two = {r["problem"]: r["speedup_vs_1_worker"] for r in rows if r["run on"] == "2 workers"}
    cols = ["problem", "run on", "samples", "time_s", "samples_per_s", "speedup_vs_in_process",
            "speedup_vs_1_worker", "end_to_end_s", "end_to_end_samples_per_s", "client_cpu_s", "workers_cpu_s"]
    notes = [f"- {p}: 2 workers give {v:.2f}x the throughput of 1 worker (target >= {TARGET}x): "
             f"{'met' if v >= TARGET else 'NOT met'}." for p, v in two.items()]
    notes += [f"- {p}: rows kept from the run at {measured[p]} (not rerun this time)." for p in kept]
    d = settings["darcy"]
    md = (f"# Scale-out: datagen on Dask workers\n\nThroughput through the whole generation call (I/O included), "
          f"in-process and on LocalClusters of 1 and 2 single-threaded worker processes "
          f"(each worker: OMP/BLAS/MKL and PyTorch threads 1, set by `datagen.cluster`, counts in the JSON's "
          f"worker_thread_counts; the in-process run on {args.threads} thread(s), set by "
          f"`benchmarks.common.set_threads`). "
          f"darcy: {d['n']} samples, grid {d['grid']}^2, RCG (PETSc ICC, recycle 20) in greedy order, chunks of "
          f"{d['chunk']} ({-(-d['n'] // d['chunk'])} tasks); each task samples its own coefficient fields and "
          f"writes its shard. channel: the surrogate preset's grids and step from the shipped developed state, "
          f"{traj} trajectories (tasks) of {snaps} snapshots, each after its own perturbation and one snapshot "
          f"interval of decorrelation; samples = snapshots. "
          f"time_s: median of {repeat} interleaved repeats on an already started, warmed cluster (darcy: each "
          f"worker mode's cluster is started and warmed for its run and closed after it, so no idle cluster "
          f"competes for the 2 cores; channel: both clusters stay up); end_to_end: "
          f"`generate(..., workers=N)` with its own cluster (start-up {', '.join(f'{v:.1f} s ({m})' for m, v in starts.items())} "
          f"and worker imports included). Every run of a problem gave the same data (iterations, velocity fields "
          f"compared). client_cpu_s / workers_cpu_s (darcy): CPU seconds of this process (the client, and "
          f"the local cluster's scheduler) and of the worker processes during the steady run, medians: the "
          f"client's share is the serial part (sampling for the ordering, ordering, the join's final commit) "
          f"plus Dask's own work. Load average (1 min) at start/end: {load[0]:.2f}/{os.getloadavg()[0]:.2f}."
          + (f" {args.note}" if args.note else "") + "\n\n"
          + markdown_table(rows, cols) + "\n" + "\n".join(notes) + "\n")
    return {"title": "datagen on Dask workers", "markdown": md, "rows": rows, "cluster_start_s": starts,
            "measured": measured, "settings": settings}


def part_mpi(args) -> dict | None:
    """The MPI half: ``benchmarks/scale_out_mpi.py`` runs under mpiexec and writes
    ``scale_out_mpi.{json,md}``; this part folds that result in (run it first)."""
    md_path = MPI_RESULT.with_suffix(".md")
    if not (MPI_RESULT.exists() and md_path.exists()):
        print(f"part mpi: {MPI_RESULT.name} / {md_path.name} not found; run `python -m benchmarks.scale_out_mpi` "
              "first; left out")
        return None
    lines = md_path.read_text().splitlines()
    if lines and lines[0].startswith("Machine:"):  # its own machine and commit, kept under its title
        note = f"(From `benchmarks/results/{md_path.name}`, measured on: {lines.pop(0)[len('Machine:'):].strip()}"
        if lines and lines[0].startswith("Threads:"):
            note += f" {lines.pop(0)}"
        note += ")"
        while lines and not lines[0].strip():
            lines.pop(0)
        at = 1 if lines and lines[0].startswith("# ") else 0
        lines[at:at] = ["", note]
    return {"title": "solvers under MPI", "markdown": "\n".join(lines) + "\n",
            "result": json.loads(MPI_RESULT.read_text())}


PARTS = {"datagen": part_datagen, "mpi": part_mpi}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--parts", default="datagen,mpi", help="comma-separated: datagen, mpi")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--quick", action="store_true", help="small sizes; printed, not written as the result")
    ap.add_argument("--problems", default="darcy,channel",
                    help="datagen problems to run (comma-separated: darcy, channel); the others keep their last rows")
    ap.add_argument("--name", default=NAME, help=f"result file name under benchmarks/results (default {NAME})")
    ap.add_argument("--note", default="", help="a sentence added to the datagen description (e.g. the machine's load)")
    ap.add_argument("--threads", type=thread_count, default=1,
                    help="threads of the in-process run (each Dask worker runs one, as datagen.cluster sets)")
    args = ap.parse_args(argv)
    set_threads(args.threads)
    args.problems = [p.strip() for p in args.problems.split(",") if p.strip()]
    bad = sorted(set(args.problems) - {"darcy", "channel"})
    if bad or not args.problems:
        ap.error(f"unknown problem(s) {', '.join(bad) or '(none given)'}; known: darcy, channel")
    logging.getLogger("distributed").setLevel(logging.ERROR)  # closing clusters logs at INFO
    parts = [p.strip() for p in args.parts.split(",") if p.strip()]
    unknown = sorted(set(parts) - set(PARTS))
    if unknown:
        ap.error(f"unknown part(s) {', '.join(unknown)}; known: {', '.join(PARTS)}")
    previous = {}
    if (RESULTS / f"{args.name}.json").exists():
        old = json.loads((RESULTS / f"{args.name}.json").read_text())
        previous = old.get("parts", {})
        if "datagen" in previous and "measured" not in previous["datagen"]:  # written before rows had a stamp
            m = old.get("machine", {})
            stamp = f"commit {m.get('git_commit', '?')}, {m.get('date', '?')}"
            previous["datagen"]["measured"] = {r["problem"]: stamp for r in previous["datagen"]["rows"]}
    results = dict(previous)
    for p in parts:
        got = PARTS[p](args, previous.get(p)) if p == "datagen" else PARTS[p](args)
        if got is not None:
            results[p] = got
    md = "\n".join(results[p]["markdown"] for p in PARTS if p in results)
    if args.quick:
        print(md)
        return
    jpath, mpath = write_results(args.name, {"parts": results}, md)
    print(md)
    print(f"wrote {jpath} and {mpath}")


if __name__ == "__main__":
    main()
