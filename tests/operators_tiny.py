"""Helpers for the operators pipeline tests: a tiny model that follows the model contract
(notes: operators.make_model's interface) and synthetic channel trajectory files written by
datagen's own channel writer, so that the layout is exactly that of `datagen generate channel`.

``use_tiny_models()`` makes ``operators.checkpoint.build_model`` build the tiny model for the
name ``"tiny"`` (and defer to the registry for every other name); a subprocess test calls it
before ``operators.cli.main``.
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
from torch import nn


class TinyModel(nn.Module):
    """Last snapshot plus a small periodic convolution of the normalised window."""

    def __init__(self, in_steps: int = 1, width: int = 4, scale: float = 1.0):
        super().__init__()
        self.name = "tiny"
        self.config = {"in_steps": int(in_steps), "width": int(width), "scale": float(scale)}
        self.in_steps = int(in_steps)
        self.register_buffer("mean", torch.zeros(3))
        self.register_buffer("std", torch.ones(3))
        self.net = nn.Sequential(nn.Conv3d(3 * in_steps, width, 3, padding=1, padding_mode="circular"), nn.GELU(),
                                 nn.Conv3d(width, 3, 1))
        self.scale = float(scale)

    def set_normalization(self, mean, std):
        self.mean.copy_(torch.as_tensor(mean, dtype=torch.float32))
        self.std.copy_(torch.as_tensor(std, dtype=torch.float32))

    def forward(self, x):
        b = x.shape[0]
        m = self.mean[None, None, :, None, None, None]
        s = self.std[None, None, :, None, None, None]
        xn = (x - m) / s
        out = self.scale * xn[:, -1] + self.net(xn.reshape(b, -1, *x.shape[3:]))
        return out * s[:, 0] + m[:, 0]


def build(name, config):
    if name == "tiny":
        return TinyModel(**config)
    import operators

    return operators.make_model(name, **config)


def use_tiny_models(monkeypatch=None):
    import operators.checkpoint as ck

    if monkeypatch is not None:
        monkeypatch.setattr(ck, "build_model", build)
    else:
        ck.build_model = build


def synthetic_velocity(K: int, S: int, grid=(8, 9, 4), box=(3.0, 1.5), seed: int = 0, dt: float = 0.1) -> np.ndarray:
    """(K, S, NX, NY, NZ, 3): a mean profile plus travelling waves with seeded phases and
    amplitudes, zero on the walls; smooth and deterministic in time, so a model can learn it."""
    NX, NY, NZ = grid
    rng = np.random.default_rng(seed)
    x = np.arange(NX) * box[0] / NX
    y = -np.cos(np.pi * np.arange(NY) / (NY - 1))
    z = np.arange(NZ) * box[1] / NZ
    X, Y, Z = np.meshgrid(x, y, z, indexing="ij")
    env = 1 - Y**2
    out = np.empty((K, S, NX, NY, NZ, 3))
    for k in range(K):
        ph = rng.uniform(0, 2 * np.pi, 6)
        amp = rng.uniform(0.5, 1.5, 3)
        for s in range(S):
            t = s * dt
            a = 2 * np.pi * X / box[0] - 0.8 * t
            c = 2 * np.pi * Z / box[1]
            out[k, s, ..., 0] = 15 * env + amp[0] * env * np.sin(a + ph[0]) * np.cos(c + ph[1])
            out[k, s, ..., 1] = amp[1] * env**2 * np.sin(a + ph[2] + c)
            out[k, s, ..., 2] = amp[2] * env * np.cos(a + ph[3]) * np.sin(c + ph[4])
    return out.astype(np.float32)


def write_channel_file(path, K: int = 3, S: int = 12, grid=(8, 9, 4), box=(3.0, 1.5), seed: int = 0,
                       velocity: np.ndarray | None = None) -> Path:
    """A channel trajectory file in datagen's layout, written by datagen's own writer (``_join``)."""
    import h5py

    from datagen.channel import trajectories as cd
    from datagen.channel.dns import ChannelConfig, ChannelDNS
    from datagen.channel.filtering import CoarseFilter

    path = Path(path)
    vel = synthetic_velocity(K, S, grid, box, seed) if velocity is None else np.asarray(velocity, np.float32)
    K, S = vel.shape[:2]
    NX, NY, NZ = grid
    dns = ChannelDNS(ChannelConfig(re_tau=180.0, grid=dict(nx=2 * NX, ny=16, nz=2 * NZ, lx=box[0], lz=box[1]),
                                   dt=0.01))
    filt = CoarseFilter(dns.grid, grid, "box")
    parts = path.with_name(path.name + ".parts")
    parts.mkdir(parents=True, exist_ok=True)
    for k in range(K):
        with h5py.File(parts / f"traj_{k:04d}.h5", "w") as f:
            f["velocity"] = vel[k]
            f["time"] = 10.0 + np.arange(S) * 0.1
            f.attrs["seed"] = seed + 1 + k
    cd._join(path, parts, dns, filt, K, False, "box", 10, seed)
    for p in parts.iterdir():
        p.unlink()
    parts.rmdir()
    return path


def tiny_checkpoint_dict(grid=(8, 9, 4), box=(3.0, 1.5), in_steps=1, seed=0, **config) -> dict:
    from operators.checkpoint import FORMAT, FORMAT_VERSION

    torch.manual_seed(seed)
    m = TinyModel(in_steps=in_steps, **config)
    return dict(format=FORMAT, format_version=FORMAT_VERSION, model="tiny", model_config=m.config, in_steps=in_steps,
                state_dict=m.state_dict(), grid=list(grid), box=list(box), re_tau=180.0, nu=1 / 180.0,
                snapshot_dt=0.1, normalization={"mean": [0.0] * 3, "std": [1.0] * 3}, project=False)


def field_l2(a) -> float:
    return math.sqrt(float(np.sum(np.asarray(a, float) ** 2)))
