"""Judging a rollout (or an LES run, or any file in the channel trajectory layout) against the
filtered DNS on the same coarse grid.

* Relative L2 error per step: snapshot s of the rollout against snapshot ``start + s`` of its
  reference trajectory (the rollout file's ``/rollout`` attributes say which; a file without them,
  e.g. an LES run, is compared trajectory by trajectory from its first snapshot).
* Statistics of the late rollout (the last ``late`` fraction of the predicted snapshots, all
  trajectories pooled) against the time average over every snapshot of every reference
  trajectory: mean U+, u'rms+, v'rms+, w'rms+, -u'v'+ (plane and time averages at the nodes,
  folded over the two halves), and streamwise/spanwise spectra of the fluctuating kinetic energy
  at the node nearest y+ = 15 and at the centre line. Wall units use the nominal friction velocity
  u_tau = Re_tau nu of the file (1 for the datagen channel), the same for prediction and
  reference, so that the errors are velocity errors. The profiles and spectra are datagen's
  (``datagen.channel.stats.coarse_profiles`` / ``coarse_spectra``), the same code as the LES
  benchmark's; the stored ``uv_plus`` profile is <u'v'>+ (negative in the lower half), the
  figure and the peak are of -u'v'+.
* The Well's metrics (``the_well.benchmark.metrics``: VRMSE and binned spectral MSE per step),
  where the-well is installed.
"""
from __future__ import annotations

import json
import math
import shutil
import tempfile
from pathlib import Path

import numpy as np

from datagen.channel.stats import coarse_profiles, coarse_spectra
from linsolve.core.errors import OptionError

from .data import ChannelData, DataError, check_trajectory_index, load_channel

PROFILES = ("U_plus", "u_rms_plus", "v_rms_plus", "w_rms_plus", "uv_plus")
LABELS = {"U_plus": "mean U+", "u_rms_plus": "u'rms+", "v_rms_plus": "v'rms+", "w_rms_plus": "w'rms+",
          "uv_plus": "-u'v'+"}
#: the issue's acceptance bounds for the late-rollout statistics
TARGETS = {"U_plus": 0.03, "u_rms_plus": 0.15, "v_rms_plus": 0.15, "w_rms_plus": 0.15, "uv_peak": 0.20}


def rel_l2(a, b) -> float:
    a, b = np.asarray(a, float), np.asarray(b, float)
    d = np.linalg.norm(b)
    return float(np.linalg.norm(a - b) / d) if d > 0 else float(np.linalg.norm(a - b))


def statistics_errors(pred_snaps, ref_snaps, y, nu: float, u_tau: float) -> tuple[dict, dict, dict, dict]:
    """Relative L2 errors of the time- and plane-averaged profiles (mean U+, rms, <u'v'>+) of the
    snapshots ``pred_snaps`` (N, 3, NX, NY, NZ) against those of ``ref_snaps``, and the relative
    error of the -u'v'+ peak.

    Returns
    -------
    errors, pred_profiles, ref_profiles, peaks : dict
        ``errors`` has one entry per ``PROFILES`` name and ``uv_peak``; the profiles are
        ``datagen.channel.stats.coarse_profiles``'s; ``peaks`` the two -u'v'+ peaks.
    """
    pp = coarse_profiles(np.moveaxis(pred_snaps, 1, -1), y, nu, u_tau)
    rp = coarse_profiles(np.moveaxis(ref_snaps, 1, -1), y, nu, u_tau)
    errors = {q: rel_l2(pp[q], rp[q]) for q in PROFILES}
    # uv_plus is <u'v'>+, negative in the lower half: its peak is that of -u'v'+
    peak_p, peak_r = float(np.max(-pp["uv_plus"])), float(np.max(-rp["uv_plus"]))
    errors["uv_peak"] = abs(peak_p - peak_r) / abs(peak_r) if peak_r else float("nan")
    return errors, pp, rp, {"prediction": peak_p, "reference": peak_r}


def _rollout_info(d: ChannelData) -> dict:
    """The ``/rollout`` group of a rollout file (empty for DNS and LES files)."""
    info = dict(d.groups.get("rollout", {}))
    if "energy" in info:
        info["energy_series"] = np.asarray(info.pop("energy"))
    if not info and "les_source_trajectory" in d.attrs:
        # an LES run (datagen les) starts from snapshot 0 of one trajectory of its source file
        info = {"reference_trajectory": int(d.attrs["les_source_trajectory"]), "rollout_start": 1, "start": 0,
                "les_model": str(d.attrs.get("les_model", ""))}
    return info


def _well_metrics(pred: np.ndarray, ref: np.ndarray) -> dict:
    """The Well's VRMSE and binned spectral MSE per step (channels-last (T, NX, NY, NZ, 3))."""
    try:
        import torch
        from the_well.benchmark.metrics import VRMSE, binned_spectral_mse
    except ImportError as exc:
        return {"available": False, "why": f"the-well is not installed ({exc})"}
    from types import SimpleNamespace

    meta = SimpleNamespace(n_spatial_dims=3, spatial_resolution=pred.shape[1:4], field_names=[["u", "v", "w"]],
                           dataset_name="channel_flow")
    x = torch.from_numpy(np.asarray(pred, np.float32))
    y = torch.from_numpy(np.asarray(ref, np.float32))
    out = {"available": True}
    try:
        out["VRMSE"] = VRMSE.eval(x, y, meta=meta).mean(dim=-1).tolist()
    except Exception as exc:  # noqa: BLE001 - a metric the installed version cannot compute here is reported
        out["VRMSE_error"] = " ".join(str(exc).split())[:200]
    try:
        spec = binned_spectral_mse.eval(x, y, meta=meta)
        out["binned_spectral_mse"] = {k: v.mean(dim=-1).tolist() for k, v in spec.items()} if isinstance(spec, dict) \
            else spec.tolist()
    except Exception as exc:  # noqa: BLE001
        out["binned_spectral_mse_error"] = " ".join(str(exc).split())[:200]
    return out


def evaluate(rollout_path, reference, out, *, late: float = 0.5, trajectory: int | None = None,
             overwrite: bool = False) -> dict:
    """Write ``report.json``, ``report.md`` and one PNG per quantity under ``out``.

    Parameters
    ----------
    rollout_path : str or Path
        A rollout (``operators rollout``), LES or DNS file in the channel trajectory layout.
    reference : str or Path
        The filtered DNS trajectories on the same coarse grid.
    out : str or Path
        Report directory (must not exist, or be empty, unless ``overwrite``).
    late : float
        Fraction of the predicted snapshots (the last ones) averaged for the statistics.
    trajectory : int, optional
        Reference trajectory for the per-step error of a file that does not name one.
    overwrite : bool
        Replace an existing report directory.

    Returns
    -------
    dict
        The report (as in ``report.json``).

    Raises
    ------
    DataError, OptionError
        Unreadable files, different grids, NaN, a bad index; nothing is written then.

    Examples
    --------
    >>> evaluate("rollout.h5", "test.h5", "report")["statistics"]["errors"]   # doctest: +SKIP
    """
    if not 0 < late <= 1:
        raise OptionError(f"late must be in (0, 1], got {late!r}")
    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())) and not overwrite:
        raise OptionError(f"--out {str(out)!r} exists and is not empty; use --overwrite")
    pred = load_channel(rollout_path)
    ref = load_channel(reference)
    if pred.grid != ref.grid:
        raise DataError(f"{str(rollout_path)!r} is on a {'x'.join(map(str, pred.grid))} grid, the reference "
                        f"{str(reference)!r} on {'x'.join(map(str, ref.grid))}")
    if not np.allclose(pred.y, ref.y, atol=1e-5):
        raise DataError(f"{str(rollout_path)!r} and {str(reference)!r} have different y nodes")
    info = _rollout_info(pred)
    first = int(info.get("rollout_start", 1))  # index of the first predicted snapshot
    offset = int(info.get("start", 0))
    if "reference_trajectory" in info:
        k = int(info["reference_trajectory"])
        k = k + ref.n_trajectories if k < 0 else k  # -1: the last trajectory (datagen les's default)
        pairs = [(0, check_trajectory_index(k, ref.n_trajectories, reference))]
    elif trajectory is not None:
        pairs = [(0, check_trajectory_index(trajectory, ref.n_trajectories, reference))]
    else:
        pairs = [(r, r) for r in range(min(pred.n_trajectories, ref.n_trajectories))]
    if pred.n_snapshots <= first:
        raise DataError(f"{str(rollout_path)!r} holds no predicted snapshot (only {pred.n_snapshots})")

    # --- per-step error ---------------------------------------------------------------------------
    per_traj = []
    well_pred, well_ref = [], []
    for r, k in pairs:
        n = min(pred.n_snapshots, ref.n_snapshots - offset)
        errs = [rel_l2(pred.velocity[r, s], ref.velocity[k, offset + s]) for s in range(first, n)]
        per_traj.append(errs)
        if n > first:
            well_pred.append(np.moveaxis(pred.velocity[r, first:n], 1, -1))
            well_ref.append(np.moveaxis(ref.velocity[k, offset + first:offset + n], 1, -1))
    nsteps = min((len(e) for e in per_traj), default=0)
    step_err = np.mean([e[:nsteps] for e in per_traj], axis=0) if nsteps else np.zeros(0)
    well = _well_metrics(well_pred[0][:nsteps], well_ref[0][:nsteps]) if nsteps else {"available": False,
                                                                                     "why": "no overlapping steps"}

    # --- late statistics --------------------------------------------------------------------------
    n_pred = pred.n_snapshots - first
    n_late = max(1, int(math.ceil(late * n_pred)))
    late_snaps = pred.velocity[:, pred.n_snapshots - n_late:].reshape(-1, *pred.velocity.shape[2:])
    ref_snaps = ref.velocity.reshape(-1, *ref.velocity.shape[2:])
    u_tau = ref.re_tau * ref.nu
    errors, pp, rp, peaks = statistics_errors(late_snaps, ref_snaps, ref.y, ref.nu, u_tau)
    peak_p, peak_r = peaks["prediction"], peaks["reference"]
    # datagen's spectra (channels last; moveaxis is a view)
    late_cl, ref_cl = np.moveaxis(late_snaps, 1, -1), np.moveaxis(ref_snaps, 1, -1)
    yp = rp["y_plus"]
    spec = {}
    lx, lz = (c.size * float(c[1] - c[0]) if c.size > 1 else 1.0 for c in (ref.x, ref.z))  # periodic, uniform
    sp_, sr_ = (coarse_spectra(v, ref.y, ref.nu, lx, lz, y_plus=15.0, u_tau=u_tau) for v in (late_cl, ref_cl))
    j15, jc = sr_["j_near"], sr_["j_centre"]
    for tag, where in (("y15", "near"), ("centre", "centre")):
        for d in ("kx", "kz"):
            key = "E_" + d[1]
            p_, r_ = sp_[where][key], sr_[where][key]
            a, b = p_[1:], r_[1:]
            spec[f"{d}_{tag}"] = {"prediction": p_.tolist(), "reference": r_.tolist(),
                                  "rel_l2": rel_l2(a, b),
                                  "mean_abs_log10_ratio": float(np.mean(np.abs(np.log10(np.maximum(a, 1e-30)
                                                                                         / np.maximum(b, 1e-30)))))}
    checks = {q: bool(errors[q] <= TARGETS[q]) for q in TARGETS}
    report = {
        "rollout": str(rollout_path), "reference": str(reference), "grid": list(ref.grid),
        "u_tau": u_tau, "first_predicted_snapshot": first, "reference_trajectories": [k for _, k in pairs],
        "rollout_info": {k: v for k, v in info.items() if k != "energy_series"},
        "per_step": {"step": list(range(1, nsteps + 1)), "rel_l2": step_err.tolist()},
        "the_well": well,
        "statistics": {"late_fraction": late, "late_snapshots": int(late_snaps.shape[0]),
                       "reference_snapshots": int(ref_snaps.shape[0]), "y_plus": yp.tolist(),
                       "prediction": {q: pp[q].tolist() for q in PROFILES},
                       "reference": {q: rp[q].tolist() for q in PROFILES}, "errors": errors,
                       "uv_peak": {"prediction": peak_p, "reference": peak_r},
                       "targets": TARGETS, "checks": checks},
        "spectra": {"y_plus_node": float(yp[j15]), "j_y15": j15, "j_centre": jc, **spec},
    }
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent if out.parent.exists() else None))
    try:
        _figures(tmp, report, info, pred, ref)
        (tmp / "report.json").write_text(json.dumps(report, indent=1, default=_jd))
        (tmp / "report.md").write_text(_markdown(report))
        if out.exists():
            shutil.rmtree(out)
        out.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(str(tmp), str(out))
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return report


def _jd(o):
    if hasattr(o, "tolist"):
        return o.tolist()
    return str(o)


def _markdown(r: dict) -> str:
    st = r["statistics"]
    lines = [f"# Rollout evaluation: `{r['rollout']}`", "",
             f"Reference: `{r['reference']}` (trajectories {r['reference_trajectories']}), grid "
             f"{'x'.join(map(str, r['grid']))}, u_tau = {r['u_tau']:.4g} (nominal).", ""]
    info = r["rollout_info"]
    if info:
        stop = info.get("stopped_at_step", -1)
        lines += [f"Model `{info.get('model')}`, project={info.get('project')}; {info.get('steps_completed')} of "
                  f"{info.get('steps_requested')} steps"
                  + (f"; stopped at step {stop}: {info.get('stop_reason')}" if stop not in (-1, None) else
                     " inside the energy band") + ".", ""]
    e = r["per_step"]["rel_l2"]
    if e:
        show = [i for i in (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000) if i <= len(e)]
        lines += ["## Relative L2 error per step", "", "| step | " + " | ".join(map(str, show)) + " |",
                  "|---|" + "---|" * len(show), "| rel. L2 | " + " | ".join(f"{e[i - 1]:.4f}" for i in show) + " |", ""]
    w = r["the_well"]
    if w.get("available") and "VRMSE" in w:
        v = w["VRMSE"]
        lines += [f"The Well VRMSE (mean over u, v, w): step 1 {v[0]:.4f}, last overlapping step "
                  f"{v[-1]:.4f}.", ""]
    elif not w.get("available"):
        lines += [f"The Well's metrics: not computed ({w.get('why')}).", ""]
    lines += [f"## Late-rollout statistics ({st['late_snapshots']} snapshots vs {st['reference_snapshots']} "
              "reference snapshots)", "", "| quantity | rel. L2 error | target | met |", "|---|---|---|---|"]
    for q in PROFILES:
        t = st["targets"].get(q)
        lines.append(f"| {LABELS[q]} | {st['errors'][q]:.4f} | {t if t is not None else '-'} | "
                     f"{'yes' if st['checks'].get(q) else ('-' if t is None else 'no')} |")
    lines.append(f"| -u'v'+ peak | {st['errors']['uv_peak']:.4f} | {st['targets']['uv_peak']} | "
                 f"{'yes' if st['checks']['uv_peak'] else 'no'} |")
    lines += ["", f"## Spectra (node y+ = {r['spectra']['y_plus_node']:.1f} and centre line)", "",
              "| spectrum | rel. L2 (k >= 1) | mean abs log10 ratio |", "|---|---|---|"]
    for key in ("kx_y15", "kz_y15", "kx_centre", "kz_centre"):
        s = r["spectra"][key]
        lines.append(f"| {key} | {s['rel_l2']:.4f} | {s['mean_abs_log10_ratio']:.4f} |")
    lines += ["", "Figures: " + ", ".join(f"`{n}`" for n in FIGURES), ""]
    return "\n".join(lines)


FIGURES = ("error_per_step.png", "energy.png", "U_plus.png", "u_rms_plus.png", "v_rms_plus.png", "w_rms_plus.png",
           "uv_plus.png", "spectrum_kx_y15.png", "spectrum_kz_y15.png", "spectrum_kx_centre.png",
           "spectrum_kz_centre.png")


def _figures(d: Path, r: dict, info: dict, pred: ChannelData, ref: ChannelData) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from .rollout import kinetic_energy

    def save(fig, name):
        fig.tight_layout()
        fig.savefig(d / name, dpi=110)
        plt.close(fig)

    fig, ax = plt.subplots(figsize=(5, 3.5))
    e = r["per_step"]["rel_l2"]
    ax.plot(r["per_step"]["step"], e, label="prediction vs reference")
    ax.set_xlabel("step")
    ax.set_ylabel("relative L2 error")
    ax.set_title("error per step")
    if e:
        ax.legend()
    save(fig, "error_per_step.png")

    fig, ax = plt.subplots(figsize=(5, 3.5))
    kind = str(info.get("energy_kind", "tke"))
    ep = kinetic_energy(pred.velocity[0], pred.y, kind)
    ax.plot(np.arange(ep.size), ep, label="prediction")
    for k in range(ref.n_trajectories):
        er = kinetic_energy(ref.velocity[k], ref.y, kind)
        ax.plot(np.arange(er.size), er, color="k", alpha=0.4, lw=0.8, label="reference" if k == 0 else None)
    if "energy_band" in info and "reference_energy" in info:
        lo, hi = info["energy_band"]
        for b in (lo, hi):
            ax.axhline(b * info["reference_energy"], color="r", ls=":", lw=0.8)
    ax.set_xlabel("snapshot")
    ax.set_ylabel(f"{kind} kinetic energy")
    ax.legend()
    save(fig, "energy.png")

    st = r["statistics"]
    yp = np.asarray(st["y_plus"])
    for q in PROFILES:
        fig, ax = plt.subplots(figsize=(5, 3.5))
        sign = -1.0 if q == "uv_plus" else 1.0  # drawn as -u'v'+
        ax.plot(yp[1:], sign * np.asarray(st["reference"][q][1:]), "k-o", ms=3, label="filtered DNS")
        ax.plot(yp[1:], sign * np.asarray(st["prediction"][q][1:]), "C1-s", ms=3, label="prediction (late rollout)")
        ax.set_xscale("log")
        ax.set_xlabel("y+")
        ax.set_ylabel(LABELS[q])
        ax.set_title(f"{LABELS[q]}: rel. L2 error {st['errors'][q]:.3f}")
        ax.legend()
        save(fig, f"{q}.png")
    for key in ("kx_y15", "kz_y15", "kx_centre", "kz_centre"):
        s = r["spectra"][key]
        fig, ax = plt.subplots(figsize=(5, 3.5))
        k = np.arange(len(s["reference"]))
        ax.loglog(k[1:], s["reference"][1:], "k-o", ms=3, label="filtered DNS")
        ax.loglog(k[1:], s["prediction"][1:], "C1-s", ms=3, label="prediction (late rollout)")
        where = f"y+ = {r['spectra']['y_plus_node']:.1f}" if key.endswith("y15") else "centre line"
        ax.set_xlabel(f"{key[:2]} (mode index)")
        ax.set_ylabel("E (fluctuating kinetic energy)")
        ax.set_title(f"{key[:2]} spectrum at {where}")
        ax.legend()
        save(fig, f"spectrum_{key}.png")
