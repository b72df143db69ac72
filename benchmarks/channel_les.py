"""LES baselines on the coarse grid of a channel dataset, judged like the surrogates.

``python benchmarks/channel_les.py --data train.h5 [--trajectory -1] [--name channel_les]``

From the first snapshot of the held-out (by default the last) trajectory of a channel file
(``datagen generate channel``), the coarse grid is advanced by

* ``none``: the solver on the coarse grid without a model (coarse DNS),
* ``wale``: WALE (Nicoud & Ducros 1999, C_w = 0.5),
* ``dsm``: dynamic Smagorinsky (Germano et al. 1991, Lilly 1992; plane-averaged, clipped),

each through ``datagen.channel.les.run_les`` (the code path of ``datagen les``), for as
many snapshot intervals as the file holds, and compared with the filtered DNS of that
trajectory (the reference): relative L2 error per snapshot, late-time statistics (mean U+,
rms profiles, -u'v'+, streamwise and spanwise spectra at y+ ~ 15 and at the centre line,
from ``datagen.channel.stats``), wall seconds to advance one snapshot interval (median)
and whether the run stayed stable. The DNS's own seconds per snapshot interval are
measured on its grid with the same code (from a perturbed laminar state; the cost of a
step does not depend on the state). Results: benchmarks/results/<name>.{json,md} and
<name>_*.png.
"""
from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import tempfile
from pathlib import Path

import h5py
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import RESULTS, markdown_table, set_threads, thread_count, write_results  # noqa: E402
from benchmarks.operators import dns_seconds_per_snapshot  # noqa: E402

MODELS = (("none", None), ("wale", "wale"), ("dsm", "dsm"))
QUANTITIES = ("U_plus", "u_rms_plus", "v_rms_plus", "w_rms_plus", "uv_plus")


def rel_l2(a, b) -> float:
    return float(np.linalg.norm(a - b) / max(np.linalg.norm(b), 1e-300))


def main(argv=None):
    from datagen.channel.dns import ChannelBlowUp
    from datagen.channel.les import run_les
    from datagen.channel.stats import coarse_profiles, coarse_spectra

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", required=True, help="channel trajectory file (the surrogates' data)")
    ap.add_argument("--trajectory", type=int, default=-1, help="held-out trajectory (default: the last)")
    ap.add_argument("--snapshots", type=int, default=None, help="snapshots to run (default: the file's)")
    ap.add_argument("--late", type=float, default=0.5, help="late-time window: the last fraction of snapshots")
    ap.add_argument("--name", default="channel_les", help="results name under benchmarks/results/")
    ap.add_argument("--workdir", default=None, help="where the LES files go (default: a temporary directory)")
    ap.add_argument("--threads", type=thread_count, default=1,
                    help="threads of the LES and the DNS it is timed against (torch, BLAS, numba; recorded)")
    a = ap.parse_args(argv)
    set_threads(a.threads)

    with h5py.File(a.data, "r") as f:
        attrs = {k: f.attrs[k] for k in f.attrs}
        K = f["t1_fields/velocity"].shape[0]
        k = a.trajectory % K
        ref = f["t1_fields/velocity"][k].astype(np.float64)
        y, x, z = (f["dimensions"][n][()].astype(np.float64) for n in ("y", "x", "z"))
    S = min(a.snapshots or ref.shape[0], ref.shape[0])
    ref = ref[:S]
    nu, lx, lz = float(attrs["nu"]), float(attrs["Lx"]), float(attrs["Lz"])
    every = int(attrs["snapshot_interval_steps"])
    late = slice(max(1, int(round(S * (1 - a.late)))), S)
    work = Path(a.workdir or tempfile.mkdtemp(prefix="channel_les_"))
    work.mkdir(parents=True, exist_ok=True)

    dns = dns_seconds_per_snapshot(a.data, a.threads)  # the surrogate benchmark's DNS timing
    runs = {"filtered DNS": {"vel": ref, "stable": True, "seconds_per_interval": dns["seconds_per_snapshot"],
                             "steps_per_interval": every, "dt": float(attrs["dt"])}}
    for label, sgs in MODELS:
        out = work / f"les_{label}.h5"
        try:
            res = run_les(a.data, out, trajectory=k, sgs=sgs, snapshots=S)
        except ChannelBlowUp as exc:
            runs[label] = {"stable": False, "blew_up_before_snapshot": getattr(exc, "snapshot", None),
                           "error": str(exc)}
            print(f"{label}: blew up ({exc})", flush=True)
            continue
        with h5py.File(out, "r") as f:
            vel = f["t1_fields/velocity"][0].astype(np.float64)
        runs[label] = {"vel": vel, "stable": True, "seconds_per_interval": statistics.median(res["seconds_per_snapshot"]),
                       "steps_per_interval": res["steps_per_snapshot"], "dt": res["dt"]}
        print(f"{label}: {statistics.median(res['seconds_per_snapshot']):.3f} s per interval", flush=True)

    stats = {}
    for label, r in runs.items():
        if "vel" not in r:
            continue
        r["error_per_snapshot"] = [rel_l2(r["vel"][s], ref[s]) for s in range(S)]
        prof = coarse_profiles(r["vel"][late], y, nu)
        spec = coarse_spectra(r["vel"][late], y, nu, lx, lz)
        stats[label] = {"profiles": prof, "spectra": spec}
    rp = stats["filtered DNS"]["profiles"]
    rs = stats["filtered DNS"]["spectra"]
    rows = []
    for label, r in runs.items():
        row = {"run": label, "stable": "yes" if r["stable"] else f"no (before snapshot {r['blew_up_before_snapshot']})",
               "dt": r.get("dt", math.nan), "steps/interval": r.get("steps_per_interval", ""),
               "s/interval": r.get("seconds_per_interval", math.nan)}
        if label in stats:
            p, sp = stats[label]["profiles"], stats[label]["spectra"]
            err = r["error_per_snapshot"]
            row.update({"err start": err[0], "err step 1": err[1] if S > 1 else math.nan, "err last": err[-1]})
            for q in QUANTITIES:
                row[f"{q} rel L2"] = rel_l2(p[q], rp[q])
            row["-uv+ peak"] = float(np.max(-p["uv_plus"]))
            row["Re_tau (wall)"] = p["re_tau_wall"]
            for where in ("near", "centre"):
                row[f"Euu_x {where} rel L2"] = rel_l2(sp[where]["Euu_x"], rs[where]["Euu_x"])
                row[f"Euu_z {where} rel L2"] = rel_l2(sp[where]["Euu_z"], rs[where]["Euu_z"])
        rows.append(row)

    RESULTS.mkdir(parents=True, exist_ok=True)
    _plots(a.name, runs, stats, S, y)
    payload = {"name": a.name, "data": str(a.data), "trajectory": k, "snapshots": S, "late_window": [late.start, late.stop],
               "snapshot_dt": float(attrs["snapshot_dt"]), "coarse_grid": [len(x), len(y), len(z)],
               "box": [lx, lz], "re_tau": float(attrs["Re_tau"]), "dns_grid": json.loads(attrs["dns_grid"]),
               "threads": a.threads, "rows": rows,
               "error_per_snapshot": {lb: r.get("error_per_snapshot") for lb, r in runs.items()},
               "profiles": {lb: {q: np.asarray(v).tolist() if isinstance(v, np.ndarray) else v
                                 for q, v in s["profiles"].items()} for lb, s in stats.items()},
               "spectra": {lb: {w: ({q: np.asarray(v).tolist() for q, v in d.items()} if isinstance(d, dict)
                                    else np.asarray(d).tolist()) for w, d in s["spectra"].items()}
                           for lb, s in stats.items()}}
    md = _markdown(payload, rows, attrs, runs)
    write_results(a.name, payload, md)
    print(md)


def _markdown(payload, rows, attrs, runs) -> str:
    dns = payload["dns_grid"]
    cols = ["run", "stable", "dt", "steps/interval", "s/interval", "err start", "err step 1", "err last"]
    stat_cols = ["run"] + [f"{q} rel L2" for q in QUANTITIES] + ["-uv+ peak", "Re_tau (wall)"]
    spec_cols = ["run", "Euu_x near rel L2", "Euu_z near rel L2", "Euu_x centre rel L2", "Euu_z centre rel L2"]
    ref_s = runs["filtered DNS"]["seconds_per_interval"]
    speed = [{"run": r["run"], "DNS s / this s": ref_s / r["s/interval"]} for r in rows
             if r["run"] != "filtered DNS" and isinstance(r["s/interval"], float) and r["s/interval"] > 0]
    nx, ny, nz = payload["coarse_grid"]
    return (f"# Channel LES on the coarse grid against the filtered DNS\n\n"
            f"Data: `{payload['data']}`, trajectory {payload['trajectory']} (held out), {payload['snapshots']} "
            f"snapshots every {payload['snapshot_dt']:.4g} h/u_tau. Re_tau {payload['re_tau']:g}; DNS grid "
            f"{dns['nx']}x{dns['ny']}x{dns['nz']}, box {payload['box'][0]:.4g} x 2 x {payload['box'][1]:.4g}; "
            f"stored (and LES) grid {nx}x{ny}x{nz} (Gauss-Lobatto in y; the LES has {ny - 1} cells between those "
            f"points). Every run starts from the filtered DNS's first snapshot (mapped onto the staggered LES grid "
            f"and projected onto its divergence-free fields); `err start` is that mapping's error, most of it the "
            f"projection (the mapping alone round-trips to float32 precision). The filtered DNS holds box averages "
            f"(in y over the Gauss-Lobatto cell of each point), the LES point values, so they differ near the "
            f"wall by construction (e.g. U+ at the first point off the wall). Late-time statistics over snapshots "
            f"{payload['late_window'][0]}..{payload['late_window'][1] - 1}, in units of the nominal u_tau "
            f"(units h = 1, nu = 1/Re_tau), folded over both halves; relative L2 errors of the profiles against "
            f"the filtered DNS's. Time: wall seconds to advance one snapshot interval (median over the run), "
            f"{payload['threads']} thread(s), on a machine shared with other jobs.\n\n"
            f"## Accuracy per snapshot, cost, stability\n\n{markdown_table(rows, cols)}\n"
            f"## Late-time statistics (relative L2 against the filtered DNS)\n\n{markdown_table(rows, stat_cols)}\n"
            f"## Spectra of u' (relative L2 against the filtered DNS; near-wall plane y+ = "
            f"{payload['spectra']['filtered DNS']['y_plus_near']:.3g})\n\n{markdown_table(rows, spec_cols)}\n"
            f"## Speed relative to the DNS\n\n{markdown_table(speed)}\n"
            f"Plots: `{payload['name']}_profiles.png`, `{payload['name']}_error.png`, "
            f"`{payload['name']}_spectra.png`.\n")


def _plots(name, runs, stats, S, y):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    styles = {"filtered DNS": dict(color="k", lw=2), "none": dict(color="tab:gray", ls="--"),
              "wale": dict(color="tab:blue"), "dsm": dict(color="tab:red")}
    fig, axs = plt.subplots(1, 3, figsize=(14, 4))
    for label, s in stats.items():
        p = s["profiles"]
        axs[0].semilogx(p["y_plus"][1:], p["U_plus"][1:], label=label, **styles[label])
        for q, ls in (("u_rms_plus", "-"), ("v_rms_plus", ":"), ("w_rms_plus", "-.")):
            axs[1].plot(p["y_plus"], p[q], **{**styles[label], "ls": ls})
        axs[2].plot(p["y_plus"], -p["uv_plus"], **styles[label])
    axs[0].set(xlabel="y+", ylabel="U+", title="mean velocity")
    axs[1].set(xlabel="y+", ylabel="rms+", title="u' (-), v' (:), w' (-.)")
    axs[2].set(xlabel="y+", ylabel="-u'v'+", title="Reynolds shear stress")
    axs[0].legend()
    fig.tight_layout()
    fig.savefig(RESULTS / f"{name}_profiles.png", dpi=110)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(6, 4))
    for label, r in runs.items():
        if "error_per_snapshot" in r and label != "filtered DNS":
            ax.semilogy(range(S), np.maximum(r["error_per_snapshot"], 1e-16), label=label, **styles[label])
    ax.set(xlabel="snapshot", ylabel="relative L2 error vs filtered DNS", title="error per snapshot")
    ax.legend()
    fig.tight_layout()
    fig.savefig(RESULTS / f"{name}_error.png", dpi=110)
    plt.close(fig)

    fig, axs = plt.subplots(2, 2, figsize=(11, 8))
    yp = stats["filtered DNS"]["spectra"]["y_plus_near"]
    for label, s in stats.items():
        sp = s["spectra"]
        for row, where in enumerate(("near", "centre")):
            for col, (key, kk) in enumerate((("Euu_x", "kx"), ("Euu_z", "kz"))):
                # k = 0 off the log axis; the Nyquist mode is zero in every run (filter and staggering)
                axs[row, col].loglog(sp[kk][1:-1], sp[where][key][1:-1], label=label, **styles[label])
    for row, where in enumerate((f"y+ {yp:.3g}", "centre line")):
        axs[row, 0].set(xlabel="k_x", ylabel="E_uu", title=f"streamwise, {where}")
        axs[row, 1].set(xlabel="k_z", ylabel="E_uu", title=f"spanwise, {where}")
    axs[0, 0].legend()
    fig.tight_layout()
    fig.savefig(RESULTS / f"{name}_spectra.png", dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    main()
