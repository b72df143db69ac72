"""Checkpoints: velocity fields, time, step and configuration in one .npz, written
atomically (temporary file + rename) so an interrupted write never leaves a broken file."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from linsolve.errors import OptionError

from .dns import ChannelConfig, ChannelDNS


def save_checkpoint(dns: ChannelDNS, path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp.npz")
    f = dns.fields()
    np.savez(tmp, u=f["u"], v=f["v"], w=f["w"], t=dns.t, step=dns.step_count, config=dns.cfg.to_json())
    tmp.replace(path)
    return path


def load_checkpoint(path, **overrides) -> ChannelDNS:
    """A ChannelDNS at the checkpoint's state; ``overrides`` change config fields (device,
    solver, dt, ...). The grid must stay the one the fields were computed on."""
    path = Path(path)
    if not path.exists():
        raise OptionError(f"checkpoint {path} does not exist")
    try:
        d = np.load(path, allow_pickle=False)
        cfg = ChannelConfig.from_json(str(d["config"]))
    except (OSError, KeyError, ValueError) as exc:
        raise OptionError(f"{path} is not a channel checkpoint: {exc}") from exc
    if "grid" in overrides and overrides["grid"] != cfg.grid:
        raise OptionError("a checkpoint cannot be restarted on a different grid")
    for k, v in overrides.items():
        if v is not None:
            setattr(cfg, k, v)
    cfg.__post_init__()
    dns = ChannelDNS(cfg)
    dns.set_fields(d["u"], d["v"], d["w"], float(d["t"]), int(d["step"]))
    return dns
