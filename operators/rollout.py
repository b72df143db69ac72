"""Autoregressive rollouts of a trained surrogate, written in the channel trajectory layout.

The file holds one trajectory: the ``in_steps`` snapshots of the reference that start it, then one
predicted snapshot per step (so snapshot s of the rollout is compared with snapshot ``start + s`` of
the reference). A rollout stops at the first step whose prediction is non-finite or whose turbulent
kinetic energy leaves the band ``[lo, hi]`` x the reference's mean; the file then holds the steps
before it, and its ``/rollout`` group records the step and the reason.

Turbulent kinetic energy: 0.5 <|u - <u>_xz(y)|^2>, the volume average (trapezoidal weights on
the Gauss-Lobatto y nodes) of the fluctuations about each snapshot's plane means. The reference's
mean is taken over every snapshot of every trajectory of the reference file.
"""
from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from linsolve.core.errors import OptionError
from linsolve.core.validation import check_choice, check_int

from .checkpoint import check_fits, load_checkpoint
from .data import check_trajectory_index, load_channel
from .stepping import make_projector, predictor, resolve_device

ENERGY_KINDS = ("tke", "total")


def y_weights(y: np.ndarray) -> np.ndarray:
    """Trapezoidal quadrature weights of the y nodes, normalised to sum 1."""
    w = np.zeros_like(y, dtype=float)
    d = np.diff(y)
    w[:-1] += 0.5 * d
    w[1:] += 0.5 * d
    return w / w.sum()


def kinetic_energy(u: np.ndarray, y: np.ndarray, kind: str = "tke") -> np.ndarray:
    """Volume-averaged kinetic energy per snapshot of u (..., 3, NX, NY, NZ): of the fluctuations
    about the plane means (``tke``) or of the whole velocity (``total``)."""
    u = np.asarray(u, dtype=np.float64)
    if kind == "tke":
        u = u - u.mean(axis=(-3, -1), keepdims=True)
    e = 0.5 * (u**2).sum(axis=-4).mean(axis=(-3, -1))  # (..., NY)
    return e @ y_weights(y)


@dataclass
class RolloutResult:
    path: Path
    steps_requested: int
    steps_completed: int
    stopped_at_step: int | None
    reason: str
    seconds_per_step: float
    energy: np.ndarray
    reference_energy: float


def parse_band(band) -> tuple[float, float]:
    if isinstance(band, str):
        try:
            band = tuple(float(b) for b in band.split(","))
        except ValueError:
            raise OptionError(f"energy band must be LO,HI (two numbers), got {band!r}") from None
    lo, hi = (float(b) for b in band) if len(band) == 2 else (math.nan, math.nan)
    if not (0 <= lo < 1 < hi < math.inf):
        raise OptionError(f"energy band must be LO,HI with 0 <= LO < 1 < HI, got {band!r}")
    return lo, hi


def rollout(checkpoint, data, trajectory: int, steps: int, out, *, project: bool | None = None,
            band=(0.5, 2.0), energy: str = "tke", start: int = 0, device: str = "cpu",
            threads: int | None = None, progress=None) -> RolloutResult:
    """Predict ``steps`` snapshots autoregressively from trajectory ``trajectory`` of ``data``.

    Parameters
    ----------
    checkpoint : str or Path
        A checkpoint written by ``operators train`` (``best.pt``/``last.pt``).
    data : str or Path
        The reference channel trajectory file (its grid and box must be the checkpoint's).
    trajectory : int
        Which trajectory of ``data`` gives the initial window.
    steps : int
        Number of predicted snapshots.
    out : str or Path
        The rollout file (HDF5, the channel trajectory layout).
    project : bool, optional
        Project each prediction onto the divergence-free fields; default: as the model was trained.
    band : (lo, hi)
        Stop when the kinetic energy leaves [lo, hi] x the reference's mean.
    energy : {"tke", "total"}
        Which kinetic energy the band applies to.
    start : int
        First snapshot of the initial window in the reference trajectory.
    device, threads :
        Where to run, and ``torch.set_num_threads``.
    progress : callable, optional
        ``progress(step, steps)`` after each step.

    Returns
    -------
    RolloutResult
        ``stopped_at_step`` is None when every step stayed finite and inside the band.

    Raises
    ------
    OptionError, DataError, CheckpointError
        Bad arguments, data or checkpoint (before anything is written).

    Examples
    --------
    >>> r = rollout("runs/ifm/best.pt", "test.h5", 0, 1000, "rollout.h5")   # doctest: +SKIP
    >>> r.stopped_at_step is None                                          # doctest: +SKIP
    """
    import torch

    check_int("steps", steps, 1)
    check_choice("energy", energy, ENERGY_KINDS)
    lo, hi = parse_band(band)
    if check_int("threads", threads, 1, allow_none=True) is not None:
        torch.set_num_threads(int(threads))
    dev = resolve_device(device)
    model, ck = load_checkpoint(checkpoint, dev)
    ds = load_channel(data)
    check_fits(ck, ds, checkpoint)
    k = check_trajectory_index(trajectory, ds.n_trajectories, data)
    n_in = int(ck["in_steps"])
    check_int(f"start (the trajectory has {ds.n_snapshots} snapshots, the model reads {n_in})", start, 0,
              ds.n_snapshots - n_in)
    project = bool(ck["project"]) if project is None else bool(project)
    step = predictor(model, make_projector(ds) if project else None)
    flat = ds.velocity.reshape(-1, *ds.velocity.shape[2:])
    e_ref = float(np.concatenate([kinetic_energy(flat[i:i + 64], ds.y, energy)
                                  for i in range(0, flat.shape[0], 64)]).mean())
    window = torch.from_numpy(ds.velocity[k, start:start + n_in].copy())[None].to(dev)
    preds = np.empty((steps, *ds.velocity.shape[2:]), dtype=np.float32)
    energies = np.empty(steps)
    stopped, reason = None, ""
    t0 = time.perf_counter()
    done = 0
    with torch.no_grad():
        for n in range(steps):
            nxt = step(window)
            arr = nxt[0].detach().cpu().numpy()
            if not np.all(np.isfinite(arr)):
                stopped, reason = n + 1, "non-finite prediction"
                break
            e = float(kinetic_energy(arr, ds.y, energy))
            if not lo * e_ref <= e <= hi * e_ref:
                stopped = n + 1
                reason = (f"{energy} energy {e:.4g} left the band [{lo:g}, {hi:g}] x the reference's mean "
                          f"{e_ref:.4g} (ratio {e / e_ref:.3g})")
                break
            preds[n], energies[n] = arr, e
            done = n + 1
            window = torch.cat([window[:, 1:], nxt[:, None]], dim=1)
            if progress:
                progress(done, steps)
    seconds = time.perf_counter() - t0
    sps = seconds / max(done + (stopped is not None), 1)
    vel = np.concatenate([ds.velocity[k, start:start + n_in], preds[:done]])  # (S, 3, NX, NY, NZ)
    times = np.arange(vel.shape[0]) * ds.snapshot_dt
    from datagen.storage import write_trajectory_file

    Path(out).parent.mkdir(parents=True, exist_ok=True)

    info = {"@checkpoint": str(Path(checkpoint).resolve()), "@model": str(ck["model"]),
            "@model_config": json.dumps(ck["model_config"]), "@project": project,
            "@reference_file": str(Path(data).resolve()), "@reference_trajectory": k, "@start": int(start),
            "@rollout_start": n_in, "@in_steps": n_in, "@steps_requested": int(steps), "@steps_completed": done,
            "@stopped_at_step": -1 if stopped is None else int(stopped), "@stop_reason": reason,
            "@energy_kind": energy, "@energy_band": [lo, hi], "@reference_energy": e_ref,
            "@seconds_per_step": sps, "@device": str(dev), "@threads": torch.get_num_threads(),
            "energy": energies[:done]}
    path = write_trajectory_file(out, data, np.moveaxis(vel, 1, -1)[None], times,
                                 attrs={"source": "operators rollout", "rollout_start": n_in,
                                        "reference_trajectory": k},
                                 trajectories=[k], extra={"rollout": info})
    return RolloutResult(Path(path), int(steps), done, stopped, reason, sps, energies[:done], e_ref)
