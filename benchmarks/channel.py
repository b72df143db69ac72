"""Channel DNS benchmarks.

``python benchmarks/channel.py timing``: time per DNS step and the share spent in the
pressure solves, for the default ``fft-poisson`` and for the package's iterative solvers
on the SAME pressure sequence (the right-hand sides of consecutive RK3 substeps of a
turbulent channel, recorded from one run and replayed in order, each solver warm-started
from its previous solution as it would be inside the DNS). Results:
benchmarks/results/channel_timing.{json,md}. Every solver runs in this process on ``--threads``
threads (default 1: PyTorch for ``dcdm``, BLAS, numba, PETSc's BLAS; ``benchmarks.common.set_threads``).

``python benchmarks/channel.py report --run runs/channel180``: statistics of the long
Re_tau 180 run against Moser, Kim & Mansour (1999), with plots. Results:
benchmarks/results/channel_re180.{json,md} and channel_re180_*.png.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import RESULTS, markdown_table, set_threads, thread_count, write_results  # noqa: E402

CANDIDATES = [  # (label, solver, options)
    ("cg (warm start)", "cg", {}),
    ("cg + amg (warm start)", "cg", {"pc": "amg"}),
    ("rcg", "rcg", {}),
    ("gcrodr", "gcrodr", {}),
    ("bandit-sor", "bandit-sor", {}),
    ("ssor-pcg", "ssor-pcg", {"omega": 1.5}),
    ("PETSc cg + gamg (warm start)", "cg", {"backend": "petsc", "pc": "amg"}),
    ("direct (SuperLU, factor reused)", "direct", {}),
    ("dcdm (maxiter 200)", "dcdm", {"maxiter": 200}),
]


def _dns(args):
    from datagen.channel import ChannelConfig, ChannelDNS, load_checkpoint, perturbed_laminar

    if args.checkpoint:
        return load_checkpoint(args.checkpoint)
    nx, ny, nz = (int(s) for s in args.grid.split(","))
    dns = ChannelDNS(ChannelConfig(grid=dict(nx=nx, ny=ny, nz=nz, stretch=1.6), dt=2e-3))
    perturbed_laminar(dns, amplitude=0.15, seed=args.seed, cfl_target=None)
    dns.run(args.spinup, check_every=20)
    return dns


def timing(args):
    import linsolve

    set_threads(args.threads)
    dns = _dns(args)
    seq: list[tuple[np.ndarray, np.ndarray]] = []
    dns.pressure_hook = lambda b, x: seq.append((b.copy(), x.copy()))
    dns.run(2)  # warm caches and JIT
    seq.clear()
    dns.timing.update(step=0.0, pressure=0.0, steps=0, solves=0, iterations=0)
    step_times, step_cpu, press_steps, press_cpu = [], [], [], []
    press_before = 0.0
    solver = dns._pressure_solver()
    orig_solve = solver.solve
    cpu_acc = [0.0]

    def timed_solve(*a, **k):  # CPU time of the pressure solves (the machine is shared and noisy)
        c0 = time.process_time()
        try:
            return orig_solve(*a, **k)
        finally:
            cpu_acc[0] += time.process_time() - c0

    solver.solve = timed_solve
    for _ in range(args.steps):
        t0, c0, pc0 = time.perf_counter(), time.process_time(), cpu_acc[0]
        dns.step()
        step_times.append(time.perf_counter() - t0)
        step_cpu.append(time.process_time() - c0)
        press_steps.append(dns.timing["pressure"] - press_before)
        press_cpu.append(cpu_acc[0] - pc0)
        press_before = dns.timing["pressure"]
    t_step = statistics.median(step_times)
    t_press_fft = statistics.median(press_steps)
    t_other = t_step - t_press_fft
    c_step = statistics.median(step_cpu)
    c_press_fft = statistics.median(press_cpu)
    c_other = c_step - c_press_fft
    A = dns.pressure_matrix()
    system_kw = {"grid": dns.pressure_grid, "meta": {"tensor_poisson": dns.structure}}
    rows = [{"solver": "fft-poisson (default)", "step_cpu_s": c_step, "pressure_cpu_s_per_step": c_press_fft,
             "pressure_share": c_press_fft / c_step, "vs_fft_pressure": 1.0, "step_wall_s": t_step,
             "pressure_wall_s_per_step": t_press_fft, "mean_iterations": 1.0, "max_rel_err_vs_fft": 0.0,
             "converged": f"{len(seq)}/{len(seq)}", "first_solve_cpu_s": c_press_fft / 3,
             "later_solves_mean_cpu_s": c_press_fft / 3}]
    available = set(linsolve.available_solvers())
    skipped = []

    def _write():
        return _write_timing(args, dns, A, seq, rows, skipped)

    for label, name, opts in CANDIDATES:
        if name not in available:
            skipped.append({"solver": label, "why": "not registered"})
            continue
        try:
            opts = {"maxiter": args.maxiter, **opts}
            s = linsolve.make_solver(name, rtol=args.rtol, **({} if name == "direct" else {"warm_start": True}),
                                     **opts)
            c0 = time.process_time()
            its, errs, conv = [], [], 0
            per_solve, per_cpu = [], []
            for b, x_ref in seq:
                t1, c1 = time.perf_counter(), time.process_time()
                r = s.solve(A, b, **system_kw)
                per_solve.append(time.perf_counter() - t1)
                per_cpu.append(time.process_time() - c1)
                its.append(r.iterations)
                conv += int(r.converged)
                errs.append(float(np.linalg.norm(r.x - x_ref) / np.linalg.norm(x_ref)))
                if len(per_cpu) >= 2 and time.process_time() - c0 > args.budget:
                    break
        except Exception as exc:  # noqa: BLE001 - a solver that does not apply is reported, not fatal
            skipped.append({"solver": label, "why": f"{type(exc).__name__}: {str(exc)[:160]}"})
            continue
        n = len(per_solve)
        t_press = float(np.mean(per_solve)) * 3  # 3 RK substeps per step
        c_press = float(np.mean(per_cpu)) * 3
        rows.append({"solver": label + ("" if n == len(seq) else f" (first {n} of {len(seq)} solves, time budget)"),
                     "step_cpu_s": c_other + c_press, "pressure_cpu_s_per_step": c_press,
                     "pressure_share": c_press / (c_other + c_press), "vs_fft_pressure": c_press / c_press_fft,
                     "step_wall_s": t_other + t_press, "pressure_wall_s_per_step": t_press,
                     "mean_iterations": float(np.mean(its)), "max_rel_err_vs_fft": float(np.max(errs)),
                     "converged": f"{conv}/{n}", "first_solve_cpu_s": per_cpu[0],
                     "later_solves_mean_cpu_s": float(np.mean(per_cpu[1:])) if n > 1 else float("nan")})
        print(rows[-1], flush=True)
        _write()  # partial results survive an interrupted run
    print(_write())


def _write_timing(args, dns, A, seq, rows, skipped):
    g = dns.grid
    payload = {"grid": [g.nx, g.ny, g.nz], "box": [g.lx, 2.0, g.lz], "unknowns": int(A.shape[0]),
               "steps_timed": args.steps, "solves_in_sequence": len(seq), "rtol": args.rtol,
               "state": (f"checkpoint {args.checkpoint}" if args.checkpoint else
                         f"perturbed laminar + {args.spinup} steps (transitional/turbulent)"),
               "rows": rows, "skipped": skipped}
    md = (f"# Channel DNS: time per step and pressure-solve share\n\n"
          f"Grid {g.nx}x{g.ny}x{g.nz} ({A.shape[0]} pressure unknowns), box {g.lx:.3f} x 2 x {g.lz:.3f}, "
          f"state: {payload['state']}. Median over {args.steps} steps for fft-poisson; every other solver "
          f"replays the same {len(seq)} pressure right-hand sides in order (warm-started, rtol {args.rtol}), "
          f"and its step time is the non-pressure part of the step plus 3 of its mean solve times. "
          f"Single process, {args.threads} thread(s) for every solver (PyTorch, BLAS, numba). The machine is shared by several agents (load average "
          f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} cores at the end), so CPU seconds "
          f"(process time) are the primary measure and wall seconds are given for reference; a solver "
          f"cut short by the {args.budget:.0f} CPU-s budget (checked after each solve, at least two solves) is "
          f"averaged over the solves it finished (the first, least warm-started ones); the first solve "
          f"includes set-up (factorisation, AMG hierarchy), the later ones reuse it. maxiter {args.maxiter}.\n\n"
          + markdown_table(rows, ["solver", "step_cpu_s", "pressure_cpu_s_per_step", "pressure_share",
                                  "vs_fft_pressure", "step_wall_s", "mean_iterations", "converged",
                                  "max_rel_err_vs_fft", "first_solve_cpu_s", "later_solves_mean_cpu_s"])
          + ("\nNot run:\n\n" + markdown_table(skipped) if skipped else ""))
    write_results("channel_timing", payload, md)
    return md


# --- the long run -------------------------------------------------------------------------------
def report(args):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from datagen.channel.checkpoint import load_checkpoint
    from datagen.channel.stats import QUANTITIES, compare_with_reference, load_reference, wall_units

    run = Path(args.run)
    dns = load_checkpoint(run / "checkpoint.npz")
    st = np.load(run / "stats.npz")
    log = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines() if line.strip()]
    log = [m for m in log if "t" in m]
    t0 = np.asarray(st["t0"])
    sel = t0 >= args.t_start
    if not sel.any():
        raise SystemExit(f"no statistics blocks after t = {args.t_start}; the run reached t = {dns.t:.2f}")
    n = int(st["n"][sel].sum())
    sums = {q: st[q][sel].sum(axis=0) for q in QUANTITIES}
    prof = wall_units(sums, n, dns.grid.yc, dns.cfg.nu)
    ref = load_reference()
    cmp = compare_with_reference(prof, ref)
    window = (float(st["t0"][sel].min()), float(st["t1"][sel].max()))
    # statistical uncertainty: the same comparison on each half of the averaging window
    idx = np.flatnonzero(sel)
    halves = []
    for part in (idx[: len(idx) // 2], idx[len(idx) // 2:]):
        if len(part):
            ph = wall_units({q: st[q][part].sum(axis=0) for q in QUANTITIES}, int(st["n"][part].sum()),
                            dns.grid.yc, dns.cfg.nu)
            ch = compare_with_reference(ph, load_reference())
            halves.append({k: ch[k] for k in ("mean_U_rms_rel_err_5_150", "centre_U_plus", "u_rms_peak",
                                              "u_rms_peak_yplus", "uv_peak")} | {"re_tau": ph["re_tau"]})
    g = dns.grid
    payload = {
        "grid": [g.nx, g.ny, g.nz], "box": [g.lx, 2.0, g.lz], "re_tau_nominal": dns.cfg.re_tau,
        "drive": dns.cfg.drive, "U_bulk": dns.cfg.ub, "reached_t": dns.t, "steps": dns.step_count,
        "averaging_window_t": window, "averaging_window_in_h_over_measured_u_tau": [w * prof["u_tau"] for w in window],
        "note": args.note, "samples": n, "re_tau_measured": prof["re_tau"], "comparison": cmp, "half_windows": halves,
        "profiles": {k: np.asarray(v).tolist() for k, v in prof.items() if isinstance(v, np.ndarray)},
        "history": [{k: m[k] for k in ("t", "re_tau_wall", "cfl", "div_max", "dt") if k in m} for m in log],
    }
    # --- plots
    yp_ref = np.asarray(ref["y_plus"])
    fig, ax = plt.subplots(1, 3, figsize=(15, 4.2))
    ax[0].semilogx(prof["y_plus"], prof["U_plus"], "o-", ms=3, label=f"DNS here (Re_tau={prof['re_tau']:.0f})")
    ax[0].semilogx(yp_ref[1:], np.asarray(ref["U_plus"])[1:], "k--", label="Moser, Kim & Mansour 1999")
    ax[0].set(xlabel="y+", ylabel="U+", title="mean velocity")
    ax[1].plot(prof["y_plus"], prof["u_rms_plus"], label="u'+")
    ax[1].plot(prof["y_plus"], prof["v_rms_plus"], label="v'+")
    ax[1].plot(prof["y_plus"], prof["w_rms_plus"], label="w'+")
    ax[1].axhspan(2.4, 2.9, xmin=0, xmax=1, color="grey", alpha=0.15, label="target u'+ peak 2.4-2.9")
    ax[1].axvspan(10, 20, color="orange", alpha=0.1, label="target peak y+ 10-20")
    ax[1].set(xlabel="y+", ylabel="rms+", title="velocity fluctuations", xlim=(0, 180))
    ax[2].plot(prof["y_plus"], -prof["uv_plus"], label="-uv+ (DNS here)")
    ax[2].axhline(0.71, color="k", ls="--", label="MKM peak 0.71")
    ax[2].set(xlabel="y+", ylabel="-uv+", title="Reynolds shear stress", xlim=(0, 180))
    for a in ax:
        a.legend(fontsize=8)
    fig.suptitle(f"Channel Re_tau 180, grid {g.nx}x{g.ny}x{g.nz}, box {g.lx:.2f}x2x{g.lz:.2f}, "
                 f"average over t = {window[0]:.1f}..{window[1]:.1f} h/u_tau")
    fig.tight_layout()
    RESULTS.mkdir(parents=True, exist_ok=True)
    fig.savefig(RESULTS / f"{args.name}_profiles.png", dpi=110)
    fig2, ax2 = plt.subplots(figsize=(6, 3.5))
    ax2.plot([m["t"] for m in log], [m["re_tau_wall"] for m in log])
    ax2.axvspan(*window, color="grey", alpha=0.2, label="averaging window")
    ax2.axhline(dns.cfg.re_tau, color="k", ls="--")
    ax2.set(xlabel="t (h/u_tau nominal)", ylabel="Re_tau from wall shear", title="history")
    ax2.legend()
    fig2.tight_layout()
    fig2.savefig(RESULTS / f"{args.name}_history.png", dpi=110)
    checks = cmp["checks"]
    def spread(key):
        vals = [h[key] for h in halves]
        return " / ".join(f"{v:.4g}" for v in vals)

    rows = [
        {"quantity": "mean U+ RMS rel. error, y+ 5-150", "here": cmp["mean_U_rms_rel_err_5_150"], "target": "<= 0.05",
         "met": checks["mean_U"], "halves": spread("mean_U_rms_rel_err_5_150")},
        {"quantity": "centreline U+", "here": cmp["centre_U_plus"], "target": f"{cmp['centre_U_plus_ref']:.2f} +-5%",
         "met": checks["centre_U"], "halves": spread("centre_U_plus")},
        {"quantity": "peak u_rms+", "here": cmp["u_rms_peak"], "target": "2.4-2.9", "met": checks["u_rms_peak"],
         "halves": spread("u_rms_peak")},
        {"quantity": "y+ of peak u_rms+", "here": cmp["u_rms_peak_yplus"], "target": "10-20", "met": checks["u_rms_peak"],
         "halves": spread("u_rms_peak_yplus")},
        {"quantity": "peak -uv+", "here": cmp["uv_peak"], "target": "0.71 +-10%", "met": checks["uv_peak"],
         "halves": spread("uv_peak")},
        {"quantity": "Re_tau from wall shear", "here": prof["re_tau"], "target": "180 (flow-rate drive, Dean's U_b)",
         "met": "", "halves": spread("re_tau")},
    ]
    md = (f"# Channel flow at Re_tau 180 against Moser, Kim & Mansour (1999)\n\n"
          f"Grid {g.nx}x{g.ny}x{g.nz}, box {g.lx:.3f} x 2 x {g.lz:.3f} (reduced box), second-order staggered FD, "
          f"RK3/CN, fft-poisson pressure, constant flow rate U_b = {dns.cfg.ub:.3f} (Dean). Run reached t = "
          f"{dns.t:.2f} h/u_tau ({dns.step_count} steps). Statistics averaged "
          f"over t = {window[0]:.2f}..{window[1]:.2f} ({n} samples, both halves folded); everything before "
          f"t = {args.t_start} is discarded as transient. {args.note}\n\n"
          + markdown_table(rows, ["quantity", "here", "target", "met", "halves"])
          + "\n(halves: the same numbers from the first / second half of the averaging window, a measure "
            "of the statistical uncertainty.)\n"
          + f"\nAll targets met: **{cmp['all_met']}**.\n\nPlots: {args.name}_profiles.png, {args.name}_history.png.\n")
    write_results(args.name, payload, md)
    print(md)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    t = sub.add_parser("timing")
    t.add_argument("--grid", default="32,64,32")
    t.add_argument("--checkpoint", default=None)
    t.add_argument("--spinup", type=int, default=300)
    t.add_argument("--steps", type=int, default=10)
    t.add_argument("--rtol", type=float, default=1e-8)
    t.add_argument("--maxiter", type=int, default=2000)
    t.add_argument("--budget", type=float, default=30.0, help="CPU seconds per solver before it is cut short")
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--threads", type=thread_count, default=1, help="threads of every solver (torch, BLAS, numba)")
    r = sub.add_parser("report")
    r.add_argument("--run", default="runs/channel180")
    r.add_argument("--t-start", type=float, default=10.0)
    r.add_argument("--name", default="channel_re180", help="results file stem under benchmarks/results/")
    r.add_argument("--note", default="", help="sentence added to the description (e.g. how the run was seeded)")
    a = ap.parse_args(argv)
    (timing if a.cmd == "timing" else report)(a)


if __name__ == "__main__":
    main()
