"""Surrogates of the turbulent channel (issue 12): ifactformer-m, ifactformer-o, fno and ifno, each
with and without the divergence-free projection, trained on the same data with the same budget.

Per run: parameters, training seconds per epoch, one-step test error (held-out trajectory), error
at steps 1..10, the step at which a long rollout leaves the energy band (or none), late-rollout
statistics errors against the filtered DNS, divergence of the predictions, inference seconds per
step, and the DNS seconds to advance the same physical time (``datagen.channel.ChannelDNS`` on the
data file's DNS grid, same threads, same machine).

Next to them, in the same table and plots, the LES baselines of issue 13 on the same coarse grid
(``--les none,wale,dsm``: no model, WALE, dynamic Smagorinsky; ``datagen.channel.les.run_les``, the
code of ``datagen les`` and ``benchmarks/channel_les.py``), started from the held-out trajectory's
first snapshot, run for as many snapshot intervals as the surrogates' rollouts and judged by the
same ``operators evaluate``; with the seconds each takes per snapshot interval and the factor by
which a surrogate step is faster.

    python benchmarks/operators.py --data runs/surrogate/train.h5 --threads 1 --epochs 16 \
        --finetune-epochs 4 --finetune-rollout-steps 6 --finetune-ema 0.995 \
        --finetune-select rollout --finetune-select-steps 1000           # the CPU recipe of operators.md
    python benchmarks/operators.py --quick --data small.h5                               # minutes

Resumable: every finished run keeps ``<work>/<run>/result.json`` and is skipped next time; an
interrupted training continues from its last epoch. Writes benchmarks/results/operators{,_quick}
.{json,md} and plots.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.common import thread_count  # noqa: E402

#: the CPU recipe: every model trained with the same data, epochs, batch, optimiser; the widths and
#: implicit iterations are reduced from the paper's so that one training fits about an hour on 2 cores
RECIPE = {
    "ifactformer-m": dict(dim=48, heads=4, dim_head=32, iterations=4),
    "ifactformer-o": dict(dim=48, heads=4, dim_head=32, iterations=4),
    "fno": dict(in_steps=1, modes=[8, 8, 4], width=24, n_layers=4),
    "ifno": dict(in_steps=1, modes=[8, 8, 4], width=32, iterations=4),
}
#: --quick: tiny models, minutes in all
QUICK = {
    "ifactformer-m": dict(dim=12, heads=2, dim_head=8, iterations=2),
    "ifactformer-o": dict(dim=12, heads=2, dim_head=8, iterations=2),
    "fno": dict(in_steps=1, modes=[4, 4, 2], width=8, n_layers=2),
    "ifno": dict(in_steps=1, modes=[4, 4, 2], width=8, iterations=2),
}
MODELS = tuple(RECIPE)


def dns_seconds_per_snapshot(data_path, threads: int, steps: int = 20) -> dict:
    """Time ChannelDNS on the data file's DNS grid: seconds per DNS step (median of 3 blocks) and
    per snapshot interval (``snapshot_interval_steps`` steps)."""
    import h5py

    from datagen.channel import ChannelConfig, ChannelDNS, perturbed_laminar

    with h5py.File(data_path, "r") as f:
        g = json.loads(f.attrs["dns_grid"])
        every = int(f.attrs["snapshot_interval_steps"])
        dt = float(f.attrs["dt"])
        re_tau = float(f.attrs["Re_tau"])
    # the cost of a step depends neither on the state nor on dt: a weakly perturbed laminar
    # start (faster at the centre than developed flow) at half the data's dt stays stable
    cfg = ChannelConfig(re_tau=re_tau, grid=dict(nx=g["nx"], ny=g["ny"], nz=g["nz"], lx=g["lx"], lz=g["lz"],
                                                 stretch=g.get("stretch", 1.8)), dt=0.5 * dt)
    dns = perturbed_laminar(ChannelDNS(cfg), amplitude=0.02, seed=0)
    dns.run(3, check_every=10)  # compiles the kernels
    times = []
    for _ in range(3):
        t0 = time.perf_counter()
        dns.run(steps, check_every=10)
        times.append((time.perf_counter() - t0) / steps)
    s = statistics.median(times)
    return {"dns_grid": [g["nx"], g["ny"], g["nz"]], "dt": dt, "steps_per_snapshot": every,
            "seconds_per_dns_step": s, "seconds_per_snapshot": s * every, "threads": threads}


def inference_seconds(model, step, x, repeat: int = 5, inner: int = 3) -> float:
    import torch

    with torch.no_grad():
        step(x)  # warm-up
        times = []
        for _ in range(repeat):
            t0 = time.perf_counter()
            for _ in range(inner):
                step(x)
            times.append((time.perf_counter() - t0) / inner)
    return statistics.median(times)


def retime(runs, work: Path, data, test_k: int, log, rounds: int = 3) -> None:
    """Time every run's inference step again, interleaved over ``rounds`` rounds (medians); the
    values measured right after each training are kept as ``inference_seconds_per_step_at_training``."""
    import torch

    from operators.checkpoint import load_checkpoint
    from operators.projection import Projector
    from operators.stepping import predictor

    P = Projector(data.grid, float(data.attrs["Lx"]), float(data.attrs["Lz"]))
    steps = []
    for r in runs:
        d = work / (r["model"] + ("+project" if r["project"] else ""))
        model, ck = load_checkpoint(d / model_file_name(r.get("recipe", {})))
        x = torch.from_numpy(data.velocity[test_k, :int(ck["in_steps"])].copy())[None]
        steps.append((model, predictor(model, P if r["project"] else None), x))
    times = [[] for _ in runs]
    for _ in range(rounds):
        for i, (model, step, x) in enumerate(steps):
            times[i].append(inference_seconds(model, step, x))
    for r, t in zip(runs, times, strict=True):
        r.setdefault("inference_seconds_per_step_at_training", r["inference_seconds_per_step"])
        r["inference_seconds_per_step"] = statistics.median(t)
        log(f"{label(r)}: {r['inference_seconds_per_step']:.4g} s per step")


def relative_divergence(P, u) -> float:
    """||D u|| / (||D_x u|| + ||D_y v|| + ||D_z w||): 0 for a discretely divergence-free field, of
    order 1 for one whose derivative terms do not cancel."""
    import numpy as np

    parts = []
    for c in range(3):
        one = np.zeros_like(u)
        one[c] = u[c]
        parts.append(np.linalg.norm(P.divergence(one)))
    return float(np.linalg.norm(P.divergence(u)) / max(sum(parts), 1e-300))


def model_file_name(recipe: dict) -> str:
    """The checkpoint a run is judged by: the last fine-tuning epoch, the fine-tuning epoch chosen by
    validation rollouts, or (no fine-tuning) the one-step phase's best."""
    if not recipe.get("finetune_epochs"):
        return "best.pt"
    return "best.pt" if recipe.get("finetune_select", "last") == "rollout" else "last.pt"


def finished_run(done: Path, recipe: dict, tag: str, log) -> dict | None:
    """The result of a run finished earlier under the same recipe, or None; a result made with
    another recipe stops the benchmark (its rows would not compare)."""
    if not done.exists():
        return None
    res = json.loads(done.read_text())
    if res.get("recipe", recipe) != recipe:
        raise SystemExit(f"{done} was made with another recipe ({res.get('recipe')}); use another --work")
    log(f"{tag}: finished earlier, skipped")
    return res


def one_run(name: str, project: bool, cfg: dict, args, work: Path, data, test_k: int, log) -> dict:
    import numpy as np
    import torch

    from operators.checkpoint import load_checkpoint
    from operators.evaluate import evaluate
    from operators.projection import Projector
    from operators.rollout import rollout
    from operators.stepping import predictor
    from operators.train import train

    tag = name + ("+project" if project else "")
    d = work / tag
    done = d / "result.json"
    recipe = {k: getattr(args, k) for k in ("epochs", "batch", "lr", "step_size", "gamma", "rollout_steps",
                                             "stats_weight", "noise", "finetune_epochs", "finetune_rollout_steps",
                                             "finetune_stats_weight", "finetune_lr", "seed", "steps", "band")}
    if args.finetune_select != "last":  # recipes written before the option compare equal to "last"
        recipe["finetune_select"] = args.finetune_select
    if args.finetune_select_steps is not None:
        recipe["finetune_select_steps"] = args.finetune_select_steps
    if args.finetune_ema:
        recipe["finetune_ema"] = args.finetune_ema
    res = finished_run(done, recipe, tag, log)
    if res is not None:
        return res
    t0 = time.perf_counter()
    fine = args.finetune_epochs > 0
    first = d / "pretrain" if fine else d
    resume = (first / "last.pt").exists()
    if not (first / "metrics.json").exists() or json.loads((first / "metrics.json").read_text()).get("summary") is None:
        log(f"{tag}: training{' (resumed)' if resume else ''} {cfg}")
        summary = train(args.data, first, name, cfg, epochs=args.epochs, batch=args.batch, lr=args.lr,
                        project=project, step_size=args.step_size, gamma=args.gamma,
                        rollout_steps=args.rollout_steps, stats_weight=args.stats_weight, noise=args.noise,
                        threads=args.threads, seed=args.seed, resume=resume, log=log)
    hist = json.loads((first / "metrics.json").read_text())["epochs"]
    fine_hist = []
    if fine:
        # the second phase continues from the first's best weights with the multi-step and
        # statistics losses; the model is its last epoch, or with --finetune-select rollout the
        # epoch whose validation-trajectory rollouts have the best late statistics
        resume = (d / "last.pt").exists()
        log(f"{tag}: fine-tuning{' (resumed)' if resume else ''}: {args.finetune_epochs} epochs, "
            f"{args.finetune_rollout_steps} steps, statistics weight {args.finetune_stats_weight}")
        summary = train(args.data, d, name, cfg, epochs=args.finetune_epochs, batch=args.batch,
                        lr=args.finetune_lr, project=project, step_size=args.step_size, gamma=args.gamma,
                        rollout_steps=args.finetune_rollout_steps, stats_weight=args.finetune_stats_weight,
                        noise=args.noise, init=first / "best.pt", threads=args.threads, seed=args.seed,
                        resume=resume, log=log,
                        select="rollout" if args.finetune_select == "rollout" else "val-loss",
                        select_steps=args.finetune_select_steps, ema=args.finetune_ema)
        fine_hist = json.loads((d / "metrics.json").read_text())["epochs"]
    else:
        summary = json.loads((d / "metrics.json").read_text())["summary"]
    train_wall = time.perf_counter() - t0
    model_file = d / model_file_name(recipe)
    model, ck = load_checkpoint(model_file)
    P = Projector(data.grid, float(data.attrs["Lx"]), float(data.attrs["Lz"]))
    step = predictor(model, P if project else None)
    n_in = int(ck["in_steps"])
    x = torch.from_numpy(data.velocity[test_k, :n_in].copy())[None]
    s_step = inference_seconds(model, step, x)
    # divergence of one-step predictions along the held-out trajectory, and of the data itself
    with torch.no_grad():
        idx = range(0, data.n_snapshots - n_in, max(1, (data.n_snapshots - n_in) // 8))
        preds = [step(torch.from_numpy(data.velocity[test_k, s:s + n_in].copy())[None])[0].double().numpy()
                 for s in idx]
    div_pred = float(np.mean([relative_divergence(P, p) for p in preds]))
    div_data = float(np.mean([relative_divergence(P, data.velocity[test_k, s + n_in].astype(float)) for s in idx]))
    log(f"{tag}: rollout of {args.steps} steps")
    r = rollout(model_file, args.data, test_k, args.steps, d / "rollout.h5", project=project,
                threads=args.threads, band=args.band)
    if r.steps_completed:
        rep = evaluate(d / "rollout.h5", args.data, d / "report", overwrite=True)
    else:  # left the band at its first step: nothing to average
        rep = {"per_step": {"rel_l2": []}, "statistics": {"errors": None, "checks": None, "late_snapshots": 0},
               "spectra": {k: {"rel_l2": None} for k in ("kx_y15", "kz_y15", "kx_centre", "kz_centre")},
               "the_well": {}}
    res = {"model": name, "project": project, "recipe": recipe, "config": summary["model_config"], "parameters": summary["parameters"],
           "epochs": len(hist), "train_seconds_per_epoch": float(np.median([h["seconds"] for h in hist])),
           "finetune_epochs": len(fine_hist),
           "finetune_seconds_per_epoch": float(np.median([h["seconds"] for h in fine_hist])) if fine_hist else None,
           "train_seconds_total": float(sum(h["seconds"] for h in hist + fine_hist)),
           "train_wall_s_this_call": train_wall, "best_epoch": summary["best_epoch"],
           "one_step_test_rel_l2": summary["test_one_step_rel_l2"], **_report_fields(rep),
           "rollout_steps_requested": args.steps, "rollout_steps_completed": r.steps_completed,
           "left_band_at_step": r.stopped_at_step, "stop_reason": r.reason,
           "the_well_vrmse_steps_1_10": (rep["the_well"].get("VRMSE") or [])[:10],
           "divergence_rel_pred": div_pred, "divergence_rel_data": div_data,
           "inference_seconds_per_step": s_step, "rollout_seconds_per_step": r.seconds_per_step}
    done.write_text(json.dumps(res, indent=1, default=float))
    return res


LES_MODELS = {"none": None, "wale": "wale", "dsm": "dsm"}


def les_run(label: str, args, work: Path, test_k: int, log) -> dict:
    """An LES baseline (``label`` in ``LES_MODELS``) from the held-out trajectory's first snapshot for
    ``args.steps`` snapshot intervals, evaluated like a surrogate rollout."""
    import numpy as np

    from datagen.channel.dns import ChannelBlowUp
    from datagen.channel.les import run_les
    from operators.evaluate import evaluate

    tag = f"les-{label}"
    d = work / tag
    done = d / "result.json"
    recipe = {k: getattr(args, k) for k in ("epochs", "batch", "lr", "step_size", "gamma", "rollout_steps",
                                             "stats_weight", "noise", "seed", "steps", "band")}
    res = finished_run(done, recipe, tag, log)
    if res is not None:
        return res
    d.mkdir(parents=True, exist_ok=True)
    log(f"{tag}: {args.steps} snapshot intervals")
    res = {"model": tag, "les": label, "project": False, "parameters": None, "train_seconds_per_epoch": None,
           "rollout_steps_requested": args.steps, "divergence_rel_pred": None}
    try:
        r = run_les(args.data, d / "les.h5", trajectory=test_k, sgs=LES_MODELS[label], snapshots=args.steps + 1)
    except ChannelBlowUp as exc:
        res.update(rollout_steps_completed=int(exc.snapshot) - 1, left_band_at_step=int(exc.snapshot),
                   stop_reason=" ".join(str(exc).split()), rel_l2_per_step=[], rel_l2_steps_1_10=[],
                   one_step_test_rel_l2=None, late_statistics_rel_err=None, late_statistics_checks=None,
                   late_snapshots=0, spectra_rel_l2=None, late_profiles=None, seconds_per_interval=None)
        done.write_text(json.dumps(res, indent=1, default=float))
        return res
    rep = evaluate(d / "les.h5", args.data, d / "report", overwrite=True)
    err = rep["per_step"]["rel_l2"]
    res.update(rollout_steps_completed=args.steps, left_band_at_step=None, stop_reason="",
               les_dt=r["dt"], les_steps_per_interval=r["steps_per_snapshot"], **_report_fields(rep),
               one_step_test_rel_l2=err[0] if err else None,
               seconds_per_interval=float(np.median(r["seconds_per_snapshot"])))
    done.write_text(json.dumps(res, indent=1, default=float))
    return res


def _report_fields(rep: dict) -> dict:
    """What the benchmark keeps of an ``operators evaluate`` report (surrogates and LES alike)."""
    err = rep["per_step"]["rel_l2"]
    st = rep["statistics"]
    return {"rel_l2_steps_1_10": err[:10], "rel_l2_per_step": err, "late_statistics_rel_err": st["errors"],
            "late_statistics_checks": st["checks"], "late_snapshots": st["late_snapshots"],
            "late_profiles": {"y_plus": st.get("y_plus"), "prediction": st.get("prediction"),
                              "reference": st.get("reference")} if st["errors"] else None,
            "spectra_rel_l2": {k: rep["spectra"][k]["rel_l2"] for k in ("kx_y15", "kz_y15", "kx_centre",
                                                                          "kz_centre")}}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", required=True, help="channel trajectory file (the last trajectory is held out)")
    ap.add_argument("--work", default=str(ROOT / "runs" / "bench-operators"), help="checkpoints and rollouts")
    ap.add_argument("--models", default=",".join(MODELS))
    ap.add_argument("--epochs", type=int, default=None)
    ap.add_argument("--batch", type=int, default=5)
    ap.add_argument("--lr", type=float, default=5e-4)
    ap.add_argument("--step-size", type=int, default=5, help="StepLR: epochs between decays")
    ap.add_argument("--gamma", type=float, default=0.7, help="StepLR: decay factor")
    ap.add_argument("--rollout-steps", type=int, default=1, help="K-step autoregressive loss")
    ap.add_argument("--stats-weight", type=float, default=0.0, help="weight of the plane-statistics loss")
    ap.add_argument("--noise", type=float, default=0.0, help="training-input noise (x each component's std)")
    ap.add_argument("--finetune-epochs", type=int, default=0,
                    help="a second phase from the first's best weights (0: none)")
    ap.add_argument("--finetune-rollout-steps", type=int, default=3)
    ap.add_argument("--finetune-stats-weight", type=float, default=1.0)
    ap.add_argument("--finetune-lr", type=float, default=2e-4)
    ap.add_argument("--finetune-ema", type=float, default=0.0,
                    help="fine-tuning: decay of the moving average of the weights (0: off)")
    ap.add_argument("--finetune-select", choices=("last", "rollout"), default="last",
                    help="the fine-tuned model: its last epoch, or the epoch with the best late statistics "
                         "of validation-trajectory rollouts (operators train --select rollout)")
    ap.add_argument("--finetune-select-steps", type=int, default=None,
                    help="with --finetune-select rollout: steps of each validation rollout (default: the "
                         "validation trajectory's length; the evaluation's horizon judges long-run drift)")
    ap.add_argument("--steps", type=int, default=None, help="rollout length (1000; --quick 50)")
    ap.add_argument("--threads", type=thread_count, default=2,
                    help="threads of the surrogates and of the DNS they are timed against (torch, BLAS, numba)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--no-project", action="store_true", help="skip the --project runs")
    ap.add_argument("--les", default=",".join(LES_MODELS), help="LES baselines next to the surrogates "
                    "(none, wale, dsm; '' for none of them)")
    ap.add_argument("--band", default=None, help="energy band LO,HI (0.5,2; --quick 0.05,20 so that the "
                    "untrained tiny models produce statistics to check the plumbing)")
    ap.add_argument("--retime", action="store_true", help="time every surrogate step and the DNS again, "
                    "side by side in this process (for a report made on a quiet machine)")
    ap.add_argument("--quick", action="store_true", help="tiny models, 1 epoch, 50 rollout steps")
    ap.add_argument("--name", default=None, help="results name (default operators, or operators_quick)")
    ap.add_argument("--note", default="", help="a line under the title (e.g. what makes this run preliminary)")
    args = ap.parse_args(argv)
    import numpy as np

    from benchmarks.common import markdown_table, set_threads, write_results
    from operators.data import load_channel

    set_threads(args.threads)  # the surrogates (torch) and the DNS (NumPy, BLAS, numba) alike
    args.epochs = args.epochs or (1 if args.quick else 20)
    args.steps = args.steps or (50 if args.quick else 1000)
    args.band = args.band or ("0.05,20" if args.quick else "0.5,2")
    recipe = QUICK if args.quick else RECIPE
    work = Path(args.work + ("-quick" if args.quick else ""))
    work.mkdir(parents=True, exist_ok=True)

    def log(line):
        print(line, flush=True)

    data = load_channel(args.data)
    test_k = data.n_trajectories - 1
    dns_path = work / "dns_timing.json"
    dns = json.loads(dns_path.read_text()) if dns_path.exists() else None
    if dns is None or dns.get("threads") != args.threads:
        log("timing the DNS")
        dns = dns_seconds_per_snapshot(args.data, args.threads)
        dns_path.write_text(json.dumps(dns, indent=1))
    # what projecting the filtered DNS itself costs: the error floor of every --project run
    from operators.projection import Projector

    P = Projector(data.grid, float(data.attrs["Lx"]), float(data.attrs["Lz"]))
    ref = data.velocity[test_k].astype(np.float64)
    floor = float(np.mean([np.linalg.norm(P(u) - u) / np.linalg.norm(u) for u in ref]))
    # persistence (u_t+1 = u_t): the one-step error any model must beat
    persistence = float(np.mean([np.linalg.norm(ref[s + 1] - ref[s]) / np.linalg.norm(ref[s + 1])
                                 for s in range(len(ref) - 1)]))
    runs = []
    for name in args.models.split(","):
        for project in ((False,) if args.no_project else (False, True)):
            runs.append(one_run(name, project, dict(recipe[name]), args, work, data, test_k, log))
    if args.retime:
        # every surrogate step and the DNS timed again now, in this one process, one after the other
        retime(runs, work, data, test_k, log)
        log("timing the DNS again")
        dns = dns_seconds_per_snapshot(args.data, args.threads)
        dns_path.write_text(json.dumps(dns, indent=1))
    for r in runs:  # the one-step model of a two-phase recipe, before the fine-tuning
        m1 = work / (r["model"] + ("+project" if r["project"] else "")) / "pretrain" / "metrics.json"
        summ = json.loads(m1.read_text()).get("summary") if m1.exists() else None
        r["phase1_one_step_test_rel_l2"] = summ["test_one_step_rel_l2"] if summ else None
    bad = [m for m in filter(None, args.les.split(",")) if m not in LES_MODELS]
    if bad:
        ap.error(f"--les takes {', '.join(LES_MODELS)}; got {', '.join(bad)}")
    les = [les_run(m, args, work, test_k, log) for m in filter(None, args.les.split(","))]
    nan = float("nan")
    rows = []
    for r in runs + les:
        e = r["rel_l2_steps_1_10"]
        st = r["late_statistics_rel_err"] or dict.fromkeys(("U_plus", "u_rms_plus", "v_rms_plus", "w_rms_plus",
                                                             "uv_peak"), nan)
        secs = seconds_per_interval(r)
        rows.append({"model": label(r), "params": r["parameters"] if r["parameters"] is not None else "-",
                     "s/epoch": r["train_seconds_per_epoch"] if r["train_seconds_per_epoch"] is not None else "-",
                     "1-step err": r["one_step_test_rel_l2"] if r["one_step_test_rel_l2"] is not None else nan,
                     **({"1-step err, phase 1": r.get("phase1_one_step_test_rel_l2") or "-"}
                        if args.finetune_epochs else {}),
                     "err@1": e[0] if e else nan, "err@10": e[9] if len(e) >= 10 else nan,
                     "left band at": r["left_band_at_step"] or "none", "late n": r["late_snapshots"],
                     "U+": st["U_plus"], "u'rms+": st["u_rms_plus"], "v'rms+": st["v_rms_plus"],
                     "w'rms+": st["w_rms_plus"], "-u'v'+ peak": st["uv_peak"],
                     "div": r["divergence_rel_pred"] if r["divergence_rel_pred"] is not None else "-",
                     "s/step": secs, "DNS/this": dns["seconds_per_snapshot"] / secs if secs else nan})
    name = args.name or ("operators_quick" if args.quick else "operators")
    md = [f"# Channel-flow surrogates ({'--quick: tiny models, a smoke test, not the recipe' if args.quick else 'CPU recipe'})",
          "", *([args.note, ""] if args.note else []), f"Data: `{args.data}` ({data.n_trajectories} trajectories x {data.n_snapshots} snapshots, coarse grid "
          f"{'x'.join(map(str, data.grid))}); trajectory {test_k} held out for testing. Same budget for every model: "
          f"{args.epochs} epochs, batch {args.batch}, AdamW lr {args.lr}, StepLR({args.step_size}, {args.gamma}), "
          f"loss: relative L2 over {args.rollout_steps} autoregressive step(s)"
          + (f" + {args.stats_weight} x plane statistics" if args.stats_weight else "")
          + (f", input noise {args.noise} std" if args.noise else "")
          + (f"; then {args.finetune_epochs} epoch(s) from those weights at lr {args.finetune_lr} with the relative "
             f"L2 over {args.finetune_rollout_steps} autoregressive steps + {args.finetune_stats_weight} x plane "
             "statistics (mean, rms profile of each component, u'v' profiles), "
             + (f"a moving average of the weights (decay {args.finetune_ema} per step), " if args.finetune_ema else "")
             + ("the epoch with the best late statistics of validation-trajectory rollouts (its largest "
                "error/target ratio" + (f", rollouts of {args.finetune_select_steps} steps"
                                        if args.finetune_select_steps else "") + ")"
                if args.finetune_select == "rollout" else "the last epoch's weights")
             + " rolled out"
             if args.finetune_epochs else "") + f", seed {args.seed}, "
          f"{args.threads} torch threads. Rollouts of {args.steps} steps from the held-out trajectory's first "
          f"snapshots; energy band [{args.band}] x the reference's mean turbulent kinetic energy.", "",
          f"DNS: {'x'.join(map(str, dns['dns_grid']))}, {dns['seconds_per_dns_step']:.4g} s/step x "
          f"{dns['steps_per_snapshot']} steps = {dns['seconds_per_snapshot']:.4g} s per snapshot interval "
          f"({dns['threads']} threads).", "", markdown_table(rows), "",
          "Late statistics: relative L2 errors of the wall-unit profiles over the last half of the rollout (`late n` "
          "snapshots; a rollout that left the energy band is averaged over the steps before it) "
          "against the time average of every reference snapshot; targets 3 % (U+), 15 % (rms), 20 % (-u'v'+ "
          "peak). `div`: relative discrete divergence ||D u|| / (||D_x u|| + ||D_y v|| + ||D_z w||) of one-step "
          "predictions on the held-out trajectory (the filtered DNS's own: "
          + ", ".join(f"{r['divergence_rel_data']:.3g}" for r in runs[:1]) + "). `DNS/surrogate`: DNS seconds "
          "per snapshot interval over this run's seconds per step (for an LES: per snapshot interval, "
          "`les-*` rows). LES rows: the solver on the coarse grid with no model (`les-none`), WALE and dynamic "
          "Smagorinsky, from the held-out trajectory's first snapshot, judged by the same `operators evaluate`; "
          "`1-step err` is their error after one snapshot interval, `left band at` the snapshot before which an "
          "LES blew up. Projecting the held-out filtered DNS "
          f"snapshots themselves changes them by {floor:.3g} (mean relative L2): the one-step error floor of the "
          "+proj runs, since the filtered data are not discretely divergence-free on the coarse grid. "
          f"Persistence (u_t+1 = u_t) has a one-step error of {persistence:.3g} on the held-out trajectory. "
          "Configs:", ""]
    md += [f"* `{r['model']}`{' +project' if r['project'] else ''}: `{json.dumps(r['config'], sort_keys=True)}`"
           for r in runs]
    md += ["", "## The issue's targets (ifactformer-m, without projection)", ""] + targets(runs, dns, args.steps)
    if les:
        speed = speed_rows(runs, les)
        md += ["", "## Surrogates against LES on the same coarse grid (issue 13)", "",
               "Speed: each LES's seconds per snapshot interval over each surrogate's seconds per step (the same "
               "physical time), same threads, same machine.", "", markdown_table(speed), "",
               *les_comparison(runs, les)]
    md.append("\nSeconds per step and the DNS's seconds were timed again side by side in the report's process "
              "(--retime; the LES seconds per interval are those measured in their runs); seconds per epoch were "
              "measured during training (the one-step phase), with other jobs sharing the 2 cores."
              if args.retime else "\nThe machine is shared with other jobs (2 cores); timings are indicative.")
    _plots(runs + les, name, dns)
    write_results(name, {"args": vars(args), "dns": dns, "projection_floor_rel_l2": floor,
                         "persistence_one_step_rel_l2": persistence, "runs": runs, "les": les,
                         "speed_factor_les_over_surrogate": speed_rows(runs, les) if les else []},
                  "\n".join(md) + "\n")
    log(f"wrote benchmarks/results/{name}.md")
    return np


def label(r: dict) -> str:
    return r["model"] + (" +proj" if r["project"] else "")


def seconds_per_interval(r: dict):
    """Seconds to advance one snapshot interval: a surrogate step, or an LES's median interval."""
    return r["seconds_per_interval"] if "les" in r else r["inference_seconds_per_step"]


def speed_rows(runs, les) -> list[dict]:
    """Per surrogate, the factor by which its step is faster than each LES over one snapshot interval."""
    rows = []
    for r in runs:
        row = {"surrogate": label(r), "s/step": r["inference_seconds_per_step"]}
        for q in les:
            s = q["seconds_per_interval"]
            row[f"{q['model']} s/interval"] = s if s else float("nan")
            row[f"{q['model']} / surrogate"] = s / r["inference_seconds_per_step"] if s else float("nan")
        rows.append(row)
    return rows


def les_comparison(runs, les) -> list[str]:
    """Which of ifactformer-m (without projection) and each LES is closer to the filtered DNS, per statistic."""
    m = next((r for r in runs if r["model"] == "ifactformer-m" and not r["project"]), None)
    if m is None or not m["late_statistics_rel_err"]:
        return ["* ifactformer-m has no late statistics to compare with the LES."]
    out = []
    for q in les:
        if not q["late_statistics_rel_err"]:
            out.append(f"* {q['model']}: blew up ({q['stop_reason']}); ifactformer-m is the closer by default.")
            continue
        closer = [f"{k} {'ifactformer-m' if m['late_statistics_rel_err'][k] < v else q['model']} "
                  f"({m['late_statistics_rel_err'][k]:.3g} vs {v:.3g})"
                  for k, v in q["late_statistics_rel_err"].items()]
        e_m, e_q = m["rel_l2_steps_1_10"], q["rel_l2_steps_1_10"]
        if e_m and e_q:
            closer.insert(0, f"error at step 1 {'ifactformer-m' if e_m[0] < e_q[0] else q['model']} "
                          f"({e_m[0]:.3g} vs {e_q[0]:.3g})")
        out.append(f"* ifactformer-m vs {q['model']}, closer to the filtered DNS: " + "; ".join(closer))
    return out


def targets(runs, dns, steps) -> list[str]:
    """The issue's four acceptance lines, judged on these runs."""
    plain = {r["model"]: r for r in runs if not r["project"]}
    m = plain.get("ifactformer-m")
    if m is None:
        return ["* ifactformer-m was not run."]
    yes = lambda ok: "met" if ok else "NOT met"  # noqa: E731
    others = {k: r["one_step_test_rel_l2"] for k, r in plain.items() if k != "ifactformer-m"}
    best_other = min(others.values()) if others else float("inf")
    b1 = min((r.get("phase1_one_step_test_rel_l2") or float("inf") for k, r in plain.items() if k != "ifactformer-m"),
             default=float("inf"))
    out = [f"* lowest one-step error of the four: {yes(m['one_step_test_rel_l2'] < best_other)} "
           f"({m['one_step_test_rel_l2']:.4g}; others {', '.join(f'{k} {v:.4g}' for k, v in others.items())})",
           *([f"* the same after the first (one-step) phase: {yes(m['phase1_one_step_test_rel_l2'] < b1)} "
              f"({m['phase1_one_step_test_rel_l2']:.4g}; others "
              + ", ".join(f"{k} {r['phase1_one_step_test_rel_l2']:.4g}" for k, r in plain.items()
                          if k != "ifactformer-m") + ")"]
             if m.get("phase1_one_step_test_rel_l2") is not None and all(
                 r.get("phase1_one_step_test_rel_l2") is not None for r in plain.values()) else []),
           f"* {steps} steps inside the energy band: {yes(m['left_band_at_step'] is None)}"
           + ("" if m["left_band_at_step"] is None else f" (left at step {m['left_band_at_step']})")]
    def late(r):
        st = r["late_statistics_rel_err"]
        if not st:
            return None
        ok = (st["U_plus"] <= 0.03 and max(st["u_rms_plus"], st["v_rms_plus"], st["w_rms_plus"]) <= 0.15
              and st["uv_peak"] <= 0.20)
        return (f"late statistics (U+ 3 %, rms 15 %, -u'v'+ peak 20 %): {yes(ok)} (U+ {st['U_plus']:.3g}, "
                f"u' {st['u_rms_plus']:.3g}, v' {st['v_rms_plus']:.3g}, w' {st['w_rms_plus']:.3g}, "
                f"-u'v'+ peak {st['uv_peak']:.3g})")

    if late(m):
        out.append("* " + late(m))
    ratio = dns["seconds_per_snapshot"] / m["inference_seconds_per_step"]
    out.append(f"* a step at least 20x faster than the DNS over the same time: {yes(ratio >= 20)} ({ratio:.3g}x)")
    # the same model with every prediction projected onto divergence-free fields (--project)
    p = next((r for r in runs if r["project"] and r["model"] == "ifactformer-m"), None)
    if p is not None:
        ratio = dns["seconds_per_snapshot"] / p["inference_seconds_per_step"]
        out += ["", "With `--project` (ifactformer-m +proj):", "",
                f"* {steps} steps inside the energy band: {yes(p['left_band_at_step'] is None)}"
                + ("" if p["left_band_at_step"] is None else f" (left at step {p['left_band_at_step']})"),
                *(["* " + late(p)] if late(p) else []),
                f"* a step at least 20x faster than the DNS over the same time: {yes(ratio >= 20)} ({ratio:.3g}x)"]
    return out


def _plots(runs, name, dns=None):
    """Surrogates and LES in one set of figures: error per step (1..10 and the whole run), late
    statistics errors, seconds per snapshot interval, and the late profiles against the filtered DNS."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    from benchmarks.common import RESULTS

    RESULTS.mkdir(parents=True, exist_ok=True)

    def style(r):
        if "les" in r:
            return dict(color={"none": "0.5", "wale": "tab:olive", "dsm": "tab:brown"}[r["les"]], ls=":", marker="^")
        return dict(ls="--" if r["project"] else "-", marker="s" if r["project"] else "o")

    def save(fig, suffix):
        fig.tight_layout()
        fig.savefig(RESULTS / f"{name}_{suffix}.png", dpi=110)
        plt.close(fig)

    for suffix, key, log in (("error_steps", "rel_l2_steps_1_10", False), ("error_rollout", "rel_l2_per_step", True)):
        fig, ax = plt.subplots(figsize=(6, 4))
        for r in runs:
            e = r.get(key) or r["rel_l2_steps_1_10"]
            (ax.semilogy if log else ax.plot)(range(1, len(e) + 1), e, ms=3 if len(e) <= 10 else 0,
                                              label=label(r), **style(r))
        ax.set_xlabel("step (snapshot interval)")
        ax.set_ylabel("relative L2 error (held-out trajectory)")
        ax.legend(fontsize=7)
        save(fig, suffix)

    qs = ("U_plus", "u_rms_plus", "v_rms_plus", "w_rms_plus", "uv_peak")
    judged = [r for r in runs if r["late_statistics_rel_err"]]
    fig, ax = plt.subplots(figsize=(9, 4))
    width = 0.8 / max(len(judged), 1)
    for i, r in enumerate(judged):
        ax.bar(np.arange(len(qs)) + i * width, [r["late_statistics_rel_err"][q] for q in qs], width,
               label=label(r), color=style(r).get("color"), hatch="//" if "les" in r else None)
    ax.set_xticks(np.arange(len(qs)) + 0.4 - width / 2, ["U+", "u'rms+", "v'rms+", "w'rms+", "-u'v'+ peak"])
    ax.set_yscale("log")
    ax.set_ylabel("late-statistics relative error")
    ax.legend(fontsize=6, ncol=2)
    save(fig, "late_stats")

    fig, ax = plt.subplots(figsize=(7, 4))
    timed = [(label(r), seconds_per_interval(r)) for r in runs if seconds_per_interval(r)]
    ax.barh([t[0] for t in timed], [t[1] for t in timed], color=["tab:brown" if t[0].startswith("les") else "tab:blue"
                                                                   for t in timed])
    if dns:
        ax.axvline(dns["seconds_per_snapshot"], color="k", ls="--", label="DNS")
        ax.legend()
    ax.set_xscale("log")
    ax.set_xlabel("seconds per snapshot interval (surrogate step, LES or DNS)")
    save(fig, "seconds")

    shown = [r for r in judged if r.get("late_profiles") and ("les" in r or (r["model"] == "ifactformer-m"
                                                                             and not r["project"]))]
    if shown:
        fig, axs = plt.subplots(1, 3, figsize=(14, 4))
        lp = shown[0]["late_profiles"]
        yp = np.asarray(lp["y_plus"])[1:]
        ref = {q: np.asarray(v)[1:] for q, v in lp["reference"].items()}
        axs[0].semilogx(yp, ref["U_plus"], "k-", lw=2, label="filtered DNS")
        for q, ls in (("u_rms_plus", "-"), ("v_rms_plus", ":"), ("w_rms_plus", "-.")):
            axs[1].plot(yp, ref[q], "k", ls=ls, lw=2)
        axs[2].plot(yp, -ref["uv_plus"], "k-", lw=2)
        for r in shown:
            pr = {q: np.asarray(v)[1:] for q, v in r["late_profiles"]["prediction"].items()}
            yr = np.asarray(r["late_profiles"]["y_plus"])[1:]  # each run's own wall units
            st = {"color": "tab:blue", **{k: v for k, v in style(r).items() if k != "ls"}}
            axs[0].semilogx(yr, pr["U_plus"], label=label(r), ms=3, **st)
            for q, ls in (("u_rms_plus", "-"), ("v_rms_plus", ":"), ("w_rms_plus", "-.")):
                axs[1].plot(yr, pr[q], ls=ls, ms=3, **st)
            axs[2].plot(yr, -pr["uv_plus"], ms=3, **st)
        axs[0].set(xlabel="y+", ylabel="U+", title="mean velocity (late)")
        axs[1].set(xlabel="y+", ylabel="rms+", title="u' (-), v' (:), w' (-.)")
        axs[2].set(xlabel="y+", ylabel="-u'v'+", title="Reynolds shear stress")
        axs[0].legend(fontsize=7)
        save(fig, "profiles")


if __name__ == "__main__":
    main()
