"""Checkpoints: velocity fields, time, step and configuration in one .npz, written
atomically (``datagen.storage.atomic``: temporary file, fsync, rename) so an interrupted
write never leaves a broken file."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from datagen.channel.dns import ChannelConfig, ChannelDNS
from datagen.storage.atomic import atomic_path
from linsolve.core.errors import OptionError


def save_checkpoint(dns: ChannelDNS, path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    f = dns.fields()
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:  # a file object: savez adds no .npz suffix
        np.savez(fh, u=f["u"], v=f["v"], w=f["w"], t=dns.t, step=dns.step_count, config=dns.cfg.to_json())
    return path


def _check_overrides(overrides) -> None:
    # every override must name a config field: a misspelt one (dtt=) would otherwise be ignored
    unknown = sorted(set(overrides) - set(ChannelConfig.__dataclass_fields__))
    if unknown:
        raise OptionError(f"unknown config override(s) {', '.join(unknown)}; known: "
                          f"{', '.join(ChannelConfig.__dataclass_fields__)}")


def load_checkpoint(path, **overrides) -> ChannelDNS:
    """A ChannelDNS at the checkpoint's state.

    Parameters
    ----------
    path : str or Path
        A checkpoint of ``save_checkpoint`` (``.npz``).
    **overrides
        ``ChannelConfig`` fields to change (device, solver, dt, ...); the grid must stay the one
        the fields were computed on.

    Returns
    -------
    ChannelDNS
        At the checkpoint's time and step count.

    Raises
    ------
    OptionError
        A missing file, not a channel checkpoint, or a bad override.
    """
    path = Path(path)
    if not path.exists():
        raise OptionError(f"checkpoint {path} does not exist")
    try:
        d = np.load(path, allow_pickle=False)
        cfg = ChannelConfig.from_json(str(d["config"]))
    except OptionError as exc:
        raise OptionError(f"{path} holds a bad channel configuration: {exc}") from exc
    except (OSError, KeyError, ValueError, TypeError) as exc:  # TypeError: a config key ChannelConfig lacks
        raise OptionError(f"{path} is not a channel checkpoint: {exc}") from exc
    _check_overrides(overrides)
    if "grid" in overrides and overrides["grid"] != cfg.grid:
        raise OptionError("a checkpoint cannot be restarted on a different grid")
    for k, v in overrides.items():
        if v is not None:
            setattr(cfg, k, v)
    cfg.__post_init__()
    dns = ChannelDNS(cfg)
    dns.set_fields(d["u"], d["v"], d["w"], float(d["t"]), int(d["step"]))
    return dns


def _fourier_resample(a, axis: int, n_new: int, x0_old: float, x0_new: float, length: float):
    """Periodic samples at x0_old + i L/n -> trigonometric interpolant at x0_new + i L/n_new
    (the old Nyquist mode is dropped so the interpolant stays real)."""
    n_old = a.shape[axis]
    ah = np.fft.rfft(a, axis=axis)
    k = np.arange(ah.shape[axis])
    shape = [1] * a.ndim
    shape[axis] = -1
    ah = ah * np.exp(2j * np.pi * k * (x0_new - x0_old) / length).reshape(shape)
    if n_old % 2 == 0:
        sl = [slice(None)] * a.ndim
        sl[axis] = n_old // 2
        ah[tuple(sl)] = 0.0
    kmax = min(ah.shape[axis], n_new // 2)
    sl = [slice(None)] * a.ndim
    sl[axis] = slice(0, kmax)
    out_shape = list(ah.shape)
    out_shape[axis] = n_new // 2 + 1
    bh = np.zeros(out_shape, dtype=complex)
    bh[tuple(sl)] = ah[tuple(sl)]
    return np.fft.irfft(bh, n=n_new, axis=axis) * (n_new / n_old)


def regrid(dns: ChannelDNS, nx: int, nz: int, **overrides) -> ChannelDNS:
    """The flow of ``dns`` on a grid with ``nx`` x ``nz`` points in the periodic directions
    (same y grid and box), by trigonometric interpolation of the staggered fields and one
    projection back onto discretely divergence-free fields: a developed flow seeds a
    finer run without repeating the transition."""
    _check_overrides(overrides)
    cfg = ChannelConfig.from_json(dns.cfg.to_json())
    # ChannelGrid checks the sizes: int() here made regrid(dns, 16.5, 8) run on 16
    cfg.grid = {**dns.grid.params(), "nx": nx, "nz": nz}
    for k, v in overrides.items():
        setattr(cfg, k, v)
    cfg.__post_init__()
    new = ChannelDNS(cfg)
    g0, g1 = dns.grid, new.grid
    f = dns.fields()
    # u on x-faces and z-centres, v on x- and z-centres, w on x-centres and z-faces
    offsets = {"u": ((0.0, 0.0), (g0.dz / 2, g1.dz / 2)), "v": ((g0.dx / 2, g1.dx / 2), (g0.dz / 2, g1.dz / 2)),
               "w": ((g0.dx / 2, g1.dx / 2), (0.0, 0.0))}
    out = {}
    for name, ((x0o, x0n), (z0o, z0n)) in offsets.items():
        a = _fourier_resample(f[name], 1, g1.nx, x0o, x0n, g0.lx)
        out[name] = _fourier_resample(a, 2, g1.nz, z0o, z0n, g0.lz)
    new.set_fields(out["u"], out["v"], out["w"], dns.t, dns.step_count)
    new.u, new.v, new.w = new._project(new.u, new.v, new.w, 1.0)
    if cfg.drive == "flow_rate":
        new.u = new.u + (cfg.ub - new.bulk_velocity())
    return new
