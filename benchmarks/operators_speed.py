"""Speed and memory of the surrogate models (``operators.make_model``) on a CPU: forward time
per step (batch 1, inference mode) and one training step (forward + backward, batch 5,
relative-L2 loss), for the evaluation paths the models offer (``fused=False``: the block op by
op; ``fused=True``: the default fast exact path, whose backward keeps only the block's values and
kernels; ``checkpoint``; ``compile``; ``precision="bfloat16"``).

Each case runs in its own subprocess (so its peak resident memory is its own), on
``--threads`` threads (default ``BENCH_THREADS`` or 2; ``benchmarks.common.set_threads``: PyTorch,
BLAS, numba), which the results record. Results: benchmarks/results/operators_speed.{json,md}.

    PYTHONPATH=. python -m benchmarks.operators_speed            # all cases
    PYTHONPATH=. python -m benchmarks.operators_speed --quick    # the 16x17x8 grid only
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time

from benchmarks.common import requested_threads, thread_count  # noqa: E402

THREADS = requested_threads(default=2)
#: OpenMP threads that spin while waiting lose ~10-20x on a machine whose cores are shared with
#: other jobs (measured: 31 s vs 1.6 s per ifactformer-m step at 2 threads, load 13); PASSIVE
#: makes them sleep. On an idle machine ACTIVE (OpenMP's default) is slightly faster.
WAIT_POLICY = os.environ.get("OMP_WAIT_POLICY", "PASSIVE")
SMALL_GRID, PAPER_GRID = (16, 17, 8), (32, 33, 16)


def fourier_modes(grid):
    """The default classic modes (8, 8, 8) clipped to what the grid holds."""
    nx, ny, nz = grid
    return [min(8, nx // 2), min(8, ny // 2), min(8, nz // 2 + 1)]


def cases(quick: bool) -> list[dict]:
    out = []
    grids = [SMALL_GRID] if quick else [SMALL_GRID, PAPER_GRID]
    for grid in grids:
        big = grid == PAPER_GRID
        fm = {"modes": fourier_modes(grid)}
        for mode in ("forward", "train"):
            group = [
                dict(model="ifactformer-m", variant="plain", config={"fused": False}),
                dict(model="ifactformer-m", variant="fused", config={}),
                dict(model="ifactformer-o", variant="plain", config={"fused": False}),
                dict(model="ifactformer-o", variant="fused", config={}),
                dict(model="fno", variant="default", config=fm),
                dict(model="ifno", variant="default", config=fm),
            ]
            if mode == "forward":
                group.append(dict(model="ifactformer-m", variant="fused+compile", config={"compile": True}))
                group.append(dict(model="ifactformer-m", variant="fused+bfloat16", config={"precision": "bfloat16"}))
            else:
                group.append(dict(model="ifactformer-m", variant="fused+checkpoint", config={"checkpoint": True}))
                group.append(dict(model="ifactformer-o", variant="fused+checkpoint", config={"checkpoint": True}))
            if big and mode == "train":
                # the literal path at batch 5 on the paper grid needs > 13 GB: left out on a shared machine
                # and the training steps there are timed once, without a warm-up call
                group = [dict(c, repeat=1, warmup=False) for c in group if c["variant"] != "plain"]
            out += [dict(c, grid=list(grid), mode=mode) for c in group]
    return out


#: The CPU training recipe of issue 12 (benchmarks/operators.py on the ops-pipeline branch):
#: narrower models and fewer implicit iterations than the paper, on the 16 x 17 x 8 grid.
CPU_RECIPE = {
    "ifactformer-m": dict(dim=48, heads=4, dim_head=32, iterations=4),
    "ifactformer-o": dict(dim=48, heads=4, dim_head=32, iterations=4),
    "fno": dict(in_steps=1, modes=[8, 8, 4], width=24, n_layers=4),
    "ifno": dict(in_steps=1, modes=[8, 8, 4], width=32, iterations=4),
}


def recipe_cases() -> list[dict]:
    out = []
    for mode in ("forward", "train"):
        for name in ("ifactformer-m", "ifactformer-o"):
            cfg = CPU_RECIPE[name]
            out.append(dict(model=name, variant="recipe plain", config=dict(cfg, fused=False)))
            out.append(dict(model=name, variant="recipe fused", config=dict(cfg)))
            if mode == "forward":
                out.append(dict(model=name, variant="recipe fused+compile", config=dict(cfg, compile=True)))
                out.append(dict(model=name, variant="recipe fused+bfloat16", config=dict(cfg, precision="bfloat16")))
        out += [dict(model=n, variant="recipe", config=dict(CPU_RECIPE[n])) for n in ("fno", "ifno")]
        out = [dict(c, grid=list(SMALL_GRID), mode=c.get("mode", mode)) for c in out]
    return out


def run_case(case: dict) -> dict:
    import torch

    import operators
    from benchmarks.common import set_threads

    counts = set_threads(THREADS)
    torch.manual_seed(0)
    model = operators.make_model(case["model"], **case["config"])
    nx, ny, nz = case["grid"]
    batch = 1 if case["mode"] == "forward" else 5
    x = torch.randn(batch, model.in_steps, 3, nx, ny, nz)
    y = torch.randn(batch, 3, nx, ny, nz)
    # many repeats where they are cheap: on a shared machine single timings scatter by 2-5x
    small = nx * ny * nz <= 5000
    repeat = case.get("repeat", (15 if small else 5) if case["mode"] == "forward" else (3 if small else 1))

    def forward():
        with torch.inference_mode():
            return model(x)

    def train_step():
        model.zero_grad(set_to_none=True)
        pred = model(x)
        diff = (pred - y).flatten(1).norm(dim=1) / y.flatten(1).norm(dim=1)
        diff.mean().backward()

    if case["mode"] == "forward":
        model.eval()
        fn = forward
    else:
        model.train()
        fn = train_step
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    first = None
    if case.get("warmup", True):
        t0 = time.perf_counter()
        fn()                                               # warm-up (and compilation)
        first = time.perf_counter() - t0
    times, cpu = [], []
    for _ in range(repeat):
        t0, c0 = time.perf_counter(), time.process_time()
        fn()
        times.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return dict(case, batch=batch, params=sum(p.numel() for p in model.parameters()),
                seconds=statistics.median(times), cpu_seconds=statistics.median(cpu), first_call=first,
                repeat=repeat, peak_rss_mb=peak, rss_before_mb=rss0, threads=torch.get_num_threads(),
                load_avg=os.getloadavg()[0], omp_wait_policy=os.environ.get("OMP_WAIT_POLICY"),
                thread_counts=counts)


def main(argv=None) -> int:
    global THREADS
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="only the 16x17x8 grid")
    ap.add_argument("--threads", type=thread_count, default=THREADS, help="threads of every case (default BENCH_THREADS or 2)")
    ap.add_argument("--recipe", action="store_true", help="the CPU-recipe configurations (16x17x8) only")
    ap.add_argument("--case", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    THREADS = args.threads
    if args.case:
        print(json.dumps(run_case(json.loads(args.case))))
        return 0
    from benchmarks.common import markdown_table, write_results

    rows = []
    for case in (recipe_cases() if args.recipe else cases(args.quick)):
        env = dict(os.environ, BENCH_THREADS=str(THREADS), OMP_NUM_THREADS=str(THREADS),
                   OPENBLAS_NUM_THREADS=str(THREADS), MKL_NUM_THREADS=str(THREADS), OMP_WAIT_POLICY=WAIT_POLICY)
        p = subprocess.run([sys.executable, "-m", "benchmarks.operators_speed", "--case", json.dumps(case)],
                           capture_output=True, text=True, env=env)
        if p.returncode:
            row = dict(case, error=(p.stderr.strip().splitlines() or ["?"])[-1])
        else:
            row = json.loads(p.stdout.strip().splitlines()[-1])
        print(json.dumps(row), flush=True)
        rows.append(row)
    # speed-ups of each variant over the literal path of the same model, grid and mode
    plain = ("plain", "recipe plain")
    base = {(r["model"], tuple(r["grid"]), r["mode"], r["variant"].startswith("recipe")): r["seconds"] for r in rows
            if r.get("variant") in plain and "seconds" in r}
    cpu_base = {(r["model"], "x".join(map(str, r["grid"])), r["mode"], r["variant"].startswith("recipe")):
                r["cpu_seconds"] for r in rows if r.get("variant") in plain and "cpu_seconds" in r}
    for r in rows:
        b = base.get((r["model"], tuple(r["grid"]), r["mode"], r["variant"].startswith("recipe")))
        r["speedup_vs_plain"] = b / r["seconds"] if b and "seconds" in r else None
        r["grid"] = "x".join(map(str, r["grid"]))
    for r in rows:
        b = cpu_base.get((r["model"], r["grid"], r["mode"], r["variant"].startswith("recipe")))
        r["cpu_speedup_vs_plain"] = b / r["cpu_seconds"] if b and "cpu_seconds" in r else None
    cols = ["model", "variant", "grid", "mode", "batch", "params", "seconds", "cpu_seconds", "speedup_vs_plain",
            "cpu_speedup_vs_plain", "first_call", "peak_rss_mb", "load_avg", "error"]
    md = (f"# Surrogate models: time per step on a CPU ({THREADS} threads, OMP_WAIT_POLICY={WAIT_POLICY})\n\n"
          "forward: batch 1, inference mode; train: forward + backward of a relative-L2 loss, batch 5. "
          "Median of the repeats after one warm-up call (first_call: the warm-up, compilation included); "
          "seconds: wall clock, cpu_seconds: the process's CPU time (with 1 thread the better measure on a "
          "busy machine). peak_rss_mb: the subprocess's peak resident memory; load_avg: the machine's "
          "1-minute load average when the case ended. The machine was shared with other jobs.\n\n"
          + markdown_table(rows, cols))
    name = ("operators_speed" + ("_recipe" if args.recipe else "") + ("" if THREADS == 2 else f"_{THREADS}thread")
            + ("_quick" if args.quick else ""))
    counts = next((r.pop("thread_counts") for r in rows if "thread_counts" in r), None)  # the cases' own
    for r in rows:
        r.pop("thread_counts", None)
    write_results(name, {"threads": THREADS, "omp_wait_policy": WAIT_POLICY, "rows": rows}, md, threads=counts)
    return 0


if __name__ == "__main__":
    sys.exit(main())
