"""DCDM networks: the paper's residual convolution blocks (3x3[x3] kernels, 16 channels,
ReLU, bias-free) arranged as a multigrid-like U-Net whose levels share one set of weights.

Why shared levels: a fixed receptive field cannot see the global (smooth) modes of a
Poisson matrix, so iteration counts would grow with the grid. Here the residual is
average-pooled level after level until the coarsest grid has a few cells; every level
runs the same encoder/decoder, so the same weights run on any grid and the depth grows
with log2(size) like a multigrid V-cycle. The coarse result is multiplied by 4 on the way
up: with average-pooled residuals and the integer stencil (h^2 times the Laplacian) the
coarse solution is 1/4 of the fine one, in 2-D and 3-D alike. Convolutions have no bias,
so the network is positively homogeneous (f(c r) = c f(r) for c > 0) and its output does
not depend on the scale of the residual.

Inputs per level: the residual and, optionally, the fluid and air fractions of each
cell (the cell-type channel the paper lacked). Geometry must not act as a bias (that
would break homogeneity and make f(0) != 0), so it enters multiplicatively: a small
geometry branch gives per-cell, per-channel gains 1 + g(geometry) applied to the first
convolution of the encoder and of the decoder. The gains depend only on the geometry, so
a solver computes them once per system (``geometry_gains``) and reuses them every
iteration. Cells that carry no unknown get zero residual and zero output.
"""
from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

_MODELS: dict[str, type[nn.Module]] = {}


def register_model(name: str):
    def deco(cls):
        _MODELS[name] = cls
        cls.arch = name
        return cls

    return deco


def available_models() -> list[str]:
    return sorted(_MODELS)


class ResBlock(nn.Module):
    def __init__(self, conv, channels: int):
        super().__init__()
        self.c1 = conv(channels, channels, 3, padding=1, bias=False)
        self.c2 = conv(channels, channels, 3, padding=1, bias=False)

    def forward(self, h):
        return F.relu(h + self.c2(F.relu(self.c1(h))))


@register_model("mg-unet")
class MultigridUNet(nn.Module):
    """``forward(residual, geometry)``: residual (B, 1, *grid), geometry (B, 2, *grid)
    (fluid and air indicator) or None; returns the search direction (B, 1, *grid)."""

    def __init__(self, dim: int = 2, channels: int = 16, blocks: int = 1, cell_types: bool = True,
                 coarse_scale: float = 4.0, coarsest: int = 4, max_levels: int = 16):
        super().__init__()
        if dim not in (2, 3):
            raise ValueError(f"dim must be 2 or 3, got {dim}")
        self.config = {"arch": self.arch, "dim": dim, "channels": channels, "blocks": blocks,
                       "cell_types": cell_types, "coarse_scale": coarse_scale, "coarsest": coarsest,
                       "max_levels": max_levels}
        self.dim, self.cell_types = dim, cell_types
        self.coarse_scale, self.coarsest, self.max_levels = coarse_scale, coarsest, max_levels
        conv = nn.Conv2d if dim == 2 else nn.Conv3d
        self._pool = F.avg_pool2d if dim == 2 else F.avg_pool3d
        self.enc_in = conv(1, channels, 3, padding=1, bias=False)
        if cell_types:
            self.geo = conv(2, channels, 3, padding=1, bias=False)
            self.gain_enc = conv(channels, channels, 1, bias=False)
            self.gain_dec = conv(channels, channels, 1, bias=False)
        self.enc = nn.Sequential(*[ResBlock(conv, channels) for _ in range(blocks)])
        self.dec_in = conv(2 * channels, channels, 3, padding=1, bias=False)
        self.dec = nn.Sequential(*[ResBlock(conv, channels) for _ in range(blocks)])
        self.out = conv(channels, 1, 1, bias=False)

    def levels(self, shape) -> int:
        """How many times a grid of ``shape`` is halved: until a side reaches ``coarsest``."""
        m, k = min(shape), 0
        while m // 2 >= self.coarsest and k < self.max_levels:
            m //= 2
            k += 1
        return k

    def _pad(self, t, shape, depth):
        pad = []
        for s in reversed(shape):
            pad += [0, (-s) % (2**depth)]
        return F.pad(t, pad) if any(pad) else t

    def geometry_gains(self, geo, shape=None):
        """Per-level (encoder, decoder) gains for geometry ``geo`` (B, 2, *grid); None for
        a model without the cell-type channel. Reusable for every residual on that grid."""
        if not self.cell_types:
            return None
        if geo is None:
            raise ValueError("this model takes a cell-type channel: pass geometry")
        shape = tuple(geo.shape[2:]) if shape is None else shape
        depth = self.levels(shape)
        geo = self._pad(geo, shape, depth)
        gains = []
        for level in range(depth + 1):
            e = F.relu(self.geo(geo))
            gains.append((1 + self.gain_enc(e), 1 + self.gain_dec(e), geo[:, :1]))
            if level < depth:
                geo = self._pool(geo, 2)
        return gains

    def _level(self, r, gains, level, depth):
        h = self.enc_in(r)
        if gains is not None:
            h = h * gains[level][0]
        h = self.enc(F.relu(h))
        if level < depth:
            u = self._level(self._pool(r, 2), gains, level + 1, depth)
            u = F.interpolate(u, scale_factor=2, mode="nearest") * self.coarse_scale
        else:
            u = torch.zeros_like(h)
        h = self.dec_in(torch.cat([h, u], 1))
        if gains is not None:
            h = h * gains[level][1]
        return self.dec(F.relu(h))

    def forward(self, r, geo=None, gains=None):
        shape = tuple(r.shape[2:])
        depth = self.levels(shape)
        if gains is None:
            gains = self.geometry_gains(geo, shape)
        q = self.out(self._level(self._pad(r, shape, depth), gains, 0, depth))
        if gains is not None:
            q = q * gains[0][2]  # zero outside the fluid
        return q[(slice(None), slice(None)) + tuple(slice(0, s) for s in shape)]


def build_model(config: dict) -> nn.Module:
    """The network described by ``config`` (as stored in weights files and model cards)."""
    cfg = dict(config)
    arch = cfg.pop("arch", "mg-unet")
    if arch not in _MODELS:
        raise ValueError(f"unknown DCDM architecture {arch!r}; known: {', '.join(available_models())}")
    return _MODELS[arch](**cfg)
