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

import numpy as np
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


@register_model("sym-mg")
class SymmetricMultilevel(nn.Module):
    """A network that is nonlinear in the geometry but linear, symmetric and positive
    semi-definite in the residual: f(r) = F sum_l c_l B_l^T B_l F r, where F masks the fluid,
    B_l = K2 diag(g_l) K1 R_l, R_l is l-fold average pooling, K1, K2 are the shared 3x3[x3]
    convolutions (16 channels), g_l are per-cell gains from a ReLU network of the level's
    cell types, and c_l = gamma^l with one learned gamma, initialised to 4 * 2^dim (R_l^T
    carries 2^-dim per level, the coarse solve of the h^2-scaled stencil a factor 4, as in
    ``mg-unet``); gamma is shared by all levels so the weights stay size independent. Why: DCDM's short recurrence (n_orth = 2) is exact only for a fixed SPD
    map; a ReLU network of the residual breaks conjugacy with older directions and the
    iteration stalls unless it keeps a long window. With this form DCDM is PCG with a
    learned additive multilevel (BPX-like) preconditioner, and the weights still run on any
    grid, the depth growing with log2(size).

    Experimental, not shipped: from its identity initialisation DCDM needs 128 / 222
    iterations at 64^2 / 128^2 (CG: 311 / 664), but training it with the paper's one-step
    loss made it worse within the time tried (the loss does not measure the condition of
    f A, which is what PCG needs).
    """

    def __init__(self, dim: int = 2, channels: int = 16, cell_types: bool = True, coarsest: int = 4,
                 max_levels: int = 16):
        super().__init__()
        if dim not in (2, 3):
            raise ValueError(f"dim must be 2 or 3, got {dim}")
        self.config = {"arch": self.arch, "dim": dim, "channels": channels, "cell_types": cell_types,
                       "coarsest": coarsest, "max_levels": max_levels}
        self.dim, self.cell_types, self.coarsest, self.max_levels = dim, cell_types, coarsest, max_levels
        self.log_gamma = nn.Parameter(torch.tensor(float(np.log(4.0 * 2**dim))))
        conv = nn.Conv2d if dim == 2 else nn.Conv3d
        self._pool = F.avg_pool2d if dim == 2 else F.avg_pool3d
        self._conv = F.conv2d if dim == 2 else F.conv3d
        self._convT = F.conv_transpose2d if dim == 2 else F.conv_transpose3d
        self.k1 = conv(1, channels, 3, padding=1, bias=False)
        self.k2 = conv(channels, channels, 3, padding=1, bias=False)
        if cell_types:
            self.geo1 = conv(2, channels, 3, padding=1, bias=False)
            self.geo2 = conv(channels, channels, 1, bias=True)
        self._init_as_hierarchical_basis()

    @torch.no_grad()
    def _init_as_hierarchical_basis(self):
        # A random K has near-zero Fourier symbols, so K^T K would be a near-singular (and
        # useless) preconditioner. Start instead from K = identity and unit gains: the
        # classical additive multilevel preconditioner sum_l gamma^l R_l^T R_l, which
        # training then refines.
        centre = (1,) * self.dim
        for k in (self.k1, self.k2):
            k.weight.normal_(0.0, 0.01)
            for c in range(k.weight.shape[0]):
                k.weight[(c, min(c, k.weight.shape[1] - 1)) + centre] += 1.0 if k is self.k2 or c == 0 else 0.0
        if self.cell_types:
            self.geo2.weight.zero_()
            self.geo2.bias.zero_()

    levels = MultigridUNet.levels
    _pad = MultigridUNet._pad

    def geometry_gains(self, geo, shape=None):
        shape = tuple(geo.shape[2:]) if shape is None else shape
        depth = self.levels(shape)
        geo = self._pad(geo, shape, depth)
        gains = []
        for level in range(depth + 1):
            g = None
            if self.cell_types:
                g = 1 + self.geo2(F.relu(self.geo1(geo)))
            gains.append((g, geo[:, :1]))
            if level < depth:
                geo = self._pool(geo, 2)
        return gains

    def forward(self, r, geo=None, gains=None):
        if gains is None:
            if geo is None:
                raise ValueError("sym-mg needs the geometry channels (fluid, air)")
            gains = self.geometry_gains(geo, tuple(r.shape[2:]))
        shape = tuple(r.shape[2:])
        depth = len(gains) - 1
        fluid = gains[0][1]
        z = self._pad(r, shape, depth) * fluid
        out = torch.zeros_like(z)
        w1, w2 = self.k1.weight, self.k2.weight
        coarse = []
        for level in range(depth + 1):
            g = gains[level][0]
            u = self._conv(z, w1, padding=1)
            if g is not None:
                u = u * g
            u = self._conv(u, w2, padding=1)
            # B^T: the adjoint of each linear step, in reverse order
            v = self._convT(u, w2, padding=1)
            if g is not None:
                v = v * g
            coarse.append(self._convT(v, w1, padding=1) * torch.exp(level * self.log_gamma))
            if level < depth:
                z = self._pool(z, 2)
        for level in range(depth, 0, -1):  # R^T: nearest upsampling / 2^dim per level
            up = F.interpolate(coarse[level], scale_factor=2, mode="nearest") / 2**self.dim
            coarse[level - 1] = coarse[level - 1] + up
        out = coarse[0] * fluid
        return out[(slice(None), slice(None)) + tuple(slice(0, s) for s in shape)]


from linsolve.learned.dcdm import mgcycle as _mgcycle  # noqa: E402,F401 - registers the "mg-cycle" architecture
