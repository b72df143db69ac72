"""How far apart are the trajectories of the ``surrogate`` preset when their first snapshot is taken?

Two copies of the shipped state ``re180-reduced`` get the preset's seeded perturbations
(0.02 U_b; seeds 1 and 6, those of trajectory 0 and of the held-out trajectory 5) and are
advanced side by side at dt = 2e-3. Every ``--every`` steps the coarse (16x17x8, box-filtered)
velocity fluctuations (plane mean removed) are compared: the correlation coefficient between
the two copies, and of each with the unperturbed starting state's coarse fluctuations.

    nice -n 10 python benchmarks/channel_decorrelation.py --steps 2500 --every 250

writes benchmarks/results/channel_decorrelation.{json,md}. One process, ``--threads`` threads
(default 1; ``benchmarks.common.set_threads``), recorded with the CPU time.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import set_threads, thread_count, write_results  # noqa: E402
from datagen.channel.filtering import CoarseFilter, collocate  # noqa: E402
from datagen.channel.states import load_state  # noqa: E402
from datagen.channel.trajectories import PRESETS, _perturb  # noqa: E402


def _fluct(dns, filt) -> np.ndarray:
    c = collocate(dns)
    out = []
    for comp in "uvw":
        a = filt(c[comp]).astype(np.float64)  # (NX, NY, NZ)
        out.append(a - a.mean(axis=(0, 2), keepdims=True))
    return np.stack(out)


def _corr(a, b) -> list[float]:
    """Correlation coefficient per component (u, v, w) of two fluctuation fields."""
    return [float((a[i] * b[i]).sum() / np.sqrt((a[i] ** 2).sum() * (b[i] ** 2).sum())) for i in range(3)]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--steps", type=int, default=PRESETS["surrogate"]["decorrelate"])
    ap.add_argument("--every", type=int, default=250)
    ap.add_argument("--seeds", default="1,6")
    ap.add_argument("--threads", type=thread_count, default=1, help="threads of BLAS, numba and PyTorch")
    a = ap.parse_args(argv)
    set_threads(a.threads)
    sur = PRESETS["surrogate"]
    seeds = [int(s) for s in a.seeds.split(",")]
    origin = load_state("re180-reduced")
    filt = CoarseFilter(origin.grid, sur["coarse_grid"], "box")
    f0 = _fluct(origin, filt)
    copies = []
    for s in seeds:
        d = load_state("re180-reduced")
        _perturb(d, 0.02, s)
        copies.append(d)
    rows = []
    cpu0 = time.process_time()

    def record(n):
        fa, fb = (_fluct(d, filt) for d in copies)
        rows.append({"steps": n, "t_after": n * origin.cfg.dt, "t_plus_after": n * origin.cfg.dt * origin.cfg.re_tau,
                     "corr_between_copies_uvw": _corr(fa, fb), "corr_copy_a_with_start_uvw": _corr(fa, f0),
                     "corr_copy_b_with_start_uvw": _corr(fb, f0)})

    record(0)
    n = 0
    while n < a.steps:
        k = min(a.every, a.steps - n)
        for d in copies:
            d.run(k, check_every=10)
        n += k
        record(n)
    cpu = time.process_time() - cpu0
    payload = {"seeds": seeds, "perturbation": 0.02, "dt": origin.cfg.dt, "coarse_grid": list(sur["coarse_grid"]),
               "rows": rows, "cpu_s": cpu, "cpu_ms_per_step": 1e3 * cpu / max(2 * a.steps, 1)}
    lines = ["# Decorrelation of the surrogate preset's trajectories", "",
             f"Two copies of the shipped state re180-reduced with the preset's seeded perturbations (0.02 U_b, "
             f"seeds {seeds[0]} and {seeds[1]}: trajectory 0 and the held-out trajectory 5), advanced at dt = "
             f"{origin.cfg.dt}. Correlation coefficients of the coarse ({'x'.join(map(str, sur['coarse_grid']))}, "
             "box-filtered) velocity fluctuations (plane means removed), per component u / v / w. The preset "
             f"takes its first snapshot after {sur['decorrelate']} steps.", "",
             "| steps | t (h/u_tau) | t+ | copy a vs copy b | copy a vs start | copy b vs start |", "|---|---|---|---|---|---|"]
    fmt = lambda c: " / ".join(f"{x:.2f}" for x in c)  # noqa: E731
    for r in rows:
        lines.append(f"| {r['steps']} | {r['t_after']:.2f} | {r['t_plus_after']:.0f} | {fmt(r['corr_between_copies_uvw'])} "
                     f"| {fmt(r['corr_copy_a_with_start_uvw'])} | {fmt(r['corr_copy_b_with_start_uvw'])} |")
    lines += ["", f"CPU time {cpu:.0f} s for 2 x {a.steps} steps ({payload['cpu_ms_per_step']:.1f} ms per step, "
              f"single process, {a.threads} thread(s); the machine was shared by other jobs)."]
    write_results("channel_decorrelation", payload, "\n".join(lines) + "\n")
    print("\n".join(lines))

if __name__ == "__main__":
    main()
